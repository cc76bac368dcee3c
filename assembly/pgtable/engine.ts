// The io-pgtable engine: writer (map, unmap) and software walker shared by every format.
// Tables live in simulated RAM frames; each table frame's record counts its live entries
// (FRAME_AUX) so that a table left empty by an unmap is freed at once.

import {
  OK, EINVAL, ENOMEM, EEXIST, ERANGE, PAGE_SIZE, PROT_READ, PROT_WRITE, PG_PGTABLE, FRAME_AUX,
  DOMAIN_FORMAT, DOMAIN_IAS, DOMAIN_OAS, DOMAIN_LEVELS, DOMAIN_ROOT, DOMAIN_PGSIZES,
  DOMAIN_TABLE_FRAMES, FAULT_TRANSLATION, FAULT_PERMISSION, FAULT_ADDRESS_SIZE,
  FAULT_ACCESS_FLAG, FAULT_RESERVED_BIT, TRACE_STRIDE, TRACE_MAX,
} from '../abi';
import { gTrace, gPathTable, gPathSlot } from '../state';
import { physRead64, physWrite64 } from '../mem/phys';
import { allocFrames, allocatedFrame, putFrame } from '../mem/frames';
import {
  PTE_INVALID, PTE_TABLE, PTE_LEAF, pteKind, pteAddr, pteMkTable, pteMkLeaf, ptePerm,
  tablesRestrict, lvlShift,
} from './format';

// Walk results (valid when walk() returns 0).
export let wOut: u64 = 0;    // output address of iova
export let wShift: u32 = 0;  // page shift of the leaf
export let wPerm: u32 = 0;   // ACCESS_READ | ACCESS_WRITE granted
export let wDepth: u32 = 0;  // levels visited (entries in the trace)

@inline function idxAt(iova: u64, shift: u32, lvl: u32, ias: u32): u64 {
  // The top level may be narrower than 9 bits (ARM IAS 32..47).
  const bits = lvl == 0 ? ias - shift : 9;
  return (iova >> shift) & ((<u64>1 << bits) - 1);
}

/**
 * Walks the table of domain record `d` for `iova`, as the hardware would.
 * Returns 0 and sets wOut/wShift/wPerm, or a FAULT_* reason. With `trace`, each level's
 * (level, index, table, entry) goes to the trace block.
 */
export function walk(d: usize, iova: u64, trace: bool): u32 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const ias = load<u32>(d + DOMAIN_IAS);
  const levels = load<u32>(d + DOMAIN_LEVELS);
  wDepth = 0;
  if (ias < 64 && (iova >> ias) != 0) return FAULT_ADDRESS_SIZE;
  let table = load<u64>(d + DOMAIN_ROOT);
  let perm: u32 = 3;
  const restrict = tablesRestrict(fmt);
  for (let lvl: u32 = 0; lvl < levels; lvl++) {
    const shift = lvlShift(lvl, levels);
    const idx = idxAt(iova, shift, lvl, ias);
    const pte = physRead64(table + (idx << 3));
    if (trace && lvl < TRACE_MAX) {
      const t = gTrace + <usize>(lvl * TRACE_STRIDE);
      store<u32>(t, lvl);
      store<u32>(t + 4, <u32>idx);
      store<u64>(t + 8, table);
      store<u64>(t + 16, pte);
    }
    wDepth = lvl + 1;
    const kind = pteKind(fmt, pte, shift);
    if (kind == PTE_INVALID) return FAULT_TRANSLATION;
    if (kind == PTE_TABLE) {
      if (restrict) perm &= ptePerm(fmt, pte);
      table = pteAddr(fmt, pte);
      continue;
    }
    if (kind != PTE_LEAF) return restrict ? FAULT_RESERVED_BIT : FAULT_TRANSLATION;
    const size: u64 = <u64>1 << shift;
    const base = pteAddr(fmt, pte);
    // VT-d treats address bits below a large leaf's size as reserved; ARM ignores them (RES0).
    if (restrict && (base & (size - 1)) != 0) return FAULT_RESERVED_BIT;
    const out = (base & ~(size - 1)) | (iova & (size - 1));
    const oas = load<u32>(d + DOMAIN_OAS);
    const leafPerm = ptePerm(fmt, pte);
    if (leafPerm == 0xffffffff) return FAULT_ACCESS_FLAG;
    if ((out >> oas) != 0) return restrict ? FAULT_RESERVED_BIT : FAULT_ADDRESS_SIZE;
    perm &= leafPerm;
    wOut = out;
    wShift = shift;
    wPerm = perm;
    return 0;
  }
  return FAULT_TRANSLATION;
}

