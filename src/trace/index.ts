/** Chrome trace-event output (Perfetto) of scenario runs. */
export * from './trace.js';
export * from './sources.js';
export * from './iommu.js';
