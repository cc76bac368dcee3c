import { SimError } from '../../bindings/errors.js';

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

export interface SgTableOptions {
  /** Entries valid for DMA (after IOMMU merging). @default entries.length */
  nents?: number;
  /** Entries of the CPU list before mapping. @default entries.length (habanalabs P2P uses 0) */
  origNents?: number;
}

/**
 * struct sg_table as returned by map_dma_buf: the importer owns it until it unmaps it (DB-12).
 * Only the first `nents` entries are valid for DMA.
 */
export class SgTable {
  readonly entries: readonly SgEntry[];
  readonly nents: number;
  readonly origNents: number;

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
    this.entries = Object.freeze(entries.map((e) => Object.freeze({ ...e })));
    this.nents = nents;
    this.origNents = origNents;
  }

  /** The entries a device may use: the first `nents`. */
  dmaSegments(): readonly SgEntry[] {
    return this.entries.slice(0, this.nents);
  }

  /** Sum of the DMA lengths. */
  totalLength(): bigint {
    return this.dmaSegments().reduce((s, e) => s + BigInt(e.length), 0n);
  }

  /** True when no DMA entry has a struct page (P2P memory). */
  isPageless(): boolean {
    return this.dmaSegments().every((e) => e.page === null);
  }
}
