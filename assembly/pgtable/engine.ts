// The io-pgtable engine: writer (map, unmap) and walker shared by every format, driven by the
// ops table of format.ts and the domain's geometry (granule, index bits per level, index bits of
// the top table, levels). Tables live in simulated RAM frames (a 16K/64K-granule table or a
// concatenated stage-2 top table takes several contiguous frames); each table's first frame
// record counts its live entries (FRAME_AUX) so that a table left empty by an unmap is freed at
// once. What happens to a partial unmap of a large leaf or a map over something already mapped
// is the domain's kernel policy (abi.ts UNMAP_* / MAPPOL_*, spec iommu.md A8/A9).

import {
  OK, EINVAL, ENOMEM, EEXIST, ERANGE, EADDRINUSE, PROT_READ, PROT_WRITE, PG_PGTABLE, FRAME_AUX,
  DOMAIN_FORMAT, DOMAIN_IAS, DOMAIN_OAS, DOMAIN_LEVELS, DOMAIN_ROOT, DOMAIN_PGSIZES,
  DOMAIN_TABLE_FRAMES, DOMAIN_GRANULE, DOMAIN_LEVEL_BITS, DOMAIN_TOP_BITS, DOMAIN_POLICY,
  DOMAIN_FLAGS, DOMAIN_F_SIGN_EXTEND, DOMAIN_F_DYNAMIC_TOP, FAULT_TRANSLATION, FAULT_ADDRESS_SIZE,
  FAULT_ACCESS_FLAG, FAULT_WALK_EABT, TRACE_STRIDE, TRACE_MAX, UNMAP_SPLIT, UNMAP_REFUSE,
  UNMAP_WHOLE_AT_START, UNMAP_WHOLE_ANY, MAPPOL_EEXIST, MAPPOL_EADDRINUSE, MAPPOL_KEEP,
  MAPPOL_REPLACE_RISCV, FMT_X86_64, ACCESS_WRITE, MAPDESC_STRIDE, FMT_VTD_SS, FMT_ARM_LPAE_S1,
  FMT_ARM_LPAE_S2, FMT_AMD_V1, FMT_RISCV,
} from '../abi';
import { gTrace, gPathTable, gPathSlot, gTableCache, gZeroPage, gWalkCache, TABLE_CACHE_SLOTS } from '../state';
import { X86_A, X86_D } from './x86_64';
import { physRead64, physWrite64, findRegion, readPtr, physGen, NO_PAGE, radixLogBegin, radixLogEnd } from '../mem/phys';
import { allocFrames, allocatedFrame, freeFrames } from '../mem/frames';
import {
  PTE_INVALID, PTE_TABLE, PTE_LEAF, PTE_RESERVED, pteKind, pteTableAddr, pteLeafShift, pteLeafAddr, pteMkTable,
  pteMkLeaf, pteReleaf, ptePerm, pteTablePerm, reservedReason, outputTooWideReason, lvlShift,
} from './format';

// Table reads and writes go through a direct-mapped cache of the linear addresses of table pages
// (TABLE_CACHE_SLOTS, by page number; tables stay in simulated RAM, visible to memory.read: the
// cache only skips the region lookup and the radix). An entry: 0 page | 1 (u64), 8 linear
// address (u32), 12 physGen when cached; any change of any page's backing (phys.ts physGen)
// drops them all.
@inline function cacheSlot(page: u64): usize {
  return gTableCache + (<usize>((<u32>(page >> 12)) & (TABLE_CACHE_SLOTS - 1)) << 4);
}

/**
 * The linear address of the table entry at `slot` for reading; NO_PAGE (odd, never an entry's
 * address) when no region holds it. 0 is a real address: an embedded core's direct region may
 * start at the host's page 0.
 */
@inline function tableReadPtr(slot: u64): usize {
  const page = slot & ~(<u64>4095);
  const c = cacheSlot(page);
  if (load<u64>(c) == (page | 1) && load<u32>(c + 12) == physGen) return <usize>load<u32>(c + 8) + <usize>(slot & 4095);
  const r = findRegion(slot);
  if (r == 0) return NO_PAGE;
  const p = readPtr(r, page);
  store<u64>(c, page | 1);
  store<u32>(c + 8, <u32>p);
  store<u32>(c + 12, physGen);
  return p + <usize>(slot & 4095);
}

/** Reads the table entry at `slot` (0 when no region holds it). */
@inline function tableRead(slot: u64): u64 {
  const p = tableReadPtr(slot);
  return p == NO_PAGE ? 0 : load<u64>(p);
}

/** Writes the table entry at `slot`: in place when its page is backed, else as physWrite64. */
@inline function tableWrite(slot: u64, v: u64): i32 {
  const page = slot & ~(<u64>4095);
  const c = cacheSlot(page);
  if (load<u64>(c) == (page | 1) && load<u32>(c + 12) == physGen) {
    const p = <usize>load<u32>(c + 8);
    if (p != gZeroPage) { store<u64>(p + <usize>(slot & 4095), v); return OK; }
  }
  return physWrite64(slot, v);
}

// Walk results (valid when walk() returns 0).
export let wOut: u64 = 0;    // output address of iova
export let wShift: u32 = 0;  // page shift of the leaf
export let wPerm: u32 = 0;   // ACCESS_READ | ACCESS_WRITE granted
export let wDepth: u32 = 0;  // levels visited (entries in the trace)
export let wLeafSlot: u64 = 0; // physical address of the leaf entry (dirty tracking, pgtable/dirty.ts)

@inline function levelBits(d: usize, lvl: u32): u32 {
  return lvl == 0 ? <u32>load<u8>(d + DOMAIN_TOP_BITS) : <u32>load<u8>(d + DOMAIN_LEVEL_BITS);
}

@inline function idxAt(d: usize, va: u64, lvl: u32, shift: u32): u64 {
  return (va >> shift) & ((<u64>1 << levelBits(d, lvl)) - 1);
}

/** Input bits the table covers now: ias, or the current top's reach when the top grows (AMD v1). */
@inline function coverage(d: usize): u32 {
  if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_DYNAMIC_TOP) == 0) return load<u32>(d + DOMAIN_IAS);
  return lvlShift(d, 0) + levelBits(d, 0);
}

/** Whether a sign-extended iova is canonical for `ias` bits (bits 63..ias-1 all equal). */
@inline function canonical(iova: u64, ias: u32): bool {
  const top = iova >> (ias - 1);
  return top == 0 || top == (<u64>0xffffffffffffffff >> (ias - 1));
}

/** The in-table part of an iova (the low ias bits of a sign-extended one). */
@inline function tableVa(d: usize, iova: u64): u64 {
  const ias = load<u32>(d + DOMAIN_IAS);
  return ias < 64 ? iova & ((<u64>1 << ias) - 1) : iova;
}

@inline function frameCount(d: usize, lvl: u32): u64 {
  const bytes: u64 = <u64>8 << levelBits(d, lvl);
  return bytes <= 4096 ? 1 : bytes >> 12;
}

