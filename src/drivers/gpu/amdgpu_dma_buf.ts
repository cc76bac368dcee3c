/**
 * amdgpu and dma-buf (amdgpu_dma_buf.c): PRIME export of a BO as a dynamic exporter (IM-07..IM-10)
 * and import of another exporter's dma-buf as a dynamic importer with allow_peer2peer that
 * invalidates its GPU page-table entries on move_notify and re-validates at the next use (IM-11).
 * VRAM tables come from the driver kit's P2P mapping helper; GTT tables from dma_map_sgtable.
 */
import {
  DmaDataDirection,
  dmaBufFreeSgt,
  dmaBufPhysVecToSgt,
  DmaResvUsage,
  importerPciFunction,
  MAX_SCHEDULE_TIMEOUT,
  O_RDWR,
  requireImporterDmaDevice,
  ScatterList,
  SgTable,
  SimError,
    type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type DmaBufVma,
  checkImporterHost,
} from '../../index.js';
import type { AmdgpuDevice } from './amdgpu.js';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_CREATE_NO_CPU_ACCESS,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
  AmdgpuBo,
  type AmdgpuBacking,
} from './amdgpu_object.js';

const BIDI = DmaDataDirection.BIDIRECTIONAL;
/** AMDGPU_MAX_SG_SEGMENT_SIZE: VRAM sg entries are cut at 2 GiB. */
export const AMDGPU_MAX_SG_SEGMENT_SIZE = 2n << 30n;

/** What a map keeps per table. */
interface TableRecord {
  readonly backing: AmdgpuBacking;
  readonly free: () => void;
}

/** @internal The device's PRIME side (one per AmdgpuDevice). */
export class AmdgpuDmaBuf {
  private readonly _tables = new Map<SgTable, TableRecord>();
  private _opsCache: DmaBufExporterOps | undefined;

  constructor(private readonly dev: AmdgpuDevice) {}

  /** Exporter tables handed out and not yet unmapped. */
  get liveTables(): number {
    return this._tables.size;
  }

  /**
   * amdgpu_gem_prime_export: the BO's dma-buf (the same one while it is alive), sharing the BO's
   * reservation object. The caller gets a kernel reference.
   */
  exportDmabuf(bo: AmdgpuBo, flags = O_RDWR): DmaBuf {
    const op = 'amdgpu_gem_prime_export';
    this.dev.own(bo, op);
    if (bo.exported) return bo.exported.get();
    const buf = this.dev.machine.kernel.export({ expName: 'amdgpu', ops: this.ops(), size: bo.size, flags, priv: bo, resv: bo.resv });
    bo.exported = buf;
    bo.refs++;
    return buf;
  }

  /**
   * amdgpu_gem_prime_import (IM-11): a dma-buf this device exported comes back as the same BO
   * (one more reference, no attachment). Any other becomes an imported BO with a dynamic
   * attachment {allowPeer2Peer: true, moveNotify: invalidate}. Takes its own dma-buf reference.
   */
  importDmabuf(buf: DmaBuf): AmdgpuBo {
    if (buf.ops === this.ops() && (buf.priv as AmdgpuBo).device === this.dev) {
      const bo = buf.priv as AmdgpuBo;
      bo.refs++;
      return bo;
    }
    buf.get();
    try {
      const holder: { bo?: AmdgpuBo } = {};
      const attach = buf.dynamicAttach(this.dev.importer, { allowPeer2Peer: true, moveNotify: (att) => this.importMoveNotify(att) }, holder);
      const bo = new AmdgpuBo(this.dev, this.dev.nextBoId(), buf.size, AMDGPU_GEM_DOMAIN_GTT, 0, buf.resv);
      bo.importState = { attach, sgt: null, ptes: null, invalidations: 0, revalidations: 0, deferredVmUpdates: 0 };
      holder.bo = bo;
      this.dev.addBo(bo);
      this.dev.emit('create', bo, { imported: buf.id, peer2peer: attach.peer2peer });
      return bo;
    } catch (e) {
      buf.put();
      throw e;
    }
  }

  private ops(): DmaBufExporterOps {
    this._opsCache ??= {
      attach: (buf, att) => this.attach(buf, att),
      pin: (att) => this.exportPin(att),
      unpin: (att) => this.dev.ttm.unpin(att.dmabuf.priv as AmdgpuBo, 'amdgpu_dma_buf_unpin'),
      mapDmaBuf: (att, dir) => this.map(att, dir),
      unmapDmaBuf: (att, sgt, dir) => this.unmap(att, sgt, dir),
      release: (buf) => this.release(buf),
      beginCpuAccess: (buf, dir) => this.beginCpuAccess(buf, dir),
      mmap: (buf, vma) => this.mmap(buf, vma),
    };
    return this._opsCache;
  }

