/**
 * The seed story's ops, backed by the reference drivers: the habanalabs-like accelerator
 * (alloc, free, map, export, unmap of a device VA), the verbs-like RDMA NICs (register, post,
 * deregistration), the dma-buf uAPI (mmap, close) and kernel importers (attach, mapAttachment,
 * detach). Each act gets one process; drivers are probed on first use.
 *
 * Each op has one definition here (defineOp: fields, types and handler together); schema.ts
 * derives OP_SPECS and OpArgs from DRIVER_OPS, and the default runner registers their handlers.
 */
import { SimError } from '../index.js';
import type { Machine } from '../index.js';
import type { IommuDomain } from '../index.js';
import { HabanaDevice, hlIoctlMemory } from '../drivers/index.js';
import {
  AmdgpuDevice, AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED, AMDGPU_GEM_DOMAIN_GTT, AMDGPU_GEM_DOMAIN_VRAM, DRM_CLOEXEC,
  DRM_IOCTL_AMDGPU_GEM_CREATE, DRM_IOCTL_PRIME_HANDLE_TO_FD, DRM_RDWR, type AmdgpuBo, type DrmAmdgpuGemCreate,
  type DrmPrimeHandle,
} from '../drivers/index.js';
import {
  VfioPciDevice, VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_DMA_BUF, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_RESET,
} from '../drivers/index.js';
import { importerDevice } from '../drivers/index.js';
import {
  RdmaDevice, ibvOpenDevice, connectRcQps, IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_WRITE,
  IBV_ACCESS_REMOTE_READ, IBV_ACCESS_REMOTE_ATOMIC, IBV_ACCESS_RELAXED_ORDERING, type IbvContext, type IbvCq,
  type IbvMr, type IbvPd, type IbvQp, type RdmaNicKind,
} from '../drivers/index.js';
import {
  SimProcess, DmaDataDirection, O_CLOEXEC, O_RDWR, type DmaBufAttachment, type DmaBufMmap, type SgTable,
} from '../index.js';
import { O_RDONLY, O_WRONLY, MAP_SHARED, PROT_READ, PROT_WRITE } from '../index.js';
import type { ScenarioRunner, StepContext, StepHandler } from './runner.js';
import { ADDRESS, BOOL, DEVICE, PATTERN, SIZE, defineOp, flags, int, oneOf, ref } from './op.js';
import { iommuWalkSection, sgTableSection } from './sections.js';
import { describePattern } from './pattern.js';

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** An accelerator allocation: the handle ALLOC returned, on its device. */
interface AccelBuffer { kind: 'accel-buffer'; dev: HabanaDevice; handle: bigint; size: bigint }
/** A device VA MAP returned. */
interface AccelVa { kind: 'accel-va'; dev: HabanaDevice; va: bigint; size: bigint; handle: bigint }
interface Nic { dev: RdmaDevice; ctx: IbvContext; pd: IbvPd; cq: IbvCq }
interface Attached { att: DmaBufAttachment; importer: string; sgt: SgTable | null }

/** Per-act state of the driver ops. */
class ActDrivers {
  readonly proc: SimProcess;
  private readonly _accels = new Map<string, { dev: HabanaDevice; fd: number }>();
  private readonly _nics = new Map<string, Nic>();
  private readonly _qps = new Map<string, IbvQp>();

  constructor(readonly machine: Machine) {
    this.proc = new SimProcess(machine.kernel, { name: 'app', memory: machine.sim.memory });
  }

  /** The accelerator driver bound to `name`, probed and opened on first use. */
  accel(name: string): { dev: HabanaDevice; fd: number } {
    let a = this._accels.get(name);
    if (!a) {
      const fn = this.machine.pci(name);
      if (fn.driver !== null && fn.driver !== 'habanalabs') throw new SimError('ENODEV', 'open', `${name} is bound to ${fn.driver}, not habanalabs`);
      const dev = HabanaDevice.create(this.machine, { pci: fn, generation: 'gaudi2', hbmBytes: 96n << 30n, name: `hl${this._accels.size}` });
      a = { dev, fd: dev.open(this.proc) };
      this._accels.set(name, a);
    }
    return a;
  }

  private readonly _gpus = new Map<string, { dev: AmdgpuDevice; fd: number }>();
  /** The GEM handle of each BO a gpuAlloc made, in its GPU's render-node file. */
  readonly gemHandles = new Map<AmdgpuBo, number>();
  private readonly _vfio = new Map<string, { dev: VfioPciDevice; fd: number }>();

