/**
 * The TypeScript face of the core's IOMMU: units (IOTLB + fault queue + flush queue), domains
 * (paging with a page-table format, identity, blocked) and the requester-ID table.
 * Translation faults are results and fault records, never exceptions; misuse throws SimError.
 */
import { ABI, check, check64, type Core } from '../../bindings/core.js';
import { SimError, errnoName } from '../../bindings/errors.js';
import { boolArg, formatRid, hex, intArg, isU64, objArg, oneOf, pageAlignedArg, ridArg, u64Arg, RID_PHYS, U64_MAX } from '../util/args.js';
import { formatPolicy, policyCode, PGTABLE_FORMATS, IOMMU_KERNELS, type IommuKernel, type PgtableFormat, type FormatPolicy } from './kernel.js';

export type { PgtableFormat, IommuKernel, FormatPolicy };
/**
 * The IOMMU hardware a unit models: Intel VT-d, Arm SMMUv3, AMD-Vi, or the RISC-V IOMMU. It
 * decides the page-table formats the unit walks ({@link FAMILY_FORMATS}) and the codes its fault
 * records carry ({@link FaultRecord.code}).
 */
export type IommuFamily = 'vtd' | 'smmuv3' | 'amd-vi' | 'riscv';
/** Every {@link IommuFamily}, in the order the API lists them. */
export const IOMMU_FAMILIES: readonly IommuFamily[] = ['vtd', 'smmuv3', 'amd-vi', 'riscv'];
/**
 * The kind of a domain, as the kernel's IOMMU_DOMAIN_* types: 'paging' translates through its
 * own I/O page table (IOMMU_DOMAIN_DMA / UNMANAGED), 'identity' passes addresses through
 * unchanged (IOMMU_DOMAIN_IDENTITY, iommu=pt), 'blocked' faults every access
 * (IOMMU_DOMAIN_BLOCKED), 'nested' walks a guest-owned stage-1 table over a stage-2 paging
 * domain (IOMMU_DOMAIN_NESTED, iommufd's nested HWPT).
 */
export type DomainType = 'paging' | 'identity' | 'blocked' | 'nested';
/** The direction of a DMA access being translated: a device read, a write, or both. */
export type Access = 'read' | 'write' | 'rw';
/**
 * Why a translation faulted, the same across families ({@link FaultRecord.code} has the family's
 * own code):
 *  - 'translation': no valid entry on the walk (VT-d read/write fault, SMMUv3 F_TRANSLATION);
 *  - 'permission': the leaf (or a table above it) does not allow the access;
 *  - 'address-size': the IOVA is beyond the input width (or not canonical), or an ARM leaf's
 *    output is beyond the output width (other formats: 'reserved-bit', RISC-V 'translation');
 *  - 'blocked': the requester is attached to a blocked domain;
 *  - 'no-domain': the requester sits behind a unit with no domain (no context entry / STE);
 *  - 'access-flag': an ARM leaf with AF clear (SMMUv3 F_ACCESS);
 *  - 'reserved-bit': an entry with reserved bits set or a large page where none may be;
 *  - 'walk-eabt': the walk read a table outside memory (SMMUv3 F_WALK_EABT);
 *  - 'interrupt-address': VT-d output inside the interrupt range 0xFEE00000..0xFEEFFFFF;
 *  - 'no-pasid': the request's PASID has no domain (VT-d PASID entry not present 0x59, SMMUv3
 *    C_BAD_CD, or C_BAD_SUBSTREAMID beyond the CD table).
 */
export type FaultReason =
  | 'translation' | 'permission' | 'address-size' | 'blocked' | 'no-domain' | 'access-flag' | 'reserved-bit'
  | 'walk-eabt' | 'interrupt-address' | 'no-pasid';

const FAMILY: Record<IommuFamily, number> = {
  vtd: ABI.FAMILY_VTD, smmuv3: ABI.FAMILY_SMMUV3, 'amd-vi': ABI.FAMILY_AMDVI, riscv: ABI.FAMILY_RISCV,
};
const FORMAT: Record<PgtableFormat, number> = {
  'vtd-ss': ABI.FMT_VTD_SS, 'arm-lpae-s1': ABI.FMT_ARM_LPAE_S1, 'arm-lpae-s2': ABI.FMT_ARM_LPAE_S2,
  'amd-v1': ABI.FMT_AMD_V1, 'x86-64': ABI.FMT_X86_64, riscv: ABI.FMT_RISCV,
};

/** The page-table format Linux gives a DMA domain on each family's units. */
export function defaultFormat(family: IommuFamily): PgtableFormat {
  switch (family) {
    case 'vtd': return 'vtd-ss';
    case 'smmuv3': return 'arm-lpae-s1';
    case 'amd-vi': return 'amd-v1';
    case 'riscv': return 'riscv';
  }
}

/** Formats a family's hardware walks (VT-d: both stages; SMMUv3: both stages). */
export const FAMILY_FORMATS: Record<IommuFamily, readonly PgtableFormat[]> = {
  vtd: ['vtd-ss', 'x86-64'], smmuv3: ['arm-lpae-s1', 'arm-lpae-s2'], 'amd-vi': ['amd-v1', 'x86-64'], riscv: ['riscv'],
};
const DTYPE: Record<DomainType, number> = {
  paging: ABI.DOMAIN_PAGING, identity: ABI.DOMAIN_IDENTITY, blocked: ABI.DOMAIN_BLOCKED, nested: ABI.DOMAIN_NESTED,
};
const REASONS: Record<number, FaultReason> = {
  [ABI.FAULT_TRANSLATION]: 'translation', [ABI.FAULT_PERMISSION]: 'permission',
  [ABI.FAULT_ADDRESS_SIZE]: 'address-size', [ABI.FAULT_BLOCKED]: 'blocked',
  [ABI.FAULT_NO_DOMAIN]: 'no-domain', [ABI.FAULT_ACCESS_FLAG]: 'access-flag',
  [ABI.FAULT_RESERVED_BIT]: 'reserved-bit', [ABI.FAULT_WALK_EABT]: 'walk-eabt',
  [ABI.FAULT_INTERRUPT_ADDR]: 'interrupt-address', [ABI.FAULT_NO_PASID]: 'no-pasid',
};
/** The {@link FaultReason} of a core fault code (abi FAULT_*); 'translation' for an unknown one. */
export function faultReasonName(code: number): FaultReason {
  return REASONS[code] ?? 'translation';
}

/** The `nested` part of a fault record from its FAULT_F_* flags. */
function nestedInfo(flags: number, ipa: bigint): { nested?: FaultRecord['nested'] } {
  if ((flags & ABI.FAULT_F_NESTED) === 0) return {};
  const s2 = (flags & ABI.FAULT_F_STAGE2) !== 0;
  return { nested: { stage: s2 ? 2 : 1, ipa: s2 ? ipa : 0n, tableFetch: (flags & ABI.FAULT_F_CLASS_TT) !== 0 } };
}

/** The PASID of translate options (undefined: none). */
function pasidOpt(op: string, opts: TranslateOptions): number | undefined {
  objArg(op, 'options', opts);
  return opts.pasid === undefined ? undefined : intArg(op, 'pasid', opts.pasid, 0, (1 << ABI.PASID_MAX_BITS) - 1);
}

const PROT_ALL = ABI.PROT_ALL;
function isProt(v: unknown): v is number {
  return typeof v === 'number' && (v & PROT_ALL) === v;
}

// What the hot paths use, read once from the ABI namespace.
const { ACCESS_READ, ACCESS_WRITE, RES_VALUE, RES_SHIFT, RES_PERM } = ABI;

/** 2^shift as a bigint, from a table made once (page sizes of results). */
const POW2: readonly bigint[] = Array.from({ length: 65 }, (_, i) => 1n << BigInt(i));
function pow2(shift: number): bigint {
  return POW2[shift] ?? 1n << BigInt(shift);
}

/**
 * The core's access bits (abi ACCESS_*) for `access`.
 * @throws {@link SimError} EINVAL when `access` is not 'read', 'write' or 'rw'.
 */
export function accessCode(op: string, access: Access): number {
  const a = oneOf(op, 'access', access, ['read', 'write', 'rw'] as const);
  return a === 'read' ? ABI.ACCESS_READ : a === 'write' ? ABI.ACCESS_WRITE : ABI.ACCESS_READ | ABI.ACCESS_WRITE;
}

