// The fast paths of translation for loops that translate many addresses of one requester (the
// batch export, the DMA engine's runs): unit and IOTLB geometry read once, counters kept in
// locals, an IOTLB hit in a few instructions, a miss walked with the page-walk cache
// (pgtable/engine walk) and cached as translate() would. Anything unusual (a fault, a
// denied access, a peer route, a non-paging domain, the VT-d interrupt range) goes through
// translate() itself, which counts and records it; the fast paths count only what they finish,
// so the counters and the IOTLB end as translating one address at a time leaves them.
//
// What translate() treats specially is never served here (fastUsable): a request with a PASID
// (its handle; entries tagged above TAG_DOMAIN_BITS, never matched by the plain tag probed
// here), an ATS device (its ATC answers, or a translation request fills it), a nested domain,
// identity and blocked domains, peer routes. A dirty-tracking domain keeps its hits here (a
// clean leaf is cached without write, so a write to it misses the rights and goes to
// translate()), and its misses go to translate(), where the walk marks the leaf.

import {
  OK, DOMAIN_TYPE, DOMAIN_UNIT, DOMAIN_PAGING, UNIT_STAT_HITS, UNIT_STAT_MISSES, UNIT_STAT_WALKS,
  UNIT_STAT_TRANSLATIONS, UNIT_SIZES_CACHED, UNIT_TLB_SETS, UNIT_TLB_WAYS, UNIT_TLB_PTR, TLB_OUT,
  TLB_PERM, TLB_STRIDE, UNIT_FAMILY, FAMILY_VTD, VTD_INTR_FIRST, VTD_INTR_LAST, UNIT_ATS_DEVICES,
  DEV_FLAGS, DEV_F_ATS, UNIT_TLB_RR, DOMAIN_FORMAT, FMT_VTD_SS, FMT_ARM_LPAE_S1, FMT_ARM_LPAE_S2,
  FMT_AMD_V1, FMT_RISCV, FMT_X86_64, DOMAIN_GRANULE, ACCESS_READ, ACCESS_WRITE,
} from '../abi';
import { domainAt, unitAt, deviceOf } from './unit';
import { translateManyIn, translateStore, domainOfRid } from './translate';
import { tracksDirty } from '../pgtable/dirty';
import { probeSet, probeAt, setOf, fillSet4k, domMix, tlbTag, sizeBit, tlbLookup, tlbFill, tlbFillAt, hitOut, hitPerm, hitShift } from './iotlb';
import { walk, walkFast, walkTrust, walkTrusted, walkTrustEnd, walk4k, walkPathBase, walkLevels, leafAt, lastLeafPage, lastLeafAbove, wLeaf4k, wOut, wShift, wPerm, WALK4K_OK } from '../pgtable/engine';
import { routesActive } from './p2p';

// The requester loops translate for (set by fastBegin; bD = 0 when the fast path is off).
let bD: usize = 0;
let bU: usize = 0;
let bDom: u32 = 0;
let bTlb: usize = 0;
let bMask: u32 = 0;
let bSetBytes: u32 = 0;
let bMix: u32 = 0;
let bTag4k: u32 = 0;
let bVtd: bool = false;
let bDirty: bool = false; // the domain tracks dirtiness: misses go to translate()
let bFmt: u32 = 0;
// Counts of what the fast path finished, added to the unit by fastEnd.
let bHits: u64 = 0;
let bMisses: u64 = 0;
// Result of fastTranslate: output address and page shift of the leaf.
export let fOut: u64 = 0;
export let fShift: u32 = 0;

/**
 * Whether translate() would treat a request of `rid` in `dom` (from domainOfRid) as a plain
 * paging-domain translation: no PASID handle, no peer route, a paging domain, not an ATS device.
 */
export function fastUsable(rid: u32, dom: i32): bool {
  return plainUnit(dom, rid, rid) != 0;
}

/**
 * The unit of `dom` when translate() would treat requests without PASID of requesters `a` and
 * `b` in it as plain paging-domain translations (no peer route, a paging domain, neither an ATS
 * device); 0 otherwise. `dom` negative: no domain, DOMAIN_DIRECT, or a PASID handle.
 */