  /** amdgpu_dma_buf_attach (IM-07): no P2P path (distance < 0) clears peer2peer. Fails only for an importer of another machine. */
  private attach(_buf: DmaBuf, att: DmaBufAttachment): void {
    checkImporterHost(this.dev.machine, att.dev, 'amdgpu_dma_buf_attach', 'IM-07');
    const client = importerPciFunction(att.dev);
    const distance = client ? this.dev.machine.p2pdma.distance(this.dev.pci, att.dev.pci ?? client, { verbose: false }).distance : -1;
    if (distance < 0) att.peer2peer = false;
    att.priv = { distance };
  }

  /**
   * amdgpu_dma_buf_pin (IM-09): [5.15] always GTT. [6.x] the preferred domains, without VRAM when
   * any attachment cannot do P2P or without CONFIG_DMABUF_MOVE_NOTIFY; nothing left: GTT.
   */
  private exportPin(att: DmaBufAttachment): void {
    const bo = att.dmabuf.priv as AmdgpuBo;
    const k = this.dev.machine.kernel;
    let domains = AMDGPU_GEM_DOMAIN_GTT;
    if (k.profile.name !== '5.15') {
      domains = bo.preferredDomains;
      if (domains & AMDGPU_GEM_DOMAIN_VRAM) {
        if (!k.configMoveNotify || att.dmabuf.attachments.some((a) => !a.peer2peer)) domains &= ~AMDGPU_GEM_DOMAIN_VRAM;
      }
      if (domains === 0) domains = AMDGPU_GEM_DOMAIN_GTT;
    }
    this.dev.ttm.pin(bo, domains, 'amdgpu_dma_buf_pin');
  }

