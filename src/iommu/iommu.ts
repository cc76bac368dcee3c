/**
 * The TypeScript face of the core's IOMMU: units (IOTLB + fault queue + flush queue), domains
 * (paging with a page-table format, identity, blocked) and the requester-ID table.
 * Translation faults are results and fault records, never exceptions; misuse throws SimError.
 */
import { ABI, check, check64, type Core } from '../../bindings/core.js';
import { SimError, errnoName } from '../../bindings/errors.js';
import { formatRid, hex, intArg, objArg, oneOf, pageAlignedArg, ridArg, u64Arg, U64_MAX } from '../util/args.js';

export type IommuFamily = 'vtd' | 'smmuv3';
export type DomainType = 'paging' | 'identity' | 'blocked';
export type PgtableFormat = 'vtd-ss' | 'arm-lpae-s1';
export type Access = 'read' | 'write' | 'rw';
export type FaultReason =
  | 'translation' | 'permission' | 'address-size' | 'blocked' | 'no-domain' | 'access-flag' | 'reserved-bit';

const FAMILY: Record<IommuFamily, number> = { vtd: ABI.FAMILY_VTD, smmuv3: ABI.FAMILY_SMMUV3 };
const FORMAT: Record<PgtableFormat, number> = { 'vtd-ss': ABI.FMT_VTD_SS, 'arm-lpae-s1': ABI.FMT_ARM_LPAE_S1 };
const DTYPE: Record<DomainType, number> = {
  paging: ABI.DOMAIN_PAGING, identity: ABI.DOMAIN_IDENTITY, blocked: ABI.DOMAIN_BLOCKED,
};
const REASONS: Record<number, FaultReason> = {
  [ABI.FAULT_TRANSLATION]: 'translation', [ABI.FAULT_PERMISSION]: 'permission',
  [ABI.FAULT_ADDRESS_SIZE]: 'address-size', [ABI.FAULT_BLOCKED]: 'blocked',
  [ABI.FAULT_NO_DOMAIN]: 'no-domain', [ABI.FAULT_ACCESS_FLAG]: 'access-flag',
  [ABI.FAULT_RESERVED_BIT]: 'reserved-bit',
};
export function faultReasonName(code: number): FaultReason {
  return REASONS[code] ?? 'translation';
}

export function accessCode(op: string, access: Access): number {
  const a = oneOf(op, 'access', access, ['read', 'write', 'rw'] as const);
  return a === 'read' ? ABI.ACCESS_READ : a === 'write' ? ABI.ACCESS_WRITE : ABI.ACCESS_READ | ABI.ACCESS_WRITE;
}

/** IOMMU prot flags, as include/linux/iommu.h. */
export const Prot = {
  READ: ABI.PROT_READ, WRITE: ABI.PROT_WRITE, CACHE: ABI.PROT_CACHE, NOEXEC: ABI.PROT_NOEXEC,
  MMIO: ABI.PROT_MMIO, PRIV: ABI.PROT_PRIV, RW: ABI.PROT_READ | ABI.PROT_WRITE,
} as const;

export interface UnitOptions {
  family: IommuFamily;
  name?: string;
  /** IOTLB sets, a power of two. @default 64 */
  tlbSets?: number;
  /** IOTLB ways. @default 4 */
  tlbWays?: number;
  /** Fault ring capacity. @default 256 */
  faultQueue?: number;
  /** Lazy-mode flush queue capacity (Linux IOVA_FQ_SIZE). @default 256 */
  flushQueue?: number;
}

export interface DomainOptions {
  type: DomainType;
  /** Paging domains: the page-table format. */
  format?: PgtableFormat;
  /** Input address bits. @default 48 */
  ias?: number;
  /** Output address bits. @default 48 */
  oas?: number;
  /** Strict (unmap invalidates before it returns) or lazy (queued) invalidation. @default true */
  strict?: boolean;
}

export interface FaultRecord {
  rid: number;
  bdf: string;
  domain: number;
  iova: bigint;
  access: 'read' | 'write';
  reason: FaultReason;
  /** The family's own code: VT-d fault reason or SMMUv3 event id (0: SMMU records no event). */
  code: number;
  seq: number;
}

export interface UnitStats {
  hits: bigint;
  misses: bigint;
  walks: bigint;
  invalidations: bigint;
  invalidatedEntries: bigint;
  faults: bigint;
  flushQueueFlushes: bigint;
  translations: bigint;
  tlbValid: number;
  flushQueuePending: number;
  faultsQueued: number;
  faultOverflow: boolean;
}

