// The core's exports, and nothing else. Every fallible export returns 0 or a negative errno
// (or, for address and size results, a non-negative value or a negative errno); details go to
// the result block. 64-bit arguments are i64/u64 (BigInt on the host side), used only by
// per-object calls; per-page and per-translation work is batched through the staging area.

import {
  ABI_VERSION, OK, EINVAL, ENOENT, ENODEV, ENOMEM, PAGE_SIZE, PAGE_SHIFT, DOMAIN_TYPE, DOMAIN_PAGING, DOMAIN_UNIT,
  DOMAIN_MAPPED, RES_STATUS, RES_VALUE, RES_BYTES, RES_SHIFT, RES_PERM, RES_FAULT_REASON,
  RES_FAULT_CODE, RES_FAULT_IOVA, RES_FAULT_SIDE, UNIT_FAULT_OVERFLOW, BATCH_MAX, BATCH_OUT,
  BATCH_STATUS, MAPDESC_STRIDE, FAULT_STRIDE, STAGING_SIZE, REGION_DIRECT, DOMAIN_NESTED, RES_TRACE2,
  RES_FAULT_FLAGS, RES_FAULT_IPA, PASID_MAX_BITS, PRQ_STRIDE, FAULT_F_STAGE2, FAULT_F_CLASS_TT, FAULT_F_NESTED,
} from './abi';
import * as state from './state';
import { initLayout, fixedBytes } from './state';
import { addRegion as addRegionImpl, backingNeeded as backingNeededImpl } from './mem/phys';
import { addDirectRegion as addDirectRegionImpl } from './mem/direct';
import * as frames from './mem/frames';
import { chunksFree as chunksFreeImpl } from './mem/arena';
import { mapRange, mapBatchBegin, mapBatchOne, mapBatchFast, mbBytes, unmapRange, walk as walkImpl, wOut, wShift, wPerm, wDepth, uGatherStart, uGatherEnd, mInvStart, mInvEnd, mRemovedBytes, mSkippedBytes } from './pgtable/engine';
import {
  createUnit as createUnitImpl, createDomain as createDomainImpl, destroyDomain as destroyDomainImpl,
  attachDevice as attachDeviceImpl, deviceDomain as deviceDomainImpl, placeDevice as placeDeviceImpl, domainOf, unitOf, unitAt,
  invalidateUnmapped, flushQueue, createDomainEx as createDomainExImpl, setUnitFlags as setUnitFlagsImpl,
} from './iommu/unit';
import { tlbInvalidateAll, tlbInvalidateDomain, tlbInvalidateRange, tlbValidEntries } from './iommu/iotlb';
import { drainFaults } from './iommu/fault';
import { translate as translateImpl, domainOfRid, tOut, tShift, tPerm, tReason, tCode, tStatus, tFlags, tIpa } from './iommu/translate';
import {
  enablePasid as enablePasidImpl, pasidBits as pasidBitsImpl, attachPasid as attachPasidImpl, pasidDomain as pasidDomainImpl,
  setDmaPasid as setDmaPasidImpl, invalidatePasid as invalidatePasidImpl, pasidHandle,
} from './iommu/pasid';
import { enableAts as enableAtsImpl, drainPageRequests } from './iommu/ats';
import { createNested as createNestedImpl, nestedWalk, publishTrace, nDepth, nTrace2, nOut, nShift, nPerm, nStage, nFetch, nIpa } from './pgtable/nested';
import { readAndClearDirty as readAndClearDirtyImpl, setDirtyTracking as setDirtyTrackingImpl } from './pgtable/dirty';
import { translateBatchFast } from './iommu/batch';
export { dmaCopy, dmaCopyV, dmaRead, dmaWrite, dmaFill } from './dma/engine';
import { hostAccess } from './dma/engine';

/** Host read/write of physical memory (not DMA: no counters). Status as dmaRead/dmaWrite. */
export function hostRead(pa: u64, len: u64, host: usize): i32 { return hostAccess(false, pa, len, host); }
export function hostWrite(pa: u64, len: u64, host: usize): i32 { return hostAccess(true, pa, len, host); }
/** Arena chunks a host write of [pa, pa + len) would take (mem/phys.ts backingNeeded), or -EIO. */
export function backingNeeded(pa: u64, len: u64): i64 { return backingNeededImpl(pa, len); }

export function abiVersion(): u32 { return ABI_VERSION; }

