import type { DmaFence } from './fence.js';

/**
 * A sync_file: the fences an fd stands for (already unwrapped, as dma_fence_unwrap gives them).
 * It is signaled when all of them are.
 */
export class SyncFile {
  /** The unwrapped fences, frozen. */
  readonly fences: readonly DmaFence[];

  /** sync_file_create for the given fences (the array is copied). */
  constructor(fences: readonly DmaFence[]) {
    this.fences = Object.freeze([...fences]);
  }

  /** True when every fence has signaled (what poll on a sync_file fd reports as EPOLLIN). */
  isSignaled(): boolean {
    return this.fences.every((f) => f.isSignaled());
  }

  /** sync_file status: 1 signaled, 0 pending, the first error when one failed. */
  getStatus(): number {
    for (const f of this.fences) {
      const s = f.getStatus();
      if (s <= 0) return s;
    }
    return 1;
  }
}
