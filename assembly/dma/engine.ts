// The DMA engine: copy, fill, read and write between (requester, address) pairs and a host
// buffer, translating each side one leaf at a time and moving bytes with memory.copy over the
// sparse backing. A fault stops the transfer; what was done stays done, as on hardware.

import {
  OK, EINVAL, EIO, ENOMEM, PAGE_SIZE, PAGE_SHIFT, REGION_BASE, ACCESS_READ, ACCESS_WRITE, REGION_KIND, REGION_KIND_RAM,
  STAGING_SIZE, RES_STATUS, RES_BYTES, RES_FAULT_SIDE, RES_FAULT_IOVA, RES_FAULT_REASON,
  RES_FAULT_CODE, STAT_BYTES_TO_RAM, STAT_BYTES_TO_DEVICE, STAT_BYTES_FROM_RAM,
  STAT_BYTES_FROM_DEVICE, STAT_DMA_OPS, STAT_DMA_FAULTS, RID_PHYS, RES_VALUE, STAT_DMA_VECTORS,
  STAT_DMA_DESCRIPTORS, COPYDESC_STRIDE, COPYDESC_SRC_RID, COPYDESC_DST_RID, COPYDESC_SRC, COPYDESC_DST,
  COPYDESC_LEN, COPYDESC_MAX,
} from '../abi';
import { gResult, gStats, gStaging, gZeroPage } from '../state';
import { findRegion, leafNode, regionRemaining, writePage, slotPage, NO_PAGE, noteBacking } from '../mem/phys';
import { allocChunk } from '../mem/arena';
import { translate, domainOfRid, tOut, tEnd, tReason, tCode, tStatus } from '../iommu/translate';
import { fastBegin, fastUsable, fastSwitch, fastTranslate, fastEnd, hitPair, hitPairCount, hOutS, hOutD, fastRun, fastCountHits, fastPair, pSrcAhead, fHit, fOut, fShift } from '../iommu/batch';

const OP_READ: u32 = 1;   // device memory -> host buffer
const OP_WRITE: u32 = 2;  // host buffer -> device memory
const OP_FILL: u32 = 3;

@inline function stat(off: u32, n: u64): void {
  store<u64>(gStats + off, load<u64>(gStats + off) + n);
}

function finish(status: i32, done: u64): i32 {
  flushCopy();
  store<i32>(gResult + RES_STATUS, status);
  store<u64>(gResult + RES_BYTES, done);
  return status;
}

/** Records the last translation's fault (side 0 src, 1 dst) in the result block; returns its status. */
function recordFault(side: u32, iova: u64): i32 {
  store<u32>(gResult + RES_FAULT_SIDE, side);
  store<u64>(gResult + RES_FAULT_IOVA, iova);
  store<u32>(gResult + RES_FAULT_REASON, tReason);
  store<u32>(gResult + RES_FAULT_CODE, tCode);
  if (counting) stat(STAT_DMA_FAULTS, 1);
  return tStatus;
}

function faulted(side: u32, iova: u64, done: u64): i32 {
  return finish(recordFault(side, iova), done);
}

/** Bytes from iova to the end of the last translation (tEnd = 0: to the top of the space). */
@inline function avail(iova: u64): u64 {
  const a = tEnd - iova;
  return a == 0 ? 0xffffffffffffffff : a;
}

@inline function min3(a: u64, b: u64, c: u64): u64 {
  return min(a, min(b, c));
}

// Host (backdoor) accesses move bytes too, but they are not DMA and are not counted as such.
let counting = true;

@inline function countBytes(r: usize, n: u64, toOff: u32, devOff: u32): void {
  if (counting) stat(load<u32>(r + REGION_KIND) == REGION_KIND_RAM ? toOff : devOff, n);
}

// Bytes the last phys* helper moved before it stopped.
let moved: u64 = 0;

// Radix leaf nodes of the last pages touched, so bulk loops walk the radix once per 4 MiB.
// Leaf nodes are never freed, so a cached non-zero leaf stays valid; an absent one is not cached
// (a later write may create it).
let srcKey: u64 = 0;
let srcLeaf: usize = 0;
let dstKey: u64 = 0;
let dstLeaf: usize = 0;

