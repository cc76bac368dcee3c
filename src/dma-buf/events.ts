/**
 * The event log of the dma-buf layer. Later layers turn these into a Chrome trace and the CLI
 * report, so each event is a plain, serialisable object.
 */

/** Something that can be undone; returned by every subscription. */
export interface Disposable {
  dispose(): void;
}

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

export interface DmaBufEvent {
  /** Position in the log, from 0. */
  readonly seq: number;
  /** Virtual time (SimClock.now) when it happened. */
  readonly time: number;
  readonly kind: DmaBufEventKind;
  readonly dmaBufId?: number;
  readonly attachmentId?: number;
  /** Spec rule id for 'warn' and 'debug' events. */
  readonly rule?: string;
  /** Kind-specific data: directions, counts, messages. */
  readonly detail: Readonly<Record<string, unknown>>;
}

export type DmaBufEventInput = Omit<DmaBufEvent, 'seq' | 'time'>;
export type DmaBufEventListener = (event: DmaBufEvent) => void;

/** A listener list plus an optional in-memory log. */
export class EventLog {
  private readonly _listeners = new Set<DmaBufEventListener>();
  private readonly _log: DmaBufEvent[] = [];
  private _seq = 0;

  constructor(private readonly _record: boolean) {}

  /** Every event so far, when recording is on (the default). */
  get events(): readonly DmaBufEvent[] {
    return this._log;
  }

  emit(time: number, input: DmaBufEventInput): DmaBufEvent {
    const event: DmaBufEvent = { seq: this._seq++, time, ...input };
    if (this._record) this._log.push(event);
    for (const l of [...this._listeners]) l(event);
    return event;
  }

  subscribe(listener: DmaBufEventListener): Disposable {
    this._listeners.add(listener);
    return { dispose: () => void this._listeners.delete(listener) };
  }

  clear(): void {
    this._log.length = 0;
  }
}
