/**
 * The DMA copy's fast paths leave what the general paths leave.
 *
 * - The one-page copy (assembly/dma/engine.ts copyInPage: both sides IOTLB hits inside one
 *   backing page, one memory.copy) against the general copy loop, reached through a one-descriptor
 *   vectored copy: the same result, unit counters, IOTLB contents, fault records, DMA counters,
 *   arena use and bytes, in every format, with 4K and 2M leaves, warm and cold; and with the
 *   requesters it must leave to the general path (a DMA PASID, ATS, identity, detached, phys, a
 *   peer route), their pages in the IOTLB under the plain tag.
 * - The copy loop (each run's first leaf through the batch fast path) against one translate() per
 *   leaf and host reads and writes of the bytes, in the order the engine translates.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type DmaEndpoint, type DmaResult, type PgtableFormat, type Simulator } from '../../src/index.js';
import { rig, RID, tlbBytes, expectSameCounters, type Rig } from '../core/helpers/setup.js';
import { HBM_BASE, RAM_BASE, makeSim, pattern } from '../helpers/sim.js';

const K4 = 4096n;
const M2 = 2n << 20n;
const FORMATS: PgtableFormat[] = ['vtd-ss', 'x86-64', 'amd-v1', 'arm-lpae-s1', 'arm-lpae-s2', 'riscv'];
const RID2 = RID + 1; // a second requester in the same domain
const RID3 = RID + 2; // a requester in another domain of the same unit

const SRC = 0x10_0000n;
const DST = 0x20_0000n;
const DEV = 0x30_0000n; // device memory (HBM)
const BIG = 0x4000_0000n; // one 2M leaf
const SRC_PA = RAM_BASE + 0x10_0000n;
const DST_PA = RAM_BASE + 0x20_0000n;
const BIG_PA = RAM_BASE + 0x1000_0000n;

interface World extends Rig { other: Rig['dom'] }

/** A domain with 4K and 2M leaves, a read-only page, an unbacked page, device memory; a second domain. */
async function world(format: PgtableFormat, opts: { dirtyTracking?: boolean; arenaBytes?: number; scalableMode?: boolean } = {}): Promise<World> {
  const ias = format === 'riscv' ? 39 : 48;
  const sim = await makeSim(opts.arenaBytes);
  const r = await rig(format, { sim, ias, tlbSets: 4, tlbWays: 2, attach: false, scalableMode: opts.scalableMode });
  const dom = opts.dirtyTracking ? r.unit.createDomain({ type: 'paging', format, ias, dirtyTracking: true }) : r.dom;
  const other = r.unit.createDomain({ type: 'paging', format, ias });
  sim.iommu.attach(RID, dom);
  sim.iommu.attach(RID2, dom);
  sim.iommu.attach(RID3, other);
  for (const d of [dom, other]) {
    // Source pages in a scattered physical order; destination page 7 read-only.
    for (let i = 0n; i < 8n; i++) d.map(SRC + i * K4, SRC_PA + ((i * 5n) % 8n) * K4, K4, Prot.RW);
    for (let i = 0n; i < 8n; i++) d.map(DST + i * K4, DST_PA + i * K4, K4, i === 7n ? Prot.READ : Prot.RW);
    d.map(DEV, HBM_BASE, 4n * K4, Prot.RW);
    d.map(BIG, BIG_PA, M2, Prot.RW);
  }
  // Every source page backed but physical page 5 (read as zeros until written).
  for (let i = 0n; i < 8n; i++) if (i !== 5n) sim.memory.write(SRC_PA + i * K4, pattern(4096, Number(i) + 1));
  sim.memory.write(BIG_PA, pattern(8192, 99));
  if (opts.dirtyTracking) dom.readAndClearDirty(SRC, 0x30_0000n, K4);
  return { ...r, dom, other };
}

/** FNV-1a of the bytes: states compare cheaply, and a single changed byte changes it. */
function digest(b: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return (h >>> 0).toString(16);
}

/** Everything a copy may change, for comparing two worlds. */
function state(w: World): unknown {
  const { vectors: _v, descriptors: _d, ...dma } = w.sim.dma.stats();
  return {
    unit: w.unit.stats(),
    faults: w.unit.faults().map((f) => ({ ...f })),
    dma,
    arena: w.sim.memory.arena(),
    bytes: [SRC_PA, DST_PA, HBM_BASE, BIG_PA].map((pa) => digest(w.sim.memory.read(pa, 8 * 4096))),
  };
}

