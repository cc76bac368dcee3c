/**
 * udmabuf (drivers/dma-buf/udmabuf.c): /dev/udmabuf turns pages of a sealed memfd into a dma-buf,
 * as spec/dmabuf.md §C gives it, in the era of the machine's kernel profile.
 *
 * uAPI, through Process.ioctl on a /dev/udmabuf fd (the device's file_operations).
 * UDMABUF_CREATE {memfd, flags, offset, size} and UDMABUF_CREATE_LIST {flags, count, list[]};
 * both end in udmabuf_create, which checks, in the kernel's order:
 *  1. every item: offset and size PAGE_ALIGNED, and the running page count <= size_limit_mb
 *     (64 MiB) -> EINVAL; then a total of 0 pages -> EINVAL;
 *  2. every item: the memfd open (else EBADFD), a shmem file (or, from 5.16, hugetlbfs; else
 *     EBADFD), seals including F_SEAL_SHRINK and excluding F_SEAL_WRITE (and, '6.x'/'latest',
 *     F_SEAL_FUTURE_WRITE) -> else EINVAL; the range inside the file (shmem refuses pages past
 *     EOF: EINVAL). Its pages are taken (get_page in '5.15', FOLL_PIN from 6.x).
 * CREATE_LIST first refuses count > list_limit (1024) with EINVAL. UDMABUF_FLAGS_CLOEXEC gives an
 * O_CLOEXEC fd; the dma-buf is O_RDWR, size = pages * PAGE_SIZE. Unknown ioctls: ENOTTY.
 *
 * Exporter ops: map_dma_buf builds a page-backed table of the buffer's pages ('5.15':
 * sg_alloc_table_from_pages, contiguous pages merged; 6.x: one entry per page) and maps it for the
 * attachment's device with dma_map_sgtable; unmap undoes it. cache_sgt_mapping is set, so under
 * '5.15'/'6.x' the framework caches the first mapping (DB-10: another direction is EBUSY) and
 * ignores it under 'latest', as the 2025 series did. mmap: MAP_SHARED only (EINVAL otherwise),
 * mapping the memfd's own pages. begin_cpu_access maps the buffer once for the udmabuf misc
 * device (64-bit mask, dma-direct) and syncs it afterwards; end_cpu_access before any begin is
 * EINVAL. vmap gives a kernel address of the pages; release unmaps and drops the page references.
 */
import {
  DmaDataDirection,
  DmaDevice as DmaApiDevice,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PAGE_SIZE,
  ScatterList,
  SgTable,
  SimError,
  dmaBufFd,
  requireImporterDmaDevice,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type FileOperations,
  type KernelProfileName,
  type Machine,
  type Process,
  uapiU32,
  uapiU64,
} from '../../index.js';
import { PageBackedBuffer, fakeVmapAddress } from './cpu-access.js';
import { mapSgtableOrThrow } from './importer.js';
import { memfdOf } from './memfd.js';
import {
  F_SEAL_FUTURE_WRITE,
  F_SEAL_SHRINK,
  F_SEAL_WRITE,
  UDMABUF_CREATE,
  UDMABUF_CREATE_LIST,
  UDMABUF_DEFAULT_LIST_LIMIT,
  UDMABUF_DEFAULT_SIZE_LIMIT_MB,
  UDMABUF_FLAGS_CLOEXEC,
  type UdmabufCreate,
  type UdmabufCreateItem,
  type UdmabufCreateList,
} from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);
const U64 = (1n << 64n) - 1n;
/** A requester ID for the misc device; it never does DMA through an IOMMU (dma-direct). */
const MISC_RID = 0xffff_fff0;

/** Options of {@link UdmabufDevice.create}: the udmabuf module parameters. */
export interface UdmabufDeviceOptions {
  /** Module parameter list_limit. @default 1024 */
  listLimit?: number;
  /** Module parameter size_limit_mb. @default 64 */
  sizeLimitMb?: number;
}

/** What the exporter keeps per buffer (struct udmabuf): dmabuf->priv. */
export class UdmabufBuffer extends PageBackedBuffer {
  /** ubuf->sg: the misc device's mapping made by the first begin_cpu_access. */
  sg: ScatterList | null = null;
  sgDir: DmaDataDirection = DmaDataDirection.BIDIRECTIONAL;
  released = false;

  constructor(
    /** Physical address of each page, in buffer order. */
    readonly pages: readonly bigint[],
    /** Pages taken with FOLL_PIN (6.x) rather than get_page (5.15). */
    readonly pinned: boolean,
  ) {
    super();
  }

