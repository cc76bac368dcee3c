/**
 * P2PDMA memory: pci_p2pdma_add_resource() turns part of a BAR into ZONE_DEVICE pages
 * (MEMORY_DEVICE_PCI_P2PDMA) and adds it to the provider's genpool, from which
 * pci_alloc_p2pmem() hands out page-granular pieces. Pages are created on first look-up, so a
 * 64 GiB BAR costs nothing until its pages are touched.
 */
import { SimError } from '../../bindings/errors.js';
import type { Bar, PciFunction } from './topology.js';
// lib/genalloc.c is a leaf library in the kernel; here too (it imports nothing above bindings).
import { GenPool } from '../driver-kit/gen-pool.js';

/** PAGE_SHIFT of the P2PDMA pages (the kernel's 4 KiB page, as a number). */
export const PAGE_SHIFT = 12;
/** PAGE_SIZE of the P2PDMA pages, as a bigint for address arithmetic. */
export const PAGE_SIZE = 1n << BigInt(PAGE_SHIFT);
/** x86-64 with SPARSEMEM_VMEMMAP hot-adds memory in 2 MiB subsections (check_pfn_span). */
export const DEFAULT_SUBSECTION_SIZE = 2n << 20n;
/** x86-64 with 4-level paging: MAX_PHYSMEM_BITS = 46. */
export const DEFAULT_MAX_PHYSMEM_BITS = 46;

/** One registered range: a dev_pagemap of type MEMORY_DEVICE_PCI_P2PDMA. */
export interface P2pPagemap {
  readonly provider: PciFunction;
  readonly bar: Bar;
  /** CPU physical range, inclusive end as in struct range. */
  readonly start: bigint;
  readonly end: bigint;
  /** Bus address of `start`. */
  readonly busStart: bigint;
}

/**
 * The emulator's struct page for P2P memory. RAM pages live in the core's frame database; a
 * page of this class is told apart by `zone` and `pgmapType` (is_pci_p2pdma_page()).
 */
export class P2pPage {
  /** page_zonenum: always ZONE_DEVICE. */
  readonly zone = 'ZONE_DEVICE' as const;
  /** page->pgmap->type: always MEMORY_DEVICE_PCI_P2PDMA. */
  readonly pgmapType = 'MEMORY_DEVICE_PCI_P2PDMA' as const;
  /** ZONE_DEVICE pages start free, with a zero refcount. */
  refcount = 0;
  /** @internal */
  constructor(
    readonly pgmap: P2pPagemap,
    readonly pfn: bigint,
  ) {}
  /** The PCI function whose BAR holds the page (the P2PDMA provider, pgmap->provider). */
  get provider(): PciFunction {
    return this.pgmap.provider;
  }
  /** page_to_phys: the CPU physical address of the page. */
  get physAddress(): bigint {
    return this.pfn << BigInt(PAGE_SHIFT);
  }
  /** The PCI bus address of the page (physical address + the BAR's bus offset): what a BUS_ADDR mapping programs. */
  get busAddress(): bigint {
    return this.pgmap.busStart + (this.physAddress - this.pgmap.start);
  }
  /** get_page: one more reference. */
  get(): void {
    this.refcount++;
  }
  /**
   * put_page: drops a reference (at zero the page is free again, p2pdma_page_free).
   * @throws {@link SimError} EINVAL when the refcount is already 0.
   */
  put(): void {
    if (this.refcount === 0) throw new SimError('EINVAL', 'put_page', `refcount of pfn 0x${this.pfn.toString(16)} would go negative`);
    this.refcount--;
  }
}

/** is_pci_p2pdma_page: true for a ZONE_DEVICE page of PCI P2PDMA memory (a P2pPage). */
export function isPciP2pdmaPage(x: unknown): x is P2pPage {
  return x instanceof P2pPage;
}

/** struct pci_p2pdma: what pcim_p2pdma_init() hangs off a provider. */
export class P2pdmaState {
  /** Null until the first add_resource (pcim_p2pdma_init alone creates no pool). */
  pool: GenPool | null = null;
  /** pci_p2pmem_publish: the memory is offered to other drivers (pci_p2pmem_find_many). */
  published = false;
  /** The map_types xarray: cached map type per client, keyed by (segment << 16) | devid. */
  readonly mapTypes = new Map<number, 'NOT_SUPPORTED' | 'BUS_ADDR' | 'THRU_HOST_BRIDGE'>();
  /** The ranges pci_p2pdma_add_resource registered for this provider. */
  readonly pagemaps: P2pPagemap[] = [];
  /** p2pdma_provider.bus_offset for each memory BAR. */
  readonly busOffsets = new Map<number, bigint>();
  /** pcim_p2pdma_init's state for `provider`, with the bus offsets of its memory BARs. */
  constructor(readonly provider: PciFunction) {
    for (const b of provider.bars) if (b.type === 'mem') this.busOffsets.set(b.index, b.busOffset);
  }
}

/** A piece of P2P memory from pci_alloc_p2pmem(). */
export interface P2pAllocation {
  readonly provider: PciFunction;
  /** The address the kernel hands back (a linear-map VA of the BAR; here its CPU physical address). */
  readonly cpuAddress: bigint;
  /** pci_p2pmem_virt_to_bus() of cpuAddress. */
  readonly busAddress: bigint;
  /** The size asked for (free with the same size). */
  readonly size: bigint;
}