/** IOMMU prot flags, as include/linux/iommu.h. */
export const Prot = {
  READ: ABI.PROT_READ, WRITE: ABI.PROT_WRITE, CACHE: ABI.PROT_CACHE, NOEXEC: ABI.PROT_NOEXEC,
  MMIO: ABI.PROT_MMIO, PRIV: ABI.PROT_PRIV, RW: ABI.PROT_READ | ABI.PROT_WRITE,
} as const;

/** Options of {@link Iommu.createUnit}: the hardware of one IOMMU unit. */
export interface UnitOptions {
  /** The IOMMU architecture. */
  family: IommuFamily;
  /** A name for reports. @default 'iommu<id>' */
  name?: string;
  /** IOTLB sets, a power of two up to 65536. @default 64 */
  tlbSets?: number;
  /** IOTLB ways, 1..16. @default 4 */
  tlbWays?: number;
  /**
   * Fault ring capacity, 1..65536 records. When it is full further faults are dropped and the
   * overflow flag is set (VT-d PFO: nothing more is recorded until it is cleared). @default 256
   */
  faultQueue?: number;
  /** Lazy-mode flush queue capacity, 1..65536 (Linux IOVA_FQ_SIZE). @default 256 */
  flushQueue?: number;
  /**
   * Collapse a fault from a requester that already has a pending record into it (QEMU VT-d with
   * its one fault-recording register). @default false
   */
  collapseFaults?: boolean;
  /** VT-d scalable mode: its fault codes (interrupt range 0x87 instead of 0xE). @default false */
  scalableMode?: boolean;
}

/** Options of {@link IommuUnit.createDomain}: one domain (struct iommu_domain). */
export interface DomainOptions {
  /** Paging, identity or blocked. */
  type: DomainType;
  /** Paging domains: the io_pgtable format (required for them, ignored by the others). */
  format?: PgtableFormat;
  /** Input (IOVA) address bits; the valid widths depend on the format. @default 48 */
  ias?: number;
  /** Output (physical) address bits; the valid widths depend on the format. @default 48 */
  oas?: number;
  /** Strict (unmap invalidates before it returns) or lazy (queued) invalidation. @default true */
  strict?: boolean;
  /** Translation granule in bytes: 4096, or 16384 / 65536 for the ARM formats. @default 4096 */
  granule?: number;
  /** Kernel whose IOMMU code this domain follows (partial unmap, overlapping map). @default 'mainline' */
  kernel?: IommuKernel;
  /** ARM stage 1: honour APTable and the other hierarchical table attributes (false = CD.HAD). @default true */
  hierarchicalAttrs?: boolean;
  /** RISC-V: Svnapot 64K leaves (generic_pt kernels only). @default true */
  svnapot?: boolean;
  /** Paging: may be the stage 2 of nested domains (iommufd IOMMU_HWPT_ALLOC_NEST_PARENT). @default false */
  nestParent?: boolean;
  /**
   * Paging: able to track dirty pages, with tracking on from the start (iommufd
   * IOMMU_HWPT_ALLOC_DIRTY_TRACKING); see {@link IommuDomain.setDirtyTracking}. @default false
   */
  dirtyTracking?: boolean;
  /** Nested: the stage-2 domain, created with `nestParent` on the same unit. */
  parent?: IommuDomain;
  /** Nested: the IPA (guest physical address) of the guest's stage-1 root table. */
  root?: bigint;
}

/**
 * One record of a unit's fault queue, as the hardware logs it (VT-d fault recording register,
 * SMMUv3 event queue, AMD-Vi event log, RISC-V fault queue) and {@link IommuUnit.faults} drains it.
 */
export interface FaultRecord {
  /** Requester ID of the faulting device (segment << 16 | bus << 8 | devfn). */
  rid: number;
  /** The requester ID as 'SSSS:BB:DD.F'. */
  bdf: string;
  /** Id of the domain the requester was attached to; -1 when it had none. */
  domain: number;
  /** The address the device used (an IPA for a stage-2 fault). */
  iova: bigint;
  /** The direction of the faulting access. */
  access: 'read' | 'write';
  /** Why it faulted, family-independent. */
  reason: FaultReason;
  /**
   * The family's own code: VT-d fault reason, SMMUv3 event id (0: SMMU records no event), AMD-Vi
   * event type, RISC-V fault-queue cause.
   */
  code: number;
  /** Sequence number of the fault on its unit, counting dropped and collapsed ones too. */
  seq: number;
  /** A stage-2 fault (SMMUv3 event record S2 bit; the iova is an IPA). */
  stage2: boolean;
  /** The PASID the request carried, or null. */
  pasid: number | null;
  /**
   * Nested domains: the stage that failed, and for stage 2 the IPA it failed on and whether that
   * was a stage-1 table fetch (SMMUv3 CLASS=TT) rather than the output (CLASS=IN).
   */
  nested?: { stage: 1 | 2; ipa: bigint; tableFetch: boolean };
}

/**
 * A page request (PCIe PRI, SMMUv3 PRI queue, VT-d page request descriptor): a PRI device's
 * translation failed and it asks software to make the page present, then retries. Drained by
 * {@link IommuUnit.pageRequests}.
 */
export interface PageRequest {
  rid: number;
  /** The PASID of the request, or null. */
  pasid: number | null;
  /** The page (4 KiB aligned) the device asked for. */
  iova: bigint;
  access: 'read' | 'write' | 'rw';
}

/** Counters and state of one unit ({@link IommuUnit.stats}). */
export interface UnitStats {
  /** Translations served from the IOTLB. */
  hits: bigint;
  /** IOTLB misses (each one walks the page table). */
  misses: bigint;
  /** Hardware page-table walks. */
  walks: bigint;
  /** IOTLB invalidations (range, domain or global). */
  invalidations: bigint;
  /** IOTLB entries those invalidations removed. */
  invalidatedEntries: bigint;
  /** Faults raised, including dropped and collapsed ones. */
  faults: bigint;
  /** Flushes of the lazy flush queue. */
  flushQueueFlushes: bigint;
  /** Translations through a domain of this unit. */
  translations: bigint;
  /** Valid IOTLB entries now. */
  tlbValid: number;
  /** Lazy unmaps whose invalidation is still queued. */
  flushQueuePending: number;
  /** Fault records waiting to be drained. */
  faultsQueued: number;
  /** The fault ring overflowed and records were dropped (cleared by {@link IommuUnit.clearFaultOverflow}). */
  faultOverflow: boolean;
  /** Faults folded into a pending record of the same requester (collapseFaults). */
  collapsedFaults: bigint;
  /** IOTLB hits of requests that carried a PASID. */
  pasidHits: bigint;
  /** ATS translation requests from ATS devices (their ATC missed). */
  atsRequests: bigint;
  /** Requests ATS devices served from their own ATC, bypassing the IOMMU. */
  atcHits: bigint;
  /** ATC invalidations sent to ATS devices (each one completed). */
  atcInvalidations: bigint;
  /** Page requests raised by PRI devices (including dropped ones). */
  pageRequests: bigint;
  /** Nested (stage 1 over stage 2) hardware walks. */
  nestedWalks: bigint;
  /** Page requests waiting to be drained. */
  pageRequestsQueued: number;
}

/**
 * The outcome of {@link Iommu.translate}. Success: the output address, the size of the page that
 * mapped it (2^64 for identity, direct and peer-route access) and its permission bits (1 read,
 * 2 write). A fault: the errno the access would see (EFAULT, EACCES, ERANGE, EPERM for blocked,
 * ENODEV for no domain), the reason and the family's code (as in {@link FaultRecord.code}).
 */
export type TranslateResult =
  | { ok: true; pa: bigint; pageSize: bigint; perm: number }
  | { ok: false; code: string; reason: FaultReason; familyCode: number; stage?: 1 | 2 }
  | { ok: false; code: 'page-request'; reason: FaultReason; familyCode: 0; pageRequest: PageRequest };

/** Options of {@link Iommu.translate} and {@link Iommu.translateBatch}. */
export interface TranslateOptions {
  /** The PASID the request carries (1..2^20-1); none by default. */
  pasid?: number;
}

/**
 * One step of a page-table walk, named as the architecture names it (the same names in the
 * report, `dmabuf-sim demo` and the web page):
 *  - Intel (VT-d second stage, x86-64 first stage) and AMD v1 count down to the leaf: a 4-level
 *    table is levels 4, 3, 2, 1, whose entries Intel calls PML4E, PDPE, PDE and PTE (PML5E above);
 *  - ARM VMSA counts up from the start level: with a 4K granule level 0 translates bits 47:39 and
 *    level 3 bits 20:12, so a 3-level table walks levels 1, 2, 3;
 *  - RISC-V numbers the levels of Sv39/48/57 from LEVELS-1 down to 0 (the 4K leaf level).
 */
