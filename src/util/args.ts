/** Argument checks shared by the API: each names the field and throws SimError(EINVAL). */
import { SimError } from '../../bindings/errors.js';

export const U64_MAX = (1n << 64n) - 1n;
export const PAGE_SIZE = 4096n;

export function u64Arg(op: string, field: string, v: unknown): bigint {
  if (typeof v !== 'bigint') throw new SimError('EINVAL', op, `${field} must be a bigint, got ${typeof v}`);
  if (v < 0n || v > U64_MAX) throw new SimError('EINVAL', op, `${field} = ${v} is outside 0..2^64-1`);
  return v;
}

export function pageAlignedArg(op: string, field: string, v: unknown): bigint {
  const x = u64Arg(op, field, v);
  if (x % PAGE_SIZE !== 0n) throw new SimError('EINVAL', op, `${field} = 0x${x.toString(16)} is not 4 KiB aligned`);
  return x;
}

export function intArg(op: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new SimError('EINVAL', op, `${field} = ${String(v)} must be an integer in ${min}..${max}`);
  }
  return v;
}

export function oneOf<T extends string>(op: string, field: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new SimError('EINVAL', op, `${field} = ${JSON.stringify(v)} must be one of ${allowed.join(', ')}`);
  }
  return v as T;
}

/**
 * A requester ID: a number (segment << 16 | bus << 8 | devfn) or a 'SSSS:BB:DD.F' / 'BB:DD.F'
 * string, as lspci prints it.
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

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}
