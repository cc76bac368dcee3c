/**
 * A habanalabs-like accelerator driver (drivers/accel/habanalabs): HBM behind a DRAM BAR, the
 * memory ioctl (ALLOC, FREE, MAP, UNMAP, EXPORT_DMABUF_FD) and the dma-buf exporter, rule by rule
 * as spec/dmabuf.md §B (HL-01..HL-14) gives them, in the kernel era of the machine's profile:
 *  - '5.15': export by handle (DRAM MMU) or by 32 MiB-aligned physical address (Gaudi1); the sg
 *    table merges contiguous pages up to 512 MiB; unknown ops are ENOTTY.
 *  - '6.x' / 'latest': export by device VA + offset (DRAM MMU) or by page-aligned physical address
 *    with offset 0 (Gaudi1); the sg table follows the importer's max segment size and the offset.
 *
 * Memory model. The device's HBM is addressed by DRAM (device) addresses from dramBaseAddress.
 * The first BAR-size bytes are backed by the DRAM BAR's region (the CPU/bus window,
 * bar_addr = dram_pci_bar_start + (addr - dram_base_address)); HBM beyond the BAR is a separate
 * device-memory region above the machine's MEM64 window, not CPU-accessible and not reachable
 * through the BAR, so exports of it fail (HL-05/HL-06). The driver never maps HBM for the CPU:
 * the exporter has no mmap or vmap.
 */
import {
  DmaDataDirection,
  dmaBufFreeSgt,
  dmaBufPhysVecToSgt,
  GenPool,
  importerPciFunction,
  PAGE_SIZE,
  SimError,
  type Bar,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type ErrnoCode,
  type KernelProfileName,
  type Machine,
  type OpenFile,
  type PciFunction,
  type Region,
  type SgTable,
  type SimProcess,
} from '../../index.js';
import { layoutChunks, layoutChunks515, type DeviceChunk } from './sg.js';
import {
  HL_MEM_CONTIGUOUS,
  HL_MEM_OP_ALLOC,
  HL_MEM_OP_EXPORT_DMABUF_FD,
  HL_MEM_OP_FREE,
  HL_MEM_OP_MAP,
  HL_MEM_OP_UNMAP,
  HL_MEM_OPS,
  HL_MEM_USERPTR,
  type HlMemArgs,
  type HlMemOut,
} from './uapi.js';

const U64 = (1n << 64n) - 1n;
const PAGE = BigInt(PAGE_SIZE);
const SZ_32M = 32n << 20n;
const SZ_512M = 512n << 20n;
/** Where hidden HBM regions go: above the MEM64 window (which ends at 2^46). */
const HIDDEN_HBM_BASE = 1n << 46n;

export type HabanaGeneration = 'gaudi1' | 'gaudi2';

/** enum hl_device_status, as far as the memory ioctl cares: only 'operational' accepts calls. */
export type HlDeviceStatus = 'operational' | 'in_reset' | 'malfunction' | 'needs_reset' | 'in_device_creation';

/**
 * How map_dma_buf turns a BAR chunk into a DMA address for the importer:
 *  - 'p2pdma' (default): as pci_p2pdma_map_type would: a BUS_ADDR peer (same switch, no ACS
 *    redirect) gets the bus address and no mapping; a THRU_HOST_BRIDGE peer gets
 *    dma_map_resource on its DMA device (an IOVA in its IOMMU domain, or the address itself when
 *    direct).
 *  - 'map-resource': dma_map_resource for every entry, as the merged driver does; under an IOMMU
 *    even a switch peer gets an IOVA and its DMA goes up to the root complex.
 */
export type HlP2pMapping = 'p2pdma' | 'map-resource';

export interface HabanaDeviceOptions {
  /** The accelerator's PCI function (object, name or BDF). */
  pci: PciFunction | string;
  generation: HabanaGeneration;
  /** HBM size. @default 32 GiB (gaudi1), 96 GiB (gaudi2) */
  hbmBytes?: bigint;
  /** The DRAM BAR. @default 0 */
  dramBarIndex?: number;
  /** prop->dram_base_address: the DRAM address of HBM byte 0. @default 0 */
  dramBaseAddress?: bigint;
  /** prop->dram_user_base_address (below it: driver/firmware). @default base + 512 MiB */
  dramUserBaseAddress?: bigint;
  /** DRAM page size of ALLOC (phys_pg_pack page size). @default 2 MiB (gaudi2), 32 MiB (gaudi1) */
  dramPageSize?: bigint;
  /** Start of the device-VA range MAP hands out. @default 0x1000_0000_0000 */
  dramVaBase?: bigint;
  /** hdev->mmu_enable. false: the no-MMU memory ioctl (HL-02). @default true */
  mmuEnabled?: boolean;
  /** @default 'map-resource' (the merged driver) */
  p2pMapping?: HlP2pMapping;
  /** @default 'hl<n>' */
  name?: string;
}

/** hl_vm_phys_pg_pack: the DRAM pages of one ALLOC handle. */
export interface HlPhysPgPack {
  readonly handle: number;
  readonly vmType: 'phys_pack' | 'userptr';
  readonly pages: readonly bigint[];
  readonly pageSize: bigint;
  readonly totalSize: bigint;
  readonly contiguous: boolean;
  /** MAPs of this handle not yet unmapped. */
  mappingCnt: number;
  /** [5.15] exports of this handle not yet released. */
  exportingCnt: number;
}

