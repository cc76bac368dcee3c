/**
 * An amdgpu-like GPU driver: buffer objects (BOs) in VRAM or GTT, moved by the GPU's own DMA
 * engine, exported and imported through dma-buf as spec/dmabuf.md §C gives it (IM-07..IM-11).
 *
 * Memory model.
 *  - VRAM is addressed by a VRAM offset 0..vramBytes. The first `visibleVramBytes` are the
 *    CPU-visible window: they are backed by BAR0's region (phys = BAR0 + offset), so the CPU and
 *    peers reach them. The rest ("invisible" VRAM) is a separate device-memory region outside the
 *    machine's BAR windows (from 0x5000_0000_0000, clear of the accel driver's hidden HBM at
 *    2^46), not CPU-accessible and not reachable by peers.
 *  - GTT is system RAM frames, one per page, mapped for the GPU through its IOMMU domain (the
 *    GART, here: dma_map_sgtable on the GPU's own DMA device).
 *  - A move (eviction, migration, validation into another domain) runs under the BO's
 *    reservation lock: move_notify to the importers of its dma-buf first, then a real copy by the
 *    GPU's DMA engine (requester = the GPU: VRAM by physical address, GTT through the GART), then
 *    a fence for the move is added to the BO's resv with KERNEL usage and signals when the copy
 *    "completes" on the kernel's virtual clock. The old storage is freed only once that fence has
 *    signaled and no exporter table still points into it.
 *
 * As exporter (IM-07..IM-10) it is dynamic (pin/unpin). As importer (IM-11) it attaches
 * dynamically with allow_peer2peer and invalidates its GPU page-table entries on move_notify; the
 * next GPU access re-validates (map again, wait for the KERNEL fences).
 */
import {
  dmaResvUsageRw,
  DmaResvUsage,
  importerDevice,
  MAX_SCHEDULE_TIMEOUT,
  O_RDWR,
  PAGE_SIZE,
  SimError,
  Ring,
  type Bar,
  type DmaBuf,
  type DmaDevice as DmaApiDevice,
  type DmaFence,
  type ImporterDevice,
  type Machine,
  type PciFunction,
  type FileOperations,
  type Process,
  type Region,
  type SimFile,
} from '../../index.js';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_CREATE_NO_CPU_ACCESS,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
  AmdgpuBo,
  domainBits,
  type AmdgpuBoCreateOptions,
  type AmdgpuDomain,
  type AmdgpuEvent,
  type AmdgpuEventKind,
} from './amdgpu_object.js';
import { AmdgpuTtm, forEachPiece, type Extent } from './amdgpu_ttm.js';
import { AmdgpuDmaBuf } from './amdgpu_dma_buf.js';
import { AmdgpuDrmFile, amdgpuFops, drmFileOf } from './amdgpu_gem.js';

const PAGE = BigInt(PAGE_SIZE);
/** Where invisible VRAM regions go: above the MEM64 window and clear of the accel driver's hidden HBM. */
export const AMDGPU_INVISIBLE_VRAM_BASE = 0x5000_0000_0000n;

/** Options of {@link AmdgpuDevice.create}: the GPU's VRAM layout behind its BAR and how moves and P2P tables behave. */
export interface AmdgpuDeviceOptions {
  /** The GPU's PCI function (object, name or BDF). */
  pci: PciFunction | string;
  /** The BAR that is the visible VRAM window. @default 0 */
  vramBarIndex?: number;
  /** CPU-visible VRAM (a prefix of the BAR). @default the BAR's size */
  visibleVramBytes?: bigint;
  /** All VRAM, visible plus invisible; at least visibleVramBytes. @default 2 x visibleVramBytes */
  vramBytes?: bigint;
  /** Virtual-clock ticks a move's copy takes per page (the move fence signals after that). @default 1 */
  copyTicksPerPage?: number;
  /**
   * How a P2P VRAM table is addressed for the importer: 'map-resource' (amdgpu_vram_mgr_alloc_sgt:
   * dma_map_resource per chunk, the driver's behaviour) or 'p2pdma' (a BUS_ADDR peer gets bus
   * addresses). @default 'map-resource'
   */
  p2pMapping?: 'map-resource' | 'p2pdma';
  /** @default 'amdgpu<n>' */
  name?: string;
}

