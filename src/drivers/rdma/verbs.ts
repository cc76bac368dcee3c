/**
 * A verbs-like RDMA driver (rdma-core libibverbs on top of the kernel's ib_core/uverbs), for NICs
 * bound to PCI functions of a Machine:
 *  - 'pinned' NICs (EFA-like, no on-demand paging) import dma-bufs with
 *    ib_umem_dmabuf_get_pinned (IM-04);
 *  - 'odp' NICs (mlx5-like) import them with ib_umem_dmabuf_get and honour move_notify: the
 *    invalidate callback zaps the MR's translation (MTT) and unmaps; the next access page-faults,
 *    re-maps under the resv lock and rewrites the translation (IM-06).
 * RC queue pairs move real bytes: the requester NIC DMA-reads (or writes) its local SGEs and the
 * responder NIC DMA-writes (or reads) its MR, each through its own requester ID, so the IOMMU
 * domain or the switch's P2P route decides where the bytes land. Completions carry the status a
 * real HCA reports.
 */
import { SimError } from '../../../bindings/errors.js';
import { DmaDataDirection, PAGE_SIZE, type DmaBufAttachment, type SimProcess } from '../../dma-buf/index.js';
import { ScatterList, type DmaDevice as DmaApiDevice } from '../../dma-mapping/index.js';
import type { Machine } from '../../machine/machine.js';
import type { PciFunction } from '../../pci/index.js';
import { importerDevice, type DmaBufImporterDevice } from '../device.js';
import {
  IB_ACCESS_SUPPORTED,
  IBV_ACCESS_LOCAL_WRITE,
  IBV_ACCESS_ON_DEMAND,
  IBV_ACCESS_OPTIONAL_RANGE,
  IBV_ACCESS_REMOTE_ATOMIC,
  IBV_ACCESS_REMOTE_READ,
  IBV_ACCESS_REMOTE_WRITE,
  MLX5_MAX_UMR_PAGES,
  REG_DMABUF_MR_ACCESS_MASK,
  type IbvQpState,
  type IbvWcOpcode,
  type IbvWcStatus,
  type IbvWrOpcode,
} from './constants.js';
import { UmemDmabuf } from './umem-dmabuf.js';

const PAGE = BigInt(PAGE_SIZE);
const U64_MAX = (1n << 64n) - 1n;
const BIDI = DmaDataDirection.BIDIRECTIONAL;

export type RdmaNicKind = 'pinned' | 'odp';

export interface RdmaDeviceOptions {
  /** 'pinned': EFA-like, dma-buf MRs are pinned. 'odp': mlx5-like, on-demand mapping with move_notify. */
  kind: RdmaNicKind;
  /** ib_device name. @default 'efa_<n>' or 'mlx5_<n>' */
  name?: string;
  /** The driver implements reg_user_mr_dmabuf. Without it REG_DMABUF_MR fails EOPNOTSUPP (IM-01). @default true */
  regDmabufMr?: boolean;
  /** odp only: CONFIG_INFINIBAND_USER_MEM + CONFIG_INFINIBAND_ON_DEMAND_PAGING (IM-06). @default true */
  configOdp?: boolean;
  /** odp only: the HCA's umr_extended_translation_offset capability (IM-06 UMR length limit). @default true */
  umrExtendedTranslationOffset?: boolean;
  /** pinned only: the RDMA READ / RDMA WRITE device caps that allow REMOTE_READ / REMOTE_WRITE MRs. @default true */
  rdmaRead?: boolean;
  rdmaWrite?: boolean;
  /** max_send_sge / max_recv_sge. @default 30 */
  maxSge?: number;
  /** The DMA API device; @default machine.dmaDevice(fn) */
  dma?: DmaApiDevice;
}

export type RdmaEventKind =
  | 'reg_mr'
  | 'dereg_mr'
  | 'invalidate'
  | 'page_fault'
  | 'remap'
  | 'unexpected_move'
  | 'qp_state'
  | 'async_event'
  | 'completion';

export interface RdmaEvent {
  readonly seq: number;
  readonly kind: RdmaEventKind;
  readonly device: string;
  readonly lkey?: number;
  readonly qpNum?: number;
  readonly detail: Readonly<Record<string, unknown>>;
}

/** Counters the report shows. */
export interface RdmaDeviceStats {
  invalidations: number;
  pageFaults: number;
  remaps: number;
}

/** Memory of a simulated process: a virtual range backed by RAM frames (one per page). */
export interface UserBuffer {
  /** Virtual address of the first byte. */
  readonly addr: bigint;
  readonly length: number;
  /** Physical address of each page of [ALIGN_DOWN(addr), ALIGN(addr + length)). */
  readonly pages: readonly bigint[];
}

/** A UserBuffer with CPU access and a way to give the frames back. */
export interface UserMemory extends UserBuffer {
  read(offset: number, length: number): Uint8Array;
  write(offset: number, data: Uint8Array): void;
  free(): void;
}

let nextUserVa = 0x7f00_0000_0000n;

/**
 * Allocates a process buffer of `length` bytes starting `pageOffset` bytes into its first page,
 * backed by RAM frames (one contiguous run, or one frame per page with `scattered`).
 */
