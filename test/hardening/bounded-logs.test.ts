// Issue 12, bounded memory: every history of a run is a Ring (src/util/ring.ts) with a cap, or off.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import { DmaBufKernel } from '../../src/dma-buf/index.js';
import { Machine } from '../../src/machine/machine.js';
import { createDefaultRunner, loadScenarioFile, SEED_SCENARIO, SEED_SCENARIO_FILE, parseScenario } from '../../src/scenario/index.js';
import { TracedDma, TraceRecorder, type TransferRecord } from '../../src/trace/index.js';
import { DEFAULT_HISTORY_CAP, Ring } from '../../src/util/ring.js';

const fixture = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');

function simErr(fn: () => unknown): SimError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SimError);
    return e as SimError;
  }
  throw new Error('expected a SimError');
}

async function simErrAsync(fn: () => Promise<unknown>): Promise<SimError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SimError);
    return e as SimError;
  }
  throw new Error('expected a SimError');
}

describe('Ring', () => {
  it('keeps the newest entries oldest first, counts what it dropped', () => {
    const r = new Ring<number>(4);
    for (let i = 0; i < 3; i++) r.push(i);
    expect(r.toArray()).toEqual([0, 1, 2]);
    expect([r.length, r.dropped, r.total]).toEqual([3, 0, 3]);
    for (let i = 3; i < 10; i++) r.push(i);
    expect(r.toArray()).toEqual([6, 7, 8, 9]);
    expect([...r]).toEqual([6, 7, 8, 9]);
    expect([r.length, r.dropped, r.total]).toEqual([4, 6, 10]);
    expect([r.at(0), r.at(3), r.at(-1), r.at(-4), r.at(4), r.at(-5)]).toEqual([6, 9, 9, 6, undefined, undefined]);
    r.clear();
    expect([r.length, r.dropped]).toEqual([0, 6]);
    r.push(42);
    expect(r.toArray()).toEqual([42]);
  });

  it('capacity 0 keeps nothing and counts every push', () => {
    const r = new Ring<string>(0);
    for (let i = 0; i < 5; i++) r.push('x');
    expect([r.length, r.dropped, r.toArray()]).toEqual([0, 5, []]);
  });

  it('a bad capacity is EINVAL naming the field', () => {
    for (const bad of [-1, 1.5, NaN, Infinity, '3', 3n, null]) {
      const e = simErr(() => new Ring(bad as number));
      expect(e.code).toBe('EINVAL');
      expect(e.message).toContain('capacity');
    }
    expect(new Ring().capacity).toBe(DEFAULT_HISTORY_CAP);
  });
});

describe('the DMA-BUF kernel event log', () => {
  it('100k events keep exactly the newest eventCap, oldest first, the rest counted', () => {
    const k = new DmaBufKernel({ eventCap: 1000 });
    const ctx = k.fenceContextAlloc(1);
    let heard = 0;
    k.onEvent(() => heard++);
    for (let i = 1; i <= 100_000; i++) k.createFence(ctx, i).signal();
    const ev = k.events;
    expect(ev).toHaveLength(1000);
    expect(k.eventsDropped).toBe(99_000);
    expect(heard).toBe(100_000); // listeners see every event whatever the cap
    expect(ev[0]!.seq).toBe(99_000);
    expect(ev.at(-1)!.seq).toBe(99_999);
    expect(ev.every((e, i) => i === 0 || e.seq === ev[i - 1]!.seq + 1)).toBe(true);
    expect(ev.at(-1)!.detail).toMatchObject({ context: ctx, seqno: 100_000 });
  });

  it('eventCap 0 (or recordEvents false) records nothing; the kernel still works', () => {
    for (const k of [new DmaBufKernel({ eventCap: 0 }), new DmaBufKernel({ recordEvents: false })]) {
      const f = k.createFence(k.fenceContextAlloc(1), 1);
      const r = k.createResv();
      r.withLock(() => {
        r.reserveFences(1);
        r.addFence(f, 1);
      });
      expect(r.testSignaled(1)).toBe(false);
      f.signal();
      expect(r.testSignaled(1)).toBe(true);
      expect(k.events).toEqual([]);
      expect(k.eventsDropped).toBe(2);
    }
  });

  it('a bad eventCap is EINVAL naming it', () => {
    expect(simErr(() => new DmaBufKernel({ eventCap: -5 })).message).toContain('eventCap');
  });
});

