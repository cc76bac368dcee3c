/**
 * The core's fast paths give what the one-at-a-time paths give: the batch map (smallest pages
 * written in place per leaf-table page) leaves the same tables as one iommu_map per descriptor;
 * batch translation (IOTLB probe with the geometry in hand, page-walk-cached walks) the same
 * outputs, statuses, counters and fault records as translate(); the page-walk cache sees a
 * guest's rewrite of a table entry at once; a DMA copy that walks leaf by leaf counts every
 * page once.
 */
import { describe, expect, it } from 'vitest';
import { ABI } from '../../bindings/core.js';
import { Prot, type PgtableFormat, type Simulator, type IommuDomain } from '../../src/index.js';
import { RAM_BASE, HBM_BASE, pattern } from '../helpers/sim.js';
import { rig, RID, expectSameCounters } from './helpers/setup.js';

const K4 = 4096n;
const M2 = 2n << 20n;
const FORMATS: PgtableFormat[] = ['vtd-ss', 'arm-lpae-s1', 'arm-lpae-s2', 'amd-v1', 'x86-64', 'riscv'];

let seed = 7;
const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };

/** The core's batch map of (iova, pa, size) descriptors; returns its status. */
function mapBatch(sim: Simulator, dom: IommuDomain, d: [bigint, bigint, bigint][], prot: number): number {
  const w = ABI.MAPDESC_STRIDE >> 3;
  const v = sim.core.views.u64;
  const at = sim.core.layout.staging >> 3;
  d.forEach(([iova, pa, size], i) => { v[at + i * w] = iova; v[at + i * w + 1] = pa; v[at + i * w + 2] = size; });
  return sim.core.exports.mapBatch(dom.id, d.length, prot);
}

/** Runs of 4K pages crossing leaf tables, with a 2M page and single pages between them. */
function descriptors(): [bigint, bigint, bigint][] {
  const d: [bigint, bigint, bigint][] = [];
  const base = 0x40_0000_0000n;
  for (let i = 0n; i < 1100n; i++) d.push([base + M2 - 300n * K4 + i * K4, RAM_BASE + BigInt(rnd() % 200000) * K4, K4]);
  d.push([base + 8n * M2, HBM_BASE, M2]);
  for (let i = 0n; i < 40n; i++) d.push([base + 9n * M2 + i * 3n * K4, HBM_BASE + M2 + i * K4, K4]);
  return d;
}

describe.each(FORMATS)('%s', (format) => {
  it('a batch map leaves the same tables, bytes and accounting as one map per descriptor', async () => {
    const a = await rig(format);
    const b = await rig(format);
    const d = descriptors();
    expect(mapBatch(a.sim, a.dom, d, Prot.RW)).toBe(0);
    for (const [iova, pa, size] of d) b.dom.map(iova, pa, size, Prot.RW);
    expect(a.dom.tableFrames).toBe(b.dom.tableFrames);
    expect(a.dom.mappedBytes).toBe(b.dom.mappedBytes);
    // Tables come from the same frames in the same order: their bytes are equal.
    const bytes = (a.dom.tableFrames + 8) * 4096;
    expect(a.sim.memory.read(a.dom.root, bytes)).toEqual(b.sim.memory.read(b.dom.root, bytes));
    for (const [iova] of d.filter((_, i) => i % 37 === 0)) expect(a.dom.walk(iova)).toEqual(b.dom.walk(iova));
  });

  it('a batch map that fails part way leaves nothing mapped and no table made', async () => {
    const { sim, dom } = await rig(format);
    const tables = dom.tableFrames;
    const d = descriptors();
    d.splice(700, 0, [0x7f_0000_0000n, RAM_BASE, K4 + 1n]); // EINVAL at 700, after 7 leaf tables' worth
    expect(mapBatch(sim, dom, d, Prot.RW)).toBe(-22);
    expect(sim.core.views.u64[(sim.core.layout.result + ABI.RES_VALUE) >> 3]).toBe(700n);
    expect(dom.mappedBytes).toBe(0n);
    expect(dom.tableFrames).toBe(tables);
    for (const [iova] of d.filter((_, i) => i % 50 === 0)) expect(dom.walk(iova).ok).toBe(false);
  });

  it('batch translation gives translate()\'s outputs, statuses, counters and fault records', async () => {
    const mk = () => rig(format, { tlbSets: 16, tlbWays: 2 });
    const a = await mk();
    const b = await mk();
    const base = 0x40_0000_0000n;
    for (const { dom } of [a, b]) {
      for (let i = 0n; i < 600n; i++) dom.map(base + i * K4, RAM_BASE + ((i * 7919n) % 4096n) * K4, K4, i % 5n === 0n ? Prot.READ : Prot.RW);
      dom.map(base + 4n * M2, HBM_BASE, M2, Prot.RW);
    }
    const iovas: bigint[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = rnd() % 10;
      iovas.push(r < 7 ? base + BigInt(rnd() % 700) * K4 + BigInt(rnd() & 0xfff) // 100 pages unmapped
        : r < 9 ? base + 4n * M2 + BigInt(rnd() % 0x200000) : 1n << 50n); // out of range
    }
    for (const access of ['write', 'read'] as const) {
      for (let round = 0; round < 2; round++) {
        const batch = a.sim.iommu.translateBatch(RID, BigUint64Array.from(iovas), access);
        let faults = 0;
        iovas.forEach((iova, i) => {
          const r = b.sim.iommu.translate(RID, iova, access);
          expect(batch.status[i] === 0).toBe(r.ok);
          expect(batch.out[i]).toBe(r.ok ? r.pa : 0n);
          if (!r.ok) faults++;
        });
        expect(batch.faults).toBe(faults);
        expectSameCounters(a, b);
        expect(a.unit.faults().map((f) => [f.iova, f.code])).toEqual(b.unit.faults().map((f) => [f.iova, f.code]));
      }
    }
    expect(a.unit.stats().walks).toBeGreaterThan(1000n);
  });
});

