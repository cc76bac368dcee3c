/**
 * The batch translation loop (one copy per format, walks served from the page-walk cache by
 * walkTrusted: records checked against memory once per batch, keys only after that; a 4K fill in the set its probe computed) leaves exactly what translate() one
 * address at a time leaves: outputs, statuses, counters, fault records, the IOTLB's entries and
 * round-robin counters byte for byte, and the table bytes (x86-64 A/D bits), across maps,
 * invalidations and a guest's rewrites of table entries between batches.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type PgtableFormat, type Simulator } from '../../src/index.js';
import { RAM_BASE, HBM_BASE } from '../helpers/sim.js';
import { rig, RID, tlbBytes, expectSameCounters, type Rig } from './helpers/setup.js';

const K4 = 4096n;
const M2 = 2n << 20n;
const FORMATS: PgtableFormat[] = ['vtd-ss', 'arm-lpae-s1', 'arm-lpae-s2', 'amd-v1', 'x86-64', 'riscv'];
const BASE = 0x40_0000_0000n;

let seed = 99;
const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 8; };

function tableBytes(r: Rig): Uint8Array {
  return r.sim.memory.read(r.dom.root, (r.dom.tableFrames + 16) * 4096);
}

/** Maps pages of three leaf tables (some read-only, holes between), and a 2M leaf. */
function populate(r: Rig): void {
  for (let t = 0n; t < 3n; t++) {
    for (let i = 0n; i < 300n; i++) {
      if (i % 11n === 5n) continue; // holes
      const iova = BASE + t * 7n * M2 + i * K4;
      r.dom.map(iova, RAM_BASE + ((i * 7919n + t * 131n) % 8192n) * K4, K4, i % 6n === 0n ? Prot.READ : Prot.RW);
    }
  }
  r.dom.map(BASE + 40n * M2, HBM_BASE, M2, Prot.RW);
}

function addresses(n: number): BigUint64Array {
  const a = new BigUint64Array(n);
  for (let i = 0; i < n; i++) {
    const r = rnd() % 20;
    a[i] = r < 16 ? BASE + BigInt(rnd() % 3) * 7n * M2 + BigInt(rnd() % 320) * K4 + BigInt(rnd() & 0xfff)
      : r < 19 ? BASE + 40n * M2 + BigInt(rnd() % 0x200000) : 1n << 52n; // beyond the width
  }
  return a;
}

/**
 * Two rigs alike, populated: small and narrow IOTLBs (8 sets x 2 ways), so sets overflow and
 * round-robin victims and free ways both matter.
 */
async function populatedPair(format: PgtableFormat): Promise<[Rig, Rig]> {
  const pair: Rig[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await rig(format, { tlbSets: 8, tlbWays: 2 });
    populate(r);
    pair.push(r);
  }
  return [pair[0]!, pair[1]!];
}

/** One batch on `a`, one translate() per address on `b`; everything they leave must agree. */
function compare(a: Rig, b: Rig, iovas: BigUint64Array, access: 'read' | 'write'): void {
  const batch = a.sim.iommu.translateBatch(RID, iovas, access);
  let faults = 0;
  iovas.forEach((iova, i) => {
    const r = b.sim.iommu.translate(RID, iova, access);
    expect([i, batch.status[i] === 0]).toEqual([i, r.ok]);
    expect([i, batch.out[i]]).toEqual([i, r.ok ? r.pa : 0n]);
    if (!r.ok) faults++;
  });
  expect(batch.faults).toBe(faults);
  expectSameCounters(a, b);
  expect(a.unit.faults().map((f) => [f.iova, f.code])).toEqual(b.unit.faults().map((f) => [f.iova, f.code]));
  expect(tlbBytes(a)).toEqual(tlbBytes(b));
  expect(tableBytes(a)).toEqual(tableBytes(b));
}

/** The entry above `iova`'s leaf (the one the page-walk cache keeps the leaf table's page for). */
function parentSlot(r: Rig, iova: bigint): { slot: bigint; entry: bigint } {
  const w = r.dom.walk(iova).levels;
  const p = w[w.length - 2]!;
  return { slot: p.table + BigInt(p.index) * 8n, entry: p.entry };
}

function write64(sim: Simulator, pa: bigint, v: bigint): void {
  sim.memory.write(pa, new Uint8Array(new BigUint64Array([v]).buffer));
}

