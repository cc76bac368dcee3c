// The page-frame database of RAM regions (struct page) and the frame allocator.
//
// Frames are grouped FRAME_GROUP at a time. The region's frame directory has one 8-byte slot
// per group: the chunk holding the group's frame records (0 until a frame of the group is first
// allocated) and how many of its frames are in use. A group whose last frame is freed gives its
// chunk back, so a 16 GiB RAM region costs its directory plus what is allocated.

import {
  OK, EINVAL, ENOMEM, REGION_KIND, REGION_KIND_RAM, REGION_BASE, REGION_FRAME_DIR, REGION_GROUPS,
  REGION_FRAMES, REGION_FREE_FRAMES, REGION_ALLOC_HINT, FRAME_GROUP, FRAME_STRIDE, FRAME_REFCOUNT,
  FRAME_PINCOUNT, FRAME_FLAGS, FRAME_AUX, PAGE_SHIFT, PAGE_SIZE, RES_VALUE, RES_BYTES,
} from '../abi';
import { gResult } from '../state';
import { allocChunk, allocContiguous, freeChunk } from './arena';
import { findRegion, regionAt, regionsUsed, discardPage } from './phys';

const DIR_STRIDE: u32 = 8;

/** Sets up the frame directory of a new RAM region of `frames` frames. OK or ENOMEM. */
export function initFrames(r: usize, frames: u64): i32 {
  const groups = <u32>((frames + FRAME_GROUP - 1) / FRAME_GROUP);
  const chunks = (groups * DIR_STRIDE + PAGE_SIZE - 1) / PAGE_SIZE;
  const dir = allocContiguous(chunks);
  if (dir == 0) return ENOMEM;
  store<u32>(r + REGION_FRAME_DIR, <u32>dir);
  store<u32>(r + REGION_GROUPS, groups);
  store<u64>(r + REGION_FRAMES, frames);
  store<u64>(r + REGION_FREE_FRAMES, frames);
  store<u64>(r + REGION_ALLOC_HINT, 0);
  return OK;
}

@inline function dirSlot(r: usize, group: u32): usize {
  return <usize>load<u32>(r + REGION_FRAME_DIR) + <usize>(group * DIR_STRIDE);
}

/** The record of frame `idx` of region `r`, or 0 when its group has no records (all free). */
export function frameRecord(r: usize, idx: u64): usize {
  const block = <usize>load<u32>(dirSlot(r, <u32>(idx / FRAME_GROUP)));
  if (block == 0) return 0;
  return block + <usize>((<u32>(idx % FRAME_GROUP)) * FRAME_STRIDE);
}

@inline function alignUp64(x: u64, a: u64): u64 {
  return (x + a - 1) & ~(a - 1);
}

/** First index >= from of a free run of n frames, aligned to `align`, ending by `to`; or -1. */
function scanRun(r: usize, from: u64, to: u64, n: u64, align: u64): i64 {
  let f = alignUp64(from, align);
  while (f + n <= to) {
    let j: u64 = 0;
    let ok = true;
    while (j < n) {
      const idx = f + j;
      const g = <u32>(idx / FRAME_GROUP);
      const slot = dirSlot(r, g);
      const used = load<u32>(slot + 4);
      const groupEnd = (<u64>g + 1) * FRAME_GROUP;
      if (used == 0) { j = groupEnd - f; continue; }
      if (used == FRAME_GROUP) { f = alignUp64(groupEnd, align); ok = false; break; }
      const rec = <usize>load<u32>(slot) + <usize>((<u32>(idx % FRAME_GROUP)) * FRAME_STRIDE);
      if (load<u32>(rec + FRAME_REFCOUNT) != 0) { f = alignUp64(idx + 1, align); ok = false; break; }
      j++;
    }
    if (ok) return <i64>f;
  }
  return -1;
}

/**
 * Allocates `n` physically contiguous frames aligned to `alignFrames` (a power of two) from the
 * first RAM region that has them, each with refcount 1 and `flags`. Contents read as zeros.
 * Returns the physical address (>= 0) or EINVAL (n = 0, bad alignment), ENOMEM (no such run, or
 * no arena for the frame records).
 */
