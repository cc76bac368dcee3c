/**
 * The io_pagetable of an IOAS (drivers/iommu/iommufd/io_pagetable.c, pages.c): the IOVA space of
 * user memory areas, each a slice of an iopt_pages (the pinned user pages behind one MAP), the
 * reserved and allowed IOVA ranges, and the iommu_domains the areas are realized into.
 *
 * Pinning follows pages.c: an iopt_pages is pinned (pin_user_pages) while at least one area using
 * it is stored in a domain, once however many areas, domains or IOASes (COPY) share it, and
 * unpinned when the last such area goes. An IOAS with no domain holds no pins at all: MAP only
 * records the user range, and the pages are pinned when a domain is added.
 *
 * Deviation: iopt_unmap_iova_range unmaps areas one by one and fails with ENOENT at the first one
 * the range cuts, leaving the earlier ones unmapped; here every area is checked first, so a
 * failing UNMAP changes nothing (same errno).
 */
import { PAGE_SIZE, Prot, SimError, type IommuDomain, type Process, type UserPage } from '../../index.js';

const PAGE = BigInt(PAGE_SIZE);
/** ULONG_MAX on a 64-bit kernel. */
export const ULONG_MAX = (1n << 64n) - 1n;

/** An inclusive IOVA range [start, last]. */
export interface IovaSpan { start: bigint; last: bigint }

/** A reserved IOVA range and who reserved it (a domain's aperture, a device's reserved region). */
interface Reserved extends IovaSpan { owner: object }

/**
 * Where pins are charged (incr_user_locked_vm): pages pinned now and the limit (RLIMIT_MEMLOCK in
 * pages). Kept per iommufd context here; the kernel charges the user (or the mm).
 */
export interface PinAccount {
  pinned: number;
  readonly limit: number;
}

/**
 * struct iopt_pages: the user range behind one MAP, shared by every area that maps part of it
 * (COPY adds areas, not pages).
 */
export class IoptPages {
  /** Page-aligned start of the user range (pages->uptr). */
  readonly uptr: bigint;
  readonly npages: number;
  /** Areas referencing these pages (the kref). */
  users = 0;
  /** Areas stored in a domain; the pages are pinned while this is above 0. */
  private _storers = 0;
  private _pinned: UserPage[] | null = null;

  constructor(readonly proc: Process, uptr: bigint, length: bigint, readonly writable: boolean, private readonly _account: PinAccount) {
    this.uptr = uptr - (uptr % PAGE);
    this.npages = Number((uptr + length + PAGE - 1n - this.uptr) / PAGE);
  }

  /** Pages pinned now (0 or npages). */
  get pinnedPages(): number {
    return this._pinned ? this._pinned.length : 0;
  }

  /** The physical address of page `index`; the pages must be pinned. */
  pa(index: number): bigint {
    return this._pinned![index]!.pa;
  }

  /**
   * One more stored area: pins every page on the first (pfn_reader_user_pin).
   * @throws {@link index!SimError} EFAULT (nothing pinned) when a page is not mapped or, for a writable
   * map, not writable; ENOMEM when the pins would pass the account's limit.
   */
  store(op: string): void {
    if (this._storers === 0) {
      if (this._account.pinned + this.npages > this._account.limit) {
        throw new SimError('ENOMEM', op, `pinning ${this.npages} pages would pass the locked-memory limit of ${this._account.limit} pages (${this._account.pinned} pinned)`);
      }
      try {
        this._pinned = this.proc.getUserPages(this.uptr, this.npages * PAGE_SIZE, { write: this.writable, pin: true });
      } catch (e) {
        if (e instanceof SimError) throw new SimError(e.code, op, `pinning the user pages at 0x${this.uptr.toString(16)}: ${e.message}`);
        throw e;
      }
      this._account.pinned += this.npages;
    }
    this._storers++;
  }

  /** One stored area fewer: unpins every page after the last. */
  unstore(): void {
    if (--this._storers === 0 && this._pinned) {
      this.proc.putUserPages(this._pinned, { pin: true });
      this._account.pinned -= this._pinned.length;
      this._pinned = null;
    }
  }
}

