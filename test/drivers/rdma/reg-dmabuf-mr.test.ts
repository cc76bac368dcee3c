import { describe, expect, it } from 'vitest';
import { SimError } from '../../../bindings/errors.js';
import { DmaResvUsage, PAGE_SIZE, SgTable, SimProcess } from '../../../src/dma-buf/index.js';
import {
  IBV_ACCESS_LOCAL_WRITE as LW, IBV_ACCESS_REMOTE_WRITE as RW, IBV_ACCESS_REMOTE_READ as RR,
  IBV_ACCESS_REMOTE_ATOMIC as RA, IBV_ACCESS_MW_BIND, IBV_ACCESS_ZERO_BASED, IBV_ACCESS_ON_DEMAND,
  IBV_ACCESS_RELAXED_ORDERING, UmemDmabuf, trimTable, umemNumPages,
} from '../../../src/drivers/rdma/index.js';
import { exporter, machine, pair, side } from './helpers/setup.js';

function errOf(fn: () => unknown): SimError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimError) return e;
    throw e;
  }
  throw new Error('expected a SimError');
}

const SIZE = 16 * PAGE_SIZE;

describe('RDMA device probe', () => {
  it('the mlx5-like NIC sets its own DMA parameters (set_dma_caps: 64-bit mask, max segment 2 GiB); the EFA-like one keeps the PCI default', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel);
    expect(m.dmaDevice(m.pci('nic0')).maxSegmentSize).toBe(65536);
    const mlx = side(m, proc, 'nic0', 'odp');
    expect(mlx.dev.dma.maxSegmentSize).toBe(2 ** 31);
    expect(m.dmaDevice(m.pci('nic0')).maxSegmentSize).toBe(2 ** 31);
    const efa = side(m, proc, 'nic1', 'pinned');
    expect(efa.dev.dma.maxSegmentSize).toBe(65536);
  });
});

describe('ibv_reg_dmabuf_mr: uverbs REG_DMABUF_MR (IM-01)', () => {
  it('IM-01: a device without reg_user_mr_dmabuf fails with EOPNOTSUPP', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel);
    const s = side(m, proc, 'nic0', 'odp', { regDmabufMr: false });
    const { fd } = exporter(m, proc, { size: SIZE });
    expect(errOf(() => s.ctx.regDmabufMr(s.pd, 0, SIZE, 0, fd, LW)).code).toBe('EOPNOTSUPP');
  });

  it('IM-01: offset and iova with different page offsets are EINVAL', async () => {
    const { m, proc, b } = await pair();
    const { fd } = exporter(m, proc, { size: SIZE });
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, 0x100, PAGE_SIZE, 0x2000_0200n, fd, LW));
    expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-01']);
    // Same in-page offset, different pages: fine.
    const mr = b.ctx.regDmabufMr(b.pd, 0x1100, PAGE_SIZE, 0x7000_0100n, fd, LW);
    expect(mr.iova).toBe(0x7000_0100n);
  });

  it('IM-01: access bits outside LOCAL_WRITE/REMOTE_*/RELAXED_ORDERING are EINVAL (no ON_DEMAND, MW_BIND)', async () => {
    for (const kind of ['odp', 'pinned'] as const) {
      const { m, proc, b } = await pair({ responder: kind });
      const { fd } = exporter(m, proc, { size: SIZE });
      for (const bad of [IBV_ACCESS_ON_DEMAND, IBV_ACCESS_MW_BIND, IBV_ACCESS_ZERO_BASED, 1 << 7, 1 << 21]) {
        expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | bad)).code).toBe('EINVAL');
      }
      // RELAXED_ORDERING is accepted (an EFA-like NIC drops the optional bit).
      const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | IBV_ACCESS_RELAXED_ORDERING);
      expect(mr.access).toBe(kind === 'odp' ? LW | IBV_ACCESS_RELAXED_ORDERING : LW);
    }
  });

  it('IM-01: ib_check_mr_access: REMOTE_WRITE or REMOTE_ATOMIC without LOCAL_WRITE is EINVAL', async () => {
    const { m, proc, b } = await pair();
    const { fd } = exporter(m, proc, { size: SIZE });
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, RW)).code).toBe('EINVAL');
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, RA | RR)).code).toBe('EINVAL');
    expect(b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, RR).access).toBe(RR);
  });

  it('IM-01: libibverbs sets mr.addr = offset and mr.length = length; lkey == rkey', async () => {
    const { m, proc, b } = await pair();
    const { fd } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0x3000, 0x2000, 0x10_0000_3000n, fd, LW | RW);
    expect(mr.addr).toBe(0x3000n);
    expect(mr.length).toBe(0x2000);
    expect(mr.lkey).toBe(mr.rkey);
    expect(b.dev.lookupMr(mr.lkey)).toBe(mr);
  });
});