export function allocUserMemory(
  machine: Machine,
  length: number,
  opts: { pageOffset?: number; scattered?: boolean; addr?: bigint } = {},
): UserMemory {
  const op = 'allocUserMemory';
  const pageOffset = opts.pageOffset ?? 0;
  if (!Number.isSafeInteger(length) || length < 1) throw new SimError('EINVAL', op, `length must be a positive integer, got ${length}`);
  if (!Number.isInteger(pageOffset) || pageOffset < 0 || pageOffset >= PAGE_SIZE) {
    throw new SimError('EINVAL', op, `pageOffset must be within 0..${PAGE_SIZE - 1}`);
  }
  const n = Math.ceil((pageOffset + length) / PAGE_SIZE);
  const mem = machine.sim.memory;
  const pages: bigint[] = [];
  const runs: [bigint, number][] = [];
  if (opts.scattered) {
    for (let i = 0; i < n; i++) {
      const pa = mem.allocFrames(1);
      pages.push(pa);
      runs.push([pa, 1]);
      if (i + 1 < n) runs.push([mem.allocFrames(1), 1]); // a hole, so the next frame is not contiguous
    }
  } else {
    const base = mem.allocFrames(n);
    runs.push([base, n]);
    for (let i = 0; i < n; i++) pages.push(base + BigInt(i) * PAGE);
  }
  const va = opts.addr ?? nextUserVa;
  if (opts.addr === undefined) nextUserVa += BigInt(n + 16) * PAGE;
  const addr = (va - (va % PAGE)) + BigInt(pageOffset);
  const access = (offset: number, len: number, fn: (pa: bigint, from: number, n: number) => void): void => {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > length) {
      throw new SimError('EFAULT', op, `[${offset}, +${len}) is outside the ${length}-byte buffer`);
    }
    let done = 0;
    while (done < len) {
      const at = pageOffset + offset + done;
      const inPage = at % PAGE_SIZE;
      const take = Math.min(PAGE_SIZE - inPage, len - done);
      fn(pages[Math.floor(at / PAGE_SIZE)]! + BigInt(inPage), done, take);
      done += take;
    }
  };
  return {
    addr,
    length,
    pages,
    read(offset, len) {
      const out = new Uint8Array(len);
      access(offset, len, (pa, from, k) => out.set(mem.read(pa, k), from));
      return out;
    },
    write(offset, data) {
      access(offset, data.length, (pa, from, k) => mem.write(pa, data.subarray(from, from + k)));
    },
    free() {
      for (const [pa, k] of runs) mem.freeFrames(pa, k);
    },
  };
}

/** Every QP of a machine, by number (the fabric RC connections are made on). */
class Fabric {
  readonly qps = new Map<number, IbvQp>();
  nextQpn = 0x100;
}
const fabrics = new WeakMap<Machine, Fabric>();
function fabricOf(m: Machine): Fabric {
  let f = fabrics.get(m);
  if (!f) fabrics.set(m, (f = new Fabric()));
  return f;
}

/** ib_device names (mlx5_0, efa_0, ...) are numbered per machine, as per host. */
const deviceCounts = new WeakMap<Machine, Record<RdmaNicKind, number>>();

/** An ib_device on a PCI function. */
export class RdmaDevice {
  readonly name: string;
  readonly kind: RdmaNicKind;
  readonly fn: PciFunction;
  readonly dma: DmaApiDevice;
  /** The NIC's requester ID (Machine.rid(fn)). */
  readonly rid: number;
  /** The device object passed to dma_buf_dynamic_attach (attach->dev). */
  readonly importer: DmaBufImporterDevice;
  readonly events: RdmaEvent[] = [];
  readonly stats: RdmaDeviceStats = { invalidations: 0, pageFaults: 0, remaps: 0 };
  readonly opts: Readonly<Required<Omit<RdmaDeviceOptions, 'name' | 'dma'>>>;
  /** @internal */
  readonly _mrs = new Map<number, IbvMr>();
  private _mrIndex = 1;
  private _seq = 0;

  constructor(
    readonly machine: Machine,
    fn: PciFunction | string,
    opts: RdmaDeviceOptions,
  ) {
    if (opts.kind !== 'pinned' && opts.kind !== 'odp') {
      throw new SimError('EINVAL', 'RdmaDevice', `kind must be 'pinned' or 'odp', got ${String(opts.kind)}`);
    }
    this.fn = typeof fn === 'string' ? machine.pci(fn) : fn;
    this.kind = opts.kind;
    let counts = deviceCounts.get(machine);
    if (!counts) deviceCounts.set(machine, counts = { odp: 0, pinned: 0 });
    this.name = opts.name ?? `${opts.kind === 'odp' ? 'mlx5' : 'efa'}_${counts[opts.kind]++}`;
    this.dma = opts.dma ?? machine.dmaDevice(this.fn);
    this.rid = machine.rid(this.fn);
    this.importer = importerDevice(machine, this.fn, this.dma);
    this.opts = {
      kind: opts.kind,
      regDmabufMr: opts.regDmabufMr ?? true,
      configOdp: opts.configOdp ?? true,
      umrExtendedTranslationOffset: opts.umrExtendedTranslationOffset ?? true,
      rdmaRead: opts.rdmaRead ?? true,
      rdmaWrite: opts.rdmaWrite ?? true,
      maxSge: opts.maxSge ?? 30,
    };
  }

  /** IBK_ON_DEMAND_PAGING. */
  get odpCapable(): boolean {
    return this.kind === 'odp' && this.opts.configOdp;
  }

  /** The live MR with this lkey/rkey. */
  lookupMr(key: number): IbvMr | undefined {
    const mr = this._mrs.get(key >>> 8);
    return mr && mr.lkey === key >>> 0 ? mr : undefined;
  }