/** hl_vm_hash_node: one MAP of the context. */
export interface HlVmHashNode {
  readonly va: bigint;
  readonly size: bigint;
  /** The pack's handle, or (userptr) a kernel pointer, whose upper 32 bits are set. */
  readonly handle: bigint;
  readonly userptr: boolean;
  /** Exports of this VA not yet released (HL-07). */
  exportCnt: number;
}

/** One open of the compute device file (hl_fpriv) with its context. */
export class HlFpriv {
  /** File references: the open file plus one per exported dma-buf not yet released (HL-09). */
  fileRefs = 1;
  /** hl_ctx references: the file's plus one per exported dma-buf. */
  ctxRefs = 1;
  released = false;
  /** The fd table entry's file (identity shared by dup'ed fds). */
  file!: OpenFile;
  readonly nodes = new Map<bigint, HlVmHashNode>();

  constructor(
    readonly dev: HabanaDevice,
    readonly proc: SimProcess,
  ) {}
}

/** What the exporter keeps per dma-buf (struct hl_dmabuf_priv). */
interface HlDmabufPriv {
  readonly fpriv: HlFpriv;
  readonly node: HlVmHashNode | null;
  readonly pack: HlPhysPgPack | null;
  /** DRAM address of the first exported byte (addr + offset). */
  readonly deviceAddress: bigint;
  readonly offset: bigint;
  readonly pages: readonly bigint[];
  readonly pageSize: bigint;
  readonly era: '5.15' | 'modern';
  released: boolean;
  /** dma_buf_fd failed: the export is being unwound by its caller. */
  installFailed?: boolean;
}

/** What attach computed for an attachment (attach.priv). */
export interface HlAttachInfo {
  /** pci_p2pdma_distance(hdev->pdev, attach->dev, verbose): -1 without a P2P path. */
  readonly distance: number;
  /** The importer's PCI function, or null (not a PCI device). */
  readonly client: PciFunction | null;
}

/** Device VA space MAP hands out: 2^44 bytes from dramVaBase. */
const DRAM_VA_SPACE = 1n << 44n;

export class HabanaDevice {
  readonly name: string;
  readonly pci: PciFunction;
  readonly generation: HabanaGeneration;
  readonly hbmBytes: bigint;
  readonly dramBar: Bar;
  /** prop->dram_base_address / dram_user_base_address / dram_end_address. */
  readonly dramBaseAddress: bigint;
  readonly dramUserBaseAddress: bigint;
  readonly dramEndAddress: bigint;
  /** hdev->dram_pci_bar_start (CPU physical address of the BAR) and prop->dram_pci_bar_size. */
  readonly dramPciBarStart: bigint;
  readonly dramPciBarSize: bigint;
  readonly dramPageSize: bigint;
  /** prop->dram_supports_virtual_memory (Gaudi2: true). */
  readonly dramSupportsVirtualMemory: boolean;
  readonly mmuEnabled: boolean;
  readonly p2pMapping: HlP2pMapping;
  /** The BAR window onto HBM, and HBM beyond the BAR (null when the BAR covers it all). */
  readonly barRegion: Region;
  readonly hiddenRegion: Region | null;
  status: HlDeviceStatus = 'operational';
  /** hdev->dmabuf_export_cnt. */
  dmabufExportCnt = 0;
  /** hdev->dram_used_mem (bytes). */
  dramUsedMem = 0n;
  /** dev_dbg/dev_err lines. */
  readonly log: string[] = [];

  private _fpriv: HlFpriv | null = null;
  private readonly _packs = new Map<number, HlPhysPgPack>();
  private _nextHandle = 1;
  /** DRAM pages ALLOC hands out (hl_vm dram_pg_pool), in units of 4 KiB aligned to dramPageSize. */
  private readonly _dramPool: GenPool;
  /** Device VA blocks MAP hands out (the context's va_range for DRAM). */
  private readonly _vaPool: GenPool;
  private _userptrTag = 0n;
  private readonly _tables = new Set<SgTable>();