/** The IOTLB contents, seen through the counters: which of these translations hit. */
function probeTlb(w: World): bigint[] {
  const hits: bigint[] = [];
  for (const iova of [SRC, SRC + 3n * K4, SRC + 5n * K4, DST, DST + 2n * K4, DST + 7n * K4, DEV, BIG + 0x1234n]) {
    const before = w.unit.stats().hits;
    w.sim.iommu.translate(RID, iova, 'read');
    hits.push(w.unit.stats().hits - before);
  }
  return hits;
}

type Case = [string, DmaEndpoint, DmaEndpoint, bigint];
const at = (addr: bigint, rid = RID): DmaEndpoint => ({ rid, addr });
const CASES: Case[] = [
  ['a few bytes', at(SRC + 0x10n), at(DST + 0x20n), 100n],
  ['a whole page', at(SRC + K4), at(DST + K4), K4],
  ['one byte at a page end', at(SRC + 2n * K4 + 4095n), at(DST + 3n * K4 + 4095n), 1n],
  ['crossing a page', at(SRC + 4000n), at(DST), 200n],
  ['from a page never written', at(SRC + 3n * K4), at(DST + 2n * K4), K4],
  ['into a page never written', at(SRC + 6n * K4), at(DST + 4n * K4 + 8n), 3000n],
  ['to a read-only page', at(SRC), at(DST + 7n * K4), 64n],
  ['to an unmapped address', at(SRC), at(0x7000_0000n), 64n],
  ['forward overlap', at(SRC + 2n * K4), at(SRC + 2n * K4 + 8n), 64n],
  ['backward overlap', at(SRC + 2n * K4 + 64n), at(SRC + 2n * K4), 128n],
  ['to device memory', at(SRC + 4n * K4), at(DEV + K4), K4],
  ['from device memory', at(DEV + K4 + 7n), at(DST + 5n * K4), 512n],
  ['inside a 2M leaf', at(BIG + 0x1234n), at(DST + 6n * K4 + 0x100n), 3000n],
  ['across backing pages of a 2M leaf', at(BIG + 4090n), at(DST + 6n * K4), 100n],
  ['two requesters, one domain', at(SRC + 0x300n, RID2), at(DST + 0x300n), 256n],
  ['two domains', at(SRC + 0x300n, RID3), at(DST + 0x300n), 256n],
  ['empty', at(SRC), at(DST), 0n],
];

function result(r: DmaResult): unknown {
  return { ok: r.ok, code: r.code, bytesDone: r.bytesDone, fault: r.fault };
}

describe.each(FORMATS)('%s', (format) => {
  it('the one-page copy leaves what the general copy loop leaves', async () => {
    const a = await world(format);
    const b = await world(format);
    expect(state(a)).toEqual(state(b));
    // Each case cold, then warm (the IOTLB has both sides: the fast path serves it), then after
    // other cases evicted part of the 8-entry IOTLB.
    for (const round of [0, 1, 2]) {
      for (const [name, s, d, len] of CASES) {
        const ra = a.sim.dma.copy(s, d, len);
        const rb = b.sim.dma.copyv([{ src: s, dst: d, length: len }]);
        expect([round, name, result(ra)]).toEqual([round, name, result(rb)]);
        expect([round, name, state(a)]).toEqual([round, name, state(b)]);
        if (round === 1) {
          // Again at once: both sides are IOTLB hits now.
          a.sim.dma.copy(s, d, len);
          b.sim.dma.copyv([{ src: s, dst: d, length: len }]);
          expect([name, state(a)]).toEqual([name, state(b)]);
        }
      }
      expect(probeTlb(a)).toEqual(probeTlb(b));
    }
    // A warm one-page copy is two IOTLB hits and nothing else, and the bytes land.
    a.sim.dma.copy(at(SRC + 0x10n), at(DST + 0x20n), 100n);
    const before = a.unit.stats();
    expect(a.sim.dma.copy(at(SRC + 0x10n), at(DST + 0x20n), 100n)).toMatchObject({ ok: true, bytesDone: 100n });
    const after = a.unit.stats();
    expect([after.hits - before.hits, after.misses - before.misses, after.translations - before.translations]).toEqual([2n, 0n, 2n]);
    expect(a.sim.memory.read(DST_PA + 0x20n, 100)).toEqual(a.sim.memory.read(SRC_PA + 0x10n, 100));
  });

  it('a dirty-tracking domain: a write through a clean cached leaf still marks it', async () => {
    const a = await world(format, { dirtyTracking: true });
    const b = await world(format, { dirtyTracking: true });
    for (const w of [a, b]) {
      // Reads cache the destination leaves without the write right.
      for (const iova of [DST, DST + K4, DST + 2n * K4]) w.sim.iommu.translate(RID, iova, 'read');
    }
    for (const [s, d, len] of [[SRC, DST + 8n, 64n], [SRC + K4, DST + K4, K4], [SRC, DST + 8n, 64n]] as const) {
      expect(result(a.sim.dma.copy(at(s), at(d), len))).toEqual(result(b.sim.dma.copyv([{ src: at(s), dst: at(d), length: len }])));
      expect(state(a)).toEqual(state(b));
    }
    const dirty = (w: World) => Array.from(w.dom.readAndClearDirty(SRC, 0x30_0000n, K4, { noClear: true }));
    expect(dirty(a)).toEqual(dirty(b));
    expect(dirty(a).some((x) => x !== 0n)).toBe(true);
  });
});

