/**
 * The DMA engine, dmatest-style: source, destination and the bytes around the destination are
 * all checked after every transfer; transfers cross 4K and 2M boundaries; faults stop a transfer
 * with the bytes before them done and the bytes after them untouched.
 */
import { describe, expect, it } from 'vitest';
import { Prot, SimError, copyDmaRuns, pushDmaRun, type DmaRun } from '../../src/index.js';
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
    // The device side of a host-buffer transfer is the destination of a write or fill, the source of a read.
    expect(w2.fault).toMatchObject({ side: 'dst', iova: 0x1_0000_0000n + M2 });
    expect(sim.dma.fill({ rid: RID, addr: 0x9_0000_0000n }, 1, 8n).fault).toMatchObject({ side: 'dst', iova: 0x9_0000_0000n });
    expect(sim.dma.read({ rid: RID, addr: 0x9_0000_0000n }, 8).fault).toMatchObject({ side: 'src', iova: 0x9_0000_0000n });
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

describe('vectored DMA copy (one core call per list of descriptors)', () => {
  const RID2 = 0x0200; // 0000:02:00.0, in a domain of its own

  async function twoSides() {
    const r = await rig('vtd-ss');
    const dom2 = r.unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
    r.sim.iommu.attach(RID2, dom2);
    return { ...r, dom2 };
  }

  it('translates the source through one requester and the destination through another, descriptor by descriptor', async () => {
    const { sim, dom, dom2 } = await twoSides();
    // Source: 4 scattered RAM pages read by RID; destination: 4 scattered pages written by RID2.
    const src: bigint[] = [];
    const dst: bigint[] = [];
    for (let i = 0; i < 4; i++) {
      src.push(sim.memory.allocFrames(1)); sim.memory.allocFrames(1);
      dst.push(sim.memory.allocFrames(1)); sim.memory.allocFrames(1);
      dom.map(0x10_0000n + BigInt(i) * K4, src[i]!, K4, Prot.READ);
      dom2.map(0x70_0000n + BigInt(i) * K4, dst[i]!, K4, Prot.WRITE);
    }
    const data = pattern(4 * 4096, 31);
    src.forEach((pa, i) => sim.memory.write(pa, data.subarray(i * 4096, (i + 1) * 4096)));
    const phys = RAM_BASE + (600n << 20n);
    sim.memory.write(phys, pattern(100, 77));
    const before = sim.dma.stats();
    const r = sim.dma.copyv([
      { src: { rid: RID, addr: 0x10_0000n + 10n }, dst: { rid: RID2, addr: 0x70_0000n + 4000n }, length: 5000n },
      { src: { rid: RID, addr: 0x10_0000n + 5010n }, dst: { rid: RID2, addr: 0x70_0000n + 9000n }, length: 7000n },
      // The physical pseudo-requester on the source side: untranslated.
      { src: { rid: 'phys', addr: phys }, dst: { rid: RID2, addr: 0x70_0000n }, length: 100n },
    ]);
    expect(r).toEqual({ ok: true, code: 'OK', bytesDone: 12100n, index: 3 });
    const got = new Uint8Array(4 * 4096);
    dst.forEach((pa, i) => got.set(sim.memory.read(pa, 4096), i * 4096));
    const want = new Uint8Array(4 * 4096);
    want.set(pattern(100, 77), 0);
    want.set(data.subarray(10, 5010), 4000);
    want.set(data.subarray(5010, 12010), 9000);
    expect(got).toEqual(want);
    const after = sim.dma.stats();
    expect(after.ops - before.ops).toBe(1n);
    expect(after.vectors - before.vectors).toBe(1n);
    expect(after.descriptors - before.descriptors).toBe(3n);
    expect(after.bytesToRam - before.bytesToRam).toBe(12100n);
  });

  it('a fault on either side stops the list there, names the side and the descriptor; bytes before stay done', async () => {
    const { sim, unit, dom, dom2 } = await twoSides();
    const src = sim.memory.allocFrames(4);
    const dst = sim.memory.allocFrames(4);
    sim.memory.write(src, pattern(16384, 5));
    sim.memory.write(dst, new Uint8Array(16384).fill(0xee));
    dom.map(0x10_0000n, src, 3n * K4, Prot.READ); // the 4th source page is not mapped
    dom2.map(0x20_0000n, dst, 2n * K4, Prot.WRITE); // the 3rd destination page is not mapped
    // Descriptor 1 runs into the destination hole after 96 bytes.
    const r = sim.dma.copyv([
      { src: { rid: RID, addr: 0x10_0000n }, dst: { rid: RID2, addr: 0x20_0000n }, length: 4096n },
      { src: { rid: RID, addr: 0x10_1000n }, dst: { rid: RID2, addr: 0x20_1000n + 4000n }, length: 200n },
      { src: { rid: RID, addr: 0x10_0000n }, dst: { rid: RID2, addr: 0x20_0000n }, length: 1n },
    ]);
    expect(r).toEqual({
      ok: false, code: 'EFAULT', bytesDone: 4096n + 96n, index: 1,
      fault: { side: 'dst', iova: 0x20_2000n, reason: 'translation', familyCode: 5 },
    });
    const want = new Uint8Array(16384).fill(0xee);
    want.set(pattern(16384, 5).subarray(0, 4096), 0);
    want.set(pattern(16384, 5).subarray(4096, 4096 + 96), 4096 + 4000);
    expect(sim.memory.read(dst, 16384)).toEqual(want);
    expect(unit.faults()).toMatchObject([{ rid: RID2, iova: 0x20_2000n, access: 'write', reason: 'translation' }]);
    // The source side: a read fault in descriptor 0 names 'src'; nothing moved.
    const r2 = sim.dma.copyv([{ src: { rid: RID, addr: 0x10_2000n + 4090n }, dst: { rid: RID2, addr: 0x20_0000n }, length: 10n }]);
    expect(r2).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 6n, index: 0, fault: { side: 'src', iova: 0x10_3000n, familyCode: 6 } });
    expect(unit.faults()).toMatchObject([{ rid: RID, iova: 0x10_3000n, access: 'read' }]);
  });

  it('a destination behind a switch route bypasses the IOMMU; an unmapped one still faults', async () => {
    const { sim, dom } = await twoSides();
    const src = sim.memory.allocFrames(2);
    sim.memory.write(src, pattern(8192, 9));
    dom.map(0x10_0000n, src, 2n * K4, Prot.READ);
    const bus = 0xe000_0000n;
    const cpu = HBM_BASE + 0x40_0000n;
    // RID2 reaches a peer's BAR by bus address: no IOVA for it exists in RID2's domain.
    sim.iommu.addP2pRoute(RID2, bus, 1n << 20n, cpu);
    const r = sim.dma.copyv([
      { src: { rid: RID, addr: 0x10_0000n }, dst: { rid: RID2, addr: bus + 0x100n }, length: 8192n },
    ]);
    expect(r).toEqual({ ok: true, code: 'OK', bytesDone: 8192n, index: 1 });
    expect(sim.memory.read(cpu + 0x100n, 8192)).toEqual(pattern(8192, 9));
    // The same requester one byte past its route goes to the IOMMU, which has nothing there.
    const r2 = sim.dma.copyv([{ src: { rid: RID, addr: 0x10_0000n }, dst: { rid: RID2, addr: bus + (1n << 20n) }, length: 4n }]);
    expect(r2).toMatchObject({ ok: false, code: 'EFAULT', index: 0, fault: { side: 'dst', iova: bus + (1n << 20n) } });
  });

  it('a bad descriptor is a SimError naming its field, and nothing is moved or counted', async () => {
    const { sim, dom } = await twoSides();
    const src = sim.memory.allocFrames(1);
    const dst = sim.memory.allocFrames(1);
    sim.memory.write(src, pattern(4096, 3));
    dom.map(0x10_0000n, src, K4, Prot.READ);
    const good = { src: { rid: RID, addr: 0x10_0000n }, dst: { rid: 'phys' as const, addr: dst }, length: 64n };
    const before = sim.dma.stats();
    const bad: [unknown[], string][] = [
      [[good, { ...good, dst: { rid: 'phys', addr: -1n } }], 'descs[1].dst.addr'],
      [[good, { ...good, src: { rid: 'zz:00.0', addr: 0n } }], 'descs[1].src.rid'],
      [[{ ...good, length: -5n }], 'descs[0].length'],
      [[good, good, { ...good, src: { rid: 'phys', addr: (1n << 64n) - 2n } }], 'descs[2]: src.addr + length wraps'],
      [[good, null], 'descs[1]'],
    ];
    for (const [descs, field] of bad) {
      let err: unknown;
      try { sim.dma.copyv(descs as never); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(SimError);
      expect((err as SimError).code).toBe('EINVAL');
      expect((err as Error).message).toContain(field);
    }
    expectErrno(() => sim.dma.copyv('x' as never), 'EINVAL');
    expectErrno(() => sim.dma.copyv(new Array(32769).fill(good)), 'EINVAL'); // more than the staging area holds
    expect(sim.memory.read(dst, 4096)).toEqual(new Uint8Array(4096));
    expect(sim.dma.stats()).toEqual(before);
    // An empty list is a transfer of nothing.
    expect(sim.dma.copyv([])).toEqual({ ok: true, code: 'OK', bytesDone: 0n, index: 0 });
    expect(sim.dma.copyv([good])).toEqual({ ok: true, code: 'OK', bytesDone: 64n, index: 1 });
    expect(sim.memory.read(dst, 64)).toEqual(pattern(4096, 3).subarray(0, 64));
  });

  it('the core checks every descriptor before moving a byte (a wrapping one is EINVAL with its index)', async () => {
    const sim = await makeSim();
    const src = RAM_BASE + 0x10_0000n;
    const dst = RAM_BASE + 0x20_0000n;
    sim.memory.write(src, pattern(64, 2));
    const { core } = sim;
    const put = (i: number, s: bigint, d: bigint, len: bigint) => {
      const at = core.layout.staging + i * 32;
      core.views.u32[at >> 2] = 0xffffffff; // RID_PHYS both sides
      core.views.u32[(at + 4) >> 2] = 0xffffffff;
      core.views.u64[(at + 8) >> 3] = s;
      core.views.u64[(at + 16) >> 3] = d;
      core.views.u64[(at + 24) >> 3] = len;
    };
    put(0, src, dst, 64n);
    put(1, (1n << 64n) - 8n, dst, 64n);
    expect(core.exports.dmaCopyV(2)).toBe(-22);
    expect(core.resultValue()).toBe(1n);
    expect(core.resultBytes()).toBe(0n);
    expect(sim.memory.read(dst, 64)).toEqual(new Uint8Array(64));
    put(0, src, dst, 64n); // the host read above used the staging area too
    put(1, src, dst + 64n, 64n);
    expect(core.exports.dmaCopyV(2)).toBe(0);
    expect(core.resultValue()).toBe(2n);
    expect(core.resultBytes()).toBe(128n);
    expect(sim.memory.read(dst, 128)).toEqual(new Uint8Array([...pattern(64, 2), ...pattern(64, 2)]));
  });

  it('driver kit: two run lists of different shapes pair into the descriptors of one vectored copy', async () => {
    const sim = await makeSim();
    const src = RAM_BASE + 0x10_0000n;
    const dst = RAM_BASE + 0x40_0000n;
    sim.memory.write(src, pattern(10000, 6));
    const s: DmaRun[] = [];
    pushDmaRun(s, 'phys', src, 3000n);
    pushDmaRun(s, 'phys', src + 3000n, 7000n); // continues the first: merged
    expect(s).toEqual([{ rid: 'phys', addr: src, length: 10000n }]);
    const d: DmaRun[] = [];
    pushDmaRun(d, 'phys', dst + 8192n, 4000n);
    pushDmaRun(d, 'phys', dst, 6000n);
    const before = sim.dma.stats();
    const r = copyDmaRuns(sim.dma, s, d);
    expect(r).toMatchObject({ ok: true, bytesDone: 10000n, index: 2 });
    expect(r.descriptors.map((x) => x.length)).toEqual([4000n, 6000n]);
    expect(sim.dma.stats().vectors - before.vectors).toBe(1n);
    expect(sim.memory.read(dst + 8192n, 4000)).toEqual(pattern(10000, 6).subarray(0, 4000));
    expect(sim.memory.read(dst, 6000)).toEqual(pattern(10000, 6).subarray(4000));
    expectErrno(() => copyDmaRuns(sim.dma, s, [{ rid: 'phys', addr: dst, length: 9999n }]), 'EINVAL');
    expect(sim.dma.stats().vectors - before.vectors).toBe(1n);
  });

  it('readInto fills a caller-supplied buffer (no fresh buffer per read)', async () => {
    const sim = await makeSim();
    sim.dma.write({ rid: 'phys', addr: RAM_BASE + 0x1000n }, pattern(300, 4));
    const out = new Uint8Array(300);
    expect(sim.dma.readInto({ rid: 'phys', addr: RAM_BASE + 0x1000n }, out)).toEqual({ ok: true, code: 'OK', bytesDone: 300n });
    expect(out).toEqual(pattern(300, 4));
  });
});
