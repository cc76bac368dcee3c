// Translation: the IOTLB fast path, the walk on a miss, faults on failure.

import {
  ACCESS_READ, ACCESS_WRITE, DOMAIN_TYPE, DOMAIN_UNIT, DOMAIN_PAGING, DOMAIN_IDENTITY,
  DOMAIN_DIRECT, FAULT_BLOCKED, FAULT_NO_DOMAIN, FAULT_PERMISSION, RID_PHYS,
  UNIT_STAT_HITS, UNIT_STAT_MISSES, UNIT_STAT_WALKS, UNIT_STAT_TRANSLATIONS, UNIT_SIZES_CACHED,
  UNIT_TLB_SETS, UNIT_TLB_WAYS, UNIT_TLB_PTR, TLB_OUT, TLB_PERM, OK, UNIT_FAMILY, FAMILY_VTD,
  VTD_INTR_FIRST, VTD_INTR_LAST, FAULT_INTERRUPT_ADDR, DOMAIN_FORMAT, FMT_ARM_LPAE_S2, FAULT_F_STAGE2,
  FMT_X86_64, FAULT_F_FIRST_STAGE,
} from '../abi';
import { domainAt, unitAt, deviceOf, deviceUnit } from './unit';
import { DEVICE_NO_UNIT } from '../state';
import { tlbLookup, tlbInsert, hitOut, hitShift, hitPerm, probe, sizeBit } from './iotlb';
import { walk, wOut, wShift, wPerm, wDepth } from '../pgtable/engine';
import { recordFault, reasonStatus } from './fault';
import { route, rOut, rEnd, routesActive } from './p2p';

// Result of the last translate(): output address and the end (exclusive) of the iova range the
// same translation covers; 0 means "to the top of the address space".
export let tOut: u64 = 0;
export let tEnd: u64 = 0;
export let tShift: u32 = 0;
export let tPerm: u32 = 0;
// On failure: the reason, the family code recorded, and the status to return.
export let tReason: u32 = 0;
export let tCode: u32 = 0;
export let tStatus: i32 = 0;

@inline function bump(u: usize, off: u32): void {
  store<u64>(u + off, load<u64>(u + off) + 1);
}

/** Resolves `rid` to its domain: an id, DOMAIN_DIRECT, or -1. RID_PHYS is always direct. */
@inline export function domainOfRid(rid: u32): i32 {
  if (rid == RID_PHYS) return DOMAIN_DIRECT;
  const p = deviceOf(rid);
  return p == 0 ? -1 : load<i32>(p + 4);
}

/**
 * Translates `iova` for requester `rid` in domain `dom` (from domainOfRid) for `access`. A bus
 * address inside a peer route goes to the peer without the IOMMU (see p2p.ts).
 * Returns true and sets tOut/tEnd/tShift/tPerm, or false with tReason/tCode/tStatus set and a
 * fault record queued on the unit (a requester with no domain has no unit to record on).
 */
export function translate(rid: u32, dom: i32, iova: u64, access: u32): bool {
  if (route(rid, iova)) {
    tOut = rOut; tEnd = rEnd; tShift = 64; tPerm = ACCESS_READ | ACCESS_WRITE;
    return true;
  }
  if (dom == DOMAIN_DIRECT) {
    tOut = iova; tEnd = 0; tShift = 64; tPerm = ACCESS_READ | ACCESS_WRITE;
    return true;
  }
  if (dom < 0) {
    const unit = deviceUnit(rid);
    if (unit != DEVICE_NO_UNIT) return fail(unitAt(unit), 0, rid, -1, iova, access, FAULT_NO_DOMAIN, false);
    // A requester behind no known unit: nothing can record the fault.
    tReason = FAULT_NO_DOMAIN; tCode = 0; tStatus = reasonStatus(FAULT_NO_DOMAIN);
    return false;
  }
  const d = domainAt(<u32>dom);
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  bump(u, UNIT_STAT_TRANSLATIONS);
  const type = load<u32>(d + DOMAIN_TYPE);
  if (type == DOMAIN_PAGING) {
    // Only 4K leaves cached (the common case): one inline probe.
    if (load<u32>(u + UNIT_SIZES_CACHED) == sizeBit(12)) {
      const e = probe(<usize>load<u32>(u + UNIT_TLB_PTR), load<u32>(u + UNIT_TLB_SETS), load<u32>(u + UNIT_TLB_WAYS), <u32>dom, 12, iova >> 12);
      if (e != 0) {
        bump(u, UNIT_STAT_HITS);
        const perm = load<u32>(e + TLB_PERM);
        if ((perm & access) != access) return fail(u, d, rid, dom, iova, access, FAULT_PERMISSION, false);
        tOut = load<u64>(e + TLB_OUT) | (iova & 0xfff);
        tShift = 12;
        tPerm = perm;
        tEnd = (iova | 0xfff) + 1;
        return true;
      }
    } else if (tlbLookup(u, <u32>dom, iova)) {
      bump(u, UNIT_STAT_HITS);
      if ((hitPerm & access) != access) return fail(u, d, rid, dom, iova, access, FAULT_PERMISSION, false);
      setLeaf(iova, hitOut, hitShift, hitPerm);
      return true;
    }
    bump(u, UNIT_STAT_MISSES);
    return slowPath(u, d, rid, dom, iova, access);
  }
  if (type == DOMAIN_IDENTITY) {
    tOut = iova; tEnd = 0; tShift = 64; tPerm = ACCESS_READ | ACCESS_WRITE;
    return true;
  }
  return fail(u, d, rid, dom, iova, access, FAULT_BLOCKED, false);
}

