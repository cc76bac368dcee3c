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
  DmaDataDirection,
  dmaBufFreeSgt,
  dmaBufPhysVecToSgt,
  DmaResvUsage,
  dmaResvUsageRw,
  GenPool,
  importerDevice,
  importerPciFunction,
  MAX_SCHEDULE_TIMEOUT,
  O_CLOEXEC,
  O_RDWR,
  PAGE_SIZE,
  requireImporterDmaDevice,
  ScatterList,
  SgTable,
  SimError,
  withResvLock,
  type Bar,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type DmaBufVma,
  type DmaDevice as DmaApiDevice,
  type DmaEndpoint,
  type DmaFence,
  type DmaResv,
  type ImporterDevice,
  type Machine,
  type PciFunction,
  type Region,
  type SimProcess,
} from '../../index.js';

const PAGE = BigInt(PAGE_SIZE);
const BIDI = DmaDataDirection.BIDIRECTIONAL;
/** AMDGPU_MAX_SG_SEGMENT_SIZE: VRAM sg entries are cut at 2 GiB. */
export const AMDGPU_MAX_SG_SEGMENT_SIZE = 2n << 30n;
/** Where invisible VRAM regions go: above the MEM64 window and clear of the accel driver's hidden HBM. */
export const AMDGPU_INVISIBLE_VRAM_BASE = 0x5000_0000_0000n;

/** amdgpu_drm.h domain bits. */
export const AMDGPU_GEM_DOMAIN_GTT = 0x2;
export const AMDGPU_GEM_DOMAIN_VRAM = 0x4;
/** amdgpu_drm.h creation flags the model knows. */
export const AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED = 1 << 0;
export const AMDGPU_GEM_CREATE_NO_CPU_ACCESS = 1 << 1;

export type AmdgpuDomain = 'VRAM' | 'GTT';

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

export interface AmdgpuBoCreateOptions {
  /** Bytes; rounded up to whole pages. */
  size: number;
  /** Preferred domains (AMDGPU_GEM_DOMAIN_* bits, or names). */
  domain: number | AmdgpuDomain | readonly AmdgpuDomain[];
  /** AMDGPU_GEM_CREATE_* bits. @default 0 */
  flags?: number;
}

/** One contiguous piece of VRAM, by VRAM offset. */
export interface VramChunk {
  readonly offset: bigint;
  readonly length: bigint;
}

/** Where a BO's bytes are. */
export type AmdgpuPlacement =
  | { readonly domain: 'VRAM'; readonly chunks: readonly VramChunk[] }
  | { readonly domain: 'GTT'; readonly pages: readonly bigint[]; readonly gart: ScatterList };

interface Backing {
  readonly id: number;
  readonly placement: AmdgpuPlacement;
  /** Exporter tables still pointing into it. */
  tables: number;
  /** Replaced by a move; freed once `fenced` and no tables remain. */
  retired: boolean;
  fenced: boolean;
  freed: boolean;
}

/** A contiguous byte run of a BO and how the GPU's DMA engine reaches it. */
interface Extent {
  readonly off: bigint;
  readonly len: bigint;
  readonly rid: number | 'phys';
  readonly addr: bigint;
}

export type AmdgpuEventKind = 'create' | 'move' | 'evict' | 'pin' | 'unpin' | 'map' | 'unmap' | 'invalidate' | 'revalidate' | 'free';

export interface AmdgpuEvent {
  readonly seq: number;
  readonly kind: AmdgpuEventKind;
  readonly bo: number;
  readonly detail: Record<string, unknown>;
}

/** What a P2P map keeps per table. */
interface TableRecord {
  readonly backing: Backing;
  readonly free: () => void;
}


/** A buffer object: exported-capable (own memory) or imported (an attachment to another's dma-buf). */
export class AmdgpuBo {
  /** AMDGPU_GEM_CREATE_* flags; map for P2P adds CPU_ACCESS_REQUIRED, as the driver does. */
  flags: number;
  /** ttm pin_count. */
  pinCount = 0;
  /** Moves so far (evictions and migrations). */
  moves = 0;
  freed = false;
  /** @internal */ _backing: Backing | null = null;
  /** @internal the exported dma-buf, while alive. */ _dmabuf: DmaBuf | null = null;
  /** @internal importer side */ _import: ImportState | null = null;
  /** @internal references: the handle, the export. */ _refs = 1;

  /** @internal Use AmdgpuDevice.createBo / importDmabuf. */
  constructor(
    readonly device: AmdgpuDevice,
    readonly id: number,
    readonly size: number,
    /** AMDGPU_GEM_DOMAIN_* bits the BO prefers (and is allowed in). */
    readonly preferredDomains: number,
    flags: number,
    readonly resv: DmaResv,
  ) {
    this.flags = flags;
  }

  /** True for a BO made by importing another exporter's dma-buf. */
  get imported(): boolean {
    return this._import !== null;
  }

  /** Current domain of an own BO; null for imported BOs. */
  get domain(): AmdgpuDomain | null {
    return this._backing?.placement.domain ?? null;
  }

  /** The current placement (own BOs). */
  get placement(): AmdgpuPlacement | null {
    return this._backing?.placement ?? null;
  }