/** struct iopt_area: IOVAs [iova, last] mapping bytes of `pages` from `startByte`. */
export class IoptArea {
  constructor(
    readonly iova: bigint,
    readonly last: bigint,
    readonly pages: IoptPages,
    /** Offset of the area's first byte from pages.uptr. */
    readonly startByte: bigint,
    /** IOMMU prot (Prot bits). */
    readonly prot: number,
  ) {}

  /** Bytes the area covers. */
  get length(): bigint {
    return this.last - this.iova + 1n;
  }

  /** area->page_offset. */
  get pageOffset(): bigint {
    return this.startByte % PAGE;
  }

  /** True while the area's pages are stored in the IOAS's domains (they are pinned). */
  stored = false;
}

function roundupPow2(v: bigint): bigint {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
}

/** Lowest set bit of v as a power of two (1n << __ffs64(v)); v > 0. */
function lowBit(v: bigint): bigint {
  return v & -v;
}

function alignUp(v: bigint, a: bigint): bigint {
  return ((v + a - 1n) / a) * a;
}

/** The holes of sorted, possibly overlapping spans inside [from, to]. */
function holes(spans: readonly IovaSpan[], from: bigint, to: bigint): IovaSpan[] {
  const out: IovaSpan[] = [];
  let cur = from;
  for (const s of spans) {
    if (s.last < cur) continue;
    if (s.start > to) break;
    if (s.start > cur) out.push({ start: cur, last: s.start - 1n });
    if (s.last >= to) return out;
    cur = s.last + 1n;
  }
  out.push({ start: cur, last: to });
  return out;
}

/**
 * struct io_pagetable: areas sorted by IOVA (no overlap), reserved and allowed ranges, the
 * domains every area is realized into and the IOVA alignment they impose.
 */
export class IoPagetable {
  private readonly _areas: IoptArea[] = [];
  private _reserved: Reserved[] = [];
  private _allowed: IovaSpan[] = [];
  private readonly _domains: IommuDomain[] = [];
  /** iopt->iova_alignment: 1 with no domain, else the largest smallest-page-size of the domains. */
  iovaAlignment = 1n;

  /** The areas, by IOVA. */
  get areas(): readonly IoptArea[] {
    return this._areas;
  }

  /** The domains the areas are realized into. */
  get domains(): readonly IommuDomain[] {
    return this._domains;
  }

  /** Reserved ranges, by start. */
  get reserved(): readonly IovaSpan[] {
    return this._reserved.map(({ start, last }) => ({ start, last }));
  }

  /** The allowed ranges (IOMMU_IOAS_ALLOW_IOVAS), by start; empty: everything. */
  get allowed(): readonly IovaSpan[] {
    return this._allowed;
  }

  /** Pages pinned for this IOAS's areas (each iopt_pages counted once). */
  get pinnedPages(): number {
    let n = 0;
    for (const p of new Set(this._areas.map((a) => a.pages))) n += p.pinnedPages;
    return n;
  }

