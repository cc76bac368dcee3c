// The ops table of the I/O page-table formats, registered by format enum in this one place (the
// core's io_pgtable_init_table). Every format file has the same small set of operations:
//
//   kind(pte, shift, d)            what the entry is at a level of page shift `shift`
//   tableAddr(pte, d)              next-table address of a table entry
//   leafShift(pte, shift)          page shift of a leaf (larger than the level's for contiguous
//                                  leaves: AMD v1 size-encoded, RISC-V NAPOT)
//   leafAddr(pte, lshift, d)       output address of a leaf
//   mkTable(pa, shift, d)          a table entry in a level of page shift `shift`
//   mkLeaf(pa, prot, lshift, shift, d)  a leaf of page shift `lshift` in a level of `shift`
//   releaf(pte, pa, lshift, shift, d)   the same leaf moved/resized (block split)
//   perm(pte)                      rights of a leaf (0xffffffff: Access-flag fault)
//   tablePerm(pte, d)              rights a table entry leaves to the levels below
//   configure(d, ias, oas, granule)     geometry, levels and page-size bitmap, or EINVAL
//
// A switch on the enum keeps the core free of function tables and data segments.

import {
  FMT_VTD_SS, FMT_ARM_LPAE_S1, FMT_ARM_LPAE_S2, FMT_AMD_V1, FMT_X86_64, FMT_RISCV, EINVAL,
  DOMAIN_GRANULE, DOMAIN_LEVEL_BITS, DOMAIN_LEVELS, FAULT_TRANSLATION, FAULT_RESERVED_BIT,
  FAULT_ADDRESS_SIZE,
} from '../abi';
import { vtdKind, vtdAddr, vtdMkTable, vtdMkLeaf, vtdPerm, vtdReleaf, vtdConfigure } from './vtd_ss';
import { lpaeKind, lpaeAddr, lpaeMkTable, lpaeMkLeaf, lpaePerm, lpaeTablePerm, lpaeReleaf, lpaeConfigure, lpaeLeafShift } from './arm_lpae_s1';
import { s2MkLeaf, s2Perm } from './arm_lpae_s2';
import { amdKind, amdLeafShift, amdAddr, amdMkTable, amdMkLeaf, amdPerm, amdReleaf, amdConfigure, AMD_ADDR_MASK } from './amd_v1';
import { x86Kind, x86Addr, x86MkTable, x86MkLeaf, x86Perm, x86Releaf, x86Configure, X86_ADDR_MASK } from './x86_64';
import { rvKind, rvLeafShift, rvAddr, rvMkTable, rvMkLeaf, rvPerm, rvReleaf, rvConfigure } from './riscv';

export { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './kinds';

@inline function gran(d: usize): u32 { return <u32>load<u8>(d + DOMAIN_GRANULE); }

@inline export function pteKind(fmt: u32, pte: u64, shift: u32, d: usize): u32 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdKind(pte, shift);
    case FMT_AMD_V1: return amdKind(pte, shift);
    case FMT_X86_64: return x86Kind(pte, shift);
    case FMT_RISCV: return rvKind(pte, shift, d);
    default: return lpaeKind(pte, shift, d);
  }
}

@inline export function pteTableAddr(fmt: u32, pte: u64, d: usize): u64 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdAddr(pte);
    case FMT_AMD_V1: return pte & AMD_ADDR_MASK;
    case FMT_X86_64: return pte & X86_ADDR_MASK;
    case FMT_RISCV: return rvAddr(pte, 12);
    default: return lpaeAddr(pte, gran(d));
  }
}

@inline export function pteLeafShift(fmt: u32, pte: u64, shift: u32, d: usize): u32 {
  if (fmt == FMT_AMD_V1) return amdLeafShift(pte, shift);
  if (fmt == FMT_RISCV) return rvLeafShift(pte, shift);
  if (fmt == FMT_ARM_LPAE_S1 || fmt == FMT_ARM_LPAE_S2) return lpaeLeafShift(pte, shift, gran(d));
  return shift;
}

@inline export function pteLeafAddr(fmt: u32, pte: u64, lshift: u32, d: usize): u64 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdAddr(pte) & ~((<u64>1 << lshift) - 1);
    case FMT_AMD_V1: return amdAddr(pte, lshift);
    case FMT_X86_64: return x86Addr(pte, lshift);
    case FMT_RISCV: return rvAddr(pte, lshift);
    default: return lpaeAddr(pte, gran(d)) & ~((<u64>1 << lshift) - 1);
  }
}

@inline export function pteMkTable(fmt: u32, pa: u64, shift: u32, d: usize): u64 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdMkTable(pa);
    case FMT_AMD_V1: return amdMkTable(pa, shift);
    case FMT_X86_64: return x86MkTable(pa);
    case FMT_RISCV: return rvMkTable(pa);
    default: return lpaeMkTable(pa, gran(d));
  }
}

