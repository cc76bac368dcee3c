import { show } from '../util/args.js';
import { SimError, errnoName, type ErrnoCode } from '../../bindings/errors.js';
import { DmaBufAttachment } from './attachment.js';
import {
  DmaDataDirection,
  MAX_SCHEDULE_TIMEOUT,
  O_ACCMODE,
  O_NONBLOCK,
  PAGE_SHIFT,
  PAGE_SIZE,
  isValidMapDirection,
} from './constants.js';
import type { DmaBufKernel, EventIds } from './kernel.js';
import type {
  DmaBufExportInfo,
  DmaBufExporterOps,
  DmaBufImporterOps,
  DmaBufOwner,
  DmaBufVma,
  DmaDevice,
  IosysMap,
} from './ops.js';
import { DmaResvUsage, dmaResvUsageRw, type DmaResv } from './resv.js';
import { SgTable } from './sg-table.js';
import { DmaBufFile } from './file.js';
import { VmArea, type FileRefKind, type VmAreaInit } from '../process/index.js';

const U64_MAX = (1n << 64n) - 1n;

/** What holds a reference on the buffer's file (DB-05). */
export type DmaBufRefKind = FileRefKind;

/**
 * A mapping of the buffer into a (simulated) address space, holding a file reference: a process
 * mapping (Process.mmap, with its address) or a kernel importer's dma_buf_mmap (no address
 * space, start 0).
 */
export class DmaBufMmap extends VmArea {
  /** @internal Use DmaBuf.mmap or Process.mmap. */
  constructor(
    init: VmAreaInit,
    readonly dmabuf: DmaBuf,
  ) {
    super(init);
  }

  /** The part of the VMA the exporter's mmap saw. */
  get vma(): DmaBufVma {
    return { pgoff: this.pgoff, pages: this.pages, prot: this.prot, flags: this.flags };
  }

  /**
   * munmap: drops the mapping's file reference, which may release the buffer.
   * @throws {@link SimError} EINVAL when already unmapped, or when this was the buffer's last
   * reference and it is still vmapped or attached (DB-05, DB-24; nothing changes).
   */
  override munmap(): void {
    if (!this.active) {
      this.dmabuf.kernel.bug('DB-18', 'munmap', 'this mapping is already unmapped', { dmaBufId: this.dmabuf.id });
    }
    super.munmap();
  }

  /** A dma-buf mapping is a PFN mapping: pages come from the exporter's fault op, never via GUP. */
  override get pfnMap(): boolean {
    return true;
  }

  protected override fault(index: number, write: boolean, op: string): bigint {
    const fault = this.dmabuf.ops.fault;
    if (typeof fault !== 'function') return super.fault(index, write, op);
    return fault(this.dmabuf, this.pgoff + BigInt(index), write);
  }

  protected override close(): void {
    this.dmabuf.kernel.emit({ kind: 'munmap', dmaBufId: this.dmabuf.id, detail: { pgoff: this.pgoff, pages: this.pages } });
  }
}

/**
 * struct dma_buf: a buffer shared between an exporter and importers, with its reservation object
 * and reference counts. Create with `DmaBufKernel.export`.
 */
export class DmaBuf {
  /** The buffer's id in its kernel, from 1 (events and fdinfo-style reports). */
  readonly id: number;
  /** Bytes; fixed for the buffer's life (DB-03). */
  readonly size: number;
  /** dmabuf->exp_name: the exporter's name, shown in fdinfo. */
  readonly expName: string;
  /** dmabuf->ops: the exporter's struct dma_buf_ops. */
  readonly ops: DmaBufExporterOps;
  /** dmabuf->priv: the exporter's private data. */
  readonly priv: unknown;
  /** dmabuf->resv: the reservation object (lock and fences), own or shared from export info. */
  readonly resv: DmaResv;
  /** dmabuf->owner: the exporter's module, referenced from export to release (DB-03). */
  readonly owner: DmaBufOwner | undefined;
  /** f_flags of the buffer's file: O_ACCMODE | O_NONBLOCK of the export flags (DB-03). */
  readonly fileFlags: number;
  /** dmabuf->file: the one file of the buffer, shared by its fds and mappings; its references are the buffer's. */
  readonly file: DmaBufFile;