  /** The GPU driver bound to `name` and its render node opened in the act's process, on first use. */
  gpu(name: string): { dev: AmdgpuDevice; fd: number } {
    let g = this._gpus.get(name);
    if (!g) {
      const dev = AmdgpuDevice.create(this.machine, { pci: name });
      g = { dev, fd: dev.open(this.proc) };
      this._gpus.set(name, g);
    }
    return g;
  }

  /** The vfio-pci device bound to `name` and its device fd in the act's process, on first use. */
  vfio(name: string): { dev: VfioPciDevice; fd: number } {
    let v = this._vfio.get(name);
    if (!v) {
      const dev = VfioPciDevice.create(this.machine, name);
      v = { dev, fd: dev.open(this.proc) };
      this._vfio.set(name, v);
    }
    return v;
  }

  /** The RDMA device of NIC `name`; its kind is fixed by the first use. */
  nic(name: string, kind: RdmaNicKind = 'odp'): Nic {
    let n = this._nics.get(name);
    if (!n) {
      const dev = new RdmaDevice(this.machine, name, { kind });
      const ctx = ibvOpenDevice(dev, this.proc);
      n = { dev, ctx, pd: ctx.allocPd(), cq: ctx.createCq() };
      this._nics.set(name, n);
    }
    return n;
  }

  /** The connected RC QP of `from` toward `to` (both made and connected on first use). */
  qp(from: string, to: string): IbvQp {
    const key = `${from}>${to}`;
    let q = this._qps.get(key);
    // A QP that took an error stays in ERR (later work requests flush): connect a new pair.
    if (q && q.state === 'ERR') q = undefined;
    if (!q) {
      const a = this.nic(from);
      const b = this.nic(to);
      const qa = a.ctx.createQp(a.pd, { sendCq: a.cq, maxSendSge: 8, maxRecvSge: 8 });
      const qb = b.ctx.createQp(b.pd, { sendCq: b.cq, maxSendSge: 8, maxRecvSge: 8 });
      connectRcQps(qa, qb);
      this._qps.set(key, qa);
      this._qps.set(`${to}<${from}`, qb);
      q = qa;
    }
    return q;
  }

  nicList(): Nic[] {
    return [...this._nics.values()];
  }

  peerQp(from: string, to: string): IbvQp {
    this.qp(from, to);
    return this._qps.get(`${to}<${from}`)!;
  }
}

function drivers(ctx: StepContext): ActDrivers {
  let d = ctx.state.get('drivers') as ActDrivers | undefined;
  if (!d) {
    d = new ActDrivers(ctx.machine);
    ctx.state.set('drivers', d);
  }
  return d;
}

const ACCESS: Record<string, number> = {
  LOCAL_WRITE: IBV_ACCESS_LOCAL_WRITE, REMOTE_WRITE: IBV_ACCESS_REMOTE_WRITE, REMOTE_READ: IBV_ACCESS_REMOTE_READ,
  REMOTE_ATOMIC: IBV_ACCESS_REMOTE_ATOMIC, RELAXED_ORDERING: IBV_ACCESS_RELAXED_ORDERING,
};
const OPEN: Record<string, number> = { O_RDONLY, O_WRONLY, O_RDWR, O_CLOEXEC };

/** The paging domain a device's DMA goes through, if any. */
function domainOf(machine: Machine, device: string): IommuDomain | null {
  const d = machine.dmaDevice(machine.pci(device)).domain;
  return d !== 'direct' && d.type === 'paging' ? d : null;
}

/** sg_table and, for a device behind an IOMMU, the walk of every DMA entry. */
function showMapping(ctx: StepContext, importer: string, entries: readonly { dmaAddress: bigint }[], sgt: SgTable | null): void {
  if (sgt) ctx.report.section(sgTableSection(sgt, `sg_table for ${importer}`));
  const dom = domainOf(ctx.machine, importer);
  if (!dom) return;
  // A bus address routed by the switch never reaches the IOMMU: only IOVAs get a walk. The
  // first few are enough to read; the rest are counted.
  const iovas = entries.filter((e) => dom.walk(e.dmaAddress).ok);
  for (const e of iovas.slice(0, 2)) ctx.report.section(iommuWalkSection(dom, e.dmaAddress, `${importer} IOMMU mapping of ${hex(e.dmaAddress)}`));
  if (iovas.length > 2) ctx.report.log(`${iovas.length - 2} more entries are mapped in ${dom.unit.name} domain ${dom.id} the same way`);
}