@inline function plainUnit(dom: i32, a: u32, b: u32): usize {
  if (dom < 0 || routesActive()) return 0;
  const d = domainAt(<u32>dom);
  if (load<u32>(d + DOMAIN_TYPE) != DOMAIN_PAGING) return 0;
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  if (load<u32>(u + UNIT_ATS_DEVICES) != 0 && (usesAts(a) || (b != a && usesAts(b)))) return 0;
  return u;
}

function usesAts(rid: u32): bool {
  const p = deviceOf(rid);
  return p != 0 && (<u32>load<u8>(p + DEV_FLAGS) & DEV_F_ATS) != 0;
}

/** Prepares the fast path for `rid` in domain `dom` (from domainOfRid). False when it does not apply. */
export function fastBegin(rid: u32, dom: i32): bool {
  bD = 0;
  if (!fastUsable(rid, dom)) return false;
  prepare(<u32>dom);
  return true;
}

/** Makes domain `dom` the prepared one (fastUsable said yes). */
function prepare(dom: u32): void {
  const d = domainAt(dom);
  const u = unitAt(load<u32>(d + DOMAIN_UNIT));
  bU = u;
  bDom = dom;
  bTlb = <usize>load<u32>(u + UNIT_TLB_PTR);
  bMask = load<u32>(u + UNIT_TLB_SETS) - 1;
  bSetBytes = load<u32>(u + UNIT_TLB_WAYS) * TLB_STRIDE;
  bMix = domMix(dom);
  bTag4k = tlbTag(dom, 12);
  bVtd = load<u32>(u + UNIT_FAMILY) == FAMILY_VTD;
  bDirty = tracksDirty(d);
  bFmt = load<u32>(d + DOMAIN_FORMAT);
  bHits = 0;
  bMisses = 0;
  bD = d;
}

/**
 * Makes `dom` (which fastUsable accepted, for a copy between two domains) the prepared domain,
 * counting what the last one did.
 */
export function fastSwitch(dom: i32): bool {
  if (bD != 0 && <i32>bDom == dom) return true;
  fastEnd();
  prepare(<u32>dom);
  return true;
}

/** Adds what the fast path counted to the unit's counters. */
export function fastEnd(): void {
  if (bD == 0) return;
  flushCounts(bU, bHits, bMisses);
  bHits = 0;
  bMisses = 0;
}

/**
 * Translates `iova` for `access` in the domain of fastBegin when nothing unusual happens: true
 * with fOut/fShift set and the translation counted (a hit, or a miss walked and cached); false
 * with nothing counted or changed, for the caller to use translate().
 */
export function fastTranslate(iova: u64, access: u32): bool {
  const u = bU;
  const sizes = load<u32>(u + UNIT_SIZES_CACHED);
  if (sizes == sizeBit(12)) {
    // Only 4K leaves cached (the common case): one set probe.
    const e = probeSet(bTlb, bMask, bSetBytes, bMix, bTag4k, iova >> 12);
    if (e != 0) {
      if ((load<u32>(e + TLB_PERM) & access) != access) return false;
      fOut = load<u64>(e + TLB_OUT) | (iova & 0xfff);
      fShift = 12;
      fHit = true;
      bHits++;
      return true;
    }
  } else if (sizes != 0 && tlbLookup(u, bDom, iova)) {
    if ((hitPerm & access) != access) return false;
    fOut = hitOut;
    fShift = hitShift;
    fHit = true;
    bHits++;
    return true;
  }
  fHit = false;
  return fastMiss(iova, access);
}

/** The miss of fastTranslate: walk (page-walk cache), then cache the leaf, as translate() does. */
function fastMiss(iova: u64, access: u32): bool {
  if (bDirty) return false;
  if (!walkFast(bFmt, bD, iova) && walk(bD, iova, false, access) != 0) return false;
  if ((wPerm & access) != access) return false;
  if (bVtd) {
    // The interrupt range is never an output (translate() faults it).
    const mask = (<u64>1 << wShift) - 1;
    const base = wOut & ~mask;
    if (base <= VTD_INTR_LAST && base + mask >= VTD_INTR_FIRST) return false;
  }
  tlbFill(bU, bMask, bSetBytes / TLB_STRIDE, bMix, bDom, iova, wOut, wShift, wPerm);
  fOut = wOut;
  fShift = wShift;
  bMisses++;
  return true;
}

