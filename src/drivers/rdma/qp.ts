/**
 * Completion queues and reliable-connected queue pairs (drivers/infiniband/hw/mlx5/qp.c, cq.c
 * and the wire protocol's responder checks). A work request moves its bytes with one vectored
 * copy of the core's DMA engine: the requester NIC's SGEs and the responder NIC's MR (or receive
 * scatter list) become (source requester + address, destination requester + address, length)
 * descriptors through both MRs' translation tables, so each side is translated by its own NIC's
 * IOMMU domain or switch route, and no byte of the payload passes through JavaScript.
 * Completions carry the status a real HCA reports.
 */
import { SimError, copyDmaRuns, type DmaRun } from '../../index.js';
import {
  IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_ATOMIC, IBV_ACCESS_REMOTE_READ, IBV_ACCESS_REMOTE_WRITE,
  type IbvQpState, type IbvWcOpcode, type IbvWcStatus, type IbvWrOpcode,
} from './constants.js';
import { fabricOf, type RdmaDevice } from './device.js';
import { checkKey, dmaRuns, readyPiece, type Piece } from './mr.js';
import type { IbvContext, IbvPd } from './verbs.js';

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
/** struct ibv_recv_wr: a receive buffer for an incoming SEND. */
export interface IbvRecvWr {
  /** Returned in the work completion. */
  wrId: bigint | number;
  /** Where the message lands, in order (local keys with LOCAL_WRITE). */
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
  /** Completions queued and not yet polled. */
  get pending(): number {
    return this._q.length;
  }
  /** @internal */
  push(wc: IbvWc): void {
    this._q.push(wc);
  }
}

/** struct ibv_qp_init_attr (RC): the CQs and queue capacities of a new QP (ibv_create_qp). */
export interface IbvQpInitAttr {
  /** CQ of send completions. */
  sendCq: IbvCq;
  /** CQ of receive completions. @default sendCq */
  recvCq?: IbvCq;
  /** cap.max_send_wr: send WRs outstanding at once. */
  maxSendWr?: number;
  /** cap.max_recv_wr: receives posted at once. */
  maxRecvWr?: number;
  /** cap.max_send_sge: SGEs per send WR. */
  maxSendSge?: number;
  /** cap.max_recv_sge: SGEs per receive WR. */
  maxRecvSge?: number;
}