/**
 * An amdgpu-like GPU on a PCI function: VRAM (visible through a BAR, plus invisible VRAM), GTT,
 * buffer objects moved by its own DMA engine, and PRIME export/import of BOs as dma-bufs. Create
 * with {@link AmdgpuDevice.create}.
 */
export class AmdgpuDevice {
  readonly name: string;
  readonly pci: PciFunction;
  readonly vramBar: Bar;
  readonly visibleVramBytes: bigint;
  readonly vramBytes: bigint;
  readonly invisibleRegion: Region | null;
  /** The GPU's DMA API device (GART mappings, its own imports). */
  readonly dma: DmaApiDevice;
  readonly rid: number;
  /** attach->dev of the GPU as an importer. */
  readonly importer: ImporterDevice;
  readonly copyTicksPerPage: number;
  readonly p2pMapping: 'map-resource' | 'p2pdma';
  /** The SDMA fence timeline of moves. */
  readonly fenceContext: number;
  private readonly _events: Ring<AmdgpuEvent>;
  // The move fence of each BO's last move or eviction (lastMoveFence), kept as the event is logged.
  private readonly _lastMove = new WeakMap<AmdgpuBo, DmaFence | undefined>();
  /**
   * Simulate contention on the VM's reservation: move_notify's trylock fails, so the page-table
   * update is skipped and happens at the next use (IM-11).
   */
  vmLockContended = false;
  /** @internal Placement, moves and eviction (amdgpu_ttm.ts). */
  readonly ttm: AmdgpuTtm;
  /** @internal PRIME export and import (amdgpu_dma_buf.ts). */
  readonly prime: AmdgpuDmaBuf;

  private readonly _bos = new Set<AmdgpuBo>();
  private _nextBo = 1;
  private _eventSeq = 0;

  /** What the device did (newest `machine.history.driverEvents`, oldest first; a snapshot). */
  get events(): readonly AmdgpuEvent[] {
    return this._events.toArray();
  }

  /** Entries of `events` dropped off the bounded log's old end. */
  get eventsDropped(): number {
    return this._events.dropped;
  }

  private constructor(readonly machine: Machine, opts: AmdgpuDeviceOptions) {
    const op = 'amdgpu probe';
    this._events = new Ring<AmdgpuEvent>(machine.history.driverEvents);
    this.pci = typeof opts.pci === 'string' ? machine.pci(opts.pci) : opts.pci;
    const bar = this.pci.bar(opts.vramBarIndex ?? 0);
    if (!bar || bar.type !== 'mem') throw new SimError('EINVAL', op, `${this.pci.name} has no memory BAR${opts.vramBarIndex ?? 0}`);
    this.vramBar = bar;
    this.name = opts.name ?? machine.deviceName('amdgpu');
    const visible = opts.visibleVramBytes ?? bar.size;
    if (visible <= 0n || visible % PAGE !== 0n || visible > bar.size) {
      throw new SimError('EINVAL', op, `visibleVramBytes must be a positive multiple of 4 KiB within BAR${bar.index} (${bar.size})`);
    }
    const total = opts.vramBytes ?? visible * 2n;
    if (total < visible || total % PAGE !== 0n) throw new SimError('EINVAL', op, 'vramBytes must be a multiple of 4 KiB, at least visibleVramBytes');
    this.visibleVramBytes = visible;
    this.vramBytes = total;
    if (total > visible) {
      const size = total - visible;
      this.invisibleRegion = machine.addDeviceMemory({ size, name: `${this.pci.name} VRAM (invisible)`, from: AMDGPU_INVISIBLE_VRAM_BASE });
    } else {
      this.invisibleRegion = null;
    }
    this.dma = machine.dmaDevice(this.pci);
    this.rid = machine.rid(this.pci);
    this.importer = importerDevice(machine, this.pci, this.dma);
    this.copyTicksPerPage = opts.copyTicksPerPage ?? 1;
    this.p2pMapping = opts.p2pMapping ?? 'map-resource';
    this.fenceContext = machine.kernel.fenceContextAlloc();
    this.ttm = new AmdgpuTtm(this);
    this.prime = new AmdgpuDmaBuf(this);
  }

