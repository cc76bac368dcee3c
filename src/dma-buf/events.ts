/**
 * The event log of the dma-buf layer. Later layers turn these into a Chrome trace and the CLI
 * report, so each event is a plain, serialisable object.
 */
import { checkCap, DEFAULT_HISTORY_CAP, Ring } from '../util/ring.js';

/** Something that can be undone; returned by every subscription. */
export interface Disposable {
  /** Undoes it (unsubscribes, cancels the timer); a second call changes nothing. */
  dispose(): void;
}

/**
 * What happened: a dma-buf framework call (export, attach, map, pin, move_notify, vmap, mmap,
 * begin/end_cpu_access, set_name...), a fence or reservation change, or a kernel WARN ('warn')
 * or CONFIG_DMA_API_DEBUG report ('debug').
 */
export type DmaBufEventKind =
  | 'export'
  | 'fd'
  | 'get'
  | 'put'
  | 'release'
  | 'attach'
  | 'detach'
  | 'map'
  | 'unmap'
  | 'pin'
  | 'unpin'
  | 'move_notify'
  | 'vmap'
  | 'vunmap'
  | 'mmap'
  | 'munmap'
  | 'begin_cpu_access'
  | 'end_cpu_access'
  | 'set_name'
  | 'fence_signal'
  | 'fence_error'
  | 'resv_add_fence'
  | 'warn'
  | 'debug';

/** One entry of the dma-buf layer's event log (what the trace and the CLI report show). */
export interface DmaBufEvent {
  /** Position in the log, from 0. */
  readonly seq: number;
  /** Virtual time (SimClock.now) when it happened. */
  readonly time: number;
  /** What happened. */
  readonly kind: DmaBufEventKind;
  /** The buffer concerned (DmaBuf.id), when there is one. */
  readonly dmaBufId?: number;
  /** The attachment concerned (DmaBufAttachment.id), when there is one. */
  readonly attachmentId?: number;
  /** Spec rule id for 'warn' and 'debug' events. */
  readonly rule?: string;
  /** Kind-specific data: directions, counts, messages. */
  readonly detail: Readonly<Record<string, unknown>>;
}

/** An event as its emitter gives it: the log adds `seq` and `time`. */
export type DmaBufEventInput = Omit<DmaBufEvent, 'seq' | 'time'>;
/** Called with each event as it is emitted, in subscription order. */
export type DmaBufEventListener = (event: DmaBufEvent) => void;

/**
 * A listener list plus a bounded in-memory log: the newest `cap` events are kept (a Ring), older
 * ones are counted in `dropped`. Emitting costs O(1) whatever the run's length.
 */
export class EventLog {
  private readonly _listeners = new Set<DmaBufEventListener>();
  private readonly _log: Ring<DmaBufEvent>;
  private _seq = 0;

  /**
   * `record`: how many events to keep: a count (0 = none), true for DEFAULT_HISTORY_CAP, false for
   * none. Listeners are called either way.
   * @throws {@link SimError} EINVAL when `record` is a number that is not a non-negative integer.
   */
  constructor(record: boolean | number = true) {
    this._log = new Ring(record === true ? DEFAULT_HISTORY_CAP : record === false ? 0 : checkCap('EventLog', 'record', record));
  }

  /** The kept events, oldest first (a snapshot; empty when recording is off). */
  get events(): readonly DmaBufEvent[] {
    return this._log.toArray();
  }

  /** How many events the log keeps at most (0: recording off). */
  get capacity(): number {
    return this._log.capacity;
  }

  /** Events emitted but no longer kept (the log was full, or recording is off). */
  get dropped(): number {
    return this._log.dropped;
  }

  /** Appends an event at virtual time `time` and calls every listener; returns the event. */
  emit(time: number, input: DmaBufEventInput): DmaBufEvent {
    const event: DmaBufEvent = { seq: this._seq++, time, ...input };
    this._log.push(event);
    for (const l of [...this._listeners]) l(event);
    return event;
  }

  /** Calls `listener` with every later event until the returned handle is disposed. */
  subscribe(listener: DmaBufEventListener): Disposable {
    this._listeners.add(listener);
    return { dispose: () => void this._listeners.delete(listener) };
  }

  /** Forgets the recorded events (sequence numbers keep counting). */
  clear(): void {
    this._log.clear();
  }
}
