/**
 * What the runner feeds into a trace: the DMA-BUF kernel's event stream, DMA transfers (a
 * wrapper around the simulator's DMA engine that records each transfer with its bytes and
 * result) and IOMMU fault records.
 */
import type { DmaBufEvent, DmaBufKernel, Disposable, DmaEndpoint, DmaEngine, DmaResult, TransferTiming, FaultRecord } from '../index.js';
import { type TraceEvent, type TraceProcess, transferNs } from './trace.js';
import { DEFAULT_HISTORY_CAP, Ring } from '../index.js';

/** Thread for events that belong to no device. */
export const DMABUF_THREAD = 'dma-buf';

/**
 * Subscribes to a kernel's dma-buf events and writes each as an instant event: on the
 * importer's thread for attachment events (attach names the device), on the exporter's thread
 * where the caller named it (nameBuffer), else on the 'dma-buf' thread. WARNs are
 * process-wide instants in category 'warn'. What it remembers per buffer and attachment is
 * forgotten at release and detach, and at most `cap` unmoved events per buffer are kept, so its
 * memory does not grow with the run.
 */
export class DmaBufTraceSource implements Disposable {
  private readonly _attachDevice = new Map<number, string>();
  private readonly _bufferDevice = new Map<number, string>();
  /** Events of buffers not yet named, to move when they are. */
  private readonly _unnamed = new Map<number, Ring<TraceEvent>>();
  private readonly _sub: Disposable;
  private readonly _cap: number;

  /**
   * `cap`: unnamed events kept per buffer for nameBuffer to move (the trace's own cap is a
   * sensible value). @default DEFAULT_HISTORY_CAP
   * @throws {@link index!SimError} EINVAL when `cap` is not a non-negative integer.
   */
  constructor(kernel: DmaBufKernel, private readonly _proc: TraceProcess, cap: number = DEFAULT_HISTORY_CAP) {
    this._cap = new Ring(cap, 'DmaBufTraceSource', 'cap').capacity;
    this._sub = kernel.onEvent((e) => this.record(e));
  }

  /** Puts a buffer's own events (export, release, ...) on its exporter device's thread. */
  nameBuffer(dmaBufId: number, device: string): void {
    this._bufferDevice.set(dmaBufId, device);
    const tid = this._proc.thread(device);
    for (const e of this._unnamed.get(dmaBufId) ?? []) e.tid = tid;
    this._unnamed.delete(dmaBufId);
  }

  /** Writes one kernel event to the trace (the subscription calls it; a caller may feed events too). */
  record(e: DmaBufEvent): void {
    if (e.kind === 'attach' && e.attachmentId !== undefined && typeof e.detail.device === 'string') {
      this._attachDevice.set(e.attachmentId, e.detail.device);
    }
    const thread = (e.attachmentId !== undefined ? this._attachDevice.get(e.attachmentId) : undefined)
      ?? (e.dmaBufId !== undefined ? this._bufferDevice.get(e.dmaBufId) : undefined)
      ?? DMABUF_THREAD;
    const args: Record<string, unknown> = { seq: e.seq, ...e.detail };
    if (e.dmaBufId !== undefined) args.dmaBuf = e.dmaBufId;
    if (e.attachmentId !== undefined) args.attachment = e.attachmentId;
    if (e.rule !== undefined) args.rule = e.rule;
    const name = e.kind === 'warn' ? `WARN ${e.rule ?? ''}`.trim() : e.kind;
    const ev = this._proc.instant(thread, name, e.kind === 'warn' ? 'warn' : 'dma-buf', args, e.kind === 'warn' ? 'p' : 't');
    if (thread === DMABUF_THREAD && e.dmaBufId !== undefined && e.kind !== 'warn') {
      let list = this._unnamed.get(e.dmaBufId);
      if (!list) this._unnamed.set(e.dmaBufId, (list = new Ring(this._cap)));
      list.push(ev);
    }
    // The last event of a buffer or an attachment: nothing will name or place it again.
    if (e.kind === 'release' && e.dmaBufId !== undefined) {
      this._unnamed.delete(e.dmaBufId);
      this._bufferDevice.delete(e.dmaBufId);
    }
    if (e.kind === 'detach' && e.attachmentId !== undefined) this._attachDevice.delete(e.attachmentId);
  }

  /** Stops recording the kernel's events. */
  dispose(): void {
    this._sub.dispose();
  }
}

/** A transfer as the runner reports it. */
export interface TransferRecord {
  op: 'copy' | 'fill' | 'write' | 'read';
  device: string;
  src?: DmaEndpoint;
  dst?: DmaEndpoint;
  length: bigint;
  result: DmaResult;
  /** When it ran on the machine's clock (absent on a simulator without a cost model). */
  timing?: TransferTiming;
}

/**
 * The DMA engine with each transfer recorded: a complete event on the device's thread with
 * bytes requested and done and the result code, and a record for the report.
 */
export class TracedDma {
  private readonly _transfers: Ring<TransferRecord>;
  private readonly _sub: { dispose(): void };
  private readonly _unsettled = new Map<TransferTiming, TraceEvent>();

