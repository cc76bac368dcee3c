// Simulated physical address space: regions of RAM and device memory with sparse backing.
//
// Each region has a 3-level radix over its pages; a leaf slot holds the arena chunk that backs
// one 4 KiB page. Reads of a page never written come from the shared zero page, so a 96 GiB
// HBM region costs one root node until something is written.
//
//   region-relative page index (30 bits)
//   +------------+------------+------------+
//   | 29      20 | 19      10 | 9        0 |
//   |  root idx  |  mid idx   |  leaf idx  |
//   +------------+------------+------------+

import {
  OK, EINVAL, EIO, ENOMEM, ENOSPC, EEXIST, MAX_REGIONS, REGION_STRIDE, REGION_BASE, REGION_SIZE,
  REGION_KIND, REGION_FLAGS, REGION_DIRECT, REGION_OWNER, REGION_RADIX, REGION_MAX_SHIFT, REGION_KIND_RAM,
  REGION_KIND_DEVICE, PAGE_SHIFT, PAGE_SIZE,
} from '../abi';
import { gRegions, gZeroPage, gRadixLog, RADIX_LOG_MAX } from '../state';
import { allocChunk, freeChunk } from './arena';
import { initFrames } from './frames';

let regionCount: u32 = 0;
/**
 * Bumped whenever a page's backing changes (backed on first write, discarded): a cache of the
 * linear address of a page (pgtable/engine's table cache) is valid while it has not moved.
 */
export let physGen: u32 = 0;
/** For code that backs a page itself (the DMA engine's bulk copy). */
export function noteBacking(): void { physGen++; }
let lastRegion: usize = 0; // the region the previous lookup found: DMA walks stay in one region

@inline export function regionAt(id: u32): usize {
  return gRegions + <usize>(id * REGION_STRIDE);
}

export function regionsUsed(): u32 {
  return regionCount;
}

/**
 * Adds a region [base, base + size). Returns its id (>= 0), or EINVAL (size 0, not page-aligned,
 * larger than 2^42, wrapping past 2^64, unknown kind), EEXIST (overlaps a region), ENOSPC (table
 * full), ENOMEM (no arena for the radix root or frame directory).
 */
export function addRegion(base: u64, size: u64, kind: u32, flags: u32, owner: u32): i32 {
  if (size == 0 || ((base | size) & (PAGE_SIZE - 1)) != 0) return EINVAL;
  if (size > (<u64>1 << REGION_MAX_SHIFT)) return EINVAL;
  if (base + size < base && base + size != 0) return EINVAL;
  if (kind != REGION_KIND_RAM && kind != REGION_KIND_DEVICE) return EINVAL;
  const last = base + size - 1;
  for (let i: u32 = 0; i < regionCount; i++) {
    const r = regionAt(i);
    const b = load<u64>(r + REGION_BASE);
    const l = b + load<u64>(r + REGION_SIZE) - 1;
    if (base <= l && b <= last) return EEXIST;
  }
  if (regionCount >= MAX_REGIONS) return ENOSPC;
  const root = allocChunk();
  if (root == 0) return ENOMEM;
  const r = regionAt(regionCount);
  store<u64>(r + REGION_BASE, base);
  store<u64>(r + REGION_SIZE, size);
  store<u32>(r + REGION_KIND, kind);
  store<u32>(r + REGION_FLAGS, flags);
  store<u32>(r + REGION_OWNER, owner);
  store<u32>(r + REGION_RADIX, <u32>root);
  if (kind == REGION_KIND_RAM) {
    const st = initFrames(r, size >> PAGE_SHIFT);
    if (st != OK) {
      freeChunk(root);
      memory.fill(r, 0, REGION_STRIDE);
      return st;
    }
  }
  const id = regionCount++;
  return <i32>id;
}

/** The region holding `pa`, or 0. */
export function findRegion(pa: u64): usize {
  let r = lastRegion;
  if (r != 0 && pa - load<u64>(r + REGION_BASE) < load<u64>(r + REGION_SIZE)) return r;
  for (let i: u32 = 0; i < regionCount; i++) {
    r = regionAt(i);
    if (pa - load<u64>(r + REGION_BASE) < load<u64>(r + REGION_SIZE)) {
      lastRegion = r;
      return r;
    }
  }
  return 0;
}

