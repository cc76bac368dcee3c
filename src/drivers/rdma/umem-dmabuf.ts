/**
 * ib_umem_dmabuf (drivers/infiniband/core/umem_dmabuf.c): the RDMA core's dynamic importer of a
 * dma-buf. It attaches with importer ops (IM-02), maps the whole buffer and trims the table to the
 * MR's page range (IM-03), pins for NICs without on-demand paging (IM-04), and revokes and
 * releases (IM-05).
 *
 * The exporter's SgTable is immutable here, so the "in-place" trim is kept beside it as a list of
 * DMA segments plus the first entry's advance and the last entry's trim; unmapping hands the
 * exporter its untouched table, which is what the kernel's undo of the trim achieves.
 */
import {
  SimError,
  errnoName,
  type ErrnoCode,
  DmaDataDirection,
  DmaResvUsage,
  MAX_SCHEDULE_TIMEOUT,
  PAGE_SIZE,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufImporterOps,
  type SgDmaColumns,
  type SgTable,
  type SimProcess,
} from '../../index.js';
import type { DmaBufImporterDevice } from '../device.js';

const PAGE = BigInt(PAGE_SIZE);
const U64_MAX = (1n << 64n) - 1n;

/** One DMA segment of the trimmed table, with its byte offset from the start of the trimmed range. */
export interface UmemSegment {
  readonly dmaAddress: bigint;
  readonly length: bigint;
  /** Offset of the segment's first byte from ALIGN_DOWN(umem offset, PAGE_SIZE). */
  readonly start: bigint;
}

/** What map_pages did to the exporter's table (first entry advanced, last trimmed, nents). */
export interface UmemTrim {
  readonly firstIndex: number;
  readonly firstOffset: bigint;
  readonly lastIndex: number;
  readonly lastTrim: bigint;
  /** Entries of the exporter's table that overlap the MR's page range. */
  readonly nmap: number;
}

function alignDown(v: bigint): bigint {
  return v - (v % PAGE);
}
function alignUp(v: bigint): bigint {
  return alignDown(v + PAGE - 1n);
}

/** ib_umem_num_pages: PAGE_SIZE blocks covering [address, address + length). */
export function umemNumPages(address: bigint, length: bigint): bigint {
  return (alignUp(address + length) - alignDown(address)) / PAGE;
}

/**
 * struct ib_umem_dmabuf. Create with `UmemDmabuf.get` (ODP importers) or `UmemDmabuf.getPinned`
 * (NICs that cannot take moves).
 */
export class UmemDmabuf {
  /** The table returned by dma_buf_map_attachment while mapped, else null (umem_dmabuf->sgt). */
  private _sgt: SgTable | null = null;
  private _segments: UmemSegments = UmemSegments.EMPTY;
  private _segmentObjects: readonly UmemSegment[] | null = null;
  private _trim: UmemTrim | null = null;
  private _pinned = false;
  private _revoked = false;
  private _released = false;
  /** Set by the driver that owns the umem (umem_dmabuf->private). */
  private: unknown = undefined;

  private constructor(
    readonly dmabuf: DmaBuf,
    readonly attach: DmaBufAttachment,
    /** umem->address: the offset of the MR inside the dma-buf. */
    readonly address: bigint,
    readonly length: bigint,
    readonly access: number,
  ) {}

