/**
 * dmabuf-sim/drivers: the reference drivers, each built only on the public API (the package's
 * root entry): a habanalabs-like accelerator, verbs-like RDMA NICs, an amdgpu-like GPU, vfio-pci,
 * udmabuf and the system dma-heap; iommufd (/dev/iommu, drivers/iommu/iommufd), which vfio-pci's
 * device cdev binds to.
 */
export * from './accel/index.js';
export * from './rdma/index.js';
export * from './gpu/index.js';
export * from './vfio/index.js';
export * from './udmabuf/index.js';
export * from './dma-heap/index.js';
export * from './iommufd/index.js';
