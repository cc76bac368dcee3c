// The IOTLB of a unit: sets x ways of TLB_STRIDE-byte entries keyed by (domain, page size, vpn),
// round-robin replacement per set. A lookup probes one set per page size cached since the last
// full flush, smallest first; a probe compares the vpn and the packed (domain, shift) tag. Page
// sizes are any power of two from 4K (every format's leaves: 16K/64K granules, AMD v1 encoded
// sizes, NAPOT); leaves above 2^TLB_MAX_SHIFT are cached as pieces of that size, as hardware
// that splinters large pages does.

import {
  UNIT_TLB_SETS, UNIT_TLB_WAYS, UNIT_TLB_PTR, UNIT_TLB_RR, UNIT_SIZES_CACHED, TLB_STRIDE, TLB_VPN,
  TLB_OUT, TLB_TAG, TLB_PERM, UNIT_STAT_INVALIDATIONS, UNIT_STAT_INVALIDATED,
} from '../abi';
import { afterInvalidate } from './inval';

/** Largest page shift an entry holds (the bitmap of cached sizes is one u32 from 4K). */
export const TLB_MAX_SHIFT: u32 = 43;

@inline export function sizeBit(shift: u32): u32 {
  return 1 << (shift - 12);
}

@inline export function tlbTag(dom: u32, shift: u32): u32 {
  return ((dom + 1) << 8) | shift;
}

@inline export function setIndex(vpn: u64, dom: u32, sets: u32): u32 {
  return (<u32>vpn ^ <u32>(vpn >> 32) ^ domMix(dom)) & (sets - 1);
}

@inline function bump(u: usize, off: u32, n: u64): void {
  store<u64>(u + off, load<u64>(u + off) + n);
}

// The entry the last lookup hit.
export let hitOut: u64 = 0;
export let hitShift: u32 = 0;
export let hitPerm: u32 = 0;

/** The hash term of domain `dom` in setIndex (hoisted by loops that probe one domain). */
@inline export function domMix(dom: u32): u32 {
  return dom * 0x9e3779b1;
}

/**
 * The entry holding (`tag`, `vpn`) or 0, with the set geometry already in hand: `mask` = sets - 1,
 * `setBytes` = ways * TLB_STRIDE, `mix` = domMix(dom). One compare per way (vpn and tag XORed
 * together), no early exit inside the compare.
 */
@inline export function probeSet(tlb: usize, mask: u32, setBytes: u32, mix: u32, tag: u32, vpn: u64): usize {
  return probeAt(tlb + <usize>(setOf(vpn, mix, mask) * setBytes), setBytes, tag, vpn);
}

/** The set of `vpn` (setIndex with the domain's mix in hand). */
@inline export function setOf(vpn: u64, mix: u32, mask: u32): u32 {
  return (<u32>vpn ^ <u32>(vpn >> 32) ^ mix) & mask;
}

/** probeSet in the set at `e` (its first entry). */
@inline export function probeAt(e: usize, setBytes: u32, tag: u32, vpn: u64): usize {
  const end = e + <usize>setBytes;
  do {
    if (((load<u64>(e + TLB_VPN) ^ vpn) | <u64>(load<u32>(e + TLB_TAG) ^ tag)) == 0) return e;
    e += TLB_STRIDE;
  } while (e < end);
  return 0;
}

/** The entry caching (dom, shift, vpn) in the set that holds it, or 0. */
@inline export function probe(tlb: usize, sets: u32, ways: u32, dom: u32, shift: u32, vpn: u64): usize {
  return probeSet(tlb, sets - 1, ways * TLB_STRIDE, domMix(dom), tlbTag(dom, shift), vpn);
}

