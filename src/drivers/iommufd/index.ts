/** iommufd: the /dev/iommu user API (IOAS, HWPT, devices bound through vfio cdev, page-fault queues), its uAPI numbers and structs. */
export * from './uapi.js';
export { IoPagetable, IoptPages, IoptArea, ULONG_MAX, type IovaSpan, type PinAccount } from './io-pagetable.js';
export { IommufdObject, IommufdOwners, type IommufdObjectType } from './object.js';
export {
  IommufdCtx, IommufdIoas, IommufdDevice, IOMMUFD_FOPS, openIommufd, iommufdCtxFromFd,
  type IommufdOptions,
} from './iommufd.js';
export {
  IommufdFault, IOMMUFD_FAULT_FOPS, IOMMU_HWPT_PGFAULT_SIZE, IOMMU_HWPT_PAGE_RESPONSE_SIZE, faultFd, reportPageRequest,
  type IopfRequest, type PageResponder,
} from './fault.js';
export { IommufdHwpt, IommufdHwptPaging, IommufdHwptNested, IOMMU_VTD_INV_FLAGS_LEAF } from './hw-pagetable.js';
export { IopfQueue, PriDma, PriTransfer, type PriTransferState } from './iopf.js';
export { VfioCdevFile } from './vfio-cdev.js';