// The formats whose families take a PASID (VT-d in scalable mode, SMMUv3 stage 1, RISC-V).
describe.each(['vtd-ss', 'x86-64', 'arm-lpae-s1', 'riscv'] as PgtableFormat[])('the one-page copy in %s', (format) => {
  it('requesters it must not serve: a DMA PASID, ATS, identity, detached, phys, a peer route', async () => {
    // In the same domain: RID_PASID's DMA carries PASID 1 (bound to the domain itself, so its
    // plain-tagged entries must not answer it), RID_ATS has an ATC. RID_IDENT is in an identity
    // domain, RID_NONE is attached nowhere. Once ATS is on the unit, every requester's flags count.
    const RID_PASID = RID + 4;
    const RID_ATS = RID + 5;
    const RID_IDENT = RID + 6;
    const RID_NONE = RID + 7;
    async function special(): Promise<World> {
      const w = await world(format, { scalableMode: format === 'vtd-ss' || format === 'x86-64' });
      w.sim.iommu.attach(RID_PASID, w.dom);
      w.sim.iommu.enablePasid(RID_PASID, { bits: 8 });
      w.sim.iommu.attachPasid(RID_PASID, 1, w.dom);
      w.sim.iommu.setDmaPasid(RID_PASID, 1);
      w.sim.iommu.attach(RID_ATS, w.dom);
      w.sim.iommu.enableAts(RID_ATS, { atcEntries: 16 });
      w.sim.iommu.attach(RID_IDENT, w.unit.createDomain({ type: 'identity' }));
      return w;
    }
    const cases: Case[] = [
      ['plain, with ATS on the unit', at(SRC + 0x10n), at(DST + 0x20n), 100n],
      // Each PASID and ATS case right after plain requests put both of its pages in the IOTLB.
      ['plain, the pages of the next', at(SRC + K4), at(DST + K4), 512n],
      ['from a DMA PASID', at(SRC + K4, RID_PASID), at(DST + K4), 512n],
      ['plain, the pages of the next', at(SRC + K4), at(DST + K4), 512n],
      ['to a DMA PASID', at(SRC + K4), at(DST + K4 + 8n, RID_PASID), 512n],
      ['plain, the pages of the next', at(SRC + 2n * K4), at(DST + 2n * K4), K4],
      ['from an ATS device', at(SRC + 2n * K4, RID_ATS), at(DST + 2n * K4), K4],
      ['plain, the pages of the next', at(SRC + 2n * K4), at(DST + 2n * K4), K4],
      ['to an ATS device', at(SRC + 2n * K4), at(DST + 2n * K4, RID_ATS), K4],
      ['from an identity domain', at(SRC_PA + 0x40n, RID_IDENT), at(DST + 0x40n), 64n],
      ['to an identity domain', at(SRC + 0x40n), at(DST_PA + 0x80n, RID_IDENT), 64n],
      ['from a detached requester', at(SRC, RID_NONE), at(DST), 64n],
      ['to a detached requester', at(SRC), at(DST, RID_NONE), 64n],
      ['from phys', { rid: 'phys', addr: SRC_PA + 0x100n }, at(DST + 0x100n), 64n],
      ['to phys', at(SRC + 0x100n), { rid: 'phys', addr: DST_PA + 0x200n }, 64n],
    ];
    const a = await special();
    const b = await special();
    const same = (name: string, [s, d, len]: [DmaEndpoint, DmaEndpoint, bigint]): void => {
      const ra = a.sim.dma.copy(s, d, len);
      const rb = b.sim.dma.copyv([{ src: s, dst: d, length: len }]);
      expect([name, result(ra)]).toEqual([name, result(rb)]);
      expect([name, state(a)]).toEqual([name, state(b)]);
    };
    // Cold, warm, warm again; each case twice at once, the second finding both sides in the
    // small IOTLB.
    for (const round of [0, 1, 2]) {
      for (const [name, s, d, len] of cases.flatMap((c) => [c, c])) same(`${round} ${name}`, [s, d, len]);
    }
    // A peer route for RID2 over a destination page the IOTLB holds: its writes go to device
    // memory from then on, not through the IOMMU.
    const routed: [DmaEndpoint, DmaEndpoint, bigint] = [at(SRC + 0x200n), at(DST + 6n * K4 + 0x200n, RID2), 64n];
    same('before the route', routed);
    same('before the route, warm', routed);
    for (const w of [a, b]) w.sim.iommu.addP2pRoute(RID2, DST + 6n * K4, K4, HBM_BASE);
    same('routed', routed);
    expect(a.sim.memory.read(HBM_BASE + 0x200n, 64)).toEqual(a.sim.memory.read(SRC_PA + 0x200n, 64));
    expect(a.unit.stats().atcHits).toBeGreaterThan(0n);
  });
});