@inline function leafKey(r: usize, pa: u64): u64 {
  return (<u64>r << 32) | ((pa - load<u64>(r + REGION_BASE)) >> 22);
}

/** The radix leaf of source page `pa` (0 when nothing there was ever written), cached. */
@inline function srcLeafOf(r: usize, pa: u64): usize {
  const key = leafKey(r, pa);
  if (key != srcKey || srcLeaf == 0) {
    srcLeaf = leafNode(r, <u32>((pa - load<u64>(r + REGION_BASE)) >> PAGE_SHIFT), false);
    srcKey = key;
  }
  return srcLeaf;
}

/** The radix leaf of destination page `pa`, made if needed and cached; 0 on ENOMEM. */
@inline function dstLeafOf(r: usize, pa: u64): usize {
  const key = leafKey(r, pa);
  if (key != dstKey || dstLeaf == 0) {
    dstLeaf = leafNode(r, <u32>((pa - load<u64>(r + REGION_BASE)) >> PAGE_SHIFT), true);
    dstKey = key;
  }
  return dstLeaf;
}

/** readPtr with the source leaf cached. */
@inline function srcPtr(r: usize, pa: u64): usize {
  const leaf = srcLeafOf(r, pa);
  if (leaf == 0) return gZeroPage + <usize>(pa & (PAGE_SIZE - 1));
  const v = load<u32>(leaf + <usize>(((pa - load<u64>(r + REGION_BASE)) >> PAGE_SHIFT) & 1023) * 4);
  return (v == 0 ? gZeroPage : slotPage(v)) + <usize>(pa & (PAGE_SIZE - 1));
}

/** writePage with the destination leaf cached: the page's start, NO_PAGE on ENOMEM. */
@inline function dstPage(r: usize, pa: u64): usize {
  const leaf = dstLeafOf(r, pa);
  return leaf == 0 ? NO_PAGE : writePage(r, pa, leaf);
}

// A copy not yet issued: consecutive pieces whose backing is adjacent on both sides become one
// memory.copy, across translations too, so a transfer over memory written in order runs at
// memcpy speed. Every exit of a transfer flushes it first.
let pendSrc: usize = 0;
let pendDst: usize = 0;
let pendLen: usize = 0;

@inline function queueCopy(dp: usize, sp: usize, n: usize): void {
  if (pendLen != 0 && sp == pendSrc + pendLen && dp == pendDst + pendLen) {
    pendLen += n;
    return;
  }
  flushCopy();
  pendSrc = sp; pendDst = dp; pendLen = n;
}

function flushCopy(): void {
  if (pendLen != 0) memory.copy(pendDst, pendSrc, pendLen);
  pendLen = 0;
}

// Offsets of four consecutive pages, for the 4-page compare in alignedPages.
const STEP4 = i32x4(0, 4096, 8192, 12288);

// Set when alignedPages stopped because a destination page could not be backed.
let alignedNoMem = false;

/**
 * Queues the copy of the whole pages of [s0, s0 + m) to [d0, ...), both page-aligned and inside
 * regions sr and dr, with the radix leaves in hand. Returns the bytes queued (whole pages); on a
 * page that cannot be backed it stops there and sets alignedNoMem.
 */
