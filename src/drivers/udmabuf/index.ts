/** udmabuf: dma-bufs from sealed memfd pages, the memfd model it needs, and CPU access helpers. */
export * from './uapi.js';
export * from './memfd.js';
export * from './cpu-access.js';
export * from './importer.js';
export * from './udmabuf.js';
