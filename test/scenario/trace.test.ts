import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import {
  createDefaultRunner, loadScenarioFile, parseScenario, renderJson, renderText, ScenarioRunner, SEED_SCENARIO, SEED_SCENARIO_FILE, VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE,
} from '../../src/scenario/index.js';
import { stringifyTrace, type TraceEvent, type TraceFile, TraceRecorder, transferNs } from '../../src/trace/index.js';
import { registerFakeOps } from './fake-handlers.js';

const read = (f: string): string => readFileSync(f, 'utf8');

function checkShape(t: TraceFile): void {
  expect(t.displayTimeUnit).toBe('ns');
  expect(() => JSON.parse(JSON.stringify(t))).not.toThrow();
  for (const e of t.traceEvents) {
    expect(Object.keys(e).sort()).toEqual(expect.arrayContaining(['args', 'cat', 'name', 'ph', 'pid', 'tid', 'ts']));
    expect(typeof e.name).toBe('string');
    expect(typeof e.cat).toBe('string');
    expect(['X', 'B', 'E', 'i', 'M', 'C']).toContain(e.ph);
    expect(Number.isFinite(e.ts) && e.ts >= 0).toBe(true);
    expect(Number.isInteger(e.pid) && Number.isInteger(e.tid)).toBe(true);
    expect(typeof e.args).toBe('object');
    if (e.ph === 'X') expect(e.dur).toBeGreaterThan(0);
    if (e.ph === 'i') expect(['t', 'p', 'g']).toContain(e.s);
  }
  // Metadata first, then per process strictly increasing timestamps.
  const firstNonMeta = t.traceEvents.findIndex((e) => e.ph !== 'M');
  expect(t.traceEvents.slice(firstNonMeta).every((e) => e.ph !== 'M')).toBe(true);
  const byPid = new Map<number, TraceEvent[]>();
  for (const e of t.traceEvents.slice(firstNonMeta)) byPid.set(e.pid, [...(byPid.get(e.pid) ?? []), e]);
  for (const evs of byPid.values()) {
    for (let i = 1; i < evs.length; i++) expect(evs[i]!.ts).toBeGreaterThan(evs[i - 1]!.ts);
    // B and E pair up on each thread.
    const depth = new Map<number, number>();
    for (const e of evs) {
      if (e.ph === 'B') depth.set(e.tid, (depth.get(e.tid) ?? 0) + 1);
      if (e.ph === 'E') {
        depth.set(e.tid, (depth.get(e.tid) ?? 0) - 1);
        expect(depth.get(e.tid)).toBeGreaterThanOrEqual(0);
      }
    }
    expect([...depth.values()].every((d) => d === 0)).toBe(true);
  }
}