/** Looks up `iova` for domain id `dom` in unit record `u`. True on a hit (hit* set). */
export function tlbLookup(u: usize, dom: u32, iova: u64): bool {
  const sizes = load<u32>(u + UNIT_SIZES_CACHED);
  if (sizes == 0) return false;
  const mask = load<u32>(u + UNIT_TLB_SETS) - 1;
  const setBytes = load<u32>(u + UNIT_TLB_WAYS) * TLB_STRIDE;
  const tlb = <usize>load<u32>(u + UNIT_TLB_PTR);
  const mix = domMix(dom);
  for (let left = sizes; left != 0; left &= left - 1) {
    const shift = 12 + <u32>ctz(left);
    const e = probeSet(tlb, mask, setBytes, mix, tlbTag(dom, shift), iova >> shift);
    if (e != 0) {
      hitOut = load<u64>(e + TLB_OUT) | (iova & ((<u64>1 << shift) - 1));
      hitShift = shift;
      hitPerm = load<u32>(e + TLB_PERM);
      return true;
    }
  }
  return false;
}

/** Caches a walk result: leaf of `shift` mapping iova to out, with rights `perm`. */
export function tlbInsert(u: usize, dom: u32, iova: u64, out: u64, shift: u32, perm: u32): void {
  tlbFill(u, load<u32>(u + UNIT_TLB_SETS) - 1, load<u32>(u + UNIT_TLB_WAYS), domMix(dom), dom, iova, out, shift, perm);
}

/** tlbInsert with the set geometry already in hand (`mask` = sets - 1, `mix` = domMix(dom)). */
export function tlbFill(u: usize, mask: u32, ways: u32, mix: u32, dom: u32, iova: u64, out: u64, shift: u32, perm: u32): void {
  tlbFillAt(u, <usize>load<u32>(u + UNIT_TLB_PTR), <usize>load<u32>(u + UNIT_TLB_RR), mask, ways, mix, dom, iova, out, shift, perm);
}

/** tlbFill with the entry and round-robin arrays in hand too (the batch loops inline it). */
@inline export function tlbFillAt(u: usize, tlb: usize, rrs: usize, mask: u32, ways: u32, mix: u32, dom: u32, iova: u64, out: u64, shift: u32, perm: u32): void {
  if (shift > TLB_MAX_SHIFT) shift = TLB_MAX_SHIFT;
  const vpn = iova >> shift;
  const set = setOf(vpn, mix, mask);
  fillSet(u, tlb + <usize>(set * ways * TLB_STRIDE), rrs + <usize>set, ways, vpn, out, shift, tlbTag(dom, shift), perm);
}

/**
 * Caches (`tag`, `vpn`) -> out in the set at `base` (its first entry; `rr` its round-robin
 * counter), `shift` at most TLB_MAX_SHIFT: a free way first, else the set's round-robin victim
 * (no division: the counter wraps by compare).
 */
@inline export function fillSet(u: usize, base: usize, rr: usize, ways: u32, vpn: u64, out: u64, shift: u32, tag: u32, perm: u32): void {
  fillEntry(victimIn(base, ways * TLB_STRIDE, rr), vpn, out & ~((<u64>1 << shift) - 1), tag, perm);
  const sizes = load<u32>(u + UNIT_SIZES_CACHED);
  if ((sizes & sizeBit(shift)) == 0) store<u32>(u + UNIT_SIZES_CACHED, sizes | sizeBit(shift));
}

/**
 * fillSet of a 4K leaf for a loop that probed the set at `base` (`setBytes` long; `rr` its
 * round-robin counter) and knows that 4K leaves are cached already (the size bitmap stays).
 */
@inline export function fillSet4k(base: usize, setBytes: u32, rr: usize, vpn: u64, out: u64, tag: u32, perm: u32): void {
  fillEntry(victimIn(base, setBytes, rr), vpn, out & ~(<u64>0xfff), tag, perm);
}

/** The way a fill of the set at `base` takes: the first free one, else the round-robin victim (counter advanced). */
@inline function victimIn(base: usize, setBytes: u32, rr: usize): usize {
  const end = base + <usize>setBytes;
  let e = base;
  do {
    if (load<u32>(e + TLB_TAG) == 0) return e;
    e += TLB_STRIDE;
  } while (e < end);
  const w = <u32>load<u8>(rr);
  store<u8>(rr, <u8>((w + 1) * TLB_STRIDE == setBytes ? 0 : w + 1));
  return base + <usize>(w * TLB_STRIDE);
}