/** struct ibv_qp_attr for {@link IbvQp.modify}: the target state and the fields its transition takes. */
export interface IbvQpAttr {
  /** qp_state: the state to move to. */
  state: IbvQpState;
  /** qp_access_flags (RESET->INIT): which remote operations the responder accepts. */
  accessFlags?: number;
  /** dest_qp_num (INIT->RTR). */
  destQpNum?: number;
  /** rnr_retry (RTR->RTS): 7 means retry forever (a SEND waits for a receive). @default 7 */
  rnrRetry?: number;
}

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

  /** The RDMA device (NIC) the QP's protection domain belongs to. */
  get device(): RdmaDevice {
    return this.pd.context.device;
  }
  /** Send WRs posted and not yet completed (e.g. a SEND waiting for a receive). */
  get outstandingSends(): number {
    return this._sq.length;
  }
  /** Receive WRs posted and not yet consumed by a SEND. */
  get postedRecvs(): number {
    return this._rq.length;
  }

  /**
   * ibv_modify_qp: RESET->INIT->RTR->RTS, or to ERR / RESET from any state. ERR flushes the
   * queued WRs (WR_FLUSH_ERR); RESET empties the queues.
   * @throws {@link index!SimError} EINVAL for any other transition, unknown qp_access_flags bits, a dest_qp_num that is
   * not a QP of the fabric (RTR), or an rnr_retry outside 0..7 (RTS).
   */
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
    this.device.emit('qp_state', { from, to }, { qpNum: this.qpNum });
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
   * the error state they complete with WR_FLUSH_ERR. Transfer errors are completions, not throws.
   * @throws {@link index!SimError} EINVAL before RTS, for an opcode other than SEND/RDMA_WRITE/RDMA_READ, or more SGEs
   * than max_send_sge; ENOMEM when the send queue is full.
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

  /**
   * ibv_post_recv: queues receive buffers (flushed at once in ERR) and lets a waiting SEND of
   * the peer run.
   * @throws {@link index!SimError} EINVAL in RESET or for more SGEs than max_recv_sge; ENOMEM when the receive queue is full.
   */
  postRecv(wrs: IbvRecvWr | IbvRecvWr[]): void {
    const op = 'ibv_post_recv';
    for (const wr of Array.isArray(wrs) ? wrs : [wrs]) {
      if (this.state === 'RESET') throw new SimError('EINVAL', op, `QP ${this.qpNum} is in RESET`);
      if (!Array.isArray(wr.sgList) || wr.sgList.length > this.cap.maxRecvSge) {
        throw new SimError('EINVAL', op, `num_sge ${wr.sgList?.length} exceeds max_recv_sge ${this.cap.maxRecvSge}`);
      }
      if (this._rq.length >= this.cap.maxRecvWr) throw new SimError('ENOMEM', op, `receive queue of QP ${this.qpNum} is full`);
      if (this.state === 'ERR') {
        this.complete(this.recvCq, wr.wrId, 'WR_FLUSH_ERR', 'RECV', 0);
        continue;
      }
      this._rq.push(wr);
    }
    this.peerQp()?.progress();
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

  private peerQp(): IbvQp | undefined {
    return this.destQpNum === undefined ? undefined : fabricOf(this.device.machine).qps.get(this.destQpNum);
  }

  /** @internal */
  complete(cq: IbvCq, wrId: bigint | number, status: IbvWcStatus, opcode: IbvWcOpcode, byteLen: number, detail?: string): void {
    const wc: IbvWc = { wrId, status, opcode, byteLen, qpNum: this.qpNum, ...(detail ? { detail } : {}) };
    cq.push(wc);
    if (status !== 'SUCCESS' && status !== 'WR_FLUSH_ERR') this.device.emit('completion', { ...wc }, { qpNum: this.qpNum });
  }

  /** @internal Moves to ERR (completions of the queued WRs flush). */
  toError(): void {
    if (this.state === 'ERR') return;
    this.modify({ state: 'ERR' });
  }

  private _flush(): void {
    for (const wr of this._sq.splice(0)) this.complete(this.sendCq, wr.wrId, 'WR_FLUSH_ERR', wcOpcode(wr.opcode), 0);
    for (const wr of this._rq.splice(0)) this.complete(this.recvCq, wr.wrId, 'WR_FLUSH_ERR', 'RECV', 0);
  }

  private _fail(wr: IbvSendWr, status: IbvWcStatus, detail: string): 'done' {
    this.complete(this.sendCq, wr.wrId, status, wcOpcode(wr.opcode), 0, detail);
    this.toError();
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
    const peer = this.peerQp();
    if (!peer || (peer.state !== 'RTR' && peer.state !== 'RTS') || peer.peerQp() !== this) {
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
          peer.complete(peer.recvCq, recv.wrId, 'LOC_PROT_ERR', 'RECV', 0, `recv sge[${i}]: ${p}`);
          peer.toError();
          return this._fail(wr, 'REM_OP_ERR', 'the responder hit a local protection error on its receive');
        }
        if (p) targets.push(p);
        room += sge.length;
      }
      if (room < total) {
        peer.complete(peer.recvCq, recv.wrId, 'LOC_LEN_ERR', 'RECV', 0, `message of ${total} bytes, receive of ${room}`);
        peer.toError();
        return this._fail(wr, 'REM_INV_REQ_ERR', 'the message is longer than the receive buffers');
      }
      const recvFailed = (why: string): 'done' => {
        peer.complete(peer.recvCq, recv.wrId, 'LOC_PROT_ERR', 'RECV', 0, why);
        peer.toError();
        return this._fail(wr, 'REM_OP_ERR', why);
      };
      const lr = readyAll(locals, false);
      if (lr) return this._fail(wr, 'LOC_PROT_ERR', lr);
      const used = prefix(targets, total);
      const tr = readyAll(used, true);
      if (tr) return recvFailed(tr);
      const r = transfer(locals, used, total);
      if (!r.ok) return r.side === 'src' ? this._fail(wr, 'LOC_PROT_ERR', r.why) : recvFailed(r.why);
      peer.complete(peer.recvCq, recv.wrId, 'SUCCESS', 'RECV', total);
      this.complete(this.sendCq, wr.wrId, 'SUCCESS', 'SEND', total);
      return 'done';
    }
    // RDMA WRITE / READ: the responder checks its QP's access flags and the rkey.
    const remoteFailed = (why: string): 'done' => {
      rdev.emit('async_event', { event: 'QP_ACCESS_ERR', why }, { qpNum: peer.qpNum });
      peer.toError();
      return this._fail(wr, 'REM_ACCESS_ERR', why);
    };
    const need = isRead ? IBV_ACCESS_REMOTE_READ : IBV_ACCESS_REMOTE_WRITE;
    const remote: Piece[] = [];
    if (total > 0) {
      const r = (peer.accessFlags & need) === 0
        ? `the responder QP does not allow ${isRead ? 'REMOTE_READ' : 'REMOTE_WRITE'}`
        : checkKey(rdev, peer.pd, wr.rkey ?? 0, wr.remoteAddr ?? 0n, total, need, 'rkey');
      if (typeof r === 'string') return remoteFailed(r);
      if (r) remote.push(r);
    }
    if (!isRead) {
      // The requester NIC reads its SGEs, the responder NIC writes its MR: one vectored copy.
      const lr = readyAll(locals, false);
      if (lr) return this._fail(wr, 'LOC_PROT_ERR', lr);
      const rr = readyAll(remote, true);
      if (rr) return remoteFailed(rr);
      const r = transfer(locals, remote, total);
      if (!r.ok) return r.side === 'src' ? this._fail(wr, 'LOC_PROT_ERR', r.why) : remoteFailed(r.why);
      this.complete(this.sendCq, wr.wrId, 'SUCCESS', 'RDMA_WRITE', total);
      return 'done';
    }
    // RDMA READ: the responder NIC reads its MR, the requester NIC writes its SGEs.
    const rr = readyAll(remote, false);
    if (rr) return remoteFailed(rr);
    const lr = readyAll(locals, true);
    if (lr) return this._fail(wr, 'LOC_PROT_ERR', lr);
    const r = transfer(remote, locals, total);
    if (!r.ok) return r.side === 'src' ? remoteFailed(r.why) : this._fail(wr, 'LOC_PROT_ERR', r.why);
    this.complete(this.sendCq, wr.wrId, 'SUCCESS', 'RDMA_READ', total);
    return 'done';
  }
}

