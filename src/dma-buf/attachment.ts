import { show } from '../util/args.js';
import { SimError } from '../../bindings/errors.js';
import { DmaDataDirection, isValidMapDirection } from './constants.js';
import type { DmaBuf } from './dma-buf.js';
import type { DmaBufKernel, EventIds } from './kernel.js';
import type { DmaBufImporterOps, DmaDevice } from './ops.js';
import { dmaResvUsageRw } from './resv.js';
import type { SgTable } from './sg-table.js';

interface MappingRecord {
  readonly dir: DmaDataDirection;
  /** The framework pinned the exporter for this mapping (DB-11 pin-on-map). */
  readonly pinned: boolean;
  /** moveNotify generation at map time. */
  readonly generation: number;
}

interface CachedMapping extends MappingRecord {
  readonly sgt: SgTable;
}

/**
 * struct dma_buf_attachment: one device's use of a buffer. Create with `DmaBuf.attach` or
 * `DmaBuf.dynamicAttach`.
 */
export class DmaBufAttachment {
  /**
   * The device can reach P2P memory without struct pages (DB-07). Starts as the importer's
   * allowPeer2Peer (false for static importers); the exporter's attach op may clear it.
   */
  peer2peer: boolean;
  /** The exporter's per-attachment data (attach->priv). */
  priv: unknown;

  private readonly _mappings = new Map<SgTable, MappingRecord>();
  private _cached: CachedMapping | undefined;
  private _pins = 0;
  private _detached = false;

  /** @internal Use DmaBuf.attach / dynamicAttach. */
  constructor(
    readonly dmabuf: DmaBuf,
    readonly dev: DmaDevice,
    readonly importerOps: DmaBufImporterOps | null,
    readonly importerPriv: unknown,
    readonly id: number,
  ) {
    this.peer2peer = importerOps ? Boolean(importerOps.allowPeer2Peer) : false;
  }

  /** The ids events about this object carry (for kernel.warn, resv.assertHeld...). */
  get ids(): EventIds {
    return this._ids();
  }

  /** DB-06 dma_buf_attachment_is_dynamic: made with importer ops. */
  isDynamic(): boolean {
    return this.importerOps !== null;
  }

  /** True after dma_buf_detach: the attachment must not be used again (EINVAL). */
  get detached(): boolean {
    return this._detached;
  }

  /** Tables the importer holds and must unmap (a cached table is not one of them). */
  get mappedTables(): SgTable[] {
    return [...this._mappings.keys()];
  }

  /** The table cached in attach->sgt (DB-09 attach-time mapping or DB-10 caching), if any. */
  get cachedTable(): SgTable | undefined {
    return this._cached?.sgt;
  }

  /** dma_buf_pin calls not yet matched by dma_buf_unpin. */
  get pinCount(): number {
    return this._pins;
  }

  /** True when `sgt` was mapped before the latest moveNotify (DB-16): usable but stale. */
  isStale(sgt: SgTable): boolean {
    const rec = this._mappings.get(sgt) ?? (this._cached?.sgt === sgt ? this._cached : undefined);
    return rec !== undefined && rec.generation < this.dmabuf.moveGeneration;
  }

  /**
   * dma_buf_map_attachment (DB-09..DB-12). Locking per DB-25 (6.x: always held; 5.15: held for
   * dynamic attachments and dynamic exporters). Returns the cached table when there is one (EBUSY
   * for another direction unless it is BIDIRECTIONAL). Pins a dynamic exporter first when the
   * importer cannot take moves.
   * @throws {@link SimError} EINVAL when the attachment is detached or its buffer released, `dir`
   * is not a mapping direction, map_dma_buf returns something that is not a fresh SgTable
   * (DB-12), or (strict mode) resv is not held where DB-25 requires it; EBUSY for a cached table
   * of another direction (DB-10); ENOMEM when map_dma_buf returns null; ERESTARTSYS when a static
   * importer's KERNEL-fence wait is interrupted (6.x); the exporter's pin and map errors (EPERM
   * for P2P-only memory without peer2peer...). Nothing stays pinned or mapped on failure.
   */
  map(dir: DmaDataDirection): SgTable {
    const op = 'dma_buf_map_attachment';
    const buf = this.dmabuf;
    const k = buf.kernel;
    this._assertUsable(op);
    if (!isValidMapDirection(dir)) {
      throw new SimError('EINVAL', op, `direction must be BIDIRECTIONAL, TO_DEVICE or FROM_DEVICE, got ${show(dir)}`, 'DB-11');
    }
    this._checkMapLock(op, this._cached !== undefined);
    if (this._cached) {
      if (this._cached.dir !== dir && this._cached.dir !== DmaDataDirection.BIDIRECTIONAL) {
        throw new SimError('EBUSY', op, `the cached mapping has direction ${this._cached.dir}, not ${show(dir)}`, 'DB-10');
      }
      k.emit({ kind: 'map', ...this._ids(), detail: { dir, cached: true, nents: this._cached.sgt.nents } });
      return this._cached.sgt;
    }
    const pinOnMap = buf.isDynamic() && (!this.isDynamic() || !k.configMoveNotify);
    if (pinOnMap) buf.ops.pin!(this);
    let sgt: SgTable;
    try {
      sgt = buf._mapDmaBuf(this, dir, op);
    } catch (e) {
      if (pinOnMap) buf.ops.unpin!(this);
      throw e;
    }
    const rec = { dir, pinned: pinOnMap, generation: buf.moveGeneration };
    if (k.profile.sgtCaching && buf.ops.cacheSgtMapping) this._cached = { ...rec, sgt };
    else this._mappings.set(sgt, rec);
    k.emit({
      kind: 'map',
      ...this._ids(),
      detail: { dir, cached: false, nents: sgt.nents, pinned: pinOnMap, peer2peer: this.peer2peer },
    });
    return sgt;
  }

