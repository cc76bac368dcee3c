/** dma-heaps: the /dev/dma_heap framework and the system heap. */
export * from './uapi.js';
export * from './dma-heap.js';
export * from './system-heap.js';
export { mmapRead, mmapWrite, bufferRead, bufferWrite, pageBackedOf, bufferPhys, PageBackedBuffer } from '../udmabuf/cpu-access.js';
