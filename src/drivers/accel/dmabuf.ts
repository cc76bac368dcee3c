/**
 * The habanalabs dma-buf exporter (memory.c's export_dmabuf part): EXPORT_DMABUF_FD in the
 * kernel era of the machine's profile with its checks (HL-03..HL-06), export_dmabuf's
 * bookkeeping (HL-08, HL-09), and the exporter ops attach, map, unmap and release (HL-10..HL-13).
 * The table is laid out by sg.ts and mapped by the driver kit's P2P mapping helper.
 *
 * Each profile is one real kernel, never a mix of two (drivers/accel/habanalabs/common/memory.c):
 *  - '5.15' = v5.15: export_dmabuf_from_handle ({handle, mem_size}); without DRAM virtual
 *    memory, address and size 32 MiB-aligned; the table merges pages up to 512 MiB.
 *  - '6.x' = v6.12 and 'latest' = v6.15+: export_dmabuf_from_addr (addr + offset) with
 *    validate_export_params_common as v6.7 left it. Two commits of one series (dri-devel,
 *    2023-09, merged for v6.7) changed it together: 0b75cb5b240f "export dma-buf only if
 *    size/offset multiples of PAGE_SIZE" (size non-zero and a multiple of PAGE_SIZE instead of
 *    `size >= PAGE_SIZE`; offset page-aligned) and "add missing offset handling for dma-buf"
 *    (the offset check moved into the common function, which then checks `addr` rather than
 *    `addr + offset`; map_dma_buf starts the table at the offset). v6.2-v6.6 checked only
 *    `addr + offset` aligned and `size >= PAGE_SIZE` and mapped from the first page: no profile
 *    models that era, so neither its checks nor its layout appear here.
 */
import {
  DmaDataDirection,
  dmaBufFreeSgt,
  dmaBufPhysVecToSgt,
  importerDmaDevice,
  importerPciFunction,
  PAGE_SIZE,
  SimError,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type PciFunction,
  type PhysVec,
  type SgTable,
  checkImporterHost,
} from '../../index.js';
import type { HabanaDevice, HlFpriv } from './habanalabs.js';
import { u64, type HlPhysPgPack, type HlVmHashNode } from './memory.js';
import { layoutChunks515, layoutRuns, type DeviceRuns } from './sg.js';
import type { HlMemArgs } from './uapi.js';

const U64 = (1n << 64n) - 1n;
const PAGE = BigInt(PAGE_SIZE);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const SZ_32M = 32n << 20n;
const SZ_512M = 512n << 20n;

/**
 * How map_dma_buf turns a BAR chunk into a DMA address for the importer:
 *  - 'p2pdma' (default): as pci_p2pdma_map_type would: a BUS_ADDR peer (same switch, no ACS
 *    redirect) gets the bus address and no mapping; a THRU_HOST_BRIDGE peer gets
 *    dma_map_resource on its DMA device (an IOVA in its IOMMU domain, or the address itself when
 *    direct).
 *  - 'map-resource': dma_map_resource for every entry, as the merged driver does; under an IOMMU
 *    even a switch peer gets an IOVA and its DMA goes up to the root complex.
 */
export type HlP2pMapping = 'p2pdma' | 'map-resource';

/** What the exporter keeps per dma-buf (struct hl_dmabuf_priv). */
interface HlDmabufPriv {
  readonly fpriv: HlFpriv;
  readonly node: HlVmHashNode | null;
  readonly pack: HlPhysPgPack | null;
  /** DRAM address of the first exported byte (addr + offset). */
  readonly deviceAddress: bigint;
  readonly offset: bigint;
  readonly pages: readonly bigint[];
  readonly pageSize: bigint;
  readonly era: '5.15' | 'modern';
  released: boolean;
  /** dma_buf_fd failed: the export is being unwound by its caller. */
  installFailed?: boolean;
}

/** What attach computed for an attachment (attach.priv). */
export interface HlAttachInfo {
  /** pci_p2pdma_distance(hdev->pdev, attach->dev, verbose): -1 without a P2P path. */
  readonly distance: number;
  /** The importer's PCI function, or null (not a PCI device). */
  readonly client: PciFunction | null;
}

/** @internal The device's dma-buf exporter (one per HabanaDevice). */
export class HlDmabufExporter {
  private readonly _tables = new Set<SgTable>();
  private _opsCache: DmaBufExporterOps | undefined;

  constructor(private readonly dev: HabanaDevice) {}

