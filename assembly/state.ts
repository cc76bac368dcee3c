// Linear-memory layout of one simulator instance, laid out once by init(base, bytes).
//
//   base: __heap_base (64 KiB aligned) when standalone (init(0, arenaBytes)), or the start of the
//   window [base, base + bytes) an embedding host gives the core in its own memory
//   +--------------------+  header: result block, global counters
//   | header     4 KiB   |
//   | zero page  4 KiB   |  what reads of never-written memory copy from
//   | staging    1 MiB   |  batches and host buffers
//   | regions, units, domains, devices, walk trace, p2p windows
//   | scratch: page-table walk path, flush-queue domain bitmap
//   | arena  (4 KiB chunks: backing, radix nodes, frame records, TLBs, rings)
//   +--------------------+
// Standalone, memory grows once, here; the host re-derives its views after init. Embedded, the
// core never grows memory and writes nothing outside its window: the module has no data
// segments, no runtime heap use, and every block above (scratch included) is in the window.

import {
  OK, ENOMEM, EBUSY, EINVAL, PAGE_SIZE, RESULT_SIZE, STAGING_SIZE, MAX_REGIONS, REGION_STRIDE,
  MAX_UNITS, UNIT_STRIDE, MAX_DOMAINS, DOMAIN_STRIDE, MAX_DEVICES, TRACE_STRIDE, TRACE_MAX,
  STAT_CHUNKS_TOTAL, MAX_P2P_WINDOWS, P2P_WINDOW_STRIDE, DEVICE_RECORD_STRIDE, MAX_PASID_BINDINGS,
  PASID_STRIDE, TRACE2_MAX,
} from './abi';

export let gResult: usize = 0;
export let gStats: usize = 0;
export let gZeroPage: usize = 0;
export let gStaging: usize = 0;
export let gRegions: usize = 0;
export let gUnits: usize = 0;
export let gDomains: usize = 0;
export let gDevices: usize = 0;
export let gTrace: usize = 0;
export let gWindows: usize = 0;
export let gPasids: usize = 0; // PASID binding table (iommu/pasid.ts)
export let gTrace2: usize = 0; // stage-2 levels of the last nested walk trace (pgtable/nested.ts)
export let gPathTable: usize = 0; // 8 x u64: tables visited by the last descent (pgtable/engine)
export let gPathSlot: usize = 0;  // 8 x u64: their slots
export let gFlushSeen: usize = 0; // MAX_DOMAINS bits (iommu/unit flushQueue)
export let gTableCache: usize = 0; // TABLE_CACHE_SLOTS x 16 bytes: table page -> linear address (pgtable/engine)
export let gWalkCache: usize = 0; // 2 paths x 8 x 32 bytes: the page-walk cache of pgtable/engine walk
export let gRadixLog: usize = 0;  // RADIX_LOG_MAX x 8 bytes: radix nodes a failing operation made (mem/phys)
export let gArenaBase: usize = 0;
export let gArenaChunks: u32 = 0;
/** Fresh arena chunks may hold old bytes (embedded: the host's memory); allocation zeroes them. */
export let gArenaDirty: bool = false;
/** The window the core may write: [gBase, gEnd). */
export let gBase: usize = 0;
export let gEnd: u64 = 0;
export let gReady: bool = false;

// Embed builds set ASC_EMBED=1 and the others ASC_EMBED=0 (asconfig.json "use": a compile-time
// constant); an embedded core refuses init(0, ..), since the standalone path would grow and
// write the host's memory.

/**
 * Device record (abi.ts DEVICE_RECORD_STRIDE): 0 rid u32 | 4 domain i32 (-1 = none) | 8 unit u32
 * (the unit the requester sits behind, kept across detach so a detached requester's faults are
 * still reported) | 12.. PASID width, flags, DMA PASID, ATC (abi.ts DEV_*).
 */
export const DEVICE_STRIDE: u32 = DEVICE_RECORD_STRIDE;
export const DEVICE_NO_UNIT: u32 = 0xffffffff;

@inline function alignUp(x: usize, a: usize): usize {
  return (x + a - 1) & ~(a - 1);
}

/** Bytes of the fixed blocks in front of the arena (the same for any page-aligned base). */
export function fixedBytes(): u32 {
  let p: usize = PAGE_SIZE + PAGE_SIZE + STAGING_SIZE;
  p += <usize>(MAX_REGIONS * REGION_STRIDE) + <usize>(MAX_UNITS * UNIT_STRIDE);
  p += <usize>(MAX_DOMAINS * DOMAIN_STRIDE) + <usize>(MAX_DEVICES * DEVICE_STRIDE);
  p += <usize>(TRACE_MAX * TRACE_STRIDE) + <usize>(MAX_P2P_WINDOWS * P2P_WINDOW_STRIDE);
  p += <usize>(MAX_PASID_BINDINGS * PASID_STRIDE) + <usize>(TRACE2_MAX * TRACE_STRIDE);
  p += SCRATCH_BYTES;
  return <u32>alignUp(p, PAGE_SIZE);
}

