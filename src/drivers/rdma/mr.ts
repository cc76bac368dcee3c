/**
 * Memory regions (drivers/infiniband/core/umem.c and uverbs REG_MR / REG_DMABUF_MR with the
 * driver's reg_user_mr / reg_user_mr_dmabuf): pinning process pages, mapping them with the NIC's
 * DMA API, the MR's translation table (MTT) and the key check an HCA does on every access.
 *
 * The MTT is a list of DMA segments: for a dma-buf MR it is the umem's trimmed segment list
 * itself (a view, no copy); for a user MR one segment per DMA-mapped scatterlist entry. Pins and
 * scatterlist entries go by physically contiguous run, not by page.
 */
import {
  DmaDataDirection, PAGE_SIZE, ScatterList, SG_MAX_LENGTH, SgTable, SimError, pushDmaRun, type DmaBufAttachment, type DmaRun,
  type UserPage,
} from '../../index.js';
import {
  IB_ACCESS_SUPPORTED, IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_ON_DEMAND, IBV_ACCESS_OPTIONAL_RANGE,
  IBV_ACCESS_REMOTE_ATOMIC, IBV_ACCESS_REMOTE_READ, IBV_ACCESS_REMOTE_WRITE, MLX5_MAX_UMR_PAGES,
  REG_DMABUF_MR_ACCESS_MASK,
} from './constants.js';
import type { RdmaDevice } from './device.js';
import { odpInvalidate, odpPageFault } from './odp.js';
import { UmemDmabuf, UmemSegments } from './umem-dmabuf.js';
import type { IbvContext, IbvPd } from './verbs.js';

const PAGE = BigInt(PAGE_SIZE);
const U64_MAX = (1n << 64n) - 1n;
const BIDI = DmaDataDirection.BIDIRECTIONAL;
/** ib_access_writable: the access bits for which the NIC may write the pages. */
const WRITABLE = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;

/** struct ibv_mr (plus the kernel MR behind it). */
export class IbvMr {
  lkey = 0;
  rkey = 0;
  deregistered = false;
  /** Page faults taken after an invalidation (odp dma-buf MRs). */
  pageFaults = 0;
  invalidations = 0;
  /** @internal The MTT (the umem's DMA segments): null while zapped. */
  _mtt: UmemSegments | null = null;
  /** @internal */ _umem: UmemDmabuf | null = null;
  /** @internal */ _sgl: ScatterList | null = null;
  /** @internal the user pages pin_user_pages pinned (user MRs), given back at dereg */
  _userPages: readonly UserPage[] = [];
  /** @internal offset of the MR's first byte in the translation table */
  _base = 0n;

  constructor(
    readonly pd: IbvPd,
    readonly type: 'user' | 'dmabuf',
    /** ibv_mr.addr: the user address, or the dma-buf offset for dma-buf MRs (IM-01). */
    readonly addr: bigint,
    readonly length: number,
    readonly iova: bigint,
    readonly access: number,
  ) {}

  /** The ib_device the MR was registered on (mr->device, through its protection domain). */
  get device(): RdmaDevice {
    return this.pd.context.device;
  }
  /** The ib_umem_dmabuf of a dma-buf MR. */
  get umem(): UmemDmabuf | null {
    return this._umem;
  }
  /** True while the MR has a valid translation (an odp MR loses it on move_notify). */
  get mapped(): boolean {
    return this._mtt !== null;
  }
  /** The MR's DMA segments as the NIC sees them (empty while zapped). */
  get translation(): readonly { dmaAddress: bigint; length: bigint }[] {
    const mtt = this._mtt;
    if (!mtt) return [];
    const out: { dmaAddress: bigint; length: bigint }[] = new Array(mtt.count);
    for (let i = 0; i < mtt.count; i++) out[i] = { dmaAddress: mtt.dmaAddress(i), length: BigInt(mtt.length(i)) };
    return out;
  }
}

