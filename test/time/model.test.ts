import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.js';
import { SEED_TOPOLOGY } from '../../src/scenario/builtin/index.js';
import { runSweep } from '../../src/time/sweep.js';
import { Prot } from '../../src/iommu/iommu.js';
import type { TopologyDescription } from '../../src/pci/index.js';
import type { TransferTiming } from '../../src/dma/dma-engine.js';

const seed = (extra: Partial<TopologyDescription> = {}): TopologyDescription => ({ ...structuredClone(SEED_TOPOLOGY), ...extra });

describe('fabric model', () => {
  it('PERF-10: the machine has one clock: the DMA-BUF kernel\'s, advanced by every transfer', async () => {
    const m = await Machine.create({ topology: seed() });
    expect(m.clock).toBe(m.kernel.clock);
    const nic = m.pci('nic0');
    const bar = m.pci('gaudi0').bar(0)!;
    const t0 = m.clock.now;
    const timings: TransferTiming[] = [];
    m.time.onTiming((_t, tm) => timings.push(tm));
    const r = m.sim.dma.write({ rid: m.rid(nic), addr: bar.busAddress }, new Uint8Array(65536));
    expect(r.ok).toBe(true);
    expect(timings).toHaveLength(1);
    const tm = timings[0]!;
    expect(tm.startNs).toBe(t0);
    expect(m.clock.now).toBe(t0 + tm.durationNs);
    expect(tm.durationNs).toBeGreaterThan(0);
    expect(tm.rateGBps).toBeCloseTo(65536 / tm.durationNs, 9);
    // write() reads a host buffer: RAM up through hb0, then down the switch to gaudi0.
    expect(tm.path).toBe('RAM -> hb0 -> sw0 -> nic0 -> sw0 -> gaudi0 BAR0');
    // From nic0's own memory, the bytes never reach the root complex.
    m.sim.dma.copy({ rid: 'phys', addr: nic.bar(0)!.cpuAddress }, { rid: m.rid(nic), addr: bar.busAddress }, 4096n);
    expect(timings[1]!.path).toBe('nic0 BAR0 -> nic0 -> sw0 -> gaudi0 BAR0');
    expect(timings[1]!.startNs).toBe(t0 + tm.durationNs);
  });

  it('PERF-11: a switch-routed P2P transfer is faster than the same through a root complex whose profile caps P2P', async () => {
    const m = await Machine.create({ topology: seed({ fabric: { p2p: { hb0: { bandwidthGBps: 8, latencyNs: 700 } } } }), iommu: null });
    const overSwitch = runSweep(m, { from: 'nic0', to: 'gaudi0', sizes: [16n << 20n] });
    const thruRc = runSweep(m, { from: 'nic1', to: 'gaudi0', sizes: [16n << 20n] });
    expect(overSwitch.mapType).toBe('BUS_ADDR');
    expect(thruRc.mapType).toBe('THRU_HOST_BRIDGE');
    expect(thruRc.bottleneck).toBe('root complex hb0 P2P');
    expect(thruRc.rows[0]!.rateGBps).toBeLessThanOrEqual(8);
    expect(thruRc.rows[0]!.rateGBps).toBeGreaterThan(7.5);
    expect(overSwitch.rows[0]!.rateGBps).toBeGreaterThan(2 * thruRc.rows[0]!.rateGBps);
    // NOT_SUPPORTED (hb1 is not whitelisted) is refused as drivers refuse it.
    expect(() => runSweep(m, { from: 'nic2', to: 'gaudi0', sizes: [4096n] })).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
  });

  it('PERF-12: link attributes from the topology file set the rate (a Gen3 x8 NIC is slower than Gen4 x16)', async () => {
    const fast = await Machine.create({ topology: seed() });
    const slow = await Machine.create({ topology: seed({ fabric: { links: { nic0: { gen: 3, width: 8 } } } }) });
    const a = runSweep(fast, { from: 'nic0', to: 'gaudi0', sizes: [16n << 20n] }).rows[0]!;
    const b = runSweep(slow, { from: 'nic0', to: 'gaudi0', sizes: [16n << 20n] }).rows[0]!;
    expect(b.rateGBps).toBeLessThan(a.rateGBps / 3);
    await expect(Machine.create({ topology: seed({ fabric: { links: { nope: { gen: 3 } } } }) })).rejects.toThrow(/fabric\.links\.nope/);
  });

  it('PERF-13: 4K mappings cost more than 2M mappings once the IOTLB misses', async () => {
    const run = async (page: bigint): Promise<TransferTiming> => {
      const m = await Machine.create({ topology: seed(), iommu: { family: 'vtd' } });
      const nic = m.pci('nic1');
      const dev = m.dmaDevice(nic);
      const dom = m.unitOf(nic)!.domains().find((d) => d.id === m.sim.iommu.domainOf(m.rid(nic)))!;
      const iova = 0x4000_0000n;
      // Frames of the allocator's own (the page tables live in RAM too).
      const pa = m.sim.memory.allocFrames(512, 512);
      for (let off = 0n; off < 2n << 20n; off += page) dom.map(iova + off, pa + off, page, Prot.RW);
      void dev;
      let got: TransferTiming | undefined;
      m.time.onTiming((_t, tm) => { got = tm; });
      const r = m.sim.dma.copy({ rid: 'phys', addr: m.pci('gaudi0').bar(0)!.cpuAddress }, { rid: m.rid(nic), addr: iova }, 2n << 20n);
      expect(r, JSON.stringify(r, (_k, v) => (typeof v === "bigint" ? v.toString(16) : v))).toMatchObject({ ok: true });
      return got!;
    };
    const small = await run(4096n);
    const huge = await run(2n << 20n);
    expect(small.translationNs).toBeGreaterThan(huge.translationNs);
    expect(small.durationNs).toBeGreaterThan(huge.durationNs);
  });

  it('PERF-14: concurrent transfers share the links they cross (max-min), then the clock moves to the last end', async () => {
    const m = await Machine.create({ topology: seed(), iommu: null });
    const g = m.pci('gaudi0').bar(0)!;
    const nic0 = m.pci('nic0');
    const alone = m.time.estimate({ rid: 'phys', addr: nic0.bar(0)!.cpuAddress }, { rid: m.rid(nic0), addr: g.busAddress }, 8 << 20);
    const timings: TransferTiming[] = [];
    m.time.onTiming((_t, tm) => timings.push(tm));
    const t0 = m.clock.now;
    m.time.concurrent(() => {
      m.sim.dma.copy({ rid: 'phys', addr: nic0.bar(0)!.cpuAddress }, { rid: m.rid(nic0), addr: g.busAddress }, 8n << 20n);
      m.sim.dma.copy({ rid: 'phys', addr: nic0.bar(0)!.cpuAddress + (8n << 20n) }, { rid: m.rid(nic0), addr: g.busAddress + (8n << 20n) }, 8n << 20n);
    });
    expect(timings).toHaveLength(2);
    for (const tm of timings) {
      expect(tm.startNs).toBe(t0);
      // Two flows on the same links: each at about half the rate it has alone.
      expect(tm.durationNs).toBeGreaterThan(1.8 * alone.durationNs);
      expect(tm.durationNs).toBeLessThan(2.1 * alone.durationNs);
    }
    expect(m.clock.now).toBe(t0 + Math.max(...timings.map((t) => t.durationNs)));
    expect(() => m.time.concurrent(() => m.time.concurrent(() => 0))).toThrow(expect.objectContaining({ code: 'EBUSY' }));
  });

  it('PERF-15: strict invalidation costs time at the next sync; lazy defers it to the flush', async () => {
    const cost = async (strict: boolean): Promise<number> => {
      const m = await Machine.create({ topology: seed(), iommu: { family: 'vtd', strict } });
      const nic = m.pci('nic1');
      m.dmaDevice(nic);
      const dom = m.unitOf(nic)!.domains().find((d) => d.id === m.sim.iommu.domainOf(m.rid(nic)))!;
      const pa = m.sim.memory.allocFrames(16);
      for (let i = 0n; i < 16n; i++) dom.map(0x1000_0000n + i * 4096n, pa + i * 4096n, 4096n, Prot.RW);
      m.time.sync();
      const t0 = m.clock.now;
      for (let i = 0n; i < 16n; i++) dom.unmap(0x1000_0000n + i * 4096n, 4096n);
      m.time.sync();
      return m.clock.now - t0;
    };
    const strict = await cost(true);
    const lazy = await cost(false);
    expect(strict).toBeGreaterThanOrEqual(16 * 1000);
    expect(lazy).toBeLessThan(strict);
  });

  it('PERF-16: the clock starts where options say and bad time options are EINVAL', async () => {
    const m = await Machine.create({ topology: seed(), time: { startNs: 5000, switchHopNs: 200 } });
    expect(m.clock.now).toBe(5000);
    expect(m.time.costs.switchHopNs).toBe(200);
    await expect(Machine.create({ topology: seed(), time: { linkHopNs: -1 } })).rejects.toThrow(/time\.linkHopNs/);
  });

  it('PERF-17: control-plane calls are free unless controlPlaneNs prices their event kind; machines share no cost table', async () => {
    const free = await Machine.create({ topology: seed() });
    free.kernel.warn('DB-99', 'test', 'an event');
    free.time.sync();
    expect(free.clock.now).toBe(0);
    const priced = await Machine.create({ topology: seed(), time: { controlPlaneNs: { warn: 700 } } });
    priced.kernel.warn('DB-99', 'test', 'an event');
    priced.time.sync();
    expect(priced.clock.now).toBe(700);
    expect(priced.time.totals.controlNs).toBe(700);
    priced.time.costs.controlPlaneNs['warn'] = 5;
    expect(free.time.costs.controlPlaneNs['warn']).toBeUndefined();
  });
});
