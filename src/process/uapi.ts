/**
 * Fields of a user struct as a driver's ioctl reads them (copy_from_user, then the field's C
 * type): any integer number or bigint, wrapped to the field's width as the kernel's unsigned
 * types wrap; a missing field reads as 0. Anything else (a string, an object, NaN, a fraction)
 * cannot be a struct field: EINVAL naming the field, before the driver changes anything.
 */
import { SimError } from '../../bindings/errors.js';
import { show } from '../util/args.js';

function field(op: string, name: string, v: unknown, bits: number): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === 'bigint') return BigInt.asUintN(bits, v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt.asUintN(bits, BigInt(v));
  throw new SimError('EINVAL', op, `${name} must be an integer (number or bigint), got ${show(v)}`);
}

/**
 * A __u64 field of a user struct.
 * @throws {@link SimError} EINVAL when `v` is not an integer number or bigint (or absent).
 */
export function uapiU64(op: string, name: string, v: unknown): bigint {
  return field(op, name, v, 64);
}

/**
 * A __u32 field of a user struct.
 * @throws {@link SimError} EINVAL when `v` is not an integer number or bigint (or absent).
 */
export function uapiU32(op: string, name: string, v: unknown): number {
  return Number(field(op, name, v, 32));
}
