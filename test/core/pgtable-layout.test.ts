/**
 * Bit layouts of the entries the core writes, decoded with test/core/helpers/pte.ts (written from
 * iommu.md §C1/§C2, not from assembly/abi.ts). Every entry is read twice, from the walk trace and
 * from the raw bytes of its table frame, and the two must agree.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { Prot, type IommuDomain, type Simulator, type WalkResult } from '../../src/index.js';
import { HBM_BASE, RAM_BASE } from '../helpers/sim.js';
import { decodeLpae, decodeVtd, G1, indexAt, K4, levelsFor, M2, P, readEntry, shiftAt, topIndexBits } from './helpers/pte.js';
import { expectErrno, rig } from './helpers/setup.js';

const PG_PGTABLE = 1; // frame flag bit 0 (task brief / abi.ts FRAME_FLAGS doc)

/** Walks `iova` and checks that trace and raw table bytes agree, level by level. */
function walkBoth(sim: Simulator, dom: IommuDomain, iova: bigint): WalkResult {
  const w = dom.walk(iova);
  expect(w.levels.length).toBeGreaterThan(0);
  expect(w.levels[0]!.table).toBe(dom.root);
  w.levels.forEach((l, i) => {
    expect(l.depth).toBe(i);
    expect(l.index).toBe(indexAt(iova, i, dom.ias));
    expect(readEntry(sim, l.table, l.index)).toBe(l.entry);
  });
  return w;
}

describe('Prot values', () => {
  it('are the include/linux/iommu.h values', () => {
    expect({ ...Prot }).toEqual({ ...P, RW: 3 });
  });
});