  private constructor(readonly machine: Machine, opts: HabanaDeviceOptions) {
    const op = 'habanalabs probe';
    this.pci = typeof opts.pci === 'string' ? machine.pci(opts.pci) : opts.pci;
    this.generation = opts.generation;
    if (opts.generation !== 'gaudi1' && opts.generation !== 'gaudi2') {
      throw new SimError('EINVAL', op, `generation must be 'gaudi1' or 'gaudi2', got ${String(opts.generation)}`);
    }
    const gaudi2 = opts.generation === 'gaudi2';
    this.name = opts.name ?? machine.deviceName('hl');
    this.hbmBytes = opts.hbmBytes ?? (gaudi2 ? 96n << 30n : 32n << 30n);
    const bar = this.pci.bar(opts.dramBarIndex ?? 0);
    if (!bar || bar.type !== 'mem') throw new SimError('EINVAL', op, `${this.pci.name} has no memory BAR${opts.dramBarIndex ?? 0}`);
    this.dramBar = bar;
    this.dramPageSize = opts.dramPageSize ?? (gaudi2 ? 2n << 20n : 32n << 20n);
    if (this.hbmBytes <= 0n || this.hbmBytes % PAGE !== 0n) throw new SimError('EINVAL', op, 'hbmBytes must be a positive multiple of 4 KiB');
    if (this.dramPageSize < PAGE || this.dramPageSize % PAGE !== 0n) throw new SimError('EINVAL', op, 'dramPageSize must be a multiple of 4 KiB');
    this.dramBaseAddress = opts.dramBaseAddress ?? 0n;
    this.dramUserBaseAddress = opts.dramUserBaseAddress ?? this.dramBaseAddress + (512n << 20n);
    this.dramEndAddress = this.dramBaseAddress + this.hbmBytes;
    this.dramPciBarStart = bar.cpuAddress;
    this.dramPciBarSize = bar.size;
    this.dramSupportsVirtualMemory = gaudi2;
    this.mmuEnabled = opts.mmuEnabled ?? true;
    this.p2pMapping = opts.p2pMapping ?? 'map-resource';
    this.barRegion = machine.barRegion(bar);
    if (this.hbmBytes > bar.size) {
      const size = this.hbmBytes - bar.size;
      this.hiddenRegion = machine.addDeviceMemory({ size, name: `${this.pci.name} HBM (beyond BAR${bar.index})`, from: HIDDEN_HBM_BASE });
    } else {
      this.hiddenRegion = null;
    }
    // DRAM page pool: [user base rounded up to a page, end).
    const poolBase = (this.dramUserBaseAddress + this.dramPageSize - 1n) / this.dramPageSize * this.dramPageSize;
    const n = poolBase < this.dramEndAddress ? (this.dramEndAddress - poolBase) / this.dramPageSize : 0n;
    this._dramPool = new GenPool({ name: `${this.name} DRAM` });
    if (n > 0n) this._dramPool.add(poolBase, n * this.dramPageSize);
    const vaBase = opts.dramVaBase ?? 0x1000_0000_0000n;
    this._vaPool = new GenPool({ name: `${this.name} device VA` });
    this._vaPool.add(vaBase, DRAM_VA_SPACE);
  }

  /** Probes the device on a machine. */
  static create(machine: Machine, opts: HabanaDeviceOptions): HabanaDevice {
    return new HabanaDevice(machine, opts);
  }

  get profile(): KernelProfileName {
    return this.machine.kernel.profile.name;
  }

  /** hl_device_operational. */
  isOperational(): boolean {
    return this.status === 'operational';
  }

  /** The open compute file (alive until its fds are closed and its dma-bufs released), or null. */
  get computeFile(): HlFpriv | null {
    return this._fpriv;
  }

  /** Handles of live ALLOCs. */
  get handles(): number[] {
    return [...this._packs.keys()];
  }

  pack(handle: number): HlPhysPgPack | undefined {
    return this._packs.get(handle);
  }

  // ---------------------------------------------------------------------------------------------
  // File operations

  /**
   * open("/dev/accel/accel0") in `proc`: EBUSY when the device is not operational or its compute
   * context is still in use (including by exported dma-bufs whose device file is kept alive).
   */
  open(proc: SimProcess): number {
    const op = 'hl_device_open';
    if (!this.isOperational()) throw new SimError('EBUSY', op, `${this.name} is ${this.status}`);
    if (this._fpriv) throw new SimError('EBUSY', op, `${this.name} is already attached to an application (compute context in use)`, 'HL-09');
    const fpriv = new HlFpriv(this, proc);
    // hl_device_release: the file's reference on the context goes when its last fd closes.
    const fd = proc.openFile(`accel:${this.name}`, { release: () => this._filePut(fpriv) });
    fpriv.file = proc.file(fd);
    this._fpriv = fpriv;
    return fd;
  }

  /**
   * close(fd) of the compute device file. When the last fd of the file goes, its reference is
   * dropped; the file (and the context with all its memory) is released only after every
   * exported dma-buf has been released too (HL-09).
   */
  close(proc: SimProcess, fd: number): void {
    this._fprivOf(proc, fd, 'close');
    proc.close(fd);
  }

  /**
   * HL_IOCTL_MEMORY on a compute-device fd. Returns the out fields; throws SimError with the
   * kernel errno. EBADF when fd is not open, ENOTTY when it is another file.
   */
  memoryIoctl(proc: SimProcess, fd: number, args: HlMemArgs): HlMemOut {
    const fpriv = this._fprivOf(proc, fd, 'HL_IOCTL_MEMORY');
    if (!args || typeof args !== 'object') throw new SimError('EFAULT', 'HL_IOCTL_MEMORY', 'bad argument pointer');
    if (!this.isOperational()) {
      throw new SimError('EBUSY', 'hl_mem_ioctl', `device is ${this.status}, can't execute MEMORY IOCTL`, 'HL-01');
    }
    const opNum = typeof args.op === 'string' ? HL_MEM_OPS[args.op as keyof typeof HL_MEM_OPS] : args.op;
    return this.mmuEnabled ? this._memIoctl(fpriv, opNum, args) : this._memIoctlNoMmu(fpriv, opNum, args);
  }

  // ---------------------------------------------------------------------------------------------
  // The device's own access to HBM (its DMA engines)

