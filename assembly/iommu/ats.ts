// ATS (PCIe Address Translation Services): the device keeps its own cache of translations, the
// ATC (device-TLB), filled by translation requests to the IOMMU; a request the ATC hits goes out
// already translated and bypasses the IOMMU. An IOTLB invalidation of a domain range is followed
// by an ATC invalidation of every ATS device using that domain (VT-d dev-IOTLB invalidation,
// SMMUv3 CMD_ATC_INV), counted on the unit. PRI (Page Request Interface): a translation that
// fails for a PRI-enabled device becomes a page request on the unit's queue, not a fault record;
// the device waits for the response and retries.
//
// The ATC uses the IOTLB's entry layout and probe (iotlb.ts), caching 4 KiB pieces tagged like
// the IOTLB (domain, or domain and PASID slot).

import {
  OK, EINVAL, ENODEV, ENOMEM, EBUSY, TLB_STRIDE, TLB_VPN, TLB_OUT, TLB_TAG, TLB_PERM, PAGE_SIZE,
  DEV_FLAGS, DEV_F_ATS, DEV_F_PRI, DEV_ATC_PTR, DEV_ATC_SETS, DEV_ATC_WAYS, UNIT_ATS_DEVICES,
  UNIT_STAT_ATC_INVALIDATIONS, UNIT_PRQ_CAP, UNIT_PRQ_PTR, UNIT_PRQ_HEAD, UNIT_PRQ_COUNT,
  UNIT_PRQ_OVERFLOW, UNIT_STAT_PAGE_REQUESTS, PRQ_STRIDE, TAG_DOMAIN_BITS,
} from '../abi';
import { gDevices, DEVICE_STRIDE, DEVICE_NO_UNIT } from '../state';
import { allocContiguous } from '../mem/arena';
import { deviceOf, deviceCountNow, unitAt } from './unit';
import { probe, setIndex, tlbTag } from './iotlb';
import { findSlot, slotTag, slotRid, slotDomain } from './pasid';

/**
 * Enables ATS on `rid` with an ATC of `sets` x `ways` entries (sets a power of two up to 4096,
 * ways 1..16), and PRI when `pri` != 0. Enabling again keeps the ATC (EBUSY for another size)
 * and sets PRI as asked. ENODEV (no unit), EINVAL, ENOMEM.
 */
export function enableAts(rid: u32, sets: u32, ways: u32, pri: u32): i32 {
  const p = deviceOf(rid);
  if (p == 0 || load<u32>(p + 8) == DEVICE_NO_UNIT) return ENODEV;
  if (sets == 0 || sets > 4096 || (sets & (sets - 1)) != 0 || ways == 0 || ways > 16) return EINVAL;
  const flags = <u32>load<u8>(p + DEV_FLAGS);
  if ((flags & DEV_F_ATS) != 0) {
    if (load<u32>(p + DEV_ATC_SETS) != sets || load<u32>(p + DEV_ATC_WAYS) != ways) return EBUSY;
  } else {
    const bytes = sets * ways * TLB_STRIDE + sets;
    const base = allocContiguous((bytes + PAGE_SIZE - 1) / PAGE_SIZE);
    if (base == 0) return ENOMEM;
    store<u32>(p + DEV_ATC_PTR, <u32>base);
    store<u32>(p + DEV_ATC_SETS, sets);
    store<u32>(p + DEV_ATC_WAYS, ways);
    const u = unitAt(load<u32>(p + 8));
    store<u32>(u + UNIT_ATS_DEVICES, load<u32>(u + UNIT_ATS_DEVICES) + 1);
  }
  store<u8>(p + DEV_FLAGS, <u8>(DEV_F_ATS | (pri != 0 ? DEV_F_PRI : 0)));
  return OK;
}

// The entry the last ATC hit found.
export let atcOut: u64 = 0;
export let atcPerm: u32 = 0;

/** Looks `iova` up in the ATC of device record `p` for tag domain `tdom`. True on a hit. */
export function atcLookup(p: usize, tdom: u32, iova: u64): bool {
  const e = probe(<usize>load<u32>(p + DEV_ATC_PTR), load<u32>(p + DEV_ATC_SETS), load<u32>(p + DEV_ATC_WAYS), tdom, 12, iova >> 12);
  if (e == 0) return false;
  atcOut = load<u64>(e + TLB_OUT) | (iova & 0xfff);
  atcPerm = load<u32>(e + TLB_PERM);
  return true;
}

/** Fills the ATC of `p` with the 4 KiB piece of a translation completion. */
export function atcInsert(p: usize, tdom: u32, iova: u64, out: u64, perm: u32): void {
  const sets = load<u32>(p + DEV_ATC_SETS);
  const ways = load<u32>(p + DEV_ATC_WAYS);
  const atc = <usize>load<u32>(p + DEV_ATC_PTR);
  const vpn = iova >> 12;
  const set = setIndex(vpn, tdom, sets);
  const base = atc + <usize>(set * ways * TLB_STRIDE);
  // A completion for a page already cached (rights upgraded) replaces its entry.
  let victim = probe(atc, sets, ways, tdom, 12, vpn);
  for (let w: u32 = 0; victim == 0 && w < ways; w++) {
    const e = base + <usize>(w * TLB_STRIDE);
    if (load<u32>(e + TLB_TAG) == 0) victim = e;
  }
  if (victim == 0) {
    const rr = atc + <usize>(sets * ways * TLB_STRIDE) + <usize>set;
    const w = <u32>load<u8>(rr);
    store<u8>(rr, <u8>((w + 1) % ways));
    victim = base + <usize>(w * TLB_STRIDE);
  }
  store<u64>(victim + TLB_VPN, vpn);
  store<u64>(victim + TLB_OUT, out & ~(<u64>0xfff));
  store<u32>(victim + TLB_TAG, tlbTag(tdom, 12));
  store<u32>(victim + TLB_PERM, perm);
}

