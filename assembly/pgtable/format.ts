// The format enum's dispatch: one switch per entry operation, so each format file keeps the same
// small set of functions (kind, addr, mkTable, mkLeaf, perm) and the walker/writer stay generic.

import { FMT_VTD_SS, FMT_ARM_LPAE_S1, OK, EINVAL } from '../abi';
import { vtdKind, vtdAddr, vtdMkTable, vtdMkLeaf, vtdPerm } from './vtd_ss';
import { lpaeKind, lpaeAddr, lpaeMkTable, lpaeMkLeaf, lpaePerm } from './arm_lpae_s1';

export const PTE_INVALID: u32 = 0;
export const PTE_TABLE: u32 = 1;
export const PTE_LEAF: u32 = 2;
export const PTE_RESERVED: u32 = 3;

/** Page sizes both formats support with a 4 KiB granule: 4K | 2M | 1G. */
export const PGSIZES_4K_GRANULE: u64 = (1 << 12) | (1 << 21) | (1 << 30);

@inline export function pteKind(fmt: u32, pte: u64, shift: u32): u32 {
  return fmt == FMT_VTD_SS ? vtdKind(pte, shift) : lpaeKind(pte, shift);
}
@inline export function pteAddr(fmt: u32, pte: u64): u64 {
  return fmt == FMT_VTD_SS ? vtdAddr(pte) : lpaeAddr(pte);
}
@inline export function pteMkTable(fmt: u32, pa: u64): u64 {
  return fmt == FMT_VTD_SS ? vtdMkTable(pa) : lpaeMkTable(pa);
}
@inline export function pteMkLeaf(fmt: u32, pa: u64, prot: u32, shift: u32): u64 {
  return fmt == FMT_VTD_SS ? vtdMkLeaf(pa, prot, shift) : lpaeMkLeaf(pa, prot, shift);
}
@inline export function ptePerm(fmt: u32, pte: u64): u32 {
  return fmt == FMT_VTD_SS ? vtdPerm(pte) : lpaePerm(pte);
}
/** Whether table entries restrict access (VT-d ANDs R/W over levels; ARM S1 tables here do not). */
@inline export function tablesRestrict(fmt: u32): bool {
  return fmt == FMT_VTD_SS;
}

/**
 * Checks a format's address widths. VT-d SS: IAS (AGAW) 39, 48 or 57; OAS (HAW) 32..52.
 * ARM LPAE S1 with 4 KiB granule: IAS 32..48, OAS 32..48. Returns OK or EINVAL.
 */
export function checkWidths(fmt: u32, ias: u32, oas: u32): i32 {
  if (fmt == FMT_VTD_SS) {
    if (ias != 39 && ias != 48 && ias != 57) return EINVAL;
    return oas >= 32 && oas <= 52 ? OK : EINVAL;
  }
  if (fmt == FMT_ARM_LPAE_S1) {
    if (ias < 32 || ias > 48) return EINVAL;
    return oas >= 32 && oas <= 48 ? OK : EINVAL;
  }
  return EINVAL;
}

/** Levels of a 4 KiB-granule table for `ias` bits: ceil((ias - 12) / 9). */
@inline export function levelsFor(ias: u32): u32 {
  return (ias - 12 + 8) / 9;
}

/** Page shift of level `lvl` (0 = top) in a table of `levels` levels. */
@inline export function lvlShift(lvl: u32, levels: u32): u32 {
  return 12 + 9 * (levels - 1 - lvl);
}