/** Address-width and argument checks shared by map and unmap. */
function checkRange(d: usize, iova: u64, size: u64): i32 {
  if (size == 0 || ((iova | size) & (PAGE_SIZE - 1)) != 0) return EINVAL;
  const ias = load<u32>(d + DOMAIN_IAS);
  const end = iova + size;
  if (end < iova && end != 0) return ERANGE;
  if (ias < 64 && (iova >> ias != 0 || (end - 1) >> ias != 0)) return ERANGE;
  return OK;
}

@inline function addAux(table: u64, delta: i32): u32 {
  const rec = allocatedFrame(table);
  if (rec == 0) return 0; // a table written by a guest driver: no bookkeeping to keep
  const v = <u32>(<i32>load<u32>(rec + FRAME_AUX) + delta);
  store<u32>(rec + FRAME_AUX, v);
  return v;
}

function bestShift(d: usize, iova: u64, pa: u64, remaining: u64): u32 {
  const sizes = load<u64>(d + DOMAIN_PGSIZES);
  for (let s: i32 = 30; s >= 12; s -= 9) {
    const size: u64 = <u64>1 << s;
    if ((sizes & size) != 0 && ((iova | pa) & (size - 1)) == 0 && remaining >= size) return <u32>s;
  }
  return 12;
}

// Path of the last descent: the table at each level and the slot used in it.
// Static data, not managed arrays: the core allocates nothing behind the layout's back.
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
    putFrame(t);
    store<u32>(d + DOMAIN_TABLE_FRAMES, load<u32>(d + DOMAIN_TABLE_FRAMES) - 1);
  }
}

/**
 * Follows tables toward `iova`, recording the path, down to the level of page shift `stopShift`
 * at the deepest; returns the depth reached (the first entry that is not followed).
 */
function descend(d: usize, iova: u64, stopShift: u32 = 12): u32 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const ias = load<u32>(d + DOMAIN_IAS);
  const levels = load<u32>(d + DOMAIN_LEVELS);
  let table = load<u64>(d + DOMAIN_ROOT);
  for (let lvl: u32 = 0; lvl < levels; lvl++) {
    const s = lvlShift(lvl, levels);
    const slot = table + (idxAt(iova, s, lvl, ias) << 3);
    setPath(gPathTable, lvl, table);
    setPath(gPathSlot, lvl, slot);
    const pte = physRead64(slot);
    if (s == stopShift || pteKind(fmt, pte, s) != PTE_TABLE) return lvl;
    table = pteAddr(fmt, pte);
  }
  return levels - 1;
}

/**
 * Installs one leaf of page shift `shift`: follows the tables that exist, makes the missing ones.
 * Returns OK, EEXIST (a leaf, or a table that still maps something, is in the way), ENOMEM.
 */
function mapOne(d: usize, iova: u64, pa: u64, shift: u32, prot: u32): i32 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const ias = load<u32>(d + DOMAIN_IAS);
  const levels = load<u32>(d + DOMAIN_LEVELS);
  const depth = descend(d, iova, shift);
  let table = getPath(gPathTable, depth);
  for (let lvl = depth; lvl < levels; lvl++) {
    const s = lvlShift(lvl, levels);
    const slot = table + (idxAt(iova, s, lvl, ias) << 3);
    const kind = pteKind(fmt, physRead64(slot), s);
    if (s == shift) {
      // We require an unmap first.
      if (kind != PTE_INVALID) return EEXIST;
      const st = physWrite64(slot, pteMkLeaf(fmt, pa, prot, s));
      if (st != OK) return st;
      addAux(table, 1);
      return OK;
    }
    // descend() stopped above the target level, so this entry is not a table: a larger leaf
    // (or a reserved entry) is in the way.
    if (kind != PTE_INVALID) return EEXIST;
    const next = allocFrames(1, 1, PG_PGTABLE);
    if (next < 0) return <i32>next;
    const st = physWrite64(slot, pteMkTable(fmt, <u64>next));
    if (st != OK) { putFrame(<u64>next); return st; }
    addAux(table, 1);
    store<u32>(d + DOMAIN_TABLE_FRAMES, load<u32>(d + DOMAIN_TABLE_FRAMES) + 1);
    table = <u64>next;
  }
  return EINVAL;
}

/** Leaf removed by the last unmapOne: its first iova. */
export let uLeafStart: u64 = 0;

