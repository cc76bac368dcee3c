/**
 * Scenario ops of the iommufd user API (`/dev/iommu`, dmabuf-sim/drivers): a VMM-like process
 * of the act allocates user memory and IOASes, maps the memory, binds devices through their vfio
 * cdev, allocates HWPTs (nest parent, nested over a stage-1 table the user writes, dirty
 * tracking, PASID-capable, with a fault queue), attaches a device or one of its PASIDs, reads
 * dirty bitmaps and answers page requests; a device then does DMA with or without a PASID.
 *
 * One definition per op (defineOp); schema.ts lists IOMMUFD_OPS with the others and the default
 * runner registers them. Every object lives in the act's state, so two machines never meet.
 */
import { Prot, SimError, SimProcess, type DmaResult, type ErrnoCode, type IommuDomain, type Machine, type PgtableFormat } from '../index.js';
import {
  VfioPciDevice, openIommufd, PriDma, type PriTransfer, type IommuHwptPgfault,
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_DATA_ARM_SMMUV3, IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_PGFAULT_SIZE,
  IOMMU_PGFAULT_PERM_WRITE, IOMMUFD_PAGE_RESP_SUCCESS, IOMMUFD_PAGE_RESP_INVALID, VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_PASID,
} from '../drivers/index.js';
import type { StepContext, StepHandler, ScenarioRunner } from './runner.js';
import { ADDRESS, BOOL, PATTERN, SIZE, DEVICE, defineOp, flags, int, oneOf, ref } from './op.js';
import { iommuWalkSection } from './sections.js';
import { describePattern } from './pattern.js';

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
const PAGE = 4096n;

/** User memory of the act's process (anonymous, populated). */
interface UserMem { kind: 'umem'; va: bigint; length: bigint }
interface Ioas { kind: 'ioas'; id: number }
interface Hwpt { kind: 'hwpt'; id: number; what: string }
interface Fault { kind: 'fault'; id: number; fd: number }
/** A device bound to the iommufd through its vfio cdev. */
interface BoundDevice { kind: 'vdev'; name: string; cdev: number; devId: number; rid: number }

/** Per-act state: the process, its /dev/iommu fd, and the PRI transfers waiting for a page response. */
class ActIommufd {
  readonly proc: SimProcess;
  readonly fd: number;
  readonly waiting: { t: PriTransfer; what: string }[] = [];
  constructor(readonly machine: Machine) {
    this.proc = new SimProcess(machine.kernel, { name: 'vmm', memory: machine.sim.memory });
    this.fd = openIommufd(machine, this.proc);
  }
  io<T extends object>(cmd: number, arg: T): T {
    this.proc.ioctl(this.fd, cmd, arg);
    return arg;
  }
}

function state(ctx: StepContext): ActIommufd {
  let s = ctx.state.get('iommufd') as ActIommufd | undefined;
  if (!s) {
    s = new ActIommufd(ctx.machine);
    ctx.state.set('iommufd', s);
  }
  return s;
}

/** The domain a device's requests (with `pasid`, or untagged) translate through, if paging or nested. */
function domainFor(m: Machine, rid: number, pasid: number | undefined): IommuDomain | null {
  const iommu = m.sim.iommu;
  if (pasid !== undefined) return iommu.pasidDomain(rid, pasid);
  const id = iommu.domainOf(rid);
  if (typeof id !== 'number') return null;
  for (const u of m.units()) {
    const d = u.domains().find((x) => x.id === id);
    if (d) return d.type === 'paging' || d.type === 'nested' ? d : null;
  }
  return null;
}

const tag = (pasid: number | undefined): string => (pasid === undefined ? 'untagged (RID)' : `pasid ${pasid}`);
const DEV = { kind: ref('vdev'), required: true, doc: 'a device bound with vfioBind' } as const;
const PASID = { kind: int(1, (1 << 20) - 1), doc: 'the PASID (none: the RID, untagged requests)' } as const;

