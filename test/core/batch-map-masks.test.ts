/**
 * The batch map's in-place loop tests each descriptor with masks (size, iova within the cached
 * leaf-table page and aligned, pa aligned and within the OAS): any descriptor that fails one of
 * them goes to mapRange, which decides as one map per descriptor does (status, failing index,
 * all or nothing). The batch translation loop's 4K fill (fillSet4k: first free way, else the
 * round-robin victim) leaves the IOTLB bytes and counters translate() leaves, for odd numbers of
 * ways too.
 */
import { describe, expect, it } from 'vitest';
import { ABI } from '../../bindings/core.js';
import { Prot, type PgtableFormat } from '../../src/index.js';
import { RAM_BASE } from '../helpers/sim.js';
import { rig, RID, tlbBytes, expectSameCounters, type Rig } from './helpers/setup.js';

const K4 = 4096n;
const M2 = 2n << 20n;
const FORMATS: PgtableFormat[] = ['vtd-ss', 'arm-lpae-s1', 'arm-lpae-s2', 'amd-v1', 'x86-64', 'riscv'];
const BASE = 0x40_0000_0000n;

type Desc = [iova: bigint, pa: bigint, size: bigint];

function stage(r: Rig, d: Desc[]): void {
  const w = ABI.MAPDESC_STRIDE >> 3;
  const v = r.sim.core.views.u64;
  const at = r.sim.core.layout.staging >> 3;
  d.forEach(([iova, pa, size], i) => { v[at + i * w] = iova; v[at + i * w + 1] = pa; v[at + i * w + 2] = size; });
}

function statuses(r: Rig, n: number): number[] {
  const v = r.sim.core.views.i32;
  const at = r.sim.core.layout.staging >> 2;
  return Array.from({ length: n }, (_, i) => v[at + i * (ABI.MAPDESC_STRIDE >> 2) + 6]!);
}

/** 100 pages inside one leaf table, the 40th replaced by `odd` (its own iova, pa, size). */
function run(odd: (iova: bigint, pa: bigint) => Desc): Desc[] {
  const d: Desc[] = [];
  for (let i = 0n; i < 100n; i++) d.push([BASE + 0x40_0000n + i * K4, RAM_BASE + ((i * 7919n) % 4096n) * K4, K4]);
  d[40] = odd(d[40]![0], d[40]![1]);
  return d;
}

// Each one fails a different test of the in-place loop; mapRange decides what it is.
const ODD: [string, (iova: bigint, pa: bigint) => Desc][] = [
  ['iova not page-aligned', (iova, pa) => [iova + 0x800n, pa, K4]],
  ['pa not page-aligned', (iova, pa) => [iova, pa + 8n, K4]],
  ['pa at the OAS', (iova) => [iova, 1n << 48n, K4]],
  ['pa above the OAS', (iova) => [iova, 0x7fff_0000_0000_0000n, K4]],
  ['iova beyond the IAS', (_iova, pa) => [1n << 48n, pa, K4]],
  ['size 0', (iova, pa) => [iova, pa, 0n]],
  ['size 8K', (iova, pa) => [iova, pa, 2n * K4]],
  ['size 2M over the run', (_iova, pa) => [BASE + 0x40_0000n, pa & ~(M2 - 1n), M2]],
  ['an iova mapped earlier in the batch', () => [BASE + 0x40_0000n + 3n * K4, RAM_BASE, K4]],
  ['an iova in another leaf table', (_iova, pa) => [BASE + 9n * M2 + 5n * K4, pa, K4]],
  ['an iova in the previous leaf table', (_iova, pa) => [BASE + 0x3f_f000n, pa, K4]],
];

