/**
 * The DMA engine as devices use it: copy, fill, read and write at (requester, address) pairs,
 * each side translated by its requester's IOMMU domain. A fault stops the transfer, as on
 * hardware: the result tells how many bytes were done and which fault stopped it.
 */
import { ABI, type Core } from '../../bindings/core.js';
import { SimError, errnoName } from '../../bindings/errors.js';
import { faultReasonName, type FaultReason } from '../iommu/iommu.js';
import { fnArg, hostBuffer, intArg, isU63, objArg, ridArg, u64Arg, u8ArrayArg, U64_MAX } from '../util/args.js';

/** One side of a transfer: who issues the access (its requester ID selects the IOMMU domain) and at what address. */
export interface DmaEndpoint {
  /** Requester ID of the device doing the access, or 'phys' for untranslated physical access. */
  rid: number | string | 'phys';
  /** Device (IO virtual or bus) address, or physical address for 'phys'. */
  addr: bigint;
}

/** The IOMMU fault that stopped a transfer: the side, the faulting device address and the reason the unit reported. */
export interface DmaFault {
  /** Which endpoint's translation faulted. */
  side: 'src' | 'dst';
  /** The device address (IOVA or bus address) that faulted. */
  iova: bigint;
  /** The fault class the unit reported: 'translation' (not mapped), 'permission', 'blocked', ... */
  reason: FaultReason;
  /** VT-d fault reason or SMMUv3 event id. */
  familyCode: number;
}

/**
 * The outcome of a transfer. A fault does not throw: `ok` is false, `code` names the errno and
 * `bytesDone` counts what moved before it, as a device's DMA stops on hardware.
 */
export interface DmaResult {
  /** The whole length was transferred. */
  ok: boolean;
  /** 'OK' or the errno name of what stopped it (EFAULT, EACCES, EPERM, ENODEV, EIO, ENOMEM, ...). */
  code: string;
  /** Bytes transferred before the transfer stopped (all of them when ok). */
  bytesDone: bigint;
  /** The IOMMU fault, when translation stopped it (EFAULT, EACCES, EPERM, ENODEV, ERANGE). */
  fault?: DmaFault;
}

/** The core's DMA counters since the simulator was created: bytes by direction and memory kind, transfers, faults. */
export interface DmaStats {
  bytesToRam: bigint;
  bytesToDevice: bigint;
  bytesFromRam: bigint;
  bytesFromDevice: bigint;
  ops: bigint;
  faults: bigint;
  /** Vectored copies (copyv calls that reached the core) and the descriptors they ran. */
  vectors: bigint;
  descriptors: bigint;
}

/** One piece of a vectored copy: `length` bytes from `src` to `dst`, each side translated by its requester. */
export interface DmaCopyDescriptor {
  src: DmaEndpoint;
  dst: DmaEndpoint;
  length: bigint;
}

/** The result of a vectored copy. */
export interface DmaVectorResult extends DmaResult {
  /** The descriptor that stopped the transfer (the number of descriptors when all completed). */
  index: number;
}

/** A finished transfer, as observers see it. */
export interface DmaTransfer {
  op: 'copy' | 'fill' | 'read' | 'write';
  /** For a vectored copy: the first descriptor's source (or the one that stopped it). */
  src?: DmaEndpoint;
  dst?: DmaEndpoint;
  /** Bytes asked for (for a vectored copy: the sum of the descriptors' lengths). */
  length: bigint;
  /** For a vectored copy (copyv): the number of descriptors. */
  descriptors?: number;
  result: DmaResult;
  /**
   * Virtual time of the transfer, when the machine has a cost model (src/time): where it
   * started and how long it took on the machine's clock. Inside a concurrent batch the model
   * fills the final values when the batch ends (the object is the same).
   */
  timing?: TransferTiming;
}

/** When a transfer ran on the virtual clock, and what it cost. */
export interface TransferTiming {
  /** Virtual ns when it started. */
  startNs: number;
  /** Virtual ns it took (latency + translation + bytes at the shared rate). */
  durationNs: number;
  /** Bytes done. */
  bytes: number;
  /** bytes / durationNs: GB/s. */
  rateGBps: number;
  /** Part of durationNs spent in IOMMU translation (IOTLB hits, page-walk levels). */
  translationNs: number;
  /** Part of durationNs that is fixed latency (links, switches, root complex, memory). */
  latencyNs: number;
  /** The path, for reports: "nic0 -> sw0 -> gaudi0 BAR0". */
  path: string;
  /** What limited the rate: "link nic0 (Gen4 x16)", "root complex hb0 P2P", ... */
  bottleneck: string;
}