/**
 * Removes the leaf that covers `iova`, whole even when `iova` is inside it (Linux >= 6.13).
 * Returns the leaf's size, or 0 when nothing maps `iova`.
 */
function unmapOne(d: usize, iova: u64): u64 {
  const fmt = load<u32>(d + DOMAIN_FORMAT);
  const levels = load<u32>(d + DOMAIN_LEVELS);
  const depth = descend(d, iova);
  const slot = getPath(gPathSlot, depth);
  const s = lvlShift(depth, levels);
  if (pteKind(fmt, physRead64(slot), s) != PTE_LEAF) return 0;
  physWrite64(slot, 0);
  addAux(getPath(gPathTable, depth), -1);
  pruneFrom(d, depth);
  const size: u64 = <u64>1 << s;
  uLeafStart = iova & ~(size - 1);
  return size;
}

/**
 * Maps [iova, iova + size) to [pa, pa + size) with the largest page sizes that fit both
 * alignments. On failure nothing stays mapped and no table stays allocated.
 * Returns OK, EINVAL (unaligned, size 0, no READ or WRITE in prot), ERANGE (iova beyond IAS or
 * pa beyond OAS), EEXIST (something is mapped there), ENOMEM (no frame for a table).
 */
export function mapRange(d: usize, iova: u64, pa: u64, size: u64, prot: u32): i32 {
  let st = checkRange(d, iova, size);
  if (st != OK) return st;
  if ((pa & (PAGE_SIZE - 1)) != 0) return EINVAL;
  if ((prot & (PROT_READ | PROT_WRITE)) == 0) return EINVAL;
  const oas = load<u32>(d + DOMAIN_OAS);
  const pend = pa + size;
  if (pend < pa && pend != 0) return ERANGE;
  if ((pa >> oas) != 0 || ((pend - 1) >> oas) != 0) return ERANGE;
  let done: u64 = 0;
  while (done < size) {
    const shift = bestShift(d, iova + done, pa + done, size - done);
    st = mapOne(d, iova + done, pa + done, shift, prot);
    if (st != OK) {
      pruneFrom(d, descend(d, iova + done));
      if (done > 0) unmapWalk(d, iova, done);
      return st;
    }
    done += <u64>1 << shift;
  }
  return OK;
}

// Range of leaves removed by the last unmapWalk, for IOTLB invalidation.
export let uGatherStart: u64 = 0;
export let uGatherEnd: u64 = 0;

function unmapWalk(d: usize, iova: u64, size: u64): u64 {
  let done: u64 = 0;
  uGatherStart = 0xffffffffffffffff;
  uGatherEnd = 0;
  while (done < size) {
    const n = unmapOne(d, iova + done);
    if (n == 0) break;
    if (uLeafStart < uGatherStart) uGatherStart = uLeafStart;
    if (uLeafStart + n > uGatherEnd) uGatherEnd = uLeafStart + n;
    done += n;
  }
  return done;
}

/**
 * Unmaps from `iova` until `size` bytes are gone or a hole is met, as iommu_unmap does. A leaf
 * larger than what is left is removed whole and counted whole. Returns the bytes unmapped (0 at a
 * hole) or EINVAL/ERANGE for bad arguments; the removed range is left in uGatherStart/End.
 */
export function unmapRange(d: usize, iova: u64, size: u64): i64 {
  const st = checkRange(d, iova, size);
  if (st != OK) return st;
  return <i64>unmapWalk(d, iova, size);
}

/** Frees every table of a domain, root included (domain teardown). Returns frames freed. */
export function freeAllTables(d: usize): u32 {
  const levels = load<u32>(d + DOMAIN_LEVELS);
  return freeTable(load<u32>(d + DOMAIN_FORMAT), load<u64>(d + DOMAIN_ROOT), 0, levels);
}

function freeTable(fmt: u32, table: u64, lvl: u32, levels: u32): u32 {
  let freed: u32 = 0;
  const s = lvlShift(lvl, levels);
  if (lvl + 1 < levels) {
    for (let i: u64 = 0; i < 512; i++) {
      const pte = physRead64(table + (i << 3));
      if (pteKind(fmt, pte, s) == PTE_TABLE) freed += freeTable(fmt, pteAddr(fmt, pte), lvl + 1, levels);
    }
  }
  const rec = allocatedFrame(table);
  if (rec != 0) {
    store<u32>(rec + FRAME_AUX, 0);
    putFrame(table);
    freed++;
  }
  return freed;
}
