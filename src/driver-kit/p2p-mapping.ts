/**
 * The P2P exporter mapping helper, as Linux has it in drivers/dma-buf/dma-buf-mapping.c
 * (dma_buf_phys_vec_to_sgt / dma_buf_free_sgt): an exporter of MMIO memory (a BAR, device memory
 * without struct pages) hands over the attachment, the provider and the physical ranges; the
 * helper decides pci_p2pdma_map_type(provider, importer) and builds the table:
 *  - BUS_ADDR: the PCI bus address of each range (pci_p2pdma_bus_addr_map), nothing mapped; the
 *    importer's DMA goes through the switch and never reaches the IOMMU.
 *  - THRU_HOST_BRIDGE behind an IOMMU: dma_iova_try_alloc of the whole size, then every range
 *    linked into that one IOVA range (dma_iova_link + dma_iova_sync, DMA_ATTR_MMIO) with one
 *    batched map of the core; the entries are slices of the one range. When the IOVA cannot be
 *    had in one piece (no room), or a range is not page-aligned, each piece is mapped on its own
 *    (dma_map_phys with DMA_ATTR_MMIO, here dma_map_resource), as the kernel falls back.
 *  - THRU_HOST_BRIDGE with direct DMA: each piece's address is the physical address itself.
 *  - NOT_SUPPORTED (no path, or not a PCI device): EINVAL, as the kernel's `default:` case.
 * Entries carry no page and the table has orig_nents 0 (no CPU list). A failure part-way unmaps
 * everything already mapped (and frees the IOVA), so the call is all or nothing;
 * dma_buf_free_sgt undoes a success.
 */
import { SimError } from '../../bindings/errors.js';
import { SgTable, type DmaBufAttachment, type SgDmaColumns, type SgEntry } from '../dma-buf/index.js';
import { isPhysVec, physVecBytes, type DmaDevice as DmaApiDevice, type DmaIovaState, type PhysRange, type PhysVec } from '../dma-mapping/index.js';
import type { P2pMapType, PciFunction } from '../pci/index.js';
import { importerDmaDevice, importerPciFunction, type KitHost } from './importer.js';

const PAGE = 4096n;
/** 2^53: below it a bigint converts to a number exactly. */
const SAFE = 1n << 53n;
/** 2^64: no range may end past it. */
const U64_END = 1n << 64n;
/** sg->length is an unsigned int: the longest page-aligned entry. */
export const SG_MAX_SEGMENT = 0xffff_f000n;

export type { PhysRange, PhysVec };

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

/** How a table was mapped: nothing (bus addresses), one IOVA state, or one mapping per entry. */
type TableMapping = { readonly state: DmaIovaState } | { readonly pieces: readonly Mapping[] } | null;

/**
 * The table dma_buf_phys_vec_to_sgt returns (struct dma_buf_dma: the sg_table with what is needed
 * to undo it). Free it with dmaBufFreeSgt.
 */
export class P2pSgTable extends SgTable {
  /** The map type the table was built for. */
  readonly mapType: 'BUS_ADDR' | 'THRU_HOST_BRIDGE';
  /** The DMA API device the entries are mapped on; null when nothing was mapped (bus addresses). */
  readonly dmaDevice: DmaApiDevice | null;
  readonly #mapping: TableMapping;
  #freed = false;

  /** @internal Made by dmaBufPhysVecToSgt. */
  constructor(mapType: 'BUS_ADDR' | 'THRU_HOST_BRIDGE', dmaDevice: DmaApiDevice | null, entries: readonly SgEntry[] | SgDmaColumns, mapping: TableMapping) {
    super(entries, { origNents: 0 });
    this.mapType = mapType;
    this.dmaDevice = dmaDevice;
    this.#mapping = mapping;
  }

  /** dma_buf_free_sgt has run on the table (its mappings are gone). */
  get freed(): boolean {
    return this.#freed;
  }