export interface WalkLevel {
  /** Steps from the top table (0 = the root). */
  depth: number;
  /** The architecture's number for this level (see above). */
  level: number;
  /** 'L4 PML4E' (Intel), 'L0' (ARM), 'L3' (AMD v1), 'L2' (RISC-V). */
  name: string;
  /** Index of the entry in its table. */
  index: number;
  /** Physical address of the table (its first frame). */
  table: bigint;
  /** The raw entry read. */
  entry: bigint;
}

const INTEL_ENTRY: Record<number, string> = { 5: 'PML5E', 4: 'PML4E', 3: 'PDPE', 2: 'PDE', 1: 'PTE' };

/** The architecture's number and name of the level at `depth` of a table of `format` walked in `levels` levels. */
export function archLevel(format: PgtableFormat | undefined, levels: number, depth: number): { level: number; name: string } {
  switch (format) {
    case 'arm-lpae-s1':
    case 'arm-lpae-s2': {
      const level = 4 - levels + depth;
      return { level, name: `L${level}` };
    }
    case 'riscv': {
      const level = levels - 1 - depth;
      return { level, name: `L${level}` };
    }
    case 'vtd-ss':
    case 'x86-64': {
      const level = levels - depth;
      return { level, name: `L${level} ${INTEL_ENTRY[level] ?? ''}`.trimEnd() };
    }
    default: {
      const level = levels - depth;
      return { level, name: `L${level}` };
    }
  }
}

/** The outcome of {@link IommuDomain.walk}: the software walk of one IOVA, level by level. */
export interface WalkResult {
  /** The walk reached a valid leaf. */
  ok: boolean;
  /** Output address when ok. */
  pa?: bigint;
  /** Size of the leaf's page when ok. */
  pageSize?: bigint;
  /** Permission bits of the leaf when ok (1 read, 2 write). */
  perm?: number;
  /** Why the walk stopped when not ok. */
  reason?: FaultReason;
  /** Every entry read, top table first (a nested domain: the stage-1 entries). */
  levels: WalkLevel[];
  /**
   * Nested domains: the stage-2 walk of each stage-1 table fetch (index = stage-1 step), then,
   * as the last element when the stage-1 walk reached a leaf, the stage-2 walk of its output.
   */
  stage2?: WalkLevel[][];
  /** Nested domains, when not ok: the stage that failed and the IPA stage 2 failed on. */
  stage?: 1 | 2;
  ipa?: bigint;
}

/**
 * One IOMMU unit (a DMAR unit, an SMMU, an AMD-Vi IOMMU, a RISC-V IOMMU): its IOTLB, its fault
 * queue, its lazy flush queue and the domains created on it. Made by {@link Iommu.createUnit}.
 */
export class IommuUnit {
  private readonly _domains = new Set<IommuDomain>();

  /** @internal */
  constructor(
    private readonly _core: Core,
    /** Unit index in the core, from 0. */
    readonly id: number,
    /** The IOMMU architecture. */
    readonly family: IommuFamily,
    /** Name for reports. */
    readonly name: string,
  ) {}

  /**
   * Creates a domain on this unit (iommu_domain_alloc). Paging domains get an empty root table
   * and follow `kernel`'s IOMMU code for their format ({@link formatPolicy}).
   * @throws {@link SimError} EINVAL for a bad type, kernel, format or granule, ias or oas outside
   * 1..64 or outside what the format supports (the message lists the widths per format).
   * @throws {@link SimError} ENODEV when the kernel has no driver for the format (RISC-V before 6.13).
   * @throws {@link SimError} ENOSPC when 1024 domains exist.
   * @throws {@link SimError} ENOMEM when no frame is left for the root table.
   */
  createDomain(opts: DomainOptions): IommuDomain {
    const op = 'createDomain';
    objArg(op, 'options', opts);
    const type = oneOf(op, 'type', opts.type, ['paging', 'identity', 'blocked', 'nested'] as const);
    if (type === 'nested') return this._createNested(opts);
    let format = 0;
    let fmtName: PgtableFormat | undefined;
    const ias = opts.ias ?? 48;
    const oas = opts.oas ?? 48;
    const granule = opts.granule ?? 4096;
    const kernel = oneOf(op, 'kernel', opts.kernel ?? 'mainline', IOMMU_KERNELS);
    let policy: FormatPolicy | undefined;
    let flags = 0;
    if (type === 'paging') {
      fmtName = oneOf(op, 'format', opts.format, PGTABLE_FORMATS);
      format = FORMAT[fmtName];
      intArg(op, 'ias', ias, 1, 64);
      intArg(op, 'oas', oas, 1, 64);
      if (granule !== 4096 && granule !== 16384 && granule !== 65536) {
        throw new SimError('EINVAL', op, `granule = ${granule}: expected 4096, 16384 or 65536`);
      }
      policy = formatPolicy(kernel, fmtName);
      if (opts.hierarchicalAttrs === false) flags |= ABI.DOMAIN_F_HAD;
      if (fmtName === 'riscv' && (opts.svnapot ?? true) && policy.code === 'generic_pt') flags |= ABI.DOMAIN_F_SVNAPOT;
      if (opts.nestParent !== undefined && boolArg(op, 'nestParent', opts.nestParent)) flags |= ABI.DOMAIN_F_NEST_PARENT;
      if (opts.dirtyTracking !== undefined && boolArg(op, 'dirtyTracking', opts.dirtyTracking)) flags |= ABI.DOMAIN_F_DIRTY_CAP | ABI.DOMAIN_F_DIRTY;
    } else if (opts.dirtyTracking) {
      // iommufd: dirty tracking is a paging (page-table) domain's property.
      throw new SimError('EOPNOTSUPP', op, `dirtyTracking: a ${type} domain has no page table to track`);
    }
    const strict = opts.strict ?? true;
    const id = check(this._core.exports.createDomainEx(this.id, DTYPE[type], format, ias, oas, strict ? 1 : 0, granule, flags,
      policy ? policyCode(policy) : 0, policy?.pgsizeMask ?? 0n), op,
      type === 'paging'
        ? `${fmtName} ias=${ias} oas=${oas} granule=${granule} (VT-d SS: ias 39/48/57, oas 32..52; ARM LPAE: granule 4K/16K/64K, ias and oas 32..48, 52 with 64K; AMD v1: ias 32..64, oas 32..52; x86-64: ias 48/57; RISC-V: ias 39/48/57, oas 32..56)`
        : type);
    const d = new IommuDomain(this._core, this, id, type, fmtName, type === 'paging' ? ias : 64, type === 'paging' ? oas : 64, strict,
      { kernel, policy, granule: type === 'paging' ? granule : 4096 });
    this._domains.add(d);
    return d;
  }

  /** A nested domain (see {@link DomainOptions}): stage 1 at IPA `root` over `parent`. */
  private _createNested(opts: DomainOptions): IommuDomain {
    const op = 'createDomain';
    const parent = opts.parent;
    if (!(parent instanceof IommuDomain) || parent.unit !== this) {
      throw new SimError('EINVAL', op, 'parent: a nested domain needs a stage-2 IommuDomain of this unit');
    }
    if (parent.destroyed) throw new SimError('ENOENT', op, `parent: domain ${parent.id} was destroyed`);
    if (parent.type !== 'paging' || !parent.nestParent) {
      throw new SimError('EINVAL', op, `parent: domain ${parent.id} was not created with nestParent (IOMMU_HWPT_ALLOC_NEST_PARENT)`);
    }
    const fmtName = oneOf(op, 'format', opts.format, PGTABLE_FORMATS);
    const ias = intArg(op, 'ias', opts.ias ?? 48, 1, 64);
    const oas = intArg(op, 'oas', opts.oas ?? 48, 1, 64);
    const granule = opts.granule ?? 4096;
    if (granule !== 4096 && granule !== 16384 && granule !== 65536) {
      throw new SimError('EINVAL', op, `granule = ${granule}: expected 4096, 16384 or 65536`);
    }
    const root = u64Arg(op, 'root', opts.root);
    if (opts.dirtyTracking) throw new SimError('EOPNOTSUPP', op, 'dirtyTracking: the stage 1 of a nested domain belongs to the guest');
    const flags = opts.hierarchicalAttrs === false ? ABI.DOMAIN_F_HAD : 0;
    const id = check(this._core.exports.createNested(parent.id, FORMAT[fmtName], ias, oas, granule, flags, root), op,
      `${fmtName} over ${parent.format} ias=${ias} oas=${oas} granule=${granule} root=${hex(root)} (nesting: SMMUv3 arm-lpae-s1 over arm-lpae-s2, VT-d and AMD x86-64 over their stage 2, RISC-V riscv over riscv; root aligned to the granule)`);
    const d = new IommuDomain(this._core, this, id, 'nested', fmtName, ias, oas, true, { kernel: 'mainline', policy: undefined, granule });
    d.parent = parent;
    this._domains.add(d);
    return d;
  }

