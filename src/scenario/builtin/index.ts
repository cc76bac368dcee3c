/** Built-in topologies and scenarios. */
import type { TopologyDescription } from '../../index.js';
import { SEED_TOPOLOGY, SEED_VFIO_TOPOLOGY } from './seed-topology.js';

export { SEED_TOPOLOGY, SEED_VFIO_TOPOLOGY };

/** `topology: builtin:<name>` in a scenario; `builtin` alone is `builtin:seed`. */
export const BUILTIN_TOPOLOGIES: Readonly<Record<string, TopologyDescription>> = { seed: SEED_TOPOLOGY, 'seed-vfio': SEED_VFIO_TOPOLOGY };

export { SEED_SCENARIO, SEED_SCENARIO_FILE } from './seed-scenario.js';
export { VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE } from './viommu-scenario.js';