/**
 * Translates n addresses from `inp` for requester `rid` in `dom` (a domain from domainOfRid, or
 * a PASID handle), writing outputs to `out` and status to `sts`, as translateManyIn does (the
 * same outputs, faults and counters). Returns the faults.
 */
export function translateBatchFast(rid: u32, dom: i32, access: u32, inp: usize, out: usize, sts: usize, n: u32): u32 {
  if (!fastBegin(rid, dom)) return translateManyIn(rid, dom, access, inp, out, sts, n);
  return batchLoop(load<u32>(bD + DOMAIN_FORMAT), rid, dom, access, inp, out, sts, n);
}

/**
 * The batch loop for format `fmt`: the common case in run4k (one loop per format, the walk's
 * PTE decode inlined), the rest here in one copy for every format: the prepared domain's
 * geometry, tag and counters in locals, the 4K-only IOTLB probe inlined, a miss walked by
 * walkOther (or walk()) and cached as fastMiss does; anything else one translate().
 */
@inline function batchLoop(fmt: u32, rid: u32, dom: i32, access: u32, inp: usize, out: usize, sts: usize, n: u32): u32 {
  const u = bU;
  const d = bD;
  const tdom = bDom;
  const tlb = bTlb;
  const rrs = <usize>load<u32>(u + UNIT_TLB_RR);
  const mask = bMask;
  const setBytes = bSetBytes;
  const ways = setBytes / TLB_STRIDE;
  const mix = bMix;
  const tag4k = bTag4k;
  const vtd = bVtd;
  const dirty = bDirty;
  const only4k = sizeBit(12);
  let hits: u64 = 0;
  let misses: u64 = 0;
  let faults: u32 = 0;
  // The page-walk cache checked against memory once: until translate() or walk() runs, only
  // this loop's walks read the tables and nothing writes them.
  if (!dirty && fmt != FMT_X86_64) walkTrust(d);
  for (let i: u32 = 0; i < n; i++) {
    // The common case in a loop of its own (fewer values live): it stops at the first address
    // it does not finish, which the code below serves.
    if (RUN4K(fmt) && !dirty && load<u32>(u + UNIT_SIZES_CACHED) == only4k) {
      i = run4k(fmt, access, inp, out, sts, i, n);
      hits += rHits;
      misses += rMisses;
      if (i == n) break;
    }
    const off = <usize>i << 3;
    const iova = load<u64>(inp + off);
    const sizes = load<u32>(u + UNIT_SIZES_CACHED);
    // A hit: the output and status, nothing else.
    let tried = false; // a cached entry refused the access: translate() decides
    let set: u32 = 0xffffffff; // the 4K set probed (a 4K leaf walked is cached there)
    if (sizes == only4k) {
      set = setOf(iova >> 12, mix, mask);
      const e = probeAt(tlb + <usize>(set * setBytes), setBytes, tag4k, iova >> 12);
      if (e != 0) {
        if ((load<u32>(e + TLB_PERM) & access) == access) {
          store<u64>(out + off, load<u64>(e + TLB_OUT) | (iova & 0xfff));
          store<i32>(sts + (<usize>i << 2), OK);
          hits++;
          continue;
        }
        tried = true;
      }
    } else if (sizes != 0 && tlbLookup(u, tdom, iova)) {
      if ((hitPerm & access) == access) {
        store<u64>(out + off, hitOut);
        store<i32>(sts + (<usize>i << 2), OK);
        hits++;
        continue;
      }
      tried = true;
    }
    // A miss walked and cached as translate() would.
    if (!tried && !dirty && (fmt == FMT_X86_64 ? walk(d, iova, false, access) == 0 : walkOther(fmt, d, iova, access)) && (wPerm & access) == access) {
      const shift = wShift;
      const lmask = (<u64>1 << shift) - 1;
      const base = wOut & ~lmask;
      // The interrupt range is never an output (translate() faults it).
      if (!vtd || base > VTD_INTR_LAST || base + lmask < VTD_INTR_FIRST) {
        if (shift == 12 && set != 0xffffffff) fillSet4k(tlb + <usize>(set * setBytes), setBytes, rrs + <usize>set, iova >> 12, wOut, tag4k, wPerm);
        else tlbFillAt(u, tlb, rrs, mask, ways, mix, tdom, iova, wOut, shift, wPerm);
        store<u64>(out + off, wOut);
        store<i32>(sts + (<usize>i << 2), OK);
        misses++;
        continue;
      }
    }
    // Anything else: translate() counts into the unit directly, so what the loop counted goes first.
    flushCounts(u, hits, misses);
    hits = 0;
    misses = 0;
    if (!translateStore(rid, dom, iova, access, out, sts, i)) faults++;
    if (!dirty && fmt != FMT_X86_64) walkTrust(d); // translate() may have written entries (A/D, dirty bits)
  }
  walkTrustEnd();
  flushCounts(u, hits, misses);
  return faults;
}

