// Intel VT-d second-stage (SL) paging entries, 4 KiB granule (spec iommu.md §C2; Linux
// generic_pt/fmt/vtdss.h, QEMU vtd_iova_to_slpte).
//
//    63 62 61      52 51                          12 11 10  9  8  7  6  5  3  2  1  0
//   +--+--+----------+------------------------------+--+--+--+--+--+--+-----+--+--+--+
//   |ig|TM|  ignored |   address (limited by HAW)   |SN|ig| D| A|PS|IP| EMT | X| W| R|
//   +--+--+----------+------------------------------+--+--+--+--+--+--+-----+--+--+--+
// No present bit: an entry is present iff R or W is set. PS makes a leaf at level 2 (2 MiB) or
// 3 (1 GiB) and is reserved at level 4. Permissions are ANDed over every level of the walk, so
// table entries carry R|W (as Linux writes them). Address bits below a large leaf's size are
// reserved (QEMU's large-page reserved masks).

import { PROT_READ, PROT_WRITE, EINVAL } from '../abi';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './kinds';
import { setGeometry } from './geometry';

export const VTD_SL_R: u64 = 1 << 0;
export const VTD_SL_W: u64 = 1 << 1;
export const VTD_SL_PS: u64 = 1 << 7;
export const VTD_SL_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/** What an entry at a level of page shift `shift` is. */
@inline export function vtdKind(pte: u64, shift: u32): u32 {
  if ((pte & (VTD_SL_R | VTD_SL_W)) == 0) return PTE_INVALID;
  if (shift == 12) return PTE_LEAF;
  if ((pte & VTD_SL_PS) == 0) return PTE_TABLE;
  if (shift > 30) return PTE_RESERVED;
  return (pte & VTD_SL_ADDR_MASK & ((<u64>1 << shift) - 1)) != 0 ? PTE_RESERVED : PTE_LEAF;
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

/** The same leaf at another address and size (used by no VT-d policy; kept for the ops table). */
@inline export function vtdReleaf(pte: u64, pa: u64, shift: u32): u64 {
  return (pte & ~(VTD_SL_ADDR_MASK | VTD_SL_PS)) | pa | (shift > 12 ? VTD_SL_PS : 0);
}

/** AGAW 39/48/57 (3..5 levels), HAW 32..52; 4K | 2M | 1G. */
export function vtdConfigure(d: usize, ias: u32, oas: u32): i32 {
  if (ias != 39 && ias != 48 && ias != 57) return EINVAL;
  if (oas < 32 || oas > 52) return EINVAL;
  return setGeometry(d, 12, 9, 9, (ias - 12) / 9, (1 << 12) | (1 << 21) | (1 << 30));
}
