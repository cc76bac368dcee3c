/**
 * The report of the default runner on real drivers: topologies once, level names as the
 * architectures number them, the BUS_ADDR-yet-IOVA explanation, and the trace's IOMMU events.
 */
import { describe, expect, it } from 'vitest';
import { createDefaultRunner, parseScenario, renderJson, renderText } from '../../src/scenario/index.js';
import { SEED_SCENARIO, SEED_TOPOLOGY } from '../../src/scenario/builtin/index.js';
import { archLevel, P2pdma, parseTopology, topologyToJson } from '../../src/index.js';

/** gaudi0 and nic0 share a switch (BUS_ADDR), but the IOMMU is on and habanalabs maps with dma_map_resource. */
const SWITCH_IOMMU = `name: switch-iommu
topology: builtin
iommu: { family: vtd }
steps:
  - { op: alloc, device: gaudi0, size: 2M, as: hbm }
  - { op: map, buffer: hbm, as: va }
  - { op: export, buffer: va, as: fd }
  - { op: register, nic: nic0, fd: fd, length: 2M, access: [LOCAL_WRITE, REMOTE_WRITE], as: mr }
  - { op: register, nic: nic1, fd: fd, length: 2M, access: [LOCAL_WRITE, REMOTE_WRITE], as: mr1 }
`;

describe('page-table level names', () => {
  it('VT-d counts down to the PTE; ARM counts up from its start level', () => {
    const names = (f: 'vtd-ss' | 'arm-lpae-s1', _ias: number, n: number) => Array.from({ length: n }, (_, d) => archLevel(f, n, d).name);
    expect(names('vtd-ss', 48, 4)).toEqual(['L4 PML4E', 'L3 PDPE', 'L2 PDE', 'L1 PTE']);
    expect(names('vtd-ss', 57, 5)).toEqual(['L5 PML5E', 'L4 PML4E', 'L3 PDPE', 'L2 PDE', 'L1 PTE']);
    expect(names('vtd-ss', 39, 3)).toEqual(['L3 PDPE', 'L2 PDE', 'L1 PTE']);
    expect(names('arm-lpae-s1', 48, 4)).toEqual(['L0', 'L1', 'L2', 'L3']);
    expect(names('arm-lpae-s1', 39, 3)).toEqual(['L1', 'L2', 'L3']);
    expect(archLevel('arm-lpae-s1', 4, 3).level).toBe(3);
    expect(archLevel('vtd-ss', 4, 3).level).toBe(1);
    expect(archLevel('riscv', 3, 0)).toEqual({ level: 2, name: 'L2' });
    expect(archLevel('amd-v1', 4, 0)).toEqual({ level: 4, name: 'L4' });
  });
});

