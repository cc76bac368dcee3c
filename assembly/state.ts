// Linear-memory layout of one simulator instance, laid out once by init().
//
//   __heap_base (64 KiB aligned)
//   +--------------------+  header: result block, global counters
//   | header     4 KiB   |
//   | zero page  4 KiB   |  what reads of never-written memory copy from
//   | staging    1 MiB   |  batches and host buffers
//   | regions, units, domains, devices, walk trace, p2p windows
//   | arena  (arena bytes, 4 KiB chunks: backing, radix nodes, frame records, TLBs, rings)
//   +--------------------+
// Memory grows once, here; the host re-derives its views after init.

import {
  OK, ENOMEM, EBUSY, EINVAL, PAGE_SIZE, RESULT_SIZE, STAGING_SIZE, MAX_REGIONS, REGION_STRIDE,
  MAX_UNITS, UNIT_STRIDE, MAX_DOMAINS, DOMAIN_STRIDE, MAX_DEVICES, TRACE_STRIDE, TRACE_MAX,
  STAT_CHUNKS_TOTAL, MAX_P2P_WINDOWS, P2P_WINDOW_STRIDE,
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
export let gArenaBase: usize = 0;
export let gArenaChunks: u32 = 0;
export let gReady: bool = false;

/**
 * Device record: 0 rid u32 | 4 domain i32 (-1 = none) | 8 unit u32 (the unit the requester sits
 * behind, kept across detach so a detached requester's faults are still reported) | 12 reserved.
 */
export const DEVICE_STRIDE: u32 = 16;
export const DEVICE_NO_UNIT: u32 = 0xffffffff;

@inline function alignUp(x: usize, a: usize): usize {
  return (x + a - 1) & ~(a - 1);
}

/**
 * Lays out the instance and grows memory once to hold an arena of `arenaBytes`.
 * Returns: OK; EINVAL for an arena below 1 MiB or not a multiple of 4 KiB; EBUSY when called
 * twice; ENOMEM when linear memory cannot grow that far (4 GiB is the wasm32 ceiling).
 */
export function initLayout(arenaBytes: u32): i32 {
  if (gReady) return EBUSY;
  if (arenaBytes < (1 << 20) || (arenaBytes & (PAGE_SIZE - 1)) != 0) return EINVAL;
  let p = alignUp(__heap_base, 65536);
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
  p = alignUp(p, PAGE_SIZE);
  gArenaBase = p;
  const end: u64 = <u64>p + <u64>arenaBytes;
  if (end > 0xffff0000) return ENOMEM;
  const needPages = <i32>((end + 65535) >> 16);
  const have = memory.size();
  if (needPages > have && memory.grow(needPages - have) < 0) return ENOMEM;
  gArenaChunks = arenaBytes / PAGE_SIZE;
  store<u64>(gStats + STAT_CHUNKS_TOTAL, <u64>gArenaChunks);
  // Devices start unattached.
  for (let i: u32 = 0; i < MAX_DEVICES; i++) {
    store<i32>(gDevices + <usize>(i * DEVICE_STRIDE) + 4, -1);
    store<u32>(gDevices + <usize>(i * DEVICE_STRIDE) + 8, DEVICE_NO_UNIT);
  }
  gReady = true;
  return OK;
}