describe.each([16384, 65536])('arm-lpae-s1, %i-byte granule', (granule) => {
  it('a batch map of smallest pages leaves the same tables as one map per descriptor', async () => {
    const a = await rig('arm-lpae-s1', { granule });
    const b = await rig('arm-lpae-s1', { granule });
    const g = BigInt(granule);
    const d: [bigint, bigint, bigint][] = [];
    // 1500 pages: past a leaf-table page (512 entries) and, at 16K, a whole leaf table (2048).
    for (let i = 0n; i < 1500n; i++) d.push([0x40_0000_0000n + i * g, RAM_BASE + BigInt(rnd() % 2000) * g, g]);
    expect(mapBatch(a.sim, a.dom, d, Prot.RW)).toBe(0);
    for (const [iova, pa, size] of d) b.dom.map(iova, pa, size, Prot.RW);
    expect(a.dom.tableFrames).toBe(b.dom.tableFrames);
    expect(a.dom.mappedBytes).toBe(b.dom.mappedBytes);
    const bytes = (a.dom.tableFrames + 16) * 4096;
    expect(a.sim.memory.read(a.dom.root, bytes)).toEqual(b.sim.memory.read(b.dom.root, bytes));
    const iovas = BigUint64Array.from(d.filter((_, i) => i % 7 === 0).map(([iova]) => iova + 123n));
    expect(a.sim.iommu.translateBatch(RID, iovas, 'read').out).toEqual(BigUint64Array.from(iovas, (v) => (b.sim.iommu.translate(RID, v, 'read') as { pa: bigint }).pa));
  });
});

describe('batch map under the older intel driver (an existing entry is kept)', () => {
  it('pages inside a kept 2M leaf are skipped and the pages after them still land in their own table', async () => {
    const a = await rig('vtd-ss', { kernel: '6.12' });
    const b = await rig('vtd-ss', { kernel: '6.12' });
    const base = 0x40_0000_0000n;
    const d: [bigint, bigint, bigint][] = [];
    for (let i = 0n; i < 600n; i++) d.push([base + M2 - 4n * K4 + i * K4, RAM_BASE + BigInt(rnd() % 100000) * K4, K4]);
    for (const r of [a, b]) r.dom.map(base + M2, HBM_BASE, M2, Prot.READ); // 512 of the pages fall in it
    expect(mapBatch(a.sim, a.dom, d, Prot.RW)).toBe(0);
    for (const [iova, pa, size] of d) b.dom.map(iova, pa, size, Prot.RW);
    expect(a.dom.mappedBytes).toBe(b.dom.mappedBytes);
    expect(a.dom.tableFrames).toBe(b.dom.tableFrames);
    const bytes = (a.dom.tableFrames + 8) * 4096;
    expect(a.sim.memory.read(a.dom.root, bytes)).toEqual(b.sim.memory.read(b.dom.root, bytes));
    for (const [iova] of d) expect(a.dom.walk(iova)).toEqual(b.dom.walk(iova));
  });
});