// ---- the walker and its page-walk cache ----
//
// For each level k of the last untraced walk whose entry was a table: 0 key u64 (va >> that
// level's shift: the index bits of level k and above), 8 the entry u64, 16 its linear address
// u32, 20 the rights ANDed down to it u32. A later walk reuses levels from the top while the key
// matches and the entry still holds the value it had (a guest's rewrite of a table entry is seen
// at once); a change of domain, root, or of any page's backing (physGen: a table freed or first
// written) empties it. Like a hardware paging-structure cache, but never stale.
//
// It holds two paths, as a paging-structure cache holds more than one entry per level: a device
// copying between two IOVA ranges walks both in turn, and with one path each walk would rewrite
// it from the level where the two part. pwcBase/pwcDepth are the path used last, pwcAltBase/
// pwcAltDepth the other. walkFast (the DMA engine's walks) takes the path that matches deeper
// (the older one on a tie, whose records it then replaces) and makes it the last used; walk()
// and walkTrusted (a batch of one requester's addresses: one stream) keep to the last path.
const PWC_STRIDE: usize = 32;
const PWC_PATH_BYTES: usize = 8 * PWC_STRIDE;
let pwcD: usize = 0;
let pwcRoot: u64 = 0;
let pwcGen: u32 = 0;
let pwcDepth: u32 = 0;
let pwcBase: usize = 0;
let pwcAltDepth: u32 = 0;
let pwcAltBase: usize = 0;
// The domain's walk geometry, read once per (domain, root).
let pwcFmt: u32 = 0;
let pwcLevels: u32 = 0;
let pwcB: u32 = 0;
let pwcShift0: u32 = 0;
let pwcTopBits: u32 = 0;
// Set by walkTrust for one batch loop: every record below pwcDepth holds the entry memory holds
// (checked once), and nothing but the loop's own walks writes memory until walkTrustEnd (one
// thread; the loop calls walkTrust again after anything else ran), so walkTrusted compares keys only.
let pwcTrust: bool = false;

/** One level's record in a walk trace at `base` (level, index, table address, entry read). */
export function traceLevel(base: usize, lvl: u32, idx: u32, table: u64, pte: u64): void {
  const t = base + <usize>(lvl * TRACE_STRIDE);
  store<u32>(t, lvl);
  store<u32>(t + 4, idx);
  store<u64>(t + 8, table);
  store<u64>(t + 16, pte);
}

/** Writes one page-walk cache record (layout above); the next table's linear page is learnt later. */
@inline function pwcRecord(rec: usize, key: u64, pte: u64, ptr: usize, perm: u32): void {
  store<u64>(rec, key);
  store<u64>(rec + 8, pte);
  store<u32>(rec + 16, <u32>ptr);
  store<u32>(rec + 20, perm);
  store<u32>(rec + 24, <u32>NO_PAGE);
}

/**
 * The leaf `pte` (at `slot`, level page shift `shift`) reached with table rights `perm`: 0 with
 * wOut/wShift/wPerm/wLeafSlot set, or the fault (access flag clear, output beyond the OAS).
 */
@inline function takeLeaf(fmt: u32, d: usize, iova: u64, pte: u64, shift: u32, perm: u32, slot: u64): u32 {
  const lshift = pteLeafShift(fmt, pte, shift, d);
  const out = pteLeafAddr(fmt, pte, lshift, d) | (iova & ((<u64>1 << lshift) - 1));
  const leafPerm = ptePerm(fmt, pte);
  if (leafPerm == 0xffffffff) return FAULT_ACCESS_FLAG;
  if ((out >> load<u32>(d + DOMAIN_OAS)) != 0) return outputTooWideReason(fmt);
  wOut = out;
  wShift = lshift;
  wPerm = perm & leafPerm;
  wLeafSlot = slot;
  return 0;
}

/**
 * Walks the table of domain record `d` for `iova`, as the hardware would.
 * Returns 0 and sets wOut/wShift/wPerm/wLeafSlot, or a FAULT_* reason: a table fetch from an
 * address in no memory region is a walk external abort. With `trace`, each level's (level,
 * index, table, entry) goes to the trace block. `access` (0: a software walk, which changes
 * nothing) lets the x86-64 walker set A on every entry it uses and D on a leaf it writes through,
 * as VT-d first stage does (QEMU vtd_iova_to_flpte / vtd_set_flag_in_pte). Untraced walks that
 * update no entry use the page-walk cache; keys are taken on the whole iova, so a top level
 * that matches an earlier walk's also passes the address-width check that walk made then.
 */
export function walk(d: usize, iova: u64, trace: bool, access: u32 = 0): u32 {
  const root = load<u64>(d + DOMAIN_ROOT);
  if (pwcD != d || pwcRoot != root || pwcGen != physGen) {
    const levels = load<u32>(d + DOMAIN_LEVELS);
    const b = <u32>load<u8>(d + DOMAIN_LEVEL_BITS);
    pwcFmt = load<u32>(d + DOMAIN_FORMAT);
    pwcLevels = levels;
    pwcB = b;
    pwcShift0 = <u32>load<u8>(d + DOMAIN_GRANULE) + b * (levels - 1);
    pwcTopBits = <u32>load<u8>(d + DOMAIN_TOP_BITS);
    pwcD = d; pwcRoot = root; pwcGen = physGen;
    pwcBase = gWalkCache; pwcDepth = 0;
    pwcAltBase = gWalkCache + PWC_PATH_BYTES; pwcAltDepth = 0;
    pwcTrust = false;
  }
  const fmt = pwcFmt;
  const adUpdate = access != 0 && fmt == FMT_X86_64;
  const cached = !trace && !adUpdate;
  const levels = pwcLevels;
  const b = pwcB;
  let shift = pwcShift0;
  let bits = pwcTopBits;
  let table = root;
  let perm: u32 = 3;
  let lvl: u32 = 0;
  let rec = pwcBase;
  const depth = cached ? pwcDepth : 0;
  wDepth = 0;
  if (depth == 0 || load<u64>(rec) != (iova >> shift)) {
    if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_SIGN_EXTEND) != 0) {
      if (!canonical(iova, load<u32>(d + DOMAIN_IAS))) return FAULT_ADDRESS_SIZE;
    } else {
      const cov = coverage(d);
      if (cov < 64 && (iova >> cov) != 0) return FAULT_ADDRESS_SIZE;
    }
  }
  // Cached levels: one key compare and one entry compare each.
  while (lvl < depth) {
    const pte = load<u64>(rec + 8);
    if (((load<u64>(rec) ^ (iova >> shift)) | (load<u64>(<usize>load<u32>(rec + 16)) ^ pte)) != 0) break;
    perm = load<u32>(rec + 20);
    table = pteTableAddr(fmt, pte, d);
    lvl++; shift -= b; bits = b; rec += PWC_STRIDE;
  }
  if (cached) pwcDepth = lvl;
  // Indexes come from the iova itself: past the width check, no index takes a bit at or above
  // the input width (a sign-extended format's top index ends at bit ias - 1).
  for (; lvl < levels; lvl++, shift -= b, bits = b, rec += PWC_STRIDE) {
    const idx = (iova >> shift) & ((<u64>1 << bits) - 1);
    const slot = table + (idx << 3);
    const ptr = tableReadPtr(slot);
    const pte: u64 = ptr == NO_PAGE ? 0 : load<u64>(ptr);
    if (trace && lvl < TRACE_MAX) traceLevel(gTrace, lvl, <u32>idx, table, pte);
    wDepth = lvl + 1;
    if (ptr == NO_PAGE) return FAULT_WALK_EABT;
    const kind = pteKind(fmt, pte, shift, d);
    if (kind == PTE_INVALID) return FAULT_TRANSLATION;
    if (adUpdate && kind != PTE_RESERVED) {
      const granted = perm & pteTablePerm(fmt, pte, d);
      const upd = pte | X86_A | (kind == PTE_LEAF && (access & ACCESS_WRITE) != 0 && (granted & ACCESS_WRITE) != 0 ? X86_D : 0);
      if (upd != pte && (granted & access) == access) physWrite64(slot, upd);
    }
    if (kind == PTE_TABLE) {
      perm &= pteTablePerm(fmt, pte, d);
      table = pteTableAddr(fmt, pte, d);
      if (cached && lvl < 8) {
        pwcRecord(rec, iova >> shift, pte, ptr, perm);
        pwcDepth = lvl + 1;
      }
      continue;
    }
    if (kind != PTE_LEAF) return reservedReason(fmt);
    return takeLeaf(fmt, d, iova, pte, shift, perm, slot);
  }
  return FAULT_TRANSLATION;
}

