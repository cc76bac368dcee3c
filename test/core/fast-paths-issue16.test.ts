/**
 * The issue-15 fast paths (translateBatch, DMA runs) against issue 16's semantics: a request
 * with a PASID, an ATS device (its ATC; PRI page requests), a nested domain and a dirty-tracking
 * domain give through translateBatch and DMA copies exactly what translate() one address at a
 * time gives: outputs, statuses, every unit counter, fault records, page requests, dirty bitmaps
 * and the bytes moved. Each case builds two identical machines: one runs the fast entry, the
 * other the reference.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type Simulator, type IommuUnit, type IommuDomain, type PgtableFormat, type IommuFamily } from '../../src/index.js';
import { makeSim, pattern, RAM_BASE } from '../helpers/sim.js';
import { RID } from './helpers/setup.js';

const K4 = 0x1000n;
const DATA = RAM_BASE + 0x1000_1000n; // off 64K alignment: 4K leaves in every format
const RID2 = RID + 1;

type Access = 'read' | 'write' | 'rw';
interface Twin { sim: Simulator; unit: IommuUnit }

/** translateBatch on `a`, translate() one by one on `b`: equal outputs, statuses, counters, records. */
function sameBatch(a: Twin, b: Twin, rid: number, iovas: bigint[], access: Access, pasid?: number): void {
  const opts = pasid === undefined ? undefined : { pasid };
  const batch = a.sim.iommu.translateBatch(rid, BigUint64Array.from(iovas), access, opts);
  let faults = 0;
  iovas.forEach((iova, i) => {
    const r = b.sim.iommu.translate(rid, iova, access, opts);
    expect([i, batch.status[i] === 0, batch.out[i]]).toEqual([i, r.ok, r.ok ? r.pa : 0n]);
    if (!r.ok) faults++;
  });
  expect(batch.faults).toBe(faults);
  sameState(a, b);
}

function sameState(a: Twin, b: Twin): void {
  expect(a.unit.stats()).toEqual(b.unit.stats());
  expect(a.unit.faults()).toEqual(b.unit.faults());
  expect(a.unit.pageRequests()).toEqual(b.unit.pageRequests());
}

/**
 * The reference of a DMA copy (same page offset on both sides, 4K leaves): per page, translate
 * the source for read, then the destination for write, and move the bytes; stops at a fault.
 */
function refCopy(sim: Simulator, src: { rid: number; addr: bigint }, dst: { rid: number; addr: bigint }, len: bigint): bigint {
  let off = 0n;
  while (off < len) {
    const left = K4 - ((src.addr + off) & 0xfffn);
    const n = len - off < left ? len - off : left;
    const s = sim.iommu.translate(src.rid, src.addr + off, 'read');
    if (!s.ok) return off;
    const d = sim.iommu.translate(dst.rid, dst.addr + off, 'write');
    if (!d.ok) return off;
    sim.memory.write(d.pa, sim.memory.read(s.pa, Number(n)));
    off += n;
  }
  return off;
}

/** sim.dma.copy on `a`, refCopy on `b`: the same bytes done, counters and records. */
function sameCopy(a: Twin, b: Twin, src: { rid: number; addr: bigint }, dst: { rid: number; addr: bigint }, len: bigint): bigint {
  const r = a.sim.dma.copy(src, dst, len);
  const done = refCopy(b.sim, src, dst, len);
  expect(r.bytesDone ?? len).toBe(done);
  expect(r.ok).toBe(done === len);
  sameState(a, b);
  return done;
}

/** Data pages 0..n-1 at DATA, filled with a pattern (the same in both twins). */
function fill(sim: Simulator, pages: number, seed: number): void {
  sim.memory.write(DATA, pattern(pages * 4096, seed));
}