/** One map per descriptor on `b` (stopping at the first failure, undone then); the batch on `a` must agree. */
function sameAsOneByOne(a: Rig, b: Rig, d: Desc[]): void {
  stage(a, d);
  const st = a.sim.core.exports.mapBatch(a.dom.id, d.length, Prot.RW);
  let fail = -1;
  let failSt = 0;
  for (let i = 0; i < d.length && fail < 0; i++) {
    const s = b.sim.core.exports.map(b.dom.id, d[i]![0], d[i]![1], d[i]![2], Prot.RW);
    if (s !== 0) { fail = i; failSt = s; }
  }
  if (fail >= 0) {
    for (let i = 0; i < fail; i++) b.sim.core.exports.unmap(b.dom.id, d[i]![0], d[i]![2]);
    expect(st).toBe(failSt);
    expect(a.sim.core.views.u64[(a.sim.core.layout.result + ABI.RES_VALUE) >> 3]).toBe(BigInt(fail));
    expect(statuses(a, fail + 1)).toEqual([...Array<number>(fail).fill(0), failSt]);
  } else {
    expect(st).toBe(0);
    expect(statuses(a, d.length)).toEqual(Array<number>(d.length).fill(0));
  }
  expect(a.dom.mappedBytes).toBe(b.dom.mappedBytes);
  expect(a.dom.tableFrames).toBe(b.dom.tableFrames);
  const bytes = (a.dom.tableFrames + 8) * 4096;
  expect(a.sim.memory.read(a.dom.root, bytes)).toEqual(b.sim.memory.read(b.dom.root, bytes));
  for (const [iova] of d.filter((_, i) => i % 7 === 0 || (i > 36 && i < 48))) expect(a.dom.walk(iova)).toEqual(b.dom.walk(iova));
  // Unmapped again page by page: the same bytes back, the same tables freed (live-entry counts agree).
  for (const [iova, , size] of d) expect(a.sim.core.exports.unmap(a.dom.id, iova, size)).toBe(b.sim.core.exports.unmap(b.dom.id, iova, size));
  expect(a.dom.mappedBytes).toBe(b.dom.mappedBytes);
  expect(a.dom.tableFrames).toBe(b.dom.tableFrames);
  expect(a.sim.memory.read(a.dom.root, bytes)).toEqual(b.sim.memory.read(b.dom.root, bytes));
}

// Runs in order, written four entries a step: where a step's last page leaves the cached table
// page, where one of its slots is in use, where the order breaks inside a step.
const RUNS: [string, (page: bigint) => { pre: bigint[]; d: Desc[] }][] = [
  ['a run across a leaf-table boundary, every offset', (page) => {
    const d: Desc[] = [];
    for (let k = 0n; k < 4n; k++) for (let i = 0n; i < 9n; i++) d.push([BASE + (5n + k) * 512n * page - (4n + k) * page + i * page, RAM_BASE + (k * 9n + i) * page, page]);
    return { pre: [], d };
  }],
  ...[0n, 1n, 2n, 3n].map((k): [string, (page: bigint) => { pre: bigint[]; d: Desc[] }] => [`a run over a page mapped before, place ${k} of a step`, (page) => ({
    pre: [BASE + (36n + k) * page],
    d: Array.from({ length: 120 }, (_, i): Desc => [BASE + BigInt(i) * page, RAM_BASE + BigInt((i * 37) % 120) * page, page]),
  })]),
  ['a run with two pages swapped', (page) => ({
    pre: [],
    d: Array.from({ length: 60 }, (_, i): Desc => [BASE + BigInt(i === 41 ? 43 : i === 43 ? 41 : i) * page, RAM_BASE + BigInt(i) * page, page]),
  })],
  // Steps start at the second descriptor (the first seeds the cache): 41 is a step's first.
  ...[1, 2, 3].map((k): [string, (page: bigint) => { pre: bigint[]; d: Desc[] }] => [`a run with page ${k} of a step from elsewhere in the table`, (page) => ({
    pre: [],
    d: Array.from({ length: 60 }, (_, i): Desc => [BASE + BigInt(i === 41 + k ? 300 : i) * page, RAM_BASE + BigInt(i) * page, page]),
  })]),
];

