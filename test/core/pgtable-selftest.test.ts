/**
 * The Linux io-pgtable self-test (io-pgtable-arm.c arm_lpae_run_tests, as arm_lpae_do_selftests
 * runs it): both stages, every granule (4K | 2M | 1G, 16K | 32M, 64K | 512M), IAS 32..48 with
 * OAS 48; under the 6.12 kernel (which still has the "Partial unmap" / "Remap of partial unmap"
 * steps, the block split) and under mainline (since v6.13 the steps are gone and a partial unmap
 * of a block is refused with 0). Then the argument checks and the page-size choice of the map
 * path per format, and the freeing of tables left empty.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type IommuDomain, type PgtableFormat, type Simulator } from '../../src/index.js';
import type { IommuKernel } from '../../src/iommu/kernel.js';
import { HBM_BASE, RAM_BASE } from '../helpers/sim.js';
import { G1, K4, M2, P } from './helpers/pte.js';
import { expectErrno, hex, rig, RID } from './helpers/setup.js';

const GRANULES = [4096, 16384, 65536];
const IAS = [32, 36, 40, 42, 44, 48];
const STAGES: PgtableFormat[] = ['arm-lpae-s1', 'arm-lpae-s2'];
const CONFIGS: [PgtableFormat, number, number, IommuKernel][] = [];
for (const f of STAGES) for (const g of GRANULES) for (const ias of IAS) for (const k of ['6.12', 'mainline'] as IommuKernel[]) CONFIGS.push([f, g, ias, k]);
/** Output address for the n-th page: the iova itself (Linux's choice) or inside the device region. */
const PA_MODES: [string, (iova: bigint) => bigint][] = [['pa = iova', (i) => i], ['pa in device memory', (i) => HBM_BASE + i]];

/** Everything a failed operation must leave unchanged. */
function snapshot(sim: Simulator, dom: IommuDomain, iovas: bigint[]): unknown {
  return {
    free: sim.memory.framesFree(), tables: dom.tableFrames, mapped: dom.mappedBytes,
    walks: iovas.map((i) => { const w = dom.walk(i); return [w.ok, w.pa, w.pageSize, w.levels.map((l) => l.entry)]; }),
  };
}

function expectUnmapped(dom: IommuDomain, iova: bigint): void {
  const w = dom.walk(iova);
  expect(w.ok, `walk ${hex(iova)} should fail`).toBe(false);
  expect(w.reason).toBe('translation');
}

function expectMapped(dom: IommuDomain, iova: bigint, pa: bigint, size: bigint): void {
  const w = dom.walk(iova);
  expect(w.ok, `walk ${hex(iova)}`).toBe(true);
  expect(w.pa).toBe(pa);
  expect(w.pageSize).toBe(size);
}

/** The errno of a map over a leaf under the domain's kernel policy. */
function overlapErrno(dom: IommuDomain): string {
  return dom.policy!.overlapMap;
}

