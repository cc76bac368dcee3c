import { SimError } from '../../bindings/errors.js';
import type { ScatterList } from '../dma-mapping/index.js';

/** The emulator's struct page handle: a page frame number in simulated physical memory. */
export interface PageRef {
  readonly pfn: bigint;
}

/**
 * One scatterlist entry. `dmaAddress`/`length` are what the importer's device uses
 * (sg_dma_address/sg_dma_len). `page` is null for memory without struct pages, such as a peer's
 * BAR (DB-08): importers that allow peer2peer must not touch it.
 */
export interface SgEntry {
  readonly dmaAddress: bigint;
  readonly length: number | bigint;
  readonly page: PageRef | null;
}

/**
 * The DMA side of a table as columns, no object per entry: what a table of thousands of segments
 * is built from and read through. Entry i is `length[i]` bytes at `address[i]`. Writers and
 * readers that want plain numbers go through a Uint32Array over `address.buffer` (little-endian
 * u32 halves). The arrays of a table are its own: read them, do not change them.
 */
export interface SgDmaColumns {
  /** sg_dma_address of each entry. */
  readonly address: BigUint64Array;
  /** sg_dma_len of each entry, bytes (a positive safe integer). */
  readonly length: Float64Array;
}

/** Entry counts of a table built from plain entries (sg_table nents and orig_nents). */
export interface SgTableOptions {
  /** Entries valid for DMA (after IOMMU merging). @default entries.length */
  nents?: number;
  /** Entries of the CPU list before mapping. @default entries.length (habanalabs P2P uses 0) */
  origNents?: number;
}

const U64_LIMIT = 1n << 64n;

/**
 * struct sg_table as returned by map_dma_buf: the importer owns it until it unmaps it (DB-12).
 * Only the first `nents` entries are valid for DMA.
 *
 * One concept, two faces, as in the kernel: a table made with `SgTable.fromScatterList` is a view
 * of the DMA mapping layer's ScatterList, which holds both the CPU (page) side, `origNents`
 * entries of page + offset + length, and the DMA side, `nents` entries of bus address + length
 * after IOMMU merging. `entries` reads the DMA side (with each CPU entry's page where it has one);
 * `sgl` is the list itself for exporters that need the page side (to unmap or sync it). Tables
 * built from plain entries or from columns (P2P exporters mapping BAR ranges) have no page side:
 * `sgl` is null. Whatever it was built from, `dmaColumns()` reads the DMA side without an object
 * per entry, and `entries` makes the objects only when first asked for.
 */
export class SgTable {
  /** sgt->nents: entries valid for DMA. */
  readonly nents: number;
  /** sgt->orig_nents: entries of the CPU list before mapping. */
  readonly origNents: number;
  /** The ScatterList this table is a view of, or null for a table of plain entries. */
  readonly sgl: ScatterList | null;
  private _entries: readonly SgEntry[] | null;
  private _cols: SgDmaColumns | null;

  /**
   * A table of plain DMA entries (what a P2P exporter builds with dma_map_resource); entries are
   * copied and frozen. Given columns instead, the table keeps them (no copy: the caller hands
   * them over) and makes entry objects only when `entries` is first read.
   * @throws {@link SimError} EINVAL when nents is outside 0..entries.length, origNents is
   * negative, an entry has an address that is not a bigint in 0..2^64-1, or a length that is not
   * a positive safe integer (DB-12).
   */
  constructor(entries: readonly SgEntry[] | SgDmaColumns, opts: SgTableOptions = {}) {
    const op = 'SgTable';
    let count: number;
    if (Array.isArray(entries)) {
      count = entries.length;
      for (let i = 0; i < count; i++) {
        const e = entries[i] as SgEntry;
        if (typeof e.dmaAddress !== 'bigint' || e.dmaAddress < 0n || e.dmaAddress >= U64_LIMIT) {
          throw new SimError('EINVAL', op, `entries[${i}].dmaAddress must be a bigint in 0..2^64-1`, 'DB-12');
        }
        const l = e.length;
        if (typeof l === 'bigint' ? l <= 0n || l > BigInt(Number.MAX_SAFE_INTEGER) : !Number.isSafeInteger(l) || l <= 0) {
          throw new SimError('EINVAL', op, `entries[${i}].length must be positive, got ${l}`, 'DB-12');
        }
      }
      this._entries = Object.freeze(entries.map((e) => Object.freeze({ ...e })));
      this._cols = null;
    } else {
      const cols = entries as SgDmaColumns | null;
      if (!cols || !(cols.address instanceof BigUint64Array) || !(cols.length instanceof Float64Array) || cols.address.length !== cols.length.length) {
        throw new SimError('EINVAL', op, 'columns must be a BigUint64Array of addresses and a Float64Array of lengths of one size', 'DB-12');
      }
      count = cols.length.length;
      const len = cols.length;
      for (let i = 0; i < count; i++) {
        const l = len[i]!;
        if (!(l > 0 && l <= Number.MAX_SAFE_INTEGER && Math.floor(l) === l)) {
          throw new SimError('EINVAL', op, `entries[${i}].length must be positive, got ${l}`, 'DB-12');
        }
      }
      this._entries = null;
      this._cols = cols;
    }
    const nents = opts.nents ?? count;
    const origNents = opts.origNents ?? count;
    if (!Number.isSafeInteger(nents) || nents < 0 || nents > count) {
      throw new SimError('EINVAL', op, `nents must be within 0..${count}, got ${nents}`, 'DB-12');
    }
    if (!Number.isSafeInteger(origNents) || origNents < 0) {
      throw new SimError('EINVAL', op, `origNents must be a non-negative integer, got ${origNents}`, 'DB-12');
    }
    this.nents = nents;
    this.origNents = origNents;
    this.sgl = null;
  }