  /**
   * ib_umem_dmabuf_get (IM-02): `offset + size` must not wrap; `ops` must have moveNotify; the fd
   * must be a dma-buf of at least `offset + size` bytes covering at least one page. Then
   * dma_buf_dynamic_attach(dmabuf, dev, ops), whose error passes through (EPERM from an exporter
   * that maps at attach time, DB-09). The dma_buf_get reference is held until release.
   */
  static get(
    process: SimProcess,
    dev: DmaBufImporterDevice,
    offset: bigint,
    size: bigint,
    fd: number,
    access: number,
    ops: DmaBufImporterOps | null,
  ): UmemDmabuf {
    const op = 'ib_umem_dmabuf_get';
    if (offset < 0n || size < 0n || offset + size > U64_MAX) {
      throw new SimError('EINVAL', op, `offset ${offset} + size ${size} overflows`, 'IM-02');
    }
    const end = offset + size;
    if (!ops || typeof ops.moveNotify !== 'function') {
      throw new SimError('EINVAL', op, 'importer ops with move_notify are required', 'IM-02');
    }
    const dmabuf = process.dmaBufGet(fd);
    let attach: DmaBufAttachment;
    try {
      if (BigInt(dmabuf.size) < end) {
        throw new SimError('EINVAL', op, `the dma-buf has ${dmabuf.size} bytes, the MR ends at ${end}`, 'IM-02');
      }
      // ib_umem_num_pages counts from umem->iova, which is still 0 here (kzalloc; only
      // umem->address = offset is set), so it is 0 exactly when size is 0, at any offset.
      if (umemNumPages(0n, size) === 0n) throw new SimError('EINVAL', op, 'length 0: the MR covers no page', 'IM-02');
      // The attachment's importer priv is set once the umem exists (attach->importer_priv).
      const holder: { umem?: UmemDmabuf } = {};
      attach = dmabuf.dynamicAttach(dev, ops, holder);
      const umem = new UmemDmabuf(dmabuf, attach, offset, size, access);
      holder.umem = umem;
      return umem;
    } catch (e) {
      dmabuf.put();
      throw e;
    }
  }

  /**
   * ib_umem_dmabuf_get_pinned (IM-04): get with ops {allowPeer2Peer, moveNotify = warn}, then
   * under resv: dma_buf_pin and map_pages, unwinding on error.
   */
  static getPinned(
    process: SimProcess,
    dev: DmaBufImporterDevice,
    offset: bigint,
    size: bigint,
    fd: number,
    access: number,
    onUnexpectedMove: (attach: DmaBufAttachment) => void,
  ): UmemDmabuf {
    const umem = UmemDmabuf.get(process, dev, offset, size, fd, access, {
      allowPeer2Peer: true,
      moveNotify: (att) => onUnexpectedMove(att),
    });
    const resv = umem.dmabuf.resv;
    try {
      resv.lock();
      try {
        umem.attach.pin();
        umem._pinned = true;
        umem.mapPages();
      } catch (e) {
        // ib_umem_release undoes a map that succeeded before the fence wait failed.
        umem.unmapPages();
        if (umem._pinned) {
          umem.attach.unpin();
          umem._pinned = false;
        }
        throw e;
      } finally {
        resv.unlock();
      }
    } catch (e) {
      umem.detachAndPut();
      throw e;
    }
    return umem;
  }

  /** The umem of an attachment made by `get` (attach->importer_priv), if any. */
  static of(attach: DmaBufAttachment): UmemDmabuf | undefined {
    return (attach.importerPriv as { umem?: UmemDmabuf } | undefined)?.umem;
  }

  /** The exporter's table is mapped (umem_dmabuf->sgt is set): between mapPages and unmapPages. */
  get mapped(): boolean {
    return this._sgt !== null;
  }
  /** The attachment is pinned (dma_buf_pin), as `getPinned` leaves it; cleared by revoke. */
  get pinned(): boolean {
    return this._pinned;
  }
  /** ib_umem_dmabuf_revoke ran (umem_dmabuf->revoked): mapPages now fails EINVAL. */
  get revoked(): boolean {
    return this._revoked;
  }
  /** The umem is detached and its dma-buf reference dropped (ib_umem_dmabuf_release or a failed get). */
  get released(): boolean {
    return this._released;
  }
  /** The exporter's table while mapped. */
  get sgt(): SgTable | null {
    return this._sgt;
  }
  /** The trimmed DMA segments while mapped (empty when unmapped), as objects made on first use. */
  get segments(): readonly UmemSegment[] {
    this._segmentObjects ??= this._segments.toArray();
    return this._segmentObjects;
  }
  /** The trimmed DMA segments while mapped (empty when unmapped), without an object per segment. */
  get segmentList(): UmemSegments {
    return this._segments;
  }
  /** How the mapped table was trimmed to the MR's page range (first/last entry adjustments), or null while unmapped. */
  get trim(): UmemTrim | null {
    return this._trim;
  }
  /** Offset of the MR's first byte inside the trimmed range (the offset's in-page part). */
  get firstByteOffset(): bigint {
    return this.address % PAGE;
  }

