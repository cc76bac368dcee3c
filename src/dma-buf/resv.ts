import { SimError } from '../../bindings/errors.js';
import { DmaFence } from './fence.js';
import type { DmaBufKernel, EventIds } from './kernel.js';

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

/** One fence slot of a dma_resv, as the for_each_fence walks give it (dma_resv_iter_fence and dma_resv_iter_usage). */
export interface DmaResvEntry {
  /** The fence in the slot. */
  readonly fence: DmaFence;
  /** The slot's usage. */
  readonly usage: DmaResvUsage;
}

function isUsage(u: unknown): u is DmaResvUsage {
  return u === 0 || u === 1 || u === 2 || u === 3;
}

/** -EDEADLK from a ww_mutex lock call: back off (unlock everything, lockSlow the contended lock). */
export const NEG_EDEADLK = -35;
/** -EALREADY from a ww_mutex lock call: this acquire context already holds the lock. */
export const NEG_EALREADY = -114;
/** -EINTR from dma_resv_lock_interruptible: a signal is pending. */
export const NEG_EINTR = -4;

/**
 * struct ww_acquire_ctx of reservation_ww_class (a wait-die class): the context a task takes
 * several reservation locks under, in any order, without deadlocking. Get one with
 * `DmaBufKernel.wwAcquireInit()`; lock with `resv.lock(ctx)`; when a lock returns -EDEADLK, unlock
 * every lock the context holds, take the contended one with `resv.lockSlow(ctx)` and start over;
 * then `done()` (optional) and, once everything is unlocked, `fini()`. `dmaResvLockAll` runs
 * that loop.
 */
export class WwAcquireCtx {
  private readonly _held = new Set<DmaResv>();
  private _done = false;
  private _fini = false;

  /** @internal Use DmaBufKernel.wwAcquireInit. */
  constructor(
    private readonly _kernel: DmaBufKernel,
    /** Age: a smaller stamp is an older context, which wins (the younger one backs off). */
    readonly stamp: number,
  ) {}

  /** ctx->acquired: locks held under this context. */
  get acquired(): number {
    return this._held.size;
  }

  /** The reservations held under this context. */
  get held(): readonly DmaResv[] {
    return [...this._held];
  }

  /** ww_acquire_done was called: no further lock may be taken under this context. */
  get isDone(): boolean {
    return this._done;
  }

  /** ww_acquire_fini was called: the context is over. */
  get isFini(): boolean {
    return this._fini;
  }

  /**
   * ww_acquire_done: no lock may be taken under this context any more (EINVAL after).
   * @throws {@link SimError} EINVAL when the context was finished.
   */
  done(): void {
    this._checkLive('ww_acquire_done');
    this._done = true;
  }

  /**
   * ww_acquire_fini: the context ends; every lock must have been unlocked first (the kernel's
   * lockdep complains otherwise: refused, emulator choice).
   * @throws {@link SimError} EINVAL when the context was already finished or still holds locks.
   */
  fini(): void {
    const op = 'ww_acquire_fini';
    if (this._fini) this._kernel.bug('DB-25', op, `acquire context ${this.stamp} was already finished`);
    if (this._held.size > 0) this._kernel.bug('DB-25', op, `acquire context ${this.stamp} still holds ${this._held.size} lock(s)`);
    this._fini = true;
  }

  /** @internal A lock of this context was taken or dropped (DmaResv only). */
  track(resv: DmaResv, held: boolean): void {
    if (held) this._held.add(resv);
    else this._held.delete(resv);
  }

  /** @internal EINVAL when the context can take no more locks. */
  checkCanLock(op: string): void {
    this._checkLive(op);
    if (this._done) this._kernel.bug('DB-25', op, `acquire context ${this.stamp} is done: no more locks may be taken`);
  }

  private _checkLive(op: string): void {
    if (this._fini) this._kernel.bug('DB-25', op, `acquire context ${this.stamp} was finished`);
  }
}

/** Who holds a reservation lock: a context, or a task without one (null). */
type Holder = WwAcquireCtx | null;

