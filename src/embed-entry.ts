/**
 * dmabuf-sim/embed: the emulator inside a host's own WebAssembly.Memory.
 *
 *   const memory = new WebAssembly.Memory({ initial: 256, maximum: 1024 });   // the host's
 *   const sim = await createEmbeddedSimulator({ memory, base: 8 << 20, bytes: 8 << 20 });
 *   sim.memory.addRegion({ base: 0x8000_0000n, size: 1n << 20n, kind: 'ram', linear: 1 << 20 });
 *   // guest RAM = the host's bytes [1 MiB, 2 MiB); DMA through an IOMMU domain lands there.
 *
 * See bindings/embed.ts for what "embedded" guarantees.
 */
import { createEmbeddedCore, fixedBytes, type EmbedOptions } from '../bindings/embed.js';
import { PhysicalMemory } from './memory/physical-memory.js';
import { Iommu } from './iommu/iommu.js';
import { DmaEngine } from './dma/dma-engine.js';
import type { Simulator } from './simulator.js';

export { createEmbeddedCore, fixedBytes, type EmbedOptions };
export { ABI, Core, CoreViews, check, check64, type CoreExports, type CoreLayout } from '../bindings/core.js';
export { SimError, CoreTrapError, ERRNO, errnoName, type ErrnoCode } from '../bindings/errors.js';
export type { Simulator } from './simulator.js';
export {
  PhysicalMemory, type Region, type RegionOptions, type RegionKind, type FrameInfo, type ArenaUsage,
} from './memory/physical-memory.js';
export {
  Iommu, IommuUnit, IommuDomain, Prot, type UnitOptions, type DomainOptions, type FaultRecord,
  type TranslateResult, type TranslateOptions, type PageRequest, type WalkResult, type WalkLevel, type UnitStats, type IommuFamily,
  type DomainType, type PgtableFormat, type Access, type FaultReason,
} from './iommu/iommu.js';
export { DmaEngine, type DmaEndpoint, type DmaResult, type DmaFault, type DmaStats } from './dma/dma-engine.js';
export { Machine, type MachineOptions } from './machine/machine.js';

/** The whole simulator API (memory, iommu, dma) on an embedded core. */
export async function createEmbeddedSimulator(options: EmbedOptions): Promise<Simulator> {
  const core = await createEmbeddedCore(options);
  return Object.freeze({
    core,
    memory: new PhysicalMemory(core),
    iommu: new Iommu(core),
    dma: new DmaEngine(core),
  });
}
