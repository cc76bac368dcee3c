/**
 * Argument checks shared by the API: each names the field and throws SimError(EINVAL) before
 * anything is changed. Messages show at most a short, truncated rendering of the bad value.
 */
import { SimError } from '../../bindings/errors.js';

export const U64_MAX = (1n << 64n) - 1n;
export const PAGE_SIZE = 4096n;

/** The special requester of untranslated physical access (ABI.RID_PHYS): never a device. */
export const RID_PHYS = 0xffffffff;

const SHOW_MAX = 40;

/**
 * A short rendering of any value for an error message: never throws (bigint, symbol, cyclic or
 * hostile objects included) and never longer than about 40 characters.
 */
export function show(v: unknown): string {
  let s: string;
  try {
    switch (typeof v) {
      case 'bigint': s = `${v}n`; break;
      case 'string': s = `'${v.length > SHOW_MAX ? v.slice(0, SHOW_MAX) : v}'`; break;
      case 'number': case 'boolean': case 'undefined': s = String(v); break;
      case 'symbol': s = 'a symbol'; break;
      case 'function': s = 'a function'; break;
      default:
        if (v === null) s = 'null';
        else if (Array.isArray(v)) s = `an array of ${v.length}`;
        else if (ArrayBuffer.isView(v)) s = `a ${Object.prototype.toString.call(v).slice(8, -1)}`;
        else s = 'an object';
    }
  } catch {
    s = 'a value';
  }
  return s.length > SHOW_MAX + 8 ? `${s.slice(0, SHOW_MAX)}...` : s;
}

/**
 * Whether `v` is a bigint in 0..2^64-1. Exact for every value: asUintN(64) keeps exactly the
 * values of that range unchanged. V8 compiles it to a 64-bit truncation and compare, where two
 * BigInt comparisons against constants are each a call (a hot-path check: no allocation).
 */
export function isU64(v: unknown): v is bigint {
  return typeof v === 'bigint' && BigInt.asUintN(64, v) === v;
}

/** Whether `v` is a bigint in 0..2^63-1 (an address and a length both so cannot wrap past 2^64). */
export function isU63(v: unknown): v is bigint {
  return typeof v === 'bigint' && BigInt.asUintN(63, v) === v;
}

export function u64Arg(op: string, field: string, v: unknown): bigint {
  if (typeof v !== 'bigint') throw new SimError('EINVAL', op, `${field} must be a bigint, got ${show(v)}`);
  if (v < 0n || v > U64_MAX) throw new SimError('EINVAL', op, `${field} = ${show(v)} is outside 0..2^64-1`);
  return v;
}

export function pageAlignedArg(op: string, field: string, v: unknown): bigint {
  const x = u64Arg(op, field, v);
  if (x % PAGE_SIZE !== 0n) throw new SimError('EINVAL', op, `${field} = 0x${x.toString(16)} is not 4 KiB aligned`);
  return x;
}

export function intArg(op: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new SimError('EINVAL', op, `${field} = ${show(v)} must be an integer in ${min}..${max}`);
  }
  return v;
}

export function boolArg(op: string, field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new SimError('EINVAL', op, `${field} must be a boolean, got ${show(v)}`);
  return v;
}

export function oneOf<T extends string>(op: string, field: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new SimError('EINVAL', op, `${field} = ${show(v)} must be one of ${allowed.join(', ')}`);
  }
  return v as T;
}

/** A plain options object (not null, not an array); `undefined` only when `optional`. */
export function objArg<T extends object>(op: string, field: string, v: unknown): T {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new SimError('EINVAL', op, `${field} must be an object, got ${show(v)}`);
  }
  return v as T;
}

export function fnArg<T extends (...a: never[]) => unknown>(op: string, field: string, v: unknown): T {
  if (typeof v !== 'function') throw new SimError('EINVAL', op, `${field} must be a function, got ${show(v)}`);
  return v as T;
}

export function u8ArrayArg(op: string, field: string, v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SimError('EINVAL', op, `${field} must be a Uint8Array, got ${show(v)}`);
  return v;
}

/**
 * A new zeroed buffer of `length` bytes for a read's result: a host that cannot allocate it is
 * ENOMEM (Node's RangeError "Array buffer allocation failed" never escapes).
 */
export function hostBuffer(op: string, length: number): Uint8Array {
  try {
    return new Uint8Array(length);
  } catch {
    throw new SimError('ENOMEM', op, `cannot allocate a host buffer of ${length} bytes`);
  }
}

/** The value of a string option, or undefined; a non-string is refused (no '[object Object]' names). */
export function optStringArg(op: string, field: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new SimError('EINVAL', op, `${field} must be a string, got ${show(v)}`);
  return v;
}

const RID_RE = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/;

/**
 * A requester ID: a number (segment << 16 | bus << 8 | devfn) or an 'SSSS:BB:DD.F' / 'BB:DD.F'
 * string, as lspci prints it. Every form gives the same number. The physical requester
 * (0xffffffff, 'ffff:ff:1f.7', or 'phys') is accepted only where `phys` is true (DMA endpoints),
 * and refused in every form elsewhere.
 */
export function ridArg(op: string, field: string, v: unknown, phys = false): number {
  let rid: number | undefined;
  if (v === 'phys') rid = RID_PHYS;
  else if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v <= RID_PHYS) rid = v;
  } else if (typeof v === 'string') {
    const m = RID_RE.exec(v);
    const dev = m ? parseInt(m[3]!, 16) : 32;
    if (m && dev < 32) rid = ((parseInt(m[1] ?? '0', 16) << 16) | (parseInt(m[2]!, 16) << 8) | (dev << 3) | Number(m[4])) >>> 0;
  }
  if (rid === undefined) {
    throw new SimError('EINVAL', op, `${field} = ${show(v)} is not a requester ID (number, 'SSSS:BB:DD.F' or 'BB:DD.F')`);
  }
  if (rid === RID_PHYS && !phys) throw new SimError('EINVAL', op, `${field} is the physical requester, not a device`);
  return rid;
}

/** 'SSSS:BB:DD.F' of a requester ID. */
export function formatRid(rid: number): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `${h(rid >>> 16, 4)}:${h((rid >>> 8) & 0xff, 2)}:${h((rid >>> 3) & 0x1f, 2)}.${rid & 7}`;
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}
