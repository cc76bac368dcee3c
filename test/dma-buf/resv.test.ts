// Ports of drivers/dma-buf/st-dma-resv.c plus DB-27/DB-28.
import { describe, expect, it } from 'vitest';
import { DmaBufKernel, DmaResvUsage, dmaResvUsageRw, MAX_SCHEDULE_TIMEOUT } from '../../src/dma-buf/index.js';

const USAGES = [
  ['KERNEL', DmaResvUsage.KERNEL],
  ['WRITE', DmaResvUsage.WRITE],
  ['READ', DmaResvUsage.READ],
  ['BOOKKEEP', DmaResvUsage.BOOKKEEP],
] as const;

function setup(strict = false) {
  const k = new DmaBufKernel({ strict });
  const r = k.createResv();
  const ctx = k.fenceContextAlloc(1);
  return { k, r, ctx, fence: (seq = 1, c = ctx) => k.createFence(c, seq) };
}

function addLocked(r: ReturnType<typeof setup>['r'], f: ReturnType<ReturnType<typeof setup>['fence']>, usage: DmaResvUsage) {
  r.lock();
  r.reserveFences(1);
  r.addFence(f, usage);
  r.unlock();
}

describe('st-dma-resv ports (DB-27, DB-28)', () => {
  it('DB-28 sanity: lock, trylock, unlock', () => {
    const { r } = setup();
    r.lock();
    expect(r.trylock()).toBe(false);
    expect(() => r.lock()).toThrowError(expect.objectContaining({ code: 'EBUSY' }));
    r.unlock();
    expect(r.trylock()).toBe(true);
    r.unlock();
    expect(() => r.unlock()).toThrowError(expect.objectContaining({ code: 'EINVAL' }));
  });

  for (const [name, usage] of USAGES) {
    it(`DB-28 signaling/${name}: test_signaled is false until the fence signals`, () => {
      const { r, fence } = setup();
      const f = fence();
      addLocked(r, f, usage);
      expect(r.testSignaled(usage)).toBe(false);
      f.signal();
      expect(r.testSignaled(usage)).toBe(true);
    });

    it(`DB-28 for_each/${name}: the locked walk returns the fence with its usage, signaled or not`, () => {
      const { r, fence } = setup();
      const f = fence();
      addLocked(r, f, usage);
      f.signal();
      r.lock();
      expect(r.fences(usage)).toEqual([{ fence: f, usage }]);
      r.unlock();
    });

    it(`DB-28 for_each_unlocked/${name}: finds the pending fence, skips it once signaled`, () => {
      const { r, fence } = setup();
      const f = fence();
      addLocked(r, f, usage);
      expect(r.fencesUnlocked(usage)).toEqual([{ fence: f, usage }]);
      f.signal();
      expect(r.fencesUnlocked(usage)).toEqual([]);
    });

    it(`DB-28 get_fences/${name}: returns exactly the pending fence`, () => {
      const { r, fence } = setup();
      const f = fence();
      addLocked(r, f, usage);
      expect(r.getFences(usage)).toEqual([f]);
      f.signal();
      expect(r.getFences(usage)).toEqual([]);
    });
  }

  it('DB-27 a query with usage U sees every fence with usage <= U', () => {
    const { k, r } = setup();
    const fs = USAGES.map(([, u]) => ({ u, f: k.createFence(k.fenceContextAlloc(), 1) }));
    r.lock();
    r.reserveFences(4);
    for (const { u, f } of fs) r.addFence(f, u);
    r.unlock();
    for (const [, q] of USAGES) {
      expect(r.getFences(q)).toEqual(fs.filter(({ u }) => u <= q).map(({ f }) => f));
    }
    fs[3]!.f.signal();
    expect(r.testSignaled(DmaResvUsage.READ)).toBe(false);
    fs[0]!.f.signal();
    fs[1]!.f.signal();
    fs[2]!.f.signal();
    expect(r.testSignaled(DmaResvUsage.READ)).toBe(true);
  });

  it('DB-27 dma_resv_usage_rw: a write waits for READ, a read for WRITE', () => {
    expect(dmaResvUsageRw(true)).toBe(DmaResvUsage.READ);
    expect(dmaResvUsageRw(false)).toBe(DmaResvUsage.WRITE);
  });

  it('DB-28 a fence of the same context replaces one of equal or higher usage, taking the new usage', () => {
    const { r, fence } = setup();
    addLocked(r, fence(1), DmaResvUsage.READ);
    const f2 = fence(2);
    addLocked(r, f2, DmaResvUsage.WRITE);
    expect(r.numFences).toBe(1);
    r.lock();
    expect(r.fences(DmaResvUsage.BOOKKEEP)).toEqual([{ fence: f2, usage: DmaResvUsage.WRITE }]);
    r.unlock();
  });

  it('DB-28 a fence of the same context does not replace one of lower usage', () => {
    const { r, fence } = setup();
    addLocked(r, fence(1), DmaResvUsage.WRITE);
    addLocked(r, fence(2), DmaResvUsage.READ);
    expect(r.numFences).toBe(2);
  });

  it('DB-28 a signaled fence of any context is replaced', () => {
    const { k, r, fence } = setup();
    const old = fence(1);
    addLocked(r, old, DmaResvUsage.KERNEL);
    old.signal();
    const other = k.createFence(k.fenceContextAlloc(), 1);
    addLocked(r, other, DmaResvUsage.BOOKKEEP);
    expect(r.numFences).toBe(1);
    expect(r.getFences(DmaResvUsage.BOOKKEEP)).toEqual([other]);
  });

  it('DB-28 add without a reservation is refused (kernel BUG) and changes nothing', () => {
    const { k, r, fence } = setup();
    r.lock();
    r.reserveFences(1);
    r.addFence(fence(1), DmaResvUsage.READ);
    const other = k.createFence(k.fenceContextAlloc(), 1);
    expect(() => r.addFence(other, DmaResvUsage.READ)).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-28' }));
    expect(r.numFences).toBe(1);
    r.unlock();
  });

  it('DB-28 reservations do not survive an unlock and do not add up', () => {
    const { k, r } = setup();
    const ctx = () => k.fenceContextAlloc();
    r.lock();
    r.reserveFences(1);
    r.reserveFences(1);
    r.addFence(k.createFence(ctx(), 1), DmaResvUsage.READ);
    expect(() => r.addFence(k.createFence(ctx(), 1), DmaResvUsage.READ)).toThrow();
    r.reserveFences(1);
    r.unlock();
    r.lock();
    expect(() => r.addFence(k.createFence(ctx(), 1), DmaResvUsage.READ)).toThrow();
    r.unlock();
  });

  it('DB-28 add_fence without the lock WARNs (and throws in strict mode)', () => {
    const lax = setup();
    // No reservation either: the lock WARN, then the refusal of the slot BUG.
    expect(() => lax.r.addFence(lax.fence(), DmaResvUsage.READ)).toThrowError(expect.objectContaining({ code: 'EINVAL' }));
    expect(lax.k.events.filter((e) => e.kind === 'warn').map((e) => e.rule)).toEqual(['DB-28', 'DB-28']);
    const strict = setup(true);
    expect(() => strict.r.reserveFences(1)).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-28' }));
  });

  it('DB-28 invalid usage is EINVAL', () => {
    const { r, fence } = setup();
    r.lock();
    r.reserveFences(1);
    expect(() => r.addFence(fence(), 4 as DmaResvUsage)).toThrowError(expect.objectContaining({ code: 'EINVAL' }));
    expect(r.numFences).toBe(0);
    r.unlock();
  });

  it('DB-28 wait_timeout: >0 on success, 0 on timeout, -ERESTARTSYS when interrupted', () => {
    const { k, r, fence } = setup();
    const f = fence();
    addLocked(r, f, DmaResvUsage.WRITE);
    expect(r.waitTimeout(DmaResvUsage.KERNEL, true, 100)).toBe(100); // no KERNEL fences
    expect(r.waitTimeout(DmaResvUsage.WRITE, true, 100)).toBe(0);
    expect(k.clock.now).toBe(100);
    k.signalPending = true;
    expect(r.waitTimeout(DmaResvUsage.WRITE, true, 100)).toBe(-512);
    k.signalPending = false;
    f.scheduleSignal(30);
    expect(r.waitTimeout(DmaResvUsage.READ, true, 100)).toBe(70);
    expect(r.waitTimeout(DmaResvUsage.READ, true, MAX_SCHEDULE_TIMEOUT)).toBe(MAX_SCHEDULE_TIMEOUT);
  });

  it('DB-28 wait_timeout shares one time budget across fences', () => {
    const { k, r } = setup();
    const a = k.createFence(k.fenceContextAlloc(), 1);
    const b = k.createFence(k.fenceContextAlloc(), 1);
    r.lock();
    r.reserveFences(2);
    r.addFence(a, DmaResvUsage.READ);
    r.addFence(b, DmaResvUsage.READ);
    r.unlock();
    a.scheduleSignal(10);
    b.scheduleSignal(25);
    expect(r.waitTimeout(DmaResvUsage.READ, false, 100)).toBe(75);
    expect(k.clock.now).toBe(25);
  });
});

describe('dma_resv_add_fence from another machine', () => {
  it('DB-27: a fence of another kernel (or not a fence) is EINVAL and the reservation is unchanged', async () => {
    const { DmaBufKernel: K } = await import('../../src/dma-buf/index.js');
    const a = new K();
    const b = new K();
    const resv = a.createResv();
    const foreign = b.createFence(b.fenceContextAlloc(1), 1);
    resv.lock();
    resv.reserveFences(2);
    for (const f of [foreign, { context: 1, seqno: 1, isSignaled: () => false }]) {
      expect(() => resv.addFence(f as never, DmaResvUsage.WRITE)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
    expect(resv.numFences).toBe(0);
    resv.addFence(a.createFence(a.fenceContextAlloc(1), 1), DmaResvUsage.WRITE);
    expect(resv.numFences).toBe(1);
    resv.unlock();
  });
});
