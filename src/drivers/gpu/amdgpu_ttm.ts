/**
 * amdgpu placement and eviction (amdgpu_ttm.c, amdgpu_vram_mgr.c, the ttm_bo_validate path):
 * VRAM from two gen_pools (the CPU-visible window and the rest), GTT from system RAM frames
 * mapped through the GART, an LRU of VRAM BOs for eviction, and moves: move_notify to the
 * dma-buf's importers, a copy by the GPU's DMA engine, a KERNEL fence on the BO's resv, and the old
 * storage freed once that fence has signaled and no exporter table points into it.
 */
import {
  DmaDataDirection,
  DmaResvUsage,
  GenPool,
  MAX_SCHEDULE_TIMEOUT,
  PAGE_SIZE,
  ScatterList,
  SimError,
  type DmaEndpoint,
  type DmaFence,
} from '../../index.js';
import type { AmdgpuDevice } from './amdgpu.js';
import {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED,
  AMDGPU_GEM_CREATE_NO_CPU_ACCESS,
  AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM,
  domainBit,
  type AmdgpuBacking,
  type AmdgpuBo,
  type AmdgpuDomain,
  type AmdgpuPlacement,
  type VramChunk,
} from './amdgpu_object.js';

const BIDI = DmaDataDirection.BIDIRECTIONAL;

/** A contiguous byte run of a BO and how the GPU's DMA engine reaches it. */
export interface Extent {
  readonly off: bigint;
  readonly len: bigint;
  readonly rid: number | 'phys';
  readonly addr: bigint;
}

/** @internal The device's placement manager (one per AmdgpuDevice). */
export class AmdgpuTtm {
  /** VRAM by offset: the CPU-visible window and the rest (amdgpu_vram_mgr's two ranges). */
  private readonly _vram: { visible: GenPool; invisible: GenPool | null };
  /** Own BOs, least recently placed first. */
  private readonly _lru = new Set<AmdgpuBo>();
  private _nextBacking = 1;
  private _seqno = 0;

  constructor(private readonly dev: AmdgpuDevice) {
    const visible = dev.visibleVramBytes;
    const total = dev.vramBytes;
    const visiblePool = new GenPool({ name: `${dev.name} visible VRAM` });
    visiblePool.add(0n, visible);
    let invisiblePool: GenPool | null = null;
    if (total > visible) {
      invisiblePool = new GenPool({ name: `${dev.name} invisible VRAM` });
      invisiblePool.add(visible, total - visible);
    }
    this._vram = { visible: visiblePool, invisible: invisiblePool };
  }

  /** VRAM in use: visible and invisible bytes (including storage waiting for its move fence). */
  vramUsage(): { visible: bigint; invisible: bigint } {
    return {
      visible: this.dev.visibleVramBytes - this._vram.visible.avail(),
      invisible: this.dev.vramBytes - this.dev.visibleVramBytes - (this._vram.invisible?.avail() ?? 0n),
    };
  }

  /** The BO was placed or used: to the end of the LRU. */
  touch(bo: AmdgpuBo): void {
    this._lru.delete(bo);
    this._lru.add(bo);
  }

  /** The BO is gone: off the LRU. */
  forget(bo: AmdgpuBo): void {
    this._lru.delete(bo);
  }

  /**
   * Migrates an own BO to `domain` (an explicit ttm_bo_validate), taking its resv. EBUSY when
   * pinned, ENOMEM when the target cannot hold it even after evicting others. Returns true when
   * it moved.
   */
  migrate(bo: AmdgpuBo, domain: AmdgpuDomain, opts: { visible?: boolean } = {}): boolean {
    const op = 'ttm_bo_validate';
    this.dev.own(bo, op);
    return bo.resv.withLock(() => {
      if (bo.pinCount > 0) throw new SimError('EBUSY', op, `BO ${bo.id} is pinned`);
      const before = bo.backing;
      this.validate(bo, domain === 'VRAM' ? AMDGPU_GEM_DOMAIN_VRAM : AMDGPU_GEM_DOMAIN_GTT, op, opts.visible ?? false, true);
      return bo.backing !== before;
    });
  }

  /** ttm_bo_evict of one BO: VRAM -> GTT. EBUSY when pinned; false when it is not in VRAM. */
  evict(bo: AmdgpuBo): boolean {
    const op = 'ttm_bo_evict';
    this.dev.own(bo, op);
    return bo.resv.withLock(() => {
      if (bo.domain !== 'VRAM') return false;
      if (bo.pinCount > 0) throw new SimError('EBUSY', op, `BO ${bo.id} is pinned`);
      this.moveTo(bo, 'GTT', op, false, 'evict');
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
        this.moveTo(bo, 'GTT', 'amdgpu memory pressure', false, 'evict');
      } finally {
        bo.resv.unlock();
      }
      freed += BigInt(bo.size);
      out.push(bo);
    }
    return out;
  }

