import { describe, expect, it } from 'vitest';
import {
  DmaDataDirection, dmaBufFreeSgt, dmaBufPhysVecToSgt, importerDevice, SgTable, SimError,
  type DmaBuf, type DmaBufAttachment, type P2pSgTable, type PhysRange, type PhysVec,
} from '../../src/index.js';
import { gaudiBuf, type GaudiBuf } from './helpers/gaudi-buf.js';

// dma_buf_phys_vec_to_sgt takes the ranges as objects or as columns (PhysVec), and builds the
// linked table as columns: both inputs must give the same table, mappings and counters, and the
// table's entries must be what cutting each range at the segment size gives.
const K = 1024n;
const M = 1024n * K;
const BIDI = DmaDataDirection.BIDIRECTIONAL;

type Rig = GaudiBuf;
const rig = gaudiBuf;

const attach = (r: Rig, dev: string): DmaBufAttachment =>
  r.buf.dynamicAttach(importerDevice(r.m, dev), { allowPeer2Peer: true, moveNotify: () => {} });
const map = (r: Rig, att: DmaBufAttachment, ranges: readonly PhysRange[] | PhysVec): P2pSgTable =>
  dmaBufPhysVecToSgt(r.m, att, r.m.pci('gaudi0'), ranges, BIDI);

function vecOf(ranges: readonly PhysRange[]): PhysVec {
  const v: PhysVec = { phys: new BigUint64Array(ranges.length), length: new Float64Array(ranges.length) };
  ranges.forEach((x, i) => { v.phys[i] = x.phys; v.length[i] = Number(x.length); });
  return v;
}

let seed = 11;
const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };

/** Random ranges of the BAR's first 32 MiB (lengths in pages, or in bytes when `unaligned`). */
function randomRanges(cpu: bigint, n: number, unaligned = false): PhysRange[] {
  return Array.from({ length: n }, () => {
    const length = unaligned ? BigInt(1 + rnd(300_000)) : BigInt(1 + rnd(40)) * 4n * K;
    return { phys: cpu + BigInt(rnd(4096)) * 4n * K + (unaligned ? BigInt(rnd(4096)) : 0n), length };
  });
}

const rows = (t: SgTable) => t.dmaSegments().map((e) => [e.dmaAddress, e.length, e.page]);

/** The one-at-a-time reading of the table: each range cut at `seg`, in order. */
function cuts(ranges: readonly PhysRange[], seg: bigint): { phys: bigint; length: bigint }[] {
  const out: { phys: bigint; length: bigint }[] = [];
  for (const r of ranges) for (let o = 0n; o < r.length; o += seg) out.push({ phys: r.phys + o, length: r.length - o < seg ? r.length - o : seg });
  return out;
}