@inline function setLeaf(iova: u64, out: u64, shift: u32, perm: u32): void {
  tOut = out;
  tShift = shift;
  tPerm = perm;
  tEnd = (iova | ((<u64>1 << shift) - 1)) + 1;
}

/** Records a fault of requester `rid` (domain record `d`, 0 when none) on unit `u`. */
@inline function fail(u: usize, d: usize, rid: u32, dom: i32, iova: u64, access: u32, reason: u32, outputSide: bool): bool {
  tReason = reason;
  // A stage-2 table's faults are stage-2 faults (SMMUv3 event records carry S2 and the IPA).
  // An x86-64 table's are first-stage ones (VT-d reports the first-stage reasons).
  const fmt = d != 0 ? load<u32>(d + DOMAIN_FORMAT) : 0;
  const flags: u32 = fmt == FMT_ARM_LPAE_S2 ? FAULT_F_STAGE2 : fmt == FMT_X86_64 ? FAULT_F_FIRST_STAGE : 0;
  tCode = recordFault(u, rid, dom, iova, access, reason, outputSide, flags);
  tStatus = reasonStatus(reason);
  return false;
}

@inline function slowPath(u: usize, d: usize, rid: u32, dom: i32, iova: u64, access: u32): bool {
  bump(u, UNIT_STAT_WALKS);
  const reason = walk(d, iova, false, access);
  if (reason != 0) {
    // The input-width check comes before any level, so a fault after a level is on the output.
    return fail(u, d, rid, dom, iova, access, reason, wDepth > 0);
  }
  // VT-d: the interrupt range is never a translation output; a leaf reaching into it faults
  // and is not cached (QEMU vtd_do_iommu_translate; VT-d spec 3.14).
  if (load<u32>(u + UNIT_FAMILY) == FAMILY_VTD) {
    const base = wOut & ~((<u64>1 << wShift) - 1);
    if (base <= VTD_INTR_LAST && base + ((<u64>1 << wShift) - 1) >= VTD_INTR_FIRST) {
      return fail(u, d, rid, dom, iova, access, FAULT_INTERRUPT_ADDR, true);
    }
  }
  tlbInsert(u, <u32>dom, iova, wOut, wShift, wPerm);
  if ((wPerm & access) != access) return fail(u, d, rid, dom, iova, access, FAULT_PERMISSION, false);
  setLeaf(iova, wOut, wShift, wPerm);
  return true;
}

/**
 * Extends the translation translate() just made for `iova` (output tOut, valid to tEnd) over the
 * following leaves the IOTLB already holds, as long as each continues the output physically
 * and allows `access`, up to `limit` bytes from iova. Returns the bytes from iova that one
 * physical run covers. It only reads the IOTLB (a miss ends the run; the next translate()
 * walks and faults as usual), and counts what it reads as hits, so the counters and the bytes
 * moved are what page-by-page translation would give. A DMA transfer over many small leaves
 * then copies in physical runs instead of page by page.
 */
export function extendRun(dom: i32, iova: u64, access: u32, limit: u64): u64 {
  // tEnd = 0: the translation reaches the top of the space (direct, identity, a peer route).
  const first: u64 = tEnd == 0 ? 0 - iova : tEnd - iova;
  if (first == 0) return 0xffffffffffffffff;
  if (tEnd == 0 || dom < 0 || first >= limit || routesActive()) return first;
  const d = domainAt(<u32>dom);
  if (load<u32>(d + DOMAIN_TYPE) != DOMAIN_PAGING) return first;
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  const tlb = <usize>load<u32>(u + UNIT_TLB_PTR);
  const sets = load<u32>(u + UNIT_TLB_SETS);
  const ways = load<u32>(u + UNIT_TLB_WAYS);
  const only4k = load<u32>(u + UNIT_SIZES_CACHED) == sizeBit(12);
  const base = tOut;
  let covered = first;
  let hits: u64 = 0;
  while (covered < limit) {
    const next = iova + covered;
    let out: u64;
    let size: u64;
    if (only4k) {
      const e = probe(tlb, sets, ways, <u32>dom, 12, next >> 12);
      if (e == 0 || (load<u32>(e + TLB_PERM) & access) != access) break;
      out = load<u64>(e + TLB_OUT);
      size = 4096;
    } else {
      if (!tlbLookup(u, <u32>dom, next) || (hitPerm & access) != access) break;
      out = hitOut;
      size = (<u64>1 << hitShift) - (next & ((<u64>1 << hitShift) - 1));
    }
    if (out != base + covered) break;
    covered += size;
    hits++;
  }
  if (hits != 0) {
    store<u64>(u + UNIT_STAT_HITS, load<u64>(u + UNIT_STAT_HITS) + hits);
    store<u64>(u + UNIT_STAT_TRANSLATIONS, load<u64>(u + UNIT_STAT_TRANSLATIONS) + hits);
  }
  return covered;
}

/**
 * Translates n addresses from `inp` for one requester, writing outputs to `out` and status to
 * `sts`: the batch entry, one boundary crossing for up to BATCH_MAX translations.
 * Returns the number of faults.
 */
export function translateMany(rid: u32, access: u32, inp: usize, out: usize, sts: usize, n: u32): u32 {
  const dom = domainOfRid(rid);
  let faults: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const off = <usize>i << 3;
    if (translate(rid, dom, load<u64>(inp + off), access)) {
      store<u64>(out + off, tOut);
      store<i32>(sts + (<usize>i << 2), OK);
    } else {
      store<u64>(out + off, 0);
      store<i32>(sts + (<usize>i << 2), tStatus);
      faults++;
    }
  }
  return faults;
}
