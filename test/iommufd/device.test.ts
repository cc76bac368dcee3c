/**
 * Devices in iommufd through the vfio cdev, with the machine's real VT-d second-stage tables in
 * place of the selftest's mock domain (iommufd_mock_domain, iommufd_ioas with a domain): bind,
 * attach to an IOAS (automatic HWPT) or a HWPT, replace, detach, reserved regions, pinning, and
 * device DMA through the realized mappings.
 */
import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT, ULONG_MAX, openIommufd, type IommufdHwptPaging, type IommufdIoas, type IommuHwInfo, type IommuIoasIovaRanges,
} from '../../src/drivers/iommufd/index.js';
import { VFIO_DEVICE_RESET, VfioPciDevice } from '../../src/drivers/vfio/index.js';
import { Machine } from '../../src/machine/machine.js';
import { SimProcess } from '../../src/dma-buf/index.js';
import { bytes, errOf, fixture, PAGE, RW, setup } from './helpers.js';

describe('iommufd devices through vfio cdev (selftest mock-domain procedures on VT-d)', () => {
  it('VFIO_DEVICE_BIND_IOMMUFD: before a bind every other cdev ioctl is EINVAL; EBADFD for a non-iommufd fd, EBADF for a closed one; a second bind is EINVAL; another cdev of a bound function is EBUSY; binding blocks DMA (vfio_df_ioctl_bind_iommufd, iommufd_device_bind)', async () => {
    const { m, proc, fd } = await setup();
    const vfio = VfioPciDevice.create(m, 'fpga0');
    const cdev = vfio.openCdev(proc);
    const rid = m.rid(m.pci('fpga0'));
    expect(errOf(() => proc.ioctl(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { ptId: 1 })).code).toBe('EINVAL');
    expect(errOf(() => proc.ioctl(cdev, VFIO_DEVICE_RESET)).code).toBe('EINVAL');
    expect(errOf(() => proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, { iommufd: cdev })).code).toBe('EBADFD');
    expect(errOf(() => proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, { iommufd: 99 })).code).toBe('EBADF');
    expect(errOf(() => proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, { iommufd: fd, flags: 1 })).code).toBe('EINVAL');
    const before = m.sim.iommu.domainOf(rid);
    const b: { iommufd: number; outDevid?: number } = { iommufd: fd };
    proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, b);
    expect(b.outDevid).toBe(1);
    expect(errOf(() => proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, { iommufd: fd })).code).toBe('EINVAL');
    const other = vfio.openCdev(proc);
    expect(errOf(() => proc.ioctl(other, VFIO_DEVICE_BIND_IOMMUFD, { iommufd: fd })).code).toBe('EBUSY');
    // Bound and not attached: the blocked domain; the device's own ioctls work now.
    expect(m.sim.dma.write({ rid, addr: 0x1000n }, bytes(8)).code).toBe('EPERM');
    expect(proc.ioctl(cdev, VFIO_DEVICE_RESET)).toBe(0);
    // The device object is the driver's: IOMMU_DESTROY is EBUSY. Closing the cdev unbinds.
    expect(errOf(() => proc.ioctl(fd, IOMMU_DESTROY, { id: b.outDevid! })).code).toBe('EBUSY');
    proc.close(cdev);
    expect(m.sim.iommu.domainOf(rid)).toBe(before);
    proc.ioctl(other, VFIO_DEVICE_BIND_IOMMUFD, { iommufd: fd });
  });

  it('attach to an IOAS: an automatic HWPT is made and filled; the device DMAs into the process memory through the VT-d table; areas mapped later are realized at once; pins are taken once (iommufd_device_auto_get_domain, iopt_table_add_domain)', async () => {
    const { m, proc, ctx, ioasAlloc, map, user, bind, dmaWrite, dmaRead } = await setup();
    const id = ioasAlloc();
    const va = user(8);
    map(id, va, 4n * PAGE, 0x10_0000n);
    expect(ctx.pinnedPages).toBe(0);
    const dev = bind('fpga0');
    const hwptId = dev.attach(id);
    const hwpt = ctx.object(hwptId) as IommufdHwptPaging;
    expect([hwpt.type, hwpt.autoDomain, hwpt.domain.format, hwpt.ioas.id]).toEqual(['hwpt-paging', true, 'vtd-ss', id]);
    expect(m.sim.iommu.domainOf(dev.rid)).toBe(hwpt.domain.id);
    // The fill pinned the area's pages (once).
    expect(ctx.pinnedPages).toBe(4);
    const pa = hwpt.domain.walk(0x10_1000n).pa!;
    expect(m.sim.memory.frameInfo(pa).pincount).toBe(1);
    const data = bytes(3 * 4096 + 100, 5);
    expect(dmaWrite(dev.rid, 0x10_0000n + 0x80n, data).ok).toBe(true);
    expect(proc.readUser(va + 0x80n, data.length)).toEqual(data);
    // A map after the attach goes straight into the domain.
    const iova = map(id, va + 4n * PAGE, 4n * PAGE);
    proc.writeUser(va + 4n * PAGE, bytes(64, 9));
    expect(dmaRead(dev.rid, iova, 64).data).toEqual(bytes(64, 9));
    expect(ctx.pinnedPages).toBe(8);
    // Past the areas the device faults: nothing else is mapped.
    const r = dmaWrite(dev.rid, 0x20_0000n, bytes(4));
    expect([r.ok, r.code]).toEqual([false, 'EFAULT']);
  });

  it('reserved regions and aperture: IOVA_RANGES loses the MSI window and everything above 2^48; MAP there is EINVAL; an area in the window makes attach EADDRINUSE and changes nothing (iommufd_device_attach_reserved_iova, iopt_reserve_iova)', async () => {
    const { m, io, ioasAlloc, map, user, bind } = await setup();
    const id = ioasAlloc();
    const va = user(2);
    const dev = bind('fpga0');
    dev.attach(id);
    const r: IommuIoasIovaRanges = { ioasId: id, numIovas: 8, allowedIovas: [] };
    io(IOMMU_IOAS_IOVA_RANGES, r);
    expect(r.allowedIovas).toEqual([{ start: 0n, last: 0xfedf_ffffn }, { start: 0xfef0_0000n, last: (1n << 48n) - 1n }]);
    expect(r.outIovaAlignment).toBe(PAGE);
    expect(errOf(() => map(id, va, PAGE, 0xfee0_0000n)).code).toBe('EINVAL');
    expect(errOf(() => map(id, va, PAGE, 1n << 48n)).code).toBe('EINVAL');
    // A second IOAS with an area in the MSI window: the attach refuses, the device stays where it was.
    const id2 = ioasAlloc();
    map(id2, va, PAGE, 0xfee0_0000n);
    const was = m.sim.iommu.domainOf(dev.rid);
    expect(errOf(() => dev.attach(id2)).code).toBe('EADDRINUSE');
    expect(m.sim.iommu.domainOf(dev.rid)).toBe(was);
  });

  it('IOMMU_DESTROY is EBUSY while held: an IOAS under a HWPT, a HWPT with a device; an automatic HWPT goes with its last device, a manual one stays (iommufd_object_remove, iommufd_hw_pagetable_put)', async () => {
    const { proc, io, ctx, ioasAlloc, bind } = await setup();
    const id = ioasAlloc();
    const dev = bind('fpga0');
    const auto = dev.attach(id);
    expect(errOf(() => io(IOMMU_DESTROY, { id })).code).toBe('EBUSY');
    expect(errOf(() => io(IOMMU_DESTROY, { id: auto })).code).toBe('EBUSY');
    proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {});
    expect(ctx.object(auto)).toBeUndefined();
    // A manual HWPT.
    const h: { devId: number; ptId: number; outHwptId?: number } = { devId: dev.devId, ptId: id };
    io(IOMMU_HWPT_ALLOC, h);
    expect(dev.attach(h.outHwptId!)).toBe(h.outHwptId);
    proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {});
    expect(ctx.object(h.outHwptId!)?.type).toBe('hwpt-paging');
    expect(errOf(() => io(IOMMU_DESTROY, { id })).code).toBe('EBUSY');
    expect(io(IOMMU_DESTROY, { id: h.outHwptId! })).toBe(0);
    expect(io(IOMMU_DESTROY, { id })).toBe(0);
    // Detach when not attached is a no-op; unknown flags are EINVAL.
    expect(proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {})).toBe(0);
    expect(errOf(() => proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, { flags: 2 })).code).toBe('EINVAL');
  });

  it('automatic HWPT reuse: a second device on the same unit shares it, a device on another unit gets its own; both domains realize the same areas and reach the same memory (iommufd_device_auto_get_domain)', async () => {
    const { proc, ctx, ioasAlloc, map, user, bind, dmaWrite, dmaRead } = await setup();
    const id = ioasAlloc();
    const va = user(4);
    map(id, va, 4n * PAGE, 0x40_0000n);
    const fpga = bind('fpga0');
    const nic1 = bind('nic1');
    const gpu = bind('gpu0');
    const h1 = fpga.attach(id);
    expect(nic1.attach(id)).toBe(h1);
    const h2 = gpu.attach(id);
    expect(h2).not.toBe(h1);
    const ioas = ctx.object(id) as IommufdIoas;
    expect(ioas.iopt.domains).toHaveLength(2);
    expect(ctx.pinnedPages).toBe(4);
    expect(dmaWrite(gpu.rid, 0x40_1000n, bytes(32, 3)).ok).toBe(true);
    expect(dmaRead(nic1.rid, 0x40_1000n, 32).data).toEqual(bytes(32, 3));
    expect(proc.readUser(va + PAGE, 32)).toEqual(bytes(32, 3));
    // The HWPT is held once per device.
    expect(ctx.object(h1)!.users).toBe(3);
  });

  it('replace: ATTACH while attached moves the device to another IOAS without a blocked window; the old automatic HWPT is destroyed; a HWPT of another unit is EINVAL (iommufd_device_replace)', async () => {
    const { m, io, ctx, ioasAlloc, map, user, bind, dmaRead, proc } = await setup();
    const a = ioasAlloc();
    const b = ioasAlloc();
    const va = user(2);
    proc.writeUser(va, bytes(16, 1));
    proc.writeUser(va + PAGE, bytes(16, 2));
    map(a, va, PAGE, 0x10_0000n);
    map(b, va + PAGE, PAGE, 0x10_0000n);
    const dev = bind('fpga0');
    const ha = dev.attach(a);
    expect(dmaRead(dev.rid, 0x10_0000n, 16).data).toEqual(bytes(16, 1));
    const hb = dev.attach(b);
    expect(dmaRead(dev.rid, 0x10_0000n, 16).data).toEqual(bytes(16, 2));
    expect(ctx.object(ha)).toBeUndefined();
    expect(ctx.pinnedPages).toBe(1);
    // A HWPT made for gpu0 (unit dmar0) cannot take fpga0 (dmar1).
    const gpu = bind('gpu0');
    const h: { devId: number; ptId: number; outHwptId?: number } = { devId: gpu.devId, ptId: a };
    io(IOMMU_HWPT_ALLOC, h);
    expect(errOf(() => dev.attach(h.outHwptId!)).code).toBe('EINVAL');
    expect(m.sim.iommu.domainOf(dev.rid)).toBe((ctx.object(hb) as IommufdHwptPaging).domain.id);
    // Replacing to the same HWPT is a no-op.
    expect(dev.attach(hb)).toBe(hb);
  });

  it('IOMMU_HWPT_ALLOC checks: ENOENT dev_id, EINVAL pt_id, EINVAL data_len without data_type, EOPNOTSUPP unknown or unsupported flags; a NEST_PARENT HWPT attaches like any paging HWPT (iommufd_hwpt_alloc, iommufd_hwpt_paging_alloc)', async () => {
    const { io, ctx, ioasAlloc, bind } = await setup();
    const id = ioasAlloc();
    const dev = bind('fpga0');
    const alloc = (a: object) => io(IOMMU_HWPT_ALLOC, { devId: dev.devId, ptId: id, ...a });
    expect(errOf(() => alloc({ devId: 77 })).code).toBe('ENOENT');
    expect(errOf(() => alloc({ devId: id })).code).toBe('ENOENT');
    expect(errOf(() => alloc({ ptId: 77 })).code).toBe('EINVAL');
    expect(errOf(() => alloc({ ptId: dev.devId })).code).toBe('EINVAL');
    expect(errOf(() => alloc({ dataLen: 8 })).code).toBe('EINVAL');
    expect(errOf(() => alloc({ flags: 1 << 9 })).code).toBe('EOPNOTSUPP');
    expect(errOf(() => alloc({ __reserved: 1 })).code).toBe('EOPNOTSUPP');
    const p: { devId: number; ptId: number; flags: number; outHwptId?: number } = { devId: dev.devId, ptId: id, flags: IOMMU_HWPT_ALLOC_NEST_PARENT };
    io(IOMMU_HWPT_ALLOC, p);
    const parent = ctx.object(p.outHwptId!) as IommufdHwptPaging;
    expect([parent.type, parent.nestParent, parent.autoDomain]).toEqual(['hwpt-paging', true, false]);
    expect(dev.attach(parent.id)).toBe(parent.id);
  });

  it('unmap with a device attached: the device faults afterwards and the pins go; COPY into an IOAS with a domain maps the same pages without new pins (iopt_area_unfill_domains, iopt_map_pages)', async () => {
    const { io, ctx, ioasAlloc, map, unmap, user, bind, dmaWrite } = await setup();
    const a = ioasAlloc();
    const b = ioasAlloc();
    const va = user(4);
    map(a, va, 4n * PAGE, 0x10_0000n);
    const fpga = bind('fpga0');
    const gpu = bind('gpu0');
    fpga.attach(a);
    gpu.attach(b);
    expect(ctx.pinnedPages).toBe(4);
    const c: Record<string, unknown> & { dstIova?: bigint } = { flags: RW, srcIoasId: a, dstIoasId: b, srcIova: 0x10_0000n, length: 4n * PAGE };
    io(IOMMU_IOAS_COPY, c);
    expect(ctx.pinnedPages).toBe(4);
    expect(dmaWrite(gpu.rid, c.dstIova! + 0x10n, bytes(8, 4)).ok).toBe(true);
    expect(unmap(a, 0x10_0000n, 4n * PAGE)).toBe(4n * PAGE);
    // Still mapped (and pinned) through b.
    expect(ctx.pinnedPages).toBe(4);
    expect(dmaWrite(fpga.rid, 0x10_0000n, bytes(8)).code).toBe('EFAULT');
    expect(unmap(b, 0n, ULONG_MAX)).toBe(4n * PAGE);
    expect(ctx.pinnedPages).toBe(0);
  });

  it('pinning: MAP with a domain fails EFAULT on unmapped user memory and ENOMEM past the locked-memory limit, changing nothing; detaching the last device unpins (pfn_reader_user_pin, incr_user_locked_vm)', async () => {
    const { proc, ctx, ioasAlloc, map, user, bind } = await setup({ iommufd: { memlockPages: 6 } });
    const id = ioasAlloc();
    const va = user(8);
    const dev = bind('fpga0');
    dev.attach(id);
    map(id, va, 4n * PAGE, 0x10_0000n);
    expect(errOf(() => map(id, va + 4n * PAGE, 4n * PAGE, 0x20_0000n)).code).toBe('ENOMEM');
    expect(errOf(() => map(id, 0x7000_0000_0000n, PAGE, 0x30_0000n)).code).toBe('EFAULT');
    expect((ctx.object(id) as IommufdIoas).iopt.areas).toHaveLength(1);
    expect(ctx.pinnedPages).toBe(4);
    proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {});
    expect(ctx.pinnedPages).toBe(0);
    // Without a domain the map is lazy: the limit applies at the next attach.
    map(id, va + 4n * PAGE, 4n * PAGE, 0x20_0000n);
    expect(errOf(() => dev.attach(id)).code).toBe('ENOMEM');
    expect(ctx.pinnedPages).toBe(0);
    expect(ctx.objects().filter((o) => o.type === 'hwpt-paging')).toHaveLength(0);
  });

  it('area_allowed with a domain: ALLOW_IOVAS over a reserved range is EADDRINUSE; a device whose reserved region falls in an allowed range cannot attach (iopt_set_allow_iova, iopt_reserve_iova)', async () => {
    const { io, ioasAlloc, bind } = await setup();
    const a = ioasAlloc();
    const fpga = bind('fpga0');
    fpga.attach(a);
    const allow = (id: number, start: bigint, last: bigint) => io(IOMMU_IOAS_ALLOW_IOVAS, { ioasId: id, allowedIovas: [{ start, last }] });
    expect(errOf(() => allow(a, 0xfe00_0000n, 0xfeff_ffffn)).code).toBe('EADDRINUSE');
    expect(allow(a, 0x1000_0000n, 0x1fff_ffffn)).toBe(0);
    const b = ioasAlloc();
    allow(b, 0xfe00_0000n, 0xfeff_ffffn);
    const gpu = bind('gpu0');
    expect(errOf(() => gpu.attach(b)).code).toBe('EADDRINUSE');
  });

  it('ioas_area_destroy: an IOAS with areas (pinned through a domain) is destroyed once its HWPT is gone, unpinning everything (iommufd_ioas_destroy)', async () => {
    const { proc, io, ctx, ioasAlloc, map, user, bind } = await setup();
    const id = ioasAlloc();
    const dev = bind('fpga0');
    dev.attach(id);
    map(id, user(4), 4n * PAGE);
    expect(ctx.pinnedPages).toBe(4);
    proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {});
    map(id, user(2), 2n * PAGE);
    expect(io(IOMMU_DESTROY, { id })).toBe(0);
    expect([ctx.pinnedPages, ctx.objects().map((o) => o.type)]).toEqual([0, ['device']]);
  });

  it('IOMMU_GET_HW_INFO: VT-d info type for a device behind a DMAR unit; ENOENT for an unknown dev_id (iommufd_get_hw_info)', async () => {
    const { io, bind } = await setup();
    const dev = bind('fpga0');
    const info: IommuHwInfo = { devId: dev.devId };
    io(IOMMU_GET_HW_INFO, info);
    expect(info.outDataType).toBe(IOMMU_HW_INFO_TYPE_INTEL_VTD);
    expect(errOf(() => io(IOMMU_GET_HW_INFO, { devId: 99 })).code).toBe('ENOENT');
  });

  it('a machine without an IOMMU opens /dev/iommu, but binding a device is ENODEV (iommufd_device_bind)', async () => {
    const m = await Machine.create({ topology: fixture, iommu: null });
    const proc = new SimProcess(m.kernel, { memory: m.sim.memory });
    const fd = openIommufd(m, proc);
    const cdev = VfioPciDevice.create(m, 'fpga0').openCdev(proc);
    expect(errOf(() => proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, { iommufd: fd })).code).toBe('ENODEV');
  });

  it('SMMUv3 and AMD-Vi: the SMMU software MSI window and AMD\'s HyperTransport hole are reserved while a device is attached', async () => {
    for (const [family, hole] of [['smmuv3', { start: 0x800_0000n, last: 0x80f_ffffn }], ['amd-vi', { start: 0xfd_0000_0000n, last: 0xff_ffff_ffffn }]] as const) {
      const { io, ioasAlloc, bind } = await setup({ iommu: { family } });
      const id = ioasAlloc();
      bind('fpga0').attach(id);
      const r: IommuIoasIovaRanges = { ioasId: id, numIovas: 8, allowedIovas: [] };
      io(IOMMU_IOAS_IOVA_RANGES, r);
      const covered = r.allowedIovas!.some((x) => x.start <= hole.last && x.last >= hole.start);
      expect([family, covered]).toEqual([family, false]);
      expect(r.allowedIovas!.some((x) => x.last === hole.start - 1n)).toBe(true);
    }
  });
});
