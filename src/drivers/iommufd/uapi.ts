/**
 * The iommufd uAPI (include/uapi/linux/iommufd.h) and the vfio cdev commands that bind a device
 * to it (include/uapi/linux/vfio.h): ioctl numbers, flag bits and the argument structs as plain
 * objects. Fields keep the kernel's names in camelCase; `out*` fields are written back by the
 * ioctl, as copy_to_user would. 64-bit fields are bigints, 32-bit ones numbers.
 */

/** IOMMUFD_TYPE ';': iommufd commands are _IO(IOMMUFD_TYPE, IOMMUFD_CMD_*). */
const iommufdIo = (n: number): number => (0x3b << 8) | n;
/** IOMMU_DESTROY: destroy any destroyable object by id (struct iommu_destroy). */
export const IOMMU_DESTROY = iommufdIo(0x80);
/** IOMMU_IOAS_ALLOC: a new, empty IOAS (struct iommu_ioas_alloc). */
export const IOMMU_IOAS_ALLOC = iommufdIo(0x81);
/** IOMMU_IOAS_ALLOW_IOVAS: replace the IOAS's allowed IOVA ranges (struct iommu_ioas_allow_iovas). */
export const IOMMU_IOAS_ALLOW_IOVAS = iommufdIo(0x82);
/** IOMMU_IOAS_COPY: map the pages behind IOVAs of one IOAS into another (struct iommu_ioas_copy). */
export const IOMMU_IOAS_COPY = iommufdIo(0x83);
/** IOMMU_IOAS_IOVA_RANGES: the usable IOVA ranges and alignment (struct iommu_ioas_iova_ranges). */
export const IOMMU_IOAS_IOVA_RANGES = iommufdIo(0x84);
/** IOMMU_IOAS_MAP: map user memory at an IOVA (struct iommu_ioas_map). */
export const IOMMU_IOAS_MAP = iommufdIo(0x85);
/** IOMMU_IOAS_UNMAP: unmap whole areas in a range (struct iommu_ioas_unmap). */
export const IOMMU_IOAS_UNMAP = iommufdIo(0x86);
/** IOMMU_OPTION (not modelled: ENOTTY). */
export const IOMMU_OPTION = iommufdIo(0x87);
/** IOMMU_HWPT_ALLOC: a hardware page table for a device (struct iommu_hwpt_alloc). */
export const IOMMU_HWPT_ALLOC = iommufdIo(0x89);
/** IOMMU_GET_HW_INFO: what the device's IOMMU can do (struct iommu_hw_info). */
export const IOMMU_GET_HW_INFO = iommufdIo(0x8a);
/** IOMMU_HWPT_SET_DIRTY_TRACKING (struct iommu_hwpt_set_dirty_tracking). */
export const IOMMU_HWPT_SET_DIRTY_TRACKING = iommufdIo(0x8b);
/** IOMMU_HWPT_GET_DIRTY_BITMAP (struct iommu_hwpt_get_dirty_bitmap). */
export const IOMMU_HWPT_GET_DIRTY_BITMAP = iommufdIo(0x8c);
/** IOMMU_HWPT_INVALIDATE (struct iommu_hwpt_invalidate). */
export const IOMMU_HWPT_INVALIDATE = iommufdIo(0x8d);
/** IOMMU_FAULT_QUEUE_ALLOC: a fault object with its fd (struct iommu_fault_alloc). */
export const IOMMU_FAULT_QUEUE_ALLOC = iommufdIo(0x8e);

/** VFIO_TYPE ';', VFIO_BASE 100. */
const vfioIo = (n: number): number => (0x3b << 8) | (100 + n);
/** VFIO_DEVICE_BIND_IOMMUFD: bind a vfio cdev fd to an iommufd (struct vfio_device_bind_iommufd). */
export const VFIO_DEVICE_BIND_IOMMUFD = vfioIo(18);
/** VFIO_DEVICE_ATTACH_IOMMUFD_PT: attach (or replace) to an IOAS or HWPT (struct vfio_device_attach_iommufd_pt). */
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = vfioIo(19);
/** VFIO_DEVICE_DETACH_IOMMUFD_PT: back to blocked DMA (struct vfio_device_detach_iommufd_pt). */
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = vfioIo(20);
/** vfio_device_attach_iommufd_pt.flags: attach `pasid` of the device instead of its RID. */
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;
/** vfio_device_detach_iommufd_pt.flags: detach `pasid` of the device instead of its RID. */
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

