/**
 * Hardware page tables (drivers/iommu/iommufd/hw_pagetable.c): a paging HWPT owns an
 * iommu_domain filled from its IOAS; a nested HWPT is a stage-1 table owned by the user (a
 * guest's) over a NEST_PARENT paging HWPT as stage 2. Dirty tracking (IOMMU_HWPT_SET_DIRTY_TRACKING,
 * IOMMU_HWPT_GET_DIRTY_BITMAP, io_pagetable.c iopt_read_and_clear_dirty_data) and the nested
 * cache invalidation (IOMMU_HWPT_INVALIDATE, the driver's cache_invalidate_user) live here.
 */
import { SimError, type IommuDomain, type IommuUnit } from '../../index.js';
import type { IommufdFault } from './fault.js';
import { ULONG_MAX } from './io-pagetable.js';
import type { IommufdCtx, IommufdIoas } from './iommufd.js';
import { IommufdObject } from './object.js';
import {
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  type IommuHwptGetDirtyBitmap, type IommuHwptInvalidate,
} from './uapi.js';

/** IOMMU_VTD_INV_FLAGS_LEAF: only leaf entries changed (struct iommu_hwpt_vtd_s1_invalidate.flags). */
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;

/** What HWPTs share (struct iommufd_hw_pagetable). */
export abstract class IommufdHwpt extends IommufdObject {
  /** The iommu_domain. */
  abstract readonly domain: IommuDomain;
  /** The unit of the domain: only devices behind it can attach. */
  abstract readonly unit: IommuUnit;
  /** May be attached to PASIDs (IOMMU_HWPT_ALLOC_PASID; automatic HWPTs made for a PASID). */
  abstract readonly pasidCompat: boolean;
  /** The fault object that receives page requests of devices attached to it (IOMMU_HWPT_FAULT_ID_VALID). */
  fault: IommufdFault | null = null;
  /** The paging HWPT whose IOAS this HWPT translates through (itself, or a nested one's parent). */
  abstract get paging(): IommufdHwptPaging;
}

/** struct iommufd_hwpt_paging: a paging domain filled from its IOAS. */
export class IommufdHwptPaging extends IommufdHwpt {
  readonly type = 'hwpt-paging';
  /** Made by an attach to the IOAS (destroyed when its last device leaves). */
  autoDomain = false;
  constructor(
    ctx: IommufdCtx, id: number,
    /** The IOAS whose areas fill the domain. */
    readonly ioas: IommufdIoas,
    readonly domain: IommuDomain,
    readonly unit: IommuUnit,
    /** IOMMU_HWPT_ALLOC_NEST_PARENT. */
    readonly nestParent: boolean,
    /** IOMMU_HWPT_ALLOC_DIRTY_TRACKING. */
    readonly dirtyTracking: boolean,
    readonly pasidCompat: boolean,
  ) {
    super(ctx, id);
  }

  get paging(): IommufdHwptPaging {
    return this;
  }
}

/** struct iommufd_hwpt_nested: a user stage-1 table over a NEST_PARENT paging HWPT. */
export class IommufdHwptNested extends IommufdHwpt {
  readonly type = 'hwpt-nested';
  constructor(
    ctx: IommufdCtx, id: number,
    /** The stage-2 HWPT. */
    readonly parent: IommufdHwptPaging,
    readonly domain: IommuDomain,
    /** The driver data type it was made with (IOMMU_HWPT_DATA_VTD_S1, _ARM_SMMUV3). */
    readonly dataType: number,
    readonly pasidCompat: boolean,
  ) {
    super(ctx, id);
  }

  get unit(): IommuUnit {
    return this.parent.unit;
  }

  get paging(): IommufdHwptPaging {
    return this.parent;
  }
}

/**
 * iopt_set_dirty_tracking: enabling clears what the domain had marked (iopt_clear_dirty_data)
 * and turns the hardware marking on; disabling turns it off.
 * @throws {@link index!SimError} EOPNOTSUPP when the HWPT was not allocated with DIRTY_TRACKING.
 */
