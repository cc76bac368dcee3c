/**
 * The fd and DMA-BUF harness (issue 12): random sequences of calls over the public API of fds and
 * dma-buf objects (open/dup/close, dma-heap alloc, udmabuf create, vfio-pci export, dma_buf_get
 * and put, static and dynamic attach/detach, map/unmap, pin/unpin, begin/end cpu access and the
 * SYNC ioctl, mmap/munmap, vmap/vunmap, export/import sync file, fences added and signaled,
 * move_notify, revocation), with often-bad arguments: junk of every JS type, closed fds, detached
 * attachments, unmapped tables, released buffers, and objects of another machine. After every
 * call: success, or a SimError (never a TypeError or a trap) and an unchanged snapshot of both
 * machines (bench/state-snapshot.ts). test/hardening/fd-dmabuf-harness.test.ts runs a bounded
 * number; `npm run soak` runs these calls too.
 */
import fc from 'fast-check';
import {
  CoreTrapError, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME_B,
  DmaResvUsage, MAP_PRIVATE, MAP_SHARED, O_CLOEXEC, O_RDONLY, O_RDWR, PAGE_SIZE, PROT_READ, PROT_WRITE, SEEK_END, SimError,
  SimProcess, importerDevice, type DmaBuf, type DmaBufAttachment, type DmaFence, type ImporterDevice, type IosysMap,
  type KernelProfileName, type SgTable, type VmArea,
} from '../src/index.js';
import { Machine } from '../src/machine/machine.js';
import { DMA_HEAP_IOCTL_ALLOC, DmaHeaps } from '../src/drivers/dma-heap/index.js';
import {
  F_ADD_SEALS, F_SEAL_SHRINK, MFD_ALLOW_SEALING, UDMABUF_CREATE, UdmabufDevice, memfdCreate, memfdFcntl, memfdTruncate,
} from '../src/drivers/udmabuf/index.js';
import { VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_DMA_BUF, VFIO_DEVICE_FEATURE_GET, VfioPciDevice } from '../src/drivers/vfio/index.js';
import { HabanaDevice, hlIoctlMemory } from '../src/drivers/accel/index.js';
import { RdmaDevice, ibvOpenDevice, type IbvContext, type IbvMr, type IbvPd } from '../src/drivers/rdma/index.js';
import {
  AmdgpuDevice, DRM_IOCTL_PRIME_FD_TO_HANDLE, type AmdgpuBo,
} from '../src/drivers/gpu/index.js';
import { SEED_VFIO_TOPOLOGY } from '../src/scenario/builtin/seed-topology.js';
import { machineScope, stateSnapshot } from './state-snapshot.js';

const P = PAGE_SIZE;
const MEMFD_PAGES = 16;

/** Values of every JS type, mostly wrong for whatever field receives them. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined), fc.constant(null), fc.boolean(), fc.integer({ min: -3, max: 70 }), fc.double(),
  fc.bigInt({ min: -2n, max: 1n << 65n }), fc.string({ maxLength: 4 }), fc.constant({ id: 1 }), fc.constant([1, 2]),
  fc.constant(new Uint8Array(3)), fc.constant(() => 0), fc.constant(Symbol('s')),
);
/** An index into a pool (resolved when the call runs), sometimes junk instead. */
const pick = fc.oneof({ weight: 6, arbitrary: fc.nat(40).map((i) => ({ pick: i })) }, { weight: 1, arbitrary: junk });
/** An fd: mostly one of the dma-buf fds made so far (closed ones included), else any fd, else junk. */
const fdPick = fc.oneof(
  { weight: 4, arbitrary: fc.nat(40).map((i) => ({ pick: i, pool: 'buf' })) },
  { weight: 2, arbitrary: fc.nat(40).map((i) => ({ pick: i })) },
  { weight: 1, arbitrary: junk },
);
const or = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 5, arbitrary: good }, { weight: 1, arbitrary: junk });
const dir = or(fc.constantFrom(0, 1, 2, 3));
const size = or(fc.constantFrom(0, 1, P, 2 * P, 3 * P, 5 * P, 64 * P));
const offset = or(fc.constantFrom(0, P, 2 * P, 1, 12 * P));
const syncFlags = or(fc.constantFrom(1, 2, 3, 1, 2, 3, 0, 4));
const usage = or(fc.constantFrom(DmaResvUsage.KERNEL, DmaResvUsage.WRITE, DmaResvUsage.READ, DmaResvUsage.BOOKKEEP, 7));