function alignedPages(sr: usize, s0: u64, dr: usize, d0: u64, m: u64): u64 {
  const pages = <u32>(m >> PAGE_SHIFT);
  const sBase = load<u64>(sr + REGION_BASE);
  const dBase = load<u64>(dr + REGION_BASE);
  let sp = <u32>((s0 - sBase) >> PAGE_SHIFT);
  let dp = <u32>((d0 - dBase) >> PAGE_SHIFT);
  alignedNoMem = false;
  let i: u32 = 0;
  while (i < pages) {
    // As many pages as both radix leaves still cover: slot pointers then just step by 4.
    const run = min(pages - i, min(1024 - (sp & 1023), 1024 - (dp & 1023)));
    const sLeaf = srcLeafOf(sr, sBase + (<u64>sp << PAGE_SHIFT));
    const dLeaf = dstLeafOf(dr, dBase + (<u64>dp << PAGE_SHIFT));
    if (dLeaf == 0) { alignedNoMem = true; return <u64>i << PAGE_SHIFT; }
    let sSlot = sLeaf + (<usize>(sp & 1023) << 2);
    let dSlot = dLeaf + (<usize>(dp & 1023) << 2);
    // The pending copy in locals for the loop (queueCopy's rule, without global traffic).
    let ps = pendSrc, pd = pendDst, pn = pendLen;
    for (let j: u32 = 0; j < run; j++, sSlot += 4, dSlot += 4) {
      // Four pages at once while both sides continue the pending run (memory written in order):
      // one 128-bit compare per side instead of four slot loads and branches.
      while (pn != 0 && sLeaf != 0 && j + 4 <= run) {
        const sNext = i32x4.add(i32x4.splat(<i32>(ps + pn)), STEP4);
        const dNext = i32x4.add(i32x4.splat(<i32>(pd + pn)), STEP4);
        if (!v128.all_true<i32>(i32x4.eq(v128.load(sSlot), sNext))) break;
        if (!v128.all_true<i32>(i32x4.eq(v128.load(dSlot), dNext))) break;
        pn += 4 * PAGE_SIZE;
        j += 4;
        sSlot += 16;
        dSlot += 16;
      }
      if (j >= run) break;
      let dc = <usize>load<u32>(dSlot);
      if (dc == 0) {
        dc = allocChunk();
        if (dc == 0) {
          pendSrc = ps; pendDst = pd; pendLen = pn;
          alignedNoMem = true;
          return <u64>(i + j) << PAGE_SHIFT;
        }
        store<u32>(dSlot, <u32>dc);
        noteBacking();
      }
      dc = slotPage(<u32>dc);
      const sv: u32 = sLeaf == 0 ? 0 : load<u32>(sSlot);
      const sc: usize = sv == 0 ? gZeroPage : slotPage(sv);
      if (pn != 0 && sc == ps + pn && dc == pd + pn) {
        pn += PAGE_SIZE;
      } else {
        if (pn != 0) memory.copy(pd, ps, pn);
        ps = sc; pd = dc; pn = PAGE_SIZE;
      }
    }
    pendSrc = ps; pendDst = pd; pendLen = pn;
    i += run;
    sp += run;
    dp += run;
  }
  return <u64>pages << PAGE_SHIFT;
}

/**
 * Copies n bytes from physical spa to physical dpa (queued: see queueCopy).
 * Returns OK, EIO (an address no region decodes) or ENOMEM (no arena to back a written page).
 */
function physCopy(spa: u64, dpa: u64, n: u64): i32 {
  moved = 0;
  while (moved < n) {
    const s0 = spa + moved;
    const d0 = dpa + moved;
    const sr = findRegion(s0);
    const dr = findRegion(d0);
    if (sr == 0 || dr == 0) return EIO;
    const m = min3(n - moved, regionRemaining(sr, s0), regionRemaining(dr, d0));
    let k: u64 = 0;
    let st = OK;
    // Both sides page-aligned (the usual case): whole pages, one slot load per side.
    if (((s0 | d0) & (PAGE_SIZE - 1)) == 0) {
      k = alignedPages(sr, s0, dr, d0, m);
      if (alignedNoMem) st = ENOMEM;
    }
    while (st == OK && k < m) {
      const s = s0 + k;
      const d = d0 + k;
      const step = min3(m - k, PAGE_SIZE - (s & (PAGE_SIZE - 1)), PAGE_SIZE - (d & (PAGE_SIZE - 1)));
      const dp = dstPage(dr, d);
      if (dp == NO_PAGE) { st = ENOMEM; break; }
      queueCopy(dp + <usize>(d & (PAGE_SIZE - 1)), srcPtr(sr, s), <usize>step);
      k += step;
    }
    countBytes(dr, k, STAT_BYTES_TO_RAM, STAT_BYTES_TO_DEVICE);
    countBytes(sr, k, STAT_BYTES_FROM_RAM, STAT_BYTES_FROM_DEVICE);
    moved += k;
    if (st != OK) return st;
  }
  return OK;
}

