/**
 * The streaming DMA API of one device (kernel/dma/mapping.c on top of kernel/dma/direct.c,
 * drivers/iommu/dma-iommu.c and kernel/dma/swiotlb.c).
 *
 * A DmaDevice is a requester ID with the device's DMA parameters (streaming and coherent masks,
 * max segment size, segment boundary, coherency) and the way its DMA reaches memory:
 *  - 'iommu': attached to a paging domain; every mapping takes IOVA space from the domain's
 *    cookie (IovaDomain) and is written into the I/O page table through the core;
 *  - 'direct': no translation (attached 'direct', or to an identity domain = IOMMU bypass): the
 *    DMA address is the physical address plus an optional bus offset (phys_to_dma), checked
 *    against the mask (dma_capable); what the mask cannot reach is bounced through swiotlb.
 *
 * Results follow the kernel: single mappings return DMA_MAPPING_ERROR (mappingError() then
 * gives -ENOMEM), mapSg returns the DMA entry count or 0, mapSgtable 0 or a negative errno
 * (-ENOMEM, -EINVAL, -EIO, -EREMOTEIO). Misuse the kernel BUGs on or that CONFIG_DMA_API_DEBUG
 * reports throws SimError EINVAL and changes nothing: an invalid direction (DMA_NONE),
 * unmapping or syncing what was never mapped, or with another size, direction or type.
 */
import { ABI } from '../../bindings/core.js';
import { SimError } from '../../bindings/errors.js';
import type { Simulator } from '../simulator.js';
import { IommuDomain } from '../iommu/iommu.js';
import { ridArg, formatRid, hex, show } from '../util/args.js';
import {
  DMA_BIDIRECTIONAL, DMA_EINVAL, DMA_EIO, DMA_ENOMEM, DMA_EREMOTEIO, DMA_MAPPING_ERROR,
  DMA_TO_DEVICE, dmaBitMask, dmaInfoToProt, validDmaDirection,
} from './constants.js';
import { IommuDmaCookie, type CookieOptions } from './cookie.js';
import { ScatterList } from './sg.js';
import type { Swiotlb } from './swiotlb.js';
import type { IovaDevice } from './iova.js';
import type { P2pMapType } from '../pci/p2pdma.js';

/** The one P2PDMA map type, from src/pci (pci_p2pdma_map_type). */
export type { P2pMapType };

/**
 * What the DMA layer needs from PCI P2PDMA: pci_p2pdma_map_type(provider, client) and the
 * provider's bus offset for a physical address of its memory (pci_bus_address - resource start).
 * src/pci's P2pdma fits through p2pResolverFrom(); tests may pass a double.
 */
export interface P2pResolver {
  /** pci_p2pdma_map_type: how `client` reaches memory of `provider` (from the P2PDMA distance cache). */
  mapType(provider: unknown, client: unknown): P2pMapType;
  /** The PCI bus address of `phys` in the provider's BAR minus `phys` (p2pdma_provider's bus_offset). */
  busOffset(provider: unknown, phys: bigint): bigint;
}

/** Adapts an object with mapType(provider, client) and busAddressOf(provider, phys) (src/pci's P2pdma). */
export function p2pResolverFrom(p2p: {
  mapType(provider: never, client: never): string;
  busAddressOf(provider: never, phys: bigint): bigint;
}): P2pResolver {
  const x = p2p as unknown as { mapType(p: unknown, c: unknown): string; busAddressOf(p: unknown, phys: bigint): bigint };
  return {
    mapType: (p, c) => {
      const t = x.mapType(p, c);
      return t === 'BUS_ADDR' || t === 'THRU_HOST_BRIDGE' ? t : 'NOT_SUPPORTED';
    },
    busOffset: (p, phys) => x.busAddressOf(p, phys) - phys,
  };
}

/** Options of a new DmaDevice: its requester ID, DMA domain and struct device_dma_parameters. */
export interface DmaDeviceOptions {
  /** Requester ID (number or 'SSSS:BB:DD.F'). */
  rid: number | string;
  /** Where the device's DMA goes: a paging domain (dma-iommu), an identity domain or 'direct' (dma-direct). */
  domain: IommuDomain | 'direct';
  /** Attach the requester ID to `domain` now (sim.iommu.attach). @default true */
  attach?: boolean;
  /** Streaming DMA mask. @default DMA_BIT_MASK(32), as PCI devices start */
  dmaMask?: bigint;
  /** Coherent DMA mask. @default DMA_BIT_MASK(32) */
  coherentDmaMask?: bigint;
  /** dma_set_max_seg_size. @default 65536 (PCI) */
  maxSegmentSize?: number;
  /** dma_set_seg_boundary: 2^n - 1, at least 0xfff. @default 0xffffffff (PCI) */
  segmentBoundaryMask?: bigint;
  /** dev_is_dma_coherent: adds IOMMU_CACHE to mappings. @default true */
  coherent?: boolean;
  /** dma-direct only: DMA address = physical + busOffset (dma-ranges). @default 0n */
  busOffset?: bigint;
  /** dma-direct only: the swiotlb pool used when the mask cannot reach the memory. @default none */
  swiotlb?: Swiotlb | null;
  /** swiotlb=force for this device: bounce every streaming mapping. @default false */
  forceBounce?: boolean;
  /** The device object the P2P resolver knows this client as (e.g. a PciFunction). */
  p2pClient?: unknown;
  /** P2PDMA decisions for P2P pages in scatterlists. Without it every P2P page is NOT_SUPPORTED. */
  p2p?: P2pResolver | null;
  /** Options of the domain's cookie when this device creates it (MSI window, PCI windows). */
  cookie?: CookieOptions;
  /** PCI device: try IOVAs below 4 GiB first (pci_32bit_workaround). @default true */
  pci32BitWorkaround?: boolean;
  /** dev_name, in messages. @default the requester ID as 'SSSS:BB:DD.F' */
  name?: string;
}

type MappingType = 'single' | 'resource';

interface SingleMapping {
  type: MappingType;
  addr: bigint;
  size: number;
  dir: number;
  /** IOMMU path: the IOVA range to unmap and free. */
  iova: bigint;
  iovaLen: bigint;
  /** swiotlb bounce buffer (direct path), or null. */
  tlb: bigint | null;
}

