import { SimError } from '../../bindings/errors.js';
import type { Disposable } from './events.js';

interface Timer {
  readonly at: number;
  readonly order: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * Virtual, deterministic time in abstract ticks (think nanoseconds). Nothing here reads a real
 * clock: time moves only when a scenario calls `advance` or when a wait sleeps, and timers run in
 * (time, insertion) order, so every run of a scenario is identical.
 */
export class SimClock {
  private _now = 0;
  private _order = 0;
  // Pending timers as a binary min-heap on (at, order): O(log n) to add and to take the next.
  // A cancelled timer stays in the heap until it reaches the top or cancellations outnumber the
  // live timers, when the heap is rebuilt without them (so memory stays bounded by live timers).
  private _heap: Timer[] = [];
  private _cancelled = 0;

  /** The current virtual time, in ticks from 0. */
  get now(): number {
    return this._now;
  }

  /**
   * Runs `fn` once `delay` ticks from now (a kernel timer or delayed work). Returns a handle that
   * cancels it.
   * @throws {@link SimError} EINVAL when `delay` is not a non-negative safe integer.
   */
  schedule(delay: number, fn: () => void): Disposable {
    if (!Number.isSafeInteger(delay) || delay < 0) {
      throw new SimError('EINVAL', 'SimClock.schedule', `delay must be a non-negative integer, got ${delay}`);
    }
    const t: Timer = { at: this._now + delay, order: this._order++, fn, cancelled: false };
    this._push(t);
    return {
      dispose: () => {
        if (t.cancelled) return;
        t.cancelled = true;
        if (++this._cancelled * 2 > this._heap.length) this._rebuild();
      },
    };
  }

  /**
   * Moves time forward by `delta` ticks, running every timer that falls due, in order.
   * @throws {@link SimError} EINVAL when `delta` is not a non-negative safe integer; whatever a
   * timer's function throws.
   */
  advance(delta: number): void {
    if (!Number.isSafeInteger(delta) || delta < 0) {
      throw new SimError('EINVAL', 'SimClock.advance', `delta must be a non-negative integer, got ${delta}`);
    }
    this.runUntil(() => false, this._now + delta);
  }

  /** Time of the next pending timer, or undefined. */
  nextTimer(): number | undefined {
    return this._next()?.at;
  }

  /**
   * Sleeps until `done()` holds or time reaches `deadline`, running timers on the way.
   * Returns the time at which `done()` became true, or undefined when it never did; in that case
   * time stops at `deadline` if finite, or at the last timer if nothing else can happen.
   */
  runUntil(done: () => boolean, deadline: number): number | undefined {
    for (;;) {
      if (done()) return this._now;
      const t = this._next();
      if (t === undefined || t.at > deadline) {
        if (Number.isFinite(deadline) && deadline < Number.MAX_SAFE_INTEGER) this._now = Math.max(this._now, deadline);
        return undefined;
      }
      this._pop();
      this._now = Math.max(this._now, t.at);
      t.fn();
    }
  }

  /** The earliest live timer (cancelled ones at the top are dropped on the way). */
  private _next(): Timer | undefined {
    while (this._heap.length > 0 && this._heap[0]!.cancelled) {
      this._pop();
      this._cancelled--;
    }
    return this._heap[0];
  }

  private _push(t: Timer): void {
    const h = this._heap;
    let i = h.push(t) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private _pop(): void {
    const h = this._heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }

  private _rebuild(): void {
    const live = this._heap.filter((t) => !t.cancelled);
    this._heap = [];
    this._cancelled = 0;
    for (const t of live) this._push(t);
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}
