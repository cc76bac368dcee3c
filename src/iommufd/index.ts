/** iommufd: the /dev/iommu user API (IOAS, HWPT, devices bound through vfio cdev), its uAPI numbers and structs. */
export * from './uapi.js';
export { IoPagetable, IoptPages, IoptArea, ULONG_MAX, type IovaSpan, type PinAccount } from './io-pagetable.js';
export {
  IommufdCtx, IommufdObject, IommufdIoas, IommufdHwpt, IommufdHwptPaging, IommufdDevice, IOMMUFD_FOPS, openIommufd, iommufdCtxFromFd,
  type IommufdObjectType, type IommufdOptions,
} from './iommufd.js';
export { VfioCdevFile } from './vfio-cdev.js';