  /**
   * Invalidates the IOTLB entries `domain` holds for `pasid` (every device's binding of it) in
   * [start, end) (end 0: to the top), or all of them: VT-d PASID-selective P-IOTLB invalidation,
   * SMMUv3 TLBI by ASID. Other PASIDs and the RID's own entries stay. Returns the bindings hit.
   * @throws {@link SimError} EINVAL for a bad pasid, start or end, or an empty range.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   */
  invalidatePasid(domain: IommuDomain, pasid: number, start?: bigint, end?: bigint): number {
    const op = 'invalidatePasid';
    if (!(domain instanceof IommuDomain) || domain.unit !== this) throw new SimError('EINVAL', op, 'domain must be an IommuDomain of this unit');
    if (domain.destroyed) throw new SimError('ENOENT', op, `domain ${domain.id} was destroyed`);
    intArg(op, 'pasid', pasid, 0, (1 << ABI.PASID_MAX_BITS) - 1);
    const s = start === undefined ? 0n : u64Arg(op, 'start', start);
    const e = start === undefined ? 0n : u64Arg(op, 'end', end);
    return check(this._core.exports.invalidatePasid(domain.id, pasid, s, e), op, `domain ${domain.id} pasid ${pasid}: empty range ${hex(s)}..${hex(e)}`);
  }

  /**
   * Drains the page-request queue, oldest first (the IOPF handler's input). A device whose
   * request is answered retries its access.
   */
  pageRequests(): PageRequest[] {
    const out: PageRequest[] = [];
    const base = this._core.layout.staging;
    for (;;) {
      const n = check(this._core.exports.pageRequestsDrain(this.id, 1024), 'pageRequests', `unit ${this.id}`);
      const v = this._core.views;
      for (let i = 0; i < n; i++) {
        const r = base + i * ABI.PRQ_STRIDE;
        const p = v.u32[(r + 12) >> 2]!;
        const a = v.u32[(r + 16) >> 2]!;
        out.push({ iova: v.u64[r >> 3]!, rid: v.u32[(r + 8) >> 2]!, pasid: p === 0 ? null : p - 1, access: a === 3 ? 'rw' : a === 2 ? 'write' : 'read' });
      }
      if (n < 1024) return out;
    }
  }

  /** @internal */
  _forget(d: IommuDomain): void {
    this._domains.delete(d);
  }

  /** The live domains of this unit, in creation order. */
  domains(): readonly IommuDomain[] {
    return [...this._domains];
  }

  /**
   * Drains the fault ring, oldest first (the driver's fault/event-queue handler). The overflow
   * flag stays set: clear it with {@link clearFaultOverflow}.
   */
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
          stage2: (v.u32[(r + ABI.FAULT_FLAGS) >> 2]! & ABI.FAULT_F_STAGE2) !== 0,
          pasid: v.u32[(r + ABI.FAULT_PASID) >> 2]! === 0 ? null : v.u32[(r + ABI.FAULT_PASID) >> 2]! - 1,
          ...nestedInfo(v.u32[(r + ABI.FAULT_FLAGS) >> 2]!, v.u64[(r + ABI.FAULT_IPA) >> 3]!),
        });
      }
      if (n < 1024) return out;
    }
  }

  /** Clears the fault overflow flag (software clearing VT-d PFO), so faults are recorded again. */
  clearFaultOverflow(): void {
    check(this._core.exports.faultsClearOverflow(this.id), 'clearFaultOverflow', `unit ${this.id}`);
  }

  /**
   * Flushes the lazy flush queue as Linux's flush queue does: one domain-wide IOTLB
   * invalidation per domain with queued unmaps. Returns how many unmaps were pending.
   */
  flush(): number {
    return check(this._core.exports.flush(this.id), 'flush', `unit ${this.id}`);
  }

  /** Invalidates every IOTLB entry of the unit (a global invalidation). */
  invalidateAll(): void {
    check(this._core.exports.invalidateAll(this.id), 'invalidateAll', `unit ${this.id}`);
  }

  /** The unit's counters, IOTLB occupancy and fault-queue state now. */
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
      faultOverflow: w(ABI.UNIT_FAULT_OVERFLOW) !== 0, collapsedFaults: s(ABI.UNIT_STAT_COLLAPSED),
      pasidHits: s(ABI.UNIT_STAT_PASID_HITS), atsRequests: s(ABI.UNIT_STAT_ATS_REQUESTS), atcHits: s(ABI.UNIT_STAT_ATC_HITS),
      atcInvalidations: s(ABI.UNIT_STAT_ATC_INVALIDATIONS), pageRequests: s(ABI.UNIT_STAT_PAGE_REQUESTS),
      nestedWalks: s(ABI.UNIT_STAT_NESTED_WALKS), pageRequestsQueued: w(ABI.UNIT_PRQ_COUNT),
    };
  }
}

/**
 * An IOMMU domain (struct iommu_domain): an address space devices are attached to. A paging
 * domain owns an I/O page table in simulated memory and is changed with {@link map} and
 * {@link unmap} (iommu_map, iommu_unmap). Made by {@link IommuUnit.createDomain}.
 */
export class IommuDomain {
  private _destroyed = false;

  /** @internal */
  constructor(
    private readonly _core: Core,
    /** The unit the domain belongs to. */
    readonly unit: IommuUnit,
    /** Domain id in the core (what {@link Iommu.domainOf} and fault records name). */
    readonly id: number,
    /** Paging, identity or blocked. */
    readonly type: DomainType,
    /** The page-table format of a paging domain; undefined for the others. */
    readonly format: PgtableFormat | undefined,
    /** Input address bits (64 for identity and blocked domains). */
    readonly ias: number,
    /** Output address bits (64 for identity and blocked domains). */
    readonly oas: number,
    /** Strict invalidation on unmap; false: lazy, through the unit's flush queue. */
    readonly strict: boolean,
    extra: { kernel: IommuKernel; policy: FormatPolicy | undefined; granule: number } = { kernel: 'mainline', policy: undefined, granule: 4096 },
  ) {
    this.kernel = extra.kernel;
    this.policy = extra.policy;
    this.granule = extra.granule;
  }

  /** The kernel whose IOMMU code the domain follows. */
  readonly kernel: IommuKernel;
  /** Partial-unmap and overlapping-map rules, and the code path, of that kernel for the format. */
  readonly policy: FormatPolicy | undefined;
  /** Translation granule in bytes. */
  readonly granule: number;
  /** A nested domain's stage-2 domain (set when it is created). */
  parent: IommuDomain | undefined = undefined;

  /** May be the stage 2 of nested domains (created with `nestParent`). */
  get nestParent(): boolean {
    return ((this._rec(ABI.DOMAIN_FLAGS, 4) as number) & ABI.DOMAIN_F_NEST_PARENT) !== 0;
  }

  /** Whether hardware dirty tracking is on now ({@link setDirtyTracking}). */
  get dirtyTracking(): boolean {
    return ((this._rec(ABI.DOMAIN_FLAGS, 4) as number) & ABI.DOMAIN_F_DIRTY) !== 0;
  }

  /**
   * iommufd IOMMU_HWPT_SET_DIRTY_TRACKING: turns the hardware's dirty marking on or off (VT-d
   * SSADE, SMMUv3 HTTU, AMD HAD, RISC-V). Writes mark leaves dirty only while it is on (ARM
   * leaves made writable-clean by a read stay so and are made dirty by the next write).
   * @throws {@link SimError} EOPNOTSUPP when the domain was not created with `dirtyTracking`
   * (or is not a paging domain).
   * @throws {@link SimError} EINVAL when `on` is not a boolean.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   */
  setDirtyTracking(on: boolean): void {
    const op = 'setDirtyTracking';
    this._live(op);
    boolArg(op, 'on', on);
    if (this.type !== 'paging') throw new SimError('EOPNOTSUPP', op, `domain ${this.id} is ${this.type}: no page table to track`);
    check(this._core.exports.setDirtyTracking(this.id, on ? 1 : 0), op, `domain ${this.id} was not created with dirtyTracking (IOMMU_HWPT_ALLOC_DIRTY_TRACKING)`);
  }