/**
 * Puts a freshly exported dma-buf's events on its exporter's trace thread and remembers the
 * exporter (for the P2P decision the register step reports). Returns what the report shows.
 */
function announceExport(ctx: StepContext, fd: number, device: string): { id: number; size: number; expName: string } {
  const buf = drivers(ctx).proc.dmaBufGet(fd);
  ctx.nameBuffer(buf.id, device);
  ctx.state.set(`exporter:${buf.id}`, device);
  const seen = { id: buf.id, size: buf.size, expName: buf.expName };
  buf.put();
  return seen;
}

/** Runs `fn` (an eviction, a revocation) and logs, per NIC, the MRs move_notify invalidated meanwhile. */
function logInvalidations<T>(ctx: StepContext, fn: () => T): T {
  const nics = drivers(ctx).nicList();
  const before = nics.map((n) => n.dev.stats.invalidations);
  const out = fn();
  nics.forEach((n, i) => {
    const inv = n.dev.stats.invalidations - before[i]!;
    if (inv > 0) ctx.report.log(`${n.dev.name}: move_notify -> ${inv} MR${inv > 1 ? 's' : ''} invalidated (translation zapped, pages unmapped)`);
  });
  return out;
}

function completionError(status: string): SimError {
  return new SimError('EIO', 'ibv_poll_cq', `work completion status IBV_WC_${status}`);
}

/** The open(2) flags a dma-buf export step may ask for (DMA_BUF export flags are O_* flags). */
export const OPEN_FLAGS = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_CLOEXEC'] as const;
/** The `enum ib_access_flags` names an MR registration step may give (IB_ACCESS_*). */
export const IB_ACCESS = ['LOCAL_WRITE', 'REMOTE_WRITE', 'REMOTE_READ', 'REMOTE_ATOMIC', 'RELAXED_ORDERING'] as const;
/** The RDMA work-request opcodes a `post` step may use (IB_WR_RDMA_WRITE, IB_WR_RDMA_READ, IB_WR_SEND). */
export const RDMA_VERBS = ['WRITE', 'READ', 'SEND'] as const;
/** The mmap(2) protections an `mmap` step may ask for (PROT_READ, PROT_WRITE). */
export const MMAP_PROT = ['READ', 'WRITE'] as const;

const VFIO_DEVICE = { kind: DEVICE, required: true, doc: 'the device bound to vfio-pci' } as const;
/** A byte range of a BAR (vfioExport, readBar). */
const BAR_RANGE = {
  bar: { kind: int(0, 5), doc: 'BAR index (default 0)' },
  offset: { kind: SIZE, doc: 'offset in the BAR (default 0)' },
  length: { kind: SIZE, required: true, doc: 'bytes' },
} as const;

/** VFIO_DEVICE_RESET through the device fd, or the user making the device usable again. */
const revocation = (verb: 'reset' | 'restore') => (step: { args: { device: string } }, ctx: StepContext) => {
  const d = drivers(ctx);
  const v = d.vfio(step.args.device);
  logInvalidations(ctx, () => (verb === 'reset' ? d.proc.ioctl(v.fd, VFIO_DEVICE_RESET) : v.dev.restore()));
  return { summary: verb === 'reset' ? `VFIO_DEVICE_RESET ${step.args.device}: dma-bufs revoked` : `${step.args.device} restored: dma-bufs usable again` };
};

const allocOp = defineOp({
  name: 'alloc',
  doc: 'allocate device memory on an accelerator (HL_MEM_OP_ALLOC): a handle',
  produces: 'buffer',
  fields: {
    device: { kind: DEVICE, required: true, doc: 'the accelerator' },
    size: { kind: SIZE, required: true, doc: 'bytes ("2M")' },
  },
  run: (step, ctx) => {
    const { dev, fd } = drivers(ctx).accel(step.args.device);
    const out = hlIoctlMemory(drivers(ctx).proc, fd, { op: 'ALLOC', memSize: step.args.size });
    const buf: AccelBuffer = { kind: 'accel-buffer', dev, handle: out.handle!, size: step.args.size };
    return { value: buf, summary: `${dev.name}: HL_MEM_OP_ALLOC ${hex(step.args.size)} -> handle ${hex(out.handle!)}`, result: { handle: hex(out.handle!) } };
  },
});

