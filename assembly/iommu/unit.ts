// IOMMU units, domains and the device (requester ID) table.

import {
  OK, EINVAL, ENOSPC, ENOMEM, ENOENT, EBUSY, MAX_UNITS, UNIT_STRIDE, UNIT_PRESENT, UNIT_FAMILY,
  UNIT_TLB_SETS, UNIT_TLB_WAYS, UNIT_TLB_PTR, UNIT_TLB_RR, UNIT_FAULT_CAP, UNIT_FAULT_PTR,
  UNIT_FQ_CAP, UNIT_FQ_PTR, UNIT_FQ_COUNT, UNIT_STAT_FQ_FLUSHES, FAMILY_VTD, FAMILY_SMMUV3,
  TLB_STRIDE, FAULT_STRIDE, FQ_STRIDE, PAGE_SIZE, MAX_DOMAINS, DOMAIN_STRIDE, DOMAIN_TYPE,
  DOMAIN_UNIT, DOMAIN_FORMAT, DOMAIN_IAS, DOMAIN_OAS, DOMAIN_LEVELS, DOMAIN_ROOT, DOMAIN_PGSIZES,
  DOMAIN_STRICT, DOMAIN_TABLE_FRAMES, DOMAIN_MAPPED, DOMAIN_PAGING, DOMAIN_IDENTITY, DOMAIN_BLOCKED,
  DOMAIN_DIRECT, MAX_DEVICES, RID_PHYS, FAMILY_AMDVI, FAMILY_RISCV, DOMAIN_POLICY, DOMAIN_FLAGS,
  DOMAIN_F_HAD, DOMAIN_F_SVNAPOT, DOMAIN_F_SIGN_EXTEND, DOMAIN_F_DYNAMIC_TOP, FMT_X86_64, FMT_RISCV,
  FMT_AMD_V1, FMT_ARM_LPAE_S1, FMT_ARM_LPAE_S2, UNMAP_REFUSE, UNMAP_WHOLE_AT_START, UNMAP_WHOLE_ANY,
  MAPPOL_EEXIST, MAPPOL_EADDRINUSE, MAPPOL_REPLACE_RISCV, UNIT_FLAGS, UNIT_F_COLLAPSE, UNIT_F_SCALABLE,
  PRQ_STRIDE, UNIT_PRQ_CAP, UNIT_PRQ_PTR, DOMAIN_PARENT, DOMAIN_CHILDREN, DOMAIN_NESTED, DOMAIN_F_DIRTY_CAP,
  DOMAIN_F_DIRTY, DOMAIN_F_NEST_PARENT,
} from '../abi';
import { domainHasPasids } from './pasid';
import { atcInvalidateRid } from './ats';
import { gUnits, gDomains, gDevices, gFlushSeen, DEVICE_STRIDE, DEVICE_NO_UNIT } from '../state';
import { allocContiguous } from '../mem/arena';
import { configure } from '../pgtable/format';
import { freeAllTables, allocRoot } from '../pgtable/engine';
import { tlbInvalidateDomain, tlbInvalidateRange } from './iotlb';

let unitCount: u32 = 0;
// One bit per domain, which domains a queue flush has already invalidated, is at gFlushSeen
// (state.ts layout: no static data, so an embedded core writes only inside its window).
let deviceCount: u32 = 0;

@inline export function unitAt(id: u32): usize {
  return gUnits + <usize>(id * UNIT_STRIDE);
}
@inline export function domainAt(id: u32): usize {
  return gDomains + <usize>(id * DOMAIN_STRIDE);
}

/** A unit record for `id`, or 0 when there is no such unit. */
export function unitOf(id: u32): usize {
  if (id >= unitCount) return 0;
  return unitAt(id);
}

/** A domain record for `id`, or 0 when there is no such live domain. */
export function domainOf(id: u32): usize {
  if (id >= MAX_DOMAINS) return 0;
  const d = domainAt(id);
  return load<u32>(d + DOMAIN_TYPE) == 0 ? 0 : d;
}

@inline function isPow2(x: u32): bool {
  return x != 0 && (x & (x - 1)) == 0;
}

/**
 * Creates an IOMMU unit. `tlbSets` a power of two (1..65536), `tlbWays` 1..16, `faultCap`
 * 1..65536, `fqCap` (lazy flush queue) 1..65536. Returns the unit id or EINVAL, ENOSPC, ENOMEM.
 */
