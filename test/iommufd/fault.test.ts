/**
 * iommufd fault objects (fault.c): IOMMU_FAULT_QUEUE_ALLOC, a HWPT with a fault object, page
 * requests delivered to the fault fd, read in groups with cookies, answered by writing responses;
 * the device retries after SUCCESS. Selftest iommufd_fail_nth / iopf procedures on a real domain.
 */
import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_PGFAULT_SIZE,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_PERM_WRITE, IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS,
  VFIO_DEVICE_DETACH_IOMMUFD_PT, reportPageRequest, type IommufdFault, type IommuHwptPgfault,
} from '../../src/iommufd/index.js';
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
  });

  it('a page request reaches the fault fd: poll says readable, read hands whole records with a cookie (ESPIPE for a partial size), the user maps the page and answers SUCCESS, the device retries and its write lands (iommufd_fault_iopf_handler, iommufd_fault_fops_read/write)', async () => {
    const { m, proc, ctx, dev, faultFd, faultId, ioas, map, user, dmaWrite } = await faultSetup();
    const va = user(4);
    const iova = 0x40_0000n;
    const data = bytes(64, 7);
    // The device's access: no translation yet; with PRI it asks for the page instead of faulting.
    const attempts: string[] = [];
    const access = (): void => {
      const r = dmaWrite(dev.rid, iova + 0x100n, data);
      attempts.push(r.ok ? 'ok' : r.code);
      if (!r.ok) reportPageRequest(m, { rid: dev.rid, iova: iova + 0x100n, access: 'write', grpid: 3 }, onResponse);
    };
    const responses: number[] = [];
    const onResponse = (code: number): void => {
      responses.push(code);
      if (code === IOMMUFD_PAGE_RESP_SUCCESS) access();
    };
    access();
    expect(attempts).toEqual(['EFAULT']);
    expect(proc.poll(faultFd, EPOLLIN | EPOLLOUT)).toBe(EPOLLIN | EPOLLOUT);
    expect(errOf(() => proc.read(faultFd, IOMMU_HWPT_PGFAULT_SIZE - 1)).code).toBe('ESPIPE');
    const recs = proc.read(faultFd, 4 * IOMMU_HWPT_PGFAULT_SIZE) as IommuHwptPgfault[];
    expect(recs).toEqual([{
      flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE, devId: dev.devId, pasid: 0, grpid: 3, perm: IOMMU_PGFAULT_PERM_WRITE, addr: iova, length: 0, cookie: 1,
    }]);
    expect(proc.poll(faultFd, EPOLLIN | EPOLLOUT)).toBe(EPOLLOUT);
    // The handler maps the page, then answers.
    map(ioas, va, PAGE, recs[0]!.addr);
    expect(errOf(() => proc.write(faultFd, [{ cookie: 9, code: IOMMUFD_PAGE_RESP_SUCCESS }])).code).toBe('EINVAL');
    expect(errOf(() => proc.write(faultFd, [{ cookie: 1, code: 7 }])).code).toBe('EINVAL');
    expect(proc.write(faultFd, [{ cookie: 1, code: IOMMUFD_PAGE_RESP_SUCCESS }])).toBe(8);
    expect(responses).toEqual([IOMMUFD_PAGE_RESP_SUCCESS]);
    expect(attempts).toEqual(['EFAULT', 'ok']);
    expect(proc.readUser(va + 0x100n, 64)).toEqual(data);
    const fault = ctx.object(faultId) as IommufdFault;
    expect(fault.stats).toEqual({ delivered: 1, read: 1, responded: 1, autoResponded: 0 });
    // The cookie is spent.
    expect(errOf(() => proc.write(faultFd, [{ cookie: 1, code: IOMMUFD_PAGE_RESP_SUCCESS }])).code).toBe('EINVAL');
  });

  it('no handler: a request from a device whose HWPT has no fault object is answered INVALID at once; detach answers pending requests INVALID (iommu_report_device_fault, iommufd_auto_response_faults)', async () => {
    const { m, proc, ioasAlloc, bind, dev, faultFd } = await faultSetup();
    const other = bind('nic1');
    other.attach(ioasAlloc());
    const got: number[] = [];
    expect(reportPageRequest(m, { rid: other.rid, iova: 0x1000n, access: 'read' }, (c) => got.push(c))).toBe('no-handler');
    expect(got).toEqual([IOMMUFD_PAGE_RESP_INVALID]);
    // Two requests pending on dev: one read (awaiting a response), one not yet read.
    reportPageRequest(m, { rid: dev.rid, iova: 0x1000n, access: 'read' }, (c) => got.push(c));
    proc.read(faultFd, IOMMU_HWPT_PGFAULT_SIZE);
    reportPageRequest(m, { rid: dev.rid, iova: 0x2000n, access: 'read' }, (c) => got.push(c));
    proc.ioctl(dev.cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, {});
    expect(got).toEqual([IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_INVALID]);
    expect(proc.read(faultFd, IOMMU_HWPT_PGFAULT_SIZE)).toEqual([]);
  });
});
