/**
 * P2PDMA memory: pci_p2pdma_add_resource() turns part of a BAR into ZONE_DEVICE pages
 * (MEMORY_DEVICE_PCI_P2PDMA) and adds it to the provider's genpool, from which
 * pci_alloc_p2pmem() hands out page-granular pieces. Pages are created on first look-up, so a
 * 64 GiB BAR costs nothing until its pages are touched.
 */
import { SimError } from '../../bindings/errors.js';
import type { Bar, PciFunction } from './topology.js';

export const PAGE_SHIFT = 12;
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
  readonly zone = 'ZONE_DEVICE' as const;
  readonly pgmapType = 'MEMORY_DEVICE_PCI_P2PDMA' as const;
  /** ZONE_DEVICE pages start free, with a zero refcount. */
  refcount = 0;
  /** @internal */
  constructor(
    readonly pgmap: P2pPagemap,
    readonly pfn: bigint,
  ) {}
  get provider(): PciFunction {
    return this.pgmap.provider;
  }
  get physAddress(): bigint {
    return this.pfn << BigInt(PAGE_SHIFT);
  }
  get busAddress(): bigint {
    return this.pgmap.busStart + (this.physAddress - this.pgmap.start);
  }
  get(): void {
    this.refcount++;
  }
  put(): void {
    if (this.refcount === 0) throw new SimError('EINVAL', 'put_page', `refcount of pfn 0x${this.pfn.toString(16)} would go negative`);
    this.refcount--;
  }
}

export function isPciP2pdmaPage(x: unknown): x is P2pPage {
  return x instanceof P2pPage;
}

/** A chunk of the genpool: one added range, with free extents kept in page units. */
interface Chunk {
  readonly cpuStart: bigint;
  readonly busStart: bigint;
  readonly size: bigint;
  /** Sorted, disjoint free extents [start, end) in pages from cpuStart. */
  free: Array<[number, number]>;
  avail: bigint;
}

/**
 * lib/genalloc.c with min_alloc_order = PAGE_SHIFT and the first-fit algorithm. The pool maps
 * "virtual" (here the CPU physical address, as memremap gives a linear mapping) to "physical",
 * which P2PDMA fills with the PCI bus address.
 */
export class GenPool {
  /** Newest first: gen_pool_add puts new chunks at the head of the list. */
  private readonly chunks: Chunk[] = [];

  add(cpuStart: bigint, busStart: bigint, size: bigint): void {
    const pages = Number(size >> BigInt(PAGE_SHIFT));
    this.chunks.unshift({ cpuStart, busStart, size, free: pages > 0 ? [[0, pages]] : [], avail: BigInt(pages) << BigInt(PAGE_SHIFT) });
  }

  /** gen_pool_size() */
  size(): bigint {
    return this.chunks.reduce((s, c) => s + c.size, 0n);
  }

  /** gen_pool_avail() */
  avail(): bigint {
    return this.chunks.reduce((s, c) => s + c.avail, 0n);
  }

  /** First fit; null when nothing fits (gen_pool_alloc returns 0). */
  alloc(size: bigint): { cpu: bigint; bus: bigint; size: bigint } | null {
    if (size <= 0n) return null;
    const nbits = Number((size + PAGE_SIZE - 1n) >> BigInt(PAGE_SHIFT));
    const rounded = BigInt(nbits) << BigInt(PAGE_SHIFT);
    for (const c of this.chunks) {
      if (rounded > c.avail) continue;
      const i = c.free.findIndex(([s, e]) => e - s >= nbits);
      if (i < 0) continue;
      const ext = c.free[i]!;
      const startPage = ext[0];
      if (ext[1] - ext[0] === nbits) c.free.splice(i, 1);
      else ext[0] += nbits;
      c.avail -= rounded;
      const off = BigInt(startPage) << BigInt(PAGE_SHIFT);
      return { cpu: c.cpuStart + off, bus: c.busStart + off, size: rounded };
    }
    return null;
  }

  /** Frees [cpu, cpu+size). The kernel BUG()s on a bad free; here it is EINVAL and changes nothing. */
  free(cpu: bigint, size: bigint, op: string): void {
    const c = this.chunks.find((k) => cpu >= k.cpuStart && cpu < k.cpuStart + k.size);
    if (!c) throw new SimError('EINVAL', op, `0x${cpu.toString(16)} is not in the pool`);
    const off = cpu - c.cpuStart;
    if (off % PAGE_SIZE !== 0n) throw new SimError('EINVAL', op, `0x${cpu.toString(16)} is not page aligned`);
    const start = Number(off >> BigInt(PAGE_SHIFT));
    const nbits = Number((size + PAGE_SIZE - 1n) >> BigInt(PAGE_SHIFT));
    const end = start + nbits;
    if (nbits === 0 || BigInt(end) << BigInt(PAGE_SHIFT) > c.size) throw new SimError('EINVAL', op, `bad size ${size}`);
    if (c.free.some(([s, e]) => start < e && s < end)) {
      throw new SimError('EINVAL', op, `0x${cpu.toString(16)}+${size} was not (entirely) allocated`);
    }
    // Insert and merge with neighbours.
    let i = c.free.findIndex(([s]) => s > start);
    if (i < 0) i = c.free.length;
    c.free.splice(i, 0, [start, end]);
    const merged: Array<[number, number]> = [];
    for (const ext of c.free) {
      const last = merged[merged.length - 1];
      if (last && last[1] === ext[0]) last[1] = ext[1];
      else merged.push([ext[0], ext[1]]);
    }
    c.free = merged;
    c.avail += BigInt(nbits) << BigInt(PAGE_SHIFT);
  }

  /** gen_pool_virt_to_phys(): here CPU address -> bus address; -1n when outside the pool. */
  virtToPhys(cpu: bigint): bigint {
    const c = this.chunks.find((k) => cpu >= k.cpuStart && cpu < k.cpuStart + k.size);
    return c ? c.busStart + (cpu - c.cpuStart) : -1n;
  }
}

/** struct pci_p2pdma: what pcim_p2pdma_init() hangs off a provider. */
export class P2pdmaState {
  /** Null until the first add_resource (pcim_p2pdma_init alone creates no pool). */
  pool: GenPool | null = null;
  published = false;
  /** The map_types xarray: cached map type per client, keyed by (segment << 16) | devid. */
  readonly mapTypes = new Map<number, 'NOT_SUPPORTED' | 'BUS_ADDR' | 'THRU_HOST_BRIDGE'>();
  readonly pagemaps: P2pPagemap[] = [];
  /** p2pdma_provider.bus_offset for each memory BAR. */
  readonly busOffsets = new Map<number, bigint>();
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
