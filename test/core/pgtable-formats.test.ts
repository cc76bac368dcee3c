/**
 * Bit layouts of the formats added with issue 11, decoded with helpers/pte-formats.ts (written
 * from the spec tables, not from assembly/abi.ts), each entry also read from the raw bytes of its
 * table; and generic_pt-style procedures (kunit_iommu_pt.h: map every page size, best page size,
 * dynamic top level, sign-extended halves) for every generic_pt format.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type IommuDomain, type PgtableFormat, type Simulator } from '../../src/index.js';
import { HBM_BASE, RAM_BASE } from '../helpers/sim.js';
import { G1, K4, M2, P, readEntry, writeEntry } from './helpers/pte.js';
import { decodeAmd, decodeRiscv, decodeS2, decodeX86 } from './helpers/pte-formats.js';
import { expectErrno, rig, RID } from './helpers/setup.js';

const K16 = 16n << 10n;
const K64 = 64n << 10n;

/** The walk of `iova`, each level's entry checked against the raw bytes of its table. */
function walkBoth(sim: Simulator, dom: IommuDomain, iova: bigint) {
  const w = dom.walk(iova);
  for (const l of w.levels) expect(readEntry(sim, l.table, l.index)).toBe(l.entry);
  return w;
}

describe('ARM stage-2 layout', () => {
  it('S2AP bits 7:6, MemAttr 5:2 (OIWB 0xF, NC 0x5, device 0x1), SH, AF, XN, no nG; tables addr|3', async () => {
    const { sim, dom } = await rig('arm-lpae-s2', { ias: 40 });
    const cases: [number, number, boolean, boolean, number][] = [
      [P.READ | P.WRITE | P.CACHE, 0xf, true, true, 3], [P.READ, 0x5, true, false, 2], [P.WRITE | P.MMIO, 0x1, false, true, 2],
    ];
    let iova = 0n;
    for (const [prot, attr, r, wr, sh] of cases) {
      dom.map(iova, RAM_BASE + iova, K4, prot | P.NOEXEC);
      const w = walkBoth(sim, dom, iova);
      expect(w.levels.length).toBe(3); // IAS 40: concatenated start at level 1
      const e = decodeS2(w.levels.at(-1)!.entry);
      expect(e).toMatchObject({ valid: true, type: 1, memAttr: attr, s2apRead: r, s2apWrite: wr, sh, af: true, ng: false, xn: 3, oa: RAM_BASE + iova });
      for (let i = 0; i + 1 < w.levels.length; i++) expect(w.levels[i]!.entry).toBe(w.levels[i + 1]!.table | 3n);
      iova += K4;
    }
    dom.map(M2, HBM_BASE, M2, Prot.RW);
    const b = decodeS2(walkBoth(sim, dom, M2).levels.at(-1)!.entry);
    expect(b).toMatchObject({ valid: true, type: 0, memAttr: 0x5, s2apRead: true, s2apWrite: true, af: true, oa: HBM_BASE, xn: 0 });
  });
});

describe('ARM 16K and 64K granules', () => {
  it.each([[16384, 14, 25], [65536, 16, 29]])('granule %i: pages at the last level (type 1), blocks of 2^%i... at the next', async (granule, pageShift, blockShift) => {
    const { sim, dom } = await rig('arm-lpae-s1', { ias: 48, granule });
    const page = 1n << BigInt(pageShift);
    const block = 1n << BigInt(blockShift);
    dom.map(block, HBM_BASE, block + page, Prot.RW);
    const wb = walkBoth(sim, dom, block + 3n);
    expect(wb).toMatchObject({ ok: true, pa: HBM_BASE + 3n, pageSize: block });
    expect(Number(wb.levels.at(-1)!.entry & 3n)).toBe(1);
    const wp = walkBoth(sim, dom, 2n * block + 3n);
    expect(wp).toMatchObject({ ok: true, pa: HBM_BASE + block + 3n, pageSize: page });
    expect(Number(wp.levels.at(-1)!.entry & 3n)).toBe(3);
    // Index bits per level: granule shift - 3.
    const bits = pageShift - 3;
    expect(wp.levels.at(-1)!.index).toBe(Number(((2n * block) >> BigInt(pageShift)) & ((1n << BigInt(bits)) - 1n)));
    // A table of the last level takes granule bytes: 4 or 16 frames.
    expect(sim.memory.frameInfo(wp.levels.at(-1)!.table).tableEntries).toBe(1);
    expectErrno(() => dom.map(0n, RAM_BASE, K4, Prot.RW), 'EINVAL'); // below the smallest page
  });
});