/** One call: its name and its arguments (drawn once, resolved against a world when run). */
export interface DmaBufCall {
  name: string;
  args: unknown[];
}

const call = (name: string, ...args: fc.Arbitrary<unknown>[]): fc.Arbitrary<DmaBufCall> =>
  fc.tuple(...args).map((a) => ({ name, args: a as unknown[] }));

export const dmaBufCallArb: fc.Arbitrary<DmaBufCall> = fc.oneof(
  call('open'),
  call('dup', fdPick),
  call('close', fdPick),
  call('heap.alloc', size, or(fc.constantFrom(O_RDWR | O_CLOEXEC, O_RDONLY, O_RDWR, 0x40))),
  call('udmabuf.create', offset, size, or(fc.constantFrom(0, 1))),
  call('vfio.export', offset, size),
  call('vfio.decode', fc.boolean()),
  call('get', fdPick),
  call('dmaBufFd', pick, or(fc.constantFrom(0, O_CLOEXEC))),
  call('put', pick),
  call('attach', pick, pick),
  call('dynamicAttach', pick, pick, or(fc.boolean())),
  call('detach', pick),
  call('map', pick, dir, fc.boolean()),
  call('unmap', pick, fc.oneof(fc.constant('same'), dir)),
  call('pin', pick, fc.boolean()),
  call('unpin', pick, fc.boolean()),
  call('begin', pick, dir),
  call('end', pick, dir),
  call('ioctl.sync', fdPick, or(fc.constantFrom(1, 2, 3, 5, 6, 7, 4, 0, 8))),
  call('ioctl.setName', fdPick, or(fc.constantFrom('a', 'x'.repeat(40), ''))),
  call('mmap', fdPick, or(fc.constantFrom(P, P, 2 * P, 0, 64 * P)), or(fc.constantFrom(PROT_READ, PROT_READ | PROT_WRITE)), or(fc.constantFrom(MAP_SHARED, MAP_SHARED, MAP_PRIVATE, 0)), or(fc.constantFrom(0, 0, P, 1))),
  call('munmap', pick),
  call('kmmap', pick, or(fc.constantFrom(1, 2, 64)), or(fc.constantFrom(0n, 1n, -1n, 1n << 63n)), or(fc.constantFrom(MAP_SHARED, MAP_PRIVATE))),
  call('vmap', pick),
  call('vunmap', pick),
  call('exportSync', fdPick, syncFlags),
  call('importSync', fdPick, pick, syncFlags),
  call('fence.add', pick, usage),
  call('fence.signal', pick),
  call('moveNotify', pick),
  call('llseek', fdPick, or(fc.constantFrom(0, 1)), or(fc.constantFrom(SEEK_END, 0, 1))),
  call('poll', fdPick),
  call('hl.export', offset, size, or(fc.constantFrom(O_RDWR, O_RDWR | O_CLOEXEC, 0x800000))),
  call('rdma.reg', fc.nat(1), fdPick, or(fc.constantFrom(0, 0, P, 1)), or(fc.constantFrom(P, 2 * P, 0, 1 << 30)), or(fc.constantFrom(1, 3, 7, 0x100))),
  call('rdma.dereg', pick),
  // amdgpu as an importer only: as an exporter it migrates BOs on the way (pin, CPU access), and
  // a migration is not undone when the call fails later, in the kernel as here (test/hardening
  // rollback tests cover its export paths).
  call('gpu.import', fdPick),
  call('gpu.access', pick, offset),
);

/** A machine with its process and exporters, as the harness drives them. */
interface Side {
  m: Machine;
  proc: SimProcess;
  heaps: DmaHeaps;
  heapFd: number;
  udmabuf: UdmabufDevice;
  udevFd: number;
  memfd: number;
  vfio: VfioPciDevice;
  vfd: number;
  importers: ImporterDevice[];
  hl: HabanaDevice;
  hlFd: number;
  hlVa: bigint;
  gpu: AmdgpuDevice;
  drmFd: number;
  /** The handles of imported BOs. */
  gpuImports: number[];
  nics: { ctx: IbvContext; pd: IbvPd }[];
}