describe('trace', () => {
  it('a run gives valid trace events: one process per act, one thread per device', async () => {
    const runner = registerFakeOps(new ScenarioRunner({ arenaBytes: 16 << 20 }));
    const r = await runner.run(loadScenarioFile('test/scenario/fixtures/seed.yaml', read));
    expect(r.exitCode).toBe(0);
    const t = runner.trace.toJSON({ scenario: 'seed' });
    checkShape(t);
    expect(t.otherData).toEqual({ scenario: 'seed' });
    const text = stringifyTrace(t);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(t)));
    expect(text.split('\n')).toHaveLength(t.traceEvents.length + 3);
    const meta = t.traceEvents.filter((e) => e.ph === 'M' && e.name === 'process_name');
    expect(meta.map((e) => [e.pid, e.args.name])).toEqual([
      [1, 'act 1: Same switch (BUS_ADDR, no IOMMU)'], [2, 'act 2: Through the host bridge (IOMMU)'], [3, 'act 3: Across host bridges (NOT_SUPPORTED)'],
    ]);
    const threads = (pid: number) => Object.fromEntries(t.traceEvents.filter((e) => e.pid === pid && e.name === 'thread_name').map((e) => [e.args.name as string, e.tid]));
    // tid 2 was the 'dma-buf' thread until the export was named: unused, so unnamed in the metadata.
    expect(threads(1)).toEqual({ scenario: 1, gaudi0: 3, nic0: 4 });
    const p1 = t.traceEvents.filter((e) => e.pid === 1 && e.ph !== 'M');
    expect(p1.filter((e) => e.tid === 1 && e.ph === 'B').map((e) => e.name)).toEqual(['note', 'alloc', 'export', 'mmap', 'register', 'post', 'readBack']);
    expect(p1.find((e) => e.ph === 'E' && e.name === 'mmap')!.args).toEqual({ status: 'passed', outcome: 'EINVAL' });
    expect(p1.filter((e) => e.cat === 'dma-buf').map((e) => [e.name, e.tid])).toEqual([['export', 3], ['attach', 4], ['map', 4]]);
    const dma = p1.find((e) => e.cat === 'dma')!;
    expect(dma).toMatchObject({ name: 'dma write', ph: 'X', tid: 4, args: { length: '0x1000', bytes: '0x1000', result: 'OK', dst: 'nic0@0x4000000000' } });
    // The slice is the transfer as the fabric model timed it on the act's clock.
    const step = r.acts[0]!.steps[5]!;
    expect(dma.dur).toBeGreaterThan(0);
    expect(dma.dur! * 1000).toBeLessThanOrEqual(step.durationNs);
    expect(dma.ts * 1000).toBeGreaterThanOrEqual(step.startNs);
    expect(String(dma.args.path)).toContain('sw0');
    expect(transferNs(4096)).toBe(356); // the fallback of a bare simulator
  });

  it('IOMMU faults are instants on the faulting device; WARNs are process-wide', async () => {
    const runner = registerFakeOps(new ScenarioRunner({ arenaBytes: 16 << 20 })).registerOp('post', (step, ctx) => {
      const nic = ctx.device(step.args.from);
      ctx.machine.dmaDevice(nic);
      ctx.machine.kernel.warn('DB-99', 'post', 'made-up warning');
      const w = ctx.dma.write({ rid: ctx.machine.rid(nic), addr: 0x2000n }, new Uint8Array(4));
      throw new SimError(w.code as 'EFAULT', 'post', 'fault');
    });
    const s = parseScenario('name: f\ntopology: builtin\niommu: { family: smmuv3 }\nsteps:\n  - { op: alloc, device: gaudi0, size: 4K, as: b }\n  - { op: export, buffer: b, as: f }\n  - { op: register, nic: nic1, fd: f, length: 4K, as: m }\n  - { op: post, verb: READ, from: nic1, to: nic0, mr: m, length: 4, expect: { errno: EFAULT } }\n', 'f.yaml');
    const r = await runner.run(s);
    expect(r.exitCode).toBe(0);
    expect(r.acts[0]!.steps[3]!.log[1]).toMatch(/^arm-smmu-v3 smmu0: event 0x10 from 0000:05:00\.0 \(nic1\): write iova 0x2000 translation$/);
    const t = runner.trace.toJSON();
    checkShape(t);
    const fault = t.traceEvents.find((e) => e.cat === 'iommu')!;
    expect(fault).toMatchObject({ name: 'iommu fault (translation)', ph: 'i', s: 't', args: { unit: 'smmu0', bdf: '0000:05:00.0', iova: '0x2000', access: 'write', reason: 'translation' } });
    const nicTid = t.traceEvents.find((e) => e.name === 'thread_name' && e.args.name === 'nic1')!.tid;
    expect(fault.tid).toBe(nicTid);
    expect(t.traceEvents.find((e) => e.cat === 'warn')).toMatchObject({ name: 'WARN DB-99', ph: 'i', s: 'p', args: { rule: 'DB-99', op: 'post', message: 'made-up warning' } });
  });

  it('timestamps follow the virtual clock, one ns apart when it stands still', () => {
    let now = 0;
    const rec = new TraceRecorder();
    const p = rec.process(1, 'act', () => now);
    p.instant('a', 'e1', 'c');
    p.instant('a', 'e2', 'c');
    now = 5000;
    p.complete('b', 'dma', 'dma', 250);
    p.instant('a', 'e3', 'c');
    now = 1000; // a clock that went back is ignored
    p.instant('a', 'e4', 'c');
    const evs = rec.toJSON().traceEvents.filter((e) => e.ph !== 'M');
    expect(evs.map((e) => [e.name, e.ts, e.dur])).toEqual([
      ['e1', 0, undefined], ['e2', 0.001, undefined], ['dma', 5, 0.25], ['e3', 5.25, undefined], ['e4', 5.251, undefined],
    ]);
  });
});

describe('a run without a trace (trace: false)', () => {
  // The CLI without --trace: the runner then makes no trace events at all, and the report must
  // be the one a traced run gives, byte for byte, for both built-in scenarios.
  it('reports exactly what a traced run reports; runner.trace stays empty', async () => {
    for (const [text, file] of [[SEED_SCENARIO, SEED_SCENARIO_FILE], [VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE]] as const) {
      const traced = createDefaultRunner();
      const quiet = createDefaultRunner({ trace: false });
      const a = await traced.run(parseScenario(text, file));
      const b = await quiet.run(parseScenario(text, file));
      expect(renderJson(b), file).toBe(renderJson(a));
      expect(renderText(b, { detail: 'verbose' }), file).toBe(renderText(a, { detail: 'verbose' }));
      expect(traced.trace.events.length).toBeGreaterThan(100);
      expect(quiet.trace.events).toEqual([]);
      expect(quiet.trace.dropped).toBe(0); // none made, none dropped
    }
  });
});
