/**
 * Model-based test: random map / unmap / translate / invalidate / flush sequences over a 64 MiB
 * IOVA window, against a plain reference model (a list of leaves), for every format and for the
 * kernel policies a model can state plainly. The model computes the greedy largest-page split
 * over the domain's page sizes (AMD v1 size-encoded leaves, RISC-V NAPOT included), treats an
 * overlapping map as the kernel does (generic_pt: EADDRINUSE, nothing changed; io-pgtable-arm:
 * EEXIST for a leaf at or above the piece's size, smaller leaves under a block unmapped), and a
 * partial unmap of a leaf by policy (refused since v6.13 on ARM, split before; generic_pt: whole
 * from the leaf's start, refused inside), the cursor advancing by each removed leaf and stopping at
 * a hole. The IOTLB is tiny (2 sets x 2 ways) so evictions happen all the time.
 *
 * Strict mode: translate must equal the model exactly, so no translation outlives its unmap.
 * Lazy mode: an answer may also come from a leaf unmapped since the last flush (the stale window),
 * and only from such a leaf.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { SimError, type IommuUnit, type PgtableFormat, type Simulator } from '../../src/index.js';
import type { IommuKernel, PartialUnmap } from '../../src/iommu/kernel.js';
import { HBM_BASE, makeSim } from '../helpers/sim.js';
import { G1, K4, M2, P } from './helpers/pte.js';
import { FAMILY_OF, RID } from './helpers/setup.js';

const RUNS = Number(process.env['IOMMU_PROPERTY_RUNS'] ?? 150);
const BASE = 4n * G1;        // window [4 GiB, 4 GiB + 64 MiB): every level of a 48-bit table is used
const WINDOW = 64n << 20n;
const FQ_CAP = 3;

interface Leaf { iova: bigint; size: bigint; pa: bigint; prot: number }
type Op =
  | { k: 'map'; iova: bigint; pa: bigint; size: bigint; prot: number }
  | { k: 'unmap'; iova: bigint; size: bigint }
  | { k: 'translate'; iova: bigint; access: 'read' | 'write' | 'rw' }
  /** Translate inside a leaf picked at run time: a live one, or one unmapped lately (`gone`). */
  | { k: 'translateLeaf'; gone: boolean; pick: number; off: number; access: 'read' | 'write' | 'rw' }
  /** Unmap 4K inside, or the whole of, a live leaf picked at run time. */
  | { k: 'unmapLeaf'; pick: number; off: number; whole: boolean }
  | { k: 'invalidate'; start: bigint; end: bigint }
  | { k: 'invalidateAll' }
  | { k: 'flush' };

/**
 * Rights a leaf grants a device, per format: VT-d SS, ARM S2 (S2AP) and AMD v1 (IR/IW) keep R and
 * W apart; ARM S1 (AP), x86-64 (P implies read) and RISC-V (W implies R) make WRITE read-write.
 */
function permOf(format: PgtableFormat, prot: number): number {
  if (format === 'vtd-ss' || format === 'arm-lpae-s2' || format === 'amd-v1') return prot & 3;
  return (prot & P.WRITE) !== 0 ? 3 : 1;
}
const ACCESS = { read: 1, write: 2, rw: 3 } as const;

class Model {
  leaves: Leaf[] = [];
  stale: Leaf[] = [];
  /** The last leaves unmapped, stale or not: translate targets for "does it outlive its unmap". */
  gone: Leaf[] = [];
  pending = 0;
  constructor(readonly strict: boolean, readonly sizes: bigint[] = [G1, M2, K4],
    readonly overlap: 'EEXIST' | 'EADDRINUSE' = 'EEXIST', readonly partial: PartialUnmap = 'whole-any') {}

  find(iova: bigint, list = this.leaves): Leaf | undefined {
    return list.find((l) => iova >= l.iova && iova < l.iova + l.size);
  }

  static split(iova: bigint, pa: bigint, size: bigint, sizes: bigint[] = [G1, M2, K4]): { iova: bigint; pa: bigint; size: bigint }[] {
    const out = [];
    let done = 0n;
    while (done < size) {
      const s = sizes.find((s) => ((iova + done) | (pa + done)) % s === 0n && size - done >= s)!;
      out.push({ iova: iova + done, pa: pa + done, size: s });
      done += s;
    }
    return out;
  }