  /**
   * The sg_table of a mapped ScatterList (dma_map_sgtable done): nents and origNents are the
   * list's; the DMA entries are read from it when first used. The list must stay mapped, and so
   * unchanged, while the table is handed out.
   * @throws {@link SimError} EINVAL for a list that is not mapped.
   */
  static fromScatterList(sgl: ScatterList): SgTable {
    if (!sgl || !sgl.mapped) throw new SimError('EINVAL', 'SgTable', 'the scatterlist must be mapped (dma_map_sgtable) first', 'DB-12');
    const t = Object.create(SgTable.prototype) as SgTable;
    Object.assign(t, { nents: sgl.nents, origNents: sgl.origNents, sgl, _entries: null, _cols: null });
    return t;
  }

  /** The table's entries (the first `nents` are the DMA segments). */
  get entries(): readonly SgEntry[] {
    if (this._entries) return this._entries;
    if (this.sgl) {
      this._entries = Object.freeze(this.sgl.dmaSegments().map((e) => Object.freeze({ ...e })));
    } else {
      const { address, length } = this._cols!;
      const out: SgEntry[] = new Array<SgEntry>(length.length);
      for (let i = 0; i < out.length; i++) out[i] = Object.freeze({ dmaAddress: address[i]!, length: length[i]!, page: null });
      this._entries = Object.freeze(out);
    }
    return this._entries;
  }

  /**
   * The DMA side as columns, every entry of the table (the first `nents` are the DMA segments):
   * the table's own arrays for a table built from columns, else made once from its entries or
   * its ScatterList. Read-only.
   */
  dmaColumns(): SgDmaColumns {
    if (this._cols) return this._cols;
    if (this.sgl) {
      const n = this.sgl.nents;
      const length = new Float64Array(n);
      for (let i = 0; i < n; i++) length[i] = this.sgl.dmaLength[i]!;
      this._cols = { address: this.sgl.dmaAddress.slice(0, n), length };
    } else {
      const es = this._entries!;
      const address = new BigUint64Array(es.length);
      const length = new Float64Array(es.length);
      for (let i = 0; i < es.length; i++) {
        address[i] = es[i]!.dmaAddress;
        length[i] = Number(es[i]!.length);
      }
      this._cols = { address, length };
    }
    return this._cols;
  }

  /**
   * The CPU (page) face: the `origNents` physical ranges the table was built from, for a table
   * that is a view of a ScatterList; empty for a table of DMA entries only (no page side).
   */
  cpuSegments(): readonly { readonly phys: bigint; readonly length: number }[] {
    const sgl = this.sgl;
    if (!sgl) return [];
    const out: { phys: bigint; length: number }[] = [];
    for (let i = 0; i < sgl.origNents; i++) out.push({ phys: sgl.phys(i), length: sgl.length[i]! });
    return out;
  }

  /** The entries a device may use: the first `nents`. */
  dmaSegments(): readonly SgEntry[] {
    return this.entries.slice(0, this.nents);
  }

  /** Sum of the DMA lengths. */
  totalLength(): bigint {
    if (this.sgl) return BigInt(this.sgl.dmaTotalLength());
    if (this._cols) {
      let s = 0;
      for (let i = 0; i < this.nents; i++) s += this._cols.length[i]!;
      if (s <= Number.MAX_SAFE_INTEGER) return BigInt(s);
    }
    return this.dmaSegments().reduce((s, e) => s + BigInt(e.length), 0n);
  }

  /** True when no DMA entry has a struct page (P2P memory). */
  isPageless(): boolean {
    if (!this.sgl && !this._entries) return true; // columns carry no pages
    return this.dmaSegments().every((e) => e.page === null);
  }
}