  /** @internal */
  _emit(kind: RdmaEventKind, detail: Record<string, unknown>, ids: { lkey?: number; qpNum?: number } = {}): void {
    this.events.push({ seq: this._seq++, kind, device: this.name, ...ids, detail });
  }

  /** @internal mlx5-style key: index << 8 | variant byte. */
  _allocKey(mr: IbvMr): number {
    const index = this._mrIndex++;
    this._mrs.set(index, mr);
    return ((index << 8) | ((index * 0x3b) & 0xff)) >>> 0;
  }
}

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

/** One translation segment of an MR (an MTT run): DMA address, length, offset in the table. */
interface MttSeg {
  readonly start: bigint;
  readonly dmaAddress: bigint;
  readonly length: bigint;
}

/** struct ibv_mr (plus the kernel MR behind it). */
export class IbvMr {
  lkey = 0;
  rkey = 0;
  deregistered = false;
  /** Page faults taken after an invalidation (odp dma-buf MRs). */
  pageFaults = 0;
  invalidations = 0;
  /** @internal The MTT: null while zapped. */
  _mtt: MttSeg[] | null = null;
  /** @internal */ _umem: UmemDmabuf | null = null;
  /** @internal */ _sgl: ScatterList | null = null;
  /** @internal */ _pinnedPages: bigint[] = [];
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
    return (this._mtt ?? []).map((s) => ({ dmaAddress: s.dmaAddress, length: s.length }));
  }
}

/** A work-queue scatter/gather element (struct ibv_sge). */
export interface IbvSge {
  addr: bigint;
  length: number;
  lkey: number;
}
/** struct ibv_send_wr (RC subset). */
export interface IbvSendWr {
  wrId: bigint | number;
  opcode: IbvWrOpcode;
  sgList: IbvSge[];
  remoteAddr?: bigint;
  rkey?: number;
}
export interface IbvRecvWr {
  wrId: bigint | number;
  sgList: IbvSge[];
}
/** struct ibv_wc. */
export interface IbvWc {
  wrId: bigint | number;
  status: IbvWcStatus;
  opcode: IbvWcOpcode;
  byteLen: number;
  qpNum: number;
  /** Where a failing access was, for reports (not in ibv_wc). */
  detail?: string;
}

/** struct ibv_cq. */
export class IbvCq {
  private readonly _q: IbvWc[] = [];
  constructor(
    readonly context: IbvContext,
    readonly cqe: number,
  ) {}
  /** ibv_poll_cq: up to `max` completions, oldest first. */
  poll(max = Number.POSITIVE_INFINITY): IbvWc[] {
    return this._q.splice(0, Math.min(max, this._q.length));
  }
  get pending(): number {
    return this._q.length;
  }
  /** @internal */
  _push(wc: IbvWc): void {
    this._q.push(wc);
  }
}

export interface IbvQpInitAttr {
  sendCq: IbvCq;
  recvCq?: IbvCq;
  maxSendWr?: number;
  maxRecvWr?: number;
  maxSendSge?: number;
  maxRecvSge?: number;
}

export interface IbvQpAttr {
  state: IbvQpState;
  /** qp_access_flags (RESET->INIT): which remote operations the responder accepts. */
  accessFlags?: number;
  /** dest_qp_num (INIT->RTR). */
  destQpNum?: number;
  /** rnr_retry (RTR->RTS): 7 means retry forever (a SEND waits for a receive). @default 7 */
  rnrRetry?: number;
}

type Access = { ok: true; data?: Uint8Array } | { ok: false; why: string };

/** A reliable-connected QP. */
export class IbvQp {
  state: IbvQpState = 'RESET';
  accessFlags = 0;
  destQpNum: number | undefined;
  rnrRetry = 7;
  readonly recvCq: IbvCq;
  private readonly _sq: IbvSendWr[] = [];
  private readonly _rq: IbvRecvWr[] = [];
  private _busy = false;

  constructor(
    readonly pd: IbvPd,
    readonly qpNum: number,
    readonly sendCq: IbvCq,
    recvCq: IbvCq | undefined,
    readonly cap: { maxSendWr: number; maxRecvWr: number; maxSendSge: number; maxRecvSge: number },
  ) {
    this.recvCq = recvCq ?? sendCq;
  }

  get device(): RdmaDevice {
    return this.pd.context.device;
  }
  /** Send WRs posted and not yet completed (e.g. a SEND waiting for a receive). */
  get outstandingSends(): number {
    return this._sq.length;
  }
  get postedRecvs(): number {
    return this._rq.length;
  }

