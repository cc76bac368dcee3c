/** The amdgpu-like GPU driver: VRAM/GTT buffer objects, dma-buf exporter (IM-07..IM-10) and importer (IM-11). */
export * from './amdgpu_object.js';
export * from './amdgpu.js';
export { AMDGPU_MAX_SG_SEGMENT_SIZE } from './amdgpu_dma_buf.js';
