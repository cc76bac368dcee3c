/**
 * Kernel profiles of the IOMMU layer, per format (spec iommu.md A8/A9, src/iommu/kernel.ts):
 * what a partial unmap of a large leaf and a map over something already mapped do in each kernel.
 *   io-pgtable-arm   < 6.13 split the block; >= 6.13 refuse (0); overlap EEXIST, a block over a
 *                    table of small leaves unmaps the table first.
 *   generic_pt       whole leaf from its first byte, refused (0) inside; overlap EADDRINUSE.
 *   intel (old)      whole leaf for any overlap; an existing PTE is kept, map returns 0; a
 *                    superpage over small pages frees their tables.
 *   AMD v1 (old)     whole leaf for any overlap; whatever a map meets is replaced.
 *   RISC-V (6.13)    4K pages only; replaced on map; a partial unmap from inside stops.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type PgtableFormat } from '../../src/index.js';
import { formatPolicy, IOMMU_KERNELS, type IommuKernel } from '../../src/iommu/kernel.js';
import { HBM_BASE, RAM_BASE } from '../helpers/sim.js';
import { K4, M2 } from './helpers/pte.js';
import { expectErrno, rig, RID } from './helpers/setup.js';

const FORMATS: [PgtableFormat, number][] = [
  ['arm-lpae-s1', 48], ['arm-lpae-s2', 48], ['vtd-ss', 48], ['x86-64', 48], ['amd-v1', 48], ['riscv', 48],
];
const CASES: [PgtableFormat, number, IommuKernel][] = [];
for (const [f, ias] of FORMATS) for (const k of IOMMU_KERNELS) if (!(f === 'riscv' && (k === '5.15' || k === '6.12'))) CASES.push([f, ias, k]);

describe('which code each format goes through, per kernel', () => {
  it('generic_pt in mainline for all but ARM; the drivers\' own tables before', () => {
    const code = (k: IommuKernel, f: PgtableFormat) => formatPolicy(k, f).code;
    expect(IOMMU_KERNELS.map((k) => code(k, 'vtd-ss'))).toEqual(['intel-iommu', 'intel-iommu', 'intel-iommu', 'generic_pt']);
    expect(IOMMU_KERNELS.map((k) => code(k, 'amd-v1'))).toEqual(['amd-io_pgtable', 'amd-io_pgtable', 'amd-io_pgtable', 'generic_pt']);
    expect(IOMMU_KERNELS.map((k) => code(k, 'arm-lpae-s2'))).toEqual(Array(4).fill('io-pgtable-arm'));
    expect(['6.13', 'mainline'].map((k) => code(k as IommuKernel, 'riscv'))).toEqual(['riscv-iommu', 'generic_pt']);
  });
  it('no RISC-V IOMMU driver before 6.13: ENODEV', async () => {
    const { unit } = await rig('riscv', { ias: 48 });
    expectErrno(() => unit.createDomain({ type: 'paging', format: 'riscv', ias: 48, kernel: '6.12' }), 'ENODEV');
    expectErrno(() => unit.createDomain({ type: 'paging', format: 'vtd-ss', kernel: '4.19' as IommuKernel }), 'EINVAL');
  });
  it('the RISC-V driver of 6.13 maps 4K pages only; mainline adds 2M, 1G, 512G and NAPOT 64K', async () => {
    const a = await rig('riscv', { ias: 48, kernel: '6.13' });
    expect(a.dom.pageSizes()).toEqual([K4]);
    const b = await rig('riscv', { ias: 48 });
    expect(b.dom.pageSizes()).toEqual([K4, 64n << 10n, M2, 1n << 30n, 1n << 39n]);
    const c = await rig('riscv', { ias: 48, svnapot: false });
    expect(c.dom.pageSizes()).toEqual([K4, M2, 1n << 30n, 1n << 39n]);
  });
});

describe.each(CASES)('%s ias %i, kernel %s', (format, ias, kernel) => {
  const pol = formatPolicy(kernel, format);
  const only4k = pol.pgsizeMask === K4;

  it('partial unmap of a 2M leaf: from inside it, then from its start', async () => {
    const { sim, dom } = await rig(format, { ias, kernel });
    dom.map(M2, HBM_BASE, M2, Prot.RW);
    const leaf = (iova: bigint) => dom.walk(iova);
    expect(leaf(M2 + 5n)).toMatchObject({ ok: true, pa: HBM_BASE + 5n, pageSize: only4k ? K4 : M2 });
    const inside = dom.unmap(M2 + K4, K4);
    if (only4k) {
      // Nothing is large: the page simply goes.
      expect(inside).toBe(K4);
      expect(leaf(M2 + K4).ok).toBe(false);
      expect(leaf(M2)).toMatchObject({ ok: true, pageSize: K4 });
      return;
    }
    switch (pol.partialUnmap) {
      case 'split':
        expect(inside).toBe(K4);
        expect(leaf(M2 + K4).ok).toBe(false);
        expect(leaf(M2 + 7n)).toMatchObject({ ok: true, pa: HBM_BASE + 7n, pageSize: K4 });
        expect(leaf(2n * M2 - 1n)).toMatchObject({ ok: true, pa: HBM_BASE + M2 - 1n, pageSize: K4 });
        expect(dom.mappedBytes).toBe(M2 - K4);
        // From its start: the next 4K piece (the block is already a table).
        expect(dom.unmap(M2, K4)).toBe(K4);
        expect(leaf(M2).ok).toBe(false);
        expect(leaf(M2 + 2n * K4)).toMatchObject({ ok: true, pageSize: K4 });
        break;
      case 'refuse':
        expect(inside).toBe(0n);
        expect(dom.unmap(M2, K4)).toBe(0n);
        expect(leaf(M2 + K4)).toMatchObject({ ok: true, pageSize: M2 });
        expect(dom.mappedBytes).toBe(M2);
        break;
      case 'whole-at-start':
        expect(inside).toBe(0n);
        expect(leaf(M2 + K4)).toMatchObject({ ok: true, pageSize: M2 });
        expect(dom.unmap(M2, K4)).toBe(M2);
        expect(leaf(M2 + K4).ok).toBe(false);
        expect(dom.mappedBytes).toBe(0n);
        break;
      case 'whole-any':
        expect(inside).toBe(M2);
        expect(leaf(M2).ok).toBe(false);
        expect(leaf(2n * M2 - 1n).ok).toBe(false);
        expect(dom.mappedBytes).toBe(0n);
        break;
    }
    // Whatever the rule, the IOTLB never answers for what the table no longer maps (strict).
    for (const off of [0n, K4, M2 - K4]) {
      const w = leaf(M2 + off);
      const t = sim.iommu.translate(RID, M2 + off);
      expect(t.ok).toBe(w.ok);
    }
  });

  it('a map over a leaf, and a block over a table of small leaves', async () => {
    const { sim, dom } = await rig(format, { ias, kernel });
    dom.map(M2, HBM_BASE, M2, Prot.RW);
    sim.iommu.translate(RID, M2 + 8n * K4); // cached
    const over = () => dom.map(M2 + 8n * K4, RAM_BASE, K4, Prot.READ);
    switch (pol.overlapMap) {
      case 'EEXIST':
      case 'EADDRINUSE':
        expectErrno(over, pol.overlapMap);
        expect(dom.walk(M2 + 8n * K4)).toMatchObject({ ok: true, pa: HBM_BASE + 8n * K4, pageSize: M2 });
        break;
      case 'keep':
        over(); // "DMA PTE for vPFN ... already set": WARN, the old entry stays, map returns 0
        expect(dom.walk(M2 + 8n * K4)).toMatchObject({ ok: true, pa: HBM_BASE + 8n * K4, pageSize: M2 });
        expect(dom.mappedBytes).toBe(M2);
        break;
      case 'replace':
        over(); // the large leaf is replaced by a table holding only the new page
        expect(dom.walk(M2 + 8n * K4)).toMatchObject({ ok: true, pa: RAM_BASE, pageSize: K4 });
        expect(dom.walk(M2).ok).toBe(false);
        expect(sim.iommu.translate(RID, M2 + 8n * K4)).toMatchObject({ ok: true, pa: RAM_BASE });
        expect(dom.mappedBytes).toBe(K4);
        break;
      case 'replace-riscv':
        over(); // 4K pages: the page is replaced in place
        expect(dom.walk(M2 + 8n * K4)).toMatchObject({ ok: true, pa: RAM_BASE, pageSize: K4 });
        expect(sim.iommu.translate(RID, M2 + 8n * K4)).toMatchObject({ ok: true, pa: RAM_BASE });
        expect(dom.walk(M2 + 9n * K4)).toMatchObject({ ok: true, pa: HBM_BASE + 9n * K4 });
        break;
    }

    // A block over a table that holds a 4K leaf.
    dom.map(4n * M2 + K4, RAM_BASE, K4, Prot.RW);
    sim.iommu.translate(RID, 4n * M2 + K4);
    const block = () => dom.map(4n * M2, HBM_BASE + 4n * M2, M2, Prot.RW);
    if (pol.overlapMap === 'EADDRINUSE') {
      expectErrno(block, 'EADDRINUSE');
      expect(dom.walk(4n * M2 + K4)).toMatchObject({ ok: true, pa: RAM_BASE, pageSize: K4 });
    } else if (only4k) {
      block();
      expect(dom.walk(4n * M2 + K4)).toMatchObject({ ok: true, pa: HBM_BASE + 4n * M2 + K4, pageSize: K4 });
    } else {
      // io-pgtable-arm unmaps the table first; the older intel and AMD drivers free it too.
      block();
      expect(dom.walk(4n * M2 + K4)).toMatchObject({ ok: true, pa: HBM_BASE + 4n * M2 + K4, pageSize: M2 });
      expect(sim.iommu.translate(RID, 4n * M2 + K4)).toMatchObject({ ok: true, pa: HBM_BASE + 4n * M2 + K4 });
    }
  });
});