describe.each(CONFIGS)('%s granule %i ias %i, kernel %s: io-pgtable self-test', (format, granule, ias, kernel) => {
  it.each(PA_MODES)('%s', async (_name, paOf) => {
    const { sim, dom } = await rig(format, { ias, oas: 48, granule, kernel });
    const free0 = sim.memory.framesFree();
    const sizes = dom.pageSizes();
    expect(sizes).toEqual(granule === 4096 ? [K4, M2, G1] : granule === 16384 ? [16n << 10n, 32n << 20n] : [64n << 10n, 512n << 20n]);
    const min = sizes[0]!;

    // An empty table translates nothing.
    for (const iova of [42n, G1 + 42n, 2n * G1 + 42n]) {
      if (iova >= 1n << BigInt(ias)) continue;
      expectUnmapped(dom, iova);
      expect(sim.iommu.translate(RID, iova)).toMatchObject({ ok: false, reason: 'translation', code: 'EFAULT' });
    }

    // Map one page of each size at n GiB; an overlapping map fails with EEXIST and changes nothing.
    let iova = 0n;
    for (const size of sizes) {
      dom.map(iova, paOf(iova), size, P.READ | P.WRITE | P.NOEXEC | P.CACHE);
      const before = snapshot(sim, dom, [iova, iova + size - min]);
      expectErrno(() => dom.map(iova, paOf(iova) + size, size, P.READ | P.NOEXEC), 'EEXIST');
      if (size > min) expectErrno(() => dom.map(iova + size - min, paOf(iova), min, P.READ), 'EEXIST');
      expect(snapshot(sim, dom, [iova, iova + size - min])).toEqual(before);
      expectMapped(dom, iova + 42n, paOf(iova) + 42n, size);
      expect(sim.iommu.translate(RID, iova + 42n, 'rw')).toMatchObject({ ok: true, pa: paOf(iova) + 42n, pageSize: size });
      iova += G1;
    }
    const total = sizes.reduce((a, b) => a + b, 0n);
    expect(dom.mappedBytes).toBe(total);

    // The block at 1G, partly unmapped from its second page.
    if (kernel === '6.12') {
      // Partial unmap: the block is split and only the page goes; remap of the partial unmap.
      expect(dom.unmap(G1 + min, min)).toBe(min);
      expectUnmapped(dom, G1 + min);
      expectMapped(dom, G1 + 42n, paOf(G1) + 42n, min);
      expectMapped(dom, G1 + sizes[1]! - 1n, paOf(G1) + sizes[1]! - 1n, min);
      dom.map(G1 + min, paOf(min), min, P.READ);
      expectMapped(dom, G1 + min + 42n, paOf(min) + 42n, min);
      expect(dom.mappedBytes).toBe(total);
    } else {
      // Since v6.13: refused, nothing changes.
      const before = snapshot(sim, dom, [G1, G1 + min]);
      expect(dom.unmap(G1 + min, min)).toBe(0n);
      expect(dom.unmap(G1, min)).toBe(0n);
      expect(snapshot(sim, dom, [G1, G1 + min])).toEqual(before);
    }

    // Full unmap returns each size and the walks then fail; remap again.
    iova = 0n;
    for (const size of sizes) {
      expect(dom.unmap(iova, size)).toBe(size);
      expectUnmapped(dom, iova + 42n);
      dom.map(iova, paOf(iova), size, P.WRITE);
      expectMapped(dom, iova + 42n, paOf(iova) + 42n, size);
      iova += G1;
    }
    // Tear down: every table but the root is freed, every frame is back.
    iova = 0n;
    for (const size of sizes) {
      expect(dom.unmap(iova, size)).toBe(size);
      iova += G1;
    }
    expect(dom.mappedBytes).toBe(0n);
    expect(sim.memory.framesFree()).toBe(free0);
  });
});

describe('ARM LPAE geometry: levels, start level, concatenated stage-2 tables (VTCR SL0)', () => {
  // [format, granule, ias, levels, index bits of the top table]
  const CASES: [PgtableFormat, number, number, number, number][] = [
    ['arm-lpae-s1', 4096, 32, 3, 2], ['arm-lpae-s1', 4096, 39, 3, 9], ['arm-lpae-s1', 4096, 40, 4, 1],
    ['arm-lpae-s1', 4096, 48, 4, 9], ['arm-lpae-s2', 4096, 40, 3, 10], ['arm-lpae-s2', 4096, 42, 3, 12],
    ['arm-lpae-s2', 4096, 43, 3, 13], ['arm-lpae-s2', 4096, 44, 4, 5], ['arm-lpae-s2', 4096, 48, 4, 9],
    ['arm-lpae-s1', 16384, 36, 2, 11], ['arm-lpae-s1', 16384, 47, 3, 11], ['arm-lpae-s1', 16384, 48, 4, 1],
    ['arm-lpae-s2', 16384, 48, 3, 12], ['arm-lpae-s1', 65536, 42, 2, 13], ['arm-lpae-s1', 65536, 48, 3, 6],
    ['arm-lpae-s1', 65536, 52, 3, 10], ['arm-lpae-s2', 65536, 52, 3, 10],
  ];
  it.each(CASES)('%s granule %i ias %i: %i levels, %i top index bits', async (format, granule, ias, levels, top) => {
    const { sim, dom } = await rig(format, { ias, oas: ias > 48 ? 52 : 48, granule });
    expect(dom.levels).toBe(levels);
    expect(dom.startLevel).toBe(4 - levels);
    expect(dom.topIndexBits).toBe(top);
    // The top table takes max(1, 8 * 2^top / 4096) frames (concatenated tables are contiguous).
    expect(dom.tableFrames).toBe(Math.max(1, 2 ** top * 8 / 4096));
    // The last page of the input space maps and walks through every level.
    const g = BigInt(granule);
    const last = (1n << BigInt(ias)) - g;
    dom.map(last, RAM_BASE, g, Prot.RW);
    const w = dom.walk(last + 5n);
    expect(w).toMatchObject({ ok: true, pa: RAM_BASE + 5n, pageSize: g });
    expect(w.levels.length).toBe(levels);
    expect(w.levels[0]!.index).toBe(2 ** top - 1);
    expect(sim.iommu.translate(RID, last + 5n)).toMatchObject({ ok: true, pa: RAM_BASE + 5n });
    expectErrno(() => dom.map(last + g, RAM_BASE, g, Prot.RW), 'ERANGE');
  });

  it('granules other than 4K/16K/64K, widths beyond 48 bits (52 with 64K) are EINVAL', async () => {
    const { unit } = await rig('arm-lpae-s1');
    expectErrno(() => unit.createDomain({ type: 'paging', format: 'arm-lpae-s1', granule: 8192 }), 'EINVAL');
    expectErrno(() => unit.createDomain({ type: 'paging', format: 'arm-lpae-s2', granule: 4096, ias: 52 }), 'EINVAL');
    expectErrno(() => unit.createDomain({ type: 'paging', format: 'arm-lpae-s1', granule: 16384, oas: 52 }), 'EINVAL');
    expectErrno(() => unit.createDomain({ type: 'paging', format: 'vtd-ss', granule: 65536 }), 'EINVAL');
    expect(unit.createDomain({ type: 'paging', format: 'arm-lpae-s1', granule: 65536, ias: 52, oas: 52 }).pageSizes())
      .toEqual([1n << 16n, 1n << 29n, 1n << 42n]);
  });

  it('64K granule with 52-bit output: OA[51:48] packed into descriptor bits 15:12', async () => {
    const { sim, dom } = await rig('arm-lpae-s1', { ias: 48, oas: 52, granule: 65536 });
    const pa = 0xa_bcde_f123_0000n; // bits 51:48 = 0xa
    dom.map(1n << 16n, pa, 1n << 16n, Prot.RW);
    const w = dom.walk((1n << 16n) + 0x1234n);
    expect(w).toMatchObject({ ok: true, pa: pa + 0x1234n });
    const e = w.levels.at(-1)!.entry;
    expect((e >> 12n) & 0xfn).toBe(0xan);
    expect(e & 0xffff_ffff_0000n).toBe(pa & 0xffff_ffff_0000n);
    expect((e >> 48n) & 0xfn).toBe(0n);
    expect(sim.iommu.translate(RID, (1n << 16n) + 7n)).toMatchObject({ ok: true, pa: pa + 7n });
  });
});