export function allocFrames(n: u64, alignFrames: u64, flags: u32): i64 {
  if (n == 0 || alignFrames == 0 || (alignFrames & (alignFrames - 1)) != 0) return EINVAL;
  const regions = regionsUsed();
  for (let i: u32 = 0; i < regions; i++) {
    const r = regionAt(i);
    if (load<u32>(r + REGION_KIND) != REGION_KIND_RAM) continue;
    if (load<u64>(r + REGION_FREE_FRAMES) < n) continue;
    const frames = load<u64>(r + REGION_FRAMES);
    const hint = load<u64>(r + REGION_ALLOC_HINT);
    let f = scanRun(r, hint, frames, n, alignFrames);
    if (f < 0 && hint > 0) f = scanRun(r, 0, min(frames, hint + n), n, alignFrames);
    if (f < 0) continue;
    const st = markRun(r, <u64>f, n, flags);
    if (st != OK) return st;
    store<u64>(r + REGION_ALLOC_HINT, <u64>f + n >= frames ? 0 : <u64>f + n);
    return <i64>(load<u64>(r + REGION_BASE) + (<u64>f << PAGE_SHIFT));
  }
  return ENOMEM;
}

function markRun(r: usize, f: u64, n: u64, flags: u32): i32 {
  // Make every group's record block first, so a failure leaves nothing half-allocated.
  const g0 = <u32>(f / FRAME_GROUP);
  const g1 = <u32>((f + n - 1) / FRAME_GROUP);
  for (let g = g0; g <= g1; g++) {
    const slot = dirSlot(r, g);
    if (load<u32>(slot) == 0) {
      const block = allocChunk();
      if (block == 0) {
        // Give back the blocks made for this run that hold no frames.
        for (let h = g0; h < g; h++) {
          const s = dirSlot(r, h);
          if (load<u32>(s + 4) == 0 && load<u32>(s) != 0) { freeChunk(<usize>load<u32>(s)); store<u32>(s, 0); }
        }
        return ENOMEM;
      }
      store<u32>(slot, <u32>block);
    }
  }
  for (let i: u64 = 0; i < n; i++) {
    const idx = f + i;
    const slot = dirSlot(r, <u32>(idx / FRAME_GROUP));
    const rec = <usize>load<u32>(slot) + <usize>((<u32>(idx % FRAME_GROUP)) * FRAME_STRIDE);
    store<u32>(rec + FRAME_REFCOUNT, 1);
    store<u32>(rec + FRAME_PINCOUNT, 0);
    store<u32>(rec + FRAME_FLAGS, flags);
    store<u32>(rec + FRAME_AUX, 0);
    store<u32>(slot + 4, load<u32>(slot + 4) + 1);
    // The host may have written the frame while it was free; a new frame reads as zeros.
    discardPage(r, load<u64>(r + REGION_BASE) + (idx << PAGE_SHIFT));
  }
  store<u64>(r + REGION_FREE_FRAMES, load<u64>(r + REGION_FREE_FRAMES) - n);
  return OK;
}

/** Region of the frame the last allocatedFrame() call found. */
let lookupRegion: usize = 0;

/** The record of the allocated frame at `pa` (its region left in lookupRegion), or 0. */
export function allocatedFrame(pa: u64): usize {
  if ((pa & (PAGE_SIZE - 1)) != 0) return 0;
  const r = findRegion(pa);
  if (r == 0 || load<u32>(r + REGION_KIND) != REGION_KIND_RAM) return 0;
  const rec = frameRecord(r, (pa - load<u64>(r + REGION_BASE)) >> PAGE_SHIFT);
  if (rec == 0 || load<u32>(rec + FRAME_REFCOUNT) == 0) return 0;
  lookupRegion = r;
  return rec;
}

function releaseFrame(r: usize, pa: u64, rec: usize): void {
  memory.fill(rec, 0, FRAME_STRIDE);
  const idx = (pa - load<u64>(r + REGION_BASE)) >> PAGE_SHIFT;
  const slot = dirSlot(r, <u32>(idx / FRAME_GROUP));
  const used = load<u32>(slot + 4) - 1;
  store<u32>(slot + 4, used);
  if (used == 0) {
    freeChunk(<usize>load<u32>(slot));
    store<u32>(slot, 0);
  }
  store<u64>(r + REGION_FREE_FRAMES, load<u64>(r + REGION_FREE_FRAMES) + 1);
  discardPage(r, pa);
}

