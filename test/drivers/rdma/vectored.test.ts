/**
 * Bytes stay in the core: every RDMA work request moves its payload with one vectored DMA copy
 * (the requester NIC's SGEs to the responder NIC's MR or receive scatter list), translated on
 * each side by that NIC's IOMMU domain; no host read or write of the payload happens on the way.
 * Pins go by contiguous run; the RDMA state of two machines is independent.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PAGE_SIZE, SimProcess, type Machine } from '../../../src/index.js';
import {
  IBV_ACCESS_LOCAL_WRITE as LW, IBV_ACCESS_REMOTE_WRITE as RW, IBV_ACCESS_REMOTE_READ as RR,
} from '../../../src/drivers/rdma/index.js';
import { userMemory, bytes, exporter, machine, pair, side } from './helpers/setup.js';

/** Spies on every host path a payload could take through JavaScript. */
function hostSpies(m: Machine) {
  const mem = m.sim.memory;
  const dma = m.sim.dma;
  return [
    vi.spyOn(mem, 'read'), vi.spyOn(mem, 'write'), vi.spyOn(mem, 'readInto'),
    vi.spyOn(dma, 'read'), vi.spyOn(dma, 'write'), vi.spyOn(dma, 'readInto'), vi.spyOn(dma, 'copy'),
  ];
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('RDMA work requests move bytes with one vectored copy each', () => {
  it('WRITE, READ and SEND into a dma-buf MR (IOMMU on): one vectored transfer per WR, no host access of the payload', async () => {
    const { m, proc, a, b } = await pair({ responder: 'odp', requester: 'pinned' });
    const SIZE = 16 * PAGE_SIZE;
    const { fd, exp } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW | RR);
    const src = userMemory(a, 3 * PAGE_SIZE, { scattered: true, pageOffset: 0x80 });
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW | RW | RR);
    const data = bytes(3 * PAGE_SIZE, 4);
    src.write(0, data);
    b.qp.postRecv({ wrId: 9, sgList: [{ addr: 0x8000n, length: 100, lkey: mr.lkey }, { addr: 0xa000n + 5n, length: 4000, lkey: mr.lkey }] });

    const spies = hostSpies(m);
    const counts: bigint[] = [];
    const before = m.sim.dma.stats();
    const step = (fn: () => void) => {
      const s0 = m.sim.dma.stats();
      fn();
      const s1 = m.sim.dma.stats();
      counts.push(s1.vectors - s0.vectors, s1.ops - s0.ops);
    };
    // WRITE from two SGEs on scattered pages into the MR at an odd offset.
    step(() => a.qp.postSend({
      wrId: 1, opcode: 'RDMA_WRITE', remoteAddr: 0x10n, rkey: mr.rkey,
      sgList: [{ addr: src.addr + 0x10n, length: 0x1800, lkey: smr.lkey }, { addr: src.addr + 0x2000n, length: 0x700, lkey: smr.lkey }],
    }));
    // READ the first 0x1000 bytes back into the buffer's last page.
    step(() => a.qp.postSend({
      wrId: 2, opcode: 'RDMA_READ', remoteAddr: 0x10n, rkey: mr.rkey,
      sgList: [{ addr: src.addr + 0x2000n, length: 0x1000, lkey: smr.lkey }],
    }));
    // SEND 2000 bytes into the two receive SGEs.
    step(() => a.qp.postSend({ wrId: 3, opcode: 'SEND', sgList: [{ addr: src.addr, length: 2000, lkey: smr.lkey }] }));
    for (const s of spies) expect(s).not.toHaveBeenCalled();
    vi.restoreAllMocks();

    expect(a.cq.poll().map((w) => [w.wrId, w.status, w.byteLen])).toEqual([[1, 'SUCCESS', 0x1f00], [2, 'SUCCESS', 0x1000], [3, 'SUCCESS', 2000]]);
    expect(b.cq.poll()).toMatchObject([{ wrId: 9, status: 'SUCCESS', opcode: 'RECV', byteLen: 2000 }]);
    expect(counts).toEqual([1n, 1n, 1n, 1n, 1n, 1n]);
    expect(m.sim.dma.stats().vectors - before.vectors).toBe(3n);
    const written = new Uint8Array(0x1f00);
    written.set(data.subarray(0x10, 0x1810), 0);
    written.set(data.subarray(0x2000, 0x2700), 0x1800);
    expect(exp.read(0x10, 0x1f00)).toEqual(written);
    expect(src.read(0x2000, 0x1000)).toEqual(written.subarray(0, 0x1000));
    const sent = src.read(0, 2000);
    expect(exp.read(0x8000, 100)).toEqual(sent.subarray(0, 100));
    expect(exp.read(0xa005, 1900)).toEqual(sent.subarray(100));
    expect(exp.read(0xa005 + 1900, 4)).toEqual(new Uint8Array(4)); // the receive is filled only as far as the message goes
  });

  it('a WR whose DMA faults is still one vectored transfer; the side that faulted picks the status', async () => {
    const { m, proc, a, b } = await pair({ responder: 'pinned', requester: 'pinned' });
    const bad = exporter(m, proc, { size: PAGE_SIZE });
    bad.exp.bogusDma = 0x7700_0000n;
    const rmr = b.ctx.regDmabufMr(b.pd, 0, PAGE_SIZE, 0, bad.fd, LW | RW);
    const src = userMemory(a, 64);
    const smr = a.ctx.regMr(a.pd, src.addr, src.length, LW);
    const s0 = m.sim.dma.stats();
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: src.addr, length: 64, lkey: smr.lkey }], remoteAddr: 0n, rkey: rmr.rkey });
    const wc = a.cq.poll()[0]!;
    expect(wc.status).toBe('REM_ACCESS_ERR');
    expect(wc.detail).toContain(`${b.dev.name} DMA write at 0x77000000 failed: EFAULT`);
    const s1 = m.sim.dma.stats();
    expect(s1.vectors - s0.vectors).toBe(1n);
    expect(s1.faults - s0.faults).toBe(1n);
  });
});