/**
 * walk() for the batch loops of iommu/batch.ts, with the format `fmt` a constant at each call
 * (one copy per format, the PTE decode of the format's own helpers inlined): an untraced walk
 * that updates no entry (never x86-64 with an access), served only when the page-walk cache
 * holds the top level for `iova`, so that the width check is the one an earlier walk made.
 * Also keeps in each cached level the linear page of the table below it (one 4K frame: 4K
 * granule), so a walk reads the first uncached level without the table cache. Returns true with
 * wOut/wShift/wPerm/wLeafSlot/wDepth as walk() sets them; false when walk() must decide (a
 * fault, a reserved entry, a cold cache), with nothing but the caches changed.
 */
@inline export function walkFast(fmt: u32, d: usize, iova: u64): bool {
  if (fmt == FMT_X86_64) return false; // its walks set A/D: walk() does them
  if (pwcD != d || pwcGen != physGen || pwcRoot != load<u64>(d + DOMAIN_ROOT)) return false;
  let lvl = pwcMatch(pwcBase, pwcDepth, iova);
  if (lvl < pwcDepth || lvl == 0) lvl = pwcChoose(lvl, pwcMatch(pwcAltBase, pwcAltDepth, iova));
  return lvl != 0 && walkAfter(fmt, d, iova, lvl);
}

/**
 * The walk below the first `lvl` (>= 1) records of the last path, which serve `iova`: the path
 * keeps those, and walkBelow goes on from the entry, rights and table page the last one holds.
 */
@inline function walkAfter(fmt: u32, d: usize, iova: u64, lvl: u32): bool {
  pwcDepth = lvl;
  const rec = pwcBase + <usize>(lvl - 1) * PWC_STRIDE;
  return walkBelow(fmt, d, iova, lvl, pwcShift0 - pwcB * lvl, rec + PWC_STRIDE, load<u32>(rec + 20), load<u64>(rec + 8), <usize>load<u32>(rec + 24));
}

/**
 * How many levels from the top of the path at `base` (`depth` records) serve `iova`: each key
 * matches and each entry still holds in memory what the record holds.
 */
@inline function pwcMatch(base: usize, depth: u32, iova: u64): u32 {
  const b = pwcB;
  let shift = pwcShift0;
  let rec = base;
  let lvl: u32 = 0;
  while (lvl < depth) {
    if (((load<u64>(rec) ^ (iova >> shift)) | (load<u64>(<usize>load<u32>(rec + 16)) ^ load<u64>(rec + 8))) != 0) break;
    lvl++; shift -= b; rec += PWC_STRIDE;
  }
  return lvl;
}

/**
 * A walk that parts from the last path after `lvl` levels, where the other path serves `alt`:
 * the walk goes on in the other path, which becomes the last used, so that the last path stays
 * whole. When the other path serves less, the levels both share are first copied into it (in
 * place of what it held); when it serves as much or more, its own records are those levels
 * (same keys, and entries that memory still holds). Returns the levels the walk starts below.
 */
@inline function pwcChoose(lvl: u32, alt: u32): u32 {
  if (alt == 0 && lvl == 0) return 0;
  if (alt < lvl) {
    memory.copy(pwcAltBase, pwcBase, <usize>lvl * PWC_STRIDE);
    alt = lvl;
  }
  const base = pwcBase;
  const depth = pwcDepth;
  pwcBase = pwcAltBase; pwcDepth = alt;
  pwcAltBase = base; pwcAltDepth = depth;
  return alt;
}

/**
 * Checks once the page-walk cache records for domain record `d` against memory (dropping those
 * from the first changed entry down) and lets walkTrusted skip that check until walkTrustEnd.
 * For a loop in which nothing else writes memory: call it again after anything else ran
 * (translate(), walk()). Without records for `d` it leaves trust off (walkTrusted says false).
 */
export function walkTrust(d: usize): void {
  pwcTrust = false;
  if (pwcD != d || pwcGen != physGen || pwcRoot != load<u64>(d + DOMAIN_ROOT)) return;
  pwcDepth = pwcHeld(pwcBase, pwcDepth);
  pwcAltDepth = pwcHeld(pwcAltBase, pwcAltDepth);
  pwcTrust = true;
}

/** The records of the path at `base` (`depth` of them) down to the first whose entry changed. */
function pwcHeld(base: usize, depth: u32): u32 {
  let rec = base;
  let lvl: u32 = 0;
  while (lvl < depth && load<u64>(<usize>load<u32>(rec + 16)) == load<u64>(rec + 8)) { lvl++; rec += PWC_STRIDE; }
  return lvl;
}

/** Ends what walkTrust allowed. */
export function walkTrustEnd(): void {
  pwcTrust = false;
}

/**
 * walkFast inside a walkTrust window: the records were checked against memory, so only keys
 * are compared, from the deepest record up. Records below pwcDepth are one path (each written
 * under the ones above it, for the same iova), so the deepest key that matches has every key
 * above it matching too, and that level is where walkFast's top-down match would stop.
 */
@inline export function walkTrusted(fmt: u32, d: usize, iova: u64): bool {
  if (fmt == FMT_X86_64 || !pwcTrust) return false;
  // The last path only: a batch translates one requester's addresses, one stream (a second
  // path would cost a random batch more than it saves).
  const m = pwcKeys(pwcBase, pwcDepth, iova);
  return m != 0 && walkAfter(fmt, d, iova, m);
}

/**
 * walkTrusted's common case in a loop of random 4K translations over tables of 4K granule
 * (9 index bits a level), with the result in one value instead of the w* globals: the path
 * holds every table level, and `iova` is under the same leaf table as the last walk (its entry
 * and page in the last record), or under the same table above it (whose page the record above
 * holds), whose entry for iova is read and recorded as walkBelow records it. Returns the 4K
 * leaf's output | WALK4K_OK | rights, or 0 for anything else (another level parts, a table
 * page not yet learnt, a fault, a larger leaf), which walkTrusted decides; it changes nothing
 * but the page-walk cache, as that walk would.
 */
