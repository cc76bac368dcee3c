// PASID (PCIe Process Address Space ID, SMMUv3 SubstreamID): a device may tag a request with a
// PASID, and each (device, PASID) has its own domain: the VT-d scalable-mode PASID table, the
// SMMUv3 context-descriptor table indexed by SSID, the AMD GCR3 table, the RISC-V process
// directory. The core keeps one binding table for all devices (abi.ts PASID_STRIDE records).
//
// A request with a PASID travels through translate() as a handle in its `dom` argument, below
// DOMAIN_DIRECT, so the DMA engine and the batch paths carry it unchanged:
//   bound:   PASID_REQ | (slot + 1) << TAG_DOMAIN_BITS | (domain + 1)
//   unbound: PASID_REQ | PASID_UNBOUND | pasid      (faults: no domain for that PASID)
// IOTLB entries of a bound request are tagged by dom | (slot + 1) << TAG_DOMAIN_BITS, so the
// probe stays one u32 compare and invalidation by PASID is invalidation of that tag.

import {
  OK, EINVAL, ENOENT, ENODEV, EBUSY, ENOSPC, EOPNOTSUPP, MAX_PASID_BINDINGS, PASID_STRIDE,
  PASID_MAX_BITS, TAG_DOMAIN_BITS, DEV_PASID_BITS, DEV_DMA_PASID, DOMAIN_TYPE, DOMAIN_UNIT,
  DOMAIN_IDENTITY, UNIT_FAMILY, UNIT_FLAGS, UNIT_F_SCALABLE, FAMILY_VTD, FAMILY_AMDVI,
  FAMILY_SMMUV3, FAMILY_RISCV, DOMAIN_PAGING, DOMAIN_FORMAT, FMT_ARM_LPAE_S1, FMT_X86_64,
} from '../abi';
import { gPasids, DEVICE_NO_UNIT } from '../state';
import { deviceOf, domainOf, unitAt } from './unit';
import { tlbInvalidateRange } from './iotlb';
import { atcInvalidatePasid } from './ats';

export const PASID_REQ: u32 = 0x80000000;
export const PASID_UNBOUND: u32 = 0x40000000;
const SLOT_MASK: u32 = 0xfff;
const DOM_MASK: u32 = (1 << TAG_DOMAIN_BITS) - 1;

// One past the highest slot ever used: scans stop there.
let slotHigh: u32 = 0;

@inline function slotAt(i: u32): usize {
  return gPasids + <usize>(i * PASID_STRIDE);
}

/** The domain id bound to slot `i`, or -1 for a free slot. */
@inline export function slotDomain(i: u32): i32 {
  return <i32>load<u32>(slotAt(i) + 8) - 1;
}
@inline export function slotPasid(i: u32): u32 {
  return load<u32>(slotAt(i) + 4);
}
@inline export function slotRid(i: u32): u32 {
  return load<u32>(slotAt(i));
}

/** The slot binding (rid, pasid), or -1. */
export function findSlot(rid: u32, pasid: u32): i32 {
  for (let i: u32 = 0; i < slotHigh; i++) {
    const p = slotAt(i);
    if (load<u32>(p + 8) != 0 && load<u32>(p) == rid && load<u32>(p + 4) == pasid) return <i32>i;
  }
  return -1;
}

/** The next slot from `from` bound to domain `dom`, or -1 (IOTLB invalidation of a domain). */
export function nextSlotOf(dom: u32, from: u32): i32 {
  for (let i = from; i < slotHigh; i++) if (load<u32>(slotAt(i) + 8) == dom + 1) return <i32>i;
  return -1;
}

/** Whether any PASID of any device is bound to `dom` (a domain in use cannot be destroyed). */
export function domainHasPasids(dom: u32): bool {
  return nextSlotOf(dom, 0) >= 0;
}

/** The IOTLB tag domain of slot `slot` bound to `dom`. */
@inline export function slotTag(dom: u32, slot: u32): u32 {
  return dom | ((slot + 1) << TAG_DOMAIN_BITS);
}

/** The translate() handle of a request of `rid` tagged with `pasid`. */
export function pasidHandle(rid: u32, pasid: u32): i32 {
  const s = findSlot(rid, pasid);
  if (s < 0) return <i32>(PASID_REQ | PASID_UNBOUND | pasid);
  return <i32>(PASID_REQ | ((<u32>s + 1) << TAG_DOMAIN_BITS) | load<u32>(slotAt(<u32>s) + 8));
}