  /** ubuf->pagecount: the number of pages (the kernel's field name; same as pageCount). */
  get pagecount(): number {
    return this.pages.length;
  }

  get pageCount(): number {
    return this.pages.length;
  }

  pagePhys(index: number): bigint {
    return this.pages[index]!;
  }
}

/**
 * The udmabuf misc device (/dev/udmabuf) of a machine: it turns pages of sealed memfds into
 * dma-bufs. Create with {@link UdmabufDevice.create}, `open` it in a process and call
 * Process.ioctl with UDMABUF_CREATE or UDMABUF_CREATE_LIST; the errors are those of
 * udmabuf_create listed in this module's description.
 */
export class UdmabufDevice {
  /** Module parameters; writable, as /sys/module/udmabuf/parameters are. */
  listLimit: number;
  sizeLimitMb: number;
  /** The misc device (udmabuf_misc.this_device) begin_cpu_access maps for. */
  readonly misc: DmaApiDevice;
  /** Tables handed out, with the device each list was mapped for (the list itself is sgt.sgl). */
  private readonly _tables = new Map<SgTable, DmaApiDevice>();
  private readonly _live = new Set<UdmabufBuffer>();
  private readonly _era: KernelProfileName;

  private constructor(
    readonly machine: Machine,
    opts: UdmabufDeviceOptions,
  ) {
    this.listLimit = opts.listLimit ?? UDMABUF_DEFAULT_LIST_LIMIT;
    this.sizeLimitMb = opts.sizeLimitMb ?? UDMABUF_DEFAULT_SIZE_LIMIT_MB;
    this._era = machine.kernel.profile.name;
    // udmabuf_dev_init: dma_coerce_mask_and_coherent(this_device, DMA_BIT_MASK(64)).
    this.misc = new DmaApiDevice(machine.sim, {
      rid: MISC_RID, domain: 'direct', attach: false, name: 'udmabuf',
      dmaMask: U64, coherentDmaMask: U64, maxSegmentSize: 0xffff_ffff,
    });
  }

  /** Registers /dev/udmabuf on a machine (module load). */
  static create(machine: Machine, opts: UdmabufDeviceOptions = {}): UdmabufDevice {
    return new UdmabufDevice(machine, opts);
  }

  /**
   * The file_operations of /dev/udmabuf (udmabuf_fops): only unlocked_ioctl, UDMABUF_CREATE and
   * UDMABUF_CREATE_LIST, reached through Process.ioctl on a /dev/udmabuf fd.
   */
  readonly fops: FileOperations<UdmabufDevice> = {
    name: '/dev/udmabuf',
    ioctl: (_file, cmd, arg, proc) => this._ioctl(proc, cmd, arg),
  };

  /** open("/dev/udmabuf", O_RDWR) in `proc`. */
  open(proc: Process): number {
    return proc.open(this.fops, this, { flags: O_RDWR });
  }

  /** Buffers exported and not yet released. */
  get liveBuffers(): number {
    return this._live.size;
  }

  /** Tables handed out by map_dma_buf and not yet unmapped. */
  get liveTables(): number {
    return this._tables.size;
  }

  /**
   * udmabuf_ioctl: UDMABUF_CREATE or UDMABUF_CREATE_LIST; returns the new dma-buf fd. EFAULT
   * (null argument or a list shorter than count), ENOTTY (unknown command), then the checks of
   * udmabuf_create.
   */
  private _ioctl(proc: Process, cmd: number, arg: unknown): number {
    const op = 'udmabuf_ioctl';
    switch (cmd) {
      case UDMABUF_CREATE: {
        const c = arg as UdmabufCreate | null;
        if (!c || typeof c !== 'object') throw new SimError('EFAULT', 'UDMABUF_CREATE', 'bad argument pointer');
        return this._create(proc, uapiU32('UDMABUF_CREATE', 'flags', c.flags), [{ memfd: c.memfd, offset: c.offset, size: c.size }]);
      }
      case UDMABUF_CREATE_LIST: {
        const l = arg as UdmabufCreateList | null;
        const lop = 'UDMABUF_CREATE_LIST';
        if (!l || typeof l !== 'object') throw new SimError('EFAULT', lop, 'bad argument pointer');
        const count = uapiU32(lop, 'count', l.count);
        if (count > this.listLimit) throw new SimError('EINVAL', lop, `count ${count} > list_limit ${this.listLimit}`);
        if (!Array.isArray(l.list) || l.list.length < count) {
          throw new SimError('EFAULT', lop, `only ${Array.isArray(l.list) ? l.list.length : 0} of ${count} items are readable`);
        }
        return this._create(proc, uapiU32(lop, 'flags', l.flags), l.list.slice(0, count));
      }
      default:
        throw new SimError('ENOTTY', op, `unknown udmabuf ioctl 0x${(cmd >>> 0).toString(16)}`);
    }
  }