@inline export function walk4k(fmt: u32, d: usize, iova: u64, base: usize, levels: u32): u64 {
  const depth = pwcDepth;
  if (!pwcTrust || depth + 1 != levels || depth < 2) return 0;
  const rec = aboveLeafRecord(base, depth);
  let page: usize;
  let above: u32;
  if (load<u64>(rec) == (iova >> 21)) {
    page = <usize>load<u32>(rec + 24);
    above = load<u32>(rec + 20);
  } else {
    const up = rec - PWC_STRIDE;
    const next = <usize>load<u32>(up + 24);
    if (load<u64>(up) != (iova >> 30) || next == NO_PAGE) return 0;
    const ptr = next + (<usize>((iova >> 21) & 511) << 3);
    const pde = load<u64>(ptr);
    if (pteKind(fmt, pde, 21, d) != PTE_TABLE) return 0;
    above = load<u32>(up + 20) & pteTablePerm(fmt, pde, d);
    page = tableReadPtr(pteTableAddr(fmt, pde, d));
    pwcRecord(rec, iova >> 21, pde, ptr, above);
    if (page == NO_PAGE) return 0;
    page &= ~(<usize>4095);
    store<u32>(rec + 24, <u32>page);
  }
  return page == NO_PAGE ? 0 : leafAt(fmt, d, iova, page, above);
}

/**
 * The 4K leaf of `iova` in the last-level table whose linear page is `page`, under table entries
 * leaving rights `above` (a leaf cursor: walk4k's last step, and fastPair's misses in the leaf
 * table their side's last walk found, when nothing has written memory since): output |
 * WALK4K_OK | rights, or 0 for anything but a valid 4K leaf (a fault, a larger leaf), which a
 * walk decides. Changes nothing. A domain of 4K granule.
 */
@inline export function leafAt(fmt: u32, d: usize, iova: u64, page: usize, above: u32): u64 {
  const pte = load<u64>(page + (<usize>((iova >> 12) & 511) << 3));
  if (pteKind(fmt, pte, 12, d) != PTE_LEAF || pteLeafShift(fmt, pte, 12, d) != 12) return 0;
  const out = pteLeafAddr(fmt, pte, 12, d);
  const perm = ptePerm(fmt, pte);
  if (perm == 0xffffffff || (out >> load<u32>(d + DOMAIN_OAS)) != 0) return 0;
  return out | WALK4K_OK | (above & perm);
}

/** The last path's records (fixed inside a walkTrust window), walk4k's `base`. */
@inline export function walkPathBase(): usize { return pwcBase; }
/** The levels of the domain the page-walk cache holds, walk4k's `levels`. */
@inline export function walkLevels(): u32 { return pwcLevels; }

/** walk4k's mark of a result (rights are bits 0-1, the output 4K-aligned). */
export const WALK4K_OK: u64 = 4;

/** How many levels of the path at `base` (`depth` records, checked against memory) serve `iova`, by keys alone. */
@inline function pwcKeys(base: usize, depth: u32, iova: u64): u32 {
  let m = depth;
  if (m == 0) return 0;
  const b = pwcB;
  let shift = pwcShift0 - b * (m - 1);
  let rec = base + <usize>(m - 1) * PWC_STRIDE;
  while (load<u64>(rec) != (iova >> shift)) {
    if (--m == 0) return 0;
    shift += b; rec -= PWC_STRIDE;
  }
  return m;
}

/**
 * The levels below the cached ones, from level `lvl` (page shift `shift`, record slot `rec`)
 * under the table entry `pte` with rights `perm`; `next` is the linear page of that table when
 * known (NO_PAGE otherwise). Records each table entry met, as walk() does.
 */
@inline function walkBelow(fmt: u32, d: usize, iova: u64, lvl: u32, shift: u32, rec: usize, perm: u32, pte: u64, next: usize): bool {
  const levels = pwcLevels;
  const b = pwcB;
  const oneFrame = <u32>load<u8>(d + DOMAIN_GRANULE) == 12;
  let table = pteTableAddr(fmt, pte, d);
  const idxMask: u64 = (<u64>1 << b) - 1;
  for (; lvl < levels; lvl++, shift -= b, rec += PWC_STRIDE) {
    const idx = (iova >> shift) & idxMask;
    const slot = table + (idx << 3);
    let ptr: usize;
    if (next != NO_PAGE) ptr = next + (<usize>idx << 3);
    else {
      ptr = tableReadPtr(slot);
      if (ptr == NO_PAGE) return false;
      // The level above is cached (matched or just written): remember this table's page.
      if (oneFrame && lvl <= 8) store<u32>(rec - PWC_STRIDE + 24, <u32>(ptr & ~(<usize>4095)));
    }
    pte = load<u64>(ptr);
    const kind = pteKind(fmt, pte, shift, d);
    if (kind == PTE_TABLE) {
      perm &= pteTablePerm(fmt, pte, d);
      table = pteTableAddr(fmt, pte, d);
      next = NO_PAGE;
      if (lvl < 8) {
        pwcRecord(rec, iova >> shift, pte, ptr, perm);
        pwcDepth = lvl + 1;
      }
      continue;
    }
    if (kind != PTE_LEAF || takeLeaf(fmt, d, iova, pte, shift, perm, slot) != 0) return false;
    wDepth = lvl + 1;
    return true;
  }
  return false;
}

/**
 * The leaf table of the last walkFast that found a 4K leaf (4K granule: in the last level), from
 * the page-walk record above it: its linear page (the record learnt it on the way down) and the
 * rights the levels above leave. A leaf cursor for leafAt.
 */
@inline export function lastLeafPage(): usize {
  return <usize>load<u32>(aboveLeafRecord(pwcBase, pwcDepth) + 24);
}
@inline export function lastLeafAbove(): u32 {
  return load<u32>(aboveLeafRecord(pwcBase, pwcDepth) + 20);
}

/** The record of the entry above the leaf table in a path of `depth` records at `base`. */
@inline function aboveLeafRecord(base: usize, depth: u32): usize {
  return base + <usize>(depth - 1) * PWC_STRIDE;
}

/** The w* result of a walk to a 4K leaf in leafAt's form: output | WALK4K_OK | rights. */
@inline export function wLeaf4k(): u64 {
  return (wOut & ~(<u64>0xfff)) | WALK4K_OK | <u64>wPerm;
}

/** Smallest page size of the domain (iommu_map/unmap reject anything not aligned to it). */
@inline function minPage(d: usize): u64 {
  const s = load<u64>(d + DOMAIN_PGSIZES);
  return s & (0 - s);
}

/** Address-width and argument checks shared by map and unmap. */
function checkRange(d: usize, iova: u64, size: u64): i32 {
  if (size == 0 || ((iova | size) & (minPage(d) - 1)) != 0) return EINVAL;
  const ias = load<u32>(d + DOMAIN_IAS);
  const end = iova + size;
  if (end < iova && end != 0) return ERANGE;
  const last = end - 1;
  if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_SIGN_EXTEND) != 0) {
    // Both ends canonical and in the same half: a range never spans the hole.
    if (!canonical(iova, ias) || !canonical(last, ias) || ((iova ^ last) >> 63) != 0) return ERANGE;
    return OK;
  }
  if (ias < 64 && ((iova >> ias) != 0 || (last >> ias) != 0)) return ERANGE;
  return OK;
}