describe('ib_umem_dmabuf_get (IM-02)', () => {
  it('IM-02: offset + size that wraps u64 is EINVAL', async () => {
    const { m, proc, b } = await pair();
    const { fd } = exporter(m, proc, { size: SIZE });
    const off = (1n << 64n) - 0x1000n;
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, off, 0x2000, off, fd, LW));
    expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-02']);
  });

  it('IM-02: ops without move_notify are EINVAL', async () => {
    const { m, proc, b } = await pair();
    const { fd, buf } = exporter(m, proc, { size: SIZE });
    const e = errOf(() => UmemDmabuf.get(proc, b.dev.importer, 0n, 4096n, fd, LW, null));
    expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-02']);
    expect(buf.fileCount).toBe(1);
  });

  it('IM-02: dma_buf_get errors pass through: EBADF for a closed fd, EINVAL for another file', async () => {
    const { proc, b } = await pair();
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, PAGE_SIZE, 0, 77, LW)).code).toBe('EBADF');
    const other = proc.openFile('/dev/null');
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, 0, PAGE_SIZE, 0, other, LW));
    expect([e.code, e.rule]).toEqual(['EINVAL', 'DB-05']);
  });

  it('IM-02: a range past dmabuf.size is EINVAL and the dma_buf_get reference is dropped', async () => {
    const { m, proc, b } = await pair();
    const { fd, buf } = exporter(m, proc, { size: SIZE });
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, PAGE_SIZE, SIZE, PAGE_SIZE, fd, LW));
    expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-02']);
    expect(buf.fileCount).toBe(1);
    expect(buf.attachments).toHaveLength(0);
    // Ending exactly at the size is fine.
    expect(b.ctx.regDmabufMr(b.pd, PAGE_SIZE, SIZE - PAGE_SIZE, PAGE_SIZE, fd, LW).length).toBe(SIZE - PAGE_SIZE);
  });

  it('IM-02: zero pages is EINVAL (length 0 at a page-aligned offset)', async () => {
    const { m, proc, b } = await pair();
    const { fd } = exporter(m, proc, { size: SIZE });
    expect(umemNumPages(0x2000n, 0n)).toBe(0n);
    const e = errOf(() => b.ctx.regDmabufMr(b.pd, 0x2000, 0, 0x2000, fd, LW));
    expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-02']);
  });

  it('IM-02: length 0 is EINVAL at any offset (the umem\'s iova is 0 when its pages are counted)', async () => {
    for (const kind of ['odp', 'pinned'] as const) {
      const { m, proc, b } = await pair({ responder: kind });
      const { fd, buf } = exporter(m, proc, { size: SIZE });
      for (const off of [0x2000, 0x2100, 0xfff, 1]) {
        const e = errOf(() => b.ctx.regDmabufMr(b.pd, off, 0, 0x7000_0000 + off, fd, LW));
        expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-02']);
      }
      expect(buf.attachments).toHaveLength(0);
      expect(buf.fileCount).toBe(1);
    }
  });

  it('IM-02: dma_buf_dynamic_attach errors pass through (the exporter refuses with EBUSY)', async () => {
    const { m, proc, b } = await pair();
    const { fd, buf } = exporter(m, proc, { size: SIZE, failAttach: 'EBUSY' });
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW)).code).toBe('EBUSY');
    expect(buf.fileCount).toBe(1);
  });

  it('IM-02/DB-07/DB-09: a P2P-only static exporter that clears peer2peer fails registration with EPERM at attach (6.x)', async () => {
    for (const kind of ['odp', 'pinned'] as const) {
      const { m, proc, b } = await pair({ responder: kind });
      const { fd, buf, exp } = exporter(m, proc, { size: SIZE, dynamic: false, p2pOnly: true, clearPeer2peer: true });
      const e = errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW));
      expect(e.code).toBe('EPERM');
      // The map ran inside dma_buf_dynamic_attach (DB-09), under the resv lock (DB-25).
      expect(exp.calls.map((c) => c.op)).toEqual(['attach', 'map', 'detach']);
      expect(exp.calls[1]!.locked).toBe(true);
      expect(buf.attachments).toHaveLength(0);
      expect(buf.fileCount).toBe(1);
    }
  });

  it('IM-02/DB-09: with peer2peer kept, a static exporter is mapped once at attach and the cached table is used', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE, dynamic: false, p2pOnly: true });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW);
    const att = buf.attachments[0]!;
    expect(att.peer2peer).toBe(true);
    expect(att.cachedTable).toBe(mr.umem!.sgt);
    expect(exp.calls.filter((c) => c.op === 'map')).toHaveLength(1);
    expect(exp.calls.filter((c) => c.op === 'pin')).toHaveLength(0); // dma_buf_pin is a no-op (DB-15)
    b.ctx.deregMr(mr);
    expect(exp.liveTables).toBe(0);
  });
});