  /** export_dmabuf_from_addr, final form (HL-03..HL-06, HL-08, HL-09). */
  exportFromAddr(fpriv: HlFpriv, addr: bigint, size: bigint, offset: bigint, flags: number): number {
    const op = 'export_dmabuf_from_addr';
    if (!this.dev.dramSupportsVirtualMemory && offset !== 0n) {
      throw this.dev.err('EINVAL', op, 'offset is not allowed in device without virtual memory', 'HL-03');
    }
    const exportAddr = (addr + offset) & U64;
    if (!this.dev.dramSupportsVirtualMemory) {
      this.validateNoMmu(exportAddr, size);  // offset is 0 here (HL-03)
      return this.export(fpriv, {
        node: null, pack: null, deviceAddress: exportAddr, offset: 0n, pages: [exportAddr], pageSize: size, era: 'modern',
      }, size, flags);
    }
    // memhash_node_export_get
    const node = fpriv.nodes.get(addr);
    if (!node) throw this.dev.err('EINVAL', op, `map address 0x${addr.toString(16)} not found`, 'HL-06');
    if (node.handle >> 32n !== 0n) {
      throw this.dev.err('EINVAL', op, `invalid handle 0x${node.handle.toString(16)} for map address 0x${addr.toString(16)}`, 'HL-06');
    }
    node.exportCnt++;
    try {
      const pack = this.dev.memory.packOf(Number(node.handle));
      if (!pack) throw this.dev.err('EINVAL', op, `no match for handle 0x${node.handle.toString(16)}`, 'HL-06');
      if (pack.vmType !== 'phys_pack') throw this.dev.err('EINVAL', op, `handle 0x${node.handle.toString(16)} does not represent DRAM memory`, 'HL-06');
      this.validateCommon(addr, size, offset);
      if (offset + size > pack.totalSize) {
        throw this.dev.err('EINVAL', op, `offset 0x${offset.toString(16)} and size 0x${size.toString(16)} exceed total map size 0x${pack.totalSize.toString(16)}`, 'HL-06');
      }
      this.validatePagesInBar(pack);
      return this.export(fpriv, {
        node, pack, deviceAddress: exportAddr, offset, pages: pack.pages, pageSize: pack.pageSize, era: 'modern',
      }, size, flags);
    } catch (e) {
      node.exportCnt--;
      throw e;
    }
  }

  /** The 5.15 form: {handle, mem_size}. */
  export515(fpriv: HlFpriv, args: HlMemArgs): number {
    const op = 'export_dmabuf_from_handle';
    const flags = args.flags ?? 0;
    const handle = u64(args.handle ?? args.addr, 'handle');
    if (!this.dev.dramSupportsVirtualMemory || !this.dev.mmuEnabled) {
      const size = u64(args.memSize, 'memSize');
      const o = 'export_dmabuf_from_addr';
      if (handle % SZ_32M !== 0n) throw this.dev.err('EINVAL', o, `address 0x${handle.toString(16)} of exported device memory should be aligned to 32 MiB`, 'HL-05');
      if (size === 0n) throw this.dev.err('EINVAL', o, 'size of exported device memory should be greater than 0', 'HL-05');
      if (size % SZ_32M !== 0n) throw this.dev.err('EINVAL', o, `size 0x${size.toString(16)} of exported device memory should be aligned to 32 MiB`, 'HL-05');
      this.validateRanges(handle, size);
      const big = size > SZ_512M;
      const pageSize = big ? SZ_32M : size;
      const pages: bigint[] = [];
      for (let a = handle; a < handle + size; a += pageSize) pages.push(a);
      return this.export(fpriv, { node: null, pack: null, deviceAddress: handle, offset: 0n, pages, pageSize, era: '5.15' }, size, flags);
    }
    const pack = this.dev.memory.packOf(Number(handle & 0xffff_ffffn));
    if (!pack) throw this.dev.err('EINVAL', op, `no match for handle 0x${(handle & 0xffff_ffffn).toString(16)}`, 'HL-06');
    pack.exportingCnt++;
    try {
      if (pack.vmType !== 'phys_pack') throw this.dev.err('EINVAL', op, `handle 0x${handle.toString(16)} is not for DRAM memory`, 'HL-06');
      this.validatePagesInBar(pack);
      return this.export(fpriv, {
        node: null, pack, deviceAddress: pack.pages[0]!, offset: 0n, pages: pack.pages, pageSize: pack.pageSize, era: '5.15',
      }, pack.totalSize, flags);
    } catch (e) {
      pack.exportingCnt--;
      throw e;
    }
  }

  /** validate_export_params_common [v6.7+] (HL-04): addr, size (non-zero) and offset all multiples of PAGE_SIZE. */
  private validateCommon(addr: bigint, size: bigint, offset: bigint): void {
    const op = 'validate_export_params';
    if (addr % PAGE !== 0n) throw this.dev.err('EINVAL', op, `exported device memory address 0x${addr.toString(16)} should be aligned to PAGE_SIZE 0x1000`, 'HL-04');
    if (size === 0n || size % PAGE !== 0n) throw this.dev.err('EINVAL', op, `exported device memory size ${size} should be a multiple of PAGE_SIZE 4096`, 'HL-04');
    if (offset % PAGE !== 0n) throw this.dev.err('EINVAL', op, `exported device memory offset ${offset} should be a multiple of PAGE_SIZE 4096`, 'HL-04');
  }

