/**
 * The fabric model: what every DMA transfer of a Machine costs in virtual time, and the clock
 * it advances. One cost computation per transfer (the DMA engine calls `begin` and `end` around
 * it), never per byte or per page: the page-level facts (IOTLB hits, page walks, invalidations)
 * come from the IOMMU units' counters, read before and after.
 *
 * A transfer is cut into segments between where its bytes are and who moves them:
 *   source memory -> source requester (a read: a round trip),
 *   source requester -> destination requester (the network wire, for two NICs),
 *   destination requester -> destination memory (posted writes: one way).
 * Each segment crosses links (each direction of a PCIe link is its own resource), switches, the
 * root complex (a P2P stream between root ports is capped by the host bridge's P2P profile;
 * DMA through the IOMMU always goes up to it, whatever the topology) and a memory (DRAM, or a
 * device's HBM/VRAM). The rate is the max-min fair share of those resources (share.ts): alone,
 * the smallest of them. duration = latency + translation + bytes / rate.
 */
import { ABI, type Core } from '../../bindings/core.js';
import { SimError } from '../../bindings/errors.js';
import type { SimClock } from '../dma-buf/clock.js';
import type { DmaCostModel, DmaEndpoint, DmaTransfer, TransferTiming } from '../dma/dma-engine.js';
import type { IommuDomain, IommuUnit } from '../iommu/iommu.js';
import type { Machine } from '../machine/machine.js';
import { type Bar, type HostBridge, type PciFunction, p2pProfileOf, upstreamLink } from '../pci/index.js';
import { describeLink, linkBandwidth, type LinkAttrs, readBandwidth } from './pcie.js';
import { type Flow, shareLinks } from './share.js';

/** A memory's speed. */
export interface MemorySpeed {
  /** Bytes per ns (GB/s). */
  bandwidthGBps: number;
  /** ns to first byte. */
  latencyNs: number;
}

/** The costs the model uses; every field has a documented default (docs/performance-model.md). */
export interface TimeCosts {
  /** One link traversal (PHY, data link layer, flight). @default 20 */
  linkHopNs: number;
  /** A switch's port-to-port latency (cut-through). @default 150 */
  switchHopNs: number;
  /** A root-complex crossing to or from system memory. @default 250 */
  rootComplexNs: number;
  /** Crossing from one host bridge to another (the socket interconnect). @default 300 */
  interHostBridgeNs: number;
  /** System RAM. @default 100 GB/s, 90 ns */
  dram: MemorySpeed;
  /** Device memory (HBM, VRAM, BAR-backed memory) per device name; others take `deviceMemory`. */
  deviceMemoryByName: Record<string, MemorySpeed>;
  /** @default 1000 GB/s, 200 ns */
  deviceMemory: MemorySpeed;
  /** NIC-to-NIC wire for RDMA between two NICs (200 Gb/s HDR InfiniBand). @default 25 GB/s, 600 ns */
  network: MemorySpeed;
  /** IOTLB hit. @default 2 */
  iotlbHitNs: number;
  /** One page-table level read by a walk (a DRAM access). @default 90 */
  walkLevelNs: number;
  /** Page-walk cache: a walk after the first one in a transfer reads only its leaf level. @default true */
  pageWalkCache: boolean;
  /** One IOTLB invalidation with its wait descriptor (strict: one per unmap; lazy: per flush). @default 1000 */
  invalidationNs: number;
  /**
   * One ATC invalidation of an ATS device and its completion (VT-d dev-IOTLB invalidation with
   * its wait descriptor, SMMUv3 CMD_ATC_INV + CMD_SYNC): a round trip to the device. @default 2000
   */
  atcInvalidationNs: number;
  /** Outstanding read requests per requester (tags). @default 256 */
  readTags: number;
  /** Control-plane cost per dma-buf kernel event kind ('attach', 'map', ...); unnamed kinds are free. @default {} */
  controlPlaneNs: Record<string, number>;
}