/**
 * A cost model the engine calls around every transfer (one call each, never per byte or page):
 * `begin` before the core moves anything, `end` after, with the finished transfer. The Machine
 * installs its fabric model (src/time/model.ts); a bare simulator has none.
 */
export interface DmaCostModel {
  /** Called before the core moves anything. */
  begin(): void;
  /** Called with the finished transfer; returns its timing, or undefined when the model does not time it. */
  end(t: DmaTransfer): TransferTiming | undefined;
}

/** The requester of an endpoint, checked: the endpoint an object, its rid any form of requester ID or 'phys'. */
function ridOf(op: string, field: string, end: DmaEndpoint): number {
  const rid = plainRid(end);
  if (rid >= 0) return rid;
  objArg(op, field, end);
  return ridArg(op, `${field}.rid`, end.rid, true);
}

/**
 * The requester of an endpoint in the common form (a plain object whose rid is an integer
 * 0..0xffffffff), or -1 for anything else, which then takes the full checks of ridOf.
 */
function plainRid(end: unknown): number {
  if (typeof end !== 'object' || end === null || Array.isArray(end)) return -1;
  const rid = (end as DmaEndpoint).rid;
  // An integer in 0..2^32-1 (RID_PHYS included) is the only number that survives >>> 0.
  return typeof rid === 'number' && rid >>> 0 === rid ? rid : -1;
}

/**
 * The simulator's DMA engine (`Simulator.dma`): device-initiated copies, fills, reads and writes,
 * each side translated through its requester's IOMMU domain, or routed peer to peer. Argument
 * errors throw SimError EINVAL and move nothing; translation faults are reported in the result.
 */
export class DmaEngine {
  private readonly _observers = new Set<(t: DmaTransfer) => void>();
  private _cost: DmaCostModel | null = null;
  /** The last success result handed out, frozen: shared by every success of the same length. */
  private _ok: DmaResult = Object.freeze({ ok: true, code: 'OK', bytesDone: 0n });

  /** @internal */
  constructor(private readonly _core: Core) {}

  /**
   * Calls `fn` after every transfer (whoever started it: a driver, a test, a scenario), for
   * traces and reports. Returns a disposable whose `dispose()` stops it.
   * @throws {@link SimError} EINVAL when `fn` is not a function.
   */
  onTransfer(fn: (t: DmaTransfer) => void): {
    /** Stops calling `fn`. */
    dispose(): void;
  } {
    fnArg('onTransfer', 'fn', fn);
    this._observers.add(fn);
    return { dispose: () => { this._observers.delete(fn); } };
  }

  /** Installs (or, with null, removes) the cost model that times every transfer. */
  setCostModel(model: DmaCostModel | null): void {
    this._cost = model;
  }

  private _emit<R extends DmaResult>(t: Omit<DmaTransfer, 'result'>, result: R): R {
    if (this._observers.size !== 0 || this._cost) {
      const rec: DmaTransfer = { ...t, result: { ok: result.ok, code: result.code, bytesDone: result.bytesDone, ...(result.fault ? { fault: result.fault } : {}) } };
      const timing = this._cost?.end(rec);
      if (timing) rec.timing = timing;
      for (const fn of this._observers) fn(rec);
    }
    return result;
  }

  /** Whether nothing watches transfers: no observer, no cost model (no record to build). */
  private _unobserved(): boolean {
    return this._cost === null && this._observers.size === 0;
  }

  private _result(st: number, bytesBefore?: bigint): DmaResult {
    const c = this._core;
    const bytes = c.resultBytes();
    const bytesDone = bytesBefore === undefined ? bytes : bytesBefore + bytes;
    if (st === 0) return { ok: true, code: 'OK', bytesDone };
    const reason = c.resultU32(ABI.RES_FAULT_REASON);
    const faultedByIommu = st === ABI.EFAULT || st === ABI.EACCES || st === ABI.EPERM || st === ABI.ENODEV || st === ABI.ERANGE;
    return {
      ok: false, code: errnoName(st), bytesDone,
      ...(faultedByIommu ? {
        fault: {
          side: c.resultU32(ABI.RES_FAULT_SIDE) === 1 ? 'dst' : 'src', iova: c.resultU64(ABI.RES_FAULT_IOVA),
          reason: faultReasonName(reason), familyCode: c.resultU32(ABI.RES_FAULT_CODE),
        } as DmaFault,
      } : {}),
    };
  }

