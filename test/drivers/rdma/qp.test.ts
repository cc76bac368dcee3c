import { describe, expect, it } from 'vitest';
import { SimError } from '../../../bindings/errors.js';
import { PAGE_SIZE, SimProcess } from '../../../src/dma-buf/index.js';
import {
  IBV_ACCESS_LOCAL_WRITE as LW, IBV_ACCESS_REMOTE_WRITE as RW, IBV_ACCESS_REMOTE_READ as RR,
  IBV_ACCESS_ON_DEMAND, connectRcQps,
} from '../../../src/drivers/rdma/index.js';
import { userMemory, bytes, exporter, machine, pair, side } from './helpers/setup.js';

function errOf(fn: () => unknown): SimError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimError) return e;
    throw e;
  }
  throw new Error('expected a SimError');
}

describe('ibv_reg_mr over process memory', () => {
  it('pins the pages, maps them with the NIC\'s DMA API, unpins at dereg (twice is harmless)', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel, { memory: m.sim.memory });
    const s = side(m, proc, 'nic0', 'odp');
    const buf = userMemory(s, 3 * PAGE_SIZE, { pageOffset: 0x100, scattered: true });
    const mr = s.ctx.regMr(s.pd, buf.addr, buf.length, LW | RW);
    expect(buf.pages).toHaveLength(4);
    for (const pa of buf.pages) expect(m.sim.memory.frameInfo(pa).pincount).toBe(1);
    expect(s.dev.dma.stats().sgLists).toBe(1);
    s.ctx.deregMr(mr);
    s.ctx.deregMr(mr);
    for (const pa of buf.pages) expect(m.sim.memory.frameInfo(pa).pincount).toBe(0);
    expect(s.dev.dma.stats().sgLists).toBe(0);
  });

  it('validates like uverbs REG_MR: page offsets, ib_check_mr_access, ON_DEMAND, zero length, range', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel, { memory: m.sim.memory });
    const s = side(m, proc, 'nic1', 'pinned');
    const o = side(m, proc, 'nic0', 'odp');
    const buf = userMemory(s, 2 * PAGE_SIZE);
    expect(errOf(() => s.ctx.regMrIova(s.pd, buf.addr, buf.length, 0x1234n, LW)).code).toBe('EINVAL');
    expect(errOf(() => s.ctx.regMr(s.pd, buf.addr, buf.length, RW)).code).toBe('EINVAL');
    expect(errOf(() => s.ctx.regMr(s.pd, buf.addr, buf.length, LW | (1 << 12))).code).toBe('EINVAL');
    expect(errOf(() => s.ctx.regMr(s.pd, buf.addr, buf.length, LW | IBV_ACCESS_ON_DEMAND)).code).toBe('EOPNOTSUPP');
    expect(errOf(() => s.ctx.regMr(s.pd, buf.addr, 0, LW)).code).toBe('EINVAL');
    expect(errOf(() => s.ctx.regMr(s.pd, buf.addr, 3 * PAGE_SIZE, LW)).code).toBe('EFAULT');
    expect(o.ctx.regMr(o.pd, buf.addr, buf.length, LW | IBV_ACCESS_ON_DEMAND).access).toBe(LW | IBV_ACCESS_ON_DEMAND);
  });
});

async function sysPair() {
  const p = await pair({ requester: 'pinned', responder: 'odp' });
  const src = userMemory(p.a, 4 * PAGE_SIZE, { scattered: true });
  const dst = userMemory(p.b, 4 * PAGE_SIZE, { pageOffset: 0x40 });
  const smr = p.a.ctx.regMr(p.a.pd, src.addr, src.length, LW | RW | RR);
  const dmr = p.b.ctx.regMr(p.b.pd, dst.addr, dst.length, LW | RW | RR);
  return { ...p, src, dst, smr, dmr };
}