/** ib_check_mr_access: REMOTE_WRITE/ATOMIC need LOCAL_WRITE; unknown bits; ON_DEMAND needs ODP. */
function checkMrAccess(dev: RdmaDevice, op: string, access: number, rule?: string): void {
  if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) && !(access & IBV_ACCESS_LOCAL_WRITE)) {
    throw new SimError('EINVAL', op, 'REMOTE_WRITE or REMOTE_ATOMIC needs LOCAL_WRITE', rule);
  }
  if (access & ~IB_ACCESS_SUPPORTED) throw new SimError('EINVAL', op, `access 0x${access.toString(16)} has unknown bits`, rule);
  if ((access & IBV_ACCESS_ON_DEMAND) && !dev.odpCapable) {
    throw new SimError('EOPNOTSUPP', op, `${dev.name} has no on-demand paging`, rule);
  }
}

/** efa_check_mr_access: optional bits dropped, then only LOCAL_WRITE and the RDMA caps. EOPNOTSUPP. */
function efaAccess(dev: RdmaDevice, op: string, access: number, rule?: string): number {
  const a = access & ~IBV_ACCESS_OPTIONAL_RANGE;
  const o = dev.opts;
  const supported = IBV_ACCESS_LOCAL_WRITE | (o.rdmaRead ? IBV_ACCESS_REMOTE_READ : 0) | (o.rdmaWrite ? IBV_ACCESS_REMOTE_WRITE : 0);
  if (a & ~supported) throw new SimError('EOPNOTSUPP', op, `${dev.name} does not support access 0x${(a & ~supported).toString(16)}`, rule);
  return a;
}

/**
 * Splits `pages` (page addresses) into runs of physically consecutive pages, [first pa, pages]:
 * what sg_alloc_table_from_pages works over (ranges, not single pages).
 */
export function pageRuns(pages: readonly bigint[]): [bigint, number][] {
  const runs: [bigint, number][] = [];
  for (const pa of pages) {
    const last = runs[runs.length - 1];
    if (last && last[0] + BigInt(last[1]) * PAGE === pa) last[1]++;
    else runs.push([pa, 1]);
  }
  return runs;
}

/**
 * ibv_reg_mr_iova over process memory (see IbvContext.regMr): ib_umem_get pins the user pages of
 * [addr, addr + length) in the context's process (pin_user_pages, FOLL_WRITE for writable
 * access), then maps them with the NIC's DMA API.
 */
export function regUserMr(
  ctx: IbvContext, pd: IbvPd, addr: bigint, length: number, access: number, iovaArg?: bigint,
): IbvMr {
  const op = 'ibv_reg_mr';
  const dev = ctx.device;
  if (typeof addr !== 'bigint' || addr < 0n || addr > U64_MAX) throw new SimError('EINVAL', op, 'addr must be a u64 user address');
  const iova = iovaArg ?? addr;
  if (!Number.isInteger(access)) throw new SimError('EINVAL', op, 'access must be an integer');
  if (addr % PAGE !== iova % PAGE) throw new SimError('EINVAL', op, `addr and iova differ in their page offset`);
  checkMrAccess(dev, op, access);
  if (!Number.isSafeInteger(length) || length < 0 || addr + BigInt(length) > U64_MAX) {
    throw new SimError('EINVAL', op, `length ${length} wraps or is invalid`);
  }
  if (length === 0) throw new SimError('EINVAL', op, 'the MR covers no page');
  let eff = access;
  if (dev.kind === 'pinned') eff = efaAccess(dev, op, access);
  // ib_umem_get: pin_user_pages (EFAULT where the process has nothing mapped, or a read-only
  // mapping for a writable MR), then sg_alloc_table_from_pages by physically contiguous run.
  const proc = ctx.process;
  const userPages = proc.getUserPages(addr, length, { write: (access & WRITABLE) !== 0, pin: true });
  const runs = pageRuns(userPages.map((p) => p.pa));
  const maxPages = Math.floor(SG_MAX_LENGTH / PAGE_SIZE);
  const entries: [bigint, number][] = [];
  for (const [pa, n] of runs) {
    for (let i = 0; i < n; i += maxPages) entries.push([pa + BigInt(i) * PAGE, Math.min(maxPages, n - i)]);
  }
  const sgl = new ScatterList(entries.length);
  entries.forEach(([pa, n], i) => sgl.set(i, pa, n * PAGE_SIZE));
  const r = dev.dma.mapSgtable(sgl, BIDI);
  if (r < 0) {
    proc.putUserPages(userPages, { pin: true });
    throw SimError.fromStatus(r, op, 'dma_map_sgtable failed');
  }
  const mr = new IbvMr(pd, 'user', addr, length, iova, eff);
  mr._mtt = UmemSegments.cut(SgTable.fromScatterList(sgl), 0, sgl.dmaTotalLength()).segments;
  mr._sgl = sgl;
  mr._userPages = userPages;
  mr._base = addr % PAGE;
  mr.lkey = mr.rkey = dev.allocKey(mr);
  pd._users++;
  dev.emit('reg_mr', { type: 'user', addr, length, iova, access: eff, nents: sgl.nents }, { lkey: mr.lkey });
  return mr;
}

