/**
 * vfio-pci as a dma-buf exporter of a device's BAR (drivers/vfio/pci/vfio_pci_dmabuf.c, [2025+]),
 * rule by rule as spec/dmabuf.md §C gives it (IM-12, IM-13):
 *  - VFIO_DEVICE_FEATURE_DMA_BUF exports page-aligned ranges of one memory BAR (offset = length =
 *    0: the whole BAR) as one dma-buf; a dynamic exporter whose pin always fails (EOPNOTSUPP), so
 *    importers must take move_notify.
 *  - attach: only peer2peer importers (EOPNOTSUPP), not while revoked (ENODEV), and only when the
 *    P2PDMA map type allows it (NOT_SUPPORTED: EINVAL). BUS_ADDR entries carry the bus address,
 *    THRU_HOST_BRIDGE entries an IOVA of dma_map_resource on the importer's DMA device.
 *  - revocation: a function reset, clearing memory decode in the command register, a power state
 *    other than D0, or closing the device sets `revoked` and calls move_notify under each buffer's
 *    resv; while revoked, attach and map fail with ENODEV. When the device is usable again
 *    (decode on, D0) move_notify runs again with revoked cleared and importers may re-map.
 *
 * The uAPI goes through the device file (open() in a process, then Process.ioctl on its fd):
 * VFIO_DEVICE_FEATURE with VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF exports, and
 * VFIO_DEVICE_RESET resets; closing the last device fd closes the device (its dma-bufs are
 * revoked for good).
 */
import {
  dmaBufFd,
  dmaBufFreeSgt,
  dmaBufPhysVecToSgt,
  O_ACCMODE,
  O_CLOEXEC,
  p2pMapType,
  PAGE_SIZE,
  SimError,
  Ring,
  type Bar,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type DmaDataDirection,
  type FileOperations,
  type Machine,
  type Process,
  uapiU64,
  type P2pMapType,
  type PciFunction,
  type SgTable,
  checkImporterHost,
} from '../../index.js';
import { VfioCdevFile } from '../iommufd/index.js';

const PAGE = BigInt(PAGE_SIZE);
/** VFIO_PCI_ROM_REGION_INDEX: region indexes 0..5 are the BARs. */
export const VFIO_PCI_ROM_REGION_INDEX = 6;
/** The longest sg entry (sg->length is an unsigned int), page-aligned. */
export const VFIO_DMABUF_MAX_SEG = 0xffff_f000n;

/** The function's PCI power state as the user set it (PCI_PM_CTRL); anything but D0 revokes the exported dma-bufs. */
export type VfioPowerState = 'D0' | 'D3hot';

// include/uapi/linux/vfio.h: VFIO_TYPE ';', VFIO_BASE 100, commands are _IO(VFIO_TYPE, VFIO_BASE + n).
const vfioIo = (n: number): number => (0x3b << 8) | (100 + n);
/** VFIO_DEVICE_RESET: _IO(VFIO_TYPE, VFIO_BASE + 11). */
export const VFIO_DEVICE_RESET = vfioIo(11);
/** VFIO_DEVICE_FEATURE: _IO(VFIO_TYPE, VFIO_BASE + 17); the argument is a VfioDeviceFeature. */
export const VFIO_DEVICE_FEATURE = vfioIo(17);
/** struct vfio_device_feature flags: the bits that hold the feature number. */
export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
/** Get the feature (for DMA_BUF: export). */
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
/** Set the feature. */
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
/** Only ask whether GET/SET of the feature is supported (0 when it is). */
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
/** The dma-buf export feature (GET only); its data is a VfioDeviceFeatureDmaBuf. */
export const VFIO_DEVICE_FEATURE_DMA_BUF = 11;

/** struct vfio_device_feature: `flags` = feature number | GET/SET/PROBE; `data` the feature's struct. */
export interface VfioDeviceFeature {
  flags: number;
  data?: unknown;
}

/** struct vfio_region_dma_range. */
export interface VfioRegionDmaRange {
  readonly offset: bigint | number;
  readonly length: bigint | number;
}

/** struct vfio_device_feature_dma_buf. */
export interface VfioDeviceFeatureDmaBuf {
  /** The BAR (region index 0..5). */
  regionIndex: number;
  /** File flags of the new dma-buf: O_ACCMODE and O_CLOEXEC only. @default O_RDWR | O_CLOEXEC */
  openFlags?: number;
  /** Must be 0. @default 0 */
  flags?: number;
  dmaRanges: readonly VfioRegionDmaRange[];
}