/** Decoding of a handle (handle < DOMAIN_DIRECT). */
@inline export function handleUnbound(h: u32): bool { return (h & PASID_UNBOUND) != 0; }
@inline export function handleSlot(h: u32): u32 { return ((h >> TAG_DOMAIN_BITS) & SLOT_MASK) - 1; }
@inline export function handleDomain(h: u32): i32 { return <i32>(h & DOM_MASK) - 1; }
@inline export function handlePasid(h: u32): u32 {
  return handleUnbound(h) ? h & 0xfffff : slotPasid(handleSlot(h));
}

/** The widest PASID each family's hardware takes (VT-d 20, SMMUv3 SSIDSIZE 20, AMD PASmax 16, RISC-V 20). */
function familyMaxBits(u: usize): u32 {
  const f = load<u32>(u + UNIT_FAMILY);
  if (f == FAMILY_AMDVI) return 16;
  if (f == FAMILY_VTD || f == FAMILY_SMMUV3 || f == FAMILY_RISCV) return PASID_MAX_BITS;
  return 0;
}

/**
 * Enables PASID on requester `rid` with `bits` of PASID (max_pasids = 1 << bits; 0 disables).
 * ENODEV when the requester sits behind no unit, EOPNOTSUPP on VT-d outside scalable mode (the
 * legacy context entry has no PASID), EINVAL for bits beyond the family's width, EBUSY when a
 * bound PASID would fall outside the new width.
 */
export function enablePasid(rid: u32, bits: u32): i32 {
  const p = deviceOf(rid);
  if (p == 0) return ENODEV;
  const unit = load<u32>(p + 8);
  if (unit == DEVICE_NO_UNIT) return ENODEV;
  const u = unitAt(unit);
  if (load<u32>(u + UNIT_FAMILY) == FAMILY_VTD && (load<u32>(u + UNIT_FLAGS) & UNIT_F_SCALABLE) == 0) return EOPNOTSUPP;
  if (bits > familyMaxBits(u)) return EINVAL;
  for (let i: u32 = 0; i < slotHigh; i++) {
    if (load<u32>(slotAt(i) + 8) != 0 && slotRid(i) == rid && (bits == 0 || (slotPasid(i) >> bits) != 0)) return EBUSY;
  }
  store<u8>(p + DEV_PASID_BITS, <u8>bits);
  return OK;
}

/** The PASID width enablePasid gave `rid` (0: PASIDs off), or ENODEV for an unknown requester. */
export function pasidBits(rid: u32): i32 {
  const p = deviceOf(rid);
  return p == 0 ? ENODEV : <i32>load<u8>(p + DEV_PASID_BITS);
}

/** Drops the IOTLB entries (and the device's ATC entries) of slot `s`. */
function flushSlot(s: u32): void {
  const dom = <u32>slotDomain(s);
  const d = domainOf(dom);
  if (d != 0) tlbInvalidateRange(unitAt(load<u32>(d + DOMAIN_UNIT)), slotTag(dom, s), 0, 0);
  atcInvalidatePasid(slotRid(s), slotPasid(s));
}

/**
 * Binds (rid, pasid) to domain `dom` (iommu_attach_device_pasid), replaces its domain
 * (`replace`: iommu_replace_device_pasid), or unbinds it (`dom` -1: iommu_detach_device_pasid).
 * The kernel's errnos: EINVAL for PASID 0 (IOMMU_NO_PASID, the RID's own domain), a PASID beyond
 * the device's width or with PASID not enabled, a domain of another unit, a replace with nothing
 * attached; EOPNOTSUPP for a domain that cannot be attached to a PASID (identity, outside VT-d);
 * EBUSY for an attach over another domain; ENOENT (no domain, or a detach of an unbound PASID);
 * ENODEV (a requester behind no unit); ENOSPC (binding table full). Nothing changes on an error.
 */