/** Live mapping counts of one DmaDevice (what CONFIG_DMA_API_DEBUG tracks), for tests and reports. */
export interface DmaDeviceStats {
  /** Live single + resource mappings. */
  singles: number;
  /** Live scatterlist mappings. */
  sgLists: number;
  /** Live IOVA states (dma_iova_try_alloc not yet destroyed), each one IOVA range however many ranges it links. */
  iovaStates: number;
  /** Mappings refused so far (DMA_MAPPING_ERROR or a negative dma_map_sgtable result). */
  mapErrors: number;
}

const TWO32 = 4294967296;
const TWO20 = 1048576;
const TWO53 = 2 ** 53;
const SAFE_BIG = 1n << 53n;

function dirArg(op: string, dir: unknown): number {
  if (!validDmaDirection(dir)) {
    throw new SimError('EINVAL', op, `direction ${String(dir)} is not DMA_BIDIRECTIONAL, DMA_TO_DEVICE or DMA_FROM_DEVICE (the kernel BUGs)`);
  }
  return dir;
}

function sizeArg(op: string, size: unknown): number {
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 0xffff_ffff) {
    throw new SimError('EINVAL', op, `size = ${String(size)} must be an integer in 1..2^32-1`);
  }
  return size;
}

function physArg(op: string, v: unknown): bigint {
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) throw new SimError('EINVAL', op, `phys must be a bigint in 0..2^64-1`);
  return v;
}

/** struct phys_vec: one physical range (of a provider's MMIO memory, for the P2P helpers). */
export interface PhysRange {
  readonly phys: bigint;
  readonly length: bigint;
}

/**
 * struct phys_vec[] as columns, no object per range: range i is `length[i]` bytes (a positive
 * safe integer) at `phys[i]`. What an exporter of thousands of ranges hands to
 * {@link DmaDevice.iovaLink} and the driver kit's dmaBufPhysVecToSgt. Readers and writers that
 * want plain numbers go through a Uint32Array over `phys.buffer` (little-endian u32 halves).
 */
export interface PhysVec {
  readonly phys: BigUint64Array;
  readonly length: Float64Array;
}

/** True when `v` is a {@link PhysVec} (rather than an array of PhysRange). */
export function isPhysVec(v: unknown): v is PhysVec {
  const x = v as PhysVec | null;
  return typeof x === 'object' && x !== null && x.phys instanceof BigUint64Array && x.length instanceof Float64Array && x.phys.length === x.length.length;
}

/** The bytes of all the ranges of `vec`, exact (numbers while the sum stays below 2^53). */
export function physVecBytes(vec: PhysVec): bigint {
  const s = sumLengths(vec.length);
  if (s <= Number.MAX_SAFE_INTEGER) return BigInt(s);
  let t = 0n;
  for (let i = 0; i < vec.length.length; i++) t += BigInt(vec.length[i]!);
  return t;
}

function sumLengths(lens: Float64Array): number {
  let s = 0;
  for (let i = 0; i < lens.length; i++) s += lens[i]!;
  return s;
}

/**
 * The page frames and page counts of the ranges of `vec` into `pfn`/`pages` (exact for every u64
 * address: the frame number from the two u32 halves). Returns the index of the first range whose
 * length is not a positive safe integer or that wraps past 2^64, else -1 when every range is
 * page-aligned and -2 when one is not. A leaf loop: see fillEntries in the driver kit.
 */
function vecPages(vec: PhysVec, pfn: Float64Array, pages: Float64Array): number {
  const lens = vec.length;
  const w = new Uint32Array(vec.phys.buffer, vec.phys.byteOffset, 2 * lens.length);
  let aligned = true;
  for (let i = 0; i < lens.length; i++) {
    const lo = w[2 * i]!;
    const hi = w[2 * i + 1]!;
    const l = lens[i]!;
    if (!(l > 0 && l <= Number.MAX_SAFE_INTEGER && Math.floor(l) === l) || (hi >= 0xffe0_0000 && vec.phys[i]! + BigInt(l) > 1n << 64n)) return i;
    const np = Math.floor(l / 4096);
    if ((lo & 4095) !== 0 || np * 4096 !== l) aligned = false;
    pfn[i] = hi * TWO20 + (lo >>> 12);
    pages[i] = np;
  }
  return aligned ? -1 : -2;
}

/**
 * struct dma_iova_state: one contiguous IOVA range a device allocated with
 * {@link DmaDevice.iovaTryAlloc}, into which physical ranges are linked in order
 * ({@link DmaDevice.iovaLink}); {@link DmaDevice.iovaDestroy} unmaps and frees it.
 */
export class DmaIovaState {
  /** @internal Made by DmaDevice.iovaTryAlloc. */
  constructor(
    /** The device whose domain holds the range. */
    readonly device: DmaDevice,
    /** state->addr: the first IOVA of the range. */
    readonly addr: bigint,
    /** Bytes of IOVA space the range holds. */
    readonly size: bigint,
  ) {}
}

/** The device's record of a live IOVA state: one per state, whatever it links. */
interface IovaStateRecord {
  /** Bytes linked from the start of the range. */
  linked: bigint;
  /** Bytes the IOVA allocation holds (size rounded to the granule). */
  allocLen: bigint;
  /** The direction of the links (-1: none yet, or links of different directions). */
  dir: number;
}

/**
 * A struct device as the DMA mapping API sees it (dev->dma_mask, dev->dma_parms, its iommu
 * domain or dma-direct): the streaming DMA API (dma_map_page, dma_map_resource, dma_map_sgtable,
 * the syncs) for one requester ID. Mappings are tracked per device, so an unmap or sync of what
 * was not mapped is refused as CONFIG_DMA_API_DEBUG would report it.
 */
export class DmaDevice {
  readonly rid: number;
  readonly name: string;
  readonly mode: 'iommu' | 'direct';
  /** The paging domain (iommu mode) or identity domain, or 'direct'. */
  readonly domain: IommuDomain | 'direct';
  readonly cookie: IommuDmaCookie | null;
  readonly coherent: boolean;
  readonly busOffset: bigint;
  readonly swiotlb: Swiotlb | null;
  readonly forceBounce: boolean;
  readonly p2pClient: unknown;
  readonly p2p: P2pResolver | null;