  map(iova: bigint, pa: bigint, size: bigint, prot: number): string {
    const pieces = Model.split(iova, pa, size, this.sizes);
    // The pieces tile [iova, iova + size): only leaves overlapping the range can be in the way.
    const near = this.leaves.filter((l) => iova < l.iova + l.size && l.iova < iova + size);
    const overlaps = (p: { iova: bigint; size: bigint }) => near.filter((l) => p.iova < l.iova + l.size && l.iova < p.iova + p.size);
    if (this.overlap === 'EADDRINUSE') {
      // generic_pt: any leaf in the way; the pieces tile the range, so check it whole.
      if (near.length > 0) return 'EADDRINUSE';
      for (const p of pieces) this.leaves.push({ ...p, prot });
      return 'ok';
    }
    // io-pgtable-arm, piece by piece: a leaf as large or larger is EEXIST (the pieces mapped so far
    // are unmapped again); smaller ones lie under the block's table, which is unmapped first.
    const added: Leaf[] = [];
    for (const p of pieces) {
      const o = overlaps(p);
      if (o.some((l) => l.size >= p.size)) {
        this.leaves = this.leaves.filter((l) => !added.includes(l));
        return 'EEXIST';
      }
      this.leaves = this.leaves.filter((l) => !o.includes(l));
      this.gone = [...o, ...this.gone].slice(0, 8);
      const leaf = { ...p, prot };
      added.push(leaf);
      this.leaves.push(leaf);
    }
    return 'ok';
  }

  unmap(iova: bigint, size: bigint): bigint {
    let done = 0n;
    let cur = iova;
    const removed: Leaf[] = [];
    while (done < size) {
      const l = this.find(cur);
      if (!l) break;
      if (cur !== l.iova || size - done < l.size) {
        if (this.partial === 'refuse') break;
        if (this.partial === 'whole-at-start' && cur !== l.iova) break;
        if (this.partial === 'split') {
          // The block becomes a table of leaves one level down (4K granule: 512 of them); a lazy
          // IOTLB may still answer from the block for all of it until the next flush.
          this.leaves = this.leaves.filter((x) => x !== l);
          for (let i = 0n; i < 512n; i++) this.leaves.push({ iova: l.iova + i * (l.size / 512n), pa: l.pa + i * (l.size / 512n), size: l.size / 512n, prot: l.prot });
          if (!this.strict) removed.push(l);
          continue;
        }
      }
      this.leaves = this.leaves.filter((x) => x !== l);
      removed.push(l);
      done += l.size;
      cur = l.iova + l.size;
    }
    this.gone = [...removed, ...this.gone].slice(0, 8);
    if (done > 0n && !this.strict) {
      if (this.pending >= FQ_CAP) { this.stale = []; this.pending = 0; } // a full queue flushes itself
      this.stale.push(...removed);
      this.pending++;
    }
    return done;
  }
}

const pageOff = (maxPages: number) => fc.integer({ min: 0, max: maxPages - 1 }).map((x) => BigInt(x) * K4);
const iovaArb = fc.oneof(
  { weight: 2, arbitrary: pageOff(Number(WINDOW / K4)) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: Number(WINDOW / M2) - 1 }).map((x) => BigInt(x) * M2) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 31 }), fc.integer({ min: -3, max: 3 })).map(([m, p]) => BigInt(m) * M2 + BigInt(p) * K4).filter((x) => x >= 0n) },
).map((x) => BASE + x);
const sizeArb = fc.oneof(
  fc.integer({ min: 1, max: 16 }).map((n) => BigInt(n) * K4),
  fc.integer({ min: 1, max: 3 }).map((n) => BigInt(n) * M2),
  fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 8 })).map(([m, p]) => BigInt(m) * M2 + BigInt(p) * K4),
);
const paArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 1023 }).map((x) => HBM_BASE + BigInt(x) * M2) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1 << 18 }).map((x) => HBM_BASE + BigInt(x) * K4) },
);
const protArb = fc.constantFrom(P.READ, P.WRITE, P.READ | P.WRITE, P.READ | P.WRITE | P.CACHE);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('map' as const), iova: iovaArb, pa: paArb, size: sizeArb, prot: protArb })
    .filter((o) => o.iova + o.size <= BASE + WINDOW) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('unmap' as const), iova: iovaArb, size: sizeArb }).filter((o) => o.iova + o.size <= BASE + WINDOW) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('translate' as const), iova: fc.tuple(iovaArb, fc.integer({ min: 0, max: 4095 })).map(([a, b]) => a + BigInt(b)), access: fc.constantFrom('read' as const, 'write' as const, 'rw' as const) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('translateLeaf' as const), gone: fc.boolean(), pick: fc.nat(), off: fc.nat(), access: fc.constantFrom('read' as const, 'write' as const, 'rw' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('unmapLeaf' as const), pick: fc.nat(), off: fc.nat(), whole: fc.boolean() }) },
  { weight: 1, arbitrary: fc.tuple(iovaArb, sizeArb).map(([s, n]): Op => ({ k: 'invalidate', start: s, end: s + n })) },
  { weight: 1, arbitrary: fc.constant<Op>({ k: 'invalidateAll' }) },
  { weight: 1, arbitrary: fc.constant<Op>({ k: 'flush' }) },
);