  /**
   * iommufd IOMMU_HWPT_GET_DIRTY_BITMAP: bit i (LSB first in each u64) is set when page i of
   * `pageSize` from `iova` holds part of a leaf the hardware marked dirty. The marks read are
   * cleared and the range's IOTLB entries flushed, unless `noClear`
   * (IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).
   * @throws {@link SimError} EINVAL when tracking is off, pageSize is not a power of two, iova or
   * length is not aligned to it, length is 0 or the range wraps past 2^64.
   * @throws {@link SimError} EOPNOTSUPP when the domain is not a paging domain.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   */
  readAndClearDirty(iova: bigint, length: bigint, pageSize: bigint, opts: { noClear?: boolean } = {}): BigUint64Array {
    const op = 'readAndClearDirty';
    this._live(op);
    u64Arg(op, 'iova', iova);
    u64Arg(op, 'length', length);
    u64Arg(op, 'pageSize', pageSize);
    objArg(op, 'options', opts);
    const noClear = opts.noClear === undefined ? false : boolArg(op, 'noClear', opts.noClear);
    if (this.type !== 'paging') throw new SimError('EOPNOTSUPP', op, `domain ${this.id} is ${this.type}`);
    if (!this.dirtyTracking) throw new SimError('EINVAL', op, `domain ${this.id}: dirty tracking is off`);
    if (pageSize === 0n || (pageSize & (pageSize - 1n)) !== 0n) throw new SimError('EINVAL', op, `pageSize = ${hex(pageSize)} is not a power of two`);
    if (length === 0n || ((iova | length) & (pageSize - 1n)) !== 0n) throw new SimError('EINVAL', op, `iova ${hex(iova)} and length ${hex(length)} must be non-zero multiples of pageSize ${hex(pageSize)}`);
    if (iova + length - 1n > U64_MAX) throw new SimError('EINVAL', op, 'range wraps past 2^64');
    const pages = length / pageSize;
    const out = new BigUint64Array(Number((pages + 63n) / 64n));
    // One core call per DIRTY_MAX_PAGES pages (a multiple of 64: chunks start on a word).
    const chunk = BigInt(ABI.DIRTY_MAX_PAGES);
    for (let done = 0n; done < pages; done += chunk) {
      const n = pages - done < chunk ? pages - done : chunk;
      check64(this._core.exports.readAndClearDirty(this.id, iova + done * pageSize, n * pageSize, pageSize, noClear ? ABI.DIRTY_NO_CLEAR : 0), op, `domain ${this.id}`);
      const words = Number((n + 63n) / 64n);
      const base = this._core.layout.staging >> 3;
      out.set(this._core.views.u64.subarray(base, base + words), Number(done / 64n));
    }
    return out;
  }

  private _rec(off: number, bytes: 1 | 4 | 8): number | bigint {
    const a = this._core.layout.domains + this.id * ABI.DOMAIN_STRIDE + off;
    const v = this._core.views;
    return bytes === 8 ? v.u64[a >> 3]! : bytes === 4 ? v.u32[a >> 2]! : v.u8[a]!;
  }

  /** The page sizes this domain maps with (iommu_domain.pgsize_bitmap). */
  get pgsizeBitmap(): bigint {
    return this._rec(ABI.DOMAIN_PGSIZES, 8) as bigint;
  }

  /** Page sizes as a list, smallest first. */
  pageSizes(): bigint[] {
    const out: bigint[] = [];
    for (let b = this.pgsizeBitmap, s = 0n; b !== 0n; b >>= 1n, s++) if (b & 1n) out.push(1n << s);
    return out;
  }

  /** Levels of the walk now (AMD v1 grows its top level on demand). */
  get levels(): number {
    return this._rec(ABI.DOMAIN_LEVELS, 4) as number;
  }

  /** Index bits of the top table (more than a level's for a concatenated ARM stage-2 start). */
  get topIndexBits(): number {
    return this._rec(ABI.DOMAIN_TOP_BITS, 1) as number;
  }

  /**
   * Last IOVA the domain translates for the DMA API (geometry.aperture_end): 2^ias - 1, or the top
   * of the lower half, 2^(ias-1) - 1, for the sign-extended formats (x86-64, RISC-V), whose
   * upper half the DMA API never uses.
   */
  get apertureEnd(): bigint {
    const signExt = this.format === 'x86-64' || this.format === 'riscv';
    return (1n << BigInt(signExt ? this.ias - 1 : this.ias)) - 1n;
  }

  /** ARM: the level the walk starts at (TCR/VTCR start level, 4 - levels); others: undefined. */
  get startLevel(): number | undefined {
    return this.format === 'arm-lpae-s1' || this.format === 'arm-lpae-s2' ? 4 - this.levels : undefined;
  }

  private _live(op: string): void {
    if (this._destroyed) throw new SimError('ENOENT', op, `domain ${this.id} was destroyed`);
  }

  /**
   * iommu_map: [iova, +size) -> [pa, +size) with `prot` ({@link Prot} bits), using the largest
   * page sizes both alignments allow. Over something already mapped the domain's kernel policy
   * decides: EEXIST (io-pgtable-arm), EADDRINUSE (generic_pt); the older intel driver keeps what
   * is there and the older AMD one replaces it, without an error; the 6.13 RISC-V one replaces
   * it too, but a leaf above the target level is ENOMEM. On a throw nothing changed.
   * @throws {@link SimError} EINVAL when an address or size is not a bigint, not 4 KiB aligned or
   * not aligned to the smallest page size, size is 0, or prot has bits outside {@link Prot} or
   * neither READ nor WRITE.
   * @throws {@link SimError} ERANGE when a range wraps past 2^64, iova is outside the input space
   * or pa + size beyond 2^oas.
   * @throws {@link SimError} EEXIST or EADDRINUSE when something is mapped there (by policy).
   * @throws {@link SimError} ENOMEM when no frame is left for a table (or the RISC-V case above).
   * @throws {@link SimError} ENODEV when the domain is not a paging domain.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   */
  map(iova: bigint, pa: bigint, size: bigint, prot: number): void {
    // Fast path: comparisons only (no BigInt arithmetic, no string); the core checks alignment,
    // size, prot and wrap itself and changes nothing on a failure, after which the full checks
    // below name the bad argument.
    if (this._destroyed || !isU64(iova) || !isU64(pa) || !isU64(size) || !isProt(prot)) this._mapArgs(iova, pa, size, prot);
    // Every argument is checked above (the fast checks or _mapArgs): the core's trusted table.
    // The failure is out of line: the body stays small enough for V8 to inline.
    const st = this._core.trusted.map(this.id, iova, pa, size, prot);
    if (st < 0) this._mapFailed(st, iova, pa, size, prot);
  }

  /** Throws the error of a map the core refused with `st` (nothing was changed). */
  private _mapFailed(st: number, iova: bigint, pa: bigint, size: bigint, prot: number): never {
    this._mapArgs(iova, pa, size, prot);
    throw SimError.fromStatus(st, 'iommu_map', `domain ${this.id}: iova ${hex(iova)} -> pa ${hex(pa)} size ${hex(size)} (ias ${this.ias}, oas ${this.oas})`);
  }

  /** iommu_map's argument checks, in the order they report (throws on the first bad one). */
  private _mapArgs(iova: bigint, pa: bigint, size: bigint, prot: number): void {
    const op = 'iommu_map';
    this._live(op);
    pageAlignedArg(op, 'iova', iova);
    pageAlignedArg(op, 'pa', pa);
    pageAlignedArg(op, 'size', size);
    intArg(op, 'prot', prot, 0, ABI.PROT_ALL);
    if (size === 0n) throw new SimError('EINVAL', op, 'size is 0');
    if ((prot & (ABI.PROT_READ | ABI.PROT_WRITE)) === 0) throw new SimError('EINVAL', op, 'prot has neither READ nor WRITE');
    if (iova + size - 1n > U64_MAX || pa + size - 1n > U64_MAX) throw new SimError('ERANGE', op, 'range wraps past 2^64');
  }

