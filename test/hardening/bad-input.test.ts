/** Bad input as a class (issue 12): a SimError naming the field, nothing changed, the instance usable. */
import { describe, expect, it } from 'vitest';
import { createCore, ABI } from '../../src/core-entry.js';
import { createSimulator, SimError, Prot } from '../../src/index.js';
import { makeSim, RAM_BASE, HBM_BASE, pattern } from '../helpers/sim.js';
import { ridArg, show } from '../../src/util/args.js';

function simError(f: () => unknown, code = 'EINVAL', field?: string): SimError {
  let err: unknown;
  try { f(); } catch (e) { err = e; }
  expect(err, 'expected a SimError').toBeInstanceOf(SimError);
  const e = err as SimError;
  expect(e.code).toBe(code);
  if (field) expect(e.message).toContain(field);
  expect(e.message.length).toBeLessThan(300);
  return e;
}

describe('raw core boundary (dmabuf-sim/core)', () => {
  it('a Number for a BigInt parameter, a BigInt for an i32, missing or extra arguments: SimError, instance usable', async () => {
    const core = await createCore({ arenaBytes: 4 << 20 });
    const e = core.exports;
    const raw = e as unknown as Record<string, (...a: unknown[]) => unknown>;
    simError(() => raw.addRegion!(0, 1n << 20n, ABI.REGION_KIND_RAM, 0, 0), 'EINVAL', 'addRegion');
    simError(() => raw.attachDevice!(0x100, 1n), 'EINVAL', 'argument 1');
    simError(() => raw.map!(0, 0n, 0n, 4096n), 'EINVAL', 'takes 5 arguments');
    simError(() => raw.translate!(0x100, '0x1000', 1), 'EINVAL');
    simError(() => raw.createUnit!(1, 64, 4, 64, 2 ** 40), 'EINVAL');
    simError(() => raw.unmap!(0, 1n << 70n, 4096n), 'EINVAL');
    expect(core.trapped).toBe(false);
    expect(e.addRegion(0n, 1n << 20n, ABI.REGION_KIND_RAM, ABI.REGION_CPU_ACCESSIBLE, 0)).toBe(0);
    const unit = e.createUnit(ABI.FAMILY_VTD, 64, 4, 64, 64);
    const dom = e.createDomain(unit, ABI.DOMAIN_PAGING, ABI.FMT_VTD_SS, 48, 48, 1);
    expect(e.attachDevice(0x100, dom)).toBe(0);
    expect(e.map(dom, 0x1000n, 0x2000n, 0x1000n, ABI.PROT_READ)).toBe(0);
    expect(e.translate(0x100, 0x1234n, ABI.ACCESS_READ)).toBe(0);
    expect(core.resultValue()).toBe(0x2234n);
  });
  it('createCore refuses bad options without a TypeError', async () => {
    await expect(createCore(null as never)).rejects.toBeInstanceOf(SimError);
    await expect(createCore({ arenaBytes: 1n as never })).rejects.toBeInstanceOf(SimError);
    await expect(createCore({ build: 'fast' as never })).rejects.toBeInstanceOf(SimError);
    await expect(createSimulator({ arenaBytes: '1' as never })).rejects.toBeInstanceOf(SimError);
  });
});

describe('iommu.attach takes only its own domains', () => {
  it('a look-alike {id}, an id with a bigint, a domain of another simulator: EINVAL, nothing attached, sim usable', async () => {
    const a = await makeSim(8 << 20);
    const b = await makeSim(8 << 20);
    const ua = a.iommu.createUnit({ family: 'vtd' });
    const da = ua.createDomain({ type: 'paging', format: 'vtd-ss' });
    const ub = b.iommu.createUnit({ family: 'vtd' });
    const db = ub.createDomain({ type: 'paging', format: 'vtd-ss' });
    expect(db.id).toBe(da.id);
    simError(() => a.iommu.attach(0x100, { id: da.id } as never), 'EINVAL', 'domain');
    simError(() => a.iommu.attach(0x100, { id: 1n } as never), 'EINVAL', 'domain');
    simError(() => a.iommu.attach(0x100, db), 'EINVAL', 'domain');
    simError(() => a.iommu.attach(0x100, 1 as never), 'EINVAL', 'domain');
    simError(() => a.iommu.place(0x100, { id: 0 } as never), 'EINVAL', 'unit');
    expect(a.iommu.domainOf(0x100)).toBeNull();
    a.iommu.attach(0x100, da);
    expect(a.iommu.domainOf(0x100)).toBe(da.id);
    expect(a.core.trapped).toBe(false);
  });
});

