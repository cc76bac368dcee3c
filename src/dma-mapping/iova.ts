/**
 * IOVA allocator of the DMA mapping layer, modelled on Linux drivers/iommu/iova.c (tree
 * allocator, reserve_iova, range caches) and the IOVA part of drivers/iommu/dma-iommu.c
 * (iommu_dma_alloc_iova / iommu_dma_free_iova). Spec: spec/iommu.md §A10.
 *
 * Shape of the model:
 *  - A red-black tree of ranges keyed by first PFN. Allocated, reserved and range-cached ranges
 *    all live in it, plus an anchor node above the usable space so every walk has a top node.
 *  - Allocation is top-down below an (inclusive) limit PFN: the highest gap that fits, with the
 *    start aligned to roundup_pow_of_two(size) when size-aligned. The walk starts at a cached node
 *    (one for 32-bit limits, one for the rest) instead of the top, and only when nothing fits
 *    below it does it retry the space above it.
 *  - A failed allocation remembers its size in max32AllocSize; 32-bit requests that large or
 *    larger then fail without a walk until a range in the 32-bit space is freed.
 *  - allocFast/freeFast add the per-CPU magazine cache (one simulated CPU): sizes up to
 *    2^(IOVA_RANGE_CACHE_MAX_SIZE-1) pages, loaded + prev magazines of IOVA_MAG_SIZE, a depot of
 *    full magazines trimmed every IOVA_DEPOT_DELAY_MS of simulated time (see tick()).
 *
 * PFNs are JavaScript numbers, not bigints. Every PFN of a 64-bit space with a granule of at
 * least 2 KiB is below 2^53 and therefore exact in a double, and the allocator only adds,
 * subtracts, compares and aligns to powers of two (x - x % a), all exact below 2^53. Numbers keep
 * the tree walks free of bigint allocation, which costs several times more per comparison. For
 * granules under 2 KiB the top of the space is clipped to 2^53 - 2 (documented at maxPfn).
 * Byte addresses at the API edge (allocIova, freeIova, reserveRange) are bigints.
 *
 * Errors: bad input throws SimError EINVAL naming the field and changes nothing. Running out of
 * space is not an error: the alloc functions return null, as the kernel returns NULL / 0.
 */

import { SimError } from '../../bindings/errors.js';
import { RbNode, RbTree } from './rbtree.js';

/** Orders 0..IOVA_RANGE_CACHE_MAX_SIZE-1 (1..32 pages) have a range cache. */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;
/** Entries per magazine (1 KiB magazines in the kernel: a size word plus 127 PFNs). */
export const IOVA_MAG_SIZE = 127;
/** Period of the depot trimming work, in simulated milliseconds. */
export const IOVA_DEPOT_DELAY_MS = 100;
/** Simulated CPUs; the depot is trimmed down to this many magazines. */
export const IOVA_NUM_CPUS = 1;
/** PFN of the anchor node (the kernel uses ~0UL; here the largest exact integer). */
export const IOVA_ANCHOR_PFN = Number.MAX_SAFE_INTEGER;
/** The x86 MSI window, which dma-iommu reserves in every DMA domain (inclusive bounds). */
export const IOVA_MSI_WINDOW = { start: 0xfee0_0000n, end: 0xfeef_ffffn } as const;

/** Largest granule accepted: the largest CPU page size Linux supports (64 KiB on arm64). */
const MAX_GRANULE = 0x1_0000;
/** Allocations below this many pages are rounded up to a power of two by allocFast. */
const FAST_ROUNDUP_BELOW = 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1);

// Node kinds. Cached ranges stay in the tree (the space is still taken) but belong to no one.
const KIND_ALLOCATED = 0;
const KIND_RESERVED = 1;
const KIND_CACHED = 2;
const KIND_ANCHOR = 3;

class IovaNode extends RbNode {
  /** Last PFN of the range, inclusive; `key` is the first. */
  hi: number;
  kind: number;

  constructor(lo: number, hi: number, kind: number) {
    super(lo);
    this.hi = hi;
    this.kind = kind;
  }
}

/** A snapshot of one range of the domain. */
export interface IovaRange {
  /** First PFN of the range. */
  readonly pfnLo: number;
  /** Inclusive. */
  readonly pfnHi: number;
  /** Number of pages. */
  readonly size: number;
  /** True for reserve()d ranges, false for allocations. */
  readonly reserved: boolean;
}