  /**
   * Records every transfer of `_dma` (the scenario's own and the drivers'), until disposed.
   * Its copy/fill/read/write are the engine's. `cap`: how many records `transfers` keeps (the
   * newest; 0 = none). @default DEFAULT_HISTORY_CAP
   * @throws {@link index!SimError} EINVAL when `cap` is not a non-negative integer.
   */
  constructor(
    private readonly _dma: DmaEngine,
    private readonly _proc: TraceProcess | null,
    /** A device name for a requester ID ('phys' for untranslated access). */
    private readonly _deviceOf: (rid: DmaEndpoint['rid']) => string,
    private readonly _onTransfer?: (t: TransferRecord) => void,
    cap: number = DEFAULT_HISTORY_CAP,
  ) {
    this._transfers = new Ring(cap, 'TracedDma', 'cap');
    this._sub = _dma.onTransfer((t) => this._rec({ ...t, device: this._deviceOf((t.dst ?? t.src)!.rid) }));
  }

  /** The newest transfer records (up to `cap`), oldest first: a snapshot. */
  get transfers(): readonly TransferRecord[] {
    return this._transfers.toArray();
  }

  /** Transfers recorded that `transfers` no longer holds. */
  get transfersDropped(): number {
    return this._transfers.dropped;
  }

  /** Stops recording transfers. */
  dispose(): void {
    this._sub.dispose();
  }

  private _rec(t: TransferRecord): void {
    this._transfers.push(t);
    const args = {
      length: t.length, bytes: t.result.bytesDone, result: t.result.code,
      ...(t.src ? { src: `${typeof t.src.rid === 'string' ? t.src.rid : this._deviceOf(t.src.rid)}@0x${t.src.addr.toString(16)}` } : {}),
      ...(t.dst ? { dst: `${typeof t.dst.rid === 'string' ? t.dst.rid : this._deviceOf(t.dst.rid)}@0x${t.dst.addr.toString(16)}` } : {}),
      ...(t.result.fault ? { fault: { ...t.result.fault } } : {}),
      ...(t.timing ? { path: t.timing.path, limitedBy: t.timing.bottleneck, translationNs: t.timing.translationNs } : {}),
    };
    // On the machine's clock when it has a cost model; else the trace's own fixed-rate estimate.
    // The slice goes first: what the callback records (IOTLB counters) comes after its end.
    if (t.timing) {
      const e = this._proc?.slice(t.device, `dma ${t.op}`, 'dma', t.timing.startNs, t.timing.durationNs, args);
      // Inside a concurrent batch the duration is known only when the batch ends (retime).
      if (e && t.timing.durationNs === 0 && t.timing.bytes > 0) this._unsettled.set(t.timing, e);
    } else {
      this._proc?.complete(t.device, `dma ${t.op}`, 'dma', transferNs(t.result.bytesDone), args);
    }
    this._onTransfer?.(t);
  }

  /** Moves the slice of a transfer timed in a concurrent batch to its final start and duration. */
  retime(timing: TransferTiming): void {
    const e = this._unsettled.get(timing);
    if (!e) return;
    this._unsettled.delete(timing);
    e.ts = timing.startNs / 1000;
    e.dur = Math.max(1, timing.durationNs) / 1000;
  }

  /**
   * {@link index!DmaEngine.copy}, recorded.
   * @throws {@link index!SimError} EINVAL for a bad endpoint, address or length, as the engine's {@link index!DmaEngine.copy}.
   */
  copy(src: DmaEndpoint, dst: DmaEndpoint, length: bigint): DmaResult {
    return this._dma.copy(src, dst, length);
  }

  /**
   * {@link index!DmaEngine.fill}, recorded.
   * @throws {@link index!SimError} EINVAL for a bad endpoint, address or length, as the engine's {@link index!DmaEngine.fill}.
   */
  fill(dst: DmaEndpoint, value: number, length: bigint): DmaResult {
    return this._dma.fill(dst, value, length);
  }

  /**
   * {@link index!DmaEngine.write}, recorded.
   * @throws {@link index!SimError} EINVAL for a bad endpoint, address or length, as the engine's {@link index!DmaEngine.write}.
   */
  write(dst: DmaEndpoint, data: Uint8Array): DmaResult {
    return this._dma.write(dst, data);
  }

  /**
   * {@link index!DmaEngine.read}, recorded.
   * @throws {@link index!SimError} EINVAL for a bad endpoint, address or length; ENOMEM when the
   *   host buffer cannot be allocated, as the engine's {@link index!DmaEngine.read}.
   */
  read(src: DmaEndpoint, length: number): DmaResult & { data: Uint8Array } {
    return this._dma.read(src, length);
  }
}

/** An IOMMU fault record as a process-wide instant on the faulting device's thread. */
export function traceFault(proc: TraceProcess, device: string, unit: string, f: FaultRecord): void {
  proc.instant(device, `iommu fault (${f.reason})`, 'iommu', {
    unit, bdf: f.bdf, domain: f.domain, iova: f.iova, access: f.access, reason: f.reason, code: f.code, seq: f.seq,
  });
}