describe('the one-page copy when the arena runs out', () => {
  it('fails as the general path fails: ENOMEM, nothing moved', async () => {
    const mk = async () => {
      const sim = await makeSim(2 << 20);
      const r = await rig('vtd-ss', { sim });
      r.dom.map(SRC, SRC_PA, K4, Prot.RW);
      for (let i = 0n; i < 1024n; i++) r.dom.map(DST + i * K4, DST_PA + i * K4, K4, Prot.RW);
      sim.memory.write(SRC_PA, pattern(4096, 3));
      return r;
    };
    const a = await mk();
    const b = await mk();
    // Warm both sides, then fill the arena by backing destination pages until a copy fails.
    let i = 0n;
    for (;; i++) {
      const ra = a.sim.dma.copy(at(SRC), at(DST + i * K4), K4);
      const rb = b.sim.dma.copyv([{ src: at(SRC), dst: at(DST + i * K4), length: K4 }]);
      expect(result(ra)).toEqual(result(rb));
      expect(a.sim.memory.arena()).toEqual(b.sim.memory.arena());
      if (!ra.ok) { expect(ra).toMatchObject({ code: 'ENOMEM', bytesDone: 0n }); break; }
      if (i > 1000n) throw new Error('the arena did not run out');
    }
    // The same copy again, now with both sides IOTLB hits.
    expect(result(a.sim.dma.copy(at(SRC), at(DST + i * K4), K4))).toEqual(result(b.sim.dma.copyv([{ src: at(SRC), dst: at(DST + i * K4), length: K4 }])));
    expect(a.unit.stats()).toEqual(b.unit.stats());
    expect(a.sim.dma.stats().bytesToRam).toBe(b.sim.dma.stats().bytesToRam);
  });
});

/**
 * The reference copy: one translate() per leaf, in the order the engine translates (at each
 * position the source side first), and the bytes moved by host reads and writes.
 */
function refCopy(sim: Simulator, s: DmaEndpoint, d: DmaEndpoint, len: bigint): DmaResult {
  let done = 0n;
  let sAt = 0n, sOut = 0n, sCov = 0n, dAt = 0n, dOut = 0n, dCov = 0n;
  // A leaf's size is the format's choice (AMD v1 maps 16K with one leaf): the translation says it.
  const side = (rid: number, iova: bigint, access: 'read' | 'write', name: 'src' | 'dst'): DmaResult | { pa: bigint; cov: bigint } => {
    const r = sim.iommu.translate(rid, iova, access);
    if (r.ok) return { pa: r.pa, cov: r.pageSize - (iova % r.pageSize) };
    return { ok: false, code: r.code, bytesDone: done, fault: { side: name, iova, reason: r.reason, familyCode: r.familyCode } };
  };
  while (done < len) {
    const si = s.addr + done;
    const di = d.addr + done;
    if (si - sAt >= sCov) {
      const r = side(s.rid as number, si, 'read', 'src');
      if (!('pa' in r)) return r;
      sAt = si; sOut = r.pa; sCov = r.cov;
    }
    if (di - dAt >= dCov) {
      const r = side(d.rid as number, di, 'write', 'dst');
      if (!('pa' in r)) return r;
      dAt = di; dOut = r.pa; dCov = r.cov;
    }
    const n = [len - done, sCov - (si - sAt), dCov - (di - dAt)].reduce((x, y) => (x < y ? x : y));
    sim.memory.write(dOut + (di - dAt), sim.memory.read(sOut + (si - sAt), Number(n)));
    done += n;
  }
  return { ok: true, code: 'OK', bytesDone: done };
}