  private _name: string | undefined;
  /** Newest first, as list_add puts them, so moveNotify visits the newest attachment first. */
  private _attachments: DmaBufAttachment[] = [];
  private _vmapCount = 0;
  private _vmapPtr: IosysMap | undefined;
  private _released = false;
  private _moveGeneration = 0;

  private constructor(
    readonly kernel: DmaBufKernel,
    info: DmaBufExportInfo,
    resv: DmaResv,
  ) {
    this.id = kernel._nextDmaBufId();
    this.size = info.size;
    this.expName = info.expName ?? 'dmabuf-sim';
    this.ops = info.ops;
    this.priv = info.priv;
    this.resv = resv;
    this.owner = info.owner;
    this.fileFlags = (info.flags ?? 0) & (O_ACCMODE | O_NONBLOCK);
    this.file = new DmaBufFile(this);
  }

  /** @internal dma_buf_export (DB-01..DB-03). */
  static _export(kernel: DmaBufKernel, info: DmaBufExportInfo): DmaBuf {
    const op = 'dma_buf_export';
    if (!info || typeof info !== 'object') kernel.warnRefuse('DB-01', op, 'exp_info is missing');
    const ops = info.ops;
    const missing =
      info.priv === null || info.priv === undefined
        ? 'priv'
        : !ops
          ? 'ops'
          : typeof ops.mapDmaBuf !== 'function'
            ? 'ops.mapDmaBuf'
            : typeof ops.unmapDmaBuf !== 'function'
              ? 'ops.unmapDmaBuf'
              : typeof ops.release !== 'function'
                ? 'ops.release'
                : undefined;
    if (missing) kernel.warnRefuse('DB-01', op, `${missing} is required`);
    const hasPin = typeof ops.pin === 'function';
    const hasUnpin = typeof ops.unpin === 'function';
    if (kernel.profile.sgtCaching && ops.cacheSgtMapping && (hasPin || hasUnpin)) {
      kernel.warnRefuse('DB-02', op, 'cacheSgtMapping cannot be combined with pin/unpin');
    }
    if (hasPin !== hasUnpin) kernel.warnRefuse('DB-02', op, 'ops.pin and ops.unpin must both be present or both absent');
    if (!Number.isSafeInteger(info.size) || info.size < 0) {
      throw new SimError('EINVAL', op, `size must be a non-negative integer number of bytes, got ${show(info.size)}`, 'DB-03');
    }
    if (info.flags !== undefined && !Number.isInteger(info.flags)) {
      throw new SimError('EINVAL', op, `flags must be an integer, got ${show(info.flags)}`, 'DB-03');
    }
    kernel._checkLock(info.resv, false, op);
    if (info.owner && !info.owner.tryGet()) {
      throw new SimError('ENOENT', op, `exporter module ${info.owner.name} is going away`, 'DB-03');
    }
    try {
      kernel._alloc(op, 'DB-03');
    } catch (e) {
      info.owner?.put();
      throw e;
    }
    const buf = new DmaBuf(kernel, info, info.resv ?? kernel.createResv());
    kernel._track(buf, true);
    kernel.emit({
      kind: 'export',
      dmaBufId: buf.id,
      detail: { size: buf.size, expName: buf.expName, dynamic: buf.isDynamic(), flags: buf.fileFlags },
    });
    return buf;
  }

  /** The ids events about this object carry (for kernel.warn, resv.assertHeld...). */
  get ids(): EventIds {
    return this._ids();
  }

  /** DB-06 dma_buf_is_dynamic: the exporter has pin (and so unpin). */
  isDynamic(): boolean {
    return typeof this.ops.pin === 'function';
  }

  /** dmabuf->name as set by DMA_BUF_SET_NAME (DB-21); undefined until set. */
  get name(): string | undefined {
    return this._name;
  }

  /** True once the last reference went and the exporter's release ran: any further call is EINVAL. */
  get released(): boolean {
    return this._released;
  }

  /** Attachments, newest first. */
  get attachments(): readonly DmaBufAttachment[] {
    return [...this._attachments];
  }