  pin(bo: AmdgpuBo, domains: number, op: string): void {
    this.dev.own(bo, op);
    if (bo.pinCount > 0) {
      if (!(domains & domainBit(bo.domain!))) throw new SimError('EINVAL', op, `BO ${bo.id} is pinned in ${bo.domain}`, 'IM-09');
    } else {
      const vram = (domains & AMDGPU_GEM_DOMAIN_VRAM) !== 0;
      if (vram) bo.flags |= AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED;
      this.validate(bo, domains, op, vram, false);
    }
    bo.pinCount++;
    this.dev.emit('pin', bo, { domain: bo.domain, count: bo.pinCount });
  }

  unpin(bo: AmdgpuBo, op: string): void {
    if (bo.pinCount === 0) throw new SimError('EINVAL', op, `BO ${bo.id} is not pinned`);
    bo.pinCount--;
    this.dev.emit('unpin', bo, { count: bo.pinCount });
  }

  /**
   * ttm_bo_validate: keep the placement when it fits `domains` (VRAM entirely visible when
   * `visible`), else move: VRAM first when allowed (evicting others), else GTT. `strict`: only
   * the first domain given (explicit migration). Resv held.
   */
  validate(bo: AmdgpuBo, domains: number, op: string, visible: boolean, strict: boolean): void {
    const cur = bo.domain!;
    const fits = (domains & domainBit(cur)) !== 0 && (cur !== 'VRAM' || !visible || bo.visible);
    if (fits) return;
    if (domains & AMDGPU_GEM_DOMAIN_VRAM) {
      const chunks = this.vramAlloc(bo, visible, op, (domains & AMDGPU_GEM_DOMAIN_GTT) === 0 || strict);
      if (chunks) {
        this.moveTo(bo, 'VRAM', op, visible, 'move', chunks);
        return;
      }
    }
    if (domains & AMDGPU_GEM_DOMAIN_GTT) {
      this.moveTo(bo, 'GTT', op, false, 'move');
      return;
    }
    throw new SimError('ENOMEM', op, `no room for BO ${bo.id} in VRAM`);
  }

  /**
   * The move itself (resv held): move_notify to the dma-buf's importers, new storage, a copy by
   * the GPU's DMA engine, a KERNEL fence for it, and the old storage retired until the fence
   * signals and no table points into it.
   */
  moveTo(bo: AmdgpuBo, to: AmdgpuDomain, op: string, visible: boolean, kind: 'move' | 'evict', chunks?: VramChunk[]): void {
    const k = this.dev.machine.kernel;
    bo.resv.assertHeld(op, 'DB-16');
    const old = bo.backing!;
    let placement: AmdgpuPlacement;
    if (to === 'VRAM') {
      const c = chunks ?? this.vramAlloc(bo, visible, op, true);
      if (!c) throw new SimError('ENOMEM', op, `no room for BO ${bo.id} in VRAM`);
      placement = { domain: 'VRAM', chunks: c };
    } else {
      placement = this.gttAlloc(bo.size, op);
    }
    const dmaEng = this.dev.machine.sim.dma;
    const src = this.extents(old.placement);
    const dst = this.extents(placement);
    try {
      // amdgpu_bo_move_notify: importers drop their mappings before the bytes move.
      bo.exported?.moveNotify();
      forEachPair(src, dst, BigInt(bo.size), (s, d, n) => {
        const r = dmaEng.copy(s, d, n);
        if (!r.ok) throw new SimError('EIO', op, `SDMA copy failed: ${r.code}`);
      });
    } catch (e) {
      // The BO stays where it was; the new storage goes back (importers told of the move re-map
      // on their next use, which finds the old placement).
      this.freePlacement(placement);
      throw e;
    }
    const fence = k.createFence(this.dev.fenceContext, ++this._seqno, { driverName: 'amdgpu', timelineName: `${this.dev.name}.sdma0` });
    bo.resv.reserveFences(1);
    bo.resv.addFence(fence, DmaResvUsage.KERNEL);
    const pages = Math.ceil(bo.size / PAGE_SIZE);
    fence.scheduleSignal(Math.max(1, pages * this.dev.copyTicksPerPage));
    old.retired = true;
    fence.addCallback({ func: () => { old.fenced = true; this.maybeFree(old); } });
    bo.backing = this.newBacking(placement);
    bo.moves++;
    this.touch(bo);
    this.dev.emit(kind, bo, { from: old.placement.domain, to, seqno: fence.seqno, fence });
  }

