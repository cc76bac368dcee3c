/**
 * The DMA engine, dmatest-style: source, destination and the bytes around the destination are
 * all checked after every transfer; transfers cross 4K and 2M boundaries; faults stop a transfer
 * with the bytes before them done and the bytes after them untouched.
 */
import { describe, expect, it } from 'vitest';
import { Prot } from '../../src/index.js';
import { HBM_BASE, RAM_BASE, makeSim, pattern } from '../helpers/sim.js';
import { RID, expectErrno, rig } from './helpers/setup.js';

const K4 = 4096n;
const M2 = 2n << 20n;

describe('DMA copy (dmatest patterns)', () => {
  it('copies through 4K mappings of scattered frames; source, destination and guard bytes checked', async () => {
    const { sim, dom } = await rig('vtd-ss');
    // 8 source pages and 8 destination pages, every second frame, so nothing is contiguous.
    const src: bigint[] = [];
    const dst: bigint[] = [];
    for (let i = 0; i < 8; i++) {
      src.push(sim.memory.allocFrames(1)); sim.memory.allocFrames(1);
      dst.push(sim.memory.allocFrames(1)); sim.memory.allocFrames(1);
    }
    const srcData = pattern(8 * 4096, 7);
    const dstData = pattern(8 * 4096, 99);
    for (let i = 0; i < 8; i++) {
      dom.map(0x10_0000n + BigInt(i) * K4, src[i]!, K4, Prot.READ);
      dom.map(0x20_0000n + BigInt(i) * K4, dst[i]!, K4, Prot.WRITE);
      sim.memory.write(src[i]!, srcData.subarray(i * 4096, (i + 1) * 4096));
      sim.memory.write(dst[i]!, dstData.subarray(i * 4096, (i + 1) * 4096));
    }
    // Odd offsets and lengths that straddle page boundaries on both sides.
    for (const [so, dOff, len] of [[1, 4095, 5000], [4093, 3, 12289], [0, 0, 32768], [777, 8191, 1]] as const) {
      for (let i = 0; i < 8; i++) sim.memory.write(dst[i]!, dstData.subarray(i * 4096, (i + 1) * 4096));
      const r = sim.dma.copy({ rid: RID, addr: 0x10_0000n + BigInt(so) }, { rid: RID, addr: 0x20_0000n + BigInt(dOff) }, BigInt(Math.min(len, 32768 - Math.max(so, dOff))));
      const n = Math.min(len, 32768 - Math.max(so, dOff));
      expect(r).toEqual({ ok: true, code: 'OK', bytesDone: BigInt(n) });
      const got = new Uint8Array(32768);
      for (let i = 0; i < 8; i++) got.set(sim.memory.read(dst[i]!, 4096), i * 4096);
      const want = dstData.slice();
      want.set(srcData.subarray(so, so + n), dOff);
      expect(got).toEqual(want);
      const srcNow = new Uint8Array(32768);
      for (let i = 0; i < 8; i++) srcNow.set(sim.memory.read(src[i]!, 4096), i * 4096);
      expect(srcNow).toEqual(srcData);
    }
  });

  it('copies in physical runs over 4K leaves; a discontinuity and a hole stop the run where they are', async () => {
    const { sim, unit, dom } = await rig('vtd-ss');
    const f = sim.memory.allocFrames(4);
    sim.memory.allocFrames(1);
    const g = sim.memory.allocFrames(2);
    const pages = [f, f + K4, f + 2n * K4, f + 3n * K4, g, g + K4];
    pages.forEach((pa, i) => dom.map(0x100_0000n + BigInt(i) * K4, pa, K4, Prot.READ)); // page 6: a hole
    const data = pattern(6 * 4096, 21);
    pages.forEach((pa, i) => sim.memory.write(pa, data.subarray(i * 4096, (i + 1) * 4096)));
    const dst = RAM_BASE + (512n << 20n);
    for (const round of [1, 2]) {
      const before = unit.stats();
      const r = sim.dma.copy({ rid: RID, addr: 0x100_0000n }, { rid: 'phys', addr: dst }, 7n * K4);
      expect(r).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 6n * K4, fault: { side: 'src', iova: 0x100_6000n } });
      expect(sim.memory.read(dst, 6 * 4096)).toEqual(data);
      const after = unit.stats();
      // Every page is translated once per copy, run or not: the counters are page-by-page ones.
      expect(after.translations - before.translations).toBe(7n);
      expect(after.hits - before.hits).toBe(round === 1 ? 0n : 6n);
      expect(after.misses - before.misses).toBe(round === 1 ? 7n : 1n);
    }
  });

  it('bulk page runs: holes in the source read as zeros, destination backing in any order', async () => {
    const sim = await makeSim();
    const src = HBM_BASE + (1n << 30n);
    const dst = HBM_BASE + (2n << 30n);
    const N = 64;
    const data = pattern(N * 4096, 31);
    // Source written in order except pages 9 and 30 (never written: zeros); the destination's
    // pages 40..47 backed first and in reverse, so its chunks are not in order there.
    for (let i = 0; i < N; i++) if (i !== 9 && i !== 30) sim.memory.write(src + BigInt(i) * K4, data.subarray(i * 4096, (i + 1) * 4096));
    for (let i = 47; i >= 40; i--) sim.memory.write(dst + BigInt(i) * K4, new Uint8Array([0xee]));
    const r = sim.dma.copy({ rid: 'phys', addr: src }, { rid: 'phys', addr: dst }, BigInt(N) * K4);
    expect(r).toEqual({ ok: true, code: 'OK', bytesDone: BigInt(N) * K4 });
    const want = data.slice();
    want.fill(0, 9 * 4096, 10 * 4096);
    want.fill(0, 30 * 4096, 31 * 4096);
    expect(sim.memory.read(dst, N * 4096)).toEqual(want);
  });

  it('copies across 2M leaves from RAM into device memory and back', async () => {
    const { sim, dom } = await rig('arm-lpae-s1');
    const ram = sim.memory.allocFrames(1024, 512); // 4 MiB, 2M-aligned
    dom.map(0x4000_0000n, ram, 2n * M2, Prot.RW);
    dom.map(0x8000_0000n, HBM_BASE + 0x1000_0000n, 2n * M2, Prot.RW);
    expect(dom.walk(0x4000_0000n).pageSize).toBe(M2);
    const data = pattern(1 << 20, 3);
    sim.memory.write(ram + M2 - 0x8_0000n, data); // 512K before and 512K after the 2M boundary
    const r = sim.dma.copy({ rid: RID, addr: 0x4000_0000n + M2 - 0x8_0000n }, { rid: RID, addr: 0x8000_0000n + M2 - 0x8_0000n }, BigInt(data.length));
    expect(r.ok).toBe(true);
    expect(sim.memory.read(HBM_BASE + 0x1000_0000n + M2 - 0x8_0000n, data.length)).toEqual(data);
    expect(sim.memory.read(HBM_BASE + 0x1000_0000n + M2 - 0x8_0001n, 1)[0]).toBe(0); // guard: never written
    const s = sim.dma.stats();
    expect(s.bytesFromRam).toBe(BigInt(data.length));
    expect(s.bytesToDevice).toBe(BigInt(data.length));
    expect(s.bytesToRam).toBe(0n);
  });

  it('a fault mid-transfer stops it: bytes before done, bytes after untouched, fault reported', async () => {
    const { sim, unit, dom } = await rig('vtd-ss');
    const src = sim.memory.allocFrames(4);
    const dst = sim.memory.allocFrames(4);
    sim.memory.write(src, pattern(16384, 5));
    sim.memory.write(dst, new Uint8Array(16384).fill(0xee));
    dom.map(0x10_0000n, src, 4n * K4, Prot.READ);
    dom.map(0x20_0000n, dst, 3n * K4, Prot.WRITE); // the 4th destination page is not mapped
    const r = sim.dma.copy({ rid: RID, addr: 0x10_0000n + 100n }, { rid: RID, addr: 0x20_0000n + 100n }, 16000n);
    expect(r).toEqual({
      ok: false, code: 'EFAULT', bytesDone: 3n * 4096n - 100n,
      fault: { side: 'dst', iova: 0x20_3000n, reason: 'translation', familyCode: 5 },
    });
    const got = sim.memory.read(dst, 16384);
    const want = new Uint8Array(16384).fill(0xee);
    want.set(pattern(16384, 5).subarray(100, 12288), 100);
    expect(got).toEqual(want);
    expect(unit.faults()).toMatchObject([{ rid: RID, iova: 0x20_3000n, access: 'write', reason: 'translation', code: 5 }]);
    // A read fault on the source side, SMMU-style codes elsewhere are covered in iommu.test.ts.
    const r2 = sim.dma.copy({ rid: RID, addr: 0x10_4000n }, { rid: RID, addr: 0x20_0000n }, 16n);
    expect(r2.fault).toMatchObject({ side: 'src', iova: 0x10_4000n, familyCode: 6 });
    expect(sim.dma.stats().faults).toBe(2n);
  });

  it('fill, read and write through a domain; never-written memory reads as zeros', async () => {
    const { sim, dom } = await rig('vtd-ss');
    dom.map(0x1_0000_0000n, HBM_BASE + 0x10_0000_0000n, M2, Prot.RW);
    const f = sim.dma.fill({ rid: RID, addr: 0x1_0000_0000n + 4000n }, 0xab, 200n);
    expect(f.bytesDone).toBe(200n);
    const r = sim.dma.read({ rid: RID, addr: 0x1_0000_0000n + 3990n }, 220);
    expect(r.ok).toBe(true);
    expect([...r.data.subarray(0, 10)]).toEqual(Array(10).fill(0));
    expect([...r.data.subarray(10, 210)]).toEqual(Array(200).fill(0xab));
    expect([...r.data.subarray(210)]).toEqual(Array(10).fill(0));
    const big = pattern(2 << 20, 11); // twice the 1 MiB staging area: the bindings cross in two batches
    const w = sim.dma.write({ rid: RID, addr: 0x1_0000_0000n }, big.subarray(0, 2 << 20));
    expect(w).toEqual({ ok: true, code: 'OK', bytesDone: 2n << 20n });
    expect(sim.memory.read(HBM_BASE + 0x10_0000_0000n, 2 << 20)).toEqual(big.subarray(0, 2 << 20));
    // A write running off the end of the mapping stops at the end, with the bytes before it done.
    const w2 = sim.dma.write({ rid: RID, addr: 0x1_0000_0000n + M2 - 10n }, new Uint8Array(20).fill(1));
    expect(w2).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 10n });
  });

  it('the source cache never hides data written after a read of the same 4 MiB', async () => {
    const sim = await makeSim();
    // Read (phys, direct) from never-written HBM, then write it, then read again.
    expect(sim.dma.read({ rid: 'phys', addr: HBM_BASE + 0x100_0000n }, 16).data).toEqual(new Uint8Array(16));
    sim.dma.write({ rid: 'phys', addr: HBM_BASE + 0x100_0000n }, new Uint8Array(16).fill(7));
    expect(sim.dma.read({ rid: 'phys', addr: HBM_BASE + 0x100_0000n }, 16).data).toEqual(new Uint8Array(16).fill(7));
    sim.dma.copy({ rid: 'phys', addr: HBM_BASE + 0x200_0000n }, { rid: 'phys', addr: RAM_BASE + 0x100_0000n }, 16n);
    sim.dma.write({ rid: 'phys', addr: HBM_BASE + 0x200_0000n }, new Uint8Array(16).fill(9));
    sim.dma.copy({ rid: 'phys', addr: HBM_BASE + 0x200_0000n }, { rid: 'phys', addr: RAM_BASE + 0x100_0000n }, 16n);
    expect(sim.memory.read(RAM_BASE + 0x100_0000n, 16)).toEqual(new Uint8Array(16).fill(9));
  });

  it('an address no region decodes stops the transfer with EIO; bad arguments change nothing', async () => {
    const sim = await makeSim();
    const r = sim.dma.write({ rid: 'phys', addr: RAM_BASE + (1n << 30n) - 8n }, new Uint8Array(16).fill(3));
    expect(r).toMatchObject({ ok: false, code: 'EIO', bytesDone: 8n });
    expectErrno(() => sim.dma.copy({ rid: 'phys', addr: -1n }, { rid: 'phys', addr: 0n }, 1n), 'EINVAL');
    expectErrno(() => sim.dma.copy({ rid: 'phys', addr: 0n }, { rid: 'phys', addr: 1n << 64n }, 1n), 'EINVAL');
    expectErrno(() => sim.dma.copy({ rid: 'phys', addr: (1n << 64n) - 2n }, { rid: 'phys', addr: 0n }, 4n), 'EINVAL');
    expectErrno(() => sim.dma.fill({ rid: 'zz:00.0', addr: 0n }, 1, 1n), 'EINVAL');
    expectErrno(() => sim.dma.fill({ rid: 'phys', addr: 0n }, 256, 1n), 'EINVAL');
    expect(sim.dma.stats().ops).toBe(1n);
  });

  it('running out of arena is ENOMEM, not a trap; data written before stays', async () => {
    const { createSimulator } = await import('../../src/index.js');
    const sim = await createSimulator({ arenaBytes: 1 << 20 }); // 256 chunks
    sim.memory.addRegion({ base: 0n, size: 1n << 30n, kind: 'ram' });
    const data = pattern(2 << 20, 1);
    const r = sim.dma.write({ rid: 'phys', addr: 0n }, data);
    expect(r.ok).toBe(false);
    expect(r.code).toBe('ENOMEM');
    const done = Number(r.bytesDone);
    expect(done).toBeGreaterThan(0);
    expect(sim.memory.read(0n, done)).toEqual(data.subarray(0, done));
    expect(sim.core.trapped).toBe(false);
    // Still usable: reads work, and a write into an already backed page works.
    sim.dma.write({ rid: 'phys', addr: 0n }, new Uint8Array([42]));
    expect(sim.memory.read(0n, 1)[0]).toBe(42);
  });
});