  /** Index of the first area whose last >= iova (binary search). */
  private _lowerBound(iova: bigint): number {
    let lo = 0;
    let hi = this._areas.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this._areas[mid]!.last < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** iopt_area_iter_first: the first area intersecting [start, last]. */
  areaFirst(start: bigint, last: bigint): IoptArea | undefined {
    const a = this._areas[this._lowerBound(start)];
    return a && a.iova <= last ? a : undefined;
  }

  /** The areas intersecting [start, last], by IOVA. */
  areasIn(start: bigint, last: bigint): IoptArea[] {
    const out: IoptArea[] = [];
    for (let i = this._lowerBound(start); i < this._areas.length && this._areas[i]!.iova <= last; i++) out.push(this._areas[i]!);
    return out;
  }

  private _reservedFirst(start: bigint, last: bigint): Reserved | undefined {
    return this._reserved.find((r) => r.start <= last && r.last >= start);
  }

  /** iopt_check_iova: EINVAL misaligned or reserved, EOVERFLOW wraps, EEXIST something mapped there. */
  private _checkIova(op: string, iova: bigint, length: bigint): void {
    if (iova % this.iovaAlignment !== 0n) throw new SimError('EINVAL', op, `iova 0x${iova.toString(16)} is not aligned to the IOAS's 0x${this.iovaAlignment.toString(16)}`);
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new SimError('EOVERFLOW', op, 'iova + length wraps');
    if (this._reservedFirst(iova, last)) throw new SimError('EINVAL', op, `[0x${iova.toString(16)}, 0x${last.toString(16)}] intersects a reserved IOVA range`);
    if (this.areaFirst(iova, last)) throw new SimError('EEXIST', op, `[0x${iova.toString(16)}, 0x${last.toString(16)}] is already mapped`);
  }

  /**
   * iopt_alloc_iova: the lowest free IOVA for `length` bytes, aligned to the smaller of
   * roundup_pow_of_two(length) and the user address's own alignment, keeping its page offset,
   * inside the allowed ranges (or [PAGE_SIZE, ULONG_MAX - PAGE_SIZE]); never 0.
   */
  private _allocIova(op: string, uptr: bigint, length: bigint): bigint {
    const pageOffset = uptr % PAGE;
    if (length === 0n || length >= ULONG_MAX / 2n) throw new SimError('EOVERFLOW', op, 'length is 0 or too large to align');
    const align = uptr === 0n ? roundupPow2(length) : (roundupPow2(length) < lowBit(uptr) ? roundupPow2(length) : lowBit(uptr));
    if (align < this.iovaAlignment) throw new SimError('EINVAL', op, `the user address only allows IOVA alignment 0x${align.toString(16)}, the IOAS needs 0x${this.iovaAlignment.toString(16)}`);
    const lo = PAGE;
    const hi = ULONG_MAX - PAGE;
    const allowed = this._allowed.length === 0 ? [{ start: lo, last: hi }] : this._allowed
      .map((a) => ({ start: a.start < lo ? lo : a.start, last: a.last > hi ? hi : a.last }))
      .filter((a) => a.start <= a.last);
    const used = [...this._reserved, ...this._areas.map((a) => ({ start: a.iova, last: a.last }))].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const span of allowed) {
      if (span.last - span.start < length - 1n) continue;
      for (const h of holes(used, span.start, span.last)) {
        if (h.last - h.start < length - 1n) continue;
        const start = alignUp(h.start, align) | pageOffset;
        if (start > h.last || h.last - start < length - 1n) continue;
        return start;
      }
    }
    throw new SimError('ENOSPC', op, `no free IOVA range of 0x${length.toString(16)} bytes`);
  }

  /**
   * iopt_map_pages: new areas at `iova` (or an allocated IOVA) over `slices` of pages, realized
   * into every domain. Returns the IOVA. On a throw nothing changed.
   * @throws {@link index!SimError} EINVAL length 0 or not aligned, iova misaligned or reserved; EEXIST
   * something mapped there; ENOSPC no free IOVA; EOVERFLOW wraps; EPERM a writable map of
   * read-only pages; EFAULT pinning failed.
   */
  mapPages(op: string, slices: readonly { pages: IoptPages; startByte: bigint; length: bigint }[], length: bigint, iova: bigint | null, prot: number): bigint {
    if (length === 0n || length % this.iovaAlignment !== 0n) throw new SimError('EINVAL', op, `length 0x${length.toString(16)} is 0 or not a multiple of the IOAS alignment 0x${this.iovaAlignment.toString(16)}`);
    const first = slices[0]!;
    const at = iova === null ? this._allocIova(op, first.pages.uptr + first.startByte, length) : (this._checkIova(op, iova, length), iova);
    const areas: IoptArea[] = [];
    let cur = at;
    for (const s of slices) {
      // iopt_insert_area
      if ((prot & Prot.WRITE) !== 0 && !s.pages.writable) throw new SimError('EPERM', op, 'a writable map of pages mapped read-only');
      if ((s.startByte % PAGE) % this.iovaAlignment !== 0n) throw new SimError('EINVAL', op, 'the user address offset breaks the IOAS alignment');
      areas.push(new IoptArea(cur, cur + s.length - 1n, s.pages, s.startByte, prot));
      cur += s.length;
    }
    const done: IoptArea[] = [];
    try {
      for (const a of areas) {
        this._fillArea(op, a);
        done.push(a);
      }
    } catch (e) {
      for (const a of done) this._unfillArea(a);
      throw e;
    }
    for (const a of areas) {
      a.pages.users++;
      this._areas.splice(this._lowerBound(a.iova), 0, a);
    }
    return at;
  }