  /**
   * iommu_unmap: returns the bytes unmapped; a hole stops the unmap (0 at a hole). A leaf the
   * range covers only in part follows the domain's kernel policy: split (ARM before 6.13),
   * refused with 0 (ARM since 6.13; generic_pt when the range starts inside the leaf), removed
   * whole and counted whole (generic_pt from the leaf's start; the older intel and AMD drivers
   * for any overlap). Strict domains invalidate the IOTLB before returning; lazy ones queue the
   * invalidation until the unit is flushed.
   * @throws {@link SimError} EINVAL when iova or size is not a bigint, not 4 KiB aligned or not
   * aligned to the smallest page size, or size is 0.
   * @throws {@link SimError} ERANGE when the range wraps past 2^64 or is outside the input space.
   * @throws {@link SimError} ENODEV when the domain is not a paging domain.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   */
  unmap(iova: bigint, size: bigint): bigint {
    const op = 'iommu_unmap';
    this._live(op);
    pageAlignedArg(op, 'iova', iova);
    pageAlignedArg(op, 'size', size);
    if (size === 0n) throw new SimError('EINVAL', op, 'size is 0');
    if (iova + size - 1n > U64_MAX) throw new SimError('ERANGE', op, 'range wraps past 2^64');
    // Every argument is checked above: the trusted table; the error text only on a failure.
    const r = this._core.trusted.unmap(this.id, iova, size);
    if (r < 0n) check64(r, op, `domain ${this.id}: iova ${hex(iova)} size ${hex(size)}`);
    return r;
  }

  /**
   * Software page-table walk (iommu_iova_to_phys) with each level's entry; it neither uses nor
   * fills the IOTLB and records no fault.
   * @throws {@link SimError} EINVAL when iova is not a u64 bigint.
   * @throws {@link SimError} ENODEV when the domain is not a paging domain.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   */
  walk(iova: bigint): WalkResult {
    const op = 'walk';
    this._live(op);
    u64Arg(op, 'iova', iova);
    const r = check(this._core.exports.walk(this.id, iova), op, `domain ${this.id}`);
    const depth = Number(this._core.resultBytes());
    const v = this._core.views;
    const levels: WalkLevel[] = [];
    const n = this.levels;
    for (let i = 0; i < depth && i < ABI.TRACE_MAX; i++) {
      const t = this._core.layout.trace + i * ABI.TRACE_STRIDE;
      const d = v.u32[t >> 2]!;
      levels.push({ depth: d, ...archLevel(this.format, n, d), index: v.u32[(t + 4) >> 2]!, table: v.u64[(t + 8) >> 3]!, entry: v.u64[(t + 16) >> 3]! });
    }
    const nested = this.type === 'nested' ? this._stage2Trace(depth, r === 0) : {};
    if (r !== 0) return { ok: false, reason: faultReasonName(r), levels, ...nested };
    return {
      ok: true, pa: this._core.resultValue(), pageSize: 1n << BigInt(this._core.resultU32(ABI.RES_SHIFT)),
      perm: this._core.resultU32(ABI.RES_PERM), levels, ...nested,
    };
  }

  /** The stage-2 walks of the nested walk just made (trace2 block), and the failing stage. */
  private _stage2Trace(s1Depth: number, ok: boolean): Pick<WalkResult, 'stage2' | 'stage' | 'ipa'> {
    const v = this._core.views;
    const n = this._core.resultU32(ABI.RES_TRACE2);
    const p = this.parent!;
    const stage2: WalkLevel[][] = [];
    for (let i = 0; i < n; i++) {
      const t = this._core.layout.trace2 + (ABI.TRACE_MAX + i) * ABI.TRACE_STRIDE;
      const tag = v.u32[t >> 2]!;
      const step = Math.min(tag >>> 8, s1Depth);
      const d = tag & 0xff;
      (stage2[step] ??= []).push({ depth: d, ...archLevel(p.format, p.levels, d), index: v.u32[(t + 4) >> 2]!, table: v.u64[(t + 8) >> 3]!, entry: v.u64[(t + 16) >> 3]! });
    }
    for (let i = 0; i < stage2.length; i++) stage2[i] ??= [];
    if (ok) return { stage2 };
    const flags = this._core.resultU32(ABI.RES_FAULT_FLAGS);
    const s2 = (flags & ABI.FAULT_F_STAGE2) !== 0;
    return { stage2, stage: s2 ? 2 : 1, ...(s2 ? { ipa: v.u64[(this._core.layout.result + ABI.RES_FAULT_IPA) >> 3]! } : {}) };
  }

  /**
   * Invalidates this domain's IOTLB entries in [start, end) (end 0: to the top of the space), or
   * all of them when no range is given.
   * @throws {@link SimError} EINVAL when start or end is not a u64 bigint (end is required with
   * start), or the range is empty.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   */
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

  /** Bytes mapped in the page table now. */
  get mappedBytes(): bigint {
    return this._core.views.u64[(this._core.layout.domains + this.id * ABI.DOMAIN_STRIDE + ABI.DOMAIN_MAPPED) >> 3]!;
  }

  /** 4 KiB frames the page table occupies, root included. */
  get tableFrames(): number {
    return this._core.views.u32[(this._core.layout.domains + this.id * ABI.DOMAIN_STRIDE + ABI.DOMAIN_TABLE_FRAMES) >> 2]!;
  }

  /** Physical address of the top-level table (what a context entry / STE would point at). */
  get root(): bigint {
    return this._core.views.u64[(this._core.layout.domains + this.id * ABI.DOMAIN_STRIDE + ABI.DOMAIN_ROOT) >> 3]!;
  }

  /** {@link destroy} has run; every other call on the domain now throws ENOENT. */
  get destroyed(): boolean {
    return this._destroyed;
  }

  /**
   * Frees the domain (iommu_domain_free): flushes the unit's lazy queue, drops its IOTLB entries
   * and frees every table frame.
   * @throws {@link SimError} EBUSY while a device is attached to it.
   * @throws {@link SimError} ENOENT when it was already destroyed.
   */
  destroy(): void {
    this._live('destroyDomain');
    check(this._core.exports.destroyDomain(this.id), 'destroyDomain', `domain ${this.id} still has devices attached`);
    this._destroyed = true;
    this.unit._forget(this);
  }
}

/**
 * The machine's IOMMUs: the units, and the requester-ID table that says which domain (or none,
 * or no IOMMU at all) each device's DMA goes through. Translation faults are results and fault
 * records, never exceptions.
 */
export class Iommu {
  private readonly _units: IommuUnit[] = [];

  /** @internal */
  constructor(private readonly _core: Core) {}

  /**
   * Creates a unit with its IOTLB, fault ring and flush queue.
   * @throws {@link SimError} EINVAL for an unknown family, or a size out of its range
   * ({@link UnitOptions}).
   * @throws {@link SimError} ENOSPC when 16 units exist.
   * @throws {@link SimError} ENOMEM when memory for the IOTLB and the queues is exhausted.
   */
  createUnit(opts: UnitOptions): IommuUnit {
    const op = 'createUnit';
    objArg(op, 'options', opts);
    const family = oneOf(op, 'family', opts.family, IOMMU_FAMILIES);
    const sets = intArg(op, 'tlbSets', opts.tlbSets ?? 64, 1, 65536);
    if ((sets & (sets - 1)) !== 0) throw new SimError('EINVAL', op, `tlbSets = ${sets} is not a power of two`);
    const ways = intArg(op, 'tlbWays', opts.tlbWays ?? 4, 1, 16);
    const fq = intArg(op, 'faultQueue', opts.faultQueue ?? 256, 1, 65536);
    const flq = intArg(op, 'flushQueue', opts.flushQueue ?? 256, 1, 65536);
    const id = check(this._core.exports.createUnit(FAMILY[family], sets, ways, fq, flq), op, family);
    const flags = (opts.collapseFaults ? ABI.UNIT_F_COLLAPSE : 0) | (opts.scalableMode ? ABI.UNIT_F_SCALABLE : 0);
    if (flags !== 0) check(this._core.exports.setUnitFlags(id, flags), op, `unit ${id} flags`);
    const unit = new IommuUnit(this._core, id, family, opts.name ?? `iommu${id}`);
    this._units.push(unit);
    return unit;
  }

  /** The units, in creation order (index = unit id). */
  units(): readonly IommuUnit[] {
    return this._units;
  }