  private _dmaMask: bigint;
  private _coherentMask: bigint;
  private _maxSeg: number;
  private _segBoundary: bigint;
  private readonly _iovaDev: IovaDevice;
  private readonly _singles = new Map<bigint, SingleMapping[]>();
  private _nSingles = 0;
  private _nSg = 0;
  private readonly _iovaStates = new Map<DmaIovaState, IovaStateRecord>();
  private _mapErrors = 0;
  private _scratch = new Float64Array(0);
  private _busIn = new Uint8Array(0);

  /**
   * Sets the device up on `_sim` and, unless `opts.attach` is false, attaches its requester ID to
   * the domain (the DMA domain the IOMMU core gives a device at probe, or dma-direct).
   * @throws {@link SimError} EINVAL for a bad requester ID, a domain that is neither an
   * IommuDomain nor 'direct', a blocked domain, a busOffset that is not a bigint or is given with
   * a paging domain, forceBounce without a swiotlb pool, or bad mask, segment size or boundary
   * values; EIO for a mask dma-direct cannot support (below 24 bits); the errors of
   * sim.iommu.attach.
   */
  constructor(private readonly _sim: Simulator, opts: DmaDeviceOptions) {
    const op = 'DmaDevice';
    this.rid = ridArg(op, 'rid', opts.rid);
    this.name = opts.name ?? formatRid(this.rid);
    const d = opts.domain;
    if (d !== 'direct' && !(d instanceof IommuDomain)) throw new SimError('EINVAL', op, `domain must be an IommuDomain or 'direct'`);
    if (d instanceof IommuDomain && d.type === 'blocked') throw new SimError('EINVAL', op, 'a blocked domain has no DMA API');
    this.domain = d;
    this.mode = d instanceof IommuDomain && d.type === 'paging' ? 'iommu' : 'direct';
    this.cookie = this.mode === 'iommu' ? IommuDmaCookie.of(_sim.core, d as IommuDomain, opts.cookie) : null;
    this.coherent = opts.coherent ?? true;
    const off = opts.busOffset ?? 0n;
    if (typeof off !== 'bigint' || off <= -(1n << 64n) || off >= 1n << 64n) throw new SimError('EINVAL', op, 'busOffset must be a bigint');
    if (off !== 0n && this.mode === 'iommu') throw new SimError('EINVAL', op, 'busOffset applies to direct mapping only');
    this.busOffset = off;
    this.swiotlb = opts.swiotlb ?? null;
    this.forceBounce = opts.forceBounce ?? false;
    if (this.forceBounce && !this.swiotlb) throw new SimError('EINVAL', op, 'forceBounce needs a swiotlb pool');
    this.p2pClient = opts.p2pClient;
    this.p2p = opts.p2p ?? null;
    this._iovaDev = { pci32BitWorkaround: opts.pci32BitWorkaround ?? true };
    this._dmaMask = dmaBitMask(32);
    this._coherentMask = dmaBitMask(32);
    this._maxSeg = 65536;
    this._segBoundary = 0xffff_ffffn;
    if (opts.dmaMask !== undefined) this._setMaskChecked(op, opts.dmaMask, false);
    if (opts.coherentDmaMask !== undefined) this._setMaskChecked(op, opts.coherentDmaMask, true);
    if (opts.maxSegmentSize !== undefined) this.setMaxSegSize(opts.maxSegmentSize);
    if (opts.segmentBoundaryMask !== undefined) this.setSegBoundary(opts.segmentBoundaryMask);
    if (opts.attach ?? true) _sim.iommu.attach(this.rid, d);
  }

  // ---------------------------------------------------------------------------------------------
  // Parameters

  /** *dev->dma_mask (dma_get_mask): the streaming DMA mask. */
  get dmaMask(): bigint { return this._dmaMask; }
  /** dev->coherent_dma_mask. */
  get coherentDmaMask(): bigint { return this._coherentMask; }
  /** dma_get_max_seg_size: the longest DMA segment a scatterlist mapping may produce. */
  get maxSegmentSize(): number { return this._maxSeg; }
  /** dma_get_seg_boundary: no DMA segment may cross a multiple of this mask + 1. */
  get segmentBoundaryMask(): bigint { return this._segBoundary; }

  /**
   * dma_set_mask: the streaming DMA mask, checked with dma_supported.
   * @throws {@link SimError} EINVAL when `mask` is not a bigint 2^n - 1; EIO when the mask is not
   * supported (dma-direct: below 24 bits).
   */
  setMask(mask: bigint): void {
    this._setMaskChecked('dma_set_mask', mask, false);
  }

  /**
   * dma_set_coherent_mask.
   * @throws {@link SimError} as {@link DmaDevice.setMask}.
   */
  setCoherentMask(mask: bigint): void {
    this._setMaskChecked('dma_set_coherent_mask', mask, true);
  }

  /**
   * dma_set_mask_and_coherent: both masks at once; neither changes when the mask is refused.
   * @throws {@link SimError} as {@link DmaDevice.setMask}.
   */
  setMaskAndCoherent(mask: bigint): void {
    this._setMaskChecked('dma_set_mask_and_coherent', mask, false);
    this._coherentMask = mask;
  }

