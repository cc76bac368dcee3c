/**
 * `dmabuf-sim topo [file|-] [--json]`: a topology's tree and its pairwise P2P matrix (map type
 * and distance; with --json every pair's decision with the kernel's reason, and the description
 * it was built from, so that the output is a topology file again). Without a file, the built-in
 * seed machine.
 */
import { P2pdma, renderP2pMatrix, renderTopologyTree, topologyToJson } from '../pci/index.js';
import { SourceDoc, ScenarioError } from '../scenario/source.js';
import {
  builtinTopology, builtinTopologyName, loadTopologyFile, readProblem, topologyFromDoc, type LoadedTopology, type ReadText,
} from '../scenario/topology-source.js';

/** Loads `file` ('-' is standard input, builtin[:name] a built-in); throws ScenarioError for a bad file. */
export function loadTopologyArg(file: string | undefined, read: ReadText): LoadedTopology {
  if (file === undefined) return builtinTopology('seed');
  if (file === '-') {
    let text: string;
    try {
      text = read('-');
    } catch (e) {
      throw new ScenarioError([{ file: '<stdin>', path: '', message: `cannot read standard input: ${readProblem(e)}` }]);
    }
    const doc = SourceDoc.parse(text, '<stdin>', /^\s*[{[]/.test(text) ? 'json' : 'yaml');
    const r = topologyFromDoc(doc, [], doc.value, '<stdin>');
    if ('topology' in r) return r;
    throw new ScenarioError([r]);
  }
  const name = builtinTopologyName(file);
  return name !== undefined ? builtinTopology(name) : loadTopologyFile(file, read);
}

export function topoText(t: LoadedTopology): string {
  const p2p = new P2pdma(t.topology);
  return [
    `topology: ${t.source}`,
    '',
    renderTopologyTree(t.topology),
    'P2P map type and distance:',
    renderP2pMatrix(t.topology, p2p),
  ].join('\n');
}

export function topoJson(t: LoadedTopology): string {
  const j = topologyToJson(t.topology, new P2pdma(t.topology));
  const { $schema: _, ...description } = t.description as unknown as Record<string, unknown>;
  return JSON.stringify({ source: t.source, ...j, description }, null, 2) + '\n';
}