/**
 * Lays out the instance (state.ts initLayout): init(0, arenaBytes) standalone, or
 * init(base, bytes) to keep everything in [base, base + bytes) of an imported memory.
 * OK, EINVAL, EBUSY (twice), ENOMEM.
 */
export function init(base: usize, bytes: u32): i32 { return initLayout(base, bytes); }
/** Bytes the fixed blocks take at the front of the window; the arena is the rest. */
export function layoutFixedBytes(): u32 { return fixedBytes(); }

// Where the shared blocks are, for the host's views (valid after init).
export function resultPtr(): usize { return state.gResult; }
export function statsPtr(): usize { return state.gStats; }
export function stagingPtr(): usize { return state.gStaging; }
export function regionsPtr(): usize { return state.gRegions; }
export function unitsPtr(): usize { return state.gUnits; }
export function domainsPtr(): usize { return state.gDomains; }
export function tracePtr(): usize { return state.gTrace; }

// ---- physical memory ----

/** See mem/phys.ts addRegion. Returns the region id or a negative errno. */
export function addRegion(base: u64, size: u64, kind: u32, flags: u32, owner: u32): i32 {
  return addRegionImpl(base, size, kind, flags & ~REGION_DIRECT, owner);
}
/**
 * A region backed by the host's linear memory [linear, linear + size) instead of the sparse
 * arena (see mem/direct.ts). Returns the region id or a negative errno.
 */
export function addDirectRegion(base: u64, size: u64, kind: u32, flags: u32, owner: u32, linear: usize): i32 {
  return addDirectRegionImpl(base, size, kind, flags & ~REGION_DIRECT, owner, linear);
}
export function chunksFree(): u32 { return chunksFreeImpl(); }

/** Frames: see mem/frames.ts. */
export function frameAlloc(n: u64, alignFrames: u64, flags: u32): i64 { return frames.allocFrames(n, alignFrames, flags); }
export function frameGet(pa: u64): i32 { return frames.getFrame(pa); }
export function framePut(pa: u64): i32 { return frames.putFrame(pa); }
export function frameFree(pa: u64, n: u64): i32 { return frames.freeFrames(pa, n); }
export function framePin(pa: u64, pin: u32): i32 { return frames.pinFrame(pa, pin != 0); }
/**
 * Pins (pin != 0) or unpins `n` consecutive frames from `pa`, all or nothing: on the first frame
 * that fails (EINVAL: not an allocated frame, or not pinned) the ones done are undone, RES_VALUE
 * holds its index and its status is returned. OK otherwise.
 */
export function framePinRange(pa: u64, n: u64, pin: u32): i32 {
  for (let i: u64 = 0; i < n; i++) {
    const st = frames.pinFrame(pa + (i << PAGE_SHIFT), pin != 0);
    if (st < 0) {
      for (let j: u64 = 0; j < i; j++) frames.pinFrame(pa + (j << PAGE_SHIFT), pin == 0);
      store<u64>(state.gResult + RES_VALUE, i);
      return st;
    }
  }
  return OK;
}
export function frameInfo(pa: u64): i32 { return frames.frameInfo(pa); }
export function framesFree(): u64 { return frames.framesFree(); }

// ---- IOMMU ----

export function createUnit(family: u32, tlbSets: u32, tlbWays: u32, faultCap: u32, fqCap: u32): i32 {
  return createUnitImpl(family, tlbSets, tlbWays, faultCap, fqCap);
}
export function createDomain(unit: u32, type: u32, format: u32, ias: u32, oas: u32, strict: u32): i32 {
  return createDomainImpl(unit, type, format, ias, oas, strict);
}
export function destroyDomain(id: u32): i32 { return destroyDomainImpl(id); }
/** See iommu/unit.ts createDomainEx: granule, DOMAIN_F_* flags, kernel policy, page-size mask. */
export function createDomainEx(unit: u32, type: u32, format: u32, ias: u32, oas: u32, strict: u32,
  granule: u32, flags: u32, policy: u32, pgsizeMask: u64): i32 {
  return createDomainExImpl(unit, type, format, ias, oas, strict, granule, flags, policy, pgsizeMask);
}
/** Unit options UNIT_F_COLLAPSE / UNIT_F_SCALABLE. */
export function setUnitFlags(unit: u32, flags: u32): i32 { return setUnitFlagsImpl(unit, flags); }
export function attachDevice(rid: u32, dom: i32): i32 { return attachDeviceImpl(rid, dom); }
export function deviceDomain(rid: u32): i32 { return deviceDomainImpl(rid); }
/** Places `rid` behind `unit` with no domain (see iommu/unit.ts placeDevice). */
export function placeDevice(rid: u32, unit: u32): i32 { return placeDeviceImpl(rid, unit); }