/** Drops the entries of `tdom` in [start, end) (end 0: all) from the ATC of `p`. Returns how many. */
function atcDrop(p: usize, tdom: u32, start: u64, end: u64): u32 {
  const atc = <usize>load<u32>(p + DEV_ATC_PTR);
  const count = load<u32>(p + DEV_ATC_SETS) * load<u32>(p + DEV_ATC_WAYS);
  const tag = tlbTag(tdom, 12);
  const last = end - 1;
  let n: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const e = atc + <usize>(i * TLB_STRIDE);
    if (load<u32>(e + TLB_TAG) != tag) continue;
    const a = load<u64>(e + TLB_VPN) << 12;
    if (a <= last && start <= a + 0xfff) { store<u32>(e + TLB_TAG, 0); n++; }
  }
  return n;
}

@inline function atsDevice(rid: u32): usize {
  const p = deviceOf(rid);
  return p != 0 && (<u32>load<u8>(p + DEV_FLAGS) & DEV_F_ATS) != 0 ? p : 0;
}

/** One ATC invalidation request to the device of record `p` (counted on its unit, completed). */
function invalidateDevice(p: usize, tdom: u32, start: u64, end: u64): void {
  atcDrop(p, tdom, start, end);
  const u = unitAt(load<u32>(p + 8));
  store<u64>(u + UNIT_STAT_ATC_INVALIDATIONS, load<u64>(u + UNIT_STAT_ATC_INVALIDATIONS) + 1);
}

/**
 * After the IOTLB entries of tag domain `tdom` in [start, end) were invalidated on unit `u`: the
 * ATCs of the ATS devices using it. A plain domain reaches the devices attached to it by RID; a
 * PASID tag reaches the device of that binding.
 */
export function atcInvalidateTag(u: usize, tdom: u32, start: u64, end: u64): void {
  if (load<u32>(u + UNIT_ATS_DEVICES) == 0) return;
  const dom = tdom & ((1 << TAG_DOMAIN_BITS) - 1);
  if (dom != tdom) {
    const p = atsDevice(slotRid((tdom >> TAG_DOMAIN_BITS) - 1));
    if (p != 0) invalidateDevice(p, tdom, start, end);
    return;
  }
  const n = deviceCountNow();
  for (let i: u32 = 0; i < n; i++) {
    const p = gDevices + <usize>(i * DEVICE_STRIDE);
    if (load<i32>(p + 4) == <i32>dom && (<u32>load<u8>(p + DEV_FLAGS) & DEV_F_ATS) != 0) invalidateDevice(p, tdom, start, end);
  }
}

/** Drops every ATC entry of (rid, pasid) (a PASID detached or replaced). */
export function atcInvalidatePasid(rid: u32, pasid: u32): void {
  const p = atsDevice(rid);
  if (p == 0) return;
  const s = findSlot(rid, pasid);
  if (s < 0) return;
  invalidateDevice(p, slotTag(<u32>slotDomain(<u32>s), <u32>s), 0, 0);
}

/** Drops every ATC entry of `rid` tagged with domain `dom` (the RID detached or moved). */
export function atcInvalidateRid(rid: u32, dom: u32): void {
  const p = atsDevice(rid);
  if (p != 0) invalidateDevice(p, dom, 0, 0);
}

/** Whether the device of `rid` answers translation faults with page requests. */
export function priEnabled(p: usize): bool {
  return (<u32>load<u8>(p + DEV_FLAGS) & DEV_F_PRI) != 0;
}

/** Queues a page request on unit `u` (dropped with the overflow flag when the queue is full). */
export function pageRequest(u: usize, rid: u32, pasidTag: u32, iova: u64, access: u32): void {
  store<u64>(u + UNIT_STAT_PAGE_REQUESTS, load<u64>(u + UNIT_STAT_PAGE_REQUESTS) + 1);
  const cap = load<u32>(u + UNIT_PRQ_CAP);
  const count = load<u32>(u + UNIT_PRQ_COUNT);
  if (count >= cap) { store<u32>(u + UNIT_PRQ_OVERFLOW, 1); return; }
  const r = <usize>load<u32>(u + UNIT_PRQ_PTR) + <usize>(((load<u32>(u + UNIT_PRQ_HEAD) + count) % cap) * PRQ_STRIDE);
  store<u64>(r, iova & ~(<u64>0xfff));
  store<u32>(r + 8, rid);
  store<u32>(r + 12, pasidTag);
  store<u32>(r + 16, access);
  store<u32>(u + UNIT_PRQ_COUNT, count + 1);
}

/** Moves up to `max` page requests of `u`, oldest first, to `out`. Returns how many. */
export function drainPageRequests(u: usize, out: usize, max: u32): u32 {
  const cap = load<u32>(u + UNIT_PRQ_CAP);
  let head = load<u32>(u + UNIT_PRQ_HEAD);
  let count = load<u32>(u + UNIT_PRQ_COUNT);
  const ring = <usize>load<u32>(u + UNIT_PRQ_PTR);
  let n: u32 = 0;
  while (n < max && count > 0) {
    memory.copy(out + <usize>(n * PRQ_STRIDE), ring + <usize>(head * PRQ_STRIDE), PRQ_STRIDE);
    head = (head + 1) % cap;
    count--;
    n++;
  }
  store<u32>(u + UNIT_PRQ_HEAD, head);
  store<u32>(u + UNIT_PRQ_COUNT, count);
  return n;
}