const userAllocOp = defineOp({
  name: 'userAlloc',
  doc: 'anonymous memory of the act\'s process (mmap MAP_ANONYMOUS, populated), optionally filled with a pattern',
  produces: 'umem',
  fields: {
    size: { kind: SIZE, required: true, doc: 'bytes, a multiple of 4K' },
    pattern: { kind: PATTERN, doc: 'bytes written into it' },
  },
  run: (step, ctx) => {
    const { size, pattern } = step.args;
    if (size === 0n || size % PAGE !== 0n) throw new SimError('EINVAL', 'userAlloc', `size: ${size} is not a positive multiple of 4K`);
    const s = state(ctx);
    const va = s.proc.mmapAnonymous(Number(size), { populate: true }).start;
    if (pattern !== undefined) s.proc.writeUser(va, ctx.pattern(pattern, Number(size)));
    const mem: UserMem = { kind: 'umem', va, length: size };
    return { value: mem, summary: `mmap ${hex(size)} at ${hex(va)}${pattern === undefined ? '' : `, filled with ${describePattern(pattern)}`}`, result: { va: hex(va) } };
  },
});

const userReadOp = defineOp({
  name: 'userRead',
  doc: 'read the process\'s memory (compare with expect: { bytes })',
  fields: {
    memory: { kind: ref('umem'), required: true, doc: 'what userAlloc made' },
    offset: { kind: SIZE, doc: 'offset in it (default 0)' },
    length: { kind: SIZE, required: true, doc: 'bytes' },
  },
  run: (step, ctx) => {
    const mem = ctx.objects.get<UserMem>(step.args.memory, 'umem');
    const off = step.args.offset ?? 0n;
    if (off + step.args.length > mem.length) throw new SimError('EFAULT', 'userRead', `offset + length: ${hex(off + step.args.length)} is past the ${hex(mem.length)} bytes of '${step.args.memory}'`);
    return { bytes: state(ctx).proc.readUser(mem.va + off, Number(step.args.length)), summary: `read ${step.args.length} bytes at ${hex(mem.va + off)}` };
  },
});

const ioasAllocOp = defineOp({
  name: 'ioasAlloc',
  doc: 'IOMMU_IOAS_ALLOC on the act\'s /dev/iommu (opened on first use): an IO address space',
  produces: 'ioas',
  fields: {},
  run: (_step, ctx) => {
    const a = state(ctx).io(IOMMU_IOAS_ALLOC, {} as { outIoasId?: number });
    const ioas: Ioas = { kind: 'ioas', id: a.outIoasId! };
    return { value: ioas, summary: `IOMMU_IOAS_ALLOC -> ioas ${ioas.id}`, result: { id: ioas.id } };
  },
});

const ioasMapOp = defineOp({
  name: 'ioasMap',
  doc: 'IOMMU_IOAS_MAP: map (pin) user memory into an IOAS, at a fixed IOVA or one the kernel picks',
  fields: {
    ioas: { kind: ref('ioas'), required: true, doc: 'the IOAS' },
    memory: { kind: ref('umem'), required: true, doc: 'what userAlloc made' },
    offset: { kind: SIZE, doc: 'offset in the memory (default 0)' },
    length: { kind: SIZE, doc: 'bytes (default: to the end of the memory)' },
    iova: { kind: ADDRESS, doc: 'a fixed IOVA (IOMMU_IOAS_MAP_FIXED_IOVA); none: the kernel picks' },
    access: { kind: flags(['READ', 'WRITE'] as const), doc: 'READABLE and/or WRITEABLE (default both)' },
  },
  run: (step, ctx) => {
    const a = step.args;
    const mem = ctx.objects.get<UserMem>(a.memory, 'umem');
    const off = a.offset ?? 0n;
    const length = a.length ?? mem.length - off;
    if (off + length > mem.length) throw new SimError('EFAULT', 'ioasMap', `offset + length: ${hex(off + length)} is past the ${hex(mem.length)} bytes of '${a.memory}'`);
    const access = a.access ?? ['READ', 'WRITE'];
    const fl = (access.includes('READ') ? IOMMU_IOAS_MAP_READABLE : 0) | (access.includes('WRITE') ? IOMMU_IOAS_MAP_WRITEABLE : 0)
      | (a.iova === undefined ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA);
    const ioasId = ctx.objects.get<Ioas>(a.ioas, 'ioas').id;
    const m = state(ctx).io(IOMMU_IOAS_MAP, { ioasId, userVa: mem.va + off, length, flags: fl, iova: a.iova } as { ioasId: number; userVa: bigint; length: bigint; flags: number; iova?: bigint });
    return { summary: `IOMMU_IOAS_MAP ioas ${ioasId}: ${hex(length)} of user memory at ${hex(mem.va + off)} -> iova ${hex(m.iova!)} (${access.join('|')})`, result: { iova: hex(m.iova!) } };
  },
});

