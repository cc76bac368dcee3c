/**
 * The DMA engine as devices use it: copy, fill, read and write at (requester, address) pairs,
 * each side translated by its requester's IOMMU domain. A fault stops the transfer, as on
 * hardware: the result tells how many bytes were done and which fault stopped it.
 */
import { ABI, type Core } from '../../bindings/core.js';
import { SimError, errnoName } from '../../bindings/errors.js';
import { faultReasonName, type FaultReason } from '../iommu/iommu.js';
import { intArg, ridArg, u64Arg, U64_MAX } from '../util/args.js';

export interface DmaEndpoint {
  /** Requester ID of the device doing the access, or 'phys' for untranslated physical access. */
  rid: number | string | 'phys';
  /** Device (IO virtual or bus) address, or physical address for 'phys'. */
  addr: bigint;
}

export interface DmaFault {
  side: 'src' | 'dst';
  iova: bigint;
  reason: FaultReason;
  /** VT-d fault reason or SMMUv3 event id. */
  familyCode: number;
}

export interface DmaResult {
  ok: boolean;
  /** 'OK' or the errno name of what stopped it (EFAULT, EACCES, EPERM, ENODEV, EIO, ENOMEM, ...). */
  code: string;
  bytesDone: bigint;
  fault?: DmaFault;
}

export interface DmaStats {
  bytesToRam: bigint;
  bytesToDevice: bigint;
  bytesFromRam: bigint;
  bytesFromDevice: bigint;
  ops: bigint;
  faults: bigint;
}

/** A finished transfer, as observers see it. */
export interface DmaTransfer {
  op: 'copy' | 'fill' | 'read' | 'write';
  src?: DmaEndpoint;
  dst?: DmaEndpoint;
  length: bigint;
  result: DmaResult;
}

function ridOf(op: string, field: string, rid: DmaEndpoint['rid']): number {
  return rid === 'phys' ? ABI.RID_PHYS : ridArg(op, field, rid);
}

export class DmaEngine {
  private readonly _observers = new Set<(t: DmaTransfer) => void>();

  /** @internal */
  constructor(private readonly _core: Core) {}

  /**
   * Calls `fn` after every transfer (whoever started it: a driver, a test, a scenario), for
   * traces and reports. Returns a disposable that stops it.
   */
  onTransfer(fn: (t: DmaTransfer) => void): { dispose(): void } {
    this._observers.add(fn);
    return { dispose: () => { this._observers.delete(fn); } };
  }

  private _emit<R extends DmaResult>(t: Omit<DmaTransfer, 'result'>, result: R): R {
    if (this._observers.size !== 0) {
      const rec: DmaTransfer = { ...t, result: { ok: result.ok, code: result.code, bytesDone: result.bytesDone, ...(result.fault ? { fault: result.fault } : {}) } };
      for (const fn of this._observers) fn(rec);
    }
    return result;
  }

  private _result(st: number, bytesBefore = 0n): DmaResult {
    const c = this._core;
    const bytesDone = bytesBefore + c.resultBytes();
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

  /** Copies `length` bytes device to device. */
  copy(src: DmaEndpoint, dst: DmaEndpoint, length: bigint): DmaResult {
    const op = 'dmaCopy';
    const s = ridOf(op, 'src.rid', src.rid);
    const d = ridOf(op, 'dst.rid', dst.rid);
    u64Arg(op, 'src.addr', src.addr);
    u64Arg(op, 'dst.addr', dst.addr);
    DmaEngine._len(op, src.addr, length, 'src.addr');
    DmaEngine._len(op, dst.addr, length, 'dst.addr');
    return this._emit({ op: 'copy', src, dst, length }, this._result(this._core.exports.dmaCopy(s, src.addr, d, dst.addr, length)));
  }

  /** Fills `length` bytes with `value` (0..255). */
  fill(dst: DmaEndpoint, value: number, length: bigint): DmaResult {
    const op = 'dmaFill';
    const d = ridOf(op, 'dst.rid', dst.rid);
    u64Arg(op, 'dst.addr', dst.addr);
    intArg(op, 'value', value, 0, 255);
    DmaEngine._len(op, dst.addr, length, 'dst.addr');
    return this._emit({ op: 'fill', dst, length }, this._result(this._core.exports.dmaFill(d, dst.addr, length, value)));
  }

  /** Device writes `data` from a host buffer to its address space (host -> device memory). */
  write(dst: DmaEndpoint, data: Uint8Array): DmaResult {
    return this._emit({ op: 'write', dst, length: BigInt(data.length) }, this._write(dst, data));
  }

  private _write(dst: DmaEndpoint, data: Uint8Array): DmaResult {
    const op = 'dmaWrite';
    const d = ridOf(op, 'dst.rid', dst.rid);
    u64Arg(op, 'dst.addr', dst.addr);
    if (!(data instanceof Uint8Array)) throw new SimError('EINVAL', op, 'data must be a Uint8Array');
    DmaEngine._len(op, dst.addr, BigInt(data.length), 'dst.addr');
    const staging = this._core.layout.staging;
    let done = 0n;
    for (let off = 0; off < data.length || off === 0; off += ABI.STAGING_SIZE) {
      const n = Math.min(ABI.STAGING_SIZE, data.length - off);
      this._core.views.u8.set(data.subarray(off, off + n), staging);
      const st = this._core.exports.dmaWrite(d, dst.addr + BigInt(off), BigInt(n), staging);
      const r = this._result(st, done);
      if (!r.ok || off + n >= data.length) return r;
      done = r.bytesDone;
    }
    return { ok: true, code: 'OK', bytesDone: done };
  }

  /** Device reads `length` bytes from its address space into a new host buffer. */
  read(src: DmaEndpoint, length: number): DmaResult & { data: Uint8Array } {
    return this._emit({ op: 'read', src, length: BigInt(length) }, this._read(src, length));
  }

  private _read(src: DmaEndpoint, length: number): DmaResult & { data: Uint8Array } {
    const op = 'dmaRead';
    const s = ridOf(op, 'src.rid', src.rid);
    u64Arg(op, 'src.addr', src.addr);
    intArg(op, 'length', length, 0, 2 ** 31);
    DmaEngine._len(op, src.addr, BigInt(length), 'src.addr');
    const data = new Uint8Array(length);
    const staging = this._core.layout.staging;
    let done = 0n;
    for (let off = 0; off < length || off === 0; off += ABI.STAGING_SIZE) {
      const n = Math.min(ABI.STAGING_SIZE, length - off);
      const st = this._core.exports.dmaRead(s, src.addr + BigInt(off), BigInt(n), staging);
      const got = Number(this._core.resultBytes());
      data.set(this._core.views.u8.subarray(staging, staging + got), off);
      const r = this._result(st, done);
      if (!r.ok || off + n >= length) return { ...r, data };
      done = r.bytesDone;
    }
    return { ok: true, code: 'OK', bytesDone: done, data };
  }

  stats(): DmaStats {
    const s = (o: number) => this._core.stat(o);
    return {
      bytesToRam: s(ABI.STAT_BYTES_TO_RAM), bytesToDevice: s(ABI.STAT_BYTES_TO_DEVICE),
      bytesFromRam: s(ABI.STAT_BYTES_FROM_RAM), bytesFromDevice: s(ABI.STAT_BYTES_FROM_DEVICE),
      ops: s(ABI.STAT_DMA_OPS), faults: s(ABI.STAT_DMA_FAULTS),
    };
  }
}