describe('page-walk cache', () => {
  it('a guest\'s rewrite of a table entry is seen by the next walk', async () => {
    const { sim, unit, dom } = await rig('vtd-ss');
    const x = 0x10_0000_0000n;
    const y = x + 64n * M2; // same upper tables, another leaf table
    dom.map(x, RAM_BASE + 0x100000n, K4, Prot.RW);
    dom.map(y, RAM_BASE + 0x200000n, K4, Prot.RW);
    expect(sim.iommu.translateBatch(RID, BigUint64Array.of(x, y, x), 'read').out).toEqual(BigUint64Array.of(RAM_BASE + 0x100000n, RAM_BASE + 0x200000n, RAM_BASE + 0x100000n));
    // Point x's level-3 entry (the one above its leaf table) at y's leaf table.
    const wx = dom.walk(x).levels;
    const wy = dom.walk(y).levels;
    const parent = wx[wx.length - 2]!;
    const slot = parent.table + BigInt(parent.index) * 8n;
    const entry = new Uint8Array(new BigUint64Array([wy[wy.length - 2]!.entry]).buffer);
    sim.memory.write(slot, entry);
    unit.invalidateAll();
    expect(sim.iommu.translateBatch(RID, BigUint64Array.of(x), 'read').out[0]).toBe(RAM_BASE + 0x200000n);
    // And cleared: a translation fault, not the cached path.
    sim.memory.write(slot, new Uint8Array(8));
    unit.invalidateAll();
    expect(sim.iommu.translateBatch(RID, BigUint64Array.of(x), 'read').faults).toBe(1);
  });
});

describe('DMA runs that walk leaf by leaf', () => {
  it('a copy larger than the IOTLB moves every byte and counts every page once', async () => {
    const { sim, unit, dom } = await rig('vtd-ss', { tlbSets: 2, tlbWays: 2 });
    const pages = 64n;
    const a = sim.memory.allocFrames(Number(pages));
    const b = sim.memory.allocFrames(Number(pages));
    const data = pattern(Number(pages) * 4096, 5);
    sim.memory.write(a, data);
    const src = 0x10_0000_0000n;
    const dst = 0x20_0000_0000n;
    for (let i = 0n; i < pages; i++) {
      dom.map(src + i * K4, a + i * K4, K4, Prot.READ);
      // The destination's physical pages in two halves swapped: the run breaks once.
      dom.map(dst + i * K4, b + ((i + pages / 2n) % pages) * K4, K4, Prot.RW);
    }
    const before = unit.stats();
    const r = sim.dma.copy({ rid: RID, addr: src + 100n }, { rid: RID, addr: dst + 100n }, pages * K4 - 200n);
    expect(r.ok).toBe(true);
    const after = unit.stats();
    expect(after.translations - before.translations).toBe(2n * pages);
    expect(after.misses - before.misses).toBe(2n * pages);
    expect(after.walks - before.walks).toBe(2n * pages);
    const got = new Uint8Array(Number(pages) * 4096);
    for (let i = 0n; i < pages; i++) got.set(sim.memory.read(b + ((i + pages / 2n) % pages) * K4, 4096), Number(i) * 4096);
    expect(got.subarray(100, -100)).toEqual(data.subarray(100, -100));
    // A fault part way: the pages before it are moved and counted once, the faulting one once.
    dom.unmap(src + 40n * K4, K4);
    const s0 = unit.stats();
    const f = sim.dma.copy({ rid: RID, addr: src }, { rid: RID, addr: dst }, pages * K4);
    expect(f).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 40n * K4, fault: { side: 'src', iova: src + 40n * K4 } });
    const s1 = unit.stats();
    expect(s1.translations - s0.translations).toBe(2n * 40n + 1n);
  });

  it('between two domains (the fast path switching sides) the same: every byte, every page counted once', async () => {
    const { sim, unit, dom } = await rig('vtd-ss', { tlbSets: 2, tlbWays: 2 });
    const RID2 = 0x0200;
    const dom2 = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
    sim.iommu.attach(RID2, dom2);
    const pages = 48n;
    const a = sim.memory.allocFrames(Number(pages));
    const b = sim.memory.allocFrames(Number(pages));
    const data = pattern(Number(pages) * 4096, 9);
    sim.memory.write(a, data);
    for (let i = 0n; i < pages; i++) {
      dom.map(0x10_0000_0000n + i * K4, a + i * K4, K4, Prot.READ);
      dom2.map(0x30_0000_0000n + i * K4, b + i * K4, K4, Prot.RW);
    }
    for (const round of [1, 2]) {
      const before = unit.stats();
      const r = sim.dma.copy({ rid: RID, addr: 0x10_0000_0000n }, { rid: RID2, addr: 0x30_0000_0000n }, pages * K4);
      expect([round, r.ok]).toEqual([round, true]);
      const after = unit.stats();
      expect(after.translations - before.translations).toBe(2n * pages);
      expect(after.walks - before.walks).toBe(2n * pages);
      expect(sim.memory.read(b, Number(pages) * 4096)).toEqual(data);
    }
  });
});