  /** In VRAM and entirely inside the CPU-visible window. */
  get visible(): boolean {
    const p = this._backing?.placement;
    return p?.domain === 'VRAM' && p.chunks.every((c) => c.offset + c.length <= this.device.visibleVramBytes);
  }

  /** The exported dma-buf, if any is alive. */
  get dmabuf(): DmaBuf | null {
    return this._dmabuf;
  }

  /** Importer side: the attachment (imported BOs). */
  get attachment(): DmaBufAttachment | null {
    return this._import?.attach ?? null;
  }

  /** Importer side: the GPU page-table entries are valid (false after move_notify until next use). */
  get ptesValid(): boolean {
    return this._import?.ptes != null;
  }

  /** Importer side: move_notify invalidations and re-validations so far. */
  get invalidations(): number {
    return this._import?.invalidations ?? 0;
  }
  get revalidations(): number {
    return this._import?.revalidations ?? 0;
  }

  /** Physical addresses of the bytes (own BOs): CPU physical for VRAM and GTT pages. */
  physRanges(): { phys: bigint; length: bigint }[] {
    const p = this._backing?.placement;
    if (!p) return [];
    if (p.domain === 'VRAM') return p.chunks.map((c) => ({ phys: this.device.vramPhys(c.offset), length: c.length }));
    return p.pages.map((pa) => ({ phys: pa, length: PAGE }));
  }

  /**
   * The GPU reads through its DMA engine (after waiting for the resv's WRITE-class fences, as a
   * command submission does implicitly). Imported BOs are re-validated first when invalidated.
   */
  read(offset: number, length: number): Uint8Array {
    return this.device._gpuAccess(this, 'read', offset, new Uint8Array(length));
  }

  /** The GPU writes through its DMA engine (waits for READ-class fences first). */
  write(offset: number, data: Uint8Array): void {
    this.device._gpuAccess(this, 'write', offset, data);
  }
}