describe.each(FORMATS)('%s', (format) => {
  it('batches leave translate()\'s outputs, counters, faults, IOTLB bytes and table bytes, rounds after rounds', async () => {
    const [a, b] = await populatedPair(format);
    for (let round = 0; round < 6; round++) {
      const iovas = addresses(1500);
      compare(a, b, iovas, round % 2 === 0 ? 'read' : 'write');
      // Between batches: free a few ways in the middle of sets, map a new leaf table (new
      // backing), unmap a page the caches hold.
      for (const r of [a, b]) {
        r.dom.invalidate(BASE + BigInt(round * 17) * K4, BASE + BigInt(round * 17 + 9) * K4);
        r.dom.map(BASE + (50n + BigInt(round)) * M2, RAM_BASE + BigInt(round) * K4, K4, Prot.RW);
        r.dom.unmap(BASE + 7n * M2 + BigInt(round * 3 + 1) * K4, K4);
      }
    }
    expect(a.unit.stats().walks).toBeGreaterThan(2000n);
  });

  it('a guest\'s rewrite of the entry above a leaf table is seen by the next batch walk', async () => {
    const [a, b] = await populatedPair(format);
    const x = BASE + 3n * K4 + 0x10n;
    const y = BASE + 7n * M2 + 4n * K4 + 0x10n; // another leaf table, same upper levels
    // Walk x's region twice so the leaf table's page is remembered, then repoint it at y's table.
    compare(a, b, BigUint64Array.of(x, x + K4, y, x + 2n * K4), 'read');
    for (const r of [a, b]) {
      write64(r.sim, parentSlot(r, x).slot, parentSlot(r, y).entry);
      r.unit.invalidateAll();
    }
    compare(a, b, BigUint64Array.of(x, x + K4, x + 2n * K4), 'read');
    // x now reads y's leaf table: the entry at x's index there.
    for (const r of [a, b]) {
      const twin = r.sim.iommu.translate(RID, BASE + 7n * M2 + 3n * K4 + 0x10n, 'read');
      expect(twin.ok).toBe(true);
      expect(r.sim.iommu.translateBatch(RID, BigUint64Array.of(x), 'read').out[0]).toBe((twin as { pa: bigint }).pa);
    }
    // Cleared: a fault on every format, seen at once.
    for (const r of [a, b]) {
      const { slot } = parentSlot(r, BASE + 3n * K4);
      write64(r.sim, slot, 0n);
      r.unit.invalidateAll();
    }
    compare(a, b, BigUint64Array.of(x, x + K4, y), 'read');
    for (const r of [a, b]) expect(r.sim.iommu.translateBatch(RID, BigUint64Array.of(x), 'read').faults).toBe(1);
  });
  it('a guest\'s rewrite of the top entry between batches is seen by the trusted batch walk (keys only inside a batch)', async () => {
    const [a, b] = await populatedPair(format);
    // Warm the page-walk cache on every level, with a width fault (translate(), then the cache
    // checked again) in the middle of the batch.
    const warm = BigUint64Array.of(BASE + 0x10n, BASE + K4 + 0x20n, 1n << 52n, BASE + 2n * K4 + 8n);
    compare(a, b, warm, 'read');
    const top = (r: Rig) => { const l = r.dom.walk(BASE).levels[0]!; return { slot: l.table + BigInt(l.index) * 8n, entry: l.entry }; };
    const saved = top(a).entry;
    expect(top(b).entry).toBe(saved);
    for (const r of [a, b]) { write64(r.sim, top(r).slot, 0n); r.unit.invalidateAll(); }
    const again = BigUint64Array.of(BASE + 3n * K4 + 8n, BASE + 7n * M2 + 0x20n, BASE + 0x10n);
    compare(a, b, again, 'read');
    for (const r of [a, b]) expect(r.sim.iommu.translateBatch(RID, again, 'read').faults).toBe(3);
    // Put back: the same walks succeed again.
    for (const r of [a, b]) { write64(r.sim, top(r).slot, saved); r.unit.invalidateAll(); }
    compare(a, b, again, 'write');
    compare(a, b, addresses(600), 'write');
    for (const r of [a, b]) expect(r.sim.iommu.translateBatch(RID, again, 'read').faults).toBe(0);
  });
});