describe('the trace', () => {
  it('keeps the newest cap events and the file says how many were dropped', () => {
    const rec = new TraceRecorder({ cap: 100 });
    let now = 0;
    const p = rec.process(1, 'act', () => now);
    for (let i = 0; i < 100_000; i++) {
      now += 10;
      p.instant('dev', `e${i}`, 'c');
    }
    expect(rec.events).toHaveLength(100);
    expect(rec.dropped).toBe(99_900);
    expect(rec.events[0]!.name).toBe('e99900');
    const t = rec.toJSON();
    expect(t.traceEvents[0]).toEqual({
      name: 'trace_events_dropped', cat: '__metadata', ph: 'M', ts: 0, pid: 0, tid: 0, args: { dropped: 99_900, kept: 100, cap: 100 },
    });
    const rest = t.traceEvents.filter((e) => e.ph !== 'M');
    expect(rest.map((e) => e.name)).toEqual(Array.from({ length: 100 }, (_, i) => `e${99_900 + i}`));
  });

  it('says nothing of drops when none happened; cap 0 records nothing', () => {
    const rec = new TraceRecorder();
    rec.process(1, 'act').instant('dev', 'e', 'c');
    expect(rec.toJSON().traceEvents.some((e) => e.name === 'trace_events_dropped')).toBe(false);
    const off = new TraceRecorder({ cap: 0 });
    off.process(1, 'act').instant('dev', 'e', 'c');
    expect(off.events).toEqual([]);
    expect(off.toJSON().traceEvents[0]!.args).toEqual({ dropped: 1, kept: 0, cap: 0 });
    expect(simErr(() => new TraceRecorder({ cap: -1 })).message).toContain('cap');
  });
});

describe('a machine', () => {
  it('caps its kernel log, dmesg and transfer records; each log can be off; the simulation is the same', async () => {
    const m = await Machine.create({ topology: fixture, history: { cap: 8, dmesg: 0 } });
    expect(m.history).toEqual({ kernelEvents: 8, dmesg: 0, transfers: 8, driverEvents: 8 });
    const gaudi = m.pci('gaudi0');
    const nic = m.pci('nic0');
    // Across host bridges the kernel prints two lines per verbose call; the answer is the same with the log off.
    for (let i = 0; i < 50; i++) expect(m.p2pdma.distance(gaudi, m.pci('nic1'), { verbose: true }).distance).toBe(-1);
    expect(m.p2pdma.log).toEqual([]);
    expect(m.p2pdma.logDropped).toBe(100);
    expect(m.p2pdma.dmesg()).toBe('');
    const ctx = m.kernel.fenceContextAlloc(1);
    for (let i = 1; i <= 100; i++) m.kernel.createFence(ctx, i).signal();
    expect(m.kernel.events).toHaveLength(8);
    expect(m.kernel.eventsDropped).toBe(92);

    const seen: TransferRecord[] = [];
    const dma = new TracedDma(m.sim.dma, null, () => 'nic0', (t) => seen.push(t), m.history.transfers);
    const bar = gaudi.bar(0)!;
    for (let i = 0; i < 20; i++) {
      expect(dma.write({ rid: m.rid(nic), addr: bar.busAddress + BigInt(i) * 16n }, new Uint8Array([i + 1])).ok).toBe(true);
    }
    dma.dispose();
    expect(seen).toHaveLength(20);
    expect(dma.transfers).toHaveLength(8);
    expect(dma.transfersDropped).toBe(12);
    expect(dma.transfers.map((t) => Number(t.dst!.addr - bar.busAddress) / 16)).toEqual([12, 13, 14, 15, 16, 17, 18, 19]);
    expect(m.sim.memory.read(bar.cpuAddress + 19n * 16n, 1)[0]).toBe(20);
  });

  it('two machines keep their histories apart', async () => {
    const a = await Machine.create({ topology: fixture, history: { kernelEvents: 3 } });
    const b = await Machine.create({ topology: fixture });
    expect(b.history).toEqual({ kernelEvents: DEFAULT_HISTORY_CAP, dmesg: DEFAULT_HISTORY_CAP, transfers: DEFAULT_HISTORY_CAP, driverEvents: DEFAULT_HISTORY_CAP });
    const ca = a.kernel.fenceContextAlloc(1);
    for (let i = 1; i <= 10; i++) a.kernel.createFence(ca, i).signal();
    b.kernel.createFence(b.kernel.fenceContextAlloc(1), 7).signal();
    expect(a.kernel.events.map((e) => e.detail['seqno'])).toEqual([8, 9, 10]);
    expect(b.kernel.events.map((e) => e.detail['seqno'])).toEqual([7]);
    expect([a.kernel.eventsDropped, b.kernel.eventsDropped]).toEqual([7, 0]);
    b.p2pdma.distance(b.pci('gaudi0'), b.pci('nic1'), { verbose: true });
    expect(a.p2pdma.log).toEqual([]);
    expect(b.p2pdma.log.map((l) => l.line)[0]).toContain('Host bridge not in P2PDMA whitelist');
  });

  it('bad history options are EINVAL naming the field, before anything is built', async () => {
    for (const [history, field] of [
      [{ cap: -1 }, 'history.cap'], [{ kernelEvents: 1.5 }, 'history.kernelEvents'], [{ dmesg: '4' }, 'history.dmesg'],
      [{ transfers: -2 }, 'history.transfers'], [{ trace: 5 }, 'history.trace'], [7, 'history'], [null, 'history'],
    ] as const) {
      const e = await simErrAsync(() => Machine.create({ topology: fixture, history: history as never }));
      expect(e.code).toBe('EINVAL');
      expect(e.message).toContain(field);
    }
  });
});