  /** References on the file: kernel gets, fds (across processes) and mmaps. */
  get refs(): Readonly<Record<DmaBufRefKind, number>> {
    return this.file.refs;
  }

  /** file_count of the buffer's file. */
  get fileCount(): number {
    return this.file.count;
  }

  /** dmabuf->vmapping_counter: vmaps not yet vunmapped (DB-24). */
  get vmapCount(): number {
    return this._vmapCount;
  }

  /** Incremented by each moveNotify; tables mapped before it are stale. */
  get moveGeneration(): number {
    return this._moveGeneration;
  }

  /**
   * get_dma_buf: one more kernel reference.
   * @throws {@link SimError} EINVAL when the buffer was released (use after free).
   */
  get(): this {
    this._assertAlive('get_dma_buf');
    this.file.get('kernel');
    this.kernel.emit({ kind: 'get', dmaBufId: this.id, detail: { count: this.fileCount } });
    return this;
  }

  /**
   * dma_buf_put: drops a kernel reference; the last reference of any kind runs release (DB-05).
   * Call with resv NOT held (DB-25).
   * @throws {@link SimError} EINVAL when the buffer was released, when no kernel reference is
   * held (the count would underflow), when the last reference would go while vmapped or attached,
   * or (strict mode) with resv held. Nothing changes then.
   */
  put(): void {
    const op = 'dma_buf_put';
    this._assertAlive(op);
    this.kernel._checkLock(this.resv, false, op, this._ids());
    if (this.file.refs.kernel === 0) {
      this.kernel.bug('DB-05', op, 'no kernel reference is held (the remaining ones belong to fds or mmaps)', this._ids());
    }
    this.file.put('kernel', op);
  }

  /**
   * dma_buf_attach: a static attachment (struct dma_buf_attachment without importer_ops), never
   * peer2peer (DB-07). Call with resv NOT held (DB-25, every profile). Under profiles with
   * attach-time mapping (DB-09) a dynamic exporter is pinned and mapped here.
   * @throws {@link SimError} EINVAL when the buffer was released, `dev` is null, or (strict mode)
   * resv is held; ENOMEM for an injected allocation failure; the errors of ops.attach (EBUSY...)
   * and, with attach-time mapping, of pin and map_dma_buf (the attachment is then detached).
   */
  attach(dev: DmaDevice): DmaBufAttachment {
    return this._attach(dev, null, undefined, 'dma_buf_attach');
  }

  /**
   * dma_buf_dynamic_attach (DB-07, DB-09): an attachment with importer_ops, so a dynamic one
   * (DB-06); `importerOps.allowPeer2Peer` sets its initial peer2peer. Call with resv NOT held.
   * Under profiles with attach-time mapping a static exporter is mapped here.
   * @throws {@link SimError} as {@link DmaBuf.attach}, and EINVAL when importerOps has no
   * moveNotify.
   */
  dynamicAttach(dev: DmaDevice, importerOps: DmaBufImporterOps, importerPriv?: unknown): DmaBufAttachment {
    return this._attach(dev, importerOps ?? null, importerPriv, 'dma_buf_dynamic_attach');
  }

  private _attach(
    dev: DmaDevice,
    importerOps: DmaBufImporterOps | null,
    importerPriv: unknown,
    op: string,
  ): DmaBufAttachment {
    const k = this.kernel;
    this._assertAlive(op);
    if (!dev) k.warnRefuse('DB-07', op, 'dev is null', this._ids());
    if (typeof dev !== 'object' || typeof (dev as { name?: unknown }).name !== 'string') {
      throw new SimError('EINVAL', op, `dev must be an importer device ({ name, pci?, dma? }), got ${show(dev)}`, 'DB-07');
    }
    if (importerOps !== null && (typeof importerOps !== 'object')) {
      throw new SimError('EINVAL', op, `importer_ops must be an object, got ${show(importerOps)}`, 'DB-07');
    }
    if (importerOps && typeof importerOps.moveNotify !== 'function') {
      k.warnRefuse('DB-07', op, 'importer_ops.moveNotify is required', this._ids());
    }
    k._checkLock(this.resv, false, op, this._ids(), true);
    k._alloc(op, 'DB-07');
    const att = new DmaBufAttachment(this, dev, importerOps, importerPriv, k._nextAttachmentId());
    this.ops.attach?.(this, att);
    k._withResvLock(this.resv, () => this._attachments.unshift(att));
    k.emit({
      kind: 'attach',
      ...att._ids(),
      detail: { device: dev.name, dynamic: att.isDynamic(), peer2peer: att.peer2peer },
    });
    if (k.profile.attachTimeMapping && att.isDynamic() !== this.isDynamic()) {
      try {
        k._withResvLock(this.resv, () => att._mapAtAttach());
      } catch (e) {
        this.detach(att);
        throw e;
      }
    }
    return att;
  }