  /**
   * ib_umem_dmabuf_map_pages (IM-03), resv held: EINVAL once revoked; when not mapped,
   * dma_buf_map_attachment(BIDIRECTIONAL) and trim to [ALIGN_DOWN(offset), ALIGN(offset+len)).
   * Then wait on the KERNEL-usage fences ([5.x]: the exclusive, i.e. WRITE-class, fence):
   * an error passes through, a timeout is ETIMEDOUT.
   */
  mapPages(): void {
    const op = 'ib_umem_dmabuf_map_pages';
    const k = this.dmabuf.kernel;
    this.dmabuf.resv.assertHeld(op, 'DB-25', this._eventIds());
    if (this._revoked) throw new SimError('EINVAL', op, 'the umem is revoked', 'IM-03');
    if (!this._sgt) {
      const sgt = this.attach.map(DmaDataDirection.BIDIRECTIONAL);
      // [ALIGN_DOWN(offset), ALIGN(offset + len)) ends within the dma-buf's size, a number.
      const start = Number(alignDown(this.address));
      const { segments, trim } = UmemSegments.cut(sgt, start, start + Number(alignUp(this.address + this.length) - alignDown(this.address)));
      this._sgt = sgt;
      this._segments = segments;
      this._segmentObjects = null;
      this._trim = trim;
    }
    const usage = k.profile.name === '5.15' ? DmaResvUsage.WRITE : DmaResvUsage.KERNEL;
    const r = this.dmabuf.resv.waitTimeout(usage, false, MAX_SCHEDULE_TIMEOUT);
    if (r < 0) throw new SimError(errnoName(r) as ErrnoCode, op, 'waiting for the kernel fences failed', 'IM-03');
    if (r === 0) throw new SimError('ETIMEDOUT', op, 'the kernel fences did not signal', 'IM-03');
  }

  /** ib_umem_dmabuf_unmap_pages (IM-03), resv held: undo the trim and unmap; no-op when not mapped. */
  unmapPages(): void {
    this.dmabuf.resv.assertHeld('ib_umem_dmabuf_unmap_pages', 'DB-25', this._eventIds());
    const sgt = this._sgt;
    if (!sgt) return;
    this._sgt = null;
    this._segments = UmemSegments.EMPTY;
    this._segmentObjects = null;
    this._trim = null;
    this.attach.unmap(sgt, DmaDataDirection.BIDIRECTIONAL);
  }

  /** ib_umem_dmabuf_revoke (IM-05), idempotent: under resv unmap, unpin if pinned, mark revoked. */
  revoke(): void {
    if (this._revoked || this._released) return;
    this.dmabuf.resv.withLock(() => {
      this.unmapPages();
      if (this._pinned) {
        this.attach.unpin();
        this._pinned = false;
      }
      this._revoked = true;
    });
  }

  /** ib_umem_dmabuf_release (IM-05): revoke, dma_buf_detach, dma_buf_put. A second call does nothing. */
  release(): void {
    if (this._released) return;
    this.revoke();
    this.detachAndPut();
  }

  /** The ids the kernel's WARNs about this umem's attachment carry. */
  private _eventIds(): { dmaBufId: number; attachmentId: number } {
    return { dmaBufId: this.dmabuf.id, attachmentId: this.attach.id };
  }

  private detachAndPut(): void {
    this._released = true;
    this.attach.detach();
    this.dmabuf.put();
  }
}

/**
 * A run of DMA segments cut from a table (the trimmed ib_umem table, an MR's MTT), without an
 * object per segment: segment i is entry `from + i` of the table's DMA columns, the first one
 * advanced by the head offset, the last one cut; `start(i)` is its byte offset from the start of
 * the cut range. Offsets and lengths are numbers (they stay below 2^53: a dma-buf's size is one).
 */
export class UmemSegments {
  /** The list of no segment (unmapped). */
  static readonly EMPTY = new UmemSegments(new BigUint64Array(0), 0, 0, new Float64Array(1), 0);

  private constructor(
    private readonly _address: BigUint64Array,
    private readonly _from: number,
    private readonly _head: number,
    /** count + 1 offsets: segment i is [start[i], start[i + 1]). */
    private readonly _start: Float64Array,
    /** Segments. */
    readonly count: number,
  ) {}