describe.each(FORMATS)('%s: the copy loop', (format) => {
  it('translates, counts, faults and moves bytes as one translate() per leaf does', async () => {
    const a = await world(format);
    const b = await world(format);
    // Long copies over scattered 4K leaves, a 2M leaf and device memory, ending in faults.
    const copies: Case[] = [
      ['scattered source', at(SRC + 100n), at(DST + 50n), 6n * K4],
      ['2M leaf to 4K leaves', at(BIG + 0x1800n), at(DST + 10n), 6n * K4 + 10n],
      ['4K leaves into a 2M leaf', at(SRC), at(BIG + 0x3000n), 8n * K4],
      ['into device memory', at(SRC + 7n), at(DEV), 3n * K4],
      ['runs into the read-only page', at(SRC), at(DST + 3n * K4 + 1n), 6n * K4],
      ['runs off the end of the source', at(SRC + 5n * K4), at(DST), 4n * K4],
      ['two requesters', at(SRC, RID2), at(DST), 5n * K4],
      ['two domains', at(SRC, RID3), at(DST + 1n), 5n * K4],
    ];
    for (const round of [0, 1]) {
      for (const [name, s, d, len] of copies) {
        const before = a.sim.dma.stats();
        const ra = a.sim.dma.copy(s, d, len);
        const rb = refCopy(b.sim, s, d, len);
        expect([round, name, result(ra)]).toEqual([round, name, result(rb)]);
        expectSameCounters(a, b, name);
        expect(a.unit.faults().map((f) => ({ ...f }))).toEqual(b.unit.faults().map((f) => ({ ...f })));
        for (const pa of [SRC_PA, DST_PA, HBM_BASE, BIG_PA]) expect(digest(a.sim.memory.read(pa, 8 * 4096))).toBe(digest(b.sim.memory.read(pa, 8 * 4096)));
        // The DMA counters: what the reference moved, as DMA.
        const after = a.sim.dma.stats();
        const moved = rb.bytesDone;
        const toDev = d.addr >= DEV && d.addr < DEV + 4n * K4;
        expect(after.bytesToRam + after.bytesToDevice - (before.bytesToRam + before.bytesToDevice)).toBe(moved);
        if (toDev) expect(after.bytesToDevice - before.bytesToDevice).toBe(moved);
        expect(after.faults - before.faults).toBe(ra.ok ? 0n : 1n);
      }
      expect(probeTlb(a)).toEqual(probeTlb(b));
    }
  });
});

// Runs of IOTLB hits (assembly/iommu/batch.ts fastRun): 4K leaves whose outputs continue on both
// sides, probed a run at a time once the IOTLB holds them. Pages 0..47 of each side, in physical
// order but for the breaks below; an IOTLB of 16 sets x 4 ways (64 entries) so that a 48-page copy
// (96 translations) evicts part of itself.
const RUN_SRC = 0x100_0000n;
const RUN_DST = 0x200_0000n;
const RUN_SRC_PA = RAM_BASE + 0x100_0000n;
const RUN_DST_PA = RAM_BASE + 0x200_0000n;
const RUN_PAGES = 48n;

/**
 * A rig with an IOTLB of 16 sets x 4 ways, RID and RID2 in its domain, RID3 in a second domain
 * of the same unit; `svnapot` turns on RISC-V's 64K NAPOT leaves in the first.
 */
async function streamRig(format: PgtableFormat, svnapot = false): Promise<Rig & { other: Rig['dom'] }> {
  const ias = format === 'riscv' ? 39 : 48;
  const sim = await makeSim();
  const r = await rig(format, { sim, ias, tlbSets: 16, tlbWays: 4, attach: false, svnapot: svnapot && format === 'riscv' ? true : undefined });
  const other = r.unit.createDomain({ type: 'paging', format, ias });
  sim.iommu.attach(RID, r.dom);
  sim.iommu.attach(RID2, r.dom);
  sim.iommu.attach(RID3, other);
  return { ...r, other };
}

