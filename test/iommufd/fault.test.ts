/**
 * iommufd fault objects (fault.c): IOMMU_FAULT_QUEUE_ALLOC, a HWPT with a fault object, page
 * requests delivered to the fault fd, read in groups with cookies, answered by writing responses;
 * the device retries after SUCCESS. Selftest iommufd_fail_nth / iopf procedures on a real domain.
 */
import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_PGFAULT_SIZE,
  IOMMU_PGFAULT_FLAGS_PASID_VALID, VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_PASID,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_PERM_WRITE, IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS,
  VFIO_DEVICE_DETACH_IOMMUFD_PT, PriDma, reportPageRequest, type IommufdFault, type IommuHwptPgfault,
} from '../../src/drivers/iommufd/index.js';
import { EPOLLIN, EPOLLOUT, FD_CLOEXEC, F_GETFD } from '../../src/process/index.js';
import { bytes, errOf, PAGE, setup } from './helpers.js';

async function faultSetup() {
  const s = await setup();
  const ioas = s.ioasAlloc();
  const dev = s.bind('fpga0');
  const f: { outFaultId?: number; outFaultFd?: number } = {};
  s.io(IOMMU_FAULT_QUEUE_ALLOC, f);
  const h: { devId: number; ptId: number; flags: number; faultId: number; outHwptId?: number } = {
    devId: dev.devId, ptId: ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, faultId: f.outFaultId!,
  };
  s.io(IOMMU_HWPT_ALLOC, h);
  dev.attach(h.outHwptId!);
  return { ...s, ioas, dev, faultId: f.outFaultId!, faultFd: f.outFaultFd!, hwptId: h.outHwptId! };
}