describe('DMA engine arguments', () => {
  it('onTransfer(5) is refused; later transfers still work and notify', async () => {
    const sim = await makeSim(8 << 20);
    simError(() => sim.dma.onTransfer(5 as never), 'EINVAL', 'fn');
    const seen: string[] = [];
    sim.dma.onTransfer((t) => seen.push(t.op));
    expect(sim.dma.fill({ rid: 'phys', addr: RAM_BASE }, 7, 16n).ok).toBe(true);
    expect(seen).toEqual(['fill']);
  });
  it('null or missing endpoints, a plain array for data, a number for an address: EINVAL naming the field', async () => {
    const sim = await makeSim(8 << 20);
    simError(() => sim.dma.copy(null as never, { rid: 'phys', addr: 0n }, 1n), 'EINVAL', 'src');
    simError(() => sim.dma.copy({ rid: 'phys', addr: RAM_BASE }, undefined as never, 1n), 'EINVAL', 'dst');
    simError(() => sim.dma.write({ rid: 'phys', addr: RAM_BASE }, [1, 2, 3] as never), 'EINVAL', 'data');
    simError(() => sim.dma.write(null as never, new Uint8Array(4)), 'EINVAL', 'dst');
    simError(() => sim.dma.read({ rid: 'phys', addr: Number(RAM_BASE) as never }, 4), 'EINVAL', 'src.addr');
    simError(() => sim.dma.readInto({ rid: 'phys', addr: RAM_BASE }, new Uint16Array(4) as never), 'EINVAL', 'out');
    simError(() => sim.dma.fill({ rid: 5n as never, addr: RAM_BASE }, 1, 1n), 'EINVAL', 'dst.rid');
    expect(sim.dma.stats().ops).toBe(0n);
  });
});

describe('requester IDs', () => {
  it('parse the same from every form', () => {
    expect(ridArg('t', 'rid', 0x0300)).toBe(0x0300);
    expect(ridArg('t', 'rid', '03:00.0')).toBe(0x0300);
    expect(ridArg('t', 'rid', '0000:03:00.0')).toBe(0x0300);
    expect(ridArg('t', 'rid', '0001:ff:1f.7')).toBe(0x1ffff);
    for (const bad of ['03:20.0', '3:0.8', 'zz:00.0', '', -1, 1.5, 2 ** 32, 1n, null, {}, []]) {
      simError(() => ridArg('t', 'rid', bad), 'EINVAL', 'rid');
    }
  });
  it('the physical requester is refused in every form for a device, accepted in every form for a DMA endpoint', async () => {
    for (const phys of [0xffffffff, 'ffff:ff:1f.7', 'FFFF:FF:1F.7', 'phys']) {
      simError(() => ridArg('t', 'rid', phys), 'EINVAL', 'physical requester');
      expect(ridArg('t', 'rid', phys, true)).toBe(0xffffffff);
    }
    const sim = await makeSim(8 << 20);
    const u = sim.iommu.createUnit({ family: 'vtd' });
    const d = u.createDomain({ type: 'paging', format: 'vtd-ss' });
    for (const phys of [0xffffffff, 'ffff:ff:1f.7']) {
      simError(() => sim.iommu.attach(phys, d), 'EINVAL', 'physical requester');
      expect(sim.dma.fill({ rid: phys, addr: RAM_BASE }, 1, 8n).ok).toBe(true);
    }
  });
  it('messages never echo garbage in full', () => {
    const long = 'x'.repeat(10_000);
    const e = simError(() => ridArg('t', 'rid', long), 'EINVAL', 'rid');
    expect(e.message.length).toBeLessThan(200);
    expect(show(1n << 4000n).length).toBeLessThan(60);
    const cyclic: Record<string, unknown> = {}; cyclic.self = cyclic;
    expect(show(cyclic)).toBe('an object');
    expect(show(Symbol('s'))).toBe('a symbol');
  });
});