describe('AMD v1 layout', () => {
  it('NextLevel 0 leaves of natural size, NextLevel 7 size-encoded leaves repeated over their slots, FC|IR|IW', async () => {
    const { sim, dom } = await rig('amd-v1', { ias: 48 });
    const sizes = [K4, 8n * K4 / 4n, K16, K64, 1n << 20n, M2, 4n * M2, G1, 1n << 38n];
    let iova = 1n << 40n; // beyond 3 levels: the top grows to 4
    for (const size of sizes) {
      dom.map(iova, HBM_BASE + size, size, size === K4 ? Prot.READ : Prot.RW);
      const w = walkBoth(sim, dom, iova + size - 1n);
      expect(w).toMatchObject({ ok: true, pa: HBM_BASE + 2n * size - 1n, pageSize: size });
      const leaf = w.levels.at(-1)!;
      const e = decodeAmd(leaf.entry);
      const natural = size === K4 || size === M2 || size === G1;
      expect(e).toMatchObject({ pr: true, fc: true, ir: true, iw: size !== K4, nextLevel: natural ? 0 : 7 });
      if (!natural) expect(e.size).toBe(size);
      expect(e.addr).toBe(HBM_BASE + size);
      // Every slot the leaf covers holds the same entry.
      const item = w.pageSize === size && natural ? size : [K4, M2, G1, 1n << 39n].filter((s) => s <= size).at(-1)!;
      const n = Number(size / item);
      const first = leaf.index - (leaf.index % n);
      for (let i = 0; i < n; i++) expect(readEntry(sim, leaf.table, first + i)).toBe(leaf.entry);
      // Tables: PR, NextLevel = the level below (levels 1-based), IR|IW.
      for (let i = 0; i + 1 < w.levels.length; i++) {
        const t = decodeAmd(w.levels[i]!.entry);
        expect(t).toMatchObject({ pr: true, ir: true, iw: true, addr: w.levels[i + 1]!.table, nextLevel: dom.levels - 1 - i });
      }
      iova += 1n << 39n;
    }
    expect(dom.levels).toBe(4);
  });

  it('the top level grows on demand (1..6 levels); old mappings keep translating', async () => {
    const { sim, dom } = await rig('amd-v1', { ias: 64, oas: 52 });
    expect(dom.levels).toBe(3);
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    const root0 = dom.root;
    dom.map(1n << 40n, RAM_BASE, K4, Prot.RW);
    expect(dom.levels).toBe(4);
    expect(dom.root).not.toBe(root0);
    const top = decodeAmd(readEntry(sim, dom.root, 0));
    expect(top).toMatchObject({ pr: true, nextLevel: 3, addr: root0 });
    dom.map(1n << 60n, RAM_BASE + K4, K4, Prot.RW);
    expect(dom.levels).toBe(6);
    expect(dom.walk(1n << 60n).levels[0]!.index).toBe(8); // the 6th level indexes bits 63:57
    expect(sim.iommu.translate(RID, 5n)).toMatchObject({ ok: true, pa: RAM_BASE + 5n });
    expect(sim.iommu.translate(RID, (1n << 60n) + 5n)).toMatchObject({ ok: true, pa: RAM_BASE + K4 + 5n });
    const small = await rig('amd-v1', { ias: 32 });
    expectErrno(() => small.dom.map(1n << 32n, RAM_BASE, K4, Prot.RW), 'ERANGE');
    expect(small.dom.pageSizes().at(-1)).toBe(1n << 31n);
  });

  it('512G is not a page size (erratum); every other power of two from 4K is', async () => {
    const { dom } = await rig('amd-v1', { ias: 64, oas: 52 });
    const s = dom.pageSizes();
    expect(s.length).toBe(51 - 12 + 1 - 1);
    expect(s).not.toContain(1n << 39n);
    expect(s[0]).toBe(K4);
    expect(s.at(-1)).toBe(1n << 51n);
  });
});