export function attachPasid(rid: u32, pasid: u32, dom: i32, replace: bool): i32 {
  const p = deviceOf(rid);
  if (p == 0 || load<u32>(p + 8) == DEVICE_NO_UNIT) return ENODEV;
  const unit = load<u32>(p + 8);
  const bits = <u32>load<u8>(p + DEV_PASID_BITS);
  const cur = findSlot(rid, pasid);
  if (dom < 0) {
    if (dom != -1) return EINVAL;
    if (cur < 0) return ENOENT;
    flushSlot(<u32>cur);
    memory.fill(slotAt(<u32>cur), 0, PASID_STRIDE);
    return OK;
  }
  const d = domainOf(<u32>dom);
  if (d == 0) return ENOENT;
  if (load<u32>(d + DOMAIN_TYPE) == DOMAIN_IDENTITY && load<u32>(unitAt(unit) + UNIT_FAMILY) != FAMILY_VTD) return EOPNOTSUPP;
  if (pasid == 0 || bits == 0 || (pasid >> bits) != 0) return EINVAL;
  if (load<u32>(d + DOMAIN_UNIT) != unit) return EINVAL;
  // What each family's PASID table can point at: an SMMUv3 CD holds a stage-1 table only
  // (arm_smmu_s1_set_dev_pasid); an AMD GCR3 entry a v2 (x86-64) table, and AMD refuses a
  // replace (set_dev_pasid with an old domain: EOPNOTSUPP).
  const family = load<u32>(unitAt(unit) + UNIT_FAMILY);
  if (load<u32>(d + DOMAIN_TYPE) == DOMAIN_PAGING) {
    const fmt = load<u32>(d + DOMAIN_FORMAT);
    if (family == FAMILY_SMMUV3 && fmt != FMT_ARM_LPAE_S1) return EINVAL;
    if (family == FAMILY_AMDVI && fmt != FMT_X86_64) return EOPNOTSUPP;
  }
  if (replace) {
    if (family == FAMILY_AMDVI) return EOPNOTSUPP;
    if (cur < 0) return EINVAL;
    if (slotDomain(<u32>cur) == dom) return OK;
    flushSlot(<u32>cur);
    store<u32>(slotAt(<u32>cur) + 8, <u32>dom + 1);
    return OK;
  }
  if (cur >= 0) return EBUSY;
  let s: u32 = 0;
  while (s < MAX_PASID_BINDINGS && load<u32>(slotAt(s) + 8) != 0) s++;
  if (s >= MAX_PASID_BINDINGS) return ENOSPC;
  const e = slotAt(s);
  store<u32>(e, rid);
  store<u32>(e + 4, pasid);
  store<u32>(e + 8, <u32>dom + 1);
  if (s >= slotHigh) slotHigh = s + 1;
  // A fresh slot may reuse a tag another binding left in the IOTLB: drop it.
  flushSlot(s);
  return OK;
}

/** The domain (rid, pasid) is bound to, or -1. */
export function pasidDomain(rid: u32, pasid: u32): i32 {
  const s = findSlot(rid, pasid);
  return s < 0 ? -1 : slotDomain(<u32>s);
}

/**
 * Sets the PASID the device's DMA requests carry (0xffffffff: none), as a DMA engine whose queue
 * is bound to a PASID (Intel DSA work queues, SVA). EINVAL beyond the device's width, ENODEV.
 */
export function setDmaPasid(rid: u32, pasid: u32): i32 {
  const p = deviceOf(rid);
  if (p == 0) return ENODEV;
  if (pasid == 0xffffffff) { store<u32>(p + DEV_DMA_PASID, 0); return OK; }
  const bits = <u32>load<u8>(p + DEV_PASID_BITS);
  if (pasid == 0 || bits == 0 || (pasid >> bits) != 0) return EINVAL;
  store<u32>(p + DEV_DMA_PASID, pasid + 1);
  return OK;
}

/**
 * Invalidates the IOTLB entries of `pasid` on domain `dom` (every device's binding of it) over
 * [start, end) (end 0: to the top): VT-d P-IOTLB PASID-selective, SMMUv3 CMD_TLBI_NH_VA by ASID.
 * Other PASIDs' entries and the domain's RID entries stay. Returns how many bindings matched.
 */
export function invalidatePasid(dom: u32, pasid: u32, start: u64, end: u64): i32 {
  const d = domainOf(dom);
  if (d == 0) return ENOENT;
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  let n: i32 = 0;
  for (let s = nextSlotOf(dom, 0); s >= 0; s = nextSlotOf(dom, <u32>s + 1)) {
    if (slotPasid(<u32>s) != pasid) continue;
    tlbInvalidateRange(u, slotTag(dom, <u32>s), start, end);
    atcInvalidatePasid(slotRid(<u32>s), pasid);
    n++;
  }
  return n;
}