describe('PASID requests through the fast paths', () => {
  async function build(): Promise<Twin & { dom: IommuDomain; other: IommuDomain }> {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family: 'smmuv3', tlbSets: 16, tlbWays: 4 });
    const dom = unit.createDomain({ type: 'paging', format: 'arm-lpae-s1' });
    const other = unit.createDomain({ type: 'paging', format: 'arm-lpae-s1' });
    sim.iommu.attach(RID, dom);
    sim.iommu.attach(RID2, dom);
    sim.iommu.enablePasid(RID, { bits: 8 });
    // PASID 1 on the RID's own domain (entries of both tags for one iova), PASID 2 on another.
    sim.iommu.attachPasid(RID, 1, dom);
    sim.iommu.attachPasid(RID, 2, other);
    for (let i = 0n; i < 32n; i++) {
      dom.map(0x10_0000n + i * K4, DATA + i * K4, K4, i === 3n ? Prot.READ : Prot.RW);
      other.map(0x10_0000n + i * K4, DATA + (64n + i) * K4, K4, Prot.RW);
    }
    fill(sim, 128, 3);
    return { sim, unit, dom, other };
  }

  it('plain, PASID-tagged and DMA-PASID requests give what translate() gives; a plain probe never hits a PASID entry', async () => {
    const a = await build();
    const b = await build();
    const iovas = Array.from({ length: 80 }, (_, i) => 0x10_0000n + BigInt((i * 7) % 36) * K4 + BigInt((i * 37) & 0xfff));
    for (const round of [0, 1]) {
      // PASID 1 caches entries of dom tagged with its slot; the plain requests must still miss.
      sameBatch(a, b, RID, iovas, 'read', 1);
      sameBatch(a, b, RID, iovas, round ? 'write' : 'read');
      sameBatch(a, b, RID, iovas, 'write', 2);
      sameBatch(a, b, RID, iovas, 'read', 5); // unbound: no-pasid faults
    }
    expect(a.unit.stats().pasidHits).toBeGreaterThan(0n);
    // The device's DMA carries PASID 2: the batch without a PASID option is a PASID request.
    for (const t of [a, b]) t.sim.iommu.setDmaPasid(RID, 2);
    sameBatch(a, b, RID, iovas, 'write');
    expect(sameCopy(a, b, { rid: RID, addr: 0x10_0000n + 0x80n }, { rid: RID2, addr: 0x10_8000n + 0x80n }, 20n * K4)).toBe(20n * K4);
    // Past the end of the PASID's mapping: a fault part way, recorded with the PASID.
    expect(sameCopy(a, b, { rid: RID2, addr: 0x10_0000n }, { rid: RID, addr: 0x10_0000n + 20n * K4 }, 20n * K4)).toBe(12n * K4);
    expect(a.sim.memory.read(DATA, 128 * 4096)).toEqual(b.sim.memory.read(DATA, 128 * 4096));
  });
});

describe('ATS devices through the fast paths', () => {
  async function build(pri: boolean): Promise<Twin & { dom: IommuDomain }> {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family: 'vtd', scalableMode: true, tlbSets: 16, tlbWays: 4 });
    const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss' });
    sim.iommu.attach(RID, dom);
    sim.iommu.attach(RID2, dom); // the same domain, no ATS
    sim.iommu.enableAts(RID, { atcEntries: 16, pri });
    for (let i = 0n; i < 48n; i++) dom.map(0x20_0000n + i * K4, DATA + i * K4, K4, Prot.RW);
    fill(sim, 96, 5);
    return { sim, unit, dom };
  }

  it.each([false, true])('pri %s: the ATC answers, misses are translation requests, failures are faults or page requests', async (pri) => {
    const a = await build(pri);
    const b = await build(pri);
    // 64 pages: the last 16 are not mapped.
    const iovas = Array.from({ length: 200 }, (_, i) => 0x20_0000n + BigInt((i * 13) % 64) * K4 + BigInt(i & 0xff));
    for (const access of ['read', 'write', 'read'] as const) {
      sameBatch(a, b, RID, iovas, access);
      sameBatch(a, b, RID2, iovas, access);
    }
    const s = a.unit.stats();
    expect(s.atcHits).toBeGreaterThan(0n);
    expect(s.atsRequests).toBeGreaterThan(0n);
    expect(s.hits).toBeGreaterThan(0n);
    // DMA from the ATS device to the plain one and back, in one domain.
    expect(sameCopy(a, b, { rid: RID, addr: 0x20_0000n + 0x10n }, { rid: RID2, addr: 0x20_0000n + 24n * K4 + 0x10n }, 20n * K4)).toBe(20n * K4);
    sameCopy(a, b, { rid: RID2, addr: 0x20_0000n + 40n * K4 }, { rid: RID, addr: 0x20_0000n }, 16n * K4); // runs off the mapping
    expect(a.sim.memory.read(DATA, 48 * 4096)).toEqual(b.sim.memory.read(DATA, 48 * 4096));
  });
});

