/**
 * The dma-iommu cookie of a paging domain (struct iommu_dma_cookie): its IOVA allocator with the
 * reserved regions, and, in lazy mode, the IOVAs that wait for an IOTLB flush before they may be
 * handed out again (Linux's flush queue frees IOVAs only after the flush).
 */
import { ABI, type Core } from '../../bindings/core.js';
import { SimError } from '../../bindings/errors.js';
import type { IommuDomain } from '../iommu/iommu.js';
import { IOVA_MSI_WINDOW, IovaDomain, type IovaDevice } from './iova.js';

/** Reserved regions of a new cookie (iommu_dma_init_domain's reserved-region setup). */
export interface CookieOptions {
  /**
   * Reserve the x86 MSI window 0xfee00000-0xfeefffff (IOMMU_RESV_MSI of VT-d and AMD-Vi).
   * @default true for a VT-d unit, false otherwise (SMMU's software MSI window is managed by
   * the cookie itself and not reserved)
   */
  reserveMsi?: boolean;
  /** Host bridge windows to keep out of the IOVA space (iova_reserve_pci_windows), inclusive ends. */
  pciWindows?: readonly { start: bigint; end: bigint }[];
}

interface Deferred {
  iova: bigint;
  size: bigint;
  /** The unit's flush count when it was queued: free once the count is higher. */
  tag: bigint;
}

const cookies = new WeakMap<IommuDomain, IommuDmaCookie>();

/**
 * The dma-iommu cookie of a paging domain (`struct iommu_dma_cookie`): the {@link IovaDomain}
 * the DMA API allocates IOVAs from, with the reserved regions kept out, and in lazy mode the
 * freed IOVAs held back until the unit's flush queue has been flushed. One per domain; get it
 * with {@link IommuDmaCookie.of}.
 */
export class IommuDmaCookie {
  /** The domain's IOVA allocator (cookie->iovad). */
  readonly iovad: IovaDomain;
  /** Last IOVA byte the domain can translate (geometry.aperture_end). */
  readonly apertureEnd: bigint;
  private readonly _deferred: Deferred[] = [];
  private _deferredHead = 0;
  private readonly _fqFlushesAt: number;

  private constructor(
    private readonly _core: Core,
    /** The paging domain this cookie belongs to. */
    readonly domain: IommuDomain,
    opts: CookieOptions,
  ) {
    this.iovad = new IovaDomain(ABI.PAGE_SIZE, 1);
    this.apertureEnd = domain.apertureEnd;
    this._fqFlushesAt = (_core.layout.units + domain.unit.id * ABI.UNIT_STRIDE + ABI.UNIT_STAT_FQ_FLUSHES) >> 3;
    if (opts.reserveMsi ?? domain.unit.family === 'vtd') {
      if (IOVA_MSI_WINDOW.start <= this.apertureEnd) {
        this.iovad.reserveRange(IOVA_MSI_WINDOW.start, IOVA_MSI_WINDOW.end - IOVA_MSI_WINDOW.start + 1n);
      }
    }
    for (const w of opts.pciWindows ?? []) this.reserve(w.start, w.end);
  }

  /**
   * iommu_get_dma_cookie + iommu_dma_init_domain: the cookie of a paging domain, created on
   * first use with `opts`; later calls return it unchanged.
   * @throws {@link SimError} ENODEV for a non-paging (identity or blocked) domain; EINVAL for a
   *   bad `pciWindows` entry.
   */
  static of(core: Core, domain: IommuDomain, opts: CookieOptions = {}): IommuDmaCookie {
    let c = cookies.get(domain);
    if (c) return c;
    if (domain.type !== 'paging') throw new SimError('ENODEV', 'iommu_dma_init_domain', `domain ${domain.id} is ${domain.type}, not a DMA (paging) domain`);
    c = new IommuDmaCookie(core, domain, opts);
    cookies.set(domain, c);
    return c;
  }

  /**
   * reserve_iova over [start, end] (inclusive), clipped to the aperture.
   * @throws {@link SimError} EINVAL unless `start <= end` are non-negative bigints, or when the
   *   range overlaps a live allocation.
   */
  reserve(start: bigint, end: bigint): void {
    if (typeof start !== 'bigint' || typeof end !== 'bigint' || start < 0n || end < start) {
      throw new SimError('EINVAL', 'iova_reserve_pci_windows', 'window needs bigint start <= end');
    }
    if (start > this.apertureEnd) return;
    const e = end > this.apertureEnd ? this.apertureEnd : end;
    this.iovad.reserveRange(start & ~4095n, (e | 4095n) - (start & ~4095n) + 1n);
  }

  /** IOVAs waiting for a flush (lazy domains). */
  get deferredCount(): number {
    return this._deferred.length - this._deferredHead;
  }

  /** Releases the IOVAs whose IOTLB entries a flush has since invalidated. Returns how many. */
  releaseFlushed(): number {
    if (this._deferredHead === this._deferred.length) return 0;
    const now = this._core.views.u64[this._fqFlushesAt]!;
    let n = 0;
    while (this._deferredHead < this._deferred.length && this._deferred[this._deferredHead]!.tag < now) {
      const d = this._deferred[this._deferredHead++]!;
      this.iovad.freeIova(d.iova, d.size);
      n++;
    }
    if (this._deferredHead === this._deferred.length) {
      this._deferred.length = 0;
      this._deferredHead = 0;
    }
    return n;
  }

  /**
   * iommu_dma_alloc_iova: `size` bytes (granule multiple) below min(dmaLimit, aperture end).
   * Returns null when the space is exhausted.
   * @throws {@link SimError} EINVAL for a non-positive size.
   */
  alloc(size: bigint, dmaLimit: bigint, dev?: IovaDevice): bigint | null {
    this.releaseFlushed();
    const limit = dmaLimit < this.apertureEnd ? dmaLimit : this.apertureEnd;
    if (limit >> 12n < 1n) return null;
    return this.iovad.allocIova(size, limit, dev ? { device: dev } : {});
  }

  /**
   * iommu_dma_free_iova after an unmap: strict domains free at once; lazy ones keep the range
   * until the unit's flush queue has been flushed. `afterUnmap` false (an error path that never
   * mapped it) frees at once in both modes.
   * @throws {@link SimError} EINVAL (when freed at once) for a range that is not a live allocation
   *   of that size.
   */
  free(iova: bigint, size: bigint, afterUnmap = true): void {
    if (this.domain.strict || !afterUnmap) {
      this.iovad.freeIova(iova, size);
      return;
    }
    this._deferred.push({ iova, size, tag: this._core.views.u64[this._fqFlushesAt]! });
  }
}