/** The cost table a machine uses where MachineOptions.time gives no value (docs/performance-model.md). */
export const DEFAULT_COSTS: Readonly<TimeCosts> = Object.freeze({
  linkHopNs: 20, switchHopNs: 150, rootComplexNs: 250, interHostBridgeNs: 300,
  dram: Object.freeze({ bandwidthGBps: 100, latencyNs: 90 }), deviceMemoryByName: Object.freeze({}),
  deviceMemory: Object.freeze({ bandwidthGBps: 1000, latencyNs: 200 }), network: Object.freeze({ bandwidthGBps: 25, latencyNs: 600 }),
  iotlbHitNs: 2, walkLevelNs: 90, pageWalkCache: true, invalidationNs: 1000, atcInvalidationNs: 2000, readTags: 256, controlPlaneNs: Object.freeze({}),
});

/** Options of the model (MachineOptions.time): any cost, and the clock's start. */
export type TimeOptions = Partial<TimeCosts> & {
  /** Virtual ns the clock starts at (a run's acts continue one another's time). @default 0 */
  startNs?: number;
};

/** Time totals of a machine, for act counters. */
export interface TimeTotals {
  transfers: number;
  bytes: number;
  /** ns of transfers (sum of durations; concurrent ones overlap). */
  transferNs: number;
  /** ns in IOMMU translation, within transferNs. */
  translationNs: number;
  /** ns of IOTLB invalidations charged. */
  invalidationNs: number;
  /** ns of control-plane calls charged. */
  controlNs: number;
}

/** Where one side of a transfer is: memory at a node, reached by a requester. */
interface Place {
  /** The memory: system RAM, or a device's (its BAR or memory beyond). */
  node: PciFunction | 'ram';
  /** The device that accesses it (null: untranslated physical access). */
  requester: PciFunction | null;
  /** Translated by a paging domain: the access goes up to the IOMMU in the root complex. */
  viaIommu: boolean;
  /** Levels of the walk that translates it (for walk costs). */
  walkLevels: number;
  label: string;
}

interface Segment {
  resources: string[];
  latencyNs: number;
  read: boolean;
  requester: PciFunction | null;
  hops: string[];
  /** The requester's link (for the read model's MRRS). */
  link: LinkAttrs | null;
}

/** A path between two places: what a transfer along it crosses (cached per path). */
interface Route {
  resources: string[];
  cap: number;
  latencyNs: number;
  path: string;
  bottleneck: string;
  /** The smallest capacity on it: a lone transfer's rate. */
  best: number;
}

const HOST_BUFFER: Place = { node: 'ram', requester: null, viaIommu: false, walkLevels: 4, label: 'RAM' };
const placeKey = (p: Place | null): string => (p ? `${p.node === 'ram' ? 'ram' : p.node.name}/${p.viaIommu ? 1 : 0}/${p.label}` : '-');

interface Pending {
  flow: Flow;
  timing: TransferTiming;
  transfer: DmaTransfer;
}

interface UnitCounters { hits: bigint; walks: bigint; invalidations: bigint; atcInvalidations: bigint }

/**
 * A unit's IOTLB counters, read straight from the core's unit record: three loads, where
 * IommuUnit.stats() also counts the valid IOTLB entries (a scan of the whole IOTLB, too slow to
 * do around every transfer).
 */
function unitCounters(core: Core, unit: IommuUnit): UnitCounters {
  const base = core.layout.units + unit.id * ABI.UNIT_STRIDE;
  const u64 = core.views.u64;
  return {
    hits: u64[(base + ABI.UNIT_STAT_HITS) >> 3]!, walks: u64[(base + ABI.UNIT_STAT_WALKS) >> 3]!,
    invalidations: u64[(base + ABI.UNIT_STAT_INVALIDATIONS) >> 3]!,
    atcInvalidations: u64[(base + ABI.UNIT_STAT_ATC_INVALIDATIONS) >> 3]!,
  };
}

const GB = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** "2.9 us", "812 ns", "1.25 ms". */
export function formatNs(ns: number): string {
  // Three significant digits, without trailing zeros after the point ("2.9 us", "600 us").
  const f = (x: number, unit: string): string => `${x.toPrecision(3).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '')} ${unit}`;
  if (ns < 1000) return `${Math.round(ns)} ns`;
  if (ns < 999_500) return f(ns / 1000, 'us');
  if (ns < 999_500_000) return f(ns / 1e6, 'ms');
  return f(ns / 1e9, 's');
}

