import { SimError } from '../../bindings/errors.js';
import type { DmaFence } from './fence.js';
import type { DmaBufKernel } from './kernel.js';

/**
 * enum dma_resv_usage (DB-27). Ordered: a query with usage U covers every fence whose usage is
 * <= U. BOOKKEEP fences are never used for implicit synchronisation.
 */
export const DmaResvUsage = { KERNEL: 0, WRITE: 1, READ: 2, BOOKKEEP: 3 } as const;
export type DmaResvUsage = (typeof DmaResvUsage)[keyof typeof DmaResvUsage];

/** dma_resv_usage_rw: a new write waits for readers and writers (READ); a new read for writers (WRITE). */
export function dmaResvUsageRw(write: boolean): DmaResvUsage {
  return write ? DmaResvUsage.READ : DmaResvUsage.WRITE;
}

export interface DmaResvEntry {
  readonly fence: DmaFence;
  readonly usage: DmaResvUsage;
}

function isUsage(u: unknown): u is DmaResvUsage {
  return u === 0 || u === 1 || u === 2 || u === 3;
}

/**
 * struct dma_resv: the buffer's lock plus its fence slots (DB-27, DB-28). The lock is a plain
 * held/not-held flag: the simulator is single-threaded, so what matters is whether a call is made
 * with the lock in the state the convention requires (DB-25), which the kernel context checks.
 */
export class DmaResv {
  private _locked = false;
  private _fences: { fence: DmaFence; usage: DmaResvUsage }[] = [];
  private _maxFences = 0;

  /** Use `DmaBufKernel.createResv`, or let `export` make one. */
  constructor(
    private readonly _kernel: DmaBufKernel,
    readonly id: number,
  ) {}

  isLocked(): boolean {
    return this._locked;
  }

  /**
   * dma_resv_lock without an acquire context. Taking it twice would deadlock in the kernel; the
   * emulator refuses with EBUSY instead (emulator choice).
   */
  lock(): void {
    if (this._locked) {
      throw new SimError('EBUSY', 'dma_resv_lock', `resv ${this.id} is already held: locking it again would deadlock`, 'DB-25');
    }
    this._locked = true;
  }

  /** dma_resv_trylock: true when it took the lock. */
  trylock(): boolean {
    if (this._locked) return false;
    this._locked = true;
    return true;
  }

  /**
   * dma_resv_unlock. Unused fence reservations are dropped, as the kernel does under
   * CONFIG_DEBUG_MUTEXES, so a missing dma_resv_reserve_fences is always caught. Unlocking a lock
   * that is not held is refused with EINVAL (emulator choice; the kernel WARNs).
   */
  unlock(): void {
    if (!this._locked) {
      throw new SimError('EINVAL', 'dma_resv_unlock', `resv ${this.id} is not locked`, 'DB-25');
    }
    this._maxFences = this._fences.length;
    this._locked = false;
  }

  /**
   * dma_resv_reserve_fences: makes sure `num` more fences can be added under this lock hold.
   * Reservations do not add up: reserving 1 twice leaves room for one fence. Needs the lock (DB-28).
   */
  reserveFences(num: number): void {
    if (!Number.isSafeInteger(num) || num < 0) {
      throw new SimError('EINVAL', 'dma_resv_reserve_fences', `num must be a non-negative integer, got ${num}`, 'DB-28');
    }
    this._kernel.checkResvHeld(this, true, 'dma_resv_reserve_fences', 'DB-28');
    this._maxFences = Math.max(this._maxFences, this._fences.length + num);
  }

  /**
   * dma_resv_add_fence (DB-28). Needs the lock. The fence replaces the first slot holding either a
   * signaled fence, or a fence of the same context, with usage >= `usage`, that this one is later
   * than or the same as; the slot takes the new usage. Otherwise it takes a reserved slot; with none
   * left the kernel BUGs, and the emulator refuses with EINVAL.
   */
  addFence(fence: DmaFence, usage: DmaResvUsage): void {
    if (!isUsage(usage)) {
      throw new SimError('EINVAL', 'dma_resv_add_fence', `usage must be KERNEL, WRITE, READ or BOOKKEEP, got ${String(usage)}`, 'DB-27');
    }
    this._kernel.checkResvHeld(this, true, 'dma_resv_add_fence', 'DB-28');
    const i = this._fences.findIndex(
      (e) =>
        (e.fence.context === fence.context && e.usage >= usage && fence.seqno >= e.fence.seqno) ||
        e.fence.isSignaled(),
    );
    if (i < 0 && this._fences.length >= this._maxFences) {
      this._kernel.bug('DB-28', 'dma_resv_add_fence', 'no reserved slot: call reserveFences first (under the same lock hold)');
    }
    const entry = { fence, usage };
    if (i >= 0) this._fences[i] = entry;
    else this._fences.push(entry);
    this._kernel.emit({ kind: 'resv_add_fence', detail: { resv: this.id, context: fence.context, seqno: fence.seqno, usage, replaced: i >= 0 } });
  }

  /** Slots in use (signaled fences included), for tests and reports. */
  get numFences(): number {
    return this._fences.length;
  }

  /**
   * dma_resv_for_each_fence (locked walk): every fence with usage <= `usage`, signaled or not, in
   * slot order. Needs the lock.
   */
  fences(usage: DmaResvUsage): DmaResvEntry[] {
    this._kernel.checkResvHeld(this, true, 'dma_resv_for_each_fence', 'DB-28');
    return this._fences.filter((e) => e.usage <= usage).map((e) => ({ ...e }));
  }

  /** dma_resv_for_each_fence_unlocked: like `fences` but skips fences that have signaled. */
  fencesUnlocked(usage: DmaResvUsage): DmaResvEntry[] {
    return this._fences.filter((e) => e.usage <= usage && !e.fence.isSignaled()).map((e) => ({ ...e }));
  }

  /** dma_resv_get_fences: the unsignaled fences with usage <= `usage`. */
  getFences(usage: DmaResvUsage): DmaFence[] {
    return this.fencesUnlocked(usage).map((e) => e.fence);
  }

  /** dma_resv_test_signaled: true iff every fence with usage <= `usage` has signaled. */
  testSignaled(usage: DmaResvUsage): boolean {
    return this._fences.every((e) => e.usage > usage || e.fence.isSignaled());
  }

  /**
   * dma_resv_wait_timeout: waits on each unsignaled fence with usage <= `usage` in turn, sharing
   * the time budget. Returns the remaining time (> 0) on success, 0 on timeout, -ERESTARTSYS when
   * interrupted. A timeout of 0 still waits up to one tick per fence, as the kernel does.
   */
  waitTimeout(usage: DmaResvUsage, intr: boolean, timeout: number): number {
    let ret = timeout === 0 ? 1 : timeout;
    for (const f of this.getFences(usage)) {
      ret = f.waitTimeout(intr, ret);
      if (ret <= 0) return ret;
    }
    return ret;
  }
}