const vfioBindOp = defineOp({
  name: 'vfioBind',
  doc: 'bind a device to vfio-pci, open its cdev and VFIO_DEVICE_BIND_IOMMUFD it; optionally enable PASIDs and ATS with page requests on it',
  produces: 'vdev',
  fields: {
    device: { kind: DEVICE, required: true, doc: 'the PCI function' },
    pasidBits: { kind: int(1, 20), doc: 'enable PASIDs of this width (PCIe PASID capability)' },
    pri: { kind: BOOL, doc: 'enable ATS with page requests (PRI): a miss raises a page request instead of a fault' },
  },
  run: (step, ctx) => {
    const s = state(ctx);
    const fn = ctx.machine.pci(step.args.device);
    const cdev = VfioPciDevice.create(ctx.machine, step.args.device).openCdev(s.proc);
    const b = { iommufd: s.fd } as { iommufd: number; outDevid?: number };
    s.proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, b);
    const rid = ctx.machine.rid(fn);
    if (step.args.pasidBits !== undefined) ctx.machine.sim.iommu.enablePasid(rid, { bits: step.args.pasidBits });
    if (step.args.pri) ctx.machine.sim.iommu.enableAts(rid, { pri: true });
    const dev: BoundDevice = { kind: 'vdev', name: step.args.device, cdev, devId: b.outDevid!, rid };
    const caps = [step.args.pasidBits === undefined ? '' : `, ${step.args.pasidBits}-bit PASIDs`, step.args.pri ? ', ATS+PRI' : ''].join('');
    return { value: dev, summary: `${step.args.device}: vfio cdev fd ${cdev} bound, dev_id ${dev.devId}${caps}`, result: { devId: dev.devId } };
  },
});

/** The stage-1 format a nested HWPT of `m`'s family takes, with its iommufd data type. */
function stage1Of(m: Machine): { format: PgtableFormat; dataType: number } {
  return m.iommu?.family === 'vtd' ? { format: 'x86-64', dataType: IOMMU_HWPT_DATA_VTD_S1 } : { format: 'arm-lpae-s1', dataType: IOMMU_HWPT_DATA_ARM_SMMUV3 };
}

const hwptAllocOp = defineOp({
  name: 'hwptAlloc',
  doc: 'IOMMU_HWPT_ALLOC: a hardware page table for a device over an IOAS (paging), or over a NEST_PARENT HWPT with the stage-1 table at `root` (nested)',
  produces: 'hwpt',
  fields: {
    device: DEV,
    pt: { kind: ref('ioas', 'hwpt'), required: true, doc: 'an IOAS (paging HWPT) or a NEST_PARENT HWPT (nested: needs root)' },
    flags: { kind: flags(['NEST_PARENT', 'DIRTY_TRACKING', 'PASID'] as const), doc: 'IOMMU_HWPT_ALLOC_* flags' },
    fault: { kind: ref('fault'), doc: 'deliver page requests to this fault queue (IOMMU_HWPT_FAULT_ID_VALID)' },
    root: { kind: ADDRESS, doc: 'nested: the IPA of the stage-1 root table the user wrote (see stage1Map)' },
  },
  run: (step, ctx) => {
    const a = step.args;
    const s = state(ctx);
    const dev = ctx.objects.get<BoundDevice>(a.device, 'vdev');
    const ptObj = ctx.objects.get<Ioas | Hwpt>(a.pt);
    const fl = (a.flags ?? []).reduce((acc, f) => acc | { NEST_PARENT: IOMMU_HWPT_ALLOC_NEST_PARENT, DIRTY_TRACKING: IOMMU_HWPT_ALLOC_DIRTY_TRACKING, PASID: IOMMU_HWPT_ALLOC_PASID }[f], 0)
      | (a.fault === undefined ? 0 : IOMMU_HWPT_FAULT_ID_VALID);
    const arg: Record<string, unknown> & { outHwptId?: number } = { devId: dev.devId, ptId: ptObj.id, flags: fl };
    if (a.fault !== undefined) arg.faultId = ctx.objects.get<Fault>(a.fault, 'fault').id;
    let what = 'paging';
    if (a.root !== undefined) {
      arg.dataType = stage1Of(ctx.machine).dataType;
      arg.data = { root: a.root };
      what = `nested, stage-1 root at ipa ${hex(a.root)}`;
    } else if (a.flags?.includes('NEST_PARENT')) what = 'nest parent (stage 2)';
    s.io(IOMMU_HWPT_ALLOC, arg);
    const h: Hwpt = { kind: 'hwpt', id: arg.outHwptId!, what };
    const on = ptObj.kind === 'ioas' ? `ioas ${ptObj.id}` : `hwpt ${ptObj.id}`;
    return { value: h, summary: `IOMMU_HWPT_ALLOC on ${on}${a.flags?.length ? ` [${a.flags.join('|')}]` : ''}${a.fault === undefined ? '' : ' with a fault queue'} -> hwpt ${h.id} (${what})`, result: { id: h.id } };
  },
});

