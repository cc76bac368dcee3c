/** The amdgpu-like GPU driver: VRAM/GTT buffer objects, dma-buf exporter (IM-07..IM-10) and importer (IM-11). */
export * from './amdgpu.js';