describe('RC queue pairs', () => {
  it('RDMA WRITE with a scatter list lands in the responder\'s memory through both IOMMU domains', async () => {
    const { a, src, dst, smr, dmr } = await sysPair();
    const data = bytes(4 * PAGE_SIZE, 11);
    src.write(0, data);
    a.qp.postSend({
      wrId: 10n, opcode: 'RDMA_WRITE',
      sgList: [
        { addr: src.addr + 0x800n, length: 0x1000, lkey: smr.lkey },
        { addr: src.addr + 0x3000n, length: 0x900, lkey: smr.lkey },
      ],
      remoteAddr: dst.addr + 0x10n, rkey: dmr.rkey,
    });
    expect(a.cq.poll()).toEqual([{ wrId: 10n, status: 'SUCCESS', opcode: 'RDMA_WRITE', byteLen: 0x1900, qpNum: a.qp.qpNum }]);
    expect(dst.read(0x10, 0x1000)).toEqual(data.subarray(0x800, 0x1800));
    expect(dst.read(0x1010, 0x900)).toEqual(data.subarray(0x3000, 0x3900));
    expect(dst.read(0, 0x10)).toEqual(new Uint8Array(0x10));
  });

  it('RDMA READ fetches remote bytes into local SGEs', async () => {
    const { a, src, dst, smr, dmr } = await sysPair();
    dst.write(0, bytes(0x2000, 5));
    a.qp.postSend({
      wrId: 1, opcode: 'RDMA_READ',
      sgList: [{ addr: src.addr, length: 0x1000, lkey: smr.lkey }, { addr: src.addr + 0x2000n, length: 0x1000, lkey: smr.lkey }],
      remoteAddr: dst.addr, rkey: dmr.rkey,
    });
    expect(a.cq.poll()[0]).toMatchObject({ status: 'SUCCESS', opcode: 'RDMA_READ', byteLen: 0x2000 });
    expect(src.read(0, 0x1000)).toEqual(bytes(0x2000, 5).subarray(0, 0x1000));
    expect(src.read(0x2000, 0x1000)).toEqual(bytes(0x2000, 5).subarray(0x1000));
  });

  it('SEND is received into the posted receive\'s scatter list; recv completion has the byte count', async () => {
    const { a, b, src, dst, smr, dmr } = await sysPair();
    src.write(0, bytes(300, 2));
    b.qp.postRecv({ wrId: 7, sgList: [{ addr: dst.addr, length: 100, lkey: dmr.lkey }, { addr: dst.addr + 0x1000n, length: 500, lkey: dmr.lkey }] });
    a.qp.postSend({ wrId: 8, opcode: 'SEND', sgList: [{ addr: src.addr, length: 300, lkey: smr.lkey }] });
    expect(a.cq.poll()).toEqual([{ wrId: 8, status: 'SUCCESS', opcode: 'SEND', byteLen: 300, qpNum: a.qp.qpNum }]);
    expect(b.cq.poll()).toEqual([{ wrId: 7, status: 'SUCCESS', opcode: 'RECV', byteLen: 300, qpNum: b.qp.qpNum }]);
    expect(dst.read(0, 100)).toEqual(bytes(300, 2).subarray(0, 100));
    expect(dst.read(0x1000, 200)).toEqual(bytes(300, 2).subarray(100));
  });

  it('a SEND waits for a receive with rnr_retry 7, and fails RNR_RETRY_EXC_ERR with rnr_retry 0', async () => {
    const { a, b, src, dst, smr, dmr } = await sysPair();
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [{ addr: src.addr, length: 16, lkey: smr.lkey }] });
    expect(a.cq.poll()).toEqual([]);
    expect(a.qp.outstandingSends).toBe(1);
    b.qp.postRecv({ wrId: 2, sgList: [{ addr: dst.addr, length: 16, lkey: dmr.lkey }] });
    expect(a.cq.poll()[0]!.status).toBe('SUCCESS');
    const p = await pair();
    const s2 = userMemory(p.a, 16);
    const m2 = p.a.ctx.regMr(p.a.pd, s2.addr, s2.length, LW);
    const qa = p.a.ctx.createQp(p.a.pd, { sendCq: p.a.cq });
    const qb = p.b.ctx.createQp(p.b.pd, { sendCq: p.b.cq });
    connectRcQps(qa, qb, { rnrRetry: 0 });
    qa.postSend({ wrId: 3, opcode: 'SEND', sgList: [{ addr: s2.addr, length: 16, lkey: m2.lkey }] });
    expect(p.a.cq.poll()[0]).toMatchObject({ wrId: 3, status: 'RNR_RETRY_EXC_ERR' });
    expect(qa.state).toBe('ERR');
  });

  it('a bad lkey is LOC_PROT_ERR; the QP goes to ERR and later WRs flush with WR_FLUSH_ERR', async () => {
    const { a, src, dst, smr, dmr } = await sysPair();
    a.qp.postSend([
      { wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 8, lkey: smr.lkey ^ 0x1 }], remoteAddr: dst.addr, rkey: dmr.rkey },
      { wrId: 2, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 8, lkey: smr.lkey }], remoteAddr: dst.addr, rkey: dmr.rkey },
    ]);
    a.qp.postSend({ wrId: 3, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 8, lkey: smr.lkey }], remoteAddr: dst.addr, rkey: dmr.rkey });
    expect(a.cq.poll().map((w) => [w.wrId, w.status])).toEqual([[1, 'LOC_PROT_ERR'], [2, 'WR_FLUSH_ERR'], [3, 'WR_FLUSH_ERR']]);
    expect(a.qp.state).toBe('ERR');
  });

  it('an lkey out of the MR\'s bounds, or of another PD, is LOC_PROT_ERR; an RDMA READ into an MR without LOCAL_WRITE too', async () => {
    for (const bad of ['bounds', 'pd', 'read-into-ro'] as const) {
      const { a, src, dst, smr, dmr } = await sysPair();
      let lkey = smr.lkey;
      let len = 16;
      let opcode: 'RDMA_WRITE' | 'RDMA_READ' = 'RDMA_WRITE';
      if (bad === 'bounds') len = 4 * PAGE_SIZE + 1;
      if (bad === 'pd') lkey = a.ctx.regMr(a.ctx.allocPd(), src.addr, src.length, LW).lkey;
      if (bad === 'read-into-ro') {
        lkey = a.ctx.regMr(a.pd, src.addr, src.length, 0).lkey;
        opcode = 'RDMA_READ';
      }
      a.qp.postSend({ wrId: 1, opcode, sgList: [{ addr: src.addr, length: len, lkey }], remoteAddr: dst.addr, rkey: dmr.rkey });
      expect(a.cq.poll()[0]).toMatchObject({ wrId: 1, status: 'LOC_PROT_ERR' });
    }
  });

  it('bad rkey, missing REMOTE_WRITE/READ, out of bounds: REM_ACCESS_ERR; the responder QP errors and flushes its receives', async () => {
    for (const bad of ['rkey', 'no-remote-write', 'no-remote-read', 'bounds'] as const) {
      const { a, b, src, dst, smr, dmr } = await sysPair();
      b.qp.postRecv({ wrId: 99, sgList: [{ addr: dst.addr, length: 16, lkey: dmr.lkey }] });
      let rkey = dmr.rkey;
      let remoteAddr = dst.addr;
      let opcode: 'RDMA_WRITE' | 'RDMA_READ' = 'RDMA_WRITE';
      if (bad === 'rkey') rkey = 0xdead00;
      if (bad === 'no-remote-write') rkey = b.ctx.regMr(b.pd, dst.addr, dst.length, LW | RR).rkey;
      if (bad === 'no-remote-read') {
        rkey = b.ctx.regMr(b.pd, dst.addr, dst.length, LW | RW).rkey;
        opcode = 'RDMA_READ';
      }
      if (bad === 'bounds') remoteAddr = dst.addr + BigInt(dst.length) - 8n;
      a.qp.postSend({ wrId: 1, opcode, sgList: [{ addr: src.addr, length: 16, lkey: smr.lkey }], remoteAddr, rkey });
      expect(a.cq.poll()[0]).toMatchObject({ wrId: 1, status: 'REM_ACCESS_ERR' });
      expect(b.qp.state).toBe('ERR');
      expect(b.cq.poll()).toEqual([{ wrId: 99, status: 'WR_FLUSH_ERR', opcode: 'RECV', byteLen: 0, qpNum: b.qp.qpNum }]);
      expect(b.dev.events.some((e) => e.kind === 'async_event' && e.detail.event === 'QP_ACCESS_ERR')).toBe(true);
    }
  });

  it('a SEND longer than the receive: LOC_LEN_ERR on the receive, REM_INV_REQ_ERR on the send', async () => {
    const { a, b, src, dst, smr, dmr } = await sysPair();
    b.qp.postRecv({ wrId: 2, sgList: [{ addr: dst.addr, length: 10, lkey: dmr.lkey }] });
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [{ addr: src.addr, length: 11, lkey: smr.lkey }] });
    expect(a.cq.poll()[0]).toMatchObject({ wrId: 1, status: 'REM_INV_REQ_ERR' });
    expect(b.cq.poll()[0]).toMatchObject({ wrId: 2, status: 'LOC_LEN_ERR', opcode: 'RECV' });
  });

  it('posting before RTS is EINVAL; too many SGEs is EINVAL', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel, { memory: m.sim.memory });
    const s = side(m, proc, 'nic0', 'odp');
    expect(errOf(() => s.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [] })).code).toBe('EINVAL');
    const t = side(m, proc, 'nic1', 'odp');
    connectRcQps(s.qp, t.qp);
    const sge = { addr: 0n, length: 1, lkey: 0 };
    expect(errOf(() => s.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: Array(9).fill(sge) })).code).toBe('EINVAL');
    expect(errOf(() => s.qp.modify({ state: 'RTR', destQpNum: 1 })).code).toBe('EINVAL');
  });
});