const attachOp = defineOp({
  name: 'ptAttach',
  doc: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT: attach the device (or one of its PASIDs) to an IOAS or a HWPT; attaching again replaces',
  fields: {
    device: DEV,
    pt: { kind: ref('ioas', 'hwpt'), required: true, doc: 'an IOAS (automatic HWPT) or a HWPT' },
    pasid: PASID,
  },
  run: (step, ctx) => {
    const s = state(ctx);
    const dev = ctx.objects.get<BoundDevice>(step.args.device, 'vdev');
    const pt = ctx.objects.get<Ioas | Hwpt>(step.args.pt);
    const arg: { ptId: number; flags?: number; pasid?: number } = { ptId: pt.id };
    if (step.args.pasid !== undefined) Object.assign(arg, { flags: VFIO_DEVICE_ATTACH_PASID, pasid: step.args.pasid });
    s.proc.ioctl(dev.cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, arg);
    return { summary: `${dev.name} ${tag(step.args.pasid)} attached to ${pt.kind} ${pt.id}${pt.kind === 'ioas' ? ` (hwpt ${arg.ptId})` : ` (${pt.what})`}`, result: { hwpt: arg.ptId } };
  },
});

const stage1MapOp = defineOp({
  name: 'stage1Map',
  doc: 'the user (a guest) writes a stage-1 table for one 4K page in its own memory: one table page per level from the memory\'s first page (the root, at IPA `ipa`), the leaf naming IPA `target`',
  fields: {
    device: DEV,
    memory: { kind: ref('umem'), required: true, doc: 'guest memory holding the tables (mapped in the IOAS at `ipa`)' },
    ipa: { kind: ADDRESS, required: true, doc: 'the IPA (stage-2 input) of the memory\'s first page: the root table' },
    iova: { kind: ADDRESS, required: true, doc: 'the stage-1 input address the entry maps' },
    target: { kind: ADDRESS, required: true, doc: 'the IPA of the page it maps to' },
  },
  run: (step, ctx) => {
    const a = step.args;
    const s = state(ctx);
    const dev = ctx.objects.get<BoundDevice>(a.device, 'vdev');
    const mem = ctx.objects.get<UserMem>(a.memory, 'umem');
    const unit = ctx.machine.unitOf(ctx.machine.pci(dev.name));
    if (!unit) throw new SimError('ENODEV', 'stage1Map', `device: ${dev.name} is behind no IOMMU`);
    for (const [f, v] of [['ipa', a.ipa], ['iova', a.iova], ['target', a.target]] as const) {
      if (v % PAGE !== 0n) throw new SimError('EINVAL', 'stage1Map', `${f}: ${hex(v)} is not 4K-aligned`);
    }
    // The entries' attribute bits come from a scratch domain of the same format (the guest
    // driver's own encoding); only their address fields are the guest's.
    const tmp = unit.createDomain({ type: 'paging', format: stage1Of(ctx.machine).format });
    let levels;
    try {
      tmp.map(a.iova, 0x4000_0000n, PAGE, Prot.RW);
      levels = tmp.walk(a.iova).levels;
    } finally {
      tmp.unmap(a.iova, PAGE);
      tmp.destroy();
    }
    if (BigInt(levels.length) * PAGE > mem.length) throw new SimError('EFAULT', 'stage1Map', `memory: '${a.memory}' holds ${mem.length / PAGE} pages, the table needs ${levels.length}`);
    const ADDR = 0x000f_ffff_ffff_f000n;
    levels.forEach((l, i) => {
      const next = i + 1 < levels.length ? a.ipa + BigInt(i + 1) * PAGE : a.target;
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, next | (l.entry & ~ADDR), true);
      s.proc.writeUser(mem.va + BigInt(i) * PAGE + BigInt(l.index * 8), b);
    });
    return { summary: `stage-1 table (${stage1Of(ctx.machine).format}, ${levels.length} levels from ipa ${hex(a.ipa)}): iova ${hex(a.iova)} -> ipa ${hex(a.target)}`, result: { levels: levels.length } };
  },
});