/** Writes an entry: tag and rights in one store (TLB_PERM follows TLB_TAG). */
@inline function fillEntry(e: usize, vpn: u64, out: u64, tag: u32, perm: u32): void {
  store<u64>(e + TLB_VPN, vpn);
  store<u64>(e + TLB_OUT, out);
  store<u64>(e + TLB_TAG, <u64>tag | (<u64>perm << 32));
}

@inline function entries(u: usize): u32 {
  return load<u32>(u + UNIT_TLB_SETS) * load<u32>(u + UNIT_TLB_WAYS);
}

/** Drops every entry of the unit. */
export function tlbInvalidateAll(u: usize): void {
  const n = tlbValidEntries(u);
  memory.fill(<usize>load<u32>(u + UNIT_TLB_PTR), 0, <usize>(entries(u) * TLB_STRIDE));
  store<u32>(u + UNIT_SIZES_CACHED, 0);
  bump(u, UNIT_STAT_INVALIDATIONS, 1);
  bump(u, UNIT_STAT_INVALIDATED, n);
}

/** Drops the entries of domain `dom`. */
export function tlbInvalidateDomain(u: usize, dom: u32): void {
  tlbInvalidateRange(u, dom, 0, 0);
}

/**
 * Drops the entries of domain `dom` that overlap [start, end) (end exclusive; 0 means to the
 * top), whatever their page size: a 2 MiB entry goes when any 4 KiB piece of it is unmapped.
 * Small ranges probe the sets; ranges with more pages than the TLB has entries scan it.
 */
export function tlbInvalidateRange(u: usize, dom: u32, start: u64, end: u64): void {
  let n: u64 = 0;
  const tlb = <usize>load<u32>(u + UNIT_TLB_PTR);
  const count = entries(u);
  const last = end - 1;
  if (((last - start) >> 12) >= <u64>count) {
    for (let i: u32 = 0; i < count; i++) {
      const e = tlb + <usize>(i * TLB_STRIDE);
      const tag = load<u32>(e + TLB_TAG);
      if ((tag >> 8) != dom + 1) continue;
      const shift = tag & 0xff;
      const first = load<u64>(e + TLB_VPN) << shift;
      const eLast = first + ((<u64>1 << shift) - 1);
      if (first <= last && start <= eLast) { store<u32>(e + TLB_TAG, 0); n++; }
    }
  } else {
    const sizes = load<u32>(u + UNIT_SIZES_CACHED);
    const sets = load<u32>(u + UNIT_TLB_SETS);
    const ways = load<u32>(u + UNIT_TLB_WAYS);
    for (let left = sizes; left != 0; left &= left - 1) {
      const shift = 12 + <u32>ctz(left);
      const vLast = last >> shift;
      for (let vpn = start >> shift; vpn <= vLast; vpn++) {
        const e = probe(tlb, sets, ways, dom, shift, vpn);
        if (e != 0) { store<u32>(e + TLB_TAG, 0); n++; }
      }
    }
  }
  bump(u, UNIT_STAT_INVALIDATIONS, 1);
  bump(u, UNIT_STAT_INVALIDATED, n);
  // What else caches the domain: its PASID-tagged entries, nested domains over it, device ATCs.
  afterInvalidate(u, dom, start, end);
}

/** Valid entries, for leak checks. */
export function tlbValidEntries(u: usize): u32 {
  let n: u32 = 0;
  const tlb = <usize>load<u32>(u + UNIT_TLB_PTR);
  const count = entries(u);
  for (let i: u32 = 0; i < count; i++) if (load<u32>(tlb + <usize>(i * TLB_STRIDE) + TLB_TAG) != 0) n++;
  return n;
}