describe('ib_umem_dmabuf_map_pages (IM-03)', () => {
  const table = (lens: number[]) => {
    let a = 0x10_0000n;
    return new SgTable(lens.map((l) => {
      const e = { dmaAddress: a, length: l, page: null };
      a += BigInt(l) + 0x10_0000n;
      return e;
    }));
  };

  it('IM-03: the table is trimmed to [ALIGN_DOWN(offset), ALIGN(offset+len)): first entry advanced, last trimmed', () => {
    const t = table([0x2000, 0x3000, 0x4000]);
    // offset 0x1800, len 0x3000 -> [0x1000, 0x5000)
    const { segments, trim } = trimTable(t, 0x1000n, 0x5000n);
    expect(trim).toEqual({ firstIndex: 0, firstOffset: 0x1000n, lastIndex: 1, lastTrim: 0n, nmap: 2 });
    expect(segments).toEqual([
      { dmaAddress: 0x10_1000n, length: 0x1000n, start: 0n },
      { dmaAddress: 0x20_2000n, length: 0x3000n, start: 0x1000n },
    ]);
    const r = trimTable(t, 0x3000n, 0x6000n);
    expect(r.trim).toEqual({ firstIndex: 1, firstOffset: 0x1000n, lastIndex: 2, lastTrim: 0x3000n, nmap: 2 });
    expect(r.segments).toEqual([
      { dmaAddress: 0x20_3000n, length: 0x2000n, start: 0n },
      { dmaAddress: 0x30_5000n, length: 0x1000n, start: 0x2000n },
    ]);
    const one = trimTable(t, 0x2000n, 0x3000n);
    expect(one.segments).toEqual([{ dmaAddress: 0x20_2000n, length: 0x1000n, start: 0n }]);
    expect(one.trim.nmap).toBe(1);
  });

  it('IM-03: a registered MR maps BIDIRECTIONAL under resv and covers exactly its pages', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, exp } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0x1800, 0x2000, 0x1800, fd, LW);
    const umem = mr.umem!;
    expect(umem.mapped).toBe(true);
    expect(exp.calls.find((c) => c.op === 'map')!.locked).toBe(true);
    const total = umem.segments.reduce((s, x) => s + x.length, 0n);
    expect(total).toBe(0x3000n); // [0x1000, 0x4000)
    expect(umem.firstByteOffset).toBe(0x800n);
  });

  it('IM-03: map_pages waits on KERNEL fences ([6.x]); WRITE fences do not block registration', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf } = exporter(m, proc, { size: SIZE });
    const k = m.kernel;
    const kf = k.createFence(k.fenceContextAlloc(), 1);
    const wf = k.createFence(k.fenceContextAlloc(), 1);
    buf.resv.lock();
    buf.resv.reserveFences(2);
    buf.resv.addFence(kf, DmaResvUsage.KERNEL);
    buf.resv.addFence(wf, DmaResvUsage.WRITE);
    buf.resv.unlock();
    kf.scheduleSignal(50);
    const t0 = k.clock.now;
    b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW);
    expect(kf.isSignaled()).toBe(true);
    expect(wf.isSignaled()).toBe(false);
    expect(k.clock.now - t0).toBe(50);
  });

  it('IM-03: a KERNEL fence that can never signal makes the wait fail and registration unwinds', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE });
    const k = m.kernel;
    buf.resv.lock();
    buf.resv.reserveFences(1);
    buf.resv.addFence(k.createFence(k.fenceContextAlloc(), 1), DmaResvUsage.KERNEL);
    buf.resv.unlock();
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW)).code).toBe('ERESTARTSYS');
    expect(exp.pins).toBe(0);
    expect(exp.liveTables).toBe(0);
    expect(buf.attachments).toHaveLength(0);
  });

  it('IM-03/IM-05: map_pages on a revoked umem is EINVAL; unmap_pages when unmapped is a no-op', async () => {
    const { m, proc, b } = await pair();
    const { fd, buf } = exporter(m, proc, { size: SIZE });
    const umem = UmemDmabuf.get(proc, b.dev.importer, 0n, BigInt(SIZE), fd, LW, { allowPeer2Peer: true, moveNotify: () => {} });
    buf.resv.lock();
    umem.unmapPages();
    umem.mapPages();
    expect(umem.mapped).toBe(true);
    buf.resv.unlock();
    umem.revoke();
    umem.revoke();
    expect(umem.revoked).toBe(true);
    expect(umem.mapped).toBe(false);
    buf.resv.lock();
    const e = errOf(() => umem.mapPages());
    buf.resv.unlock();
    expect([e.code, e.rule]).toEqual(['EINVAL', 'IM-03']);
    umem.release();
    umem.release();
    expect(buf.attachments).toHaveLength(0);
    expect(buf.fileCount).toBe(1);
  });
});