const dirtyTrackingOp = defineOp({
  name: 'dirtyTracking',
  doc: 'IOMMU_HWPT_SET_DIRTY_TRACKING: start (clearing old marks) or stop dirty tracking on a HWPT made with DIRTY_TRACKING',
  fields: {
    hwpt: { kind: ref('hwpt'), required: true, doc: 'the HWPT' },
    enable: { kind: BOOL, doc: 'on (default) or off' },
  },
  run: (step, ctx) => {
    const h = ctx.objects.get<Hwpt>(step.args.hwpt, 'hwpt');
    const on = step.args.enable ?? true;
    state(ctx).io(IOMMU_HWPT_SET_DIRTY_TRACKING, { hwptId: h.id, flags: on ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0 });
    return { summary: `hwpt ${h.id}: dirty tracking ${on ? 'on' : 'off'}` };
  },
});

const dirtyBitmapOp = defineOp({
  name: 'dirtyBitmap',
  doc: 'IOMMU_HWPT_GET_DIRTY_BITMAP: the dirty pages of an IOVA range (read and cleared); result `dirty` lists their indexes',
  fields: {
    hwpt: { kind: ref('hwpt'), required: true, doc: 'the HWPT' },
    iova: { kind: ADDRESS, required: true, doc: 'start of the range' },
    length: { kind: SIZE, required: true, doc: 'bytes' },
    pageSize: { kind: SIZE, doc: 'bytes per bit (default 4K)' },
  },
  run: (step, ctx) => {
    const h = ctx.objects.get<Hwpt>(step.args.hwpt, 'hwpt');
    const pageSize = step.args.pageSize ?? PAGE;
    const bits = pageSize > 0n ? step.args.length / pageSize : 0n;
    const data = new BigUint64Array(Math.max(1, Number((bits + 63n) / 64n)));
    state(ctx).io(IOMMU_HWPT_GET_DIRTY_BITMAP, { hwptId: h.id, iova: step.args.iova, length: step.args.length, pageSize, data });
    const dirty: number[] = [];
    for (let i = 0; i < Number(bits); i++) if ((data[i >> 6]! >> BigInt(i & 63)) & 1n) dirty.push(i);
    ctx.report.log(`bitmap ${[...data].map((w) => hex(w)).join(' ')} (bit i = page i of ${hex(pageSize)} from ${hex(step.args.iova)})`);
    const list = dirty.join(',');
    return { summary: `hwpt ${h.id}: ${dirty.length} dirty page${dirty.length === 1 ? '' : 's'} of ${bits}${dirty.length ? `: ${dirty.map((i) => hex(step.args.iova + BigInt(i) * pageSize)).join(' ')}` : ''}`, result: { dirty: list, count: dirty.length } };
  },
});

const faultAllocOp = defineOp({
  name: 'faultAlloc',
  doc: 'IOMMU_FAULT_QUEUE_ALLOC: a fault queue (and its fd) that HWPTs made with it deliver page requests to',
  produces: 'fault',
  fields: {},
  run: (_step, ctx) => {
    const a = state(ctx).io(IOMMU_FAULT_QUEUE_ALLOC, {} as { outFaultId?: number; outFaultFd?: number });
    const f: Fault = { kind: 'fault', id: a.outFaultId!, fd: a.outFaultFd! };
    return { value: f, summary: `IOMMU_FAULT_QUEUE_ALLOC -> fault ${f.id}, fd ${f.fd}`, result: { id: f.id } };
  },
});

