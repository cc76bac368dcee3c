/**
 * `dmabuf-sim sweep [FROM TO] [--topology FILE] [--iommu vtd|smmuv3|none] [--lazy] [--min SIZE]
 * [--max SIZE] [--factor N] [--json]`: bandwidth and latency of DMA between two devices on the
 * virtual clock, size by size (like ib_write_bw), or without FROM and TO the matrix of every
 * pair of endpoints with a memory BAR (like p2pBandwidthLatencyTest): the rate of a `--max`
 * transfer and the time of a `--min` one. Each cell is a fresh machine, so no pair's IOTLB or
 * clock affects another's.
 */
import { SimError } from '../../bindings/errors.js';
import type { IommuFamily } from '../iommu/iommu.js';
import { Machine } from '../machine/machine.js';
import type { TopologyDescription } from '../pci/index.js';
import { formatNs } from '../time/model.js';
import { renderSweep, runSweep, type SweepResult, sweepSizes } from '../time/sweep.js';

export interface SweepCliOptions {
  topology: TopologyDescription;
  /** Where the topology came from, for the header. */
  source: string;
  iommu: IommuFamily | null;
  strict: boolean;
  from?: string;
  to?: string;
  min: bigint;
  max: bigint;
  factor: number;
}

/** A size on the command line: 4096, 4K, 64M, 1G, 0x1000. EINVAL otherwise. */
export function parseSizeArg(name: string, text: string): bigint {
  const m = /^(0x[0-9a-f]+|\d+)([KMG]?)$/i.exec(text.trim());
  if (!m) throw new SimError('EINVAL', 'sweep', `${name} ${JSON.stringify(text)} is not a size (4096, 4K, 64M, 1G)`);
  const shift = { '': 0n, K: 10n, M: 20n, G: 30n }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return BigInt(m[1]!) << shift;
}

export interface SweepMatrix {
  /** Endpoints with a memory BAR, in topology order. */
  devices: string[];
  /** rows[from][to]: GB/s of a `max` transfer, null on the diagonal or when P2P is refused. */
  bandwidthGBps: (number | null)[][];
  /** ns of a `min` transfer. */
  latencyNs: (number | null)[][];
  mapType: (string | null)[][];
}

async function machine(o: SweepCliOptions): Promise<Machine> {
  // The bytes a sweep writes take arena chunks (sparse backing): room for --max and the tables.
  return Machine.create({ topology: o.topology, iommu: o.iommu ? { family: o.iommu, strict: o.strict } : null, arenaBytes: Number(o.max) + (64 << 20) });
}

/** One pair, every size. */
export async function sweepPair(o: SweepCliOptions): Promise<SweepResult> {
  return runSweep(await machine(o), { from: o.from!, to: o.to!, sizes: sweepSizes(o.min, o.max, o.factor) });
}

/** Every pair: bandwidth at `max`, latency at `min`. */
export async function sweepMatrix(o: SweepCliOptions): Promise<SweepMatrix> {
  const probe = await machine(o);
  const devices = probe.topology.endpoints().filter((f) => f.bars.some((b) => b.type === 'mem')).map((f) => f.name);
  const bw: (number | null)[][] = [];
  const lat: (number | null)[][] = [];
  const types: (string | null)[][] = [];
  for (const from of devices) {
    const b: (number | null)[] = [];
    const l: (number | null)[] = [];
    const t: (string | null)[] = [];
    for (const to of devices) {
      if (from === to) { b.push(null); l.push(null); t.push(null); continue; }
      try {
        const r = runSweep(await machine(o), { from, to, sizes: o.min === o.max ? [o.min] : [o.min, o.max] });
        b.push(Number(r.rows.at(-1)!.rateGBps.toFixed(2)));
        l.push(r.rows[0]!.durationNs);
        t.push(r.mapType);
      } catch (e) {
        if (!(e instanceof SimError)) throw e;
        b.push(null); l.push(null); t.push(e.code);
      }
    }
    bw.push(b); lat.push(l); types.push(t);
  }
  return { devices, bandwidthGBps: bw, latencyNs: lat, mapType: types };
}

const cell = (s: string, w: number): string => ` ${s.padStart(w - 1)}`;

/** The matrix as p2pBandwidthLatencyTest prints it: a bandwidth table, then a latency table. */
export function renderMatrix(m: SweepMatrix, o: SweepCliOptions): string[] {
  const w = Math.max(12, ...m.devices.map((d) => d.length + 2), ...m.mapType.flat().map((x) => (x ?? '').length + 2));
  const head = `${'from\\to'.padEnd(w)}${m.devices.map((d) => cell(d, w)).join('')}`;
  const out = [`Unidirectional DMA write bandwidth, ${o.max} bytes (GB/s); '-' = P2P refused (EOPNOTSUPP)`, head];
  m.devices.forEach((d, i) => out.push(`${d.padEnd(w)}${m.bandwidthGBps[i]!.map((x, j) => cell(i === j ? '' : x === null ? '-' : x.toFixed(2), w)).join('')}`));
  out.push('', `DMA write latency, ${o.min} bytes`, head);
  m.devices.forEach((d, i) => out.push(`${d.padEnd(w)}${m.latencyNs[i]!.map((x, j) => cell(i === j ? '' : x === null ? '-' : formatNs(x), w)).join('')}`));
  out.push('', 'map type', head);
  m.devices.forEach((d, i) => out.push(`${d.padEnd(w)}${m.mapType[i]!.map((x, j) => cell(i === j ? '' : x ?? '-', w)).join('')}`));
  return out;
}

/** The whole command's output: text or JSON. */
export async function sweepOutput(o: SweepCliOptions, json: boolean): Promise<string> {
  const iommu = o.iommu ? `${o.iommu} (${o.strict ? 'strict' : 'lazy'})` : 'none';
  if (o.from !== undefined) {
    const r = await sweepPair(o);
    if (json) return `${JSON.stringify({ topology: o.source, iommu: o.iommu, strict: o.strict, ...r }, null, 2)}\n`;
    return [`dmabuf-sim sweep on ${o.source}, IOMMU ${iommu}; virtual time (docs/performance-model.md)`, ...renderSweep(r)].join('\n') + '\n';
  }
  const m = await sweepMatrix(o);
  if (json) return `${JSON.stringify({ topology: o.source, iommu: o.iommu, strict: o.strict, min: Number(o.min), max: Number(o.max), ...m }, null, 2)}\n`;
  return [`dmabuf-sim sweep on ${o.source}, IOMMU ${iommu}; virtual time (docs/performance-model.md)`, '', ...renderMatrix(m, o)].join('\n') + '\n';
}