export type TranslateResult =
  | { ok: true; pa: bigint; pageSize: bigint; perm: number }
  | { ok: false; code: string; reason: FaultReason; familyCode: number };

export interface WalkLevel {
  level: number;
  index: number;
  table: bigint;
  entry: bigint;
}

export interface WalkResult {
  ok: boolean;
  /** Output address when ok. */
  pa?: bigint;
  pageSize?: bigint;
  perm?: number;
  reason?: FaultReason;
  levels: WalkLevel[];
}

export class IommuUnit {
  private readonly _domains = new Set<IommuDomain>();

  /** @internal */
  constructor(private readonly _core: Core, readonly id: number, readonly family: IommuFamily, readonly name: string) {}

  /** Creates a domain on this unit. Throws EINVAL (bad type, format or widths), ENOSPC, ENOMEM. */
  createDomain(opts: DomainOptions): IommuDomain {
    const op = 'createDomain';
    objArg(op, 'options', opts);
    const type = oneOf(op, 'type', opts.type, ['paging', 'identity', 'blocked'] as const);
    let format = 0;
    let fmtName: PgtableFormat | undefined;
    const ias = opts.ias ?? 48;
    const oas = opts.oas ?? 48;
    if (type === 'paging') {
      fmtName = oneOf(op, 'format', opts.format, ['vtd-ss', 'arm-lpae-s1'] as const);
      format = FORMAT[fmtName];
      intArg(op, 'ias', ias, 1, 64);
      intArg(op, 'oas', oas, 1, 64);
    }
    const strict = opts.strict ?? true;
    const id = check(this._core.exports.createDomain(this.id, DTYPE[type], format, ias, oas, strict ? 1 : 0), op,
      type === 'paging' ? `${fmtName} ias=${ias} oas=${oas} (VT-d SS: ias 39/48/57, oas 32..52; ARM LPAE S1: ias 32..48, oas 32..48)` : type);
    const d = new IommuDomain(this._core, this, id, type, fmtName, type === 'paging' ? ias : 64, type === 'paging' ? oas : 64, strict);
    this._domains.add(d);
    return d;
  }

  /** @internal */
  _forget(d: IommuDomain): void {
    this._domains.delete(d);
  }

  domains(): readonly IommuDomain[] {
    return [...this._domains];
  }

  /** Drains the fault ring, oldest first. */
  faults(): FaultRecord[] {
    const out: FaultRecord[] = [];
    const e = this._core.exports;
    const base = this._core.layout.staging;
    for (;;) {
      const n = check(e.faultsDrain(this.id, 1024), 'faults', `unit ${this.id}`);
      const v = this._core.views;
      for (let i = 0; i < n; i++) {
        const r = base + i * ABI.FAULT_STRIDE;
        const rid = v.u32[(r + ABI.FAULT_RID) >> 2]!;
        out.push({
          iova: v.u64[(r + ABI.FAULT_IOVA) >> 3]!,
          rid,
          bdf: formatRid(rid),
          domain: v.i32[(r + ABI.FAULT_DOMAIN) >> 2]!,
          reason: faultReasonName(v.u32[(r + ABI.FAULT_REASON) >> 2]! & 0xffff),
          access: (v.u32[(r + ABI.FAULT_REASON) >> 2]! >>> 16) & ABI.ACCESS_WRITE ? 'write' : 'read',
          code: v.u32[(r + ABI.FAULT_CODE) >> 2]!,
          seq: v.u32[(r + ABI.FAULT_SEQ) >> 2]!,
        });
      }
      if (n < 1024) return out;
    }
  }

  clearFaultOverflow(): void {
    check(this._core.exports.faultsClearOverflow(this.id), 'clearFaultOverflow', `unit ${this.id}`);
  }

  /** Flushes the lazy queue; returns how many unmaps were pending. */
  flush(): number {
    return check(this._core.exports.flush(this.id), 'flush', `unit ${this.id}`);
  }

  invalidateAll(): void {
    check(this._core.exports.invalidateAll(this.id), 'invalidateAll', `unit ${this.id}`);
  }

