// AMD IOMMU v1 host page table (spec iommu.md §C4; Linux generic_pt/fmt/amdv1.h and the older
// amd/io_pgtable.c; AMD IOMMU spec 2.2.3).
//
//    63 62 61 60 59      52 51                           12 11  9 8  7 6 5  1 0
//   +--+--+--+--+----------+-------------------------------+-----+----+-+----+--+
//   |ig|IW|IR|FC|  ig/res  |  address / page-size encoding | NL  | ig |D| ig |PR|
//   +--+--+--+--+----------+-------------------------------+-----+----+-+----+--+
// NextLevel (NL) 1..6: a table of that level (Linux never skips levels); 0: a leaf of the
// level's natural size; 7: a leaf whose size is encoded in the address: 2^(13+n) for n
// trailing ones from bit 12, the entry repeated over every slot it covers. IR/IW are ANDed over
// the walk (tables carry both). Levels ("mode") 1..6, the top growing on demand; Linux starts at 3.

import { PROT_READ, PROT_WRITE, EINVAL } from '../abi';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './kinds';
import { setGeometry } from './geometry';

export const AMD_PR: u64 = 1 << 0;
export const AMD_D: u64 = 1 << 6;
export const AMD_NL_SHIFT: u32 = 9;
export const AMD_NL_SIZE: u64 = 7;
export const AMD_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
export const AMD_FC: u64 = <u64>1 << 60;
export const AMD_IR: u64 = <u64>1 << 61;
export const AMD_IW: u64 = <u64>1 << 62;

/** Page shift of a size-encoded leaf: 13 + the trailing ones of the address field. */
@inline export function amdEncodedShift(pte: u64): u32 {
  return 13 + <u32>ctz(~((pte & AMD_ADDR_MASK) >> 12));
}

@inline export function amdKind(pte: u64, shift: u32): u32 {
  if ((pte & AMD_PR) == 0) return PTE_INVALID;
  const nl = (pte >> AMD_NL_SHIFT) & 7;
  if (nl == 0) return PTE_LEAF;
  if (nl == AMD_NL_SIZE) {
    const s = amdEncodedShift(pte);
    return s > shift && s < shift + 9 ? PTE_LEAF : PTE_RESERVED;
  }
  // A table must point at the level right below (level numbers are 1-based: 12 + 9 * (n - 1)).
  return shift > 12 && <u32>nl == (shift - 12) / 9 ? PTE_TABLE : PTE_RESERVED;
}

@inline export function amdLeafShift(pte: u64, shift: u32): u32 {
  return ((pte >> AMD_NL_SHIFT) & 7) == AMD_NL_SIZE ? amdEncodedShift(pte) : shift;
}

@inline export function amdAddr(pte: u64, lshift: u32): u64 {
  return pte & AMD_ADDR_MASK & ~((<u64>1 << lshift) - 1);
}

/** A table entry in a level of page shift `shift`: NL names the level below. */
@inline export function amdMkTable(pa: u64, shift: u32): u64 {
  return pa | AMD_PR | (<u64>((shift - 12) / 9) << AMD_NL_SHIFT) | AMD_IR | AMD_IW;
}

/** A leaf of page shift `lshift` in a level of page shift `shift`. Linux sets FC on leaves. */
@inline export function amdMkLeaf(pa: u64, prot: u32, lshift: u32, shift: u32): u64 {
  let pte = pa | AMD_PR | AMD_FC;
  if (prot & PROT_READ) pte |= AMD_IR;
  if (prot & PROT_WRITE) pte |= AMD_IW;
  if (lshift != shift) pte |= (AMD_NL_SIZE << AMD_NL_SHIFT) | (((<u64>1 << (lshift - 13)) - 1) << 12);
  return pte;
}

@inline export function amdPerm(pte: u64): u32 {
  return ((pte & AMD_IR) != 0 ? 1 : 0) | ((pte & AMD_IW) != 0 ? 2 : 0);
}

@inline export function amdReleaf(pte: u64, pa: u64, lshift: u32, shift: u32): u64 {
  const attrs = pte & (AMD_FC | AMD_IR | AMD_IW | AMD_PR);
  return attrs | amdMkLeaf(pa, 0, lshift, shift);
}

/**
 * Max input bits 32..64, output 32..52. Starts with 3 levels (as io_pgtable and the generic_pt
 * AMD driver do) or fewer when ias needs fewer. Page sizes: every power of two from 4K to 2^51
 * and below 2^ias, except 512G (a hardware erratum, amdv1pt_possible_sizes).
 */
export function amdConfigure(d: usize, ias: u32, oas: u32): i32 {
  if (ias < 32 || ias > 64 || oas < 32 || oas > 52) return EINVAL;
  const maxLevels = (ias - 12 + 8) / 9;
  const levels = maxLevels < 3 ? maxLevels : 3;
  let sizes: u64 = 0;
  for (let s: u32 = 12; s <= 51 && s < ias; s++) if (s != 39) sizes |= <u64>1 << s;
  return setGeometry(d, 12, 9, 9, levels, sizes);
}