describe('ranges, not pages', () => {
  it('ibv_reg_mr pins a contiguous buffer with one range pin and maps it as one scatterlist entry', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel, { memory: m.sim.memory });
    const s = side(m, proc, 'nic0', 'odp');
    const buf = userMemory(s, 64 * PAGE_SIZE);
    const pinPages = vi.spyOn(m.sim.memory, 'pinPages');
    const pinPage = vi.spyOn(m.sim.memory, 'pinPage');
    const mr = s.ctx.regMr(s.pd, buf.addr, buf.length, LW);
    expect(pinPages).toHaveBeenCalledTimes(1);
    expect(pinPages).toHaveBeenCalledWith(buf.pages[0], 64);
    expect(pinPage).not.toHaveBeenCalled();
    for (const pa of [buf.pages[0]!, buf.pages[63]!]) expect(m.sim.memory.frameInfo(pa).pincount).toBe(1);
    expect(mr.translation.reduce((n, t) => n + t.length, 0n)).toBe(64n * BigInt(PAGE_SIZE));
    s.ctx.deregMr(mr);
    expect(pinPages).toHaveBeenLastCalledWith(buf.pages[0], 64, false);
    for (const pa of buf.pages) expect(m.sim.memory.frameInfo(pa).pincount).toBe(0);
  });

  it('a range pin is all or nothing: a frame that cannot be pinned leaves the others unpinned', async () => {
    const m = await machine();
    const pa = m.sim.memory.allocFrames(2);
    let err: unknown;
    try { m.sim.memory.pinPages(pa, 3); } catch (e) { err = e; }
    expect(err).toMatchObject({ code: 'EINVAL', op: 'pinPages' });
    expect(m.sim.memory.frameInfo(pa).pincount).toBe(0);
    expect(m.sim.memory.frameInfo(pa + 4096n).pincount).toBe(0);
  });

  it('a dma-buf MR\'s translation is the umem\'s trimmed segment list', async () => {
    const { m, proc, b } = await pair();
    const { fd } = exporter(m, proc, { size: 4 * PAGE_SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0x1000, 2 * PAGE_SIZE, 0x1000, fd, LW | RW);
    expect(mr.translation).toEqual(mr.umem!.segments.map((s) => ({ dmaAddress: s.dmaAddress, length: s.length })));
    expect(mr.translation.reduce((n, t) => n + t.length, 0n)).toBe(2n * BigInt(PAGE_SIZE));
  });
});

describe('two machines are independent', () => {
  it('device names, QP numbers and user addresses restart per machine', async () => {
    const one = await pair();
    const two = await pair();
    expect(two.a.dev.name).toBe(one.a.dev.name);
    expect(two.b.dev.name).toBe(one.b.dev.name);
    expect(two.a.qp.qpNum).toBe(one.a.qp.qpNum);
    expect(userMemory(two.a, 10).addr).toBe(userMemory(one.a, 10).addr);
    // A QP number of one machine is not a QP of the other's fabric.
    side(one.m, one.proc, 'nic0', 'odp');
    side(one.m, one.proc, 'nic0', 'odp');
    const extra = side(one.m, one.proc, 'nic0', 'odp'); // QP 0x104 exists on machine one only
    expect(extra.qp.qpNum).toBe(one.a.qp.qpNum + 4);
    const lonely = side(two.m, two.proc, 'nic0', 'odp');
    lonely.qp.modify({ state: 'INIT' });
    expect(() => lonely.qp.modify({ state: 'RTR', destQpNum: extra.qp.qpNum })).toThrow(/not a QP of this fabric/);
  });
});
