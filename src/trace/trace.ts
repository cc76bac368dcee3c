/**
 * Chrome trace-event JSON (the format chrome://tracing and Perfetto open):
 *   { traceEvents: [{ name, cat, ph, ts, dur?, pid, tid, args }], displayTimeUnit }
 * ts and dur are in microseconds. Timestamps are deterministic: the machine's virtual clock
 * (nanoseconds, the one the kernel log and the report read) or, when it has not moved, one
 * nanosecond after the previous event, so every event has its own time and time never goes
 * backwards. A DMA transfer is a slice at the start and duration the fabric model gave it
 * (src/time); without a model (a bare simulator) it takes bytes at a fixed rate (transferNs).
 *
 * One process per act (pid = act number), one thread per device (tid in order of first use),
 * plus a 'scenario' thread for the steps and a 'dma-buf' thread for events with no device.
 */
import { DEFAULT_HISTORY_CAP, Ring } from '../index.js';

/** Phase of a trace event: complete slice, begin, end, instant, metadata or counter. */
export type TracePhase = 'X' | 'B' | 'E' | 'i' | 'M' | 'C';

/** One Chrome trace event (the Trace Event Format's JSON object). */
export interface TraceEvent {
  /** The event's label. */
  name: string;
  /** Category: 'dma', 'dma-buf', 'iommu', 'step', 'warn', 'counter'. */
  cat: string;
  /** Phase: complete slice, begin, end, instant, metadata or counter. */
  ph: TracePhase;
  /** Microseconds. */
  ts: number;
  /** Microseconds, for ph 'X'. */
  dur?: number;
  /** Process id: the act number. */
  pid: number;
  /** Thread id: a device, the 'scenario' or 'dma-buf' thread. */
  tid: number;
  /** Scope of an instant event: thread, process or global. */
  s?: 't' | 'p' | 'g';
  args: Record<string, unknown>;
}

/** A whole trace file as chrome://tracing and Perfetto load it. */
export interface TraceFile {
  /** Metadata events first, then each process's events in time order. */
  traceEvents: TraceEvent[];
  /** How viewers display time; ts and dur are microseconds either way. */
  displayTimeUnit: 'ns' | 'ms';
  /** Free-form run information (scenario name, profile, ...). */
  otherData?: Record<string, unknown>;
}

/** DMA time when no fabric model times the transfer: a fixed setup time plus bytes at 16 bytes/ns. */
export function transferNs(bytes: bigint | number): number {
  return 100 + Math.ceil(Number(bytes) / 16);
}

/** bigints as hex strings, byte arrays as lengths, so args serialise. */
export function traceArg(v: unknown): unknown {
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (Array.isArray(v)) return v.map(traceArg);
  if (typeof v === 'object' && v !== null) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = traceArg(x);
    return o;
  }
  return v;
}

/** One act's process in the trace. */
export class TraceProcess {
  private readonly _threads = new Map<string, number>();
  /** Nanoseconds of the last event. */
  private _cursor = -1;

  /** @internal */
  constructor(private readonly _rec: TraceRecorder, readonly pid: number, readonly name: string, private readonly _clock: () => number) {
    _rec._processes.push(this);
  }

  /** The tid of a named thread (a device, 'scenario', 'dma-buf'), made on first use. */
  thread(name: string): number {
    let tid = this._threads.get(name);
    if (tid === undefined) {
      tid = this._threads.size + 1;
      this._threads.set(name, tid);
    }
    return tid;
  }

  /** @internal Metadata: the process name and the names of threads that have events. */
  _metadata(used: ReadonlySet<number>): TraceEvent[] {
    const pid = this.pid;
    const out: TraceEvent[] = [
      { name: 'process_name', cat: '__metadata', ph: 'M', ts: 0, pid, tid: 0, args: { name: this.name } },
      { name: 'process_sort_index', cat: '__metadata', ph: 'M', ts: 0, pid, tid: 0, args: { sort_index: pid } },
    ];
    let order = 0;
    for (const [name, tid] of this._threads) {
      if (!used.has(tid)) continue;
      out.push({ name: 'thread_name', cat: '__metadata', ph: 'M', ts: 0, pid, tid, args: { name } });
      out.push({ name: 'thread_sort_index', cat: '__metadata', ph: 'M', ts: 0, pid, tid, args: { sort_index: ++order } });
    }
    return out;
  }

  /** The next timestamp in ns: the clock, or 1 ns after the last event. */
  private _next(): number {
    this._cursor = Math.max(this._clock(), this._cursor + 1);
    return this._cursor;
  }

  /** An instant event; returned so a source can move it to another thread later. */
  instant(thread: string, name: string, cat: string, args: Record<string, unknown> = {}, scope: 't' | 'p' = 't'): TraceEvent {
    const tid = this.thread(thread);
    const e: TraceEvent = { name, cat, ph: 'i', s: scope, ts: this._next() / 1000, pid: this.pid, tid, args: traceArg(args) as Record<string, unknown> };
    this._rec._push(e);
    return e;
  }