  /** @internal dma_buf_free_sgt: undoes the table's mapping (dma_iova_destroy, or each dma_unmap_phys), once. */
  static free(sgt: P2pSgTable, dir: number, op: string): void {
    if (sgt.#freed) throw new SimError('EINVAL', op, 'the table was already freed');
    const dma = sgt.dmaDevice;
    const m = sgt.#mapping;
    if (dma && m) {
      if ('state' in m) dma.iovaDestroy(m.state, dir);
      else for (const p of m.pieces) dma.unmapResource(p.dma, p.length, dir);
    }
    sgt.#freed = true;
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
 * `att`. The ranges come as objects or, for thousands of them, as columns (PhysVec); each range
 * is below 2^53 bytes. On the IOMMU path the table is built as columns (SgTable.dmaColumns), its
 * entry objects made only if asked for. Errors, with nothing left mapped: EINVAL for no ranges, a range outside the provider's
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
  ranges: readonly PhysRange[] | PhysVec,
  dir: number,
  opts: P2pSgtOptions = {},
): P2pSgTable {
  const op = opts.op ?? 'dma_buf_phys_vec_to_sgt';
  const rule = opts.rule;
  if (!provider) throw new SimError('EINVAL', op, 'no P2PDMA provider (the helper is for MMIO memory only)', rule);
  const vec = physVecOf(ranges, op, rule);
  const n = vec.length.length;
  if (n === 0) throw new SimError('EINVAL', op, 'no physical ranges', rule);
  // Both ends inside one memory BAR (pci_p2pdma_bus_addr_map's EINVAL otherwise). Ranges come in
  // their thousands from one BAR: the BAR of the last range is tried first, in exact numbers.
  const w = words(vec.phys);
  const lens = vec.length;
  let barLo = 0;
  let barEnd = 0;
  for (let i = inBar(w, lens, 0, barLo, barEnd); i < n; i = inBar(w, lens, i + 1, barLo, barEnd)) {
    const phys = vec.phys[i]!;
    const length = BigInt(lens[i]!);
    const a = host.p2pdma.busAddressOf(provider, phys);
    const b = host.p2pdma.busAddressOf(provider, phys + length - 1n);
    if (b - a !== length - 1n) throw new SimError('EINVAL', op, `ranges[${i}] spans two BARs of ${provider.name}`, rule);
    const bar = provider.bars.find((x) => x.type === 'mem' && phys >= x.cpuAddress && phys < x.cpuAddress + x.size);
    if (bar && bar.cpuAddress + bar.size < SAFE) {
      barLo = Number(bar.cpuAddress);
      barEnd = Number(bar.cpuAddress + bar.size);
    }
  }

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

  if (dma && dma.mode === 'iommu') {
    const t = linkedTable(dma, att, vec, seg, dir, op, rule);
    if (t) return new P2pSgTable(type, dma, t.cols, { state: t.state });
  }
  const mapped: Mapping[] = [];
  const undo = () => {
    if (dma) for (const m of mapped) dma.unmapResource(m.dma, m.length, dir);
  };
  for (let i = 0; i < n; i++) {
    const rPhys = vec.phys[i]!;
    const rLen = BigInt(lens[i]!);
    for (let at = 0n; at < rLen; at += seg) {
      const len = rLen - at < seg ? rLen - at : seg;
      const phys = rPhys + at;
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
  const entries = mapped.map((m): SgEntry => ({ dmaAddress: m.dma, length: m.length, page: null }));
  return new P2pSgTable(type, dma, entries, dma ? { pieces: mapped } : null);
}

/*
 * The loops over thousands of ranges or entries are leaf functions of their own: V8 optimizes
 * them on their own, where a loop inside a longer function is compiled on the fly with no
 * feedback for the code after it, and thrown away again on every call.
 */

/** The first range from `i` on that is not inside [lo, end) in exact numbers (n when none). */
function inBar(w: Uint32Array, lens: Float64Array, i: number, lo: number, end: number): number {
  const n = lens.length;
  for (; i < n; i++) {
    const hi = w[2 * i + 1]!;
    if (hi >= 0x20_0000) return i;
    const p = hi * 4294967296 + w[2 * i]!;
    if (p < lo || p + lens[i]! > end) return i;
  }
  return n;
}

/** Entries of at most `seg` bytes the page-aligned ranges cut into; -1 when a range is not page-aligned. */
function entryCount(w: Uint32Array, lens: Float64Array, seg: number): number {
  let n = 0;
  for (let i = 0; i < lens.length; i++) {
    const l = lens[i]!;
    // Whole pages: a floor of a division by a power of two, not a float modulo (a libm call).
    if ((w[2 * i]! & 4095) !== 0 || Math.floor(l / 4096) * 4096 !== l) return -1;
    n += Math.ceil(l / seg);
  }
  return n;
}

/** Writes the entries of at most `seg` bytes cut from the ranges laid out from IOVA `at` (exact numbers). */
function fillEntries(out: Uint32Array, outLen: Float64Array, lens: Float64Array, at: number, seg: number): void {
  let k = 0;
  for (let i = 0; i < lens.length; i++) {
    const len = lens[i]!;
    for (let o = 0; o < len; o += seg) {
      const a = at + o;
      const hi = Math.floor(a / 4294967296);
      out[2 * k] = a - hi * 4294967296;
      out[2 * k + 1] = hi;
      outLen[k++] = Math.min(seg, len - o);
    }
    at += len;
  }
}

/** The u32 halves of a column of u64 values. */
function words(a: BigUint64Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, 2 * a.length);
}

/**
 * The ranges as columns: a PhysVec as given (lengths checked), an array of PhysRange copied into
 * one. EINVAL for anything else, a range that is not a u64 bigint phys with a bigint length in
 * 1..2^53-1, or one wrapping past 2^64.
 */
function physVecOf(ranges: readonly PhysRange[] | PhysVec, op: string, rule: string | undefined): PhysVec {
  if (isPhysVec(ranges)) {
    const lens = ranges.length;
    const w = words(ranges.phys);
    for (let i = 0; i < lens.length; i++) {
      const l = lens[i]!;
      if (!(l > 0 && l <= Number.MAX_SAFE_INTEGER && Math.floor(l) === l) || (w[2 * i + 1]! >= 0xffe0_0000 && ranges.phys[i]! + BigInt(l) > U64_END)) {
        throw new SimError('EINVAL', op, `ranges[${i}]: length must be a positive safe integer, the range inside 2^64`, rule);
      }
    }
    return ranges;
  }
  if (!Array.isArray(ranges)) throw new SimError('EINVAL', op, 'no physical ranges', rule);
  const n = ranges.length;
  const vec: PhysVec = { phys: new BigUint64Array(n), length: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const r = ranges[i] as PhysRange | undefined;
    const phys: unknown = r?.phys;
    const length: unknown = r?.length;
    if (typeof phys !== 'bigint' || typeof length !== 'bigint' || phys < 0n || length <= 0n || length >= SAFE || phys + length > U64_END) {
      throw new SimError('EINVAL', op, `ranges[${i}]: phys and length must be bigints, 0 < length < 2^53, inside 2^64`, rule);
    }
    vec.phys[i] = phys;
    vec.length[i] = Number(length);
  }
  return vec;
}

/**
 * The IOVA path of dma_buf_phys_vec_to_sgt: one IOVA range for the whole size, every range linked
 * into it with one batched map, entries of at most `seg` bytes cut from each range in turn. Null
 * when the path cannot be taken (a range not page-aligned, or no room for the whole size), for
 * the caller to map piece by piece. A failed link frees the IOVA and throws ENOMEM.
 */
function linkedTable(
  dma: DmaApiDevice, att: DmaBufAttachment, vec: PhysVec, seg: bigint, dir: number, op: string, rule: string | undefined,
): { state: DmaIovaState; cols: SgDmaColumns } | null {
  // Page-aligned ranges only (this path has no pad).
  const w = words(vec.phys);
  const lens = vec.length;
  const nr = lens.length;
  const segN = Number(seg);
  const n = entryCount(w, lens, segN);
  if (n < 0) return null;
  const size = physVecBytes(vec);
  const state = dma.iovaTryAlloc(size);
  if (!state) return null;
  const st = dma.iovaLink(state, vec, dir);
  if (st < 0) {
    dma.iovaDestroy(state, dir);
    throw new SimError('ENOMEM', op, `dma_iova_link of ${nr} range${nr === 1 ? '' : 's'} (0x${size.toString(16)} bytes) for ${att.dev.name} failed (${st})`, rule);
  }
  // The entries as columns, each address written as two u32 halves while it stays exact in a
  // number (IOVAs sit far below 2^53).
  const cols: SgDmaColumns = { address: new BigUint64Array(n), length: new Float64Array(n) };
  const out = words(cols.address);
  const outLen = cols.length;
  if (state.addr + size <= BigInt(Number.MAX_SAFE_INTEGER)) {
    fillEntries(out, outLen, lens, Number(state.addr), segN);
  } else {
    let at = state.addr;
    let k = 0;
    for (let i = 0; i < nr; i++) {
      const len = lens[i]!;
      for (let o = 0; o < len; o += segN) {
        cols.address[k] = at + BigInt(o);
        outLen[k++] = Math.min(segN, len - o);
      }
      at += BigInt(len);
    }
  }
  return { state, cols };
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