const freeOp = defineOp({
  name: 'free',
  doc: 'free device memory (HL_MEM_OP_FREE)',
  fields: { buffer: { kind: ref('buffer'), required: true, doc: 'what alloc made' } },
  run: (step, ctx) => {
    const b = ctx.objects.get<AccelBuffer>(step.args.buffer, 'buffer');
    const { fd } = drivers(ctx).accel(b.dev.pci.name);
    hlIoctlMemory(drivers(ctx).proc, fd, { op: 'FREE', handle: b.handle });
    return { summary: `HL_MEM_OP_FREE handle ${hex(b.handle)}` };
  },
});

const mapOp = defineOp({
  name: 'map',
  doc: 'map device memory into the device\'s virtual address space (HL_MEM_OP_MAP): a device VA',
  produces: 'va',
  fields: {
    buffer: { kind: ref('buffer'), required: true, doc: 'what alloc made' },
    address: { kind: ADDRESS, doc: 'a device VA hint' },
  },
  run: (step, ctx) => {
    const b = ctx.objects.get<AccelBuffer>(step.args.buffer, 'buffer');
    const { fd } = drivers(ctx).accel(b.dev.pci.name);
    const out = hlIoctlMemory(drivers(ctx).proc, fd, { op: 'MAP', handle: b.handle, ...(step.args.address !== undefined ? { deviceVirtAddr: step.args.address } : {}) });
    const va: AccelVa = { kind: 'accel-va', dev: b.dev, va: out.deviceVirtAddr!, size: b.size, handle: b.handle };
    return { value: va, summary: `HL_MEM_OP_MAP handle ${hex(b.handle)} -> device VA ${hex(va.va)}`, result: { va: hex(va.va) } };
  },
});

const exportOp = defineOp({
  name: 'export',
  doc: 'export device memory as a dma-buf (HL_MEM_OP_EXPORT_DMABUF_FD): an fd',
  produces: 'fd',
  fields: {
    buffer: { kind: ref('buffer', 'va'), required: true, doc: 'a handle (alloc) or a device VA (map)' },
    offset: { kind: SIZE, doc: 'offset in the buffer (default 0)' },
    length: { kind: SIZE, doc: 'bytes (default: the whole buffer)' },
    flags: { kind: flags(OPEN_FLAGS), doc: 'file flags (default O_RDWR|O_CLOEXEC)' },
  },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const any = ctx.objects.get<AccelBuffer | AccelVa | AmdgpuBo>(step.args.buffer);
    if (!('kind' in any)) {
      const bo = any as AmdgpuBo;
      const prime: DrmPrimeHandle = { handle: d.gemHandles.get(bo), flags: DRM_RDWR | DRM_CLOEXEC };
      d.proc.ioctl(d.gpu(bo.device.pci.name).fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, prime);
      const fd = prime.fd!;
      const buf = announceExport(ctx, fd, bo.device.pci.name);
      return { value: fd, summary: `amdgpu_gem_prime_export BO ${bo.id} (${bo.domain}) -> fd ${fd} (dma-buf ${buf.id}, dynamic exporter)`, result: { fd } };
    }
    const o = any as AccelBuffer | AccelVa;
    const { fd } = d.accel(o.dev.pci.name);
    const flags = (step.args.flags ?? ['O_RDWR', 'O_CLOEXEC']).reduce((f, n) => f | OPEN[n]!, 0);
    // Gaudi2 exports by device VA (HL-06); a bare handle is passed as the address, as the
    // 5.15 uAPI took it, and the 6.x driver refuses it.
    const addr = o.kind === 'accel-va' ? o.va : o.handle;
    const out = hlIoctlMemory(d.proc, fd, {
      op: 'EXPORT_DMABUF_FD', addr, handle: o.handle, memSize: step.args.length ?? o.size, offset: step.args.offset ?? 0n, flags,
    });
    const buf = announceExport(ctx, out.fd!, o.dev.pci.name);
    return { value: out.fd, summary: `HL_MEM_OP_EXPORT_DMABUF_FD ${hex(addr)} -> fd ${out.fd} (dma-buf ${buf.id}, ${hex(buf.size)} bytes, exporter ${buf.expName})`, result: { fd: out.fd! } };
  },
});

