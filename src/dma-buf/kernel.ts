import { SimError, type ErrnoCode } from '../../bindings/errors.js';
import { SimClock } from './clock.js';
import { DmaBuf } from './dma-buf.js';
import { EventLog, type Disposable, type DmaBufEvent, type DmaBufEventInput, type DmaBufEventListener } from './events.js';
import { DmaFence, type DmaFenceNames } from './fence.js';
import type { DmaBufExportInfo } from './ops.js';
import { resolveProfile, type KernelProfile, type KernelProfileName, type KernelRuleOverrides } from './profile.js';
import { checkCap, DEFAULT_HISTORY_CAP } from '../util/ring.js';
import { DmaResv, WwAcquireCtx } from './resv.js';
import type { SgTable } from './sg-table.js';

/** Options of a new DmaBufKernel: behaviour era, strictness, clock and kernel config switches. */
export interface DmaBufKernelOptions {
  /** Kernel behaviour era. @default '6.x' */
  profile?: KernelProfileName;
  /**
   * Per-rule overrides of the profile, e.g. `{ attachTimeMapping: false }` (DB-09 alone). Unknown
   * rules and bad values are refused (EINVAL naming `overrides.<rule>`).
   */
  overrides?: KernelRuleOverrides;
  /**
   * Turn every kernel WARN (wrong lock state, pin on a static attachment, ...) into a thrown
   * SimError EINVAL, raised before the call changes anything. @default false (WARNs are events)
   */
  strict?: boolean;
  /** Share a clock with other layers. @default a new SimClock at time 0 */
  clock?: SimClock;
  /** Keep events in `events` (false: none, as `eventCap: 0`). @default true */
  recordEvents?: boolean;
  /**
   * How many of the newest events `events` keeps; older ones are counted in `eventsDropped`.
   * 0 keeps none (listeners still see every event). @default DEFAULT_HISTORY_CAP (65536)
   */
  eventCap?: number;
  /**
   * CONFIG_DMABUF_MOVE_NOTIFY. When false, dynamic importers of dynamic exporters are pinned on
   * every map, as if static (DB-11). @default true
   */
  configMoveNotify?: boolean;
  /** CONFIG_DMA_API_DEBUG: report unaligned sg entries as 'debug' events (DB-12). @default false */
  dmaApiDebug?: boolean;
}

/** Ids that events carry. */
export interface EventIds {
  /** DmaBuf.id of the buffer concerned. */
  dmaBufId?: number;
  /** DmaBufAttachment.id of the attachment concerned. */
  attachmentId?: number;
}

/**
 * The simulated kernel's dma-buf context: behaviour profile, virtual clock, strict mode, event
 * log, id and fence-context allocators. Every DmaBuf, fence and reservation belongs to one.
 */
export class DmaBufKernel {
  readonly profile: KernelProfile;
  readonly clock: SimClock;
  readonly strict: boolean;
  readonly configMoveNotify: boolean;
  readonly dmaApiDebug: boolean;
  /**
   * A signal is pending for the current task: interruptible waits return -ERESTARTSYS (uAPI
   * calls then fail with EINTR). Scenarios set and clear it.
   */
  signalPending = false;

  private readonly _log: EventLog;
  private _fenceContext = 1; // context 0 is the stub's
  private _ids = { dmaBuf: 1, attachment: 1, resv: 1, acquireStamp: 1 };
  private _allocFailures = 0;
  private _stub: DmaFence | undefined;
  private readonly _live = new Set<DmaBuf>();
  /** @internal Tables handed to importers and not yet unmapped (DB-12: never the same one twice). */
  readonly _liveTables = new Set<SgTable>();

  /** @throws {@link SimError} EINVAL for an unknown profile name. */
  constructor(opts: DmaBufKernelOptions = {}) {
    this.profile = resolveProfile(opts.profile ?? '6.x', opts.overrides);
    this.clock = opts.clock ?? new SimClock();
    this.strict = opts.strict ?? false;
    this.configMoveNotify = opts.configMoveNotify ?? true;
    this.dmaApiDebug = opts.dmaApiDebug ?? false;
    const cap = opts.eventCap === undefined ? DEFAULT_HISTORY_CAP : checkCap('DmaBufKernel', 'eventCap', opts.eventCap);
    this._log = new EventLog(opts.recordEvents === false ? 0 : cap);
  }

  /** The newest events (up to `eventCap`), oldest first: a snapshot. */
  get events(): readonly DmaBufEvent[] {
    return this._log.events;
  }

  /** Events emitted that `events` no longer holds (beyond `eventCap`, or recording off). */
  get eventsDropped(): number {
    return this._log.dropped;
  }

  /** Subscribes to events as they happen. */
  onEvent(listener: DmaBufEventListener): Disposable {
    return this._log.subscribe(listener);
  }

  /** Forgets the recorded events (listeners stay subscribed). */
  clearEvents(): void {
    this._log.clear();
  }

  /** Buffers exported and not yet released. */
  get liveBuffers(): ReadonlySet<DmaBuf> {
    return this._live;
  }

  /**
   * dma_buf_export (DB-01..DB-03). Returns the buffer holding one (kernel) reference: hand it to
   * an fd with dma_buf_fd (SimProcess.dmaBufFd) or drop it with `put()`. A shared `info.resv`
   * must NOT be held (DB-25).
   * @throws {@link SimError} EINVAL when `info`, `priv`, `ops` or a required op (mapDmaBuf,
   * unmapDmaBuf, release) is missing (DB-01), pin and unpin are not paired or combined with
   * cacheSgtMapping (DB-02), size is not a non-negative integer or flags not an integer (DB-03),
   * or (strict mode) a shared resv is held; ENOENT when the owner module is going away; ENOMEM
   * for an injected allocation failure.
   */
  export(info: DmaBufExportInfo): DmaBuf {
    return DmaBuf._export(this, info);
  }