  /** A slice of `durNs` starting now; later events start after it ends. */
  complete(thread: string, name: string, cat: string, durNs: number, args: Record<string, unknown> = {}): void {
    const tid = this.thread(thread);
    const start = this._next();
    const dur = Math.max(1, Math.round(durNs));
    this._cursor = start + dur - 1;
    this._rec._push({ name, cat, ph: 'X', ts: start / 1000, dur: dur / 1000, pid: this.pid, tid, args: traceArg(args) as Record<string, unknown> });
  }

  /**
   * A slice at an explicit virtual time (a transfer the fabric model timed); later events come
   * after its end.
   */
  slice(thread: string, name: string, cat: string, startNs: number, durNs: number, args: Record<string, unknown> = {}): TraceEvent {
    const tid = this.thread(thread);
    const dur = Math.max(1, Math.round(durNs));
    // One event per ns: a slice that starts with the step's begin event moves 1 ns later.
    const start = Math.max(startNs, this._cursor + 1);
    this._cursor = Math.max(this._cursor, start + dur - 1);
    const e: TraceEvent = { name, cat, ph: 'X', ts: start / 1000, dur: dur / 1000, pid: this.pid, tid, args: traceArg(args) as Record<string, unknown> };
    this._rec._push(e);
    return e;
  }

  /** Opens a duration (ph 'B') on `thread`; close it with {@link TraceProcess.end} with the same name. */
  begin(thread: string, name: string, cat: string, args: Record<string, unknown> = {}): void {
    const tid = this.thread(thread);
    this._rec._push({ name, cat, ph: 'B', ts: this._next() / 1000, pid: this.pid, tid, args: traceArg(args) as Record<string, unknown> });
  }

  /** Closes the duration `begin` opened on `thread` (ph 'E'). */
  end(thread: string, name: string, cat: string, args: Record<string, unknown> = {}): void {
    const tid = this.thread(thread);
    this._rec._push({ name, cat, ph: 'E', ts: this._next() / 1000, pid: this.pid, tid, args: traceArg(args) as Record<string, unknown> });
  }

  /** A counter track (ph 'C'): e.g. IOTLB hits and misses. */
  counter(name: string, values: Record<string, number>): void {
    this._rec._push({ name, cat: 'counter', ph: 'C', ts: this._next() / 1000, pid: this.pid, tid: 0, args: values });
  }
}

/** The trace file as text: one event per line (diffable, and still what Perfetto opens). */
export function stringifyTrace(t: TraceFile): string {
  const { traceEvents, ...rest } = t;
  const head = JSON.stringify(rest).slice(1, -1);
  return `{${head},"traceEvents":[\n${traceEvents.map((e) => JSON.stringify(e)).join(',\n')}\n]}\n`;
}

/** Options of a {@link TraceRecorder}. */
export interface TraceRecorderOptions {
  /**
   * How many events the recorder keeps: the newest, the oldest are dropped and counted (the
   * file then says how many in a `trace_events_dropped` metadata event). 0 records nothing.
   * @default DEFAULT_HISTORY_CAP (65536)
   */
  cap?: number;
}

/** Collects trace events of a run, the newest `cap` of them (O(1) per event). */
export class TraceRecorder {
  private readonly _events: Ring<TraceEvent>;
  /** @internal */
  readonly _processes: TraceProcess[] = [];

  /** @throws {@link index!SimError} EINVAL when `opts.cap` is not a non-negative integer. */
  constructor(opts: TraceRecorderOptions = {}) {
    this._events = new Ring(opts.cap ?? DEFAULT_HISTORY_CAP, 'TraceRecorder', 'cap');
  }

  /** A process for an act; `clock` gives virtual time in ns (ticks). */
  process(pid: number, name: string, clock: () => number = () => 0): TraceProcess {
    return new TraceProcess(this, pid, name, clock);
  }

  /** @internal */
  _push(e: TraceEvent): void {
    this._events.push(e);
  }

  /** The events kept, in recording order, without metadata (a snapshot). */
  get events(): readonly TraceEvent[] {
    return this._events.toArray();
  }

  /** Events recorded but no longer kept (beyond `cap`, or `cap` 0). */
  get dropped(): number {
    return this._events.dropped;
  }

  /**
   * The trace file: metadata first (with a `trace_events_dropped` event when the cap dropped
   * any), then every process's events in time order.
   */
  toJSON(otherData?: Record<string, unknown>): TraceFile {
    const rest = this._events.toArray();
    const used = new Map<number, Set<number>>();
    for (const e of rest) {
      if (!used.has(e.pid)) used.set(e.pid, new Set());
      used.get(e.pid)!.add(e.tid);
    }
    const meta = this._processes.flatMap((p) => p._metadata(used.get(p.pid) ?? new Set()));
    if (this._events.dropped > 0) {
      meta.unshift({
        name: 'trace_events_dropped', cat: '__metadata', ph: 'M', ts: 0, pid: 0, tid: 0,
        args: { dropped: this._events.dropped, kept: rest.length, cap: this._events.capacity },
      });
    }
    // Stable sort by process, then time: within a process events are already in time order.
    const sorted = rest.map((e, i) => ({ e, i })).sort((a, b) => a.e.pid - b.e.pid || a.e.ts - b.e.ts || a.i - b.i).map((x) => x.e);
    return { traceEvents: [...meta, ...sorted], displayTimeUnit: 'ns', ...(otherData ? { otherData } : {}) };
  }
}
