// Nested translation: a stage-1 table owned by a guest (addresses in it are IPAs / GPAs) over a
// stage-2 table owned by the host (SMMUv3 STE config "nested"; VT-d scalable-mode PGTT nested,
// first stage over second stage). Every stage-1 table fetch is itself translated by stage 2, and
// so is the stage-1 output; a fault says which stage failed. On SMMUv3 a stage-2 fault during a
// stage-1 fetch is reported with S2 = 1 and CLASS = TT, on the output with CLASS = IN; on VT-d
// the second-stage reasons are reported for stage 2 and the first-stage reasons for stage 1.
//
// The walk of each stage-2 translation is the engine's walk() of the parent domain; the stage-1
// loop below follows the same format ops (format.ts) over guest memory.

import {
  OK, EINVAL, ENOENT, ENOSPC, ACCESS_READ, ACCESS_WRITE, DOMAIN_TYPE, DOMAIN_UNIT, DOMAIN_FORMAT,
  DOMAIN_IAS, DOMAIN_OAS, DOMAIN_LEVELS, DOMAIN_ROOT, DOMAIN_GRANULE, DOMAIN_LEVEL_BITS,
  DOMAIN_TOP_BITS, DOMAIN_FLAGS, DOMAIN_STRICT, DOMAIN_PAGING, DOMAIN_NESTED, DOMAIN_PARENT,
  DOMAIN_CHILDREN, DOMAIN_STRIDE, DOMAIN_F_NEST_PARENT, DOMAIN_F_SIGN_EXTEND, DOMAIN_F_HAD,
  FAULT_TRANSLATION, FAULT_ADDRESS_SIZE, FAULT_ACCESS_FLAG, FAULT_WALK_EABT, FAULT_PERMISSION,
  FMT_ARM_LPAE_S1, FMT_ARM_LPAE_S2, FMT_X86_64, FMT_VTD_SS, FMT_AMD_V1, FMT_RISCV, TRACE_STRIDE,
  TRACE_MAX, TRACE2_MAX, UNIT_FAMILY, FAMILY_SMMUV3, FAMILY_VTD, FAMILY_AMDVI, FAMILY_RISCV, MAX_DOMAINS,
} from '../abi';
import { gTrace, gTrace2 } from '../state';
import { walk, wOut, wShift, wPerm, wDepth, traceLevel } from './engine';
import { configure, pteKind, pteTableAddr, pteLeafShift, pteLeafAddr, ptePerm, pteTablePerm, reservedReason, outputTooWideReason } from './format';
import { PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED } from './kinds';
import { X86_A, X86_D } from './x86_64';
import { physRead64, physWrite64, findRegion } from '../mem/phys';
import { tracksDirty, dirtyAfterWalk, dCachePerm } from './dirty';
import { domainAt, domainOf, unitAt } from '../iommu/unit';

// Results of the last nestedWalk().
export let nOut: u64 = 0;
export let nShift: u32 = 0;
export let nPerm: u32 = 0;    // rights granted (both stages)
export let nCache: u32 = 0;   // rights to cache (no write while the stage-2 leaf is clean)
export let nStage: u32 = 0;   // on a fault: 1 or 2
export let nFetch: bool = false; // a stage-2 fault on a stage-1 table fetch (SMMUv3 CLASS=TT)
export let nIpa: u64 = 0;     // the IPA stage 2 failed on
export let nDepth: u32 = 0;   // stage-1 levels visited
export let nTrace2: u32 = 0;  // stage-2 trace entries

/** The stage-1 format the family walks over its stage-2 format (the pairs nesting supports). */
function nestPairOk(family: u32, s1: u32, s2: u32): bool {
  if (family == FAMILY_SMMUV3) return s1 == FMT_ARM_LPAE_S1 && s2 == FMT_ARM_LPAE_S2;
  if (family == FAMILY_VTD) return s1 == FMT_X86_64 && s2 == FMT_VTD_SS;
  if (family == FAMILY_AMDVI) return s1 == FMT_X86_64 && s2 == FMT_AMD_V1;
  if (family == FAMILY_RISCV) return s1 == FMT_RISCV && s2 == FMT_RISCV;
  return false;
}

/**
 * Creates a nested domain on stage-2 domain `parent` (a paging domain created as a nesting
 * parent) whose stage 1 is a `format` table at IPA `root` in guest memory. Returns the domain id,
 * or ENOENT (no parent), EINVAL (parent not a nesting parent, a format the family does not nest
 * over the parent's, bad geometry, root not aligned to the granule), ENOSPC.
 */