/** The formats with a run4k loop of their own: all but x86-64, whose walks set A/D (walk()). */
@inline function RUN4K(fmt: u32): bool {
  return fmt != FMT_X86_64;
}

// What run4k finished: hits, and misses walked and cached.
let rHits: u64 = 0;
let rMisses: u64 = 0;

/**
 * batchLoop's common case for format `fmt` (a page-walk-cache format, a domain not tracking
 * dirtiness, only 4K leaves cached): from address i, hits, and misses walked by walkTrusted to
 * a 4K leaf allowing `access` and cached in the set probed. Returns the first address it leaves
 * (n when none), unchanged but for the caches a walk fills; rHits/rMisses count what it did.
 */
@inline function run4k(fmt: u32, access: u32, inp: usize, out: usize, sts: usize, i: u32, n: u32): u32 {
  switch (fmt) {
    case FMT_VTD_SS: return run4kVtd(access, inp, out, sts, i, n);
    case FMT_ARM_LPAE_S1: return run4kLpaeS1(access, inp, out, sts, i, n);
    case FMT_ARM_LPAE_S2: return run4kLpaeS2(access, inp, out, sts, i, n);
    case FMT_RISCV: return run4kRiscv(access, inp, out, sts, i, n);
    default: return run4kAmd(access, inp, out, sts, i, n);
  }
}

// One function per RUN4K format (io-pgtable's ops chosen once; out of line, the loop's values get the registers).
function run4kVtd(access: u32, inp: usize, out: usize, sts: usize, i: u32, n: u32): u32 { return run4kIn(FMT_VTD_SS, access, inp, out, sts, i, n); }
function run4kLpaeS1(access: u32, inp: usize, out: usize, sts: usize, i: u32, n: u32): u32 { return run4kIn(FMT_ARM_LPAE_S1, access, inp, out, sts, i, n); }
function run4kLpaeS2(access: u32, inp: usize, out: usize, sts: usize, i: u32, n: u32): u32 { return run4kIn(FMT_ARM_LPAE_S2, access, inp, out, sts, i, n); }
function run4kAmd(access: u32, inp: usize, out: usize, sts: usize, i: u32, n: u32): u32 { return run4kIn(FMT_AMD_V1, access, inp, out, sts, i, n); }
function run4kRiscv(access: u32, inp: usize, out: usize, sts: usize, i: u32, n: u32): u32 { return run4kIn(FMT_RISCV, access, inp, out, sts, i, n); }