  /**
   * Attaches requester `rid` to a domain, to 'direct' (its DMA reaches physical addresses with
   * no IOMMU), or detaches it (null: its DMA then faults as no-domain).
   * @throws {@link SimError} EINVAL when rid is not a requester ID.
   * @throws {@link SimError} ENOENT when the domain was destroyed.
   * @throws {@link SimError} ENOSPC when 4096 requesters are known.
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
   * @throws {@link SimError} EINVAL when rid is not a requester ID, an address is not a u64
   * bigint, size is 0 or a range wraps past 2^64.
   * @throws {@link SimError} EEXIST when it overlaps a route of the same requester.
   * @throws {@link SimError} ENOSPC when 256 routes exist.
   */
  addP2pRoute(rid: number | string, bus: bigint, size: bigint, cpu: bigint): void {
    const op = 'addP2pRoute';
    const r = ridArg(op, 'rid', rid);
    u64Arg(op, 'bus', bus);
    u64Arg(op, 'size', size);
    u64Arg(op, 'cpu', cpu);
    check(this._core.exports.addP2pRoute(r, bus, size, cpu), op, `${formatRid(r)}: bus ${hex(bus)}+${hex(size)} -> ${hex(cpu)}`);
  }

  /**
   * Removes the route of `rid` that starts at bus address `bus` ({@link addP2pRoute}).
   * @throws {@link SimError} EINVAL when rid is not a requester ID or bus not a u64 bigint.
   * @throws {@link SimError} ENOENT when no route of `rid` starts at `bus`.
   */
  removeP2pRoute(rid: number | string, bus: bigint): void {
    const op = 'removeP2pRoute';
    const r = ridArg(op, 'rid', rid);
    check(this._core.exports.removeP2pRoute(r, u64Arg(op, 'bus', bus)), op, `${formatRid(r)}: no route at ${hex(bus)}`);
  }

  /**
   * Puts requester `rid` behind `unit` with no domain: a stream with no valid context entry or
   * STE. Its DMA faults as no-domain and the unit records it (VT-d reason 2, SMMUv3 C_BAD_STE).
   * @throws {@link SimError} EINVAL when rid is not a requester ID.
   * @throws {@link SimError} ENOSPC when 4096 requesters are known.
   */
  place(rid: number | string, unit: IommuUnit): void {
    const r = ridArg('placeDevice', 'rid', rid);
    if (!(unit instanceof IommuUnit && this._units.includes(unit))) throw new SimError('EINVAL', 'placeDevice', 'unit must be an IommuUnit of this simulator');
    check(this._core.exports.placeDevice(r, unit.id), 'placeDevice', `${formatRid(r)} behind unit ${unit.id}`);
  }

  /**
   * The domain id `rid` is attached to, 'direct', or null.
   * @throws {@link SimError} EINVAL when rid is not a requester ID.
   */
  domainOf(rid: number | string): number | 'direct' | null {
    const d = this._core.exports.deviceDomain(ridArg('domainOf', 'rid', rid));
    return d === ABI.DOMAIN_DIRECT ? 'direct' : d < 0 ? null : d;
  }

  /**
   * Enables PASID on `rid` with a width of `bits` (max_pasids = 2^bits; 0 disables): VT-d
   * scalable mode (20 bits), SMMUv3 SubstreamID (20), AMD GCR3 (16), RISC-V process context (20).
   * The requester must already sit behind a unit ({@link attach} or {@link place}).
   * @throws {@link SimError} EINVAL for a bad rid or bits beyond the family's width.
   * @throws {@link SimError} ENODEV when the requester sits behind no unit.
   * @throws {@link SimError} EOPNOTSUPP on a VT-d unit not in scalable mode.
   * @throws {@link SimError} EBUSY when a bound PASID would fall outside the new width.
   */
  enablePasid(rid: number | string, opts: { bits: number }): void {
    const op = 'enablePasid';
    const r = ridArg(op, 'rid', rid);
    objArg(op, 'options', opts);
    const bits = intArg(op, 'bits', opts.bits, 0, ABI.PASID_MAX_BITS);
    check(this._core.exports.enablePasid(r, bits), op, `${formatRid(r)} bits=${bits} (VT-d scalable mode, SMMUv3 and RISC-V: up to 20 bits; AMD: up to 16)`);
  }

  /**
   * The PASID width {@link enablePasid} gave `rid` (log2 of max_pasids; 0 when PASIDs are off).
   * @throws {@link SimError} EINVAL for a bad rid; ENODEV for a requester the IOMMU does not know.
   */
  pasidBits(rid: number | string): number {
    const op = 'pasidBits';
    const r = ridArg(op, 'rid', rid);
    const v = this._core.exports.pasidBits(r);
    if (v < 0) check(v, op, formatRid(r));
    return v;
  }

  /**
   * iommu_attach_device_pasid (domain) / iommu_detach_device_pasid (null): binds PASID `pasid`
   * of `rid` to `domain` (its own PASID-table entry / CD / GCR3 entry); requests tagged with it
   * translate through that domain, tagged so in the IOTLB.
   * @throws {@link SimError} EINVAL for PASID 0 (IOMMU_NO_PASID, the RID's own domain), a PASID
   * beyond the device's width or without PASID enabled, a domain of another unit.
   * On SMMUv3 the domain must be stage 1 (a CD holds an arm-lpae-s1 table), on AMD-Vi an x86-64
   * (v2) domain (a GCR3 entry), on VT-d any.
   * @throws {@link SimError} EOPNOTSUPP for an identity domain outside VT-d, a non-v2 AMD domain.
   * @throws {@link SimError} EBUSY when the PASID is attached to a domain already (use {@link replacePasid}).
   * @throws {@link SimError} ENOENT when the domain was destroyed, or on a detach of an unbound PASID.
   * @throws {@link SimError} ENODEV when the requester sits behind no unit.
   */
  attachPasid(rid: number | string, pasid: number, domain: IommuDomain | null): void {
    this._pasidOp('attachPasid', rid, pasid, domain, false);
  }

  /**
   * iommu_replace_device_pasid: moves PASID `pasid` of `rid` to `domain` in one step (the old
   * domain's entries for it are flushed); the same domain is a no-op.
   * @throws {@link SimError} EINVAL when nothing is attached to the PASID, and as {@link attachPasid}.
   * @throws {@link SimError} EOPNOTSUPP on AMD-Vi, whose driver refuses a replace.
   */
  replacePasid(rid: number | string, pasid: number, domain: IommuDomain): void {
    if (!(domain instanceof IommuDomain)) throw new SimError('EINVAL', 'replacePasid', 'domain must be an IommuDomain of this simulator');
    this._pasidOp('replacePasid', rid, pasid, domain, true);
  }

  private _pasidOp(op: string, rid: number | string, pasid: number, domain: IommuDomain | null, replace: boolean): void {
    const r = ridArg(op, 'rid', rid);
    intArg(op, 'pasid', pasid, 0, (1 << ABI.PASID_MAX_BITS) - 1);
    if (domain !== null && !(domain instanceof IommuDomain && this._units.includes(domain.unit))) {
      throw new SimError('EINVAL', op, 'domain must be an IommuDomain of this simulator or null');
    }
    if (domain?.destroyed) throw new SimError('ENOENT', op, `domain ${domain.id} was destroyed`);
    const st = this._core.exports.attachPasid(r, pasid, domain === null ? -1 : domain.id, replace ? 1 : 0);
    if (st >= 0) return;
    const what: Record<number, string> = {
      [ABI.EINVAL]: replace && this._core.exports.pasidDomain(r, pasid) < 0
        ? `pasid ${pasid}: nothing attached to replace`
        : `pasid ${pasid}: 0 is the RID's own (IOMMU_NO_PASID), beyond the device's PASID width, PASID not enabled, the domain is on another unit than ${formatRid(r)}, or (SMMUv3) not a stage-1 domain`,
      [ABI.EOPNOTSUPP]: replace && domain?.unit.family === 'amd-vi'
        ? 'AMD-Vi cannot replace the domain of a PASID: detach it first'
        : `domain ${domain?.id}: a ${domain?.type} ${domain?.format ?? ''} domain cannot be attached to a PASID on ${domain?.unit.family} (AMD: x86-64 (v2) tables only; identity: VT-d only)`,
      [ABI.EBUSY]: `pasid ${pasid} of ${formatRid(r)} is attached to domain ${this._core.exports.pasidDomain(r, pasid)}: replace it`,
      [ABI.ENOENT]: `pasid ${pasid} of ${formatRid(r)} is not attached`,
      [ABI.ENODEV]: `rid ${formatRid(r)} sits behind no IOMMU unit`,
    };
    check(st, op, what[st] ?? `${formatRid(r)} pasid ${pasid}`);
  }