export function createUnit(family: u32, tlbSets: u32, tlbWays: u32, faultCap: u32, fqCap: u32): i32 {
  if (family != FAMILY_VTD && family != FAMILY_SMMUV3 && family != FAMILY_AMDVI && family != FAMILY_RISCV) return EINVAL;
  if (!isPow2(tlbSets) || tlbSets > 65536 || tlbWays == 0 || tlbWays > 16) return EINVAL;
  if (faultCap == 0 || faultCap > 65536 || fqCap == 0 || fqCap > 65536) return EINVAL;
  if (unitCount >= MAX_UNITS) return ENOSPC;
  const tlbBytes = tlbSets * tlbWays * TLB_STRIDE;
  const bytes = tlbBytes + tlbSets + faultCap * FAULT_STRIDE + fqCap * FQ_STRIDE + faultCap * PRQ_STRIDE;
  const base = allocContiguous((bytes + PAGE_SIZE - 1) / PAGE_SIZE);
  if (base == 0) return ENOMEM;
  const u = unitAt(unitCount);
  store<u32>(u + UNIT_PRESENT, 1);
  store<u32>(u + UNIT_FAMILY, family);
  store<u32>(u + UNIT_TLB_SETS, tlbSets);
  store<u32>(u + UNIT_TLB_WAYS, tlbWays);
  store<u32>(u + UNIT_TLB_PTR, <u32>base);
  store<u32>(u + UNIT_TLB_RR, <u32>(base + tlbBytes));
  store<u32>(u + UNIT_FAULT_CAP, faultCap);
  store<u32>(u + UNIT_FAULT_PTR, <u32>(base + tlbBytes + tlbSets));
  store<u32>(u + UNIT_FQ_CAP, fqCap);
  store<u32>(u + UNIT_FQ_PTR, <u32>(base + tlbBytes + tlbSets + faultCap * FAULT_STRIDE));
  // The page-request queue (PRI) holds as many requests as the fault ring holds records.
  store<u32>(u + UNIT_PRQ_CAP, faultCap);
  store<u32>(u + UNIT_PRQ_PTR, <u32>(base + tlbBytes + tlbSets + faultCap * FAULT_STRIDE + fqCap * FQ_STRIDE));
  const id = unitCount++;
  return <i32>id;
}

/**
 * Creates a domain on unit `unit` with the default kernel policy of its format (io-pgtable-arm
 * since v6.13 for ARM, generic_pt for the others) and a 4 KiB granule. See createDomainEx.
 */
export function createDomain(unit: u32, type: u32, format: u32, ias: u32, oas: u32, strict: u32): i32 {
  const arm = format == FMT_ARM_LPAE_S1 || format == FMT_ARM_LPAE_S2;
  const policy = arm ? UNMAP_REFUSE | (MAPPOL_EEXIST << 4) : UNMAP_WHOLE_AT_START | (MAPPOL_EADDRINUSE << 4);
  return createDomainEx(unit, type, format, ias, oas, strict, 4096, 0, policy, 0);
}

/**
 * Creates a domain on unit `unit`. Paging domains take a format, widths and a granule (checked
 * per format, pgtable/format.ts configure), `flags` (DOMAIN_F_HAD for ARM stage 1,
 * DOMAIN_F_SVNAPOT for RISC-V), the kernel `policy` (UNMAP_* | MAPPOL_* << 4) and a mask the
 * page-size bitmap is ANDed with (0: none; the kernel's domain->pgsize_bitmap restriction); they
 * get a root table. Identity and blocked domains ignore all of that. `strict` chooses strict (1)
 * or lazy (0) IOTLB invalidation. Returns the domain id or EINVAL, ENOENT (no unit), ENOSPC,
 * ENOMEM (no frame for the root table).
 */
