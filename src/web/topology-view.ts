/**
 * The topology of an act: an SVG tree (host bridges, root ports, switch ports, endpoints) with
 * the P2P decision of every endpoint pair drawn as an arc under the endpoints, and the same
 * decisions as a provider x client matrix. Every pair carries the kernel's reason as a tooltip
 * (<title>) and data-pair / data-map-type attributes.
 */
import type { TopologyJson } from '../pci/index.js';
import { h, s, MAP_TYPE_SHORT } from './dom.js';

type Dev = TopologyJson['devices'][number];
type Pair = NonNullable<TopologyJson['p2p']>[number];

interface TreeNode {
  id: string;
  label: string;
  sub: string;
  kind: string;
  title: string;
  children: TreeNode[];
  x: number;
  y: number;
}

const KIND_LABEL: Record<string, string> = {
  'host-bridge': 'host bridge', 'root-port': 'root port', 'switch-upstream': 'switch up',
  'switch-downstream': 'switch down', endpoint: 'endpoint', rciep: 'RCiEP',
};

function busOf(bdf: string): { seg: number; bus: number } {
  const [seg, bus] = bdf.split(':');
  return { seg: parseInt(seg ?? '0', 16), bus: parseInt(bus ?? '0', 16) };
}

function devNode(d: Dev): TreeNode {
  const bars = d.bars.filter((b) => b.type === 'mem').map((b) => `BAR${b.index} ${b.size} @ ${b.cpuAddress}`);
  const acs = d.acs ? `ACS ${d.acs.bits.join(' ') || '-'}${d.acs.redirect ? ' (redirect)' : ''}` : '';
  return {
    id: d.name, label: d.name, kind: d.kind,
    sub: d.kind === 'endpoint' || d.kind === 'rciep' ? d.driver ?? KIND_LABEL[d.kind]! : KIND_LABEL[d.kind] ?? d.kind,
    title: [`${d.name}  ${d.bdf}  ${KIND_LABEL[d.kind] ?? d.kind}  ${d.vendor.slice(2)}:${d.device.slice(2)}`, d.driver ? `driver ${d.driver}` : '', acs, ...bars].filter(Boolean).join('\n'),
    children: [], x: 0, y: 0,
  };
}

/** Host bridges as roots, each PCI function under its upstream bridge. */
function buildForest(t: TopologyJson): TreeNode[] {
  const byBdf = new Map<string, TreeNode>();
  for (const d of t.devices) byBdf.set(d.bdf, devNode(d));
  const roots = t.hostBridges.map((hb): TreeNode => ({
    id: hb.name, label: hb.name, kind: 'hb',
    sub: hb.whitelisted ? 'whitelisted' : 'not whitelisted',
    title: `host bridge ${hb.name}: segment ${hb.segment}, buses ${hb.busRange[0].toString(16)}-${hb.busRange[1].toString(16)}\n${hb.whitelisted ? `whitelisted (${hb.whitelistComment ?? ''})` : 'not in the P2PDMA whitelist'}`,
    children: [], x: 0, y: 0,
  }));
  for (const d of t.devices) {
    const n = byBdf.get(d.bdf)!;
    if (d.upstream && byBdf.has(d.upstream)) {
      byBdf.get(d.upstream)!.children.push(n);
      continue;
    }
    const { seg, bus } = busOf(d.bdf);
    const i = t.hostBridges.findIndex((hb) => hb.segment === seg && bus >= hb.busRange[0] && bus <= hb.busRange[1]);
    (roots[i] ?? roots[0])?.children.push(n);
  }
  // The host bridge's own function (hb0.dmi) says nothing the root node does not: fold it in.
  for (const r of roots) {
    const own = r.children.filter((c) => c.kind === 'host-bridge' && c.children.length === 0);
    if (own.length) {
      r.children = r.children.filter((c) => !own.includes(c));
      r.title += `\n${own.map((o) => o.title.split('\n')[0]).join('\n')}`;
    }
  }
  return roots;
}

const NODE_W = 92;
const NODE_H = 34;
const GAP_X = 14;
const ROW_H = 62;

const isEndpoint = (n: TreeNode): boolean => n.kind === 'endpoint' || n.kind === 'rciep';

/** Leaves in slots left to right, parents centred; endpoints all on the bottom row. */
function layout(roots: TreeNode[]): { width: number; depth: number } {
  let slot = 0;
  let depth = 0;
  const walk = (n: TreeNode, d: number): void => {
    depth = Math.max(depth, d);
    n.y = d;
    if (n.children.length === 0) {
      n.x = slot++;
      return;
    }
    for (const c of n.children) walk(c, d + 1);
    n.x = (n.children[0]!.x + n.children[n.children.length - 1]!.x) / 2;
  };
  roots.forEach((r, i) => {
    if (i > 0) slot += 0.35;
    walk(r, 0);
  });
  const bottom = (n: TreeNode): void => {
    if (isEndpoint(n) && n.children.length === 0) n.y = depth;
    n.children.forEach(bottom);
  };
  roots.forEach(bottom);
  return { width: slot, depth };
}

const all = (roots: TreeNode[]): TreeNode[] => roots.flatMap((r) => [r, ...all(r.children)]);

const pairKey = (p: Pair): string => `${p.provider}:${p.client}`;

function pairTitle(p: Pair): string {
  return `${p.provider} -> ${p.client}: ${p.mapType}, distance ${p.distance}\n${p.reason}${p.acsRedirect.length ? `\nACS redirect at ${p.acsRedirect.join(', ')}` : ''}`;
}