@inline function addAux(table: u64, delta: i32): u32 {
  const rec = allocatedFrame(table);
  if (rec == 0) return 0; // a table written by a guest driver: no bookkeeping to keep
  const v = <u32>(<i32>load<u32>(rec + FRAME_AUX) + delta);
  store<u32>(rec + FRAME_AUX, v);
  return v;
}

/** A zeroed table for level `lvl`: its frames, contiguous and aligned to their count. */
function allocTable(d: usize, lvl: u32): i64 {
  const n = frameCount(d, lvl);
  const pa = allocFrames(n, n, PG_PGTABLE);
  if (pa >= 0) store<u32>(d + DOMAIN_TABLE_FRAMES, load<u32>(d + DOMAIN_TABLE_FRAMES) + <u32>n);
  return pa;
}

/** Frees a table the engine allocated (a guest-written one is left alone). */
function freeTableMem(d: usize, table: u64, lvl: u32): void {
  const rec = allocatedFrame(table);
  if (rec == 0) return;
  store<u32>(rec + FRAME_AUX, 0);
  const n = frameCount(d, lvl);
  if (freeFrames(table, n) == OK) store<u32>(d + DOMAIN_TABLE_FRAMES, load<u32>(d + DOMAIN_TABLE_FRAMES) - <u32>n);
}

/** Root table for a new domain (geometry already configured). */
export function allocRoot(d: usize): i64 {
  store<u32>(d + DOMAIN_TABLE_FRAMES, 0);
  return allocTable(d, 0);
}

/** Largest page size of the bitmap that fits both alignments and what is left. */
function bestShift(d: usize, iova: u64, pa: u64, remaining: u64): u32 {
  let sizes = load<u64>(d + DOMAIN_PGSIZES);
  while (sizes != 0) {
    const s = <u32>(63 - clz(sizes));
    const size: u64 = <u64>1 << s;
    if (((iova | pa) & (size - 1)) == 0 && remaining >= size) return s;
    sizes &= ~size;
  }
  return <u32>ctz(load<u64>(d + DOMAIN_PGSIZES));
}

// The tables and slots on the last descent's path live at gPathTable/gPathSlot (state.ts layout:
// no static data, so an embedded core writes only inside its window).
@inline function getPath(a: usize, k: u32): u64 { return load<u64>(a + (<usize>k << 3)); }
@inline function setPath(a: usize, k: u32, v: u64): void { store<u64>(a + (<usize>k << 3), v); }

/** Frees the tables on the path to `depth` that hold no entries, deepest first (never the root). */
function pruneFrom(d: usize, depth: u32): void {
  for (let k = <i32>depth; k >= 1; k--) {
    const t = getPath(gPathTable, <u32>k);
    const rec = allocatedFrame(t);
    if (rec == 0 || load<u32>(rec + FRAME_AUX) != 0) return;
    physWrite64(getPath(gPathSlot, <u32>k - 1), 0);
    addAux(getPath(gPathTable, <u32>k - 1), -1);
    freeTableMem(d, t, <u32>k);
  }
}

/** Follows tables toward `va` down to level `stop` at the deepest, recording the path; returns the depth reached. */
function descend(d: usize, va: u64, stop: u32): u32 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  let table = load<u64>(d + DOMAIN_ROOT);
  let lvl: u32 = 0;
  for (;;) {
    const s = lvlShift(d, lvl);
    const slot = table + (idxAt(d, va, lvl, s) << 3);
    setPath(gPathTable, lvl, table);
    setPath(gPathSlot, lvl, slot);
    if (lvl == stop || pteKind(fmt, physRead64(slot), s, d) != PTE_TABLE) break;
    table = pteTableAddr(fmt, physRead64(slot), d);
    lvl++;
  }
  return lvl;
}

/** Whether any leaf lies below table `table` of level `lvl`. */
function hasLeaf(d: usize, table: u64, lvl: u32): bool {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const s = lvlShift(d, lvl);
  const n: u64 = <u64>1 << levelBits(d, lvl);
  for (let i: u64 = 0; i < n; i++) {
    const pte = physRead64(table + (i << 3));
    const k = pteKind(fmt, pte, s, d);
    if (k == PTE_TABLE ? hasLeaf(d, pteTableAddr(fmt, pte, d), lvl + 1) : k != PTE_INVALID) return true;
  }
  return false;
}

/** Frees table `table` of level `lvl` and every table below it, counting the bytes its leaves mapped. */
function freeTree(d: usize, table: u64, lvl: u32): void {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const s = lvlShift(d, lvl);
  const n: u64 = <u64>1 << levelBits(d, lvl);
  for (let i: u64 = 0; i < n; i++) {
    const pte = physRead64(table + (i << 3));
    if (pte == 0) continue;
    const k = pteKind(fmt, pte, s, d);
    if (k == PTE_TABLE) freeTree(d, pteTableAddr(fmt, pte, d), lvl + 1);
    else if (k == PTE_LEAF) mRemovedBytes += <u64>1 << s;
  }
  freeTableMem(d, table, lvl);
}

// Range of translations a map replaced (io-pgtable-arm unmapping a table under a block, the old
// AMD driver replacing a leaf), for IOTLB invalidation; empty when start >= end.
export let mInvStart: u64 = 0;
export let mInvEnd: u64 = 0;
// Bytes of translations the last map removed (replaced, or under a table it freed), and bytes it
// left to what was there (the older intel driver keeping an existing entry): for DOMAIN_MAPPED.
export let mRemovedBytes: u64 = 0;
export let mSkippedBytes: u64 = 0;

@inline function noteReplaced(iova: u64, shift: u32): void {
  const start = iova & ~((<u64>1 << shift) - 1);
  if (start < mInvStart) mInvStart = start;
  if (start + (<u64>1 << shift) > mInvEnd) mInvEnd = start + (<u64>1 << shift);
}

/** Clears the contiguous group of leaf `pte` (found at `slot` of `table`, level shift `s`). */
function clearLeafGroup(d: usize, table: u64, slot: u64, pte: u64, s: u32): void {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const n: u64 = <u64>1 << (pteLeafShift(fmt, pte, s, d) - s);
  const first = table + ((((slot - table) >> 3) & ~(n - 1)) << 3);
  for (let i: u64 = 0; i < n; i++) physWrite64(first + (i << 3), 0);
  addAux(table, -<i32>n);
  mRemovedBytes += n << s;
}

/**
 * Installs one leaf of page shift `lshift` at `iova`: follows the tables that exist, makes the
 * missing ones, and treats whatever is in the way by the domain's map policy. Returns OK,
 * EEXIST / EADDRINUSE (policy), ENOMEM.
 */