/** Both machines and every object the calls made (stale ones stay: they are bad arguments). */
export interface DmaBufWorld {
  main: Side;
  other: Side;
  fds: number[];
  /** The fds dma-buf exports returned (and their dups). */
  bufFds: number[];
  /** The fds EXPORT_SYNC_FILE returned. */
  syncFds: number[];
  bufs: DmaBuf[];
  atts: DmaBufAttachment[];
  tables: { att: DmaBufAttachment; sgt: SgTable; dir: number }[];
  vmas: VmArea[];
  vmaps: { buf: DmaBuf; map: IosysMap }[];
  mrs: { ctx: IbvContext; mr: IbvMr }[];
  /** Kernel references the harness took (dma_buf_get) and has not put yet. */
  held: Map<DmaBuf, number>;
  fences: DmaFence[];
  fenceContext: Map<Machine, number>;
  seqno: number;
  /** The main machine's mappings before any call: what the final teardown must come back to. */
  baseline: string;
}

async function makeSide(profile: KernelProfileName): Promise<Side> {
  const m = await Machine.create({ topology: SEED_VFIO_TOPOLOGY, iommu: { family: 'vtd' }, profile, ramBytes: 64n << 20n, arenaBytes: 16 << 20 });
  const proc = new SimProcess(m.kernel, { name: 'fuzz', memory: m.sim.memory, fdLimit: 48 });
  const heaps = DmaHeaps.create(m);
  const heapFd = heaps.open(proc, 'system');
  const udmabuf = UdmabufDevice.create(m);
  const udevFd = udmabuf.open(proc);
  const memfd = memfdCreate(m, proc, 'fuzz', MFD_ALLOW_SEALING);
  memfdFcntl(proc, memfd, F_ADD_SEALS, F_SEAL_SHRINK);
  memfdTruncate(proc, memfd, MEMFD_PAGES * P);
  // Every memfd page resident from the start: a failed create is compared against them.
  proc.close(proc.ioctl(udevFd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: MEMFD_PAGES * P }));
  const vfio = VfioPciDevice.create(m, 'fpga0');
  const vfd = vfio.open(proc);
  const importers = ['nic0', 'nic2', 'gpu0', 'gaudi0'].map((n) => importerDevice(m, n));
  const hl = HabanaDevice.create(m, { pci: 'gaudi0', generation: 'gaudi2' });
  const hlFd = hl.open(proc);
  const handle = hlIoctlMemory(proc, hlFd, { op: 'ALLOC', memSize: 8n << 20n }).handle!;
  const hlVa = hlIoctlMemory(proc, hlFd, { op: 'MAP', handle }).deviceVirtAddr!;
  const gpu = AmdgpuDevice.create(m, { pci: 'gpu0', visibleVramBytes: 1n << 20n, vramBytes: 2n << 20n });
  const drmFd = gpu.open(proc);
  const nics = (['nic0', 'nic2'] as const).map((n, i) => {
    const ctx = ibvOpenDevice(new RdmaDevice(m, n, { kind: i === 0 ? 'odp' : 'pinned' }), proc);
    return { ctx, pd: ctx.allocPd() };
  });
  return { m, proc, heaps, heapFd, udmabuf, udevFd, memfd, vfio, vfd, importers, hl, hlFd, hlVa, gpu, drmFd, gpuImports: [], nics };
}

/**
 * A world: the main machine, and another whose objects appear among the arguments. One buffer,
 * attachment and table of the other machine are made up front.
 */
export async function makeDmaBufWorld(profile: KernelProfileName = '6.x'): Promise<DmaBufWorld> {
  const main = await makeSide(profile);
  const other = await makeSide(profile);
  const w: DmaBufWorld = { main, other, fds: [], bufFds: [], syncFds: [], bufs: [], atts: [], tables: [], vmas: [], vmaps: [], mrs: [], held: new Map(), fences: [], fenceContext: new Map(), seqno: 0, baseline: '' };
  const d = { len: 2 * P, fd: 0, fdFlags: O_RDWR, heapFlags: 0 };
  other.proc.ioctl(other.heapFd, DMA_HEAP_IOCTL_ALLOC, d);
  const ob = other.proc.dmaBufGet(d.fd);
  const oa = ob.attach(other.importers[0]!);
  const ot = oa.mapUnlocked(0);
  w.bufs.push(ob);
  w.atts.push(oa);
  w.tables.push({ att: oa, sgt: ot, dir: 0 });
  // Fd numbers worth trying: the device fds, and ones never opened.
  w.fds.push(main.heapFd, main.udevFd, main.memfd, main.vfd, 47, 99, -1);
  w.baseline = mappings(main);
  return w;
}