const pageResponseOp = defineOp({
  name: 'pageResponse',
  doc: 'read the page requests pending on a fault fd and answer each: success (after mapping the page from `memory` into `ioas` at the requested IOVA, if given) or invalid; waiting devices retry',
  fields: {
    fault: { kind: ref('fault'), required: true, doc: 'the fault queue' },
    code: { kind: oneOf(['success', 'invalid'] as const), required: true, doc: 'IOMMUFD_PAGE_RESP_SUCCESS or _INVALID' },
    ioas: { kind: ref('ioas'), doc: 'success: map each requested page into this IOAS first' },
    memory: { kind: ref('umem'), doc: 'success: the user memory behind the mapped pages' },
    offset: { kind: SIZE, doc: 'offset in the memory of the first page mapped (default 0; each further request takes the next page)' },
  },
  run: (step, ctx) => {
    const a = step.args;
    const s = state(ctx);
    const f = ctx.objects.get<Fault>(a.fault, 'fault');
    if ((a.ioas === undefined) !== (a.memory === undefined)) throw new SimError('EINVAL', 'pageResponse', `${a.ioas === undefined ? 'ioas' : 'memory'}: ioas and memory go together`);
    const recs = s.proc.read(f.fd, 64 * IOMMU_HWPT_PGFAULT_SIZE) as IommuHwptPgfault[];
    let off = a.offset ?? 0n;
    if (a.code === 'success' && a.memory !== undefined) {
      // Every request needs a page of the memory: refuse before mapping or answering any.
      const mem = ctx.objects.get<UserMem>(a.memory, 'umem');
      if (off + BigInt(recs.length) * PAGE > mem.length) throw new SimError('EFAULT', 'pageResponse', `memory: '${a.memory}' has no room for ${recs.length} pages at offset ${hex(off)}`);
    }
    for (const r of recs) {
      const pas = r.flags & 1 ? ` pasid ${r.pasid}` : '';
      ctx.report.log(`page request: dev_id ${r.devId}${pas} iova ${hex(r.addr)} ${r.perm & IOMMU_PGFAULT_PERM_WRITE ? 'write' : 'read'} (group ${r.grpid}, cookie ${r.cookie})`);
      if (a.code === 'success' && a.ioas !== undefined) {
        const mem = ctx.objects.get<UserMem>(a.memory!, 'umem');
        const ioasId = ctx.objects.get<Ioas>(a.ioas, 'ioas').id;
        s.io(IOMMU_IOAS_MAP, { ioasId, userVa: mem.va + off, length: PAGE, iova: r.addr, flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA });
        ctx.report.log(`  handler maps ${hex(mem.va + off)} at iova ${hex(r.addr)} in ioas ${ioasId}`);
        off += PAGE;
      }
      const before = s.waiting.map((w) => ({ attempts: w.t.attempts, state: w.t.state }));
      s.proc.write(f.fd, [{ cookie: r.cookie, code: a.code === 'success' ? IOMMUFD_PAGE_RESP_SUCCESS : IOMMUFD_PAGE_RESP_INVALID }]);
      ctx.report.log(`page response: cookie ${r.cookie} ${a.code === 'success' ? 'SUCCESS' : 'INVALID'}`);
      // The devices this response reached: SUCCESS retries the access, INVALID ends the transfer.
      s.waiting.forEach((w, i) => {
        const was = before[i]!;
        if (w.t.attempts > was.attempts) ctx.report.log(`  ${w.what}: retried (attempt ${w.t.attempts}), ${w.t.state}, ${w.t.bytesDone} bytes`);
        else if (was.state === 'waiting' && w.t.state === 'failed') ctx.report.log(`  ${w.what}: gave up (${w.t.result?.code ?? 'EFAULT'}), ${w.t.bytesDone} bytes`);
      });
    }
    const left = s.waiting.filter((w) => w.t.state === 'waiting');
    s.waiting.splice(0, s.waiting.length, ...left);
    return { summary: `${recs.length} page request${recs.length === 1 ? '' : 's'} answered ${a.code.toUpperCase()}`, result: { requests: recs.length, waiting: left.length } };
  },
});

