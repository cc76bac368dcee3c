/**
 * dmabuf-sim: the public API. Everything a user builds on (and everything the reference drivers,
 * the scenario runner and the examples use): the simulator core (memory, IOMMU, DMA engine), a
 * Machine (core + PCI topology + P2PDMA + DMA API + DMA-BUF kernel), the PCI topology builders
 * and P2PDMA decisions, the DMA mapping API, and the DMA-BUF framework with the exporter and
 * importer ops interfaces. One SimError class for every layer and every entry.
 */
export { createSimulator, SIMULATOR_LIMITS, type Simulator, type SimulatorOptions } from './simulator.js';
export { SimError, CoreTrapError, ERRNO, errnoName, type ErrnoCode } from '../bindings/errors.js';
export { PhysicalMemory, type Region, type RegionOptions, type RegionKind, type FrameInfo, type ArenaUsage } from './memory/physical-memory.js';
export {
  Iommu, IommuUnit, IommuDomain, Prot, type UnitOptions, type DomainOptions, type FaultRecord,
  type TranslateResult, type TranslateOptions, type PageRequest, type WalkResult, type WalkLevel, type UnitStats, type IommuFamily,
  type DomainType, type PgtableFormat, type Access, type FaultReason, IOMMU_FAMILIES, FAMILY_FORMATS, defaultFormat, archLevel,
} from './iommu/iommu.js';
export {
  DmaEngine, type DmaEndpoint, type DmaResult, type DmaFault, type DmaStats, type DmaTransfer, type TransferTiming, type DmaCostModel, type DmaCopyDescriptor,
  type DmaVectorResult,
} from './dma/dma-engine.js';
export { formatRid } from './util/args.js';
// Page-table entry decoding (the report, the demo and the page print walks with it).
export { decodeEntry, decodeDomainEntry, levelsFor, levelShift, type DecodedEntry, type EntryGeometry } from './iommu/pte-decode.js';
// Kernel eras of the IOMMU layer: partial unmap and overlapping map per format and kernel.
export {
  IOMMU_KERNELS, PGTABLE_FORMATS, formatPolicy, type IommuKernel, type FormatPolicy, type PartialUnmap, type OverlapMap,
} from './iommu/kernel.js';
// Driver kit: vectored device-to-device copies over two lists of DMA runs.
export { copyDmaRuns, pushDmaRun, type DmaRun } from './driver-kit/dma-copy.js';

// The machine: core + topology + P2PDMA + DMA API + DMA-BUF kernel.
export {
  Machine, MachineSeries, IOMMU_KERNEL_OF_PROFILE, RAM_HIGH_BASE, RAM_LOW_BASE, RAM_LOW_SIZE, DEVICE_MEMORY_BASE, DEVICE_MEMORY_END, type MachineOptions,
  type MachineIommuOptions, type DeviceMemoryOptions,
} from './machine/machine.js';
export type { MachineHistoryOptions, MachineHistory } from './machine/machine.js';
// Bounded histories: the ring every log of a machine keeps its newest entries in.
export { Ring, DEFAULT_HISTORY_CAP } from './util/ring.js';

// PCI topology and the kernel's P2PDMA decisions.
export * from './pci/index.js';

// The DMA mapping API.
export * from './dma-mapping/index.js';

// Processes: files with their operations (file_operations), fd tables, address spaces.
export * from './process/index.js';

// The DMA-BUF framework: buffers, attachments, sg_tables, fences, reservations, fds and uAPI.
export * from './dma-buf/index.js';
// attach->dev: one importer-device type for attach/dynamicAttach and every exporter. The DMA
// API's device is DmaDevice.
export type { ImporterDevice } from './dma-buf/ops.js';
export { DmaDevice } from './dma-mapping/index.js';
// The page size as a number (src/pci keeps a bigint twin for its bus-address arithmetic).
export { PAGE_SIZE, PAGE_SHIFT } from './dma-buf/index.js';

// The driver kit: range allocator (gen_pool), importer devices, the P2P exporter mapping helper.
export * from './driver-kit/index.js';

// Virtual time: the performance model of the fabric on each machine's one clock.
export * from './time/index.js';
