// Intel VT-d second-stage (SL) paging entries, 4 KiB granule (spec iommu.md §C2).
//
//    63 62 61      52 51                          12 11 10  9  8  7  6  5  3  2  1  0
//   +--+--+----------+------------------------------+--+--+--+--+--+--+-----+--+--+--+
//   |ig|TM|  ignored |   address (limited by HAW)   |SN|ig| D| A|PS|IP| EMT | X| W| R|
//   +--+--+----------+------------------------------+--+--+--+--+--+--+-----+--+--+--+
// No present bit: an entry is present iff R or W is set. PS makes a leaf at level 2 (2 MiB) or
// 3 (1 GiB) and is reserved at level 4. Permissions are ANDed over every level of the walk, so
// table entries carry R|W (as Linux writes them).

import { PROT_READ, PROT_WRITE } from '../abi';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './format';

export const VTD_SL_R: u64 = 1 << 0;
export const VTD_SL_W: u64 = 1 << 1;
export const VTD_SL_PS: u64 = 1 << 7;
export const VTD_SL_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/** What an entry at a level of page shift `shift` is. */
@inline export function vtdKind(pte: u64, shift: u32): u32 {
  if ((pte & (VTD_SL_R | VTD_SL_W)) == 0) return PTE_INVALID;
  if (shift == 12) return PTE_LEAF;
  if ((pte & VTD_SL_PS) == 0) return PTE_TABLE;
  return shift <= 30 ? PTE_LEAF : PTE_RESERVED;
}

@inline export function vtdAddr(pte: u64): u64 {
  return pte & VTD_SL_ADDR_MASK;
}

@inline export function vtdMkTable(pa: u64): u64 {
  return pa | VTD_SL_R | VTD_SL_W;
}

@inline export function vtdMkLeaf(pa: u64, prot: u32, shift: u32): u64 {
  let pte = pa;
  if (prot & PROT_READ) pte |= VTD_SL_R;
  if (prot & PROT_WRITE) pte |= VTD_SL_W;
  if (shift > 12) pte |= VTD_SL_PS;
  return pte;
}

/** Access rights an entry grants (ACCESS_READ = R, ACCESS_WRITE = W share bit positions). */
@inline export function vtdPerm(pte: u64): u32 {
  return <u32>(pte & 3);
}