/** A paging domain's record, or 0 after storing ENOENT/ENODEV as the status. */
function pagingDomain(dom: u32): usize {
  const d = domainOf(dom);
  if (d == 0) { store<i32>(state.gResult + RES_STATUS, ENOENT); return 0; }
  if (load<u32>(d + DOMAIN_TYPE) != DOMAIN_PAGING) { store<i32>(state.gResult + RES_STATUS, ENODEV); return 0; }
  return d;
}

/**
 * iommu_map: maps [iova, +size) to [pa, +size) with `prot`. Returns OK, or ENOENT (no domain),
 * ENODEV (not a paging domain), EINVAL, ERANGE, EEXIST, ENOMEM; on failure nothing changed.
 */
export function map(dom: u32, iova: u64, pa: u64, size: u64, prot: u32): i32 {
  const d = pagingDomain(dom);
  if (d == 0) return load<i32>(state.gResult + RES_STATUS);
  const st = mapRange(d, iova, pa, size, prot);
  afterMap(d, dom, st == OK ? size : 0);
  return st;
}

/**
 * Accounts a map (`added` bytes, 0 when it failed) and invalidates what it replaced (policy-
 * dependent), at once even in lazy mode, as the drivers flush a replaced walk synchronously.
 */
function afterMap(d: usize, dom: u32, added: u64): void {
  const skipped = added != 0 ? mSkippedBytes : 0;
  store<u64>(d + DOMAIN_MAPPED, load<u64>(d + DOMAIN_MAPPED) + added - skipped - mRemovedBytes);
  if (mInvStart < mInvEnd || (mInvEnd == 0 && mInvStart != 0xffffffffffffffff)) {
    tlbInvalidateRange(unitAt(load<u32>(d + DOMAIN_UNIT)), dom, mInvStart, mInvEnd);
  }
}

function unmapIn(d: usize, dom: u32, iova: u64, size: u64): i64 {
  const n = unmapRange(d, iova, size);
  if (n > 0) {
    store<u64>(d + DOMAIN_MAPPED, load<u64>(d + DOMAIN_MAPPED) - <u64>n);
    invalidateUnmapped(d, dom, uGatherStart, uGatherEnd);
  }
  return n;
}

/**
 * iommu_unmap: returns the bytes unmapped (whole leaves; 0 at a hole) or ENOENT, ENODEV, EINVAL,
 * ERANGE. Strict domains have the IOTLB invalidated before this returns; lazy ones queue it.
 */
export function unmap(dom: u32, iova: u64, size: u64): i64 {
  const d = pagingDomain(dom);
  if (d == 0) return <i64>load<i32>(state.gResult + RES_STATUS);
  return unmapIn(d, dom, iova, size);
}

/**
 * Maps `n` descriptors (iova, pa, size at MAPDESC_STRIDE in staging) with `prot`, all or nothing:
 * on the first failure the ones already mapped are unmapped, RES_VALUE holds the failing index,
 * and its status is returned.
 */
export function mapBatch(dom: u32, n: u32, prot: u32): i32 {
  const d = pagingDomain(dom);
  if (d == 0) return load<i32>(state.gResult + RES_STATUS);
  if (n > STAGING_SIZE / MAPDESC_STRIDE) return EINVAL;
  const base = state.gStaging;
  mapBatchBegin(d);
  for (let i: u32 = 0; i < n; i++) {
    // Smallest pages next to the last one are written in place (io-pgtable map_pages).
    i = mapBatchFast(d, base, i, n, prot);
    store<u64>(d + DOMAIN_MAPPED, load<u64>(d + DOMAIN_MAPPED) + mbBytes);
    if (i == n) break;
    const e = base + <usize>(i * MAPDESC_STRIDE);
    const size = load<u64>(e + 16);
    const st = mapBatchOne(d, load<u64>(e), load<u64>(e + 8), size, prot);
    store<i32>(e + 24, st);
    afterMap(d, dom, st == OK ? size : 0);
    if (st != OK) {
      for (let j: u32 = 0; j < i; j++) {
        const f = base + <usize>(j * MAPDESC_STRIDE);
        unmapIn(d, dom, load<u64>(f), load<u64>(f + 16));
      }
      store<u64>(state.gResult + RES_VALUE, i);
      return st;
    }
  }
  return OK;
}

