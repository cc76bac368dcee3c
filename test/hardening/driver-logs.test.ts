// Issue 12, bounded memory: every reference driver's event log is a Ring capped by
// MachineOptions.history.driverEvents; what a driver looks up from its history (amdgpu's last
// move fence) does not depend on what the log keeps.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.js';
import { SimProcess } from '../../src/dma-buf/index.js';
import { AmdgpuDevice } from '../../src/drivers/gpu/index.js';
import { VfioPciDevice } from '../../src/drivers/vfio/index.js';
import { fixture } from '../drivers/rdma/helpers/setup.js';

const MIB = 1n << 20n;

async function world(driverEvents?: number) {
  const m = await Machine.create({ topology: fixture, iommu: { family: 'vtd' }, ...(driverEvents === undefined ? {} : { history: { driverEvents } }) });
  const proc = new SimProcess(m.kernel, { name: 'app', memory: m.sim.memory });
  const gpu = AmdgpuDevice.create(m, { pci: 'gpu0', visibleVramBytes: MIB, vramBytes: 2n * MIB });
  const vfio = VfioPciDevice.create(m, 'fpga0');
  return { m, proc, gpu, vfio };
}

function churn(gpu: AmdgpuDevice, n: number) {
  const bo = gpu.createBo({ size: 4096, domain: 'VRAM' });
  for (let i = 0; i < n; i++) gpu.memoryPressure(); // evicts once; later calls find nothing
  const other = gpu.createBo({ size: 4096, domain: 'VRAM' });
  gpu.memoryPressure();
  return { bo, other };
}

describe('driver event logs', () => {
  it('keep the newest history.driverEvents entries, count the rest, and 0 turns them off', async () => {
    const big = await world();
    const small = await world(3);
    const off = await world(0);
    for (const w of [big, small, off]) {
      churn(w.gpu, 2);
      for (let i = 0; i < 5; i++) w.gpu.createBo({ size: 4096, domain: 'GTT' });
    }
    const all = big.gpu.events;
    expect(all.length).toBeGreaterThan(3);
    expect(small.gpu.events).toEqual(all.slice(-3));
    expect(small.gpu.eventsDropped).toBe(all.length - 3);
    expect(off.gpu.events).toEqual([]);
    expect(off.gpu.eventsDropped).toBe(all.length);
    expect(big.m.history.driverEvents).toBe(65536);
    expect(small.vfio.events.length).toBeLessThanOrEqual(3);
  });

  it("amdgpu's last move fence is the same whether the log keeps it or not", async () => {
    for (const cap of [undefined, 1, 0]) {
      const w = await world(cap);
      const { bo, other } = churn(w.gpu, 1);
      for (let i = 0; i < 10; i++) w.gpu.createBo({ size: 4096, domain: 'GTT' });
      const f = w.gpu.lastMoveFence(bo);
      expect(f).toBeDefined();
      expect(w.gpu.lastMoveFence(other)).toBeDefined();
      expect(w.gpu.lastMoveFence(other)).not.toBe(f);
    }
  });

  it('a bad driverEvents cap is EINVAL naming it', async () => {
    await expect(Machine.create({ topology: fixture, history: { driverEvents: -1 } })).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('history.driverEvents') });
  });
});