describe('memory', () => {
  it('addRegion with a missing or wrong options object, bad flags or name: EINVAL, no region added', async () => {
    const sim = await createSimulator({ arenaBytes: 4 << 20 });
    simError(() => sim.memory.addRegion(undefined as never), 'EINVAL', 'options');
    simError(() => sim.memory.addRegion({ base: 0n, size: 4096n, kind: 'ram', cpuAccessible: 'yes' as never }), 'EINVAL', 'cpuAccessible');
    simError(() => sim.memory.addRegion({ base: 0n, size: 4096n, kind: 'ram', name: {} as never }), 'EINVAL', 'name');
    simError(() => sim.memory.addRegion({ base: 0, size: 4096n, kind: 'ram' } as never), 'EINVAL', 'base');
    expect(sim.memory.regions()).toHaveLength(0);
    simError(() => sim.memory.regionOf(4096 as never), 'EINVAL', 'pa');
  });
  it('MEM-ATOMIC: a write the arena cannot back writes nothing (backing reserved first)', async () => {
    const sim = await createSimulator({ arenaBytes: 1 << 20 });
    sim.memory.addRegion({ base: RAM_BASE, size: 64n << 20n, kind: 'device' });
    const free = sim.core.exports.chunksFree();
    const before = sim.memory.arena().chunksUsed;
    // One page already backed, then more pages than the arena has.
    sim.memory.write(RAM_BASE, pattern(4096, 3));
    const big = pattern((free + 8) * 4096, 5);
    simError(() => sim.memory.write(RAM_BASE, big), 'ENOMEM', 'nothing written');
    expect(sim.memory.read(RAM_BASE, 4096)).toEqual(pattern(4096, 3));
    expect(sim.memory.arena().chunksUsed).toBe(before + 3); // mid, leaf, page of the first write
    // The same range within what is free goes through.
    const fits = pattern(64 * 4096, 7);
    sim.memory.write(RAM_BASE, fits);
    expect(sim.memory.read(RAM_BASE, fits.length)).toEqual(fits);
  });
  it('backingNeeded counts pages not yet backed and the radix nodes they need', async () => {
    const sim = await createSimulator({ arenaBytes: 4 << 20 });
    sim.memory.addRegion({ base: HBM_BASE, size: 1n << 32n, kind: 'device' });
    const e = sim.core.exports;
    expect(e.backingNeeded(HBM_BASE, 1n)).toBe(3n);           // mid, leaf, page
    expect(e.backingNeeded(HBM_BASE, 4n << 20n)).toBe(2n + 1024n);
    expect(e.backingNeeded(HBM_BASE + (4n << 20n) - 1n, 2n)).toBe(1n + 2n + 2n);
    expect(e.backingNeeded(0n, 1n)).toBe(BigInt(ABI.EIO));
    sim.memory.write(HBM_BASE + 4096n, new Uint8Array(10));
    const used = BigInt(sim.memory.arena().chunksUsed);
    expect(e.backingNeeded(HBM_BASE, 3n * 4096n)).toBe(2n);
    sim.memory.write(HBM_BASE, new Uint8Array(3 * 4096));
    expect(BigInt(sim.memory.arena().chunksUsed) - used).toBe(2n);
    void Prot;
  });
});

describe('machine and DMA API arguments', () => {
  it('a look-alike or another machine\'s PCI function is refused; max segment size is any unsigned int', async () => {
    const { Machine } = await import('../../src/machine/machine.js');
    const { SEED_TOPOLOGY } = await import('../../src/scenario/builtin/seed-topology.js');
    await expect(Machine.create(null as never)).rejects.toBeInstanceOf(SimError);
    const a = await Machine.create({ topology: SEED_TOPOLOGY, arenaBytes: 16 << 20, ramBytes: 1n << 30n });
    const b = await Machine.create({ topology: SEED_TOPOLOGY, arenaBytes: 16 << 20, ramBytes: 1n << 30n });
    simError(() => a.dmaDevice(b.pci('nic0')), 'EINVAL', 'fn');
    simError(() => a.dmaDevice({ name: 'nic0' } as never), 'EINVAL', 'fn');
    simError(() => a.rid(null as never), 'EINVAL', 'fn');
    simError(() => a.unitOf('nic0' as never), 'EINVAL', 'fn');
    simError(() => a.barRegion({} as never), 'EINVAL', 'bar');
    const dma = a.dmaDevice(a.pci('nic0'));
    for (const ok of [0, 1, 512, 4095, 2 ** 32 - 1]) {
      dma.setMaxSegSize(ok);
      expect(dma.maxSegmentSize).toBe(ok);
    }
    for (const bad of [-1, 2 ** 32, 1.5, '4096', 4096n]) simError(() => dma.setMaxSegSize(bad as never), 'EINVAL', 'size');
    expect(dma.maxSegmentSize).toBe(2 ** 32 - 1);
  });
  it('iommu createUnit/createDomain without options, translateBatch with a plain array: EINVAL', async () => {
    const sim = await makeSim(8 << 20);
    simError(() => sim.iommu.createUnit(undefined as never), 'EINVAL', 'options');
    const u = sim.iommu.createUnit({ family: 'vtd' });
    simError(() => u.createDomain(null as never), 'EINVAL', 'options');
    simError(() => sim.iommu.translateBatch(0x100, [0n, 4096n] as never), 'EINVAL', 'iovas');
    expect(sim.iommu.units()).toHaveLength(1);
    expect(u.domains()).toHaveLength(0);
  });
});