  /**
   * dma_set_max_seg_size: any unsigned int, as the kernel stores it (dev->dma_parms is set for
   * every PCI device), sizes below the page size included; exporters that need whole pages
   * refuse such a device themselves (habanalabs HL-11, dma_buf_phys_vec_to_sgt).
   * @throws {@link SimError} EINVAL when `size` is not an integer in 0..2^32-1.
   */
  setMaxSegSize(size: number): void {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > 0xffff_ffff) {
      throw new SimError('EINVAL', 'dma_set_max_seg_size', `size = ${show(size)} must be an unsigned int (0..2^32-1)`);
    }
    this._maxSeg = size;
  }

  /**
   * dma_set_seg_boundary: a mask 2^n - 1 with n >= 12.
   * @throws {@link SimError} EINVAL for any other value.
   */
  setSegBoundary(mask: bigint): void {
    if (typeof mask !== 'bigint' || mask < 0xfffn || mask >= 1n << 64n || (mask & (mask + 1n)) !== 0n) {
      throw new SimError('EINVAL', 'dma_set_seg_boundary', `mask = ${String(mask)} must be 2^n - 1 with 12 <= n <= 64`);
    }
    this._segBoundary = mask;
  }

  private _setMaskChecked(op: string, mask: unknown, coherent: boolean): void {
    if (typeof mask !== 'bigint' || mask < 0n || mask >= 1n << 64n) throw new SimError('EINVAL', op, 'mask must be a bigint in 0..2^64-1');
    if ((mask & (mask + 1n)) !== 0n) throw new SimError('EINVAL', op, `mask 0x${mask.toString(16)} is not 2^n - 1`);
    // dma_supported(): the IOMMU can map anywhere; dma-direct needs at least ZONE_DMA's 24 bits.
    if (this.mode === 'direct' && mask < dmaBitMask(24)) throw new SimError('EIO', op, `mask 0x${mask.toString(16)} is below the 24-bit minimum of dma-direct`);
    if (coherent) this._coherentMask = mask;
    else this._dmaMask = mask;
  }

  /** Live single and scatterlist mappings and the refusals so far. */
  stats(): DmaDeviceStats {
    return { singles: this._nSingles, sgLists: this._nSg, iovaStates: this._iovaStates.size, mapErrors: this._mapErrors };
  }

  /** dma_mapping_error: -ENOMEM for DMA_MAPPING_ERROR, else 0. */
  mappingError(addr: bigint): number {
    return addr === DMA_MAPPING_ERROR ? DMA_ENOMEM : 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Single mappings

  /**
   * dma_map_page_attrs / dma_map_single: [phys, +size) for the device. Returns the DMA address or
   * DMA_MAPPING_ERROR (no IOVA space, mask cannot reach and no swiotlb, swiotlb full).
   * @throws {@link SimError} EINVAL for a bad phys, a size outside 1..2^32-1, or an invalid
   * direction (DMA_NONE: the kernel BUGs).
   */
  mapPage(phys: bigint, size: number, dir: number): bigint {
    const op = 'dma_map_page';
    physArg(op, phys);
    sizeArg(op, size);
    dirArg(op, dir);
    if (this.mode === 'iommu') {
      return this._iommuMapSingle('single', phys, size, dir, dmaInfoToProt(dir, this.coherent));
    }
    const dma = phys + this.busOffset;
    if (this.forceBounce || !this._capable(dma, size, this._dmaMask)) {
      return this._swiotlbMap(phys, size, dir);
    }
    return this._record({ type: 'single', addr: dma, size, dir, iova: 0n, iovaLen: 0n, tlb: null });
  }

  /**
   * dma_unmap_page_attrs: frees the IOVA range or swiotlb slot (copying a bounce buffer back).
   * @throws {@link SimError} EINVAL when (addr, size, dir) is not a live mapPage mapping of this
   * device, or the arguments are malformed.
   */
  unmapPage(addr: bigint, size: number, dir: number): void {
    this._unmapSingle('dma_unmap_page', 'single', addr, size, dir);
  }

  /**
   * dma_map_resource: MMIO (a BAR, no struct page) for the device. Through the IOMMU with
   * IOMMU_MMIO; direct: the physical address itself, checked against the mask (no swiotlb).
   * Returns the DMA address or DMA_MAPPING_ERROR.
   * @throws {@link SimError} EINVAL for a bad phys, size or direction.
   */
  mapResource(phys: bigint, size: number, dir: number): bigint {
    const op = 'dma_map_resource';
    physArg(op, phys);
    sizeArg(op, size);
    dirArg(op, dir);
    if (this.mode === 'iommu') {
      return this._iommuMapSingle('resource', phys, size, dir, dmaInfoToProt(dir, false, { mmio: true }));
    }
    if (!this._capable(phys, size, this._dmaMask)) return this._fail();
    return this._record({ type: 'resource', addr: phys, size, dir, iova: 0n, iovaLen: 0n, tlb: null });
  }

  /**
   * dma_unmap_resource.
   * @throws {@link SimError} EINVAL when (addr, size, dir) is not a live mapResource mapping of
   * this device, or the arguments are malformed.
   */
  unmapResource(addr: bigint, size: number, dir: number): void {
    this._unmapSingle('dma_unmap_resource', 'resource', addr, size, dir);
  }

  /**
   * dma_sync_single_for_cpu: copies a bounce buffer back (FROM_DEVICE, BIDIRECTIONAL).
   * @throws {@link SimError} EINVAL when (addr, size) is not a live single mapping of this
   * device, or `dir` differs from the mapping's (BIDIRECTIONAL mappings accept any).
   */
  syncSingleForCpu(addr: bigint, size: number, dir: number): void {
    const m = this._findSingle('dma_sync_single_for_cpu', addr, size, dir, true);
    if (m.tlb !== null) this.swiotlb!.syncForCpu(m.tlb, size, dir);
  }

  /**
   * dma_sync_single_for_device: copies into a bounce buffer (TO_DEVICE, BIDIRECTIONAL).
   * @throws {@link SimError} as {@link DmaDevice.syncSingleForCpu}.
   */
  syncSingleForDevice(addr: bigint, size: number, dir: number): void {
    const m = this._findSingle('dma_sync_single_for_device', addr, size, dir, true);
    if (m.tlb !== null) this.swiotlb!.syncForDevice(m.tlb, size, dir);
  }

  private _fail(): bigint {
    this._mapErrors++;
    return DMA_MAPPING_ERROR;
  }

  private _record(m: SingleMapping): bigint {
    const list = this._singles.get(m.addr);
    if (list) list.push(m);
    else this._singles.set(m.addr, [m]);
    this._nSingles++;
    return m.addr;
  }

  /** __iommu_dma_map. */
  private _iommuMapSingle(type: MappingType, phys: bigint, size: number, dir: number, prot: number): bigint {
    const cookie = this.cookie!;
    const off = phys & 4095n;
    const len = (BigInt(size) + off + 4095n) & ~4095n;
    const iova = cookie.alloc(len, this._dmaMask, this._iovaDev);
    if (iova === null) return this._fail();
    const st = this._sim.core.exports.map(cookie.domain.id, iova, phys - off, len, prot);
    if (st < 0) {
      cookie.free(iova, len, false);
      return this._fail();
    }
    return this._record({ type, addr: iova + off, size, dir, iova, iovaLen: len, tlb: null });
  }

  /** swiotlb_map (dma-direct): bounce, then check the bounce buffer against the mask. */
  private _swiotlbMap(phys: bigint, size: number, dir: number): bigint {
    const pool = this.swiotlb;
    if (!pool) return this._fail();
    const tlb = pool.map(phys, size);
    if (tlb === null) return this._fail();
    const dma = tlb + this.busOffset;
    if (!this._capable(dma, size, this._dmaMask)) {
      pool.unmap(tlb, size, DMA_TO_DEVICE); // DMA_ATTR_SKIP_CPU_SYNC: nothing copied back
      return this._fail();
    }
    return this._record({ type: 'single', addr: dma, size, dir, iova: 0n, iovaLen: 0n, tlb });
  }

  private _findSingle(op: string, addr: bigint, size: number, dir: number, sync: boolean, type?: MappingType): SingleMapping {
    if (typeof addr !== 'bigint') throw new SimError('EINVAL', op, 'addr must be a bigint');
    sizeArg(op, size);
    dirArg(op, dir);
    const list = this._singles.get(addr);
    if (!list || list.length === 0) {
      throw new SimError('EINVAL', op, `${this.name}: DMA address ${hex(addr)} was never mapped (or is already unmapped)`);
    }
    const m = list.find((x) => x.size === size && (type === undefined || x.type === type) && x.dir === dir)
      ?? list.find((x) => x.size === size && (type === undefined || x.type === type))
      ?? list.find((x) => type === undefined || x.type === type)
      ?? list[0]!;
    if (type !== undefined && m.type !== type) {
      throw new SimError('EINVAL', op, `${this.name}: ${hex(addr)} was mapped as ${m.type}, not ${type}`);
    }
    if (m.size !== size) {
      throw new SimError('EINVAL', op, `${this.name}: ${hex(addr)} was mapped with size ${m.size}, not ${size}`);
    }
    if (m.dir !== dir && !(sync && m.dir === DMA_BIDIRECTIONAL)) {
      throw new SimError('EINVAL', op, `${this.name}: ${hex(addr)} was mapped with direction ${m.dir}, not ${dir}`);
    }
    return m;
  }

  private _unmapSingle(op: string, type: MappingType, addr: bigint, size: number, dir: number): void {
    const m = this._findSingle(op, addr, size, dir, false, type);
    if (m.iovaLen > 0n) {
      const cookie = this.cookie!;
      this._sim.core.exports.unmap(cookie.domain.id, m.iova, m.iovaLen);
      cookie.free(m.iova, m.iovaLen);
    } else if (m.tlb !== null) {
      this.swiotlb!.unmap(m.tlb, m.size, m.dir);
    }
    const list = this._singles.get(addr)!;
    list.splice(list.indexOf(m), 1);
    if (list.length === 0) this._singles.delete(addr);
    this._nSingles--;
  }

  /** dma_capable: [dma, +size) at or below the mask. */
  private _capable(dma: bigint, size: number, mask: bigint): boolean {
    return dma >= 0n && dma + BigInt(size) - 1n <= mask;
  }

  // ---------------------------------------------------------------------------------------------
  // IOVA-based mapping (dma_iova_try_alloc / dma_iova_link / dma_iova_destroy)

  /**
   * dma_iova_try_alloc: one IOVA range of `size` bytes (rounded up to the granule) below the DMA
   * mask, to link ranges into. Null when this API cannot be used, and the caller falls back to
   * mapping range by range as the kernel does: dma-direct (no IOMMU), or no room in the IOVA space.
   * @throws {@link SimError} EINVAL when `size` is not a bigint in 1..2^64-1.
   */
  iovaTryAlloc(size: bigint): DmaIovaState | null {
    if (typeof size !== 'bigint' || size <= 0n || size >= 1n << 64n) {
      throw new SimError('EINVAL', 'dma_iova_try_alloc', `size = ${show(size)} must be a bigint in 1..2^64-1`);
    }
    if (this.mode !== 'iommu') return null;
    const allocLen = (size + 4095n) & ~4095n;
    const iova = this.cookie!.alloc(allocLen, this._dmaMask, this._iovaDev);
    if (iova === null) return null;
    const state = new DmaIovaState(this, iova, size);
    this._iovaStates.set(state, { linked: 0n, allocLen, dir: -1 });
    return state;
  }

  /**
   * dma_iova_link of each range in turn, then dma_iova_sync (DMA_ATTR_MMIO, as
   * dma_buf_phys_vec_to_sgt links BAR ranges): the ranges are laid out one after the other from
   * the end of what the state already links, and mapped with one batched map of the core
   * (physically contiguous neighbours coalesced into one descriptor, so the page table gets the
   * largest leaves the alignment allows, as iommu_map chooses them). Returns 0, or -EIO for a
   * range that is not page-aligned (this path has no pad), -ENOMEM / -EINVAL when the IOMMU
   * refused the map; on failure nothing of this call stays mapped.
   * @throws {@link SimError} EINVAL for a state this device does not hold, a malformed range, an
   *   invalid direction, or ranges that overrun the state's size.
   */
  iovaLink(state: DmaIovaState, ranges: readonly PhysRange[] | PhysVec, dir: number): number {
    const op = 'dma_iova_link';
    const rec = this._iovaRecord(op, state);
    dirArg(op, dir);
    const vec = isPhysVec(ranges);
    if (!vec && !Array.isArray(ranges)) throw new SimError('EINVAL', op, 'ranges must be an array of { phys, length } or a PhysVec');
    const n = vec ? ranges.length.length : ranges.length;
    const pfn = new Float64Array(n);
    const pages = new Float64Array(n);
    let total = 0n;
    let sum = 0;
    let aligned = true;
    if (vec) {
      const bad = vecPages(ranges, pfn, pages);
      if (bad >= 0) throw new SimError('EINVAL', op, `ranges[${bad}]: length must be a positive safe integer, the range inside 2^64`);
      aligned = bad === -1;
      total = physVecBytes(ranges);
    }
    for (let i = 0; !vec && i < n; i++) {
      const r = ranges[i] as PhysRange | undefined;
      const phys: unknown = r?.phys;
      const length: unknown = r?.length;
      if (typeof phys === 'bigint' && typeof length === 'bigint' && phys >= 0n && length > 0n && phys < SAFE_BIG && length < SAFE_BIG) {
        // Exact in numbers below 2^53: no bigint arithmetic per range.
        const p = Number(phys);
        const l = Number(length);
        if (p % 4096 !== 0 || l % 4096 !== 0) aligned = false;
        pfn[i] = Math.floor(p / 4096);
        pages[i] = Math.floor(l / 4096);
        sum += l;
        if (sum >= 2 ** 52) { total += BigInt(sum); sum = 0; }
        continue;
      }
      if (typeof phys !== 'bigint' || typeof length !== 'bigint' || phys < 0n || length <= 0n || phys + length > 1n << 64n) {
        throw new SimError('EINVAL', op, `ranges[${i}]: phys and length must be bigints, length > 0, inside 2^64`);
      }
      if (((phys | length) & 4095n) !== 0n) aligned = false;
      pfn[i] = Number(phys >> 12n);
      pages[i] = Number(length >> 12n);
      total += length;
    }
    total += BigInt(sum);
    if (rec.linked + total > state.size) {
      throw new SimError('EINVAL', op, `${this.name}: linking ${total} bytes after ${rec.linked} overruns the ${state.size}-byte IOVA state`);
    }
    if (!aligned) return this._linkFailed(DMA_EIO);
    if (n === 0) return 0;
    const prot = dmaInfoToProt(dir, false, { mmio: true });
    const st = this._mapRuns(this.cookie!, state.addr + rec.linked, n, pfn, pages, new Uint8Array(n), prot);
    if (st < 0) return this._linkFailed(st === ABI.ENOMEM ? DMA_ENOMEM : DMA_EINVAL);
    rec.dir = rec.linked === 0n ? dir : rec.dir === dir ? dir : -1;
    rec.linked += total;
    return 0;
  }

  /**
   * dma_iova_destroy: unmaps everything the state links and frees its IOVA range (lazily in a
   * lazy domain, as any unmap).
   * @throws {@link SimError} EINVAL for a state this device does not hold (never allocated here,
   *   or already destroyed), an invalid direction, or one other than the links' (as
   *   CONFIG_DMA_API_DEBUG reports an unmap with another direction); nothing changes then.
   */
  iovaDestroy(state: DmaIovaState, dir: number): void {
    const op = 'dma_iova_destroy';
    const rec = this._iovaRecord(op, state);
    dirArg(op, dir);
    if (rec.dir >= 0 && rec.dir !== dir) {
      throw new SimError('EINVAL', op, `${this.name}: the IOVA state was linked with direction ${rec.dir}, not ${dir}`);
    }
    const cookie = this.cookie!;
    if (rec.linked > 0n) this._sim.core.exports.unmap(cookie.domain.id, state.addr, rec.linked);
    cookie.free(state.addr, rec.allocLen, rec.linked > 0n);
    this._iovaStates.delete(state);
  }

  /** The record of a live state of this device. */
  private _iovaRecord(op: string, state: DmaIovaState): IovaStateRecord {
    const rec = state instanceof DmaIovaState ? this._iovaStates.get(state) : undefined;
    if (!rec) throw new SimError('EINVAL', op, `${this.name}: not a live IOVA state of this device (never allocated here, or destroyed)`);
    return rec;
  }

  private _linkFailed(errno: number): number {
    this._mapErrors++;
    return errno;
  }

  // ---------------------------------------------------------------------------------------------
  // Scatterlists

  /**
   * dma_map_sg_attrs: maps every CPU entry and fills the DMA side. Returns the number of DMA
   * entries (nents; after IOMMU merging it may be smaller than origNents), or 0 on failure.
   * @throws {@link SimError} as {@link DmaDevice.mapSgtable}.
   */
  mapSg(sgl: ScatterList, dir: number): number {
    const r = this.mapSgtable(sgl, dir);
    return r < 0 ? 0 : sgl.nents;
  }

  /**
   * dma_map_sgtable: 0, or -ENOMEM (no IOVA space, or the page table could not grow), -EINVAL
   * (other IOMMU failures), -EIO (dma-direct could not reach or bounce an entry), -EREMOTEIO
   * (a P2P page the client cannot reach). On failure nothing stays mapped.
   * @throws {@link SimError} EINVAL when `sgl` is not a ScatterList or `dir` is invalid; EBUSY
   * when the list is already mapped.
   */
  mapSgtable(sgl: ScatterList, dir: number): number {
    const op = 'dma_map_sgtable';
    if (!(sgl instanceof ScatterList)) throw new SimError('EINVAL', op, 'sgl must be a ScatterList');
    dirArg(op, dir);
    if (sgl._mapping) throw new SimError('EBUSY', op, 'the scatterlist is already mapped; unmap it first');
    const r = this.mode === 'iommu' ? this._iommuMapSg(sgl, dir) : this._directMapSg(sgl, dir);
    if (r < 0) {
      this._mapErrors++;
      sgl._clearDma();
      return r;
    }
    sgl.nents = r;
    this._nSg++;
    return 0;
  }

  /**
   * dma_unmap_sg / dma_unmap_sgtable: unmaps the IOVA range and frees the bounce buffers.
   * @throws {@link SimError} EINVAL when `sgl` is not a ScatterList mapped by this device, or
   * `dir` is invalid or differs from the mapping's.
   */
  unmapSg(sgl: ScatterList, dir: number): void {
    const op = 'dma_unmap_sg';
    const m = this._sgMapping(op, sgl, dir, false);
    if (m.iovaLen > 0) {
      const cookie = this.cookie!;
      const len = BigInt(m.iovaLen);
      this._sim.core.exports.unmap(cookie.domain.id, m.iova, len);
      cookie.free(m.iova, len);
    }
    if (m.bounced) for (const b of m.bounced.values()) this.swiotlb!.unmap(b.tlb, b.size, m.dir);
    sgl._mapping = null;
    sgl._clearDma();
    this._nSg--;
  }

  /**
   * dma_sync_sg_for_cpu: copies bounce buffers back.
   * @throws {@link SimError} EINVAL when `sgl` is not mapped by this device, or `dir` is invalid
   * or differs from the mapping's (BIDIRECTIONAL mappings accept any).
   */
  syncSgForCpu(sgl: ScatterList, dir: number): void {
    const m = this._sgMapping('dma_sync_sg_for_cpu', sgl, dir, true);
    if (m.bounced) for (const b of m.bounced.values()) this.swiotlb!.syncForCpu(b.tlb, b.size, dir);
  }

  /**
   * dma_sync_sg_for_device: copies into bounce buffers.
   * @throws {@link SimError} as {@link DmaDevice.syncSgForCpu}.
   */
  syncSgForDevice(sgl: ScatterList, dir: number): void {
    const m = this._sgMapping('dma_sync_sg_for_device', sgl, dir, true);
    if (m.bounced) for (const b of m.bounced.values()) this.swiotlb!.syncForDevice(b.tlb, b.size, dir);
  }

  private _sgMapping(op: string, sgl: ScatterList, dir: number, sync: boolean) {
    if (!(sgl instanceof ScatterList)) throw new SimError('EINVAL', op, 'sgl must be a ScatterList');
    dirArg(op, dir);
    const m = sgl._mapping;
    if (!m || m.device !== this) throw new SimError('EINVAL', op, `${this.name}: the scatterlist is not mapped by this device`);
    if (m.dir !== dir && !(sync && m.dir === DMA_BIDIRECTIONAL)) {
      throw new SimError('EINVAL', op, `${this.name}: the scatterlist was mapped with direction ${m.dir}, not ${dir}`);
    }
    return m;
  }

  /** pci_p2pdma_state for one provider, cached over a call. */
  private _p2pType(provider: unknown, cache: Map<unknown, P2pMapType>): P2pMapType {
    let t = cache.get(provider);
    if (t === undefined) {
      t = this.p2p && this.p2pClient !== undefined ? this.p2p.mapType(provider, this.p2pClient) : 'NOT_SUPPORTED';
      cache.set(provider, t);
    }
    return t;
  }

  /** iommu_dma_map_sg + iommu_map_sg + __finalise_sg. Returns the count or a negative errno. */
  private _iommuMapSg(sgl: ScatterList, dir: number): number {
    const n = sgl.origNents;
    const pfn = sgl.pfn;
    const off = sgl.offset;
    const len = sgl.length;
    const providers = sgl._providers;
    if (this._scratch.length < n) {
      this._scratch = new Float64Array(n);
      this._busIn = new Uint8Array(n);
    }
    const pages = this._scratch;
    const busIn = this._busIn;
    let busAddrs: Map<number, bigint> | null = null;
    const p2pCache = new Map<unknown, P2pMapType>();
    const maskBig = this._segBoundary;
    // Boundary size as a number, or 0 when the boundary is beyond anything an IOVA can reach.
    const B = maskBig + 1n <= BigInt(TWO53) ? Number(maskBig + 1n) : 0;
    const cookie = this.cookie!;
    const boundaryUnreachable = B === 0 && maskBig >= cookie.apertureEnd;

    // Pass 1: align each segment to the IOVA granule, pad so no segment crosses a boundary.
    let iovaLen = 0;
    let prev = -1;
    for (let i = 0; i < n; i++) {
      busIn[i] = 0;
      if (providers !== null && providers[i] !== undefined) {
        const t = this._p2pType(providers[i], p2pCache);
        if (t === 'BUS_ADDR') {
          const phys = sgl.phys(i);
          busAddrs ??= new Map();
          busAddrs.set(i, phys + this.p2p!.busOffset(providers[i], phys));
          busIn[i] = 1;
          pages[i] = 0;
          continue;
        }
        if (t !== 'THRU_HOST_BRIDGE') return DMA_EREMOTEIO;
      }
      const sPages = Math.ceil((off[i]! + len[i]!) / 4096);
      const sLen = sPages * 4096;
      if (B !== 0) {
        const r = iovaLen % B;
        const pad = r === 0 ? 0 : B - r;
        if (pad !== 0 && pad < sLen - 1) {
          pages[prev] += pad / 4096;
          iovaLen += pad;
        }
      }
      iovaLen += sLen;
      pages[i] = sPages;
      prev = i;
    }

    let iova = 0n;
    if (iovaLen > 0) {
      const got = cookie.alloc(BigInt(iovaLen), this._dmaMask, this._iovaDev);
      if (got === null) return DMA_ENOMEM;
      iova = got;
      const st = this._mapRuns(cookie, iova, n, pfn, pages, busIn, dmaInfoToProt(dir, this.coherent));
      if (st < 0) {
        cookie.free(iova, BigInt(iovaLen), false);
        return st === ABI.ENOMEM ? DMA_ENOMEM : DMA_EINVAL;
      }
    }

    // __finalise_sg: merge into output segments.
    const maxLen = this._maxSeg;
    const dmaLen = sgl.dmaLength;
    const busOut = sgl.busAddress;
    const d32 = sgl._dma32;
    const iovaHi = Number(iova >> 32n);
    const iovaLo = Number(iova & 0xffff_ffffn);
    const ivMod = B !== 0 ? Number(iova % BigInt(B)) : 0;
    let count = 0;
    let cur = 0;
    let curLen = 0;
    let rel = 0;
    for (let i = 0; i < n; i++) {
      if (busIn[i] === 1) {
        if (i > 0) cur++;
        sgl.dmaAddress[cur] = busAddrs!.get(i)!;
        dmaLen[cur] = len[i]!;
        busOut[cur] = 1;
        count++;
        curLen = 0;
        continue;
      }
      const sOff = off[i]!;
      const sLength = len[i]!;
      const sIovaLen = pages[i]! * 4096;
      let notBoundary: boolean;
      if (B !== 0) notBoundary = (ivMod + rel) % B !== 0;
      else notBoundary = boundaryUnreachable || ((iova + BigInt(rel)) & maskBig) !== 0n;
      if (curLen !== 0 && sOff === 0 && notBoundary && maxLen - curLen >= sLength) {
        curLen += sLength;
      } else {
        if (i > 0) cur++;
        curLen = sLength;
        count++;
        const x = iovaLo + rel + sOff;
        const carry = Math.floor(x / TWO32);
        d32[2 * cur] = x - carry * TWO32;
        d32[2 * cur + 1] = iovaHi + carry;
        busOut[cur] = 0;
      }
      dmaLen[cur] = curLen;
      rel += sIovaLen;
      if (sLength + sOff < sIovaLen) curLen = 0;
    }
    if (count < n) {
      sgl.dmaAddress.fill(DMA_MAPPING_ERROR, count);
      dmaLen.fill(0, count);
      busOut.fill(0, count);
    }
    sgl._mapping = { device: this, dir, iova, iovaLen, bounced: null };
    return count;
  }

  /**
   * iommu_map_sg: lays the non-bus segments out from `iova` in order, coalescing physically
   * contiguous runs into one descriptor, and maps them with the core's mapBatch (32768
   * descriptors a crossing). On failure everything mapped here is unmapped again.
   */
  private _mapRuns(cookie: IommuDmaCookie, iova: bigint, n: number, pfn: Float64Array, pages: Float64Array, busIn: Uint8Array, prot: number): number {
    const core = this._sim.core;
    const e = core.exports;
    const dom = cookie.domain.id;
    const maxDesc = ABI.STAGING_SIZE / ABI.MAPDESC_STRIDE;
    const words = ABI.MAPDESC_STRIDE >> 2;
    const iovaPfn0 = Number(iova >> 12n);
    let u32 = core.views.u32;
    const base = core.layout.staging >> 2;
    let k = 0;
    let cursor = 0; // pages from iova
    let chunkStart = 0; // cursor at the start of the current chunk
    let runPfn = -1;
    let runPages = 0;
    let runIova = 0;
    const flush = (): number => {
      const st = e.mapBatch(dom, k, prot);
      if (st < 0) {
        if (chunkStart > 0) e.unmap(dom, iova, BigInt(chunkStart) << 12n);
        return st;
      }
      u32 = core.views.u32;
      k = 0;
      chunkStart = cursor;
      return 0;
    };
    const put = (p: number, np: number, ip: number): void => {
      const w = base + k * words;
      // iova, pa and size as page counts, split into 32-bit halves without BigInt.
      let hi = Math.floor(ip / TWO20);
      u32[w] = (ip - hi * TWO20) * 4096;
      u32[w + 1] = hi;
      hi = Math.floor(p / TWO20);
      u32[w + 2] = (p - hi * TWO20) * 4096;
      u32[w + 3] = hi;
      hi = Math.floor(np / TWO20);
      u32[w + 4] = (np - hi * TWO20) * 4096;
      u32[w + 5] = hi;
      u32[w + 6] = 0;
      k++;
    };
    for (let i = 0; i < n; i++) {
      if (busIn[i] === 1) continue;
      const p = pfn[i]!;
      const np = pages[i]!;
      if (runPages !== 0 && p === runPfn + runPages) {
        runPages += np;
      } else {
        if (runPages !== 0) {
          put(runPfn, runPages, runIova);
          if (k === maxDesc) {
            const st = flush();
            if (st < 0) return st;
          }
        }
        runPfn = p;
        runPages = np;
        runIova = iovaPfn0 + cursor;
      }
      cursor += np;
    }
    if (runPages !== 0) put(runPfn, runPages, runIova);
    if (k > 0) return flush();
    return 0;
  }

  /** dma_direct_map_sg. Returns origNents or a negative errno. */
  private _directMapSg(sgl: ScatterList, dir: number): number {
    const n = sgl.origNents;
    const providers = sgl._providers;
    const p2pCache = new Map<unknown, P2pMapType>();
    const mask = this._dmaMask;
    const maskNum = mask >= BigInt(TWO53) ? Infinity : Number(mask);
    const offBig = this.busOffset;
    const offNum = Number(offBig);
    const exact = offBig > -BigInt(TWO53) && offBig < BigInt(TWO53);
    const pfn = sgl.pfn;
    const off = sgl.offset;
    const len = sgl.length;
    const dmaLen = sgl.dmaLength;
    let bounced: Map<number, { tlb: bigint; size: number }> | null = null;
    const undo = (err: number): number => {
      if (bounced) for (const b of bounced.values()) this.swiotlb!.unmap(b.tlb, b.size, DMA_TO_DEVICE);
      return err;
    };
    for (let i = 0; i < n; i++) {
      sgl.busAddress[i] = 0;
      if (providers !== null && providers[i] !== undefined) {
        const t = this._p2pType(providers[i], p2pCache);
        const phys = sgl.phys(i);
        if (t === 'BUS_ADDR') {
          sgl.dmaAddress[i] = phys + this.p2p!.busOffset(providers[i], phys);
          sgl.busAddress[i] = 1;
          dmaLen[i] = len[i]!;
          continue;
        }
        if (t !== 'THRU_HOST_BRIDGE') return undo(DMA_EREMOTEIO);
        // P2P memory is never bounced.
        if (this.forceBounce || !this._capable(phys + offBig, len[i]!, mask)) return undo(DMA_EIO);
        sgl.dmaAddress[i] = phys + offBig;
        dmaLen[i] = len[i]!;
        continue;
      }
      const physNum = pfn[i]! * 4096 + off[i]!;
      let dmaNum = physNum + offNum;
      let ok: boolean;
      if (physNum < TWO53 && exact && dmaNum >= 0 && dmaNum < TWO53) ok = !this.forceBounce && dmaNum + len[i]! - 1 <= maskNum;
      else ok = !this.forceBounce && this._capable(sgl.phys(i) + offBig, len[i]!, mask);
      if (!ok) {
        const pool = this.swiotlb;
        if (!pool) return undo(DMA_EIO);
        const tlb = pool.map(sgl.phys(i), len[i]!);
        if (tlb === null) return undo(DMA_EIO);
        if (!this._capable(tlb + offBig, len[i]!, mask)) {
          pool.unmap(tlb, len[i]!, DMA_TO_DEVICE);
          return undo(DMA_EIO);
        }
        bounced ??= new Map();
        bounced.set(i, { tlb, size: len[i]! });
        sgl.dmaAddress[i] = tlb + offBig;
        dmaLen[i] = len[i]!;
        continue;
      }
      if (dmaNum < TWO53 && dmaNum >= 0) sgl._setDma(i, dmaNum);
      else sgl.dmaAddress[i] = sgl.phys(i) + offBig;
      dmaLen[i] = len[i]!;
      dmaNum = 0;
    }
    sgl._mapping = { device: this, dir, iova: 0n, iovaLen: 0, bounced };
    return n;
  }
}


