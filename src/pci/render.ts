/**
 * Views of a topology for people and programs: a tree in the spirit of `lspci -tv`, a
 * pairwise matrix of P2P map type and distance in the spirit of `nvidia-smi topo -m`, and a
 * JSON form for the web page.
 */
import { acsBitNames } from './acs.js';
import { type P2pdma, type P2pMapType, type P2pPairResult } from './p2pdma.js';
import type { Bar, Device, PciFunction, PciKind, Topology } from './topology.js';
import { cpuSupportsP2pdma, findWhitelistEntry, hostBridgeDev } from './whitelist.js';

const hx = (n: number, w: number): string => n.toString(16).padStart(w, '0');
const hexb = (v: bigint): string => `0x${v.toString(16)}`;

/** 4096n -> '4K', 1n << 34n -> '16G'; other values in hex. */
export function formatSize(v: bigint): string {
  for (const [unit, shift] of [['T', 40n], ['G', 30n], ['M', 20n], ['K', 10n]] as const) {
    if (v >= 1n << shift && v % (1n << shift) === 0n) return `${v >> shift}${unit}`;
  }
  return v < 1024n ? `${v}` : hexb(v);
}

const KIND_LABEL: Record<PciKind, string> = {
  'host-bridge': 'host bridge',
  'root-port': 'root port',
  'switch-upstream': 'switch upstream port',
  'switch-downstream': 'switch downstream port',
  endpoint: 'endpoint',
  rciep: 'root complex integrated endpoint',
};

function barText(b: Bar): string {
  if (b.type === 'io') return `BAR${b.index} io ${formatSize(b.size)} @ ports ${hexb(b.cpuAddress)}`;
  const kind = `${b.is64 ? 'mem64' : 'mem32'}${b.prefetchable ? ' pref' : ''}`;
  const bus = b.busOffset === 0n ? '' : ` (bus ${hexb(b.busAddress)})`;
  return `BAR${b.index} ${kind} ${formatSize(b.size)} @ ${hexb(b.cpuAddress)}${bus}`;
}

function fnLine(f: PciFunction): string {
  const parts = [`${f.bdf} ${f.name}`, `${KIND_LABEL[f.kind]} ${f.ids}`];
  if (f.secondary !== null) parts.push(`[${hx(f.secondary, 2)}-${hx(f.subordinate!, 2)}]`);
  if (f.acsCtrl !== null) {
    const bits = acsBitNames(f.acsCtrl);
    parts.push(`ACS ${bits.length ? bits.join(' ') : '-'}${f.acsRedirect ? ' (redirect)' : ''}`);
  }
  if (f.driver) parts.push(`driver ${f.driver}`);
  return parts.join('  ');
}

/** The topology as an indented tree, one device (and one BAR) per line. */
export function renderTopologyTree(topo: Topology): string {
  const out: string[] = [];
  const cpu = topo.cpu;
  out.push(`CPU: ${cpu.vendor} family 0x${cpu.family.toString(16)}${cpuSupportsP2pdma(cpu) ? ' (AMD Zen or newer: P2P through the host bridge allowed)' : ''}`);
  const walk = (devs: readonly PciFunction[], indent: string): void => {
    devs.forEach((f, i) => {
      const last = i === devs.length - 1;
      out.push(`${indent}${last ? '\\-' : '+-'} ${fnLine(f)}`);
      const inner = indent + (last ? '   ' : '|  ');
      for (const b of f.bars) out.push(`${inner}${f.secondaryBus?.devices.length ? '|' : ' '}    ${barText(b)}`);
      if (f.secondaryBus) walk(f.secondaryBus.devices, inner);
    });
  };
  for (const hb of topo.hostBridges) {
    const [lo, hi] = hb.busRange;
    const dev = hostBridgeDev(hb);
    let wl: string;
    if (!dev) wl = 'whitelist: no 00.0 device or root port first on the root bus';
    else {
      const e = findWhitelistEntry(dev.vendor, dev.device);
      wl = e ? `whitelisted ${dev.ids} (${e.comment}${e.flags ? ', same host bridge only' : ''})` : `not whitelisted (${dev.ids})`;
    }
    const off = hb.busOffset === 0n ? '' : `, bus offset ${hb.busOffset < 0n ? '-' : ''}${hexb(hb.busOffset < 0n ? -hb.busOffset : hb.busOffset)}`;
    out.push(`[${hx(hb.segment, 4)}:${hx(lo, 2)}-${hx(hi, 2)}] host bridge ${hb.name}: ${wl}${off}`);
    walk(hb.rootBus.devices, '');
  }
  if (topo.platformDevices.length > 0) {
    out.push('platform devices:');
    for (const p of topo.platformDevices) {
      out.push(`  ${p.name}${p.parent ? `  (parent ${p.parent.name}${p.parent.busType === 'pci' ? ` ${p.parent.devName}` : ''})` : '  (no parent)'}`);
    }
  }
  return out.join('\n') + '\n';
}

const ABBR: Record<P2pMapType, string> = { BUS_ADDR: 'BUS', THRU_HOST_BRIDGE: 'HB', NOT_SUPPORTED: 'NS' };