/** The tree with its P2P arcs; `focus` names the devices to outline (those an act uses), their pairs' arcs too. */
export function topologyGraph(t: TopologyJson, focus: ReadonlySet<string> = new Set()): SVGSVGElement {
  const roots = buildForest(t);
  const { width, depth } = layout(roots);
  const nodes = all(roots);
  const cx = (n: TreeNode): number => 10 + n.x * (NODE_W + GAP_X) + NODE_W / 2;
  const cy = (n: TreeNode): number => 10 + n.y * ROW_H + NODE_H / 2;
  const eps = nodes.filter((n) => isEndpoint(n));
  const pos = new Map(eps.map((n) => [n.id, n]));
  const pairs = (t.p2p ?? []).filter((p) => p.provider < p.client && pos.has(p.provider) && pos.has(p.client));
  const baseY = 10 + depth * ROW_H + NODE_H;
  const span = (p: Pair): number => Math.abs(pos.get(p.provider)!.x - pos.get(p.client)!.x);
  const maxSpan = Math.max(1, ...pairs.map(span));
  const arcDepth = 24 + maxSpan * 15;
  const W = 20 + width * (NODE_W + GAP_X) - GAP_X;
  const H = baseY + arcDepth + 12;

  const edges = nodes.flatMap((n) => n.children.map((c) => {
    const x1 = cx(n), y1 = cy(n) + NODE_H / 2, x2 = cx(c), y2 = cy(c) - NODE_H / 2;
    const my = y1 + 12;
    return s('path', { class: 'edge', d: `M${x1},${y1} V${my} H${x2} V${y2}` });
  }));

  // Arcs: deeper for wider spans, so they nest; the reverse direction's verdict goes in the tooltip.
  const arcs = [...pairs].sort((a, b) => span(b) - span(a)).map((p) => {
    const a = pos.get(p.provider)!, b = pos.get(p.client)!;
    const x1 = cx(a), x2 = cx(b);
    const dy = 18 + (span(p) / maxSpan) * (arcDepth - 24);
    const back = t.p2p?.find((q) => q.provider === p.client && q.client === p.provider);
    const title = back && back.mapType !== p.mapType ? `${pairTitle(p)}\n\n${pairTitle(back)}` : pairTitle(p);
    return s('path', {
      class: `arc mt-${p.mapType}${focus.has(p.provider) && focus.has(p.client) ? ' focus' : ''}`, 'data-arc': pairKey(p), 'data-map-type': p.mapType,
      d: `M${x1},${baseY} C${x1},${baseY + dy * 1.3} ${x2},${baseY + dy * 1.3} ${x2},${baseY}`,
    }, s('title', {}, title));
  });

  const boxes = nodes.map((n) => s('g', { class: `node k-${n.kind}${n.kind === 'hb' && n.sub === 'not whitelisted' ? ' hb-no' : ''}${focus.has(n.id) ? ' focus' : ''}`, 'data-node': n.id,
    ...(focus.has(n.id) ? { 'data-focus': 'true' } : {}), transform: `translate(${cx(n) - NODE_W / 2},${cy(n) - NODE_H / 2})` },
    s('title', {}, n.title),
    s('rect', { width: NODE_W, height: NODE_H, rx: 6 }),
    s('text', { x: NODE_W / 2, y: 14, class: 'label' }, n.label),
    s('text', { x: NODE_W / 2, y: 27, class: 'sub' }, n.sub),
  ));

  return s('svg', { class: 'topo', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'PCI topology and P2P decisions' },
    s('g', {}, edges), s('g', { class: 'arcs' }, arcs), s('g', {}, boxes));
}

/** Rows: providers (endpoints); columns: clients. */
export function p2pMatrix(t: TopologyJson): HTMLTableElement {
  const pairs = t.p2p ?? [];
  const providers = [...new Set(pairs.map((p) => p.provider))];
  const clients = [...new Set(pairs.map((p) => p.client))];
  const get = new Map(pairs.map((p) => [pairKey(p), p]));
  return h('table', { class: 'matrix' },
    h('caption', {}, 'P2P map type and distance (row = provider, column = client)'),
    h('thead', {}, h('tr', {}, h('th', { class: 'corner' }, 'provider \\ client'), clients.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, providers.map((pr) => h('tr', {}, h('th', { scope: 'row' }, pr), clients.map((c) => {
      const p = get.get(`${pr}:${c}`);
      if (!p) return h('td', {});
      if (pr === c) return h('td', { class: 'self', title: 'self' }, '·');
      return h('td', { class: `mt-${p.mapType}`, 'data-pair': pairKey(p), 'data-map-type': p.mapType, 'data-reason': p.reason, title: pairTitle(p) },
        `${MAP_TYPE_SHORT[p.mapType]}${p.mapType !== 'NOT_SUPPORTED' && p.distance >= 0 ? ` ${p.distance}` : ''}`);
    })))),
  );
}

export function p2pLegend(): HTMLElement {
  const item = (mt: string, text: string) => h('li', {}, h('span', { class: `swatch mt-${mt}` }, MAP_TYPE_SHORT[mt]!), ` ${mt}: ${text}`);
  return h('ul', { class: 'legend' },
    item('BUS_ADDR', 'a switch routes it; PCI bus addresses, no IOMMU'),
    item('THRU_HOST_BRIDGE', 'through the root complex; mapped with the DMA API'),
    item('NOT_SUPPORTED', 'no P2P'),
  );
}