  /**
   * dma_buf_map_attachment_unlocked: takes resv itself; the caller must not hold it.
   * @throws {@link SimError} as {@link DmaBufAttachment.map}; EINVAL (strict mode) when resv is held.
   */
  mapUnlocked(dir: DmaDataDirection): SgTable {
    const k = this.dmabuf.kernel;
    k._checkLock(this.dmabuf.resv, false, 'dma_buf_map_attachment_unlocked', this._ids());
    return k._withResvLock(this.dmabuf.resv, () => this.map(dir));
  }

  /**
   * dma_buf_unmap_attachment (DB-13). Same lock rule as map. Unmapping the cached table is a
   * no-op (the real unmap is at detach). Unmapping a table this attachment does not hold (never
   * mapped, or already unmapped) or with another direction is undefined in the kernel and refused
   * here (emulator choice). Unpins when the map pinned. A null table is a WARN and a no-op.
   * @throws {@link SimError} EINVAL when the attachment is detached or its buffer released, the
   * table is not held by this attachment or was mapped with another direction, or (strict mode)
   * the lock state is wrong or `sgt` is null.
   */
  unmap(sgt: SgTable, dir: DmaDataDirection): void {
    const op = 'dma_buf_unmap_attachment';
    const k: DmaBufKernel = this.dmabuf.kernel;
    this._assertUsable(op);
    if (!sgt) {
      k.warn('DB-13', op, 'sg_table is null', this._ids());
      return;
    }
    const cached = this._cached?.sgt === sgt;
    this._checkMapLock(op, cached);
    if (cached) {
      k.emit({ kind: 'unmap', ...this._ids(), detail: { dir, cached: true } });
      return;
    }
    const rec = this._mappings.get(sgt);
    if (!rec) k.bug('DB-13', op, 'this table is not mapped by this attachment (never mapped, or unmapped already)', this._ids());
    if (rec.dir !== dir) k.bug('DB-13', op, `the table was mapped with direction ${rec.dir}, not ${show(dir)}`, this._ids());
    this._mappings.delete(sgt);
    this.dmabuf._unmapDmaBuf(this, sgt, dir);
    if (rec.pinned) this.dmabuf.ops.unpin!(this);
    k.emit({ kind: 'unmap', ...this._ids(), detail: { dir, cached: false, unpinned: rec.pinned } });
  }

  /**
   * dma_buf_unmap_attachment_unlocked: takes resv itself; the caller must not hold it.
   * @throws {@link SimError} as {@link DmaBufAttachment.unmap}; EINVAL (strict mode) when resv is held.
   */
  unmapUnlocked(sgt: SgTable, dir: DmaDataDirection): void {
    const k = this.dmabuf.kernel;
    k._checkLock(this.dmabuf.resv, false, 'dma_buf_unmap_attachment_unlocked', this._ids());
    k._withResvLock(this.dmabuf.resv, () => this.unmap(sgt, dir));
  }

  /**
   * dma_buf_pin (DB-15): resv held; meant for dynamic attachments (a WARN otherwise). Without an
   * exporter pin op it is a successful no-op.
   * @throws {@link SimError} EINVAL when the attachment is detached or its buffer released, or
   * (strict mode) it is static or resv is not held; the exporter's pin error (ENOMEM, EBUSY...),
   * with nothing pinned.
   */
  pin(): void {
    const op = 'dma_buf_pin';
    const buf = this.dmabuf;
    this._assertUsable(op);
    if (!this.isDynamic()) buf.kernel.warn('DB-15', op, 'pin is only for dynamic attachments', this._ids());
    buf.kernel.checkResvHeld(buf.resv, true, op, 'DB-25', this._ids());
    if (!buf.ops.pin) {
      buf.kernel.emit({ kind: 'pin', ...this._ids(), detail: { noop: true } });
      return;
    }
    buf.ops.pin(this);
    this._pins++;
    buf.kernel.emit({ kind: 'pin', ...this._ids(), detail: { noop: false, count: this._pins } });
  }