  private static _len(op: string, addr: bigint, length: bigint, field: string): void {
    u64Arg(op, 'length', length);
    if (addr + length - 1n > U64_MAX && length > 0n) throw new SimError('EINVAL', op, `${field} + length wraps past 2^64`);
  }

  /**
   * Copies `length` bytes device to device. A success nobody observes (no cost model, no
   * onTransfer) returns a frozen result that later successes of the same length share.
   * @throws {@link SimError} EINVAL for a bad endpoint (not an object, a rid that is no requester
   *   ID or 'phys', an address outside 0..2^64-1), a length
   *   outside 0..2^64-1, or a range wrapping past 2^64.
   */
  copy(src: DmaEndpoint, dst: DmaEndpoint, length: bigint): DmaResult {
    let s = plainRid(src);
    let d = plainRid(dst);
    // The common case is checked with compares only; anything else gets the full checks, which
    // name the field (and build their strings only then).
    if (s < 0 || d < 0 || !isU63(src.addr) || !isU63(dst.addr) || !isU63(length)) {
      const op = 'dmaCopy';
      s = ridOf(op, 'src', src);
      d = ridOf(op, 'dst', dst);
      u64Arg(op, 'src.addr', src.addr);
      u64Arg(op, 'dst.addr', dst.addr);
      DmaEngine._len(op, src.addr, length, 'src.addr');
      DmaEngine._len(op, dst.addr, length, 'dst.addr');
    }
    this._cost?.begin();
    // Every argument is checked above, so the trusted exports (no second check) serve here and
    // in the other transfers.
    const st = this._core.trusted.dmaCopy(s, src.addr, d, dst.addr, length);
    if (st === 0 && this._unobserved()) return this._success(length);
    return this._emit({ op: 'copy', src, dst, length }, this._result(st));
  }

  /**
   * The result of a transfer that moved all `length` bytes, when nobody observes it: one frozen
   * object shared by consecutive successes of the same length (nothing allocated per call).
   */
  private _success(length: bigint): DmaResult {
    if (this._ok.bytesDone !== length) this._ok = Object.freeze({ ok: true, code: 'OK', bytesDone: length });
    return this._ok;
  }

  /** The full checks of one copyv descriptor (SimError EINVAL naming the field); its requesters. */
  private static _checkDesc(op: string, d: DmaCopyDescriptor | undefined, i: number): { s: number; t: number } {
    const f = `descs[${i}]`;
    if (typeof d !== 'object' || d === null || typeof d.src !== 'object' || typeof d.dst !== 'object' || d.src === null || d.dst === null) {
      throw new SimError('EINVAL', op, `${f} must be { src, dst, length }`);
    }
    const s = ridOf(op, `${f}.src`, d.src);
    const t = ridOf(op, `${f}.dst`, d.dst);
    u64Arg(op, `${f}.src.addr`, d.src.addr);
    u64Arg(op, `${f}.dst.addr`, d.dst.addr);
    u64Arg(op, `${f}.length`, d.length);
    if (d.length > 0n && (d.src.addr + d.length - 1n > U64_MAX || d.dst.addr + d.length - 1n > U64_MAX)) {
      throw new SimError('EINVAL', op, `${f}: ${d.src.addr + d.length - 1n > U64_MAX ? 'src' : 'dst'}.addr + length wraps past 2^64`);
    }
    return { s, t };
  }

