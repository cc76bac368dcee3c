/**
 * A scatterlist of the DMA mapping layer (struct scatterlist + struct sg_table in one object).
 *
 * The CPU side of entry i is (page frame, offset, length) as sg_set_page() gives it; the DMA side
 * is (dmaAddress, dmaLength), valid for the first `nents` entries once mapped. After an IOMMU
 * mapping merged segments, DMA entry i is unrelated to CPU entry i, exactly as in Linux:
 * importers walk the first `nents` DMA entries, the CPU walks the `origNents` CPU entries.
 *
 * Storage is struct-of-arrays in typed arrays (no object per entry): a 1 GiB list of 4 KiB
 * pages is 262144 entries and the mapping code walks them without allocating. Physical
 * addresses are kept as page frame number (a double, exact for every 64-bit address) plus an
 * in-page offset, so that the per-entry work stays in plain numbers.
 */
import { SimError } from '../../bindings/errors.js';

const PAGE = 4096;
/** sg->length is an unsigned int. */
export const SG_MAX_LENGTH = 0xffff_ffff;

/** The shape of one DMA segment, compatible with src/dma-buf's SgEntry. */
export interface DmaSegment {
  /** sg_dma_address: the address the device uses (an IOVA, a bus address or a physical address). */
  readonly dmaAddress: bigint;
  /** sg_dma_len: bytes. */
  readonly length: number;
  /** The struct page of CPU entry i (its frame number), or null for entries set without one. */
  readonly page: { readonly pfn: bigint } | null;
}

/** Options of {@link ScatterList.set}: what kind of memory the entry describes. */
export interface SgSetOptions {
  /**
   * The P2PDMA provider device owning this memory (is_pci_p2pdma_page): the entry is a BAR page
   * registered with pci_p2pdma_add_resource, and mapping asks the device's P2pResolver how the
   * client reaches it.
   */
  provider?: unknown;
  /** false for memory without struct page (an sg entry filled with a physical address only). */
  hasPage?: boolean;
}

/** @internal State of a live mapping, kept by the device that mapped it. */
export interface SgMappingState {
  readonly device: object;
  readonly dir: number;
  /** IOMMU path: the one IOVA allocation (0n/0 when every segment was a bus address). */
  readonly iova: bigint;
  readonly iovaLen: number;
  /** Direct path: swiotlb bounce slots per CPU entry index. */
  readonly bounced: Map<number, { tlb: bigint; size: number }> | null;
}

/**
 * A DMA-layer scatterlist: `struct sg_table` with its `struct scatterlist` entries, as
 * sg_alloc_table makes it. Fill the CPU side with {@link ScatterList.set} or
 * {@link ScatterList.fromPages}, then map it with {@link DmaDevice.mapSgtable} (dma_map_sgtable);
 * the DMA side is valid for the first {@link ScatterList.nents} entries while mapped.
 */
export class ScatterList {
  /** Number of CPU entries (sg_table.orig_nents). */
  readonly origNents: number;
  /** CPU side: page frame number of each entry's first byte. */
  readonly pfn: Float64Array;
  /** CPU side: offset into that page, 0..4095. */
  readonly offset: Uint32Array;
  /** CPU side: bytes. */
  readonly length: Uint32Array;
  /** DMA side: sg_dma_address of the first `nents` entries. */
  readonly dmaAddress: BigUint64Array;
  /** DMA side: sg_dma_len of the first `nents` entries (0 past them). */
  readonly dmaLength: Uint32Array;
  /** DMA side: sg_dma_is_bus_address (a P2P segment mapped to a PCI bus address, no IOMMU). */
  readonly busAddress: Uint8Array;
  /** DMA entries valid after mapping (sg_table.nents); 0 while unmapped. */
  nents = 0;

  /** @internal little-endian u32 halves of dmaAddress, written without BigInt. */
  readonly _dma32: Uint32Array;
  /** @internal */
  _providers: unknown[] | null = null;
  /** @internal */
  _noPage: Uint8Array | null = null;
  /** @internal */
  _mapping: SgMappingState | null = null;

  /**
   * sg_alloc_table: a list of `nents` empty CPU entries.
   * @throws {@link SimError} EINVAL when `nents` is not an integer in 1..2^27.
   */
  constructor(nents: number) {
    if (!Number.isSafeInteger(nents) || nents < 1 || nents > 2 ** 27) {
      throw new SimError('EINVAL', 'sg_alloc_table', `nents = ${nents} must be an integer in 1..2^27`);
    }
    this.origNents = nents;
    this.pfn = new Float64Array(nents);
    this.offset = new Uint32Array(nents);
    this.length = new Uint32Array(nents);
    this.dmaAddress = new BigUint64Array(nents);
    this._dma32 = new Uint32Array(this.dmaAddress.buffer);
    this.dmaLength = new Uint32Array(nents);
    this.busAddress = new Uint8Array(nents);
  }

