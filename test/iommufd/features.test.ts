/**
 * iommufd over the IOMMU features of issue 16 on real formats: PASID attach through
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT (iommufd_hwpt_pasid_compat), dirty tracking
 * (IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP), nested HWPTs whose stage-1 table
 * the user writes in its own memory, and IOMMU_HWPT_INVALIDATE.
 */
import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_DATA_ARM_SMMUV3, IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_SET_DIRTY_TRACKING, VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_PASID, type IommuHwInfo, type IommufdHwptNested,
} from '../../src/drivers/iommufd/index.js';
import { Prot, type PgtableFormat } from '../../src/index.js';
import { bytes, errOf, PAGE, setup } from './helpers.js';

type Rig = Awaited<ReturnType<typeof setup>>;

/** IOMMU_HWPT_ALLOC; returns the new HWPT id. */
function hwptAlloc(s: Rig, arg: Record<string, unknown>): number {
  const a: Record<string, unknown> & { outHwptId?: number } = { ...arg };
  s.io(IOMMU_HWPT_ALLOC, a);
  return a.outHwptId!;
}

describe('PASID through iommufd (SMMUv3 substream IDs)', () => {
  it('VFIO_DEVICE_ATTACH_PASID: PASIDs of one device translate through their own IOAS; the RID\'s HWPT must be made for PASIDs; replace, detach (iommufd_hwpt_pasid_compat, iommu_attach_device_pasid)', async () => {
    const s = await setup({ iommu: { family: 'smmuv3' } });
    const { m, proc, ioasAlloc, map, user, bind } = s;
    const [a, b, c] = [ioasAlloc(), ioasAlloc(), ioasAlloc()];
    const va = user(3);
    for (let i = 0; i < 3; i++) proc.writeUser(va + BigInt(i) * PAGE, bytes(16, 10 + i));
    map(a, va, PAGE, 0x10_0000n);
    map(b, va + PAGE, PAGE, 0x10_0000n);
    map(c, va + 2n * PAGE, PAGE, 0x10_0000n);
    const dev = bind('fpga0');
    const hw = (): number => {
      const info = { devId: dev.devId, outMaxPasidLog2: -1 };
      s.io(IOMMU_GET_HW_INFO, info);
      return info.outMaxPasidLog2;
    };
    expect(hw()).toBe(0); // GET_HW_INFO: out_max_pasid_log2 is the device's PASID width
    m.sim.iommu.enablePasid(dev.rid, { bits: 20 });
    expect(hw()).toBe(20);
    expect(m.sim.iommu.pasidBits(dev.rid)).toBe(20);
    const attachPasid = (pasid: number, ptId: number) => {
      const x = { flags: VFIO_DEVICE_ATTACH_PASID, pasid, ptId };
      proc.ioctl(dev.cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, x);
      return x.ptId;
    };
    // The RID on an automatic HWPT (not made for PASIDs): a PASID attach is refused.
    const auto = dev.attach(a);
    expect(errOf(() => attachPasid(5, b)).code).toBe('EINVAL');
    // A RID HWPT made for PASIDs (replace), then PASID 5 on IOAS b through an automatic PASID HWPT.
    const ridHwpt = hwptAlloc(s, { devId: dev.devId, ptId: a, flags: IOMMU_HWPT_ALLOC_PASID });
    expect(dev.attach(ridHwpt)).toBe(ridHwpt);
    expect(s.ctx.object(auto)).toBeUndefined();
    const h5 = attachPasid(5, b);
    expect(m.sim.iommu.pasidDomain(dev.rid, 5)?.id).toBe((s.ctx.object(h5) as IommufdHwptNested).domain.id);
    const read = (pasid: number | null) => {
      m.sim.iommu.setDmaPasid(dev.rid, pasid);
      try {
        return m.sim.dma.read({ rid: dev.rid, addr: 0x10_0000n }, 16);
      } finally {
        m.sim.iommu.setDmaPasid(dev.rid, null);
      }
    };
    expect(read(null).data).toEqual(bytes(16, 10));
    expect(read(5).data).toEqual(bytes(16, 11));
    // A HWPT not made for PASIDs cannot take one; a non-PASID HWPT cannot take the RID while PASIDs are attached.
    const plain = hwptAlloc(s, { devId: dev.devId, ptId: c });
    expect(errOf(() => attachPasid(7, plain)).code).toBe('EINVAL');
    expect(errOf(() => dev.attach(plain)).code).toBe('EINVAL');
    // Replace PASID 5 onto IOAS c; PASID 0 is the RID's.
    attachPasid(5, c);
    expect(read(5).data).toEqual(bytes(16, 12));
    expect(s.ctx.object(h5)).toBeUndefined();
    expect(errOf(() => attachPasid(0, c)).code).toBe('EINVAL');
    // Detach: PASID 5 faults (no PASID entry); the RID still works.
    proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, { flags: VFIO_DEVICE_DETACH_PASID, pasid: 5 });
    expect(read(5)).toMatchObject({ ok: false, code: 'ENODEV' });
    expect(read(null).data).toEqual(bytes(16, 10));
    // A device without PASID enabled: the IOMMU refuses (EINVAL).
    const other = bind('nic1');
    other.attach(ridHwpt);
    const x = { flags: VFIO_DEVICE_ATTACH_PASID, pasid: 5, ptId: b };
    expect(errOf(() => proc.ioctl(other.cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, x)).code).toBe('EINVAL');
  });
});