/** "65536 bytes in 2.9 us, 22.6 GB/s". */
export function formatTiming(t: TransferTiming): string {
  return `${t.bytes} bytes in ${formatNs(t.durationNs)}, ${GB(t.rateGBps)} GB/s`;
}

export class FabricModel implements DmaCostModel {
  readonly costs: TimeCosts;
  private readonly _byRid = new Map<number, PciFunction>();
  private readonly _domains = new Map<number, IommuDomain>();
  /** Paths and resource capacities: the topology and the costs never change after creation. */
  private readonly _paths = new Map<string, Route>();
  private readonly _capacities = new Map<string, number>();
  private readonly _descriptions = new Map<string, string>();
  private readonly _listeners = new Set<(t: DmaTransfer, timing: TransferTiming) => void>();
  private _before: UnitCounters[] = [];
  /** The machine's IOMMU units (made once, at Machine.create, after this model). */
  private _unitList: readonly IommuUnit[] | null = null;
  private _invalidationsSeen: bigint[] = [];
  private _atcInvalidationsSeen: bigint[] = [];
  private _batch: Pending[] | null = null;
  private _pendingNs = 0;
  readonly totals: TimeTotals = { transfers: 0, bytes: 0, transferNs: 0, translationNs: 0, invalidationNs: 0, controlNs: 0 };

  constructor(private readonly _m: Machine, readonly clock: SimClock, opts: Partial<TimeCosts> = {}) {
    // A copy of its own: two machines never share a cost table.
    this.costs = structuredClone({ ...DEFAULT_COSTS, ...opts });
    for (const f of _m.topology.functions) this._byRid.set(_m.rid(f), f);
  }

  /** Calls `fn` with every transfer once its timing is final. */
  onTiming(fn: (t: DmaTransfer, timing: TransferTiming) => void): {
    /** Stops calling `fn`. */
    dispose(): void;
  } {
    this._listeners.add(fn);
    return { dispose: () => { this._listeners.delete(fn); } };
  }

  /** Charges a control-plane cost (a dma-buf kernel event of `kind`), due before the next transfer. */
  chargeEvent(kind: string): void {
    const ns = this.costs.controlPlaneNs[kind];
    if (ns) {
      this._pendingNs += ns;
      this.totals.controlNs += ns;
    }
  }

  private get _units(): readonly IommuUnit[] {
    return (this._unitList ??= this._m.units());
  }

  /**
   * Advances the clock by what is due: control-plane costs and the IOTLB invalidations the
   * units did since the last look (strict mode: one per unmap; lazy: one per flush-queue flush),
 * and the ATC invalidations they sent to ATS devices.
   * The runner calls it after every step; the model calls it before every transfer.
   */
  sync(): void {
    const units = this._units;
    for (let i = 0; i < units.length; i++) {
      const c = unitCounters(this._m.sim.core, units[i]!);
      const inv = c.invalidations;
      const seen = this._invalidationsSeen[i] ?? 0n;
      // ATC invalidations of ATS devices wait for the device's completion as well.
      const atcSeen = this._atcInvalidationsSeen[i] ?? 0n;
      if (inv > seen || c.atcInvalidations > atcSeen) {
        const ns = Number(inv - seen) * this.costs.invalidationNs + Number(c.atcInvalidations - atcSeen) * this.costs.atcInvalidationNs;
        this._pendingNs += ns;
        this.totals.invalidationNs += ns;
      }
      this._invalidationsSeen[i] = inv;
      this._atcInvalidationsSeen[i] = c.atcInvalidations;
    }
    if (this._pendingNs > 0 && !this._batch) {
      this.clock.advance(Math.ceil(this._pendingNs));
      this._pendingNs = 0;
    }
  }

  /** {@link DmaCostModel.begin}: settles what is due on the clock and samples the IOMMU counters. */
  begin(): void {
    this.sync();
    const units = this._units;
    for (let i = 0; i < units.length; i++) this._before[i] = unitCounters(this._m.sim.core, units[i]!);
  }