describe('pinned NIC: ib_umem_dmabuf_get_pinned (IM-04)', () => {
  it('IM-04: registration pins the dynamic exporter under resv, then maps; a pinned buffer cannot move', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW);
    expect(exp.calls.map((c) => [c.op, c.locked])).toEqual([['attach', false], ['pin', true], ['map', true]]);
    expect(exp.pins).toBe(1);
    expect(buf.attachments[0]!.pinCount).toBe(1);
    expect(buf.attachments[0]!.peer2peer).toBe(true);
    expect(mr.umem!.pinned).toBe(true);
    expect(errOf(() => exp.move()).code).toBe('EBUSY');
  });

  it('IM-04: a move_notify on a pinned MR only warns "Invalidate callback should not be called when memory is pinned"', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW);
    buf.resv.lock();
    buf.moveNotify();
    buf.resv.unlock();
    const ev = b.dev.events.filter((e) => e.kind === 'unexpected_move');
    expect(ev).toHaveLength(1);
    expect(ev[0]!.detail.message).toBe('Invalidate callback should not be called when memory is pinned');
    expect(mr.mapped).toBe(true);
    expect(mr.umem!.mapped).toBe(true);
  });

  it('IM-04: a pin failure unwinds (no attachment, reference dropped) and its errno passes through', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE });
    exp.failPin = 'ENOMEM';
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW)).code).toBe('ENOMEM');
    expect(buf.attachments).toHaveLength(0);
    expect(buf.fileCount).toBe(1);
  });

  it('IM-04: a map failure after the pin unpins and detaches', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf, exp } = exporter(m, proc, { size: SIZE });
    exp.failMap = 'EIO';
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW)).code).toBe('EIO');
    expect(exp.calls.map((c) => c.op)).toEqual(['attach', 'pin', 'map', 'unpin', 'detach']);
    expect(exp.pins).toBe(0);
    expect(buf.attachments).toHaveLength(0);
  });

  it('IM-04: the EFA-like NIC refuses access it does not support with EOPNOTSUPP (REMOTE_ATOMIC; REMOTE_READ without the cap)', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned', responderOpts: { rdmaRead: false } });
    const { fd } = exporter(m, proc, { size: SIZE });
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RA)).code).toBe('EOPNOTSUPP');
    expect(errOf(() => b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RR)).code).toBe('EOPNOTSUPP');
    expect(b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW).access).toBe(LW | RW);
  });
});

describe('deregistration (IM-05)', () => {
  it('IM-05: dereg unmaps, unpins, detaches and puts; a second dereg is harmless; close then releases the buffer', async () => {
    for (const kind of ['pinned', 'odp'] as const) {
      const { m, proc, b } = await pair({ responder: kind });
      const { fd, buf, exp } = exporter(m, proc, { size: SIZE });
      const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW | RW);
      expect(buf.fileCount).toBe(2);
      b.ctx.deregMr(mr);
      expect(exp.liveTables).toBe(0);
      expect(exp.pins).toBe(0);
      expect(buf.attachments).toHaveLength(0);
      expect(buf.fileCount).toBe(1);
      expect(b.dev.lookupMr(mr.lkey)).toBeUndefined();
      expect(mr.umem!.revoked).toBe(true);
      b.ctx.deregMr(mr);
      expect(buf.fileCount).toBe(1);
      proc.close(fd);
      expect(buf.released).toBe(true);
      expect(exp.calls.at(-1)!.op).toBe('release');
      // The PD is free again.
      b.ctx.destroyQp(b.qp);
      b.ctx.deallocPd(b.pd);
    }
  });

  it('IM-05: the MR keeps the buffer alive after the fd is closed', async () => {
    const { m, proc, b } = await pair({ responder: 'pinned' });
    const { fd, buf } = exporter(m, proc, { size: SIZE });
    const mr = b.ctx.regDmabufMr(b.pd, 0, SIZE, 0, fd, LW);
    proc.close(fd);
    expect(buf.released).toBe(false);
    expect(errOf(() => b.ctx.deallocPd(b.pd)).code).toBe('EBUSY');
    b.ctx.deregMr(mr);
    expect(buf.released).toBe(true);
  });
});