/** Whether leaf `l` answers a translate of `iova` for `access` with result `r`. */
function answers(format: PgtableFormat, l: Leaf, iova: bigint, access: number, r: ReturnType<Simulator['iommu']['translate']>): boolean {
  const perm = permOf(format, l.prot);
  if ((perm & access) !== access) return !r.ok && r.reason === 'permission';
  return r.ok && r.pa === l.pa + (iova - l.iova) && r.pageSize === l.size && r.perm === perm;
}

function run(sim: Simulator, unit: IommuUnit, format: PgtableFormat, kernel: IommuKernel, strict: boolean, ops: Op[]): void {
  const free0 = sim.memory.framesFree();
  unit.flush();
  unit.invalidateAll();
  const dom = unit.createDomain({ type: 'paging', format, ias: 48, oas: 48, strict, kernel });
  const t0 = dom.tableFrames;
  sim.iommu.attach(RID, dom);
  const policy = dom.policy!;
  const m = new Model(strict, dom.pageSizes().reverse(), policy.overlapMap as 'EEXIST' | 'EADDRINUSE', policy.partialUnmap);
  for (const op of ops) {
    switch (op.k) {
      case 'map': {
        let got = 'ok';
        try { dom.map(op.iova, op.pa, op.size, op.prot); } catch (e) { got = (e as SimError).code; }
        expect(got).toBe(m.map(op.iova, op.pa, op.size, op.prot));
        break;
      }
      case 'unmap': {
        const pending0 = m.pending;
        const n = m.unmap(op.iova, op.size);
        expect(dom.unmap(op.iova, op.size)).toBe(n);
        // A split that unmapped nothing queued nothing either.
        if (n === 0n) m.pending = pending0;
        break;
      }
      case 'unmapLeaf': {
        if (m.leaves.length === 0) break;
        // Prefer recent leaves: those are the ones translateLeaf cached.
        const l = m.leaves[m.leaves.length - 1 - (op.pick % Math.min(4, m.leaves.length))]!;
        const iova = op.whole ? l.iova : l.iova + (BigInt(op.off) % (l.size / K4)) * K4;
        const size = op.whole ? l.size : K4;
        expect(dom.unmap(iova, size)).toBe(m.unmap(iova, size));
        break;
      }
      case 'translateLeaf':
      case 'translate': {
        let iova: bigint;
        if (op.k === 'translate') {
          iova = op.iova;
        } else {
          const list = op.gone && m.gone.length > 0 ? m.gone : m.leaves.slice(-4);
          if (list.length === 0) break;
          const l = list[op.pick % list.length]!;
          iova = l.iova + BigInt(op.off) % l.size;
        }
        const r = sim.iommu.translate(RID, iova, op.access);
        const a = ACCESS[op.access];
        const cur = m.find(iova);
        const exact = cur ? answers(format, cur, iova, a, r) : !r.ok && r.reason === 'translation';
        if (exact) break;
        // Only a leaf in the lazy stale window may explain any other answer.
        const staleOk = m.stale.some((l) => iova >= l.iova && iova < l.iova + l.size && answers(format, l, iova, a, r));
        expect(staleOk, `translate ${iova.toString(16)} ${op.access} -> ${JSON.stringify(r, (_k, v) => typeof v === 'bigint' ? v.toString(16) : v)}`).toBe(true);
        expect(strict).toBe(false);
        break;
      }
      case 'invalidate':
        dom.invalidate(op.start, op.end);
        m.stale = m.stale.filter((l) => !(l.iova < op.end && op.start < l.iova + l.size));
        break;
      case 'invalidateAll':
        unit.invalidateAll();
        m.stale = [];
        break;
      case 'flush':
        expect(unit.flush()).toBe(m.pending);
        m.pending = 0;
        m.stale = [];
        break;
    }
    expect(dom.mappedBytes).toBe(m.leaves.reduce((s, l) => s + l.size, 0n));
    expect(unit.stats().flushQueuePending).toBe(strict ? 0 : m.pending);
  }
  // Every leaf of the model is there, with its exact size and output (large leaves all, 4K sampled).
  m.leaves.sort((a, b) => (a.iova < b.iova ? -1 : 1));
  m.leaves.forEach((l, i) => {
    if (l.size === K4 && i % 17 !== 0) return;
    expect(dom.walk(l.iova + l.size - 1n)).toMatchObject({ ok: true, pa: l.pa + l.size - 1n, pageSize: l.size });
  });
  // Unmap each contiguous run at once: the unmap must return exactly the run's bytes.
  for (let i = 0; i < m.leaves.length;) {
    let j = i + 1;
    while (j < m.leaves.length && m.leaves[j]!.iova === m.leaves[j - 1]!.iova + m.leaves[j - 1]!.size) j++;
    const start = m.leaves[i]!.iova;
    const end = m.leaves[j - 1]!.iova + m.leaves[j - 1]!.size;
    expect(dom.unmap(start, end - start)).toBe(end - start);
    i = j;
  }
  expect(dom.tableFrames).toBe(dom.format === 'amd-v1' ? dom.tableFrames : t0);
  sim.iommu.attach(RID, null);
  dom.destroy();
  unit.faults();
  expect(sim.memory.framesFree()).toBe(free0);
}

