// Peer-to-peer routes (P2PDMA BUS_ADDR): a switch forwards a requester's TLP addressed to a
// peer's BAR straight to the peer, so the IOMMU above never sees it. The control plane adds a
// route for each (client, provider BAR) pair whose map type is BUS_ADDR.

import { OK, EINVAL, ENOSPC, EEXIST, ENOENT, MAX_P2P_WINDOWS, P2P_WINDOW_STRIDE, RID_PHYS } from '../abi';
import { gWindows } from '../state';

let windowCount: u32 = 0;

@inline function windowAt(i: u32): usize {
  return gWindows + <usize>(i * P2P_WINDOW_STRIDE);
}

// Result of the last route(): the physical address and the end of the window (exclusive).
export let rOut: u64 = 0;
export let rEnd: u64 = 0;

/** Whether any peer route exists (run extension then stops at each translation, to keep them exact). */
@inline export function routesActive(): bool {
  return windowCount != 0;
}

/** Whether `rid`'s access to bus address `bus` is routed to a peer; sets rOut/rEnd. */
@inline export function route(rid: u32, bus: u64): bool {
  if (windowCount == 0) return false;
  return routeSlow(rid, bus);
}

function routeSlow(rid: u32, bus: u64): bool {
  for (let i: u32 = 0; i < MAX_P2P_WINDOWS; i++) {
    const w = windowAt(i);
    if (load<u32>(w + 4) == 0 || load<u32>(w) != rid) continue;
    const base = load<u64>(w + 8);
    const size = load<u64>(w + 16);
    if (bus - base < size) {
      rOut = load<u64>(w + 24) + (bus - base);
      rEnd = base + size;
      return true;
    }
  }
  return false;
}

/**
 * Adds a route for `rid`: [bus, bus + size) reaches [cpu, cpu + size). Returns OK, EINVAL (size 0,
 * wrapping, RID_PHYS), EEXIST (overlaps a route of the same requester), ENOSPC.
 */
export function addWindow(rid: u32, bus: u64, size: u64, cpu: u64): i32 {
  if (rid == RID_PHYS || size == 0) return EINVAL;
  if (bus + size < bus && bus + size != 0) return EINVAL;
  if (cpu + size < cpu && cpu + size != 0) return EINVAL;
  let free: i32 = -1;
  for (let i: u32 = 0; i < MAX_P2P_WINDOWS; i++) {
    const w = windowAt(i);
    if (load<u32>(w + 4) == 0) { if (free < 0) free = <i32>i; continue; }
    if (load<u32>(w) != rid) continue;
    const b = load<u64>(w + 8);
    if (bus <= b + load<u64>(w + 16) - 1 && b <= bus + size - 1) return EEXIST;
  }
  if (free < 0) return ENOSPC;
  const w = windowAt(<u32>free);
  store<u32>(w, rid);
  store<u32>(w + 4, 1);
  store<u64>(w + 8, bus);
  store<u64>(w + 16, size);
  store<u64>(w + 24, cpu);
  windowCount++;
  return OK;
}

/** Removes `rid`'s route that starts at `bus`. OK or ENOENT. */
export function removeWindow(rid: u32, bus: u64): i32 {
  for (let i: u32 = 0; i < MAX_P2P_WINDOWS; i++) {
    const w = windowAt(i);
    if (load<u32>(w + 4) != 0 && load<u32>(w) == rid && load<u64>(w + 8) == bus) {
      memory.fill(w, 0, P2P_WINDOW_STRIDE);
      windowCount--;
      return OK;
    }
  }
  return ENOENT;
}