export function createDomainEx(unit: u32, type: u32, format: u32, ias: u32, oas: u32, strict: u32,
  granule: u32, flags: u32, policy: u32, pgsizeMask: u64): i32 {
  if (unitOf(unit) == 0) return ENOENT;
  if (type != DOMAIN_PAGING && type != DOMAIN_IDENTITY && type != DOMAIN_BLOCKED) return EINVAL;
  let id: u32 = 0;
  while (id < MAX_DOMAINS && load<u32>(domainAt(id) + DOMAIN_TYPE) != 0) id++;
  if (id >= MAX_DOMAINS) return ENOSPC;
  const d = domainAt(id);
  if (type == DOMAIN_PAGING) {
    const unmapPol = policy & 15;
    const mapPol = policy >> 4;
    if (unmapPol == 0 || unmapPol > UNMAP_WHOLE_ANY || mapPol == 0 || mapPol > MAPPOL_REPLACE_RISCV) return EINVAL;
    if ((flags & ~(DOMAIN_F_HAD | DOMAIN_F_SVNAPOT | DOMAIN_F_NEST_PARENT | DOMAIN_F_DIRTY_CAP | DOMAIN_F_DIRTY)) != 0) return EINVAL;
    if (format == FMT_X86_64 || format == FMT_RISCV) flags |= DOMAIN_F_SIGN_EXTEND;
    if (format == FMT_AMD_V1) flags |= DOMAIN_F_DYNAMIC_TOP;
    store<u32>(d + DOMAIN_FLAGS, flags);
    if (configure(format, d, ias, oas, granule) != OK) { memory.fill(d, 0, DOMAIN_STRIDE); return EINVAL; }
    if (pgsizeMask != 0) {
      const sizes = load<u64>(d + DOMAIN_PGSIZES) & pgsizeMask;
      if (sizes == 0) { memory.fill(d, 0, DOMAIN_STRIDE); return EINVAL; }
      store<u64>(d + DOMAIN_PGSIZES, sizes);
    }
    store<u32>(d + DOMAIN_FORMAT, format);
    store<u32>(d + DOMAIN_IAS, ias);
    store<u32>(d + DOMAIN_OAS, oas);
    store<u8>(d + DOMAIN_POLICY, <u8>policy);
    const root = allocRoot(d);
    if (root < 0) { memory.fill(d, 0, DOMAIN_STRIDE); return <i32>root; }
    store<u64>(d + DOMAIN_ROOT, <u64>root);
  }
  store<u32>(d + DOMAIN_TYPE, type);
  store<u32>(d + DOMAIN_UNIT, unit);
  store<u32>(d + DOMAIN_STRICT, strict != 0 ? 1 : 0);
  store<u64>(d + DOMAIN_MAPPED, 0);
  return <i32>id;
}

/** Sets unit options (UNIT_F_COLLAPSE, UNIT_F_SCALABLE). OK, ENOENT, EINVAL. */
export function setUnitFlags(unit: u32, flags: u32): i32 {
  const u = unitOf(unit);
  if (u == 0) return ENOENT;
  if ((flags & ~(UNIT_F_COLLAPSE | UNIT_F_SCALABLE)) != 0) return EINVAL;
  store<u32>(u + UNIT_FLAGS, flags);
  return OK;
}

/**
 * Frees a domain: its IOTLB entries, its pending lazy invalidations, every table frame.
 * Returns OK, ENOENT, or EBUSY while a device is still attached to it.
 */
export function destroyDomain(id: u32): i32 {
  const d = domainOf(id);
  if (d == 0) return ENOENT;
  for (let i: u32 = 0; i < deviceCount; i++) {
    if (load<i32>(gDevices + <usize>(i * DEVICE_STRIDE) + 4) == <i32>id) return EBUSY;
  }
  // Still bound to a PASID, or the stage 2 of nested domains.
  if (domainHasPasids(id) || load<u32>(d + DOMAIN_CHILDREN) != 0) return EBUSY;
  if (load<u32>(d + DOMAIN_TYPE) == DOMAIN_NESTED) {
    const parent = domainAt(load<u32>(d + DOMAIN_PARENT) - 1);
    store<u32>(parent + DOMAIN_CHILDREN, load<u32>(parent + DOMAIN_CHILDREN) - 1);
  }
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  flushQueue(u);
  tlbInvalidateDomain(u, id);
  if (load<u32>(d + DOMAIN_TYPE) == DOMAIN_PAGING) freeAllTables(d);
  memory.fill(d, 0, DOMAIN_STRIDE);
  return OK;
}

/** The device record of `rid`, or 0. */
export function deviceOf(rid: u32): usize {
  for (let i: u32 = 0; i < deviceCount; i++) {
    const p = gDevices + <usize>(i * DEVICE_STRIDE);
    if (load<u32>(p) == rid) return p;
  }
  return 0;
}

/**
 * Attaches requester `rid` to domain `dom`, to DOMAIN_DIRECT (no IOMMU in its path), or detaches
 * it (-1). Returns OK, EINVAL (RID_PHYS, bad value), ENOENT (no such domain), ENOSPC.
 */