  /**
   * Vectored copy: the descriptors, in order, as one transfer and one core call. Every descriptor
   * is checked first (SimError EINVAL naming the field, e.g. `descs[2].dst.addr`, and nothing is
   * moved); they are written to the core's staging area through a view. A fault stops the
   * transfer: `bytesDone` counts over all descriptors, `index` names the descriptor and
   * `fault.side` the side that faulted; what was done stays done.
   * @throws {@link SimError} EINVAL when descs is not an array, has more than the staging area
   *   holds (ABI.COPYDESC_MAX), or a descriptor is malformed.
   */
  copyv(descs: readonly DmaCopyDescriptor[]): DmaVectorResult {
    const op = 'dmaCopyV';
    if (!Array.isArray(descs)) throw new SimError('EINVAL', op, 'descs must be an array of descriptors');
    const n = descs.length;
    if (n > ABI.COPYDESC_MAX) throw new SimError('EINVAL', op, `descs has ${n} descriptors, at most ${ABI.COPYDESC_MAX} fit the staging area`);
    // One pass: each descriptor is checked and written to the staging area (scratch: a throw part
    // way leaves nothing moved). The common form is checked with compares only; anything else
    // gets the full checks, which name the field.
    const c = this._core;
    const { u32, u64 } = c.views.all;
    const base = c.layout.staging;
    let total = 0n;
    for (let i = 0; i < n; i++) {
      const d = descs[i];
      let s = -1;
      let t = -1;
      if (typeof d === 'object' && d !== null) {
        s = plainRid(d.src);
        t = plainRid(d.dst);
      }
      if (s < 0 || t < 0 || !isU63(d!.src.addr) || !isU63(d!.dst.addr) || !isU63(d!.length)) {
        ({ s, t } = DmaEngine._checkDesc(op, d, i));
      }
      const at = base + i * ABI.COPYDESC_STRIDE;
      u32[(at + ABI.COPYDESC_SRC_RID) >> 2] = s;
      u32[(at + ABI.COPYDESC_DST_RID) >> 2] = t;
      u64[(at + ABI.COPYDESC_SRC) >> 3] = d!.src.addr;
      u64[(at + ABI.COPYDESC_DST) >> 3] = d!.dst.addr;
      u64[(at + ABI.COPYDESC_LEN) >> 3] = d!.length;
      total += d!.length;
    }
    if (n === 0) return { ok: true, code: 'OK', bytesDone: 0n, index: 0 };
    this._cost?.begin();
    const st = c.trusted.dmaCopyV(n);
    const index = Number(c.resultValue());
    const r: DmaVectorResult = { ...this._result(st), index };
    if (this._observers.size !== 0 || this._cost) {
      const at = descs[Math.min(index, n - 1)]!;
      this._emit({ op: 'copy', src: at.src, dst: at.dst, length: total, descriptors: n }, r);
    }
    return r;
  }

  /**
   * Fills `length` bytes with `value` (0..255).
   * @throws {@link SimError} EINVAL for a bad endpoint (not an object, a rid that is no requester
   *   ID or 'phys', an address outside 0..2^64-1), a value
   *   outside 0..255, a bad length, or a range wrapping past 2^64.
   */
  fill(dst: DmaEndpoint, value: number, length: bigint): DmaResult {
    let d = plainRid(dst);
    if (d < 0 || !isU63(dst.addr) || !isU63(length) || typeof value !== 'number' || !(value >= 0 && value <= 255 && Math.floor(value) === value)) {
      const op = 'dmaFill';
      d = ridOf(op, 'dst', dst);
      u64Arg(op, 'dst.addr', dst.addr);
      intArg(op, 'value', value, 0, 255);
      DmaEngine._len(op, dst.addr, length, 'dst.addr');
    }
    this._cost?.begin();
    const st = this._core.trusted.dmaFill(d, dst.addr, length, value);
    if (st === 0 && this._unobserved()) return this._success(length);
    return this._emit({ op: 'fill', dst, length }, this._result(st));
  }

  /**
   * Device writes `data` from a host buffer to its address space (host -> device memory).
   * @throws {@link SimError} EINVAL for a bad endpoint (not an object, a rid that is no requester
   *   ID or 'phys', an address outside 0..2^64-1), data
   *   not a Uint8Array, or a range wrapping past 2^64.
   */
  write(dst: DmaEndpoint, data: Uint8Array): DmaResult {
    u8ArrayArg('dmaWrite', 'data', data);
    const r = this._write(dst, data);
    // The transfer record only for someone who watches.
    return this._unobserved() ? r : this._emit({ op: 'write', dst, length: BigInt(data.length) }, r);
  }