describe('dma_buf_phys_vec_to_sgt with columns (PhysVec) against the same ranges as objects', () => {
  it('THRU_HOST_BRIDGE: the same entries, translations and counters; every entry is its cut of a range', async () => {
    for (const seg of [64n * K, 1n * M]) {
      const a = await rig();
      const b = await rig();
      const ranges = randomRanges(a.bar.cpu, 300);
      for (const r of [a, b]) r.m.dmaDevice(r.m.pci('gpu0')).setMaxSegSize(Number(seg));
      const ta = map(a, attach(a, 'gpu0'), ranges);
      const tb = map(b, attach(b, 'gpu0'), vecOf(ranges));
      expect(tb.mapType).toBe('THRU_HOST_BRIDGE');
      expect(rows(tb)).toEqual(rows(ta));
      expect(tb.nents).toBe(ta.nents);
      expect(tb.origNents).toBe(0);
      expect(tb.isPageless()).toBe(true);
      expect(tb.totalLength()).toBe(ranges.reduce((s, x) => s + x.length, 0n));
      const dmaA = a.m.dmaDevice(a.m.pci('gpu0'));
      const dmaB = b.m.dmaDevice(b.m.pci('gpu0'));
      expect(dmaB.stats()).toEqual(dmaA.stats());
      const rid = b.m.rid(b.m.pci('gpu0'));
      const want = cuts(ranges, seg);
      expect(tb.nents).toBe(want.length);
      tb.dmaSegments().forEach((e, i) => {
        expect(BigInt(e.length)).toBe(want[i]!.length);
        expect(b.m.sim.iommu.translate(rid, e.dmaAddress, 'read')).toMatchObject({ ok: true, pa: want[i]!.phys });
        expect(b.m.sim.iommu.translate(rid, e.dmaAddress + BigInt(e.length) - 1n, 'read')).toMatchObject({ ok: true, pa: want[i]!.phys + want[i]!.length - 1n });
      });
      // The columns are the entries, without objects.
      const cols = tb.dmaColumns();
      expect([...cols.address]).toEqual(tb.entries.map((e) => e.dmaAddress));
      expect([...cols.length]).toEqual(tb.entries.map((e) => e.length));
      dmaBufFreeSgt(attach(a, 'gpu0'), ta, BIDI);
      dmaBufFreeSgt(attach(b, 'gpu0'), tb, BIDI);
      expect(dmaB.stats()).toEqual(dmaA.stats());
      expect(b.m.sim.iommu.translate(rid, tb.entries[0]!.dmaAddress, 'read').ok).toBe(false);
    }
  });

  it('unaligned ranges take the one-mapping-per-piece path, the same for both inputs', async () => {
    const a = await rig();
    const b = await rig();
    const ranges = randomRanges(a.bar.cpu, 20, true);
    const ta = map(a, attach(a, 'gpu0'), ranges);
    const tb = map(b, attach(b, 'gpu0'), vecOf(ranges));
    expect(rows(tb)).toEqual(rows(ta));
    expect(b.m.dmaDevice(b.m.pci('gpu0')).stats()).toEqual(a.m.dmaDevice(a.m.pci('gpu0')).stats());
    expect(b.m.dmaDevice(b.m.pci('gpu0')).stats().singles).toBe(ta.nents);
  });

  it('BUS_ADDR: bus addresses from columns, nothing mapped', async () => {
    const r = await rig();
    const ranges = randomRanges(r.bar.cpu, 50);
    const t = map(r, attach(r, 'nic0'), vecOf(ranges));
    expect(t.mapType).toBe('BUS_ADDR');
    const seg = BigInt(r.m.dmaDevice(r.m.pci('nic0')).maxSegmentSize);
    expect(t.dmaSegments().map((e) => [e.dmaAddress, BigInt(e.length)])).toEqual(cuts(ranges, seg).map((c) => [c.phys - r.bar.cpu + r.bar.bus, c.length]));
    expect(r.m.dmaDevice(r.m.pci('nic0')).stats().singles).toBe(0);
  });

  it('bad columns, or a range outside the BAR, are EINVAL with nothing mapped', async () => {
    const r = await rig();
    const att = attach(r, 'gpu0');
    const dma = r.m.dmaDevice(r.m.pci('gpu0'));
    const before = dma.stats();
    const one = (phys: bigint, length: number): PhysVec => ({ phys: BigUint64Array.of(r.bar.cpu, phys), length: Float64Array.of(4096, length) });
    const bar = r.m.pci('gaudi0').bar(0)!;
    for (const v of [
      one(r.bar.cpu, 0), one(r.bar.cpu, 1.5), one(r.bar.cpu, -4096), one(r.bar.cpu, 2 ** 53), one(bar.cpuAddress + bar.size - 4096n, 8192),
      { phys: new BigUint64Array(0), length: new Float64Array(0) },
    ]) {
      expect(() => map(r, att, v)).toThrowError(expect.objectContaining({ code: 'EINVAL' }));
    }
    expect(() => map(r, att, [{ phys: r.bar.cpu, length: 1n << 53n }])).toThrowError(SimError);
    expect(dma.stats()).toEqual(before);
  });

  it('DB-12: a table of columns is checked, and its entries are made on first use', () => {
    const address = BigUint64Array.of(0x1000n, 0x8000n);
    const table = new SgTable({ address, length: Float64Array.of(4096, 8192) }, { nents: 1, origNents: 0 });
    expect(table.nents).toBe(1);
    expect(table.dmaSegments()).toEqual([{ dmaAddress: 0x1000n, length: 4096, page: null }]);
    expect(table.entries).toHaveLength(2);
    expect(Object.isFrozen(table.entries[1])).toBe(true);
    expect(table.totalLength()).toBe(4096n);
    for (const length of [Float64Array.of(4096, 0), Float64Array.of(4096, 1.5), Float64Array.of(4096, NaN), Float64Array.of(4096)]) {
      expect(() => new SgTable({ address, length })).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-12' }));
    }
    expect(() => new SgTable({ address, length: Float64Array.of(1, 2) }, { nents: 3 })).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-12' }));
    // Plain entries read as columns too, and a u64 address is required.
    const plain = new SgTable([{ dmaAddress: 0x2000n, length: 4096n, page: null }, { dmaAddress: 0x9000n, length: 100, page: null }]);
    expect([...plain.dmaColumns().address]).toEqual([0x2000n, 0x9000n]);
    expect([...plain.dmaColumns().length]).toEqual([4096, 100]);
    expect(() => new SgTable([{ dmaAddress: 1n << 64n, length: 4096, page: null }])).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-12' }));
  });
});
