/**
 * Kernel profiles of the IOMMU layer: what iommu_map/iommu_unmap do at the edges (partial unmap
 * of a large leaf, a map over something already mapped) and which page-table code each format
 * goes through, per kernel. Each profile is one real kernel (spec iommu.md A8/A9):
 *
 * - '5.15'    v5.15 LTS. io-pgtable-arm splits a block on a partial unmap
 *             (arm_lpae_split_blk_unmap); the intel driver (its own dma_pte code) removes a
 *             whole large page for any overlap ("cope with horrid API") and keeps an existing
 *             PTE on a map over it ("DMA PTE ... already set", WARN, returns 0); the AMD v1
 *             io_pgtable removes whole leaves and replaces whatever a map meets. No RISC-V IOMMU
 *             driver yet (merged in v6.13).
 * - '6.12'    v6.12 LTS: the same rules as 5.15 (the last release before the ARM change).
 * - '6.13'    v6.13: io-pgtable-arm refuses a partial unmap of a block (commit 33729a5fc0ca,
 *             WARN "Unmap of a partial large IOPTE is not allowed", returns 0). The RISC-V driver
 *             arrives with its own tables: 4K pages only, a map replaces what is there, a
 *             partial unmap starting inside a leaf stops ("partial unmap is not allowed").
 * - 'mainline' torvalds/linux master as read for this work (2026): AMD v1, VT-d second stage,
 *             x86-64 (VT-d first stage, AMD v2) and RISC-V go through generic_pt (iommupt): an
 *             unmap starting at a leaf removes it whole and returns its size, one starting inside
 *             it is refused (0); a map over any leaf (or a table holding one) is EADDRINUSE, an
 *             empty table in the way is replaced. ARM stays on io-pgtable-arm (refuse, EEXIST).
 */
import { ABI } from '../../bindings/core.js';
import { SimError } from '../../bindings/errors.js';

/**
 * A kernel whose IOMMU layer a domain follows at the edges of iommu_map / iommu_unmap: v5.15 LTS,
 * v6.12 LTS (both: ARM splits a block on a partial unmap, older intel/AMD drivers), v6.13 (ARM
 * refuses it; first RISC-V driver), or mainline (generic_pt for every non-ARM format). The file
 * comment of src/iommu/kernel.ts gives each rule with its source.
 */
export type IommuKernel = '5.15' | '6.12' | '6.13' | 'mainline';
/** Every {@link IommuKernel}, oldest first. */
export const IOMMU_KERNELS: readonly IommuKernel[] = ['5.15', '6.12', '6.13', 'mainline'];

/**
 * An I/O page-table format (the kernel's io_pgtable / generic_pt formats):
 *  - 'vtd-ss': Intel VT-d second-stage table;
 *  - 'arm-lpae-s1', 'arm-lpae-s2': Arm VMSAv8-64 LPAE stage 1 and stage 2 (SMMUv3);
 *  - 'amd-v1': AMD-Vi v1 host table, whose top level grows on demand;
 *  - 'x86-64': the CPU's 4/5-level format, walked as VT-d first stage and AMD v2;
 *  - 'riscv': RISC-V Sv39/Sv48/Sv57.
 */
export type PgtableFormat = 'vtd-ss' | 'arm-lpae-s1' | 'arm-lpae-s2' | 'amd-v1' | 'x86-64' | 'riscv';
/** Every {@link PgtableFormat}. */
export const PGTABLE_FORMATS: readonly PgtableFormat[] = ['vtd-ss', 'arm-lpae-s1', 'arm-lpae-s2', 'amd-v1', 'x86-64', 'riscv'];

/** How a partial unmap of a large leaf is treated (abi UNMAP_*). */
export type PartialUnmap = 'split' | 'refuse' | 'whole-at-start' | 'whole-any';
/** What a map over something already mapped does (abi MAPPOL_*). */
export type OverlapMap = 'EEXIST' | 'EADDRINUSE' | 'keep' | 'replace' | 'replace-riscv';

/**
 * What one kernel's IOMMU code does for one page-table format ({@link formatPolicy}): which code
 * path it takes, and how it treats a partial unmap of a large leaf and a map over a mapping.
 */
export interface FormatPolicy {
  /** The code the format goes through in this kernel. */
  code: 'io-pgtable-arm' | 'generic_pt' | 'intel-iommu' | 'amd-io_pgtable' | 'riscv-iommu';
  /** An unmap covering only part of a large leaf. */
  partialUnmap: PartialUnmap;
  /** A map over something already mapped. */
  overlapMap: OverlapMap;
  /** Page sizes the driver offers (the domain's pgsize_bitmap is ANDed with it); 0n: all. */
  pgsizeMask: bigint;
}

const UNMAP: Record<PartialUnmap, number> = {
  split: ABI.UNMAP_SPLIT, refuse: ABI.UNMAP_REFUSE, 'whole-at-start': ABI.UNMAP_WHOLE_AT_START, 'whole-any': ABI.UNMAP_WHOLE_ANY,
};
const MAPPOL: Record<OverlapMap, number> = {
  EEXIST: ABI.MAPPOL_EEXIST, EADDRINUSE: ABI.MAPPOL_EADDRINUSE, keep: ABI.MAPPOL_KEEP, replace: ABI.MAPPOL_REPLACE,
  'replace-riscv': ABI.MAPPOL_REPLACE_RISCV,
};

const GENERIC_PT: FormatPolicy = { code: 'generic_pt', partialUnmap: 'whole-at-start', overlapMap: 'EADDRINUSE', pgsizeMask: 0n };

/**
 * The policy of `format` under `kernel`.
 * @throws {@link SimError} EINVAL when `kernel` is not an {@link IommuKernel}.
 * @throws {@link SimError} ENODEV when the kernel has no driver for the format (RISC-V before 6.13).
 */
export function formatPolicy(kernel: IommuKernel, format: PgtableFormat): FormatPolicy {
  if (!IOMMU_KERNELS.includes(kernel)) {
    throw new SimError('EINVAL', 'formatPolicy', `unknown IOMMU kernel profile '${String(kernel)}' (expected ${IOMMU_KERNELS.join(', ')})`);
  }
  const old = kernel === '5.15' || kernel === '6.12';
  switch (format) {
    case 'arm-lpae-s1':
    case 'arm-lpae-s2':
      return { code: 'io-pgtable-arm', partialUnmap: old ? 'split' : 'refuse', overlapMap: 'EEXIST', pgsizeMask: 0n };
    case 'vtd-ss':
    case 'x86-64':
      return kernel === 'mainline' ? GENERIC_PT : { code: 'intel-iommu', partialUnmap: 'whole-any', overlapMap: 'keep', pgsizeMask: 0n };
    case 'amd-v1':
      return kernel === 'mainline' ? GENERIC_PT : { code: 'amd-io_pgtable', partialUnmap: 'whole-any', overlapMap: 'replace', pgsizeMask: 0n };
    case 'riscv':
      if (old) throw new SimError('ENODEV', 'formatPolicy', `kernel ${kernel} has no RISC-V IOMMU driver (merged in v6.13)`);
      return kernel === 'mainline' ? GENERIC_PT : { code: 'riscv-iommu', partialUnmap: 'whole-at-start', overlapMap: 'replace-riscv', pgsizeMask: 1n << 12n };
  }
}

/** The core's policy byte for a format policy. */
export function policyCode(p: FormatPolicy): number {
  return UNMAP[p.partialUnmap] | (MAPPOL[p.overlapMap] << 4);
}