async function runWorld(format: PgtableFormat): Promise<Rig & { other: Rig['dom'] }> {
  const r = await streamRig(format);
  const { sim, other } = r;
  for (const d of [r.dom, other]) {
    for (let i = 0n; i < RUN_PAGES; i++) {
      // Source page 21 lives elsewhere (the output breaks there); destination page 40 is read-only.
      d.map(RUN_SRC + i * K4, i === 21n ? RUN_SRC_PA + 0x10_0000n : RUN_SRC_PA + i * K4, K4, Prot.RW);
      d.map(RUN_DST + i * K4, RUN_DST_PA + i * K4, K4, i === 40n ? Prot.READ : Prot.RW);
    }
  }
  sim.memory.write(RUN_SRC_PA, pattern(Number(RUN_PAGES) * 4096, 7));
  sim.memory.write(RUN_SRC_PA + 0x10_0000n, pattern(4096, 8));
  return r;
}

/**
 * One copy on `a` and the reference copy (one translate() per leaf) on `b`: the same result,
 * counters, IOTLB bytes, fault records and bytes. Returns `a`'s result.
 */
function runCopy(a: Rig, b: Rig, name: string, s: DmaEndpoint, d: DmaEndpoint, len: bigint, bytesAt = [RUN_SRC_PA, RUN_DST_PA], pages = RUN_PAGES): DmaResult {
  const ra = a.sim.dma.copy(s, d, len);
  const rb = refCopy(b.sim, s, d, len);
  expect([name, result(ra)]).toEqual([name, result(rb)]);
  expectSameCounters(a, b, name);
  expect([name, tlbBytes(a)]).toEqual([name, tlbBytes(b)]);
  expect(a.unit.faults().map((f) => ({ ...f }))).toEqual(b.unit.faults().map((f) => ({ ...f })));
  for (const pa of bytesAt) expect([name, digest(a.sim.memory.read(pa, Number(pages) * 4096))]).toEqual([name, digest(b.sim.memory.read(pa, Number(pages) * 4096))]);
  return ra;
}

describe.each(FORMATS)('%s: runs of IOTLB hits', (format) => {
  it('translate, count, fault, evict and move bytes as one translate() per leaf does', async () => {
    const a = await runWorld(format);
    const b = await runWorld(format);
    const copies: Case[] = [
      ['pages 0..15, warms them', at(RUN_SRC), at(RUN_DST), 16n * K4],
      ['pages 0..15 again: one run of hits', at(RUN_SRC), at(RUN_DST), 16n * K4],
      ['a run that ends in a miss', at(RUN_SRC), at(RUN_DST), 20n * K4],
      ['not page-aligned, partly warm', at(RUN_SRC + 0x10n), at(RUN_DST + 0x10n), 18n * K4],
      ['sides out of step', at(RUN_SRC), at(RUN_DST + K4), 12n * K4],
      ['across the output break', at(RUN_SRC + 16n * K4), at(RUN_DST + 16n * K4), 10n * K4],
      ['across the output break, warm', at(RUN_SRC + 16n * K4), at(RUN_DST + 16n * K4), 10n * K4],
      ['up to the read-only page', at(RUN_SRC + 30n * K4), at(RUN_DST + 30n * K4), 12n * K4],
      ['up to the read-only page, warm', at(RUN_SRC + 30n * K4), at(RUN_DST + 30n * K4), 12n * K4],
      ['the whole range: evicts itself', at(RUN_SRC), at(RUN_DST), RUN_PAGES * K4],
      ['the whole range again', at(RUN_SRC), at(RUN_DST), RUN_PAGES * K4],
      ['pages 0..15 then invalidated in the middle', at(RUN_SRC), at(RUN_DST), 16n * K4],
      ['two requesters, one domain', at(RUN_SRC, RID2), at(RUN_DST), 16n * K4],
      ['two domains', at(RUN_SRC, RID3), at(RUN_DST), 16n * K4],
      ['two domains again', at(RUN_SRC, RID3), at(RUN_DST), 16n * K4],
      ['ends inside a page', at(RUN_SRC), at(RUN_DST), 5n * K4 + 100n],
    ];
    for (const [name, s, d, len] of copies) {
      if (name.includes('invalidated')) {
        for (const w of [a, b]) {
          w.sim.dma.copy(s, d, len);
          w.dom.invalidate(RUN_SRC + 6n * K4, RUN_SRC + 8n * K4);
          w.dom.invalidate(RUN_DST + 11n * K4, RUN_DST + 12n * K4);
        }
      }
      runCopy(a, b, name, s, d, len);
    }
    // A warm copy over 4K leaves is all hits, and they are counted once per leaf and side.
    a.sim.dma.copy(at(RUN_SRC), at(RUN_DST), 8n * K4);
    const before = a.unit.stats();
    expect(a.sim.dma.copy(at(RUN_SRC), at(RUN_DST), 8n * K4)).toMatchObject({ ok: true, bytesDone: 8n * K4 });
    const after = a.unit.stats();
    expect([after.hits - before.hits, after.misses - before.misses, after.translations - before.translations]).toEqual([16n, 0n, 16n]);
  });
});