  /** ibv_modify_qp: RESET->INIT->RTR->RTS, or to ERR / RESET from any state. EINVAL otherwise. */
  modify(attr: IbvQpAttr): void {
    const op = 'ibv_modify_qp';
    const from = this.state;
    const to = attr.state;
    const ok =
      to === 'ERR' ||
      to === 'RESET' ||
      (from === 'RESET' && to === 'INIT') ||
      (from === 'INIT' && (to === 'INIT' || to === 'RTR')) ||
      (from === 'RTR' && to === 'RTS') ||
      (from === 'RTS' && to === 'RTS');
    if (!ok) throw new SimError('EINVAL', op, `QP ${this.qpNum}: no transition ${from} -> ${to}`);
    if (to === 'INIT' && attr.accessFlags !== undefined) {
      if (attr.accessFlags & ~(IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_LOCAL_WRITE)) {
        throw new SimError('EINVAL', op, `qp_access_flags 0x${attr.accessFlags.toString(16)} has unknown bits`);
      }
    }
    if (to === 'RTR') {
      const dest = attr.destQpNum;
      if (dest === undefined || !fabricOf(this.device.machine).qps.has(dest)) {
        throw new SimError('EINVAL', op, `QP ${this.qpNum}: dest_qp_num ${String(dest)} is not a QP of this fabric`);
      }
      this.destQpNum = dest;
    }
    if (to === 'RTS' && attr.rnrRetry !== undefined) {
      if (!Number.isInteger(attr.rnrRetry) || attr.rnrRetry < 0 || attr.rnrRetry > 7) {
        throw new SimError('EINVAL', op, `rnr_retry must be 0..7, got ${attr.rnrRetry}`);
      }
      this.rnrRetry = attr.rnrRetry;
    }
    if (to === 'INIT' && attr.accessFlags !== undefined) this.accessFlags = attr.accessFlags;
    this.state = to;
    this.device._emit('qp_state', { from, to }, { qpNum: this.qpNum });
    if (to === 'ERR') this._flush();
    if (to === 'RESET') {
      this._sq.length = 0;
      this._rq.length = 0;
      this.destQpNum = undefined;
    }
  }

  /**
   * ibv_post_send. EINVAL before RTS, for an unknown opcode or too many SGEs; ENOMEM when the send
   * queue is full. WRs run at once (a SEND with no receive posted waits when rnr_retry is 7); in
   * the error state they complete with WR_FLUSH_ERR.
   */
  postSend(wrs: IbvSendWr | IbvSendWr[]): void {
    const op = 'ibv_post_send';
    for (const wr of Array.isArray(wrs) ? wrs : [wrs]) {
      if (this.state !== 'RTS' && this.state !== 'ERR' && this.state !== 'SQD' && this.state !== 'SQE') {
        throw new SimError('EINVAL', op, `QP ${this.qpNum} is in ${this.state}, not RTS`);
      }
      if (wr.opcode !== 'RDMA_WRITE' && wr.opcode !== 'RDMA_READ' && wr.opcode !== 'SEND') {
        throw new SimError('EINVAL', op, `opcode ${String(wr.opcode)} is not supported on RC`);
      }
      if (!Array.isArray(wr.sgList) || wr.sgList.length > this.cap.maxSendSge) {
        throw new SimError('EINVAL', op, `num_sge ${wr.sgList?.length} exceeds max_send_sge ${this.cap.maxSendSge}`);
      }
      if (this._sq.length >= this.cap.maxSendWr) throw new SimError('ENOMEM', op, `send queue of QP ${this.qpNum} is full`);
      this._sq.push(wr);
    }
    this.progress();
  }

  /** ibv_post_recv. EINVAL in RESET or for too many SGEs; ENOMEM when full. */
  postRecv(wrs: IbvRecvWr | IbvRecvWr[]): void {
    const op = 'ibv_post_recv';
    for (const wr of Array.isArray(wrs) ? wrs : [wrs]) {
      if (this.state === 'RESET') throw new SimError('EINVAL', op, `QP ${this.qpNum} is in RESET`);
      if (!Array.isArray(wr.sgList) || wr.sgList.length > this.cap.maxRecvSge) {
        throw new SimError('EINVAL', op, `num_sge ${wr.sgList?.length} exceeds max_recv_sge ${this.cap.maxRecvSge}`);
      }
      if (this._rq.length >= this.cap.maxRecvWr) throw new SimError('ENOMEM', op, `receive queue of QP ${this.qpNum} is full`);
      if (this.state === 'ERR') {
        this._complete(this.recvCq, wr.wrId, 'WR_FLUSH_ERR', 'RECV', 0);
        continue;
      }
      this._rq.push(wr);
    }
    this._peer()?.progress();
  }

  /** Runs queued send WRs until the queue is empty or a SEND waits for a receive. */
  progress(): void {
    if (this._busy) return;
    this._busy = true;
    try {
      while (this._sq.length > 0) {
        if (this.state === 'ERR') {
          this._flush();
          return;
        }
        if (this.state !== 'RTS') return;
        const wr = this._sq.shift()!;
        if (this._execute(wr) === 'wait') {
          this._sq.unshift(wr);
          return;
        }
      }
    } finally {
      this._busy = false;
    }
  }

  private _peer(): IbvQp | undefined {
    return this.destQpNum === undefined ? undefined : fabricOf(this.device.machine).qps.get(this.destQpNum);
  }

  /** @internal */
  _complete(cq: IbvCq, wrId: bigint | number, status: IbvWcStatus, opcode: IbvWcOpcode, byteLen: number, detail?: string): void {
    const wc: IbvWc = { wrId, status, opcode, byteLen, qpNum: this.qpNum, ...(detail ? { detail } : {}) };
    cq._push(wc);
    if (status !== 'SUCCESS' && status !== 'WR_FLUSH_ERR') this.device._emit('completion', { ...wc }, { qpNum: this.qpNum });
  }

  /** @internal Moves to ERR (completions of the queued WRs flush). */
  _toError(): void {
    if (this.state === 'ERR') return;
    this.modify({ state: 'ERR' });
  }

  private _flush(): void {
    for (const wr of this._sq.splice(0)) this._complete(this.sendCq, wr.wrId, 'WR_FLUSH_ERR', wcOpcode(wr.opcode), 0);
    for (const wr of this._rq.splice(0)) this._complete(this.recvCq, wr.wrId, 'WR_FLUSH_ERR', 'RECV', 0);
  }