/** get_page: refcount + 1. OK or EINVAL (not an allocated frame). */
export function getFrame(pa: u64): i32 {
  const rec = allocatedFrame(pa);
  if (rec == 0) return EINVAL;
  store<u32>(rec + FRAME_REFCOUNT, load<u32>(rec + FRAME_REFCOUNT) + 1);
  return OK;
}

/**
 * put_page: refcount - 1; at zero the frame is free again and its contents are dropped.
 * Returns the new refcount (>= 0) or EINVAL: not an allocated frame, or the last reference of a
 * frame that is still pinned.
 */
export function putFrame(pa: u64): i32 {
  const rec = allocatedFrame(pa);
  if (rec == 0) return EINVAL;
  const rc = load<u32>(rec + FRAME_REFCOUNT) - 1;
  if (rc == 0 && load<u32>(rec + FRAME_PINCOUNT) != 0) return EINVAL;
  if (rc == 0) releaseFrame(lookupRegion, pa, rec);
  else store<u32>(rec + FRAME_REFCOUNT, rc);
  return <i32>rc;
}

/** Frees `n` frames from `pa` that each hold exactly one reference. OK or EINVAL (nothing freed). */
export function freeFrames(pa: u64, n: u64): i32 {
  if (n == 0) return EINVAL;
  for (let i: u64 = 0; i < n; i++) {
    const rec = allocatedFrame(pa + (i << PAGE_SHIFT));
    if (rec == 0 || load<u32>(rec + FRAME_REFCOUNT) != 1 || load<u32>(rec + FRAME_PINCOUNT) != 0) return EINVAL;
  }
  for (let i: u64 = 0; i < n; i++) {
    const p = pa + (i << PAGE_SHIFT);
    const rec = allocatedFrame(p);
    releaseFrame(lookupRegion, p, rec);
  }
  return OK;
}

/** pin_user_pages-style pin count: +1 (pin) or -1 (unpin). New pin count or EINVAL. */
export function pinFrame(pa: u64, pin: bool): i32 {
  const rec = allocatedFrame(pa);
  if (rec == 0) return EINVAL;
  const pc = load<u32>(rec + FRAME_PINCOUNT);
  if (!pin && pc == 0) return EINVAL;
  const v = pin ? pc + 1 : pc - 1;
  store<u32>(rec + FRAME_PINCOUNT, v);
  return <i32>v;
}

/**
 * Copies the frame record of `pa` into the result block (value = refcount | pincount << 32,
 * bytes = flags | aux << 32). Returns OK, or EINVAL when `pa` is not a RAM frame; a free frame
 * reports zeros.
 */
export function frameInfo(pa: u64): i32 {
  if ((pa & (PAGE_SIZE - 1)) != 0) return EINVAL;
  const r = findRegion(pa);
  if (r == 0 || load<u32>(r + REGION_KIND) != REGION_KIND_RAM) return EINVAL;
  const rec = frameRecord(r, (pa - load<u64>(r + REGION_BASE)) >> PAGE_SHIFT);
  if (rec == 0) {
    store<u64>(gResult + RES_VALUE, 0);
    store<u64>(gResult + RES_BYTES, 0);
    return OK;
  }
  store<u64>(gResult + RES_VALUE, <u64>load<u32>(rec + FRAME_REFCOUNT) | (<u64>load<u32>(rec + FRAME_PINCOUNT) << 32));
  store<u64>(gResult + RES_BYTES, <u64>load<u32>(rec + FRAME_FLAGS) | (<u64>load<u32>(rec + FRAME_AUX) << 32));
  return OK;
}

/** Free frames over all RAM regions. */
export function framesFree(): u64 {
  let total: u64 = 0;
  const regions = regionsUsed();
  for (let i: u32 = 0; i < regions; i++) {
    const r = regionAt(i);
    if (load<u32>(r + REGION_KIND) == REGION_KIND_RAM) total += load<u64>(r + REGION_FREE_FRAMES);
  }
  return total;
}