  /**
   * sg_alloc_table_from_pages without merging: one entry of `pageSize` bytes per physical address.
   * @throws {@link SimError} EINVAL for an empty list, a page that is not a 4 KiB aligned
   *   bigint, or `pageSize` outside 1..2^32-1.
   */
  static fromPages(pages: readonly bigint[] | BigUint64Array, pageSize = PAGE): ScatterList {
    const sg = new ScatterList(pages.length);
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > SG_MAX_LENGTH) {
      throw new SimError('EINVAL', 'sg_alloc_table_from_pages', `pageSize = ${pageSize} out of range`);
    }
    for (let i = 0; i < pages.length; i++) {
      const pa = pages[i]!;
      if (typeof pa !== 'bigint' || pa < 0n || pa % 4096n !== 0n) {
        throw new SimError('EINVAL', 'sg_alloc_table_from_pages', `pages[${i}] must be a 4 KiB aligned bigint`);
      }
      sg.pfn[i] = Number(pa >> 12n);
      sg.length[i] = pageSize;
    }
    return sg;
  }

  /**
   * sg_set_page / sg_set_buf: CPU entry i covers [phys, phys + length).
   * @throws {@link SimError} EBUSY while the list is mapped; EINVAL for an index out of range,
   *   `phys` not a u64 bigint, `length` outside 1..2^32-1, or a range wrapping past 2^64.
   */
  set(i: number, phys: bigint, length: number, opts: SgSetOptions = {}): this {
    const op = 'sg_set_page';
    this._checkIndex(op, i);
    if (this._mapping) throw new SimError('EBUSY', op, 'the list is mapped; unmap it before changing entries');
    if (typeof phys !== 'bigint' || phys < 0n || phys >= 1n << 64n) throw new SimError('EINVAL', op, `phys must be a bigint in 0..2^64-1`);
    if (!Number.isInteger(length) || length < 1 || length > SG_MAX_LENGTH) {
      throw new SimError('EINVAL', op, `length = ${length} must be an integer in 1..2^32-1`);
    }
    if (phys + BigInt(length) > 1n << 64n) throw new SimError('EINVAL', op, 'phys + length wraps past 2^64');
    this.pfn[i] = Number(phys >> 12n);
    this.offset[i] = Number(phys & 4095n);
    this.length[i] = length;
    if (opts.provider !== undefined) {
      this._providers ??= new Array<unknown>(this.origNents);
      this._providers[i] = opts.provider;
    } else if (this._providers) {
      this._providers[i] = undefined;
    }
    if (opts.hasPage === false) {
      this._noPage ??= new Uint8Array(this.origNents);
      this._noPage[i] = 1;
    } else if (this._noPage) {
      this._noPage[i] = 0;
    }
    return this;
  }

  /**
   * sg_phys of CPU entry i.
   * @throws {@link SimError} EINVAL for an index out of range.
   */
  phys(i: number): bigint {
    this._checkIndex('sg_phys', i);
    return (BigInt(this.pfn[i]!) << 12n) + BigInt(this.offset[i]!);
  }

  /**
   * The P2PDMA provider of CPU entry i, if any.
   * @throws {@link SimError} EINVAL for an index out of range.
   */
  provider(i: number): unknown {
    this._checkIndex('sg_page', i);
    return this._providers?.[i];
  }

  /** Sum of the CPU lengths. */
  cpuLength(): number {
    let s = 0;
    for (let i = 0; i < this.origNents; i++) s += this.length[i]!;
    return s;
  }

  /** Sum of the DMA lengths over `nents`. */
  dmaTotalLength(): number {
    let s = 0;
    for (let i = 0; i < this.nents; i++) s += this.dmaLength[i]!;
    return s;
  }

  /** Whether the list is mapped for DMA (between dma_map_sgtable and dma_unmap_sgtable). */
  get mapped(): boolean {
    return this._mapping !== null;
  }

  /**
   * The first `nents` DMA segments as plain objects, in the shape src/dma-buf's SgTable takes:
   * `new SgTable(sgl.dmaSegments(), { nents: sgl.nents, origNents: sgl.origNents })`.
   * `page` is CPU entry i's frame (null for entries without struct page).
   */
  dmaSegments(): DmaSegment[] {
    const out: DmaSegment[] = [];
    for (let i = 0; i < this.nents; i++) {
      const noPage = this._noPage?.[i] === 1 || i >= this.origNents;
      out.push({
        dmaAddress: this.dmaAddress[i]!, length: this.dmaLength[i]!,
        page: noPage ? null : { pfn: BigInt(this.pfn[i]!) },
      });
    }
    return out;
  }

  /** @internal */
  _setDma(i: number, addr: number): void {
    // addr is a safe integer; split into little-endian halves.
    const hi = Math.floor(addr / 4294967296);
    this._dma32[2 * i] = addr - hi * 4294967296;
    this._dma32[2 * i + 1] = hi;
  }

  /** @internal Clears the DMA side (after unmap or a failed map). */
  _clearDma(): void {
    this.dmaAddress.fill(0xffff_ffff_ffff_ffffn);
    this.dmaLength.fill(0);
    this.busAddress.fill(0);
    this.nents = 0;
  }

  private _checkIndex(op: string, i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.origNents) {
      throw new SimError('EINVAL', op, `index ${i} outside 0..${this.origNents - 1}`);
    }
  }
}