  /**
   * Probes the GPU on a machine (amdgpu_device_init): takes the VRAM BAR and adds invisible VRAM
   * to the machine's device memory.
   * @throws {@link index!SimError} ENODEV when `pci` names no function; EINVAL when the function
   *   has no memory BAR at `vramBarIndex`, visibleVramBytes is not a positive multiple of 4 KiB
   *   within the BAR, or vramBytes is not a multiple of 4 KiB at least visibleVramBytes.
   */
  static create(machine: Machine, opts: AmdgpuDeviceOptions): AmdgpuDevice {
    return new AmdgpuDevice(machine, opts);
  }

  /** Live BOs (own and imported). */
  get bos(): AmdgpuBo[] {
    return [...this._bos];
  }

  /** Exporter tables handed out and not yet unmapped. */
  get liveTables(): number {
    return this.prime.liveTables;
  }

  /** VRAM in use: visible and invisible bytes (including storage waiting for its move fence). */
  vramUsage(): { visible: bigint; invisible: bigint } {
    return this.ttm.vramUsage();
  }

  /** CPU physical address of a VRAM offset. */
  vramPhys(offset: bigint): bigint {
    if (offset < 0n || offset >= this.vramBytes) throw new SimError('EINVAL', 'vramPhys', `VRAM offset 0x${offset.toString(16)} is outside VRAM`);
    return offset < this.visibleVramBytes ? this.vramBar.cpuAddress + offset : this.invisibleRegion!.base + (offset - this.visibleVramBytes);
  }

  // ---------------------------------------------------------------------------------------------
  // Buffer objects (amdgpu_gem.c)

  /**
   * amdgpu_gem_create: a BO placed in its preferred domains (VRAM first; a VRAM BO with
   * NO_CPU_ACCESS goes to invisible VRAM first, one with CPU_ACCESS_REQUIRED to the visible
   * window only). A full VRAM evicts unpinned BOs (LRU) to GTT; if VRAM still cannot hold it and
   * GTT is allowed, it goes to GTT; else ENOMEM. Contents start zeroed.
   */
  createBo(opts: AmdgpuBoCreateOptions): AmdgpuBo {
    const op = 'amdgpu_gem_create';
    if (!opts || !Number.isSafeInteger(opts.size) || opts.size <= 0) throw new SimError('EINVAL', op, 'size must be a positive integer');
    const domains = domainBits(opts.domain);
    if (domains === 0 || (domains & ~(AMDGPU_GEM_DOMAIN_GTT | AMDGPU_GEM_DOMAIN_VRAM)) !== 0) {
      throw new SimError('EINVAL', op, 'domain must be VRAM and/or GTT');
    }
    const flags = opts.flags ?? 0;
    if ((flags & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED) && (flags & AMDGPU_GEM_CREATE_NO_CPU_ACCESS)) {
      throw new SimError('EINVAL', op, 'CPU_ACCESS_REQUIRED and NO_CPU_ACCESS exclude each other');
    }
    const size = Math.ceil(opts.size / PAGE_SIZE) * PAGE_SIZE;
    const bo = new AmdgpuBo(this, this.nextBoId(), size, domains, flags, this.machine.kernel.createResv());
    const placement = this.ttm.place(bo, domains, op);
    try {
      this.ttm.clear(placement, BigInt(size));
    } catch (e) {
      this.ttm.freePlacement(placement);
      throw e;
    }
    bo.backing = this.ttm.newBacking(placement);
    this.addBo(bo);
    this.ttm.touch(bo);
    this.emit('create', bo, { size, domain: placement.domain });
    return bo;
  }

  /** Drops the creator's handle; the BO is freed when its dma-buf (if any) is released too. */
  freeBo(bo: AmdgpuBo): void {
    if (bo.freed || bo.refs === 0) throw new SimError('EINVAL', 'amdgpu_gem_object_free', `BO ${bo.id} is already freed`);
    this.boPut(bo);
  }