  /** udmabuf_create. */
  private _create(proc: Process, flags: number, list: readonly UdmabufCreateItem[]): number {
    const op = 'udmabuf_create';
    const pglimit = (BigInt(this.sizeLimitMb) * 1024n * 1024n) >> 12n;
    let pgcnt = 0n;
    const items = list.map((it, i) => {
      const offset = uapiU64(op, `list[${i}].offset`, it?.offset);
      const size = uapiU64(op, `list[${i}].size`, it?.size);
      if (offset % PAGE !== 0n) throw new SimError('EINVAL', op, `list[${i}].offset 0x${offset.toString(16)} is not page-aligned`);
      if (size % PAGE !== 0n) throw new SimError('EINVAL', op, `list[${i}].size 0x${size.toString(16)} is not page-aligned`);
      pgcnt += size >> 12n;
      if (pgcnt > pglimit) throw new SimError('EINVAL', op, `${pgcnt} pages exceed size_limit_mb ${this.sizeLimitMb}`);
      return { memfd: uapiU32(op, `list[${i}].memfd`, it.memfd) | 0, offset, size };
    });
    if (pgcnt === 0n) throw new SimError('EINVAL', op, 'no pages: the total size is 0');

    // Pages taken before a later item fails are given back; pages the memfd allocated on the
    // way stay in its page cache, as shmem's do (they belong to the memfd, not to this call).
    const pinned = this._era !== '5.15';
    const mem = this.machine.sim.memory;
    const pages: bigint[] = [];
    const unwind = () => {
      for (const pa of pages) {
        if (pinned) mem.pinPage(pa, false);
        mem.putPage(pa);
      }
    };
    try {
      items.forEach((it, i) => {
        const memfd = this._memfd(proc, it.memfd, i);
        const seals = memfd.getSeals();
        const denied = this._era === '5.15' ? F_SEAL_WRITE : F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
        if ((seals & F_SEAL_SHRINK) === 0) throw new SimError('EINVAL', op, `list[${i}]: the memfd lacks F_SEAL_SHRINK`);
        if (seals & denied) throw new SimError('EINVAL', op, `list[${i}]: the memfd is sealed against writes`);
        const first = Number(it.offset >> 12n);
        const n = Number(it.size >> 12n);
        if (it.offset + it.size > BigInt(memfd.size)) {
          throw new SimError('EINVAL', op, `list[${i}]: [0x${it.offset.toString(16)}, +0x${it.size.toString(16)}) is past the end of the memfd (${memfd.size} bytes)`);
        }
        for (let p = 0; p < n; p++) {
          const pa = memfd.pagePhys(op, first + p);
          mem.getPage(pa);
          if (pinned) mem.pinPage(pa);
          pages.push(pa);
        }
      });
    } catch (e) {
      unwind();
      throw e;
    }

    const ubuf = new UdmabufBuffer(pages, pinned);
    let buf: DmaBuf;
    try {
      buf = this.machine.kernel.export({ expName: 'udmabuf', ops: this._ops(), size: pages.length * PAGE_SIZE, flags: O_RDWR, priv: ubuf });
    } catch (e) {
      unwind();
      throw e;
    }
    this._live.add(ubuf);
    // From here the buffer owns the pages: if the fd cannot be installed, the put releases them.
    try {
      return dmaBufFd(proc, buf, flags & UDMABUF_FLAGS_CLOEXEC ? O_CLOEXEC : 0);
    } catch (e) {
      buf.put();
      throw e;
    }
  }

  /** fget + shmem/hugetlb check: EBADFD for a closed fd or a file that is not a memfd. */
  private _memfd(proc: Process, fd: number, i: number) {
    const op = 'udmabuf_create';
    let m;
    try {
      m = memfdOf(proc, fd);
    } catch {
      throw new SimError('EBADFD', op, `list[${i}].memfd ${fd} is not open`);
    }
    if (!m) throw new SimError('EBADFD', op, `list[${i}].memfd ${fd} is not a shmem or hugetlbfs file`);
    if (m.hugetlb && this._era === '5.15') throw new SimError('EBADFD', op, `list[${i}].memfd ${fd} is hugetlbfs (supported from 5.16)`);
    return m;
  }

  // ---------------------------------------------------------------------------------------------
  // Exporter ops

  private _opsCache: DmaBufExporterOps | undefined;