  /** The physical address backing a DRAM address (BAR window or hidden HBM). EINVAL outside HBM. */
  hbmPhys(dramAddr: bigint): bigint {
    const off = dramAddr - this.dramBaseAddress;
    if (off < 0n || off >= this.hbmBytes) throw new SimError('EINVAL', 'hbmPhys', `DRAM address 0x${dramAddr.toString(16)} is outside HBM`);
    return off < this.dramPciBarSize ? this.dramPciBarStart + off : this.hiddenRegion!.base + (off - this.dramPciBarSize);
  }

  /** The device's DMA engine writes `data` at a DRAM (physical device) address. */
  dramWrite(dramAddr: bigint, data: Uint8Array): void {
    this._hbmRange('dramWrite', dramAddr, data.length);
    this._splitAtBar(dramAddr, data.length, (pa, from, len) => this.machine.sim.memory.write(pa, data.subarray(from, from + len)));
  }

  /** The device's DMA engine reads `length` bytes at a DRAM address. */
  dramRead(dramAddr: bigint, length: number): Uint8Array {
    this._hbmRange('dramRead', dramAddr, length);
    const out = new Uint8Array(length);
    this._splitAtBar(dramAddr, length, (pa, from, len) => out.set(this.machine.sim.memory.read(pa, len), from));
    return out;
  }

  /** The device writes through its MMU at a device VA that MAP returned (DRAM VM devices). */
  vaWrite(va: bigint, data: Uint8Array): void {
    this._vaWalk('vaWrite', va, data.length, (dram, from, len) => this.dramWrite(dram, data.subarray(from, from + len)));
  }

  /** The device reads through its MMU at a device VA. */
  vaRead(va: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this._vaWalk('vaRead', va, length, (dram, from, len) => out.set(this.dramRead(dram, len), from));
    return out;
  }

  /** bar_addr of a DRAM address (HL-05): dram_pci_bar_start + (addr - dram_base_address). */
  barAddress(dramAddr: bigint): bigint {
    return this.dramPciBarStart + (dramAddr - this.dramBaseAddress);
  }

  // ---------------------------------------------------------------------------------------------
  // hl_mem_ioctl

  private _memIoctl(fpriv: HlFpriv, op: number | undefined, args: HlMemArgs): HlMemOut {
    switch (op) {
      case HL_MEM_OP_ALLOC: {
        const size = u64(args.memSize);
        if (size === 0n) throw this._err('EINVAL', 'hl_mem_ioctl', 'alloc size must be larger than 0');
        if (!this.dramSupportsVirtualMemory) {
          // Accounting only: the user manages DRAM itself.
          this.dramUsedMem += size;
          return { handle: 0n };
        }
        return { handle: BigInt(this._allocDeviceMemory(size, ((args.flags ?? 0) & HL_MEM_CONTIGUOUS) !== 0)) };
      }
      case HL_MEM_OP_FREE:
        if (!this.dramSupportsVirtualMemory) {
          this.dramUsedMem -= u64(args.memSize);
          return {};
        }
        this._freeDeviceMemory(u64(args.handle));
        return {};
      case HL_MEM_OP_MAP:
        return { deviceVirtAddr: this._mapDeviceVa(fpriv, args) };
      case HL_MEM_OP_UNMAP:
        this._unmapDeviceVa(fpriv, u64(args.deviceVirtAddr));
        return {};
      case HL_MEM_OP_EXPORT_DMABUF_FD:
        if (this.profile === '5.15') return { fd: this._export515(fpriv, args) };
        return { fd: this._exportFromAddr(fpriv, u64(args.addr ?? args.handle), u64(args.memSize), u64(args.offset), args.flags ?? 0) };
      default:
        throw this._unknownOp(op, args.op);
    }
  }

  /** mem_ioctl_no_mmu (HL-02). */
  private _memIoctlNoMmu(fpriv: HlFpriv, op: number | undefined, args: HlMemArgs): HlMemOut {
    switch (op) {
      case HL_MEM_OP_ALLOC: {
        const size = u64(args.memSize);
        if (size === 0n) throw this._err('EINVAL', 'mem_ioctl_no_mmu', 'alloc size must be larger than 0');
        return { handle: BigInt(this._allocDeviceMemory(size, true)) };
      }
      case HL_MEM_OP_FREE:
        this._freeDeviceMemory(u64(args.handle));
        return {};
      case HL_MEM_OP_MAP: {
        if ((args.flags ?? 0) & HL_MEM_USERPTR) throw this._err('EPERM', 'mem_ioctl_no_mmu', 'failed to map host memory when MMU is disabled');
        const pack = this._packs.get(Number(u64(args.handle) & 0xffff_ffffn));
        if (!pack) throw this._err('EINVAL', 'get_paddr_from_handle', `no match for handle ${args.handle}`);
        return { deviceVirtAddr: pack.pages[0]! };
      }
      case HL_MEM_OP_UNMAP:
        return {};
      case HL_MEM_OP_EXPORT_DMABUF_FD:
        if (this.profile === '5.15') return { fd: this._export515(fpriv, args) };
        throw this._err('EPERM', 'mem_ioctl_no_mmu', 'dma-buf export is not supported with the MMU disabled', 'HL-02');
      default:
        throw this._unknownOp(op, args.op);
    }
  }