const PATH_BYTES: usize = 64;
/** Entries of the table-page cache (a power of two): 1024 covers the tables of 2 GiB of 4K leaves. */
export const TABLE_CACHE_SLOTS: u32 = 1024;
const TABLE_CACHE_BYTES: usize = <usize>TABLE_CACHE_SLOTS * 16;
const WALK_CACHE_BYTES: usize = 2 * 8 * 32;
/** Radix nodes one map may make and give back on failure (2 per 4 MiB block of table frames touched). */
export const RADIX_LOG_MAX: u32 = 64;
const SCRATCH_BYTES: usize = 2 * PATH_BYTES + <usize>(MAX_DOMAINS / 8) + TABLE_CACHE_BYTES + WALK_CACHE_BYTES + <usize>RADIX_LOG_MAX * 8;

/**
 * Lays out the instance.
 * - Standalone, `base` = 0: the blocks start at __heap_base (64 KiB aligned), followed by an arena
 *   of `bytes`; memory grows once to hold it. EINVAL for an arena below 1 MiB or not a multiple
 *   of 4 KiB; ENOMEM when linear memory cannot grow that far (4 GiB is the wasm32 ceiling).
 * - Embedded, `base` != 0: everything lives in [base, base + bytes) of the host's memory, which
 *   must already be that large (ENOMEM otherwise; memory is never grown). The fixed blocks take
 *   fixedBytes() at the front and are zeroed; the arena is the rest and must be at least 1 MiB.
 *   EINVAL for a base or size not a multiple of 4 KiB, a window that wraps past 4 GiB, or one
 *   too small for the blocks plus 1 MiB of arena.
 * EBUSY when called twice.
 */
export function initLayout(base: usize, bytes: u32): i32 {
  if (gReady) return EBUSY;
  if (ASC_EMBED && base == 0) return EINVAL;
  const embed = ASC_EMBED ? true : base != 0; // constant in embed builds: no memory.grow in them
  if ((bytes & (PAGE_SIZE - 1)) != 0 || (base & (PAGE_SIZE - 1)) != 0) return EINVAL;
  let p = embed ? base : alignUp(__heap_base, 65536);
  const start = p;
  const fixed = <usize>fixedBytes();
  let arenaBytes: u64 = bytes;
  if (embed) {
    if (<u64>bytes < <u64>fixed + (1 << 20)) return EINVAL;
    if (<u64>base + <u64>bytes > 0x100000000) return EINVAL;
    arenaBytes = <u64>bytes - <u64>fixed;
    if (<u64>base + <u64>bytes > (<u64>memory.size() << 16)) return ENOMEM;
  } else if (bytes < (1 << 20)) {
    return EINVAL;
  }
  gResult = p;
  gStats = p + RESULT_SIZE;
  p += PAGE_SIZE;
  gZeroPage = p; p += PAGE_SIZE;
  gStaging = p; p += STAGING_SIZE;
  gRegions = p; p += <usize>(MAX_REGIONS * REGION_STRIDE);
  gUnits = p; p += <usize>(MAX_UNITS * UNIT_STRIDE);
  gDomains = p; p += <usize>(MAX_DOMAINS * DOMAIN_STRIDE);
  gDevices = p; p += <usize>(MAX_DEVICES * DEVICE_STRIDE);
  gTrace = p; p += <usize>(TRACE_MAX * TRACE_STRIDE);
  gWindows = p; p += <usize>(MAX_P2P_WINDOWS * P2P_WINDOW_STRIDE);
  gPasids = p; p += <usize>(MAX_PASID_BINDINGS * PASID_STRIDE);
  gTrace2 = p; p += <usize>(TRACE2_MAX * TRACE_STRIDE);
  gPathTable = p; p += PATH_BYTES;
  gPathSlot = p; p += PATH_BYTES;
  gFlushSeen = p; p += <usize>(MAX_DOMAINS / 8);
  gTableCache = p; p += TABLE_CACHE_BYTES;
  gWalkCache = p; p += WALK_CACHE_BYTES;
  gRadixLog = p; p += <usize>RADIX_LOG_MAX * 8;
  p = alignUp(p, PAGE_SIZE);
  gArenaBase = p;
  const end: u64 = <u64>p + arenaBytes;
  if (embed) {
    // The host's memory may hold anything: zero the fixed blocks now, arena chunks on first use.
    memory.fill(start, 0, p - start);
    gArenaDirty = true;
  } else {
    if (end > 0xffff0000) return ENOMEM;
    const needPages = <i32>((end + 65535) >> 16);
    const have = memory.size();
    if (needPages > have && memory.grow(needPages - have) < 0) return ENOMEM;
  }
  gBase = start;
  gEnd = end;
  gArenaChunks = <u32>(arenaBytes / PAGE_SIZE);
  store<u64>(gStats + STAT_CHUNKS_TOTAL, <u64>gArenaChunks);
  // Devices start unattached.
  for (let i: u32 = 0; i < MAX_DEVICES; i++) {
    store<i32>(gDevices + <usize>(i * DEVICE_STRIDE) + 4, -1);
    store<u32>(gDevices + <usize>(i * DEVICE_STRIDE) + 8, DEVICE_NO_UNIT);
  }
  gReady = true;
  return OK;
}