  /**
   * dma_buf_detach (DB-14): after every mapping is unmapped. Undoes a cached mapping (and the pin
   * taken for it), unlists the attachment, then calls ops.detach. Detaching an attachment of
   * another buffer WARNs and does nothing (refused with EINVAL here); detaching twice, or with
   * tables or pins still held, is refused (emulator choice: the kernel would leak or use freed
   * memory). Call with resv NOT held (DB-25, every profile).
   * @throws {@link SimError} EINVAL when `att` is null, belongs to another buffer, is already
   * detached, still has mapped tables or pins, or (strict mode) resv is held.
   */
  detach(att: DmaBufAttachment): void {
    const op = 'dma_buf_detach';
    const k = this.kernel;
    if (!att) k.warnRefuse('DB-14', op, 'attach is null', this._ids());
    if (att.dmabuf !== this) k.warnRefuse('DB-14', op, `attachment ${att.id} belongs to dma-buf ${att.dmabuf.id}`, this._ids());
    if (att.detached) k.bug('DB-14', op, `attachment ${att.id} is already detached`, att._ids());
    k._checkLock(this.resv, false, op, att._ids(), true);
    if (att.mappedTables.length > 0) {
      k.bug('DB-14', op, `attachment ${att.id} still has ${att.mappedTables.length} mapped table(s): unmap them first`, att._ids());
    }
    if (att.pinCount > 0) k.bug('DB-15', op, `attachment ${att.id} is still pinned ${att.pinCount} time(s)`, att._ids());
    k._withResvLock(this.resv, () => {
      att._dropCache();
      this._attachments.splice(this._attachments.indexOf(att), 1);
    });
    att._markDetached();
    this.ops.detach?.(this, att);
    k.emit({ kind: 'detach', ...att._ids(), detail: { device: att.dev.name } });
  }

  /**
   * dma_buf_move_notify (DB-16): the exporter, holding resv, tells every dynamic importer that the
   * backing store moves. Static attachments are skipped. Existing tables become stale.
   * @throws {@link SimError} EINVAL when the buffer was released, or (strict mode) resv is not
   * held (DB-16); the first error an importer's moveNotify threw, after every importer was told.
   */
  moveNotify(): void {
    const op = 'dma_buf_move_notify';
    this._assertAlive(op);
    this.kernel.checkResvHeld(this.resv, true, op, 'DB-16', this._ids());
    this._moveGeneration++;
    // The callbacks return nothing in the kernel: one importer that throws (a bug) must not keep
    // the others from hearing of the move. Its error reaches the exporter after the last one.
    let failed: unknown;
    for (const att of [...this._attachments]) {
      if (!att.importerOps) continue;
      this.kernel.emit({ kind: 'move_notify', ...att._ids(), detail: { generation: this._moveGeneration, mapped: att.mappedTables.length } });
      try {
        att.importerOps.moveNotify(att);
      } catch (e) {
        failed ??= e;
      }
    }
    if (failed !== undefined) throw failed;
  }

  /**
   * dma_buf_vmap (DB-24), resv held: the exporter's vmap runs on the first call only; later
   * calls return the same address and count up.
   * @throws {@link SimError} EINVAL when the buffer was released, the exporter has no vmap, or
   * (strict mode) resv is not held; the errors of ops.vmap.
   */
  vmap(): IosysMap {
    const op = 'dma_buf_vmap';
    this._assertAlive(op);
    this.kernel._checkLock(this.resv, true, op, this._ids());
    if (typeof this.ops.vmap !== 'function') throw new SimError('EINVAL', op, 'the exporter has no vmap op', 'DB-24');
    if (this._vmapCount > 0 && this._vmapPtr) {
      this._vmapCount++;
      this.kernel.emit({ kind: 'vmap', dmaBufId: this.id, detail: { count: this._vmapCount } });
      return this._vmapPtr;
    }
    const map = this.ops.vmap(this);
    this._vmapPtr = map;
    this._vmapCount = 1;
    this.kernel.emit({ kind: 'vmap', dmaBufId: this.id, detail: { count: 1, vaddr: map.vaddr } });
    return map;
  }