/** Read, write or fill n bytes at physical pa against the host buffer (or fill byte `arg`). */
function physHost(op: u32, pa: u64, n: u64, arg: usize): i32 {
  moved = 0;
  while (moved < n) {
    const p0 = pa + moved;
    const r = findRegion(p0);
    if (r == 0) return EIO;
    const m = min(n - moved, regionRemaining(r, p0));
    let k: u64 = 0;
    let st = OK;
    while (k < m) {
      const p = p0 + k;
      const step = min(m - k, PAGE_SIZE - (p & (PAGE_SIZE - 1)));
      const host = arg + <usize>(moved + k);
      if (op == OP_READ) {
        memory.copy(host, srcPtr(r, p), <usize>step);
      } else {
        const pg = dstPage(r, p);
        if (pg == NO_PAGE) { st = ENOMEM; break; }
        const dp = pg + <usize>(p & (PAGE_SIZE - 1));
        if (op == OP_WRITE) memory.copy(dp, host, <usize>step);
        else memory.fill(dp, <u8>arg, <usize>step);
      }
      k += step;
    }
    if (op == OP_READ) countBytes(r, k, STAT_BYTES_FROM_RAM, STAT_BYTES_FROM_DEVICE);
    else countBytes(r, k, STAT_BYTES_TO_RAM, STAT_BYTES_TO_DEVICE);
    moved += k;
    if (st != OK) return st;
  }
  return OK;
}

@inline function wraps(addr: u64, len: u64): bool {
  return addr + len < addr && addr + len != 0;
}

// Bytes the last copyRange moved before it returned.
let copied: u64 = 0;

/**
 * Copies `len` bytes from (srcRid, src) to (dstRid, dst), each side translated by its
 * requester's domain (or routed by a switch), one run of both translations at a time. Returns OK
 * or the status that stopped it (a fault recorded with its side); `copied` holds the bytes done.
 * The copy may still be queued (see queueCopy): callers finish() before returning to the host.
 */
function copyRange(srcRid: u32, src: u64, dstRid: u32, dst: u64, len: u64): i32 {
  const sDom = domainOfRid(srcRid);
  const dDom = domainOfRid(dstRid);
  // memmove: a forward-overlapping copy within one address space goes backward (issue 11).
  if (sDom == dDom && dst > src && dst - src < len) return copyBackward(srcRid, src, dstRid, dst, len, sDom);
  copied = 0;
  return copyForward(srcRid, sDom, src, dstRid, dDom, dst, len);
}

/** Bytes from `iova` to the end of its leaf of page shift `shift`. */
@inline function leafLeft(iova: u64, shift: u32): u64 {
  return (<u64>1 << shift) - (iova & ((<u64>1 << shift) - 1));
}

/**
 * Moves [src, src + len) to [dst, dst + len) front to back, one physical run of both sides at a
 * time, adding the bytes moved to `copied`. The one copy loop of copyRange and copyBackward.
 * Each side keeps the translation it holds (address, output, bytes it covers) until the copy
 * leaves it; a run grows leaf by leaf through the batch fast path (iommu/batch.ts: an IOTLB probe,
 * or a page-walk-cached walk that fills the IOTLB) while both outputs continue physically. Every
 * leaf is translated once and counted as translating page by page counts it; a fault, a denied
 * access or a peer route ends the run, and the next round's translate() reports it.
 */