export function hwptSetDirtyTracking(hwpt: IommufdHwptPaging, flags: number): void {
  const op = 'iommufd_hwpt_set_dirty_tracking';
  if ((flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0) throw new SimError('EOPNOTSUPP', op, `unknown flags 0x${flags.toString(16)}`);
  if (!hwpt.dirtyTracking) throw new SimError('EOPNOTSUPP', op, `HWPT ${hwpt.id} was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING`);
  const on = (flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0;
  hwpt.domain.setDirtyTracking(on);
  if (on) for (const a of hwpt.ioas.iopt.areas) if (a.stored) hwpt.domain.readAndClearDirty(a.iova, a.length, 4096n);
}

/**
 * iopt_read_and_clear_dirty_data (IOMMU_HWPT_GET_DIRTY_BITMAP): bit i of `data` is page i of
 * `pageSize` from `iova`. EOVERFLOW past ULONG_MAX; EINVAL a range not aligned to the IOAS, a
 * page size that is not a power of two, a range not fully mapped by contiguous areas, or tracking
 * off; EFAULT a bitmap too small; EOPNOTSUPP without DIRTY_TRACKING.
 */
export function hwptGetDirtyBitmap(hwpt: IommufdHwptPaging, cmd: IommuHwptGetDirtyBitmap, flags: number): void {
  const op = 'iommufd_hwpt_get_dirty_bitmap';
  if (!hwpt.dirtyTracking) throw new SimError('EOPNOTSUPP', op, `HWPT ${hwpt.id} was not allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING`);
  const { iova, length, pageSize } = cmd;
  for (const [k, v] of Object.entries({ iova, length, pageSize })) {
    if (typeof v !== 'bigint' || v < 0n) throw new SimError('EINVAL', op, `${k} must be a u64 bigint`);
  }
  const iopt = hwpt.ioas.iopt;
  // iommufd_check_iova_range
  if (iova > ULONG_MAX || length > ULONG_MAX || length === 0n || iova + length - 1n > ULONG_MAX) throw new SimError('EOVERFLOW', op, 'iova + length is 0 or wraps');
  if (iova % iopt.iovaAlignment !== 0n || length % iopt.iovaAlignment !== 0n) throw new SimError('EINVAL', op, `iova and length must be aligned to 0x${iopt.iovaAlignment.toString(16)}`);
  if (pageSize === 0n || (pageSize & (pageSize - 1n)) !== 0n || iova % pageSize !== 0n || length % pageSize !== 0n) {
    throw new SimError('EINVAL', op, `page_size 0x${pageSize.toString(16)} must be a power of two dividing iova and length`);
  }
  // Contiguous areas must cover the range (iopt_for_each_contig_area; EINVAL when they do not).
  try {
    iopt.getPages(op, iova, length);
  } catch (e) {
    if (e instanceof SimError && e.code === 'ENOENT') throw new SimError('EINVAL', op, e.message);
    throw e;
  }
  const words = Number((length / pageSize + 63n) / 64n);
  if (!(cmd.data instanceof BigUint64Array) || cmd.data.length < words) throw new SimError('EFAULT', op, `data must be a BigUint64Array of at least ${words} words`);
  const bm = hwpt.domain.readAndClearDirty(iova, length, pageSize, { noClear: (flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0 });
  cmd.data.set(bm.subarray(0, words));
}

/**
 * The nested domain's cache_invalidate_user (IOMMU_HWPT_INVALIDATE). VT-d stage 1 only
 * (intel_nested_cache_invalidate_user): each entry {addr, npages, flags} flushes [addr, +npages
 * pages) of the stage-1 IOTLB, addr 0 with npages U64_MAX everything. `entryNum` comes back as the
 * entries handled. EINVAL another data type, a misaligned addr or unknown flags (the entries
 * before it stay handled).
 */
export function hwptInvalidateUser(hwpt: IommufdHwptNested, cmd: IommuHwptInvalidate): number {
  const op = 'intel_nested_cache_invalidate_user';
  if (hwpt.unit.family !== 'vtd') {
    throw new SimError('EOPNOTSUPP', 'iommufd_hwpt_invalidate', `${hwpt.unit.family} nested domains are invalidated through a vIOMMU, not the HWPT`);
  }
  const type = cmd.dataType ?? IOMMU_HWPT_INVALIDATE_DATA_VTD_S1;
  if (type !== IOMMU_HWPT_INVALIDATE_DATA_VTD_S1) throw new SimError('EINVAL', op, `data_type ${type} is not IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`);
  const entries = cmd.entries ?? [];
  const n = cmd.entryNum ?? entries.length;
  let done = 0;
  try {
    for (; done < n; done++) {
      const e = entries[done];
      if (!e) throw new SimError('EFAULT', op, `entry ${done} is past the array`);
      const addr = e.addr ?? 0n;
      const npages = e.npages ?? 0n;
      const flags = e.flags ?? 0;
      if ((flags & ~IOMMU_VTD_INV_FLAGS_LEAF) !== 0 || addr % 4096n !== 0n) throw new SimError('EINVAL', op, `entry ${done}: unknown flags or addr not 4 KiB aligned`);
      if (addr === 0n && npages === ULONG_MAX) hwpt.domain.invalidate();
      else if (npages > 0n) {
        const end = addr + npages * 4096n;
        hwpt.domain.invalidate(addr, end > ULONG_MAX ? 0n : end);
      }
    }
  } finally {
    cmd.entryNum = done;
  }
  return 0;
}