  /**
   * amdgpu_bo_pin (a driver-internal pin, e.g. scanout): resv taken here. Already pinned: the
   * current domain must be one of `domain` (EINVAL). Otherwise the BO is validated into `domain`
   * (may move) and stays there until unpinned.
   */
  pinBo(bo: AmdgpuBo, domain: number | AmdgpuDomain | readonly AmdgpuDomain[]): void {
    bo.resv.withLock(() => this.ttm.pin(bo, domainBits(domain), 'amdgpu_bo_pin'));
  }

  /** amdgpu_bo_unpin. EINVAL when not pinned. */
  unpinBo(bo: AmdgpuBo): void {
    bo.resv.withLock(() => this.ttm.unpin(bo, 'amdgpu_bo_unpin'));
  }

  /**
   * Migrates an own BO to `domain` (an explicit ttm_bo_validate), taking its resv. EBUSY when
   * pinned, ENOMEM when the target cannot hold it even after evicting others. Returns true when
   * it moved.
   */
  migrate(bo: AmdgpuBo, domain: AmdgpuDomain, opts: { visible?: boolean } = {}): boolean {
    return this.ttm.migrate(bo, domain, opts);
  }

  /** ttm_bo_evict of one BO: VRAM -> GTT. EBUSY when pinned; false when it is not in VRAM. */
  evict(bo: AmdgpuBo): boolean {
    return this.ttm.evict(bo);
  }

  /**
   * The memory-pressure knob: evicts unpinned VRAM BOs to GTT, least recently placed first, until
   * at least `bytes` of VRAM have been freed (default: all of them). BOs whose resv is held by
   * someone else are skipped (ttm trylock). Returns the evicted BOs.
   */
  memoryPressure(opts: { bytes?: bigint | number } = {}): AmdgpuBo[] {
    return this.ttm.memoryPressure(opts);
  }

  /** The move fence of the last move, for tests: the newest fence this device added. */
  lastMoveFence(bo: AmdgpuBo): DmaFence | undefined {
    return this._lastMove.get(bo);
  }

  // ---------------------------------------------------------------------------------------------
  // The render node (amdgpu_gem.ts): GEM handles and PRIME through Process.ioctl

  /** The render node's file operations (GEM_CREATE, GEM_CLOSE, PRIME_HANDLE_TO_FD, PRIME_FD_TO_HANDLE). */
  readonly fops: FileOperations<AmdgpuDrmFile> = amdgpuFops();

  /** open("/dev/dri/renderD128") in `proc`: a DRM file with an empty GEM handle table. */
  open(proc: Process): number {
    return proc.open(this.fops, new AmdgpuDrmFile(this), { name: `drm:${this.name}` });
  }

  /**
   * The DRM file (struct drm_file) of an open render node of this device, for kernel-side code
   * that resolves handles (drm_gem_object_lookup) or makes one for a BO it created
   * (drm_gem_handle_create). EINVAL for any other file.
   */
  drmFile(file: SimFile): AmdgpuDrmFile {
    return drmFileOf(this, file);
  }

  // ---------------------------------------------------------------------------------------------
  // PRIME export / import (amdgpu_dma_buf.ts)

  /**
   * amdgpu_gem_prime_export: the BO's dma-buf (the same one while it is alive), sharing the BO's
   * reservation object. The caller gets a kernel reference.
   */
  exportDmabuf(bo: AmdgpuBo, flags = O_RDWR): DmaBuf {
    return this.prime.exportDmabuf(bo, flags);
  }


  /**
   * amdgpu_gem_prime_import (IM-11): a dma-buf this device exported comes back as the same BO
   * (one more reference, no attachment). Any other becomes an imported BO with a dynamic
   * attachment {allowPeer2Peer: true, moveNotify: invalidate}. Takes its own dma-buf reference.
   */
  importDmabuf(buf: DmaBuf): AmdgpuBo {
    return this.prime.importDmabuf(buf);
  }


  // ---------------------------------------------------------------------------------------------
  // GPU access

