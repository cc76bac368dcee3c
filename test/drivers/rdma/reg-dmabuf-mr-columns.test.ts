import { describe, expect, it } from 'vitest';
import { Machine, SimProcess, O_RDWR, O_CLOEXEC, type IommuDomain } from '../../../src/index.js';
import { HabanaDevice, hlIoctlMemory } from '../../../src/drivers/accel/index.js';
import { RdmaDevice, ibvOpenDevice, IBV_ACCESS_LOCAL_WRITE } from '../../../src/drivers/rdma/index.js';
import { SEED_TOPOLOGY } from '../../../src/scenario/index.js';

// A habanalabs dma-buf MR through the IOMMU with 64 KiB segments, the shape of the issue-15
// attach benchmark (smaller): the sg table, the trim and the MTT travel as columns, and what the
// NIC sees must be every byte of the buffer at its BAR address, in order.
const K = 1024n;
const M = 1024n * K;
const G = 1024n * M;

async function rig() {
  const m = await Machine.create({ topology: SEED_TOPOLOGY, iommu: { family: 'vtd' }, arenaBytes: 64 << 20 });
  const proc = new SimProcess(m.kernel, { name: 't' });
  const hl = HabanaDevice.create(m, { pci: 'gaudi0', generation: 'gaudi2', hbmBytes: 4n * G });
  const hfd = hl.open(proc);
  const nic = new RdmaDevice(m, 'nic1', { kind: 'pinned' });
  const ctx = ibvOpenDevice(nic, proc);
  return { m, proc, hl, hfd, nic, ctx, pd: ctx.allocPd() };
}

describe('ibv_reg_dmabuf_mr of a habanalabs buffer through the IOMMU, 64 KiB segments', () => {
  it('IM-03/HL-12: every MTT segment translates to its bytes of the BAR; dereg unmaps all', async () => {
    const r = await rig();
    // Scattered DRAM pages: allocate 2 MiB pages, free every other one, then allocate again.
    const pages = Array.from({ length: 8 }, () => hlIoctlMemory(r.proc, r.hfd, { op: 'ALLOC', memSize: 2n * M }).handle!);
    for (let i = 0; i < pages.length; i += 2) hlIoctlMemory(r.proc, r.hfd, { op: 'FREE', handle: pages[i]! });
    const size = 16n * M;
    const handle = hlIoctlMemory(r.proc, r.hfd, { op: 'ALLOC', memSize: size }).handle!;
    const va = hlIoctlMemory(r.proc, r.hfd, { op: 'MAP', handle }).deviceVirtAddr!;
    const fd = hlIoctlMemory(r.proc, r.hfd, { op: 'EXPORT_DMABUF_FD', addr: va, handle, memSize: size, offset: 0n, flags: O_RDWR | O_CLOEXEC }).fd!;
    const dom = r.nic.dma.domain as IommuDomain;
    expect(r.nic.dma.maxSegmentSize).toBe(65536);
    const mapped0 = dom.mappedBytes;
    const mr = r.ctx.regDmabufMr(r.pd, 0x1000, Number(size) - 0x3000, 0x1000, fd, IBV_ACCESS_LOCAL_WRITE);
    const segs = mr.translation;
    // [0x1000, size - 0x2000): the first 64K entry advanced by a page, the last cut by two.
    expect(segs.length).toBe(Number(size / (64n * K)));
    expect(segs[0]!.length).toBe(60n * K);
    expect(segs.at(-1)!.length).toBe(56n * K);
    expect(mr.umem!.trim).toMatchObject({ firstIndex: 0, firstOffset: 0x1000n, lastIndex: segs.length - 1, lastTrim: 0x2000n });
    expect(mr.umem!.segments.map((s) => ({ dmaAddress: s.dmaAddress, length: s.length }))).toEqual(segs);
    // The buffer's DRAM pages, through the pack's layout, are what each segment reaches.
    const pack = r.hl.memory.packOf(Number(handle))!;
    expect(pack.pages.some((p, i) => i > 0 && p !== pack.pages[i - 1]! + pack.pageSize)).toBe(true);
    const dramOf = (off: bigint) => pack.pages[Number(off / pack.pageSize)]! + (off % pack.pageSize);
    const rid = r.nic.rid;
    let off = 0x1000n;
    for (const s of segs) {
      for (const at of [0n, s.length - 1n]) {
        expect(r.m.sim.iommu.translate(rid, s.dmaAddress + at, 'write')).toMatchObject({ ok: true, pa: r.hl.barAddress(dramOf(off + at)) });
      }
      off += s.length;
    }
    expect(off).toBe(size - 0x2000n);
    // Bytes written into HBM are read back by the NIC's DMA through the MR's segments.
    const last = segs.at(-1)!;
    r.hl.dramWrite(dramOf(off - 4n), new Uint8Array([9, 8, 7, 6]));
    expect(r.m.sim.dma.read({ rid, addr: last.dmaAddress + last.length - 4n }, 4).data).toEqual(new Uint8Array([9, 8, 7, 6]));
    expect(dom.mappedBytes - mapped0).toBe(size);
    r.ctx.deregMr(mr);
    expect(dom.mappedBytes).toBe(mapped0);
    expect(r.nic.dma.stats()).toMatchObject({ iovaStates: 0, singles: 0 });
    expect(r.m.sim.iommu.translate(rid, segs[0]!.dmaAddress, 'read').ok).toBe(false);
  });
});