describe.each(FORMATS)('%s: the page-walk cache and two streams', (format) => {
  it('two streams walked in turn in one batch; a guest\'s rewrite of either is seen', async () => {
    const [a, b] = await populatedPair(format);
    // x and y in two leaf tables, walked in turn (as a copy between two ranges walks them): the
    // batch ends on y, so x's path is the older one.
    const x = BASE + 3n * K4 + 0x10n;
    const y = BASE + 14n * M2 + 4n * K4 + 0x10n;
    const turns = (n: number, from: number) => BigUint64Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? x : y) + BigInt(from + (i >> 1)) * K4);
    compare(a, b, turns(40, 0), 'read');
    // Repoint x's leaf table at y's: the next walk of x, through the older path, reads y's table.
    for (const r of [a, b]) {
      write64(r.sim, parentSlot(r, x).slot, parentSlot(r, y).entry);
      r.unit.invalidateAll();
    }
    compare(a, b, turns(20, 1), 'read');
    for (const r of [a, b]) {
      const twin = r.sim.iommu.translate(RID, BASE + 14n * M2 + 3n * K4 + 0x10n, 'read');
      expect(twin.ok).toBe(true);
      r.sim.iommu.translateBatch(RID, BigUint64Array.of(x, y), 'read');
      expect(r.sim.iommu.translateBatch(RID, BigUint64Array.of(y + K4, x), 'read').out[1]).toBe((twin as { pa: bigint }).pa);
    }
    // Cleared while y's walk was the last: x faults at once, y still translates.
    for (const r of [a, b]) {
      r.sim.iommu.translateBatch(RID, BigUint64Array.of(x, y), 'read');
      write64(r.sim, parentSlot(r, x).slot, 0n);
      r.unit.invalidateAll();
    }
    compare(a, b, turns(10, 2), 'write');
    for (const r of [a, b]) {
      r.unit.invalidateAll();
      const t = r.sim.iommu.translateBatch(RID, BigUint64Array.of(y, x, y + 2n * K4, x + 2n * K4), 'read');
      expect(Array.from(t.status, (s) => s === 0)).toEqual([true, false, true, false]);
    }
  });
});

/**
 * The entry above a leaf table made read-only, where the format's table entries carry rights
 * (VT-d W bit 1, x86-64 R/W bit 1, AMD v1 IW bit 62, ARM stage 1 APTable[1] bit 62); RISC-V and
 * ARM stage 2 tables carry none, and the entry stays as it was.
 */
function readOnlyTable(format: PgtableFormat, entry: bigint): bigint {
  switch (format) {
    case 'vtd-ss':
    case 'x86-64': return entry & ~2n;
    case 'amd-v1': return entry & ~(1n << 62n);
    case 'arm-lpae-s1': return entry | (1n << 62n);
    default: return entry;
  }
}

describe.each(FORMATS)('%s: batch walks in the last two levels', (format) => {
  it('take the rights of the entry above the leaf table, and leave larger last-level leaves to the general walk', async () => {
    const mk = () => rig(format, { tlbSets: 4, tlbWays: 2, ias: format === 'riscv' ? 39 : 48, svnapot: format === 'riscv' ? true : undefined });
    const base = format === 'riscv' ? 0x40_0000_0000n >> 10n : BASE;
    const a = await mk();
    const b = await mk();
    for (const r of [a, b]) {
      // Two leaf tables under one table: 64 4K pages in each, and in the second a 64K mapping
      // (one leaf where the last level has 64K leaves: AMD v1, RISC-V NAPOT).
      for (let i = 0n; i < 64n; i++) {
        r.dom.map(base + i * K4, RAM_BASE + i * K4, K4, Prot.RW);
        r.dom.map(base + M2 + i * K4, RAM_BASE + 0x10_0000n + i * K4, K4, Prot.RW);
      }
      r.dom.map(base + M2 + 0x10_0000n, RAM_BASE + 0x20_0000n, 16n * K4, Prot.RW);
    }
    const pages = (n: number, lo: bigint, span: bigint) => {
      const v = new BigUint64Array(n);
      for (let i = 0; i < n; i++) v[i] = lo + BigInt(rnd() % Number(span / K4)) * K4 + BigInt(rnd() & 0xfff);
      return v;
    };
    // Both leaf tables and the 64K mapping, in turn: walks parting at the last table level,
    // walks inside the leaf table the last one found, and the larger leaf.
    const mixed = () => {
      const v = new BigUint64Array(600);
      const x = pages(200, base, 64n * K4), y = pages(200, base + M2, 64n * K4), z = pages(200, base + M2 + 0x10_0000n, 16n * K4);
      for (let i = 0; i < 200; i++) { v[3 * i] = x[i]!; v[3 * i + 1] = i % 3 === 0 ? z[i]! : y[i]!; v[3 * i + 2] = i % 5 === 0 ? x[(i * 7) % 200]! : z[i]!; }
      return v;
    };
    compare(a, b, mixed(), 'write');
    // The first leaf table's parent entry read-only: writes under it fault, reads pass; the
    // other leaf table is untouched.
    const parent = parentSlot(a, base);
    expect(parentSlot(b, base)).toEqual(parent);
    for (const r of [a, b]) {
      write64(r.sim, parent.slot, readOnlyTable(format, parent.entry));
      r.unit.invalidateAll();
    }
    const v = mixed();
    compare(a, b, v, 'write');
    compare(a, b, v, 'read');
    for (const r of [a, b]) r.unit.invalidateAll();
    compare(a, b, v, 'read');
    compare(a, b, v, 'write');
    const denied = a.sim.iommu.translateBatch(RID, pages(50, base, 64n * K4), 'write').faults;
    expect(denied).toBe(readOnlyTable(format, parent.entry) === parent.entry ? 0 : 50);
  });
});