/** Counters of an {@link IovaDomain}, a snapshot. */
export interface IovaStats {
  /** Ranges handed out and not yet freed (reserved and cached ranges not included). */
  allocatedRanges: number;
  /** Pages in those ranges. */
  allocatedPfns: number;
  /** Ranges kept out by reserve(). */
  reservedRanges: number;
  /** Pages in those ranges. */
  reservedPfns: number;
  /** Freed ranges parked in the range caches (still occupying the tree). */
  cachedRanges: number;
  /** Pages in those ranges. */
  cachedPfns: number;
  /** Depot magazines, all orders. */
  depotMagazines: number;
  /** allocFast served from a magazine. */
  cacheHits: number;
  /** allocFast of a cacheable size that found nothing suitable in the magazines. */
  cacheMisses: number;
  /** Times allocFast emptied every cache to retry a failed tree allocation. */
  cacheFlushes: number;
  /** Tree allocations that failed (including max32 fast fails). */
  allocFailures: number;
  /** Current max32_alloc_size, in pages. */
  max32AllocSize: number;
  /** Tree nodes stepped over by allocations so far: the walk's work, to show it stays near-linear. */
  walkSteps: number;
}

/**
 * Per-device state of dma-iommu's 32-bit-first policy (dev->iommu->pci_32bit_workaround):
 * true for PCI devices unless forced to DAC. allocIova clears it the first time a 32-bit attempt
 * fails, after which that device goes straight to its full mask, as in the kernel.
 */
export interface IovaDevice {
  /** Try below 4 GiB first; cleared after the first failed 32-bit attempt. */
  pci32BitWorkaround: boolean;
}

/** Options of {@link IovaDomain.allocIova}: dma-iommu's 32-bit-first policy. */
export interface AllocIovaOptions {
  /** Try below 4 GiB first when the limit is above it. Ignored when `device` is given. @default false */
  dev32First?: boolean;
  /** Sticky per-device variant of `dev32First`; see IovaDevice. */
  device?: IovaDevice;
}

/** One magazine: a stack of cached ranges of a single order. */
class Magazine {
  readonly nodes: (IovaNode | null)[] = new Array<IovaNode | null>(IOVA_MAG_SIZE).fill(null);
  size = 0;
}

/** The caches of one order: the CPU's loaded/prev pair plus the shared depot. */
class Rcache {
  loaded = new Magazine();
  prev = new Magazine();
  /** Full magazines only; last element is the head (LIFO, like the kernel's list). */
  readonly depot: Magazine[] = [];
  /** Simulated time at which the trimming work runs next, or null if not scheduled. */
  workDue: number | null = null;
}

const OP_INIT = 'init_iova_domain';
const OP_ALLOC = 'alloc_iova';
const OP_ALLOC_FAST = 'alloc_iova_fast';
const OP_DMA_ALLOC = 'iommu_dma_alloc_iova';
const OP_FREE = 'free_iova';
const OP_FREE_FAST = 'free_iova_fast';
const OP_DMA_FREE = 'iommu_dma_free_iova';
const OP_RESERVE = 'reserve_iova';
const OP_FIND = 'find_iova';

function einval(op: string, field: string, why: string): SimError {
  return new SimError('EINVAL', op, `${field}: ${why}`);
}

/** Smallest power of two >= n, for 1 <= n <= 2^53. */
function roundupPow2(n: number): number {
  if (n <= 0x8000_0000) return n <= 1 ? 1 : 2 ** (32 - Math.clz32(n - 1));
  let p = 0x1_0000_0000;
  while (p < n) p *= 2;
  return p;
}

/** ceil(log2(n)) for n >= 1 (order_base_2). */
function orderOf(n: number): number {
  return Math.log2(roundupPow2(n));
}

/**
 * An IOVA allocator (`struct iova_domain`, drivers/iommu/iova.c): a red-black tree of allocated
 * and reserved PFN ranges, allocating top-down below a limit, with the per-order range caches
 * (magazines and depot) of alloc_iova_fast. The DMA API uses one per paging domain through its
 * {@link IommuDmaCookie}; it can also be used alone. All bad arguments throw SimError EINVAL.
 */
export class IovaDomain {
  /** Bytes per IOVA page (the smallest IOMMU page size). */
  readonly granule: number;
  /** log2(granule). */
  readonly shift: number;
  /** Lowest PFN ever allocated. */
  readonly startPfn: number;
  /** First PFN at or above 4 GiB. */
  readonly dma32BitPfn: number;
  /**
   * Highest usable PFN: the top of the 64-bit space, clipped below the anchor (2^53 - 1) when
   * the granule is under 2 KiB. Limits above it are clamped to it.
   */
  readonly maxPfn: number;