describe('iommufd fault queue (IOMMU_FAULT_QUEUE_ALLOC, fault fd read/write)', () => {
  it('IOMMU_FAULT_QUEUE_ALLOC gives an O_CLOEXEC fd; the fault cannot be destroyed while its fd is open or a HWPT uses it; EOPNOTSUPP flags, ENOENT a bad fault_id (iommufd_fault_alloc, iommufd_get_fault)', async () => {
    const { proc, io, ioasAlloc, bind } = await setup();
    expect(errOf(() => io(IOMMU_FAULT_QUEUE_ALLOC, { flags: 1 })).code).toBe('EOPNOTSUPP');
    const f: { outFaultId?: number; outFaultFd?: number } = {};
    io(IOMMU_FAULT_QUEUE_ALLOC, f);
    expect(proc.fcntl(f.outFaultFd!, F_GETFD)).toBe(FD_CLOEXEC);
    const dev = bind('fpga0');
    const ioas = ioasAlloc();
    expect(errOf(() => io(IOMMU_HWPT_ALLOC, { devId: dev.devId, ptId: ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, faultId: ioas })).code).toBe('ENOENT');
    const h: { outHwptId?: number } & Record<string, unknown> = { devId: dev.devId, ptId: ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, faultId: f.outFaultId! };
    io(IOMMU_HWPT_ALLOC, h);
    proc.close(f.outFaultFd!);
    expect(errOf(() => io(IOMMU_DESTROY, { id: f.outFaultId! })).code).toBe('EBUSY');
    io(IOMMU_DESTROY, { id: h.outHwptId! });
    expect(io(IOMMU_DESTROY, { id: f.outFaultId! })).toBe(0);
    // read(2)/write(2) on a file without them (the VFS's EINVAL), and on a closed fd.
    const iommufd = proc.openFds.find((n) => proc.file(n).name === '/dev/iommu')!;
    expect(errOf(() => proc.read(iommufd, 40)).code).toBe('EINVAL');
    expect(errOf(() => proc.write(iommufd, [{}])).code).toBe('EINVAL');
    expect(errOf(() => proc.read(f.outFaultFd!, 40)).code).toBe('EBADF');
  });

  it('PRI end to end: a PRI device\'s write to an unmapped IOVA raises a page request (no fault record); poll says readable, read hands whole records with a cookie (ESPIPE for a partial size); the user maps the page and answers SUCCESS; the device retries and its bytes land (iommufd_fault_iopf_handler, iommufd_fault_fops_read/write)', async () => {
    const { m, proc, ctx, dev, faultFd, faultId, ioas, map, user } = await faultSetup();
    m.sim.iommu.enableAts(dev.rid, { pri: true });
    const va = user(4);
    const iova = 0x40_0000n;
    const data = bytes(64, 7);
    const t = new PriDma(m, dev.rid).write(iova + 0x100n, data);
    expect([t.state, t.attempts, t.pageRequests, t.waitingFor]).toEqual(['waiting', 1, 1, iova]);
    const unit = m.unitOf(m.pci('fpga0'))!;
    expect(unit.faults()).toEqual([]);
    expect(proc.poll(faultFd, EPOLLIN | EPOLLOUT)).toBe(EPOLLIN | EPOLLOUT);
    expect(errOf(() => proc.read(faultFd, IOMMU_HWPT_PGFAULT_SIZE - 1)).code).toBe('ESPIPE');
    const recs = proc.read(faultFd, 4 * IOMMU_HWPT_PGFAULT_SIZE) as IommuHwptPgfault[];
    expect(recs).toEqual([{
      flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE, devId: dev.devId, pasid: 0, grpid: 0, perm: IOMMU_PGFAULT_PERM_WRITE, addr: iova, length: 0, cookie: 1,
    }]);
    expect(proc.poll(faultFd, EPOLLIN | EPOLLOUT)).toBe(EPOLLOUT);
    // The handler maps the page, then answers.
    map(ioas, va, PAGE, recs[0]!.addr);
    expect(errOf(() => proc.write(faultFd, [{ cookie: 9, code: IOMMUFD_PAGE_RESP_SUCCESS }])).code).toBe('EINVAL');
    expect(errOf(() => proc.write(faultFd, [{ cookie: 1, code: 7 }])).code).toBe('EINVAL');
    expect(t.state).toBe('waiting');
    expect(proc.write(faultFd, [{ cookie: 1, code: IOMMUFD_PAGE_RESP_SUCCESS }])).toBe(8);
    expect([t.state, t.attempts, t.bytesDone]).toEqual(['done', 2, 64n]);
    expect(proc.readUser(va + 0x100n, 64)).toEqual(data);
    const fault = ctx.object(faultId) as IommufdFault;
    expect(fault.stats).toEqual({ delivered: 1, read: 1, responded: 1, autoResponded: 0 });
    expect(unit.stats().pageRequests).toBe(1n);
    // The cookie is spent.
    expect(errOf(() => proc.write(faultFd, [{ cookie: 1, code: IOMMUFD_PAGE_RESP_SUCCESS }])).code).toBe('EINVAL');
  });

  it('PRI across pages: a transfer over three unmapped pages stops at each, resumes from the byte it stopped at, and INVALID fails it with the bytes done so far', async () => {
    const { m, proc, dev, faultFd, ioas, map, user } = await faultSetup();
    m.sim.iommu.enableAts(dev.rid, { pri: true });
    const va = user(3);
    const data = bytes(3 * 4096, 2);
    const t = new PriDma(m, dev.rid).write(0x80_0000n, data);
    const serve = (code: number) => {
      const [r] = proc.read(faultFd, IOMMU_HWPT_PGFAULT_SIZE) as IommuHwptPgfault[];
      if (code === IOMMUFD_PAGE_RESP_SUCCESS) map(ioas, va + (r!.addr - 0x80_0000n), PAGE, r!.addr);
      proc.write(faultFd, [{ cookie: r!.cookie, code }]);
      return r!.addr;
    };
    expect(serve(IOMMUFD_PAGE_RESP_SUCCESS)).toBe(0x80_0000n);
    expect([t.state, t.bytesDone]).toEqual(['waiting', 4096n]);
    expect(serve(IOMMUFD_PAGE_RESP_SUCCESS)).toBe(0x80_1000n);
    expect(serve(IOMMUFD_PAGE_RESP_SUCCESS)).toBe(0x80_2000n);
    expect([t.state, t.attempts, t.pageRequests]).toEqual(['done', 4, 3]);
    expect(proc.readUser(va, data.length)).toEqual(data);
    // INVALID: the device gives up.
    const t2 = new PriDma(m, dev.rid).write(0x90_0000n, bytes(16));
    serve(IOMMUFD_PAGE_RESP_INVALID);
    expect([t2.state, t2.result?.code, t2.bytesDone]).toEqual(['failed', 'EFAULT', 0n]);
  });

  it('PRI with a PASID (SMMUv3): the request names the PASID (PASID_VALID) and goes to the fault object of the HWPT that PASID is attached to; the retry reaches the PASID\'s IOAS', async () => {
    const s = await setup({ iommu: { family: 'smmuv3' } });
    const { m, proc, io, ioasAlloc, map, user, bind } = s;
    const dev = bind('fpga0');
    m.sim.iommu.enablePasid(dev.rid, { bits: 20 });
    m.sim.iommu.enableAts(dev.rid, { pri: true });
    const ridIoas = ioasAlloc();
    const pasIoas = ioasAlloc();
    const f: { outFaultId?: number; outFaultFd?: number } = {};
    io(IOMMU_FAULT_QUEUE_ALLOC, f);
    const ridHwpt: { outHwptId?: number } & Record<string, unknown> = { devId: dev.devId, ptId: ridIoas, flags: IOMMU_HWPT_ALLOC_PASID };
    io(IOMMU_HWPT_ALLOC, ridHwpt);
    const pasHwpt: { outHwptId?: number } & Record<string, unknown> = { devId: dev.devId, ptId: pasIoas, flags: IOMMU_HWPT_ALLOC_PASID | IOMMU_HWPT_FAULT_ID_VALID, faultId: f.outFaultId! };
    io(IOMMU_HWPT_ALLOC, pasHwpt);
    dev.attach(ridHwpt.outHwptId!);
    proc.ioctl(dev.cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, { flags: VFIO_DEVICE_ATTACH_PASID, pasid: 3, ptId: pasHwpt.outHwptId! });
    const t = new PriDma(m, dev.rid, 3).write(0x5000n, bytes(8, 9));
    expect(t.state).toBe('waiting');
    const [r] = proc.read(f.outFaultFd!, IOMMU_HWPT_PGFAULT_SIZE) as IommuHwptPgfault[];
    expect(r).toMatchObject({ flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE | IOMMU_PGFAULT_FLAGS_PASID_VALID, pasid: 3, addr: 0x5000n, devId: dev.devId });
    const va = user(1);
    map(pasIoas, va, PAGE, 0x5000n);
    proc.write(f.outFaultFd!, [{ cookie: r!.cookie, code: IOMMUFD_PAGE_RESP_SUCCESS }]);
    expect(t.state).toBe('done');
    expect(proc.readUser(va, 8)).toEqual(bytes(8, 9));
    // Without a PASID the RID's HWPT has no fault object: INVALID at once, the transfer fails.
    const t2 = new PriDma(m, dev.rid).write(0x5000n, bytes(8));
    expect([t2.state, t2.result?.code]).toEqual(['failed', 'EFAULT']);
  });

  it('no handler: a request from a device whose HWPT has no fault object is answered INVALID at once; detach answers pending requests INVALID (iommu_report_device_fault, iommufd_auto_response_faults)', async () => {
    const { m, proc, ioasAlloc, bind, dev, faultFd } = await faultSetup();
    const other = bind('nic1');
    other.attach(ioasAlloc());
    const got: number[] = [];
    expect(reportPageRequest(m, { rid: other.rid, pasid: null, iova: 0x1000n, access: 'read' }, (c) => got.push(c))).toBe('no-handler');
    expect(got).toEqual([IOMMUFD_PAGE_RESP_INVALID]);
    // Two requests pending on dev: one read (awaiting a response), one not yet read.
    reportPageRequest(m, { rid: dev.rid, pasid: null, iova: 0x1000n, access: 'read' }, (c) => got.push(c));
    proc.read(faultFd, IOMMU_HWPT_PGFAULT_SIZE);
    reportPageRequest(m, { rid: dev.rid, pasid: null, iova: 0x2000n, access: 'read' }, (c) => got.push(c));
    proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {});
    expect(got).toEqual([IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_INVALID]);
    expect(proc.read(faultFd, IOMMU_HWPT_PGFAULT_SIZE)).toEqual([]);
  });
});
