// dma_resv_iter (DB-27, DB-28): ports of st-dma-resv.c test_for_each, test_for_each_unlocked and
// test_get_fences, plus the restart rules of dma_resv_iter_first/next_unlocked.
import { describe, expect, it } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import { DmaBufKernel, DmaResvIter, DmaResvUsage, type DmaFence, type DmaResv } from '../../src/dma-buf/index.js';

const USAGES = [
  ['KERNEL', DmaResvUsage.KERNEL],
  ['WRITE', DmaResvUsage.WRITE],
  ['READ', DmaResvUsage.READ],
  ['BOOKKEEP', DmaResvUsage.BOOKKEEP],
] as const;

function setup(strict = false) {
  const k = new DmaBufKernel({ strict });
  const r = k.createResv();
  let ctx = k.fenceContextAlloc(8);
  return { k, r, fence: (seq = 1) => k.createFence(ctx++, seq) };
}

/** dma_resv_lock, reserve, add, unlock: what a writer on another CPU does. */
function add(r: DmaResv, f: DmaFence, usage: DmaResvUsage): void {
  r.withLock(() => {
    r.reserveFences(1);
    r.addFence(f, usage);
  });
}

describe('st-dma-resv ports', () => {
  for (const [name, usage] of USAGES) {
    it(`test_for_each [${name}]: the locked walk finds the one fence with its usage`, () => {
      const { r, fence } = setup();
      const f = fence();
      r.lock();
      r.reserveFences(1);
      r.addFence(f, usage);
      let found = 0;
      const c = r.iter(usage);
      for (const got of c.locked()) {
        expect(++found).toBe(1); // "More than one fence found"
        expect(got).toBe(f); // "Unexpected fence"
        expect(c.fenceUsage).toBe(usage); // "Unexpected fence usage"
        expect(c.isRestarted).toBe(true); // the locked walk starts as a restart
      }
      expect(found).toBe(1); // "No fence found"
      f.signal();
      // The locked walk returns signaled fences too.
      expect([...r.iter(usage).locked()]).toEqual([f]);
      r.unlock();
    });

    it(`test_for_each_unlocked [${name}]: restart flag at the start and after a change under the walk`, () => {
      const { r, fence } = setup();
      const f = fence();
      add(r, f, usage);
      // r as in the kernel test: -ENOENT (nothing yet), -EINVAL (restart forced), 0 (restart seen).
      let state = 'ENOENT';
      const c = r.iter(usage);
      for (const got of c.unlocked()) {
        expect(state).not.toBe('OK'); // "More than one fence found"
        expect(c.isRestarted).toBe(true); // "No restart flag"
        expect(got).toBe(f);
        expect(c.fenceUsage).toBe(usage);
        if (state === 'ENOENT') {
          state = 'EINVAL';
          // The kernel test pokes cursor.fences; here a writer replaces the slot for real, which
          // bumps the sequence count: the next step must start over and say so.
          add(r, f, usage);
        } else if (state === 'EINVAL') {
          state = 'OK';
        }
      }
      c.end();
      expect(state).toBe('OK');
      f.signal();
    });

    it(`test_get_fences [${name}]: one fence, then none once signaled`, () => {
      const { r, fence } = setup();
      const f = fence();
      add(r, f, usage);
      expect(r.getFences(usage)).toEqual([f]);
      expect(r.testSignaled(usage)).toBe(false);
      f.signal();
      expect(r.getFences(usage)).toEqual([]);
      expect(r.testSignaled(usage)).toBe(true);
    });
  }
});