  /** {@link DmaCostModel.end}: times the finished transfer on this topology and advances the clock by it (inside `concurrent`, the batch settles it at its end). */
  end(t: DmaTransfer): TransferTiming | undefined {
    const bytes = Number(t.result.bytesDone);
    const units = this._units;
    let hits = 0;
    let walks = 0;
    for (let i = 0; i < units.length; i++) {
      const s = unitCounters(this._m.sim.core, units[i]!);
      const b = this._before[i];
      if (!b) continue;
      hits += Number(s.hits - b.hits);
      walks += Number(s.walks - b.walks);
    }
    const { flow, path, bottleneck, latencyNs, walkLevels, best } = this._flow(t, bytes);
    const c = this.costs;
    const translationNs = hits * c.iotlbHitNs
      + (walks === 0 ? 0 : c.pageWalkCache ? (walkLevels + (walks - 1)) * c.walkLevelNs : walks * walkLevels * c.walkLevelNs);
    flow.fixedNs = latencyNs + translationNs;
    const timing: TransferTiming = { startNs: this.clock.now, durationNs: 0, bytes, rateGBps: 0, translationNs, latencyNs, path, bottleneck };
    if (this._batch) {
      this._batch.push({ flow, timing, transfer: t });
      return timing;
    }
    // Alone on its path: the smallest capacity (what shareLinks gives a single flow).
    this._settle(t, timing, (bytes > 0 ? bytes / best : 0) + flow.fixedNs);
    this.clock.advance(timing.durationNs);
    return timing;
  }

  /**
   * Runs `fn`, whose transfers are in flight together: they all start now and share the links
   * they cross (max-min fair, share.ts); the clock moves to the last one's end. Their timings
   * are final when this returns. Not nestable (EBUSY).
   */
  concurrent<T>(fn: () => T): T {
    if (this._batch) throw new SimError('EBUSY', 'time.concurrent', 'a concurrent batch is already open');
    this.sync();
    const batch: Pending[] = [];
    this._batch = batch;
    let out: T;
    try {
      out = fn();
    } finally {
      this._batch = null;
    }
    const flows = batch.map((p) => p.flow);
    const ends = shareLinks(flows, this._capacity(flows));
    let last = 0;
    batch.forEach((p, i) => {
      this._settle(p.transfer, p.timing, ends[i]!);
      last = Math.max(last, p.timing.durationNs);
    });
    this.clock.advance(last);
    return out;
  }

  /**
   * What a transfer of `bytes` from `src` to `dst` would cost, without moving anything or
   * touching the IOTLB (translation assumed to hit): for sweeps and what-if tables.
   */
  estimate(src: DmaEndpoint, dst: DmaEndpoint, bytes: number): { durationNs: number; latencyNs: number; rateGBps: number; path: string; bottleneck: string } {
    const t: DmaTransfer = { op: 'copy', src, dst, length: BigInt(bytes), result: { ok: true, code: 'OK', bytesDone: BigInt(bytes) } };
    const f = this._flow(t, bytes);
    const durationNs = Math.max(1, Math.ceil(bytes / f.best + f.latencyNs));
    return { durationNs, latencyNs: f.latencyNs, rateGBps: bytes / durationNs, path: f.path, bottleneck: f.bottleneck };
  }

  private _settle(t: DmaTransfer, timing: TransferTiming, endNs: number): void {
    timing.durationNs = Math.max(timing.bytes > 0 ? 1 : 0, Math.ceil(endNs));
    timing.rateGBps = timing.durationNs > 0 ? timing.bytes / timing.durationNs : 0;
    const tot = this.totals;
    tot.transfers++;
    tot.bytes += timing.bytes;
    tot.transferNs += timing.durationNs;
    tot.translationNs += timing.translationNs;
    for (const fn of this._listeners) fn(t, timing);
  }

  // ---- paths ----

  /** Capacity of every resource key the flows use. */
  private _capacity(flows: readonly Flow[]): Map<string, number> {
    const m = new Map<string, number>();
    for (const f of flows) for (const r of f.resources) if (!m.has(r)) m.set(r, this._resourceCapacity(r));
    return m;
  }

  private _resourceCapacity(key: string): number {
    let x = this._capacities.get(key);
    if (x === undefined) {
      x = this._computeCapacity(key);
      this._capacities.set(key, x);
    }
    return x;
  }

