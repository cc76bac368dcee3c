import { describe, expect, it } from 'vitest';
import { createDefaultRunner } from '../../src/scenario/default-runner.js';
import { parseScenario } from '../../src/scenario/parse.js';
import { renderJson, type RunReport } from '../../src/scenario/report.js';
import { SEED_SCENARIO, SEED_SCENARIO_FILE } from '../../src/scenario/builtin/index.js';

const run = async (): Promise<{ report: RunReport; trace: ReturnType<ReturnType<typeof createDefaultRunner>['trace']['toJSON']> }> => {
  const runner = createDefaultRunner();
  const report = await runner.run(parseScenario(SEED_SCENARIO, SEED_SCENARIO_FILE));
  return { report, trace: runner.trace.toJSON() };
};

describe('virtual time in the default run', () => {
  it('PERF-20: deterministic: the same scenario gives the same times (steps, transfers, trace)', async () => {
    const a = await run();
    const b = await run();
    expect(a.report.exitCode).toBe(0);
    const times = (r: RunReport) => r.acts.map((x) => [x.startNs, x.endNs, x.steps.map((s) => [s.startNs, s.durationNs, s.transfers.map((t) => [t.startNs, t.durationNs])])]);
    expect(times(b.report)).toEqual(times(a.report));
    expect(b.trace).toEqual(a.trace);
    expect(a.report.acts.at(-1)!.endNs).toBeGreaterThan(0);
  });

  it('PERF-21: act 1\'s RDMA WRITE (BUS_ADDR over the switch) is faster than act 2\'s (IOMMU, across root ports)', async () => {
    const { report } = await run();
    const write = (act: number) => report.acts[act]!.steps.find((s) => s.op === 'post' && s.args['verb'] === 'WRITE')!.transfers[0]!;
    const a1 = write(0);
    const a2 = write(1);
    expect(a1.path).toContain('sw0 -> gaudi0 BAR0');
    expect(a1.path).not.toMatch(/nic0 -> sw0 -> hb0/);
    expect(a2.path).toContain('hb0 -> sw0 -> gaudi0 BAR0');
    expect(a2.translationNs).toBeGreaterThan(0);
    expect(a1.translationNs).toBe(0);
    expect(a1.rateGBps).toBeGreaterThan(a2.rateGBps);
    // Rate is bytes over duration, on the report line too.
    expect(a1.rateGBps).toBeCloseTo(a1.bytes / a1.durationNs, 9);
    const line = report.acts[0]!.steps.find((s) => s.op === 'post')!.log[0]!;
    expect(line).toMatch(/65536 bytes in [\d.]+ us, [\d.]+ GB\/s/);
  });

  it('PERF-22: one clock for the run: never backwards across steps and acts; --json has startNs/durationNs numbers', async () => {
    const { report, trace } = await run();
    let last = 0;
    for (const [i, act] of report.acts.entries()) {
      if (i > 0) expect(act.startNs).toBe(report.acts[i - 1]!.endNs);
      for (const s of act.steps) {
        expect(s.startNs).toBeGreaterThanOrEqual(last);
        expect(s.time).toBe(s.startNs);
        last = s.startNs + s.durationNs;
      }
      expect(act.endNs).toBeGreaterThanOrEqual(last);
      const counters = act.sections.find((x) => x.title === 'counters')!;
      expect(counters.lines.some((l) => /^time: act .* of which .* in IOMMU translation/.test(l))).toBe(true);
    }
    const json = JSON.parse(renderJson(report)) as { acts: { steps: { startNs: unknown; durationNs: unknown }[] }[] };
    for (const a of json.acts) for (const s of a.steps) {
      expect(typeof s.startNs).toBe('number');
      expect(typeof s.durationNs).toBe('number');
    }
    // The trace's DMA slices sit on the same clock as the steps that made them.
    const act2 = report.acts[1]!;
    const slices = trace.traceEvents.filter((e) => e.pid === 2 && e.cat === 'dma');
    expect(slices.length).toBeGreaterThan(0);
    for (const e of slices) {
      expect(e.ts * 1000).toBeGreaterThanOrEqual(act2.startNs);
      expect((e.ts + e.dur!) * 1000).toBeLessThanOrEqual(act2.endNs + 1e-6);
    }
  });
});
