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
 *
 * Split as the kernel's files: this file is the device and its file operations; memory.ts the
 * memory manager (ALLOC/FREE/MAP/UNMAP); dmabuf.ts the dma-buf export and exporter ops.
 */
import {
  PAGE_SIZE,
  SimError,
  Ring,
  type Bar,
  type ErrnoCode,
  type KernelProfileName,
  type Machine,
  type FileOperations,
  type PciFunction,
  type Region,
  type SimFile,
  type SimProcess,
} from '../../index.js';
import { HlDmabufExporter, type HlP2pMapping } from './dmabuf.js';
import { HlMemoryManager, minB, type HlPhysPgPack, type HlVmHashNode } from './memory.js';
import { HL_IOCTL_MEMORY, HL_MEM_OPS, type HlMemArgs } from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);

/**
 * The Gaudi generation: 'gaudi1' exports by physical address (no DRAM virtual memory, 32 MiB
 * DRAM pages), 'gaudi2' by device VA (prop->dram_supports_virtual_memory, 2 MiB pages).
 */
export type HabanaGeneration = 'gaudi1' | 'gaudi2';

/** enum hl_device_status, as far as the memory ioctl cares: only 'operational' accepts calls. */
export type HlDeviceStatus = 'operational' | 'in_reset' | 'malfunction' | 'needs_reset' | 'in_device_creation';

/** Options of {@link HabanaDevice.create}: the device's HBM, DRAM BAR and MMU as the driver's asic properties give them. */
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

/** One open of the compute device file (hl_fpriv) with its context. */
export class HlFpriv {
  /** hl_ctx references: the file's plus one per exported dma-buf. */
  ctxRefs = 1;
  released = false;
  /**
   * The compute device file (shared by dup'ed fds). Each exported dma-buf holds a reference on
   * it until released (HL-09).
   */
  file!: SimFile<HlFpriv>;
  readonly nodes = new Map<bigint, HlVmHashNode>();

  constructor(
    readonly dev: HabanaDevice,
    readonly proc: SimProcess,
  ) {}
}

