import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { DEVICE_MEMORY_BASE, Machine, SimProcess } from '../../src/index.js';
import { HabanaDevice, hlIoctlMemory } from '../../src/drivers/accel/index.js';
import { AmdgpuDevice } from '../../src/drivers/gpu/index.js';

const twoSwitches = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const M = 1n << 20n;
const G = 1n << 30n;

/** A machine with an accelerator (HBM beyond its BAR) and a GPU (invisible VRAM), its device file open. */
async function build() {
  const m = await Machine.create({ topology: twoSwitches, iommu: { family: 'vtd' } });
  const hl = HabanaDevice.create(m, { pci: 'gaudi0', generation: 'gaudi2' });
  const gpu = AmdgpuDevice.create(m, { pci: 'gpu0', visibleVramBytes: 256n * M, vramBytes: 512n * M });
  const proc = new SimProcess(m.kernel, {});
  const fd = hl.open(proc);
  return { m, hl, gpu, proc, fd };
}

type Rig = Awaited<ReturnType<typeof build>>;

/** The same uAPI sequence; returns every address and name it produced. */
function run(r: Rig): unknown[] {
  const out: unknown[] = [r.hl.name, r.gpu.name, r.hl.hiddenRegion!.base, r.gpu.invisibleRegion!.base];
  const h = hlIoctlMemory(r.proc, r.fd, { op: 'ALLOC', memSize: 6n * M }).handle!;
  const va = hlIoctlMemory(r.proc, r.fd, { op: 'MAP', handle: h }).deviceVirtAddr!;
  out.push(h, va, r.hl.pack(Number(h))!.pages);
  const bo = r.gpu.createBo({ size: 1 << 20, domain: 'VRAM' });
  const inv = r.gpu.createBo({ size: 1 << 20, domain: 'VRAM', flags: 2 /* NO_CPU_ACCESS */ });
  out.push(bo.physRanges(), inv.physRanges(), r.m.kernel.clock.now);
  return out;
}

describe('two machines in one process (no module-level state)', () => {
  it('name devices, place device memory and hand out DRAM pages, device VAs and VRAM independently and alike', async () => {
    const a = await build();
    const b = await build();
    // Each machine counts and places on its own: the second is a copy of the first.
    expect([a.hl.name, a.gpu.name]).toEqual(['hl0', 'amdgpu0']);
    expect([b.hl.name, b.gpu.name]).toEqual(['hl0', 'amdgpu0']);
    expect(a.hl.hiddenRegion!.base).toBe(DEVICE_MEMORY_BASE);
    expect(b.hl.hiddenRegion!.base).toBe(DEVICE_MEMORY_BASE);
    const ra = run(a);
    // Work on machine a leaves b untouched: b's run gives exactly a's results.
    hlIoctlMemory(a.proc, a.fd, { op: 'ALLOC', memSize: 64n * M });
    a.gpu.createBo({ size: 4 << 20, domain: 'VRAM' });
    expect(run(b)).toEqual(ra);
    // A second accelerator on a gets the next name and the next device memory; b's next is its own.
    const a2 = HabanaDevice.create(a.m, { pci: 'nic0', dramBarIndex: 0, generation: 'gaudi2', hbmBytes: 2n * G });
    expect(a2.name).toBe('hl1');
    expect(a2.hiddenRegion!.base).toBe(a.hl.hiddenRegion!.base + 64n * G); // 96 GiB HBM - 32 GiB BAR
    expect(b.m.deviceName('hl')).toBe('hl1');
    expect(a.m.deviceName('hl')).toBe('hl2');
  });

  it('a machine made after others starts from scratch', async () => {
    const a = await build();
    run(a);
    const c = await build();
    expect(run(c)).toEqual(run(await build()));
    expect(c.hl.name).toBe('hl0');
  });

  it('device memory beyond the BARs: first fit in whole GiB from `from`; ENOMEM when used up, EINVAL for a bad size', async () => {
    const m = await Machine.create({ topology: twoSwitches, iommu: null });
    // A size the memory map refuses (not page-aligned) takes no address space.
    expect(() => m.addDeviceMemory({ size: 1n, name: 'bad' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    const r1 = m.addDeviceMemory({ size: 4096n, name: 'x' });
    const r2 = m.addDeviceMemory({ size: 3n * G + 4096n, name: 'y' });
    expect([r1.base, r2.base]).toEqual([DEVICE_MEMORY_BASE, DEVICE_MEMORY_BASE + G]);
    const r3 = m.addDeviceMemory({ size: G, name: 'z', from: DEVICE_MEMORY_BASE + 100n * G });
    expect(r3.base).toBe(DEVICE_MEMORY_BASE + 100n * G);
    expect(r3.cpuAccessible).toBe(false);
    expect(() => m.addDeviceMemory({ size: 1n << 48n, name: 'huge' })).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    expect(() => m.addDeviceMemory({ size: 0n, name: 'zero' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(m.addDeviceMemory({ size: G, name: 'w' }).base).toBe(DEVICE_MEMORY_BASE + 5n * G);
  });
});
