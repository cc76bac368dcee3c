/** The runner the CLI uses: the generic ops plus the driver-backed ops of the seed story. */
import { ScenarioRunner, type RunnerOptions } from './runner.js';
import { registerDriverOps } from './driver-ops.js';
import { registerIommufdOps } from './iommufd-ops.js';

/**
 * A {@link ScenarioRunner} with every op of the seed story registered: the generic ops plus
 * the ones backed by the reference drivers. What `dmabuf-sim run` uses.
 */
export function createDefaultRunner(opts: RunnerOptions = {}): ScenarioRunner {
  return registerIommufdOps(registerDriverOps(new ScenarioRunner(opts)));
}