  /**
   * dma_buf_unpin (DB-15): as pin. An unpin without a matching pin would unbalance the exporter:
   * refused (emulator choice).
   * @throws {@link SimError} EINVAL when the attachment is detached or its buffer released, there
   * is no matching pin, or (strict mode) it is static or resv is not held.
   */
  unpin(): void {
    const op = 'dma_buf_unpin';
    const buf = this.dmabuf;
    this._assertUsable(op);
    if (!this.isDynamic()) buf.kernel.warn('DB-15', op, 'unpin is only for dynamic attachments', this._ids());
    buf.kernel.checkResvHeld(buf.resv, true, op, 'DB-25', this._ids());
    if (!buf.ops.unpin) {
      buf.kernel.emit({ kind: 'unpin', ...this._ids(), detail: { noop: true } });
      return;
    }
    if (this._pins === 0) buf.kernel.bug('DB-15', op, 'unpin without a matching pin', this._ids());
    buf.ops.unpin(this);
    this._pins--;
    buf.kernel.emit({ kind: 'unpin', ...this._ids(), detail: { noop: false, count: this._pins } });
  }

  /**
   * dma_buf_detach(this.dmabuf, this). Call with resv NOT held.
   * @throws {@link SimError} as {@link DmaBuf.detach}.
   */
  detach(): void {
    this.dmabuf.detach(this);
  }

  /**
   * Checks a device access through `sgt` against the dynamic-importer rules: the table must be
   * mapped by this attachment, not stale after a moveNotify (DB-16), and every fence of
   * dma_resv_usage_rw(write) must have signaled (DB-17). Violations are WARN events (errors in
   * strict mode). Not a kernel function: what an importer's device does between map and unmap.
   * @throws {@link SimError} EINVAL when the attachment is detached or its buffer released, the
   * table is not held by this attachment, or (strict mode) the access breaks DB-16/DB-17.
   */
  checkDeviceAccess(sgt: SgTable, write: boolean): void {
    const op = 'device_access';
    const k = this.dmabuf.kernel;
    this._assertUsable(op);
    if (!this._mappings.has(sgt) && this._cached?.sgt !== sgt) {
      k.bug('DB-13', op, 'the table is not mapped by this attachment', this._ids());
    }
    if (!this.isDynamic()) return;
    if (this.isStale(sgt)) k.warn('DB-16', op, 'access through a table mapped before the last moveNotify', this._ids());
    if (!this.dmabuf.resv.testSignaled(dmaResvUsageRw(write))) {
      k.warn('DB-17', op, `access before the ${write ? 'READ' : 'WRITE'}-usage fences signaled`, this._ids());
    }
  }

  /** @internal DB-09: map BIDIRECTIONAL at attach time, pinning a dynamic exporter (resv held). */
  _mapAtAttach(): void {
    const buf = this.dmabuf;
    const op = 'dma_buf_dynamic_attach';
    const pinned = buf.isDynamic();
    if (pinned) buf.ops.pin!(this);
    let sgt: SgTable;
    try {
      sgt = buf._mapDmaBuf(this, DmaDataDirection.BIDIRECTIONAL, op);
    } catch (e) {
      if (pinned) buf.ops.unpin!(this);
      throw e;
    }
    this._cached = { sgt, dir: DmaDataDirection.BIDIRECTIONAL, pinned, generation: buf.moveGeneration };
    buf.kernel.emit({
      kind: 'map',
      ...this._ids(),
      detail: { dir: DmaDataDirection.BIDIRECTIONAL, cached: true, atAttach: true, nents: sgt.nents, pinned },
    });
  }

  /** @internal Detach's real unmap of the cached table (resv held). */
  _dropCache(): void {
    const c = this._cached;
    if (!c) return;
    this._cached = undefined;
    this.dmabuf._unmapDmaBuf(this, c.sgt, c.dir);
    if (c.pinned) this.dmabuf.ops.unpin!(this);
    this.dmabuf.kernel.emit({ kind: 'unmap', ...this._ids(), detail: { dir: c.dir, cached: true, atDetach: true } });
  }

  /** @internal */
  _markDetached(): void {
    this._detached = true;
  }

  /** @internal */
  _ids(): EventIds {
    return { dmaBufId: this.dmabuf.id, attachmentId: this.id };
  }

  private _assertUsable(op: string): void {
    if (this._detached) this.dmabuf.kernel.bug('DB-14', op, `attachment ${this.id} is detached (use after free)`, this._ids());
    this.dmabuf._assertAlive(op);
  }

  /** DB-11/DB-25 lock rule of map and unmap. */
  private _checkMapLock(op: string, cached: boolean): void {
    const buf = this.dmabuf;
    const k = buf.kernel;
    const legacy = k.profile.lockConvention === 'legacy';
    const needed = !legacy || this.isDynamic() || (!cached && buf.isDynamic());
    if (needed) k.checkResvHeld(buf.resv, true, op, 'DB-25', this._ids());
  }
}
