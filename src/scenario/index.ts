/** Scenarios: the file format, validation, the runner and its report. */
export * from './schema.js';
export * from './source.js';
export * from './pattern.js';
export * from './parse.js';
export * from './validate.js';
export * from './topology-source.js';
export * from './report.js';
export * from './sections.js';
export * from './runner.js';
export { createDefaultRunner } from './default-runner.js';
export { BUILTIN_TOPOLOGIES, SEED_TOPOLOGY, SEED_VFIO_TOPOLOGY, SEED_SCENARIO, SEED_SCENARIO_FILE } from './builtin/index.js';
export { VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE } from './builtin/index.js';
export { IOMMUFD_OPS, registerIommufdOps } from './iommufd-ops.js';
export { scenarioJsonSchema, topologyJsonSchema } from './json-schema.js';
// Chrome trace-event JSON (Perfetto): the recorder the runner uses, for hosts that trace their own runs.
export * from '../trace/index.js';