/** Bytes from `pa` to the end of region `r`. */
@inline export function regionRemaining(r: usize, pa: u64): u64 {
  return load<u64>(r + REGION_BASE) + load<u64>(r + REGION_SIZE) - pa;
}

/**
 * The radix leaf node (1024 chunk slots) covering region page `page`, made on demand when
 * `create`; 0 when absent (or the arena is exhausted). Bulk copies look it up once per 4 MiB.
 */
export function leafNode(r: usize, page: u32, create: bool): usize {
  const root = <usize>load<u32>(r + REGION_RADIX);
  const midSlot = root + (<usize>(page >> 20) << 2);
  let mid = <usize>load<u32>(midSlot);
  if (mid == 0) {
    if (!create) return 0;
    mid = allocChunk();
    if (mid == 0) return 0;
    store<u32>(midSlot, <u32>mid);
    logNode(midSlot, mid);
  }
  const leafSlot = mid + (<usize>((page >> 10) & 1023) << 2);
  let leaf = <usize>load<u32>(leafSlot);
  if (leaf == 0 && create) {
    leaf = allocChunk();
    if (leaf == 0) return 0;
    store<u32>(leafSlot, <u32>leaf);
    logNode(leafSlot, leaf);
  }
  return leaf;
}

// Radix nodes are kept once made, except by an operation that fails: between radixLogBegin and
// radixLogEnd the nodes made are noted (parent slot, node; RADIX_LOG_MAX of them, in gRadixLog),
// and radixLogEnd(true) gives back those left empty, so that a failed iommu_map leaves the arena
// as it found it. Nothing caches a node pointer across such an operation: the DMA engine's
// leaf cache holds only nodes that existed before (it never caches an absent one).
let logOn = false;
let logCount: u32 = 0;

@inline function logNode(slot: usize, node: usize): void {
  if (!logOn || logCount >= RADIX_LOG_MAX) return;
  const e = gRadixLog + (<usize>logCount << 3);
  store<u32>(e, <u32>slot);
  store<u32>(e + 4, <u32>node);
  logCount++;
}

/** Starts noting the radix nodes made (see above). */
export function radixLogBegin(): void {
  logOn = true;
  logCount = 0;
}

/** Stops noting; with `undo`, frees the noted nodes that hold nothing, deepest first. */
export function radixLogEnd(undo: bool): void {
  logOn = false;
  if (!undo) return;
  for (let i = <i32>logCount - 1; i >= 0; i--) {
    const e = gRadixLog + (<usize>i << 3);
    const slot = <usize>load<u32>(e);
    const node = <usize>load<u32>(e + 4);
    if (load<u32>(slot) != <u32>node || !nodeEmpty(node)) continue;
    store<u32>(slot, 0);
    freeChunk(node);
  }
  logCount = 0;
}

function nodeEmpty(node: usize): bool {
  for (let p = node; p < node + PAGE_SIZE; p += 16) {
    if (v128.any_true(v128.load(p))) return false;
  }
  return true;
}

// A radix leaf slot holds the linear address of the page that backs it, 0 when nothing does.
// A direct region (mem/direct.ts) may be backed from linear address 0, the host's page 0: its
// slot holds PAGE0_SLOT instead, which no real page address can be (pages are 4 KiB aligned).
// Readers take slotPage(v) of a non-zero slot. Functions that return a page address use
// NO_PAGE (odd, so never an address) for "none".
export const PAGE0_SLOT: u32 = 1;
export const NO_PAGE: usize = 1;

/** The page address a non-zero slot value stands for. */
@inline export function slotPage(v: u32): usize {
  return <usize>(v & ~(<u32>PAGE_SIZE - 1));
}

/** The slot value for the page at linear address `page` (4 KiB aligned). */
@inline export function pageSlot(page: usize): u32 {
  return page == 0 ? PAGE0_SLOT : <u32>page;
}

@inline function pageOf(r: usize, pa: u64): u32 {
  return <u32>((pa - load<u64>(r + REGION_BASE)) >> PAGE_SHIFT);
}

/**
 * The linear-memory address of the byte at `pa` inside region `r`, for reading: the zero page
 * when the page was never written.
 */
