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
export { BUILTIN_TOPOLOGIES, SEED_TOPOLOGY } from './builtin/index.js';