const registerOp = defineOp({
  name: 'register',
  doc: 'ibv_reg_dmabuf_mr on a NIC: import the dma-buf, map it for the NIC, make an MR',
  produces: 'mr',
  fields: {
    nic: { kind: DEVICE, required: true, doc: 'the NIC' },
    fd: { kind: ref('fd'), required: true, doc: 'the dma-buf fd' },
    offset: { kind: SIZE, doc: 'offset in the dma-buf (default 0)' },
    length: { kind: SIZE, required: true, doc: 'bytes' },
    iova: { kind: ADDRESS, doc: 'the MR\'s virtual address (default: offset)' },
    access: { kind: flags(IB_ACCESS), doc: 'IBV_ACCESS_* without the prefix (default LOCAL_WRITE)' },
    kind: { kind: oneOf(['odp', 'pinned']), doc: 'the NIC: odp (mlx5-like, honours move_notify) or pinned (EFA-like); default odp' },
  },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const nic = d.nic(step.args.nic, step.args.kind ?? 'odp');
    const fd = ctx.objects.get<number>(step.args.fd, 'fd');
    const access = (step.args.access ?? ['LOCAL_WRITE']).reduce((f, n) => f | ACCESS[n]!, 0);
    const offset = step.args.offset ?? 0n;
    const iova = step.args.iova ?? offset;
    const mr = nic.ctx.regDmabufMr(nic.pd, offset, Number(step.args.length), iova, fd, access);
    ctx.report.log(`${nic.dev.name} (${nic.dev.kind}): map type ${ctx.machine.decide(mapProvider(ctx, fd), ctx.device(step.args.nic)).mapType}`);
    showMapping(ctx, step.args.nic, mr.translation, mr.umem?.sgt ?? null);
    return { value: mr, summary: `ibv_reg_dmabuf_mr(${nic.dev.name}, offset ${hex(offset)}, length ${hex(step.args.length)}, iova ${hex(iova)}, fd ${fd}) -> lkey ${hex(mr.lkey)} rkey ${hex(mr.rkey)}`, result: { lkey: mr.lkey, rkey: mr.rkey } };
  },
});

const postOp = defineOp({
  name: 'post',
  doc: 'post an RDMA work request from one NIC\'s QP to another\'s, to or from an MR',
  fields: {
    verb: { kind: oneOf(RDMA_VERBS), required: true, doc: 'WRITE, READ or SEND' },
    from: { kind: DEVICE, required: true, doc: 'the NIC that posts' },
    to: { kind: DEVICE, required: true, doc: 'the NIC of the peer QP' },
    mr: { kind: ref('mr'), required: true, doc: 'the remote MR (WRITE, READ) or the receive MR (SEND)' },
    offset: { kind: SIZE, doc: 'offset in the MR (default 0)' },
    length: { kind: SIZE, required: true, doc: 'bytes' },
    pattern: { kind: PATTERN, doc: 'what WRITE and SEND send (default counter)' },
  },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const { verb, from, to, length } = step.args;
    const mr = ctx.objects.get<IbvMr>(step.args.mr, 'mr');
    const n = Number(length);
    const qp = d.qp(from, to);
    // The local side: anonymous memory of the act's process, registered with ibv_reg_mr.
    const local = d.proc.mmapAnonymous(n);
    const src = d.nic(from);
    const pattern = step.args.pattern ?? { kind: 'counter', start: 0, step: 1 } as const;
    if (verb !== 'READ') d.proc.writeUser(local.start, ctx.pattern(pattern, n));
    const lmr = src.ctx.regMr(src.pd, local.start, n, IBV_ACCESS_LOCAL_WRITE);
    const sge = { addr: local.start, length: n, lkey: lmr.lkey };
    const remote = mr.iova + (step.args.offset ?? 0n);
    if (verb === 'SEND') {
      d.peerQp(from, to).postRecv({ wrId: step.index, sgList: [{ addr: remote, length: n, lkey: mr.lkey }] });
      qp.postSend({ wrId: step.index, opcode: 'SEND', sgList: [sge] });
    } else {
      qp.postSend({ wrId: step.index, opcode: verb === 'WRITE' ? 'RDMA_WRITE' : 'RDMA_READ', sgList: [sge], remoteAddr: remote, rkey: mr.rkey });
    }
    const wc = src.cq.poll();
    const status = wc[0]?.status ?? 'NONE';
    const data = verb === 'READ' ? d.proc.readUser(local.start, n) : undefined;
    src.ctx.deregMr(lmr);
    d.proc.munmap(local);
    const expected = step.expect.result?.status;
    if (status !== 'SUCCESS' && expected === undefined) throw completionError(status);
    return {
      summary: `${from} RDMA ${verb} ${length} bytes ${verb === 'READ' ? 'from' : 'to'} ${to} (rkey ${hex(mr.rkey)}, iova ${hex(remote)})${verb !== 'READ' ? `, ${describePattern(pattern)}` : ''}: IBV_WC_${status}`,
      result: { status }, ...(data ? { bytes: data } : {}),
    };
  },
});

