/** The amdgpu-like GPU driver: VRAM/GTT buffer objects, dma-buf exporter (IM-07..IM-10) and importer (IM-11). */
export {
  AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED, AMDGPU_GEM_CREATE_NO_CPU_ACCESS, AMDGPU_GEM_DOMAIN_GTT, AMDGPU_GEM_DOMAIN_VRAM,
  AmdgpuBo, type AmdgpuBoCreateOptions, type AmdgpuDomain, type AmdgpuEvent, type AmdgpuEventKind, type AmdgpuPlacement,
  type VramChunk,
} from './amdgpu_object.js';
export { AMDGPU_INVISIBLE_VRAM_BASE, AmdgpuDevice, type AmdgpuDeviceOptions } from './amdgpu.js';
export { AMDGPU_MAX_SG_SEGMENT_SIZE } from './amdgpu_dma_buf.js';
export {
  AmdgpuDrmFile, DRM_CLOEXEC, DRM_IOCTL_AMDGPU_GEM_CREATE, DRM_IOCTL_GEM_CLOSE, DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD, DRM_RDWR, type DrmAmdgpuGemCreate, type DrmGemClose, type DrmPrimeHandle,
} from './amdgpu_gem.js';
