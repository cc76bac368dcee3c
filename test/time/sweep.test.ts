import { describe, expect, it } from 'vitest';
import { cli } from '../cli/cli-io.js';
import { createDefaultRunner } from '../../src/scenario/default-runner.js';
import { parseScenario } from '../../src/scenario/parse.js';
import { sweepSizes } from '../../src/time/sweep.js';

describe('sweep (CLI and scenario op)', () => {
  it('PERF-30: dmabuf-sim sweep FROM TO --json: one row per size, the rate climbing to the link rate', async () => {
    const r = await cli(['sweep', 'nic0', 'gaudi0', '--max', '4M', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { mapType: string; rows: { bytes: number; durationNs: number; rateGBps: number }[]; bottleneck: string };
    expect(j.mapType).toBe('BUS_ADDR');
    expect(j.rows.map((x) => x.bytes)).toEqual([4096, 16384, 65536, 262144, 1048576, 4194304]);
    for (let i = 1; i < j.rows.length; i++) expect(j.rows[i]!.rateGBps).toBeGreaterThan(j.rows[i - 1]!.rateGBps);
    // Gen4 x16 with MPS 256: the link, not the switch, limits a large transfer.
    expect(j.rows.at(-1)!.rateGBps).toBeGreaterThan(26);
    expect(j.rows.at(-1)!.rateGBps).toBeLessThan(28.5);
    expect(j.bottleneck).toMatch(/^link above nic0 up \(Gen4 x16/);
    const text = await cli(['sweep', 'nic0', 'gaudi0', '--max', '64K']);
    expect(text.out).toMatch(/#bytes\s+time\s+GB\/s\s+translation/);
    expect(text.out.split('\n').filter((l) => /^\s+\d+\s/.test(l))).toHaveLength(3);
  });

  it('PERF-31: dmabuf-sim sweep (matrix): switch peers beat root-complex peers; refused pairs are marked', async () => {
    const r = await cli(['sweep', '--json', '--max', '1M']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { devices: string[]; bandwidthGBps: (number | null)[][]; mapType: (string | null)[][] };
    const at = (a: string, b: string) => j.bandwidthGBps[j.devices.indexOf(a)]![j.devices.indexOf(b)];
    expect(at('nic0', 'gaudi0')!).toBeGreaterThan(at('nic1', 'gaudi0')!);
    expect(at('nic2', 'gaudi0')).toBeNull();
    expect(j.mapType[j.devices.indexOf('nic2')]![j.devices.indexOf('gaudi0')]).toBe('EOPNOTSUPP');
    const text = await cli(['sweep', '--max', '1M']);
    expect(text.out).toContain('Unidirectional DMA write bandwidth');
    expect(text.out).toContain('DMA write latency, 4096 bytes');
  });

  it('PERF-32: usage errors exit 2', async () => {
    expect((await cli(['sweep', 'nic0'])).code).toBe(2);
    expect((await cli(['sweep', '--iommu', 'amd'])).err).toMatch(/--iommu amd/);
    expect((await cli(['sweep', 'nic0', 'gaudi0', '--max', '3X'])).err).toMatch(/not a size/);
    expect((await cli(['sweep', 'nic2', 'gaudi0'])).err).toMatch(/EOPNOTSUPP|NOT_SUPPORTED/);
    expect((await cli(['sweep', '--help'])).out).toContain('p2pBandwidthLatencyTest');
    expect(() => sweepSizes(8192n, 4096n)).toThrow(/min/);
    expect(sweepSizes(4096n, 20480n, 2)).toEqual([4096n, 8192n, 16384n, 20480n]);
  });

  it('PERF-33: the sweep op in a scenario: a table section and a result to expect on', async () => {
    const s = parseScenario([
      'name: bw', 'topology: builtin', 'iommu: { family: vtd }', 'steps:',
      '  - { op: sweep, from: nic0, to: gaudi0, max: 1M, expect: { result: { mapType: BUS_ADDR } } }',
      '  - { op: sweep, from: nic2, to: gaudi0, expect: { errno: EOPNOTSUPP } }',
    ].join('\n'), 'bw.yaml');
    const r = await createDefaultRunner().run(s);
    expect(r.failures).toEqual([]);
    const step = r.acts[0]!.steps[0]!;
    const sec = step.sections.find((x) => x.title === 'sweep')!;
    expect(sec.lines[0]).toBe('nic0 -> gaudi0 BAR0 (BUS_ADDR): nic0 BAR0 -> nic0 -> sw0 -> gaudi0 BAR0');
    expect(step.transfers).toHaveLength(5);
    expect((step.result as { peakGBps: number }).peakGBps).toBeGreaterThan(20);
    expect(step.durationNs).toBe(step.transfers.reduce((s, t) => s + t.durationNs, 0));
  });
});
