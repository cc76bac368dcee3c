/**
 * ATS and PRI (issue 16): a device's ATC answers its translated requests without the IOMMU, a
 * miss is a translation request that fills it, IOTLB invalidations reach the ATCs of the devices
 * using the domain (counted), and a PRI device's failed translation is a page request on the
 * unit's queue (no fault record) which the device retries after the page is mapped.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type IommuFamily, type PgtableFormat } from '../../src/index.js';
import { makeSim, pattern, RAM_BASE } from '../helpers/sim.js';
import { expectErrno, RID } from '../core/helpers/setup.js';

const K4 = 0x1000n;
const DATA = RAM_BASE + 0x1000_1000n;
const FAMILIES: [IommuFamily, PgtableFormat][] = [['vtd', 'vtd-ss'], ['smmuv3', 'arm-lpae-s1'], ['amd-vi', 'x86-64'], ['riscv', 'riscv']];

async function atsRig(family: IommuFamily, format: PgtableFormat) {
  const sim = await makeSim();
  const unit = sim.iommu.createUnit({ family, scalableMode: family === 'vtd' });
  const dom = unit.createDomain({ type: 'paging', format, ias: format === 'riscv' ? 39 : 48 });
  sim.iommu.attach(RID, dom);
  sim.iommu.attach(RID + 1, dom); // the same domain, no ATS
  return { sim, unit, dom };
}

describe('ATS: the device ATC', () => {
  it.each(FAMILIES)('%s: translated requests bypass the IOMMU; invalidations reach the ATC', async (family, format) => {
    const { sim, unit, dom } = await atsRig(family, format);
    sim.iommu.enableAts(RID, { atcEntries: 16 });
    dom.map(0x10_0000n, DATA, 4n * K4, Prot.RW);
    expect(sim.iommu.translate(RID, 0x10_0008n, 'read')).toMatchObject({ ok: true, pa: DATA + 8n });
    let s = unit.stats();
    expect([s.atsRequests, s.atcHits, s.walks, s.translations]).toEqual([1n, 0n, 1n, 1n]);
    // The ATC answers: the IOMMU sees nothing.
    expect(sim.iommu.translate(RID, 0x10_0010n, 'rw')).toMatchObject({ ok: true, pa: DATA + 0x10n });
    s = unit.stats();
    expect([s.atsRequests, s.atcHits, s.hits, s.translations]).toEqual([1n, 1n, 0n, 1n]);
    // A device without ATS goes through the IOTLB.
    expect(sim.iommu.translate(RID + 1, 0x10_0010n, 'read')).toMatchObject({ ok: true });
    expect(unit.stats().hits).toBe(1n);
    // Unmapping invalidates the IOTLB and then the ATC of the ATS device (not of the other one).
    expect(dom.unmap(0x10_0000n, K4)).toBe(K4);
    expect(unit.stats().atcInvalidations).toBe(1n);
    const r = sim.iommu.translate(RID, 0x10_0010n, 'read');
    expect(r).toMatchObject({ ok: false, reason: 'translation' });
    expect(unit.stats().atsRequests).toBe(2n);
    expect(unit.faults()).toHaveLength(1);
    // An explicit invalidation of a range with nothing cached still asks the device.
    dom.invalidate(0x20_0000n, 0x20_1000n);
    expect(unit.stats().atcInvalidations).toBe(2n);
    // DMA through the ATC moves the bytes.
    const data = pattern(2 * 4096, 9);
    expect(sim.dma.write({ rid: RID, addr: 0x10_1000n }, data)).toMatchObject({ ok: true });
    expect(sim.dma.read({ rid: RID, addr: 0x10_1000n }, data.length).data).toEqual(data);
    expect(unit.stats().atcHits).toBeGreaterThanOrEqual(3n);
  });

  it('the ATC is tagged by PASID: invalidating one PASID leaves the other', async () => {
    const { sim, unit, dom } = await atsRig('smmuv3', 'arm-lpae-s1');
    const b = unit.createDomain({ type: 'paging', format: 'arm-lpae-s1' });
    dom.map(0n, DATA, K4, Prot.RW);
    b.map(0n, DATA + K4, K4, Prot.RW);
    sim.iommu.enablePasid(RID, { bits: 8 });
    sim.iommu.enableAts(RID);
    sim.iommu.attachPasid(RID, 1, b);
    sim.iommu.attachPasid(RID, 2, dom);
    for (let i = 0; i < 2; i++) {
      expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 1 })).toMatchObject({ pa: DATA + K4 });
      expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 2 })).toMatchObject({ pa: DATA });
      expect(sim.iommu.translate(RID, 0n, 'read')).toMatchObject({ pa: DATA });
    }
    expect(unit.stats()).toMatchObject({ atsRequests: 3n, atcHits: 3n });
    unit.invalidatePasid(dom, 2);
    sim.iommu.translate(RID, 0n, 'read', { pasid: 1 });
    sim.iommu.translate(RID, 0n, 'read');
    expect(unit.stats()).toMatchObject({ atsRequests: 3n, atcHits: 5n });
    sim.iommu.translate(RID, 0n, 'read', { pasid: 2 });
    expect(unit.stats().atsRequests).toBe(4n);
  });
});

describe('PRI: page requests', () => {
  it.each(FAMILIES)('%s: a miss raises a page request instead of a fault; the device retries', async (family, format) => {
    const { sim, unit, dom } = await atsRig(family, format);
    sim.iommu.enablePasid(RID, { bits: 8 });
    sim.iommu.enableAts(RID, { pri: true });
    sim.iommu.attachPasid(RID, 7, dom);
    const r = sim.iommu.translate(RID, 0x40_0123n, 'write', { pasid: 7 });
    expect(r).toEqual({ ok: false, code: 'page-request', reason: 'translation', familyCode: 0, pageRequest: { rid: RID, pasid: 7, iova: 0x40_0000n, access: 'write' } });
    expect(unit.faults()).toEqual([]);
    expect(unit.stats()).toMatchObject({ pageRequests: 1n, pageRequestsQueued: 1 });
    // DMA of the device waits too (EAGAIN), and queues its own request.
    sim.iommu.setDmaPasid(RID, 7);
    const data = pattern(64, 2);
    expect(sim.dma.write({ rid: RID, addr: 0x40_0100n }, data)).toMatchObject({ ok: false, code: 'EAGAIN' });
    const reqs = unit.pageRequests();
    expect(reqs).toEqual([
      { rid: RID, pasid: 7, iova: 0x40_0000n, access: 'write' },
      { rid: RID, pasid: 7, iova: 0x40_0000n, access: 'write' },
    ]);
    expect(unit.stats().pageRequestsQueued).toBe(0);
    // The handler maps the page and responds; the retry succeeds.
    dom.map(0x40_0000n, DATA, K4, Prot.RW);
    expect(sim.dma.write({ rid: RID, addr: 0x40_0100n }, data)).toMatchObject({ ok: true });
    expect(sim.memory.read(DATA + 0x100n, 64)).toEqual(data);
    // A fault that no page request can resolve is still a fault: an unbound PASID.
    expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 9 })).toMatchObject({ ok: false, reason: 'no-pasid' });
    expect(unit.faults()).toHaveLength(1);
    // Without PRI, the same miss is a fault record.
    sim.iommu.enableAts(RID, { pri: false });
    expect(sim.iommu.translate(RID, 0x50_0000n, 'read', { pasid: 7 })).toMatchObject({ ok: false, code: 'EFAULT' });
    expect(unit.faults()).toHaveLength(1);
  });

  it('a full page-request queue drops requests (counted)', async () => {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family: 'smmuv3', faultQueue: 2 });
    sim.iommu.attach(RID, unit.createDomain({ type: 'paging', format: 'arm-lpae-s1' }));
    sim.iommu.enableAts(RID, { pri: true });
    for (let i = 0n; i < 3n; i++) sim.iommu.translate(RID, i * K4, 'read');
    expect(unit.stats()).toMatchObject({ pageRequests: 3n, pageRequestsQueued: 2 });
    expect(unit.pageRequests().map((p) => p.iova)).toEqual([0n, K4]);
  });
});

describe('bad input', () => {
  it('enableAts', async () => {
    const { sim } = await atsRig('vtd', 'vtd-ss');
    expectErrno(() => sim.iommu.enableAts(0x0900), 'ENODEV');
    expectErrno(() => sim.iommu.enableAts(RID, { atcEntries: 48 }), 'EINVAL');
    expectErrno(() => sim.iommu.enableAts(RID, { atcEntries: 2 }), 'EINVAL');
    expectErrno(() => sim.iommu.enableAts(RID, { pri: 'yes' as unknown as boolean }), 'EINVAL');
    sim.iommu.enableAts(RID, { atcEntries: 32 });
    expectErrno(() => sim.iommu.enableAts(RID, { atcEntries: 64 }), 'EBUSY');
    sim.iommu.enableAts(RID, { atcEntries: 32, pri: true });
  });
});

describe('virtual time', () => {
  it('PERF: each ATC invalidation an unmap sends to an ATS device costs atcInvalidationNs', async () => {
    const { Machine } = await import('../../src/machine/machine.js');
    const { SEED_TOPOLOGY } = await import('../../src/scenario/builtin/index.js');
    const cost = async (ats: boolean): Promise<number> => {
      const m = await Machine.create({ topology: structuredClone(SEED_TOPOLOGY), iommu: { family: 'vtd', strict: true }, time: { atcInvalidationNs: 5000 } });
      const nic = m.pci('nic1');
      m.dmaDevice(nic);
      const rid = m.rid(nic);
      if (ats) m.sim.iommu.enableAts(rid);
      const dom = m.unitOf(nic)!.domains().find((d) => d.id === m.sim.iommu.domainOf(rid))!;
      const pa = m.sim.memory.allocFrames(4);
      for (let i = 0n; i < 4n; i++) dom.map(0x1000_0000n + i * K4, pa + i * K4, K4, Prot.RW);
      m.time.sync();
      const t0 = m.clock.now;
      for (let i = 0n; i < 4n; i++) dom.unmap(0x1000_0000n + i * K4, K4);
      m.time.sync();
      return m.clock.now - t0;
    };
    expect(await cost(true) - await cost(false)).toBe(4 * 5000);
  });
});