describe('x86-64 layout', () => {
  it('tables P|RW|U/S|A, leaves P|U/S|A (+RW|D when writable), PS above the last level', async () => {
    const { sim, dom } = await rig('x86-64', { ias: 57 });
    dom.map(0n, RAM_BASE, K4, Prot.READ);
    dom.map(M2, HBM_BASE, M2, Prot.RW);
    const w = walkBoth(sim, dom, 0n);
    expect(w.levels.length).toBe(5);
    for (let i = 0; i < 4; i++) expect(w.levels[i]!.entry).toBe(w.levels[i + 1]!.table | 0x27n);
    expect(decodeX86(w.levels[4]!.entry)).toMatchObject({ p: true, rw: false, us: true, a: true, d: false, ps: false, addr: RAM_BASE, xd: false });
    const b = walkBoth(sim, dom, M2);
    expect(b.levels.length).toBe(4);
    expect(b.levels[3]!.entry).toBe(HBM_BASE | 0xe7n);
    expect(dom.pageSizes()).toEqual([K4, M2, G1]);
  });
});

describe('RISC-V layout', () => {
  it('tables V alone, leaves V|R|W|X|U|A|D by prot, PPN in 53:10, NAPOT 64K over 16 slots', async () => {
    const { sim, dom } = await rig('riscv', { ias: 39 });
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    dom.map(K4, RAM_BASE, K4, Prot.READ | P.NOEXEC);
    dom.map(K64, HBM_BASE, K64, Prot.RW);
    dom.map(M2, HBM_BASE, M2, Prot.RW);
    const w = walkBoth(sim, dom, 0n);
    expect(w.levels.length).toBe(3);
    for (let i = 0; i < 2; i++) expect(w.levels[i]!.entry).toBe(((w.levels[i + 1]!.table >> 12n) << 10n) | 1n);
    expect(decodeRiscv(w.levels[2]!.entry)).toMatchObject({ v: true, r: true, w: true, x: true, u: true, a: true, d: true, n: false, addr: RAM_BASE });
    expect(decodeRiscv(walkBoth(sim, dom, K4).levels[2]!.entry)).toMatchObject({ r: true, w: false, x: false, d: false });
    const n = walkBoth(sim, dom, K64 + 5n * K4 + 3n);
    expect(n).toMatchObject({ ok: true, pa: HBM_BASE + 5n * K4 + 3n, pageSize: K64 });
    const e = decodeRiscv(n.levels[2]!.entry);
    expect(e).toMatchObject({ napot64k: true, addr: HBM_BASE | 0x8000n });
    for (let i = 16; i < 32; i++) expect(readEntry(sim, n.levels[2]!.table, i)).toBe(n.levels[2]!.entry);
    expect(decodeRiscv(walkBoth(sim, dom, M2).levels[1]!.entry)).toMatchObject({ r: true, w: true, addr: HBM_BASE });
    expect(dom.unmap(K64, K4)).toBe(K64); // generic_pt: the whole contiguous leaf
    expect(dom.walk(K64 + 15n * K4).ok).toBe(false);
  });
});