/** The snapshot of both machines: what a failed call must leave as it was. */
export function dmaBufSnapshot(w: DmaBufWorld): string {
  const side = (s: Side) => stateSnapshot(machineScope(s.m, {
    procs: [s.proc],
    devs: s.importers.map((i) => i.dma!).filter((d) => d !== undefined),
    extra: () => [
      s.heaps.system!.liveBuffers, s.udmabuf.liveBuffers, s.udmabuf.liveTables, s.vfio.liveTables, s.vfio.dmabufs.length,
      s.hl.dmabufExportCnt, s.hl.liveTables, s.gpu.liveTables, s.gpu.vramUsage(),
      s.gpu.bos.map((b) => [b.id, b.refs, b.domain, b.pinCount, b.exported?.id ?? null, b.imported]),
    ],
  }));
  return side(w.main) + side(w.other);
}

const at = <T>(pool: readonly T[], a: unknown): T | unknown => {
  if (a && typeof a === 'object' && 'pick' in a) {
    const i = (a as { pick: number }).pick;
    return pool.length === 0 ? undefined : pool[i % pool.length];
  }
  return a;
};

/** No object to call a method on yet: the call is skipped (not a bad argument: a method needs its object). */
class Skip {}

/** The object a method is called on: always a pool member (stale ones included), never junk. */
function recv<T>(pool: readonly T[], a: unknown): T {
  if (pool.length === 0) throw new Skip();
  const i = a && typeof a === 'object' && 'pick' in a ? (a as { pick: number }).pick : 0;
  return pool[i % pool.length]!;
}

function push<T>(pool: T[], v: T, cap = 48): void {
  pool.push(v);
  if (pool.length > cap) pool.splice(0, pool.length - cap);
}

