// ARM VMSAv8-64 stage-1 descriptors, 4/16/64 KiB granules (spec iommu.md §C1; Linux
// io-pgtable-arm.c, QEMU smmu_ptw_64_s1).
//
//    63    59 58  55 54 53 52 51 50  48 47                          12 11 10  9 8  7 6  5  4  2  1  0
//   +-------+------+---+---+--+---+----+------------------------------+--+--+----+----+--+-----+--+--+
//   |tbl att|  sw  |UXN|PXN|Ct|DBM|res0|   output / next-table address|nG|AF| SH | AP |NS|AttrI|T |V |
//   +-------+------+---+---+--+---+----+------------------------------+--+--+----+----+--+-----+--+--+
// V=1,T=1: table, or page at the last level; V=1,T=0: block where the granule allows one
// (4K: levels 1-2, 16K: level 2, 64K: level 2, and level 1 with 52-bit output), else reserved.
// AP bit 7 = read-only, AP bit 6 = unprivileged access allowed. AF=0 gives an Access fault.
// Table attributes (bits 63:59): APTable[1] (62) = no write below, APTable[0] (61) = no
// unprivileged access below; honoured unless hierarchical attributes are disabled (CD.HAD).
// With the 64K granule and 52-bit output, OA[51:48] sit in bits 15:12 (Linux paddr_to_iopte).
// The contiguous hint (bit 52) marks an aligned group of entries (16 with 4K; 128 pages or 32
// blocks with 16K; 32 with 64K) that the TLB may hold as one: the walker reports the group as
// one leaf. Linux never writes it; a guest that does must make the group consistent.
// Linux writes nG, AF, SH (inner when cacheable, else outer) and AttrIndx on every S1 leaf.

import {
  PROT_READ, PROT_WRITE, PROT_CACHE, PROT_NOEXEC, PROT_MMIO, PROT_PRIV, EINVAL, DOMAIN_GRANULE, DOMAIN_OAS, DOMAIN_FLAGS, DOMAIN_F_HAD, FMT_ARM_LPAE_S2,
} from '../abi';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './kinds';
import { setGeometry } from './geometry';

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
export const LPAE_APTABLE_NO_EL0: u64 = <u64>1 << 61;
export const LPAE_APTABLE_RDONLY: u64 = <u64>1 << 62;

/** Whether a block (leaf above the last level) of page shift `shift` exists for granule `g`. */
@inline export function lpaeBlockOk(g: u32, shift: u32, oas: u32): bool {
  if (g == 12) return shift == 21 || shift == 30;
  if (g == 14) return shift == 25;
  return shift == 29 || (shift == 42 && oas > 48);
}

/** Entry kind for any ARM LPAE stage (stage 1 and 2 share the descriptor types). */
@inline export function lpaeKind(pte: u64, shift: u32, d: usize): u32 {
  if ((pte & LPAE_PTE_VALID) == 0) return PTE_INVALID;
  const t = (pte & LPAE_PTE_TYPE_TABLE) != 0;
  const g = <u32>load<u8>(d + DOMAIN_GRANULE);
  if (shift == g) return t ? PTE_LEAF : PTE_RESERVED;
  if (t) return PTE_TABLE;
  return lpaeBlockOk(g, shift, load<u32>(d + DOMAIN_OAS)) ? PTE_LEAF : PTE_RESERVED;
}

export const LPAE_PTE_CONT: u64 = <u64>1 << 52;

/** Page shift of a leaf: the level's, or its contiguous group's when the hint is set. */
@inline export function lpaeLeafShift(pte: u64, shift: u32, g: u32): u32 {
  if ((pte & LPAE_PTE_CONT) == 0) return shift;
  if (g == 12) return shift + 4;
  if (g == 14) return shift + (shift == 14 ? 7 : 5);
  return shift + 5;
}

/** Output or next-table address: bits 47:g, plus 51:48 from bits 15:12 with the 64K granule. */
@inline export function lpaeAddr(pte: u64, g: u32): u64 {
  const a = pte & LPAE_ADDR_MASK;
  if (g < 16) return a;
  return (a | (a << 36)) & 0x000f_ffff_ffff_0000;
}

@inline export function lpaeEncode(pa: u64, g: u32): u64 {
  if (g < 16) return pa;
  return (pa | (pa >> 36)) & LPAE_ADDR_MASK;
}