describe('P2P dma-buf MRs: the bytes land in device memory', () => {
  it('BUS_ADDR: a dma-buf over gaudi0\'s BAR imported by nic0 uses bus addresses routed by the switch', async () => {
    const { m, proc, a, b } = await pair({ responder: 'pinned' });
    const gaudi = m.pci('gaudi0');
    const { fd, exp } = exporter(m, proc, { size: 4 * PAGE_SIZE, bar: { provider: gaudi, index: 0, offset: 0x20_0000n } });
    const mr = b.ctx.regDmabufMr(b.pd, 0, 4 * PAGE_SIZE, 0, fd, LW | RW | RR);
    const bar = gaudi.bar(0)!;
    expect(mr.translation).toEqual([{ dmaAddress: bar.busAddress + 0x20_0000n, length: 4n * BigInt(PAGE_SIZE) }]);
    const src = userMemory(a, 5000);
    src.write(0, bytes(5000, 8));
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 5000, lkey: smr.lkey }], remoteAddr: 100n, rkey: mr.rkey });
    expect(a.cq.poll()[0]!.status).toBe('SUCCESS');
    expect(m.sim.memory.read(bar.cpuAddress + 0x20_0000n + 100n, 5000)).toEqual(bytes(5000, 8));
    expect(exp.read(100, 5000)).toEqual(bytes(5000, 8));
  });

  it('THRU_HOST_BRIDGE: a dma-buf over gpu0\'s BAR is reached through nic0\'s IOMMU (dma_map_resource IOVAs)', async () => {
    const { m, proc, a, b } = await pair();
    const gpu = m.pci('gpu0');
    const { fd } = exporter(m, proc, { size: 2 * PAGE_SIZE, bar: { provider: gpu, index: 0 } });
    const mr = b.ctx.regDmabufMr(b.pd, 0, 2 * PAGE_SIZE, 0, fd, LW | RW | RR);
    const bar = gpu.bar(0)!;
    expect(mr.translation[0]!.dmaAddress).not.toBe(bar.busAddress);
    const src = userMemory(a, 64);
    src.write(0, bytes(64, 1));
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 64, lkey: smr.lkey }], remoteAddr: 0x1000n, rkey: mr.rkey });
    expect(a.cq.poll()[0]!.status).toBe('SUCCESS');
    expect(m.sim.memory.read(bar.cpuAddress + 0x1000n, 64)).toEqual(bytes(64, 1));
  });

  it('an IOMMU fault on the responder\'s DMA is REM_ACCESS_ERR; on the requester\'s, LOC_PROT_ERR', async () => {
    const { m, proc, a, b } = await pair({ responder: 'pinned', requester: 'pinned' });
    const bad = exporter(m, proc, { size: PAGE_SIZE });
    bad.exp.bogusDma = 0x7700_0000n;
    const rmr = b.ctx.regDmabufMr(b.pd, 0, PAGE_SIZE, 0, bad.fd, LW | RW);
    const src = userMemory(a, 64);
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 64, lkey: smr.lkey }], remoteAddr: 0n, rkey: rmr.rkey });
    const wc = a.cq.poll()[0]!;
    expect(wc.status).toBe('REM_ACCESS_ERR');
    expect(wc.detail).toContain('EFAULT');
    expect(m.unitOf(b.dev.fn)!.faults().length).toBeGreaterThan(0);

    const p2 = await pair({ responder: 'pinned', requester: 'pinned' });
    const bad2 = exporter(p2.m, p2.proc, { size: PAGE_SIZE });
    bad2.exp.bogusDma = 0x7700_0000n;
    const lmr = p2.a.ctx.regDmabufMr(p2.a.pd, 0, PAGE_SIZE, 0, bad2.fd, LW);
    const dst = userMemory(p2.b, 64);
    const dmr = p2.b.ctx.regMr(p2.b.pd, dst.addr, dst.length, LW | RW);
    p2.a.qp.postSend({ wrId: 2, opcode: 'RDMA_WRITE', sgList: [{ addr: 0n, length: 64, lkey: lmr.lkey }], remoteAddr: dst.addr, rkey: dmr.rkey });
    expect(p2.a.cq.poll()[0]).toMatchObject({ wrId: 2, status: 'LOC_PROT_ERR' });
  });
});