function mapOne(d: usize, iova: u64, pa: u64, lshift: u32, prot: u32): i32 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const levels = load<u32>(d + DOMAIN_LEVELS);
  const g = <u32>load<u8>(d + DOMAIN_GRANULE);
  const b = <u32>load<u8>(d + DOMAIN_LEVEL_BITS);
  const pol = <u32>load<u8>(d + DOMAIN_POLICY) >> 4;
  const L = levels - 1 - (lshift - g) / b;
  const va = tableVa(d, iova);
  let table = load<u64>(d + DOMAIN_ROOT);
  for (let lvl: u32 = 0; lvl < L; lvl++) {
    const s = lvlShift(d, lvl);
    const slot = table + (idxAt(d, va, lvl, s) << 3);
    setPath(gPathTable, lvl, table);
    setPath(gPathSlot, lvl, slot);
    const pte = tableRead(slot);
    const kind = pteKind(fmt, pte, s, d);
    if (kind == PTE_TABLE) { table = pteTableAddr(fmt, pte, d); continue; }
    if (kind != PTE_INVALID) {
      // A larger leaf (or a malformed entry) is in the way.
      if (pol == MAPPOL_EEXIST) return EEXIST;
      if (pol == MAPPOL_EADDRINUSE) return EADDRINUSE;
      if (pol == MAPPOL_KEEP) { mSkippedBytes += <u64>1 << lshift; return OK; }
      if (pol == MAPPOL_REPLACE_RISCV) return ENOMEM;
      noteReplaced(iova, kind == PTE_LEAF ? pteLeafShift(fmt, pte, s, d) : s);
      if (kind == PTE_LEAF) clearLeafGroup(d, table, slot, pte, s);
      else { physWrite64(slot, 0); addAux(table, -1); }
    }
    const next = allocTable(d, lvl + 1);
    if (next < 0) return <i32>next;
    const st = tableWrite(slot, pteMkTable(fmt, <u64>next, s, d));
    if (st != OK) { freeTableMem(d, <u64>next, lvl + 1); return st; }
    addAux(table, 1);
    table = <u64>next;
  }
  const s = lvlShift(d, L);
  const n: u64 = <u64>1 << (lshift - s);
  const first = table + (((idxAt(d, va, L, s)) & ~(n - 1)) << 3);
  setPath(gPathTable, L, table);
  setPath(gPathSlot, L, first);
  let leaves: u32 = 0;
  let tables: u32 = 0;
  for (let i: u64 = 0; i < n; i++) {
    const k = pteKind(fmt, tableRead(first + (i << 3)), s, d);
    if (k == PTE_TABLE) tables++;
    else if (k != PTE_INVALID) leaves++;
  }
  if (leaves != 0) {
    if (pol == MAPPOL_EEXIST) return EEXIST; // "We require an unmap first"
    if (pol == MAPPOL_EADDRINUSE) return EADDRINUSE;
    if (pol == MAPPOL_KEEP) { mSkippedBytes += <u64>1 << lshift; return OK; } // "PTE already set": the old entry stays
    mRemovedBytes += <u64>leaves << s;
  }
  if (tables != 0) {
    if (pol == MAPPOL_EADDRINUSE) {
      for (let i: u64 = 0; i < n; i++) {
        const pte = physRead64(first + (i << 3));
        if (pteKind(fmt, pte, s, d) == PTE_TABLE && hasLeaf(d, pteTableAddr(fmt, pte, d), L + 1)) return EADDRINUSE;
      }
    }
    // Every other policy (and generic_pt for empty tables) frees what is below, mappings and all.
    for (let i: u64 = 0; i < n; i++) {
      const pte = physRead64(first + (i << 3));
      if (pteKind(fmt, pte, s, d) == PTE_TABLE) freeTree(d, pteTableAddr(fmt, pte, d), L + 1);
    }
  }
  if (leaves != 0 || tables != 0) noteReplaced(iova, lshift);
  const leaf = mkLeaf(fmt, pa, prot, lshift, s, d);
  for (let i: u64 = 0; i < n; i++) {
    const st = tableWrite(first + (i << 3), leaf);
    if (st != OK) return st;
  }
  addAux(table, <i32>(n - leaves - tables));
  return OK;
}

/** pteMkLeaf, out of line: the map and the batch map share one copy of every format's encoder. */
function mkLeaf(fmt: u32, pa: u64, prot: u32, lshift: u32, shift: u32, d: usize): u64 {
  return pteMkLeaf(fmt, pa, prot, lshift, shift, d);
}

// ---- batch map: walk down once per leaf-table page (io-pgtable map_pages with pgcount) ----
//
// mapBatch maps descriptor after descriptor; when one is a single smallest page landing in the
// same page of the same leaf table as the previous smallest-page leaf, the entry is written in
// place: no descent, no region lookup, no frame-record lookup. Anything else (a larger page,
// another table, an entry already in use, so that the map policy decides) goes through mapRange,
// whose final path seeds the cache again. The cache lives for one batch (mapBatchBegin):
// inside a batch only this engine changes tables.
let mcD: usize = 0;        // domain record the cache is for (0: empty)
let mcKey: u64 = 0;        // iova >> mcSpan of the cached leaf-table page
let mcSpan: u32 = 0;       // log2 of the iova span one leaf-table page covers
let mcPtr: usize = 0;      // linear address of the leaf-table page
let mcRec: usize = 0;      // the table's first frame record (live-entry count), 0 if none
let mcIdxMask: u64 = 0;    // index bits inside that page
let mcProt: u32 = 0;
let mcGen: u32 = 0;        // physGen when seeded: backing moved, cache gone

/** Starts a batch of maps into domain record `d` (drops what the last batch cached). */
export function mapBatchBegin(d: usize): void {
  mcD = 0;
}

// Bytes the last mapBatchFast mapped.
export let mbBytes: u64 = 0;

/**
 * The in-place loop of a batch: maps descriptors i, i+1, ... of the `n` at `base` (MAPDESC_STRIDE
 * apart; iova, pa, size; status written at +24) while each is a smallest page in the cached
 * leaf-table page over an empty entry. Returns the index of the first one it left (n when none),
 * for mapBatchOne; mbBytes holds the bytes it mapped.
 */
export function mapBatchFast(d: usize, base: usize, i: u32, n: u32, prot: u32): u32 {
  mbBytes = 0;
  if (mcD != d || prot != mcProt || mcGen != physGen) return i;
  // One loop per format (the leaf encoder inlined with the format a constant).
  let j: u32;
  switch (load<u32>(d + DOMAIN_FORMAT)) {
    case FMT_ARM_LPAE_S1: j = mapLoopLpaeS1(d, base, i, n, prot); break;
    case FMT_ARM_LPAE_S2: j = mapLoopLpaeS2(d, base, i, n, prot); break;
    case FMT_RISCV: j = mapLoopRiscv(d, base, i, n, prot); break;
    // VT-d, x86-64, AMD v1: 4K granule, a smallest-page leaf is pa | bits (bits from prot).
    default: j = mapLoopOr(d, base, i, n, prot); break;
  }
  if (j != i) {
    if (mcRec != 0) store<u32>(mcRec + FRAME_AUX, load<u32>(mcRec + FRAME_AUX) + (j - i));
    mbBytes = <u64>(j - i) << <u32>load<u8>(d + DOMAIN_GRANULE);
  }
  return j;
}

// Separate functions, so that the optimizer keeps one specialised copy each.
function mapLoopOr(d: usize, base: usize, i: u32, n: u32, prot: u32): u32 { return mapLoop(FMT_VTD_SS, d, base, i, n, prot); }
function mapLoopLpaeS1(d: usize, base: usize, i: u32, n: u32, prot: u32): u32 { return mapLoop(FMT_ARM_LPAE_S1, d, base, i, n, prot); }
function mapLoopLpaeS2(d: usize, base: usize, i: u32, n: u32, prot: u32): u32 { return mapLoop(FMT_ARM_LPAE_S2, d, base, i, n, prot); }
function mapLoopRiscv(d: usize, base: usize, i: u32, n: u32, prot: u32): u32 { return mapLoop(FMT_RISCV, d, base, i, n, prot); }