/** Options of {@link VfioPciDevice.create}. */
export interface VfioPciOptions {
  /** @default 'vfio-<pci name>' */
  name?: string;
}

/** What the exporter keeps per dma-buf (struct vfio_pci_dma_buf). */
export interface VfioDmabufPriv {
  readonly device: VfioPciDevice;
  readonly bar: Bar;
  /** Physical ranges (phys_vec) in buffer order. */
  readonly ranges: readonly { phys: bigint; length: bigint }[];
  readonly size: bigint;
  revoked: boolean;
  released: boolean;
}

/** What a {@link VfioEvent} records: an export, a revocation or its end, a reset, a decode or power change, the close. */
export type VfioEventKind = 'export' | 'revoke' | 'restore' | 'reset' | 'decode' | 'power' | 'close';

/** One entry of `VfioPciDevice.events`, in order (`seq`). */
export interface VfioEvent {
  readonly seq: number;
  readonly kind: VfioEventKind;
  readonly detail: Record<string, unknown>;
}

/**
 * vfio-pci bound to a PCI function (struct vfio_pci_core_device) as a dma-buf exporter of its
 * BARs. Create with {@link VfioPciDevice.create}, `open` the device file in a process and drive
 * it with Process.ioctl (VFIO_DEVICE_FEATURE, VFIO_DEVICE_RESET).
 */
export class VfioPciDevice {
  readonly name: string;
  readonly pci: PciFunction;
  private readonly _events: Ring<VfioEvent>;
  private _memoryDecode = true;
  private _power: VfioPowerState = 'D0';
  private _inReset = false;
  private _closed = false;
  private readonly _bufs = new Set<DmaBuf>();
  private readonly _tables = new Set<SgTable>();
  private _seq = 0;
  private _opsCache: DmaBufExporterOps | undefined;
  private _openFiles = 0;

  /** The device file's operations (vfio_device_fops): ioctl, and release closing the device. */
  readonly fops: FileOperations<VfioPciDevice> = {
    name: 'vfio-device',
    ioctl: (_file, cmd, arg, proc) => this._ioctl(proc, cmd, arg),
    release: () => {
      if (--this._openFiles === 0) this.close();
    },
  };

  /**
   * The device cdev's operations (/dev/vfio/devices/vfioX, vfio_device_fops on a cdev open): the
   * iommufd binding ioctls (VFIO_DEVICE_BIND_IOMMUFD, ATTACH/DETACH_IOMMUFD_PT, src/iommufd), then,
   * once bound, the device's own ioctls; release unbinds, then counts the open like `fops`.
   */
  readonly cdevFops: FileOperations<VfioCdevFile> = {
    name: 'vfio-device-cdev',
    ioctl: (file, cmd, arg, proc) => file.privateData.ioctl(cmd, arg, proc) ?? this._ioctl(proc, cmd, arg),
    release: (file) => {
      file.privateData.release();
      if (--this._openFiles === 0) this.close();
    },
  };

  /** What the device did (newest `machine.history.driverEvents`, oldest first; a snapshot). */
  get events(): readonly VfioEvent[] {
    return this._events.toArray();
  }

  /** Entries of `events` dropped off the bounded log's old end. */
  get eventsDropped(): number {
    return this._events.dropped;
  }

  constructor(readonly machine: Machine, pci: PciFunction | string, opts: VfioPciOptions = {}) {
    this._events = new Ring<VfioEvent>(machine.history.driverEvents);
    this.pci = typeof pci === 'string' ? machine.pci(pci) : pci;
    this.name = opts.name ?? `vfio-${this.pci.name}`;
  }

  /**
   * Binds vfio-pci to a PCI function of the machine.
   * @throws {@link index!SimError} ENODEV when `pci` names no function of the machine.
   */
  static create(machine: Machine, pci: PciFunction | string, opts: VfioPciOptions = {}): VfioPciDevice {
    return new VfioPciDevice(machine, pci, opts);
  }

  /** PCI_COMMAND_MEMORY as the user last wrote it. */
  get memoryDecode(): boolean {
    return this._memoryDecode;
  }

  /** The power state the user last set; D3hot revokes the exported dma-bufs until D0. */
  get powerState(): VfioPowerState {
    return this._power;
  }

  /** The last device fd was closed (vfio_pci_core_close_device): its dma-bufs are revoked for good and open fails ENODEV. */
  get closed(): boolean {
    return this._closed;
  }

  /** __vfio_pci_memory_enabled: decode on, D0, not in reset, device still open. */
  get memoryEnabled(): boolean {
    return this._memoryDecode && this._power === 'D0' && !this._inReset && !this._closed;
  }

