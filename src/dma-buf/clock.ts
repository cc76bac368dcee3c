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
  private _timers: Timer[] = [];

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
    this._timers.push(t);
    return { dispose: () => void (t.cancelled = true) };
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
      this._timers.splice(this._timers.indexOf(t), 1);
      this._now = Math.max(this._now, t.at);
      t.fn();
    }
  }

  private _next(): Timer | undefined {
    this._timers = this._timers.filter((t) => !t.cancelled);
    let best: Timer | undefined;
    for (const t of this._timers) {
      if (!best || t.at < best.at || (t.at === best.at && t.order < best.order)) best = t;
    }
    return best;
  }
}