  /**
   * The IM-03 trim of `sgt`'s DMA segments to [start, end) (numbers): walk the entries, count
   * those overlapping the range, advance the entry holding `start` and cut the entry holding
   * `end`; every entry from the one holding `start` to the one holding `end` is a segment.
   */
  static cut(sgt: SgTable, start: number, end: number): { segments: UmemSegments; trim: UmemTrim } {
    const cols: SgDmaColumns = sgt.dmaColumns();
    const lens = cols.length;
    const n = sgt.nents;
    const starts = new Float64Array(n + 1);
    let cur = 0;
    let nmap = 0;
    let firstIndex = -1;
    let firstOffset = 0;
    let lastIndex = -1;
    let lastTrim = 0;
    let from = -1;
    let head = 0;
    let count = 0;
    for (let i = 0; i < n; i++) {
      let len = lens[i]!;
      if (start < cur + len && cur < end) nmap++;
      let off = 0;
      if (cur <= start && start < cur + len) {
        off = start - cur;
        firstIndex = i;
        firstOffset = off;
        len -= off;
        cur += off;
      }
      const inRange = cur >= start && cur < end;
      if (inRange && from < 0) {
        from = i;
        head = off;
      }
      if (cur < end && end <= cur + len) {
        const t = cur + len - end;
        lastIndex = i;
        lastTrim = t;
        len -= t;
        if (inRange) {
          starts[count++] = cur - start;
          cur += len;
        }
        break;
      }
      if (inRange) starts[count++] = cur - start;
      cur += len;
    }
    starts[count] = cur - start;
    const segments = count === 0 ? UmemSegments.EMPTY : new UmemSegments(cols.address, from, head, starts, count);
    const trim: UmemTrim = { firstIndex, firstOffset: BigInt(firstOffset), lastIndex, lastTrim: BigInt(lastTrim), nmap };
    return { segments, trim };
  }

  /** Byte offset of segment i from the start of the cut range. */
  start(i: number): number {
    return this._start[i]!;
  }
  /** Bytes of segment i. */
  length(i: number): number {
    return this._start[i + 1]! - this._start[i]!;
  }
  /** Bytes of all the segments. */
  get totalLength(): number {
    return this._start[this.count]!;
  }
  /** DMA address of segment i. */
  dmaAddress(i: number): bigint {
    const a = this._address[this._from + i]!;
    return i === 0 && this._head !== 0 ? a + BigInt(this._head) : a;
  }
  /** The last segment starting at or before byte `off` (0 when none does). */
  find(off: number): number {
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this._start[mid]! <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  /** Every segment starts on a page and every one but the last is whole pages. */
  pageAligned(): boolean {
    const w = new Uint32Array(this._address.buffer, this._address.byteOffset, this._address.length * 2);
    const p = PAGE_SIZE;
    for (let i = 0; i < this.count; i++) {
      const lo = (w[2 * (this._from + i)]! + (i === 0 ? this._head : 0)) % p;
      if (lo !== 0 || (i + 1 < this.count && this.length(i) % p !== 0)) return false;
    }
    return true;
  }
  /** The segments as objects. */
  toArray(): UmemSegment[] {
    const out: UmemSegment[] = new Array<UmemSegment>(this.count);
    for (let i = 0; i < this.count; i++) {
      out[i] = { dmaAddress: this.dmaAddress(i), length: BigInt(this.length(i)), start: BigInt(this.start(i)) };
    }
    return out;
  }
}

/**
 * The IM-03 trim of `sgt` to [start, end): see {@link UmemSegments.cut}, with the segments as
 * objects.
 * @throws {@link index!SimError} EINVAL when start or end is not a bigint in 0..2^53.
 */
export function trimTable(sgt: SgTable, start: bigint, end: bigint): { segments: UmemSegment[]; trim: UmemTrim } {
  const max = 1n << 53n;
  if (typeof start !== 'bigint' || typeof end !== 'bigint' || start < 0n || end < 0n || start > max || end > max) {
    throw new SimError('EINVAL', 'ib_umem_dmabuf_map_pages', 'start and end must be bigints in 0..2^53', 'IM-03');
  }
  const { segments, trim } = UmemSegments.cut(sgt, Number(start), Number(end));
  return { segments: segments.toArray(), trim };
}