  private _computeCapacity(key: string): number {
    const [kind, name] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
    if (kind === 'ram') return this.costs.dram.bandwidthGBps;
    if (kind === 'mem') return this._memSpeed(name).bandwidthGBps;
    if (kind === 'wire') return this.costs.network.bandwidthGBps;
    if (kind === 'rc') return p2pProfileOf(this._m.topology, this._m.topology.hostBridges.find((h) => h.name === name)!).bandwidthGBps;
    // link:<fn name>:<up|down>:<mps>
    const [fnName, , mps] = name.split(':');
    const fn = this._m.topology.functions.find((f) => f.name === fnName)!;
    const l = upstreamLink(this._m.topology, fn)!;
    return linkBandwidth({ ...l, mps: Number(mps) });
  }

  private _memSpeed(name: string): { bandwidthGBps: number; latencyNs: number } {
    return this.costs.deviceMemoryByName[name] ?? this.costs.deviceMemory;
  }

  private _fn(rid: DmaEndpoint['rid']): PciFunction | null {
    if (rid === 'phys') return null;
    if (typeof rid === 'number') return this._byRid.get(rid) ?? null;
    const d = this._m.topology.find(rid);
    return d && d.busType === 'pci' ? (d as PciFunction) : null;
  }

  private _domain(id: number): IommuDomain | undefined {
    let d = this._domains.get(id);
    if (!d) {
      for (const u of this._m.units() as IommuUnit[]) for (const x of u.domains()) this._domains.set(x.id, x);
      d = this._domains.get(id);
    }
    return d;
  }

  /** BARs the requester reaches over a switch route (map type BUS_ADDR). */
  private _routed(fn: PciFunction): readonly Bar[] {
    return this._m.busAddrBars(fn);
  }

  /** Where the bytes at `ep` are. `other` is the requester of the transfer's other side. */
  private _place(ep: DmaEndpoint, other: PciFunction | null): Place {
    const requester = this._fn(ep.rid);
    let pa = ep.addr;
    let viaIommu = false;
    let walkLevels = 4;
    if (requester) {
      const bar = this._routed(requester).find((b) => ep.addr >= b.busAddress && ep.addr - b.busAddress < b.size);
      if (bar) return { node: bar.device, requester, viaIommu: false, walkLevels, label: `${bar.device.name} BAR${bar.index}` };
      const dom = this._m.sim.iommu.domainOf(this._m.rid(requester));
      if (typeof dom === 'number' && this._domain(dom)?.type === 'paging') {
        // The core's software walk (iova_to_phys): no IOTLB, no counters touched.
        const core = this._m.sim.core;
        const st = core.exports.walk(dom, ep.addr);
        viaIommu = true;
        walkLevels = Math.max(1, Number(core.resultBytes()));
        // An unmapped IOVA goes as far as the IOMMU in the root complex, which faults it.
        if (st !== 0) return { node: 'ram', requester, viaIommu, walkLevels, label: 'unmapped iova' };
        pa = core.resultValue();
      }
    }
    const bar = this._m.barAt(pa);
    if (bar) return { node: bar.device, requester, viaIommu, walkLevels, label: `${bar.device.name} BAR${bar.index}` };
    const { ram, ramLow } = this._m;
    if ((pa >= ram.base && pa - ram.base < ram.size) || (pa >= ramLow.base && pa - ramLow.base < ramLow.size)) {
      return { node: 'ram', requester, viaIommu, walkLevels, label: 'RAM' };
    }
    // Device memory beyond the BARs: only its own device reaches it.
    const owner = requester ?? other;
    return owner
      ? { node: owner, requester, viaIommu, walkLevels, label: `${owner.name} memory` }
      : { node: 'ram', requester, viaIommu, walkLevels, label: 'memory' };
  }

  /** Bridges from `fn` up to its root port, `fn` first. */
  private static _chain(fn: PciFunction): PciFunction[] {
    const out = [fn];
    for (let p = fn.bus.self; p; p = p.bus.self) out.push(p);
    return out;
  }