describe.each(FORMATS)('%s', (format) => {
  it.each(RUNS)('batch map of %s: what one map per descriptor does', async (_name, make) => {
    const a = await rig(format);
    const b = await rig(format);
    const page = a.dom.pageSizes()[0]!;
    const { pre, d } = make(page);
    for (const r of [a, b]) for (const p of pre) r.dom.map(p, RAM_BASE + 0x100_0000n, page, Prot.READ);
    sameAsOneByOne(a, b, d);
  });

  it.each(ODD)('batch map with %s in a run: what one map per descriptor does', async (_name, odd) => {
    sameAsOneByOne(await rig(format), await rig(format), run(odd));
  });
});

describe.each([1, 3, 5])('%i ways', (ways) => {
  it.each(['vtd-ss', 'arm-lpae-s1'] as PgtableFormat[])('%s: batch 4K fills leave translate()\'s IOTLB bytes, with free ways in the middle of sets', async (format) => {
    const mk = () => rig(format, { tlbSets: 4, tlbWays: ways });
    const a = await mk();
    const b = await mk();
    for (const r of [a, b]) for (let i = 0n; i < 600n; i++) r.dom.map(BASE + i * K4, RAM_BASE + ((i * 613n) % 2048n) * K4, K4, Prot.RW);
    let seed = 7 + ways;
    const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };
    let hits = 0n;
    for (let round = 0; round < 8; round++) {
      const iovas = BigUint64Array.from({ length: 400 }, () => BASE + BigInt(rnd() % 600) * K4 + BigInt(rnd() & 0xfff));
      const batch = a.sim.iommu.translateBatch(RID, iovas, 'read');
      iovas.forEach((iova, i) => {
        const r = b.sim.iommu.translate(RID, iova, 'read');
        expect([i, batch.out[i]]).toEqual([i, r.ok ? r.pa : 0n]);
      });
      const sa = a.unit.stats();
      const sb = b.unit.stats();
      for (const k of ['hits', 'misses', 'walks', 'translations', 'tlbValid'] as const) expect([k, sa[k]]).toEqual([k, sb[k]]);
      expect(tlbBytes(a)).toEqual(tlbBytes(b));
      hits = sa.hits;
      // Free single ways here and there (pages the IOTLB may hold), so that fills find holes.
      const pages = Array.from({ length: 5 }, () => BASE + BigInt(rnd() % 600) * K4);
      for (const r of [a, b]) for (const p of pages) r.dom.invalidate(p, p + K4);
    }
    expect(hits).toBeGreaterThan(0n);
  });
});

describe('vtd-ss', () => {
  it('a 4K leaf into the interrupt range: the batch faults it as translate() does, and caches nothing of it', async () => {
    const mk = () => rig('vtd-ss', { tlbSets: 8, tlbWays: 2 });
    const a = await mk();
    const b = await mk();
    for (const r of [a, b]) {
      for (let i = 0n; i < 64n; i++) r.dom.map(BASE + i * K4, RAM_BASE + i * K4, K4, Prot.RW);
      r.dom.map(BASE + 64n * K4, 0xfee0_0000n, K4, Prot.RW);
      r.dom.map(BASE + 65n * K4, 0xfeef_f000n, K4, Prot.RW);
    }
    // Warm 4K entries first (the loop's 4K-only path), then the interrupt pages among them.
    const iovas = BigUint64Array.from({ length: 300 }, (_, i) => BASE + BigInt(i % 3 === 2 ? 64 + (i % 2) : (i * 7) % 64) * K4 + BigInt(i));
    const batch = a.sim.iommu.translateBatch(RID, iovas, 'write');
    let faults = 0;
    iovas.forEach((iova, i) => {
      const r = b.sim.iommu.translate(RID, iova, 'write');
      expect([i, batch.status[i] === 0, batch.out[i]]).toEqual([i, r.ok, r.ok ? r.pa : 0n]);
      if (!r.ok) faults++;
    });
    expect(faults).toBe(100);
    expect(batch.faults).toBe(faults);
    expectSameCounters(a, b);
    expect(a.unit.faults().map((f) => [f.iova, f.code])).toEqual(b.unit.faults().map((f) => [f.iova, f.code]));
    expect(tlbBytes(a)).toEqual(tlbBytes(b));
  });
});
