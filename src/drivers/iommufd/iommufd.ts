/**
 * iommufd (drivers/iommu/iommufd/main.c, ioas.c, hw_pagetable.c, device.c): the /dev/iommu user
 * API of a machine, opened in a process like any device node and driven with Process.ioctl.
 *
 * One open file is one iommufd_ctx: a table of objects by id (IOAS, HWPT paging, HWPT nested,
 * device, fault), each with a users count as the kernel's obj->users: 1 for the table, one more
 * for every object or attachment that holds it. IOMMU_DESTROY removes an object only when the
 * table is its last user (EBUSY otherwise, ENOENT for an unknown id).
 *
 *  - An IOAS is an io_pagetable (io-pagetable.ts): user memory mapped at IOVAs, realized into the
 *    domain of every HWPT made on it.
 *  - A HWPT paging owns an iommu_domain of the device's IOMMU unit in the unit's default format
 *    (the machine's iommu options), linked to its IOAS (which it keeps busy).
 *  - A device is a PCI function bound by its driver (vfio cdev: VFIO_DEVICE_BIND_IOMMUFD). Binding
 *    claims DMA ownership: the device is put in a blocked domain until attached. Attaching to an
 *    IOAS reuses an automatic HWPT of the IOAS that the device's unit accepts, or makes one
 *    (iommufd_device_auto_get_domain); attaching to a HWPT uses it. The device's reserved regions
 *    (the MSI window) are reserved in the IOAS while it is attached there. Detach puts the device
 *    back in the blocked domain and an automatic HWPT with no device left is destroyed.
 *
 * Errors are the ioctl's errno, as the kernel's functions named in each message return them.
 */
import { PAGE_SIZE, Prot, SimError, SimFile, defaultFormat, type FileOperations, type IommuDomain, type IommuFamily, type IommuUnit, type Machine, type PciFunction, type Process } from '../../index.js';
import { faultFd, IommufdFault } from './fault.js';
import { IoPagetable, IoptPages, ULONG_MAX, type IovaSpan, type PinAccount } from './io-pagetable.js';
import { IommufdObject, IommufdOwners, type IommufdObjectType } from './object.js';
import {
  hwptGetDirtyBitmap, hwptInvalidateUser, hwptSetDirtyTracking, IommufdHwpt, IommufdHwptNested, IommufdHwptPaging,
} from './hw-pagetable.js';
import {
  IOMMU_DESTROY, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HW_INFO_TYPE_ARM_SMMUV3, IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_TYPE_NONE, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE, IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_UNMAP,
  type IommuDestroy, type IommuHwInfo, type IommuHwptAlloc, type IommuIoasAlloc, type IommuIoasAllowIovas, type IommuIoasCopy,
  type IommuIoasIovaRanges, type IommuIoasMap, type IommuIoasUnmap, type IommuFaultAlloc, type IommuHwptSetDirtyTracking,
  type IommuHwptGetDirtyBitmap, type IommuHwptInvalidate, type IommuHwptNestedData, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_DATA_ARM_SMMUV3, IOMMU_HW_CAP_DIRTY_TRACKING,
} from './uapi.js';

/** Options of {@link openIommufd}. */
export interface IommufdOptions {
  /**
   * RLIMIT_MEMLOCK in pages: pinning more user pages than this for the context's IOASes fails
   * with ENOMEM (incr_user_locked_vm). @default no limit
   */
  memlockPages?: number;
}

/** struct iommufd_ioas: an IOVA space of user memory. */
export class IommufdIoas extends IommufdObject {
  readonly type = 'ioas';
  readonly iopt = new IoPagetable();
  /** ioas->hwpt_list: the paging HWPTs whose domains realize this IOAS. */
  readonly hwpts: IommufdHwptPaging[] = [];
}

/**
 * A device bound to the context (struct iommufd_device): a PCI function, its requester ID and its
 * IOMMU unit, the HWPT its RID is attached to (null: blocked).
 */
export class IommufdDevice extends IommufdObject {
  readonly type = 'device';
  /** The HWPT the RID is attached to; null: blocked DMA. */
  hwpt: IommufdHwpt | null = null;
  /** @internal the HWPTs attached to PASIDs of the device. */
  readonly pasids = new Map<number, IommufdHwpt>();
  /** @internal the blocking domain the device sits in while bound and not attached. */
  readonly blocked: IommuDomain;
  /** @internal what the RID was attached to before the bind (restored by unbind). */
  readonly before: number | 'direct' | null;
  constructor(ctx: IommufdCtx, id: number, readonly fn: PciFunction, readonly rid: number, readonly unit: IommuUnit) {
    super(ctx, id);
    const iommu = ctx.machine.sim.iommu;
    this.before = iommu.domainOf(rid);
    this.blocked = unit.createDomain({ type: 'blocked' });
    iommu.attach(rid, this.blocked);
  }

  /** The HWPT attached to `pasid` of the device, or null. */
  pasidHwpt(pasid: number): IommufdHwpt | null {
    return this.pasids.get(pasid) ?? null;
  }

  /** @internal the HWPT at `pasid` (IOMMU_NO_PASID: the RID's). */
  slot(pasid: number): IommufdHwpt | null {
    return pasid === IOMMU_NO_PASID ? this.hwpt : this.pasidHwpt(pasid);
  }

  /** @internal sets the HWPT at `pasid` (null: detached). */
  setSlot(pasid: number, hwpt: IommufdHwpt | null): void {
    if (pasid === IOMMU_NO_PASID) this.hwpt = hwpt;
    else if (hwpt) this.pasids.set(pasid, hwpt);
    else this.pasids.delete(pasid);
  }

  private readonly _resvOwners = new Map<number, object>();
  /** @internal the owner of the reserved ranges of the attachment at `pasid`. */
  resvOwner(pasid: number): object {
    let o = this._resvOwners.get(pasid);
    if (!o) this._resvOwners.set(pasid, (o = { pasid }));
    return o;
  }
}

/** IOMMU_NO_PASID: attachments of the RID itself. */
const IOMMU_NO_PASID = 0;