  /** validate_export_params_no_mmu (HL-04, HL-05). */
  private validateNoMmu(addr: bigint, size: bigint): void {
    this.validateCommon(addr, size, 0n);
    this.validateRanges(addr, size);
  }

  /** HL-05: DRAM boundaries, then PCI BAR boundaries, with u64 wrap-around checks. */
  private validateRanges(addr: bigint, size: bigint): void {
    const op = 'validate_export_params_no_mmu';
    const end = (addr + size) & U64;
    if (addr < this.dev.dramUserBaseAddress || end > this.dev.dramEndAddress || end < addr) {
      throw this.dev.err('EINVAL', op, `DRAM memory range 0x${addr.toString(16)} (+0x${size.toString(16)}) is outside of DRAM boundaries`, 'HL-05');
    }
    const bar = (this.dev.dramPciBarStart + (addr - this.dev.dramBaseAddress)) & U64;
    const barEnd = (bar + size) & U64;
    if (barEnd > this.dev.dramPciBarStart + this.dev.dramPciBarSize || barEnd < bar) {
      throw this.dev.err('EINVAL', op, `DRAM memory range 0x${addr.toString(16)} (+0x${size.toString(16)}) is outside of PCI BAR boundaries`, 'HL-05');
    }
  }

  /** HL-06: every physical page of the pack inside the DRAM BAR. */
  private validatePagesInBar(pack: HlPhysPgPack): void {
    const limit = this.dev.dramPciBarStart + this.dev.dramPciBarSize;
    for (const p of pack.pages) {
      const bar = this.dev.barAddress(p);
      if (bar + pack.pageSize > limit) {
        throw this.dev.err('EINVAL', 'validate_export_params', `DRAM memory range 0x${p.toString(16)} (+0x${pack.pageSize.toString(16)}) is outside of PCI BAR boundaries`, 'HL-06');
      }
    }
  }

  /**
   * export_dmabuf (HL-08, HL-09): dma_buf_export with the flags as given, then every piece of
   * bookkeeping (ctx and file references, export count), and only then the fd is installed. If
   * the fd cannot be installed (EMFILE), the buffer is put and its release undoes the bookkeeping.
   */
  private export(fpriv: HlFpriv, init: Omit<HlDmabufPriv, 'fpriv' | 'released'>, size: bigint, flags: number): number {
    const op = 'export_dmabuf';
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw this.dev.err('EINVAL', op, `size ${size} is too large`);
    const priv: HlDmabufPriv = { ...init, fpriv, released: false };
    const buf = this.dev.machine.kernel.export({ expName: 'habanalabs', ops: this.ops(), size: Number(size), flags, priv });
    fpriv.ctxRefs++;
    fpriv.file.get('kernel');
    this.dev.dmabufExportCnt++;
    try {
      return fpriv.proc.dmaBufFd(buf, flags);
    } catch (e) {
      // The release undoes the references and the export count; the node/pack count taken before
      // validation is dropped by the caller, as on any other failure.
      priv.installFailed = true;
      buf.put();
      throw e;
    }
  }

  private ops(): DmaBufExporterOps {
    this._opsCache ??= {
      attach: (buf, att) => this.attach(buf, att),
      mapDmaBuf: (att, dir) => this.map(att, dir),
      unmapDmaBuf: (att, sgt, dir) => this.unmap(att, sgt, dir),
      release: (buf) => this.release(buf),
    };
    return this._opsCache;
  }

  /** hl_dmabuf_attach (HL-10): P2P distance to the importer; < 0 clears peer2peer. Fails only for an importer of another machine. */
  private attach(_buf: DmaBuf, att: DmaBufAttachment): void {
    checkImporterHost(this.dev.machine, att.dev, 'hl_dmabuf_attach', 'HL-10');
    const client = importerPciFunction(att.dev);
    let distance = -1;
    if (client) {
      distance = this.dev.machine.p2pdma.distance(this.dev.pci, att.dev.pci ?? client, { verbose: true }).distance;
    } else {
      this.dev.logLine(`${att.dev.name}: not a PCI device, no P2P distance`);
    }
    if (distance < 0) att.peer2peer = false;
    const info: HlAttachInfo = { distance, client };
    att.priv = info;
  }