  private _unknownOp(op: number | undefined, given: unknown): SimError {
    const code: ErrnoCode = this.profile === '5.15' ? 'ENOTTY' : 'EINVAL';
    return this._err(code, 'hl_mem_ioctl', `unknown opcode ${String(op ?? given)} for memory IOCTL`, 'HL-02');
  }

  /**
   * alloc_device_memory: size rounded up to DRAM pages, one contiguous run (first fit) or page by
   * page, lowest free pages first; ENOMEM with nothing taken when they are not there.
   */
  private _allocDeviceMemory(size: bigint, contiguous: boolean): number {
    const op = 'alloc_device_memory';
    const ps = this.dramPageSize;
    const n = (size + ps - 1n) / ps;
    const pool = this._dramPool;
    if (n * ps > pool.size()) throw this._err('ENOMEM', op, `cannot allocate ${n} pages of ${ps} bytes`);
    const pages: bigint[] = [];
    if (contiguous) {
      const start = pool.tryAlloc(n * ps, { align: ps, op });
      if (start === null) throw this._err('ENOMEM', op, `cannot allocate ${n} contiguous pages`);
      for (let i = 0n; i < n; i++) pages.push(start + i * ps);
    } else {
      for (let i = 0n; i < n; i++) {
        const p = pool.tryAlloc(ps, { align: ps, op });
        if (p === null) {
          for (const q of pages) pool.free(q, ps, op);
          throw this._err('ENOMEM', op, 'cannot allocate device memory (out of memory)');
        }
        pages.push(p);
      }
    }
    const handle = this._nextHandle++;
    const pack: HlPhysPgPack = {
      handle, vmType: 'phys_pack', pages, pageSize: ps, totalSize: n * ps, contiguous, mappingCnt: 0, exportingCnt: 0,
    };
    this._packs.set(handle, pack);
    this.dramUsedMem += pack.totalSize;
    return handle;
  }

  /** free_device_memory (HL-07). */
  private _freeDeviceMemory(handle64: bigint): void {
    const op = 'free_device_memory';
    const handle = Number(handle64 & 0xffff_ffffn);
    const pack = handle64 > 0xffff_ffffn ? undefined : this._packs.get(handle);
    if (!pack) throw this._err('EINVAL', op, `no match for handle ${handle64}`);
    if (pack.mappingCnt > 0) throw this._err('EINVAL', op, `handle ${handle} is mapped, cannot free`, 'HL-07');
    if (pack.exportingCnt > 0) throw this._err('EINVAL', op, `handle ${handle} is exported, cannot free`, 'HL-07');
    this._releasePack(pack);
  }

  private _releasePack(pack: HlPhysPgPack): void {
    this._packs.delete(pack.handle);
    if (pack.contiguous) this._dramPool.free(pack.pages[0]!, pack.totalSize, 'free_device_memory');
    else for (const p of pack.pages) this._dramPool.free(p, pack.pageSize, 'free_device_memory');
    this.dramUsedMem -= pack.totalSize;
  }

  /** map_device_va: a DRAM handle (or, with HL_MEM_USERPTR, host memory) at a new device VA. */
  private _mapDeviceVa(fpriv: HlFpriv, args: HlMemArgs): bigint {
    const op = 'map_device_va';
    if ((args.flags ?? 0) & HL_MEM_USERPTR) {
      const size = u64(args.memSize);
      if (size === 0n || args.hostVirtAddr === undefined) throw this._err('EINVAL', op, 'host mapping needs hostVirtAddr and memSize');
      const va = this._vaAlloc(size, PAGE);
      // The node's handle is the kernel's userptr pointer: its upper 32 bits are set.
      const handle = 0xffff_8880_0000_0000n + (this._userptrTag++ << 12n);
      fpriv.nodes.set(va, { va, size: (size + PAGE - 1n) & ~(PAGE - 1n), handle, userptr: true, exportCnt: 0 });
      return va;
    }
    const h = u64(args.handle);
    const pack = h > 0xffff_ffffn ? undefined : this._packs.get(Number(h));
    if (!pack) throw this._err('EINVAL', op, `no match for handle ${h}`);
    const va = this._vaAlloc(pack.totalSize, pack.pageSize);
    pack.mappingCnt++;
    fpriv.nodes.set(va, { va, size: pack.totalSize, handle: BigInt(pack.handle), userptr: false, exportCnt: 0 });
    return va;
  }

  /** unmap_device_va (HL-07): exact VA; an exported VA is refused. */
  private _unmapDeviceVa(fpriv: HlFpriv, va: bigint): void {
    const op = 'unmap_device_va';
    const node = fpriv.nodes.get(va);
    if (!node) throw this._err('EINVAL', op, `unmap failed, no mem hnode for vaddr 0x${va.toString(16)}`);
    if (node.exportCnt > 0) throw this._err('EINVAL', op, `failed to unmap 0x${va.toString(16)}, memory is exported`, 'HL-07');
    fpriv.nodes.delete(va);
    if (!node.userptr) {
      const pack = this._packs.get(Number(node.handle));
      if (pack) pack.mappingCnt--;
    }
    this._vaFreeBlock(node.va, node.size);
  }

  // ---------------------------------------------------------------------------------------------
  // Export