@inline function run4kIn(fmt: u32, access: u32, inp: usize, out: usize, sts: usize, i: u32, n: u32): u32 {
  const d = bD;
  const tlb = bTlb;
  const rrs = <usize>load<u32>(bU + UNIT_TLB_RR);
  const mask = bMask;
  const setBytes = bSetBytes;
  const mix = bMix;
  const tag4k = bTag4k;
  const vtd = bVtd;
  const gran4k = <u32>load<u8>(d + DOMAIN_GRANULE) == 12;
  const pathBase = walkPathBase();
  const levels = walkLevels();
  let hits: u64 = 0;
  let misses: u64 = 0;
  for (; i < n; i++) {
    const iova = load<u64>(inp + (<usize>i << 3));
    const set = setOf(iova >> 12, mix, mask);
    const e = probeAt(tlb + <usize>(set * setBytes), setBytes, tag4k, iova >> 12);
    if (e != 0) {
      if ((load<u32>(e + TLB_PERM) & access) != access) break;
      store<u64>(out + (<usize>i << 3), load<u64>(e + TLB_OUT) | (iova & 0xfff));
      store<i32>(sts + (<usize>i << 2), OK);
      hits++;
      continue;
    }
    // The common walk (walk4k: the result in a value), else walkTrusted.
    let leaf = gran4k ? walk4k(fmt, d, iova, pathBase, levels) : 0;
    if (leaf == 0) {
      if (!walkTrusted(fmt, d, iova) || wShift != 12) break;
      leaf = wLeaf4k();
    }
    const perm = <u32>leaf & 3;
    if ((perm & access) != access) break;
    // The interrupt range is never an output (translate() faults it).
    const page = leaf & ~(<u64>0xfff);
    if (vtd && inIntr(page)) break;
    fillSet4k(tlb + <usize>(set * setBytes), setBytes, rrs + <usize>set, iova >> 12, page, tag4k, perm);
    store<u64>(out + (<usize>i << 3), page | (iova & 0xfff));
    store<i32>(sts + (<usize>i << 2), OK);
    misses++;
  }
  rHits = hits;
  rMisses = misses;
  return i;
}

/** The general loop's walk: walkTrusted (one copy for every format), else walkSlow. */
function walkOther(fmt: u32, d: usize, iova: u64, access: u32): bool {
  return walkTrusted(fmt, d, iova) || walkSlow(d, iova, access);
}

/** walk() for a miss walkTrusted left (a cold cache, a fault), then trust in what it cached. */
function walkSlow(d: usize, iova: u64, access: u32): bool {
  const st = walk(d, iova, false, access);
  walkTrust(d);
  return st == 0;
}

/** Adds hits and misses (each a walk) of a fast path to unit `u`'s counters. */
@inline function flushCounts(u: usize, hits: u64, misses: u64): void {
  if (hits != 0) store<u64>(u + UNIT_STAT_HITS, load<u64>(u + UNIT_STAT_HITS) + hits);
  if (misses != 0) {
    store<u64>(u + UNIT_STAT_MISSES, load<u64>(u + UNIT_STAT_MISSES) + misses);
    store<u64>(u + UNIT_STAT_WALKS, load<u64>(u + UNIT_STAT_WALKS) + misses);
  }
  const n = hits + misses;
  if (n != 0) store<u64>(u + UNIT_STAT_TRANSLATIONS, load<u64>(u + UNIT_STAT_TRANSLATIONS) + n);
}

// The outputs hitPair found, and the unit it counts the two hits on (hitPairCount).
export let hOutS: u64 = 0;
export let hOutD: u64 = 0;
let hU: usize = 0;

/**
 * The IOTLB hits of both sides of a one-page copy: `src` read by `srcRid`, `dst` written by
 * `dstRid`, both requesters attached without PASID to one domain that fastUsable accepts, each
 * side a hit allowing its access. The domain and its unit checked once for both, as fastUsable
 * decides, then a set probe a side as fastTranslate finds hits.
 * True with hOutS/hOutD set; false otherwise. Counts nothing: a caller that uses the hits counts
 * them with hitPairCount, as translate() would have.
 */
