/**
 * The embed scenario, shared by the Node test (source) and the browser test (dist/embed.js):
 * a host owns a WebAssembly.Memory and gives the emulator a window of it; guest RAM is the
 * host's own bytes (a direct region). The host writes guest RAM, a device DMAs through an IOMMU
 * mapping into it and out of it, the host reads the bytes back with its own pointer; then the
 * host grows its memory and all of it still works. Nothing outside the window (and the guest RAM
 * the host handed over) is ever written.
 */
import { expect } from 'vitest';

type EmbedApi = typeof import('../../src/embed-entry.js');

const MiB = 1 << 20;
export const LAYOUT = {
  guestLinear: 1 * MiB, // host bytes [1 MiB, 3 MiB) are guest RAM
  guestSize: 2 * MiB,
  base: 4 * MiB, // the emulator's window [4 MiB, 8 MiB)
  bytes: 4 * MiB,
  pages: 160, // 10 MiB of host memory
};
const SENTINEL = 0xa5;
const RAM_PA = 0x8000_0000n;
const HBM_PA = 0x40_0000_0000n;
const RID = 0x0300;
const IOVA = 0x10_0000n;
const BUF = 0x10_0000; // offset in guest RAM of the device's buffer (page tables take low frames)

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; out[i] = (x & 0xff) | 1; }
  return out;
}

/** Bytes outside [base, base + bytes) and outside guest RAM that are not SENTINEL, below `limit`. */
function strayWrites(memory: WebAssembly.Memory, limit: number): number {
  const u8 = new Uint8Array(memory.buffer, 0, limit);
  const { guestLinear, guestSize, base, bytes } = LAYOUT;
  let bad = 0;
  for (let i = 0; i < limit; i++) {
    if (i >= guestLinear && i < guestLinear + guestSize) continue;
    if (i >= base && i < base + bytes) continue;
    if (u8[i] !== SENTINEL) bad++;
  }
  return bad;
}

export async function embedScenario(api: EmbedApi, shared: boolean): Promise<void> {
  const memory = new WebAssembly.Memory(
    shared ? { initial: LAYOUT.pages, maximum: 1024, shared: true } : { initial: LAYOUT.pages, maximum: 1024 },
  );
  // The host's memory is full of its own data; the emulator must not care, nor touch it.
  new Uint8Array(memory.buffer).fill(SENTINEL);
  const before = memory.buffer.byteLength;

  const sim = await api.createEmbeddedSimulator({ memory, base: LAYOUT.base, bytes: LAYOUT.bytes });
  expect(sim.core.build).toBe(shared ? 'embed-shared' : 'embed');
  expect(sim.core.exports.memory).toBe(memory);
  expect(memory.buffer.byteLength).toBe(before); // never grown by the core
  expect(strayWrites(memory, before)).toBe(0);
  const fixed = sim.core.exports.layoutFixedBytes();
  expect(sim.core.layout.result).toBe(LAYOUT.base);
  expect(sim.core.exports.chunksFree()).toBe((LAYOUT.bytes - fixed) / 4096);

  // Guest RAM is the host's [1 MiB, 3 MiB); device memory is sparse, in the emulator's arena.
  const ram = sim.memory.addRegion({ base: RAM_PA, size: BigInt(LAYOUT.guestSize), kind: 'ram', linear: LAYOUT.guestLinear, name: 'guest' });
  sim.memory.addRegion({ base: HBM_PA, size: 1n << 30n, kind: 'device', owner: 1, name: 'hbm' });
  expect(ram.id).toBe(0);

  // The host writes guest RAM with its own pointer.
  const hostData = pattern(8192, 7);
  new Uint8Array(memory.buffer).set(hostData, LAYOUT.guestLinear + BUF);
  expect(sim.memory.read(RAM_PA + BigInt(BUF), 8192)).toEqual(hostData);

  // A device behind a VT-d unit, its domain mapping IOVA -> guest RAM + BUF (4 pages).
  const unit = sim.iommu.createUnit({ family: 'vtd' });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss' });
  sim.iommu.attach(RID, dom);
  dom.map(IOVA, RAM_PA + BigInt(BUF), 0x4000n, api.Prot.RW);

  // DMA out of the host's bytes, through the IOMMU.
  const r1 = sim.dma.read({ rid: RID, addr: IOVA }, 8192);
  expect(r1.ok).toBe(true);
  expect(r1.data).toEqual(hostData);

  // DMA into them: the host reads the bytes back at its own address.
  const devData = pattern(4096, 9);
  expect(sim.dma.write({ rid: RID, addr: IOVA + 0x2000n }, devData).ok).toBe(true);
  expect(new Uint8Array(memory.buffer, LAYOUT.guestLinear + BUF + 0x2000, 4096)).toEqual(devData);

  // Device memory (arena) -> guest RAM through the IOMMU, crossing a page boundary.
  const hbmData = pattern(3000, 11);
  sim.memory.write(HBM_PA + 0x1000n, hbmData);
  expect(sim.dma.copy({ rid: 'phys', addr: HBM_PA + 0x1000n }, { rid: RID, addr: IOVA + 0x2800n }, 3000n).ok).toBe(true);
  expect(new Uint8Array(memory.buffer, LAYOUT.guestLinear + BUF + 0x2800, 3000)).toEqual(hbmData);
  // A fault stays a fault: beyond the mapping.
  expect(sim.dma.read({ rid: RID, addr: IOVA + 0x4000n }, 16).ok).toBe(false);

  // The I/O page tables live in guest RAM frames, i.e. in host memory the host can read.
  const walk = dom.walk(IOVA);
  expect(walk.ok).toBe(true);
  expect(strayWrites(memory, before)).toBe(0);

  // The host grows its memory (the buffer changes: detached, or a new SharedArrayBuffer).
  const oldBuffer = memory.buffer;
  memory.grow(64);
  expect(memory.buffer).not.toBe(oldBuffer);
  expect(memory.buffer.byteLength).toBe(before + 64 * 65536);

  // Everything still works, through fresh views.
  expect(sim.dma.read({ rid: RID, addr: IOVA }, 8192).data).toEqual(hostData);
  const after = pattern(4096, 13);
  expect(sim.dma.write({ rid: RID, addr: IOVA + 0x1000n }, after).ok).toBe(true);
  expect(new Uint8Array(memory.buffer, LAYOUT.guestLinear + BUF + 0x1000, 4096)).toEqual(after);
  dom.map(IOVA + 0x10_0000n, HBM_PA, 0x2000n, api.Prot.RW);
  expect(sim.dma.read({ rid: RID, addr: IOVA + 0x10_1000n }, 3000).data).toEqual(hbmData);
  expect(sim.iommu.translate(RID, IOVA + 0x123n)).toMatchObject({ ok: true, pa: RAM_PA + BigInt(BUF) + 0x123n });
  // New guest RAM in the grown part of memory.
  const grownLinear = before;
  sim.memory.addRegion({ base: 0x9000_0000n, size: 0x10000n, kind: 'ram', linear: grownLinear });
  new Uint8Array(memory.buffer).set(hostData.subarray(0, 4096), grownLinear + 0x8000);
  expect(sim.memory.read(0x9000_8000n, 4096)).toEqual(hostData.subarray(0, 4096));
  expect(strayWrites(memory, before)).toBe(0);
}

