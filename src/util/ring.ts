/**
 * The one bounded history type: event logs, traces, transfer records and the kernel log of a
 * machine keep their newest entries in a Ring, so a run of any length costs bounded memory and
 * O(1) per entry. What falls off the old end is counted, never silently lost.
 */
import { SimError } from '../../bindings/errors.js';

/** How many entries a history keeps when nothing else is said (MachineHistoryOptions.cap). */
export const DEFAULT_HISTORY_CAP = 65_536;

/**
 * Checks a history capacity: a non-negative safe integer (0 = record nothing).
 * @throws {@link SimError} EINVAL naming `field` otherwise.
 */
export function checkCap(op: string, field: string, cap: unknown): number {
  if (typeof cap !== 'number' || !Number.isSafeInteger(cap) || cap < 0) {
    throw new SimError('EINVAL', op, `${field} must be a non-negative integer (0 = off)`);
  }
  return cap;
}

/**
 * A bounded first-in-first-out history: keeps the newest `capacity` entries; a push beyond it
 * drops the oldest (counted in `dropped`). Capacity 0 keeps nothing (recording off) and still
 * counts what was pushed. Iteration and `toArray()` go oldest first. Storage grows with use up
 * to the capacity, so a large cap costs nothing until it fills.
 */
export class Ring<T> implements Iterable<T> {
  private readonly _buf: T[] = [];
  /** Index of the oldest entry once the buffer is full. */
  private _head = 0;
  private _dropped = 0;

  /**
   * `op` and `field` name the caller's option in the error (e.g. 'TraceRecorder', 'cap').
   * @throws {@link SimError} EINVAL when `capacity` is not a non-negative safe integer.
   */
  constructor(readonly capacity: number = DEFAULT_HISTORY_CAP, op = 'Ring', field = 'capacity') {
    checkCap(op, field, capacity);
  }

  /** Entries held now (at most `capacity`). */
  get length(): number {
    return this._buf.length;
  }

  /** Entries pushed but no longer held: overwritten by newer ones, or never kept (capacity 0). */
  get dropped(): number {
    return this._dropped;
  }

  /** Every entry ever pushed: `length + dropped`. */
  get total(): number {
    return this._buf.length + this._dropped;
  }

  /** Appends `v`, dropping the oldest entry when full. O(1). */
  push(v: T): void {
    const cap = this.capacity;
    if (this._buf.length < cap) {
      this._buf.push(v);
      return;
    }
    this._dropped++;
    if (cap === 0) return;
    this._buf[this._head] = v;
    this._head = this._head + 1 === cap ? 0 : this._head + 1;
  }

  /** The entry `i` places from the oldest (negative: from the newest, as Array.at), or undefined. */
  at(i: number): T | undefined {
    const n = this._buf.length;
    const k = i < 0 ? n + i : i;
    if (!Number.isInteger(k) || k < 0 || k >= n) return undefined;
    return this._buf[(this._head + k) % n];
  }

  /** The held entries, oldest first, as a new array. */
  toArray(): T[] {
    return this._head === 0 ? this._buf.slice() : [...this._buf.slice(this._head), ...this._buf.slice(0, this._head)];
  }

  /** Oldest first. */
  *[Symbol.iterator](): Iterator<T> {
    const n = this._buf.length;
    for (let k = 0; k < n; k++) yield this._buf[(this._head + k) % n]!;
  }

  /** Forgets every held entry; `dropped` keeps counting from where it was. */
  clear(): void {
    this._buf.length = 0;
    this._head = 0;
  }
}