  /** Exported dma-bufs not yet released. */
  get dmabufs(): DmaBuf[] {
    return [...this._bufs];
  }

  /** Exporter tables handed out and not yet unmapped. */
  get liveTables(): number {
    return this._tables.size;
  }

  /**
   * Opens the device file in `proc` (the vfio device cdev, or VFIO_GROUP_GET_DEVICE_FD): its uAPI
   * is Process.ioctl on the fd. ENODEV once the device was closed.
   */
  open(proc: Process): number {
    if (this._closed) throw new SimError('ENODEV', 'vfio_device_fops_open', `${this.name} is closed`);
    const fd = proc.open(this.fops, this, { name: `vfio:${this.pci.name}` });
    this._openFiles++;
    return fd;
  }

  /**
   * Opens the device's cdev in `proc` (/dev/vfio/devices/vfioX): nothing but
   * VFIO_DEVICE_BIND_IOMMUFD works until it is bound to an iommufd. ENODEV once the device was closed.
   */
  openCdev(proc: Process): number {
    if (this._closed) throw new SimError('ENODEV', 'vfio_device_fops_cdev_open', `${this.name} is closed`);
    const fd = proc.open(this.cdevFops, new VfioCdevFile(this.machine, this.pci), { name: `vfio-cdev:${this.pci.name}` });
    this._openFiles++;
    return fd;
  }

  /**
   * vfio_pci_core_ioctl / vfio_ioctl_device_feature. VFIO_DEVICE_FEATURE: EINVAL for unknown flag
   * bits or GET with SET (without PROBE), ENOTTY for a feature other than DMA_BUF; DMA_BUF takes
   * GET only (SET: EINVAL), PROBE returns 0, GET exports (below) and returns the new fd.
   * VFIO_DEVICE_RESET resets the function. Any other command: ENOTTY.
   */
  private _ioctl(proc: Process, cmd: number, arg: unknown): number {
    if (cmd === VFIO_DEVICE_RESET) {
      this.reset();
      return 0;
    }
    if (cmd !== VFIO_DEVICE_FEATURE) throw new SimError('ENOTTY', 'vfio_pci_core_ioctl', `unknown ioctl 0x${(cmd >>> 0).toString(16)}`);
    const op = 'vfio_ioctl_device_feature';
    if (!arg || typeof arg !== 'object') throw new SimError('EFAULT', op, 'bad argument pointer');
    const { flags, data } = arg as VfioDeviceFeature;
    const known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
    if (!Number.isInteger(flags) || (flags & ~known) !== 0) throw new SimError('EINVAL', op, `flags 0x${Number(flags).toString(16)} has unknown bits`);
    const get = (flags & VFIO_DEVICE_FEATURE_GET) !== 0;
    const set = (flags & VFIO_DEVICE_FEATURE_SET) !== 0;
    const probe = (flags & VFIO_DEVICE_FEATURE_PROBE) !== 0;
    if (!probe && get && set) throw new SimError('EINVAL', op, 'GET and SET together need PROBE');
    if ((flags & VFIO_DEVICE_FEATURE_MASK) !== VFIO_DEVICE_FEATURE_DMA_BUF) {
      throw new SimError('ENOTTY', op, `feature ${flags & VFIO_DEVICE_FEATURE_MASK} is not supported`);
    }
    // vfio_check_feature: DMA_BUF supports GET only.
    if (set || !(get || probe)) throw new SimError('EINVAL', op, 'VFIO_DEVICE_FEATURE_DMA_BUF supports GET only', 'IM-13');
    if (probe) return 0;
    return this._featureDmaBuf(proc, data as VfioDeviceFeatureDmaBuf);
  }

