// Dirty tracking (iommufd IOMMU_HWPT_SET_DIRTY_TRACKING / GET_DIRTY_BITMAP; the kernel's
// iommu_dirty_ops and io-pgtable read_and_clear_dirty). Hardware marks a leaf dirty on a write
// translation: a D bit (VT-d second stage with SSADE, x86-64, AMD v1 with HAD, RISC-V), or on
// ARM with HTTU a DBM leaf made writable by the write (stage 1: AP[2] cleared; stage 2: S2AP
// write set). Software reads the marks over a range into a bitmap and clears them (ARM: the leaf
// goes back to writable-clean, DBM with write permission removed); the IOTLB must then be
// flushed, since entries cached with write permission would let later writes skip the walk.
//
// The IOTLB side: while tracking is on, a translation of a clean leaf is cached without write
// permission, so the first write misses the cached rights and walks again (iommu/translate.ts),
// which is where the mark is made, as hardware re-walks to set D.

import {
  OK, EINVAL, EOPNOTSUPP, ACCESS_WRITE, FMT_ARM_LPAE_S1, FMT_RISCV, DOMAIN_FORMAT, DOMAIN_UNIT, DOMAIN_FLAGS, DOMAIN_F_DIRTY, DOMAIN_F_DIRTY_CAP,
  FAULT_ADDRESS_SIZE, DIRTY_NO_CLEAR, DIRTY_MAX_PAGES,
} from '../abi';
import { walk, wShift, wDepth, wLeafSlot } from './engine';
import { pteDirtyBit, pteDirtyDbm, lvlShift } from './format';
import { physRead64, physWrite64 } from '../mem/phys';
import { RV_W, RV_D } from './riscv';
import { tlbInvalidateRange, tlbInvalidateDomain } from '../iommu/iotlb';
import { unitAt } from '../iommu/unit';

const DBM: u64 = <u64>1 << 51;

@inline function isDirty(fmt: u32, pte: u64): bool {
  const b = pteDirtyBit(fmt);
  if (!pteDirtyDbm(fmt)) return (pte & b) != 0;
  // Stage 1: writable-dirty = AP[2] clear; stage 2: S2AP write set.
  return fmt == FMT_ARM_LPAE_S1 ? (pte & b) == 0 : (pte & b) != 0;
}

@inline function markDirty(fmt: u32, pte: u64): u64 {
  const b = pteDirtyBit(fmt);
  return pteDirtyDbm(fmt) && fmt == FMT_ARM_LPAE_S1 ? pte & ~b : pte | b;
}

@inline function markClean(fmt: u32, pte: u64): u64 {
  const b = pteDirtyBit(fmt);
  if (!pteDirtyDbm(fmt)) return pte & ~b;
  return fmt == FMT_ARM_LPAE_S1 ? pte | DBM | b : (pte | DBM) & ~b;
}

/**
 * A writable leaf now clean, which the hardware makes dirty on a write instead of faulting: ARM
 * DBM with write permission removed; RISC-V W with D clear (its walker needs D for a write).
 */
@inline function writableClean(fmt: u32, pte: u64): bool {
  if (fmt == FMT_RISCV) return (pte & RV_W) != 0 && (pte & RV_D) == 0;
  return pteDirtyDbm(fmt) && (pte & DBM) != 0 && !isDirty(fmt, pte);
}

/** Formats whose clean leaves keep being made dirty by hardware while tracking is off. */
@inline function keepsTracking(fmt: u32): bool {
  return pteDirtyDbm(fmt) || fmt == FMT_RISCV;
}

/** Whether the hardware updates dirty state in domain `d`'s walks. */
@inline export function tracksDirty(d: usize): bool {
  const f = load<u32>(d + DOMAIN_FLAGS);
  // ARM DBM leaves stay writable-clean after a clear and HTTU keeps honouring them; RISC-V
  // leaves cleared of D need the hardware A/D update to be written at all.
  return (f & DOMAIN_F_DIRTY) != 0 || ((f & DOMAIN_F_DIRTY_CAP) != 0 && keepsTracking(load<u32>(d + DOMAIN_FORMAT)));
}

/** The rights to cache for the walk dirtyAfterWalk just handled (no write while clean). */
export let dCachePerm: u32 = 0;

/**
 * After a successful walk() of tracking domain `d` for `access` with rights `perm`: makes the
 * leaf dirty on a write it allows (a DBM leaf allows writes), and returns the rights granted.
 */
export function dirtyAfterWalk(d: usize, access: u32, perm: u32): u32 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const slot = wLeafSlot;
  let pte = physRead64(slot);
  let granted = perm;
  if (writableClean(fmt, pte)) granted |= ACCESS_WRITE;
  if ((access & ACCESS_WRITE) != 0 && (granted & ACCESS_WRITE) != 0 && !isDirty(fmt, pte)) {
    pte = markDirty(fmt, pte);
    physWrite64(slot, pte);
  }
  dCachePerm = isDirty(fmt, pte) ? granted : granted & ~ACCESS_WRITE;
  return granted;
}

