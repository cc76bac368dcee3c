// Direct regions: physical memory whose backing is a range of linear memory that the host owns,
// e.g. an embedding machine emulator's guest RAM. The region is an ordinary region (same record,
// same 3-level radix, same readPtr/writePage/leafNode fast paths), except that its radix is filled
// up front so that page i of the region is backed by linear address `linear + i * 4 KiB`. Host
// and emulator therefore see the same bytes: the host's own pointer reads what DMA wrote.
//
// Costs: one radix leaf node (4 KiB of arena) per 4 MiB of region plus one mid node per 4 GiB,
// and for RAM the frame database, as for any region. Freeing a frame of a direct region zeroes
// its page in place instead of giving the page back to the arena (phys.ts discardPage).

import { EINVAL, ENOMEM, PAGE_SIZE, PAGE_SHIFT, REGION_DIRECT, REGION_KIND_RAM, FRAME_GROUP } from '../abi';
import { gBase, gEnd } from '../state';
import { addRegion, leafNode, pageSlot, regionAt } from './phys';
import { chunksFree } from './arena';

// frames.ts initFrames: one 8-byte directory slot per FRAME_GROUP frames, in contiguous chunks.
const DIR_SLOT_BYTES: u64 = 8;

/**
 * Adds region [base, base + size) of `kind` backed by linear memory [linear, linear + size).
 * Returns the region id, or EINVAL (linear not page-aligned, the range past the end of memory or
 * wrapping, or overlapping the core's own window), ENOMEM (arena too small for the radix and
 * frame records), or what addRegion returns (EINVAL, EEXIST, ENOSPC). On failure nothing changed.
 */
export function addDirectRegion(base: u64, size: u64, kind: u32, flags: u32, owner: u32, linear: usize): i32 {
  if ((<u64>linear & (PAGE_SIZE - 1)) != 0 || size == 0 || (size & (PAGE_SIZE - 1)) != 0) return EINVAL;
  const lend = <u64>linear + size;
  if (lend > (<u64>memory.size() << 16)) return EINVAL;
  if (<u64>linear < gEnd && <u64>gBase < lend) return EINVAL;
  const pages = size >> PAGE_SHIFT;
  // Every chunk needed, counted before anything is made, so the fill below cannot run out.
  let need: u64 = 1 + ((pages + 1023) >> 10) + ((pages + 1048575) >> 20);
  if (kind == REGION_KIND_RAM) need += ((pages + FRAME_GROUP - 1) / FRAME_GROUP * DIR_SLOT_BYTES + PAGE_SIZE - 1) / PAGE_SIZE;
  if (<u64>chunksFree() < need) return ENOMEM;
  const id = addRegion(base, size, kind, flags | REGION_DIRECT, owner);
  if (id < 0) return id;
  const r = regionAt(<u32>id);
  for (let page: u64 = 0; page < pages; page += 1024) {
    const leaf = leafNode(r, <u32>page, true);
    const n = min<u64>(1024, pages - page);
    let p = linear + <usize>(page << PAGE_SHIFT);
    for (let i: u32 = 0; i < <u32>n; i++) {
      store<u32>(leaf + (<usize>i << 2), pageSlot(p));
      p += PAGE_SIZE;
    }
  }
  return id;
}