function copyForward(srcRid: u32, sDom: i32, src: u64, dstRid: u32, dDom: i32, dst: u64, len: u64): i32 {
  // The fast path serves one domain at a time: a copy between two domains switches it. Each
  // side asks for itself (one requester may be an ATS device or carry a PASID, the other not).
  const sFast = fastBegin(srcRid, sDom);
  const dFast = sFast ? fastUsable(dstRid, dDom) : fastBegin(dstRid, dDom);
  const switching = sFast && dFast && sDom != dDom;
  let sAt: u64 = 0, sOut: u64 = 0, sCov: u64 = 0;
  let dAt: u64 = 0, dOut: u64 = 0, dCov: u64 = 0;
  let done: u64 = 0;
  let st = OK;
  while (done < len) {
    const si = src + done;
    const di = dst + done;
    // A run's first leaf on each side: the fast path when it serves (counted as translate()
    // counts it), else translate(), which also reports what stops the copy.
    if (si - sAt >= sCov) {
      if (sFast && (!switching || fastSwitch(sDom)) && fastTranslate(si, ACCESS_READ)) {
        sAt = si; sOut = fOut; sCov = leafLeft(si, fShift);
      } else {
        if (!translate(srcRid, sDom, si, ACCESS_READ)) { st = recordFault(0, si); break; }
        sAt = si; sOut = tOut; sCov = avail(si);
      }
    }
    if (di - dAt >= dCov) {
      if (dFast && (!switching || fastSwitch(dDom)) && fastTranslate(di, ACCESS_WRITE)) {
        dAt = di; dOut = fOut; dCov = leafLeft(di, fShift);
      } else {
        if (!translate(dstRid, dDom, di, ACCESS_WRITE)) { st = recordFault(1, di); break; }
        dAt = di; dOut = tOut; dCov = avail(di);
      }
    }
    const left = len - done;
    const sp = sOut + (si - sAt);
    const dp = dOut + (di - dAt);
    let sc = sCov - (si - sAt);
    let dc = dCov - (di - dAt);
    let n = min3(left, sc, dc);
    // Runs of IOTLB hits: while both sides' last leaves were 4K hits that end together, each
    // side's next hits are found in one probing loop (fastRun) and the run takes the pages both
    // continue. Probing src ahead of dst changes nothing: a hit leaves the IOTLB as it was, and
    // only the pages used are counted.
    while (n < left && sc == n && dc == n && sFast && dFast && !switching && fHit && sCov == PAGE_SIZE && dCov == PAGE_SIZE) {
      const k = fastRun(si + n, sp + n, left - n, ACCESS_READ);
      const m = k == 0 ? 0 : fastRun(di + n, dp + n, k, ACCESS_WRITE);
      if (m == 0) break;
      fastCountHits(m >> (PAGE_SHIFT - 1)); // m / 4096 pages on each side
      sAt = si + n + m - PAGE_SIZE; sOut = sp + n + m - PAGE_SIZE;
      dAt = di + n + m - PAGE_SIZE; dOut = dp + n + m - PAGE_SIZE;
      n += m;
      sc = n; dc = n;
      n = min(n, left);
    }
    while (n < left) {
      // Both sides' last leaves 4K and ending here: their next pages in one loop (fastPair,
      // which translates them in this loop's order), up to the page it leaves to the code below.
      if (sc == n && dc == n && sFast && dFast && !switching && sCov == PAGE_SIZE && dCov == PAGE_SIZE) {
        const k = fastPair(si + n, sp + n, di + n, dp + n, (left - n + PAGE_SIZE - 1) >> PAGE_SHIFT);
        if (k != 0) {
          const last = n + ((k - 1) << PAGE_SHIFT);
          sAt = si + last; sOut = sp + last;
          dAt = di + last; dOut = dp + last;
          n += k << PAGE_SHIFT;
          sc = n; dc = n;
        }
        if (pSrcAhead) {
          sAt = si + n; sOut = sp + n;
          sc = n + PAGE_SIZE;
        }
        n = min3(left, sc, dc);
        if (n >= left) break;
      }
      // The side whose leaf ends here takes its next leaf; the window moves on to it even when
      // it does not continue the run, so that the next round starts from it.
      if (sc == n) {
        if (!sFast || (switching && !fastSwitch(sDom)) || !fastTranslate(si + n, ACCESS_READ)) break;
        sAt = si + n; sOut = fOut; sCov = leafLeft(sAt, fShift);
        if (fOut != sp + n) break;
        sc = n + sCov;
      }
      if (dc == n) {
        if (!dFast || (switching && !fastSwitch(dDom)) || !fastTranslate(di + n, ACCESS_WRITE)) break;
        dAt = di + n; dOut = fOut; dCov = leafLeft(dAt, fShift);
        if (fOut != dp + n) break;
        dc = n + dCov;
      }
      n = min3(left, sc, dc);
    }
    st = physCopy(sp, dp, n);
    done += moved;
    copied += moved;
    if (st != OK) break;
  }
  fastEnd();
  return st;
}