const readBackOp = defineOp({
  name: 'readBack',
  doc: 'read device memory back and return its bytes (compare with expect: { bytes })',
  fields: {
    buffer: { kind: ref('buffer', 'va', 'mr', 'mmap'), required: true, doc: 'what to read' },
    offset: { kind: SIZE, doc: 'offset (default 0)' },
    length: { kind: SIZE, required: true, doc: 'bytes' },
  },
  run: (step, ctx) => {
    const any = ctx.objects.get<AccelBuffer | AccelVa | AmdgpuBo>(step.args.buffer);
    const off = step.args.offset ?? 0n;
    const n = Number(step.args.length);
    if (!('kind' in any)) {
      const bo = any as AmdgpuBo;
      return { bytes: bo.read(Number(off), n), summary: `read ${n} bytes of BO ${bo.id} (now in ${bo.domain}) with the GPU's DMA engine` };
    }
    const o = any as AccelBuffer | AccelVa;
    if (o.kind === 'accel-va') return { bytes: o.dev.vaRead(o.va + off, n), summary: `read ${n} bytes of HBM at device VA ${hex(o.va + off)}` };
    if (o.kind === 'accel-buffer') {
      const pack = o.dev.pack(Number(o.handle))!;
      const page = pack.pages[Number(off / pack.pageSize)]!;
      return { bytes: o.dev.dramRead(page + (off % pack.pageSize), n), summary: `read ${n} bytes of HBM at DRAM address ${hex(page + (off % pack.pageSize))}` };
    }
    throw new SimError('EINVAL', 'readBack', `${step.args.buffer} is not device memory`);
  },
});

const mmapOp = defineOp({
  name: 'mmap',
  doc: 'mmap a dma-buf fd into the process',
  produces: 'mmap',
  fields: {
    fd: { kind: ref('fd'), required: true, doc: 'the dma-buf fd' },
    offset: { kind: SIZE, doc: 'offset (default 0)' },
    length: { kind: SIZE, doc: 'bytes (default: the whole buffer)' },
    prot: { kind: flags(MMAP_PROT), doc: 'PROT_* without the prefix (default READ|WRITE)' },
  },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const fd = ctx.objects.get<number>(step.args.fd, 'fd');
    const size = d.proc.dmaBufGet(fd);
    const length = Number(step.args.length ?? BigInt(size.size));
    size.put();
    const prot = (step.args.prot ?? ['READ', 'WRITE']).reduce((p, n) => p | (n === 'READ' ? PROT_READ : PROT_WRITE), 0);
    const m = d.proc.mmap(fd, { length, prot, flags: MAP_SHARED, offset: step.args.offset ?? 0n });
    return { value: m, summary: `mmap(fd ${fd}, ${length}) ok` };
  },
});

const unmapOp = defineOp({
  name: 'unmap',
  doc: 'undo a map (device VA), an mmap, or a register (ibv_dereg_mr)',
  fields: { target: { kind: ref('va', 'mmap', 'mr'), required: true, doc: 'what to undo' } },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const o = ctx.objects.get<AccelVa | IbvMr | DmaBufMmap>(step.args.target);
    if ((o as AccelVa).kind === 'accel-va') {
      const va = o as AccelVa;
      hlIoctlMemory(d.proc, d.accel(va.dev.pci.name).fd, { op: 'UNMAP', deviceVirtAddr: va.va });
      return { summary: `HL_MEM_OP_UNMAP device VA ${hex(va.va)}` };
    }
    if ((o as IbvMr).pd !== undefined) {
      const mr = o as IbvMr;
      mr.pd.context.deregMr(mr);
      return { summary: `ibv_dereg_mr lkey ${hex(mr.lkey)}` };
    }
    d.proc.munmap(o as DmaBufMmap);
    return { summary: 'munmap' };
  },
});