/** What init and direct regions refuse. */
export async function embedValidation(api: EmbedApi): Promise<void> {
  const memory = new WebAssembly.Memory({ initial: LAYOUT.pages, maximum: 1024 });
  const code = async (o: { base: number; bytes: number }) =>
    api.createEmbeddedCore({ memory, ...o }).then(() => 'OK', (e: { code: string }) => e.code);
  expect(await code({ base: 4 * MiB + 8, bytes: 4 * MiB })).toBe('EINVAL'); // unaligned
  expect(await code({ base: 0, bytes: 4 * MiB })).toBe('EINVAL'); // 0 is not a window
  expect(await code({ base: 4 * MiB, bytes: 1 * MiB })).toBe('EINVAL'); // no room for a 1 MiB arena
  expect(await code({ base: 8 * MiB, bytes: 4 * MiB })).toBe('ENOMEM'); // past the end of memory
  const fixed = await api.fixedBytes();
  expect(await code({ base: 4 * MiB, bytes: fixed + MiB })).toBe('OK'); // the smallest window
  expect(await code({ base: 4 * MiB, bytes: fixed + MiB - 4096 })).toBe('EINVAL');

  const sim = await api.createEmbeddedSimulator({ memory, base: LAYOUT.base, bytes: LAYOUT.bytes });
  const add = (linear: number, size = 0x10000n) => {
    try { sim.memory.addRegion({ base: 0x8000_0000n, size, kind: 'ram', linear }); return 'OK'; } catch (e) { return (e as { code: string }).code; }
  };
  expect(add(LAYOUT.base + 0x10000)).toBe('EINVAL'); // inside the core's window
  expect(add(LAYOUT.base - 0x8000)).toBe('EINVAL'); // overlapping its start
  expect(add(LAYOUT.pages * 65536 - 0x8000)).toBe('EINVAL'); // past the end of memory
  expect(add(0x800)).toBe('EINVAL'); // unaligned
  expect(add(0x10000, 0x4000_0000n)).toBe('EINVAL'); // 1 GiB of linear memory the host has not got
  expect(add(0x10000)).toBe('OK');
}