/** Runs one call; returns what it threw (undefined on success). */
function run(w: DmaBufWorld, c: DmaBufCall): unknown {
  const { proc, heaps, heapFd, udevFd, memfd, vfd, vfio } = w.main;
  const a = c.args;
  const fd = (x: unknown) => at(x && typeof x === 'object' && (x as { pool?: string }).pool === 'buf' ? w.bufFds : w.fds, x) as number;
  const newFd = (n: number, buf: boolean) => {
    push(w.fds, n);
    if (buf) push(w.bufFds, n);
  };
  const buf = (x: unknown) => recv(w.bufs, x);
  const att = (x: unknown) => recv(w.atts, x);
  const importers = [...w.main.importers, w.other.importers[1]!];
  try {
    switch (c.name) {
      case 'open': push(w.fds, proc.openFile('/dev/null')); break;
      case 'dup': {
        const f = fd(a[0]);
        newFd(proc.dup(f), w.bufFds.includes(f));
        break;
      }
      case 'close': proc.close(fd(a[0])); break;
      case 'heap.alloc': {
        const d = { len: a[0], fd: 0, fdFlags: a[1], heapFlags: 0 };
        proc.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, d as never);
        newFd(d.fd, true);
        void heaps;
        break;
      }
      case 'udmabuf.create': newFd(proc.ioctl(udevFd, UDMABUF_CREATE, { memfd, offset: a[0], size: a[1], flags: a[2] } as never), true); break;
      case 'vfio.export':
        newFd(proc.ioctl(vfd, VFIO_DEVICE_FEATURE, {
          flags: VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF, data: { regionIndex: 0, dmaRanges: [{ offset: a[0], length: a[1] }] },
        } as never), true);
        break;
      case 'vfio.decode': vfio.setMemoryDecode(a[0] as boolean); break;
      case 'get': {
        const b = proc.dmaBufGet(fd(a[0]));
        push(w.bufs, b);
        w.held.set(b, (w.held.get(b) ?? 0) + 1);
        break;
      }
      case 'put': {
        // Only references the harness holds, or none at all (refused): a driver's reference is
        // not the harness's to drop (the kernel cannot tell them apart either).
        const b = buf(a[0]);
        const n = w.held.get(b) ?? 0;
        if (n === 0 && !b.released && b.refs.kernel > 0) throw new Skip();
        b.put();
        w.held.set(b, n - 1);
        break;
      }
      case 'dmaBufFd': {
        // dma_buf_fd consumes a kernel reference: take one for it, give it back on failure.
        const b = buf(a[0]);
        b.get();
        try {
          newFd(proc.dmaBufFd(b, a[1] as never), true);
          // The reference is the fd's now.
        } catch (e) {
          b.put();
          throw e;
        }
        break;
      }
      case 'attach': push(w.atts, buf(a[0]).attach(at(importers, a[1]) as ImporterDevice)); break;
      case 'dynamicAttach':
        push(w.atts, buf(a[0]).dynamicAttach(at(importers, a[1]) as ImporterDevice, { allowPeer2Peer: a[2] as boolean, moveNotify: () => {} }));
        break;
      case 'detach': att(a[0]).detach(); break;
      case 'map': {
        const t = att(a[0]);
        const sgt = a[2] ? t.mapUnlocked(a[1] as never) : t.map(a[1] as never);
        push(w.tables, { att: t, sgt, dir: a[1] as number });
        break;
      }
      case 'unmap': {
        // A recorded table (with its direction or another), or junk in place of the table.
        const pickd = a[0] && typeof a[0] === 'object' && 'pick' in a[0];
        if (pickd) {
          const t = recv(w.tables, a[0]);
          t.att.unmapUnlocked(t.sgt, (a[1] === 'same' ? t.dir : a[1]) as never);
        } else {
          att(undefined).unmapUnlocked(a[0] as never, 0);
        }
        break;
      }
      case 'pin': case 'unpin': {
        const t = att(a[0]);
        const f = () => (c.name === 'pin' ? t.pin() : t.unpin());
        if (a[1]) t.dmabuf.resv.withLock(f);
        else f();
        break;
      }
      case 'begin': buf(a[0]).beginCpuAccess(a[1] as never); break;
      case 'end': buf(a[0]).endCpuAccess(a[1] as never); break;
      case 'ioctl.sync': proc.ioctl(fd(a[0]), DMA_BUF_IOCTL_SYNC, { flags: a[1] } as never); break;
      case 'ioctl.setName': proc.ioctl(fd(a[0]), DMA_BUF_SET_NAME_B, a[1]); break;
      case 'mmap': push(w.vmas, proc.mmap(fd(a[0]), { length: a[1], prot: a[2], flags: a[3], offset: a[4] } as never)); break;
      case 'munmap': {
        const v = at(w.vmas, a[0]) as VmArea;
        // A kernel importer's mapping (no address space) is unmapped by itself, a process's by munmap(2).
        if (v && typeof v === 'object' && 'mm' in v && v.mm === null) v.munmap();
        else proc.munmap(v);
        break;
      }
      case 'kmmap': push(w.vmas, buf(a[0]).mmap({ pages: a[1], prot: PROT_READ | PROT_WRITE, flags: a[3] } as never, a[2] as never)); break;
      case 'vmap': {
        const b = buf(a[0]);
        push(w.vmaps, { buf: b, map: b.vmapUnlocked() });
        break;
      }
      case 'vunmap': {
        const pickd = a[0] && typeof a[0] === 'object' && 'pick' in a[0];
        if (pickd) {
          const v = recv(w.vmaps, a[0]);
          v.buf.vunmapUnlocked(v.map);
        } else {
          buf(undefined).vunmapUnlocked(a[0] as never);
        }
        break;
      }
      case 'exportSync': {
        const arg = { flags: a[1], fd: 0 };
        proc.ioctl(fd(a[0]), DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg as never);
        push(w.fds, arg.fd);
        push(w.syncFds, arg.fd);
        break;
      }
      case 'importSync': proc.ioctl(fd(a[0]), DMA_BUF_IOCTL_IMPORT_SYNC_FILE, { flags: a[2], fd: at(w.syncFds.length > 0 ? w.syncFds : w.fds, a[1]) } as never); break;
      case 'fence.add': {
        const b = buf(a[0]);
        const k = b.kernel;
        let ctx = w.fenceContext.get(w.main.m);
        if (ctx === undefined) {
          ctx = k.fenceContextAlloc(1);
          w.fenceContext.set(w.main.m, ctx);
        }
        const f = k.createFence(ctx, ++w.seqno);
        b.resv.withLock(() => {
          b.resv.reserveFences(1);
          b.resv.addFence(f, a[1] as never);
        });
        push(w.fences, f);
        break;
      }
      case 'fence.signal': recv(w.fences, a[0]).signal(); break;
      case 'moveNotify': {
        const b = buf(a[0]);
        b.resv.withLock(() => b.moveNotify());
        break;
      }
      case 'llseek': proc.llseek(fd(a[0]), a[1] as never, a[2] as never); break;
      case 'poll': proc.poll(fd(a[0]), 0x5); break;
      case 'hl.export': {
        const out = hlIoctlMemory(proc, w.main.hlFd, { op: 'EXPORT_DMABUF_FD', addr: w.main.hlVa, offset: a[0], memSize: a[1], flags: a[2] } as never);
        newFd(out.fd!, true);
        break;
      }
      case 'rdma.reg': {
        const n = w.main.nics[a[0] as number]!;
        push(w.mrs, { ctx: n.ctx, mr: n.ctx.regDmabufMr(n.pd, a[2] as never, a[3] as never, a[2] as never, fd(a[1]), a[4] as never) });
        break;
      }
      case 'rdma.dereg': {
        const r = recv(w.mrs, a[0]);
        r.ctx.deregMr(r.mr);
        break;
      }
      case 'gpu.import': {
        const arg = { fd: fd(a[0]), handle: 0 };
        proc.ioctl(w.main.drmFd, DRM_IOCTL_PRIME_FD_TO_HANDLE, arg as never);
        push(w.main.gpuImports, arg.handle);
        break;
      }
      case 'gpu.access': {
        const g = w.main;
        const bo: AmdgpuBo = g.gpu.drmFile(proc.file(g.drmFd)).lookup(recv(g.gpuImports, a[0]));
        g.gpu.gpuAccess(bo, 'read', a[1] as number, new Uint8Array(16));
        break;
      }
      default: throw new Error(`no call ${c.name}`);
    }
    return undefined;
  } catch (e) {
    return e instanceof Skip ? undefined : e;
  }
}