export function hitPair(srcRid: u32, src: u64, dstRid: u32, dst: u64): bool {
  // A PASID handle, DOMAIN_DIRECT or no domain is negative: plainUnit refuses it.
  const dom = domainOfRid(srcRid);
  if (dstRid != srcRid && domainOfRid(dstRid) != dom) return false;
  const u = plainUnit(dom, srcRid, dstRid);
  if (u == 0) return false;
  const sizes = load<u32>(u + UNIT_SIZES_CACHED);
  if (sizes == sizeBit(12)) {
    // Only 4K leaves cached (the common case): one set probe a side.
    const tlb = <usize>load<u32>(u + UNIT_TLB_PTR);
    const mask = load<u32>(u + UNIT_TLB_SETS) - 1;
    const setBytes = load<u32>(u + UNIT_TLB_WAYS) * TLB_STRIDE;
    const mix = domMix(<u32>dom);
    const tag = tlbTag(<u32>dom, 12);
    const se = probeSet(tlb, mask, setBytes, mix, tag, src >> 12);
    if (se == 0 || (load<u32>(se + TLB_PERM) & ACCESS_READ) == 0) return false;
    const de = probeSet(tlb, mask, setBytes, mix, tag, dst >> 12);
    if (de == 0 || (load<u32>(de + TLB_PERM) & ACCESS_WRITE) == 0) return false;
    hOutS = load<u64>(se + TLB_OUT) | (src & 0xfff);
    hOutD = load<u64>(de + TLB_OUT) | (dst & 0xfff);
  } else {
    if (sizes == 0 || !tlbLookup(u, <u32>dom, src) || (hitPerm & ACCESS_READ) == 0) return false;
    hOutS = hitOut;
    if (!tlbLookup(u, <u32>dom, dst) || (hitPerm & ACCESS_WRITE) == 0) return false;
    hOutD = hitOut;
  }
  hU = u;
  return true;
}

/** Counts the two hits of the last hitPair on its unit. */
@inline export function hitPairCount(): void {
  flushCounts(hU, 2, 0);
}

// Whether the last fastTranslate was an IOTLB hit (a run of hits is likely to go on).
export let fHit: bool = false;

/**
 * The bytes from `iova` (4K-aligned) that consecutive IOTLB hits of 4K leaves allowing `access`
 * map to consecutive output from `out`, at most the pages that cover `max` bytes; 0 when the
 * IOTLB caches leaves of other sizes. Probes only: it counts and changes nothing, so a caller
 * that uses fewer pages than it found counts those it used (fastCountHits), and what it did not
 * use is as if never looked up (a hit changes no IOTLB state).
 */
export function fastRun(iova: u64, out: u64, max: u64, access: u32): u64 {
  if (load<u32>(bU + UNIT_SIZES_CACHED) != sizeBit(12)) return 0;
  const tlb = bTlb, mask = bMask, setBytes = bSetBytes, mix = bMix, tag = bTag4k;
  let vpn = iova >> 12;
  const end = vpn + ((max + 4095) >> 12);
  let expect = out;
  while (vpn < end) {
    const e = probeSet(tlb, mask, setBytes, mix, tag, vpn);
    if (e == 0 || (load<u32>(e + TLB_PERM) & access) != access || load<u64>(e + TLB_OUT) != expect) break;
    vpn++;
    expect += 4096;
  }
  return expect - out;
}

/** Counts `n` hits that fastRun found and the caller used. */
export function fastCountHits(n: u64): void {
  bHits += n;
}

// Set by fastPair when it stopped after translating (and counting) the source side of the page
// it stopped at, whose output continues the run, but not its destination side.
export let pSrcAhead: bool = false;

// fastPair's leaf cursors, one per side: the 2 MiB of iova (>> 21) whose last-level table was
// walked last, that table's linear page, and the rights above it (leafAt).
let cKey0: u64 = 0, cPage0: usize = 0, cAbove0: u32 = 0;
let cKey1: u64 = 0, cPage1: usize = 0, cAbove1: u32 = 0;

/**
 * The next `max` (at most) 4K pages of a copy from `si` to `di` (both page-aligned; their
 * outputs continue from `sp` and `dp`), translated in step as copyForward translates them page by
 * page (source page k, then destination page k), while each side is a 4K leaf allowing its
 * access (read, write) whose output continues the run: an IOTLB hit, or a miss walked and cached
 * as fastTranslate does. Nothing writes memory while it runs, so after one walk per 2 MiB of
 * iova on each side the next misses there read their entry from the leaf table that walk found
 * (leafAt). Returns the pages both sides continued, counted; pSrcAhead says the source side of
 * the next one was done too. The page it stops at (on either side) is left as it was for
 * fastTranslate or translate() to decide. For the domain of fastBegin, one domain on both sides.
 */
