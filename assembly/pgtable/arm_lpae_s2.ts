// ARM VMSAv8-64 stage-2 descriptors (spec iommu.md §C1 "Stage 2 leaf"; Linux io-pgtable-arm.c
// ARM_64_LPAE_S2, QEMU smmu_ptw_64_s2). Table and address layout as stage 1 (arm_lpae_s1.ts);
// leaves differ:
//   bits 5:2 MemAttr (0xF outer/inner write-back, 0x5 non-cacheable, 0x1 device),
//   bit 6 S2AP[0] = read, bit 7 S2AP[1] = write, no nG, no table attributes.
// The start level (VTCR.SL0) is 4 - levels; a walk starting at level 0 with at most 16 top
// entries starts at level 1 on concatenated tables instead (lpaeConfigure).

import { PROT_READ, PROT_WRITE, PROT_CACHE, PROT_MMIO } from '../abi';
import { LPAE_PTE_VALID, LPAE_PTE_TYPE_TABLE, LPAE_PTE_AF, lpaeEncode, lpaeCommon } from './arm_lpae_s1';

export const S2_MEMATTR_SHIFT: u32 = 2;
export const S2_MEMATTR_OIWB: u64 = 0xf;
export const S2_MEMATTR_NC: u64 = 0x5;
export const S2_MEMATTR_DEV: u64 = 0x1;
export const S2_HAP_READ: u64 = 1 << 6;
export const S2_HAP_WRITE: u64 = 1 << 7;

@inline export function s2MkLeaf(pa: u64, prot: u32, shift: u32, g: u32): u64 {
  let pte = lpaeEncode(pa, g) | LPAE_PTE_VALID | lpaeCommon(prot);
  if (shift == g) pte |= LPAE_PTE_TYPE_TABLE;
  if (prot & PROT_READ) pte |= S2_HAP_READ;
  if (prot & PROT_WRITE) pte |= S2_HAP_WRITE;
  const attr = (prot & PROT_MMIO) ? S2_MEMATTR_DEV : (prot & PROT_CACHE) ? S2_MEMATTR_OIWB : S2_MEMATTR_NC;
  return pte | (attr << S2_MEMATTR_SHIFT);
}

/** Rights of a stage-2 leaf (S2AP), or 0xffffffff when AF is clear (Access fault). */
@inline export function s2Perm(pte: u64): u32 {
  if ((pte & LPAE_PTE_AF) == 0) return 0xffffffff;
  return ((pte & S2_HAP_READ) != 0 ? 1 : 0) | ((pte & S2_HAP_WRITE) != 0 ? 2 : 0);
}
