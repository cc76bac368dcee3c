// The arena: fixed-size 4 KiB chunks carved from linear memory. Backing pages, radix nodes,
// frame records, IOTLB arrays and rings all come from here, so running out is ENOMEM at the
// call that needed memory, never a trap.

import { PAGE_SIZE, STAT_CHUNKS_USED } from '../abi';
import { gArenaBase, gArenaChunks, gArenaDirty, gStats } from '../state';

let bumpNext: u32 = 0;       // chunks below this index have been handed out at least once
let freeHead: usize = 0;     // freed chunks, linked through their first word

/** A zeroed chunk, or 0 when the arena is exhausted. */
export function allocChunk(): usize {
  let p = freeHead;
  if (p != 0) {
    freeHead = <usize>load<u32>(p);
    memory.fill(p, 0, PAGE_SIZE); // reused chunks held data; fresh ones are zero already
  } else {
    if (bumpNext >= gArenaChunks) return 0;
    p = gArenaBase + <usize>bumpNext * PAGE_SIZE;
    bumpNext++;
    if (gArenaDirty) memory.fill(p, 0, PAGE_SIZE); // embedded: the host's memory, not fresh pages
  }
  addUsed(1);
  return p;
}

/** `n` adjacent zeroed chunks for structures that live as long as the instance, or 0. */
export function allocContiguous(n: u32): usize {
  if (n == 0 || n > gArenaChunks - bumpNext) return 0;
  const p = gArenaBase + <usize>bumpNext * PAGE_SIZE;
  bumpNext += n;
  if (gArenaDirty) memory.fill(p, 0, <usize>n * PAGE_SIZE);
  addUsed(<i64>n);
  return p;
}

export function freeChunk(p: usize): void {
  if (p == 0) return;
  if (!ASC_NO_ASSERT) assert(p >= gArenaBase && ((p - gArenaBase) & (PAGE_SIZE - 1)) == 0);
  store<u32>(p, <u32>freeHead);
  freeHead = p;
  addUsed(-1);
}

@inline function addUsed(d: i64): void {
  const a = gStats + STAT_CHUNKS_USED;
  store<u64>(a, <u64>(<i64>load<u64>(a) + d));
}

/** Chunks that could still be handed out. */
export function chunksFree(): u32 {
  return gArenaChunks - <u32>load<u64>(gStats + STAT_CHUNKS_USED);
}
