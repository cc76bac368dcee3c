/**
 * Runs a scenario in the page: the report, the trace, and on demand a machine as it stood after
 * a given step of an act (for the page-table view). The runner is the CLI's (createDefaultRunner);
 * a machine "after step N" comes from running that act's first N steps again on a fresh runner
 * and keeping its machine (the onActEnd hook hands it over). Runs are deterministic, so that
 * machine is the one the full run had at that point.
 */
import { createDefaultRunner, parseScenario, type RunReport, type Scenario } from '../scenario/index.js';
import { SEED_SCENARIO, SEED_SCENARIO_FILE, VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE } from '../scenario/builtin/index.js';
import type { TraceFile } from '../trace/index.js';
import type { Machine } from '../machine/machine.js';
import type { IommuDomain } from '../iommu/iommu.js';

export interface BuiltinScenario {
  name: string;
  file: string;
  text: string;
}

export const BUILTIN_SCENARIOS: readonly BuiltinScenario[] = [
  { name: 'seed', file: SEED_SCENARIO_FILE, text: SEED_SCENARIO },
  { name: 'viommu', file: VIOMMU_SCENARIO_FILE, text: VIOMMU_SCENARIO },
];

export interface PageRun {
  scenario: Scenario;
  report: RunReport;
  trace: TraceFile;
  /** Milliseconds the run took. */
  ms: number;
}

/** Arena per machine: the seed scenario needs a few MiB of page tables and buffers. */
const ARENA_BYTES = 64 << 20;

export function parse(text: string, file: string): Scenario {
  return parseScenario(text, file, { format: /^\s*[{[]/.test(text) ? 'json' : 'yaml' });
}

export async function runScenario(scenario: Scenario): Promise<PageRun> {
  const t0 = performance.now();
  const runner = createDefaultRunner({ arenaBytes: ARENA_BYTES });
  const report = await runner.run(scenario);
  return { scenario, report, trace: runner.trace.toJSON({ scenario: scenario.name, file: scenario.file }), ms: performance.now() - t0 };
}

/** Machines after a step, kept for the last few questions (each holds a Wasm memory). */
export class MachineSnapshots {
  private readonly _cache = new Map<string, Promise<Machine>>();

  constructor(private readonly _scenario: Scenario, private readonly _keep = 4) {}

  /** The machine of act `act` (0-based) after its first `steps` steps. */
  after(act: number, steps: number): Promise<Machine> {
    const key = `${act}:${steps}`;
    let m = this._cache.get(key);
    if (!m) {
      m = this._build(act, steps);
      this._cache.set(key, m);
      while (this._cache.size > this._keep) this._cache.delete(this._cache.keys().next().value!);
    } else {
      this._cache.delete(key);
      this._cache.set(key, m);
    }
    return m;
  }

  private async _build(act: number, steps: number): Promise<Machine> {
    const a = this._scenario.acts[act];
    if (!a) throw new Error(`no act ${act + 1}`);
    const runner = createDefaultRunner({ arenaBytes: ARENA_BYTES });
    let machine: Machine | null = null;
    runner.onActEnd((ctx) => {
      machine = ctx.machine;
    });
    await runner.run({ ...this._scenario, acts: [{ ...a, steps: a.steps.slice(0, steps) }] });
    if (!machine) throw new Error(`act ${act + 1} could not start`);
    return machine;
  }
}

/**
 * Endpoints of a machine with a paging or nested IOMMU domain: the DMA API's default domain, or
 * what a user (iommufd) attached the device to.
 */
export function pagingDomains(machine: Machine): { device: string; domain: IommuDomain }[] {
  if (!machine.iommu) return [];
  const out: { device: string; domain: IommuDomain }[] = [];
  for (const fn of machine.topology.endpoints()) {
    const d = deviceDomain(machine, machine.rid(fn));
    if (d) out.push({ device: fn.name, domain: d });
    else if (d === undefined) {
      // Not attached yet: the DMA API's default domain (made on first use).
      const dd = machine.dmaDevice(fn).domain;
      if (dd !== 'direct' && dd.type === 'paging') out.push({ device: fn.name, domain: dd });
    }
  }
  return out;
}

/**
 * The paging or nested domain requests of `rid` go through (with `pasid`: that PASID's), null
 * when attached to none of those, undefined when not attached at all.
 */
export function deviceDomain(machine: Machine, rid: number, pasid?: number): IommuDomain | null | undefined {
  const iommu = machine.sim.iommu;
  if (pasid !== undefined) {
    try {
      return iommu.pasidDomain(rid, pasid);
    } catch {
      return null;
    }
  }
  let id: number | 'direct' | null;
  try {
    id = iommu.domainOf(rid);
  } catch {
    return undefined;
  }
  if (id === null) return undefined;
  if (id === 'direct') return null;
  for (const u of machine.units()) {
    for (const d of u.domains()) if (d.id === id) return d.type === 'paging' || d.type === 'nested' ? d : null;
  }
  return null;
}