describe('nested domains through the fast paths', () => {
  const PAIRS: [IommuFamily, PgtableFormat, PgtableFormat][] = [['smmuv3', 'arm-lpae-s1', 'arm-lpae-s2'], ['vtd', 'x86-64', 'vtd-ss']];

  async function build(family: IommuFamily, s1: PgtableFormat, s2fmt: PgtableFormat): Promise<Twin & { s2: IommuDomain; nested: IommuDomain }> {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family, tlbSets: 16, tlbWays: 4 });
    const guest = unit.createDomain({ type: 'paging', format: s1 });
    const IOVA = 0x7_0000_0000n;
    for (let i = 0n; i < 24n; i++) guest.map(IOVA + i * K4, DATA + i * K4, K4, i === 5n ? Prot.READ : Prot.RW);
    const s2 = unit.createDomain({ type: 'paging', format: s2fmt, nestParent: true });
    const tables = new Set<bigint>();
    for (let i = 0n; i < 24n; i++) for (const l of guest.walk(IOVA + i * K4).levels) tables.add(l.table);
    for (const t of tables) s2.map(t, t, K4, Prot.RW);
    for (let i = 0n; i < 20n; i++) s2.map(DATA + i * K4, DATA + i * K4, K4, Prot.RW); // the last 4 pages: stage-2 faults
    const nested = unit.createDomain({ type: 'nested', parent: s2, format: s1, root: guest.root });
    sim.iommu.attach(RID, nested);
    sim.iommu.attach(RID2, s2);
    fill(sim, 24, 7);
    return { sim, unit, s2, nested };
  }

  it.each(PAIRS)('%s: %s over %s', async (family, s1, s2fmt) => {
    const a = await build(family, s1, s2fmt);
    const b = await build(family, s1, s2fmt);
    const IOVA = 0x7_0000_0000n;
    const iovas = Array.from({ length: 120 }, (_, i) => IOVA + BigInt((i * 7) % 26) * K4 + BigInt(i * 3));
    for (const access of ['read', 'write'] as const) sameBatch(a, b, RID, iovas, access);
    expect(a.unit.stats().nestedWalks).toBeGreaterThan(0n);
    // The parent used directly (a paging domain: the plain fast path), then a change of it.
    const ipas = Array.from({ length: 30 }, (_, i) => DATA + BigInt(i % 22) * K4);
    sameBatch(a, b, RID2, ipas, 'read');
    for (const t of [a, b]) t.s2.unmap(DATA + 2n * K4, K4);
    sameBatch(a, b, RID, iovas, 'read');
    sameBatch(a, b, RID2, ipas, 'read');
    // DMA from the nested side into the parent's IPA space and back.
    sameCopy(a, b, { rid: RID, addr: IOVA + 6n * K4 + 8n }, { rid: RID2, addr: DATA + 12n * K4 + 8n }, 6n * K4);
    sameCopy(a, b, { rid: RID2, addr: DATA + 8n * K4 }, { rid: RID, addr: IOVA }, 8n * K4); // stops at the unmapped IPA
    expect(a.sim.memory.read(DATA, 24 * 4096)).toEqual(b.sim.memory.read(DATA, 24 * 4096));
  });
});

describe('dirty-tracking domains through the fast paths', () => {
  const FORMATS: PgtableFormat[] = ['vtd-ss', 'arm-lpae-s1', 'arm-lpae-s2', 'amd-v1', 'x86-64', 'riscv'];
  const FAMILY: Record<PgtableFormat, IommuFamily> = {
    'vtd-ss': 'vtd', 'arm-lpae-s1': 'smmuv3', 'arm-lpae-s2': 'smmuv3', 'amd-v1': 'amd-vi', 'x86-64': 'vtd', riscv: 'riscv',
  };

  async function build(format: PgtableFormat): Promise<Twin & { dom: IommuDomain; src: IommuDomain }> {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family: FAMILY[format], tlbSets: 16, tlbWays: 4 });
    const ias = format === 'riscv' ? 39 : 48;
    const dom = unit.createDomain({ type: 'paging', format, ias, dirtyTracking: true });
    const src = unit.createDomain({ type: 'paging', format, ias });
    sim.iommu.attach(RID, dom);
    sim.iommu.attach(RID2, src);
    dom.map(0x100_0000n, DATA, 64n * K4, Prot.RW);
    src.map(0x200_0000n, DATA + 64n * K4, 32n * K4, Prot.RW);
    fill(sim, 96, 9);
    dom.readAndClearDirty(0x100_0000n, 64n * K4, K4); // start clean
    return { sim, unit, dom, src };
  }

  const bitmap = (t: { dom: IommuDomain }, clear: boolean) => [...t.dom.readAndClearDirty(0x100_0000n, 64n * K4, K4, { noClear: !clear })];

  it.each(FORMATS)('%s: batch writes and DMA writes mark exactly what translate() marks', async (format) => {
    const a = await build(format);
    const b = await build(format);
    const page = (i: number) => 0x100_0000n + BigInt(i) * K4 + BigInt((i * 91) & 0xfff);
    // Reads cache clean leaves without write; writes to some of them, and to uncached ones.
    sameBatch(a, b, RID, Array.from({ length: 32 }, (_, i) => page(i)), 'read');
    sameBatch(a, b, RID, [3, 9, 9, 40, 41, 3, 17].map(page), 'write');
    sameBatch(a, b, RID, Array.from({ length: 48 }, (_, i) => page(i)), 'read');
    const first = bitmap(a, false);
    expect(first).toEqual(bitmap(b, false));
    expect(first.some((w) => w !== 0n)).toBe(true);
    // DMA into the tracked domain, and out of it (reads mark nothing).
    sameCopy(a, b, { rid: RID2, addr: 0x200_0000n + 0x40n }, { rid: RID, addr: 0x100_0000n + 20n * K4 + 0x40n }, 10n * K4);
    sameCopy(a, b, { rid: RID, addr: 0x100_0000n + 50n * K4 }, { rid: RID2, addr: 0x200_0000n }, 8n * K4);
    expect(bitmap(a, true)).toEqual(bitmap(b, true));
    // After the clear (IOTLB flushed), the same writes mark the pages again.
    sameBatch(a, b, RID, [3, 22, 60].map(page), 'write');
    sameCopy(a, b, { rid: RID2, addr: 0x200_0000n }, { rid: RID, addr: 0x100_0000n + 30n * K4 }, 4n * K4);
    expect(bitmap(a, true)).toEqual(bitmap(b, true));
    expect(a.sim.memory.read(DATA, 96 * 4096)).toEqual(b.sim.memory.read(DATA, 96 * 4096));
  });
});