export function readPtr(r: usize, pa: u64): usize {
  const page = pageOf(r, pa);
  const leaf = leafNode(r, page, false);
  const v: u32 = leaf == 0 ? 0 : load<u32>(leaf + (<usize>(page & 1023) << 2));
  return (v == 0 ? gZeroPage : slotPage(v)) + <usize>(pa & (PAGE_SIZE - 1));
}

/**
 * The linear-memory address of the page holding `pa` for writing (its start: add the offset),
 * backing the page on first write (`leaf` may be given when the caller already has the page's
 * radix leaf). NO_PAGE on ENOMEM.
 */
export function writePage(r: usize, pa: u64, leaf: usize = 0): usize {
  const page = pageOf(r, pa);
  if (leaf == 0) leaf = leafNode(r, page, true);
  if (leaf == 0) return NO_PAGE;
  const slot = leaf + (<usize>(page & 1023) << 2);
  const v = load<u32>(slot);
  if (v != 0) return slotPage(v);
  const chunk = allocChunk();
  if (chunk == 0) return NO_PAGE;
  store<u32>(slot, <u32>chunk);
  physGen++;
  return chunk;
}

/**
 * Arena chunks that writing [pa, pa + len) would take: the pages not yet backed and the radix
 * nodes they need. EIO when part of the range is in no region. The host write (memory.write)
 * asks first, so that a write the arena cannot hold writes nothing.
 */
export function backingNeeded(pa: u64, len: u64): i64 {
  let need: i64 = 0;
  let at = pa;
  let left = len;
  while (left > 0) {
    const r = findRegion(at);
    if (r == 0) return EIO;
    const m = min(left, regionRemaining(r, at));
    if ((load<u32>(r + REGION_FLAGS) & REGION_DIRECT) == 0) {
      const root = <usize>load<u32>(r + REGION_RADIX);
      let page = pageOf(r, at);
      const last = pageOf(r, at + m - 1);
      let midCounted: u32 = 0xffffffff;
      while (page <= last) {
        const groupEnd = min(last, page | 1023);
        const mid = <usize>load<u32>(root + (<usize>(page >> 20) << 2));
        if (mid == 0 && midCounted != page >> 20) { need++; midCounted = page >> 20; }
        const leaf: usize = mid == 0 ? 0 : <usize>load<u32>(mid + (<usize>((page >> 10) & 1023) << 2));
        if (leaf == 0) {
          need += 1 + <i64>(groupEnd - page + 1);
        } else {
          for (let p = page; p <= groupEnd; p++) {
            if (load<u32>(leaf + (<usize>(p & 1023) << 2)) == 0) need++;
          }
        }
        if (groupEnd == 0xffffffff) break;
        page = groupEnd + 1;
      }
    }
    at += m;
    left -= m;
  }
  return need;
}

/** Drops the backing of the page at `pa` (a freed frame reads as zeros again). */
export function discardPage(r: usize, pa: u64): void {
  if ((load<u32>(r + REGION_FLAGS) & REGION_DIRECT) != 0) {
    // Direct region (mem/direct.ts): the page is the host's memory; zero it in place.
    memory.fill(readPtr(r, pa & ~(<u64>PAGE_SIZE - 1)), 0, PAGE_SIZE);
    return;
  }
  const page = pageOf(r, pa);
  const leaf = leafNode(r, page, false);
  if (leaf == 0) return;
  const slot = leaf + (<usize>(page & 1023) << 2);
  const chunk = <usize>load<u32>(slot);
  if (chunk != 0) {
    store<u32>(slot, 0);
    freeChunk(chunk);
    physGen++;
  }
}

// ---- 64-bit accessors used by page-table code (tables live in simulated RAM) ----

/** Reads the u64 at `pa`; 0 when nothing backs it or no region holds it. */
export function physRead64(pa: u64): u64 {
  const r = findRegion(pa);
  if (r == 0) return 0;
  return load<u64>(readPtr(r, pa));
}

/** Writes the u64 at `pa`. Returns OK, EINVAL (no region) or ENOMEM. */
export function physWrite64(pa: u64, v: u64): i32 {
  const r = findRegion(pa);
  if (r == 0) return EINVAL;
  const p = writePage(r, pa);
  if (p == NO_PAGE) return ENOMEM;
  store<u64>(p + <usize>(pa & (PAGE_SIZE - 1)), v);
  return OK;
}
