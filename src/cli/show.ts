/**
 * `dmabuf-sim show <name>`: the built-in scenario and topologies as files a user can save and
 * edit. Each carries the JSON Schema the package ships (docs/schema), so an editor completes
 * fields: a `$schema` key in JSON, a yaml-language-server modeline in YAML. The paths are those
 * of a project that has dmabuf-sim installed in node_modules.
 */
import { BUILTIN_TOPOLOGIES, SEED_SCENARIO, VIOMMU_SCENARIO } from '../scenario/builtin/index.js';

export const SCHEMA_DIR = 'node_modules/dmabuf-sim/docs/schema';

export interface Builtin {
  doc: string;
  text: () => string;
}

const topology = (name: string) => (): string =>
  JSON.stringify({ $schema: `./${SCHEMA_DIR}/topology.schema.json`, ...BUILTIN_TOPOLOGIES[name] }, null, 2);

export const BUILTINS: Readonly<Record<string, Builtin>> = {
  seed: {
    doc: 'the seed scenario (YAML): the story `dmabuf-sim run` runs',
    text: () => `# yaml-language-server: $schema=./${SCHEMA_DIR}/scenario.schema.json\n${SEED_SCENARIO.trimEnd()}`,
  },
  viommu: {
    doc: 'the second built-in scenario (YAML): PASIDs, nested stage 1 over stage 2, page requests and dirty tracking through /dev/iommu (`run builtin:viommu`)',
    text: () => `# yaml-language-server: $schema=./${SCHEMA_DIR}/scenario.schema.json\n${VIOMMU_SCENARIO.trimEnd()}`,
  },
  ...Object.fromEntries(Object.keys(BUILTIN_TOPOLOGIES).map((n) => [`${n}-topology`, {
    doc: `the ${n} machine (topology JSON; scenarios name it topology: builtin:${n})`,
    text: topology(n),
  }])),
};

/** The text of a built-in, or undefined for an unknown name. */
export function showBuiltin(name: string): string | undefined {
  return Object.hasOwn(BUILTINS, name) ? BUILTINS[name]!.text() : undefined;
}
