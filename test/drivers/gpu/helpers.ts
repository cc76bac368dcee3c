import { SimError } from '../../../bindings/errors.js';
import type { Machine } from '../../../src/machine/machine.js';
import { SimProcess, type KernelProfileName } from '../../../src/dma-buf/index.js';
import {
  RdmaDevice, ibvOpenDevice, connectRcQps, type IbvContext, type IbvPd, type IbvCq, type IbvQp,
  type RdmaNicKind, type IbvMr,
} from '../../../src/drivers/rdma/index.js';
import {
  AmdgpuDevice, DRM_CLOEXEC, DRM_IOCTL_PRIME_FD_TO_HANDLE, DRM_IOCTL_PRIME_HANDLE_TO_FD, DRM_RDWR, type AmdgpuBo,
  type AmdgpuDeviceOptions, type DrmPrimeHandle,
} from '../../../src/drivers/gpu/index.js';
import { machine, userMemory, type UserMemory } from '../rdma/helpers/setup.js';

// two-switches: gpu0 on rp1 of the whitelisted hb0 (THRU_HOST_BRIDGE to nic0 below sw0), nic1
// and fpga0 below sw1 of hb1 (not whitelisted: no P2P with gpu0; BUS_ADDR between them).
// The machine is the RDMA tests' one.
export { fixture, machine } from '../rdma/helpers/setup.js';

export const MIB = 1n << 20n;

/** A machine, a process and gpu0 with 1 MiB of visible VRAM and 2 MiB in all (small, so pressure is easy). */
export async function gpuSetup(opts: { profile?: KernelProfileName; strictLocking?: boolean; gpu?: Partial<AmdgpuDeviceOptions> } = {}) {
  const m = await machine(opts);
  const proc = new SimProcess(m.kernel, { name: 'app', memory: m.sim.memory });
  const gpu = AmdgpuDevice.create(m, { pci: 'gpu0', visibleVramBytes: MIB, vramBytes: 2n * MIB, ...opts.gpu });
  return { m, proc, gpu };
}

/**
 * An fd of the dma-buf of a BO the test made kernel-side: a render node of `gpu` opened in `proc`,
 * a GEM handle for the BO (drm_gem_handle_create), DRM_IOCTL_PRIME_HANDLE_TO_FD, and the render
 * node closed again (its handle goes; the dma-buf keeps the BO).
 */
export function primeExportFd(gpu: AmdgpuDevice, proc: SimProcess, bo: AmdgpuBo, flags = DRM_RDWR | DRM_CLOEXEC): number {
  const drm = gpu.open(proc);
  try {
    const args: DrmPrimeHandle = { handle: gpu.drmFile(proc.file(drm)).handleCreate(bo), flags };
    proc.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, args);
    return args.fd!;
  } finally {
    proc.close(drm);
  }
}

/** DRM_IOCTL_PRIME_FD_TO_HANDLE on a render node `drm` of `gpu`: the handle and the BO behind it. */
export function primeImport(gpu: AmdgpuDevice, proc: SimProcess, drm: number, fd: number): { handle: number; bo: AmdgpuBo } {
  const args: DrmPrimeHandle = { fd };
  proc.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, args);
  return { handle: args.handle!, bo: gpu.drmFile(proc.file(drm)).lookup(args.handle!) };
}

export interface Side {
  dev: RdmaDevice;
  ctx: IbvContext;
  pd: IbvPd;
  cq: IbvCq;
  qp: IbvQp;
}

export function side(m: Machine, proc: SimProcess, fn: string, kind: RdmaNicKind = 'odp'): Side {
  const dev = new RdmaDevice(m, fn, { kind });
  const ctx = ibvOpenDevice(dev, proc);
  const pd = ctx.allocPd();
  const cq = ctx.createCq();
  const qp = ctx.createQp(pd, { sendCq: cq, maxSendSge: 8, maxRecvSge: 8 });
  return { dev, ctx, pd, cq, qp };
}

/** A connected requester/responder pair of QPs on existing sides. */
export function connect(req: Side, resp: Side): { req: Side; resp: Side } {
  connectRcQps(req.qp, resp.qp);
  return { req, resp };
}

/**
 * RDMA plumbing for one MR: the requester's bounce buffer (registered LOCAL_WRITE) and helpers
 * that post a WRITE or READ at an MR offset and return the completion.
 */
export function rdmaClient(m: Machine, req: Side, mr: IbvMr, size: number) {
  const bounce: UserMemory = userMemory(req, size);
  const bmr = req.ctx.regMr(req.pd, bounce.addr, bounce.length, 1);
  let wr = 1;
  return {
    bounce,
    write(offset: number, data: Uint8Array) {
      bounce.write(0, data);
      req.qp.postSend({ wrId: wr++, opcode: 'RDMA_WRITE', sgList: [{ addr: bounce.addr, length: data.length, lkey: bmr.lkey }], remoteAddr: mr.iova + BigInt(offset), rkey: mr.rkey });
      return req.cq.poll()[0]!;
    },
    read(offset: number, length: number) {
      req.qp.postSend({ wrId: wr++, opcode: 'RDMA_READ', sgList: [{ addr: bounce.addr, length, lkey: bmr.lkey }], remoteAddr: mr.iova + BigInt(offset), rkey: mr.rkey });
      const wc = req.cq.poll()[0]!;
      return { wc, data: bounce.read(0, length) };
    },
  };
}

// One deterministic byte generator for the driver tests.
export { bytes } from '../rdma/helpers/setup.js';

export function errOf(fn: () => unknown): SimError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimError) return e;
    throw e;
  }
  throw new Error('expected a SimError');
}
