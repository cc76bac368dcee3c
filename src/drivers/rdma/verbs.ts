/**
 * A verbs-like RDMA driver (rdma-core libibverbs on top of the kernel's ib_core/uverbs), for NICs
 * bound to PCI functions of a Machine:
 *  - 'pinned' NICs (EFA-like, no on-demand paging) import dma-bufs with
 *    ib_umem_dmabuf_get_pinned (IM-04);
 *  - 'odp' NICs (mlx5-like) import them with ib_umem_dmabuf_get and honour move_notify: the
 *    invalidate callback zaps the MR's translation (MTT) and unmaps; the next access page-faults,
 *    re-maps under the resv lock and rewrites the translation (IM-06).
 *
 * This file is the uverbs face (contexts, PDs, the REG_MR / REG_DMABUF_MR / CREATE_CQ / CREATE_QP
 * commands); the device is in device.ts, MRs in mr.ts, on-demand paging in odp.ts, queue pairs
 * and the data path in qp.ts.
 */
import { SimError, type SimProcess } from '../../index.js';
import { fabricOf, type RdmaDevice } from './device.js';
import { deregMr, regDmabufMr, regUserMr, type IbvMr } from './mr.js';
import { IbvCq, IbvQp, type IbvQpInitAttr } from './qp.js';

/** ibv_open_device: a verbs context of `process` on `device`. */
export function ibvOpenDevice(device: RdmaDevice, process: SimProcess): IbvContext {
  return new IbvContext(device, process);
}

/** struct ibv_pd. */
export class IbvPd {
  /** @internal */ _users = 0;
  dead = false;
  constructor(
    readonly context: IbvContext,
    readonly handle: number,
  ) {}
}

/** A verbs context (struct ibv_context) of one process on one device. */
export class IbvContext {
  private _pdHandle = 1;
  constructor(
    readonly device: RdmaDevice,
    readonly process: SimProcess,
  ) {}

  /** ibv_alloc_pd. */
  allocPd(): IbvPd {
    return new IbvPd(this, this._pdHandle++);
  }

  /** ibv_dealloc_pd: EBUSY while MRs or QPs use it. */
  deallocPd(pd: IbvPd): void {
    if (pd._users > 0) throw new SimError('EBUSY', 'ibv_dealloc_pd', `the PD still has ${pd._users} MR(s)/QP(s)`);
    pd.dead = true;
  }

  private _checkPd(op: string, pd: IbvPd): void {
    if (!(pd instanceof IbvPd) || pd.context !== this || pd.dead) throw new SimError('EINVAL', op, 'pd is not a live PD of this context');
  }

  /**
   * ibv_reg_mr(pd, addr, length, access): the user memory [addr, addr + length) of this context's
   * process (e.g. a Process.mmapAnonymous mapping), addressed by the NIC at the same address.
   * EINVAL for bad access (ib_check_mr_access), length 0 or wrap; EFAULT where the process has
   * nothing mapped (or a read-only mapping for writable access); EOPNOTSUPP for ON_DEMAND without
   * ODP and for access an EFA-like NIC lacks. Pins the pages (pin_user_pages, given back at
   * deregistration) and maps them with the NIC's DMA API (dma_map_sgtable errors pass through).
   */
  regMr(pd: IbvPd, addr: bigint, length: number, access: number): IbvMr {
    this._checkPd('ibv_reg_mr', pd);
    return regUserMr(this, pd, addr, length, access);
  }

  /**
   * ibv_reg_mr_iova(pd, addr, length, iova, access): as regMr, the NIC addressing the MR at
   * `iova`; EINVAL when addr and iova differ in their page offset.
   */
  regMrIova(pd: IbvPd, addr: bigint, length: number, iova: bigint, access: number): IbvMr {
    this._checkPd('ibv_reg_mr', pd);
    return regUserMr(this, pd, addr, length, access, iova);
  }

  /**
   * ibv_reg_dmabuf_mr(pd, offset, length, iova, fd, access) through uverbs REG_DMABUF_MR (IM-01),
   * the driver (IM-04 pinned / IM-06 odp) and ib_umem_dmabuf_get (IM-02). Errors carry the
   * kernel's errno; the exporter's (e.g. EPERM at attach, DB-09) pass through.
   */
  regDmabufMr(pd: IbvPd, offset: bigint | number, length: number, iova: bigint | number, fd: number, access: number): IbvMr {
    this._checkPd('ibv_reg_dmabuf_mr', pd);
    return regDmabufMr(this, pd, offset, length, iova, fd, access);
  }

  /**
   * ibv_dereg_mr. Dma-buf MRs: zap the translation and release the umem (IM-05: unmap, unpin,
   * detach, put). Deregistering an MR a second time does nothing.
   */
  deregMr(mr: IbvMr): void {
    deregMr(this, mr);
  }

  /** ibv_create_cq. */
  createCq(cqe = 256): IbvCq {
    if (!Number.isInteger(cqe) || cqe < 1) throw new SimError('EINVAL', 'ibv_create_cq', `cqe must be a positive integer, got ${cqe}`);
    return new IbvCq(this, cqe);
  }

  /** ibv_create_qp (IBV_QPT_RC). EINVAL when the caps exceed the device's. */
  createQp(pd: IbvPd, init: IbvQpInitAttr): IbvQp {
    const op = 'ibv_create_qp';
    this._checkPd(op, pd);
    const maxSge = this.device.opts.maxSge;
    const cap = {
      maxSendWr: init.maxSendWr ?? 128,
      maxRecvWr: init.maxRecvWr ?? 128,
      maxSendSge: init.maxSendSge ?? Math.min(4, maxSge),
      maxRecvSge: init.maxRecvSge ?? Math.min(4, maxSge),
    };
    if (cap.maxSendSge > maxSge || cap.maxRecvSge > maxSge) throw new SimError('EINVAL', op, `max SGE is ${maxSge}`);
    if (!(init.sendCq instanceof IbvCq)) throw new SimError('EINVAL', op, 'send_cq is required');
    const f = fabricOf(this.device.machine);
    const qp = new IbvQp(pd, f.nextQpn++, init.sendCq, init.recvCq, cap);
    f.qps.set(qp.qpNum, qp);
    pd._users++;
    return qp;
  }

  /** ibv_destroy_qp: outstanding WRs are dropped without completions. */
  destroyQp(qp: IbvQp): void {
    const f = fabricOf(this.device.machine);
    if (f.qps.get(qp.qpNum) !== qp) return;
    f.qps.delete(qp.qpNum);
    qp.pd._users--;
  }
}

