/**
 * The P2P exporter mapping helper, as Linux has it in drivers/dma-buf/dma-buf-mapping.c
 * (dma_buf_phys_vec_to_sgt / dma_buf_free_sgt): an exporter of MMIO memory (a BAR, device memory
 * without struct pages) hands over the attachment, the provider and the physical ranges; the
 * helper decides pci_p2pdma_map_type(provider, importer) and builds the table:
 *  - BUS_ADDR: the PCI bus address of each range (pci_p2pdma_bus_addr_map), nothing mapped; the
 *    importer's DMA goes through the switch and never reaches the IOMMU.
 *  - THRU_HOST_BRIDGE: each piece mapped on the importer's DMA API device (dma_map_phys with
 *    DMA_ATTR_MMIO, here dma_map_resource): an IOVA in its domain, or the address itself when
 *    DMA is direct.
 *  - NOT_SUPPORTED (no path, or not a PCI device): EINVAL, as the kernel's `default:` case.
 * Entries carry no page and the table has orig_nents 0 (no CPU list). A failure part-way unmaps
 * everything already mapped, so the call is all or nothing; dma_buf_free_sgt undoes a success.
 */
import { SimError } from '../../bindings/errors.js';
import { SgTable, type DmaBufAttachment } from '../dma-buf/index.js';
import type { DmaDevice as DmaApiDevice } from '../dma-mapping/index.js';
import type { P2pMapType, PciFunction } from '../pci/index.js';
import { importerDmaDevice, importerPciFunction, type KitHost } from './importer.js';

const PAGE = 4096n;
/** sg->length is an unsigned int: the longest page-aligned entry. */
export const SG_MAX_SEGMENT = 0xffff_f000n;

/** struct dma_buf_phys_vec: one physical range of the provider's memory. */
export interface PhysRange {
  readonly phys: bigint;
  readonly length: bigint;
}

/** Options of {@link dmaBufPhysVecToSgt}. */
export interface P2pSgtOptions {
  /** Longest entry the exporter makes, rounded down to a page. @default SG_MAX_SEGMENT */
  maxSegment?: bigint;
  /**
   * Also keep each entry within the importer's dma_get_max_seg_size (rounded down to a page;
   * EINVAL when below a page). The kernel helper cuts only at UINT_MAX; exporters whose kernel
   * code does not look at the importer's limit pass false. @default true
   */
  importerMaxSegment?: boolean;
  /**
   * Map through the importer's DMA API even for a BUS_ADDR peer, as drivers that call
   * dma_map_resource for every peer do (habanalabs, amdgpu_vram_mgr_alloc_sgt). NOT_SUPPORTED is
   * still refused. @default false
   */
  alwaysMapResource?: boolean;
  /** Operation named by errors. @default 'dma_buf_phys_vec_to_sgt' */
  op?: string;
  /** Rule id carried by errors. */
  rule?: string;
}

interface Mapping {
  readonly dma: bigint;
  readonly length: number;
}

/**
 * The table dma_buf_phys_vec_to_sgt returns (struct dma_buf_dma: the sg_table with what is needed
 * to undo it). Free it with dmaBufFreeSgt.
 */
export class P2pSgTable extends SgTable {
  /** The map type the table was built for. */
  readonly mapType: 'BUS_ADDR' | 'THRU_HOST_BRIDGE';
  /** The DMA API device the entries are mapped on; null when nothing was mapped (bus addresses). */
  readonly dmaDevice: DmaApiDevice | null;
  readonly #mappings: readonly Mapping[];
  #freed = false;

  /** @internal Made by dmaBufPhysVecToSgt. */
  constructor(mapType: 'BUS_ADDR' | 'THRU_HOST_BRIDGE', dmaDevice: DmaApiDevice | null, mappings: readonly Mapping[]) {
    super(mappings.map((m) => ({ dmaAddress: m.dma, length: m.length, page: null })), { origNents: 0 });
    this.mapType = mapType;
    this.dmaDevice = dmaDevice;
    this.#mappings = mappings;
  }

  /** dma_buf_free_sgt has run on the table (its mappings are gone). */
  get freed(): boolean {
    return this.#freed;
  }