const MSI_WINDOW: IovaSpan = { start: 0xfee0_0000n, last: 0xfeef_ffffn };
/**
 * iommu_get_resv_regions per family: the x86 interrupt window (VT-d and AMD-Vi, IOMMU_RESV_MSI),
 * AMD's HyperTransport hole, the SMMU's software MSI window (MSI_IOVA_BASE, IOMMU_RESV_SW_MSI).
 */
const RESV_REGIONS: Record<IommuFamily, readonly IovaSpan[]> = {
  vtd: [MSI_WINDOW],
  'amd-vi': [MSI_WINDOW, { start: 0xfd_0000_0000n, last: 0xff_ffff_ffffn }],
  smmuv3: [{ start: 0x800_0000n, last: 0x80f_ffffn }],
  riscv: [],
};

/** conv_iommu_prot: IOMMU_CACHE always, READ and WRITE from the MAP flags. */
function mapProt(flags: number): number {
  return Prot.CACHE | ((flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0 ? Prot.WRITE : 0) | ((flags & IOMMU_IOAS_MAP_READABLE) !== 0 ? Prot.READ : 0);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function u32(op: string, field: string, v: unknown, dflt?: number): number {
  const x = v === undefined ? dflt : v;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffff_ffff) throw new SimError('EINVAL', op, `${field} must be a u32, got ${String(x)}`);
  return x;
}

function u64(op: string, field: string, v: unknown, dflt?: bigint): bigint {
  const x = v === undefined ? dflt : v;
  if (typeof x !== 'bigint' || x < 0n || x > ULONG_MAX) throw new SimError('EINVAL', op, `${field} must be a u64 bigint, got ${String(x)}`);
  return x;
}

/**
 * struct iommufd_ctx: one open /dev/iommu. Made by {@link openIommufd}; its objects are reached
 * through ioctls on the fd, and inspected (read-only) with {@link object} and {@link objects}.
 */
export class IommufdCtx {
  private readonly _objects = new Map<number, IommufdObject>();
  private _nextId = 1;
  /** Pins charged to this context (memlockPages). */
  readonly account: PinAccount;
  /** @internal the open file (vfio takes references on it while bound). */
  file: SimFile<IommufdCtx> | null = null;

  constructor(readonly machine: Machine, readonly proc: Process, opts: IommufdOptions = {}) {
    const limit = opts.memlockPages ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(limit) || limit < 0) throw new SimError('EINVAL', 'iommufd_fops_open', `memlockPages must be a non-negative integer, got ${limit}`);
    this.account = { pinned: 0, limit };
  }

  /** The object with `id`, or undefined. */
  object(id: number): IommufdObject | undefined {
    return this._objects.get(id);
  }

  /** Every live object, by id. */
  objects(): IommufdObject[] {
    return [...this._objects.values()];
  }

  /** User pages pinned for this context's IOASes now. */
  get pinnedPages(): number {
    return this.account.pinned;
  }

  private _add<T extends IommufdObject>(make: (id: number) => T): T {
    const obj = make(this._nextId++);
    this._objects.set(obj.id, obj);
    return obj;
  }

  /** iommufd_get_object: ENOENT when missing or of another type. */
  get<T extends IommufdObject>(op: string, id: unknown, ...types: IommufdObjectType[]): T {
    const obj = typeof id === 'number' ? this._objects.get(id) : undefined;
    if (!obj || (types.length > 0 && !types.includes(obj.type))) throw new SimError('ENOENT', op, `no ${types.join(' or ') || 'object'} with id ${String(id)}`);
    return obj as T;
  }

  /** Removes an object whose only user is the table, running its destroy. */
  private _remove(obj: IommufdObject): void {
    this._objects.delete(obj.id);
    obj.destroyed = true;
    obj.users--;
  }

  // ---- the ioctls ----------------------------------------------------------------------------

  /** iommufd_fops_ioctl: dispatch by command; an unknown one is ENOTTY. `proc` is the caller (new fds go there). */
  ioctl(cmd: number, arg: unknown, proc: Process = this.proc): number {
    const op = 'iommufd_fops_ioctl';
    if (!isObj(arg)) {
      if (cmd >>> 8 === 0x3b && (cmd & 0xff) >= 0x80 && (cmd & 0xff) <= 0x8f) throw new SimError('EFAULT', op, 'bad argument pointer');
      throw new SimError('ENOTTY', op, `unknown ioctl 0x${(cmd >>> 0).toString(16)}`);
    }
    switch (cmd) {
      case IOMMU_DESTROY: return this._destroy(arg as unknown as IommuDestroy);
      case IOMMU_IOAS_ALLOC: return this._ioasAlloc(arg as IommuIoasAlloc);
      case IOMMU_IOAS_IOVA_RANGES: return this._iovaRanges(arg as unknown as IommuIoasIovaRanges);
      case IOMMU_IOAS_ALLOW_IOVAS: return this._allowIovas(arg as unknown as IommuIoasAllowIovas);
      case IOMMU_IOAS_MAP: return this._map(arg as unknown as IommuIoasMap);
      case IOMMU_IOAS_COPY: return this._copy(arg as unknown as IommuIoasCopy);
      case IOMMU_IOAS_UNMAP: return this._unmap(arg as unknown as IommuIoasUnmap);
      case IOMMU_HWPT_ALLOC: return this._hwptAlloc(arg as unknown as IommuHwptAlloc);
      case IOMMU_GET_HW_INFO: return this._hwInfo(arg as unknown as IommuHwInfo);
      case IOMMU_FAULT_QUEUE_ALLOC: return this._faultAlloc(arg as IommuFaultAlloc, proc);
      case IOMMU_HWPT_SET_DIRTY_TRACKING: return this._setDirtyTracking(arg as unknown as IommuHwptSetDirtyTracking);
      case IOMMU_HWPT_GET_DIRTY_BITMAP: return this._getDirtyBitmap(arg as unknown as IommuHwptGetDirtyBitmap);
      case IOMMU_HWPT_INVALIDATE: return this._invalidate(arg as unknown as IommuHwptInvalidate);
      default:
        throw new SimError('ENOTTY', op, `unknown ioctl 0x${(cmd >>> 0).toString(16)}`);
    }
  }

  /** IOMMU_HWPT_SET_DIRTY_TRACKING (iommufd_hwpt_set_dirty_tracking): ENOENT not a paging HWPT; see hwptSetDirtyTracking. */
  private _setDirtyTracking(cmd: IommuHwptSetDirtyTracking): number {
    const op = 'iommufd_hwpt_set_dirty_tracking';
    const flags = u32(op, 'flags', cmd.flags, 0);
    if (u32(op, '__reserved', cmd.__reserved, 0) !== 0) throw new SimError('EOPNOTSUPP', op, '__reserved must be 0');
    hwptSetDirtyTracking(this.get<IommufdHwptPaging>(op, cmd.hwptId, 'hwpt-paging'), flags);
    return 0;
  }

  /** IOMMU_HWPT_GET_DIRTY_BITMAP (iommufd_hwpt_get_dirty_bitmap): EOPNOTSUPP unknown flags; ENOENT not a paging HWPT; see hwptGetDirtyBitmap. */
  private _getDirtyBitmap(cmd: IommuHwptGetDirtyBitmap): number {
    const op = 'iommufd_hwpt_get_dirty_bitmap';
    const flags = u32(op, 'flags', cmd.flags, 0);
    if ((flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0 || u32(op, '__reserved', cmd.__reserved, 0) !== 0) throw new SimError('EOPNOTSUPP', op, 'unknown flags or __reserved set');
    hwptGetDirtyBitmap(this.get<IommufdHwptPaging>(op, cmd.hwptId, 'hwpt-paging'), cmd, flags);
    return 0;
  }

  /**
   * IOMMU_HWPT_INVALIDATE (iommufd_hwpt_invalidate): EOPNOTSUPP __reserved; EINVAL entries without
   * an array or entry_len, or a HWPT that is not nested; ENOENT no such object; see hwptInvalidateUser.
   */
  private _invalidate(cmd: IommuHwptInvalidate): number {
    const op = 'iommufd_hwpt_invalidate';
    const n = u32(op, 'entry_num', cmd.entryNum, cmd.entries?.length ?? 0);
    try {
      if (u32(op, '__reserved', cmd.__reserved, 0) !== 0) throw new SimError('EOPNOTSUPP', op, '__reserved must be 0');
      if (n > 0 && (!Array.isArray(cmd.entries) || u32(op, 'entry_len', cmd.entryLen, 1) === 0)) throw new SimError('EINVAL', op, 'entries need data_uptr and entry_len');
      const hwpt = this.get(op, cmd.hwptId);
      if (!(hwpt instanceof IommufdHwptNested)) throw new SimError('EINVAL', op, `${hwpt.type} ${hwpt.id} is not a nested HWPT`);
      cmd.entryNum = n;
      return hwptInvalidateUser(hwpt, cmd);
    } catch (e) {
      if (!(e instanceof SimError) || e.op !== 'intel_nested_cache_invalidate_user') cmd.entryNum = 0;
      throw e;
    }
  }

  /**
   * IOMMU_DESTROY (iommufd_destroy -> iommufd_object_remove): ENOENT for an unknown id, EBUSY while
   * anything else holds the object (a HWPT on an IOAS, a device on a HWPT, a binding on a device).
   */
  private _destroy(cmd: IommuDestroy): number {
    const op = 'iommufd_destroy';
    const obj = this.get(op, cmd.id);
    if (obj.users > 1) throw new SimError('EBUSY', op, `${obj.type} ${obj.id} is in use (${obj.users - 1} other users)`);
    if (obj.type === 'device') throw new SimError('EBUSY', op, `device ${obj.id} is owned by its driver`);
    if (obj instanceof IommufdFault && obj.users > 1) throw new SimError('EBUSY', op, `fault ${obj.id} has its fd open`);
    this._destroyObject(obj);
    return 0;
  }

  /** The object's destroy function after its removal from the table. */
  private _destroyObject(obj: IommufdObject): void {
    this._remove(obj);
    if (obj instanceof IommufdIoas) {
      obj.iopt.unmapAll('iommufd_ioas_destroy');
    } else if (obj instanceof IommufdHwptNested) {
      obj.domain.destroy();
      obj.parent.users--;
      if (obj.fault) obj.fault.users--;
    } else if (obj instanceof IommufdHwptPaging) {
      // iommufd_hwpt_paging_destroy
      obj.ioas.hwpts.splice(obj.ioas.hwpts.indexOf(obj), 1);
      obj.ioas.iopt.removeDomain(obj.domain);
      obj.domain.destroy();
      obj.ioas.users--;
      if (obj.fault) obj.fault.users--;
    } else if (obj instanceof IommufdFault) {
      obj.autoRespond();
    }
  }

  /**
   * IOMMU_FAULT_QUEUE_ALLOC (iommufd_fault_alloc): a fault object and its fd (O_CLOEXEC) in the
   * caller; the fd holds the object and the iommufd. EOPNOTSUPP flags; EMFILE (nothing made).
   */
  private _faultAlloc(cmd: IommuFaultAlloc, proc: Process): number {
    const op = 'iommufd_fault_alloc';
    if (u32(op, 'flags', cmd.flags, 0) !== 0) throw new SimError('EOPNOTSUPP', op, 'flags must be 0');
    const fault = new IommufdFault(this, this._nextId);
    const fd = faultFd(proc, fault);
    this._add(() => fault);
    fault.users++;
    this.file?.get('kernel');
    cmd.outFaultId = fault.id;
    cmd.outFaultFd = fd;
    return 0;
  }

  /** @internal iommufd_fault_fops_release: the fd's hold on the fault and on the iommufd goes. */
  faultFileReleased(fault: IommufdFault): void {
    fault.users--;
    this.file?.put('kernel');
  }

  /** IOMMU_IOAS_ALLOC (iommufd_ioas_alloc_ioctl): EOPNOTSUPP for flags. */
  private _ioasAlloc(cmd: IommuIoasAlloc): number {
    if (u32('iommufd_ioas_alloc_ioctl', 'flags', cmd.flags, 0) !== 0) throw new SimError('EOPNOTSUPP', 'iommufd_ioas_alloc_ioctl', 'flags must be 0');
    cmd.outIoasId = this._add((id) => new IommufdIoas(this, id)).id;
    return 0;
  }

  /**
   * IOMMU_IOAS_IOVA_RANGES (iommufd_ioas_iova_ranges): the holes between reserved ranges; as many
   * as `numIovas` allows are written, `numIovas` becomes the total, EMSGSIZE when it was too small.
   */
  private _iovaRanges(cmd: IommuIoasIovaRanges): number {
    const op = 'iommufd_ioas_iova_ranges';
    if (u32(op, '__reserved', cmd.__reserved, 0) !== 0) throw new SimError('EOPNOTSUPP', op, '__reserved must be 0');
    const ioas = this.get<IommufdIoas>(op, cmd.ioasId, 'ioas');
    const max = u32(op, 'num_iovas', cmd.numIovas, 0);
    const ranges = ioas.iopt.usableRanges();
    if (max > 0 && !Array.isArray(cmd.allowedIovas)) throw new SimError('EFAULT', op, 'allowed_iovas is not an array');
    for (let i = 0; i < ranges.length && i < max; i++) cmd.allowedIovas![i] = { start: ranges[i]!.start, last: ranges[i]!.last };
    cmd.numIovas = ranges.length;
    cmd.outIovaAlignment = ioas.iopt.iovaAlignment;
    if (ranges.length > max) throw new SimError('EMSGSIZE', op, `${ranges.length} ranges, room for ${max} (num_iovas now says how many)`);
    return 0;
  }

  /**
   * IOMMU_IOAS_ALLOW_IOVAS (iommufd_ioas_allow_iovas): EOPNOTSUPP __reserved; EINVAL a range with
   * start >= last or overlapping another; EADDRINUSE one intersects a reserved range.
   */
  private _allowIovas(cmd: IommuIoasAllowIovas): number {
    const op = 'iommufd_ioas_allow_iovas';
    if (u32(op, '__reserved', cmd.__reserved, 0) !== 0) throw new SimError('EOPNOTSUPP', op, '__reserved must be 0');
    const ioas = this.get<IommufdIoas>(op, cmd.ioasId, 'ioas');
    const list = cmd.allowedIovas ?? [];
    if (!Array.isArray(list)) throw new SimError('EFAULT', op, 'allowed_iovas is not an array');
    const n = u32(op, 'num_iovas', cmd.numIovas, list.length);
    if (n > list.length) throw new SimError('EFAULT', op, `num_iovas ${n} is past the array`);
    const ranges: IovaSpan[] = [];
    for (let i = 0; i < n; i++) {
      const r = list[i]!;
      const start = u64(op, `allowed_iovas[${i}].start`, r?.start);
      const last = u64(op, `allowed_iovas[${i}].last`, r?.last);
      if (start >= last) throw new SimError('EINVAL', op, `allowed_iovas[${i}]: start must be below last`);
      if (ranges.some((o) => o.start <= last && o.last >= start)) throw new SimError('EINVAL', op, `allowed_iovas[${i}] overlaps another range`);
      ranges.push({ start, last });
    }
    ioas.iopt.setAllowed(op, ranges);
    return 0;
  }

  /** The MAP/COPY flag checks (conv_iommu_prot). */
  private _mapFlags(op: string, flags: unknown): number {
    const f = u32(op, 'flags', flags);
    if ((f & ~(IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)) !== 0) throw new SimError('EOPNOTSUPP', op, `unknown flags 0x${f.toString(16)}`);
    return f;
  }

  /**
   * IOMMU_IOAS_MAP (iommufd_ioas_map, iopt_map_user_pages): user memory of the calling process at
   * `iova` (FIXED_IOVA) or at an IOVA chosen and written back. EOPNOTSUPP unknown flags or
   * __reserved; EOVERFLOW iova or length >= ULONG_MAX; EINVAL neither READABLE nor WRITEABLE,
   * length 0 or misaligned, iova misaligned or reserved; ENOENT no such IOAS; EEXIST already
   * mapped; ENOSPC no free IOVA; EFAULT/ENOMEM pinning (when the IOAS has a domain).
   */
  private _map(cmd: IommuIoasMap): number {
    const op = 'iommufd_ioas_map';
    const flags = this._mapFlags(op, cmd.flags);
    if (u32(op, '__reserved', cmd.__reserved, 0) !== 0) throw new SimError('EOPNOTSUPP', op, '__reserved must be 0');
    const iova = u64(op, 'iova', cmd.iova, 0n);
    const length = u64(op, 'length', cmd.length);
    const uva = u64(op, 'user_va', cmd.userVa);
    if (iova >= ULONG_MAX || length >= ULONG_MAX) throw new SimError('EOVERFLOW', op, 'iova or length is ULONG_MAX or more');
    if ((flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)) === 0) throw new SimError('EINVAL', op, 'flags need READABLE or WRITEABLE');
    const ioas = this.get<IommufdIoas>(op, cmd.ioasId, 'ioas');
    if (length === 0n) throw new SimError('EINVAL', op, 'length is 0');
    if (uva + length - 1n > ULONG_MAX) throw new SimError('EOVERFLOW', op, 'user_va + length wraps');
    const pages = new IoptPages(this.proc, uva, length, (flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0, this.account);
    const fixed = (flags & IOMMU_IOAS_MAP_FIXED_IOVA) !== 0;
    cmd.iova = ioas.iopt.mapPages(op, [{ pages, startByte: uva - pages.uptr, length }], length, fixed ? iova : null, mapProt(flags));
    return 0;
  }

  /**
   * IOMMU_IOAS_COPY (iommufd_ioas_copy): the pages behind [src_iova, +length) of one IOAS mapped
   * into another (no new pins). ENOENT when the source range is not fully mapped or an IOAS is
   * missing; then as MAP.
   */
  private _copy(cmd: IommuIoasCopy): number {
    const op = 'iommufd_ioas_copy';
    const flags = this._mapFlags(op, cmd.flags);
    const length = u64(op, 'length', cmd.length);
    const src = u64(op, 'src_iova', cmd.srcIova);
    const dst = u64(op, 'dst_iova', cmd.dstIova, 0n);
    if (length >= ULONG_MAX || src >= ULONG_MAX || dst >= ULONG_MAX) throw new SimError('EOVERFLOW', op, 'length or an iova is ULONG_MAX or more');
    if ((flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE)) === 0) throw new SimError('EINVAL', op, 'flags need READABLE or WRITEABLE');
    const srcIoas = this.get<IommufdIoas>(op, cmd.srcIoasId, 'ioas');
    const slices = srcIoas.iopt.getPages(op, src, length);
    const dstIoas = this.get<IommufdIoas>(op, cmd.dstIoasId, 'ioas');
    const fixed = (flags & IOMMU_IOAS_MAP_FIXED_IOVA) !== 0;
    cmd.dstIova = dstIoas.iopt.mapPages(op, slices, length, fixed ? dst : null, mapProt(flags));
    return 0;
  }

  /**
   * IOMMU_IOAS_UNMAP (iommufd_ioas_unmap): whole areas inside [iova, +length), or everything with
   * iova 0 and length U64_MAX; `length` becomes the bytes unmapped. ENOENT when the range cuts an
   * area or holds none (unmap-all of an empty IOAS succeeds with 0); EOVERFLOW past ULONG_MAX;
   * EINVAL length 0.
   */
  private _unmap(cmd: IommuIoasUnmap): number {
    const op = 'iommufd_ioas_unmap';
    const ioas = this.get<IommufdIoas>(op, cmd.ioasId, 'ioas');
    const iova = u64(op, 'iova', cmd.iova);
    const length = u64(op, 'length', cmd.length);
    let bytes: bigint;
    if (iova === 0n && length === ULONG_MAX) {
      bytes = ioas.iopt.unmapAll(op);
    } else {
      if (iova >= ULONG_MAX || length >= ULONG_MAX) throw new SimError('EOVERFLOW', op, 'iova or length is ULONG_MAX or more');
      if (length === 0n) throw new SimError('EINVAL', op, 'length is 0');
      if (iova + length - 1n > ULONG_MAX) throw new SimError('EOVERFLOW', op, 'iova + length wraps');
      bytes = ioas.iopt.unmapRange(op, iova, iova + length - 1n);
    }
    cmd.length = bytes;
    return 0;
  }

  // ---- hardware page tables ------------------------------------------------------------------

  /**
   * The paging domain a device's IOMMU driver allocates (domain_alloc_paging_flags): the
   * machine's format, except a NEST_PARENT on an SMMUv3, which is a stage-2 domain
   * (ARM_SMMU_DOMAIN_S2); DIRTY_TRACKING asks the format for dirty bits (EOPNOTSUPP without).
   */
  private _allocDomain(idev: IommufdDevice, flags: number): IommuDomain {
    const io = this.machine.iommu!;
    const nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
    // SMMUv3 nest parents are stage-2 domains; AMD domains for PASIDs are v2 (x86-64) tables, the
    // only kind a GCR3 entry holds (amd_iommu_domain_alloc_paging_flags).
    const fam = idev.unit.family;
    const format = nestParent && fam === 'smmuv3' ? 'arm-lpae-s2'
      : (flags & IOMMU_HWPT_ALLOC_PASID) !== 0 && fam === 'amd-vi' ? 'x86-64' : io.format ?? defaultFormat(fam);
    const dirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
    const d = idev.unit.createDomain({
      type: 'paging', format, ias: io.ias ?? 48, oas: 48, strict: true, kernel: io.kernel,
      ...(nestParent ? { nestParent: true } : {}), ...(dirty ? { dirtyTracking: true } : {}),
    });
    // The capability is allocated; tracking itself starts off (IOMMU_HWPT_SET_DIRTY_TRACKING).
    if (dirty) d.setDirtyTracking(false);
    return d;
  }

  /**
   * iommufd_hwpt_paging_alloc: a domain for `idev` linked to `ioas` and filled from it.
   * @throws {@link index!SimError} EOPNOTSUPP unknown flags or an unsupported one; the fill errors
   * (iopt_table_add_domain).
   */
  hwptPagingAlloc(ioas: IommufdIoas, idev: IommufdDevice, flags: number, auto: boolean): IommufdHwptPaging {
    const op = 'iommufd_hwpt_paging_alloc';
    const valid = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;
    if ((flags & ~valid) !== 0) throw new SimError('EOPNOTSUPP', op, `unknown flags 0x${flags.toString(16)}`);
    const domain = this._allocDomain(idev, flags);
    try {
      ioas.iopt.addDomain(op, domain);
    } catch (e) {
      domain.destroy();
      throw e;
    }
    const hwpt = this._add((id) => new IommufdHwptPaging(this, id, ioas, domain, idev.unit,
      (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0, (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0, (flags & IOMMU_HWPT_ALLOC_PASID) !== 0));
    hwpt.autoDomain = auto;
    ioas.hwpts.push(hwpt);
    ioas.users++;
    return hwpt;
  }

  /**
   * IOMMU_HWPT_ALLOC (iommufd_hwpt_alloc): EOPNOTSUPP __reserved; EINVAL data_type and data_len
   * disagree, pt_id names no IOAS or paging HWPT; ENOENT dev_id names no device; a paging HWPT on
   * an IOAS as {@link hwptPagingAlloc}, a nested one on a NEST_PARENT HWPT as {@link _hwptNestedAlloc}.
   */
  private _hwptAlloc(cmd: IommuHwptAlloc): number {
    const op = 'iommufd_hwpt_alloc';
    if (u32(op, '__reserved', cmd.__reserved, 0) !== 0) throw new SimError('EOPNOTSUPP', op, '__reserved must be 0');
    const flags = u32(op, 'flags', cmd.flags, 0);
    const dataType = u32(op, 'data_type', cmd.dataType, IOMMU_HWPT_DATA_NONE);
    const dataLen = u32(op, 'data_len', cmd.dataLen, cmd.data === undefined ? 0 : 1);
    if ((dataType === IOMMU_HWPT_DATA_NONE) !== (dataLen === 0)) throw new SimError('EINVAL', op, 'data_type and data_len disagree');
    const idev = this.get<IommufdDevice>(op, cmd.devId, 'device');
    // iommufd_get_fault: looked up before the HWPT is made, so that a bad id leaves nothing behind.
    const fault = (flags & IOMMU_HWPT_FAULT_ID_VALID) !== 0 ? this.get<IommufdFault>(op, cmd.faultId, 'fault') : null;
    const pt = this._objects.get(cmd.ptId);
    if (!pt) throw new SimError('EINVAL', op, `pt_id ${cmd.ptId} names no object`);
    let hwpt: IommufdHwpt;
    if (pt instanceof IommufdIoas) {
      if (dataLen !== 0) throw new SimError('EOPNOTSUPP', op, 'the IOMMU driver takes no data for a paging domain');
      hwpt = this.hwptPagingAlloc(pt, idev, flags, false);
    } else if (pt instanceof IommufdHwptPaging) {
      hwpt = this._hwptNestedAlloc(pt, idev, flags, dataType, cmd.data, dataLen);
    } else {
      throw new SimError('EINVAL', op, `pt_id ${cmd.ptId} is a ${pt.type}, not an IOAS or a paging HWPT`);
    }
    if (fault) {
      hwpt.fault = fault;
      fault.users++;
    }
    cmd.outHwptId = hwpt.id;
    return 0;
  }

  /**
   * iommufd_hwpt_nested_alloc and the driver's domain_alloc_nested: a stage-1 table at the IPA
   * `data.root` (in the guest's memory, behind the parent) over a NEST_PARENT HWPT. EOPNOTSUPP
   * flags other than FAULT_ID_VALID and PASID, no data, a data type the IOMMU does not take
   * (VT-d: IOMMU_HWPT_DATA_VTD_S1 over an x86-64 first-stage table; SMMUv3:
   * IOMMU_HWPT_DATA_ARM_SMMUV3 over an LPAE stage-1 table; none on AMD-Vi and RISC-V); EINVAL
   * a parent that is automatic, not NEST_PARENT or of another unit, or bad data.
   */
  private _hwptNestedAlloc(parent: IommufdHwptPaging, idev: IommufdDevice, flags: number, dataType: number, data: unknown, dataLen: number): IommufdHwpt {
    const op = 'iommufd_hwpt_nested_alloc';
    if ((flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID)) !== 0 || dataLen === 0) throw new SimError('EOPNOTSUPP', op, 'a nested HWPT takes driver data and no flags but FAULT_ID_VALID and PASID');
    const fam = idev.unit.family;
    const s1 = fam === 'vtd' && dataType === IOMMU_HWPT_DATA_VTD_S1 ? 'x86-64' : fam === 'smmuv3' && dataType === IOMMU_HWPT_DATA_ARM_SMMUV3 ? 'arm-lpae-s1' : null;
    if (parent.autoDomain || !parent.nestParent || parent.unit !== idev.unit) throw new SimError('EINVAL', op, `HWPT ${parent.id} is not a NEST_PARENT HWPT of ${idev.unit.name}`);
    if (s1 === null) throw new SimError('EOPNOTSUPP', op, `the ${fam} driver takes no nested data of type ${dataType}`);
    if (typeof data !== 'object' || data === null || typeof (data as IommuHwptNestedData).root !== 'bigint') throw new SimError('EINVAL', op, 'data must give the stage-1 root IPA as a bigint');
    const d = data as IommuHwptNestedData;
    const domain = idev.unit.createDomain({ type: 'nested', parent: parent.domain, format: s1, root: d.root, ias: d.ias ?? 48, oas: 48 });
    parent.users++;
    return this._add((id) => new IommufdHwptNested(this, id, parent, domain, dataType, (flags & IOMMU_HWPT_ALLOC_PASID) !== 0));
  }

  /**
   * Capabilities of a device's IOMMU (IOMMU_GET_HW_INFO): dirty tracking when its default format
   * can have a dirty-tracking domain (probed with a throwaway domain).
   */
  private _hwCaps(idev: IommufdDevice): { capabilities: bigint; maxPasidLog2: number } {
    let caps = 0n;
    try {
      this._allocDomain(idev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING).destroy();
      caps |= IOMMU_HW_CAP_DIRTY_TRACKING;
    } catch (e) {
      if (!(e instanceof SimError) || e.code !== 'EOPNOTSUPP') throw e;
    }
    // out_max_pasid_log2: the device's PASID width (0 when it has PASIDs off or unknown to the IOMMU).
    let bits = 0;
    try {
      bits = this.machine.sim.iommu.pasidBits(idev.rid);
    } catch (e) {
      if (!(e instanceof SimError) || e.code !== 'ENODEV') throw e;
    }
    return { capabilities: caps, maxPasidLog2: bits };
  }

  /**
   * IOMMU_GET_HW_INFO (iommufd_get_hw_info): the info type of the device's IOMMU (VT-d, SMMUv3;
   * NONE for the others), its capabilities and PASID width. EOPNOTSUPP flags; ENOENT dev_id.
   * No register contents are modelled: data_len comes back 0.
   */
  private _hwInfo(cmd: IommuHwInfo): number {
    const op = 'iommufd_get_hw_info';
    if (u32(op, 'flags', cmd.flags, 0) !== 0) throw new SimError('EOPNOTSUPP', op, 'flags must be 0');
    const idev = this.get<IommufdDevice>(op, cmd.devId, 'device');
    const f = idev.unit.family;
    cmd.outDataType = f === 'vtd' ? IOMMU_HW_INFO_TYPE_INTEL_VTD : f === 'smmuv3' ? IOMMU_HW_INFO_TYPE_ARM_SMMUV3 : IOMMU_HW_INFO_TYPE_NONE;
    cmd.dataLen = 0;
    const caps = this._hwCaps(idev);
    cmd.outCapabilities = caps.capabilities;
    cmd.outMaxPasidLog2 = caps.maxPasidLog2;
    return 0;
  }

  // ---- devices -------------------------------------------------------------------------------

  /**
   * iommufd_device_bind: claims DMA ownership of `fn` for this context and returns the device
   * object (its id is the dev_id). The device's DMA is blocked until it is attached.
   * @throws {@link index!SimError} ENODEV when `fn` is behind no IOMMU; EBUSY when it is bound already.
   */
  bindDevice(fn: PciFunction): IommufdDevice {
    const op = 'iommufd_device_bind';
    const unit = this.machine.unitOf(fn);
    if (!unit || !this.machine.iommu) throw new SimError('ENODEV', op, `${fn.name} is not behind an IOMMU`);
    const owners = this.machine.driverState(IommufdOwners);
    if (owners.byFn.has(fn)) throw new SimError('EBUSY', op, `${fn.name} is already bound to an iommufd`);
    const idev = this._add((id) => new IommufdDevice(this, id, fn, this.machine.rid(fn), unit));
    owners.byFn.set(fn, idev);
    owners.byRid.set(idev.rid, idev);
    return idev;
  }

  /**
   * iommufd_device_unbind: detaches the device, gives DMA ownership back (the RID returns to what
   * it was attached to before the bind) and removes the object.
   */
  unbindDevice(idev: IommufdDevice): void {
    this._ownDevice(idev, 'iommufd_device_unbind');
    for (const p of [...idev.pasids.keys()]) this.detachDevice(idev, p);
    if (idev.hwpt) this.detachDevice(idev);
    const iommu = this.machine.sim.iommu;
    const before = idev.before;
    const back = before === null || before === 'direct' ? before : (idev.unit.domains().find((d) => d.id === before) ?? null);
    iommu.attach(idev.rid, back);
    idev.blocked.destroy();
    const owners = this.machine.driverState(IommufdOwners);
    owners.byFn.delete(idev.fn);
    owners.byRid.delete(idev.rid);
    this._remove(idev);
  }

  private _ownDevice(idev: IommufdDevice, op: string): void {
    if (!(idev instanceof IommufdDevice) || idev.ctx !== this || idev.destroyed) throw new SimError('EINVAL', op, 'not a device bound to this iommufd');
  }

  /** Reserves the device's regions in a paging HWPT's IOAS (iommufd_device_attach_reserved_iova). */
  /** Reserves the device's regions in the IOAS a HWPT translates through (iommufd_device_attach_reserved_iova). */
  private _reserveDevice(op: string, idev: IommufdDevice, pasid: number, ioas: IommufdIoas): void {
    const owner = idev.resvOwner(pasid);
    try {
      for (const r of RESV_REGIONS[idev.unit.family]) ioas.iopt.reserve(op, r.start, r.last, owner);
    } catch (e) {
      ioas.iopt.removeReserved(owner);
      throw e;
    }
  }

  /** The IOMMU driver's attach_dev check: a domain of another unit cannot take the device (EINVAL). */
  private _compatible(op: string, idev: IommufdDevice, hwpt: IommufdHwpt): void {
    if (hwpt.unit !== idev.unit) throw new SimError('EINVAL', op, `HWPT ${hwpt.id} is a domain of ${hwpt.unit.name}; ${idev.fn.name} is behind ${idev.unit.name}`);
  }

  /**
   * iommufd_device_attach / iommufd_device_replace: attaches (or, with `replace`, replaces) the
   * device's RID, or its PASID `pasid`, to `ptId`: an IOAS (an automatic HWPT is reused or made;
   * for a PASID one allocated with IOMMU_HWPT_ALLOC_PASID) or a HWPT. Returns the HWPT id now
   * attached (the pt_id written back). On a throw nothing changed.
   * @throws {@link index!SimError} ENOENT no such object; EINVAL not an IOAS or HWPT, a HWPT of another
   * IOMMU unit, (attach, not replace) already attached, a PASID attach to a HWPT not made for
   * PASIDs or while the RID's HWPT is not, a RID attach to a HWPT not made for PASIDs while
   * PASIDs are attached, or what the IOMMU refuses (PASID not enabled on the device);
   * EADDRINUSE the device's reserved regions are mapped in the IOAS; the HWPT allocation errors.
   */
  attachDevice(idev: IommufdDevice, ptId: number, opts: { replace?: boolean; pasid?: number } = {}): number {
    const op = opts.replace ? 'iommufd_device_replace' : 'iommufd_device_attach';
    this._ownDevice(idev, op);
    const pasid = u32(op, 'pasid', opts.pasid, IOMMU_NO_PASID);
    const pt = this.get(op, ptId);
    const cur = idev.slot(pasid);
    if (!opts.replace && cur) throw new SimError('EINVAL', op, `${idev.fn.name}${pasid ? ` pasid ${pasid}` : ''} is attached to HWPT ${cur.id} (detach or replace)`);
    if (pt instanceof IommufdHwpt) {
      this._setHwpt(op, idev, pasid, pt);
      return pt.id;
    }
    if (!(pt instanceof IommufdIoas)) throw new SimError('EINVAL', op, `${pt.type} ${pt.id} is not an IOAS or a HWPT`);
    // iommufd_device_auto_get_domain: an automatic HWPT that accepts the device, else a new one.
    for (const hwpt of pt.hwpts) {
      if (!hwpt.autoDomain || (pasid !== IOMMU_NO_PASID && !hwpt.pasidCompat)) continue;
      try {
        this._setHwpt(op, idev, pasid, hwpt);
        return hwpt.id;
      } catch (e) {
        if (e instanceof SimError && e.code === 'EINVAL') continue;
        throw e;
      }
    }
    const hwpt = this.hwptPagingAlloc(pt, idev, pasid === IOMMU_NO_PASID ? 0 : IOMMU_HWPT_ALLOC_PASID, true);
    try {
      this._setHwpt(op, idev, pasid, hwpt);
    } catch (e) {
      this._destroyObject(hwpt);
      throw e;
    }
    return hwpt.id;
  }

  /** The attach itself: compatibility, reserved regions, the domain switch, the users counts. */
  private _setHwpt(op: string, idev: IommufdDevice, pasid: number, hwpt: IommufdHwpt): void {
    const old = idev.slot(pasid);
    if (old === hwpt) return;
    this._compatible(op, idev, hwpt);
    // iommufd_hwpt_pasid_compat
    if (pasid !== IOMMU_NO_PASID) {
      if (!hwpt.pasidCompat) throw new SimError('EINVAL', op, `HWPT ${hwpt.id} was not allocated for PASIDs (IOMMU_HWPT_ALLOC_PASID)`);
      if (idev.hwpt && !idev.hwpt.pasidCompat) throw new SimError('EINVAL', op, `the RID of ${idev.fn.name} is attached to HWPT ${idev.hwpt.id}, which was not allocated for PASIDs`);
    } else if (!hwpt.pasidCompat && idev.pasids.size > 0) {
      throw new SimError('EINVAL', op, `PASIDs of ${idev.fn.name} are attached: the RID's HWPT must be allocated for PASIDs`);
    }
    const ioas = hwpt.paging.ioas;
    const oldIoas = old?.paging.ioas;
    if (ioas !== oldIoas) this._reserveDevice(op, idev, pasid, ioas);
    const iommu = this.machine.sim.iommu;
    try {
      if (pasid === IOMMU_NO_PASID) iommu.attach(idev.rid, hwpt.domain);
      else if (old) iommu.replacePasid(idev.rid, pasid, hwpt.domain);
      else iommu.attachPasid(idev.rid, pasid, hwpt.domain);
    } catch (e) {
      if (ioas !== oldIoas) ioas.iopt.removeReserved(idev.resvOwner(pasid));
      if (e instanceof SimError && e.op !== op) throw new SimError(e.code, op, e.message);
      throw e;
    }
    if (oldIoas && ioas !== oldIoas) oldIoas.iopt.removeReserved(idev.resvOwner(pasid));
    idev.setSlot(pasid, hwpt);
    hwpt.users++;
    if (old) {
      old.fault?.autoRespond(idev, old);
      this._putHwpt(old);
    } else {
      idev.users++;
    }
  }

  /** iommufd_hw_pagetable_put: one user fewer; an automatic HWPT left unused is destroyed. */
  private _putHwpt(hwpt: IommufdHwpt): void {
    hwpt.users--;
    if (hwpt instanceof IommufdHwptPaging && hwpt.autoDomain && hwpt.users === 1) this._destroyObject(hwpt);
  }

  /** iommufd_device_detach: the RID back to the blocked domain, or `pasid` unbound (a no-op when not attached). */
  detachDevice(idev: IommufdDevice, pasid: number = IOMMU_NO_PASID): void {
    const op = 'iommufd_device_detach';
    this._ownDevice(idev, op);
    u32(op, 'pasid', pasid);
    const old = idev.slot(pasid);
    if (!old) return;
    if (pasid === IOMMU_NO_PASID) this.machine.sim.iommu.attach(idev.rid, idev.blocked);
    else this.machine.sim.iommu.attachPasid(idev.rid, pasid, null);
    old.paging.ioas.iopt.removeReserved(idev.resvOwner(pasid));
    idev.setSlot(pasid, null);
    idev.users--;
    old.fault?.autoRespond(idev, old);
    this._putHwpt(old);
  }

  /**
   * vfio_iommufd_physical_pasid_attach_ioas: attaches `pasid` of the device, or replaces what it
   * is attached to. Returns the HWPT id. Errors as {@link attachDevice}.
   */
  attachPasid(idev: IommufdDevice, pasid: unknown, ptId: number): number {
    const op = 'iommufd_device_attach';
    this._ownDevice(idev, op);
    const p = u32(op, 'pasid', pasid);
    if (p === IOMMU_NO_PASID) throw new SimError('EINVAL', op, 'pasid 0 is IOMMU_NO_PASID (attach the RID instead)');
    return this.attachDevice(idev, ptId, { pasid: p, replace: idev.pasids.has(p) });
  }

  /**
   * vfio_iommufd_physical_pasid_detach_ioas: unbinds `pasid` (a no-op when not attached).
   * @throws {@link index!SimError} EINVAL when pasid is not a u32 or is 0.
   */
  detachPasid(idev: IommufdDevice, pasid: unknown): void {
    const p = u32('iommufd_device_detach', 'pasid', pasid);
    if (p === IOMMU_NO_PASID) throw new SimError('EINVAL', 'iommufd_device_detach', 'pasid 0 is IOMMU_NO_PASID');
    this.detachDevice(idev, p);
  }

  /**
   * iommufd_fops_release: every object goes, HWPTs before the IOASes they hold. Devices are
   * unbound by their drivers first (they hold the file), so none is left here.
   */
  release(): void {
    for (const type of ['hwpt-nested', 'hwpt-paging', 'ioas', 'fault'] as const) {
      for (const obj of this.objects()) if (obj.type === type) this._destroyObject(obj);
    }
  }
}

/** The file operations of /dev/iommu (iommufd_fops). */
export const IOMMUFD_FOPS: FileOperations<IommufdCtx> = {
  name: '/dev/iommu',
  ioctl: (file, cmd, arg, proc) => file.privateData.ioctl(cmd, arg, proc),
  release: (file) => file.privateData.release(),
};

/**
 * open("/dev/iommu") in `proc` on `machine`: a new iommufd context; returns the fd. A machine
 * without an IOMMU opens it too; binding a device then fails (ENODEV).
 * @throws {@link index!SimError} EINVAL bad options; EMFILE.
 */
export function openIommufd(machine: Machine, proc: Process, opts: IommufdOptions = {}): number {
  const ctx = new IommufdCtx(machine, proc, opts);
  const fd = proc.open(IOMMUFD_FOPS, ctx, { name: '/dev/iommu' });
  ctx.file = proc.file(fd) as SimFile<IommufdCtx>;
  return fd;
}

/**
 * iommufd_ctx_from_fd: the context behind an fd of `proc`.
 * @throws {@link index!SimError} EBADF when `fd` is not open; EBADFD when it is not /dev/iommu.
 */
export function iommufdCtxFromFd(proc: Process, fd: number, op = 'iommufd_ctx_from_fd'): IommufdCtx {
  const file = proc.file(fd);
  if (file.fops !== IOMMUFD_FOPS) throw new SimError('EBADFD', op, `fd ${fd} is not an iommufd`);
  return (file as SimFile<IommufdCtx>).privateData;
}