  /**
   * VFIO_DEVICE_FEATURE_DMA_BUF (IM-13 ranges) in `proc`: returns the new fd. EINVAL: flags != 0,
   * open flags outside O_ACCMODE | O_CLOEXEC, no ranges, a region that is not a memory BAR, a
   * range not page-aligned, empty (except offset = length = 0, the whole BAR) or outside the BAR.
   * ENODEV: a region index past the BARs, or the device is closed. A buffer exported while memory
   * is disabled starts revoked.
   */
  private _featureDmaBuf(proc: Process, arg: VfioDeviceFeatureDmaBuf): number {
    const op = 'vfio_pci_core_feature_dma_buf';
    if (this._closed) throw new SimError('ENODEV', op, `${this.name} is closed`);
    if (!arg || typeof arg !== 'object') throw new SimError('EFAULT', op, 'bad argument pointer');
    const flags = arg.flags ?? 0;
    if (flags !== 0) throw new SimError('EINVAL', op, `flags must be 0, got ${flags}`, 'IM-13');
    const openFlags = arg.openFlags ?? (2 | O_CLOEXEC);
    if (!Number.isInteger(openFlags) || (openFlags & ~(O_ACCMODE | O_CLOEXEC)) !== 0) {
      throw new SimError('EINVAL', op, `open_flags 0x${openFlags.toString(16)} has bits other than O_ACCMODE | O_CLOEXEC`, 'IM-13');
    }
    if (!Number.isInteger(arg.regionIndex) || arg.regionIndex < 0) throw new SimError('EINVAL', op, 'region_index must be a non-negative integer');
    if (arg.regionIndex >= VFIO_PCI_ROM_REGION_INDEX) {
      throw new SimError('ENODEV', op, `region ${arg.regionIndex} is not a BAR`, 'IM-13');
    }
    const bar = this.pci.bar(arg.regionIndex);
    if (!bar || bar.type !== 'mem') throw new SimError('EINVAL', op, `BAR${arg.regionIndex} of ${this.pci.name} is not a memory BAR`, 'IM-13');
    if (!Array.isArray(arg.dmaRanges) || arg.dmaRanges.length === 0) throw new SimError('EINVAL', op, 'nr_ranges must be at least 1', 'IM-13');
    const ranges: { phys: bigint; length: bigint }[] = [];
    let size = 0n;
    arg.dmaRanges.forEach((r, i) => {
      const off = uapiU64(op, `dma_ranges[${i}].offset`, r?.offset);
      let len = uapiU64(op, `dma_ranges[${i}].length`, r?.length);
      if (off === 0n && len === 0n) len = bar.size;
      if (off < 0n || len <= 0n || off % PAGE !== 0n || len % PAGE !== 0n) {
        throw new SimError('EINVAL', op, `dma_ranges[${i}]: offset 0x${off.toString(16)} and length 0x${len.toString(16)} must be page-aligned, length > 0`, 'IM-13');
      }
      if (off + len > bar.size) {
        throw new SimError('EINVAL', op, `dma_ranges[${i}]: [0x${off.toString(16)}, +0x${len.toString(16)}) is outside BAR${bar.index} (0x${bar.size.toString(16)})`, 'IM-13');
      }
      ranges.push({ phys: bar.cpuAddress + off, length: len });
      size += len;
    });
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new SimError('EINVAL', op, 'the ranges are too large');
    const priv: VfioDmabufPriv = { device: this, bar, ranges, size, revoked: !this.memoryEnabled, released: false };
    const buf = this.machine.kernel.export({ expName: 'vfio-pci', ops: this._ops(), size: Number(size), flags: openFlags & O_ACCMODE, priv });
    this._bufs.add(buf);
    try {
      const fd = dmaBufFd(proc, buf, openFlags);
      this._emit('export', { dmaBufId: buf.id, bar: bar.index, ranges: ranges.length, size, revoked: priv.revoked });
      return fd;
    } catch (e) {
      buf.put();
      throw e;
    }
  }

  /**
   * A function reset (VFIO_DEVICE_RESET): every buffer is revoked before the reset. The reset
   * clears the command register, so memory decode is off afterwards and the buffers stay revoked
   * until the user turns decode back on (`setMemoryDecode(true)` or `restore()`). With
   * `restoreConfig` the saved config space is restored at once (pci_reset_function's
   * save/restore): decode comes back on and, the device being usable, the buffers are restored.
   */
  reset(opts: { restoreConfig?: boolean } = {}): void {
    if (this._closed) throw new SimError('ENODEV', 'VFIO_DEVICE_RESET', `${this.name} is closed`);
    const decode = this._memoryDecode;
    this._inReset = true;
    this._sync('reset');
    this._memoryDecode = opts.restoreConfig ? decode : false;
    this._power = 'D0';
    this._inReset = false;
    this._emit('reset', { restoreConfig: opts.restoreConfig ?? false, memoryDecode: this._memoryDecode });
    this._sync('reset');
  }

  /** A config write of PCI_COMMAND_MEMORY: off revokes, on restores (when otherwise usable). */
  setMemoryDecode(on: boolean): void {
    this._memoryDecode = on;
    this._emit('decode', { on });
    this._sync('decode');
  }

