import { describe, expect, it } from 'vitest';
import { SimError } from '../../../bindings/errors.js';
import { PAGE_SIZE } from '../../../src/dma-buf/index.js';
import {
  IBV_ACCESS_LOCAL_WRITE as LW, IBV_ACCESS_REMOTE_WRITE as RW, IBV_ACCESS_REMOTE_READ as RR, MLX5_MAX_UMR_PAGES,
} from '../../../src/drivers/rdma/index.js';
import { userMemory, bytes, exporter, pair } from './helpers/setup.js';

function errOf(fn: () => unknown): SimError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimError) return e;
    throw e;
  }
  throw new Error('expected a SimError');
}

const SIZE = 8 * PAGE_SIZE;

describe('mlx5-like on-demand NIC (IM-06)', () => {
  it('IM-06: without CONFIG_INFINIBAND_ON_DEMAND_PAGING registration is EOPNOTSUPP', async () => {
    const { m, proc, b } = await pair({ responderOpts: { configOdp: false } });
    const { fd } = exporter(m, proc, { size: SIZE });
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW));
    expect([e.code, e.rule]).toEqual(['EOPNOTSUPP', 'IM-06']);
  });

  it('IM-06: a length too big for a UMR (no extended translation offset) is EINVAL', async () => {
    const { m, proc, b } = await pair({ responderOpts: { umrExtendedTranslationOffset: false } });
    const big = MLX5_MAX_UMR_PAGES * PAGE_SIZE;
    const { fd } = exporter(m, proc, { size: big });
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, 0, big, 0, fd, LW));
    expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-06']);
    expect(b.ctx.regDmabufMr(b.pd, 0, big - PAGE_SIZE, 0, fd, LW).length).toBe(big - PAGE_SIZE);
  });

  it('IM-06: registration attaches dynamically with allow_peer2peer, does not pin, and maps at once', async () => {
    const { m, proc, b } = await pair();
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW);
    const att = buf.attachments[0]!;
    expect(att.isDynamic()).toBe(true);
    expect(att.peer2peer).toBe(true);
    expect(exp.pins).toBe(0);
    expect(exp.calls.map((c) => [c.op, c.locked])).toEqual([['attach', false], ['map', true]]);
    expect(mr.mapped).toBe(true);
    // The MR's DMA addresses are IOVAs of nic0's domain, not the exporter's physical frames.
    expect(mr.translation[0]!.dmaAddress).not.toBe(exp.backing.phys);
  });

  it('IM-06: write, move (move_notify invalidates), write again (page fault re-maps): every byte is in the new place', async () => {
    const { m, proc, a, b } = await pair();
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0x5000_0000n, fd, LW | RW | RR);
    const src = userMemory(a, SIZE);
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    const first = bytes(SIZE / 2, 7);
    src.write(0, first);
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: SIZE / 2, lkey: smr.lkey }], remoteAddr: 0x5000_0000n, rkey: mr.rkey });
    expect(a.cq.poll()).toEqual([{ wrId: 1, status: 'SUCCESS', opcode: 'RDMA_WRITE', byteLen: SIZE / 2, qpNum: a.qp.qpNum }]);
    expect(exp.read(0, SIZE / 2)).toEqual(first);

    const oldPhys = exp.backing.phys;
    const moved = exp.move();
    expect(moved.to).not.toBe(oldPhys);
    expect(mr.mapped).toBe(false); // MTT zapped
    expect(mr.umem!.mapped).toBe(false); // and unmapped, under the exporter's resv lock
    expect(exp.liveTables).toBe(0);
    expect(mr.invalidations).toBe(1);
    expect(exp.read(0, SIZE / 2)).toEqual(first); // the exporter copied the bytes

    const second = bytes(SIZE / 2, 9);
    src.write(SIZE / 2, second);
    a.qp.postSend({
      wrId: 2, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr + BigInt(SIZE / 2), length: SIZE / 2, lkey: smr.lkey }],
      remoteAddr: 0x5000_0000n + BigInt(SIZE / 2), rkey: mr.rkey,
    });
    expect(a.cq.poll()[0]!.status).toBe('SUCCESS');
    expect(mr.mapped).toBe(true);
    expect(mr.pageFaults).toBe(1);
    expect(b.dev.stats).toEqual({ invalidations: 1, pageFaults: 1, remaps: 1 });
    expect(b.dev.events.filter((e) => ['invalidate', 'page_fault', 'remap'].includes(e.kind)).map((e) => e.kind))
      .toEqual(['invalidate', 'page_fault', 'remap']);
    // All bytes are in the new backing, read straight from memory.
    expect(exp.read(0, SIZE)).toEqual(new Uint8Array([...first, ...second]));
    // And an RDMA READ through the re-mapped MR returns them.
    const dst = userMemory(a, SIZE);
    const dmr = a.ctx.regMr(a.pd, dst.addr, dst.length, LW);
    a.qp.postSend({ wrId: 3, opcode: 'RDMA_READ', sgList: [{ addr: dst.addr, length: SIZE, lkey: dmr.lkey }], remoteAddr: 0x5000_0000n, rkey: mr.rkey });
    expect(a.cq.poll()[0]).toMatchObject({ status: 'SUCCESS', opcode: 'RDMA_READ', byteLen: SIZE });
    expect(dst.read(0, SIZE)).toEqual(exp.read(0, SIZE));
    expect(buf.attachments[0]!.mappedTables).toHaveLength(1);
  });

  it('IM-06: the invalidate callback requires the resv lock (a WARN when called without it)', async () => {
    const { m, proc, b } = await pair();
    const { fd, buf } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW);
    const att = buf.attachments[0]!;
    att.importerOps!.moveNotify(att);
    const w = m.kernel.events.filter((e) => e.kind === 'warn' && e.detail.op === 'mlx5_ib_dmabuf_invalidate_cb');
    expect(w).toHaveLength(1);
    expect(w[0]!.rule).toBe('DB-16');
    expect(mr.mapped).toBe(false);
  });

  it('IM-06: a move_notify when not mapped does nothing; a second move before any access faults only once', async () => {
    const { m, proc, a, b } = await pair();
    const { fd, exp } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW);
    exp.move();
    exp.move();
    expect(mr.invalidations).toBe(1);
    const src = userMemory(a, 100);
    src.write(0, bytes(100, 3));
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 100, lkey: smr.lkey }], remoteAddr: 0x20n, rkey: mr.rkey });
    expect(a.cq.poll()[0]!.status).toBe('SUCCESS');
    expect(mr.pageFaults).toBe(1);
    expect(exp.read(0x20, 100)).toEqual(bytes(100, 3));
  });

  it('IM-06: a page fault the exporter refuses completes with REM_ACCESS_ERR (responder) / LOC_PROT_ERR (requester)', async () => {
    const { m, proc, a, b } = await pair();
    const { fd, exp } = exporter(m, proc, { size: SIZE });
    const rmr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW);
    const lmr = a.ctx.regDmabufMr(a.pd, 0, SIZE, 0, fd, LW);
    const src = userMemory(a, 64);
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    exp.move();
    exp.failMap = 'ENOMEM';
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 64, lkey: smr.lkey }], remoteAddr: 0n, rkey: rmr.rkey });
    const wc = a.cq.poll();
    expect(wc[0]).toMatchObject({ wrId: 1, status: 'REM_ACCESS_ERR' });
    expect(wc[0]!.detail).toContain('ENOMEM');
    expect(b.qp.state).toBe('ERR');
    expect(a.qp.state).toBe('ERR');
    // Requester-side fault, on a fresh pair of QPs.
    const { m: m2, proc: p2, a: a2, b: b2 } = await pair();
    const e2 = exporter(m2, p2, { size: SIZE });
    const l2 = a2.ctx.regDmabufMr(a2.pd, 0, SIZE, 0, e2.fd, LW);
    const dst = userMemory(b2, 64);
    const d2 = b2.ctx.regMr(b2.pd, dst.addr, dst.length, LW | RW);
    e2.exp.move();
    e2.exp.failMap = 'EIO';
    a2.qp.postSend({ wrId: 5, opcode: 'RDMA_WRITE', sgList: [{ addr: 0n, length: 64, lkey: l2.lkey }], remoteAddr: dst.addr, rkey: d2.rkey });
    expect(a2.cq.poll()[0]).toMatchObject({ wrId: 5, status: 'LOC_PROT_ERR' });
    expect(b2.qp.state).toBe('RTS');
    void lmr;
  });

  it('IM-06/DB-09: [latest] no attach-time mapping: the registration-time fault fails with the exporter\'s EPERM', async () => {
    const { m, proc, b } = await pair({ profile: 'latest' });
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE, dynamic: false, p2pOnly: true, clearPeer2peer: true });
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW));
    expect(e.code).toBe('EPERM');
    expect(exp.calls.map((c) => c.op)).toEqual(['attach', 'map', 'detach']);
    expect(buf.attachments).toHaveLength(0);
    expect(buf.fileCount).toBe(1);
  });

  it('IM-06: strict locking: the whole register/move/fault/dereg cycle follows DB-25 (no warnings)', async () => {
    const { m, proc, a, b } = await pair({ strictLocking: true });
    const { fd, exp } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0x1000, SIZE - 0x1000, 0x1000, fd, LW | RW);
    const src = userMemory(a, 256);
    src.write(0, bytes(256, 4));
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    exp.move();
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 256, lkey: smr.lkey }], remoteAddr: 0x1f00n, rkey: mr.rkey });
    expect(a.cq.poll()[0]!.status).toBe('SUCCESS');
    expect(exp.read(0x1f00, 256)).toEqual(bytes(256, 4));
    b.ctx.deregMr(mr);
    expect(m.kernel.events.filter((e) => e.kind === 'warn')).toEqual([]);
  });
});