export function createNested(parent: u32, format: u32, ias: u32, oas: u32, granule: u32, flags: u32, root: u64): i32 {
  const p = domainOf(parent);
  if (p == 0) return ENOENT;
  if (load<u32>(p + DOMAIN_TYPE) != DOMAIN_PAGING || (load<u32>(p + DOMAIN_FLAGS) & DOMAIN_F_NEST_PARENT) == 0) return EINVAL;
  const u = unitAt(load<u32>(p + DOMAIN_UNIT));
  if (!nestPairOk(load<u32>(u + UNIT_FAMILY), format, load<u32>(p + DOMAIN_FORMAT))) return EINVAL;
  if ((flags & ~DOMAIN_F_HAD) != 0 || (root & (<u64>granule - 1)) != 0) return EINVAL;
  let id: u32 = 0;
  while (id < MAX_DOMAINS && load<u32>(domainAt(id) + DOMAIN_TYPE) != 0) id++;
  if (id >= MAX_DOMAINS) return ENOSPC;
  const d = domainAt(id);
  if (format == FMT_X86_64 || format == FMT_RISCV) flags |= DOMAIN_F_SIGN_EXTEND;
  store<u32>(d + DOMAIN_FLAGS, flags);
  if (configure(format, d, ias, oas, granule) != OK) { memory.fill(d, 0, DOMAIN_STRIDE); return EINVAL; }
  store<u32>(d + DOMAIN_FORMAT, format);
  store<u32>(d + DOMAIN_IAS, ias);
  store<u32>(d + DOMAIN_OAS, oas);
  store<u64>(d + DOMAIN_ROOT, root);
  store<u32>(d + DOMAIN_PARENT, parent + 1);
  store<u32>(d + DOMAIN_TYPE, DOMAIN_NESTED);
  store<u32>(d + DOMAIN_UNIT, load<u32>(p + DOMAIN_UNIT));
  store<u32>(d + DOMAIN_STRICT, 1);
  store<u32>(p + DOMAIN_CHILDREN, load<u32>(p + DOMAIN_CHILDREN) + 1);
  return <i32>id;
}

/** Appends the last stage-2 walk's trace (walk() with trace on) to the stage-2 trace, tagged. */
function keepTrace2(step: u32): void {
  for (let i: u32 = 0; i < wDepth && i < TRACE_MAX && nTrace2 < TRACE2_MAX - TRACE_MAX; i++) {
    const dst = gTrace2 + <usize>((TRACE_MAX + nTrace2) * TRACE_STRIDE);
    memory.copy(dst, gTrace + <usize>(i * TRACE_STRIDE), TRACE_STRIDE);
    store<u32>(dst, (step << 8) | i);
    nTrace2++;
  }
}

@inline function stage2Fault(reason: u32, ipa: u64, fetch: bool): u32 {
  nStage = 2; nIpa = ipa; nFetch = fetch;
  return reason;
}

/**
 * Walks nested domain `d` for `iova`. Returns 0 (nOut, nShift, nPerm, nCache) or a FAULT_*
 * reason with nStage, nFetch and nIpa. `access` 0 is a software walk that changes nothing;
 * otherwise x86-64 stage-1 A/D bits are set (their writes go through stage 2 too) and a
 * dirty-tracking stage 2 marks its leaf. With `trace`, stage-1 levels go to the trace block and
 * each stage-2 walk's levels to the stage-2 trace (level field = step << 8 | depth).
 */