/** iommu_ioas_map.flags: use the given iova instead of allocating one. */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
/** iommu_ioas_map.flags: DMA may write the memory. */
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
/** iommu_ioas_map.flags: DMA may read the memory. */
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

/** iommu_hwpt_alloc.flags: the HWPT may be the parent (stage 2) of nested HWPTs. */
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
/** iommu_hwpt_alloc.flags: the domain tracks dirty pages (IOMMU_HWPT_SET_DIRTY_TRACKING). */
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
/** iommu_hwpt_alloc.flags: `faultId` names a fault object that receives the HWPT's page requests. */
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
/** iommu_hwpt_alloc.flags: the HWPT will be attached to PASIDs. */
export const IOMMU_HWPT_ALLOC_PASID = 1 << 3;

/** iommu_hwpt_set_dirty_tracking.flags: enable (clear: disable). */
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1 << 0;
/** iommu_hwpt_get_dirty_bitmap.flags: read the dirty bits without clearing them. */
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1 << 0;

/** enum iommu_hwpt_data_type: no driver data (a paging HWPT). */
export const IOMMU_HWPT_DATA_NONE = 0;
/** enum iommu_hwpt_data_type: an Intel VT-d stage-1 (first-stage) table (struct iommu_hwpt_vtd_s1). */
export const IOMMU_HWPT_DATA_VTD_S1 = 1;
/** enum iommu_hwpt_data_type: an SMMUv3 stage-1 STE (struct iommu_hwpt_arm_smmuv3). */
export const IOMMU_HWPT_DATA_ARM_SMMUV3 = 2;
/** enum iommu_hwpt_invalidate_data_type: VT-d stage-1 cache invalidation entries. */
export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
/** enum iommu_hwpt_invalidate_data_type: SMMUv3 commands (on a vIOMMU). */
export const IOMMU_HWPT_INVALIDATE_DATA_ARM_SMMUV3 = 1;

/** enum iommu_hw_info_type: the driver reports no info (AMD-Vi, RISC-V here). */
export const IOMMU_HW_INFO_TYPE_NONE = 0;
/** enum iommu_hw_info_type: Intel VT-d (struct iommu_hw_info_vtd). */
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
/** enum iommu_hw_info_type: Arm SMMUv3 (struct iommu_hw_info_arm_smmuv3). */
export const IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2;
/** enum iommufd_hw_capabilities: the IOMMU can track dirty pages (IOMMU_HWPT_ALLOC_DIRTY_TRACKING works). */
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1n << 0n;
/** enum iommufd_hw_capabilities: the device's PASID capability has Execute Permission. */
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1n << 1n;
/** enum iommufd_hw_capabilities: the device's PASID capability has Privileged Mode. */
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1n << 2n;

/** iommu_hwpt_pgfault.flags: `pasid` is valid. */
export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
/** iommu_hwpt_pgfault.flags: the last request of its page request group. */
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;
/** iommu_hwpt_pgfault.perm: the request asks for read access. */
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
/** iommu_hwpt_pgfault.perm: the request asks for write access. */
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
/** enum iommufd_page_response_code: the page is there now, the device retries. */
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
/** enum iommufd_page_response_code: the request cannot be served, the device's access fails. */
export const IOMMUFD_PAGE_RESP_INVALID = 1;

/** struct iommu_destroy. */
export interface IommuDestroy { size?: number; id: number }
/** struct iommu_ioas_alloc. */
export interface IommuIoasAlloc { size?: number; flags?: number; outIoasId?: number }
/** struct iommu_iova_range: inclusive bounds. */
export interface IommuIovaRange { start: bigint; last: bigint }
/**
 * struct iommu_ioas_iova_ranges. `allowedIovas` is the user array of `numIovas` entries; the ioctl
 * writes as many ranges as fit and sets `numIovas` to how many there are (EMSGSIZE when more).
 */