describe('VT-d second-stage layout (§C2)', () => {
  let sim: Simulator;
  let dom: IommuDomain;
  beforeEach(async () => {
    ({ sim, dom } = await rig('vtd-ss', { ias: 48, oas: 48 }));
  });

  it('4K leaf: R bit 0, W bit 1, no PS, address 51:12; table entries carry R|W and point at the next table', () => {
    const iova = 0x12_3456_7000n;
    const pa = RAM_BASE + 0x5000n;
    dom.map(iova, pa, K4, Prot.RW);
    const w = walkBoth(sim, dom, iova + 0x123n);
    expect(w.ok).toBe(true);
    expect(w.pa).toBe(pa + 0x123n);
    expect(w.pageSize).toBe(K4);
    expect(w.levels.length).toBe(4);
    for (let i = 0; i < 3; i++) {
      const e = decodeVtd(w.levels[i]!.entry);
      expect(e.r && e.w).toBe(true);
      expect(e.ps).toBe(false);
      expect(e.addr).toBe(w.levels[i + 1]!.table);
      expect(w.levels[i]!.entry).toBe(w.levels[i + 1]!.table | 3n); // nothing but R|W and the address
    }
    const leaf = decodeVtd(w.levels[3]!.entry);
    expect([leaf.r, leaf.w, leaf.x, leaf.ps, leaf.snp]).toEqual([true, true, false, false, false]);
    expect(leaf.addr).toBe(pa);
    expect(w.levels[3]!.entry).toBe(pa | 3n);
  });

  it('2M leaf sets PS (bit 7) at the PDE, 1G leaf at the PDPTE', () => {
    dom.map(1n * G1 + 2n * M2, HBM_BASE + 4n * M2, M2, Prot.RW);
    dom.map(3n * G1, HBM_BASE + G1, G1, Prot.READ);
    const w2 = walkBoth(sim, dom, 1n * G1 + 2n * M2 + 0x1234n);
    expect(w2.levels.length).toBe(3);
    expect(w2.pageSize).toBe(M2);
    expect(w2.levels[2]!.entry).toBe(HBM_BASE + 4n * M2 | 1n << 7n | 3n);
    expect(decodeVtd(w2.levels[2]!.entry).ps).toBe(true);
    const w1 = walkBoth(sim, dom, 3n * G1 + 0x2345678n);
    expect(w1.levels.length).toBe(2);
    expect(w1.pageSize).toBe(G1);
    expect(w1.pa).toBe(HBM_BASE + G1 + 0x2345678n);
    const e = decodeVtd(w1.levels[1]!.entry);
    expect([e.r, e.w, e.ps]).toEqual([true, false, true]);
    expect(w1.levels[1]!.entry).toBe(HBM_BASE + G1 | 1n << 7n | 1n);
    // Table entries above large leaves carry R|W and no PS.
    expect(decodeVtd(w1.levels[0]!.entry).ps).toBe(false);
    expect(w1.levels[0]!.entry & 0xfffn).toBe(3n);
  });

  it('a write-only mapping is representable: W without R, still present, walk grants write only', () => {
    dom.map(0x40_0000n, RAM_BASE, K4, Prot.WRITE);
    const w = walkBoth(sim, dom, 0x40_0000n);
    const leaf = decodeVtd(w.levels[3]!.entry);
    expect([leaf.r, leaf.w, leaf.present]).toEqual([false, true, true]);
    expect(w.ok).toBe(true);
    expect(w.perm).toBe(2);
  });

  it('read-only: R without W', () => {
    dom.map(0x40_0000n, RAM_BASE, K4, Prot.READ);
    const w = walkBoth(sim, dom, 0x40_0000n);
    expect(w.levels[3]!.entry).toBe(RAM_BASE | 1n);
    expect(w.perm).toBe(1);
  });

  it('the address field reaches bit 51 (oas 52)', async () => {
    const r = await rig('vtd-ss', { ias: 48, oas: 52 });
    const pa = (1n << 52n) - K4;
    r.dom.map(0n, pa, K4, Prot.RW);
    const w = walkBoth(r.sim, r.dom, 0x10n);
    expect(decodeVtd(w.levels[3]!.entry).addr).toBe(pa);
    expect(w.pa).toBe(pa + 0x10n);
    expectErrno(() => r.dom.map(K4, 1n << 52n, K4, Prot.RW), 'ERANGE');
  });

  it.each([[39, 3], [48, 4]])('ias %i gives %i levels, 9 index bits at the top', async (ias, levels) => {
    const r = await rig('vtd-ss', { ias });
    expect(levelsFor(ias)).toBe(levels);
    const iova = (1n << BigInt(ias)) - K4; // the last page: every index is 511
    r.dom.map(iova, RAM_BASE, K4, Prot.RW);
    const w = walkBoth(r.sim, r.dom, iova);
    expect(w.levels.length).toBe(levels);
    expect(w.levels.map((l) => l.index)).toEqual(new Array(levels).fill(511));
    expect(r.dom.tableFrames).toBe(levels);
    expectErrno(() => r.dom.map(1n << BigInt(ias), RAM_BASE, K4, Prot.RW), 'ERANGE');
  });

  it('table frames are RAM frames flagged PG_PGTABLE that count their live entries', () => {
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    dom.map(K4, RAM_BASE + K4, K4, Prot.RW);
    dom.map(M2, RAM_BASE + M2, M2, Prot.RW);
    const w = walkBoth(sim, dom, 0n);
    expect(dom.tableFrames).toBe(4);
    const tables = w.levels.map((l) => l.table);
    for (const t of tables) {
      expect(t >= RAM_BASE && t < RAM_BASE + G1).toBe(true);
      expect(t % K4).toBe(0n);
      expect(sim.memory.frameInfo(t).flags & PG_PGTABLE).toBe(PG_PGTABLE);
    }
    // PML4: 1 entry, PDPT: 1, PD: 2 (a table and the 2M leaf), PT: 2 leaves.
    expect(tables.map((t) => sim.memory.frameInfo(t).tableEntries)).toEqual([1, 1, 2, 2]);
  });
});