  stats(): UnitStats {
    const u = this._core.layout.units + this.id * ABI.UNIT_STRIDE;
    const v = this._core.views;
    const s = (off: number) => v.u64[(u + off) >> 3]!;
    const w = (off: number) => v.u32[(u + off) >> 2]!;
    return {
      hits: s(ABI.UNIT_STAT_HITS), misses: s(ABI.UNIT_STAT_MISSES), walks: s(ABI.UNIT_STAT_WALKS),
      invalidations: s(ABI.UNIT_STAT_INVALIDATIONS), invalidatedEntries: s(ABI.UNIT_STAT_INVALIDATED),
      faults: s(ABI.UNIT_STAT_FAULTS), flushQueueFlushes: s(ABI.UNIT_STAT_FQ_FLUSHES),
      translations: s(ABI.UNIT_STAT_TRANSLATIONS), tlbValid: check(this._core.exports.tlbValid(this.id), 'stats', ''),
      flushQueuePending: w(ABI.UNIT_FQ_COUNT), faultsQueued: w(ABI.UNIT_FAULT_COUNT),
      faultOverflow: w(ABI.UNIT_FAULT_OVERFLOW) !== 0,
    };
  }
}

export class IommuDomain {
  private _destroyed = false;

  /** @internal */
  constructor(
    private readonly _core: Core,
    readonly unit: IommuUnit,
    readonly id: number,
    readonly type: DomainType,
    readonly format: PgtableFormat | undefined,
    readonly ias: number,
    readonly oas: number,
    readonly strict: boolean,
  ) {}

  private _live(op: string): void {
    if (this._destroyed) throw new SimError('ENOENT', op, `domain ${this.id} was destroyed`);
  }

  /**
   * iommu_map: [iova, +size) -> [pa, +size) with the largest page sizes both alignments allow.
   * Throws EINVAL (unaligned, size 0, prot without READ or WRITE), ERANGE (iova >= 2^ias or
   * pa >= 2^oas), EEXIST (already mapped), ENOMEM, ENODEV (not a paging domain). On a throw
   * nothing changed.
   */
  map(iova: bigint, pa: bigint, size: bigint, prot: number): void {
    const op = 'iommu_map';
    this._live(op);
    pageAlignedArg(op, 'iova', iova);
    pageAlignedArg(op, 'pa', pa);
    pageAlignedArg(op, 'size', size);
    intArg(op, 'prot', prot, 0, ABI.PROT_ALL);
    if (size === 0n) throw new SimError('EINVAL', op, 'size is 0');
    if ((prot & (ABI.PROT_READ | ABI.PROT_WRITE)) === 0) throw new SimError('EINVAL', op, 'prot has neither READ nor WRITE');
    if (iova + size - 1n > U64_MAX || pa + size - 1n > U64_MAX) throw new SimError('ERANGE', op, 'range wraps past 2^64');
    check(this._core.exports.map(this.id, iova, pa, size, prot), op,
      `domain ${this.id}: iova ${hex(iova)} -> pa ${hex(pa)} size ${hex(size)} (ias ${this.ias}, oas ${this.oas})`);
  }

  /**
   * iommu_unmap: returns the bytes unmapped. A leaf partly inside the range goes whole and
   * counts whole (Linux >= 6.13); a hole stops the unmap (0 at a hole). Strict domains invalidate
   * the IOTLB before returning; lazy ones queue the invalidation until the unit is flushed.
   */
  unmap(iova: bigint, size: bigint): bigint {
    const op = 'iommu_unmap';
    this._live(op);
    pageAlignedArg(op, 'iova', iova);
    pageAlignedArg(op, 'size', size);
    if (size === 0n) throw new SimError('EINVAL', op, 'size is 0');
    if (iova + size - 1n > U64_MAX) throw new SimError('ERANGE', op, 'range wraps past 2^64');
    return check64(this._core.exports.unmap(this.id, iova, size), op, `domain ${this.id}: iova ${hex(iova)} size ${hex(size)}`);
  }

  /** Software page-table walk (iova_to_phys) with each level's entry. */
  walk(iova: bigint): WalkResult {
    const op = 'walk';
    this._live(op);
    u64Arg(op, 'iova', iova);
    const r = check(this._core.exports.walk(this.id, iova), op, `domain ${this.id}`);
    const depth = Number(this._core.resultBytes());
    const v = this._core.views;
    const levels: WalkLevel[] = [];
    for (let i = 0; i < depth && i < ABI.TRACE_MAX; i++) {
      const t = this._core.layout.trace + i * ABI.TRACE_STRIDE;
      levels.push({ level: v.u32[t >> 2]!, index: v.u32[(t + 4) >> 2]!, table: v.u64[(t + 8) >> 3]!, entry: v.u64[(t + 16) >> 3]! });
    }
    if (r !== 0) return { ok: false, reason: faultReasonName(r), levels };
    return {
      ok: true, pa: this._core.resultValue(), pageSize: 1n << BigInt(this._core.resultU32(ABI.RES_SHIFT)),
      perm: this._core.resultU32(ABI.RES_PERM), levels,
    };
  }