/**
 * dmaCopy of 1..4096 bytes when it is a single memory.copy: both requesters in one domain that
 * the translation fast path serves, both sides IOTLB hits, each side inside one backing page, no
 * forward overlap (copyBackward). Copies and counts exactly as copyForward would (two hits, the
 * bytes by memory kind, a destination page backed on first write) and returns true; otherwise
 * returns false with nothing changed, and the general path does the copy.
 */
function copyInPage(srcRid: u32, src: u64, dstRid: u32, dst: u64, len: u64): bool {
  if ((dst > src && dst - src < len) || !hitPair(srcRid, src, dstRid, dst)) return false;
  const sp = hOutS;
  const dp = hOutD;
  const n = <usize>len;
  const sOff = <usize>(sp & (PAGE_SIZE - 1));
  const dOff = <usize>(dp & (PAGE_SIZE - 1));
  // Regions are whole pages, so a region holding the page's first byte holds all of it.
  const sr = sOff + n <= PAGE_SIZE && dOff + n <= PAGE_SIZE ? findRegion(sp) : 0;
  const dr = sr != 0 ? findRegion(dp) : 0;
  const page = dr != 0 ? dstPage(dr, dp) : NO_PAGE;
  if (page == NO_PAGE) return false;
  memory.copy(page + dOff, srcPtr(sr, sp), n);
  countBytes(dr, len, STAT_BYTES_TO_RAM, STAT_BYTES_TO_DEVICE);
  countBytes(sr, len, STAT_BYTES_FROM_RAM, STAT_BYTES_FROM_DEVICE);
  hitPairCount();
  return true;
}

/**
 * DMA copy of `len` bytes from (srcRid, src) to (dstRid, dst), both translated by their
 * requester's domain. Returns OK or the status of the fault or error that stopped it; the result
 * block holds bytes done and, on a fault, the side (0 src, 1 dst), iova, reason and family code.
 */
export function dmaCopy(srcRid: u32, src: u64, dstRid: u32, dst: u64, len: u64): i32 {
  stat(STAT_DMA_OPS, 1);
  if (wraps(src, len) || wraps(dst, len)) return finish(EINVAL, 0);
  if (len - 1 < PAGE_SIZE && copyInPage(srcRid, src, dstRid, dst, len)) return finish(OK, len);
  const st = copyRange(srcRid, src, dstRid, dst, len);
  return finish(st, copied);
}

/**
 * Vectored DMA copy: the `n` descriptors at the start of staging (COPYDESC_* layout), in order,
 * as one transfer. Every descriptor is checked before a byte moves (EINVAL with its index in
 * RES_VALUE for a range that wraps past 2^64, or n over COPYDESC_MAX); then each is copied as
 * dmaCopy does, and adjacent physical runs coalesce across descriptors. Returns OK or the status
 * that stopped it; the result block holds the total bytes done, in RES_VALUE the index of the
 * descriptor that stopped it (n when all completed) and, on a fault, its side, iova and codes.
 * Descriptors are not fenced against each other: as across the pages of one copy, a run that
 * continues in the backing on both sides is moved as one memory.copy (memmove), so a descriptor
 * reading what an adjacent earlier one wrote sees the bytes from before that write.
 */