const gpuAllocOp = defineOp({
  name: 'gpuAlloc',
  doc: 'create a GPU buffer object (amdgpu-like) in VRAM or GTT',
  produces: 'buffer',
  fields: {
    device: { kind: DEVICE, required: true, doc: 'the GPU' },
    size: { kind: SIZE, required: true, doc: 'bytes' },
    domain: { kind: oneOf(['VRAM', 'GTT']), required: true, doc: 'where it starts' },
  },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const gpu = d.gpu(step.args.device);
    const create: DrmAmdgpuGemCreate = {
      boSize: step.args.size, domains: step.args.domain === 'VRAM' ? AMDGPU_GEM_DOMAIN_VRAM : AMDGPU_GEM_DOMAIN_GTT,
      domainFlags: AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
    };
    d.proc.ioctl(gpu.fd, DRM_IOCTL_AMDGPU_GEM_CREATE, create);
    const bo = gpu.dev.drmFile(d.proc.file(gpu.fd)).lookup(create.handle!);
    d.gemHandles.set(bo, create.handle!);
    return { value: bo, summary: `${step.args.device}: BO ${bo.id}, ${hex(step.args.size)} bytes in ${bo.domain}`, result: { domain: bo.domain } };
  },
});

const pressureOp = defineOp({
  name: 'pressure',
  doc: 'GPU memory pressure: evict unpinned VRAM buffers to GTT (move_notify to every importer)',
  fields: {
    device: { kind: DEVICE, required: true, doc: 'the GPU' },
    bytes: { kind: SIZE, doc: 'stop after this much (default: everything evictable)' },
  },
  run: (step, ctx) => {
    const gpu = drivers(ctx).gpu(step.args.device).dev;
    const moved = logInvalidations(ctx, () => gpu.memoryPressure(step.args.bytes !== undefined ? { bytes: step.args.bytes } : {}));
    for (const bo of moved) ctx.report.log(`BO ${bo.id} evicted to ${bo.domain}; the move is fenced (KERNEL usage) in its reservation`);
    return { summary: `${moved.length} buffer${moved.length === 1 ? '' : 's'} evicted`, result: { evicted: moved.length } };
  },
});

const vfioExportOp = defineOp({
  name: 'vfioExport',
  doc: 'export a range of a vfio-pci device BAR as a dma-buf (VFIO_DEVICE_FEATURE_DMA_BUF): an fd',
  produces: 'fd',
  fields: {
    device: VFIO_DEVICE,
    ...BAR_RANGE,
  },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const data = { regionIndex: step.args.bar ?? 0, dmaRanges: [{ offset: step.args.offset ?? 0n, length: step.args.length }] };
    const fd = d.proc.ioctl(d.vfio(step.args.device).fd, VFIO_DEVICE_FEATURE, { flags: VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF, data });
    announceExport(ctx, fd, step.args.device);
    return { value: fd, summary: `vfio-pci ${step.args.device}: BAR${step.args.bar ?? 0} +${hex(step.args.offset ?? 0n)} ${hex(step.args.length)} bytes -> fd ${fd}`, result: { fd } };
  },
});

const resetOp = defineOp({
  name: 'reset',
  doc: 'reset a vfio-pci device: its dma-bufs are revoked (move_notify) until restore',
  fields: { device: VFIO_DEVICE },
  run: revocation('reset'),
});

const restoreOp = defineOp({
  name: 'restore',
  doc: 'restore a vfio-pci device (memory decode on, D0): its dma-bufs are usable again',
  fields: { device: VFIO_DEVICE },
  run: revocation('restore'),
});

const readBarOp = defineOp({
  name: 'readBar',
  doc: 'read BAR memory of a device (what the device holds there)',
  fields: {
    device: { kind: DEVICE, required: true, doc: 'the device' },
    ...BAR_RANGE,
  },
  run: (step, ctx) => {
    const bar = ctx.device(step.args.device).bar(step.args.bar ?? 0);
    if (!bar) throw new SimError('EINVAL', 'readBar', `${step.args.device} has no BAR${step.args.bar ?? 0}`);
    const at = bar.cpuAddress + (step.args.offset ?? 0n);
    return { bytes: ctx.machine.sim.memory.read(at, Number(step.args.length)), summary: `read ${step.args.length} bytes of ${step.args.device} BAR${bar.index} at ${hex(at)}` };
  },
});