/** IOMMU mapped bytes and table frames, DMA API mappings of the importers. */
function mappings(s: Side): string {
  const doms = s.m.sim.iommu.units().map((u) => u.domains().map((d) => (d.destroyed ? 'x' : `${d.mappedBytes}/${d.tableFrames}`)).join(','));
  const devs = s.importers.map((i) => {
    const st = i.dma!.stats();
    return `${st.singles}/${st.sgLists}`;
  });
  return `${doms.join(';')} | ${devs.join(',')}`;
}

/**
 * The end of a run: the importer unmaps, unpins, vunmaps and detaches what it still holds, the
 * process exits and the kernel references taken with dma_buf_get are put. Then nothing may be
 * left: no buffer of the main machine alive, no exporter table, no IOMMU or DMA API mapping
 * beyond the world's start. Returns what leaked, or null.
 */
export function teardownLeaks(w: DmaBufWorld): string | null {
  const { main } = w;
  const k = main.m.kernel;
  try {
    for (const { ctx, mr } of w.mrs) if (!mr.deregistered) ctx.deregMr(mr);
    for (const att of w.atts) {
      if (att.detached || att.dmabuf.kernel !== k || att.dmabuf.released) continue;
      for (const sgt of att.mappedTables) {
        const rec = w.tables.find((t) => t.sgt === sgt);
        att.unmapUnlocked(sgt, (rec?.dir ?? 0) as never);
      }
      while (att.pinCount > 0) att.dmabuf.resv.withLock(() => att.unpin());
    }
    for (const b of k.liveBuffers) {
      for (const v of w.vmaps) if (v.buf === b) while (b.vmapCount > 0) b.vunmapUnlocked(v.map);
    }
    for (const att of w.atts) if (!att.detached && att.dmabuf.kernel === k && !att.dmabuf.released) att.detach();
    for (const v of w.vmas) if (v.mm === null && v.active && v.file && (v.file as { dmabuf?: DmaBuf }).dmabuf?.kernel === k) v.munmap();
    main.proc.exit();
    for (const [b, n] of w.held) if (b.kernel === k) for (let i = 0; i < n; i++) b.put();
    // Fences the calls added and left unsignaled hold retired storage back (amdgpu).
    for (const f of w.fences) if (!f.isSignaled()) f.signal();
    // Move fences signal later on the virtual clock; storage they retire is freed then.
    k.clock.runUntil(() => k.clock.nextTimer() === undefined, Number.MAX_SAFE_INTEGER);
  } catch (e) {
    return `teardown failed: ${(e as Error).message}`;
  }
  const left: string[] = [];
  if (k.liveBuffers.size > 0) left.push(`${k.liveBuffers.size} dma-buf(s) alive: ${[...k.liveBuffers].map((b) => `${b.expName} refs ${JSON.stringify(b.refs)}`).join('; ')}`);
  if (main.udmabuf.liveBuffers + main.udmabuf.liveTables > 0) left.push(`udmabuf: ${main.udmabuf.liveBuffers} buffers, ${main.udmabuf.liveTables} tables`);
  if (main.heaps.system!.liveBuffers > 0) left.push(`system heap: ${main.heaps.system!.liveBuffers} buffers`);
  if (main.hl.dmabufExportCnt > 0 || main.hl.liveTables > 0) left.push(`habanalabs: ${main.hl.dmabufExportCnt} exports, ${main.hl.liveTables} tables`);
  if (main.gpu.liveTables > 0 || main.gpu.bos.length > 0) left.push(`amdgpu: ${main.gpu.bos.length} BOs, ${main.gpu.liveTables} tables`);
  if (main.vfio.liveTables > 0 || main.vfio.dmabufs.length > 0) left.push(`vfio: ${main.vfio.dmabufs.length} buffers, ${main.vfio.liveTables} tables`);
  const now = mappings(main);
  if (now !== w.baseline) left.push(`mappings ${now}, at start ${w.baseline}`);
  return left.length > 0 ? left.join('\n') : null;
}

