/**
 * RDMA WRITE of 1 MiB through a dma-buf MR against the core's own copy of the same bytes between
 * the same DMA addresses (issue 10, "bytes stay in the core"). IOMMU on, 4K pages on both sides:
 * the exporter's buffer and the requester's user buffer are scattered 4K RAM frames, mapped by
 * each NIC's DMA API into one contiguous IOVA range of 4K leaves.
 */
import {
  Machine, O_RDWR, ScatterList, SgTable, SimError, SimProcess, type DmaBufExporterOps,
} from '../src/index.js';
import type { DmaBufImporterDevice } from '../src/drivers/device.js';
import {
  RdmaDevice, ibvOpenDevice, connectRcQps, IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_WRITE,
  type IbvSendWr,
} from '../src/drivers/rdma/index.js';
import { SEED_TOPOLOGY } from '../src/scenario/index.js';
import { measure } from './harness.js';

const MiB = 1 << 20;

/** A static-placement exporter over scattered 4K RAM frames, mapped with the importer's DMA API. */
function simpleExporter(m: Machine, size: number): DmaBufExporterOps {
  const frames: bigint[] = [];
  for (let i = 0; i < size / 4096; i++) {
    frames.push(m.sim.memory.allocFrames(1));
    m.sim.memory.allocFrames(1); // a hole: no two frames are contiguous
  }
  const tables = new Map<SgTable, ScatterList>();
  return {
    pin: () => {},
    unpin: () => {},
    mapDmaBuf: (att, dir) => {
      const dma = (att.dev as DmaBufImporterDevice).dma!;
      const sgl = ScatterList.fromPages(frames);
      const r = dma.mapSgtable(sgl, dir);
      if (r < 0) throw SimError.fromStatus(r, 'bench map', 'dma_map_sgtable');
      const sgt = new SgTable(sgl.dmaSegments(), { nents: sgl.nents, origNents: sgl.origNents });
      tables.set(sgt, sgl);
      return sgt;
    },
    unmapDmaBuf: (att, sgt, dir) => {
      (att.dev as DmaBufImporterDevice).dma!.unmapSg(tables.get(sgt)!, dir);
      tables.delete(sgt);
    },
    release: () => {},
  };
}

export interface RdmaBench {
  rdma_write_1m_vs_dma_copy: number;
  rdma_write_1m_us: number;
  dma_copy_1m_us: number;
}

export async function benchRdma(): Promise<RdmaBench> {
  const m = await Machine.create({ topology: SEED_TOPOLOGY, iommu: { family: 'vtd' }, arenaBytes: 64 * MiB });
  const proc = new SimProcess(m.kernel, { name: 'bench', memory: m.sim.memory });
  const buf = m.kernel.export({ ops: simpleExporter(m, MiB), size: MiB, priv: 'bench', flags: O_RDWR, expName: 'bench' });
  const fd = proc.dmaBufFd(buf);
  const side = (fn: string) => {
    const dev = new RdmaDevice(m, fn, { kind: 'odp' });
    const ctx = ibvOpenDevice(dev, proc);
    const pd = ctx.allocPd();
    const cq = ctx.createCq();
    return { dev, ctx, pd, cq, qp: ctx.createQp(pd, { sendCq: cq }) };
  };
  const req = side('nic1');
  const resp = side('nic0');
  connectRcQps(req.qp, resp.qp);
  const mr = resp.ctx.regDmabufMr(resp.pd, 0, MiB, 0, fd, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  // The requester's user buffer: anonymous memory of the process, faulted in by the write.
  const local = proc.mmapAnonymous(MiB);
  const data = new Uint8Array(MiB);
  for (let i = 0; i < MiB; i++) data[i] = (i * 7 + 3) & 0xff;
  proc.writeUser(local.start, data);
  const lmr = req.ctx.regMr(req.pd, local.start, MiB, IBV_ACCESS_LOCAL_WRITE);
  // The NIC's max segment size (64K) splits each MR into segments; they must be one IOVA range.
  for (const t of [lmr.translation, mr.translation]) {
    if (!t.every((x, k) => k === 0 || x.dmaAddress === t[k - 1]!.dmaAddress + t[k - 1]!.length)) throw new Error('bench: expected one IOVA range per MR');
  }
  const src = lmr.translation[0]!.dmaAddress;
  const dst = mr.translation[0]!.dmaAddress;
  for (const [dev, addr] of [[req.dev, src], [resp.dev, dst]] as const) {
    const d = dev.dma.domain;
    if (d === 'direct' || d.walk(addr).pageSize !== 4096n) throw new Error('bench: expected 4K IOMMU pages');
  }
  const wr: IbvSendWr = {
    wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: local.start, length: MiB, lkey: lmr.lkey }], remoteAddr: 0n, rkey: mr.rkey,
  };
  const post = () => {
    req.qp.postSend(wr);
    const wc = req.cq.poll(1)[0];
    if (wc?.status !== 'SUCCESS') throw new Error(`bench RDMA WRITE: ${wc?.status ?? 'no completion'} ${wc?.detail ?? ''}`);
  };
  post();
  const back = new Uint8Array(MiB);
  m.sim.dma.readInto({ rid: resp.dev.rid, addr: dst }, back);
  if (!back.every((v, i) => v === data[i])) throw new Error('bench RDMA WRITE: the bytes did not land');
  const len = BigInt(MiB);
  const t = measure([
    { name: 'rdma', run: (n) => { for (let i = 0; i < n; i++) post(); } },
    {
      name: 'copy', run: (n) => {
        for (let i = 0; i < n; i++) {
          const r = m.sim.dma.copy({ rid: req.dev.rid, addr: src }, { rid: resp.dev.rid, addr: dst }, len);
          if (!r.ok) throw new Error(`bench copy: ${r.code}`);
        }
      },
    },
  ], 15);
  const rdma = t.get('rdma')!;
  const copy = t.get('copy')!;
  return { rdma_write_1m_vs_dma_copy: copy / rdma, rdma_write_1m_us: rdma / 1000, dma_copy_1m_us: copy / 1000 };
}
