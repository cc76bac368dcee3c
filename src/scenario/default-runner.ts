/** The runner the CLI uses: the generic ops plus the driver-backed ops of the seed story. */
import { ScenarioRunner, type RunnerOptions } from './runner.js';
import { registerDriverOps } from './driver-ops.js';

export function createDefaultRunner(opts: RunnerOptions = {}): ScenarioRunner {
  return registerDriverOps(new ScenarioRunner(opts));
}