  /** Invalidates this domain's IOTLB entries in [start, end), or all of them. */
  invalidate(start?: bigint, end?: bigint): void {
    this._live('invalidate');
    if (start === undefined) {
      check(this._core.exports.invalidateDomain(this.id), 'invalidate', `domain ${this.id}`);
      return;
    }
    const s = u64Arg('invalidate', 'start', start);
    const e = u64Arg('invalidate', 'end', end);
    check(this._core.exports.invalidateRange(this.id, s, e), 'invalidate', `empty range ${hex(s)}..${hex(e)}`);
  }

  get mappedBytes(): bigint {
    return this._core.views.u64[(this._core.layout.domains + this.id * ABI.DOMAIN_STRIDE + ABI.DOMAIN_MAPPED) >> 3]!;
  }

  get tableFrames(): number {
    return this._core.views.u32[(this._core.layout.domains + this.id * ABI.DOMAIN_STRIDE + ABI.DOMAIN_TABLE_FRAMES) >> 2]!;
  }

  /** Physical address of the top-level table (what a context entry / STE would point at). */
  get root(): bigint {
    return this._core.views.u64[(this._core.layout.domains + this.id * ABI.DOMAIN_STRIDE + ABI.DOMAIN_ROOT) >> 3]!;
  }

  get destroyed(): boolean {
    return this._destroyed;
  }

  /** Frees the domain and every table frame. Throws EBUSY while a device is attached. */
  destroy(): void {
    this._live('destroyDomain');
    check(this._core.exports.destroyDomain(this.id), 'destroyDomain', `domain ${this.id} still has devices attached`);
    this._destroyed = true;
    this.unit._forget(this);
  }
}

export class Iommu {
  private readonly _units: IommuUnit[] = [];

  /** @internal */
  constructor(private readonly _core: Core) {}

  /** Creates a unit. Throws EINVAL (bad sizes), ENOSPC (16 units), ENOMEM. */
  createUnit(opts: UnitOptions): IommuUnit {
    const op = 'createUnit';
    objArg(op, 'options', opts);
    const family = oneOf(op, 'family', opts.family, ['vtd', 'smmuv3'] as const);
    const sets = intArg(op, 'tlbSets', opts.tlbSets ?? 64, 1, 65536);
    if ((sets & (sets - 1)) !== 0) throw new SimError('EINVAL', op, `tlbSets = ${sets} is not a power of two`);
    const ways = intArg(op, 'tlbWays', opts.tlbWays ?? 4, 1, 16);
    const fq = intArg(op, 'faultQueue', opts.faultQueue ?? 256, 1, 65536);
    const flq = intArg(op, 'flushQueue', opts.flushQueue ?? 256, 1, 65536);
    const id = check(this._core.exports.createUnit(FAMILY[family], sets, ways, fq, flq), op, family);
    const unit = new IommuUnit(this._core, id, family, opts.name ?? `iommu${id}`);
    this._units.push(unit);
    return unit;
  }

  units(): readonly IommuUnit[] {
    return this._units;
  }

  /**
   * Attaches requester `rid` to a domain, to 'direct' (its DMA reaches physical addresses with
   * no IOMMU), or detaches it (null: its DMA then faults as no-domain).
   */
  attach(rid: number | string, domain: IommuDomain | 'direct' | null): void {
    const op = 'attachDevice';
    const r = ridArg(op, 'rid', rid);
    // Only a domain of this simulator, 'direct' or null: never a look-alike object or an id.
    if (domain !== null && domain !== 'direct' && !(domain instanceof IommuDomain && this._units.includes(domain.unit))) {
      throw new SimError('EINVAL', op, 'domain must be an IommuDomain of this simulator, \'direct\' or null');
    }
    if (domain instanceof IommuDomain && domain.destroyed) throw new SimError('ENOENT', op, `domain ${domain.id} was destroyed`);
    const d = domain === null ? -1 : domain === 'direct' ? ABI.DOMAIN_DIRECT : domain.id;
    check(this._core.exports.attachDevice(r, d), op, `${formatRid(r)} -> ${d}`);
  }