describe('the report of the default runner', () => {
  it('BUS_ADDR with an IOMMU: the report says why the NIC got an IOVA; walks use VT-d level names', async () => {
    const r = await createDefaultRunner().run(parseScenario(SWITCH_IOMMU, 's.yaml'));
    expect(r.exitCode).toBe(0);
    const [nic0, nic1] = [r.acts[0]!.steps[3]!, r.acts[0]!.steps[4]!];
    expect(nic0.log).toContain('mlx5_0 (odp): map type BUS_ADDR');
    const why = nic0.log.find((l) => l.startsWith('gaudi0 -> nic0 is BUS_ADDR, yet nic0 got IOVAs'));
    expect(why).toMatch(/dma_map_resource\(\) \(HL-11\), which under an IOMMU returns an IOVA in nic0's domain/);
    // THRU_HOST_BRIDGE gets IOVAs as it should: nothing to explain.
    expect(nic1.log.some((l) => l.includes('yet'))).toBe(false);
    const walk = nic0.sections.find((s) => s.title.startsWith('nic0 IOMMU mapping of'))!;
    expect(walk.lines.slice(1, 4).map((l) => l.slice(0, 8).trimEnd())).toEqual(['L4 PML4E', 'L3 PDPE', 'L2 PDE']);
    const levels = (walk.data as { levels: { depth: number; level: number; name: string }[] }).levels;
    expect(levels.map((l) => [l.depth, l.level, l.name])).toEqual([[0, 4, 'L4 PML4E'], [1, 3, 'L3 PDPE'], [2, 2, 'L2 PDE']]);
  });

  it('ARM SMMUv3 walks count their levels up from 0', async () => {
    const text = SWITCH_IOMMU.replace('family: vtd', 'family: smmuv3');
    const r = await createDefaultRunner().run(parseScenario(text, 'arm.yaml'));
    expect(r.exitCode).toBe(0);
    const walk = r.acts[0]!.steps[4]!.sections.find((s) => s.title.startsWith('nic1 IOMMU mapping of'))!;
    expect(walk.lines[0]).toMatch(/\(arm-lpae-s1, ias 48\)$/);
    const levels = (walk.data as { levels: { level: number; name: string }[] }).levels;
    expect(levels.map((l) => l.name)).toEqual(['L0', 'L1', 'L2']);
    expect(walk.lines.slice(1, 4).map((l) => l.split(' ')[0])).toEqual(['L0', 'L1', 'L2']);
  });

  it('the seed story: each topology printed once, steps numbered without notes', async () => {
    const r = await createDefaultRunner().run(parseScenario(SEED_SCENARIO, 'seed.yaml'));
    expect(r.exitCode).toBe(0);
    expect(r.topologies.map((t) => t.source)).toEqual(['builtin:seed', 'builtin:seed-vfio']);
    expect(r.acts.map((a) => a.topology)).toEqual([0, 0, 0, 0, 0, 1]);
    const text = renderText(r);
    expect(text.match(/^P2P map type and distance:$/gm)).toHaveLength(2);
    expect(text.match(/^topology builtin:seed:$/gm)).toHaveLength(1);
    expect(text.match(/^topology builtin:seed-vfio:$/gm)).toHaveLength(1);
    // The vfio topology comes right before the act that first uses it.
    expect(text.indexOf('topology builtin:seed-vfio:')).toBeGreaterThan(text.indexOf('=== act 5/6'));
    expect(text.indexOf('topology builtin:seed-vfio:')).toBeLessThan(text.indexOf('=== act 6/6'));
    for (const a of r.acts) {
      const nums = a.steps.filter((s) => s.op !== 'note').map((s) => s.number);
      expect(nums).toEqual(nums.map((_, i) => i + 1));
      expect(a.steps.filter((s) => s.op === 'note').every((s) => s.number === null)).toBe(true);
    }
    const notes = r.acts.flatMap((a) => a.steps).filter((s) => s.op === 'note').length;
    expect(notes).toBeGreaterThan(0);
    expect(r.totals.steps).toBe(r.acts.flatMap((a) => a.steps).length - notes);
    const json = JSON.parse(renderJson(r));
    expect(json.topologies.map((t: { source: string; data: { p2p: unknown[] } }) => [t.source, t.data.p2p.length])).toEqual([['builtin:seed', 25], ['builtin:seed-vfio', 36]]);
    expect(JSON.stringify(json.topologies)).not.toContain('+-');
  });

  it('the trace: IOTLB counters over time, IOMMU map, unmap and invalidation events', async () => {
    const runner = createDefaultRunner();
    const r = await runner.run(parseScenario(SEED_SCENARIO, 'seed.yaml'), { acts: [1] });
    expect(r.acts.map((a) => a.index)).toEqual([1]);
    const evs = runner.trace.toJSON().traceEvents.filter((e) => e.pid === 2);
    const tid = (name: string) => evs.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.args['name'] === name)!.tid;
    const counters = evs.filter((e) => e.ph === 'C' && e.name === 'iotlb dmar0');
    // A zero sample at the act's start, then one whenever a transfer moved the counters (act 2's
    // RDMA WRITE is one vectored transfer through the IOMMU); cumulative, so never decreasing.
    expect(counters.length).toBeGreaterThanOrEqual(2);
    const misses = counters.map((e) => e.args['misses'] as number);
    expect(misses[0]).toBe(0);
    expect(misses.every((m, i) => i === 0 || m >= misses[i - 1]!)).toBe(true);
    expect(misses.at(-1)).toBeGreaterThan(0);
    expect(typeof counters.at(-1)!.args['hits']).toBe('number');
    const map = evs.find((e) => e.name === 'iommu map')!;
    expect(map).toMatchObject({ ph: 'i', cat: 'iommu', tid: tid('nic1'), args: { unit: 'dmar0', devices: ['nic1'], bytes: 2 << 20, mapped: 2 << 20 } });
    const unmap = evs.find((e) => e.name === 'iommu unmap')!;
    expect(unmap).toMatchObject({ tid: tid('nic1'), args: { bytes: 2 << 20, mapped: 0 } });
    expect(unmap.ts).toBeGreaterThan(map.ts);
    const inval = evs.filter((e) => e.name === 'iotlb invalidation');
    expect(inval.length).toBeGreaterThan(0);
    expect(inval[0]).toMatchObject({ cat: 'iommu', tid: tid('dmar0'), args: { unit: 'dmar0', invalidations: 1 } });
    expect((inval[0]!.args['entries'] as number)).toBeGreaterThan(0);
  });
});

describe('a topology in the report', () => {
  it('has its data (made when first read) as topo --json gives it, in source, data, text order', async () => {
    const r = await createDefaultRunner().run(parseScenario(SWITCH_IOMMU, 'switch-iommu.yaml'));
    const t = r.topologies[0]!;
    expect(Object.keys(t)).toEqual(['source', 'data', 'text']);
    const topo = parseTopology(SEED_TOPOLOGY);
    const want = topologyToJson(topo, new P2pdma(topo));
    expect(t.data).toEqual(want);
    expect(t.data).toBe(t.data); // made once
    expect(JSON.parse(renderJson(r)).topologies[0]).toEqual({ source: 'builtin:seed', data: JSON.parse(JSON.stringify(want)) });
    expect({ ...t }.data).toEqual(want);
  });
});