/** Short rendering of a call for failure messages. */
export function describeDmaBufCall(c: DmaBufCall): string {
  const one = (v: unknown): string => {
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'string') return JSON.stringify(v.length > 12 ? `${v.slice(0, 12)}...` : v);
    if (typeof v === 'symbol') return 'Symbol()';
    if (typeof v === 'function') return 'fn';
    if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Uint8Array).length})`;
    if (Array.isArray(v)) return `[${v.map(one).join(', ')}]`;
    if (v && typeof v === 'object') return 'pick' in v ? `#${(v as { pick: number }).pick}` : `{${Object.keys(v).join(',')}}`;
    return String(v);
  };
  return `${c.name}(${c.args.map(one).join(', ')})`;
}

/**
 * Runs `calls` on `w`, checking the contract after each (`checkEvery`: snapshot every n-th
 * failing call). Returns the first violation, or null, and how many calls were refused.
 */
export function runDmaBufCalls(w: DmaBufWorld, calls: readonly DmaBufCall[], checkEvery = 1): { violation: string | null; errors: number } {
  let errors = 0;
  for (let i = 0; i < calls.length; i++) {
    const c = calls[i]!;
    const check = errors % checkEvery === 0;
    // Time passes in a failed wait too (move fences signal, retired storage is freed): let the
    // scheduled hardware work finish first, so that only what the call itself did can show.
    if (check) settle(w);
    const before = check ? dmaBufSnapshot(w) : '';
    const e = run(w, c);
    if (e === undefined) continue;
    errors++;
    const where = `call ${i} ${describeDmaBufCall(c)}`;
    if (e instanceof CoreTrapError || w.main.m.sim.core.trapped || w.other.m.sim.core.trapped) return { violation: `${where}: the core trapped: ${String(e)}`, errors };
    if (!(e instanceof SimError)) {
      const err = e as Error;
      return { violation: `${where}: threw ${err?.name ?? typeof e}: ${String(err?.message ?? e).slice(0, 300)}\n${err?.stack?.split('\n').slice(1, 6).join('\n') ?? ''}`, errors };
    }
    if (e.message.length > 400) return { violation: `${where}: a ${e.message.length}-character message`, errors };
    if (check) {
      const after = dmaBufSnapshot(w);
      if (after !== before) return { violation: `${where}: failed with ${e.message} but changed state:\n${diff(before, after)}`, errors };
    }
  }
  return { violation: null, errors };
}

/** Runs every timer pending on both machines' clocks. */
function settle(w: DmaBufWorld): void {
  for (const s of [w.main, w.other]) s.m.clock.runUntil(() => s.m.clock.nextTimer() === undefined, Number.MAX_SAFE_INTEGER);
}

/** Where two snapshots part. */
function diff(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `before ...${a.slice(Math.max(0, i - 150), i + 150)}\nafter  ...${b.slice(Math.max(0, i - 150), i + 150)}`;
}