interface ImportState {
  readonly attach: DmaBufAttachment;
  sgt: SgTable | null;
  /** The GPU VM's entries for the BO (DMA segments), null when invalidated. */
  ptes: { dmaAddress: bigint; length: bigint }[] | null;
  invalidations: number;
  revalidations: number;
  /** move_notify could not take the VM lock: the page-table update waits for the next use. */
  deferredVmUpdates: number;
}

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
  readonly events: AmdgpuEvent[] = [];
  /**
   * Simulate contention on the VM's reservation: move_notify's trylock fails, so the page-table
   * update is skipped and happens at the next use (IM-11).
   */
  vmLockContended = false;

  /** VRAM by offset: the CPU-visible window and the rest (amdgpu_vram_mgr's two ranges). */
  private readonly _vram: { visible: GenPool; invisible: GenPool | null };
  private readonly _lru = new Set<AmdgpuBo>();
  private readonly _bos = new Set<AmdgpuBo>();
  private readonly _tables = new Map<SgTable, TableRecord>();
  private _nextBo = 1;
  private _nextBacking = 1;
  private _seqno = 0;
  private _eventSeq = 0;
  private _opsCache: DmaBufExporterOps | undefined;

  private constructor(readonly machine: Machine, opts: AmdgpuDeviceOptions) {
    const op = 'amdgpu probe';
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
    const visiblePool = new GenPool({ name: `${this.name} visible VRAM` });
    visiblePool.add(0n, visible);
    let invisiblePool: GenPool | null = null;
    if (total > visible) {
      invisiblePool = new GenPool({ name: `${this.name} invisible VRAM` });
      invisiblePool.add(visible, total - visible);
    }
    this._vram = { visible: visiblePool, invisible: invisiblePool };
    this.dma = machine.dmaDevice(this.pci);
    this.rid = machine.rid(this.pci);
    this.importer = importerDevice(machine, this.pci, this.dma);
    this.copyTicksPerPage = opts.copyTicksPerPage ?? 1;
    this.p2pMapping = opts.p2pMapping ?? 'map-resource';
    this.fenceContext = machine.kernel.fenceContextAlloc();
  }

  /** Probes the GPU on a machine. */
  static create(machine: Machine, opts: AmdgpuDeviceOptions): AmdgpuDevice {
    return new AmdgpuDevice(machine, opts);
  }

  /** Live BOs (own and imported). */
  get bos(): AmdgpuBo[] {
    return [...this._bos];
  }

  /** Exporter tables handed out and not yet unmapped. */
  get liveTables(): number {
    return this._tables.size;
  }

  /** VRAM in use: visible and invisible bytes (including storage waiting for its move fence). */
  vramUsage(): { visible: bigint; invisible: bigint } {
    return {
      visible: this.visibleVramBytes - this._vram.visible.avail(),
      invisible: this.vramBytes - this.visibleVramBytes - (this._vram.invisible?.avail() ?? 0n),
    };
  }

  /** CPU physical address of a VRAM offset. */
  vramPhys(offset: bigint): bigint {
    if (offset < 0n || offset >= this.vramBytes) throw new SimError('EINVAL', 'vramPhys', `VRAM offset 0x${offset.toString(16)} is outside VRAM`);
    return offset < this.visibleVramBytes ? this.vramBar.cpuAddress + offset : this.invisibleRegion!.base + (offset - this.visibleVramBytes);
  }

  // ---------------------------------------------------------------------------------------------
  // Buffer objects

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
    const bo = new AmdgpuBo(this, this._nextBo++, size, domains, flags, this.machine.kernel.createResv());
    const placement = this._place(bo, domains, op);
    this._clear(placement, BigInt(size));
    bo._backing = this._newBacking(placement);
    this._bos.add(bo);
    this._touch(bo);
    this._emit('create', bo, { size, domain: placement.domain });
    return bo;
  }

  /** Drops the creator's handle; the BO is freed when its dma-buf (if any) is released too. */
  freeBo(bo: AmdgpuBo): void {
    if (bo.freed || bo._refs === 0) throw new SimError('EINVAL', 'amdgpu_gem_object_free', `BO ${bo.id} is already freed`);
    this._boPut(bo);
  }

  /**
   * amdgpu_bo_pin (a driver-internal pin, e.g. scanout): resv taken here. Already pinned: the
   * current domain must be one of `domain` (EINVAL). Otherwise the BO is validated into `domain`
   * (may move) and stays there until unpinned.
   */
  pinBo(bo: AmdgpuBo, domain: number | AmdgpuDomain | readonly AmdgpuDomain[]): void {
    this._locked(bo, () => this._pin(bo, domainBits(domain), 'amdgpu_bo_pin'));
  }

  /** amdgpu_bo_unpin. EINVAL when not pinned. */
  unpinBo(bo: AmdgpuBo): void {
    this._locked(bo, () => this._unpin(bo, 'amdgpu_bo_unpin'));
  }

  /**
   * Migrates an own BO to `domain` (an explicit ttm_bo_validate), taking its resv. EBUSY when
   * pinned, ENOMEM when the target cannot hold it even after evicting others. Returns true when
   * it moved.
   */
  migrate(bo: AmdgpuBo, domain: AmdgpuDomain, opts: { visible?: boolean } = {}): boolean {
    const op = 'ttm_bo_validate';
    this._own(bo, op);
    return this._locked(bo, () => {
      if (bo.pinCount > 0) throw new SimError('EBUSY', op, `BO ${bo.id} is pinned`);
      const before = bo._backing;
      this._validate(bo, domain === 'VRAM' ? AMDGPU_GEM_DOMAIN_VRAM : AMDGPU_GEM_DOMAIN_GTT, op, opts.visible ?? false, true);
      return bo._backing !== before;
    });
  }

  /** ttm_bo_evict of one BO: VRAM -> GTT. EBUSY when pinned; false when it is not in VRAM. */
  evict(bo: AmdgpuBo): boolean {
    const op = 'ttm_bo_evict';
    this._own(bo, op);
    return this._locked(bo, () => {
      if (bo.domain !== 'VRAM') return false;
      if (bo.pinCount > 0) throw new SimError('EBUSY', op, `BO ${bo.id} is pinned`);
      this._moveTo(bo, 'GTT', op, false, 'evict');
      return true;
    });
  }

  /**
   * The memory-pressure knob: evicts unpinned VRAM BOs to GTT, least recently placed first, until
   * at least `bytes` of VRAM have been freed (default: all of them). BOs whose resv is held by
   * someone else are skipped (ttm trylock). Returns the evicted BOs.
   */
  memoryPressure(opts: { bytes?: bigint | number } = {}): AmdgpuBo[] {
    const want = opts.bytes === undefined ? undefined : BigInt(opts.bytes);
    const out: AmdgpuBo[] = [];
    let freed = 0n;
    for (const bo of [...this._lru]) {
      if (want !== undefined && freed >= want) break;
      if (bo.domain !== 'VRAM' || bo.pinCount > 0) continue;
      if (!bo.resv.trylock()) continue;
      try {
        this._moveTo(bo, 'GTT', 'amdgpu memory pressure', false, 'evict');
      } finally {
        bo.resv.unlock();
      }
      freed += BigInt(bo.size);
      out.push(bo);
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // PRIME export / import

  /**
   * amdgpu_gem_prime_export: the BO's dma-buf (the same one while it is alive), sharing the BO's
   * reservation object. The caller gets a kernel reference.
   */
  exportDmabuf(bo: AmdgpuBo, flags = O_RDWR): DmaBuf {
    const op = 'amdgpu_gem_prime_export';
    this._own(bo, op);
    if (bo._dmabuf) return bo._dmabuf.get();
    const buf = this.machine.kernel.export({ expName: 'amdgpu', ops: this._ops(), size: bo.size, flags, priv: bo, resv: bo.resv });
    bo._dmabuf = buf;
    bo._refs++;
    return buf;
  }

  /** DRM_IOCTL_PRIME_HANDLE_TO_FD in `proc`: an fd of the BO's dma-buf. */
  exportFd(proc: SimProcess, bo: AmdgpuBo, flags = O_RDWR | O_CLOEXEC): number {
    const buf = this.exportDmabuf(bo, flags & ~O_CLOEXEC);
    try {
      return proc.dmaBufFd(buf, flags);
    } catch (e) {
      buf.put();
      throw e;
    }
  }

  /**
   * amdgpu_gem_prime_import (IM-11): a dma-buf this device exported comes back as the same BO
   * (one more reference, no attachment). Any other becomes an imported BO with a dynamic
   * attachment {allowPeer2Peer: true, moveNotify: invalidate}. Takes its own dma-buf reference.
   */
  importDmabuf(buf: DmaBuf): AmdgpuBo {
    if (buf.ops === this._ops() && (buf.priv as AmdgpuBo).device === this) {
      const bo = buf.priv as AmdgpuBo;
      bo._refs++;
      return bo;
    }
    buf.get();
    try {
      const holder: { bo?: AmdgpuBo } = {};
      const attach = buf.dynamicAttach(this.importer, { allowPeer2Peer: true, moveNotify: (att) => this._importMoveNotify(att) }, holder);
      const bo = new AmdgpuBo(this, this._nextBo++, buf.size, AMDGPU_GEM_DOMAIN_GTT, 0, buf.resv);
      bo._import = { attach, sgt: null, ptes: null, invalidations: 0, revalidations: 0, deferredVmUpdates: 0 };
      holder.bo = bo;
      this._bos.add(bo);
      this._emit('create', bo, { imported: buf.id, peer2peer: attach.peer2peer });
      return bo;
    } catch (e) {
      buf.put();
      throw e;
    }
  }

  /** DRM_IOCTL_PRIME_FD_TO_HANDLE: imports the dma-buf behind `fd` of `proc`. */
  importFd(proc: SimProcess, fd: number): AmdgpuBo {
    const buf = proc.dmaBufGet(fd);
    try {
      return this.importDmabuf(buf);
    } finally {
      buf.put();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Exporter ops

  private _ops(): DmaBufExporterOps {
    this._opsCache ??= {
      attach: (buf, att) => this._attach(buf, att),
      pin: (att) => this._exportPin(att),
      unpin: (att) => this._unpin(att.dmabuf.priv as AmdgpuBo, 'amdgpu_dma_buf_unpin'),
      mapDmaBuf: (att, dir) => this._map(att, dir),
      unmapDmaBuf: (att, sgt, dir) => this._unmap(att, sgt, dir),
      release: (buf) => this._release(buf),
      beginCpuAccess: (buf, dir) => this._beginCpuAccess(buf, dir),
      mmap: (buf, vma) => this._mmap(buf, vma),
    };
    return this._opsCache;
  }

  /** amdgpu_dma_buf_attach (IM-07): no P2P path (distance < 0) clears peer2peer. Never fails. */
  private _attach(_buf: DmaBuf, att: DmaBufAttachment): void {
    const client = importerPciFunction(att.dev);
    const distance = client ? this.machine.p2pdma.distance(this.pci, att.dev.pci ?? client, { verbose: false }).distance : -1;
    if (distance < 0) att.peer2peer = false;
    att.priv = { distance };
  }

  /**
   * amdgpu_dma_buf_pin (IM-09): [5.15] always GTT. [6.x] the preferred domains, without VRAM when
   * any attachment cannot do P2P or without CONFIG_DMABUF_MOVE_NOTIFY; nothing left: GTT.
   */
  private _exportPin(att: DmaBufAttachment): void {
    const bo = att.dmabuf.priv as AmdgpuBo;
    const k = this.machine.kernel;
    let domains = AMDGPU_GEM_DOMAIN_GTT;
    if (k.profile.name !== '5.15') {
      domains = bo.preferredDomains;
      if (domains & AMDGPU_GEM_DOMAIN_VRAM) {
        if (!k.configMoveNotify || att.dmabuf.attachments.some((a) => !a.peer2peer)) domains &= ~AMDGPU_GEM_DOMAIN_VRAM;
      }
      if (domains === 0) domains = AMDGPU_GEM_DOMAIN_GTT;
    }
    this._pin(bo, domains, 'amdgpu_dma_buf_pin');
  }

  /**
   * amdgpu_dma_buf_map (IM-08). Not pinned: validate into GTT, plus VRAM (CPU-visible) when the BO
   * prefers VRAM and the attachment is peer2peer; this may move the BO (move_notify first).
   * Pinned: [5.15] outside GTT -> EBUSY; [6.x+] used where it is (VRAM only for a peer2peer
   * attachment, else EBUSY). GTT: the pages, dma_map_sgtable for the importer (failure EBUSY).
   * VRAM: amdgpu_vram_mgr_alloc_sgt: dma_map_resource per chunk (<= 2 GiB), no struct pages;
   * a mapping error -> ENOMEM.
   */
  private _map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const op = 'amdgpu_dma_buf_map';
    const bo = att.dmabuf.priv as AmdgpuBo;
    const k = this.machine.kernel;
    if (bo.pinCount === 0) {
      let domains = AMDGPU_GEM_DOMAIN_GTT;
      if ((bo.preferredDomains & AMDGPU_GEM_DOMAIN_VRAM) && att.peer2peer) {
        bo.flags |= AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;
        domains |= AMDGPU_GEM_DOMAIN_VRAM;
      }
      this._validate(bo, domains, op, (domains & AMDGPU_GEM_DOMAIN_VRAM) !== 0, false);
    } else if (bo.domain !== 'GTT' && (k.profile.name === '5.15' || !att.peer2peer || !bo.visible)) {
      throw new SimError('EBUSY', op, `BO ${bo.id} is pinned in ${bo.domain}`, 'IM-08');
    }
    const backing = bo._backing!;
    const imp = att.dev;
    const dma = requireImporterDmaDevice(this.machine, imp, op, 'IM-08');
    const p = backing.placement;
    let sgt: SgTable;
    let free: () => void;
    if (p.domain === 'GTT') {
      const sgl = ScatterList.fromPages(p.pages);
      const r = dma.mapSgtable(sgl, dir);
      if (r < 0) throw new SimError('EBUSY', op, `dma_map_sgtable for ${imp.name} failed (${r})`, 'IM-08');
      sgt = new SgTable(sgl.dmaSegments(), { nents: sgl.nents, origNents: sgl.origNents });
      free = () => dma.unmapSg(sgl, dir);
    } else {
      // amdgpu_vram_mgr_alloc_sgt: entries of at most 2 GiB, whatever the importer's limit.
      const ranges = p.chunks.map((c) => ({ phys: this.vramPhys(c.offset), length: c.length }));
      const table = dmaBufPhysVecToSgt(this.machine, att, this.pci, ranges, dir, {
        maxSegment: AMDGPU_MAX_SG_SEGMENT_SIZE, importerMaxSegment: false,
        alwaysMapResource: this.p2pMapping === 'map-resource', op, rule: 'IM-08',
      });
      sgt = table;
      free = () => dmaBufFreeSgt(att, table, dir, 'amdgpu_dma_buf_unmap');
    }
    backing.tables++;
    this._tables.set(sgt, { backing, free });
    this._emit('map', bo, { importer: imp.name, domain: p.domain, nents: sgt.nents, peer2peer: att.peer2peer });
    return sgt;
  }

  /** amdgpu_dma_buf_unmap: a page-backed table is dma_unmap_sgtable'd, a VRAM one dma_unmap_resource'd. */
  private _unmap(att: DmaBufAttachment, sgt: SgTable, _dir: DmaDataDirection): void {
    const rec = this._tables.get(sgt);
    if (!rec) throw new SimError('EINVAL', 'amdgpu_dma_buf_unmap', 'not a table this exporter made', 'IM-08');
    this._tables.delete(sgt);
    rec.free();
    rec.backing.tables--;
    this._emit('unmap', att.dmabuf.priv as AmdgpuBo, { importer: att.dev.name });
    this._maybeFree(rec.backing);
  }

  /** amdgpu_dma_buf_begin_cpu_access (IM-10): a read of an unpinned BO migrates it to GTT. */
  private _beginCpuAccess(buf: DmaBuf, dir: DmaDataDirection): void {
    const bo = buf.priv as AmdgpuBo;
    const reads = dir === DmaDataDirection.BIDIRECTIONAL || dir === DmaDataDirection.FROM_DEVICE;
    if (!reads || bo.pinCount > 0) return;
    this._locked(bo, () => {
      if (bo.pinCount === 0 && bo.domain !== 'GTT') this._moveTo(bo, 'GTT', 'amdgpu_dma_buf_begin_cpu_access', false, 'move');
    });
  }

  /** drm_gem_prime_mmap -> amdgpu_gem_object_mmap: a BO created NO_CPU_ACCESS (invisible VRAM) is EPERM. */
  private _mmap(buf: DmaBuf, _vma: DmaBufVma): void {
    const bo = buf.priv as AmdgpuBo;
    if (bo.flags & AMDGPU_GEM_CREATE_NO_CPU_ACCESS) {
      throw new SimError('EPERM', 'amdgpu_gem_object_mmap', `BO ${bo.id} was created with NO_CPU_ACCESS (invisible VRAM)`, 'IM-10');
    }
  }

  private _release(buf: DmaBuf): void {
    const bo = buf.priv as AmdgpuBo;
    if (bo._dmabuf === buf) bo._dmabuf = null;
    this._boPut(bo);
  }

  // ---------------------------------------------------------------------------------------------
  // Importer side (IM-11)

  /**
   * amdgpu_dma_buf_move_notify: (resv held) drop the placement (unmap the attachment's table) and
   * clear the VM's entries; when the VM lock is contended, the entries stay until the next use,
   * which re-validates anyway.
   */
  private _importMoveNotify(att: DmaBufAttachment): void {
    const bo = (att.importerPriv as { bo?: AmdgpuBo }).bo;
    const st = bo?._import;
    this.machine.kernel.checkResvHeld(att.dmabuf.resv, true, 'amdgpu_dma_buf_move_notify', 'DB-16', { dmaBufId: att.dmabuf.id, attachmentId: att.id });
    if (!bo || !st || !st.sgt) return;
    const sgt = st.sgt;
    st.sgt = null;
    att.unmap(sgt, BIDI);
    if (this.vmLockContended) st.deferredVmUpdates++;
    st.ptes = null;
    st.invalidations++;
    this._emit('invalidate', bo, { deferred: this.vmLockContended, generation: att.dmabuf.moveGeneration });
  }

  /** Re-validation before a GPU access to an imported BO: map under resv, wait KERNEL fences, rewrite PTEs. */
  private _revalidate(bo: AmdgpuBo): void {
    const st = bo._import!;
    if (st.ptes && st.sgt && !st.attach.isStale(st.sgt)) return;
    const resv = st.attach.dmabuf.resv;
    withResvLock(resv, () => {
      if (st.sgt && st.attach.isStale(st.sgt)) {
        st.attach.unmap(st.sgt, BIDI);
        st.sgt = null;
      }
      if (!st.sgt) st.sgt = st.attach.map(BIDI);
      const r = resv.waitTimeout(DmaResvUsage.KERNEL, false, MAX_SCHEDULE_TIMEOUT);
      if (r <= 0) throw new SimError(r === 0 ? 'ETIMEDOUT' : 'EINTR', 'amdgpu_bo_validate', 'waiting for the move fences failed', 'IM-11');
      st.ptes = st.sgt.dmaSegments().map((s) => ({ dmaAddress: s.dmaAddress, length: BigInt(s.length) }));
    });
    st.revalidations++;
    this._emit('revalidate', bo, { segments: st.ptes!.length });
  }

  // ---------------------------------------------------------------------------------------------
  // GPU access

  /** @internal */
  _gpuAccess(bo: AmdgpuBo, dir: 'read' | 'write', offset: number, buf: Uint8Array): Uint8Array {
    const op = dir === 'read' ? 'amdgpu read' : 'amdgpu write';
    if (bo.freed) throw new SimError('EINVAL', op, `BO ${bo.id} is freed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + buf.length > bo.size) {
      throw new SimError('EINVAL', op, `[${offset}, +${buf.length}) is outside BO ${bo.id} (${bo.size} bytes)`);
    }
    let extents: Extent[];
    if (bo._import) {
      this._revalidate(bo);
      const st = bo._import;
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
      extents = this._extents(bo._backing!.placement);
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
  // Placement, moves, fences

  private _pin(bo: AmdgpuBo, domains: number, op: string): void {
    this._own(bo, op);
    if (bo.pinCount > 0) {
      if (!(domains & domainBit(bo.domain!))) throw new SimError('EINVAL', op, `BO ${bo.id} is pinned in ${bo.domain}`, 'IM-09');
    } else {
      const vram = (domains & AMDGPU_GEM_DOMAIN_VRAM) !== 0;
      if (vram) bo.flags |= AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;
      this._validate(bo, domains, op, vram, false);
    }
    bo.pinCount++;
    this._emit('pin', bo, { domain: bo.domain, count: bo.pinCount });
  }

  private _unpin(bo: AmdgpuBo, op: string): void {
    if (bo.pinCount === 0) throw new SimError('EINVAL', op, `BO ${bo.id} is not pinned`);
    bo.pinCount--;
    this._emit('unpin', bo, { count: bo.pinCount });
  }

  /**
   * ttm_bo_validate: keep the placement when it fits `domains` (VRAM entirely visible when
   * `visible`), else move: VRAM first when allowed (evicting others), else GTT. `strict`: only
   * the first domain given (explicit migration). Resv held.
   */
  private _validate(bo: AmdgpuBo, domains: number, op: string, visible: boolean, strict: boolean): void {
    const cur = bo.domain!;
    const fits = (domains & domainBit(cur)) !== 0 && (cur !== 'VRAM' || !visible || bo.visible);
    if (fits) return;
    if (domains & AMDGPU_GEM_DOMAIN_VRAM) {
      const chunks = this._vramAlloc(bo, visible, op, (domains & AMDGPU_GEM_DOMAIN_GTT) === 0 || strict);
      if (chunks) {
        this._moveTo(bo, 'VRAM', op, visible, 'move', chunks);
        return;
      }
    }
    if (domains & AMDGPU_GEM_DOMAIN_GTT) {
      this._moveTo(bo, 'GTT', op, false, 'move');
      return;
    }
    throw new SimError('ENOMEM', op, `no room for BO ${bo.id} in VRAM`);
  }

  /**
   * The move itself (resv held): move_notify to the dma-buf's importers, new storage, a copy by
   * the GPU's DMA engine, a KERNEL fence for it, and the old storage retired until the fence
   * signals and no table points into it.
   */
  private _moveTo(bo: AmdgpuBo, to: AmdgpuDomain, op: string, visible: boolean, kind: 'move' | 'evict', chunks?: VramChunk[]): void {
    const k = this.machine.kernel;
    k.checkResvHeld(bo.resv, true, op, 'DB-16');
    const old = bo._backing!;
    let placement: AmdgpuPlacement;
    if (to === 'VRAM') {
      const c = chunks ?? this._vramAlloc(bo, visible, op, true);
      if (!c) throw new SimError('ENOMEM', op, `no room for BO ${bo.id} in VRAM`);
      placement = { domain: 'VRAM', chunks: c };
    } else {
      placement = this._gttAlloc(bo.size, op);
    }
    // amdgpu_bo_move_notify: importers drop their mappings before the bytes move.
    bo._dmabuf?.moveNotify();
    const dmaEng = this.machine.sim.dma;
    const src = this._extents(old.placement);
    const dst = this._extents(placement);
    forEachPair(src, dst, BigInt(bo.size), (s, d, n) => {
      const r = dmaEng.copy(s, d, n);
      if (!r.ok) throw new SimError('EIO', op, `SDMA copy failed: ${r.code}`);
    });
    const fence = k.createFence(this.fenceContext, ++this._seqno, { driverName: 'amdgpu', timelineName: `${this.name}.sdma0` });
    bo.resv.reserveFences(1);
    bo.resv.addFence(fence, DmaResvUsage.KERNEL);
    const pages = Math.ceil(bo.size / PAGE_SIZE);
    fence.scheduleSignal(Math.max(1, pages * this.copyTicksPerPage));
    old.retired = true;
    fence.addCallback({ func: () => { old.fenced = true; this._maybeFree(old); } });
    bo._backing = this._newBacking(placement);
    bo.moves++;
    this._touch(bo);
    this._emit(kind, bo, { from: old.placement.domain, to, seqno: fence.seqno, fence });
  }

  /** The move fence of the last move, for tests: the newest fence this device added. */
  lastMoveFence(bo: AmdgpuBo): DmaFence | undefined {
    const e = [...this.events].reverse().find((x) => x.bo === bo.id && (x.kind === 'move' || x.kind === 'evict'));
    return e?.detail.fence as DmaFence | undefined;
  }

  private _place(bo: AmdgpuBo, domains: number, op: string): AmdgpuPlacement {
    if (domains & AMDGPU_GEM_DOMAIN_VRAM) {
      const visible = (bo.flags & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED) !== 0;
      const chunks = this._vramAlloc(bo, visible, op, (domains & AMDGPU_GEM_DOMAIN_GTT) === 0);
      if (chunks) return { domain: 'VRAM', chunks };
    }
    if (domains & AMDGPU_GEM_DOMAIN_GTT) return this._gttAlloc(bo.size, op);
    throw new SimError('ENOMEM', op, `no room for ${bo.size} bytes in VRAM`);
  }

  /**
   * VRAM for `bo`: the visible window only when `visible`; else invisible first for NO_CPU_ACCESS
   * BOs, visible first otherwise. When it does not fit, unpinned BOs (LRU, not `bo`, resv free)
   * are evicted to GTT and their move fences waited for. null when it still does not fit.
   */
  private _vramAlloc(bo: AmdgpuBo, visible: boolean, op: string, evict: boolean): VramChunk[] | null {
    const size = BigInt(bo.size);
    const zones: ('visible' | 'invisible')[] = visible
      ? ['visible']
      : bo.flags & AMDGPU_GEM_CREATE_NO_CPU_ACCESS ? ['invisible', 'visible'] : ['visible', 'invisible'];
    const tryAlloc = (): VramChunk[] | null => {
      for (const z of zones) {
        const pool = this._vram[z];
        const c = pool ? takeChunks(pool, size) : null;
        if (c) return c;
      }
      return null;
    };
    let got = tryAlloc();
    if (got || !evict) return got;
    for (const victim of [...this._lru]) {
      if (victim === bo || victim.domain !== 'VRAM' || victim.pinCount > 0) continue;
      if (visible && !(victim.placement as { readonly chunks: readonly VramChunk[] }).chunks.some((c) => c.offset < this.visibleVramBytes)) continue;
      if (!victim.resv.trylock()) continue;
      let fence: DmaFence | undefined;
      try {
        this._moveTo(victim, 'GTT', op, false, 'evict');
        fence = this.lastMoveFence(victim);
      } finally {
        victim.resv.unlock();
      }
      fence?.waitTimeout(false, MAX_SCHEDULE_TIMEOUT);
      got = tryAlloc();
      if (got) return got;
    }
    return null;
  }

  private _gttAlloc(size: number, op: string): AmdgpuPlacement {
    const mem = this.machine.sim.memory;
    const pages: bigint[] = [];
    const n = Math.ceil(size / PAGE_SIZE);
    try {
      for (let i = 0; i < n; i++) pages.push(mem.allocFrames(1));
    } catch (e) {
      for (const pa of pages) mem.freeFrames(pa);
      throw e instanceof SimError ? new SimError(e.code, op, `GTT allocation failed: ${e.message}`) : e;
    }
    const gart = ScatterList.fromPages(pages);
    const r = this.dma.mapSgtable(gart, BIDI);
    if (r < 0) {
      for (const pa of pages) mem.freeFrames(pa);
      throw new SimError('ENOMEM', op, `GART mapping failed (${r})`);
    }
    return { domain: 'GTT', pages, gart };
  }

  private _clear(p: AmdgpuPlacement, size: bigint): void {
    if (p.domain !== 'VRAM') return; // fresh frames read as zeros
    for (const e of this._extents(p)) {
      const r = this.machine.sim.dma.fill({ rid: e.rid, addr: e.addr }, 0, e.len < size ? e.len : size);
      if (!r.ok) throw new SimError('EIO', 'amdgpu_fill_buffer', `clearing VRAM failed: ${r.code}`);
    }
  }

  private _extents(p: AmdgpuPlacement): Extent[] {
    const out: Extent[] = [];
    let off = 0n;
    if (p.domain === 'VRAM') {
      for (const c of p.chunks) {
        out.push({ off, len: c.length, rid: 'phys', addr: this.vramPhys(c.offset) });
        off += c.length;
      }
    } else {
      for (const s of p.gart.dmaSegments()) {
        out.push({ off, len: BigInt(s.length), rid: this.rid, addr: s.dmaAddress });
        off += BigInt(s.length);
      }
    }
    return out;
  }

  private _newBacking(placement: AmdgpuPlacement): Backing {
    return { id: this._nextBacking++, placement, tables: 0, retired: false, fenced: false, freed: false };
  }

  private _maybeFree(b: Backing): void {
    if (b.freed || !b.retired || !b.fenced || b.tables > 0) return;
    b.freed = true;
    const p = b.placement;
    if (p.domain === 'VRAM') {
      for (const c of p.chunks) (c.offset < this.visibleVramBytes ? this._vram.visible : this._vram.invisible!).free(c.offset, c.length, 'amdgpu_vram_mgr_del');
    } else {
      this.dma.unmapSg(p.gart, BIDI);
      const mem = this.machine.sim.memory;
      for (const pa of p.pages) mem.freeFrames(pa);
    }
  }

  private _boPut(bo: AmdgpuBo): void {
    bo._refs--;
    if (bo._refs > 0) return;
    bo.freed = true;
    this._bos.delete(bo);
    this._lru.delete(bo);
    this._emit('free', bo, {});
    if (bo._import) {
      const st = bo._import;
      const buf = st.attach.dmabuf;
      withResvLock(buf.resv, () => {
        if (st.sgt) st.attach.unmap(st.sgt, BIDI);
        st.sgt = null;
        st.ptes = null;
      });
      st.attach.detach();
      buf.put();
      return;
    }
    const b = bo._backing!;
    b.retired = true;
    b.fenced = bo.resv.testSignaled(DmaResvUsage.BOOKKEEP);
    if (!b.fenced) {
      for (const f of bo.resv.getFences(DmaResvUsage.BOOKKEEP)) {
        f.addCallback({ func: () => { b.fenced = bo.resv.testSignaled(DmaResvUsage.BOOKKEEP); this._maybeFree(b); } });
      }
    }
    this._maybeFree(b);
  }

  private _own(bo: AmdgpuBo, op: string): void {
    if (bo.device !== this || bo._import || bo.freed) throw new SimError('EINVAL', op, `BO ${bo.id} is not a live BO of ${this.name}`);
  }

  private _locked<T>(bo: AmdgpuBo, fn: () => T): T {
    return withResvLock(bo.resv, fn);
  }

  private _touch(bo: AmdgpuBo): void {
    this._lru.delete(bo);
    this._lru.add(bo);
  }

  private _emit(kind: AmdgpuEventKind, bo: AmdgpuBo, detail: Record<string, unknown>): void {
    this.events.push({ seq: this._eventSeq++, kind, bo: bo.id, detail });
  }
}

function domainBits(d: number | AmdgpuDomain | readonly AmdgpuDomain[]): number {
  if (typeof d === 'number') return d;
  const list = typeof d === 'string' ? [d] : d;
  let bits = 0;
  for (const x of list) {
    if (x === 'VRAM') bits |= AMDGPU_GEM_DOMAIN_VRAM;
    else if (x === 'GTT') bits |= AMDGPU_GEM_DOMAIN_GTT;
    else throw new SimError('EINVAL', 'amdgpu domain', `unknown domain ${String(x)}`);
  }
  return bits;
}

function domainBit(d: AmdgpuDomain): number {
  return d === 'VRAM' ? AMDGPU_GEM_DOMAIN_VRAM : AMDGPU_GEM_DOMAIN_GTT;
}

/**
 * VRAM for `size` bytes from one pool: one free run that holds it all (first fit), else pieces
 * taken from the lowest free runs up (amdgpu_vram_mgr may scatter a BO); null when the pool has
 * less free than that.
 */
function takeChunks(pool: GenPool, size: bigint): VramChunk[] | null {
  if (pool.avail() < size) return null;
  const whole = pool.tryAlloc(size, { op: 'amdgpu_vram_mgr_new' });
  if (whole !== null) return [{ offset: whole, length: size }];
  const out: VramChunk[] = [];
  let left = size;
  for (const ext of pool.freeExtents()) {
    if (left === 0n) break;
    const n = ext.size < left ? ext.size : left;
    pool.allocFixed(ext.start, n, 'amdgpu_vram_mgr_new');
    out.push({ offset: ext.start, length: n });
    left -= n;
  }
  return out;
}

/** Calls fn(endpoint, bufferOffset, length) for each piece of [offset, offset+length) over the extents. */
function forEachPiece(extents: Extent[], offset: bigint, length: bigint, fn: (ep: DmaEndpoint, at: bigint, n: bigint) => void): void {
  let pos = offset;
  const end = offset + length;
  for (const e of extents) {
    if (pos >= end) break;
    if (pos >= e.off + e.len) continue;
    const inE = pos - e.off;
    const n = e.off + e.len - pos < end - pos ? e.off + e.len - pos : end - pos;
    fn({ rid: e.rid, addr: e.addr + inE }, pos - offset, n);
    pos += n;
  }
  if (pos < end) throw new SimError('EIO', 'amdgpu access', `the placement ends before byte ${pos}`);
}

/** Walks two extent lists in lockstep over [0, size), calling fn for each common run. */
function forEachPair(a: Extent[], b: Extent[], size: bigint, fn: (s: DmaEndpoint, d: DmaEndpoint, n: bigint) => void): void {
  let i = 0;
  let j = 0;
  let pos = 0n;
  while (pos < size) {
    const x = a[i];
    const y = b[j];
    if (!x || !y) throw new SimError('EIO', 'amdgpu move', `a placement ends before byte ${pos}`);
    const xe = x.off + x.len;
    const ye = y.off + y.len;
    const end = [xe, ye, size].reduce((m, v) => (v < m ? v : m));
    fn({ rid: x.rid, addr: x.addr + (pos - x.off) }, { rid: y.rid, addr: y.addr + (pos - y.off) }, end - pos);
    pos = end;
    if (pos >= xe) i++;
    if (pos >= ye) j++;
  }
}