/** Unmaps `n` descriptors (iova, size at MAPDESC_STRIDE in staging; bytes written back at +8). Returns total bytes. */
export function unmapBatch(dom: u32, n: u32): i64 {
  const d = pagingDomain(dom);
  if (d == 0) return <i64>load<i32>(state.gResult + RES_STATUS);
  if (n > STAGING_SIZE / MAPDESC_STRIDE) return EINVAL;
  let total: i64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const e = state.gStaging + <usize>(i * MAPDESC_STRIDE);
    const r = unmapIn(d, dom, load<u64>(e), load<u64>(e + 16));
    store<i64>(e + 8, r);
    if (r > 0) total += r;
  }
  return total;
}

/**
 * Software walk (iova_to_phys) with a per-level trace. Returns 0, a FAULT_* reason (> 0), or
 * ENOENT/ENODEV. On 0: RES_VALUE = output address, RES_SHIFT, RES_PERM; RES_BYTES = levels traced.
 */
export function walk(dom: u32, iova: u64): i32 {
  const n = domainOf(dom);
  if (n != 0 && load<u32>(n + DOMAIN_TYPE) == DOMAIN_NESTED) return walkNestedDomain(n, iova);
  const d = pagingDomain(dom);
  if (d == 0) return load<i32>(state.gResult + RES_STATUS);
  store<u32>(state.gResult + RES_TRACE2, 0);
  const reason = walkImpl(d, iova, true);
  store<u64>(state.gResult + RES_BYTES, wDepth);
  if (reason == 0) {
    store<u64>(state.gResult + RES_VALUE, wOut);
    store<u32>(state.gResult + RES_SHIFT, wShift);
    store<u32>(state.gResult + RES_PERM, wPerm);
  }
  return <i32>reason;
}

/**
 * The software walk of a nested domain: stage-1 levels in the trace block (RES_BYTES of them),
 * each stage-2 walk's levels after them in the stage-2 trace (RES_TRACE2 entries, level field
 * step << 8 | depth). On a fault RES_FAULT_FLAGS says the stage (FAULT_F_STAGE2, CLASS_TT) and
 * RES_FAULT_IPA the IPA stage 2 failed on.
 */
function walkNestedDomain(d: usize, iova: u64): i32 {
  const reason = nestedWalk(d, iova, 0, true);
  publishTrace();
  store<u64>(state.gResult + RES_BYTES, nDepth);
  store<u32>(state.gResult + RES_TRACE2, nTrace2);
  if (reason == 0) {
    store<u64>(state.gResult + RES_VALUE, nOut);
    store<u32>(state.gResult + RES_SHIFT, nShift);
    store<u32>(state.gResult + RES_PERM, nPerm);
    store<u32>(state.gResult + RES_FAULT_FLAGS, 0);
  } else {
    store<u32>(state.gResult + RES_FAULT_FLAGS, FAULT_F_NESTED | (nStage == 2 ? FAULT_F_STAGE2 | (nFetch ? FAULT_F_CLASS_TT : 0) : 0));
    store<u64>(state.gResult + RES_FAULT_IPA, nIpa);
  }
  return <i32>reason;
}

/** Linear address of the stage-2 trace of the last nested walk (TRACE_MAX entries in). */
export function trace2Ptr(): usize { return state.gTrace2; }

function storeFault(iova: u64): void {
  store<u32>(state.gResult + RES_FAULT_FLAGS, tFlags);
  store<u64>(state.gResult + RES_FAULT_IPA, tIpa);
  store<u32>(state.gResult + RES_FAULT_REASON, tReason);
  store<u32>(state.gResult + RES_FAULT_CODE, tCode);
  store<u64>(state.gResult + RES_FAULT_IOVA, iova);
  store<u32>(state.gResult + RES_FAULT_SIDE, 0);
}

/**
 * Translates one address as requester `rid` would. Returns OK (RES_VALUE = output, RES_SHIFT,
 * RES_PERM) or the fault's status (EFAULT, EACCES, ERANGE, EPERM blocked, ENODEV no domain)
 * with the reason and family code in the result block and a record on the unit's fault queue.
 */
export function translate(rid: u32, iova: u64, access: u32): i32 {
  if (access == 0 || access > 3) return EINVAL;
  return translateInto(rid, domainOfRid(rid), iova, access);
}

