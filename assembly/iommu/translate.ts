// Translation: the IOTLB fast path, the walk on a miss, faults on failure.

import {
  ACCESS_READ, ACCESS_WRITE, DOMAIN_TYPE, DOMAIN_UNIT, DOMAIN_PAGING, DOMAIN_IDENTITY,
  DOMAIN_DIRECT, FAULT_BLOCKED, FAULT_NO_DOMAIN, FAULT_PERMISSION, RID_PHYS,
  UNIT_STAT_HITS, UNIT_STAT_MISSES, UNIT_STAT_WALKS, UNIT_STAT_TRANSLATIONS, UNIT_SIZES_CACHED,
  UNIT_TLB_SETS, UNIT_TLB_WAYS, UNIT_TLB_PTR, TLB_OUT, TLB_PERM, OK, UNIT_FAMILY, FAMILY_VTD,
  VTD_INTR_FIRST, VTD_INTR_LAST, FAULT_INTERRUPT_ADDR, DOMAIN_FORMAT, FMT_ARM_LPAE_S2, FAULT_F_STAGE2,
  FMT_X86_64, FAULT_F_FIRST_STAGE, DOMAIN_NESTED, FAULT_F_NESTED, FAULT_F_CLASS_TT, FAULT_TRANSLATION,
  FAULT_ACCESS_FLAG, FAULT_NO_PASID, EAGAIN, DEV_DMA_PASID, DEV_FLAGS, DEV_F_ATS, DEV_PASID_BITS,
  UNIT_ATS_DEVICES, UNIT_STAT_ATC_HITS, TLB_TAG, TAG_DOMAIN_BITS, DOMAIN_FLAGS, DOMAIN_F_DIRTY_CAP, UNIT_STAT_ATS_REQUESTS, UNIT_STAT_PASID_HITS, UNIT_STAT_NESTED_WALKS,
} from '../abi';
import { pasidHandle, handleUnbound, handleSlot, handleDomain, slotPasid, slotTag } from './pasid';
import { atcLookup, atcInsert, atcOut, atcPerm, priEnabled, pageRequest } from './ats';
import { nestedWalk, nOut, nShift, nPerm, nCache, nStage, nFetch, nIpa, nDepth } from '../pgtable/nested';
import { tracksDirty, dirtyAfterWalk, dCachePerm } from '../pgtable/dirty';
import { domainAt, unitAt, deviceOf, deviceUnit } from './unit';
import { DEVICE_NO_UNIT } from '../state';
import { tlbLookup, tlbInsert, hitOut, hitShift, hitPerm, probe, sizeBit } from './iotlb';
import { walk, wOut, wShift, wPerm, wDepth } from '../pgtable/engine';
import { recordFault, reasonStatus } from './fault';
import { route, rOut, rEnd } from './p2p';

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
export let tFlags: u32 = 0; // FAULT_F_* of the failure
export let tIpa: u64 = 0;   // the IPA of a stage-2 failure

@inline function bump(u: usize, off: u32): void {
  store<u64>(u + off, load<u64>(u + off) + 1);
}

/**
 * Resolves `rid` to what translate() takes: a domain id, DOMAIN_DIRECT, -1 (none), or, when the
 * device's DMA carries a PASID (setDmaPasid), the PASID handle (iommu/pasid.ts). RID_PHYS is
 * always direct.
 */
export function domainOfRid(rid: u32): i32 {
  if (rid == RID_PHYS) return DOMAIN_DIRECT;
  const p = deviceOf(rid);
  if (p == 0) return -1;
  const dp = load<u32>(p + DEV_DMA_PASID);
  return dp == 0 ? load<i32>(p + 4) : pasidHandle(rid, dp - 1);
}

// The IOTLB tag domain of the request being translated (a PASID slot above TAG_DOMAIN_BITS):
// the failure path reads the request's PASID from it.
let cTdom: u32 = 0;

/** The PASID + 1 of tag domain `tdom` (0: a request without PASID). */
@inline function pasidTagOf(tdom: u32): u32 {
  return tdom < (<u32>1 << TAG_DOMAIN_BITS) ? 0 : slotPasid((tdom >> TAG_DOMAIN_BITS) - 1) + 1;
}