// [format, kernel, share of RUNS] (the 6.12 split model carries hundreds of 4K leaves: fewer runs).
const CONFIGS: [PgtableFormat, IommuKernel, number][] = [
  ['vtd-ss', 'mainline', 1], ['arm-lpae-s1', 'mainline', 1], ['arm-lpae-s1', '6.12', 0.5], ['arm-lpae-s2', 'mainline', 0.5],
  ['amd-v1', 'mainline', 1], ['x86-64', 'mainline', 1], ['riscv', 'mainline', 1],
];

describe.each(CONFIGS)('%s (kernel %s) against the reference model', (format, kernel, share) => {
  let sim: Simulator;
  let unit: IommuUnit;
  beforeAll(async () => {
    sim = await makeSim();
    unit = sim.iommu.createUnit({ family: FAMILY_OF[format], tlbSets: 2, tlbWays: 2, flushQueue: FQ_CAP, faultQueue: 16 });
  });

  it.each([['strict', true], ['lazy', false]] as const)('%s invalidation', (_n, strict) => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => run(sim, unit, format, kernel, strict, ops)), { numRuns: Math.max(10, Math.round(RUNS * share)) });
  });

  it('the model itself: greedy split, overlap and partial-unmap rules', () => {
    expect(Model.split(BASE, HBM_BASE + K4, 2n * M2).length).toBe(1024);
    expect(Model.split(BASE, HBM_BASE, M2 + K4).map((p) => p.size)).toEqual([M2, K4]);
    const m = new Model(true, [G1, M2, K4], 'EEXIST', 'whole-any');
    expect(m.map(BASE, HBM_BASE, 2n * M2, 3)).toBe('ok');
    expect(m.map(BASE + M2, HBM_BASE, K4, 3)).toBe('EEXIST');
    expect(m.unmap(BASE + K4, K4)).toBe(M2);
    expect(m.unmap(BASE + 3n * M2, K4)).toBe(0n);
    const g = new Model(true, [G1, M2, K4], 'EADDRINUSE', 'whole-at-start');
    expect(g.map(BASE, HBM_BASE, M2, 3)).toBe('ok');
    expect(g.unmap(BASE + K4, K4)).toBe(0n);
    expect(g.unmap(BASE, K4)).toBe(M2);
    const a = new Model(true, [G1, M2, K4], 'EEXIST', 'split');
    expect(a.map(BASE + M2 + K4, HBM_BASE, K4, 3)).toBe('ok');
    expect(a.map(BASE, HBM_BASE, 4n * M2, 3)).toBe('ok'); // the 4K leaf under the second block goes
    expect(a.leaves.length).toBe(4);
    expect(a.unmap(BASE + K4, K4)).toBe(K4);
    expect(a.leaves.length).toBe(3 + 511);
  });
});