  /** @internal The GPU's DMA engine on a BO (AmdgpuBo.read/write). */
  gpuAccess(bo: AmdgpuBo, dir: 'read' | 'write', offset: number, buf: Uint8Array): Uint8Array {
    const op = dir === 'read' ? 'amdgpu read' : 'amdgpu write';
    if (bo.freed) throw new SimError('EINVAL', op, `BO ${bo.id} is freed`);
    if (!Number.isSafeInteger(offset) || !(buf instanceof Uint8Array)) throw new SimError('EINVAL', op, 'offset must be an integer and buf a Uint8Array');
    if (offset < 0 || offset + buf.length > bo.size) {
      throw new SimError('EINVAL', op, `[${offset}, +${buf.length}) is outside BO ${bo.id} (${bo.size} bytes)`);
    }
    let extents: Extent[];
    if (bo.importState) {
      this.prime.revalidate(bo);
      const st = bo.importState;
      st.attach.checkDeviceAccess(st.sgt!, dir === 'write');
      let off = 0n;
      extents = st.ptes!.map((p) => {
        const e: Extent = { off, len: p.length, rid: this.rid, addr: p.dmaAddress };
        off += p.length;
        return e;
      });
    } else {
      const r = bo.resv.waitTimeout(dmaResvUsageRw(dir === 'write'), false, MAX_SCHEDULE_TIMEOUT);
      if (r <= 0) throw new SimError('EIO', op, 'fences of the BO never signaled');
      extents = this.ttm.extents(bo.backing!.placement);
    }
    const dmaEng = this.machine.sim.dma;
    forEachPiece(extents, BigInt(offset), BigInt(buf.length), (ep, at, n) => {
      const from = Number(at);
      let r;
      if (dir === 'read') {
        const rr = dmaEng.read(ep, Number(n));
        buf.set(rr.data.subarray(0, Number(rr.bytesDone)), from);
        r = rr;
      } else {
        r = dmaEng.write(ep, buf.subarray(from, from + Number(n)));
      }
      if (!r.ok) throw new SimError('EIO', op, `GPU DMA ${dir} at 0x${ep.addr.toString(16)} failed: ${r.code}`);
    });
    return buf;
  }

  // ---------------------------------------------------------------------------------------------
  // Shared by the driver's files (@internal)

  /** @internal A new BO id. */
  nextBoId(): number {
    return this._nextBo++;
  }

  /** @internal Lists a new BO. */
  addBo(bo: AmdgpuBo): void {
    this._bos.add(bo);
  }

  /** @internal Drops a reference; the last one frees the BO (its storage once fences allow). */
  boPut(bo: AmdgpuBo): void {
    bo.refs--;
    if (bo.refs > 0) return;
    bo.freed = true;
    this._bos.delete(bo);
    this.ttm.forget(bo);
    this.emit('free', bo, {});
    if (bo.importState) {
      this.prime.dropImport(bo);
      return;
    }
    const b = bo.backing!;
    b.retired = true;
    b.fenced = bo.resv.testSignaled(DmaResvUsage.BOOKKEEP);
    if (!b.fenced) {
      for (const f of bo.resv.getFences(DmaResvUsage.BOOKKEEP)) {
        f.addCallback({ func: () => { b.fenced = bo.resv.testSignaled(DmaResvUsage.BOOKKEEP); this.ttm.maybeFree(b); } });
      }
    }
    this.ttm.maybeFree(b);
  }

  /** @internal EINVAL unless `bo` is a live own BO of this device. */
  own(bo: AmdgpuBo, op: string): void {
    if (bo.device !== this || bo.importState || bo.freed) throw new SimError('EINVAL', op, `BO ${bo.id} is not a live BO of ${this.name}`);
  }

  /** @internal */
  emit(kind: AmdgpuEventKind, bo: AmdgpuBo, detail: Record<string, unknown>): void {
    this._events.push({ seq: this._eventSeq++, kind, bo: bo.id, detail });
    if (kind === 'move' || kind === 'evict') this._lastMove.set(bo, detail['fence'] as DmaFence | undefined);
  }
}
