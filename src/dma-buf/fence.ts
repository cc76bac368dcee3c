import { MAX_ERRNO, MAX_SCHEDULE_TIMEOUT, NEG_EINVAL, NEG_ENOENT, NEG_ERESTARTSYS } from './constants.js';
import type { Disposable } from './events.js';
import type { DmaBufKernel } from './kernel.js';

/**
 * A callback registered with `DmaFence.addCallback` (struct dma_fence_cb). The caller owns the
 * object and uses the same object to remove it.
 */
export interface DmaFenceCallback {
  /** Runs once, from `signal`, after the fence is marked signaled. It must not re-add itself. */
  func(fence: DmaFence, cb: DmaFenceCallback): void;
}

/** The names a fence reports (struct dma_fence_ops name callbacks, shown in sync_file info and debugfs). */
export interface DmaFenceNames {
  /** dma_fence_ops.get_driver_name. @default 'dmabuf-sim' */
  driverName?: string;
  /** dma_fence_ops.get_timeline_name. @default 'timeline-<context>' */
  timelineName?: string;
}

/**
 * struct dma_fence (DB-29): a one-way completion point on a timeline (`context`) with a
 * sequence number. Waits sleep on the kernel's virtual clock, so a fence that nothing will
 * ever signal is detected instead of hanging the test.
 */
export class DmaFence {
  readonly driverName: string;
  readonly timelineName: string;
  private _signaled = false;
  private _error = 0;
  private _timestamp: number | undefined;
  private readonly _callbacks = new Set<DmaFenceCallback>();

  /** Use `DmaBufKernel.createFence`. */
  constructor(
    private readonly _kernel: DmaBufKernel,
    readonly context: number,
    readonly seqno: number,
    names: DmaFenceNames = {},
  ) {
    this.driverName = names.driverName ?? 'dmabuf-sim';
    this.timelineName = names.timelineName ?? `timeline-${context}`;
  }

  /** Whether this fence was made by `kernel` (a machine never sees another machine's fences). */
  belongsTo(kernel: DmaBufKernel): boolean {
    return this._kernel === kernel;
  }

  /** dma_fence_is_signaled. */
  isSignaled(): boolean {
    return this._signaled;
  }

  /** The error set with `setError`, 0 when none. */
  get error(): number {
    return this._error;
  }

  /** Virtual time of the signal, undefined while pending. */
  get timestamp(): number | undefined {
    return this._timestamp;
  }

  /**
   * dma_fence_signal. Returns 0. A second signal changes nothing and returns -EINVAL under
   * profiles before 6.15 ('5.15', '6.x'); under 'latest' the kernel function is void and this
   * returns 0 (use `checkAndSignal` to learn whether it was already signaled).
   */
  signal(): number {
    if (this._signaled) return this._kernel.profile.doubleSignalReturnsEinval ? NEG_EINVAL : 0;
    this._doSignal();
    return 0;
  }

  /** dma_fence_check_and_signal: signals, and returns true when the fence was already signaled. */
  checkAndSignal(): boolean {
    if (this._signaled) return true;
    this._doSignal();
    return false;
  }

  /**
   * dma_fence_set_error: only before the signal, with -MAX_ERRNO <= err < 0. The kernel WARNs on
   * misuse; the emulator reports the WARN and leaves the fence unchanged (emulator choice).
   * @throws {@link SimError} EINVAL in strict mode, on that misuse.
   */
  setError(err: number): void {
    if (this._signaled) {
      this._kernel.warn('DB-29', 'dma_fence_set_error', `fence ${this._name()} is already signaled`);
      return;
    }
    if (!Number.isInteger(err) || err >= 0 || err < -MAX_ERRNO) {
      this._kernel.warn('DB-29', 'dma_fence_set_error', `err must satisfy -${MAX_ERRNO} <= err < 0, got ${err}`);
      return;
    }
    this._error = err;
  }

  /** dma_fence_get_status: 0 pending, 1 signaled without error, the (negative) error otherwise. */
  getStatus(): number {
    if (!this._signaled) return 0;
    return this._error !== 0 ? this._error : 1;
  }