/** ibv_reg_dmabuf_mr (see IbvContext.regDmabufMr). */
export function regDmabufMr(
  ctx: IbvContext, pd: IbvPd, offset: bigint | number, length: number, iova: bigint | number, fd: number, access: number,
): IbvMr {
  const op = 'ibv_reg_dmabuf_mr';
  const dev = ctx.device;
  for (const [name, v] of [['offset', offset], ['iova', iova]] as const) {
    if (typeof v !== 'bigint' && !Number.isSafeInteger(v)) throw new SimError('EINVAL', op, `${name} must be an integer (number or bigint)`, 'IM-01');
  }
  const off = BigInt(offset);
  const va = BigInt(iova);
  if (!dev.opts.regDmabufMr) throw new SimError('EOPNOTSUPP', op, `${dev.name} has no reg_user_mr_dmabuf`, 'IM-01');
  if (off < 0n || off > U64_MAX || va < 0n || va > U64_MAX || !Number.isSafeInteger(length) || length < 0) {
    throw new SimError('EINVAL', op, 'offset, length and iova must be u64 values', 'IM-01');
  }
  if (off % PAGE !== va % PAGE) throw new SimError('EINVAL', op, `offset and iova differ in their page offset`, 'IM-01');
  if (!Number.isInteger(access)) throw new SimError('EINVAL', op, 'access must be an integer', 'IM-01');
  if (access < 0 || access & ~REG_DMABUF_MR_ACCESS_MASK) {
    throw new SimError('EINVAL', op, `access 0x${access.toString(16)} has bits REG_DMABUF_MR does not accept`, 'IM-01');
  }
  checkMrAccess(dev, op, access, 'IM-01');
  const len = BigInt(length);
  let mr: IbvMr;
  if (dev.kind === 'pinned') {
    const eff = efaAccess(dev, op, access, 'IM-04');
    mr = new IbvMr(pd, 'dmabuf', off, length, va, eff);
    const umem = UmemDmabuf.getPinned(ctx.process, dev.importer, off, len, fd, eff, (att: DmaBufAttachment) => {
      dev.emit('unexpected_move', { message: 'Invalidate callback should not be called when memory is pinned', attachmentId: att.id }, { lkey: mr.lkey });
    });
    mr._umem = umem;
    umem.private = mr;
    mr._mtt = umem.segmentList;
    mr._base = umem.firstByteOffset;
  } else {
    if (!dev.opts.configOdp) throw new SimError('EOPNOTSUPP', op, 'CONFIG_INFINIBAND_ON_DEMAND_PAGING is off', 'IM-06');
    if (!dev.opts.umrExtendedTranslationOffset && len >= BigInt(MLX5_MAX_UMR_PAGES) * PAGE) {
      throw new SimError('EINVAL', op, `length ${length} is too big for a UMR without extended translation offset`, 'IM-06');
    }
    mr = new IbvMr(pd, 'dmabuf', off, length, va, access);
    const umem = UmemDmabuf.get(ctx.process, dev.importer, off, len, fd, access, {
      allowPeer2Peer: true,
      moveNotify: (att) => odpInvalidate(dev, att),
    });
    mr._umem = umem;
    umem.private = mr;
    try {
      odpPageFault(mr, true);
    } catch (e) {
      umem.release();
      throw e;
    }
  }
  mr.lkey = mr.rkey = dev.allocKey(mr);
  pd._users++;
  dev.emit('reg_mr', { type: 'dmabuf', offset: off, length, iova: va, fd, access: mr.access, segments: mr._mtt?.count ?? 0 }, { lkey: mr.lkey });
  return mr;
}

