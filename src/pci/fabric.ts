/**
 * Link and root-complex attributes of a topology, for the performance model (src/time): each
 * PCI function's link capability (generation, width, MPS, MRRS) and each host bridge's
 * peer-to-peer profile (the bandwidth its root complex gives a P2P stream between two root
 * ports, and the latency it adds). A topology description sets them under `fabric`:
 *
 *   "fabric": {
 *     "links": { "gaudi0": { "gen": 5, "width": 16 }, "rp1": { "gen": 3 } },
 *     "p2p": { "hb0": { "bandwidthGBps": 8, "latencyNs": 700 } }
 *   }
 *
 * Unset values take the defaults: DEFAULT_LINK for every function, and the host bridge's CPU
 * family profile (defaultP2pProfile) for the root complex. A link trains to the lower of its two
 * ends (the function and the port above it).
 */
import { SimError } from '../../bindings/errors.js';
import { checkLinkAttrs, DEFAULT_LINK, trainLink, type LinkAttrs } from '../time/pcie.js';
import type { HostBridge, PciFunction, Topology } from './topology.js';
import { findWhitelistEntry, hostBridgeDev, REQ_SAME_HOST_BRIDGE } from './whitelist.js';

/** A root complex's peer-to-peer behaviour: traffic between two of its root ports. */
export interface P2pProfile {
  /** Bytes per ns (= GB/s) the root complex forwards for one P2P stream. */
  bandwidthGBps: number;
  /** Nanoseconds it adds to a TLP crossing it (root port to root port, IOMMU lookup not included). */
  latencyNs: number;
  /** Where the figures come from ('measured: ...', 'assumed', 'topology file'). */
  source: string;
}

/** The `fabric` part of a topology description. */
export interface FabricDescription {
  /** Link capability per function name (endpoints, switch ports, root ports). */
  links?: Record<string, Partial<LinkAttrs>>;
  /** P2P profile per host bridge name. */
  p2p?: Record<string, { bandwidthGBps?: number; latencyNs?: number }>;
}

/** Checked `fabric`: names not yet resolved (buildTopology checks them). */
export interface FabricSpec {
  links: Map<string, LinkAttrs>;
  p2p: Map<string, { bandwidthGBps?: number; latencyNs?: number }>;
}

const OP = 'parseTopology';

/** Checks a `fabric` value; EINVAL naming the field. */
export function normalizeFabric(v: unknown, path = 'fabric'): FabricSpec {
  const spec: FabricSpec = { links: new Map(), p2p: new Map() };
  if (v === undefined) return spec;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SimError('EINVAL', OP, `${path}: expected an object { links, p2p }`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'links' && k !== 'p2p') throw new SimError('EINVAL', OP, `${path}.${k}: unknown field (expected links, p2p)`);
  const map = (x: unknown, p: string): Record<string, unknown> => {
    if (x === undefined) return {};
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new SimError('EINVAL', OP, `${p}: expected an object keyed by name`);
    return x as Record<string, unknown>;
  };
  for (const [name, l] of Object.entries(map(o.links, `${path}.links`))) spec.links.set(name, checkLinkAttrs(OP, `${path}.links.${name}`, l));
  for (const [name, p] of Object.entries(map(o.p2p, `${path}.p2p`))) {
    const pp = `${path}.p2p.${name}`;
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new SimError('EINVAL', OP, `${pp}: expected { bandwidthGBps, latencyNs }`);
    const out: { bandwidthGBps?: number; latencyNs?: number } = {};
    for (const [k, x] of Object.entries(p as Record<string, unknown>)) {
      if (k !== 'bandwidthGBps' && k !== 'latencyNs') throw new SimError('EINVAL', OP, `${pp}.${k}: unknown field (expected bandwidthGBps, latencyNs)`);
      const ok = typeof x === 'number' && Number.isFinite(x) && (k === 'latencyNs' ? x >= 0 && Number.isInteger(x) : x > 0);
      if (!ok) throw new SimError('EINVAL', OP, `${pp}.${k}: ${JSON.stringify(x)} must be ${k === 'latencyNs' ? 'a non-negative integer' : 'a positive number'}`);
      out[k] = x as number;
    }
    spec.p2p.set(name, out);
  }
  return spec;
}

/** Every name in `spec` must be a PCI function (links) or a host bridge (p2p) of `topo`. */
export function checkFabricNames(topo: Topology, spec: FabricSpec): void {
  for (const name of spec.links.keys()) {
    if (!topo.functions.some((f) => f.name === name)) throw new SimError('EINVAL', OP, `fabric.links.${name}: no PCI function named '${name}'`);
  }
  for (const name of spec.p2p.keys()) {
    if (!topo.hostBridges.some((h) => h.name === name)) throw new SimError('EINVAL', OP, `fabric.p2p.${name}: no host bridge named '${name}'`);
  }
}

/**
 * The default P2P profile of a root complex, by the CPU family the P2PDMA whitelist names (see
 * docs/performance-model.md for the sources; 'assumed' marks figures no public measurement pins).
 */
export function defaultP2pProfile(topo: Topology, hb: HostBridge): P2pProfile {
  const cpu = topo.cpu;
  if (cpu.vendor === 'amd' && cpu.family >= 0x17) {
    // Dual-socket EPYC (Zen 4/5), Gen5 x16 GPUs: ~51-56 GB/s P2P writes between root ports.
    return { bandwidthGBps: 51, latencyNs: 400, source: 'measured: EPYC Turin cross-root-port P2P writes, ~51 GB/s' };
  }
  const host = hostBridgeDev(hb);
  const entry = host ? findWhitelistEntry(host.vendor, host.device) : undefined;
  if (entry) {
    if (entry.flags & REQ_SAME_HOST_BRIDGE) return { bandwidthGBps: 6, latencyNs: 800, source: `assumed (${entry.comment})` };
    if (entry.comment.startsWith('Intel')) return { bandwidthGBps: 10, latencyNs: 600, source: `assumed (${entry.comment})` };
    return { bandwidthGBps: 25, latencyNs: 500, source: `assumed (${entry.comment})` };
  }
  // Not whitelisted: the kernel refuses P2P through it; a forced transfer gets a poor figure.
  return { bandwidthGBps: 4, latencyNs: 1000, source: 'assumed (root complex not in the P2PDMA whitelist)' };
}

/** A host bridge's P2P profile: the topology file's values over the CPU family default. */
export function p2pProfileOf(topo: Topology, hb: HostBridge): P2pProfile {
  const d = defaultP2pProfile(topo, hb);
  const o = topo.fabric.p2p.get(hb.name);
  if (!o) return d;
  return { bandwidthGBps: o.bandwidthGBps ?? d.bandwidthGBps, latencyNs: o.latencyNs ?? d.latencyNs, source: 'topology file' };
}

/** A function's own link capability (its `fabric.links` entry, or DEFAULT_LINK). */
export function linkCapability(topo: Topology, fn: PciFunction): LinkAttrs {
  return topo.fabric.links.get(fn.name) ?? DEFAULT_LINK;
}

/**
 * The trained link above `fn` (to the port its bus hangs from), or null for a function on a
 * root bus (root ports and RCiEPs reach the root complex without a link).
 */
export function upstreamLink(topo: Topology, fn: PciFunction): LinkAttrs | null {
  const port = fn.bus.self;
  // A switch's downstream ports hang from its upstream port by the switch's internal bus.
  if (!port || fn.kind === 'switch-downstream') return null;
  return trainLink(linkCapability(topo, fn), linkCapability(topo, port));
}