/** One translation through domain handle `dom`, its output or fault written to the result block. */
function translateInto(rid: u32, dom: i32, iova: u64, access: u32): i32 {
  if (!translateImpl(rid, dom, iova, access)) {
    storeFault(iova);
    return tStatus;
  }
  store<u64>(state.gResult + RES_VALUE, tOut);
  store<u32>(state.gResult + RES_SHIFT, tShift);
  store<u32>(state.gResult + RES_PERM, tPerm);
  return OK;
}

/**
 * Translates `n` addresses (u64 at staging) for `rid`: outputs (u64) at staging + BATCH_OUT,
 * status (i32) at staging + BATCH_STATUS, 0 output on a fault. Returns the number of faults, or
 * EINVAL for a bad n or access.
 */
export function translateBatch(rid: u32, n: u32, access: u32): i32 {
  if (n > BATCH_MAX || access == 0 || access > 3) return EINVAL;
  const inp = state.gStaging;
  return <i32>translateBatchFast(rid, domainOfRid(rid), access, inp, inp + BATCH_OUT, inp + BATCH_STATUS, n);
}

// ---- PASID ----

/** See iommu/pasid.ts enablePasid: `bits` of PASID for `rid` (0 disables). */
export function enablePasid(rid: u32, bits: u32): i32 { return enablePasidImpl(rid, bits); }
/** The PASID width of `rid` (0: off), or ENODEV. */
export function pasidBits(rid: u32): i32 { return pasidBitsImpl(rid); }
/** Binds (rid, pasid) to `dom`, replaces (replace != 0) or unbinds (dom -1). See iommu/pasid.ts. */
export function attachPasid(rid: u32, pasid: u32, dom: i32, replace: u32): i32 { return attachPasidImpl(rid, pasid, dom, replace != 0); }
/** The domain (rid, pasid) is bound to, or -1. */
export function pasidDomain(rid: u32, pasid: u32): i32 { return pasidDomainImpl(rid, pasid); }
/** The PASID `rid`'s DMA carries (0xffffffff: none). OK, EINVAL, ENODEV. */
export function setDmaPasid(rid: u32, pasid: u32): i32 { return setDmaPasidImpl(rid, pasid); }
/** Invalidates `pasid`'s IOTLB entries of domain `dom` in [start, end). Bindings matched, or ENOENT/EINVAL. */
export function invalidatePasid(dom: u32, pasid: u32, start: u64, end: u64): i32 {
  if (end <= start && end != 0) return EINVAL;
  return invalidatePasidImpl(dom, pasid, start & ~(<u64>PAGE_SIZE - 1), end);
}
/** translate() of a request of `rid` tagged with `pasid`. */
export function translatePasid(rid: u32, pasid: u32, iova: u64, access: u32): i32 {
  if (access == 0 || access > 3 || (pasid >> PASID_MAX_BITS) != 0) return EINVAL;
  return translateInto(rid, pasidHandle(rid, pasid), iova, access);
}
/** translateBatch() of requests of `rid` tagged with `pasid`. */
export function translateBatchPasid(rid: u32, pasid: u32, n: u32, access: u32): i32 {
  if (n > BATCH_MAX || access == 0 || access > 3 || (pasid >> PASID_MAX_BITS) != 0) return EINVAL;
  const inp = state.gStaging;
  return <i32>translateBatchFast(rid, pasidHandle(rid, pasid), access, inp, inp + BATCH_OUT, inp + BATCH_STATUS, n);
}

// ---- nested, dirty tracking ----

/** See pgtable/nested.ts createNested. The domain id or a negative errno. */
export function createNested(parent: u32, format: u32, ias: u32, oas: u32, granule: u32, flags: u32, root: u64): i32 {
  return createNestedImpl(parent, format, ias, oas, granule, flags, root);
}
/** set_dirty_tracking of paging domain `dom`: OK, ENOENT, ENODEV, EINVAL (not dirty-capable). */
export function setDirtyTracking(dom: u32, on: u32): i32 {
  const d = pagingDomain(dom);
  if (d == 0) return load<i32>(state.gResult + RES_STATUS);
  return setDirtyTrackingImpl(d, dom, on != 0);
}
/**
 * read_and_clear_dirty over [iova, iova + length) in pages of `pageSize`: the bitmap goes to
 * staging (u64 words, LSB first). Returns the dirty pages, or ENOENT, ENODEV, EINVAL.
 */