function cell(r: P2pPairResult): string {
  if (r.provider === r.client) return 'X';
  if (r.mapType === 'NOT_SUPPORTED') return r.distance < 0 ? 'NS' : `NS`;
  return `${ABBR[r.mapType]} ${r.distance}`;
}

/**
 * Rows are providers (PCI endpoints), columns are clients (PCI endpoints, then platform
 * devices). Computed without touching the provider caches or the log.
 */
export function renderP2pMatrix(topo: Topology, p2pdma: P2pdma): string {
  const rows = topo.endpoints();
  const cols: Device[] = [...rows, ...topo.platformDevices];
  const first = Math.max(8, ...rows.map((r) => r.name.length)) + 2;
  const widths = cols.map((c) => Math.max(6, c.name.length) + 2);
  const pad = (s: string, w: number): string => s.padEnd(w);
  const out: string[] = [];
  out.push(pad('', first) + cols.map((c, i) => pad(c.name, widths[i]!)).join('').trimEnd());
  for (const r of rows) {
    out.push(pad(r.name, first) + cols.map((c, i) => pad(cell(p2pdma.decide(r, c)), widths[i]!)).join('').trimEnd());
  }
  out.push('');
  out.push('Legend (row = provider, column = client; the number is pci_p2pdma_distance):');
  out.push('  X   = self');
  out.push('  BUS = BUS_ADDR: a switch routes the traffic; DMA uses PCI bus addresses, no IOMMU');
  out.push('  HB  = THRU_HOST_BRIDGE: through the root complex; map with the DMA API (IOMMU)');
  out.push('  NS  = NOT_SUPPORTED: no P2P (distance -1)');
  return out.join('\n') + '\n';
}

/**
 * What {@link topologyToJson} returns: the topology (and, given a P2pdma, every provider/client
 * decision) with bigints as hex strings, for `--json` output and the web view.
 */
export interface TopologyJson {
  cpu: { vendor: string; family: number; supportsP2pdma: boolean };
  hostBridges: Array<{
    name: string;
    segment: number;
    busRange: [number, number];
    busOffset: string;
    whitelistDevice: string | null;
    whitelisted: boolean;
    whitelistComment: string | null;
    sameHostBridgeOnly: boolean;
  }>;
  devices: Array<{
    name: string;
    bdf: string;
    kind: PciKind;
    vendor: string;
    device: string;
    upstream: string | null;
    secondary: number | null;
    subordinate: number | null;
    acs: { ctrl: number; bits: string[]; redirect: boolean } | null;
    driver: string | null;
    bars: Array<{ index: number; type: string; size: string; is64: boolean; prefetchable: boolean; cpuAddress: string; busAddress: string }>;
  }>;
  platformDevices: Array<{ name: string; parent: string | null; driver: string | null }>;
  p2p?: Array<{ provider: string; client: string; mapType: P2pMapType; distance: number; acsRedirect: string[]; hostBridge: string; reason: string }>;
}

/** A JSON-ready view (bigints as hex strings). With a P2pdma, every provider/client pair too. */
export function topologyToJson(topo: Topology, p2pdma?: P2pdma): TopologyJson {
  const json: TopologyJson = {
    cpu: { vendor: topo.cpu.vendor, family: topo.cpu.family, supportsP2pdma: cpuSupportsP2pdma(topo.cpu) },
    hostBridges: topo.hostBridges.map((hb) => {
      const dev = hostBridgeDev(hb);
      const e = dev ? findWhitelistEntry(dev.vendor, dev.device) : undefined;
      return {
        name: hb.name, segment: hb.segment, busRange: [hb.busRange[0], hb.busRange[1]],
        busOffset: hb.busOffset < 0n ? `-${hexb(-hb.busOffset)}` : hexb(hb.busOffset),
        whitelistDevice: dev?.bdf ?? null, whitelisted: !!e, whitelistComment: e?.comment ?? null, sameHostBridgeOnly: !!e && e.flags !== 0,
      };
    }),
    devices: topo.functions.map((f) => ({
      name: f.name, bdf: f.bdf, kind: f.kind, vendor: `0x${hx(f.vendor, 4)}`, device: `0x${hx(f.device, 4)}`,
      upstream: f.upstream?.bdf ?? null, secondary: f.secondary, subordinate: f.subordinate,
      acs: f.acsCtrl === null ? null : { ctrl: f.acsCtrl, bits: acsBitNames(f.acsCtrl), redirect: f.acsRedirect },
      driver: f.driver,
      bars: f.bars.map((b) => ({
        index: b.index, type: b.type, size: hexb(b.size), is64: b.is64, prefetchable: b.prefetchable,
        cpuAddress: hexb(b.cpuAddress), busAddress: hexb(b.busAddress),
      })),
    })),
    platformDevices: topo.platformDevices.map((p) => ({ name: p.name, parent: p.parent?.name ?? null, driver: p.driver })),
  };
  if (p2pdma) {
    const clients: Device[] = [...topo.endpoints(), ...topo.platformDevices];
    json.p2p = topo.endpoints().flatMap((p) =>
      clients.map((c) => {
        const r = p2pdma.decide(p, c);
        return { provider: p.name, client: c.name, mapType: r.mapType, distance: r.distance, acsRedirect: r.acsRedirect.map((d) => d.bdf), hostBridge: r.hostBridge, reason: r.reason };
      }),
    );
  }
  return json;
}