describe('a scenario run', () => {
  it('with every history off, the seed story runs to the same report counters', async () => {
    const scenario = loadScenarioFile(SEED_SCENARIO_FILE, () => SEED_SCENARIO);
    const counters = (r: Awaited<ReturnType<ReturnType<typeof createDefaultRunner>['run']>>) =>
      r.acts.map((a) => a.sections.find((s) => s.title === 'counters')!.lines);
    const normal = await createDefaultRunner({ arenaBytes: 32 << 20 }).run(scenario);
    const off = createDefaultRunner({
      arenaBytes: 32 << 20,
      trace: new TraceRecorder({ cap: 0 }),
      createMachine: (act) => Machine.create({
        topology: act.topologyDescription, iommu: act.iommu, profile: act.profile, arenaBytes: 32 << 20, history: { cap: 0 },
      }),
    });
    const quiet = await off.run(scenario);
    expect(normal.exitCode).toBe(0);
    expect(quiet.exitCode).toBe(0);
    expect(counters(quiet)).toEqual(counters(normal));
    expect(quiet.acts.map((a) => a.steps.map((s) => [s.op, s.status, s.outcome]))).toEqual(normal.acts.map((a) => a.steps.map((s) => [s.op, s.status, s.outcome])));
    expect(off.trace.events).toEqual([]);
    expect(off.trace.dropped).toBeGreaterThan(100);
  });

  it('WARNs beyond the cap are counted in the report, the newest named', async () => {
    const runner = createDefaultRunner({
      arenaBytes: 16 << 20,
      createMachine: (act) => Machine.create({ topology: act.topologyDescription, arenaBytes: 16 << 20, history: { kernelEvents: 2 } }),
    }).registerOp('note', (_step, ctx) => {
      for (let i = 0; i < 5; i++) ctx.machine.kernel.warn(`DB-9${i}`, 'note', 'made-up warning');
    });
    const r = await runner.run(parseScenario('name: w\ntopology: builtin\nsteps:\n  - { op: note, text: hello }\n', 'w.yaml'));
    const lines = r.acts[0]!.sections.find((s) => s.title === 'counters')!.lines;
    expect(lines).toContain('dma-buf WARNs: 3 earlier, then DB-93, DB-94');
  });
});