export function fastPair(si: u64, sp: u64, di: u64, dp: u64, max: u64): u64 {
  pSrcAhead = false;
  const d = bD;
  const fmt = bFmt;
  if (bDirty || !RUN4K(fmt) || <u32>load<u8>(d + DOMAIN_GRANULE) != 12 || load<u32>(bU + UNIT_SIZES_CACHED) != sizeBit(12)) return 0;
  const tlb = bTlb, mask = bMask, setBytes = bSetBytes, mix = bMix, tag = bTag4k, vtd = bVtd;
  const rrs = <usize>load<u32>(bU + UNIT_TLB_RR);
  cKey0 = cKey1 = 0xffffffffffffffff;
  let sv = si >> 12, dv = di >> 12;
  let so = sp, dO = dp;
  let k: u64 = 0;
  let hits: u64 = 0, misses: u64 = 0;
  for (; k < max; k++, sv++, dv++, so += 4096, dO += 4096) {
    const s = pairStep(0, sv, so, ACCESS_READ, fmt, d, tlb, mask, setBytes, mix, tag, rrs, vtd);
    if (s == PAIR_STOP) break;
    if (s == PAIR_HIT) hits++; else misses++;
    const t = pairStep(1, dv, dO, ACCESS_WRITE, fmt, d, tlb, mask, setBytes, mix, tag, rrs, vtd);
    if (t == PAIR_STOP) { pSrcAhead = true; break; }
    if (t == PAIR_HIT) hits++; else misses++;
  }
  bHits += hits;
  bMisses += misses;
  return k;
}

// What pairStep did with one side's page.
const PAIR_STOP: u32 = 0;
const PAIR_HIT: u32 = 1;
const PAIR_MISS: u32 = 2;

/**
 * One side of one fastPair page: page `vpn` must be a 4K leaf allowing `access` with output
 * `expect`, an IOTLB hit (PAIR_HIT) or a miss walked from the side's cursor and cached
 * (PAIR_MISS); PAIR_STOP leaves it as it was.
 */
@inline function pairStep(side: u32, vpn: u64, expect: u64, access: u32, fmt: u32, d: usize, tlb: usize, mask: u32, setBytes: u32, mix: u32, tag: u32, rrs: usize, vtd: bool): u32 {
  const set = setOf(vpn, mix, mask);
  const base = tlb + <usize>(set * setBytes);
  const e = probeAt(base, setBytes, tag, vpn);
  if (e != 0) {
    return (load<u32>(e + TLB_PERM) & access) == 0 || load<u64>(e + TLB_OUT) != expect ? PAIR_STOP : PAIR_HIT;
  }
  const leaf = pairLeaf(side, fmt, d, vpn << 12);
  if ((leaf & ~(<u64>3)) != (expect | WALK4K_OK) || (<u32>leaf & access) == 0 || (vtd && inIntr(expect))) return PAIR_STOP;
  fillSet4k(base, setBytes, rrs + <usize>set, vpn, expect, tag, <u32>leaf & 3);
  return PAIR_MISS;
}

/** Whether the 4K page at `pa` is in the VT-d interrupt range (never an output). */
@inline function inIntr(pa: u64): bool {
  return pa <= VTD_INTR_LAST && pa >= VTD_INTR_FIRST;
}

/**
 * fastPair's walk of `iova` for side `side`: from the side's leaf cursor when it covers iova,
 * else walkFast, whose leaf table then becomes the cursor. The 4K leaf as leafAt gives it
 * (output | WALK4K_OK | rights), or 0 with nothing but the caches changed.
 */
@inline function pairLeaf(side: u32, fmt: u32, d: usize, iova: u64): u64 {
  const key = iova >> 21;
  if (side == 0 ? key == cKey0 : key == cKey1) {
    return side == 0 ? leafAt(fmt, d, iova, cPage0, cAbove0) : leafAt(fmt, d, iova, cPage1, cAbove1);
  }
  if (!walkFast(fmt, d, iova) || wShift != 12) return 0;
  if (side == 0) { cKey0 = key; cPage0 = lastLeafPage(); cAbove0 = lastLeafAbove(); }
  else { cKey1 = key; cPage1 = lastLeafPage(); cAbove1 = lastLeafAbove(); }
  return wLeaf4k();
}