export function nestedWalk(d: usize, iova: u64, access: u32, trace: bool): u32 {
  const p = domainAt(load<u32>(d + DOMAIN_PARENT) - 1);
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const ias = load<u32>(d + DOMAIN_IAS);
  const levels = load<u32>(d + DOMAIN_LEVELS);
  nDepth = 0; nTrace2 = 0; nStage = 1; nFetch = false; nIpa = 0;
  if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_SIGN_EXTEND) != 0) {
    const top = iova >> (ias - 1);
    if (top != 0 && top != (<u64>0xffffffffffffffff >> (ias - 1))) return FAULT_ADDRESS_SIZE;
  } else if (ias < 64 && (iova >> ias) != 0) {
    return FAULT_ADDRESS_SIZE;
  }
  const va = ias < 64 ? iova & ((<u64>1 << ias) - 1) : iova;
  let table = load<u64>(d + DOMAIN_ROOT);
  let perm: u32 = 3;
  const b = <u32>load<u8>(d + DOMAIN_LEVEL_BITS);
  let shift = <u32>load<u8>(d + DOMAIN_GRANULE) + b * (levels - 1);
  let bits = <u32>load<u8>(d + DOMAIN_TOP_BITS);
  for (let lvl: u32 = 0; lvl < levels; lvl++, shift -= b, bits = b) {
    const idx = (va >> shift) & ((<u64>1 << bits) - 1);
    const slotIpa = table + (idx << 3);
    // Stage 2 translates the table fetch (a read).
    const r2 = walk(p, slotIpa, trace, 0);
    if (trace) keepTrace2(lvl);
    if (r2 != 0) return stage2Fault(r2, slotIpa, true);
    if ((wPerm & ACCESS_READ) == 0) return stage2Fault(FAULT_PERMISSION, slotIpa, true);
    const s2Write = (wPerm & ACCESS_WRITE) != 0;
    const slot = wOut;
    const present = findRegion(slot) != 0;
    const pte: u64 = present ? physRead64(slot) : 0;
    if (trace && lvl < TRACE_MAX) traceLevel(gTrace2, lvl, <u32>idx, table, pte);
    nDepth = lvl + 1;
    if (!present) return FAULT_WALK_EABT;
    const kind = pteKind(fmt, pte, shift, d);
    if (kind == PTE_INVALID) return FAULT_TRANSLATION;
    if (access != 0 && fmt == FMT_X86_64 && kind != PTE_RESERVED && s2Write) {
      const granted = perm & pteTablePerm(fmt, pte, d);
      const upd = pte | X86_A | (kind == PTE_LEAF && (access & ACCESS_WRITE) != 0 && (granted & ACCESS_WRITE) != 0 ? X86_D : 0);
      if (upd != pte && (granted & access) == access) {
        // The A/D write is a write through stage 2 too: a tracking stage 2 marks the table page.
        if (tracksDirty(p)) dirtyAfterWalk(p, ACCESS_WRITE, ACCESS_READ | ACCESS_WRITE);
        physWrite64(slot, upd);
      }
    }
    if (kind == PTE_TABLE) {
      perm &= pteTablePerm(fmt, pte, d);
      table = pteTableAddr(fmt, pte, d);
      continue;
    }
    if (kind != PTE_LEAF) return reservedReason(fmt);
    const lshift = pteLeafShift(fmt, pte, shift, d);
    const ipa = pteLeafAddr(fmt, pte, lshift, d) | (iova & ((<u64>1 << lshift) - 1));
    const leafPerm = ptePerm(fmt, pte);
    if (leafPerm == 0xffffffff) return FAULT_ACCESS_FLAG;
    if ((ipa >> load<u32>(d + DOMAIN_OAS)) != 0) return outputTooWideReason(fmt);
    const s1perm = perm & leafPerm;
    if (access != 0 && (s1perm & access) != access) return FAULT_PERMISSION;
    // Stage 2 translates the output.
    const r3 = walk(p, ipa, trace, 0);
    if (trace) keepTrace2(TRACE_MAX);
    if (r3 != 0) return stage2Fault(r3, ipa, false);
    let s2perm = wPerm;
    let cache = wPerm;
    const out = wOut;
    const s2shift = wShift;
    if (access != 0 && tracksDirty(p)) {
      s2perm = dirtyAfterWalk(p, access, s2perm);
      cache = dCachePerm;
    }
    if (access != 0 && (s2perm & access) != access) return stage2Fault(FAULT_PERMISSION, ipa, false);
    nOut = out;
    nShift = lshift < s2shift ? lshift : s2shift;
    nPerm = s1perm & s2perm;
    nCache = s1perm & cache;
    return 0;
  }
  return FAULT_TRANSLATION;
}

/** Copies the stage-1 levels of the last traced nestedWalk() into the trace block (walk export). */
export function publishTrace(): void {
  for (let i: u32 = 0; i < nDepth && i < TRACE_MAX; i++) {
    memory.copy(gTrace + <usize>(i * TRACE_STRIDE), gTrace2 + <usize>(i * TRACE_STRIDE), TRACE_STRIDE);
  }
}

/** Whether domain record `d` is a nested domain. */
@inline export function isNested(d: usize): bool {
  return load<u32>(d + DOMAIN_TYPE) == DOMAIN_NESTED;
}