export function attachDevice(rid: u32, dom: i32): i32 {
  if (rid == RID_PHYS) return EINVAL;
  if (dom >= 0 && domainOf(<u32>dom) == 0) return ENOENT;
  if (dom < 0 && dom != -1 && dom != DOMAIN_DIRECT) return EINVAL;
  let p = deviceOf(rid);
  if (p == 0) {
    if (deviceCount >= MAX_DEVICES) return ENOSPC;
    p = gDevices + <usize>(deviceCount * DEVICE_STRIDE);
    deviceCount++;
    store<u32>(p, rid);
  }
  const old = load<i32>(p + 4);
  if (old >= 0 && old != dom) atcInvalidateRid(rid, <u32>old);
  store<i32>(p + 4, dom);
  if (dom >= 0) store<u32>(p + 8, load<u32>(domainAt(<u32>dom) + DOMAIN_UNIT));
  else if (dom == DOMAIN_DIRECT) store<u32>(p + 8, DEVICE_NO_UNIT);
  return OK;
}

/**
 * Places requester `rid` behind unit `unit` without a domain (a stream with no valid STE /
 * context entry), so that its DMA faults are recorded there. OK, EINVAL, ENOENT, ENOSPC.
 */
export function placeDevice(rid: u32, unit: u32): i32 {
  if (unitOf(unit) == 0) return ENOENT;
  const st = attachDevice(rid, -1);
  if (st != OK) return st;
  store<u32>(deviceOf(rid) + 8, unit);
  return OK;
}

/** Requesters in the device table (records 0..n-1). */
export function deviceCountNow(): u32 {
  return deviceCount;
}

/** The unit `rid` sits behind, or DEVICE_NO_UNIT. */
export function deviceUnit(rid: u32): u32 {
  const p = deviceOf(rid);
  return p == 0 ? DEVICE_NO_UNIT : load<u32>(p + 8);
}

/** The domain `rid` is attached to: an id, DOMAIN_DIRECT, or -1 (none). */
export function deviceDomain(rid: u32): i32 {
  const p = deviceOf(rid);
  return p == 0 ? -1 : load<i32>(p + 4);
}

/**
 * Records an unmapped range for invalidation: now in strict mode, or on the unit's flush queue
 * in lazy mode (a full queue is flushed first), leaving the stale window lazy mode really has.
 */
export function invalidateUnmapped(d: usize, dom: u32, start: u64, end: u64): void {
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  if (load<u32>(d + DOMAIN_STRICT) != 0) {
    tlbInvalidateRange(u, dom, start, end);
    return;
  }
  if (load<u32>(u + UNIT_FQ_COUNT) >= load<u32>(u + UNIT_FQ_CAP)) flushQueue(u);
  const n = load<u32>(u + UNIT_FQ_COUNT);
  const e = <usize>load<u32>(u + UNIT_FQ_PTR) + <usize>(n * FQ_STRIDE);
  store<u32>(e, dom);
  store<u64>(e + 8, start);
  store<u64>(e + 16, end);
  store<u32>(u + UNIT_FQ_COUNT, n + 1);
}

/**
 * Flushes the lazy queue: like Linux's flush queue, one domain-wide IOTLB flush per domain with
 * pending entries. Returns how many entries were pending.
 */
export function flushQueue(u: usize): u32 {
  const n = load<u32>(u + UNIT_FQ_COUNT);
  if (n == 0) return 0;
  const q = <usize>load<u32>(u + UNIT_FQ_PTR);
  const flushSeen = gFlushSeen;
  memory.fill(flushSeen, 0, MAX_DOMAINS / 8);
  for (let i: u32 = 0; i < n; i++) {
    const dom = load<u32>(q + <usize>(i * FQ_STRIDE));
    const byte = flushSeen + <usize>(dom >> 3);
    const bit: u32 = 1 << (dom & 7);
    if ((<u32>load<u8>(byte) & bit) != 0) continue;
    store<u8>(byte, <u8>(<u32>load<u8>(byte) | bit));
    tlbInvalidateDomain(u, dom);
  }
  store<u32>(u + UNIT_FQ_COUNT, 0);
  store<u64>(u + UNIT_STAT_FQ_FLUSHES, load<u64>(u + UNIT_STAT_FQ_FLUSHES) + 1);
  return n;
}