  /**
   * iopt_get_pages: the page slices behind [iova, iova + length), which contiguous areas must
   * cover completely (IOMMU_IOAS_COPY's source).
   * @throws {@link index!SimError} EINVAL length 0; EOVERFLOW wraps; ENOENT a hole or a range end inside nothing.
   */
  getPages(op: string, iova: bigint, length: bigint): { pages: IoptPages; startByte: bigint; length: bigint }[] {
    if (length === 0n) throw new SimError('EINVAL', op, 'length is 0');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new SimError('EOVERFLOW', op, 'src_iova + length wraps');
    const out: { pages: IoptPages; startByte: bigint; length: bigint }[] = [];
    let cur = iova;
    for (const a of this.areasIn(iova, last)) {
      if (a.iova > cur) break;
      const end = a.last < last ? a.last : last;
      out.push({ pages: a.pages, startByte: a.startByte + (cur - a.iova), length: end - cur + 1n });
      if (end === last) return out;
      cur = end + 1n;
    }
    throw new SimError('ENOENT', op, `[0x${iova.toString(16)}, 0x${last.toString(16)}] is not fully mapped`);
  }

  /**
   * iopt_unmap_iova_range: removes every area inside [start, last]; returns the bytes unmapped.
   * @throws {@link index!SimError} ENOENT when an area crosses either end of the range (nothing is
   * unmapped) or when no area is inside it.
   */
  unmapRange(op: string, start: bigint, last: bigint, onUnmap?: (a: IoptArea) => void): bigint {
    const hit = this.areasIn(start, last);
    for (const a of hit) {
      if (a.iova < start || a.last > last) {
        throw new SimError('ENOENT', op, `the range [0x${start.toString(16)}, 0x${last.toString(16)}] cuts the area [0x${a.iova.toString(16)}, 0x${a.last.toString(16)}]: only whole areas unmap`);
      }
    }
    if (hit.length === 0) throw new SimError('ENOENT', op, `nothing is mapped in [0x${start.toString(16)}, 0x${last.toString(16)}]`);
    let bytes = 0n;
    for (const a of hit) {
      onUnmap?.(a);
      this._unfillArea(a);
      this._areas.splice(this._areas.indexOf(a), 1);
      a.pages.users--;
      bytes += a.length;
    }
    return bytes;
  }

  /** iopt_unmap_all: every area; 0 when there is none. */
  unmapAll(op: string, onUnmap?: (a: IoptArea) => void): bigint {
    return this._areas.length === 0 ? 0n : this.unmapRange(op, 0n, ULONG_MAX, onUnmap);
  }