// generic_pt formats and widths as kunit_generic_pt.h runs them (kunit_fmt_cfgs).
const GPT: [PgtableFormat, number][] = [
  ['vtd-ss', 39], ['vtd-ss', 48], ['vtd-ss', 57], ['amd-v1', 32], ['amd-v1', 64], ['x86-64', 48], ['x86-64', 57],
  ['riscv', 39], ['riscv', 48], ['riscv', 57],
];
describe.each(GPT)('%s ias %i: generic_pt procedures', (format, ias) => {
  const signExt = format === 'x86-64' || format === 'riscv';
  const half = 1n << BigInt(signExt ? ias - 1 : ias);

  it('map every page size at an aligned iova, walk it, unmap it whole', async () => {
    const { sim, dom } = await rig(format, { ias, oas: format === 'amd-v1' ? 52 : 48 });
    const free0 = sim.memory.framesFree();
    for (const size of dom.pageSizes()) {
      const iova = size * 2n < half ? size : 0n;
      const pa = size < (1n << 47n) ? size : 0n;
      dom.map(iova, pa, size, Prot.RW);
      expect(dom.walk(iova + size - 1n)).toMatchObject({ ok: true, pa: pa + size - 1n, pageSize: size });
      expect(sim.iommu.translate(RID, iova + size / 2n, 'write')).toMatchObject({ ok: true, pa: pa + size / 2n });
      expectErrno(() => dom.map(iova, pa, size, Prot.RW), 'EADDRINUSE');
      if (size > K4) expect(dom.unmap(iova + K4, K4)).toBe(0n); // starts inside: refused
      expect(dom.unmap(iova, K4)).toBe(size);                  // starts at it: whole leaf
      expect(dom.walk(iova).ok).toBe(false);
      expect(sim.iommu.translate(RID, iova).ok).toBe(false);
    }
    expect(dom.mappedBytes).toBe(0n);
    if (format !== 'amd-v1') expect(sim.memory.framesFree()).toBe(free0);
  });

  it('best page size: the largest both alignments and the length allow, from the bitmap', async () => {
    const { dom } = await rig(format, { ias });
    const len = M2 + 3n * K64 + K4;
    dom.map(2n * M2, HBM_BASE, len, Prot.RW);
    const got: bigint[] = [];
    for (let off = 0n; off < len;) {
      const w = dom.walk(2n * M2 + off);
      got.push(w.pageSize!);
      off += w.pageSize!;
    }
    const sizes = dom.pageSizes().reverse();
    const want: bigint[] = [];
    for (let off = 0n; off < len;) {
      const s = sizes.find((s) => ((2n * M2 + off) | (HBM_BASE + off)) % s === 0n && len - off >= s)!;
      want.push(s);
      off += s;
    }
    expect(got).toEqual(want);
    expect(dom.unmap(2n * M2, len)).toBe(len);
  });

  it('the input space: the last page of it maps, one past it is ERANGE', async () => {
    const { dom } = await rig(format, { ias });
    dom.map(half - K4, RAM_BASE, K4, Prot.RW);
    expect(dom.walk(half - 1n)).toMatchObject({ ok: true, pa: RAM_BASE + K4 - 1n });
    if (half < 1n << 64n) expectErrno(() => dom.map(half, RAM_BASE, K4, Prot.RW), 'ERANGE');
    if (signExt) {
      const top = (1n << 64n) - half; // the upper half starts here
      dom.map(top, RAM_BASE, K4, Prot.RW);
      expect(dom.walk(top + 1n)).toMatchObject({ ok: true, pa: RAM_BASE + 1n });
      expectErrno(() => dom.map(top - K4, RAM_BASE, 2n * K4, Prot.RW), 'ERANGE');
    }
  });
});