  /** A power-state change (PMCSR or runtime PM): anything but D0 revokes; back to D0 restores. */
  setPowerState(state: VfioPowerState): void {
    if (state !== 'D0' && state !== 'D3hot') throw new SimError('EINVAL', 'vfio_pci_set_power_state', `unknown power state ${String(state)}`);
    this._power = state;
    this._emit('power', { state });
    this._sync('power');
  }

  /** The user makes the device usable again: D0 and memory decode on. */
  restore(): void {
    if (this._closed) throw new SimError('ENODEV', 'vfio restore', `${this.name} is closed`);
    this._power = 'D0';
    this._memoryDecode = true;
    this._sync('restore');
  }

  /** Closing the device file (vfio_pci_dma_buf_cleanup): every buffer is revoked for good. */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    this._emit('close', {});
    this._sync('close');
  }

  /** vfio_pci_dma_buf_move: set `revoked` on every live buffer that differs, with move_notify under its resv. */
  private _sync(why: string): void {
    const revoked = !this.memoryEnabled;
    const k = this.machine.kernel;
    for (const buf of this._bufs) {
      const priv = buf.priv as VfioDmabufPriv;
      if (priv.revoked === revoked) continue;
      buf.resv.withLock(() => {
        priv.revoked = revoked;
        buf.moveNotify();
      });
      this._emit(revoked ? 'revoke' : 'restore', { dmaBufId: buf.id, why });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Exporter ops

  private _ops(): DmaBufExporterOps {
    this._opsCache ??= {
      attach: (buf, att) => this._attach(buf, att),
      pin: () => {
        throw new SimError('EOPNOTSUPP', 'vfio_pci_dma_buf_pin', 'vfio-pci buffers can be revoked at any time and cannot be pinned', 'IM-13');
      },
      unpin: () => {},
      mapDmaBuf: (att, dir) => this._map(att, dir),
      unmapDmaBuf: (att, sgt, dir) => this._unmap(att, sgt, dir),
      release: (buf) => this._release(buf),
    };
    return this._opsCache;
  }

  /** vfio_pci_dma_buf_attach (IM-12). */
  private _attach(buf: DmaBuf, att: DmaBufAttachment): void {
    const op = 'vfio_pci_dma_buf_attach';
    checkImporterHost(this.machine, att.dev, op, 'IM-12');
    const priv = buf.priv as VfioDmabufPriv;
    if (!att.peer2peer) throw new SimError('EOPNOTSUPP', op, 'the importer does not allow peer2peer', 'IM-12');
    if (priv.revoked) throw new SimError('ENODEV', op, 'the buffer is revoked', 'IM-12');
    const type = this._mapType(att);
    if (type === 'NOT_SUPPORTED') throw new SimError('EINVAL', op, `no P2P path from ${this.pci.name} to ${att.dev.name}`, 'IM-12');
    att.priv = { mapType: type };
  }

  private _mapType(att: DmaBufAttachment): P2pMapType {
    return p2pMapType(this.machine, this.pci, att);
  }

  /**
   * vfio_pci_dma_buf_map (IM-12): ENODEV while revoked, then dma_buf_phys_vec_to_sgt over the
   * buffer's ranges: BUS_ADDR -> bus addresses, THRU_HOST_BRIDGE -> dma_map_resource on the
   * importer's DMA device (ENOMEM on failure, everything unmapped), NOT_SUPPORTED -> EINVAL.
   * Entries are cut at 0xffff_f000 bytes only (the helper does not look at the importer's
   * max segment size). No struct pages, orig_nents 0.
   */
  private _map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const op = 'vfio_pci_dma_buf_map';
    const priv = att.dmabuf.priv as VfioDmabufPriv;
    if (priv.revoked) throw new SimError('ENODEV', op, 'the buffer is revoked', 'IM-12');
    const sgt = dmaBufPhysVecToSgt(this.machine, att, this.pci, priv.ranges, dir, {
      maxSegment: VFIO_DMABUF_MAX_SEG, importerMaxSegment: false, op, rule: 'IM-12',
    });
    this._tables.add(sgt);
    return sgt;
  }

  private _unmap(att: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    const op = 'vfio_pci_dma_buf_unmap';
    if (!this._tables.has(sgt)) throw new SimError('EINVAL', op, 'not a table this exporter made', 'IM-12');
    this._tables.delete(sgt);
    dmaBufFreeSgt(att, sgt, dir, op);
  }

  private _release(buf: DmaBuf): void {
    const priv = buf.priv as VfioDmabufPriv;
    priv.released = true;
    this._bufs.delete(buf);
  }

  private _emit(kind: VfioEventKind, detail: Record<string, unknown>): void {
    this._events.push({ seq: this._seq++, kind, detail });
  }
}