/**
 * struct dma_resv: the buffer's lock plus its fence slots (DB-27, DB-28).
 *
 * The lock is a ww_mutex of a wait-die class, modelled for one thread of execution: a lock
 * either is free and is taken, or is already held by the caller (-EALREADY with the same
 * context), or is held by someone else. In the kernel that someone runs on another CPU and the
 * caller either backs off (-EDEADLK: the caller's context is younger and holds locks) or sleeps
 * until the lock is free. The simulator has no other task to wait for, so a wait that could
 * never end is refused with EBUSY (emulator choice) instead of hanging. What the DB-25 checks
 * look at is whether a call is made with the lock in the state the convention requires.
 */
export class DmaResv {
  private _holder: Holder | undefined = undefined;
  /** The fence slots. Updated in place, as the kernel's RCU list: a cursor sees replaced slots. */
  private readonly _fences: { fence: DmaFence; usage: DmaResvUsage }[] = [];
  private _maxFences = 0;
  /**
   * obj->seq: bumped by every change of the fence slots (write_seqcount_begin/end around
   * dma_resv_add_fence), so an unlocked cursor can tell that the list changed under it.
   * @internal DmaResvIter only.
   */
  _seq = 0;

  /** Use `DmaBufKernel.createResv`, or let `export` make one. */
  constructor(
    private readonly _kernel: DmaBufKernel,
    readonly id: number,
  ) {}

  /** dma_resv_is_locked. */
  isLocked(): boolean {
    return this._holder !== undefined;
  }

  /** The acquire context holding the lock; null when held without one, undefined when free. */
  get holder(): WwAcquireCtx | null | undefined {
    return this._holder;
  }

  /**
   * dma_resv_lock(obj, ctx). Returns 0 when the lock was taken. With a context: -EALREADY when
   * this context already holds it (nothing changes), -EDEADLK when another context that is older
   * holds it and this one holds other locks (wait-die: back off, see WwAcquireCtx). Throws EBUSY
   * where the kernel would sleep for a holder that cannot run here (held without a context, or by
   * a younger context, or this context holds nothing yet), and EINVAL for a finished or done
   * context. Without a context, taking a held lock would deadlock: EBUSY.
   * @throws {@link SimError} EBUSY when the caller would sleep forever or deadlock; EINVAL for a
   * finished or done context.
   */
  lock(ctx?: WwAcquireCtx | null): number {
    return this._lock(ctx ?? null, false, 'dma_resv_lock');
  }

  /**
   * dma_resv_lock_interruptible: as lock, but a wait with a signal pending returns -EINTR.
   * @throws {@link SimError} as {@link DmaResv.lock}.
   */
  lockInterruptible(ctx?: WwAcquireCtx | null): number {
    return this._lock(ctx ?? null, true, 'dma_resv_lock_interruptible');
  }

  /**
   * dma_resv_lock_slow: after backing off from -EDEADLK (every lock of `ctx` unlocked), sleeps
   * until the contended lock is free and takes it. Here: EINVAL if the context still holds locks,
   * EBUSY if the lock is held (no one could release it).
   * @throws {@link SimError} EINVAL without a context, for a finished or done context, or when it
   * still holds locks; EBUSY when the lock is held.
   */
  lockSlow(ctx: WwAcquireCtx): void {
    const op = 'dma_resv_lock_slow';
    if (!ctx) this._kernel.warnRefuse('DB-25', op, 'an acquire context is required');
    ctx.checkCanLock(op);
    if (ctx.acquired > 0) this._kernel.bug('DB-25', op, `acquire context ${ctx.stamp} must unlock its ${ctx.acquired} lock(s) before the slow path`);
    if (this._holder !== undefined) {
      throw new SimError('EBUSY', op, `resv ${this.id} is held: the slow path would sleep forever (emulator choice)`, 'DB-25');
    }
    this._take(ctx);
  }

  /** dma_resv_trylock: true when it took the lock (never with a context, as in the kernel). */
  trylock(): boolean {
    if (this._holder !== undefined) return false;
    this._take(null);
    return true;
  }

