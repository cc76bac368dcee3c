// The seed story in code: the 2021 habanalabs thread. Gaudi2 device memory (HBM: no struct
// pages, no CPU access) is exported as a dma-buf and registered by an RDMA NIC with
// ibv_reg_dmabuf_mr; a second NIC's RDMA WRITE lands in HBM. Then the same export offered to a NIC
// behind a host bridge the kernel does not whitelist: refused with EPERM.
import { Machine, SimProcess, SimError } from 'dmabuf-sim';
import {
  HabanaDevice, hlthunkOpen, hlthunkDeviceMemoryAlloc, hlthunkDeviceMemoryMap, hlthunkDeviceMemoryExportDmabufFd,
  RdmaDevice, ibvOpenDevice, connectRcQps, IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_WRITE,
} from 'dmabuf-sim/drivers';
import { SEED_TOPOLOGY } from 'dmabuf-sim/scenario';

const hex = (v) => `0x${v.toString(16)}`;
const machine = await Machine.create({ topology: SEED_TOPOLOGY, iommu: { family: 'vtd' }, profile: '6.x' });
const proc = new SimProcess(machine.kernel, { name: 'app', memory: machine.sim.memory });

// The accelerator: allocate 2 MiB of HBM, map it at a device VA, export that range (HL-06).
const gaudi = HabanaDevice.create(machine, { pci: machine.pci('gaudi0'), generation: 'gaudi2', hbmBytes: 96n << 30n });
const hl = hlthunkOpen(gaudi, proc);
const SIZE = 2n << 20n;
const handle = hlthunkDeviceMemoryAlloc(hl, SIZE, 0n, false, false);
const va = hlthunkDeviceMemoryMap(hl, handle);
const fd = hlthunkDeviceMemoryExportDmabufFd(hl, va, SIZE);
if (typeof fd !== 'number' || fd < 0) throw new Error(`export failed: ${fd}`);
console.log(`gaudi0: HBM at device VA ${hex(va)} exported as dma-buf fd ${fd}`);

// Two NICs, an RC connection between them; nic0 sits under the same PCIe switch as gaudi0.
const nic = (name) => {
  const dev = new RdmaDevice(machine, name, { kind: 'odp' });
  const ctx = ibvOpenDevice(dev, proc);
  const pd = ctx.allocPd();
  const cq = ctx.createCq();
  return { dev, ctx, pd, cq, qp: ctx.createQp(pd, { sendCq: cq, maxSendSge: 4, maxRecvSge: 4 }) };
};
const responder = nic('nic0');
const requester = nic('nic1');
connectRcQps(requester.qp, responder.qp);

// ibv_reg_dmabuf_mr on nic0: gaudi0 -> nic0 is BUS_ADDR (the switch routes it, no IOMMU).
const mr = responder.ctx.regDmabufMr(responder.pd, 0n, Number(SIZE), 0n, fd, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
console.log(`nic0: dma-buf MR rkey ${hex(mr.rkey)}, map type ${machine.decide(machine.pci('gaudi0'), machine.pci('nic0')).mapType}`);

// nic1 RDMA-WRITEs 64 KiB from its host buffer into the MR; the bytes land in HBM.
const N = 64 * 1024;
const local = proc.mmapAnonymous(N);
const pattern = Uint8Array.from({ length: N }, (_, i) => (i * 7 + 3) & 0xff);
proc.writeUser(local.start, pattern);
const lmr = requester.ctx.regMr(requester.pd, local.start, N, IBV_ACCESS_LOCAL_WRITE);
requester.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: local.start, length: N, lkey: lmr.lkey }], remoteAddr: mr.iova, rkey: mr.rkey });
const [wc] = requester.cq.poll();
console.log(`nic1: RDMA WRITE of ${N} bytes: IBV_WC_${wc.status}`);
const hbm = gaudi.vaRead(va, N);
if (wc.status !== 'SUCCESS' || !hbm.every((b, i) => b === pattern[i])) throw new Error('the bytes did not land in HBM');
console.log('gaudi0: HBM holds every byte nic1 wrote');

// nic2 is behind hb1, a root complex the P2PDMA whitelist does not know: NOT_SUPPORTED.
// With the 6.x kernel the dma-buf is mapped at attach time, so registration fails with EPERM.
const far = nic('nic2');
try {
  far.ctx.regDmabufMr(far.pd, 0n, Number(SIZE), 0n, fd, IBV_ACCESS_LOCAL_WRITE);
  throw new Error('nic2 registered the MR: the kernel refuses it');
} catch (e) {
  if (!(e instanceof SimError)) throw e;
  console.log(`nic2: ibv_reg_dmabuf_mr failed with ${e.code}${e.rule ? ` (${e.rule})` : ''}: ${e.message}`);
  if (e.code !== 'EPERM') throw new Error(`expected EPERM, got ${e.code}`);
}
console.log('ok');