describe('PASID through iommufd (AMD-Vi GCR3)', () => {
  it('HWPTs made for PASIDs are v2 (x86-64) tables, the only kind a GCR3 entry holds; AMD refuses a PASID replace (EOPNOTSUPP)', async () => {
    const s = await setup({ iommu: { family: 'amd-vi' } });
    const { m, proc, ctx, ioasAlloc, map, user, bind } = s;
    const [a, b, c] = [ioasAlloc(), ioasAlloc(), ioasAlloc()];
    const va = user(1);
    proc.writeUser(va, bytes(16, 4));
    map(b, va, PAGE, 0x30_0000n);
    const dev = bind('fpga0');
    m.sim.iommu.enablePasid(dev.rid, { bits: 16 });
    const rid = hwptAlloc(s, { devId: dev.devId, ptId: a, flags: IOMMU_HWPT_ALLOC_PASID });
    expect((ctx.object(rid) as IommufdHwptNested).domain.format).toBe('x86-64');
    dev.attach(rid);
    const x = { flags: VFIO_DEVICE_ATTACH_PASID, pasid: 2, ptId: b };
    proc.ioctl(dev.cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, x);
    expect((ctx.object(x.ptId) as IommufdHwptNested).domain.format).toBe('x86-64');
    m.sim.iommu.setDmaPasid(dev.rid, 2);
    expect(m.sim.dma.read({ rid: dev.rid, addr: 0x30_0000n }, 16).data).toEqual(bytes(16, 4));
    m.sim.iommu.setDmaPasid(dev.rid, null);
    expect(errOf(() => proc.ioctl(dev.cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { flags: VFIO_DEVICE_ATTACH_PASID, pasid: 2, ptId: c })).code).toBe('EOPNOTSUPP');
    expect(m.sim.iommu.pasidDomain(dev.rid, 2)?.id).toBe((ctx.object(x.ptId) as IommufdHwptNested).domain.id);
  });
});

