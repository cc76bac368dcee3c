/** dmabuf-sim: the public API. */
export { createSimulator, type Simulator, type SimulatorOptions } from './simulator.js';
export { SimError, CoreTrapError, ERRNO, errnoName, type ErrnoCode } from '../bindings/errors.js';
export { PhysicalMemory, type Region, type RegionOptions, type RegionKind, type FrameInfo } from './memory/physical-memory.js';
export {
  Iommu, IommuUnit, IommuDomain, Prot, type UnitOptions, type DomainOptions, type FaultRecord,
  type TranslateResult, type WalkResult, type WalkLevel, type UnitStats, type IommuFamily,
  type DomainType, type PgtableFormat, type Access, type FaultReason,
} from './iommu/iommu.js';
export { DmaEngine, type DmaEndpoint, type DmaResult, type DmaFault, type DmaStats } from './dma/dma-engine.js';
export { formatRid } from './util/args.js';