  /**
   * The domain PASID `pasid` of `rid` is attached to (iommu_get_domain_for_dev_pasid), or null.
   * @throws {@link SimError} EINVAL for a bad rid or pasid.
   */
  pasidDomain(rid: number | string, pasid: number): IommuDomain | null {
    const r = ridArg('pasidDomain', 'rid', rid);
    intArg('pasidDomain', 'pasid', pasid, 0, (1 << ABI.PASID_MAX_BITS) - 1);
    const id = this._core.exports.pasidDomain(r, pasid);
    if (id < 0) return null;
    for (const u of this._units) for (const d of u.domains()) if (d.id === id) return d;
    return null;
  }

  /**
   * The PASID `rid`'s DMA (the DMA engine's copies, reads and writes) carries, as a device whose
   * work queue is bound to a PASID (Intel DSA, SVA); null: DMA without a PASID.
   * @throws {@link SimError} EINVAL for a PASID beyond the device's width or without PASID enabled.
   * @throws {@link SimError} ENODEV when the requester is unknown.
   */
  setDmaPasid(rid: number | string, pasid: number | null): void {
    const op = 'setDmaPasid';
    const r = ridArg(op, 'rid', rid);
    const p = pasid === null ? 0xffffffff : intArg(op, 'pasid', pasid, 1, (1 << ABI.PASID_MAX_BITS) - 1);
    check(this._core.exports.setDmaPasid(r, p), op, `${formatRid(r)} pasid ${pasid} (beyond the device's PASID width, or PASID not enabled)`);
  }

  /**
   * Enables ATS on `rid`: its DMA looks in its own ATC (device-TLB) first; a miss is a
   * translation request to the IOMMU whose completion fills the ATC; IOTLB invalidations of a
   * domain it uses also invalidate its ATC (counted, `atcInvalidations`). With `pri`, a
   * translation that fails becomes a page request ({@link IommuUnit.pageRequests}) and the
   * access reports 'page-request' instead of a fault record. Enabling again changes only `pri`.
   * @throws {@link SimError} EINVAL for atcEntries not a power of two in 4..65536, bad flags.
   * @throws {@link SimError} ENODEV when the requester sits behind no unit.
   * @throws {@link SimError} EBUSY when enabled already with another ATC size.
   */
  enableAts(rid: number | string, opts: { atcEntries?: number; pri?: boolean; prgCap?: number } = {}): void {
    const op = 'enableAts';
    const r = ridArg(op, 'rid', rid);
    objArg(op, 'options', opts);
    const entries = intArg(op, 'atcEntries', opts.atcEntries ?? 64, 4, 65536);
    if ((entries & (entries - 1)) !== 0) throw new SimError('EINVAL', op, `atcEntries = ${entries} is not a power of two`);
    const pri = opts.pri === undefined ? false : boolArg(op, 'pri', opts.pri);
    if (opts.prgCap !== undefined) intArg(op, 'prgCap', opts.prgCap, 1, 65536);
    check(this._core.exports.enableAts(r, entries / 4, 4, pri ? 1 : 0), op, `${formatRid(r)}: atcEntries ${entries}`);
  }

  /**
   * Translates one address as the device would (IOTLB, then the walk on a miss). A fault is a
   * result and a record on the unit's fault queue, not an exception.
   * @throws {@link SimError} EINVAL when rid is not a requester ID, iova not a u64 bigint, or
   * access not 'read', 'write' or 'rw'.
   */
  translate(rid: number | string, iova: bigint, access: Access = 'read', opts?: TranslateOptions): TranslateResult {
    // The common call (a numeric requester, a u64 iova, read or write, no options) is checked
    // with compares only; anything else takes the full checks, which report the first bad
    // argument. Success and failure results are built out of line: the body stays small enough
    // for V8 to inline into the caller.
    let r = rid as number;
    let a = access === 'read' ? ACCESS_READ : ACCESS_WRITE;
    let pasid: number | undefined;
    if (opts !== undefined || typeof rid !== 'number' || rid >>> 0 !== rid || rid === RID_PHYS || !isU64(iova) || (access !== 'read' && access !== 'write')) {
      const op = 'translate';
      r = ridArg(op, 'rid', rid);
      u64Arg(op, 'iova', iova);
      a = accessCode(op, access);
      if (opts !== undefined) pasid = pasidOpt(op, opts);
    }
    // Every argument is checked above: the core's trusted table.
    const t = this._core.trusted;
    const st = pasid === undefined ? t.translate(r, iova, a) : t.translatePasid(r, pasid, iova, a);
    return st === 0 ? this._translated() : this._translateFailed(st, r, pasid, iova, a);
  }

  /** The success result of the translation just done: one object of one shape, nothing shared. */
  private _translated(): TranslateResult {
    // Reads that check their own freshness (the u64 read is the pa's BigInt).
    const { views, layout } = this._core;
    return { ok: true, pa: views.u64At((layout.result + RES_VALUE) >> 3), pageSize: pow2(views.u32At((layout.result + RES_SHIFT) >> 2)), perm: views.u32At((layout.result + RES_PERM) >> 2) };
  }

  /** The result of a translation that failed with status `st`, from the result block. */
  private _translateFailed(st: number, r: number, pasid: number | undefined, v: bigint, a: number): TranslateResult {
    if (st === ABI.EINVAL) throw new SimError('EINVAL', 'translate', 'bad access');
    const reason = faultReasonName(this._core.resultU32(ABI.RES_FAULT_REASON));
    if (st === ABI.EAGAIN) {
      return { ok: false, code: 'page-request', reason, familyCode: 0, pageRequest: { rid: r, pasid: pasid ?? null, iova: v & ~0xfffn, access: a === 3 ? 'rw' : a === 2 ? 'write' : 'read' } };
    }
    const flags = this._core.resultU32(ABI.RES_FAULT_FLAGS);
    const stage = (flags & ABI.FAULT_F_NESTED) !== 0 ? { stage: (flags & ABI.FAULT_F_STAGE2) !== 0 ? 2 as const : 1 as const } : {};
    return { ok: false, code: errnoName(st), reason, familyCode: this._core.resultU32(ABI.RES_FAULT_CODE), ...stage };
  }

  /**
   * Translates many addresses in batches through linear memory (one crossing per 32768), with
   * the PASID of `opts` if any; a status of `ABI.EAGAIN` (-11) is a page request (PRI).
   * Returns output addresses (0 where it faulted), per-address status (0 or negative errno)
   * and the fault count. Each fault is also recorded as by {@link translate}.
   * @throws {@link SimError} EINVAL when rid is not a requester ID or access not 'read', 'write'
   * or 'rw'.
   */
  translateBatch(rid: number | string, iovas: BigUint64Array, access: Access = 'read', opts?: TranslateOptions): { out: BigUint64Array; status: Int32Array; faults: number } {
    const op = 'translateBatch';
    const r = ridArg(op, 'rid', rid);
    const a = accessCode(op, access);
    const pasid = opts === undefined ? undefined : pasidOpt(op, opts);
    if (!(iovas instanceof BigUint64Array)) throw new SimError('EINVAL', op, 'iovas must be a BigUint64Array');
    const out = new BigUint64Array(iovas.length);
    const status = new Int32Array(iovas.length);
    const base = this._core.layout.staging;
    let faults = 0;
    for (let off = 0; off < iovas.length; off += ABI.BATCH_MAX) {
      const n = Math.min(ABI.BATCH_MAX, iovas.length - off);
      const v = this._core.views;
      v.u64.set(iovas.subarray(off, off + n), base >> 3);
      faults += check(pasid === undefined ? this._core.exports.translateBatch(r, n, a) : this._core.exports.translateBatchPasid(r, pasid, n, a), op, `${n} addresses`);
      out.set(v.u64.subarray((base + ABI.BATCH_OUT) >> 3, ((base + ABI.BATCH_OUT) >> 3) + n), off);
      status.set(v.i32.subarray((base + ABI.BATCH_STATUS) >> 2, ((base + ABI.BATCH_STATUS) >> 2) + n), off);
    }
    return { out, status, faults };
  }
}