/**
 * Translates `iova` for requester `rid` in domain `dom` (from domainOfRid, or a PASID handle)
 * for `access`. A bus address inside a peer route goes to the peer without the IOMMU (p2p.ts);
 * an ATS device's ATC answers first (ats.ts).
 * Returns true and sets tOut/tEnd/tShift/tPerm, or false with tReason/tCode/tStatus set and a
 * fault record queued on the unit (a requester with no domain has no unit to record on), or a
 * page request queued instead for a PRI device (status EAGAIN).
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
  let tdom = <u32>dom;
  if (dom < DOMAIN_DIRECT) {
    // A request with a PASID.
    const h = <u32>dom;
    if (handleUnbound(h)) return noPasid(rid, h & 0xfffff, iova, access);
    const slot = handleSlot(h);
    dom = handleDomain(h);
    tdom = slotTag(<u32>dom, slot);
  }
  cTdom = dom < 0 ? 0 : tdom;
  if (dom < 0) {
    const unit = deviceUnit(rid);
    if (unit != DEVICE_NO_UNIT) return fail(unitAt(unit), 0, rid, -1, iova, access, FAULT_NO_DOMAIN, false);
    // A requester behind no known unit: nothing can record the fault.
    tReason = FAULT_NO_DOMAIN; tCode = 0; tFlags = 0; tIpa = 0; tStatus = reasonStatus(FAULT_NO_DOMAIN);
    return false;
  }
  const d = domainAt(<u32>dom);
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  if (load<u32>(u + UNIT_ATS_DEVICES) != 0) {
    const p = deviceOf(rid);
    if (p != 0 && (<u32>load<u8>(p + DEV_FLAGS) & DEV_F_ATS) != 0) {
      // A translated request: the device's ATC holds it, the IOMMU is not involved.
      if (atcLookup(p, tdom, iova) && (atcPerm & access) == access) {
        bump(u, UNIT_STAT_ATC_HITS);
        tOut = atcOut; tShift = 12; tPerm = atcPerm; tEnd = (iova | 0xfff) + 1;
        return true;
      }
      // A translation request; the completion fills the ATC.
      bump(u, UNIT_STAT_ATS_REQUESTS);
      if (!translateIn(u, d, rid, dom, tdom, iova, access)) return false;
      const keep = tracksDirty(d) && (access & ACCESS_WRITE) == 0 ? tPerm & ~ACCESS_WRITE : tPerm;
      atcInsert(p, tdom, iova, tOut, keep);
      return true;
    }
  }
  return translateIn(u, d, rid, dom, tdom, iova, access);
}

/** Whether a cached translation lacking `access` must be walked again rather than fault. */
@inline function rewalks(d: usize): bool {
  return load<u32>(d + DOMAIN_TYPE) == DOMAIN_NESTED || (load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_DIRTY_CAP) != 0;
}

/** Drops the entry caching `iova` at page shift `shift` for `tdom` (about to be walked again). */
function dropCached(u: usize, tdom: u32, iova: u64, shift: u32): void {
  const e = probe(<usize>load<u32>(u + UNIT_TLB_PTR), load<u32>(u + UNIT_TLB_SETS), load<u32>(u + UNIT_TLB_WAYS), tdom, shift, iova >> shift);
  if (e != 0) store<u32>(e + TLB_TAG, 0);
}

