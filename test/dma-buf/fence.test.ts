// Ports of drivers/dma-buf/st-dma-fence.c plus the DB-29 rules.
import { describe, expect, it } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import {
  DmaBufKernel,
  KERNEL_PROFILE_NAMES,
  MAX_SCHEDULE_TIMEOUT,
  type DmaFenceCallback,
} from '../../src/dma-buf/index.js';

function setup(profile: '5.15' | '6.x' | 'latest' = '6.x', strict = false) {
  const k = new DmaBufKernel({ profile, strict });
  const ctx = k.fenceContextAlloc(1);
  return { k, f: k.createFence(ctx, 1), ctx };
}

const counter = () => {
  const c = { n: 0, cb: { func: () => void c.n++ } as DmaFenceCallback };
  return c;
};

describe('st-dma-fence ports (DB-29)', () => {
  it('DB-29 sanity: a fresh fence is pending, signals once, reports signaled', () => {
    const { f } = setup();
    expect(f.isSignaled()).toBe(false);
    expect(f.signal()).toBe(0);
    expect(f.isSignaled()).toBe(true);
  });

  it('DB-29 signaling: context allocation gives fresh contexts, signal stamps virtual time', () => {
    const k = new DmaBufKernel();
    const a = k.fenceContextAlloc(2);
    const b = k.fenceContextAlloc(1);
    expect(b).toBe(a + 2);
    expect(a).toBeGreaterThan(0); // 0 belongs to the stub
    const f = k.createFence(a, 7);
    k.clock.advance(25);
    f.signal();
    expect(f.timestamp).toBe(25);
    expect(k.events.filter((e) => e.kind === 'fence_signal').map((e) => e.detail)).toEqual([
      { context: a, seqno: 7, error: 0 },
    ]);
  });

  it('DB-29 add_callback: runs once on signal, in add order', () => {
    const { f } = setup();
    const order: number[] = [];
    const cbs = [1, 2, 3].map((i) => ({ func: () => void order.push(i) }));
    for (const cb of cbs) expect(f.addCallback(cb)).toBe(0);
    f.signal();
    f.signal();
    expect(order).toEqual([1, 2, 3]);
  });

  it('DB-29 late_add_callback: adding to a signaled fence returns -ENOENT and never runs', () => {
    const { f } = setup();
    f.signal();
    const c = counter();
    expect(f.addCallback(c.cb)).toBe(-2);
    expect(c.n).toBe(0);
  });

  it('DB-29 rm_callback: a removed callback does not run', () => {
    const { f } = setup();
    const c = counter();
    f.addCallback(c.cb);
    expect(f.removeCallback(c.cb)).toBe(true);
    f.signal();
    expect(c.n).toBe(0);
  });

  it('DB-29 late_rm_callback: removing after the signal returns false', () => {
    const { f } = setup();
    const c = counter();
    f.addCallback(c.cb);
    f.signal();
    expect(c.n).toBe(1);
    expect(f.removeCallback(c.cb)).toBe(false);
  });

  it('DB-29 remove_callback from inside a callback returns false (already detached)', () => {
    const { f } = setup();
    let seen: boolean | undefined;
    const cb: DmaFenceCallback = { func: (fence, me) => void (seen = fence.removeCallback(me)) };
    f.addCallback(cb);
    f.signal();
    expect(seen).toBe(false);
  });

  it('DB-29 status: 0 pending, 1 signaled', () => {
    const { f } = setup();
    expect(f.getStatus()).toBe(0);
    f.signal();
    expect(f.getStatus()).toBe(1);
  });

  it('DB-29 error: set_error before signal shows in status; status stays 0 until signaled', () => {
    const { f } = setup();
    f.setError(-5);
    expect(f.getStatus()).toBe(0);
    f.signal();
    expect(f.getStatus()).toBe(-5);
    expect(f.error).toBe(-5);
  });

  it('DB-29 set_error after signal or out of range WARNs and changes nothing', () => {
    const { k, f } = setup();
    f.setError(0);
    f.setError(-4096);
    f.setError(7);
    f.signal();
    f.setError(-5);
    expect(f.getStatus()).toBe(1);
    expect(k.events.filter((e) => e.kind === 'warn' && e.rule === 'DB-29')).toHaveLength(4);
  });

  it('DB-29 set_error misuse throws EINVAL in strict mode', () => {
    const { f } = setup('6.x', true);
    expect(() => f.setError(3)).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-29' }));
  });

  it('DB-29 wait: timeout 0 gives 0 pending and 1 signaled; negative gives -EINVAL', () => {
    const { k, f } = setup();
    expect(f.waitTimeout(false, 0)).toBe(0);
    expect(f.waitTimeout(false, -1)).toBe(-22);
    expect(k.events.filter((e) => e.kind === 'warn')).toHaveLength(1);
    f.signal();
    expect(f.waitTimeout(false, 0)).toBe(1);
    expect(f.waitTimeout(false, 10)).toBe(10);
  });

  it('DB-29 wait: times out on the virtual clock, or returns the remaining time', () => {
    const { k, f } = setup();
    expect(f.waitTimeout(false, 10)).toBe(0);
    expect(k.clock.now).toBe(10);
    f.scheduleSignal(4);
    expect(f.waitTimeout(false, 10)).toBe(6);
    expect(k.clock.now).toBe(14);
    expect(f.timestamp).toBe(14);
  });

  it('DB-29 wait: an infinite wait returns once a scheduled signal fires', () => {
    const { k, f } = setup();
    f.scheduleSignal(1000);
    expect(f.waitTimeout(true, MAX_SCHEDULE_TIMEOUT)).toBe(MAX_SCHEDULE_TIMEOUT);
    expect(f.wait()).toBe(0);
    expect(k.clock.now).toBe(1000);
  });

  it('DB-29 wait: interruptible waits return -ERESTARTSYS when a signal is pending, uninterruptible ones do not', () => {
    const { k, f } = setup();
    k.signalPending = true;
    expect(f.waitTimeout(true, 10)).toBe(-512);
    expect(k.clock.now).toBe(0);
    expect(f.waitTimeout(false, 10)).toBe(0);
    k.signalPending = false;
    k.clock.schedule(3, () => void (k.signalPending = true));
    expect(f.waitTimeout(true, 10)).toBe(-512);
    expect(k.clock.now).toBe(13);
  });

  it('DB-29 a fence that can never signal is reported instead of hanging', () => {
    const { k, f } = setup();
    expect(f.wait(true)).toBe(-512);
    expect(k.events.at(-1)).toMatchObject({ kind: 'warn', rule: 'DB-29' });
  });

  it('DB-29 stub fence: always signaled, context 0, shared', () => {
    const k = new DmaBufKernel();
    const s = k.getStub();
    expect(s.isSignaled()).toBe(true);
    expect(s.context).toBe(0);
    expect(k.getStub()).toBe(s);
    expect(s.waitTimeout(true, 0)).toBe(1);
  });

  it('DB-29 adding a callback twice is refused (emulator-defined)', () => {
    const { f } = setup();
    const c = counter();
    f.addCallback(c.cb);
    expect(() => f.addCallback(c.cb)).toThrow(SimError);
    f.signal();
    expect(c.n).toBe(1);
  });

  for (const profile of KERNEL_PROFILE_NAMES) {
    it(`DB-29 [${profile}] a second signal is a no-op; returns ${profile === 'latest' ? '0' : '-EINVAL'}`, () => {
      const { f } = setup(profile);
      const c = counter();
      f.addCallback(c.cb);
      expect(f.signal()).toBe(0);
      const t = f.timestamp;
      expect(f.signal()).toBe(profile === 'latest' ? 0 : -22);
      expect(f.checkAndSignal()).toBe(true);
      expect(c.n).toBe(1);
      expect(f.timestamp).toBe(t);
    });
  }

  it('DB-29 checkAndSignal reports false the first time', () => {
    const { f } = setup('latest');
    expect(f.checkAndSignal()).toBe(false);
    expect(f.isSignaled()).toBe(true);
  });
});