  /**
   * dma_buf_vmap_unlocked: takes resv itself; the caller must not hold it.
   * @throws {@link SimError} as {@link DmaBuf.vmap}; EINVAL (strict mode) when resv is held.
   */
  vmapUnlocked(): IosysMap {
    this.kernel._checkLock(this.resv, false, 'dma_buf_vmap_unlocked', this._ids());
    return this.kernel._withResvLock(this.resv, () => this.vmap());
  }

  /**
   * dma_buf_vunmap (DB-24), resv held: the exporter's vunmap runs on the last call only.
   * @throws {@link SimError} EINVAL when the buffer was released, is not vmapped, `map` is not
   * the address vmap returned (a kernel BUG), or (strict mode) resv is not held.
   */
  vunmap(map: IosysMap): void {
    const op = 'dma_buf_vunmap';
    this._assertAlive(op);
    this.kernel._checkLock(this.resv, true, op, this._ids());
    if (this._vmapCount === 0 || !this._vmapPtr) this.kernel.bug('DB-24', op, 'the buffer is not vmapped', this._ids());
    if (!map || map.vaddr !== this._vmapPtr.vaddr || map.isIomem !== this._vmapPtr.isIomem) {
      this.kernel.bug('DB-24', op, 'map is not the address vmap returned', this._ids());
    }
    this._vmapCount--;
    if (this._vmapCount === 0) {
      const ptr = this._vmapPtr;
      this._vmapPtr = undefined;
      this.ops.vunmap?.(this, ptr);
    }
    this.kernel.emit({ kind: 'vunmap', dmaBufId: this.id, detail: { count: this._vmapCount } });
  }

  /**
   * dma_buf_vunmap_unlocked: takes resv itself; the caller must not hold it.
   * @throws {@link SimError} as {@link DmaBuf.vunmap}; EINVAL (strict mode) when resv is held.
   */
  vunmapUnlocked(map: IosysMap): void {
    this.kernel._checkLock(this.resv, false, 'dma_buf_vunmap_unlocked', this._ids());
    this.kernel._withResvLock(this.resv, () => this.vunmap(map));
  }

  /**
   * dma_buf_begin_cpu_access (DB-20), resv not held: the exporter's hook, then an interruptible
   * wait on the fences of dma_resv_usage_rw(write) (a write also waits for readers).
   * @throws {@link SimError} EINVAL when the buffer was released, `dir` is not a mapping
   * direction, or (strict mode) resv is held; the hook's error; ERESTARTSYS when a signal is
   * pending during the wait.
   */
  beginCpuAccess(dir: DmaDataDirection): void {
    const op = 'dma_buf_begin_cpu_access';
    this._assertAlive(op);
    if (!isValidMapDirection(dir)) throw new SimError('EINVAL', op, `invalid direction ${show(dir)}`, 'DB-20');
    this.kernel._checkLock(this.resv, false, op, this._ids());
    this.ops.beginCpuAccess?.(this, dir);
    const write = dir === DmaDataDirection.BIDIRECTIONAL || dir === DmaDataDirection.TO_DEVICE;
    const r = this.resv.waitTimeout(dmaResvUsageRw(write), true, MAX_SCHEDULE_TIMEOUT);
    if (r < 0) throw new SimError(errnoName(r) as ErrnoCode, op, 'interrupted while waiting for fences', 'DB-20');
    this.kernel.emit({ kind: 'begin_cpu_access', dmaBufId: this.id, detail: { dir } });
  }