/** translate() in domain record `d` (id `dom`) of unit `u`, IOTLB tag domain `tdom`. */
@inline function translateIn(u: usize, d: usize, rid: u32, dom: i32, tdom: u32, iova: u64, access: u32): bool {
  bump(u, UNIT_STAT_TRANSLATIONS);
  const type = load<u32>(d + DOMAIN_TYPE);
  if (type == DOMAIN_PAGING || type == DOMAIN_NESTED) {
    // Only 4K leaves cached (the common case): one inline probe.
    if (load<u32>(u + UNIT_SIZES_CACHED) == sizeBit(12)) {
      const e = probe(<usize>load<u32>(u + UNIT_TLB_PTR), load<u32>(u + UNIT_TLB_SETS), load<u32>(u + UNIT_TLB_WAYS), tdom, 12, iova >> 12);
      if (e != 0) {
        const perm = load<u32>(e + TLB_PERM);
        if ((perm & access) == access) {
          bump(u, UNIT_STAT_HITS);
          if (tdom >= (<u32>1 << TAG_DOMAIN_BITS)) bump(u, UNIT_STAT_PASID_HITS);
          tOut = load<u64>(e + TLB_OUT) | (iova & 0xfff);
          tShift = 12;
          tPerm = perm;
          tEnd = (iova | 0xfff) + 1;
          return true;
        }
        if (!rewalks(d)) {
          bump(u, UNIT_STAT_HITS);
          return fail(u, d, rid, dom, iova, access, FAULT_PERMISSION, false);
        }
        // The walk below caches the leaf again: the entry it replaces goes first.
        store<u32>(e + TLB_TAG, 0);
      }
    } else if (tlbLookup(u, tdom, iova)) {
      if ((hitPerm & access) == access) {
        bump(u, UNIT_STAT_HITS);
        if (tdom >= (<u32>1 << TAG_DOMAIN_BITS)) bump(u, UNIT_STAT_PASID_HITS);
        setLeaf(iova, hitOut, hitShift, hitPerm);
        return true;
      }
      if (!rewalks(d)) {
        bump(u, UNIT_STAT_HITS);
        return fail(u, d, rid, dom, iova, access, FAULT_PERMISSION, false);
      }
      dropCached(u, tdom, iova, hitShift);
    }
    bump(u, UNIT_STAT_MISSES);
    return slowPath(u, d, rid, dom, tdom, iova, access);
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
function fail(u: usize, d: usize, rid: u32, dom: i32, iova: u64, access: u32, reason: u32, outputSide: bool): bool {
  // A stage-2 table's faults are stage-2 faults (SMMUv3 event records carry S2 and the IPA).
  // An x86-64 table's are first-stage ones (VT-d reports the first-stage reasons).
  const fmt = d != 0 ? load<u32>(d + DOMAIN_FORMAT) : 0;
  let flags: u32 = fmt == FMT_ARM_LPAE_S2 ? FAULT_F_STAGE2 : fmt == FMT_X86_64 ? FAULT_F_FIRST_STAGE : 0;
  if (d != 0 && load<u32>(d + DOMAIN_TYPE) == DOMAIN_NESTED) flags |= FAULT_F_NESTED;
  return report(u, d, rid, dom, iova, access, reason, outputSide, flags, 0);
}

/** The fault of a nested walk: the stage nestedWalk() says failed, with the family's flags. */
function failNested(u: usize, d: usize, rid: u32, dom: i32, iova: u64, access: u32, reason: u32): bool {
  if (nStage == 2) {
    const flags = FAULT_F_STAGE2 | FAULT_F_NESTED | (nFetch ? FAULT_F_CLASS_TT : 0);
    return report(u, d, rid, dom, iova, access, reason, !nFetch, flags, nIpa);
  }
  return fail(u, d, rid, dom, iova, access, reason, nDepth > 0);
}

/**
 * A failed translation: a page request when the requester is a PRI device and the fault is one
 * a page request can resolve (nothing mapped, or not with these rights), else a fault record.
 */
function report(u: usize, d: usize, rid: u32, dom: i32, iova: u64, access: u32, reason: u32, outputSide: bool, flags: u32, ipa: u64): bool {
  tReason = reason;
  tFlags = flags;
  tIpa = ipa;
  const pasidTag = pasidTagOf(cTdom);
  if ((reason == FAULT_TRANSLATION || reason == FAULT_PERMISSION || reason == FAULT_ACCESS_FLAG) && priDevice(u, rid)) {
    pageRequest(u, rid, pasidTag, iova, access);
    tCode = 0;
    tStatus = EAGAIN;
    return false;
  }
  tCode = recordFault(u, rid, dom, iova, access, reason, outputSide, flags, pasidTag, ipa);
  tStatus = reasonStatus(reason);
  return false;
}

/** Whether `rid` is an ATS device with PRI on unit `u` (its failed translations are page requests). */
function priDevice(u: usize, rid: u32): bool {
  if (load<u32>(u + UNIT_ATS_DEVICES) == 0) return false;
  const p = deviceOf(rid);
  return p != 0 && (<u32>load<u8>(p + DEV_FLAGS) & DEV_F_ATS) != 0 && priEnabled(p);
}

/** A request whose PASID has no domain (PASID-table entry / CD / GCR3 entry not valid). */
function noPasid(rid: u32, pasid: u32, iova: u64, access: u32): bool {
  const p = deviceOf(rid);
  const unit = p == 0 ? DEVICE_NO_UNIT : load<u32>(p + 8);
  tReason = FAULT_NO_PASID;
  tFlags = 0;
  tIpa = 0;
  tStatus = reasonStatus(FAULT_NO_PASID);
  if (unit == DEVICE_NO_UNIT) { tCode = 0; return false; }
  // Beyond the device's PASID width (SMMUv3 C_BAD_SUBSTREAMID) or just unbound (C_BAD_CD).
  const bits = <u32>load<u8>(p + DEV_PASID_BITS);
  const beyond = bits == 0 || (pasid >> bits) != 0;
  tCode = recordFault(unitAt(unit), rid, -1, iova, access, FAULT_NO_PASID, beyond, 0, pasid + 1, 0);
  return false;
}

function slowPath(u: usize, d: usize, rid: u32, dom: i32, tdom: u32, iova: u64, access: u32): bool {
  bump(u, UNIT_STAT_WALKS);
  let out: u64;
  let shift: u32;
  let perm: u32;
  let cache: u32;
  if (load<u32>(d + DOMAIN_TYPE) == DOMAIN_NESTED) {
    bump(u, UNIT_STAT_NESTED_WALKS);
    const reason = nestedWalk(d, iova, access, false);
    if (reason != 0) return failNested(u, d, rid, dom, iova, access, reason);
    out = nOut; shift = nShift; perm = nPerm; cache = nCache;
  } else {
    const reason = walk(d, iova, false, access);
    // The input-width check comes before any level, so a fault after a level is on the output.
    if (reason != 0) return fail(u, d, rid, dom, iova, access, reason, wDepth > 0);
    out = wOut; shift = wShift; perm = wPerm; cache = perm;
    if (tracksDirty(d)) {
      perm = dirtyAfterWalk(d, access, perm);
      cache = dCachePerm;
    }
  }
  // VT-d: the interrupt range is never a translation output; a leaf reaching into it faults
  // and is not cached (QEMU vtd_do_iommu_translate; VT-d spec 3.14).
  if (load<u32>(u + UNIT_FAMILY) == FAMILY_VTD) {
    const base = out & ~((<u64>1 << shift) - 1);
    if (base <= VTD_INTR_LAST && base + ((<u64>1 << shift) - 1) >= VTD_INTR_FIRST) {
      return fail(u, d, rid, dom, iova, access, FAULT_INTERRUPT_ADDR, true);
    }
  }
  tlbInsert(u, tdom, iova, out, shift, cache);
  if ((perm & access) != access) return fail(u, d, rid, dom, iova, access, FAULT_PERMISSION, false);
  setLeaf(iova, out, shift, perm);
  return true;
}

/**
 * Translates n addresses from `inp` for requester `rid` in `dom` (a domain or PASID handle),
 * writing outputs to `out` and status to `sts`, one translate() each (iommu/batch.ts
 * translateBatchFast serves the plain cases faster). Returns the number of faults.
 */
export function translateManyIn(rid: u32, dom: i32, access: u32, inp: usize, out: usize, sts: usize, n: u32): u32 {
  let faults: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    if (!translateStore(rid, dom, load<u64>(inp + (<usize>i << 3)), access, out, sts, i)) faults++;
  }
  return faults;
}

/** translate(), then entry `i` of a batch's outputs (`out`, 0 on failure) and statuses (`sts`). */
@inline export function translateStore(rid: u32, dom: i32, iova: u64, access: u32, out: usize, sts: usize, i: u32): bool {
  const ok = translate(rid, dom, iova, access);
  store<u64>(out + (<usize>i << 3), ok ? tOut : 0);
  store<i32>(sts + (<usize>i << 2), ok ? OK : tStatus);
  return ok;
}
