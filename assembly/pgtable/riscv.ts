// RISC-V Sv39/Sv48/Sv57 as the IOMMU first stage (RISC-V privileged spec 12.4-12.6 and the
// Svnapot extension; Linux generic_pt/fmt/riscv.h and drivers/iommu/riscv/).
//
//    63  62 61 60    54 53                              10 9  8 7 6 5 4 3 2 1 0
//   +---+-----+--------+---------------------------------+----+-+-+-+-+-+-+-+-+
//   | N |PBMT | res    |   PPN (address >> 12)           |RSW |D|A|G|U|X|W|R|V|
//   +---+-----+--------+---------------------------------+----+-+-+-+-+-+-+-+-+
// V=0 invalid; R=W=X=0 a table (a page fault at the last level); any of R/W/X a leaf at any
// level (a superpage's low PPN bits must be 0); W without R reserved. N=1 with PPN[3:0] = 1000 is
// a 64 KiB NAPOT leaf of the last level, repeated over its 16 slots. A=0, or D=0 on a write, is a
// page fault (no hardware A/D update). Inputs are sign-extended from bit ias-1. Linux writes
// V|A|U|R on leaves, W|D with write, X unless NOEXEC, and V alone on tables.

import { PROT_READ, PROT_WRITE, PROT_NOEXEC, EINVAL, DOMAIN_FLAGS, DOMAIN_F_SVNAPOT } from '../abi';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './kinds';
import { setGeometry } from './geometry';

export const RV_V: u64 = 1 << 0;
export const RV_R: u64 = 1 << 1;
export const RV_W: u64 = 1 << 2;
export const RV_X: u64 = 1 << 3;
export const RV_U: u64 = 1 << 4;
export const RV_A: u64 = 1 << 6;
export const RV_D: u64 = 1 << 7;
export const RV_PPN_SHIFT: u32 = 10;
export const RV_PPN_MASK: u64 = 0x003f_ffff_ffff_fc00; // bits 53:10
export const RV_RSVD_MASK: u64 = 0x1fc0_0000_0000_0000; // bits 60:54
export const RV_NAPOT_64K: u64 = 1 << 13;                // PPN[3:0] = 1000
export const RV_N: u64 = <u64>1 << 63;

@inline function ppnAddr(pte: u64): u64 {
  return ((pte & RV_PPN_MASK) >> RV_PPN_SHIFT) << 12;
}

@inline export function rvKind(pte: u64, shift: u32, d: usize): u32 {
  if ((pte & RV_V) == 0) return PTE_INVALID;
  if ((pte & RV_RSVD_MASK) != 0) return PTE_RESERVED;
  const rwx = pte & (RV_R | RV_W | RV_X);
  if (rwx == 0) return shift == 12 || (pte & RV_N) != 0 ? PTE_RESERVED : PTE_TABLE;
  if ((rwx & (RV_R | RV_W)) == RV_W) return PTE_RESERVED;
  if ((pte & RV_N) != 0) {
    const napot = (load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_SVNAPOT) != 0;
    return napot && shift == 12 && ((pte >> RV_PPN_SHIFT) & 0xf) == 8 ? PTE_LEAF : PTE_RESERVED;
  }
  return (ppnAddr(pte) & ((<u64>1 << shift) - 1)) != 0 ? PTE_RESERVED : PTE_LEAF;
}

@inline export function rvLeafShift(pte: u64, shift: u32): u32 {
  return (pte & RV_N) != 0 ? 16 : shift;
}

@inline export function rvAddr(pte: u64, lshift: u32): u64 {
  return ppnAddr(pte) & ~((<u64>1 << lshift) - 1);
}

@inline export function rvMkTable(pa: u64): u64 {
  return ((pa >> 12) << RV_PPN_SHIFT) | RV_V;
}

@inline export function rvMkLeaf(pa: u64, prot: u32, lshift: u32): u64 {
  let pte = ((pa >> 12) << RV_PPN_SHIFT) | RV_V | RV_A | RV_U;
  if (prot & PROT_WRITE) pte |= RV_W | RV_R | RV_D;
  if (prot & PROT_READ) pte |= RV_R;
  if ((prot & PROT_NOEXEC) == 0) pte |= RV_X;
  if (lshift == 16) pte |= RV_N | RV_NAPOT_64K;
  return pte;
}

/** Rights of a leaf; 0xffffffff when A is clear (a page fault on any access). */
@inline export function rvPerm(pte: u64): u32 {
  if ((pte & RV_A) == 0) return 0xffffffff;
  if ((pte & RV_U) == 0) return 0;
  return ((pte & RV_R) != 0 ? 1 : 0) | ((pte & (RV_W | RV_D)) == (RV_W | RV_D) ? 2 : 0);
}

@inline export function rvReleaf(pte: u64, pa: u64, lshift: u32): u64 {
  const attrs = pte & (RV_V | RV_R | RV_W | RV_X | RV_U | RV_A | RV_D | (<u64>3 << 61));
  return attrs | ((pa >> 12) << RV_PPN_SHIFT) | (lshift == 16 ? RV_N | RV_NAPOT_64K : 0);
}

/**
 * Sv39/Sv48/Sv57 (ias 39/48/57, 3..5 levels), output 32..56. Leaves at every level, 64K with
 * Svnapot: 4K | 64K | 2M | 1G | 512G (Sv48+) | 256T (Sv57).
 */
export function rvConfigure(d: usize, ias: u32, oas: u32): i32 {
  if (ias != 39 && ias != 48 && ias != 57) return EINVAL;
  if (oas < 32 || oas > 56) return EINVAL;
  const levels = (ias - 12) / 9;
  let sizes: u64 = 0;
  for (let l: u32 = 0; l < levels; l++) sizes |= <u64>1 << (12 + 9 * l);
  if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_SVNAPOT) != 0) sizes |= 1 << 16;
  return setGeometry(d, 12, 9, 9, levels, sizes);
}