/** ibv_dereg_mr (see IbvContext.deregMr). */
export function deregMr(ctx: IbvContext, mr: IbvMr): void {
  if (mr.deregistered) return;
  const dev = ctx.device;
  if (mr.device !== dev) throw new SimError('EINVAL', 'ibv_dereg_mr', 'the MR belongs to another device');
  mr.deregistered = true;
  dev._mrs.delete(mr.lkey >>> 8);
  mr.pd._users--;
  if (mr._umem) {
    const umem = mr._umem;
    if (dev.kind === 'odp') {
      umem.dmabuf.resv.withLock(() => {
        mr._mtt = null;
        umem.unmapPages();
      });
    }
    mr._mtt = null;
    umem.release();
  } else if (mr._sgl) {
    dev.dma.unmapSg(mr._sgl, BIDI);
    mr.pd.context.process.putUserPages(mr._userPages, { pin: true });
    mr._userPages = [];
    mr._mtt = null;
  }
  dev.emit('dereg_mr', { type: mr.type }, { lkey: mr.lkey });
}

/** A checked access: `length` bytes at `offset` into `mr`. */
export interface Piece {
  mr: IbvMr;
  offset: bigint;
  length: number;
}

/** An HCA's key check: live key of this device, same PD, access rights, bounds. A string is the failure. */
export function checkKey(
  dev: RdmaDevice,
  pd: IbvPd,
  key: number,
  addr: bigint,
  length: number,
  need: number,
  what: string,
): Piece | null | string {
  if (!Number.isSafeInteger(length) || length < 0) return `${what} access of ${length} bytes`;
  const mr = dev.lookupMr(key);
  if (!mr) return `${what} 0x${(key >>> 0).toString(16)} is not a valid key of ${dev.name}`;
  if (mr.pd !== pd) return `${what} 0x${key.toString(16)} belongs to another protection domain`;
  if ((mr.access & need) !== need) return `${what} 0x${key.toString(16)} lacks access 0x${need.toString(16)}`;
  if (length === 0) return null;
  if (typeof addr !== 'bigint' || addr < mr.iova || addr + BigInt(length) > mr.iova + BigInt(mr.length)) {
    return `${what} 0x${key.toString(16)}: [0x${addr.toString(16)}, +${length}) is outside the MR [0x${mr.iova.toString(16)}, +${mr.length})`;
  }
  return { mr, offset: addr - mr.iova, length };
}

/**
 * Makes the NIC's translation of `p` usable: a deregistered MR fails, a zapped odp MR
 * page-faults first, and the access goes through the importer's device-access check. Returns
 * the failure text or null.
 */
export function readyPiece(p: Piece, write: boolean): string | null {
  const mr = p.mr;
  if (mr.deregistered) return `MR 0x${mr.lkey.toString(16)} was deregistered`;
  if (!mr._mtt) {
    const f = odpPageFault(mr);
    if (f) return f;
  }
  const umem = mr._umem;
  if (umem?.sgt) {
    try {
      umem.attach.checkDeviceAccess(umem.sgt, write);
    } catch (e) {
      return (e as Error).message;
    }
  }
  return null;
}

/**
 * The DMA runs of the first `limit` bytes of `pieces` through their MRs' MTTs (ready first),
 * appended to `out` (adjacent runs of one requester merge). Returns the failure text or null.
 */
export function dmaRuns(pieces: readonly Piece[], limit: bigint, out: DmaRun[]): string | null {
  let left = limit;
  for (const p of pieces) {
    if (left === 0n) break;
    const mr = p.mr;
    const mtt = mr._mtt!;
    const rid = mr.device.rid;
    // Offsets inside an MR are numbers: its length is one.
    let off = Number(mr._base + p.offset);
    let rem = BigInt(p.length) < left ? p.length : Number(left);
    left -= BigInt(rem);
    let i = mtt.find(off);
    while (rem > 0) {
      if (i >= mtt.count || off < mtt.start(i) || off >= mtt.start(i + 1)) {
        return `MR 0x${mr.lkey.toString(16)}: translation ends before offset ${off}`;
      }
      const inSeg = off - mtt.start(i);
      const n = Math.min(mtt.length(i) - inSeg, rem);
      pushDmaRun(out, rid, mtt.dmaAddress(i) + BigInt(inSeg), BigInt(n));
      off += n;
      rem -= n;
      i++;
    }
  }
  return null;
}