  /**
   * dma_fence_context_alloc: `num` consecutive fresh contexts; returns the first.
   * @throws {@link SimError} EINVAL when `num` is not a positive safe integer.
   */
  fenceContextAlloc(num = 1): number {
    if (!Number.isSafeInteger(num) || num < 1) {
      throw new SimError('EINVAL', 'dma_fence_context_alloc', `num must be a positive integer, got ${num}`);
    }
    const first = this._fenceContext;
    this._fenceContext += num;
    return first;
  }

  /** dma_fence_init: a new, unsignaled fence on timeline `context` (from fenceContextAlloc). */
  createFence(context: number, seqno: number, names?: DmaFenceNames): DmaFence {
    return new DmaFence(this, context, seqno, names);
  }

  /** dma_fence_get_stub: one shared fence, always signaled, context 0. */
  getStub(): DmaFence {
    if (!this._stub) {
      this._stub = new DmaFence(this, 0, 0, { driverName: 'stub', timelineName: 'stub' });
      this._stub.checkAndSignal();
    }
    return this._stub;
  }

  /** dma_resv_init: a new, unlocked reservation object with no fences (to share between buffers). */
  createResv(): DmaResv {
    return new DmaResv(this, this._ids.resv++);
  }

  /** ww_acquire_init(reservation_ww_class): a new acquire context, younger than every earlier one. */
  wwAcquireInit(): WwAcquireCtx {
    return new WwAcquireCtx(this, this._ids.acquireStamp++);
  }

  /** Makes the next `count` kernel allocations (export, attach) fail with ENOMEM. */
  injectAllocFailure(count = 1): void {
    this._allocFailures = count;
  }

  // ---- used by the rest of src/dma-buf ----

  /** @internal kzalloc: throws ENOMEM when a failure was injected. */
  _alloc(op: string, rule: string): void {
    if (this._allocFailures > 0) {
      this._allocFailures--;
      throw new SimError('ENOMEM', op, 'allocation failed (injected)', rule);
    }
  }

  /** @internal */
  _nextDmaBufId(): number {
    return this._ids.dmaBuf++;
  }

  /** @internal */
  _nextAttachmentId(): number {
    return this._ids.attachment++;
  }

  /** @internal */
  _track(buf: DmaBuf, live: boolean): void {
    if (live) this._live.add(buf);
    else this._live.delete(buf);
  }

  /** @internal Appends an event stamped with the current virtual time. */
  emit(input: DmaBufEventInput): DmaBufEvent {
    return this._log.emit(this.clock.now, input);
  }

  /**
   * A kernel WARN: the call is wrong but the kernel carries on. Emits a 'warn' event; in strict
   * mode throws instead of carrying on (callers warn before changing anything). For exporters
   * and drivers built on the framework.
   * @throws {@link SimError} EINVAL with `rule`, in strict mode only.
   */
  warn(rule: string, op: string, message: string, ids: EventIds = {}): void {
    this.emit({ kind: 'warn', rule, ...ids, detail: { op, message } });
    if (this.strict) throw new SimError('EINVAL', op, message, rule);
  }

  /**
   * A WARN_ON that also makes the kernel function fail (bad arguments, contract violations):
   * emits the 'warn' event and throws in every mode.
   * @throws {@link SimError} `code` (EINVAL by default) with `rule`, always.
   */
  warnRefuse(rule: string, op: string, message: string, ids: EventIds = {}, code: ErrnoCode = 'EINVAL'): never {
    this.emit({ kind: 'warn', rule, ...ids, detail: { op, message } });
    throw new SimError(code, op, message, rule);
  }

  /**
   * Misuse whose kernel outcome is a BUG, memory corruption or undefined behaviour: always
   * refused (EINVAL unless stated), with a 'warn' event marked emulator-defined.
   * @throws {@link SimError} `code` (EINVAL by default) with `rule`, always.
   */
  bug(rule: string, op: string, message: string, ids: EventIds = {}, code: ErrnoCode = 'EINVAL'): never {
    this.emit({ kind: 'warn', rule, ...ids, detail: { op, message, emulatorDefined: true } });
    throw new SimError(code, op, `${message} (emulator-defined: undefined in the kernel)`, rule);
  }

  /** @internal Checks the lock state a call needs (DB-25/DB-28): a WARN when it is wrong (EINVAL in strict mode). */
  checkResvHeld(resv: DmaResv, wantHeld: boolean, op: string, rule: string, ids: EventIds = {}): void {
    if (resv.isLocked() === wantHeld) return;
    this.warn(rule, op, wantHeld ? `resv ${resv.id} must be held` : `resv ${resv.id} must not be held`, ids);
  }

  /**
   * @internal The DB-25 convention for a call. Under the 5.15 ('legacy') convention only calls
   * marked `inLegacy` are checked: there, only dynamic paths and the framework's own lock takers
   * cared about resv.
   */
  _checkLock(resv: DmaResv | undefined, wantHeld: boolean, op: string, ids: EventIds = {}, inLegacy = false): void {
    if (!resv) return;
    if (this.profile.lockConvention === 'legacy' && !inLegacy) return;
    this.checkResvHeld(resv, wantHeld, op, 'DB-25', ids);
  }

  /**
   * @internal Runs `fn` with the lock taken, as the framework's own dma_resv_lock calls do. When
   * the caller already holds it (a WARN was reported), it runs under the caller's hold instead of
   * deadlocking.
   */
  _withResvLock<T>(resv: DmaResv, fn: () => T): T {
    if (resv.isLocked()) return fn();
    resv.lock();
    try {
      return fn();
    } finally {
      resv.unlock();
    }
  }
}