  /**
   * The segment between memory at `mem` (a device or RAM) and `requester`; `toMem` is the
   * direction of the data (true: requester writes into mem). Through the root complex when the
   * requester's access is translated by the IOMMU, when the two share no switch, or for RAM.
   */
  private _segment(requester: PciFunction, mem: PciFunction | 'ram', viaIommu: boolean, toMem: boolean, mps: { v: number }): Segment {
    const c = this.costs;
    const topo = this._m.topology;
    const resources: string[] = [];
    const hops: string[] = [requester.name];
    let latencyNs = 0;
    const up = (fn: PciFunction, dirUp: boolean): void => {
      const l = upstreamLink(topo, fn);
      if (!l) return;
      mps.v = Math.min(mps.v, l.mps);
      resources.push(`link:${fn.name}:${dirUp ? 'up' : 'down'}`);
      latencyNs += c.linkHopNs;
    };
    const a = FabricModel._chain(requester);
    const reqLink = upstreamLink(topo, requester);
    if (mem === requester) {
      const s = this._memSpeed(requester.name);
      return { resources: [`mem:${requester.name}`], latencyNs: s.latencyNs, read: !toMem, requester, hops: [requester.name, `${requester.name} memory`], link: reqLink };
    }
    const b = mem === 'ram' ? [] : FabricModel._chain(mem);
    // Lowest common switch (its upstream port), unless the IOMMU or RAM forces the root complex.
    let lca = -1;
    if (!viaIommu && mem !== 'ram') lca = a.findIndex((x) => x.kind === 'switch-upstream' && b.includes(x));
    const aUp = lca >= 0 ? a.slice(0, lca) : a;
    const bUp = lca >= 0 ? b.slice(0, b.indexOf(a[lca]!)) : b;
    for (const f of aUp) {
      up(f, toMem);
      if (f.kind === 'switch-upstream') { latencyNs += c.switchHopNs; hops.push(f.name.replace(/\.up$/, '')); }
    }
    if (lca >= 0) {
      latencyNs += c.switchHopNs;
      hops.push(a[lca]!.name.replace(/\.up$/, ''));
    } else {
      const hbA = requester.hostBridge;
      if (mem === 'ram') {
        latencyNs += c.rootComplexNs + c.dram.latencyNs;
        resources.push('ram:');
        hops.push(`${hbA.name}`, 'RAM');
        return { resources, latencyNs, read: !toMem, requester, hops, link: reqLink };
      }
      const hbB = mem.hostBridge;
      const rc = (hb: HostBridge): void => {
        latencyNs += p2pProfileOf(topo, hb).latencyNs;
        resources.push(`rc:${hb.name}`);
        hops.push(hb.name);
      };
      rc(hbA);
      if (hbB !== hbA) {
        latencyNs += c.interHostBridgeNs;
        rc(hbB);
      }
    }
    const memFn = mem as PciFunction;
    for (const f of [...bUp].reverse()) {
      if (f.kind === 'switch-upstream') { latencyNs += c.switchHopNs; hops.push(f.name.replace(/\.up$/, '')); }
      up(f, !toMem);
    }
    const s = this._memSpeed(memFn.name);
    latencyNs += s.latencyNs;
    resources.push(`mem:${memFn.name}`);
    hops.push(memFn.name);
    return { resources, latencyNs, read: !toMem, requester, hops, link: reqLink };
  }

  private _flow(t: DmaTransfer, bytes: number): { flow: Flow; path: string; bottleneck: string; latencyNs: number; walkLevels: number; best: number } {
    const rs = t.src ? this._fn(t.src.rid) : null;
    const rd = t.dst ? this._fn(t.dst.rid) : null;
    // A write() reads a host buffer (RAM); a read() lands in one.
    const src: Place | null = t.src ? this._place(t.src, rd) : t.op === 'write' ? HOST_BUFFER : null;
    const dst: Place | null = t.dst ? this._place(t.dst, rs) : t.op === 'read' ? HOST_BUFFER : null;
    const key = `${rs?.name ?? ''}|${rd?.name ?? ''}|${placeKey(src)}|${placeKey(dst)}`;
    let route = this._paths.get(key);
    if (!route) {
      route = this._route(rs, rd, src, dst);
      this._paths.set(key, route);
    }
    const walkLevels = Math.max(src?.viaIommu ? src.walkLevels : 0, dst?.viaIommu ? dst.walkLevels : 0) || 4;
    return {
      flow: { bytes, resources: route.resources, cap: route.cap, fixedNs: 0 }, path: route.path, bottleneck: route.bottleneck,
      latencyNs: route.latencyNs, walkLevels, best: route.best,
    };
  }

