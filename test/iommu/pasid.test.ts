/**
 * PASID / SubstreamID (issue 16): per-(device, PASID) domains (VT-d scalable-mode PASID table,
 * SMMUv3 CD table, AMD GCR3, RISC-V PDT), the IOTLB tagged by PASID and invalidated by it, DMA
 * with a PASID, and the kernel's errnos for attach / replace / detach.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type IommuFamily, type PgtableFormat } from '../../src/index.js';
import { makeSim, pattern, RAM_BASE } from '../helpers/sim.js';
import { expectErrno, RID } from '../core/helpers/setup.js';

const K4 = 0x1000n;
// Data pages far above the frames page tables take from the start of RAM.
const DATA = RAM_BASE + 0x1000_0000n;
const FAMILIES: [IommuFamily, PgtableFormat, number][] = [
  ['vtd', 'vtd-ss', 0x59], ['smmuv3', 'arm-lpae-s1', 0x0a], ['amd-vi', 'x86-64', 0x2], ['riscv', 'riscv', 266],
];

async function pasidRig(family: IommuFamily, format: PgtableFormat) {
  const sim = await makeSim();
  const unit = sim.iommu.createUnit({ family, scalableMode: family === 'vtd' });
  const ias = format === 'riscv' ? 39 : 48;
  const mk = () => unit.createDomain({ type: 'paging', format, ias });
  const ridDom = mk();
  const a = mk();
  const b = mk();
  sim.iommu.attach(RID, ridDom);
  sim.iommu.enablePasid(RID, { bits: family === 'amd-vi' ? 16 : 20 });
  return { sim, unit, ridDom, a, b, mk };
}

describe('PASID isolation', () => {
  it.each(FAMILIES)('%s: two PASIDs and the RID on one device see different memory', async (family, format, noPasidCode) => {
    const { sim, unit, ridDom, a, b } = await pasidRig(family, format);
    const iova = 0x40_0000n;
    ridDom.map(iova, DATA, K4, Prot.RW);
    a.map(iova, DATA + K4, K4, Prot.RW);
    b.map(iova, DATA + 2n * K4, K4, Prot.READ);
    sim.iommu.attachPasid(RID, 1, a);
    sim.iommu.attachPasid(RID, 0x777, b);
    expect(sim.iommu.pasidDomain(RID, 1)).toBe(a);
    expect(sim.iommu.translate(RID, iova + 5n, 'read')).toMatchObject({ ok: true, pa: DATA + 5n });
    expect(sim.iommu.translate(RID, iova + 5n, 'read', { pasid: 1 })).toMatchObject({ ok: true, pa: DATA + K4 + 5n });
    expect(sim.iommu.translate(RID, iova + 5n, 'read', { pasid: 0x777 })).toMatchObject({ ok: true, pa: DATA + 2n * K4 + 5n });
    // b is read-only for PASID 0x777; the same IOVA is writable through PASID 1.
    expect(sim.iommu.translate(RID, iova, 'write', { pasid: 0x777 })).toMatchObject({ ok: false, reason: 'permission' });
    const f = unit.faults();
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ rid: RID, pasid: 0x777, domain: b.id, reason: 'permission' });
    // Hits are counted per PASID-tagged entry: translating again hits.
    const before = unit.stats().pasidHits;
    sim.iommu.translate(RID, iova + 8n, 'read', { pasid: 1 });
    expect(unit.stats().pasidHits).toBe(before + 1n);
    // An unbound PASID faults as no-pasid with the family's code, with the PASID in the record.
    expect(sim.iommu.translate(RID, iova, 'read', { pasid: 5 })).toMatchObject({ ok: false, code: 'ENODEV', reason: 'no-pasid', familyCode: noPasidCode });
    expect(unit.faults()).toMatchObject([{ rid: RID, pasid: 5, reason: 'no-pasid', domain: -1 }]);
    // DMA with a PASID reaches the PASID's memory, byte for byte.
    const data = pattern(4096, 3);
    sim.iommu.setDmaPasid(RID, 1);
    expect(sim.dma.write({ rid: RID, addr: iova }, data)).toMatchObject({ ok: true });
    expect(sim.memory.read(DATA + K4, 4096)).toEqual(data);
    expect(sim.memory.read(DATA, 16)).toEqual(new Uint8Array(16));
    sim.iommu.setDmaPasid(RID, null);
    expect(sim.dma.read({ rid: RID, addr: iova }, 16).data).toEqual(new Uint8Array(16));
  });

  it('translateBatch with a PASID, and page-by-page DMA over several pages', async () => {
    const { sim, a } = await pasidRig('smmuv3', 'arm-lpae-s1');
    a.map(0x10_0000n, DATA + 0x10_0000n, 4n * K4, Prot.RW);
    sim.iommu.attachPasid(RID, 9, a);
    const r = sim.iommu.translateBatch(RID, new BigUint64Array([0x10_0000n, 0x10_3fffn, 0x10_4000n]), 'read', { pasid: 9 });
    expect([...r.out]).toEqual([DATA + 0x10_0000n, DATA + 0x10_3fffn, 0n]);
    expect(r.faults).toBe(1);
    const noPasid = sim.iommu.translateBatch(RID, new BigUint64Array([0x10_0000n]), 'read');
    expect(noPasid.faults).toBe(1);
    sim.iommu.setDmaPasid(RID, 9);
    const data = pattern(3 * 4096 + 100, 7);
    expect(sim.dma.write({ rid: RID, addr: 0x10_0010n }, data)).toMatchObject({ ok: true });
    expect(sim.memory.read(DATA + 0x10_0010n, data.length)).toEqual(data);
  });
});

describe('invalidation by PASID', () => {
  it.each(FAMILIES)('%s: invalidating one PASID leaves the other PASIDs and the RID entries', async (family, format) => {
    const { sim, unit, a } = await pasidRig(family, format);
    a.map(0x20_0000n, DATA, 4n * K4, Prot.RW);
    sim.iommu.attach(RID + 1, a); // the same domain by RID on another device
    sim.iommu.enablePasid(RID + 1, { bits: 8 });
    sim.iommu.attachPasid(RID, 1, a);
    sim.iommu.attachPasid(RID, 2, a);
    const warm = () => {
      for (const p of [1, 2]) sim.iommu.translate(RID, 0x20_0000n, 'read', { pasid: p });
      sim.iommu.translate(RID + 1, 0x20_0000n, 'read');
    };
    warm();
    expect(unit.stats().tlbValid).toBe(3);
    expect(unit.invalidatePasid(a, 1)).toBe(1);
    expect(unit.stats().tlbValid).toBe(2);
    const s0 = unit.stats();
    warm();
    const s1 = unit.stats();
    expect(s1.misses - s0.misses).toBe(1n); // only PASID 1 walked again
    expect(s1.hits - s0.hits).toBe(2n);
    // A range invalidation of PASID 2 outside its cached page drops nothing.
    unit.invalidatePasid(a, 2, 0x30_0000n, 0x30_1000n);
    expect(unit.stats().tlbValid).toBe(3);
    // Unmapping in the domain drops every tag of it (RID and both PASIDs).
    a.unmap(0x20_0000n, K4);
    expect(unit.stats().tlbValid).toBe(0);
    expect(sim.iommu.translate(RID, 0x20_0000n, 'read', { pasid: 2 })).toMatchObject({ ok: false, reason: 'translation' });
  });

  it('detach and replace flush the PASID entries; a new binding never sees an old one', async () => {
    const { sim, unit, a, b } = await pasidRig('vtd', 'vtd-ss');
    a.map(0n, DATA, K4, Prot.RW);
    b.map(0n, DATA + K4, K4, Prot.RW);
    sim.iommu.attachPasid(RID, 3, a);
    expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 3 })).toMatchObject({ pa: DATA });
    sim.iommu.replacePasid(RID, 3, b);
    expect(sim.iommu.pasidDomain(RID, 3)).toBe(b);
    expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 3 })).toMatchObject({ pa: DATA + K4 });
    sim.iommu.replacePasid(RID, 3, b); // the same domain: nothing happens
    sim.iommu.attachPasid(RID, 3, null);
    expect(sim.iommu.pasidDomain(RID, 3)).toBeNull();
    expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 3 })).toMatchObject({ ok: false, reason: 'no-pasid' });
    sim.iommu.attachPasid(RID, 4, a);
    expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 4 })).toMatchObject({ pa: DATA });
    expect(unit.stats().tlbValid).toBe(1);
  });
});

describe('bad input (kernel errnos), nothing changed', () => {
  it('attach, replace, detach and enable', async () => {
    const { sim, unit, a, b, ridDom } = await pasidRig('smmuv3', 'arm-lpae-s1');
    expectErrno(() => sim.iommu.attachPasid(RID, 0, a), 'EINVAL'); // IOMMU_NO_PASID
    expectErrno(() => sim.iommu.attachPasid(RID, 1 << 20, a), 'EINVAL');
    expectErrno(() => sim.iommu.attachPasid(RID, 1.5, a), 'EINVAL');
    expectErrno(() => sim.iommu.replacePasid(RID, 1, a), 'EINVAL'); // nothing to replace
    expectErrno(() => sim.iommu.attachPasid(RID, 1, null), 'ENOENT');
    sim.iommu.attachPasid(RID, 1, a);
    expectErrno(() => sim.iommu.attachPasid(RID, 1, b), 'EBUSY');
    expect(sim.iommu.pasidDomain(RID, 1)).toBe(a);
    const ident = unit.createDomain({ type: 'identity' });
    expectErrno(() => sim.iommu.attachPasid(RID, 2, ident), 'EOPNOTSUPP');
    const other = sim.iommu.createUnit({ family: 'smmuv3' }).createDomain({ type: 'paging', format: 'arm-lpae-s1' });
    expectErrno(() => sim.iommu.attachPasid(RID, 2, other), 'EINVAL');
    // A device with 4 bits of PASID.
    sim.iommu.attach(RID + 1, ridDom);
    expectErrno(() => sim.iommu.attachPasid(RID + 1, 1, a), 'EINVAL'); // PASID not enabled
    sim.iommu.enablePasid(RID + 1, { bits: 4 });
    expectErrno(() => sim.iommu.attachPasid(RID + 1, 16, a), 'EINVAL');
    sim.iommu.attachPasid(RID + 1, 15, a);
    expectErrno(() => sim.iommu.enablePasid(RID + 1, { bits: 3 }), 'EBUSY');
    expectErrno(() => sim.iommu.enablePasid(RID + 1, { bits: 21 }), 'EINVAL');
    expectErrno(() => sim.iommu.enablePasid(0x0900, { bits: 4 }), 'ENODEV');
    // A domain with a PASID bound cannot be destroyed.
    expectErrno(() => a.destroy(), 'EBUSY');
    sim.iommu.attachPasid(RID + 1, 15, null);
    sim.iommu.attachPasid(RID, 1, null);
    a.destroy();
    expectErrno(() => sim.iommu.attachPasid(RID, 1, a), 'ENOENT');
  });

  it('VT-d legacy mode has no PASID (EOPNOTSUPP); AMD takes 16 bits and v2 tables; SMMUv3 stage-1 tables', async () => {
    const sim = await makeSim();
    const vtd = sim.iommu.createUnit({ family: 'vtd' });
    sim.iommu.attach(RID, vtd.createDomain({ type: 'paging', format: 'vtd-ss' }));
    expectErrno(() => sim.iommu.enablePasid(RID, { bits: 8 }), 'EOPNOTSUPP');
    const amd = sim.iommu.createUnit({ family: 'amd-vi' });
    sim.iommu.attach(RID + 1, amd.createDomain({ type: 'paging', format: 'amd-v1' }));
    expectErrno(() => sim.iommu.enablePasid(RID + 1, { bits: 17 }), 'EINVAL');
    sim.iommu.enablePasid(RID + 1, { bits: 16 });
    expectErrno(() => sim.iommu.setDmaPasid(RID + 1, 1 << 16), 'EINVAL');
    // A GCR3 entry points at a v2 (x86-64) table; the AMD driver refuses a replace.
    const v1 = amd.createDomain({ type: 'paging', format: 'amd-v1' });
    const v2 = amd.createDomain({ type: 'paging', format: 'x86-64' });
    const v2b = amd.createDomain({ type: 'paging', format: 'x86-64' });
    expectErrno(() => sim.iommu.attachPasid(RID + 1, 1, v1), 'EOPNOTSUPP');
    sim.iommu.attachPasid(RID + 1, 1, v2);
    expectErrno(() => sim.iommu.replacePasid(RID + 1, 1, v2b), 'EOPNOTSUPP');
    expect(sim.iommu.pasidDomain(RID + 1, 1)).toBe(v2);
    // A CD holds a stage-1 table only.
    const smmu = sim.iommu.createUnit({ family: 'smmuv3' });
    sim.iommu.attach(RID + 2, smmu.createDomain({ type: 'paging', format: 'arm-lpae-s1' }));
    sim.iommu.enablePasid(RID + 2, { bits: 8 });
    expectErrno(() => sim.iommu.attachPasid(RID + 2, 1, smmu.createDomain({ type: 'paging', format: 'arm-lpae-s2' })), 'EINVAL');
    sim.iommu.attachPasid(RID + 2, 1, smmu.createDomain({ type: 'blocked' }));
  });

  it('SMMUv3: a PASID beyond the device width is C_BAD_SUBSTREAMID, an unbound one C_BAD_CD', async () => {
    const { sim } = await pasidRig('smmuv3', 'arm-lpae-s1');
    sim.iommu.enablePasid(RID, { bits: 4 });
    expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 3 })).toMatchObject({ familyCode: 0x0a });
    expect(sim.iommu.translate(RID, 0n, 'read', { pasid: 16 })).toMatchObject({ familyCode: 0x08 });
  });
});
