// x86-64 paging as the IOMMU first stage (VT-d first stage, AMD v2): 4 or 5 levels, 4 KiB
// granule (spec iommu.md §C3; Linux generic_pt/fmt/x86_64.h; QEMU vtd_iova_to_flpte).
//
//    63 62    52 51                          12 11  9 8 7  6 5 4   3  2  1 0
//   +--+--------+------------------------------+-----+-+--+-+-+---+---+--+--+-+
//   |XD| ignored|     address                  | ign |G|PS|D|A|PCD|PWT|US|RW|P|
//   +--+--------+------------------------------+-----+-+--+-+-+---+---+--+--+-+
// PS makes a leaf in a PDE (2 MiB) or PDPTE (1 GiB); bit 7 is PAT in a PTE. RW and U/S are ANDed
// over the walk; a device (user) request needs U/S = 1 everywhere. Inputs are sign-extended:
// bits 63..ias-1 all equal (canonical), else the VT-d non-canonical fault. Linux writes
// P|RW|U|A on tables and P|U|A (|RW|D when writable) on leaves, PS above the last level.

import { PROT_WRITE, EINVAL } from '../abi';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './kinds';
import { setGeometry } from './geometry';

export const X86_P: u64 = 1 << 0;
export const X86_RW: u64 = 1 << 1;
export const X86_US: u64 = 1 << 2;
export const X86_A: u64 = 1 << 5;
export const X86_D: u64 = 1 << 6;
export const X86_PS: u64 = 1 << 7;
export const X86_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
export const X86_XD: u64 = <u64>1 << 63;

@inline export function x86Kind(pte: u64, shift: u32): u32 {
  if ((pte & X86_P) == 0) return PTE_INVALID;
  if (shift == 12) return PTE_LEAF;
  if ((pte & X86_PS) == 0) return PTE_TABLE;
  if (shift > 30) return PTE_RESERVED;
  // Bit 12 is PAT in a large leaf; the bits between it and the page size are reserved.
  const rsvd = X86_ADDR_MASK & ((<u64>1 << shift) - 1) & ~(<u64>1 << 12);
  return (pte & rsvd) != 0 ? PTE_RESERVED : PTE_LEAF;
}

@inline export function x86Addr(pte: u64, lshift: u32): u64 {
  return pte & X86_ADDR_MASK & ~((<u64>1 << lshift) - 1);
}

@inline export function x86MkTable(pa: u64): u64 {
  return pa | X86_P | X86_RW | X86_US | X86_A;
}

@inline export function x86MkLeaf(pa: u64, prot: u32, shift: u32): u64 {
  let pte = pa | X86_P | X86_US | X86_A;
  if (prot & PROT_WRITE) pte |= X86_RW | X86_D;
  if (shift > 12) pte |= X86_PS;
  return pte;
}

/** Rights an entry grants a user-level request: read when present and U/S, write with RW. */
@inline export function x86Perm(pte: u64): u32 {
  if ((pte & X86_US) == 0) return 0;
  return 1 | ((pte & X86_RW) != 0 ? 2 : 0);
}

@inline export function x86Releaf(pte: u64, pa: u64, shift: u32): u64 {
  return (pte & ~(X86_ADDR_MASK | X86_PS)) | pa | (shift > 12 ? X86_PS : 0);
}

/** 4 levels (ias 48) or 5 (ias 57), output 32..52; 4K | 2M | 1G. */
export function x86Configure(d: usize, ias: u32, oas: u32): i32 {
  if (ias != 48 && ias != 57) return EINVAL;
  if (oas < 32 || oas > 52) return EINVAL;
  return setGeometry(d, 12, 9, 9, (ias - 12) / 9, (1 << 12) | (1 << 21) | (1 << 30));
}