  /** @internal dma_buf_free_sgt: unmaps every entry made on a DMA device, once. */
  static free(sgt: P2pSgTable, dir: number, op: string): void {
    if (sgt.#freed) throw new SimError('EINVAL', op, 'the table was already freed');
    sgt.#freed = true;
    if (sgt.dmaDevice) for (const m of sgt.#mappings) sgt.dmaDevice.unmapResource(m.dma, m.length, dir);
  }
}

/**
 * pci_p2pdma_map_type(provider, attach->dev): the kernel's decision for the pair (the provider
 * being a P2PDMA provider by exporting, as pcim_p2pdma_provider makes it); NOT_SUPPORTED when the
 * importer is not a PCI device (no PCI function above it).
 */
export function p2pMapType(host: KitHost, provider: PciFunction, att: DmaBufAttachment): P2pMapType {
  const client = importerPciFunction(att.dev);
  return client ? host.p2pdma.decide(provider, client).mapType : 'NOT_SUPPORTED';
}

/**
 * dma_buf_phys_vec_to_sgt: the table of `ranges` (in buffer order) of `provider`'s memory for
 * `att`. Errors, with nothing left mapped: EINVAL for no ranges, a range outside the provider's
 * memory BARs, a segment limit below a page, NOT_SUPPORTED, or an importer without a DMA API
 * device on the THRU_HOST_BRIDGE path; ENOMEM when a mapping fails (IOVA space, DMA mask).
 * @throws {@link SimError} EINVAL for a missing provider, no ranges, a bad range or one not inside one memory
 * BAR, NOT_SUPPORTED, no DMA API device on THRU_HOST_BRIDGE, or a segment limit below a page.
 * @throws {@link SimError} ENOMEM when a dma_map_resource fails; what the DMA API device's mapResource throws.
 */
export function dmaBufPhysVecToSgt(
  host: KitHost,
  att: DmaBufAttachment,
  provider: PciFunction,
  ranges: readonly PhysRange[],
  dir: number,
  opts: P2pSgtOptions = {},
): P2pSgTable {
  const op = opts.op ?? 'dma_buf_phys_vec_to_sgt';
  const rule = opts.rule;
  if (!provider) throw new SimError('EINVAL', op, 'no P2PDMA provider (the helper is for MMIO memory only)', rule);
  if (!Array.isArray(ranges) || ranges.length === 0) throw new SimError('EINVAL', op, 'no physical ranges', rule);
  ranges.forEach((r, i) => {
    if (typeof r?.phys !== 'bigint' || typeof r.length !== 'bigint' || r.phys < 0n || r.length <= 0n) {
      throw new SimError('EINVAL', op, `ranges[${i}]: phys and length must be bigints, length > 0`, rule);
    }
    // Both ends inside one memory BAR (pci_p2pdma_bus_addr_map's EINVAL otherwise).
    const a = host.p2pdma.busAddressOf(provider, r.phys);
    const b = host.p2pdma.busAddressOf(provider, r.phys + r.length - 1n);
    if (b - a !== r.length - 1n) throw new SimError('EINVAL', op, `ranges[${i}] spans two BARs of ${provider.name}`, rule);
  });

  let type = p2pMapType(host, provider, att);
  if (type === 'NOT_SUPPORTED') {
    throw new SimError('EINVAL', op, `no P2P path from ${provider.name} to ${att.dev.name} (map type NOT_SUPPORTED)`, rule);
  }
  if (type === 'BUS_ADDR' && opts.alwaysMapResource) type = 'THRU_HOST_BRIDGE';
  const dma = type === 'THRU_HOST_BRIDGE' ? importerDmaDevice(host, att.dev) : null;
  if (type === 'THRU_HOST_BRIDGE' && !dma) throw new SimError('EINVAL', op, `${att.dev.name} has no DMA device`, rule);

  let seg = opts.maxSegment ?? SG_MAX_SEGMENT;
  if (typeof seg !== 'bigint') throw new SimError('EINVAL', op, 'maxSegment must be a bigint', rule);
  if (opts.importerMaxSegment ?? true) {
    const imp = (dma ?? importerDmaDevice(host, att.dev))?.maxSegmentSize;
    if (imp !== undefined && BigInt(imp) < seg) seg = BigInt(imp);
  }
  seg -= seg % PAGE;
  if (seg < PAGE) throw new SimError('EINVAL', op, `max segment size ${seg} is below PAGE_SIZE`, rule);

  const mapped: Mapping[] = [];
  const undo = () => {
    if (dma) for (const m of mapped) dma.unmapResource(m.dma, m.length, dir);
  };
  for (const r of ranges) {
    for (let at = 0n; at < r.length; at += seg) {
      const len = r.length - at < seg ? r.length - at : seg;
      const phys = r.phys + at;
      if (!dma) {
        mapped.push({ dma: host.p2pdma.busAddressOf(provider, phys), length: Number(len) });
        continue;
      }
      let addr: bigint;
      try {
        addr = dma.mapResource(phys, Number(len), dir);
      } catch (e) {
        undo();
        throw e;
      }
      if (dma.mappingError(addr) !== 0) {
        undo();
        throw new SimError('ENOMEM', op, `dma_map_resource of 0x${phys.toString(16)} (+0x${len.toString(16)}) for ${att.dev.name} failed`, rule);
      }
      mapped.push({ dma: addr, length: Number(len) });
    }
  }
  return new P2pSgTable(type, dma, mapped);
}

/**
 * dma_buf_free_sgt: unmaps a table of dmaBufPhysVecToSgt (nothing to do for bus addresses).
 * EINVAL for a table the helper did not make, or one already freed.
 * @throws {@link SimError} EINVAL for a table not made by {@link dmaBufPhysVecToSgt}, or one already freed.
 */
export function dmaBufFreeSgt(_att: DmaBufAttachment, sgt: SgTable, dir: number, op = 'dma_buf_free_sgt'): void {
  if (!(sgt instanceof P2pSgTable)) throw new SimError('EINVAL', op, 'not a table of dma_buf_phys_vec_to_sgt');
  P2pSgTable.free(sgt, dir, op);
}