  /** The resources, latency and description of a path between two places (cached by the caller). */
  private _route(rs: PciFunction | null, rd: PciFunction | null, src: Place | null, dst: Place | null): Route {
    const c = this.costs;
    const initiator = rd ?? rs;
    const segs: Segment[] = [];
    const mps = { v: 4096 };
    const movers: [PciFunction | null, PciFunction | null] = [rs ?? initiator, rd ?? initiator];
    let srcSeg: Segment | null = null;
    let dstSeg: Segment | null = null;
    if (src && movers[0]) segs.push(srcSeg = this._segment(movers[0], src.node, src.viaIommu, false, mps));
    const wire = !!(movers[0] && movers[1] && movers[0] !== movers[1]);
    if (dst && movers[1]) segs.push(dstSeg = this._segment(movers[1], dst.node, dst.viaIommu, true, mps));
    if (!initiator && dst) {
      // No device at all: the CPU's own access (a driver filling or copying memory by physical
      // address). Device memory is reached down from the root complex; RAM at DRAM speed.
      if (dst.node !== 'ram') {
        const seg = this._segment(dst.node, 'ram', false, false, mps);
        const hops = ['cpu', ...seg.hops.slice(0, -1).reverse()];
        hops[hops.length - 1] = dst.label;
        segs.push(dstSeg = { ...seg, read: false, requester: null, hops });
      } else {
        segs.push(dstSeg = { resources: ['ram:'], latencyNs: c.dram.latencyNs, read: false, requester: null, hops: ['cpu', 'RAM'], link: null });
      }
    }
    const resources = segs.flatMap((s) => s.resources).map((r) => (r.startsWith('link:') ? `${r}:${mps.v}` : r));
    let latencyNs = 0;
    let cap = Infinity;
    for (const s of segs) {
      latencyNs += s.read ? 2 * s.latencyNs : s.latencyNs;
      if (s.read && s.link) cap = Math.min(cap, readBandwidth({ ...s.link, mps: mps.v }, 2 * s.latencyNs, c.readTags));
    }
    if (wire) {
      resources.push('wire:');
      latencyNs += c.network.latencyNs;
    }
    let bottleneck = 'none';
    let best = Infinity;
    for (const r of resources) {
      const x = this._resourceCapacity(r);
      if (x < best) { best = x; bottleneck = this._describeResource(r); }
    }
    if (cap < best) {
      best = cap;
      bottleneck = `read requests in flight (MRRS ${segs.find((s) => s.read)?.link?.mrrs ?? '?'})`;
    }
    // Memory -> requester for the source (the segment lists it requester first), requester ->
    // memory for the destination; the two requesters joined by the wire, or by the one device.
    const named = (seg: Segment | null, place: Place | null): string[] => {
      if (!seg) return [];
      const h = [...seg.hops];
      if (place && seg.requester) h[h.length - 1] = place.label;
      return h;
    };
    const a = named(srcSeg, src).reverse();
    const b = named(dstSeg, dst);
    const path = (a.length === 0 ? [src ? src.label : 'pattern', ...b] : wire ? [...a, '=>', ...b] : [...a, ...b.slice(1)]).join(' -> ').replace(/ -> => -> /g, ' => wire => ');
    return { resources, cap, latencyNs, path, bottleneck, best };
  }

  private _describeResource(key: string): string {
    let d = this._descriptions.get(key);
    if (d === undefined) {
      d = this._computeDescription(key);
      this._descriptions.set(key, d);
    }
    return d;
  }

  private _computeDescription(key: string): string {
    const i = key.indexOf(':');
    const kind = key.slice(0, i);
    const name = key.slice(i + 1);
    if (kind === 'ram') return 'DRAM';
    if (kind === 'mem') return `${name} memory`;
    if (kind === 'wire') return 'network wire';
    if (kind === 'rc') return `root complex ${name} P2P`;
    const [fnName, dir, mps] = name.split(':');
    const fn = this._m.topology.functions.find((f) => f.name === fnName)!;
    return `link above ${fnName} ${dir} (${describeLink({ ...upstreamLink(this._m.topology, fn)!, mps: Number(mps) })})`;
  }
}