const dmaOp = defineOp({
  name: 'deviceDma',
  doc: 'the device\'s DMA engine reads or writes at an IOVA, untagged or with a PASID; a PRI device whose access raises a page request waits for the response (result state `waiting`)',
  fields: {
    device: DEV,
    verb: { kind: oneOf(['read', 'write'] as const), required: true, doc: 'read: memory to device; write: device to memory' },
    iova: { kind: ADDRESS, required: true, doc: 'the device address' },
    length: { kind: SIZE, required: true, doc: 'bytes' },
    pasid: PASID,
    pattern: { kind: PATTERN, doc: 'write: the bytes (default counter)' },
  },
  run: (step, ctx) => {
    const a = step.args;
    const s = state(ctx);
    const dev = ctx.objects.get<BoundDevice>(a.device, 'vdev');
    const n = Number(a.length);
    const t = a.verb === 'write' ? new PriDma(ctx.machine, dev.rid, a.pasid ?? null).write(a.iova, ctx.pattern(a.pattern ?? { kind: 'counter', start: 0, step: 1 }, n))
      : new PriDma(ctx.machine, dev.rid, a.pasid ?? null).read(a.iova, n);
    const what = `${dev.name} ${tag(a.pasid)} DMA ${a.verb} ${hex(a.length)} at iova ${hex(a.iova)}`;
    const dom = domainFor(ctx.machine, dev.rid, a.pasid);
    if (dom) {
      const sec = iommuWalkSection(dom, a.iova, `${dev.name} ${tag(a.pasid)} walk of ${hex(a.iova)}`, a.pasid ?? null);
      const w = sec.data as { ok: boolean; pa: bigint | null };
      // The translation the request got, with the PASID it carried (the IOTLB tags entries with it).
      ctx.report.log(`translation ${dev.name} rid ${hex(dev.rid)} ${a.pasid === undefined ? 'no PASID' : `PASID ${a.pasid}`}: iova ${hex(a.iova)} -> ${w.ok ? `pa ${hex(w.pa!)}` : 'none'} in ${dom.unit.name} domain ${dom.id}${dom.type === 'nested' ? ' (nested: stage 1, then stage 2)' : ''}`);
      ctx.report.section(sec);
    }
    if (t.state === 'waiting') {
      s.waiting.push({ t, what });
      ctx.report.log(`${what}: page request raised for iova ${hex(t.waitingFor!)}, the device waits`);
      return { summary: `${what}: waiting (${t.bytesDone} bytes done)`, result: { state: 'waiting', bytesDone: Number(t.bytesDone) } };
    }
    const r = t.result as DmaResult;
    if (!r.ok) {
      const f = r.fault;
      // The unit's fault record says which stage of a nested walk failed, and the PASID.
      const rec = f ? ctx.machine.unitOf(ctx.machine.pci(dev.name))?.faults().at(-1) : undefined;
      const stage = rec?.nested ? `, stage ${rec.nested.stage}${rec.nested.tableFetch ? ' (stage-1 table fetch)' : ''} at ipa ${hex(rec.nested.ipa)}` : '';
      const pas = rec && rec.pasid !== null && rec.pasid !== undefined ? `, pasid ${rec.pasid}` : '';
      throw new SimError(r.code as ErrnoCode, 'deviceDma', `${what}: stopped after ${r.bytesDone} bytes${f ? ` by a fault at iova ${hex(f.iova)}: ${f.reason}, code ${hex(f.familyCode)}${stage}${pas}` : ''}`);
    }
    return { summary: `${what}: ${r.bytesDone} bytes`, ...(t.data ? { bytes: t.data } : {}), result: { state: t.state, bytesDone: Number(t.bytesDone) } };
  },
});

/** The iommufd ops, in the order help and the JSON Schema list them. */
export const IOMMUFD_OPS = [
  userAllocOp, userReadOp, ioasAllocOp, ioasMapOp, vfioBindOp, hwptAllocOp, attachOp, stage1MapOp,
  dirtyTrackingOp, dirtyBitmapOp, faultAllocOp, pageResponseOp, dmaOp,
] as const;

/** Registers the iommufd ops' handlers on `r`. */
export function registerIommufdOps(r: ScenarioRunner): ScenarioRunner {
  for (const d of IOMMUFD_OPS) r.registerOp(d.name, d.run as StepHandler);
  return r;
}
