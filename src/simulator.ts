/** createSimulator: one core instance with its physical memory, IOMMU and DMA engine. */
import { Core, type CoreBuild } from '../bindings/core.js';
import { SimError } from '../bindings/errors.js';
import { PhysicalMemory } from './memory/physical-memory.js';
import { Iommu } from './iommu/iommu.js';
import { DmaEngine } from './dma/dma-engine.js';

export interface SimulatorOptions {
  /**
   * Bytes of linear memory for backing, radix nodes, frame records, IOTLBs and rings; a
   * multiple of 4 KiB, 1 MiB .. 3.5 GiB. Emulated memory costs only what is written.
   * @default 256 MiB
   */
  arenaBytes?: number;
  /** Which Wasm build to run. @default DMABUF_SIM_WASM or 'release' */
  build?: CoreBuild;
}

export interface Simulator {
  readonly memory: PhysicalMemory;
  readonly iommu: Iommu;
  readonly dma: DmaEngine;
  /** @internal The core instance, for layers of this package. */
  readonly core: Core;
}

export async function createSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const arena = options.arenaBytes ?? 256 * 1024 * 1024;
  if (!Number.isInteger(arena) || arena < 1 << 20 || arena > 3.5 * 2 ** 30 || arena % 4096 !== 0) {
    throw new SimError('EINVAL', 'createSimulator', `arenaBytes = ${arena} must be a multiple of 4096 in 1 MiB..3.5 GiB`);
  }
  const core = await Core.create(arena, options.build);
  return Object.freeze({
    core,
    memory: new PhysicalMemory(core),
    iommu: new Iommu(core),
    dma: new DmaEngine(core),
  });
}