@inline export function lpaeMkTable(pa: u64, g: u32): u64 {
  return lpaeEncode(pa, g) | LPAE_PTE_VALID | LPAE_PTE_TYPE_TABLE;
}

/** The prot bits io-pgtable-arm writes on every leaf of either stage (SH, XN, AF). */
@inline export function lpaeCommon(prot: u32): u64 {
  let pte = LPAE_PTE_AF | ((prot & PROT_CACHE) ? LPAE_PTE_SH_IS : LPAE_PTE_SH_OS);
  if (prot & PROT_NOEXEC) pte |= LPAE_PTE_XN;
  return pte;
}

@inline export function lpaeMkLeaf(pa: u64, prot: u32, shift: u32, g: u32): u64 {
  let pte = lpaeEncode(pa, g) | LPAE_PTE_VALID | LPAE_PTE_NG | lpaeCommon(prot);
  if (shift == g) pte |= LPAE_PTE_TYPE_TABLE; // page descriptors reuse the table type bit
  if ((prot & PROT_WRITE) == 0 && (prot & PROT_READ) != 0) pte |= LPAE_PTE_AP_RDONLY;
  if ((prot & PROT_PRIV) == 0) pte |= LPAE_PTE_AP_UNPRIV;
  if (prot & PROT_MMIO) pte |= LPAE_ATTRINDX_DEV << LPAE_PTE_ATTRINDX_SHIFT;
  else if (prot & PROT_CACHE) pte |= LPAE_ATTRINDX_CACHE << LPAE_PTE_ATTRINDX_SHIFT;
  return pte;
}

/** The same leaf at address `pa` as a leaf of page shift `shift` (a block split, before v6.13). */
@inline export function lpaeReleaf(pte: u64, pa: u64, shift: u32, g: u32): u64 {
  const attrs = pte & ~(LPAE_ADDR_MASK | LPAE_PTE_TYPE_TABLE);
  return attrs | lpaeEncode(pa, g) | (shift == g ? LPAE_PTE_TYPE_TABLE : 0);
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

/** What APTable leaves to the levels below (stage 1, unless hierarchical attributes are off). */
@inline export function lpaeTablePerm(pte: u64, d: usize): u32 {
  if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_HAD) != 0) return 3;
  if ((pte & LPAE_APTABLE_NO_EL0) != 0) return 0;
  return (pte & LPAE_APTABLE_RDONLY) != 0 ? 1 : 3;
}

/**
 * io-pgtable-arm geometry (arm_lpae_alloc_pgtable, arm_lpae_restrict_pgsizes): granule 4K, 16K
 * or 64K; IAS and OAS at most 48 bits (52 with 64K); levels = ceil((ias - g) / (g - 3)); the
 * top table holds what is left. Stage 2 concatenates up to 16 top tables into the next level
 * when the walk would start at level 0 (arm_64_lpae_alloc_pgtable_s2). Page sizes: 4K | 2M | 1G,
 * 16K | 32M, 64K | 512M (| 4T when OAS > 48), none as large as the input space.
 */
export function lpaeConfigure(d: usize, fmt: u32, ias: u32, oas: u32, granule: u32): i32 {
  const g: u32 = granule == 4096 ? 12 : granule == 16384 ? 14 : granule == 65536 ? 16 : 0;
  if (g == 0) return EINVAL;
  const maxBits: u32 = g == 16 ? 52 : 48;
  if (ias < 32 || ias > maxBits || oas < 32 || oas > maxBits) return EINVAL;
  const b = g - 3;
  let levels = (ias - g + b - 1) / b;
  let top = ias - g - b * (levels - 1);
  if (fmt == FMT_ARM_LPAE_S2 && levels == 4 && top <= 4) {
    levels = 3;
    top += b;
  }
  let sizes: u64 = 0;
  if (g == 12) sizes = (1 << 12) | (1 << 21) | (1 << 30);
  else if (g == 14) sizes = (1 << 14) | (1 << 25);
  else sizes = (1 << 16) | (1 << 29) | (oas > 48 ? <u64>1 << 42 : 0);
  sizes &= (<u64>1 << ias) - 1;
  return setGeometry(d, g, b, top, levels, sizes);
}