  private readonly tree = new RbTree<IovaNode>();
  private readonly anchor: IovaNode;
  /** Where 32-bit-limited walks start: the last range allocated below 4 GiB, or its successor. */
  private cached32: IovaNode;
  /** Where other walks start. */
  private cached: IovaNode;
  private max32AllocSize: number;

  private readonly rcaches: Rcache[] = [];
  private nowMs = 0;

  private nAllocated = 0;
  private pfnsAllocated = 0;
  private nReserved = 0;
  private pfnsReserved = 0;
  private nCached = 0;
  private pfnsCached = 0;
  private hits = 0;
  private misses = 0;
  private flushes = 0;
  private failures = 0;
  private steps = 0;

  /**
   * init_iova_domain. `granule`: power of two, 1..64 KiB. `startPfn`: lowest allocatable PFN
   * (dma-iommu uses max(1, aperture_start >> shift) so that PFN 0 never comes out).
   * @throws {@link SimError} EINVAL for a bad granule or a startPfn outside the space.
   */
  constructor(granule: number | bigint, startPfn: number | bigint) {
    const g = typeof granule === 'bigint' ? Number(granule) : granule;
    if (!Number.isInteger(g) || g < 1 || g > MAX_GRANULE || (g & (g - 1)) !== 0) {
      throw einval(OP_INIT, 'granule', `must be a power of two from 1 to ${MAX_GRANULE}, got ${granule}`);
    }
    this.granule = g;
    this.shift = Math.log2(g);
    this.maxPfn = Math.min(IOVA_ANCHOR_PFN - 1, 2 ** (64 - this.shift) - 1);
    this.startPfn = toPfn(startPfn, OP_INIT, 'startPfn', this.maxPfn);
    this.dma32BitPfn = 2 ** (32 - this.shift);
    this.max32AllocSize = this.dma32BitPfn;
    this.anchor = new IovaNode(IOVA_ANCHOR_PFN, IOVA_ANCHOR_PFN, KIND_ANCHOR);
    this.tree.insert(this.anchor);
    this.cached32 = this.anchor;
    this.cached = this.anchor;
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) this.rcaches.push(new Rcache());
  }

  // ---------------------------------------------------------------------------------------------
  // Tree allocator

  /**
   * alloc_iova: `size` pages at the highest free place ending at or below `limitPfn`
   * (inclusive; clamped to maxPfn) and starting at or above startPfn, aligned to
   * roundup_pow_of_two(size) if `sizeAligned`. Returns null when nothing fits.
   * @throws {@link SimError} EINVAL for a size that is not a positive integer or a bad limit.
   */
  alloc(size: number | bigint, limitPfn: number | bigint, sizeAligned = true): IovaRange | null {
    const n = this.checkSize(size, OP_ALLOC);
    const limit = this.checkLimit(limitPfn, OP_ALLOC);
    const node = this.allocTree(n, limit + 1, sizeAligned);
    if (node === null) return null;
    this.nAllocated++;
    this.pfnsAllocated += n;
    return snapshot(node);
  }

  /**
   * find_iova: the allocated or reserved range containing `pfn`, or null (free space, or a
   * freed range still parked in a range cache).
   * @throws {@link SimError} EINVAL when `pfn` is not a PFN.
   */
  find(pfn: number | bigint): IovaRange | null {
    const p = toPfn(pfn, OP_FIND, 'pfn', IOVA_ANCHOR_PFN);
    const node = this.findNode(p);
    if (node === null || (node.kind !== KIND_ALLOCATED && node.kind !== KIND_RESERVED)) return null;
    return snapshot(node);
  }

  /**
   * free_iova. Given a PFN, frees the allocated range containing it (the kernel's lookup); given
   * a range, that exact range.
   * @throws {@link SimError} EINVAL if it is not a live allocation (free space, reserved, already
   *   freed, or already parked in a range cache).
   */
  free(target: number | bigint | IovaRange): void {
    let node: IovaNode | null;
    if (typeof target === 'object') {
      const lo = toPfn(target.pfnLo, OP_FREE, 'range.pfnLo', IOVA_ANCHOR_PFN);
      node = this.findNode(lo);
      if (node === null || node.key !== lo || node.hi !== target.pfnHi) {
        throw einval(OP_FREE, 'range', `[${hex(lo)}..${hex(target.pfnHi)}] is not an allocated range`);
      }
    } else {
      const p = toPfn(target, OP_FREE, 'pfn', IOVA_ANCHOR_PFN);
      node = this.findNode(p);
      if (node === null) throw einval(OP_FREE, 'pfn', `${hex(p)} is not in an allocated range`);
    }
    this.checkLive(node, OP_FREE, 'pfn');
    this.nAllocated--;
    this.pfnsAllocated -= node.hi - node.key + 1;
    this.eraseNode(node);
  }

  /**
   * reserve_iova: keeps [pfnLo, pfnHi] (inclusive) out of every allocation. Overlapping or
   * enclosing reservations are merged the kernel's way: the first overlapped reservation grows
   * down to pfnLo, and the part above the last one becomes a new node. Ranges parked in the range
   * caches are flushed first. Returns the reservation that now ends the range.
   * @throws {@link SimError} EINVAL when pfnHi < pfnLo, either is beyond maxPfn, or the range
   *   overlaps a live allocation.
   */
  reserve(pfnLo: number | bigint, pfnHi: number | bigint): IovaRange {
    const lo0 = toPfn(pfnLo, OP_RESERVE, 'pfnLo', this.maxPfn);
    const hi = toPfn(pfnHi, OP_RESERVE, 'pfnHi', this.maxPfn);
    if (hi < lo0) throw einval(OP_RESERVE, 'pfnHi', `${hex(hi)} is below pfnLo ${hex(lo0)}`);

    let overlaps = this.overlapping(lo0, hi);
    for (const n of overlaps) {
      if (n.kind === KIND_ALLOCATED) {
        throw einval(OP_RESERVE, 'pfnLo',
          `[${hex(lo0)}..${hex(hi)}] overlaps allocated range [${hex(n.key)}..${hex(n.hi)}]`);
      }
    }
    if (overlaps.some((n) => n.kind === KIND_CACHED)) {
      this.flushCaches();
      overlaps = this.overlapping(lo0, hi);
    }

    let lo = lo0;
    for (const n of overlaps) {
      // Growing the key downwards keeps the order: nothing lies between lo and n (the nodes
      // below n that overlapped were handled before and moved lo above themselves).
      if (lo < n.key) {
        this.pfnsReserved += n.key - lo;
        n.key = lo;
      }
      if (hi <= n.hi) return snapshot(n);
      lo = n.hi + 1;
    }
    const node = new IovaNode(lo, hi, KIND_RESERVED);
    this.tree.insert(node);
    this.nReserved++;
    this.pfnsReserved += hi - lo + 1;
    return snapshot(node);
  }

  /**
   * Reserves the bytes [start, start + length - 1], widened to whole granules, as
   * iova_reserve_iommu_regions does for each reserved region (MSI window, PCI windows).
   * @throws {@link SimError} EINVAL for a non-positive length, a negative start, a range beyond
   *   the space or overlapping a live allocation.
   */
  reserveRange(start: bigint, length: bigint): IovaRange {
    if (length <= 0n) throw einval(OP_RESERVE, 'length', `must be positive, got ${length}`);
    if (start < 0n) throw einval(OP_RESERVE, 'start', `must not be negative, got ${start}`);
    const sh = BigInt(this.shift);
    return this.reserve(start >> sh, (start + length - 1n) >> sh);
  }

  // ---------------------------------------------------------------------------------------------
  // Range caches

  /**
   * alloc_iova_fast: `size` pages below `limitPfn` (inclusive), always size-aligned. Sizes under
   * 32 pages are rounded up to a power of two first, so that what is freed back fits the cache
   * of its order. Tries the range cache, then the tree; if the tree fails and `flushRcache`,
   * empties every cache back into the tree and tries once more. Returns the first PFN or null.
   * @throws {@link SimError} EINVAL for a size that is not a positive integer or a bad limit.
   */
  allocFast(size: number | bigint, limitPfn: number | bigint, flushRcache = true): number | null {
    let n = this.checkSize(size, OP_ALLOC_FAST);
    const limit = this.checkLimit(limitPfn, OP_ALLOC_FAST);
    if (n < FAST_ROUNDUP_BELOW) n = roundupPow2(n);

    const order = orderOf(n);
    if (order < IOVA_RANGE_CACHE_MAX_SIZE) {
      const node = this.rcacheGet(this.rcaches[order]!, limit + 1 - n);
      if (node !== null) {
        this.hits++;
        node.kind = KIND_ALLOCATED;
        this.nCached--;
        this.pfnsCached -= n;
        this.nAllocated++;
        this.pfnsAllocated += n;
        return node.key;
      }
      this.misses++;
    }

    let node = this.allocTree(n, limit + 1, true);
    if (node === null && flushRcache) {
      this.flushes++;
      this.flushCaches();
      node = this.allocTree(n, limit + 1, true);
    }
    if (node === null) return null;
    this.nAllocated++;
    this.pfnsAllocated += n;
    return node.key;
  }

  /**
   * free_iova_fast: returns a range from allocFast. `pfn` must be its first PFN and `size` the
   * size asked of allocFast (or the rounded size). A cacheable range goes into the range cache
   * of its order, otherwise back to the tree.
   * @throws {@link SimError} EINVAL if `pfn` does not start a live allocation, or `size` does not
   *   match it (the kernel would cache it under the wrong order and hand out overlapping ranges later).
   */
  freeFast(pfn: number | bigint, size: number | bigint): void {
    const p = toPfn(pfn, OP_FREE_FAST, 'pfn', IOVA_ANCHOR_PFN);
    const n = this.checkSize(size, OP_FREE_FAST);
    const node = this.findNode(p);
    if (node === null || node.key !== p) {
      throw einval(OP_FREE_FAST, 'pfn', `${hex(p)} does not start an allocated range`);
    }
    this.checkLive(node, OP_FREE_FAST, 'pfn');
    const nodeSize = node.hi - node.key + 1;
    const rounded = n < FAST_ROUNDUP_BELOW ? roundupPow2(n) : n;
    if (rounded !== nodeSize) {
      throw einval(OP_FREE_FAST, 'size', `${n} pages does not match the ${nodeSize}-page range at ${hex(p)}`);
    }
    this.nAllocated--;
    this.pfnsAllocated -= nodeSize;

    const order = orderOf(nodeSize);
    // Only ranges the cache could itself have produced go in: a power of two, size-aligned.
    if (order < IOVA_RANGE_CACHE_MAX_SIZE && roundupPow2(nodeSize) === nodeSize && p % nodeSize === 0) {
      node.kind = KIND_CACHED;
      this.nCached++;
      this.pfnsCached += nodeSize;
      this.rcacheInsert(this.rcaches[order]!, node);
      return;
    }
    this.eraseNode(node);
  }

  /**
   * Empties every magazine and the depots back into the tree (free_cpu_cached_iovas for the one
   * CPU, then free_global_cached_iovas).
   */
  flushCaches(): void {
    // Same order as the kernel (CPU magazines of every order, then the depots, head first):
    // the order of frees decides where the walk starts end up, hence later addresses.
    for (const rc of this.rcaches) {
      this.magazineFreeAll(rc.loaded);
      this.magazineFreeAll(rc.prev);
    }
    for (const rc of this.rcaches) {
      let mag: Magazine | undefined;
      while ((mag = rc.depot.pop()) !== undefined) this.magazineFreeAll(mag);
    }
  }

  /**
   * Advances simulated time. Each order's depot-trimming work runs every IOVA_DEPOT_DELAY_MS
   * once a magazine went to the depot: while the depot holds more magazines than CPUs it frees
   * one magazine's ranges per run; when it holds no more than that the work stops.
   * @throws {@link SimError} EINVAL when `ms` is negative or not finite.
   */
  tick(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw einval('iova_depot_work', 'ms', `must be a finite non-negative number, got ${ms}`);
    this.nowMs += ms;
    for (const rc of this.rcaches) {
      while (rc.workDue !== null && rc.workDue <= this.nowMs) {
        if (rc.depot.length > IOVA_NUM_CPUS) {
          this.magazineFreeAll(rc.depot.pop()!);
          rc.workDue += IOVA_DEPOT_DELAY_MS;
        } else {
          rc.workDue = null;
        }
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // dma-iommu face: byte addresses

  /**
   * iommu_dma_alloc_iova: `sizeBytes` (rounded up to the granule) below `dmaLimit`, the device's
   * DMA mask (inclusive byte address, e.g. 2^64 - 1). When the mask reaches above 4 GiB and the
   * device wants 32-bit-first, tries below 4 GiB without flushing the caches, then the full mask
   * with flushing. Returns the IOVA or null when the space is exhausted.
   * @throws {@link SimError} EINVAL for a non-positive size or a limit below the domain's start.
   */
  allocIova(sizeBytes: bigint, dmaLimit: bigint, opts: AllocIovaOptions = {}): bigint | null {
    if (sizeBytes <= 0n) throw einval(OP_DMA_ALLOC, 'size', `must be positive, got ${sizeBytes}`);
    const sh = BigInt(this.shift);
    if (dmaLimit < 0n || dmaLimit >> sh < BigInt(this.startPfn)) {
      throw einval(OP_DMA_ALLOC, 'dmaLimit', `0x${dmaLimit.toString(16)} is below the domain start`);
    }
    const pagesBig = (sizeBytes + BigInt(this.granule) - 1n) >> sh;
    const limitBig = dmaLimit >> sh;
    const limitPfn = limitBig > BigInt(this.maxPfn) ? this.maxPfn : Number(limitBig);
    // Sizes beyond the space cannot fit; clamped so that they fail as a walk rather than overflow.
    const pages = pagesBig > BigInt(this.maxPfn) + 1n ? this.maxPfn + 2 : Number(pagesBig);

    const want32 = opts.device !== undefined ? opts.device.pci32BitWorkaround : opts.dev32First === true;
    if (dmaLimit > 0xffff_ffffn && want32) {
      // A domain starting above 4 GiB has no 32-bit space: the attempt just fails.
      const pfn = this.dma32BitPfn - 1 >= this.startPfn ? this.allocFast(pages, this.dma32BitPfn - 1, false) : null;
      if (pfn !== null) return BigInt(pfn) << sh;
      // The kernel logs "Using %d-bit DMA addresses" and stops trying for this device.
      if (opts.device !== undefined) opts.device.pci32BitWorkaround = false;
    }
    const pfn = this.allocFast(pages, limitPfn, true);
    return pfn === null ? null : BigInt(pfn) << sh;
  }

  /**
   * iommu_dma_free_iova: frees an IOVA from allocIova with the size it was allocated with.
   * @throws {@link SimError} EINVAL for a non-positive size, an unaligned or out-of-space IOVA,
   *   or one that does not start a live allocation of that size.
   */
  freeIova(iova: bigint, sizeBytes: bigint): void {
    if (sizeBytes <= 0n) throw einval(OP_DMA_FREE, 'size', `must be positive, got ${sizeBytes}`);
    if (iova < 0n || iova % BigInt(this.granule) !== 0n) {
      throw einval(OP_DMA_FREE, 'iova', `0x${iova.toString(16)} is not a granule-aligned IOVA`);
    }
    const sh = BigInt(this.shift);
    const pfn = iova >> sh;
    if (pfn > BigInt(this.maxPfn)) throw einval(OP_DMA_FREE, 'iova', `0x${iova.toString(16)} is beyond the IOVA space`);
    const pages = (sizeBytes + BigInt(this.granule) - 1n) >> sh;
    if (pages > BigInt(this.maxPfn) + 1n) throw einval(OP_DMA_FREE, 'size', `${sizeBytes} is larger than the IOVA space`);
    this.freeFast(Number(pfn), Number(pages));
  }

  // ---------------------------------------------------------------------------------------------
  // Introspection

  /** The allocator's counters, a snapshot. */
  stats(): IovaStats {
    let depot = 0;
    for (const rc of this.rcaches) depot += rc.depot.length;
    return {
      allocatedRanges: this.nAllocated,
      allocatedPfns: this.pfnsAllocated,
      reservedRanges: this.nReserved,
      reservedPfns: this.pfnsReserved,
      cachedRanges: this.nCached,
      cachedPfns: this.pfnsCached,
      depotMagazines: depot,
      cacheHits: this.hits,
      cacheMisses: this.misses,
      cacheFlushes: this.flushes,
      allocFailures: this.failures,
      max32AllocSize: this.max32AllocSize,
      walkSteps: this.steps,
    };
  }

  /** Every allocated and reserved range in address order (cached ranges left out). O(n). */
  *ranges(): IterableIterator<IovaRange> {
    for (let n = this.tree.first(); n !== null; n = this.tree.next(n)) {
      if (n.kind === KIND_ALLOCATED || n.kind === KIND_RESERVED) yield snapshot(n);
    }
  }

  /** First PFNs of the nodes the next walks start from (IOVA_ANCHOR_PFN = the anchor). For tests. */
  cachedNodes(): { cached32: number; cached: number } {
    return { cached32: this.cached32.key, cached: this.cached.key };
  }

  /**
   * Checks the tree (red-black rules, order), that ranges do not overlap, that the cached nodes
   * are in the tree, and that the counters match the nodes. Throws on the first violation. O(n).
   */
  checkInvariants(): void {
    this.tree.validate();
    let prevHi = -1;
    let na = 0, pa = 0, nr = 0, pr = 0, nc = 0, pc = 0;
    let seen32 = false, seen = false;
    for (let n = this.tree.first(); n !== null; n = this.tree.next(n)) {
      if (n.key <= prevHi || n.hi < n.key) throw new Error(`iova: range [${n.key}..${n.hi}] overlaps or is inverted`);
      prevHi = n.hi;
      const sz = n.hi - n.key + 1;
      if (n.kind === KIND_ALLOCATED) { na++; pa += sz; }
      else if (n.kind === KIND_RESERVED) { nr++; pr += sz; }
      else if (n.kind === KIND_CACHED) { nc++; pc += sz; }
      if (n === this.cached32) seen32 = true;
      if (n === this.cached) seen = true;
    }
    if (this.tree.last() !== this.anchor) throw new Error('iova: anchor is not the last node');
    if (!seen32 || !seen) throw new Error('iova: a cached node is not in the tree');
    if (na !== this.nAllocated || pa !== this.pfnsAllocated) throw new Error('iova: allocated counters drifted');
    if (nr !== this.nReserved || pr !== this.pfnsReserved) throw new Error('iova: reserved counters drifted');
    if (nc !== this.nCached || pc !== this.pfnsCached) throw new Error('iova: cached counters drifted');
    let inMags = 0;
    for (const rc of this.rcaches) {
      inMags += rc.loaded.size + rc.prev.size;
      for (const m of rc.depot) {
        if (m.size !== IOVA_MAG_SIZE) throw new Error('iova: a depot magazine is not full');
        inMags += m.size;
      }
    }
    if (inMags !== nc) throw new Error('iova: magazines and cached nodes disagree');
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  /**
   * The top-down walk. `limitEx` is exclusive. Phase one walks down from the cached node; if
   * nothing fits between it and startPfn, phase two walks down from the limit to just above the
   * cached node, the only space phase one did not see.
   */
  private allocTree(size: number, limitEx: number, aligned: boolean): IovaNode | null {
    const align = aligned ? roundupPow2(size) : 1;
    const is32 = limitEx <= this.dma32BitPfn;
    if (is32 && size >= this.max32AllocSize) {
      this.failures++;
      return null; // a walk already failed at this size or smaller
    }
    let curr: IovaNode | null = is32 ? this.cached32 : this.cached;
    const retryPfn = curr.hi;
    let high = limitEx;
    let low = this.startPfn;
    let retried = false;
    let newPfn: number;
    for (;;) {
      // Each step puts the candidate just under the node `curr` (or under the limit) and stops
      // as soon as it clears the node below.
      do {
        const c: IovaNode = curr!;
        if (c.key < high) high = c.key;
        newPfn = high >= size ? high - size - ((high - size) % align) : -1;
        curr = this.tree.prev(c);
        this.steps++;
      } while (curr !== null && newPfn >= low && newPfn <= curr.hi);
      if (newPfn >= low) break;
      if (!retried && retryPfn < limitEx) {
        retried = true;
        high = limitEx;
        low = retryPfn + 1;
        curr = this.tree.ceiling(limitEx); // the anchor at worst; same result as walking from it
        continue;
      }
      this.max32AllocSize = size;
      this.failures++;
      return null;
    }
    const node = new IovaNode(newPfn, newPfn + size - 1, KIND_ALLOCATED);
    this.tree.insert(node);
    if (node.hi < this.dma32BitPfn) this.cached32 = node;
    else this.cached = node;
    return node;
  }

  /** Removes a node from the tree, first moving any cached walk start off it. */
  private eraseNode(node: IovaNode): void {
    // The anchor is always above, so next() never returns null here.
    const c32 = this.cached32;
    if (node === c32 || (node.hi < this.dma32BitPfn && node.key >= c32.key)) {
      this.cached32 = this.tree.next(node)!;
    }
    // Space freed below 4 GiB may let a previously failed 32-bit size fit again.
    if (node.key < this.dma32BitPfn) this.max32AllocSize = this.dma32BitPfn;
    if (node.key >= this.cached.key) this.cached = this.tree.next(node)!;
    this.tree.erase(node);
  }

  private findNode(pfn: number): IovaNode | null {
    let n = this.tree.root;
    while (n !== null) {
      if (pfn < n.key) n = n.left;
      else if (pfn > n.hi) n = n.right;
      else return n.kind === KIND_ANCHOR ? null : n;
    }
    return null;
  }

  /** Nodes overlapping [lo, hi], in order. */
  private overlapping(lo: number, hi: number): IovaNode[] {
    const out: IovaNode[] = [];
    let n = this.tree.floor(lo);
    if (n === null || n.hi < lo) n = n === null ? this.tree.first() : this.tree.next(n);
    for (; n !== null && n.key <= hi; n = this.tree.next(n)) {
      if (n.kind !== KIND_ANCHOR) out.push(n);
    }
    return out;
  }

  private checkLive(node: IovaNode, op: string, field: string): void {
    if (node.kind === KIND_RESERVED) {
      throw einval(op, field, `[${hex(node.key)}..${hex(node.hi)}] is reserved, not allocated`);
    }
    if (node.kind === KIND_CACHED) {
      throw einval(op, field, `[${hex(node.key)}..${hex(node.hi)}] was already freed`);
    }
  }

  /** A size in pages: a positive safe integer (or bigint). Sizes beyond the space are legal
   *  requests that simply cannot be met, so they are clamped to one page more than the space. */
  private checkSize(size: number | bigint, op: string): number {
    const cap = this.maxPfn + 2;
    if (typeof size === 'bigint') {
      if (size < 1n) throw einval(op, 'size', `must be at least one page, got ${size}`);
      return size >= BigInt(cap) ? cap : Number(size);
    }
    if (!Number.isSafeInteger(size) || size < 1) {
      throw einval(op, 'size', `must be a positive whole number of pages, got ${size}`);
    }
    return Math.min(size, cap);
  }

  /** An inclusive limit PFN, clamped to maxPfn (limits are often masks like 2^64 - 1). */
  private checkLimit(limitPfn: number | bigint, op: string): number {
    let limit: number;
    if (typeof limitPfn === 'bigint') {
      if (limitPfn < 0n) throw einval(op, 'limitPfn', `must not be negative, got ${limitPfn}`);
      limit = limitPfn > BigInt(this.maxPfn) ? this.maxPfn : Number(limitPfn);
    } else {
      if (!Number.isSafeInteger(limitPfn) || limitPfn < 0) {
        throw einval(op, 'limitPfn', `must be a non-negative whole PFN, got ${limitPfn}`);
      }
      limit = Math.min(limitPfn, this.maxPfn);
    }
    if (limit < this.startPfn) {
      throw einval(op, 'limitPfn', `${hex(limit)} is below startPfn ${hex(this.startPfn)}`);
    }
    return limit;
  }

  /** __iova_rcache_get: a cached range of this order starting at or below `maxPfn`. */
  private rcacheGet(rc: Rcache, maxPfn: number): IovaNode | null {
    if (rc.loaded.size === 0) {
      if (rc.prev.size > 0) {
        const t = rc.loaded;
        rc.loaded = rc.prev;
        rc.prev = t;
      } else if (rc.depot.length > 0) {
        rc.loaded = rc.depot.pop()!; // the empty loaded magazine is dropped
      } else {
        return null;
      }
    }
    // Search the loaded magazine from the top; take the most recent suitable entry and fill its
    // slot with the top one. Only when none suits does the caller go to the tree.
    const mag = rc.loaded;
    for (let i = mag.size - 1; i >= 0; i--) {
      const node = mag.nodes[i]!;
      if (node.key <= maxPfn) {
        mag.size--;
        mag.nodes[i] = mag.nodes[mag.size]!;
        mag.nodes[mag.size] = null;
        return node;
      }
    }
    return null;
  }

  /** __iova_rcache_insert. Always succeeds: a fresh magazine never fails to allocate here. */
  private rcacheInsert(rc: Rcache, node: IovaNode): void {
    if (rc.loaded.size === IOVA_MAG_SIZE) {
      if (rc.prev.size < IOVA_MAG_SIZE) {
        const t = rc.loaded;
        rc.loaded = rc.prev;
        rc.prev = t;
      } else {
        rc.depot.push(rc.loaded);
        rc.loaded = new Magazine();
        if (rc.workDue === null) rc.workDue = this.nowMs + IOVA_DEPOT_DELAY_MS;
      }
    }
    const mag = rc.loaded;
    mag.nodes[mag.size++] = node;
  }

  /** iova_magazine_free_pfns: every range of the magazine back to the tree. */
  private magazineFreeAll(mag: Magazine): void {
    for (let i = 0; i < mag.size; i++) {
      const node = mag.nodes[i]!;
      mag.nodes[i] = null;
      this.nCached--;
      this.pfnsCached -= node.hi - node.key + 1;
      this.eraseNode(node);
    }
    mag.size = 0;
  }
}

function toPfn(v: number | bigint, op: string, field: string, max: number): number {
  if (typeof v === 'bigint') {
    if (v < 0n || v > BigInt(max)) throw einval(op, field, `0x${v.toString(16)} is outside 0..${hex(max)}`);
    return Number(v);
  }
  if (!Number.isInteger(v) || v < 0 || v > max) throw einval(op, field, `${v} is not a PFN in 0..${hex(max)}`);
  return v;
}

function snapshot(n: IovaNode): IovaRange {
  return { pfnLo: n.key, pfnHi: n.hi, size: n.hi - n.key + 1, reserved: n.kind === KIND_RESERVED };
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