  private _fail(wr: IbvSendWr, status: IbvWcStatus, detail: string): 'done' {
    this._complete(this.sendCq, wr.wrId, status, wcOpcode(wr.opcode), 0, detail);
    this._toError();
    return 'done';
  }

  private _execute(wr: IbvSendWr): 'done' | 'wait' {
    const dev = this.device;
    const isRead = wr.opcode === 'RDMA_READ';
    // Local SGEs: lkey, PD, bounds; the RDMA READ target needs LOCAL_WRITE.
    const locals: Piece[] = [];
    let total = 0;
    for (const [i, sge] of wr.sgList.entries()) {
      const p = checkKey(dev, this.pd, sge.lkey, sge.addr, sge.length, isRead ? IBV_ACCESS_LOCAL_WRITE : 0, 'lkey');
      if (typeof p === 'string') return this._fail(wr, 'LOC_PROT_ERR', `sge[${i}]: ${p}`);
      if (p) locals.push(p);
      total += sge.length;
    }
    const peer = this._peer();
    if (!peer || (peer.state !== 'RTR' && peer.state !== 'RTS') || peer._peer() !== this) {
      return this._fail(wr, 'RETRY_EXC_ERR', 'the responder does not answer (not connected, or in error)');
    }
    const rdev = peer.device;
    if (wr.opcode === 'SEND') {
      const recv = peer._rq[0];
      if (!recv) {
        if (this.rnrRetry === 7) return 'wait';
        return this._fail(wr, 'RNR_RETRY_EXC_ERR', 'no receive posted');
      }
      peer._rq.shift();
      const targets: Piece[] = [];
      let room = 0;
      for (const [i, sge] of recv.sgList.entries()) {
        const p = checkKey(rdev, peer.pd, sge.lkey, sge.addr, sge.length, IBV_ACCESS_LOCAL_WRITE, 'lkey');
        if (typeof p === 'string') {
          peer._complete(peer.recvCq, recv.wrId, 'LOC_PROT_ERR', 'RECV', 0, `recv sge[${i}]: ${p}`);
          peer._toError();
          return this._fail(wr, 'REM_OP_ERR', 'the responder hit a local protection error on its receive');
        }
        if (p) targets.push(p);
        room += sge.length;
      }
      if (room < total) {
        peer._complete(peer.recvCq, recv.wrId, 'LOC_LEN_ERR', 'RECV', 0, `message of ${total} bytes, receive of ${room}`);
        peer._toError();
        return this._fail(wr, 'REM_INV_REQ_ERR', 'the message is longer than the receive buffers');
      }
      const data = gather(locals, total);
      if (!data.ok) return this._fail(wr, 'LOC_PROT_ERR', data.why);
      const put = scatter(targets, data.data!);
      if (!put.ok) {
        peer._complete(peer.recvCq, recv.wrId, 'LOC_PROT_ERR', 'RECV', 0, put.why);
        peer._toError();
        return this._fail(wr, 'REM_OP_ERR', put.why);
      }
      peer._complete(peer.recvCq, recv.wrId, 'SUCCESS', 'RECV', total);
      this._complete(this.sendCq, wr.wrId, 'SUCCESS', 'SEND', total);
      return 'done';
    }
    // RDMA WRITE / READ: the responder checks its QP's access flags and the rkey.
    const need = isRead ? IBV_ACCESS_REMOTE_READ : IBV_ACCESS_REMOTE_WRITE;
    let remote: Piece | null = null;
    if (total > 0) {
      const r = (peer.accessFlags & need) === 0
        ? `the responder QP does not allow ${isRead ? 'REMOTE_READ' : 'REMOTE_WRITE'}`
        : checkKey(rdev, peer.pd, wr.rkey ?? 0, wr.remoteAddr ?? 0n, total, need, 'rkey');
      if (typeof r === 'string') {
        rdev._emit('async_event', { event: 'QP_ACCESS_ERR', why: r }, { qpNum: peer.qpNum });
        peer._toError();
        return this._fail(wr, 'REM_ACCESS_ERR', r);
      }
      remote = r;
    }
    if (!isRead) {
      const data = gather(locals, total);
      if (!data.ok) return this._fail(wr, 'LOC_PROT_ERR', data.why);
      if (remote) {
        const put = scatter([remote], data.data!);
        if (!put.ok) {
          rdev._emit('async_event', { event: 'QP_ACCESS_ERR', why: put.why }, { qpNum: peer.qpNum });
          peer._toError();
          return this._fail(wr, 'REM_ACCESS_ERR', put.why);
        }
      }
      this._complete(this.sendCq, wr.wrId, 'SUCCESS', 'RDMA_WRITE', total);
      return 'done';
    }
    const data = remote ? gather([remote], total) : { ok: true as const, data: new Uint8Array(0) };
    if (!data.ok) {
      rdev._emit('async_event', { event: 'QP_ACCESS_ERR', why: data.why }, { qpNum: peer.qpNum });
      peer._toError();
      return this._fail(wr, 'REM_ACCESS_ERR', data.why);
    }
    const put = scatter(locals, data.data!);
    if (!put.ok) return this._fail(wr, 'LOC_PROT_ERR', put.why);
    this._complete(this.sendCq, wr.wrId, 'SUCCESS', 'RDMA_READ', total);
    return 'done';
  }
}

function wcOpcode(op: IbvWrOpcode): IbvWcOpcode {
  return op;
}