  /**
   * dma_buf_end_cpu_access (DB-20), resv not held: the exporter's hook, if any.
   * @throws {@link SimError} EINVAL when the buffer was released, `dir` is not a mapping
   * direction, or (strict mode) resv is held; the hook's error.
   */
  endCpuAccess(dir: DmaDataDirection): void {
    const op = 'dma_buf_end_cpu_access';
    this._assertAlive(op);
    if (!isValidMapDirection(dir)) throw new SimError('EINVAL', op, `invalid direction ${show(dir)}`, 'DB-20');
    this.kernel._checkLock(this.resv, false, op, this._ids());
    this.ops.endCpuAccess?.(this, dir);
    this.kernel.emit({ kind: 'end_cpu_access', dmaBufId: this.id, detail: { dir } });
  }

  /**
   * dma_buf_mmap (DB-18): a kernel importer maps `pages` pages at page offset `pgoff` into a vma.
   * The mapping holds a file reference until munmap. Call with resv NOT held.
   * @throws {@link SimError} EINVAL when the buffer was released, the vma covers no page, the
   * exporter has no mmap, the range passes the end (size >> PAGE_SHIFT whole pages), or (strict
   * mode) resv is held; EOVERFLOW when pgoff + pages wraps; the errors of ops.mmap.
   */
  mmap(vma: Omit<DmaBufVma, 'pgoff'>, pgoff: bigint): DmaBufMmap {
    const op = 'dma_buf_mmap';
    this._assertAlive(op);
    if (!vma || !Number.isSafeInteger(vma.pages) || vma.pages <= 0) {
      this.kernel.warnRefuse('DB-18', op, 'vma must cover at least one page', this._ids());
    }
    if (typeof this.ops.mmap !== 'function') throw new SimError('EINVAL', op, 'the exporter has no mmap op', 'DB-18');
    if (typeof pgoff !== 'bigint') throw new SimError('EINVAL', op, `pgoff must be a bigint, got ${show(pgoff)}`, 'DB-18');
    if (!Number.isSafeInteger(vma.prot) || !Number.isSafeInteger(vma.flags)) throw new SimError('EINVAL', op, 'vma.prot and vma.flags must be integers', 'DB-18');
    if (pgoff < 0n || pgoff + BigInt(vma.pages) > U64_MAX) {
      throw new SimError('EOVERFLOW', op, `pgoff ${show(pgoff)} + ${vma.pages} pages overflows`, 'DB-18');
    }
    const m = this._mmap({ mm: null, start: 0n, pgoff, pages: vma.pages, prot: vma.prot, flags: vma.flags, file: this.file }, op);
    // vma_set_file: the mapping holds a reference on the buffer's file.
    this.file.get('mmap');
    return m;
  }

  /**
   * @internal dma_buf_mmap_internal: the range check and the exporter's mmap. The caller takes
   * the mapping's file reference.
   */
  _mmap(init: VmAreaInit, op: string): DmaBufMmap {
    if (typeof this.ops.mmap !== 'function') throw new SimError('EINVAL', op, 'the exporter has no mmap op', 'DB-18');
    const pages = BigInt(this.size) >> BigInt(PAGE_SHIFT);
    if (init.pgoff + BigInt(init.pages) > pages) {
      throw new SimError('EINVAL', op, `pages ${init.pgoff}..${init.pgoff + BigInt(init.pages)} exceed the buffer's ${pages} whole pages`, 'DB-18');
    }
    this.kernel._checkLock(this.resv, false, op, this._ids());
    this.ops.mmap(this, { pgoff: init.pgoff, pages: init.pages, prot: init.prot, flags: init.flags });
    this.kernel.emit({ kind: 'mmap', dmaBufId: this.id, detail: { pgoff: init.pgoff, pages: init.pages, prot: init.prot } });
    return new DmaBufMmap(init, this);
  }

  /** DB-26: the dma-buf lines of /proc/<pid>/fdinfo/<fd>. count excludes the reader's own reference. */
  fdinfoLines(): string {
    let s = `size:\t${this.size}\ncount:\t${this.fileCount}\nexp_name:\t${this.expName}\n`;
    if (this._name !== undefined) s += `name:\t${this._name}\n`;
    return s;
  }