/** The table entry above `iova`'s leaf, and where it is. */
function parentOf(w: Rig, iova: bigint): { slot: bigint; entry: bigint } {
  const l = w.dom.walk(iova).levels;
  const p = l[l.length - 2]!;
  return { slot: p.table + BigInt(p.index) * 8n, entry: p.entry };
}

describe.each(FORMATS)('%s: a copy walks two streams', (format) => {
  it('each side keeps its own page-walk path; a guest\'s rewrite of either side\'s tables is seen at once', async () => {
    const a = await runWorld(format);
    const b = await runWorld(format);
    const copy = (name: string, s: DmaEndpoint, d: DmaEndpoint, len: bigint) => runCopy(a, b, name, s, d, len);
    // The two ranges part below the top levels: the source and destination walks alternate.
    copy('cold', at(RUN_SRC), at(RUN_DST), 20n * K4);
    // Again with an empty IOTLB, so both sides walk; the destination pages are backed now (a page
    // backed for the first time empties the page-walk cache, which would hide what is tested).
    for (const w of [a, b]) w.unit.invalidateAll();
    copy('walks again', at(RUN_SRC), at(RUN_DST), 20n * K4);
    // The source's leaf table repointed at the destination's (the last walk was the destination's,
    // so the source's path is the older one): the source now reads the destination's pages.
    const srcParent = parentOf(a, RUN_SRC);
    expect(parentOf(b, RUN_SRC)).toEqual(srcParent);
    for (const w of [a, b]) {
      w.sim.memory.write(srcParent.slot, new Uint8Array(new BigUint64Array([parentOf(w, RUN_DST).entry]).buffer));
      w.unit.invalidateAll();
    }
    copy('source repointed', at(RUN_SRC + 2n * K4), at(RUN_DST + 12n * K4), 8n * K4);
    // The destination's leaf table cleared (the last walk was the destination's): a fault at once.
    const dstParent = parentOf(a, RUN_DST);
    for (const w of [a, b]) {
      w.sim.memory.write(dstParent.slot, new Uint8Array(8));
      w.unit.invalidateAll();
    }
    expect(copy('destination cleared', at(RUN_SRC + 2n * K4), at(RUN_DST + 3n * K4), 4n * K4).ok).toBe(false);
    // Put back: both streams translate again.
    for (const w of [a, b]) {
      w.sim.memory.write(dstParent.slot, new Uint8Array(new BigUint64Array([dstParent.entry]).buffer));
      w.sim.memory.write(srcParent.slot, new Uint8Array(new BigUint64Array([srcParent.entry]).buffer));
      w.unit.invalidateAll();
    }
    expect(copy('restored', at(RUN_SRC), at(RUN_DST), 16n * K4).ok).toBe(true);
    expect(copy('restored, warm', at(RUN_SRC), at(RUN_DST), 16n * K4).ok).toBe(true);
  });
});

// Runs of misses (assembly/iommu/batch.ts fastPair): both sides' 4K pages translated in step, each
// side's misses read from the leaf table its last walk found (one walk per 2 MiB of iova). 64
// pages a side, each crossing into the next leaf table (source at page 20, destination at 32),
// physically in order but for the breaks below, through an IOTLB of 16 sets x 4 ways.
const CUR_SRC = 0x40_0000n - 20n * K4;
const CUR_DST = 0x80_0000n;
const CUR_DST0 = CUR_DST - 32n * K4;
const CUR_SRC_PA = RAM_BASE + 0x300_0000n;
const CUR_DST_PA = RAM_BASE + 0x400_0000n;
const CUR_PAGES = 64n;

async function cursorWorld(format: PgtableFormat): Promise<Rig & { other: Rig['dom'] }> {
  const r = await streamRig(format, true);
  const { sim, other } = r;
  for (const d of [r.dom, other]) {
    for (let i = 0n; i < CUR_PAGES; i++) {
      // Source: page 12 lives elsewhere, page 45 is not mapped.
      if (i !== 45n) d.map(CUR_SRC + i * K4, CUR_SRC_PA + (i === 12n ? 0x10_0000n : i * K4), K4, Prot.RW);
      // Destination: page 8 lives elsewhere, page 41 is read-only, pages 48..63 are one 64K mapping
      // (one leaf where the format has 64K leaves in its last level: AMD v1, RISC-V NAPOT).
      if (i < 48n) d.map(CUR_DST0 + i * K4, CUR_DST_PA + (i === 8n ? 0x10_0000n : i * K4), K4, i === 41n ? Prot.READ : Prot.RW);
    }
    d.map(CUR_DST0 + 48n * K4, CUR_DST_PA + 48n * K4, 16n * K4, Prot.RW);
  }
  sim.memory.write(CUR_SRC_PA, pattern(Number(CUR_PAGES) * 4096, 11));
  sim.memory.write(CUR_SRC_PA + 0x10_0000n, pattern(4096, 12));
  return r;
}

