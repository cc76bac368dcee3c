/**
 * Topologies as scenarios and `dmabuf-sim topo` take them: the built-in seed machine, a JSON
 * (or YAML) file, or a description inline in a scenario. A bad description is a diagnostic at
 * the line and column of the field that parseTopology names.
 */
import { SimError } from '../index.js';
import { parseTopology, type Topology, type TopologyDescription } from '../index.js';
import { BUILTIN_TOPOLOGIES } from './builtin/index.js';
import { type Diagnostic, parsePath, type Path, ScenarioError, SourceDoc, formatPath } from './source.js';

/** A topology as a scenario act uses it: where it came from, its description and the built topology. */
export interface LoadedTopology {
  /** 'builtin:seed', a file name, or `<scenario file> (inline)`. */
  source: string;
  /** The description it was built from. */
  description: TopologyDescription;
  /** The enumerated topology. */
  topology: Topology;
}

/** Reads a file's text; the CLI gives node:fs, a browser its own. Throws for a missing file. */
export type ReadText = (file: string) => string;

/** Names `topology:` may take for a built-in machine. */
export function builtinTopologyName(ref: string): string | undefined {
  const m = /^builtin(?::(.+))?$/.exec(ref.trim());
  if (!m) return undefined;
  return m[1] ?? 'seed';
}

/**
 * Builds a topology from a description found at `path` in `doc`; a parseTopology error
 * becomes a diagnostic pointing at the field it names (returned, not thrown).
 */
export function topologyFromDoc(doc: SourceDoc, path: Path, value: unknown, source: string): LoadedTopology | Diagnostic {
  // What `dmabuf-sim topo --json` prints: the description it was built from, under `description`.
  if (isTopoJson(value)) return topologyFromDoc(doc, [...path, 'description'], value.description, source);
  try {
    const topology = parseTopology(value);
    return { source, description: value as TopologyDescription, topology };
  } catch (e) {
    if (!(e instanceof SimError)) throw e;
    const m = /^(?:parseTopology|buildTopology): EINVAL: (.*?): (.*)$/s.exec(e.message);
    if (!m) return doc.diag(path, e.message);
    const sub = m[1] === '(top level)' ? [] : parsePath(m[1]!);
    const full = [...path, ...sub];
    const problem = m[2]!;
    return doc.diag(full, problem, /^unknown field/.test(problem) ? 'key' : 'value');
  }
}

/** The output of `topo --json`: an analysis with the input description inside. */
function isTopoJson(v: unknown): v is { description: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'description' in v && 'p2p' in v && 'devices' in v;
}

/**
 * A built-in topology by name.
 * @throws {@link ScenarioError} naming the built-in topologies when there is none of that name.
 */
export function builtinTopology(name: string): LoadedTopology {
  const description = BUILTIN_TOPOLOGIES[name];
  if (!description) {
    throw new ScenarioError([{ file: `builtin:${name}`, path: '', message: `no built-in topology '${name}' (built-in: ${Object.keys(BUILTIN_TOPOLOGIES).join(', ')})` }]);
  }
  return { source: `builtin:${name}`, description, topology: parseTopology(description) };
}

/**
 * Reads and builds a topology file (JSON or YAML).
 * @throws {@link ScenarioError} naming the file, line and field: unreadable file, syntax error or bad description.
 */
export function loadTopologyFile(file: string, read: ReadText): LoadedTopology {
  let text: string;
  try {
    text = read(file);
  } catch (e) {
    throw new ScenarioError([{ file, path: '', message: `cannot read the file: ${readProblem(e)}` }]);
  }
  const doc = SourceDoc.parse(text, file);
  const r = topologyFromDoc(doc, [], doc.value, file);
  if ('topology' in r) return r;
  throw new ScenarioError([r]);
}

/** 'no such file' etc. from a Node fs error, or the message. */
export function readProblem(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'EACCES') return 'permission denied';
  return e instanceof Error ? e.message : String(e);
}

export { formatPath };