describe.each([['vtd-ss', 39], ['vtd-ss', 48], ['arm-lpae-s1', 32], ['arm-lpae-s1', 40], ['arm-lpae-s1', 48], ['arm-lpae-s2', 40], ['riscv', 39]] as [PgtableFormat, number][])(
  '%s ias %i: map arguments and page-size choice', (format, ias) => {
    // Sign-extended formats (RISC-V): the lower half ends at 2^(ias-1).
    const top = 1n << BigInt(format === 'riscv' ? ias - 1 : ias);

    it('ERANGE for iova >= 2^ias (also a range crossing it) and pa >= 2^oas', async () => {
      const { sim, dom } = await rig(format, { ias, oas: 40 });
      const free0 = sim.memory.framesFree();
      const t0 = dom.tableFrames;
      expectErrno(() => dom.map(top, RAM_BASE, K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.map(top - K4, RAM_BASE, 2n * K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.map(0n, 1n << 40n, K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.map(0n, (1n << 40n) - K4, 2n * K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.unmap(top, K4), 'ERANGE');
      dom.map(top - K4, (1n << 40n) - K4, K4, Prot.RW); // the last page of both spaces is fine
      expectMapped(dom, top - 1n, (1n << 40n) - 1n, K4);
      expect(dom.unmap(top - K4, K4)).toBe(K4);
      expect(dom.tableFrames).toBe(t0);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('EINVAL for prot without READ|WRITE, unaligned iova/pa/size and size 0', async () => {
      const { sim, dom } = await rig(format, { ias });
      const free0 = sim.memory.framesFree();
      const t0 = dom.tableFrames;
      for (const prot of [0, P.CACHE, P.NOEXEC | P.MMIO | P.PRIV]) expectErrno(() => dom.map(0n, RAM_BASE, K4, prot), 'EINVAL');
      expectErrno(() => dom.map(0x800n, RAM_BASE, K4, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE + 0x10n, K4, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE, K4 + 1n, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE, 0n, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE, K4, 64), 'EINVAL');
      expectErrno(() => dom.unmap(0x800n, K4), 'EINVAL');
      expectErrno(() => dom.unmap(0n, 0n), 'EINVAL');
      expect(dom.tableFrames).toBe(t0);
      expect(dom.mappedBytes).toBe(0n);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('4M at a 2M-aligned iova but a 4K-aligned pa: 1024 4K leaves', async () => {
      const { sim, dom } = await rig(format, { ias });
      const free0 = sim.memory.framesFree();
      const t0 = dom.tableFrames;
      const iova = 4n * M2;
      const pa = RAM_BASE + K4;
      dom.map(iova, pa, 2n * M2, Prot.RW);
      for (const off of [0n, K4, M2 - K4, M2, 2n * M2 - K4]) expectMapped(dom, iova + off + 7n, pa + off + 7n, K4);
      const w0 = dom.walk(iova);
      const w1 = dom.walk(iova + M2);
      const leafTables = [w0.levels.at(-1)!.table, w1.levels.at(-1)!.table];
      expect(leafTables[0]).not.toBe(leafTables[1]);
      expect(leafTables.map((t) => sim.memory.frameInfo(t).tableEntries)).toEqual([512, 512]);
      expect(dom.tableFrames).toBe(t0 + w0.levels.length);
      expect(dom.mappedBytes).toBe(2n * M2);
      // Unmapping it returns 4M and frees both leaf tables (and the path above them).
      expect(dom.unmap(iova, 2n * M2)).toBe(2n * M2);
      expect(dom.tableFrames).toBe(t0);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('2M+4K with both 2M-aligned: one 2M leaf and one 4K leaf; 1G+2M+4K: one of each', async () => {
      const { sim, dom } = await rig(format, { ias });
      const free0 = sim.memory.framesFree();
      const t0 = dom.tableFrames;
      dom.map(2n * M2, HBM_BASE + 8n * M2, M2 + K4, Prot.RW);
      expectMapped(dom, 2n * M2, HBM_BASE + 8n * M2, M2);
      expectMapped(dom, 3n * M2 + 1n, HBM_BASE + 9n * M2 + 1n, K4);
      expectUnmapped(dom, 3n * M2 + K4);
      const leafTable = dom.walk(3n * M2).levels.at(-1)!.table;
      expect(sim.memory.frameInfo(leafTable).tableEntries).toBe(1);
      dom.map(G1, HBM_BASE + G1, G1 + M2 + K4, Prot.RW);
      expectMapped(dom, G1 + 3n, HBM_BASE + G1 + 3n, G1);
      expectMapped(dom, 2n * G1 + 3n, HBM_BASE + 2n * G1 + 3n, M2);
      expectMapped(dom, 2n * G1 + M2 + 3n, HBM_BASE + 2n * G1 + M2 + 3n, K4);
      expect(dom.unmap(G1, G1 + M2 + K4)).toBe(G1 + M2 + K4);
      // Misaligned start: 4K then a 2M leaf once the iova reaches 2M alignment.
      dom.map(16n * M2 - K4, HBM_BASE + 16n * M2 - K4, M2 + K4, Prot.RW);
      expectMapped(dom, 16n * M2 - K4, HBM_BASE + 16n * M2 - K4, K4);
      expectMapped(dom, 16n * M2, HBM_BASE + 16n * M2, M2);
      // Unmap stops at a hole: from 4M, [4M,6M) and the 4K page go, then the hole at 6M+4K.
      expect(dom.unmap(2n * M2, 8n * M2)).toBe(M2 + K4);
      expect(dom.unmap(16n * M2 - K4, 4n * M2)).toBe(M2 + K4);
      expect(dom.unmap(0n, K4)).toBe(0n);
      expect(dom.tableFrames).toBe(t0);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('a map that fails half way leaves nothing mapped and no table allocated', async () => {
      const { sim, dom } = await rig(format, { ias });
      dom.map(8n * M2 + 3n * K4, RAM_BASE, K4, Prot.RW);
      const free0 = sim.memory.framesFree();
      const tables0 = dom.tableFrames;
      // A 4K-aligned pa: 4K pieces from 6M, until the one at 8M+12K runs into the page there.
      expectErrno(() => dom.map(6n * M2, HBM_BASE + 6n * M2 + K4, 4n * M2, Prot.RW), overlapErrno(dom));
      expectUnmapped(dom, 6n * M2);
      expectUnmapped(dom, 8n * M2);
      expectMapped(dom, 8n * M2 + 3n * K4, RAM_BASE, K4);
      expect(dom.tableFrames).toBe(tables0);
      expect(sim.memory.framesFree()).toBe(free0);
      expect(dom.mappedBytes).toBe(K4);
    });
  });
