import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Machine } from '../../src/machine/machine.js';

const fixture = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');

describe('Machine', () => {
  it('makes a device region per memory BAR and routes BUS_ADDR peers around the IOMMU', async () => {
    const m = await Machine.create({ topology: fixture, iommu: { family: 'vtd' } });
    const gaudi = m.pci('gaudi0');
    const nic = m.pci('nic0');
    const gpu = m.pci('gpu0');
    const bar0 = gaudi.bar(0)!;
    expect(m.barRegion(bar0)).toMatchObject({ base: bar0.cpuAddress, size: 32n << 30n, kind: 'device' });
    expect(m.decide(gaudi, nic).mapType).toBe('BUS_ADDR');
    m.dmaDevice(nic); // attaches nic0 to its default paging domain
    // nic0 writes to gaudi0's BAR by bus address: the switch routes it, the IOMMU never sees it.
    const data = new Uint8Array([1, 2, 3, 4, 5]);
    const w = m.sim.dma.write({ rid: m.rid(nic), addr: bar0.busAddress + 0x1000n }, data);
    expect(w).toEqual({ ok: true, code: 'OK', bytesDone: 5n });
    expect(m.sim.memory.read(bar0.cpuAddress + 0x1000n, 5)).toEqual(data);
    // gpu0 is behind another root port: THRU_HOST_BRIDGE, so the same kind of write goes to the
    // IOMMU, where nothing maps it.
    expect(m.decide(gpu, nic).mapType).toBe('THRU_HOST_BRIDGE');
    const gbar = gpu.bar(0)!;
    const f = m.sim.dma.write({ rid: m.rid(nic), addr: gbar.busAddress }, data);
    expect(f).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 0n, fault: { reason: 'translation', familyCode: 5 } });
    expect(m.unitOf(nic)!.faults()).toHaveLength(1);
  });

  it('busAddrBars: per client, the memory BARs of every provider the kernel maps BUS_ADDR, in endpoint order', async () => {
    const m = await Machine.create({ topology: fixture, iommu: { family: 'vtd' } });
    const eps = m.topology.endpoints();
    for (const client of eps) {
      const want = eps.filter((p) => p !== client && m.decide(p, client).mapType === 'BUS_ADDR').flatMap((p) => p.bars.filter((b) => b.type === 'mem'));
      expect(m.busAddrBars(client), client.name).toEqual(want);
    }
    expect(m.busAddrBars(m.pci('nic0'))).toContain(m.pci('gaudi0').bar(0));
    expect(m.busAddrBars(m.pci('nic0'))).not.toContain(m.pci('gpu0').bar(0));
    const other = await Machine.create({ topology: fixture });
    expect(m.busAddrBars(other.pci('nic0'))).toEqual([]);
  });

  it('without an IOMMU, devices DMA directly', async () => {
    const m = await Machine.create({ topology: fixture });
    const nic = m.pci('nic0');
    const d = m.dmaDevice(nic);
    expect(d.mode).toBe('direct');
    expect(m.units()).toEqual([]);
    const w = m.sim.dma.write({ rid: m.rid(nic), addr: m.ram.base }, new Uint8Array([9]));
    expect(w.ok).toBe(true);
    expect(m.sim.memory.read(m.ram.base, 1)[0]).toBe(9);
  });
});