  /**
   * Routes `rid`'s DMA to bus addresses [bus, bus + size) straight to physical [cpu, cpu + size),
   * bypassing its IOMMU domain: a peer's BAR reached through a common switch (P2PDMA BUS_ADDR).
   * Throws EINVAL, EEXIST (overlaps a route of the same requester), ENOSPC (256 routes).
   */
  addP2pRoute(rid: number | string, bus: bigint, size: bigint, cpu: bigint): void {
    const op = 'addP2pRoute';
    const r = ridArg(op, 'rid', rid);
    u64Arg(op, 'bus', bus);
    u64Arg(op, 'size', size);
    u64Arg(op, 'cpu', cpu);
    check(this._core.exports.addP2pRoute(r, bus, size, cpu), op, `${formatRid(r)}: bus ${hex(bus)}+${hex(size)} -> ${hex(cpu)}`);
  }

  removeP2pRoute(rid: number | string, bus: bigint): void {
    const op = 'removeP2pRoute';
    const r = ridArg(op, 'rid', rid);
    check(this._core.exports.removeP2pRoute(r, u64Arg(op, 'bus', bus)), op, `${formatRid(r)}: no route at ${hex(bus)}`);
  }

  /**
   * Puts requester `rid` behind `unit` with no domain: a stream with no valid context entry or
   * STE. Its DMA faults as no-domain and the unit records it (VT-d reason 2, SMMUv3 C_BAD_STE).
   */
  place(rid: number | string, unit: IommuUnit): void {
    const r = ridArg('placeDevice', 'rid', rid);
    if (!(unit instanceof IommuUnit && this._units.includes(unit))) throw new SimError('EINVAL', 'placeDevice', 'unit must be an IommuUnit of this simulator');
    check(this._core.exports.placeDevice(r, unit.id), 'placeDevice', `${formatRid(r)} behind unit ${unit.id}`);
  }

  /** The domain id `rid` is attached to, 'direct', or null. */
  domainOf(rid: number | string): number | 'direct' | null {
    const d = this._core.exports.deviceDomain(ridArg('domainOf', 'rid', rid));
    return d === ABI.DOMAIN_DIRECT ? 'direct' : d < 0 ? null : d;
  }

  /**
   * Translates one address as the device would (IOTLB, then the walk on a miss). A fault is a
   * result and a record on the unit's fault queue, not an exception.
   */
  translate(rid: number | string, iova: bigint, access: Access = 'read'): TranslateResult {
    const op = 'translate';
    const r = ridArg(op, 'rid', rid);
    const st = this._core.exports.translate(r, u64Arg(op, 'iova', iova), accessCode(op, access));
    if (st === 0) {
      return { ok: true, pa: this._core.resultValue(), pageSize: 1n << BigInt(this._core.resultU32(ABI.RES_SHIFT)), perm: this._core.resultU32(ABI.RES_PERM) };
    }
    if (st === ABI.EINVAL) throw new SimError('EINVAL', op, 'bad access');
    return {
      ok: false, code: errnoName(st), reason: faultReasonName(this._core.resultU32(ABI.RES_FAULT_REASON)),
      familyCode: this._core.resultU32(ABI.RES_FAULT_CODE),
    };
  }

  /**
   * Translates many addresses in batches through linear memory (one crossing per 32768).
   * Returns output addresses (0 where it faulted), per-address status (0 or negative errno)
   * and the fault count.
   */
  translateBatch(rid: number | string, iovas: BigUint64Array, access: Access = 'read'): { out: BigUint64Array; status: Int32Array; faults: number } {
    const op = 'translateBatch';
    const r = ridArg(op, 'rid', rid);
    const a = accessCode(op, access);
    if (!(iovas instanceof BigUint64Array)) throw new SimError('EINVAL', op, 'iovas must be a BigUint64Array');
    const out = new BigUint64Array(iovas.length);
    const status = new Int32Array(iovas.length);
    const base = this._core.layout.staging;
    let faults = 0;
    for (let off = 0; off < iovas.length; off += ABI.BATCH_MAX) {
      const n = Math.min(ABI.BATCH_MAX, iovas.length - off);
      const v = this._core.views;
      v.u64.set(iovas.subarray(off, off + n), base >> 3);
      faults += check(this._core.exports.translateBatch(r, n, a), op, `${n} addresses`);
      out.set(v.u64.subarray((base + ABI.BATCH_OUT) >> 3, ((base + ABI.BATCH_OUT) >> 3) + n), off);
      status.set(v.i32.subarray((base + ABI.BATCH_STATUS) >> 2, ((base + ABI.BATCH_STATUS) >> 2) + n), off);
    }
    return { out, status, faults };
  }
}