  /** export_dmabuf_from_addr, final form (HL-03..HL-06, HL-08, HL-09). */
  private _exportFromAddr(fpriv: HlFpriv, addr: bigint, size: bigint, offset: bigint, flags: number): number {
    const op = 'export_dmabuf_from_addr';
    if (!this.dramSupportsVirtualMemory && offset !== 0n) {
      throw this._err('EINVAL', op, 'offset is not allowed in device without virtual memory', 'HL-03');
    }
    const exportAddr = (addr + offset) & U64;
    if (!this.dramSupportsVirtualMemory) {
      this._validateNoMmu(exportAddr, size);
      return this._export(fpriv, {
        node: null, pack: null, deviceAddress: exportAddr, offset: 0n, pages: [exportAddr], pageSize: size, era: 'modern',
      }, size, flags);
    }
    // memhash_node_export_get
    const node = fpriv.nodes.get(addr);
    if (!node) throw this._err('EINVAL', op, `map address 0x${addr.toString(16)} not found`, 'HL-06');
    if (node.handle >> 32n !== 0n) {
      throw this._err('EINVAL', op, `invalid handle 0x${node.handle.toString(16)} for map address 0x${addr.toString(16)}`, 'HL-06');
    }
    node.exportCnt++;
    try {
      const pack = this._packs.get(Number(node.handle));
      if (!pack) throw this._err('EINVAL', op, `no match for handle 0x${node.handle.toString(16)}`, 'HL-06');
      if (pack.vmType !== 'phys_pack') throw this._err('EINVAL', op, `handle 0x${node.handle.toString(16)} does not represent DRAM memory`, 'HL-06');
      this._validateCommon(exportAddr, size);
      if (offset + size > pack.totalSize) {
        throw this._err('EINVAL', op, `offset 0x${offset.toString(16)} and size 0x${size.toString(16)} exceed total map size 0x${pack.totalSize.toString(16)}`, 'HL-06');
      }
      this._validatePagesInBar(pack);
      return this._export(fpriv, {
        node, pack, deviceAddress: exportAddr, offset, pages: pack.pages, pageSize: pack.pageSize, era: 'modern',
      }, size, flags);
    } catch (e) {
      node.exportCnt--;
      throw e;
    }
  }

  /** The 5.15 form: {handle, mem_size}. */
  private _export515(fpriv: HlFpriv, args: HlMemArgs): number {
    const op = 'export_dmabuf_from_handle';
    const flags = args.flags ?? 0;
    const handle = u64(args.handle ?? args.addr);
    if (!this.dramSupportsVirtualMemory || !this.mmuEnabled) {
      const size = u64(args.memSize);
      const o = 'export_dmabuf_from_addr';
      if (handle % SZ_32M !== 0n) throw this._err('EINVAL', o, `address 0x${handle.toString(16)} of exported device memory should be aligned to 32 MiB`, 'HL-05');
      if (size === 0n) throw this._err('EINVAL', o, 'size of exported device memory should be greater than 0', 'HL-05');
      if (size % SZ_32M !== 0n) throw this._err('EINVAL', o, `size 0x${size.toString(16)} of exported device memory should be aligned to 32 MiB`, 'HL-05');
      this._validateRanges(handle, size);
      const big = size > SZ_512M;
      const pageSize = big ? SZ_32M : size;
      const pages: bigint[] = [];
      for (let a = handle; a < handle + size; a += pageSize) pages.push(a);
      return this._export(fpriv, { node: null, pack: null, deviceAddress: handle, offset: 0n, pages, pageSize, era: '5.15' }, size, flags);
    }
    const pack = this._packs.get(Number(handle & 0xffff_ffffn));
    if (!pack) throw this._err('EINVAL', op, `no match for handle 0x${(handle & 0xffff_ffffn).toString(16)}`, 'HL-06');
    pack.exportingCnt++;
    try {
      if (pack.vmType !== 'phys_pack') throw this._err('EINVAL', op, `handle 0x${handle.toString(16)} is not for DRAM memory`, 'HL-06');
      this._validatePagesInBar(pack);
      return this._export(fpriv, {
        node: null, pack, deviceAddress: pack.pages[0]!, offset: 0n, pages: pack.pages, pageSize: pack.pageSize, era: '5.15',
      }, pack.totalSize, flags);
    } catch (e) {
      pack.exportingCnt--;
      throw e;
    }
  }

  /** validate_export_params_common (HL-04). */
  private _validateCommon(addr: bigint, size: bigint): void {
    const op = 'validate_export_params';
    if (addr % PAGE !== 0n) throw this._err('EINVAL', op, `exported device memory address 0x${addr.toString(16)} should be aligned to 0x1000`, 'HL-04');
    if (size < PAGE) throw this._err('EINVAL', op, `exported device memory size ${size} should be equal to or greater than 4096`, 'HL-04');
  }

  /** validate_export_params_no_mmu (HL-04, HL-05). */
  private _validateNoMmu(addr: bigint, size: bigint): void {
    this._validateCommon(addr, size);
    this._validateRanges(addr, size);
  }

