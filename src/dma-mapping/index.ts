/** The DMA mapping layer: DMA API per device, scatterlists, swiotlb, dma-iommu cookies, IOVA allocator. */
export * from './constants.js';
export { ScatterList, SG_MAX_LENGTH, type DmaSegment, type SgSetOptions } from './sg.js';
export { Swiotlb, IO_TLB_SHIFT, IO_TLB_SIZE, IO_TLB_SEGSIZE, IO_TLB_DEFAULT_SIZE, type SwiotlbOptions, type SwiotlbStats } from './swiotlb.js';
export { IommuDmaCookie, type CookieOptions } from './cookie.js';
export {
  DmaDevice, DmaIovaState, p2pResolverFrom, isPhysVec, physVecBytes, type DmaDeviceOptions, type DmaDeviceStats, type PhysRange, type PhysVec, type P2pResolver,
} from './dma-api.js';
export {
  IovaDomain, IOVA_MSI_WINDOW, IOVA_RANGE_CACHE_MAX_SIZE, IOVA_MAG_SIZE, type IovaRange, type IovaStats,
  type IovaDevice, type AllocIovaOptions,
} from './iova.js';
