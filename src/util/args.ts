/** Argument checks shared by the API: each names the field and throws SimError(EINVAL). */
import { SimError } from '../../bindings/errors.js';

/** U64_MAX: the largest u64, 2^64 - 1. */
export const U64_MAX = (1n << 64n) - 1n;
/** PAGE_SIZE as a bigint, for address arguments. */
export const PAGE_SIZE = 4096n;

/**
 * `v` as a u64.
 * @throws {@link SimError} EINVAL when `v` is not a bigint in 0..2^64-1.
 */
export function u64Arg(op: string, field: string, v: unknown): bigint {
  if (typeof v !== 'bigint') throw new SimError('EINVAL', op, `${field} must be a bigint, got ${typeof v}`);
  if (v < 0n || v > U64_MAX) throw new SimError('EINVAL', op, `${field} = ${v} is outside 0..2^64-1`);
  return v;
}

/**
 * `v` as a page-aligned u64 address.
 * @throws {@link SimError} EINVAL when `v` is not a bigint in 0..2^64-1 or not 4 KiB aligned.
 */
export function pageAlignedArg(op: string, field: string, v: unknown): bigint {
  const x = u64Arg(op, field, v);
  if (x % PAGE_SIZE !== 0n) throw new SimError('EINVAL', op, `${field} = 0x${x.toString(16)} is not 4 KiB aligned`);
  return x;
}

/**
 * `v` as an integer in min..max.
 * @throws {@link SimError} EINVAL otherwise.
 */
export function intArg(op: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new SimError('EINVAL', op, `${field} = ${String(v)} must be an integer in ${min}..${max}`);
  }
  return v;
}

/**
 * `v` as one of the `allowed` strings.
 * @throws {@link SimError} EINVAL otherwise.
 */
export function oneOf<T extends string>(op: string, field: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new SimError('EINVAL', op, `${field} = ${JSON.stringify(v)} must be one of ${allowed.join(', ')}`);
  }
  return v as T;
}

/**
 * A requester ID: a number (segment << 16 | bus << 8 | devfn) or a 'SSSS:BB:DD.F' / 'BB:DD.F'
 * string, as lspci prints it.
 * @throws {@link SimError} EINVAL for anything else (a number above 0xfffffffe, a device above 31).
 */
export function ridArg(op: string, field: string, v: unknown): number {
  if (typeof v === 'number') return intArg(op, field, v, 0, 0xfffffffe);
  if (typeof v === 'string') {
    const m = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-1]?[0-9a-fA-F])\.([0-7])$/.exec(v);
    if (m) {
      const dev = parseInt(m[3]!, 16);
      if (dev < 32) return ((parseInt(m[1] ?? '0', 16) << 16) | (parseInt(m[2]!, 16) << 8) | (dev << 3) | Number(m[4])) >>> 0;
    }
  }
  throw new SimError('EINVAL', op, `${field} = ${JSON.stringify(v)} is not a requester ID (number or 'SSSS:BB:DD.F')`);
}

/** 'SSSS:BB:DD.F' of a requester ID. */
export function formatRid(rid: number): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `${h(rid >>> 16, 4)}:${h((rid >>> 8) & 0xff, 2)}:${h((rid >>> 3) & 0x1f, 2)}.${rid & 7}`;
}

/** `v` in hex with a 0x prefix, for messages. */
export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}