export function dmaCopyV(n: u32): i32 {
  stat(STAT_DMA_OPS, 1);
  stat(STAT_DMA_VECTORS, 1);
  store<u64>(gResult + RES_VALUE, 0);
  if (n > COPYDESC_MAX) return finish(EINVAL, 0);
  const base = gStaging;
  for (let i: u32 = 0; i < n; i++) {
    const d = base + <usize>(i * COPYDESC_STRIDE);
    const len = load<u64>(d + COPYDESC_LEN);
    if (wraps(load<u64>(d + COPYDESC_SRC), len) || wraps(load<u64>(d + COPYDESC_DST), len)) {
      store<u64>(gResult + RES_VALUE, i);
      return finish(EINVAL, 0);
    }
  }
  stat(STAT_DMA_DESCRIPTORS, n);
  let done: u64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = base + <usize>(i * COPYDESC_STRIDE);
    const st = copyRange(load<u32>(d + COPYDESC_SRC_RID), load<u64>(d + COPYDESC_SRC),
      load<u32>(d + COPYDESC_DST_RID), load<u64>(d + COPYDESC_DST), load<u64>(d + COPYDESC_LEN));
    done += copied;
    if (st != OK) {
      store<u64>(gResult + RES_VALUE, i);
      return finish(st, done);
    }
  }
  store<u64>(gResult + RES_VALUE, n);
  return finish(OK, done);
}

/**
 * The copy of dmaCopy for a destination that starts inside the source, in one address space:
 * chunks of at most dst - src bytes from the end down, so no byte is written before it is read,
 * whatever order the backing pages were made in. Bytes done count from the end.
 */
function copyBackward(srcRid: u32, src: u64, dstRid: u32, dst: u64, len: u64, dom: i32): i32 {
  const dist = dst - src;
  let left = len;
  copied = 0;
  while (left > 0) {
    const c = min(left, dist);
    const off = left - c;
    const st = copyForward(srcRid, dom, src + off, dstRid, dom, dst + off, c);
    if (st != OK) return st;
    flushCopy();
    left = off;
  }
  return OK;
}

/** Host-buffer transfers: read (device -> staging), write (staging -> device) or fill. */
function dmaHost(op: u32, rid: u32, addr: u64, len: u64, arg: usize): i32 {
  if (counting) stat(STAT_DMA_OPS, 1);
  if (wraps(addr, len)) return finish(EINVAL, 0);
  if (op != OP_FILL && (arg < gStaging || <u64>(arg - gStaging) + len > <u64>STAGING_SIZE)) return finish(EINVAL, 0);
  const dom = domainOfRid(rid);
  const access = op == OP_READ ? ACCESS_READ : ACCESS_WRITE;
  let done: u64 = 0;
  while (done < len) {
    const a = addr + done;
    // The device is the destination of a write or fill, the source of a read.
    if (!translate(rid, dom, a, access)) return faulted(op == OP_READ ? 0 : 1, a, done);
    const n = min(len - done, avail(a));
    const st = physHost(op, tOut, n, op == OP_FILL ? arg : arg + <usize>done);
    done += moved;
    if (st != OK) return finish(st, done);
  }
  return finish(OK, done);
}

/** Reads `len` bytes at (rid, addr) into the staging buffer at `host`. */
export function dmaRead(rid: u32, addr: u64, len: u64, host: usize): i32 {
  return dmaHost(OP_READ, rid, addr, len, host);
}
/** Writes `len` bytes from the staging buffer at `host` to (rid, addr). */
export function dmaWrite(rid: u32, addr: u64, len: u64, host: usize): i32 {
  return dmaHost(OP_WRITE, rid, addr, len, host);
}
/** Fills `len` bytes at (rid, addr) with `value`. */
export function dmaFill(rid: u32, addr: u64, len: u64, value: u32): i32 {
  return dmaHost(OP_FILL, rid, addr, len, <usize>(value & 0xff));
}

/** The host's own read (write = false) or write of physical memory through the staging buffer. */
export function hostAccess(write: bool, pa: u64, len: u64, host: usize): i32 {
  counting = false;
  const st = dmaHost(write ? OP_WRITE : OP_READ, RID_PHYS, pa, len, host);
  counting = true;
  return st;
}