export function readAndClearDirty(dom: u32, iova: u64, length: u64, pageSize: u64, flags: u32): i64 {
  const d = pagingDomain(dom);
  if (d == 0) return <i64>load<i32>(state.gResult + RES_STATUS);
  return readAndClearDirtyImpl(d, dom, iova, length, pageSize, flags, state.gStaging);
}

// ---- ATS, page requests ----

/** See iommu/ats.ts enableAts. */
export function enableAts(rid: u32, sets: u32, ways: u32, pri: u32): i32 { return enableAtsImpl(rid, sets, ways, pri); }
/** Moves up to `max` page requests of `unit` to staging (PRQ_STRIDE each). The count, or ENOENT/EINVAL. */
export function pageRequestsDrain(unit: u32, max: u32): i32 {
  const u = unitOf(unit);
  if (u == 0) return ENOENT;
  if (max > STAGING_SIZE / PRQ_STRIDE) return EINVAL;
  return <i32>drainPageRequests(u, state.gStaging, max);
}

// ---- peer-to-peer routes ----

import { addWindow, removeWindow } from './iommu/p2p';
/** See iommu/p2p.ts. */
export function addP2pRoute(rid: u32, bus: u64, size: u64, cpu: u64): i32 { return addWindow(rid, bus, size, cpu); }
export function removeP2pRoute(rid: u32, bus: u64): i32 { return removeWindow(rid, bus); }

// ---- IOTLB and flush queue ----

/** Flushes unit `unit`'s lazy queue. Returns entries that were pending, or ENOENT. */
export function flush(unit: u32): i32 {
  const u = unitOf(unit);
  return u == 0 ? ENOENT : <i32>flushQueue(u);
}
export function invalidateAll(unit: u32): i32 {
  const u = unitOf(unit);
  if (u == 0) return ENOENT;
  tlbInvalidateAll(u);
  return OK;
}
export function invalidateDomain(dom: u32): i32 {
  const d = domainOf(dom);
  if (d == 0) return ENOENT;
  tlbInvalidateDomain(unitAt(load<u32>(d + DOMAIN_UNIT)), dom);
  return OK;
}
/** Invalidates [start, end) of domain `dom`. OK, ENOENT, EINVAL (empty range). */
export function invalidateRange(dom: u32, start: u64, end: u64): i32 {
  const d = domainOf(dom);
  if (d == 0) return ENOENT;
  if (end <= start && end != 0) return EINVAL;
  tlbInvalidateRange(unitAt(load<u32>(d + DOMAIN_UNIT)), dom, start & ~(<u64>PAGE_SIZE - 1), end);
  return OK;
}
export function tlbValid(unit: u32): i32 {
  const u = unitOf(unit);
  return u == 0 ? ENOENT : <i32>tlbValidEntries(u);
}

// ---- faults ----

/** Moves up to `max` fault records of `unit` to the staging area. Returns the count or ENOENT/EINVAL. */
export function faultsDrain(unit: u32, max: u32): i32 {
  const u = unitOf(unit);
  if (u == 0) return ENOENT;
  if (max > STAGING_SIZE / FAULT_STRIDE) return EINVAL;
  return <i32>drainFaults(u, state.gStaging, max);
}
export function faultsClearOverflow(unit: u32): i32 {
  const u = unitOf(unit);
  if (u == 0) return ENOENT;
  store<u32>(u + UNIT_FAULT_OVERFLOW, 0);
  return OK;
}

// ---- benchmark baseline ----

import { allocContiguous } from './mem/arena';
let benchBuf: usize = 0;
let benchLen: u32 = 0;

/**
 * The baseline the benchmarks divide by: `reps` raw memory.copy calls of `len` bytes between two
 * buffers of the arena (made on first use). Returns OK, EINVAL (len 0 or over 64 MiB), ENOMEM.
 */
export function memcpyBench(len: u32, reps: u32): i32 {
  if (len == 0 || len > (64 << 20)) return EINVAL;
  if (benchLen < len) {
    benchBuf = allocContiguous((2 * len + PAGE_SIZE - 1) / PAGE_SIZE);
    if (benchBuf == 0) { benchLen = 0; return ENOMEM; }
    benchLen = len;
    memory.fill(benchBuf, 0x5a, <usize>(2 * len));
  }
  for (let i: u32 = 0; i < reps; i++) memory.copy(benchBuf + len, benchBuf, len);
  return OK;
}