  /** @internal The SET_NAME ioctl body (DB-21), after the user string was copied. */
  _setName(name: string, op: string): void {
    if (this.kernel.profile.setNameBusyWhenAttached && this._attachments.length > 0) {
      throw new SimError('EBUSY', op, `dma-buf ${this.id} has ${this._attachments.length} attachment(s)`, 'DB-21');
    }
    this._name = name;
    this.kernel.emit({ kind: 'set_name', dmaBufId: this.id, detail: { name } });
  }

  /** @internal dma_buf_fd's checks before the caller's kernel reference becomes the fd's (DB-04). */
  _beforeFdInstall(op: string): void {
    this._assertAlive(op);
    if (this.file.refs.kernel === 0) {
      this.kernel.bug('DB-04', op, 'no kernel reference to hand over to the fd: take one with get() first', this._ids());
    }
  }

  /**
   * @internal Checks a reference drop before the file takes it (DB-05); the last drop then runs
   * release exactly once. Dropping it while vmapped (a kernel BUG) or while attachments remain
   * (WARN, then use after free) is refused with EINVAL, before anything changes.
   */
  _beforePut(kind: DmaBufRefKind, op: string): void {
    const refs = this.file.refs;
    if (refs[kind] === 0) this.kernel.bug('DB-05', op, `no ${kind} reference is held`, this._ids());
    const count = this.file.count;
    if (count === 1) {
      if (this._vmapCount > 0) this.kernel.bug('DB-24', op, 'the last reference would go while the buffer is vmapped', this._ids());
      if (this._attachments.length > 0) {
        this.kernel.bug('DB-05', op, `the last reference would go while ${this._attachments.length} attachment(s) remain`, this._ids());
      }
    }
    this.kernel.emit({ kind: 'put', dmaBufId: this.id, detail: { ref: kind, count: count - 1 } });
  }

  /** @internal The file's release (dma_buf_file_release): the exporter's release, once. */
  _release(): void {
    this._released = true;
    this.kernel._track(this, false);
    this.kernel.emit({ kind: 'release', dmaBufId: this.id, detail: { expName: this.expName } });
    try {
      this.ops.release(this);
    } finally {
      this.owner?.put();
    }
  }

  /** @internal */
  _assertAlive(op: string): void {
    if (this._released) this.kernel.bug('DB-05', op, `dma-buf ${this.id} was released (use after free)`, this._ids());
  }

  /** @internal */
  _ids(): EventIds {
    return { dmaBufId: this.id };
  }

  /** @internal __map_dma_buf: the exporter's map, then (6.x, static importers) the KERNEL-fence wait. */
  _mapDmaBuf(att: DmaBufAttachment, dir: DmaDataDirection, op: string): SgTable {
    const k = this.kernel;
    const sgt = this.ops.mapDmaBuf(att, dir);
    if (sgt === null || sgt === undefined) throw new SimError('ENOMEM', op, 'map_dma_buf returned no table', 'DB-11');
    if (!(sgt instanceof SgTable)) k.bug('DB-12', op, 'map_dma_buf must return an SgTable', att._ids());
    if (k._liveTables.has(sgt)) k.warnRefuse('DB-12', op, 'map_dma_buf returned a table that is still mapped', att._ids());
    if (!att.isDynamic() && k.profile.mapWaitsKernelFences) {
      const r = this.resv.waitTimeout(DmaResvUsage.KERNEL, true, MAX_SCHEDULE_TIMEOUT);
      if (r < 0) {
        this.ops.unmapDmaBuf(att, sgt, dir);
        throw new SimError(errnoName(r) as ErrnoCode, op, 'interrupted while waiting for KERNEL fences', 'DB-11');
      }
    }
    if (k.dmaApiDebug) {
      const page = BigInt(PAGE_SIZE);
      sgt.dmaSegments().forEach((e, i) => {
        if (e.dmaAddress % page !== 0n || BigInt(e.length) % page !== 0n) {
          k.emit({ kind: 'debug', rule: 'DB-12', ...att._ids(), detail: { op, message: `entry ${i} is not page-aligned` } });
        }
      });
    }
    k._liveTables.add(sgt);
    return sgt;
  }

  /** @internal */
  _unmapDmaBuf(att: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    this.kernel._liveTables.delete(sgt);
    this.ops.unmapDmaBuf(att, sgt, dir);
  }
}