/** The in-place loop of mapBatchFast for format `fmt` (a constant at each call). */
@inline function mapLoop(fmt: u32, d: usize, base: usize, i: u32, n: u32, prot: u32): u32 {
  // 4K granule only in these formats: the shifts below are constants.
  const g = fmt == FMT_VTD_SS || fmt == FMT_X86_64 || fmt == FMT_AMD_V1 || fmt == FMT_RISCV ? 12 : <u32>load<u8>(d + DOMAIN_GRANULE);
  const oas = <u64>load<u32>(d + DOMAIN_OAS);
  const page: u64 = <u64>1 << g;
  // A smallest-page leaf of these formats is the address ORed with bits that depend on prot only.
  const orable = fmt == FMT_VTD_SS || fmt == FMT_X86_64 || fmt == FMT_AMD_V1;
  // (mapLoopOr serves the three with fmt VT-d: the domain's own format encodes the bits.)
  const bits: u64 = orable ? mkLeaf(load<u32>(d + DOMAIN_FORMAT), 0, prot, g, g, d) : 0;
  // The tests as masks: iova bits above the page's span equal to the cached page's (the same
  // path, table page and range checks) and its offset bits clear; pa's bits at and above the
  // OAS and its offset bits clear (an OAS of 64 or more leaves every nonzero pa to mapRange,
  // as a shift by it would).
  const lowMask = page - 1;
  const iovaMask = ~((<u64>1 << mcSpan) - 1) | lowMask;
  const keyBits = mcKey << mcSpan;
  const paMask = oas >= 64 ? <u64>0xffffffffffffffff : ~((<u64>1 << oas) - 1) | lowMask;
  const ptr = mcPtr;
  const mask = mcIdxMask;
  const first = base + <usize>(i * MAPDESC_STRIDE);
  const end = base + <usize>(n * MAPDESC_STRIDE);
  let e = first;
  // Four descriptors a step while they are in order (iovas a page apart, the first and the
  // last in the cached table page, so four slots in a row) and pass the tests together.
  // (The formats whose leaf is pa | bits: another encoder would take four copies a step.)
  const S = MAPDESC_STRIDE;
  if (orable) for (; e + 3 * S < end; e += 4 * S) {
    const v0 = load<u64>(e);
    const v1 = load<u64>(e + S);
    const v2 = load<u64>(e + 2 * S);
    const v3 = load<u64>(e + 3 * S);
    const p0 = load<u64>(e + 8);
    const p1 = load<u64>(e + S + 8);
    const p2 = load<u64>(e + 2 * S + 8);
    const p3 = load<u64>(e + 3 * S + 8);
    const sizes = (load<u64>(e + 16) ^ page) | (load<u64>(e + S + 16) ^ page) | (load<u64>(e + 2 * S + 16) ^ page) | (load<u64>(e + 3 * S + 16) ^ page);
    const inOrder = ((v1 - v0) ^ page) | ((v2 - v0) ^ (page << 1)) | ((v3 - v0) ^ (page * 3));
    if ((sizes | inOrder | ((v0 & iovaMask) ^ keyBits) | ((v3 & iovaMask) ^ keyBits) | ((p0 | p1 | p2 | p3) & paMask)) != 0) break;
    const slot = ptr + (<usize>((v0 >> g) & mask) << 3);
    if ((load<u64>(slot) | load<u64>(slot + 8) | load<u64>(slot + 16) | load<u64>(slot + 24)) != 0) break;
    store<u64>(slot, orable ? p0 | bits : pteMkLeaf(fmt, p0, prot, g, g, d));
    store<u64>(slot + 8, orable ? p1 | bits : pteMkLeaf(fmt, p1, prot, g, g, d));
    store<u64>(slot + 16, orable ? p2 | bits : pteMkLeaf(fmt, p2, prot, g, g, d));
    store<u64>(slot + 24, orable ? p3 | bits : pteMkLeaf(fmt, p3, prot, g, g, d));
    store<i32>(e + 24, OK);
    store<i32>(e + S + 24, OK);
    store<i32>(e + 2 * S + 24, OK);
    store<i32>(e + 3 * S + 24, OK);
  }
  // One by one: the rest, and whatever broke the steps above (the tests are each page's own).
  for (; e < end; e += MAPDESC_STRIDE) {
    const iova = load<u64>(e);
    const pa = load<u64>(e + 8);
    // One test for all: a smallest page, iova in the cached table page, both aligned, pa in the OAS.
    if (((load<u64>(e + 16) ^ page) | ((iova & iovaMask) ^ keyBits) | (pa & paMask)) != 0) break;
    const slot = ptr + (<usize>((iova >> g) & mask) << 3);
    if (load<u64>(slot) != 0) break; // in use: the map policy decides (mapRange)
    store<u64>(slot, orable ? pa | bits : pteMkLeaf(fmt, pa, prot, g, g, d));
    store<i32>(e + 24, OK);
  }
  return i + <u32>((e - first) / MAPDESC_STRIDE);
}

/** Maps one descriptor of a batch through mapRange, then caches its leaf-table page. */
export function mapBatchOne(d: usize, iova: u64, pa: u64, size: u64, prot: u32): i32 {
  mcD = 0;
  const st = mapRange(d, iova, pa, size, prot);
  const g = <u32>load<u8>(d + DOMAIN_GRANULE);
  // Seeded only from a map that reached the leaf level (a kept larger leaf stops above it).
  if (st == OK && size == (<u64>1 << g) && mSkippedBytes == 0) seedMapCache(d, iova, prot);
  return st;
}

/** Caches the leaf-table page mapRange just wrote the smallest-page leaf of `iova` into. */
function seedMapCache(d: usize, iova: u64, prot: u32): void {
  const L = load<u32>(d + DOMAIN_LEVELS) - 1;
  const table = getPath(gPathTable, L);
  const slot = getPath(gPathSlot, L);
  const r = findRegion(slot);
  if (r == 0) return;
  const page = slot & ~(<u64>4095);
  const p = readPtr(r, page);
  if ((p & ~(<usize>4095)) == gZeroPage) return; // not backed (cannot be after a write; never write the zero page)
  const g = <u32>load<u8>(d + DOMAIN_GRANULE);
  // A table page holds 512 entries (fewer for a small top-less table): the span they cover.
  const bits = levelBits(d, L);
  const span = g + (bits < 9 ? bits : 9);
  mcSpan = span;
  mcKey = iova >> span;
  mcPtr = p & ~(<usize>4095);
  mcIdxMask = (<u64>1 << (span - g)) - 1;
  mcRec = allocatedFrame(table);
  mcProt = prot;
  mcGen = physGen;
  mcD = d;
}