  /**
   * amdgpu_dma_buf_map (IM-08). Not pinned: validate into GTT, plus VRAM (CPU-visible) when the BO
   * prefers VRAM and the attachment is peer2peer; this may move the BO (move_notify first).
   * Pinned: [5.15] outside GTT -> EBUSY; [6.x+] used where it is (VRAM only for a peer2peer
   * attachment, else EBUSY). GTT: the pages, dma_map_sgtable for the importer (failure EBUSY).
   * VRAM: amdgpu_vram_mgr_alloc_sgt: dma_map_resource per chunk (<= 2 GiB), no struct pages;
   * a mapping error -> ENOMEM. A failed map leaves nothing mapped, but a move its validation made
   * stays (the kernel does not move the BO back either: placement is the exporter's to choose).
   */
  private map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const op = 'amdgpu_dma_buf_map';
    const bo = att.dmabuf.priv as AmdgpuBo;
    const k = this.dev.machine.kernel;
    if (bo.pinCount === 0) {
      let domains = AMDGPU_GEM_DOMAIN_GTT;
      if ((bo.preferredDomains & AMDGPU_GEM_DOMAIN_VRAM) && att.peer2peer) {
        bo.flags |= AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;
        domains |= AMDGPU_GEM_DOMAIN_VRAM;
      }
      this.dev.ttm.validate(bo, domains, op, (domains & AMDGPU_GEM_DOMAIN_VRAM) !== 0, false);
    } else if (bo.domain !== 'GTT' && (k.profile.name === '5.15' || !att.peer2peer || !bo.visible)) {
      throw new SimError('EBUSY', op, `BO ${bo.id} is pinned in ${bo.domain}`, 'IM-08');
    }
    const backing = bo.backing!;
    const imp = att.dev;
    const dma = requireImporterDmaDevice(this.dev.machine, imp, op, 'IM-08');
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
      const ranges = p.chunks.map((c) => ({ phys: this.dev.vramPhys(c.offset), length: c.length }));
      const table = dmaBufPhysVecToSgt(this.dev.machine, att, this.dev.pci, ranges, dir, {
        maxSegment: AMDGPU_MAX_SG_SEGMENT_SIZE, importerMaxSegment: false,
        alwaysMapResource: this.dev.p2pMapping === 'map-resource', op, rule: 'IM-08',
      });
      sgt = table;
      free = () => dmaBufFreeSgt(att, table, dir, 'amdgpu_dma_buf_unmap');
    }
    backing.tables++;
    this._tables.set(sgt, { backing, free });
    this.dev.emit('map', bo, { importer: imp.name, domain: p.domain, nents: sgt.nents, peer2peer: att.peer2peer });
    return sgt;
  }

  /** amdgpu_dma_buf_unmap: a page-backed table is dma_unmap_sgtable'd, a VRAM one dma_unmap_resource'd. */
  private unmap(att: DmaBufAttachment, sgt: SgTable, _dir: DmaDataDirection): void {
    const rec = this._tables.get(sgt);
    if (!rec) throw new SimError('EINVAL', 'amdgpu_dma_buf_unmap', 'not a table this exporter made', 'IM-08');
    this._tables.delete(sgt);
    rec.free();
    rec.backing.tables--;
    this.dev.emit('unmap', att.dmabuf.priv as AmdgpuBo, { importer: att.dev.name });
    this.dev.ttm.maybeFree(rec.backing);
  }

  /** amdgpu_dma_buf_begin_cpu_access (IM-10): a read of an unpinned BO migrates it to GTT. */
  private beginCpuAccess(buf: DmaBuf, dir: DmaDataDirection): void {
    const bo = buf.priv as AmdgpuBo;
    const reads = dir === DmaDataDirection.BIDIRECTIONAL || dir === DmaDataDirection.FROM_DEVICE;
    if (!reads || bo.pinCount > 0) return;
    bo.resv.withLock(() => {
      if (bo.pinCount === 0 && bo.domain !== 'GTT') this.dev.ttm.moveTo(bo, 'GTT', 'amdgpu_dma_buf_begin_cpu_access', false, 'move');
    });
  }

  /** drm_gem_prime_mmap -> amdgpu_gem_object_mmap: a BO created NO_CPU_ACCESS (invisible VRAM) is EPERM. */
  private mmap(buf: DmaBuf, _vma: DmaBufVma): void {
    const bo = buf.priv as AmdgpuBo;
    if (bo.flags & AMDGPU_GEM_CREATE_NO_CPU_ACCESS) {
      throw new SimError('EPERM', 'amdgpu_gem_object_mmap', `BO ${bo.id} was created with NO_CPU_ACCESS (invisible VRAM)`, 'IM-10');
    }
  }

  private release(buf: DmaBuf): void {
    const bo = buf.priv as AmdgpuBo;
    if (bo.exported === buf) bo.exported = null;
    this.dev.boPut(bo);
  }

  /**
   * amdgpu_dma_buf_move_notify: (resv held) drop the placement (unmap the attachment's table) and
   * clear the VM's entries; when the VM lock is contended, the entries stay until the next use,
   * which re-validates anyway.
   */
  private importMoveNotify(att: DmaBufAttachment): void {
    const bo = (att.importerPriv as { bo?: AmdgpuBo }).bo;
    const st = bo?.importState;
    att.dmabuf.resv.assertHeld('amdgpu_dma_buf_move_notify', 'DB-16', att.ids);
    if (!bo || !st || !st.sgt) return;
    const sgt = st.sgt;
    st.sgt = null;
    att.unmap(sgt, BIDI);
    if (this.dev.vmLockContended) st.deferredVmUpdates++;
    st.ptes = null;
    st.invalidations++;
    this.dev.emit('invalidate', bo, { deferred: this.dev.vmLockContended, generation: att.dmabuf.moveGeneration });
  }

  /** Re-validation before a GPU access to an imported BO: map under resv, wait KERNEL fences, rewrite PTEs. */
  revalidate(bo: AmdgpuBo): void {
    const st = bo.importState!;
    if (st.ptes && st.sgt && !st.attach.isStale(st.sgt)) return;
    const resv = st.attach.dmabuf.resv;
    resv.withLock(() => {
      if (st.sgt && st.attach.isStale(st.sgt)) {
        st.attach.unmap(st.sgt, BIDI);
        st.sgt = null;
        st.ptes = null;
      }
      const mapped = !st.sgt;
      if (!st.sgt) st.sgt = st.attach.map(BIDI);
      const r = resv.waitTimeout(DmaResvUsage.KERNEL, false, MAX_SCHEDULE_TIMEOUT);
      if (r <= 0) {
        // The access fails: the mapping this call made goes again (the next access maps anew).
        if (mapped) {
          st.attach.unmap(st.sgt, BIDI);
          st.sgt = null;
        }
        throw new SimError(r === 0 ? 'ETIMEDOUT' : 'EINTR', 'amdgpu_bo_validate', 'waiting for the move fences failed', 'IM-11');
      }
      st.ptes = st.sgt.dmaSegments().map((s) => ({ dmaAddress: s.dmaAddress, length: BigInt(s.length) }));
    });
    st.revalidations++;
    this.dev.emit('revalidate', bo, { segments: st.ptes!.length });
  }

  /** The importer side of freeing an imported BO: unmap under the exporter's resv, detach, put. */
  dropImport(bo: AmdgpuBo): void {
    const st = bo.importState!;
    const buf = st.attach.dmabuf;
    buf.resv.withLock(() => {
      if (st.sgt) st.attach.unmap(st.sgt, BIDI);
      st.sgt = null;
      st.ptes = null;
    });
    st.attach.detach();
    buf.put();
  }
}