  /**
   * dma_fence_add_callback. Returns 0 when queued, -ENOENT when the fence is already signaled (the
   * callback will never run), -EINVAL (with a WARN) when `cb` has no func.
   * @throws {@link SimError} EINVAL when `cb` is still queued on this fence (that would corrupt
   * the kernel's list); EINVAL in strict mode when `cb` has no func.
   */
  addCallback(cb: DmaFenceCallback): number {
    if (!cb || typeof cb.func !== 'function') {
      this._kernel.warn('DB-29', 'dma_fence_add_callback', 'cb.func is missing');
      return NEG_EINVAL;
    }
    if (this._callbacks.has(cb)) {
      this._kernel.bug('DB-29', 'dma_fence_add_callback', 'this callback is already queued on the fence');
    }
    if (this._signaled) return NEG_ENOENT;
    this._callbacks.add(cb);
    return 0;
  }

  /** dma_fence_remove_callback: true only when the callback was still pending (and now won't run). */
  removeCallback(cb: DmaFenceCallback): boolean {
    return this._callbacks.delete(cb);
  }

  /**
   * dma_fence_wait_timeout. `timeout` is in clock ticks; the wait sleeps on the virtual clock,
   * running its timers. Returns the remaining time (>= 1) on success, or MAX_SCHEDULE_TIMEOUT for an
   * infinite wait; 0 on timeout; with timeout 0, 1 if signaled and 0 if not; -EINVAL (WARN) for a
   * negative timeout; -ERESTARTSYS when `intr` and a signal is pending (`kernel.signalPending`).
   * An infinite wait on a fence that nothing will signal breaks DB-29 (fences must signal in finite
   * time): the emulator reports it and returns -ERESTARTSYS, as if the sleeping task were killed.
   * @throws {@link SimError} EINVAL in strict mode where the kernel WARNs (negative timeout, a
   * wait that can never end); whatever a timer run during the wait throws.
   */
  waitTimeout(intr: boolean, timeout: number): number {
    if (!Number.isInteger(timeout) || timeout < 0) {
      this._kernel.warn('DB-29', 'dma_fence_wait_timeout', `timeout must be >= 0, got ${timeout}`);
      return NEG_EINVAL;
    }
    if (this._signaled) return timeout === 0 ? 1 : timeout;
    if (timeout === 0) return 0;
    const k = this._kernel;
    const interrupted = (): boolean => intr && k.signalPending;
    if (interrupted()) return NEG_ERESTARTSYS;
    const infinite = timeout >= MAX_SCHEDULE_TIMEOUT;
    const deadline = infinite ? Number.POSITIVE_INFINITY : k.clock.now + timeout;
    const at = k.clock.runUntil(() => this._signaled || interrupted(), deadline);
    if (this._signaled && at !== undefined) return infinite ? MAX_SCHEDULE_TIMEOUT : Math.max(1, deadline - at);
    if (interrupted()) return NEG_ERESTARTSYS;
    if (infinite) {
      k.warn('DB-29', 'dma_fence_wait', `fence ${this._name()} can never signal: nothing is scheduled to signal it`);
      return NEG_ERESTARTSYS;
    }
    return 0;
  }

  /**
   * dma_fence_wait: 0 once signaled, or the negative error of `waitTimeout`.
   * @throws {@link SimError} as {@link DmaFence.waitTimeout}.
   */
  wait(intr = true): number {
    const r = this.waitTimeout(intr, MAX_SCHEDULE_TIMEOUT);
    return r < 0 ? r : 0;
  }

  /**
   * Scenario helper: signal (optionally with an error) after `delay` virtual ticks, as the
   * fence's hardware would on completion. Returns a handle that cancels it.
   * @throws {@link SimError} EINVAL when `delay` is not a non-negative safe integer.
   */
  scheduleSignal(delay: number, error?: number): Disposable {
    return this._kernel.clock.schedule(delay, () => {
      if (this._signaled) return;
      if (error !== undefined) this.setError(error);
      this.signal();
    });
  }

  private _doSignal(): void {
    this._signaled = true;
    this._timestamp = this._kernel.clock.now;
    // Callbacks are detached before they run, so remove_callback from inside one returns false.
    const cbs = [...this._callbacks];
    this._callbacks.clear();
    this._kernel.emit({
      kind: 'fence_signal',
      detail: { context: this.context, seqno: this.seqno, error: this._error },
    });
    for (const cb of cbs) cb.func(this, cb);
  }

  private _name(): string {
    return `${this.context}:${this.seqno}`;
  }
}