export interface IommuIoasIovaRanges {
  size?: number; ioasId: number; numIovas?: number; __reserved?: number;
  allowedIovas?: IommuIovaRange[]; outIovaAlignment?: bigint;
}
/** struct iommu_ioas_allow_iovas. */
export interface IommuIoasAllowIovas { size?: number; ioasId: number; numIovas?: number; __reserved?: number; allowedIovas: readonly IommuIovaRange[] }
/** struct iommu_ioas_map: `iova` is written back when the kernel chose it. */
export interface IommuIoasMap {
  size?: number; flags: number; ioasId: number; __reserved?: number;
  userVa: bigint; length: bigint; iova?: bigint;
}
/** struct iommu_ioas_copy: `dstIova` is written back when the kernel chose it. */
export interface IommuIoasCopy {
  size?: number; flags: number; dstIoasId: number; srcIoasId: number;
  length: bigint; dstIova?: bigint; srcIova: bigint;
}
/** struct iommu_ioas_unmap: `length` is written back with the bytes unmapped. */
export interface IommuIoasUnmap { size?: number; ioasId: number; iova: bigint; length: bigint }
/**
 * struct iommu_hwpt_alloc. `data` stands for the driver data at data_uptr (nested: the stage-1
 * table, see {@link IommuHwptNestedData}); `dataLen` defaults to 0 without data, 1 with.
 */
export interface IommuHwptAlloc {
  size?: number; flags?: number; devId: number; ptId: number; outHwptId?: number; __reserved?: number;
  dataType?: number; dataLen?: number; data?: unknown; faultId?: number;
}
/** The nested-HWPT driver data (struct iommu_hwpt_vtd_s1 / iommu_hwpt_arm_smmuv3), as far as modelled. */
export interface IommuHwptNestedData {
  /** Guest physical (IPA) address of the stage-1 root table (VT-d pgtbl_addr, SMMUv3 CD's TTB0). */
  root: bigint;
  /** Stage-1 input address bits. @default 48 */
  ias?: number;
}
/** struct iommu_hw_info. `data` receives the driver's info (a small object here). */
export interface IommuHwInfo {
  size?: number; flags?: number; devId: number; dataLen?: number; data?: Record<string, unknown>;
  outDataType?: number; outMaxPasidLog2?: number; outCapabilities?: bigint;
}
/** struct iommu_hwpt_set_dirty_tracking. */
export interface IommuHwptSetDirtyTracking { size?: number; flags: number; hwptId: number; __reserved?: number }
/** struct iommu_hwpt_get_dirty_bitmap: `data` is the user bitmap, filled by the ioctl. */
export interface IommuHwptGetDirtyBitmap {
  size?: number; hwptId: number; flags?: number; __reserved?: number;
  iova: bigint; length: bigint; pageSize: bigint; data?: BigUint64Array;
}
/** struct iommu_hwpt_invalidate: `entries` stand for the array at data_uptr; `entryNum` is written back with how many were handled. */
export interface IommuHwptInvalidate {
  size?: number; hwptId: number; dataType?: number; entryLen?: number; entryNum?: number; __reserved?: number;
  entries?: readonly IommuHwptInvalidateEntry[];
}
/** One stage-1 invalidation request (struct iommu_hwpt_vtd_s1_invalidate's addr/npages, or a range). */
export interface IommuHwptInvalidateEntry { addr?: bigint; npages?: bigint; flags?: number }
/** struct iommu_fault_alloc. */
export interface IommuFaultAlloc { size?: number; flags?: number; outFaultId?: number; outFaultFd?: number }
/** struct iommu_hwpt_pgfault: one page request as read from a fault fd. */
export interface IommuHwptPgfault {
  flags: number; devId: number; pasid: number; grpid: number; perm: number; addr: bigint; length: number; cookie: number;
}
/** struct iommu_hwpt_page_response: one response written to a fault fd. */
export interface IommuHwptPageResponse { cookie: number; code: number }

/** struct vfio_device_bind_iommufd. */
export interface VfioDeviceBindIommufd { argsz?: number; flags?: number; iommufd: number; outDevid?: number }
/** struct vfio_device_attach_iommufd_pt: `ptId` is written back with the HWPT attached. */
export interface VfioDeviceAttachIommufdPt { argsz?: number; flags?: number; ptId: number; pasid?: number }
/** struct vfio_device_detach_iommufd_pt. */
export interface VfioDeviceDetachIommufdPt { argsz?: number; flags?: number; pasid?: number }
