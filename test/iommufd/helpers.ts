import { readFileSync } from 'node:fs';
import { SimError } from '../../bindings/errors.js';
import { Machine, type MachineIommuOptions } from '../../src/machine/machine.js';
import { SimProcess } from '../../src/dma-buf/index.js';
import { VfioPciDevice } from '../../src/drivers/vfio/index.js';
import {
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_UNMAP,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, iommufdCtxFromFd, openIommufd, type IommufdCtx, type IommufdOptions,
  type IommuIoasMap,
} from '../../src/drivers/iommufd/index.js';

// two-switches: gaudi0, nic0 and gpu0 below hb0 (unit dmar0); nic1 and fpga0 below hb1 (dmar1).
export const fixture = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');

export const PAGE = 4096n;
export const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
export const FIXED = IOMMU_IOAS_MAP_FIXED_IOVA;

export function errOf(fn: () => unknown): SimError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimError) return e;
    throw e;
  }
  throw new Error('expected a SimError, nothing was thrown');
}

export async function setup(opts: { iommu?: MachineIommuOptions; iommufd?: IommufdOptions } = {}) {
  const m = await Machine.create({ topology: fixture, iommu: opts.iommu ?? { family: 'vtd' } });
  const proc = new SimProcess(m.kernel, { name: 'vmm', memory: m.sim.memory });
  const fd = openIommufd(m, proc, opts.iommufd);
  const ctx: IommufdCtx = iommufdCtxFromFd(proc, fd);
  const io = (cmd: number, arg: object) => proc.ioctl(fd, cmd, arg);
  const ioasAlloc = (): number => {
    const a: { outIoasId?: number } = {};
    io(IOMMU_IOAS_ALLOC, a);
    return a.outIoasId!;
  };
  /** IOMMU_IOAS_MAP of user memory; returns the iova. */
  const map = (ioasId: number, userVa: bigint, length: bigint, iova?: bigint, flags = RW): bigint => {
    const a: IommuIoasMap = { ioasId, userVa, length, flags: flags | (iova === undefined ? 0 : FIXED), iova };
    io(IOMMU_IOAS_MAP, a);
    return a.iova!;
  };
  const unmap = (ioasId: number, iova: bigint, length: bigint): bigint => {
    const a = { ioasId, iova, length };
    io(IOMMU_IOAS_UNMAP, a);
    return a.length;
  };
  /** Anonymous user memory of `pages` pages (populated), its address. */
  const user = (pages: number): bigint => proc.mmapAnonymous(pages * 4096, { populate: true }).start;
  /** vfio-pci on `name`, its cdev opened and bound to the iommufd: the cdev fd and dev_id. */
  const bind = (name: string) => {
    const vfio = VfioPciDevice.create(m, name);
    const cdev = vfio.openCdev(proc);
    const b: { iommufd: number; outDevid?: number } = { iommufd: fd };
    proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, b);
    const rid = m.rid(m.pci(name));
    const attach = (ptId: number): number => {
      const a = { ptId };
      proc.ioctl(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a);
      return a.ptId;
    };
    return { vfio, cdev, devId: b.outDevid!, rid, attach };
  };
  /** A device DMA write of `data` at `iova`, and a read back of `n` bytes. */
  const dmaWrite = (rid: number, iova: bigint, data: Uint8Array) => m.sim.dma.write({ rid, addr: iova }, data);
  const dmaRead = (rid: number, iova: bigint, n: number) => m.sim.dma.read({ rid, addr: iova }, n);
  return { m, proc, fd, ctx, io, ioasAlloc, map, unmap, user, bind, dmaWrite, dmaRead };
}

export function bytes(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}