describe('dirty tracking through iommufd', () => {
  it('IOMMU_HWPT_SET_DIRTY_TRACKING / GET_DIRTY_BITMAP: device writes mark their pages; reading clears them unless NO_CLEAR; the errnos of iopt_read_and_clear_dirty_data', async () => {
    const s = await setup();
    const { m, io, ioasAlloc, map, user, bind, dmaWrite } = s;
    const ioas = ioasAlloc();
    const dev = bind('fpga0');
    const info: IommuHwInfo = { devId: dev.devId };
    io(IOMMU_GET_HW_INFO, info);
    expect(info.outCapabilities! & IOMMU_HW_CAP_DIRTY_TRACKING).toBe(IOMMU_HW_CAP_DIRTY_TRACKING);
    const hwpt = hwptAlloc(s, { devId: dev.devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    const plain = hwptAlloc(s, { devId: dev.devId, ptId: ioas });
    dev.attach(hwpt);
    map(ioas, user(8), 8n * PAGE, 0x20_0000n);
    const bitmap = (flags = 0, h = hwpt, iova = 0x20_0000n, length = 8n * PAGE) => {
      const a = { hwptId: h, flags, iova, length, pageSize: PAGE, data: new BigUint64Array(1) };
      io(IOMMU_HWPT_GET_DIRTY_BITMAP, a);
      return a.data[0]!;
    };
    // Tracking off: EINVAL. On: nothing dirty yet.
    expect(errOf(() => bitmap()).code).toBe('EINVAL');
    expect(errOf(() => io(IOMMU_HWPT_SET_DIRTY_TRACKING, { hwptId: plain, flags: IOMMU_HWPT_DIRTY_TRACKING_ENABLE })).code).toBe('EOPNOTSUPP');
    expect(errOf(() => io(IOMMU_HWPT_SET_DIRTY_TRACKING, { hwptId: hwpt, flags: 2 })).code).toBe('EOPNOTSUPP');
    expect(errOf(() => io(IOMMU_HWPT_SET_DIRTY_TRACKING, { hwptId: ioas, flags: 1 })).code).toBe('ENOENT');
    io(IOMMU_HWPT_SET_DIRTY_TRACKING, { hwptId: hwpt, flags: IOMMU_HWPT_DIRTY_TRACKING_ENABLE });
    expect(bitmap()).toBe(0n);
    expect(dmaWrite(dev.rid, 0x20_2000n, bytes(8)).ok).toBe(true);
    expect(dmaWrite(dev.rid, 0x20_5ff0n, bytes(32)).ok).toBe(true); // pages 5 and 6
    expect(m.sim.dma.read({ rid: dev.rid, addr: 0x20_7000n }, 8).ok).toBe(true); // a read marks nothing
    expect(bitmap(IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR)).toBe(0b110_0100n);
    expect(bitmap()).toBe(0b110_0100n);
    expect(bitmap()).toBe(0n);
    // Errnos: a range not fully mapped EINVAL; unaligned EINVAL; unknown flags EOPNOTSUPP; a HWPT without dirty tracking EOPNOTSUPP; a short bitmap EFAULT.
    expect(errOf(() => bitmap(0, hwpt, 0x20_0000n, 9n * PAGE)).code).toBe('EINVAL');
    expect(errOf(() => bitmap(0, hwpt, 0x20_0800n, PAGE)).code).toBe('EINVAL');
    expect(errOf(() => bitmap(4)).code).toBe('EOPNOTSUPP');
    expect(errOf(() => bitmap(0, plain)).code).toBe('EOPNOTSUPP');
    expect(errOf(() => io(IOMMU_HWPT_GET_DIRTY_BITMAP, { hwptId: hwpt, iova: 0x20_0000n, length: 8n * PAGE, pageSize: PAGE, data: new BigUint64Array(0) })).code).toBe('EFAULT');
    io(IOMMU_HWPT_SET_DIRTY_TRACKING, { hwptId: hwpt, flags: 0 });
    expect(errOf(() => bitmap()).code).toBe('EINVAL');
  });
});

/**
 * The guest's stage-1 table for one page, written in the process's memory (guest RAM mapped in
 * the IOAS at IPA = `ipa`): one table page per level at ipa, ipa + 4K, ..., the data page after
 * them. The entries' attribute bits come from a throwaway domain of the same format.
 */
function guestTable(s: Rig, format: PgtableFormat, va: bigint, ipa: bigint, iova: bigint, dataPage: bigint) {
  const unit = s.m.unitOf(s.m.pci('fpga0'))!;
  const tmp = unit.createDomain({ type: 'paging', format });
  tmp.map(iova, 0x4000_0000n, PAGE, Prot.RW);
  const levels = tmp.walk(iova).levels;
  tmp.unmap(iova, PAGE);
  tmp.destroy();
  const ADDR = 0x000f_ffff_ffff_f000n;
  const write = (page: number, index: number, value: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, value, true);
    s.proc.writeUser(va + BigInt(page) * PAGE + BigInt(index * 8), b);
  };
  levels.forEach((l, i) => {
    const next = i + 1 < levels.length ? ipa + BigInt(i + 1) * PAGE : dataPage;
    write(i, l.index, next | (l.entry & ~ADDR));
  });
  return { levels: levels.length, leaf: (target: bigint) => write(levels.length - 1, levels.at(-1)!.index, target | (levels.at(-1)!.entry & ~ADDR)) };
}

describe('nested HWPTs through iommufd', () => {
  for (const [family, dataType, s1] of [['smmuv3', IOMMU_HWPT_DATA_ARM_SMMUV3, 'arm-lpae-s1'], ['vtd', IOMMU_HWPT_DATA_VTD_S1, 'x86-64']] as const) {
    it(`${family}: a nested HWPT over a NEST_PARENT HWPT: the user's stage-1 table in its own memory, every fetch through stage 2, DMA lands in the page it names (iommufd_hwpt_nested_alloc)`, async () => {
      const s = await setup({ iommu: { family } });
      const { proc, io, ctx, ioasAlloc, map, user, bind, dmaWrite } = s;
      const ioas = ioasAlloc();
      const dev = bind('fpga0');
      const parent = hwptAlloc(s, { devId: dev.devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
      // Guest RAM: 6 pages at IPA 0x100000 (tables, then two data pages).
      const va = user(6);
      const IPA = 0x10_0000n;
      map(s.ioasAlloc(), va, PAGE, 0x1000n); // an unrelated IOAS shares nothing
      map(ioas, va, 6n * PAGE, IPA);
      const IOVA = 0x7_0000_0000n;
      const g = guestTable(s, s1, va, IPA, IOVA, IPA + 4n * PAGE);
      expect(g.levels).toBe(4);
      const alloc = (a: Record<string, unknown>) => hwptAlloc(s, { devId: dev.devId, ptId: parent, dataType, data: { root: IPA }, ...a });
      // Errnos of the nested alloc.
      expect(errOf(() => alloc({ dataType: 0, dataLen: 0, data: undefined })).code).toBe('EOPNOTSUPP');
      expect(errOf(() => alloc({ dataType: dataType === 1 ? 2 : 1 })).code).toBe('EOPNOTSUPP');
      expect(errOf(() => alloc({ flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING })).code).toBe('EOPNOTSUPP');
      expect(errOf(() => alloc({ data: { root: 1 } })).code).toBe('EINVAL');
      const notParent = hwptAlloc(s, { devId: dev.devId, ptId: ioas });
      expect(errOf(() => alloc({ ptId: notParent })).code).toBe('EINVAL');
      const nested = alloc({});
      expect(ctx.object(nested)?.type).toBe('hwpt-nested');
      expect(errOf(() => io(IOMMU_DESTROY, { id: parent })).code).toBe('EBUSY');
      dev.attach(nested);
      // SMMUv3 invalidates a nested stage 1 through a vIOMMU, not the HWPT.
      if (family === 'smmuv3') expect(errOf(() => io(IOMMU_HWPT_INVALIDATE, { hwptId: nested, entries: [] })).code).toBe('EOPNOTSUPP');
      const data = bytes(100, 4);
      expect(dmaWrite(dev.rid, IOVA + 0x20n, data).ok).toBe(true);
      expect(proc.readUser(va + 4n * PAGE + 0x20n, 100)).toEqual(data);
      const unit = s.m.unitOf(s.m.pci('fpga0'))!;
      expect(unit.stats().nestedWalks).toBeGreaterThan(0n);
      // The host unmaps the guest's data page from the IOAS: a stage-2 fault.
      s.unmap(ioas, IPA, 6n * PAGE);
      map(ioas, va, 4n * PAGE, IPA);
      const r = dmaWrite(dev.rid, IOVA, bytes(4));
      expect(r.ok).toBe(false);
      expect(unit.faults().at(-1)).toMatchObject({ stage2: true, nested: { stage: 2 } });
      // Detached, the nested HWPT can go, then its parent.
      proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {});
      io(IOMMU_DESTROY, { id: nested });
      expect(io(IOMMU_DESTROY, { id: parent })).toBe(0);
    });
  }

  it('live migration: a NEST_PARENT HWPT with DIRTY_TRACKING is marked by device writes through the nested HWPT, in guest-physical pages (iommufd_hwpt_get_dirty_bitmap on the parent)', async () => {
    const s = await setup();
    const { io, ioasAlloc, map, user, bind, dmaWrite } = s;
    const ioas = ioasAlloc();
    const dev = bind('fpga0');
    const parent = hwptAlloc(s, { devId: dev.devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    const va = user(8);
    const IPA = 0x10_0000n;
    map(ioas, va, 8n * PAGE, IPA);
    const IOVA = 0x7_0000_0000n;
    guestTable(s, 'x86-64', va, IPA, IOVA, IPA + 6n * PAGE);
    const nested = hwptAlloc(s, { devId: dev.devId, ptId: parent, dataType: IOMMU_HWPT_DATA_VTD_S1, data: { root: IPA } });
    dev.attach(nested);
    io(IOMMU_HWPT_SET_DIRTY_TRACKING, { hwptId: parent, flags: IOMMU_HWPT_DIRTY_TRACKING_ENABLE });
    const bitmap = () => {
      const a = { hwptId: parent, iova: IPA, length: 8n * PAGE, pageSize: PAGE, data: new BigUint64Array(1) };
      io(IOMMU_HWPT_GET_DIRTY_BITMAP, a);
      return a.data[0]!;
    };
    bitmap();
    expect(dmaWrite(dev.rid, IOVA + 0x10n, bytes(8)).ok).toBe(true);
    // The guest page the stage-1 leaf names (IPA page 6) is dirty; page 7, never written, is not.
    const bm = bitmap();
    expect((bm >> 6n) & 1n).toBe(1n);
    expect((bm >> 7n) & 1n).toBe(0n);
    expect(bitmap() & (1n << 6n)).toBe(0n);
  });

  it('IOMMU_HWPT_INVALIDATE (VT-d stage 1): after the guest changes its leaf the device keeps the cached translation until the user invalidates; EINVAL a paging HWPT or bad entry; SMMUv3 nested HWPTs are EOPNOTSUPP (intel_nested_cache_invalidate_user)', async () => {
    const s = await setup();
    const { proc, io, ioasAlloc, map, user, bind, dmaWrite } = s;
    const ioas = ioasAlloc();
    const dev = bind('fpga0');
    const parent = hwptAlloc(s, { devId: dev.devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    const va = user(6);
    const IPA = 0x10_0000n;
    map(ioas, va, 6n * PAGE, IPA);
    const IOVA = 0x7_0000_0000n;
    const g = guestTable(s, 'x86-64', va, IPA, IOVA, IPA + 4n * PAGE);
    const nested = hwptAlloc(s, { devId: dev.devId, ptId: parent, dataType: IOMMU_HWPT_DATA_VTD_S1, data: { root: IPA } });
    dev.attach(nested);
    expect(dmaWrite(dev.rid, IOVA, bytes(8, 1)).ok).toBe(true);
    // The guest points its leaf at the other data page: the IOTLB still holds the old translation.
    g.leaf(IPA + 5n * PAGE);
    expect(dmaWrite(dev.rid, IOVA, bytes(8, 2)).ok).toBe(true);
    expect(proc.readUser(va + 4n * PAGE, 8)).toEqual(bytes(8, 2));
    const inv: Record<string, unknown> & { entryNum?: number } = { hwptId: nested, entries: [{ addr: IOVA, npages: 1n }] };
    io(IOMMU_HWPT_INVALIDATE, inv);
    expect(inv.entryNum).toBe(1);
    expect(dmaWrite(dev.rid, IOVA, bytes(8, 3)).ok).toBe(true);
    expect(proc.readUser(va + 5n * PAGE, 8)).toEqual(bytes(8, 3));
    expect(proc.readUser(va + 4n * PAGE, 8)).toEqual(bytes(8, 2));
    // A bad second entry: the first is handled, entry_num says 1.
    const bad: Record<string, unknown> & { entryNum?: number } = { hwptId: nested, entries: [{ addr: 0n, npages: (1n << 64n) - 1n }, { addr: 0x123n, npages: 1n }] };
    expect(errOf(() => io(IOMMU_HWPT_INVALIDATE, bad)).code).toBe('EINVAL');
    expect(bad.entryNum).toBe(1);
    expect(errOf(() => io(IOMMU_HWPT_INVALIDATE, { hwptId: parent, entries: [] })).code).toBe('EINVAL');
    expect(errOf(() => io(IOMMU_HWPT_INVALIDATE, { hwptId: nested, entries: [{ addr: 0n, npages: 1n, flags: 2 }] })).code).toBe('EINVAL');
  });
});