/** A checked access: `length` bytes at `offset` into `mr`. */
interface Piece {
  mr: IbvMr;
  offset: bigint;
  length: number;
}

/** An HCA's key check: live key of this device, same PD, access rights, bounds. A string is the failure. */
function checkKey(
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

/** The NIC reads the pieces into one message buffer (one DMA per translated segment). */
function gather(pieces: Piece[], total: number): Access {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of pieces) {
    const r = dmaPiece(p, 'read', out, at);
    if (!r.ok) return r;
    at += p.length;
  }
  return { ok: true, data: out };
}

/** The NIC writes `data` over the pieces in order, as far as it goes. */
function scatter(pieces: Piece[], data: Uint8Array): Access {
  let at = 0;
  for (const p of pieces) {
    if (at >= data.length) break;
    const n = Math.min(p.length, data.length - at);
    const r = dmaPiece({ ...p, length: n }, 'write', data, at);
    if (!r.ok) return r;
    at += n;
  }
  return { ok: true };
}

/** Translates (faulting in an invalidated odp MR first) and DMAs per segment with the NIC's RID. */
function dmaPiece(p: Piece, dir: 'read' | 'write', buf: Uint8Array, bufAt: number): Access {
  const mr = p.mr;
  const dev = mr.device;
  if (mr.deregistered) return { ok: false, why: `MR 0x${mr.lkey.toString(16)} was deregistered` };
  if (!mr._mtt) {
    const f = odpPageFault(mr);
    if (f) return { ok: false, why: f };
  }
  const umem = mr._umem;
  if (umem?.sgt) {
    try {
      umem.attach.checkDeviceAccess(umem.sgt, dir === 'write');
    } catch (e) {
      return { ok: false, why: (e as Error).message };
    }
  }
  const mtt = mr._mtt!;
  let off = mr._base + p.offset;
  let left = BigInt(p.length);
  let i = findSeg(mtt, off);
  let at = bufAt;
  const dma = dev.machine.sim.dma;
  while (left > 0n) {
    const s = mtt[i];
    if (!s) return { ok: false, why: `MR 0x${mr.lkey.toString(16)}: translation ends before offset ${off}` };
    const inSeg = off - s.start;
    const n = s.length - inSeg < left ? s.length - inSeg : left;
    const addr = s.dmaAddress + inSeg;
    const len = Number(n);
    const r = dir === 'read'
      ? dma.read({ rid: dev.rid, addr }, len)
      : dma.write({ rid: dev.rid, addr }, buf.subarray(at, at + len));
    if (dir === 'read' && 'data' in r) buf.set((r as { data: Uint8Array }).data.subarray(0, Number(r.bytesDone)), at);
    if (!r.ok) {
      return { ok: false, why: `${dev.name} DMA ${dir} at 0x${addr.toString(16)} failed: ${r.code}${r.fault ? ` (${r.fault.reason})` : ''}` };
    }
    off += n;
    left -= n;
    at += len;
    i++;
  }
  return { ok: true };
}