  /** HL-05: DRAM boundaries, then PCI BAR boundaries, with u64 wrap-around checks. */
  private _validateRanges(addr: bigint, size: bigint): void {
    const op = 'validate_export_params_no_mmu';
    const end = (addr + size) & U64;
    if (addr < this.dramUserBaseAddress || end > this.dramEndAddress || end < addr) {
      throw this._err('EINVAL', op, `DRAM memory range 0x${addr.toString(16)} (+0x${size.toString(16)}) is outside of DRAM boundaries`, 'HL-05');
    }
    const bar = (this.dramPciBarStart + (addr - this.dramBaseAddress)) & U64;
    const barEnd = (bar + size) & U64;
    if (barEnd > this.dramPciBarStart + this.dramPciBarSize || barEnd < bar) {
      throw this._err('EINVAL', op, `DRAM memory range 0x${addr.toString(16)} (+0x${size.toString(16)}) is outside of PCI BAR boundaries`, 'HL-05');
    }
  }

  /** HL-06: every physical page of the pack inside the DRAM BAR. */
  private _validatePagesInBar(pack: HlPhysPgPack): void {
    const limit = this.dramPciBarStart + this.dramPciBarSize;
    for (const p of pack.pages) {
      const bar = this.barAddress(p);
      if (bar + pack.pageSize > limit) {
        throw this._err('EINVAL', 'validate_export_params', `DRAM memory range 0x${p.toString(16)} (+0x${pack.pageSize.toString(16)}) is outside of PCI BAR boundaries`, 'HL-06');
      }
    }
  }

