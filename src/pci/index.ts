/** PCI topology and the kernel's P2PDMA decisions. */
export * from './acs.js';
export * from './topology.js';
export * from './whitelist.js';
export {
  type BuildOptions, buildTopology, type TopologySpec, type HostBridgeSpec, type SwitchSpec, type EndpointSpec,
  type PlatformSpec, type FunctionSpec, type SlotFunctionSpec, type BarSpec,
} from './enumerate.js';
export * from './describe.js';
export * from './builder.js';
export * from './log.js';
export * from './resource.js';
export * from './p2pdma.js';
export * from './render.js';
export * from './fabric.js';