/** Grows the top of a dynamic-top table (AMD v1) until it covers `last`. OK or ERANGE, ENOMEM. */
function growTop(d: usize, last: u64): i32 {
  if ((load<u32>(d + DOMAIN_FLAGS) & DOMAIN_F_DYNAMIC_TOP) == 0) return OK;
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const ias = load<u32>(d + DOMAIN_IAS);
  for (;;) {
    const cov = coverage(d);
    if (cov >= 64 || (last >> cov) == 0) break;
    if (cov >= ias) return ERANGE;
    const newShift = lvlShift(d, 0) + <u32>load<u8>(d + DOMAIN_LEVEL_BITS);
    const root = load<u64>(d + DOMAIN_ROOT);
    const top = allocTable(d, 0);
    if (top < 0) return <i32>top;
    physWrite64(<u64>top, pteMkTable(fmt, root, newShift, d));
    addAux(<u64>top, 1);
    store<u64>(d + DOMAIN_ROOT, <u64>top);
    store<u32>(d + DOMAIN_LEVELS, load<u32>(d + DOMAIN_LEVELS) + 1);
    store<u8>(d + DOMAIN_TOP_BITS, <u8>(64 - newShift < 9 ? 64 - newShift : 9));
  }
  return OK;
}

/**
 * Maps [iova, iova + size) to [pa, pa + size) with the largest page sizes that fit both
 * alignments. On failure nothing it mapped stays mapped and no table it made stays allocated.
 * Returns OK, EINVAL (unaligned to the smallest page, size 0, no READ or WRITE in prot), ERANGE
 * (iova beyond IAS or pa beyond OAS), EEXIST / EADDRINUSE (something is mapped there, by
 * policy), ENOMEM (no frame for a table). mInvStart/mInvEnd name what a replacing map removed.
 */
export function mapRange(d: usize, iova: u64, pa: u64, size: u64, prot: u32): i32 {
  mInvStart = 0xffffffffffffffff;
  mInvEnd = 0;
  mRemovedBytes = 0;
  mSkippedBytes = 0;
  let st = checkRange(d, iova, size);
  if (st != OK) return st;
  if ((pa & (minPage(d) - 1)) != 0) return EINVAL;
  if ((prot & (PROT_READ | PROT_WRITE)) == 0) return EINVAL;
  const oas = load<u32>(d + DOMAIN_OAS);
  const pend = pa + size;
  if (pend < pa && pend != 0) return ERANGE;
  if ((pa >> oas) != 0 || ((pend - 1) >> oas) != 0) return ERANGE;
  // Radix nodes this map makes for its tables' backing go back if it fails (mem/phys).
  radixLogBegin();
  st = growTop(d, iova + size - 1);
  if (st != OK) { radixLogEnd(true); return st; }
  let done: u64 = 0;
  while (done < size) {
    const shift = bestShift(d, iova + done, pa + done, size - done);
    st = mapOne(d, iova + done, pa + done, shift, prot);
    if (st != OK) {
      const levels = load<u32>(d + DOMAIN_LEVELS);
      pruneFrom(d, descend(d, tableVa(d, iova + done), levels - 1));
      const removed = mRemovedBytes; // what this map destroyed stays destroyed; its own pieces go
      if (done > 0) unmapWalk(d, iova, done, UNMAP_WHOLE_ANY);
      mRemovedBytes = removed;
      radixLogEnd(true);
      return st;
    }
    done += <u64>1 << shift;
  }
  radixLogEnd(false);
  return OK;
}

// Range of leaves removed by the last unmapWalk, for IOTLB invalidation.
export let uGatherStart: u64 = 0;
export let uGatherEnd: u64 = 0;

/** Replaces the block at path depth `depth` by a table of leaves one level down (same attributes). */
function splitBlock(d: usize, depth: u32, pte: u64): i32 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const s = lvlShift(d, depth);
  const ns = s - <u32>load<u8>(d + DOMAIN_LEVEL_BITS);
  const next = allocTable(d, depth + 1);
  if (next < 0) return <i32>next;
  const base = pteLeafAddr(fmt, pte, s, d);
  const n: u64 = <u64>1 << levelBits(d, depth + 1);
  for (let i: u64 = 0; i < n; i++) {
    const st = physWrite64(<u64>next + (i << 3), pteReleaf(fmt, pte, base + (i << ns), ns, ns, d));
    if (st != OK) { freeTableMem(d, <u64>next, depth + 1); return st; }
  }
  addAux(<u64>next, <i32>n);
  physWrite64(getPath(gPathSlot, depth), pteMkTable(fmt, <u64>next, s, d));
  return OK;
}

/**
 * Unmaps from `iova` until `size` bytes are gone or a hole is met, as iommu_unmap does, with
 * `policy` deciding a leaf that the range covers only in part. Returns the bytes counted as
 * unmapped (whole leaves for the WHOLE_* policies, so possibly more than `size`).
 */
function unmapWalk(d: usize, iova: u64, size: u64, policy: u32): u64 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const levels = load<u32>(d + DOMAIN_LEVELS);
  let done: u64 = 0;
  let cur = iova;
  uGatherStart = 0xffffffffffffffff;
  uGatherEnd = 0;
  while (done < size) {
    const depth = descend(d, tableVa(d, cur), levels - 1);
    const slot = getPath(gPathSlot, depth);
    const table = getPath(gPathTable, depth);
    const s = lvlShift(d, depth);
    const pte = physRead64(slot);
    if (pteKind(fmt, pte, s, d) != PTE_LEAF) break;
    const ls = pteLeafShift(fmt, pte, s, d);
    const lsize: u64 = <u64>1 << ls;
    const lstart = cur & ~(lsize - 1);
    if (cur != lstart || size - done < lsize) {
      if (policy == UNMAP_REFUSE) break;
      if (policy == UNMAP_WHOLE_AT_START && cur != lstart) break;
      if (policy == UNMAP_SPLIT) {
        // Only a block splits (a contiguous group, which Linux never writes, does not).
        if (ls != s || depth + 1 >= levels || splitBlock(d, depth, pte) != OK) break;
        continue; // the next descent finds the smaller leaves
      }
    }
    clearLeafGroup(d, table, slot, pte, s);
    pruneFrom(d, depth);
    if (lstart < uGatherStart) uGatherStart = lstart;
    if (lstart + lsize > uGatherEnd || lstart + lsize == 0) uGatherEnd = lstart + lsize;
    done += lsize;
    cur = lstart + lsize;
    if (cur == 0) break; // the top of the space
  }
  return done;
}

/**
 * Unmaps from `iova` until `size` bytes are gone or a hole is met. A leaf partly inside the range
 * is treated by the domain's unmap policy (split, refused, removed whole). Returns the bytes
 * unmapped (0 at a hole or a refused leaf) or EINVAL/ERANGE for bad arguments; the removed range
 * is left in uGatherStart/End.
 */
export function unmapRange(d: usize, iova: u64, size: u64): i64 {
  const st = checkRange(d, iova, size);
  if (st != OK) return st;
  return <i64>unmapWalk(d, iova, size, <u32>load<u8>(d + DOMAIN_POLICY) & 15);
}

/** Frees every table of a domain, root included (domain teardown). */
export function freeAllTables(d: usize): void {
  freeTree(d, load<u64>(d + DOMAIN_ROOT), 0);
  // The record may hold another domain next (another geometry, perhaps over the same root).
  if (pwcD == d) { pwcD = 0; pwcTrust = false; }
  if (mcD == d) mcD = 0;
}