  /**
   * export_dmabuf (HL-08, HL-09): dma_buf_export with the flags as given, then every piece of
   * bookkeeping (ctx and file references, export count), and only then the fd is installed. If
   * the fd cannot be installed (EMFILE), the buffer is put and its release undoes the bookkeeping.
   */
  private _export(fpriv: HlFpriv, init: Omit<HlDmabufPriv, 'fpriv' | 'released'>, size: bigint, flags: number): number {
    const op = 'export_dmabuf';
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw this._err('EINVAL', op, `size ${size} is too large`);
    const priv: HlDmabufPriv = { ...init, fpriv, released: false };
    const buf = this.machine.kernel.export({ expName: 'habanalabs', ops: this._ops(), size: Number(size), flags, priv });
    fpriv.ctxRefs++;
    fpriv.fileRefs++;
    this.dmabufExportCnt++;
    try {
      return fpriv.proc.dmaBufFd(buf, flags);
    } catch (e) {
      // The release undoes the references and the export count; the node/pack count taken before
      // validation is dropped by the caller, as on any other failure.
      priv.installFailed = true;
      buf.put();
      throw e;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Exporter ops (HL-08: attach, map, unmap, release only)

  private _opsCache: DmaBufExporterOps | undefined;

  private _ops(): DmaBufExporterOps {
    this._opsCache ??= {
      attach: (buf, att) => this._attach(buf, att),
      mapDmaBuf: (att, dir) => this._map(att, dir),
      unmapDmaBuf: (att, sgt, dir) => this._unmap(att, sgt, dir),
      release: (buf) => this._release(buf),
    };
    return this._opsCache;
  }

  /** hl_dmabuf_attach (HL-10): P2P distance to the importer; < 0 clears peer2peer. Never fails. */
  private _attach(_buf: DmaBuf, att: DmaBufAttachment): void {
    const client = importerPciFunction(att.dev);
    let distance = -1;
    if (client) {
      distance = this.machine.p2pdma.distance(this.pci, att.dev.pci ?? client, { verbose: true }).distance;
    } else {
      this.log.push(`${att.dev.name}: not a PCI device, no P2P distance`);
    }
    if (distance < 0) att.peer2peer = false;
    const info: HlAttachInfo = { distance, client };
    att.priv = info;
  }

  /**
   * hl_map_dmabuf (HL-11, HL-12): the era's chunk layout, then the kit's P2P mapping helper on
   * the DRAM BAR addresses. With 'map-resource' (the merged driver) every entry is
   * dma_map_resource'd, even for a BUS_ADDR peer; with 'p2pdma' a BUS_ADDR peer gets bus
   * addresses. A failed mapping is ENOMEM with nothing left mapped.
   */
  private _map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const op = 'hl_map_dmabuf';
    const priv = att.dmabuf.priv as HlDmabufPriv;
    if (!att.peer2peer) throw this._err('EPERM', op, 'failed to map dmabuf because p2p is disabled', 'HL-11');
    const info = att.priv as HlAttachInfo | undefined;
    const client = info?.client ?? importerPciFunction(att.dev);
    const dma = att.dev.dma ?? (client ? this.machine.dmaDevice(client) : null);
    if (!dma) throw this._err('EINVAL', op, `${att.dev.name} has no DMA device`, 'HL-11');
    let chunks: DeviceChunk[];
    if (priv.era === '5.15') {
      chunks = layoutChunks515(priv.pages, priv.pageSize);
    } else {
      chunks = layoutChunks({
        pages: priv.pages, pageSize: priv.pageSize, exportedSize: BigInt(att.dmabuf.size),
        offset: priv.offset, maxSegSize: BigInt(dma.maxSegmentSize),
      });
    }
    const ranges = chunks.map((c) => ({ phys: this.barAddress(c.devAddr), length: c.length }));
    let sgt: SgTable;
    try {
      // The layout already follows the importer's max segment size (or, in 5.15, ignores it).
      sgt = dmaBufPhysVecToSgt(this.machine, att, this.pci, ranges, dir, {
        importerMaxSegment: false, alwaysMapResource: this.p2pMapping === 'map-resource', op, rule: 'HL-11',
      });
    } catch (e) {
      if (e instanceof SimError) this.log.push(`${this.name}: ${op}: ${e.message}`);
      throw e;
    }
    this._tables.add(sgt);
    return sgt;
  }

  /** hl_unmap_dmabuf (HL-13): dma_unmap_resource on every DMA entry, then free the table. */
  private _unmap(att: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    if (!this._tables.has(sgt)) throw new SimError('EINVAL', 'hl_unmap_dmabuf', 'not a table this exporter made', 'HL-13');
    this._tables.delete(sgt);
    dmaBufFreeSgt(att, sgt, dir, 'hl_unmap_dmabuf');
  }

  /** Tables handed out by map_dma_buf and not yet unmapped. */
  get liveTables(): number {
    return this._tables.size;
  }

  /** hl_release_dmabuf (HL-07, HL-09). */
  private _release(buf: DmaBuf): void {
    const priv = buf.priv as HlDmabufPriv;
    if (priv.released) return;
    priv.released = true;
    if (!priv.installFailed) {
      if (priv.node) priv.node.exportCnt--;
      if (priv.pack && priv.era === '5.15') priv.pack.exportingCnt--;
    }
    this.dmabufExportCnt--;
    const fpriv = priv.fpriv;
    fpriv.ctxRefs--;
    this._filePut(fpriv);
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** fput of the compute file: the last reference releases the file and its context. */
  private _filePut(fpriv: HlFpriv): void {
    fpriv.fileRefs--;
    if (fpriv.fileRefs > 0) return;
    fpriv.ctxRefs--;
    // hl_ctx_fini / hl_vm_ctx_fini: tear down what the context still holds.
    for (const node of fpriv.nodes.values()) {
      if (!node.userptr) {
        const pack = this._packs.get(Number(node.handle));
        if (pack) pack.mappingCnt--;
      }
      this._vaFreeBlock(node.va, node.size);
    }
    fpriv.nodes.clear();
    for (const pack of [...this._packs.values()]) this._releasePack(pack);
    fpriv.released = true;
    if (this._fpriv === fpriv) this._fpriv = null;
  }

  private _fprivOf(proc: SimProcess, fd: number, op: string): HlFpriv {
    const file = proc.file(fd); // EBADF
    const f = this._fpriv;
    if (!f || f.proc !== proc || f.file !== file) throw new SimError('ENOTTY', op, `fd ${fd} is not a compute-device file of ${this.name}`);
    return f;
  }

  private _err(code: ErrnoCode, op: string, msg: string, rule?: string): SimError {
    this.log.push(`${this.name}: ${op}: ${msg}`);
    return new SimError(code, op, msg, rule);
  }

  private _hbmRange(op: string, addr: bigint, len: number): void {
    const off = addr - this.dramBaseAddress;
    if (off < 0n || off + BigInt(len) > this.hbmBytes) {
      throw new SimError('EINVAL', op, `[0x${addr.toString(16)}, +${len}) is outside HBM`);
    }
  }

  private _splitAtBar(addr: bigint, len: number, fn: (pa: bigint, from: number, len: number) => void): void {
    const off = addr - this.dramBaseAddress;
    const inBar = off < this.dramPciBarSize ? Number(minB(this.dramPciBarSize - off, BigInt(len))) : 0;
    if (inBar > 0) fn(this.dramPciBarStart + off, 0, inBar);
    if (inBar < len) fn(this.hbmPhys(addr + BigInt(inBar)), inBar, len - inBar);
  }

  private _vaWalk(op: string, va: bigint, len: number, fn: (dram: bigint, from: number, len: number) => void): void {
    const f = this._fpriv;
    const node = f ? [...f.nodes.values()].find((n) => va >= n.va && va + BigInt(len) <= n.va + n.size) : undefined;
    if (!node || node.userptr) throw new SimError('EINVAL', op, `device VA 0x${va.toString(16)} (+${len}) is not mapped DRAM`);
    const pack = this._packs.get(Number(node.handle))!;
    let done = 0;
    while (done < len) {
      const rel = va + BigInt(done) - node.va;
      const pi = Number(rel / pack.pageSize);
      const inPage = rel % pack.pageSize;
      const n = Number(minB(pack.pageSize - inPage, BigInt(len - done)));
      fn(pack.pages[pi]! + inPage, done, n);
      done += n;
    }
  }

  private _vaAlloc(size: bigint, align: bigint): bigint {
    const va = this._vaPool.tryAlloc(size, { align, op: 'map_device_va' });
    if (va === null) throw this._err('ENOMEM', 'map_device_va', 'no free device VA block');
    return va;
  }

  private _vaFreeBlock(start: bigint, size: bigint): void {
    this._vaPool.free(start, size, 'unmap_device_va');
  }
}

function u64(v: bigint | number | undefined): bigint {
  if (v === undefined) return 0n;
  return BigInt.asUintN(64, typeof v === 'bigint' ? v : BigInt(Math.trunc(v)));
}

function minB(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