describe('the TypeScript entry decoder (reports, page-table view) agrees with the core walk', () => {
  const CASES: [PgtableFormat, number, number][] = [
    ['vtd-ss', 48, 4096], ['arm-lpae-s1', 48, 4096], ['arm-lpae-s1', 48, 65536], ['arm-lpae-s2', 40, 16384],
    ['amd-v1', 48, 4096], ['x86-64', 57, 4096], ['riscv', 39, 4096],
  ];
  it.each(CASES)('%s ias %i granule %i', async (format, ias, granule) => {
    const { decodeDomainEntry } = await import('../../src/iommu/pte-decode.js');
    const { dom } = await rig(format, { ias, granule });
    let iova = 1n << 30n;
    for (const size of dom.pageSizes().filter((s) => s <= 1n << 30n)) {
      iova = (iova + size - 1n) & ~(size - 1n);
      dom.map(iova, HBM_BASE + size, size, Prot.RW);
      const w = dom.walk(iova + size - 1n);
      w.levels.forEach((l, i) => {
        const d = decodeDomainEntry(dom, l.depth, l.entry);
        if (i + 1 < w.levels.length) expect(d).toMatchObject({ kind: 'table', address: w.levels[i + 1]!.table });
        else expect(d).toMatchObject({ kind: 'leaf', address: HBM_BASE + size, pageSize: size });
      });
      iova += size;
    }
  });
});

describe('ARM contiguous hint', () => {
  it('16 page entries with Cont (4K granule) translate as one 64K leaf: one IOTLB entry for all', async () => {
    const { sim, unit, dom } = await rig('arm-lpae-s1');
    dom.map(0n, RAM_BASE, 16n * K4, Prot.RW); // Linux writes 16 pages without the hint
    expect(dom.walk(5n * K4)).toMatchObject({ ok: true, pageSize: K4 });
    const leaf = dom.walk(0n).levels.at(-1)!;
    for (let i = 0; i < 16; i++) {
      const e = readEntry(sim, leaf.table, i);
      expect((e >> 52n) & 1n).toBe(0n);
      writeEntry(sim, leaf.table, i, e | (1n << 52n));
    }
    unit.invalidateAll();
    expect(dom.walk(5n * K4 + 3n)).toMatchObject({ ok: true, pa: RAM_BASE + 5n * K4 + 3n, pageSize: K64 });
    for (let i = 0n; i < 16n; i++) expect(sim.iommu.translate(RID, i * K4 + 1n)).toMatchObject({ ok: true, pa: RAM_BASE + i * K4 + 1n });
    expect(unit.stats()).toMatchObject({ misses: 1n, tlbValid: 1 });
  });
});

describe('teardown frees every table frame of every format', () => {
  const CASES: [PgtableFormat, number, number][] = [
    ['vtd-ss', 57, 4096], ['arm-lpae-s1', 48, 16384], ['arm-lpae-s1', 52, 65536], ['arm-lpae-s2', 42, 4096],
    ['arm-lpae-s2', 48, 16384], ['amd-v1', 64, 4096], ['x86-64', 57, 4096], ['riscv', 57, 4096],
  ];
  it.each(CASES)('%s ias %i granule %i', async (format, ias, granule) => {
    const { sim, dom } = await rig(format, { ias, oas: ias > 48 && format === 'arm-lpae-s1' ? 52 : 48, granule, attach: false });
    const free0 = sim.memory.framesFree() + BigInt(dom.tableFrames);
    const half = 1n << BigInt(format === 'x86-64' || format === 'riscv' ? ias - 1 : ias);
    const g = BigInt(granule);
    for (const iova of [0n, 37n * g, half / 3n & ~(g - 1n), half - g, half / 2n & ~(g - 1n)]) dom.map(iova, RAM_BASE, g, Prot.RW);
    dom.map(half / 4n & ~(dom.pageSizes()[1]! - 1n), HBM_BASE, dom.pageSizes()[1]!, Prot.RW);
    expect(dom.tableFrames).toBeGreaterThan(dom.levels);
    dom.destroy();
    expect(sim.memory.framesFree()).toBe(free0);
  });
});
