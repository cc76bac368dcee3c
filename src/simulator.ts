/** createSimulator: one core instance with its physical memory, IOMMU and DMA engine. */
import { ABI, Core, type CoreBuild } from '../bindings/core.js';
import { SimError } from '../bindings/errors.js';
import { objArg, oneOf, show } from './util/args.js';
import { PhysicalMemory } from './memory/physical-memory.js';
import { Iommu } from './iommu/iommu.js';
import { DmaEngine } from './dma/dma-engine.js';

/**
 * What one simulator holds at most (the core's fixed tables): regions of physical memory, the
 * bytes of one region, IOMMU units. A Machine takes two regions for system RAM and one per
 * memory BAR; the scenario validator checks topologies against these.
 */
export const SIMULATOR_LIMITS = Object.freeze({
  regions: ABI.MAX_REGIONS,
  regionBytes: 1n << BigInt(ABI.REGION_MAX_SHIFT),
  iommuUnits: ABI.MAX_UNITS,
});

/** Options of {@link createSimulator}. */
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

/** One simulator: a core instance and the three layers over it. Simulators share nothing. */
export interface Simulator {
  /** Physical address space: regions, page frames, the CPU's own access. */
  readonly memory: PhysicalMemory;
  /** IOMMU units, domains, mappings, translation and faults. */
  readonly iommu: Iommu;
  /** The DMA engine: device reads, writes and copies through the IOMMU. */
  readonly dma: DmaEngine;
  /** @internal The core instance, for layers of this package. */
  readonly core: Core;
}

/**
 * Creates a simulator on a fresh core instance (the Wasm module is compiled once per process).
 * A {@link Machine} builds one of these for itself; use this directly for the core layers alone.
 * @throws {@link SimError} EINVAL (the promise rejects) when `arenaBytes` is not a multiple of
 *   4096 in 1 MiB..3.5 GiB; ENOMEM when linear memory cannot grow to hold the arena.
 */
export async function createSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const op = 'createSimulator';
  objArg(op, 'options', options);
  const arena = options.arenaBytes ?? 256 * 1024 * 1024;
  if (typeof arena !== 'number' || !Number.isInteger(arena) || arena < 1 << 20 || arena > 3.5 * 2 ** 30 || arena % 4096 !== 0) {
    throw new SimError('EINVAL', op, `arenaBytes = ${show(arena)} must be a multiple of 4096 in 1 MiB..3.5 GiB`);
  }
  if (options.build !== undefined) oneOf(op, 'build', options.build, ['debug', 'release'] as const);
  const core = await Core.create(arena, options.build);
  return Object.freeze({
    core,
    memory: new PhysicalMemory(core),
    iommu: new Iommu(core),
    dma: new DmaEngine(core),
  });
}