  private _write(dst: DmaEndpoint, data: Uint8Array): DmaResult {
    const op = 'dmaWrite';
    let d = plainRid(dst);
    // An address below 2^63 cannot wrap with a typed array's length: the full checks only for
    // anything else, as copy does.
    if (d < 0 || !isU63(dst.addr)) {
      d = ridOf(op, 'dst', dst);
      u64Arg(op, 'dst.addr', dst.addr);
      DmaEngine._len(op, dst.addr, BigInt(data.length), 'dst.addr');
    }
    const staging = this._core.layout.staging;
    const length = data.length;
    let done: bigint | undefined;
    this._cost?.begin();
    // Chunks of staging; one chunk (the common case) takes the whole array (no subarray) and
    // no running total.
    for (let off = 0; ; off += ABI.STAGING_SIZE) {
      const n = Math.min(ABI.STAGING_SIZE, length - off);
      this._core.views.u8.set(n === length ? data : data.subarray(off, off + n), staging);
      const r = this._result(this._core.trusted.dmaWrite(d, off === 0 ? dst.addr : dst.addr + BigInt(off), BigInt(n), staging), done);
      if (!r.ok || off + n >= length) return r;
      done = r.bytesDone;
    }
  }

  /**
   * Device reads `length` bytes from its address space into a new host buffer.
   * @throws {@link SimError} EINVAL for a bad endpoint (not an object, a rid that is no requester
   *   ID or 'phys', an address outside 0..2^64-1), a length
   *   that is not an integer in 0..2^31, or a range wrapping past 2^64; ENOMEM when the host
   *   buffer cannot be allocated.
   */
  read(src: DmaEndpoint, length: number): DmaResult & { data: Uint8Array } {
    intArg('dmaRead', 'length', length, 0, 2 ** 31);
    ridOf('dmaRead', 'src', src);
    const data = hostBuffer('dmaRead', length);
    const r = this._read(src, data);
    return { ...(this._unobserved() ? r : this._emit({ op: 'read', src, length: BigInt(length) }, r)), data };
  }

  /**
   * Device reads `out.length` bytes from its address space into the caller's buffer `out`.
   * @throws {@link SimError} EINVAL for a bad endpoint (not an object, a rid that is no requester
   *   ID or 'phys', an address outside 0..2^64-1), out
   *   not a Uint8Array, or a range wrapping past 2^64.
   */
  readInto(src: DmaEndpoint, out: Uint8Array): DmaResult {
    u8ArrayArg('dmaRead', 'out', out);
    const r = this._read(src, out);
    return this._unobserved() ? r : this._emit({ op: 'read', src, length: BigInt(out.length) }, r);
  }

  private _read(src: DmaEndpoint, data: Uint8Array): DmaResult {
    const op = 'dmaRead';
    let s = plainRid(src);
    const length = data.length;
    if (s < 0 || !isU63(src.addr)) {
      s = ridOf(op, 'src', src);
      u64Arg(op, 'src.addr', src.addr);
      DmaEngine._len(op, src.addr, BigInt(length), 'src.addr');
    }
    const staging = this._core.layout.staging;
    let done: bigint | undefined;
    this._cost?.begin();
    for (let off = 0; ; off += ABI.STAGING_SIZE) {
      const n = Math.min(ABI.STAGING_SIZE, length - off);
      const st = this._core.trusted.dmaRead(s, off === 0 ? src.addr : src.addr + BigInt(off), BigInt(n), staging);
      const got = Number(this._core.resultBytes());
      if (got !== 0) data.set(this._core.views.u8.subarray(staging, staging + got), off);
      const r = this._result(st, done);
      if (!r.ok || off + n >= length) return r;
      done = r.bytesDone;
    }
  }

  /** A snapshot of the core's DMA counters. */
  stats(): DmaStats {
    const s = (o: number) => this._core.stat(o);
    return {
      bytesToRam: s(ABI.STAT_BYTES_TO_RAM), bytesToDevice: s(ABI.STAT_BYTES_TO_DEVICE),
      bytesFromRam: s(ABI.STAT_BYTES_FROM_RAM), bytesFromDevice: s(ABI.STAT_BYTES_FROM_DEVICE),
      ops: s(ABI.STAT_DMA_OPS), faults: s(ABI.STAT_DMA_FAULTS),
      vectors: s(ABI.STAT_DMA_VECTORS), descriptors: s(ABI.STAT_DMA_DESCRIPTORS),
    };
  }
}
