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

/** Entry counts of a table built from plain entries (sg_table nents and orig_nents). */
export interface SgTableOptions {
  /** Entries valid for DMA (after IOMMU merging). @default entries.length */
  nents?: number;
  /** Entries of the CPU list before mapping. @default entries.length (habanalabs P2P uses 0) */
  origNents?: number;
}

/**
 * struct sg_table as returned by map_dma_buf: the importer owns it until it unmaps it (DB-12).
 * Only the first `nents` entries are valid for DMA.
 *
 * One concept, two faces, as in the kernel: a table made with `SgTable.fromScatterList` is a view
 * of the DMA mapping layer's ScatterList, which holds both the CPU (page) side, `origNents`
 * entries of page + offset + length, and the DMA side, `nents` entries of bus address + length
 * after IOMMU merging. `entries` reads the DMA side (with each CPU entry's page where it has one);
 * `sgl` is the list itself for exporters that need the page side (to unmap or sync it). Tables
 * built from plain entries (P2P exporters mapping BAR ranges with dma_map_resource) have no
 * page side: `sgl` is null.
 */
export class SgTable {
  /** sgt->nents: entries valid for DMA. */
  readonly nents: number;
  /** sgt->orig_nents: entries of the CPU list before mapping. */
  readonly origNents: number;
  /** The ScatterList this table is a view of, or null for a table of plain entries. */
  readonly sgl: ScatterList | null;
  private _entries: readonly SgEntry[] | null;

  /**
   * A table of plain DMA entries (what a P2P exporter builds with dma_map_resource); entries are
   * copied and frozen.
   * @throws {@link SimError} EINVAL when nents is outside 0..entries.length, origNents is
   * negative, or an entry has a negative or non-bigint address or a length <= 0 (DB-12).
   */
  constructor(entries: readonly SgEntry[], opts: SgTableOptions = {}) {
    const nents = opts.nents ?? entries.length;
    const origNents = opts.origNents ?? entries.length;
    const op = 'SgTable';
    if (!Number.isSafeInteger(nents) || nents < 0 || nents > entries.length) {
      throw new SimError('EINVAL', op, `nents must be within 0..${entries.length}, got ${nents}`, 'DB-12');
    }
    if (!Number.isSafeInteger(origNents) || origNents < 0) {
      throw new SimError('EINVAL', op, `origNents must be a non-negative integer, got ${origNents}`, 'DB-12');
    }
    entries.forEach((e, i) => {
      if (typeof e.dmaAddress !== 'bigint' || e.dmaAddress < 0n) {
        throw new SimError('EINVAL', op, `entries[${i}].dmaAddress must be a non-negative bigint`, 'DB-12');
      }
      if (BigInt(e.length) <= 0n) {
        throw new SimError('EINVAL', op, `entries[${i}].length must be positive, got ${e.length}`, 'DB-12');
      }
    });
    this._entries = Object.freeze(entries.map((e) => Object.freeze({ ...e })));
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
    Object.assign(t, { nents: sgl.nents, origNents: sgl.origNents, sgl, _entries: null });
    return t;
  }

  /** The table's entries (the first `nents` are the DMA segments). */
  get entries(): readonly SgEntry[] {
    this._entries ??= Object.freeze(this.sgl!.dmaSegments().map((e) => Object.freeze({ ...e })));
    return this._entries;
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
    return this.dmaSegments().reduce((s, e) => s + BigInt(e.length), 0n);
  }

  /** True when no DMA entry has a struct page (P2P memory). */
  isPageless(): boolean {
    return this.dmaSegments().every((e) => e.page === null);
  }
}