function wcOpcode(op: IbvWrOpcode): IbvWcOpcode {
  return op;
}

/** readyPiece over a side's pieces: the first failure, or null. */
function readyAll(pieces: readonly Piece[], write: boolean): string | null {
  for (const p of pieces) {
    const f = readyPiece(p, write);
    if (f) return f;
  }
  return null;
}

/** The first `total` bytes of `pieces` (a receive's scatter list is filled only as far as the message goes). */
function prefix(pieces: readonly Piece[], total: number): Piece[] {
  const out: Piece[] = [];
  let left = total;
  for (const p of pieces) {
    if (left === 0) break;
    const n = Math.min(p.length, left);
    out.push(n === p.length ? p : { ...p, length: n });
    left -= n;
  }
  return out;
}

type Transfer = { ok: true } | { ok: false; side: 'src' | 'dst'; why: string };

/**
 * Copies `total` bytes from the pieces `from` (read by their MR's NIC) to the pieces `to`
 * (written by theirs) as one vectored DMA copy: each side's DMA runs through its MTT, paired
 * into descriptors. A failure names the side it happened on.
 */
function transfer(from: readonly Piece[], to: readonly Piece[], total: number): Transfer {
  if (total === 0 || from.length === 0 || to.length === 0) return { ok: true };
  const src: DmaRun[] = [];
  const dst: DmaRun[] = [];
  const fs = dmaRuns(from, BigInt(total), src);
  if (fs) return { ok: false, side: 'src', why: fs };
  const ds = dmaRuns(to, BigInt(total), dst);
  if (ds) return { ok: false, side: 'dst', why: ds };
  const dev = from[0]!.mr.device;
  const r = copyDmaRuns(dev.machine.sim.dma, src, dst);
  if (r.ok) return { ok: true };
  // Errors the IOMMU does not report (EIO, ENOMEM) are charged to the writing side.
  const side = r.fault?.side ?? 'dst';
  const d = r.descriptors[Math.min(r.index, r.descriptors.length - 1)]!;
  const at = r.fault?.iova ?? (side === 'src' ? d.src.addr : d.dst.addr);
  const who = (side === 'src' ? from : to)[0]!.mr.device.name;
  return {
    ok: false, side,
    why: `${who} DMA ${side === 'src' ? 'read' : 'write'} at 0x${at.toString(16)} failed: ${r.code}${r.fault ? ` (${r.fault.reason})` : ''}`,
  };
}

/**
 * Connects two RC QPs to each other: RESET -> INIT (qp_access_flags) -> RTR (dest QPN) -> RTS.
 * @param opts `accessFlags`: the responders' qp_access_flags (default LOCAL_WRITE | REMOTE_WRITE |
 * REMOTE_READ); `rnrRetry`: the rnr_retry of both QPs at RTS (unchanged when absent: 7 on a new QP).
 * @throws {@link index!SimError} EINVAL when a QP is in neither RESET nor INIT, or for what
 * {@link IbvQp.modify} refuses.
 */
export function connectRcQps(a: IbvQp, b: IbvQp, opts: { accessFlags?: number; rnrRetry?: number } = {}): void {
  const accessFlags = opts.accessFlags ?? (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
  for (const [q, r] of [[a, b], [b, a]] as const) {
    q.modify({ state: 'INIT', accessFlags });
    q.modify({ state: 'RTR', destQpNum: r.qpNum });
  }
  for (const q of [a, b]) q.modify({ state: 'RTS', ...(opts.rnrRetry !== undefined ? { rnrRetry: opts.rnrRetry } : {}) });
}