@inline export function pteMkLeaf(fmt: u32, pa: u64, prot: u32, lshift: u32, shift: u32, d: usize): u64 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdMkLeaf(pa, prot, lshift);
    case FMT_ARM_LPAE_S2: return s2MkLeaf(pa, prot, lshift, gran(d));
    case FMT_AMD_V1: return amdMkLeaf(pa, prot, lshift, shift);
    case FMT_X86_64: return x86MkLeaf(pa, prot, lshift);
    case FMT_RISCV: return rvMkLeaf(pa, prot, lshift);
    default: return lpaeMkLeaf(pa, prot, lshift, gran(d));
  }
}

@inline export function pteReleaf(fmt: u32, pte: u64, pa: u64, lshift: u32, shift: u32, d: usize): u64 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdReleaf(pte, pa, lshift);
    case FMT_AMD_V1: return amdReleaf(pte, pa, lshift, shift);
    case FMT_X86_64: return x86Releaf(pte, pa, lshift);
    case FMT_RISCV: return rvReleaf(pte, pa, lshift);
    default: return lpaeReleaf(pte, pa, lshift, gran(d));
  }
}

@inline export function ptePerm(fmt: u32, pte: u64): u32 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdPerm(pte);
    case FMT_ARM_LPAE_S2: return s2Perm(pte);
    case FMT_AMD_V1: return amdPerm(pte);
    case FMT_X86_64: return x86Perm(pte);
    case FMT_RISCV: return rvPerm(pte);
    default: return lpaePerm(pte);
  }
}

/** Rights a table entry leaves below it: ANDed R/W (VT-d, AMD, x86), APTable (ARM S1), none. */
@inline export function pteTablePerm(fmt: u32, pte: u64, d: usize): u32 {
  switch (fmt) {
    case FMT_VTD_SS: return vtdPerm(pte);
    case FMT_ARM_LPAE_S1: return lpaeTablePerm(pte, d);
    case FMT_AMD_V1: return amdPerm(pte);
    case FMT_X86_64: return x86Perm(pte);
    default: return 3;
  }
}

/** The fault a malformed entry gives: a reserved-bit fault where the format has one. */
@inline export function reservedReason(fmt: u32): u32 {
  return fmt == FMT_VTD_SS || fmt == FMT_X86_64 || fmt == FMT_AMD_V1 ? FAULT_RESERVED_BIT : FAULT_TRANSLATION;
}

/** The fault an output beyond OAS gives (ARM: Address Size; elsewhere reserved address bits). */
@inline export function outputTooWideReason(fmt: u32): u32 {
  return fmt == FMT_ARM_LPAE_S1 || fmt == FMT_ARM_LPAE_S2 ? FAULT_ADDRESS_SIZE : reservedReason(fmt);
}

/** Sets a domain's geometry, levels and page sizes for `fmt`. OK or EINVAL. */
export function configure(fmt: u32, d: usize, ias: u32, oas: u32, granule: u32): i32 {
  switch (fmt) {
    case FMT_VTD_SS: return granule == 4096 ? vtdConfigure(d, ias, oas) : EINVAL;
    case FMT_ARM_LPAE_S1:
    case FMT_ARM_LPAE_S2: return lpaeConfigure(d, fmt, ias, oas, granule);
    case FMT_AMD_V1: return granule == 4096 ? amdConfigure(d, ias, oas) : EINVAL;
    case FMT_X86_64: return granule == 4096 ? x86Configure(d, ias, oas) : EINVAL;
    case FMT_RISCV: return granule == 4096 ? rvConfigure(d, ias, oas) : EINVAL;
    default: return EINVAL;
  }
}

/** Page shift of level `lvl` (0 = top) of domain `d`. */
@inline export function lvlShift(d: usize, lvl: u32): u32 {
  return gran(d) + <u32>load<u8>(d + DOMAIN_LEVEL_BITS) * (load<u32>(d + DOMAIN_LEVELS) - 1 - lvl);
}

/**
 * Dirty tracking, per format: the leaf bit hardware sets on a write (VT-d second stage D 9 with
 * SSADE, x86-64 D 6, AMD v1 D 6 with HAD, RISC-V D 7), or for the ARM formats the write-permission
 * bit a write to a DBM (bit 51) leaf flips (stage 1 clears AP[2] bit 7; stage 2 sets S2AP[1],
 * bit 7). See pgtable/dirty.ts.
 */
@inline export function pteDirtyBit(fmt: u32): u64 {
  switch (fmt) {
    case FMT_VTD_SS: return <u64>1 << 9;
    case FMT_RISCV: return <u64>1 << 7;
    case FMT_AMD_V1:
    case FMT_X86_64: return <u64>1 << 6;
    default: return <u64>1 << 7;
  }
}
/** Whether the format tracks dirtiness with DBM (ARM) rather than a D bit. */
@inline export function pteDirtyDbm(fmt: u32): bool {
  return fmt == FMT_ARM_LPAE_S1 || fmt == FMT_ARM_LPAE_S2;
}