  private _ops(): DmaBufExporterOps {
    this._opsCache ??= {
      cacheSgtMapping: true,
      mapDmaBuf: (att, dir) => this._map(att, dir),
      unmapDmaBuf: (att, sgt, dir) => this._unmap(att, sgt, dir),
      release: (buf) => this._release(buf),
      mmap: (buf, vma) => {
        if ((vma.flags & MAP_SHARED) === 0) throw new SimError('EINVAL', 'mmap_udmabuf', 'only MAP_SHARED mappings are allowed');
        void buf;
      },
      fault: (buf, pgoff) => (buf.priv as PageBackedBuffer).pagePhys(Number(pgoff)),
      vmap: (buf) => ({ vaddr: fakeVmapAddress(buf), isIomem: false }),
      vunmap: () => {},
      beginCpuAccess: (buf, dir) => this._beginCpu(buf, dir),
      endCpuAccess: (buf, dir) => this._endCpu(buf, dir),
    };
    return this._opsCache;
  }

  /** get_sg_table: the buffer's pages as a scatterlist, mapped for `dev`. */
  private _sgTable(ubuf: UdmabufBuffer, dev: DmaApiDevice, dir: DmaDataDirection, op: string): ScatterList {
    let sgl: ScatterList;
    if (this._era === '5.15') {
      // sg_alloc_table_from_pages: physically contiguous pages share an entry.
      const runs: { pa: bigint; len: number }[] = [];
      for (const pa of ubuf.pages) {
        const last = runs[runs.length - 1];
        if (last && last.pa + BigInt(last.len) === pa && last.len + PAGE_SIZE <= 0xffff_f000) last.len += PAGE_SIZE;
        else runs.push({ pa, len: PAGE_SIZE });
      }
      sgl = new ScatterList(runs.length);
      runs.forEach((r, i) => sgl.set(i, r.pa, r.len));
    } else {
      sgl = ScatterList.fromPages(ubuf.pages);
    }
    mapSgtableOrThrow(dev, sgl, dir, op);
    return sgl;
  }

  /** map_udmabuf. */
  private _map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const op = 'map_udmabuf';
    const ubuf = att.dmabuf.priv as UdmabufBuffer;
    const dev = requireImporterDmaDevice(this.machine, att.dev, op);
    const sgl = this._sgTable(ubuf, dev, dir, op);
    const sgt = SgTable.fromScatterList(sgl);
    this._tables.set(sgt, dev);
    return sgt;
  }

  /** unmap_udmabuf: dma_unmap_sgtable and free. */
  private _unmap(_att: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    const dev = this._tables.get(sgt);
    if (!dev || !sgt.sgl) throw new SimError('EINVAL', 'unmap_udmabuf', 'not a table this exporter made');
    dev.unmapSg(sgt.sgl, dir);
    this._tables.delete(sgt);
  }

  /** begin_cpu_udmabuf: map for the misc device once, then sync for the CPU. */
  private _beginCpu(buf: DmaBuf, dir: DmaDataDirection): void {
    const ubuf = buf.priv as UdmabufBuffer;
    if (!ubuf.sg) {
      ubuf.sg = this._sgTable(ubuf, this.misc, dir, 'begin_cpu_udmabuf');
      ubuf.sgDir = dir;
      return;
    }
    // A sync in another direction than the mapping's only trips DMA-API debug in the kernel.
    if (dir === ubuf.sgDir || ubuf.sgDir === DmaDataDirection.BIDIRECTIONAL) this.misc.syncSgForCpu(ubuf.sg, dir);
  }

  /** end_cpu_udmabuf: EINVAL before any begin_cpu_access. */
  private _endCpu(buf: DmaBuf, dir: DmaDataDirection): void {
    const ubuf = buf.priv as UdmabufBuffer;
    if (!ubuf.sg) throw new SimError('EINVAL', 'end_cpu_udmabuf', 'no CPU access was begun (ubuf->sg is NULL)');
    if (dir === ubuf.sgDir || ubuf.sgDir === DmaDataDirection.BIDIRECTIONAL) this.misc.syncSgForDevice(ubuf.sg, dir);
  }

  /** release_udmabuf. */
  private _release(buf: DmaBuf): void {
    const ubuf = buf.priv as UdmabufBuffer;
    if (ubuf.released) return;
    ubuf.released = true;
    if (ubuf.sg) this.misc.unmapSg(ubuf.sg, ubuf.sgDir);
    ubuf.sg = null;
    const mem = this.machine.sim.memory;
    for (const pa of ubuf.pages) {
      if (ubuf.pinned) mem.pinPage(pa, false);
      mem.putPage(pa);
    }
    this._live.delete(ubuf);
  }
}