/**
 * A habanalabs (Gaudi) compute device bound to a PCI function: its HBM behind a DRAM BAR, the
 * HL_IOCTL_MEMORY ioctl on its compute file and the dma-buf exporter of device memory. Create
 * with {@link HabanaDevice.create}; open the compute file with `open` and drive it with
 * Process.ioctl(fd, HL_IOCTL_MEMORY, args).
 */
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
  private readonly _log: Ring<string>;

  /** @internal The memory manager (memory.ts). */
  readonly memory: HlMemoryManager;
  /** @internal The dma-buf exporter (dmabuf.ts). */
  readonly exporter: HlDmabufExporter;

  private _fpriv: HlFpriv | null = null;

  /** dev_dbg/dev_err lines (newest `machine.history.driverEvents`, oldest first; a snapshot). */
  get log(): readonly string[] {
    return this._log.toArray();
  }

  /** Entries of `log` dropped off the bounded log's old end. */
  get logDropped(): number {
    return this._log.dropped;
  }

  private constructor(readonly machine: Machine, opts: HabanaDeviceOptions) {
    const op = 'habanalabs probe';
    this._log = new Ring<string>(machine.history.driverEvents);
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
      // The machine's device memory beyond the BARs, from its base (2^46, above the MEM64 window).
      this.hiddenRegion = machine.addDeviceMemory({ size, name: `${this.pci.name} HBM (beyond BAR${bar.index})` });
    } else {
      this.hiddenRegion = null;
    }
    this.memory = new HlMemoryManager(this, opts.dramVaBase ?? 0x1000_0000_0000n);
    this.exporter = new HlDmabufExporter(this);
  }

  /**
   * Probes the device on a machine (hl_device_init): maps HBM through the DRAM BAR and adds the
   * HBM beyond the BAR to the machine's device memory.
   * @throws {@link index!SimError} EINVAL when the generation is unknown, the function has no
   *   memory BAR at `dramBarIndex`, hbmBytes is not a positive multiple of 4 KiB or dramPageSize
   *   is not a multiple of 4 KiB; ENODEV when `pci` names no function.
   */
  static create(machine: Machine, opts: HabanaDeviceOptions): HabanaDevice {
    return new HabanaDevice(machine, opts);
  }

  /** The machine's kernel profile, which selects the export form and sg-table rules (5.15 or 6.x). */
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
    return this.memory.handles;
  }

  /** The physical page pack (hl_vm_phys_pg_pack) of a live ALLOC handle, or undefined. */
  pack(handle: number): HlPhysPgPack | undefined {
    return this.memory.packOf(handle);
  }

  // ---------------------------------------------------------------------------------------------
  // File operations

  /**
   * The compute device file's operations (hl_fops): HL_IOCTL_MEMORY through Process.ioctl, and
   * release (hl_device_release) when the file's last reference goes: its fds, and the file
   * references exported dma-bufs hold (HL-09).
   */
  readonly fops: FileOperations<HlFpriv> = {
    name: 'habanalabs',
    ioctl: (file, cmd, arg) => this._ioctl(file.privateData, cmd, arg),
    release: (file) => this._release(file.privateData),
  };

  /**
   * open("/dev/accel/accel0") in `proc`: EBUSY when the device is not operational or its compute
   * context is still in use (including by exported dma-bufs whose device file is kept alive).
   */
  open(proc: SimProcess): number {
    const op = 'hl_device_open';
    if (!this.isOperational()) throw new SimError('EBUSY', op, `${this.name} is ${this.status}`);
    if (this._fpriv) throw new SimError('EBUSY', op, `${this.name} is already attached to an application (compute context in use)`, 'HL-09');
    const fpriv = new HlFpriv(this, proc);
    const fd = proc.open(this.fops, fpriv, { name: `accel:${this.name}` });
    fpriv.file = proc.file(fd) as SimFile as SimFile<HlFpriv>;
    this._fpriv = fpriv;
    return fd;
  }

  /**
   * hl_ioctl: HL_IOCTL_MEMORY (args: HlMemArgs, its `out` written back on success) on a
   * compute-device fd; any other command is ENOTTY.
   */
  private _ioctl(fpriv: HlFpriv, cmd: number, arg: unknown): number {
    if (cmd !== HL_IOCTL_MEMORY) throw new SimError('ENOTTY', 'hl_ioctl', `invalid ioctl 0x${(cmd >>> 0).toString(16)}`);
    if (!arg || typeof arg !== 'object') throw new SimError('EFAULT', 'HL_IOCTL_MEMORY', 'bad argument pointer');
    const args = arg as HlMemArgs;
    if (!this.isOperational()) {
      throw new SimError('EBUSY', 'hl_mem_ioctl', `device is ${this.status}, can't execute MEMORY IOCTL`, 'HL-01');
    }
    const opNum = typeof args.op === 'string' ? HL_MEM_OPS[args.op as keyof typeof HL_MEM_OPS] : args.op;
    args.out = this.mmuEnabled ? this.memory.memIoctl(fpriv, opNum, args) : this.memory.memIoctlNoMmu(fpriv, opNum, args);
    return 0;
  }

  /** hl_device_release: the file's reference on the context goes; the context and its memory with it. */
  private _release(fpriv: HlFpriv): void {
    fpriv.ctxRefs--;
    this.memory.ctxFini(fpriv);
    fpriv.released = true;
    if (this._fpriv === fpriv) this._fpriv = null;
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

  /** @internal Appends one dev_dbg/dev_err line to the bounded log. */
  logLine(line: string): void {
    this._log.push(line);
  }

  /** bar_addr of a DRAM address (HL-05): dram_pci_bar_start + (addr - dram_base_address). */
  barAddress(dramAddr: bigint): bigint {
    return this.dramPciBarStart + (dramAddr - this.dramBaseAddress);
  }

  /** Tables handed out by map_dma_buf and not yet unmapped. */
  get liveTables(): number {
    return this.exporter.liveTables;
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** @internal A driver error, logged as dev_err does. */
  err(code: ErrnoCode, op: string, msg: string, rule?: string): SimError {
    this.logLine(`${this.name}: ${op}: ${msg}`);
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
    const node = f ? this.memory.nodeAt(f, va, len) : undefined;
    if (!node || node.userptr) throw new SimError('EINVAL', op, `device VA 0x${va.toString(16)} (+${len}) is not mapped DRAM`);
    const pack = this.memory.packOf(Number(node.handle))!;
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
}
