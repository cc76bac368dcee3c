// SimClock: timers fire in (time, insertion) order, cancelled ones never, against a list model.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SimClock } from '../../src/dma-buf/clock.js';

type Op = { t: 'schedule'; delay: number } | { t: 'cancel'; pick: number } | { t: 'advance'; delta: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('schedule' as const), delay: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ t: fc.constant('cancel' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('advance' as const), delta: fc.integer({ min: 0, max: 40 }) }),
);

describe('SimClock', () => {
  it('runs due timers in (time, insertion) order and never a cancelled one (model)', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
      const clock = new SimClock();
      const fired: number[] = [];
      const model: { id: number; at: number; live: boolean }[] = [];
      const want: number[] = [];
      const handles: { dispose(): void }[] = [];
      for (const o of ops) {
        if (o.t === 'schedule') {
          const id = handles.length;
          handles.push(clock.schedule(o.delay, () => fired.push(id)));
          model.push({ id, at: clock.now + o.delay, live: true });
        } else if (o.t === 'cancel') {
          if (handles.length === 0) continue;
          const id = o.pick % handles.length;
          handles[id]!.dispose();
          const m = model.find((x) => x.id === id);
          if (m) m.live = false;
        } else {
          const until = clock.now + o.delta;
          const due = model.filter((x) => x.at <= until).sort((a, b) => a.at - b.at || a.id - b.id);
          for (const d of due) if (d.live) want.push(d.id);
          for (const d of due) model.splice(model.indexOf(d), 1);
          clock.advance(o.delta);
          expect(clock.now).toBe(until);
        }
        expect(fired).toEqual(want);
        const next = model.filter((x) => x.live).reduce((a, x) => Math.min(a, x.at), Infinity);
        expect(clock.nextTimer() ?? Infinity).toBe(next);
      }
    }), { numRuns: 200 });
  });

  it('many cancelled timers do not pile up, and one scheduled from a timer runs in order', () => {
    const clock = new SimClock();
    let ran = 0;
    for (let i = 0; i < 100_000; i++) clock.schedule(10 + (i % 7), () => ran++).dispose();
    expect(clock.nextTimer()).toBeUndefined();
    const order: string[] = [];
    clock.schedule(5, () => {
      order.push('a');
      clock.schedule(0, () => order.push('c'));
    });
    clock.schedule(5, () => order.push('b'));
    clock.advance(5);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(ran).toBe(0);
  });
});