describe.each(FORMATS)('%s: runs of misses across leaf tables', (format) => {
  it('translate, count, fault, evict and move bytes as one translate() per leaf does', async () => {
    const a = await cursorWorld(format);
    const b = await cursorWorld(format);
    const copy = (name: string, s: DmaEndpoint, d: DmaEndpoint, len: bigint) =>
      runCopy(a, b, name, s, d, len, [CUR_SRC_PA, CUR_DST_PA, CUR_SRC_PA + 0x10_0000n, CUR_DST_PA + 0x10_0000n], CUR_PAGES);
    const cold = () => { for (const w of [a, b]) w.unit.invalidateAll(); };
    const cases: Case[] = [
      ['before the breaks', at(CUR_SRC), at(CUR_DST0), 8n * K4],
      ['destination page 8 breaks the run', at(CUR_SRC), at(CUR_DST0), 12n * K4],
      ['source page 12 breaks the run', at(CUR_SRC + 9n * K4), at(CUR_DST0 + 9n * K4), 10n * K4],
      ['across both leaf-table edges', at(CUR_SRC + 13n * K4), at(CUR_DST0 + 13n * K4), 28n * K4],
      ['up to the read-only page', at(CUR_SRC + 30n * K4), at(CUR_DST0 + 30n * K4), 14n * K4],
      ['up to the unmapped source page', at(CUR_SRC + 42n * K4), at(CUR_DST0 + 42n * K4 + K4), 6n * K4],
      ['into the 64K mapping', at(CUR_SRC + 46n * K4), at(CUR_DST0 + 46n * K4), 18n * K4],
      ['sides out of step, not page-aligned', at(CUR_SRC + 14n * K4 + 0x40n), at(CUR_DST0 + 20n * K4 + 0x40n), 20n * K4],
      ['two requesters, one domain', at(CUR_SRC + 13n * K4, RID2), at(CUR_DST0 + 13n * K4), 28n * K4],
      ['two domains', at(CUR_SRC + 13n * K4, RID3), at(CUR_DST0 + 13n * K4), 28n * K4],
      ['ends inside a page', at(CUR_SRC + 13n * K4), at(CUR_DST0 + 13n * K4), 20n * K4 + 300n],
    ];
    for (const warm of [false, true]) {
      for (const [name, s, d, len] of cases) {
        if (!warm) cold();
        copy(`${name}${warm ? ', warm' : ''}`, s, d, len);
      }
    }
    // A guest rewrites a source leaf between two copies (an unmap and a map at another output,
    // no invalidation yet): the IOTLB still answers for it, and once invalidated the next copy
    // walks the new entry.
    for (const w of [a, b]) {
      w.dom.unmap(CUR_SRC + 25n * K4, K4);
      w.dom.map(CUR_SRC + 25n * K4, CUR_SRC_PA + 0x10_0000n, K4, Prot.RW);
    }
    copy('a leaf rewritten, stale IOTLB', at(CUR_SRC + 13n * K4), at(CUR_DST0 + 13n * K4), 28n * K4);
    for (const w of [a, b]) w.dom.invalidate(CUR_SRC + 25n * K4, CUR_SRC + 26n * K4);
    expect(copy('a leaf rewritten, invalidated', at(CUR_SRC + 13n * K4), at(CUR_DST0 + 13n * K4), 28n * K4).bytesDone).toBe(28n * K4);
    cold();
    copy('a leaf rewritten, cold', at(CUR_SRC + 13n * K4), at(CUR_DST0 + 13n * K4), 28n * K4);
    // All misses with the outputs in order: counted once per page and side.
    cold();
    const before = a.unit.stats();
    expect(a.sim.dma.copy(at(CUR_SRC + 13n * K4), at(CUR_DST0 + 13n * K4), 12n * K4)).toMatchObject({ ok: true, bytesDone: 12n * K4 });
    const after = a.unit.stats();
    expect([after.hits - before.hits, after.misses - before.misses, after.walks - before.walks]).toEqual([0n, 24n, 24n]);
  });
});