describe('DmaResvIter', () => {
  it('DB-27 returns a fence iff its usage is <= the cursor usage, in slot order', () => {
    const { r, fence } = setup();
    const fs = USAGES.map(([, u]) => ({ f: fence(), u }));
    for (const { f, u } of [...fs].reverse()) add(r, f, u);
    const order = [...fs].reverse();
    for (const [, q] of USAGES) {
      const want = order.filter(({ u }) => u <= q).map(({ f }) => f);
      const c = r.iter(q);
      expect([...c.unlocked()]).toEqual(want);
      r.lock();
      expect([...r.iter(q).locked()]).toEqual(want);
      r.unlock();
    }
  });

  it('the unlocked walk skips signaled fences; an unchanged resv never restarts it', () => {
    const { r, fence } = setup();
    const [a, b, c3] = [fence(), fence(), fence()];
    for (const f of [a, b, c3]) add(r, f, DmaResvUsage.READ);
    b.signal();
    const c = r.iter(DmaResvUsage.READ);
    expect(c.firstUnlocked()).toBe(a);
    expect(c.isRestarted).toBe(true);
    expect(c.numFences).toBe(3);
    expect(c.nextUnlocked()).toBe(c3);
    expect(c.isRestarted).toBe(false);
    expect(c.nextUnlocked()).toBeNull();
    expect(c.isRestarted).toBe(false);
    c.end();
  });

  it('a fence added under an unlocked walk restarts it from the first slot; the new fence is seen', () => {
    const { r, fence } = setup();
    const [f1, f2, f3] = [fence(), fence(), fence()];
    add(r, f1, DmaResvUsage.WRITE);
    add(r, f2, DmaResvUsage.READ);
    const c = r.iter(DmaResvUsage.READ);
    expect(c.firstUnlocked()).toBe(f1);
    expect(c.numFences).toBe(2);
    add(r, f3, DmaResvUsage.KERNEL); // another task, under the lock
    const seen: [DmaFence | null, boolean][] = [];
    for (let f = c.nextUnlocked(); ; f = c.nextUnlocked()) {
      seen.push([f, c.isRestarted]);
      if (!f) break;
    }
    expect(seen).toEqual([[f1, true], [f2, false], [f3, false], [null, false]]);
    expect(c.numFences).toBe(3);
    c.end();
  });

  it('dma_resv_wait_timeout walks unlocked: a fence added while it sleeps restarts it and is waited for too', () => {
    const { k, r, fence } = setup();
    const [f1, f2] = [fence(), fence()];
    add(r, f1, DmaResvUsage.READ);
    // When f1's wait ends, a callback (another task) adds f2: a waiter restarts and waits for it too.
    f1.addCallback({ func: () => add(r, f2, DmaResvUsage.WRITE) });
    f1.scheduleSignal(100);
    f2.scheduleSignal(250);
    expect(r.waitTimeout(DmaResvUsage.READ, false, 1000)).toBe(750);
    expect(k.clock.now).toBe(250);
    expect(r.testSignaled(DmaResvUsage.BOOKKEEP)).toBe(true);
    expect(r.getFences(DmaResvUsage.BOOKKEEP)).toEqual([]);
  });

  it('DB-28 a locked walk without the lock is EINVAL with a WARN, in every mode; nothing is walked', () => {
    for (const strict of [false, true]) {
      const { k, r, fence } = setup(strict);
      add(r, fence(), DmaResvUsage.WRITE);
      const c = r.iter(DmaResvUsage.BOOKKEEP);
      expect(() => c.first()).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-28' }));
      expect(() => c.next()).toThrowError(SimError);
      expect(() => [...c.locked()]).toThrowError(SimError);
      expect(c.fence).toBeNull();
      expect(k.events.filter((e) => e.kind === 'warn').map((e) => e.detail['op'])).toEqual(['dma_resv_iter_first', 'dma_resv_iter_next', 'dma_resv_iter_first']);
      // The unlocked walk needs no lock.
      expect([...c.unlocked()]).toHaveLength(1);
    }
  });

  it('a cursor cannot step after end(); an unknown usage is EINVAL (DB-27)', () => {
    const { r, fence } = setup();
    add(r, fence(), DmaResvUsage.WRITE);
    const c = r.iter(DmaResvUsage.READ);
    expect(c).toBeInstanceOf(DmaResvIter);
    c.end();
    c.end();
    expect(() => c.firstUnlocked()).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-28' }));
    expect(() => c.nextUnlocked()).toThrowError(SimError);
    for (const bad of [4, -1, 1.5, '1', null, 1n]) {
      expect(() => r.iter(bad as never)).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-27' }));
      expect(() => r.getFences(bad as never)).toThrowError(SimError);
    }
  });
});