const attachOp = defineOp({
  name: 'attach',
  doc: 'a kernel importer attaches to a dma-buf: static (dma_buf_attach) or dynamic with allow_peer2peer',
  produces: 'attachment',
  fields: {
    importer: { kind: DEVICE, required: true, doc: 'the importing device' },
    fd: { kind: ref('fd'), required: true, doc: 'the dma-buf fd' },
    dynamic: { kind: BOOL, doc: 'dynamic importer with allow_peer2peer and move_notify (default false: static)' },
  },
  run: (step, ctx) => {
    const d = drivers(ctx);
    const fd = ctx.objects.get<number>(step.args.fd, 'fd');
    const buf = d.proc.dmaBufGet(fd);
    const dev = importerDevice(ctx.machine, step.args.importer);
    try {
      const att = step.args.dynamic
        ? buf.dynamicAttach(dev, { allowPeer2Peer: true, moveNotify: () => undefined })
        : buf.attach(dev);
      const a: Attached = { att, importer: step.args.importer, sgt: null };
      return { value: a, summary: `${step.args.dynamic ? 'dma_buf_dynamic_attach' : 'dma_buf_attach'}(${step.args.importer}): peer2peer ${att.peer2peer}`, result: { peer2peer: att.peer2peer } };
    } finally {
      buf.put();
    }
  },
});

const mapAttachmentOp = defineOp({
  name: 'mapAttachment',
  doc: 'dma_buf_map_attachment (bidirectional), showing the sg_table and the IOMMU mappings',
  fields: { attachment: { kind: ref('attachment'), required: true, doc: 'what attach made' } },
  run: (step, ctx) => {
    const a = ctx.objects.get<Attached>(step.args.attachment, 'attachment');
    const sgt = a.att.mapUnlocked(DmaDataDirection.BIDIRECTIONAL);
    a.sgt = sgt;
    showMapping(ctx, a.importer, sgt.entries.slice(0, sgt.nents), sgt);
    return { summary: `dma_buf_map_attachment: ${sgt.nents} entries` };
  },
});

const detachOp = defineOp({
  name: 'detach',
  doc: 'unmap what mapAttachment mapped, then dma_buf_detach',
  fields: { attachment: { kind: ref('attachment'), required: true, doc: 'what attach made' } },
  run: (step, ctx) => {
    const a = ctx.objects.get<Attached>(step.args.attachment, 'attachment');
    if (a.sgt) a.att.unmapUnlocked(a.sgt, DmaDataDirection.BIDIRECTIONAL);
    a.sgt = null;
    a.att.detach();
    return { summary: 'dma_buf_detach' };
  },
});

const closeOp = defineOp({
  name: 'close',
  doc: 'close a dma-buf fd',
  fields: { fd: { kind: ref('fd'), required: true, doc: 'the fd' } },
  run: (step, ctx) => {
    const fd = ctx.objects.get<number>(step.args.fd, 'fd');
    drivers(ctx).proc.close(fd);
    return { summary: `close(${fd})` };
  },
});

/** The driver-backed ops, in the order help and the JSON Schema list them. */
export const DRIVER_OPS = [
  allocOp,
  freeOp,
  mapOp,
  exportOp,
  registerOp,
  postOp,
  readBackOp,
  mmapOp,
  unmapOp,
  gpuAllocOp,
  pressureOp,
  vfioExportOp,
  resetOp,
  restoreOp,
  readBarOp,
  attachOp,
  mapAttachmentOp,
  detachOp,
  closeOp,
] as const;

/** Registers the handler of every driver-backed op on `r`. */
export function registerDriverOps(r: ScenarioRunner): ScenarioRunner {
  for (const d of DRIVER_OPS) r.registerOp(d.name, d.run as StepHandler);
  return r;
}

/** The exporting device of the dma-buf behind `fd` (for the P2P decision shown in the report). */
function mapProvider(ctx: StepContext, fd: number) {
  const buf = drivers(ctx).proc.dmaBufGet(fd);
  try {
    const name = ctx.state.get(`exporter:${buf.id}`) as string | undefined;
    return ctx.device(name ?? buf.expName);
  } finally {
    buf.put();
  }
}