@inline function setBits(bm: usize, first: u64, last: u64): void {
  for (let i = first; i <= last; i++) {
    const p = bm + <usize>(i >> 3);
    store<u8>(p, <u8>(<u32>load<u8>(p) | (<u32>1 << <u32>(i & 7))));
  }
}

/**
 * read_and_clear_dirty over [iova, iova + length) of domain record `d` (id `dom`): bit i of the
 * bitmap at `bm` (LSB-first, zeroed here) = page i of `pageSize` holds part of a dirty leaf.
 * A leaf replicated over several entries (contiguous, size-encoded, NAPOT) is dirty when any
 * of them is. Unless DIRTY_NO_CLEAR, the marks read are cleared and the range's IOTLB entries
 * flushed. Returns the dirty pages of the bitmap, or EINVAL: tracking off (the intel and AMD
 * drivers refuse a bitmap then), pageSize not a power of two, iova or length not aligned to it,
 * length 0 or more than DIRTY_MAX_PAGES pages.
 */
export function readAndClearDirty(d: usize, dom: u32, iova: u64, length: u64, pageSize: u64, flags: u32, bm: usize): i64 {
  if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_DIRTY) == 0) return EINVAL;
  if (pageSize == 0 || (pageSize & (pageSize - 1)) != 0 || ((iova | length) & (pageSize - 1)) != 0 || length == 0) return EINVAL;
  const pshift = <u64>ctz(pageSize);
  const npages = length >> pshift;
  if (npages > <u64>DIRTY_MAX_PAGES) return EINVAL;
  const end = iova + length;
  if (end < iova && end != 0) return EINVAL;
  memory.fill(bm, 0, <usize>((npages + 63) >> 6) << 3);
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const clear = (flags & DIRTY_NO_CLEAR) == 0;
  let cleared = false;
  let va = iova;
  const last = end - 1;
  while (va <= last && va >= iova) {
    const r = walk(d, va, false, 0);
    if (r != 0) {
      if (r == FAULT_ADDRESS_SIZE || wDepth == 0) break;
      // A hole as large as the level whose entry was missing.
      const sh = lvlShift(d, wDepth - 1);
      va = (va | ((<u64>1 << sh) - 1)) + 1;
      continue;
    }
    const lshift = wShift;
    const levelShift = lvlShift(d, wDepth - 1);
    const n: u64 = <u64>1 << (lshift - levelShift);
    const first = wLeafSlot - (((va >> levelShift) & (n - 1)) << 3);
    let dirty = false;
    for (let k: u64 = 0; k < n; k++) {
      const pte = physRead64(first + (k << 3));
      if (!isDirty(fmt, pte)) continue;
      dirty = true;
      if (clear) { physWrite64(first + (k << 3), markClean(fmt, pte)); cleared = true; }
    }
    const leafStart = va & ~((<u64>1 << lshift) - 1);
    const leafLast = leafStart + ((<u64>1 << lshift) - 1);
    if (dirty) {
      const a = leafStart < iova ? iova : leafStart;
      const b = leafLast > last ? last : leafLast;
      const p0 = (a - iova) >> pshift;
      const p1 = (b - iova) >> pshift;
      setBits(bm, p0, p1);
    }
    va = leafLast + 1;
    if (va == 0) break;
  }
  if (cleared) tlbInvalidateRange(unitAt(load<u32>(d + DOMAIN_UNIT)), dom, iova, end);
  let count: i64 = 0;
  const words = <usize>((npages + 63) >> 6);
  for (let i: usize = 0; i < words; i++) count += <i64>popcnt(load<u64>(bm + (i << 3)));
  return count;
}

/** set_dirty_tracking: OK, or EOPNOTSUPP for a domain not created dirty-capable. */
export function setDirtyTracking(d: usize, dom: u32, on: bool): i32 {
  const f = load<u32>(d + DOMAIN_FLAGS);
  if ((f & DOMAIN_F_DIRTY_CAP) == 0) return EOPNOTSUPP;
  store<u32>(d + DOMAIN_FLAGS, on ? f | DOMAIN_F_DIRTY : f & ~DOMAIN_F_DIRTY);
  // Entries cached under the other setting carry the wrong rights (no write while clean), as
  // the drivers flush after switching SSADE / HD.
  if (((f & DOMAIN_F_DIRTY) != 0) != on) tlbInvalidateDomain(unitAt(load<u32>(d + DOMAIN_UNIT)), dom);
  return OK;
}