  /**
   * hl_map_dmabuf (HL-11, HL-12): the era's chunk layout, then the kit's P2P mapping helper on
   * the DRAM BAR addresses. With 'map-resource' (the merged driver) every entry is
   * dma_map_resource'd, even for a BUS_ADDR peer; with 'p2pdma' a BUS_ADDR peer gets bus
   * addresses. A failed mapping is ENOMEM with nothing left mapped.
   */
  private map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const op = 'hl_map_dmabuf';
    const priv = att.dmabuf.priv as HlDmabufPriv;
    if (!att.peer2peer) throw this.dev.err('EPERM', op, 'failed to map dmabuf because p2p is disabled', 'HL-11');
    // dma_get_max_seg_size(attach->dev): the importer's DMA API device.
    const dma = importerDmaDevice(this.dev.machine, att.dev);
    if (!dma) throw this.dev.err('EINVAL', op, `${att.dev.name} has no DMA device`, 'HL-11');
    let ranges: PhysVec;
    let maxSegment: bigint | undefined;
    if (priv.era === '5.15') {
      const chunks = layoutChunks515(priv.pages, priv.pageSize);
      ranges = { phys: new BigUint64Array(chunks.length), length: new Float64Array(chunks.length) };
      for (let i = 0; i < chunks.length; i++) {
        ranges.phys[i] = this.dev.barAddress(chunks[i]!.devAddr);
        ranges.length[i] = Number(chunks[i]!.length);
      }
    } else {
      // HL-12's contiguous runs; the helper cuts each at the max segment from its start, which
      // is the driver's entry layout (a run per physically contiguous stretch, not an object per
      // 64 KiB entry on the way).
      const runs = layoutRuns({
        pages: priv.pages, pageSize: priv.pageSize, exportedSize: BigInt(att.dmabuf.size),
        offset: priv.offset, maxSegSize: BigInt(dma.maxSegmentSize),
      });
      ranges = this.barRanges(priv.pages, runs);
      maxSegment = BigInt(runs.maxSeg);
    }
    let sgt: SgTable;
    try {
      // Cut at HL-12's max segment (6.x); 5.15's chunks are whole, whatever the importer's limit.
      sgt = dmaBufPhysVecToSgt(this.dev.machine, att, this.dev.pci, ranges, dir, {
        maxSegment, importerMaxSegment: false, alwaysMapResource: this.dev.p2pMapping === 'map-resource', op, rule: 'HL-11',
      });
    } catch (e) {
      if (e instanceof SimError) this.dev.logLine(`${this.dev.name}: ${op}: ${e.message}`);
      throw e;
    }
    this._tables.add(sgt);
    return sgt;
  }

  /**
   * The BAR (CPU physical) ranges of runs of DRAM pages: each page's BAR address once, then every
   * run in numbers while the address stays exact.
   */
  private barRanges(pages: readonly bigint[], c: DeviceRuns): PhysVec {
    const bar = new Float64Array(pages.length).fill(-1);
    const vec: PhysVec = { phys: new BigUint64Array(c.count), length: c.length };
    const w = new Uint32Array(vec.phys.buffer);
    for (let i = 0; i < c.count; i++) {
      const p = c.page[i]!;
      if (bar[p] === -1) {
        const a = this.dev.barAddress(pages[p]!);
        bar[p] = a <= MAX_SAFE ? Number(a) : -2;
      }
      const base = bar[p]!;
      const a = base + c.offset[i]!;
      if (base >= 0 && a <= Number.MAX_SAFE_INTEGER) {
        const hi = Math.floor(a / 4294967296);
        w[2 * i] = a - hi * 4294967296;
        w[2 * i + 1] = hi;
      } else {
        vec.phys[i] = this.dev.barAddress(pages[p]!) + BigInt(c.offset[i]!);
      }
    }
    return vec;
  }

  /** hl_unmap_dmabuf (HL-13): dma_unmap_resource on every DMA entry, then free the table. */
  private unmap(att: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    if (!this._tables.has(sgt)) throw new SimError('EINVAL', 'hl_unmap_dmabuf', 'not a table this exporter made', 'HL-13');
    this._tables.delete(sgt);
    dmaBufFreeSgt(att, sgt, dir, 'hl_unmap_dmabuf');
  }

  /** Tables handed out by map_dma_buf and not yet unmapped. */
  get liveTables(): number {
    return this._tables.size;
  }

  /** hl_release_dmabuf (HL-07, HL-09). */
  private release(buf: DmaBuf): void {
    const priv = buf.priv as HlDmabufPriv;
    if (priv.released) return;
    priv.released = true;
    if (!priv.installFailed) {
      if (priv.node) priv.node.exportCnt--;
      if (priv.pack && priv.era === '5.15') priv.pack.exportingCnt--;
    }
    this.dev.dmabufExportCnt--;
    const fpriv = priv.fpriv;
    fpriv.ctxRefs--;
    fpriv.file.put('kernel');
  }
}