  /**
   * dma_resv_unlock. Unused fence reservations are dropped, as the kernel does under
   * CONFIG_DEBUG_MUTEXES, so a missing dma_resv_reserve_fences is always caught. Unlocking a lock
   * that is not held is refused (emulator choice; the kernel WARNs).
   * @throws {@link SimError} EINVAL when the lock is not held.
   */
  unlock(): void {
    if (this._holder === undefined) {
      throw new SimError('EINVAL', 'dma_resv_unlock', `resv ${this.id} is not locked`, 'DB-25');
    }
    this._maxFences = this._fences.length;
    this._holder?.track(this, false);
    this._holder = undefined;
  }

  /**
   * The scoped form: takes the lock (with `ctx` if given), runs `fn`, and unlocks when `fn`
   * returns or throws. When `ctx` already holds the lock (-EALREADY), `fn` runs under that hold
   * and the lock stays held afterwards. -EDEADLK is thrown as a SimError EDEADLK (the caller backs
   * off); EBUSY and EINVAL as lock() throws them.
   * @throws {@link SimError} EDEADLK (back off); EBUSY, EINVAL as {@link DmaResv.lock}; whatever
   * `fn` throws (after the unlock).
   */
  withLock<T>(fn: () => T, ctx?: WwAcquireCtx | null): T {
    const r = this.lock(ctx);
    if (r === NEG_EALREADY) return fn();
    if (r === NEG_EDEADLK) {
      throw new SimError('EDEADLK', 'dma_resv_lock', `resv ${this.id} is held by an older acquire context: back off`, 'DB-25');
    }
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /**
   * dma_resv_assert_held: a WARN (an EINVAL in strict mode) when the lock is not held. `rule`
   * names the convention the caller follows. @default 'DB-25'
   * @throws {@link SimError} EINVAL in strict mode when the lock is not held.
   */
  assertHeld(op: string, rule = 'DB-25', ids: EventIds = {}): void {
    this._kernel.checkResvHeld(this, true, op, rule, ids);
  }

  private _lock(ctx: WwAcquireCtx | null, intr: boolean, op: string): number {
    if (ctx) ctx.checkCanLock(op);
    const h = this._holder;
    if (h === undefined) {
      this._take(ctx);
      return 0;
    }
    if (ctx && h === ctx) return NEG_EALREADY;
    // Wait-die: a younger context that already holds locks must not wait for an older one.
    if (ctx && h !== null && ctx.acquired > 0 && ctx.stamp > h.stamp) return NEG_EDEADLK;
    if (intr && this._kernel.signalPending) return NEG_EINTR;
    if (!ctx && h === null) {
      throw new SimError('EBUSY', op, `resv ${this.id} is already held: locking it again would deadlock`, 'DB-25');
    }
    throw new SimError('EBUSY', op, `resv ${this.id} is held${h ? ` by acquire context ${h.stamp}` : ''}: the caller would sleep with no one to release it (emulator choice)`, 'DB-25');
  }

  private _take(ctx: WwAcquireCtx | null): void {
    this._holder = ctx;
    ctx?.track(this, true);
  }

  /**
   * dma_resv_reserve_fences: makes sure `num` more fences can be added under this lock hold.
   * Reservations do not add up: reserving 1 twice leaves room for one fence. Needs the lock (DB-28).
   * @throws {@link SimError} EINVAL when `num` is not a non-negative integer, or (strict mode)
   * the lock is not held.
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
   * left the kernel BUGs, and the emulator refuses.
   * @throws {@link SimError} EINVAL for an unknown usage (DB-27), when no reserved slot is left
   * (DB-28), or (strict mode) when the lock is not held.
   */
  addFence(fence: DmaFence, usage: DmaResvUsage): void {
    if (!isUsage(usage)) {
      throw new SimError('EINVAL', 'dma_resv_add_fence', `usage must be KERNEL, WRITE, READ or BOOKKEEP, got ${String(usage)}`, 'DB-27');
    }
    if (!(fence instanceof DmaFence) || !fence.belongsTo(this._kernel)) {
      throw new SimError('EINVAL', 'dma_resv_add_fence', 'fence must be a DmaFence of this machine\'s kernel', 'DB-27');
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
    this._seq++;
    this._kernel.emit({ kind: 'resv_add_fence', detail: { resv: this.id, context: fence.context, seqno: fence.seqno, usage, replaced: i >= 0 } });
  }

  /** Slots in use (signaled fences included), for tests and reports. */
  get numFences(): number {
    return this._fences.length;
  }

  /** @internal The slot list a cursor walks (DmaResvIter only). */
  _list(): readonly DmaResvEntry[] {
    return this._fences;
  }

  /**
   * dma_resv_iter_begin: a cursor over the fences with usage <= `usage`. Walk it unlocked
   * (firstUnlocked/nextUnlocked, restarting when the fences change under it) or, with the lock
   * held, locked (first/next); call `end()` when done.
   * @throws {@link SimError} EINVAL for an unknown usage (DB-27).
   */
  iter(usage: DmaResvUsage): DmaResvIter {
    return new DmaResvIter(this, this._kernel, usage);
  }

  /**
   * dma_resv_for_each_fence (locked walk): every fence with usage <= `usage`, signaled or not, in
   * slot order. Needs the lock: a WARN when it is not held (EINVAL in strict mode); the cursor
   * form ({@link DmaResv.iter}, `first`) refuses instead.
   * @throws {@link SimError} EINVAL for an unknown usage, or in strict mode when the lock is not held.
   */
  fences(usage: DmaResvUsage): DmaResvEntry[] {
    this._kernel.checkResvHeld(this, true, 'dma_resv_for_each_fence', 'DB-28');
    const out: DmaResvEntry[] = [];
    const c = this.iter(usage);
    for (let f = c._firstLocked(); f; f = c._nextLocked()) out.push({ fence: f, usage: c.fenceUsage! });
    c.end();
    return out;
  }

  /**
   * dma_resv_for_each_fence_unlocked: the unsignaled fences with usage <= `usage`. When the
   * walk restarts (the fences changed under it), what was collected is dropped, as the
   * kernel's callers do on dma_resv_iter_is_restarted.
   * @throws {@link SimError} EINVAL for an unknown usage (DB-27).
   */
  fencesUnlocked(usage: DmaResvUsage): DmaResvEntry[] {
    let out: DmaResvEntry[] = [];
    const c = this.iter(usage);
    for (let f = c.firstUnlocked(); f; f = c.nextUnlocked()) {
      if (c.isRestarted) out = [];
      out.push({ fence: f, usage: c.fenceUsage! });
    }
    c.end();
    return out;
  }

  /**
   * dma_resv_get_fences: the unsignaled fences with usage <= `usage`.
   * @throws {@link SimError} EINVAL for an unknown usage (DB-27).
   */
  getFences(usage: DmaResvUsage): DmaFence[] {
    return this.fencesUnlocked(usage).map((e) => e.fence);
  }

  /**
   * dma_resv_test_signaled: true iff every fence with usage <= `usage` has signaled.
   * @throws {@link SimError} EINVAL for an unknown usage (DB-27).
   */
  testSignaled(usage: DmaResvUsage): boolean {
    const c = this.iter(usage);
    const f = c.firstUnlocked();
    c.end();
    return f === null;
  }

  /**
   * dma_resv_wait_timeout: waits on each unsignaled fence with usage <= `usage` in turn, sharing
   * the time budget. Returns the remaining time (> 0) on success, 0 on timeout, -ERESTARTSYS when
   * interrupted. A timeout of 0 still waits up to one tick per fence, as the kernel does.
   * @throws {@link SimError} as {@link DmaFence.waitTimeout} (strict mode WARNs).
   */
  waitTimeout(usage: DmaResvUsage, intr: boolean, timeout: number): number {
    let ret = timeout === 0 ? 1 : timeout;
    // An unlocked walk: fences added while it sleeps restart it; signaled ones are skipped.
    const c = this.iter(usage);
    try {
      for (let f = c.firstUnlocked(); f; f = c.nextUnlocked()) {
        ret = f.waitTimeout(intr, ret);
        if (ret <= 0) return ret;
      }
      return ret;
    } finally {
      c.end();
    }
  }
}

/**
 * struct dma_resv_iter: a cursor over a reservation's fences with usage <= `usage` (DB-27).
 * Get one with {@link DmaResv.iter} (dma_resv_iter_begin) and finish with `end()`.
 *
 * Unlocked walk (dma_resv_iter_first_unlocked / _next_unlocked, what
 * dma_resv_for_each_fence_unlocked runs): no lock needed; signaled fences are skipped. The
 * cursor remembers the reservation's sequence count and the number of slots when it (re)starts;
 * if the fences change between two steps (a fence added or replaced by someone holding the lock)
 * the next step starts over from the first slot and `isRestarted` is true, so a caller that
 * accumulates (dma_resv_get_fences, dma_resv_copy_fences) drops what it gathered. `isRestarted`
 * is also true after `firstUnlocked` (the walk always starts as a restart).
 *
 * Locked walk (dma_resv_iter_first / _next, what dma_resv_for_each_fence runs): the lock must be
 * held, signaled fences are included, and nothing can change under it, so it never restarts;
 * `isRestarted` is true after `first()` only. Without the lock the kernel's
 * dma_resv_assert_held splats and the walk races with writers: refused (EINVAL, emulator choice).
 */
export class DmaResvIter {
  /** The fence the cursor is on (null past the end), and its slot usage. */
  private _fence: DmaFence | null = null;
  private _fenceUsage: DmaResvUsage | undefined = undefined;
  private _index = 0;
  private _num = 0;
  /** The sequence count at the last (re)start; -1 before the first. */
  private _seq = -1;
  private _restarted = false;
  private _ended = false;

  /** @internal Use {@link DmaResv.iter}. */
  constructor(
    /** The reservation walked. */
    readonly resv: DmaResv,
    private readonly _kernel: DmaBufKernel,
    /** The widest usage the walk returns (a fence is returned when its usage is <= this). */
    readonly usage: DmaResvUsage,
  ) {
    if (!isUsage(usage)) {
      throw new SimError('EINVAL', 'dma_resv_iter_begin', `usage must be KERNEL, WRITE, READ or BOOKKEEP, got ${String(usage).slice(0, 20)}`, 'DB-27');
    }
  }

  /** dma_resv_iter_is_restarted: the last step started the walk over (see the class doc). */
  get isRestarted(): boolean {
    return this._restarted;
  }

  /** dma_resv_iter_usage: the usage of the slot of the current fence (undefined before the first step). */
  get fenceUsage(): DmaResvUsage | undefined {
    return this._fenceUsage;
  }

  /** The current fence: what the last step returned. */
  get fence(): DmaFence | null {
    return this._fence;
  }

  /** cursor->num_fences: slots the current unlocked pass walks (as it saw them at its start). */
  get numFences(): number {
    return this._num;
  }

  /**
   * dma_resv_iter_first_unlocked: starts the unlocked walk; the first unsignaled fence with usage
   * <= `usage`, or null.
   * @throws {@link SimError} EINVAL after `end()`.
   */
  firstUnlocked(): DmaFence | null {
    this._checkLive('dma_resv_iter_first_unlocked');
    do {
      this._restartUnlocked();
      this._walkUnlocked();
    } while (this.resv._seq !== this._seq);
    return this._fence;
  }

  /**
   * dma_resv_iter_next_unlocked: the next unsignaled fence, or null; starts over (isRestarted)
   * when the fences changed since the last step.
   * @throws {@link SimError} EINVAL after `end()`.
   */
  nextUnlocked(): DmaFence | null {
    this._checkLive('dma_resv_iter_next_unlocked');
    this._restarted = false;
    let restart = this.resv._seq !== this._seq;
    do {
      if (restart) this._restartUnlocked();
      this._walkUnlocked();
      restart = true;
    } while (this.resv._seq !== this._seq);
    return this._fence;
  }

  /**
   * dma_resv_iter_first: starts the locked walk; the first fence with usage <= `usage`, signaled
   * or not, or null. The lock must be held.
   * @throws {@link SimError} EINVAL (DB-28) when the reservation is not locked, or after `end()`.
   */
  first(): DmaFence | null {
    this._checkLocked('dma_resv_iter_first');
    return this._firstLocked();
  }

  /**
   * dma_resv_iter_next: the next fence of the locked walk, or null. The lock must be held.
   * @throws {@link SimError} EINVAL (DB-28) when the reservation is not locked, or after `end()`.
   */
  next(): DmaFence | null {
    this._checkLocked('dma_resv_iter_next');
    return this._nextLocked();
  }

  /**
   * dma_resv_for_each_fence_unlocked as a loop: `for (const f of cursor.unlocked())`, reading
   * `cursor.isRestarted` and `cursor.fenceUsage` inside. Does not end the cursor.
   * @throws {@link SimError} EINVAL after `end()`.
   */
  *unlocked(): Generator<DmaFence, void, undefined> {
    for (let f = this.firstUnlocked(); f; f = this.nextUnlocked()) yield f;
  }

  /**
   * dma_resv_for_each_fence as a loop, with the lock held: `for (const f of cursor.locked())`.
   * @throws {@link SimError} EINVAL (DB-28) when the reservation is not locked at a step, or after `end()`.
   */
  *locked(): Generator<DmaFence, void, undefined> {
    for (let f = this.first(); f; f = this.next()) yield f;
  }

  /** dma_resv_iter_end: drops the cursor's fence; the cursor cannot step any more. A second call changes nothing. */
  end(): void {
    this._fence = null;
    this._ended = true;
  }

  /** @internal The locked first step without the lock check (DmaResv.fences warns instead). */
  _firstLocked(): DmaFence | null {
    this._index = 0;
    this._num = this.resv._list().length;
    const f = this._nextLocked();
    this._restarted = true;
    return f;
  }

  /** @internal The locked next step without the lock check. */
  _nextLocked(): DmaFence | null {
    this._restarted = false;
    const list = this.resv._list();
    for (;;) {
      if (this._index >= list.length) {
        this._fence = null;
        return null;
      }
      const e = list[this._index++]!;
      this._fenceUsage = e.usage;
      if (e.usage <= this.usage) {
        this._fence = e.fence;
        return e.fence;
      }
    }
  }

  private _restartUnlocked(): void {
    this._seq = this.resv._seq;
    this._index = 0;
    this._num = this.resv._list().length;
    this._restarted = true;
  }

  /** To the next unsignaled fence of the slots seen at the (re)start; slots are read as they are now. */
  private _walkUnlocked(): void {
    const list = this.resv._list();
    this._fence = null;
    while (this._index < this._num) {
      const e = list[this._index++]!;
      this._fenceUsage = e.usage;
      // isSignaled may run signal callbacks that change the fences: the caller's loop rechecks seq.
      if (!e.fence.isSignaled() && e.usage <= this.usage) {
        this._fence = e.fence;
        return;
      }
    }
  }

  private _checkLive(op: string): void {
    if (this._ended) this._kernel.bug('DB-28', op, `the cursor over resv ${this.resv.id} was ended`);
  }

  private _checkLocked(op: string): void {
    this._checkLive(op);
    if (!this.resv.isLocked()) this._kernel.warnRefuse('DB-28', op, `resv ${this.resv.id} must be held for a locked walk (use the unlocked walk)`);
  }
}

/**
 * Locks every reservation in `resvs` under one acquire context (the ww_mutex backoff loop the
 * kernel's drm_exec runs), calls `fn` with all of them held, then unlocks them and finishes the
 * context, also when `fn` throws. Duplicates are locked once. A lock that another task holds
 * throws EBUSY (see DmaResv.lock); -EDEADLK is handled by backing off and retrying.
 * @throws {@link SimError} EBUSY when a lock is held outside this context (nothing stays
 * locked); whatever `fn` throws (after the unlocks).
 */
export function dmaResvLockAll<T>(kernel: DmaBufKernel, resvs: readonly DmaResv[], fn: (ctx: WwAcquireCtx) => T): T {
  const ctx = kernel.wwAcquireInit();
  try {
    let contended: DmaResv | null = null;
    for (;;) {
      let backoff: DmaResv | null = null;
      for (const r of resvs) {
        if (r === contended) continue;
        const ret = r.lock(ctx);
        if (ret === NEG_EDEADLK) {
          backoff = r;
          break;
        }
      }
      if (!backoff) break;
      for (const r of ctx.held) r.unlock();
      backoff.lockSlow(ctx);
      contended = backoff;
    }
    ctx.done();
    return fn(ctx);
  } finally {
    for (const r of ctx.held) r.unlock();
    ctx.fini();
  }
}