  /** The move fence of the last move, for tests: the newest fence this device added. */
  lastMoveFence(bo: AmdgpuBo): DmaFence | undefined {
    return this.dev.lastMoveFence(bo);
  }

  place(bo: AmdgpuBo, domains: number, op: string): AmdgpuPlacement {
    if (domains & AMDGPU_GEM_DOMAIN_VRAM) {
      const visible = (bo.flags & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED) !== 0;
      const chunks = this.vramAlloc(bo, visible, op, (domains & AMDGPU_GEM_DOMAIN_GTT) === 0);
      if (chunks) return { domain: 'VRAM', chunks };
    }
    if (domains & AMDGPU_GEM_DOMAIN_GTT) return this.gttAlloc(bo.size, op);
    throw new SimError('ENOMEM', op, `no room for ${bo.size} bytes in VRAM`);
  }

  /**
   * VRAM for `bo`: the visible window only when `visible`; else invisible first for NO_CPU_ACCESS
   * BOs, visible first otherwise. When it does not fit, unpinned BOs (LRU, not `bo`, resv free)
   * are evicted to GTT and their move fences waited for. null when it still does not fit.
   */
  private vramAlloc(bo: AmdgpuBo, visible: boolean, op: string, evict: boolean): VramChunk[] | null {
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
      if (visible && !(victim.placement as { readonly chunks: readonly VramChunk[] }).chunks.some((c) => c.offset < this.dev.visibleVramBytes)) continue;
      if (!victim.resv.trylock()) continue;
      let fence: DmaFence | undefined;
      try {
        this.moveTo(victim, 'GTT', op, false, 'evict');
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

  private gttAlloc(size: number, op: string): AmdgpuPlacement {
    const mem = this.dev.machine.sim.memory;
    const pages: bigint[] = [];
    const n = Math.ceil(size / PAGE_SIZE);
    try {
      for (let i = 0; i < n; i++) pages.push(mem.allocFrames(1));
    } catch (e) {
      for (const pa of pages) mem.freeFrames(pa);
      throw e instanceof SimError ? new SimError(e.code, op, `GTT allocation failed: ${e.message}`) : e;
    }
    const gart = ScatterList.fromPages(pages);
    const r = this.dev.dma.mapSgtable(gart, BIDI);
    if (r < 0) {
      for (const pa of pages) mem.freeFrames(pa);
      throw new SimError('ENOMEM', op, `GART mapping failed (${r})`);
    }
    return { domain: 'GTT', pages, gart };
  }

  clear(p: AmdgpuPlacement, size: bigint): void {
    if (p.domain !== 'VRAM') return; // fresh frames read as zeros
    for (const e of this.extents(p)) {
      const r = this.dev.machine.sim.dma.fill({ rid: e.rid, addr: e.addr }, 0, e.len < size ? e.len : size);
      if (!r.ok) throw new SimError('EIO', 'amdgpu_fill_buffer', `clearing VRAM failed: ${r.code}`);
    }
  }

  extents(p: AmdgpuPlacement): Extent[] {
    const out: Extent[] = [];
    let off = 0n;
    if (p.domain === 'VRAM') {
      for (const c of p.chunks) {
        out.push({ off, len: c.length, rid: 'phys', addr: this.dev.vramPhys(c.offset) });
        off += c.length;
      }
    } else {
      for (const s of p.gart.dmaSegments()) {
        out.push({ off, len: BigInt(s.length), rid: this.dev.rid, addr: s.dmaAddress });
        off += BigInt(s.length);
      }
    }
    return out;
  }

  newBacking(placement: AmdgpuPlacement): AmdgpuBacking {
    return { id: this._nextBacking++, placement, tables: 0, retired: false, fenced: false, freed: false };
  }

  maybeFree(b: AmdgpuBacking): void {
    if (b.freed || !b.retired || !b.fenced || b.tables > 0) return;
    b.freed = true;
    this.freePlacement(b.placement);
  }

  /** Gives storage back: VRAM chunks to their pool, GTT pages unmapped from the GART and freed. */
  freePlacement(p: AmdgpuPlacement): void {
    if (p.domain === 'VRAM') {
      for (const c of p.chunks) (c.offset < this.dev.visibleVramBytes ? this._vram.visible : this._vram.invisible!).free(c.offset, c.length, 'amdgpu_vram_mgr_del');
    } else {
      this.dev.dma.unmapSg(p.gart, BIDI);
      const mem = this.dev.machine.sim.memory;
      for (const pa of p.pages) mem.freeFrames(pa);
    }
  }
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
export function forEachPiece(extents: Extent[], offset: bigint, length: bigint, fn: (ep: DmaEndpoint, at: bigint, n: bigint) => void): void {
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

