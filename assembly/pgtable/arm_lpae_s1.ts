// ARM VMSAv8-64 stage-1 descriptors, 4 KiB granule (spec iommu.md §C1; Linux io-pgtable-arm).
//
//    63    59 58  55 54 53 52 51 50  48 47                          12 11 10  9 8  7 6  5  4  2  1  0
//   +-------+------+---+---+--+---+----+------------------------------+--+--+----+----+--+-----+--+--+
//   |tbl att|  sw  |UXN|PXN|Ct|DBM|res0|   output / next-table address|nG|AF| SH | AP |NS|AttrI|T |V |
//   +-------+------+---+---+--+---+----+------------------------------+--+--+----+----+--+-----+--+--+
// V=1,T=1: table (levels 0-2) or page (level 3); V=1,T=0: block at levels 1-2, reserved at 0 and 3.
// AP bit 7 = read-only, AP bit 6 = unprivileged access allowed. AF=0 gives an Access fault.
// Linux writes nG, AF, SH (inner when cacheable, else outer) and AttrIndx on every S1 leaf.

import { PROT_READ, PROT_WRITE, PROT_CACHE, PROT_NOEXEC, PROT_MMIO, PROT_PRIV } from '../abi';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './format';

export const LPAE_PTE_VALID: u64 = 1 << 0;
export const LPAE_PTE_TYPE_TABLE: u64 = 1 << 1;
export const LPAE_PTE_ATTRINDX_SHIFT: u32 = 2;
export const LPAE_ATTRINDX_NC: u64 = 0;
export const LPAE_ATTRINDX_CACHE: u64 = 1;
export const LPAE_ATTRINDX_DEV: u64 = 2;
export const LPAE_PTE_AP_UNPRIV: u64 = 1 << 6;
export const LPAE_PTE_AP_RDONLY: u64 = 1 << 7;
export const LPAE_PTE_SH_OS: u64 = 2 << 8;
export const LPAE_PTE_SH_IS: u64 = 3 << 8;
export const LPAE_PTE_AF: u64 = 1 << 10;
export const LPAE_PTE_NG: u64 = 1 << 11;
export const LPAE_PTE_XN: u64 = 3 << 53;
export const LPAE_ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

@inline export function lpaeKind(pte: u64, shift: u32): u32 {
  if ((pte & LPAE_PTE_VALID) == 0) return PTE_INVALID;
  const t = (pte & LPAE_PTE_TYPE_TABLE) != 0;
  if (shift == 12) return t ? PTE_LEAF : PTE_RESERVED;
  if (t) return PTE_TABLE;
  return shift <= 30 ? PTE_LEAF : PTE_RESERVED;
}

@inline export function lpaeAddr(pte: u64): u64 {
  return pte & LPAE_ADDR_MASK;
}

@inline export function lpaeMkTable(pa: u64): u64 {
  return pa | LPAE_PTE_VALID | LPAE_PTE_TYPE_TABLE;
}

@inline export function lpaeMkLeaf(pa: u64, prot: u32, shift: u32): u64 {
  let pte = pa | LPAE_PTE_VALID | LPAE_PTE_AF | LPAE_PTE_NG;
  if (shift == 12) pte |= LPAE_PTE_TYPE_TABLE; // page descriptors reuse the table type bit
  if ((prot & PROT_WRITE) == 0 && (prot & PROT_READ) != 0) pte |= LPAE_PTE_AP_RDONLY;
  if ((prot & PROT_PRIV) == 0) pte |= LPAE_PTE_AP_UNPRIV;
  if (prot & PROT_MMIO) pte |= LPAE_ATTRINDX_DEV << LPAE_PTE_ATTRINDX_SHIFT;
  else if (prot & PROT_CACHE) pte |= LPAE_ATTRINDX_CACHE << LPAE_PTE_ATTRINDX_SHIFT;
  pte |= (prot & PROT_CACHE) ? LPAE_PTE_SH_IS : LPAE_PTE_SH_OS;
  if (prot & PROT_NOEXEC) pte |= LPAE_PTE_XN;
  return pte;
}

/**
 * Access rights a leaf grants to a device (devices issue unprivileged transactions). Returns
 * the rights, or 0xffffffff when AF is clear (an Access fault, which wins over Permission).
 */
@inline export function lpaePerm(pte: u64): u32 {
  if ((pte & LPAE_PTE_AF) == 0) return 0xffffffff;
  if ((pte & LPAE_PTE_AP_UNPRIV) == 0) return 0;
  return (pte & LPAE_PTE_AP_RDONLY) != 0 ? 1 : 3;
}