  /**
   * iopt_set_allow_iova: replaces the allowed ranges (validated by the caller).
   * @throws {@link index!SimError} EADDRINUSE when one intersects a reserved range (nothing changes).
   */
  setAllowed(op: string, ranges: readonly IovaSpan[]): void {
    for (const r of ranges) {
      if (this._reservedFirst(r.start, r.last)) throw new SimError('EADDRINUSE', op, `[0x${r.start.toString(16)}, 0x${r.last.toString(16)}] intersects a reserved range`);
    }
    this._allowed = [...ranges].sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  /**
   * iopt_reserve_iova.
   * @throws {@link index!SimError} EADDRINUSE when an area or an allowed range intersects it.
   */
  reserve(op: string, start: bigint, last: bigint, owner: object): void {
    if (this.areaFirst(start, last) || this._allowed.some((a) => a.start <= last && a.last >= start)) {
      throw new SimError('EADDRINUSE', op, `[0x${start.toString(16)}, 0x${last.toString(16)}] must be reserved but is mapped or allowed`);
    }
    this._reserved.push({ start, last, owner });
    this._reserved.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  /** __iopt_remove_reserved_iova: drops every range `owner` reserved. */
  removeReserved(owner: object): void {
    this._reserved = this._reserved.filter((r) => r.owner !== owner);
  }

  /** IOMMU_IOAS_IOVA_RANGES: the holes between reserved ranges over [0, ULONG_MAX]. */
  usableRanges(): IovaSpan[] {
    return holes(this._reserved, 0n, ULONG_MAX);
  }

  /**
   * iopt_table_add_domain: the domain's alignment and aperture are imposed on the IOAS and every
   * area is mapped into it. On a throw nothing changed.
   * @throws {@link index!SimError} EINVAL when the domain's smallest page is larger than PAGE_SIZE;
   * EADDRINUSE when an area breaks the new alignment or lies outside the aperture; EFAULT when
   * pinning the pages fails; the domain's map errors.
   */
  addDomain(op: string, domain: IommuDomain): void {
    const min = lowBit(domain.pgsizeBitmap);
    const align = min > this.iovaAlignment ? min : this.iovaAlignment;
    if (align > PAGE) throw new SimError('EINVAL', op, `the domain's smallest page 0x${min.toString(16)} is larger than PAGE_SIZE`);
    if (align !== this.iovaAlignment) this._checkAlignment(op, align);
    // With no domain yet no area is stored: the first domain pins every area's pages.
    const first = this._domains.length === 0;
    try {
      if (domain.apertureEnd !== ULONG_MAX) this.reserve(op, domain.apertureEnd + 1n, ULONG_MAX, domain);
      const filled: IoptArea[] = [];
      try {
        for (const a of this._areas) {
          if (first) this._storeAndMap(op, a, [domain]);
          else this._mapArea(a, domain);
          filled.push(a);
        }
      } catch (e) {
        for (const a of filled) {
          domain.unmap(a.iova, a.length);
          if (first) {
            a.stored = false;
            a.pages.unstore();
          }
        }
        throw e;
      }
    } catch (e) {
      this.removeReserved(domain);
      throw e;
    }
    this.iovaAlignment = align;
    this._domains.push(domain);
  }

  /** iopt_table_remove_domain: unmaps every area from it, drops its reservations, recomputes the alignment. */
  removeDomain(domain: IommuDomain): void {
    const i = this._domains.indexOf(domain);
    if (i < 0) return;
    this._domains.splice(i, 1);
    for (const a of this._areas) {
      if (!a.stored) continue;
      domain.unmap(a.iova, a.length);
      if (this._domains.length === 0) {
        a.stored = false;
        a.pages.unstore();
      }
    }
    this.removeReserved(domain);
    let align = 1n;
    for (const d of this._domains) if (lowBit(d.pgsizeBitmap) > align) align = lowBit(d.pgsizeBitmap);
    this.iovaAlignment = align;
  }

  /** iopt_check_iova_alignment. */
  private _checkAlignment(op: string, align: bigint): void {
    for (const a of this._areas) {
      if (a.iova % align !== 0n || a.length % align !== 0n || a.pageOffset % align !== 0n) {
        throw new SimError('EADDRINUSE', op, `the area at 0x${a.iova.toString(16)} is not aligned to 0x${align.toString(16)}`);
      }
    }
  }

  /** iopt_area_fill_domains: a new area into every domain (pinning its pages when there is one). */
  private _fillArea(op: string, a: IoptArea): void {
    if (this._domains.length > 0) this._storeAndMap(op, a, this._domains);
  }

  private _unfillArea(a: IoptArea): void {
    if (!a.stored) return;
    for (const d of this._domains) d.unmap(a.iova, a.length);
    a.stored = false;
    a.pages.unstore();
  }

  /** Pins the area's pages (when not yet) and maps it into each of `domains`; undone on a throw. */
  private _storeAndMap(op: string, a: IoptArea, domains: readonly IommuDomain[]): void {
    a.pages.store(op);
    const mapped: IommuDomain[] = [];
    try {
      for (const d of domains) {
        this._mapArea(a, d);
        mapped.push(d);
      }
    } catch (e) {
      for (const d of mapped) d.unmap(a.iova, a.length);
      a.pages.unstore();
      throw e;
    }
    a.stored = true;
  }

  /** Maps a stored area into one domain, one iommu_map per physically contiguous run (batch_to_domain). */
  private _mapArea(a: IoptArea, d: IommuDomain): void {
    const firstPage = Number(a.startByte / PAGE);
    const n = Number(a.length / PAGE);
    let runStart = 0;
    try {
      for (let i = 1; i <= n; i++) {
        if (i < n && a.pages.pa(firstPage + i) === a.pages.pa(firstPage + i - 1) + PAGE) continue;
        d.map(a.iova + BigInt(runStart) * PAGE, a.pages.pa(firstPage + runStart), BigInt(i - runStart) * PAGE, a.prot);
        runStart = i;
      }
    } catch (e) {
      if (runStart > 0) d.unmap(a.iova, BigInt(runStart) * PAGE);
      throw e;
    }
  }
}