describe('ARM LPAE stage-1 4K layout (§C1)', () => {
  let sim: Simulator;
  let dom: IommuDomain;
  beforeEach(async () => {
    ({ sim, dom } = await rig('arm-lpae-s1', { ias: 48, oas: 48 }));
  });

  const SH_OUTER = 2n << 8n;
  const SH_INNER = 3n << 8n;
  const AF = 1n << 10n;
  const NG = 1n << 11n;
  const UNPRIV = 1n << 6n;
  const RDONLY = 1n << 7n;
  const XN = 3n << 53n;

  it('table descriptors: valid|table and the next-table address, nothing else', () => {
    dom.map(0x12_3456_7000n, RAM_BASE, K4, Prot.RW);
    const w = walkBoth(sim, dom, 0x12_3456_7000n);
    expect(w.levels.length).toBe(4);
    for (let i = 0; i < 3; i++) {
      const e = decodeLpae(w.levels[i]!.entry);
      expect([e.valid, e.type]).toEqual([true, 1]);
      expect(e.oa).toBe(w.levels[i + 1]!.table);
      expect(w.levels[i]!.entry).toBe(w.levels[i + 1]!.table | 3n);
    }
  });

  it('4K page: valid, type 1 at L3, AF, nG, AP[1] unprivileged, SH outer, AttrIndx 0, OA 47:12', () => {
    const pa = RAM_BASE + 0x7000n;
    dom.map(0x40_0000n, pa, K4, Prot.RW);
    const w = walkBoth(sim, dom, 0x40_0000n);
    const e = decodeLpae(w.levels[3]!.entry);
    expect(e).toMatchObject({ valid: true, type: 1, af: true, ng: true, apUnpriv: true, apRdonly: false, sh: 2, attrIndx: 0, pxn: false, uxn: false, oa: pa });
    expect(w.levels[3]!.entry).toBe(pa | 3n | AF | NG | UNPRIV | SH_OUTER);
  });

  it('2M block is type 0 at L2, 1G block type 0 at L1', () => {
    dom.map(G1 + M2, HBM_BASE + M2, M2, Prot.RW);
    dom.map(2n * G1, HBM_BASE + G1, G1, Prot.RW);
    const w2 = walkBoth(sim, dom, G1 + M2 + 5n);
    expect(w2.levels.length).toBe(3);
    expect(w2.levels[2]!.entry).toBe(HBM_BASE + M2 | 1n | AF | NG | UNPRIV | SH_OUTER);
    expect(decodeLpae(w2.levels[2]!.entry).type).toBe(0);
    const w1 = walkBoth(sim, dom, 2n * G1 + 0x3000_0005n);
    expect(w1.levels.length).toBe(2);
    expect(w1.pa).toBe(HBM_BASE + G1 + 0x3000_0005n);
    expect(w1.levels[1]!.entry).toBe(HBM_BASE + G1 | 1n | AF | NG | UNPRIV | SH_OUTER);
  });

  // prot -> expected low attribute bits of a 4K page (valid|type|AF|nG always).
  const cases: [string, number, bigint][] = [
    ['READ: AP[2] read-only', P.READ, RDONLY | UNPRIV | SH_OUTER],
    ['WRITE only: not read-only', P.WRITE, UNPRIV | SH_OUTER],
    ['RW|PRIV: AP[1] clear', P.READ | P.WRITE | P.PRIV, SH_OUTER],
    ['RW|CACHE: SH inner, AttrIndx 1', P.READ | P.WRITE | P.CACHE, UNPRIV | SH_INNER | 1n << 2n],
    ['RW|MMIO: AttrIndx 2, SH outer', P.READ | P.WRITE | P.MMIO, UNPRIV | SH_OUTER | 2n << 2n],
    ['RW|MMIO|CACHE: MMIO wins AttrIndx, CACHE still gives SH inner', P.READ | P.WRITE | P.MMIO | P.CACHE, UNPRIV | SH_INNER | 2n << 2n],
    ['RW|NOEXEC: XN bits 53 and 54', P.READ | P.WRITE | P.NOEXEC, UNPRIV | SH_OUTER | XN],
    ['READ|PRIV|NOEXEC|CACHE', P.READ | P.PRIV | P.NOEXEC | P.CACHE, RDONLY | SH_INNER | 1n << 2n | XN],
  ];
  it.each(cases)('%s', (_name, prot, attrs) => {
    const pa = RAM_BASE + 0x9000n;
    dom.map(0x40_0000n, pa, K4, prot);
    const w = walkBoth(sim, dom, 0x40_0000n);
    expect(w.levels[3]!.entry).toBe(pa | 3n | AF | NG | attrs);
    const e = decodeLpae(w.levels[3]!.entry);
    expect(e.af).toBe(true);
    expect(e.pxn).toBe((prot & P.NOEXEC) !== 0);
    expect(e.uxn).toBe((prot & P.NOEXEC) !== 0);
  });

  it('device rights follow AP: PRIV leaves are not reachable by a device, READ gives read only', () => {
    dom.map(0n, RAM_BASE, K4, P.READ | P.WRITE | P.PRIV);
    dom.map(K4, RAM_BASE, K4, P.READ);
    dom.map(2n * K4, RAM_BASE, K4, P.WRITE);
    expect(dom.walk(0n).perm).toBe(0);
    expect(dom.walk(K4).perm).toBe(1);
    expect(dom.walk(2n * K4).perm).toBe(3);
  });

  it('OA reaches bit 47 (oas 48) and pa >= 2^48 is ERANGE', () => {
    const pa = (1n << 48n) - K4;
    dom.map(0n, pa, K4, Prot.RW);
    const w = walkBoth(sim, dom, 0n);
    expect(decodeLpae(w.levels[3]!.entry).oa).toBe(pa);
    expect(decodeLpae(w.levels[3]!.entry).res0).toBe(0);
    expectErrno(() => dom.map(K4, 1n << 48n, K4, Prot.RW), 'ERANGE');
  });

  // ias -> levels, top index bits (io-pgtable: PGD entries 4, 64, 512, 2, 8, 32, 512)
  it.each([[32, 3, 2], [36, 3, 6], [39, 3, 9], [40, 4, 1], [42, 4, 3], [44, 4, 5], [48, 4, 9]])(
    'ias %i: %i levels, top index %i bits', async (ias, levels, topBits) => {
      const r = await rig('arm-lpae-s1', { ias });
      expect(levelsFor(ias)).toBe(levels);
      expect(topIndexBits(ias)).toBe(topBits);
      const top = (1n << BigInt(ias)) - (1n << BigInt(shiftAt(0, levels))); // last top-level slot
      r.dom.map(top, RAM_BASE, K4, Prot.RW);
      const w = walkBoth(r.sim, r.dom, top);
      expect(w.ok).toBe(true);
      expect(w.levels.length).toBe(levels);
      expect(w.levels[0]!.index).toBe(2 ** topBits - 1);
      expect(w.levels.slice(1).map((l) => l.index)).toEqual(new Array(levels - 1).fill(0));
      expect(r.dom.tableFrames).toBe(levels);
      // Nothing else in the top table.
      for (let i = 0; i < 512; i++) {
        if (i !== 2 ** topBits - 1) expect(readEntry(r.sim, r.dom.root, i)).toBe(0n);
      }
      expectErrno(() => r.dom.map(1n << BigInt(ias), RAM_BASE, K4, Prot.RW), 'ERANGE');
      expect(r.dom.walk(1n << BigInt(ias))).toMatchObject({ ok: false, reason: 'address-size', levels: [] });
    });

  it('table frames count live entries; PG_PGTABLE set', () => {
    dom.map(0n, RAM_BASE, M2, Prot.RW);
    dom.map(M2, RAM_BASE + M2, K4, Prot.RW);
    dom.map(M2 + 3n * K4, RAM_BASE, K4, Prot.RW);
    dom.map(M2 + 9n * K4, RAM_BASE, K4, Prot.RW);
    const w = walkBoth(sim, dom, M2);
    expect(w.levels.map((l) => sim.memory.frameInfo(l.table).tableEntries)).toEqual([1, 1, 2, 3]);
    for (const l of w.levels) expect(sim.memory.frameInfo(l.table).flags & PG_PGTABLE).toBe(PG_PGTABLE);
    expect(dom.tableFrames).toBe(4);
  });
});

describe('table frames start empty', () => {
  // A free RAM frame the host wrote (sim.memory.write is a backdoor store, legal on free RAM)
  // must read as zeros once allocated, or a new page table would start full of garbage entries.
  it.each(['vtd-ss', 'arm-lpae-s1'] as const)('%s: a root allocated over host-written free RAM walks as empty', async (format) => {
    const { makeSim } = await import('../helpers/sim.js');
    const sim = await makeSim();
    sim.memory.write(RAM_BASE, new Uint8Array(64 << 10).fill(0xff));
    const { dom } = await rig(format, { sim });
    expect(dom.walk(0x1000n)).toMatchObject({ ok: false, reason: 'translation' });
    expect(readEntry(sim, dom.root, 0)).toBe(0n);
  });
});