function findSeg(mtt: MttSeg[], off: bigint): number {
  let lo = 0;
  let hi = mtt.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (mtt[mid]!.start <= off) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** mlx5 pagefault_dmabuf_mr: under resv, map_pages, check the page size, rewrite the MTT. Returns an error text or null. */
function odpPageFault(mr: IbvMr, initial = false): string | null {
  const umem = mr._umem;
  const dev = mr.device;
  if (!umem || dev.kind !== 'odp') return `MR 0x${mr.lkey.toString(16)} has no translation`;
  const resv = umem.dmabuf.resv;
  if (!initial) {
    mr.pageFaults++;
    dev.stats.pageFaults++;
    dev._emit('page_fault', { offset: umem.address, length: umem.length }, { lkey: mr.lkey });
  }
  try {
    resv.lock();
  } catch (e) {
    return `page fault: ${(e as Error).message}`;
  }
  try {
    umem.mapPages();
    const segs = umem.segments;
    const bad = segs.some((s, i) => s.dmaAddress % PAGE !== 0n || (i + 1 < segs.length && s.length % PAGE !== 0n));
    if (segs.length === 0 || bad) {
      umem.unmapPages();
      throw new SimError('EINVAL', 'pagefault_dmabuf_mr', 'no page size fits the mapping', 'IM-06');
    }
    mr._mtt = umem.segments.map((s) => ({ start: s.start, dmaAddress: s.dmaAddress, length: s.length }));
    mr._base = umem.firstByteOffset;
  } catch (e) {
    if (initial) throw e;
    return `page fault: ${(e as Error).message}`;
  } finally {
    resv.unlock();
  }
  if (!initial) {
    dev.stats.remaps++;
    dev._emit('remap', { segments: mr._mtt.length, first: mr._mtt[0]!.dmaAddress }, { lkey: mr.lkey });
  }
  return null;
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

  /** ib_check_mr_access: REMOTE_WRITE/ATOMIC need LOCAL_WRITE; unknown bits; ON_DEMAND needs ODP. */
  private _checkMrAccess(op: string, access: number, rule?: string): void {
    if ((access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) && !(access & IBV_ACCESS_LOCAL_WRITE)) {
      throw new SimError('EINVAL', op, 'REMOTE_WRITE or REMOTE_ATOMIC needs LOCAL_WRITE', rule);
    }
    if (access & ~IB_ACCESS_SUPPORTED) throw new SimError('EINVAL', op, `access 0x${access.toString(16)} has unknown bits`, rule);
    if ((access & IBV_ACCESS_ON_DEMAND) && !this.device.odpCapable) {
      throw new SimError('EOPNOTSUPP', op, `${this.device.name} has no on-demand paging`, rule);
    }
  }

  /** efa_check_mr_access: optional bits dropped, then only LOCAL_WRITE and the RDMA caps. EOPNOTSUPP. */
  private _efaAccess(op: string, access: number, rule?: string): number {
    const a = access & ~IBV_ACCESS_OPTIONAL_RANGE;
    const o = this.device.opts;
    const supported = IBV_ACCESS_LOCAL_WRITE | (o.rdmaRead ? IBV_ACCESS_REMOTE_READ : 0) | (o.rdmaWrite ? IBV_ACCESS_REMOTE_WRITE : 0);
    if (a & ~supported) throw new SimError('EOPNOTSUPP', op, `${this.device.name} does not support access 0x${(a & ~supported).toString(16)}`, rule);
    return a;
  }

  private _checkPd(op: string, pd: IbvPd): void {
    if (!(pd instanceof IbvPd) || pd.context !== this || pd.dead) throw new SimError('EINVAL', op, 'pd is not a live PD of this context');
  }

  /**
   * ibv_reg_mr_iova over process memory: [addr, addr + length) of `buf` (default: all of it),
   * addressed by the NIC at `iova` (default: addr). EINVAL for a page-offset mismatch of addr and
   * iova, bad access (ib_check_mr_access), zero pages or wrap; EFAULT outside `buf`; EOPNOTSUPP
   * for ON_DEMAND without ODP and for access an EFA-like NIC lacks. Pins the pages and maps them
   * with the NIC's DMA API (dma_map_sgtable errors pass through).
   */
  regMr(pd: IbvPd, buf: UserBuffer, access: number, opts: { addr?: bigint; length?: number; iova?: bigint } = {}): IbvMr {
    const op = 'ibv_reg_mr';
    this._checkPd(op, pd);
    const addr = opts.addr ?? buf.addr;
    const length = opts.length ?? buf.length;
    const iova = opts.iova ?? addr;
    if (!Number.isInteger(access)) throw new SimError('EINVAL', op, 'access must be an integer');
    if (addr % PAGE !== iova % PAGE) throw new SimError('EINVAL', op, `addr and iova differ in their page offset`);
    this._checkMrAccess(op, access);
    if (!Number.isSafeInteger(length) || length < 0 || addr + BigInt(length) > U64_MAX) {
      throw new SimError('EINVAL', op, `length ${length} wraps or is invalid`);
    }
    const first = addr - (addr % PAGE);
    const npages = Number((addr + BigInt(length) + PAGE - 1n - first) / PAGE);
    if (length === 0 || npages === 0) throw new SimError('EINVAL', op, 'the MR covers no page');
    const bufFirst = buf.addr - (buf.addr % PAGE);
    if (addr < buf.addr || addr + BigInt(length) > buf.addr + BigInt(buf.length)) {
      throw new SimError('EFAULT', op, `[0x${addr.toString(16)}, +${length}) is not mapped in the process`);
    }
    let eff = access;
    if (this.device.kind === 'pinned') eff = this._efaAccess(op, access);
    const firstIdx = Number((first - bufFirst) / PAGE);
    const pages = buf.pages.slice(firstIdx, firstIdx + npages);
    const mem = this.device.machine.sim.memory;
    const pinned: bigint[] = [];
    try {
      for (const pa of pages) {
        mem.pinPage(pa);
        pinned.push(pa);
      }
    } catch (e) {
      for (const pa of pinned) mem.pinPage(pa, false);
      throw e;
    }
    const sgl = ScatterList.fromPages(pages);
    const r = this.device.dma.mapSgtable(sgl, BIDI);
    if (r < 0) {
      for (const pa of pinned) mem.pinPage(pa, false);
      throw SimError.fromStatus(r, op, 'dma_map_sgtable failed');
    }
    const mr = new IbvMr(pd, 'user', addr, length, iova, eff);
    const mtt: MttSeg[] = [];
    let start = 0n;
    for (let i = 0; i < sgl.nents; i++) {
      const len = BigInt(sgl.dmaLength[i]!);
      mtt.push({ start, dmaAddress: sgl.dmaAddress[i]!, length: len });
      start += len;
    }
    mr._mtt = mtt;
    mr._sgl = sgl;
    mr._pinnedPages = pinned;
    mr._base = addr % PAGE;
    mr.lkey = mr.rkey = this.device._allocKey(mr);
    pd._users++;
    this.device._emit('reg_mr', { type: 'user', addr, length, iova, access: eff, nents: sgl.nents }, { lkey: mr.lkey });
    return mr;
  }

  /**
   * ibv_reg_dmabuf_mr(pd, offset, length, iova, fd, access) through uverbs REG_DMABUF_MR (IM-01),
   * the driver (IM-04 pinned / IM-06 odp) and ib_umem_dmabuf_get (IM-02). Errors carry the
   * kernel's errno; the exporter's (e.g. EPERM at attach, DB-09) pass through.
   */
  regDmabufMr(pd: IbvPd, offset: bigint | number, length: number, iova: bigint | number, fd: number, access: number): IbvMr {
    const op = 'ibv_reg_dmabuf_mr';
    const dev = this.device;
    this._checkPd(op, pd);
    const off = BigInt(offset);
    const va = BigInt(iova);
    if (!dev.opts.regDmabufMr) throw new SimError('EOPNOTSUPP', op, `${dev.name} has no reg_user_mr_dmabuf`, 'IM-01');
    if (off < 0n || off > U64_MAX || va < 0n || va > U64_MAX || !Number.isSafeInteger(length) || length < 0) {
      throw new SimError('EINVAL', op, 'offset, length and iova must be u64 values', 'IM-01');
    }
    if (off % PAGE !== va % PAGE) throw new SimError('EINVAL', op, `offset and iova differ in their page offset`, 'IM-01');
    if (!Number.isInteger(access) || access < 0 || access & ~REG_DMABUF_MR_ACCESS_MASK) {
      throw new SimError('EINVAL', op, `access 0x${access.toString(16)} has bits REG_DMABUF_MR does not accept`, 'IM-01');
    }
    this._checkMrAccess(op, access, 'IM-01');
    const len = BigInt(length);
    let mr: IbvMr;
    if (dev.kind === 'pinned') {
      const eff = this._efaAccess(op, access, 'IM-04');
      mr = new IbvMr(pd, 'dmabuf', off, length, va, eff);
      const umem = UmemDmabuf.getPinned(this.process, dev.importer, off, len, fd, eff, (att: DmaBufAttachment) => {
        dev._emit('unexpected_move', { message: 'Invalidate callback should not be called when memory is pinned', attachmentId: att.id }, { lkey: mr.lkey });
      });
      mr._umem = umem;
      umem.private = mr;
      mr._mtt = umem.segments.map((s) => ({ start: s.start, dmaAddress: s.dmaAddress, length: s.length }));
      mr._base = umem.firstByteOffset;
    } else {
      if (!dev.opts.configOdp) throw new SimError('EOPNOTSUPP', op, 'CONFIG_INFINIBAND_ON_DEMAND_PAGING is off', 'IM-06');
      if (!dev.opts.umrExtendedTranslationOffset && len >= BigInt(MLX5_MAX_UMR_PAGES) * PAGE) {
        throw new SimError('EINVAL', op, `length ${length} is too big for a UMR without extended translation offset`, 'IM-06');
      }
      mr = new IbvMr(pd, 'dmabuf', off, length, va, access);
      const umem = UmemDmabuf.get(this.process, dev.importer, off, len, fd, access, {
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
    mr.lkey = mr.rkey = dev._allocKey(mr);
    pd._users++;
    dev._emit('reg_mr', { type: 'dmabuf', offset: off, length, iova: va, fd, access: mr.access, segments: mr._mtt?.length ?? 0 }, { lkey: mr.lkey });
    return mr;
  }

  /**
   * ibv_dereg_mr. Dma-buf MRs: zap the translation and release the umem (IM-05: unmap, unpin,
   * detach, put). Deregistering an MR a second time does nothing.
   */
  deregMr(mr: IbvMr): void {
    if (mr.deregistered) return;
    const dev = this.device;
    if (mr.device !== dev) throw new SimError('EINVAL', 'ibv_dereg_mr', 'the MR belongs to another device');
    mr.deregistered = true;
    dev._mrs.delete(mr.lkey >>> 8);
    mr.pd._users--;
    if (mr._umem) {
      const umem = mr._umem;
      if (dev.kind === 'odp') {
        umem.dmabuf.kernel._withResvLock(umem.dmabuf.resv, () => {
          mr._mtt = null;
          umem.unmapPages();
        });
      }
      mr._mtt = null;
      umem.release();
    } else if (mr._sgl) {
      dev.dma.unmapSg(mr._sgl, BIDI);
      const mem = dev.machine.sim.memory;
      for (const pa of mr._pinnedPages) mem.pinPage(pa, false);
      mr._mtt = null;
    }
    dev._emit('dereg_mr', { type: mr.type }, { lkey: mr.lkey });
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

/** mlx5_ib_dmabuf_invalidate_cb (IM-06): resv must be held; if mapped, zap the MTT and unmap. */
function odpInvalidate(dev: RdmaDevice, att: DmaBufAttachment): void {
  const umem = UmemDmabuf.of(att);
  const k = att.dmabuf.kernel;
  k.checkResvHeld(att.dmabuf.resv, true, 'mlx5_ib_dmabuf_invalidate_cb', 'DB-16', att._ids());
  const mr = umem?.private as IbvMr | undefined;
  if (!umem || !mr || !umem.mapped) return;
  mr._mtt = null;
  umem.unmapPages();
  mr.invalidations++;
  dev.stats.invalidations++;
  dev._emit('invalidate', { generation: att.dmabuf.moveGeneration }, { lkey: mr.lkey });
}

/**
 * Connects two RC QPs to each other: RESET -> INIT (qp_access_flags) -> RTR (dest QPN) -> RTS.
 * @param accessFlags the responders' qp_access_flags. @default LOCAL_WRITE | REMOTE_WRITE | REMOTE_READ
 */
export function connectRcQps(a: IbvQp, b: IbvQp, opts: { accessFlags?: number; rnrRetry?: number } = {}): void {
  const accessFlags = opts.accessFlags ?? (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
  for (const [q, r] of [[a, b], [b, a]] as const) {
    q.modify({ state: 'INIT', accessFlags });
    q.modify({ state: 'RTR', destQpNum: r.qpNum });
  }
  for (const q of [a, b]) q.modify({ state: 'RTS', ...(opts.rnrRetry !== undefined ? { rnrRetry: opts.rnrRetry } : {}) });
}
