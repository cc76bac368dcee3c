/**
 * Builds a `Topology` from a checked description: numbers buses depth-first as the kernel's
 * scan does (pci_scan_bridge: each bridge gets secondary = next free number, subordinate =
 * the highest number found below it), then gives every BAR a CPU and a bus address.
 *
 *   [0000:00] hb0 ─ 00.0 host ─ 01.0 rp0 [01-03] ─ 01:00.0 sw0.up [02-03] ─ 02:00.0 dp0 [03] ─ 03:00.0 gpu
 *                             ─ 02.0 rp1 [04-04] ─ 04:00.0 nic
 */
import { SimError } from '../../bindings/errors.js';
import { parseDisableAcsRedir, PCI_ACS_REDIRECT_MASK } from './acs.js';
import { checkFabricNames, type FabricSpec } from './fabric.js';
import {
  type Bar,
  type BarType,
  type CpuInfo,
  type Device,
  HostBridge,
  PciBus,
  PciFunction,
  type PciKind,
  PlatformDevice,
  Topology,
} from './topology.js';

/** A checked BAR; `path` is where it came from (a JSON path) for error messages. */
export interface BarSpec {
  path: string;
  index: number | undefined;
  type: BarType;
  size: bigint;
  is64: boolean;
  prefetchable: boolean;
  cpuAddress: bigint | undefined;
}

/** A checked PCI function: ids, ACS, BARs and bound driver; `path` is its place in the description. */
export interface FunctionSpec {
  path: string;
  name: string | undefined;
  fn: number | undefined;
  vendor: number;
  device: number;
  acs: number | null;
  nonMappableBars: boolean;
  bars: BarSpec[];
  driver: string | undefined;
}

/** A function that sits directly on a bus at a chosen slot (root ports, host device, RCiEPs). */
export interface SlotFunctionSpec extends FunctionSpec {
  slot: number | undefined;
}

/** A checked host bridge: segment, root bus, CPU-to-bus offset, host device and root ports. */
export interface HostBridgeSpec {
  path: string;
  name: string;
  segment: number;
  rootBus: number | undefined;
  busOffset: bigint;
  hostDevice: SlotFunctionSpec | null;
  rootPorts: SlotFunctionSpec[];
}

/** A checked PCIe switch: its upstream port function and downstream port functions, below `parent`. */
export interface SwitchSpec {
  path: string;
  name: string;
  parent: string;
  upstream: FunctionSpec;
  downstream: SlotFunctionSpec[];
}

/** A checked endpoint device: one or more functions below `parent`. */
export interface EndpointSpec {
  path: string;
  name: string;
  parent: string;
  /** Only for endpoints on a root bus (RCiEPs); a port has a single device 0 below it. */
  slot: number | undefined;
  functions: FunctionSpec[];
}

/** A checked platform (non-PCI) device. */
export interface PlatformSpec {
  path: string;
  name: string;
  parent: string | null;
  driver: string | undefined;
}

/**
 * A checked topology description, the input of {@link buildTopology}: what
 * {@link parseTopology} makes of a {@link TopologyDescription}.
 */
export interface TopologySpec {
  cpu: CpuInfo;
  hostBridges: HostBridgeSpec[];
  switches: SwitchSpec[];
  endpoints: EndpointSpec[];
  platformDevices: PlatformSpec[];
  /** Link attributes and P2P profiles (fabric.ts); none: the defaults. */
  fabric?: FabricSpec;
}

/** Options of {@link buildTopology}, {@link parseTopology} and {@link TopologyBuilder.build}. */
export interface BuildOptions {
  /**
   * Called once per memory BAR after the whole topology is built and checked (so never for a
   * topology that fails), e.g. to create a device-memory region in the core.
   */
  onBar?: (bar: Bar, device: PciFunction) => void;
  /** Kernel parameter `pci=disable_acs_redir=`: clears RR, CR and EC on these functions at boot. */
  disableAcsRedir?: string;
}

/** Where BARs without an explicit address go. 32-bit windows sit below the 4 GiB hole. */
const MEM32_WINDOW: readonly [bigint, bigint] = [0xc000_0000n, 0xfec0_0000n];
const MEM64_WINDOW: readonly [bigint, bigint] = [0x40_0000_0000n, 1n << 46n];
const IO_WINDOW: readonly [bigint, bigint] = [0x1000n, 0x1_0000n];

const OP = 'buildTopology';
const fail = (path: string, problem: string): never => {
  throw new SimError('EINVAL', OP, `${path}: ${problem}`);
};
const hexb = (v: bigint): string => `0x${v.toString(16)}`;

type Node =
  | { kind: 'port'; spec: SlotFunctionSpec; pkind: PciKind }
  | { kind: 'hb'; spec: HostBridgeSpec };

/** The one device (a switch or an endpoint) below a PCIe port. */
interface Child {
  kind: 'switch' | 'endpoint';
  spec: SwitchSpec | EndpointSpec;
}

/** A free-range allocator over one address window with naturally aligned placement. */
class WindowAllocator {
  private readonly used: Array<[bigint, bigint]> = [];
  constructor(private readonly window: readonly [bigint, bigint]) {}
  reserve(start: bigint, size: bigint): [bigint, bigint] | undefined {
    const end = start + size;
    const clash = this.used.find(([s, e]) => start < e && s < end);
    if (clash) return clash;
    this.used.push([start, end]);
    return undefined;
  }
  take(size: bigint): bigint | undefined {
    let at = this.window[0];
    for (;;) {
      at = ((at + size - 1n) / size) * size;
      if (at + size > this.window[1]) return undefined;
      const end = at + size;
      const clash = this.used.find(([s, e]) => at < e && s < end);
      if (!clash) {
        this.used.push([at, end]);
        return at;
      }
      at = clash[1];
    }
  }
}

/**
 * Builds the topology from a checked spec, numbering buses depth-first as pci_scan_bridge does
 * and placing BARs; never half-builds.
 * @throws {@link SimError} EINVAL naming the path of the problem (duplicate name, unknown or
 *   wrong parent, slot or function clash, bus numbers or a BAR window exhausted, BAR overlap,
 *   a bad `disableAcsRedir` entry).
 */
export function buildTopology(spec: TopologySpec, options: BuildOptions = {}): Topology {
  const names = new Map<string, string>(); // name -> path where it was defined
  const claim = (name: string, path: string): void => {
    const prev = names.get(name);
    if (prev !== undefined) fail(`${path}.name`, `name ${JSON.stringify(name)} is already used at ${prev}`);
    names.set(name, path);
  };

  // Names first, so that parent references can be checked in any order.
  const nodes = new Map<string, Node>();
  for (const hb of spec.hostBridges) {
    claim(hb.name, hb.path);
    nodes.set(hb.name, { kind: 'hb', spec: hb });
    if (hb.hostDevice) claim(hb.hostDevice.name ?? `${hb.name}.host`, hb.hostDevice.path);
    for (const rp of hb.rootPorts) {
      claim(rp.name!, rp.path);
      nodes.set(rp.name!, { kind: 'port', spec: rp, pkind: 'root-port' });
    }
  }
  for (const sw of spec.switches) {
    claim(sw.name, sw.path);
    claim(sw.upstream.name!, sw.upstream.path);
    for (const dp of sw.downstream) {
      claim(dp.name!, dp.path);
      nodes.set(dp.name!, { kind: 'port', spec: dp, pkind: 'switch-downstream' });
    }
  }
  for (const ep of spec.endpoints) {
    claim(ep.name, ep.path);
    for (const f of ep.functions) if (f.name !== undefined && f.name !== ep.name) claim(f.name, f.path);
  }
  for (const p of spec.platformDevices) claim(p.name, p.path);

  // Children of each port (exactly one device below a PCIe port) and RCiEPs of each host bridge.
  const below = new Map<string, Child>();
  const rcieps = new Map<string, EndpointSpec[]>();
  const attach = (parent: string, child: Child, path: string, allowHb: boolean): void => {
    const node = nodes.get(parent);
    if (!node) {
      fail(`${path}.parent`, names.has(parent)
        ? `${JSON.stringify(parent)} is not a root port or switch downstream port${allowHb ? ' or host bridge' : ''}`
        : `no root port, downstream port or host bridge named ${JSON.stringify(parent)}`);
    } else if (node.kind === 'hb') {
      if (!allowHb) fail(`${path}.parent`, `a switch must sit below a root port or a downstream port, not host bridge ${JSON.stringify(parent)}`);
      const list = rcieps.get(parent) ?? [];
      list.push(child.spec as EndpointSpec);
      rcieps.set(parent, list);
    } else {
      const prev = below.get(parent);
      if (prev) fail(`${path}.parent`, `port ${JSON.stringify(parent)} already has ${JSON.stringify(prev.spec.name)} below it (a PCIe link has one device)`);
      below.set(parent, child);
    }
  };
  for (const sw of spec.switches) attach(sw.parent, { kind: 'switch', spec: sw }, sw.path, false);
  for (const ep of spec.endpoints) {
    const node = nodes.get(ep.parent);
    if (ep.slot !== undefined && node && node.kind !== 'hb') {
      fail(`${ep.path}.slot`, 'only endpoints on a root bus (parent = host bridge) take a slot; below a port the device is always 00');
    }
    attach(ep.parent, { kind: 'endpoint', spec: ep }, ep.path, true);
  }
  // A switch below itself would loop forever.
  for (const sw of spec.switches) {
    const seen = new Set<string>();
    let cur: string | undefined = sw.name;
    while (cur !== undefined) {
      if (seen.has(cur)) fail(`${sw.path}.parent`, `switch ${JSON.stringify(sw.name)} is (indirectly) its own parent`);
      seen.add(cur);
      const owner: SwitchSpec | undefined = spec.switches.find((s) => s.name === cur);
      const parentNode = owner ? nodes.get(owner.parent) : undefined;
      const parentSwitch: SwitchSpec | undefined =
        parentNode && parentNode.kind === 'port' ? spec.switches.find((s) => s.downstream.includes(parentNode.spec)) : undefined;
      cur = parentSwitch?.name;
    }
  }

  const disable = options.disableAcsRedir ? parseDisableAcsRedir(options.disableAcsRedir, OP) : [];

  // Enumerate.
  const functions: PciFunction[] = [];
  const hostBridges: HostBridge[] = [];
  const barJobs: Array<{ fn: PciFunction; spec: BarSpec; index: number }> = [];
  const busesUsed = new Map<number, Array<{ range: [number, number]; path: string }>>();
  const nextFreeBus = new Map<number, number>();

  const makeFunction = (
    fs: FunctionSpec,
    name: string,
    bus: PciBus,
    slot: number,
    fn: number,
    kind: PciKind,
  ): PciFunction => {
    let acs = fs.acs;
    if (acs !== null && disable.some((d) => d.segment === bus.segment && d.bus === bus.number && d.slot === slot && d.fn === fn)) {
      acs &= ~PCI_ACS_REDIRECT_MASK;
    }
    const f = new PciFunction(name, bus, slot, fn, fs.vendor, fs.device, kind, acs, fs.nonMappableBars);
    if (fs.driver !== undefined) f.driver = fs.driver;
    bus.devices.push(f);
    functions.push(f);
    layoutBars(fs, kind, (spec, index) => barJobs.push({ fn: f, spec, index }));
    return f;
  };

  // Gives `bridge` the next bus number and scans below it; `next.n` ends at its subordinate.
  const scanBridge = (bridge: PciFunction, hb: HostBridge, next: { n: number }, path: string): void => {
    next.n += 1;
    if (next.n > 255) fail(path, `ran out of bus numbers (more than 255 below ${hb.name})`);
    const sec = new PciBus(hb, next.n, bridge);
    bridge._secondary = sec;
    const child = below.get(bridge.name);
    if (child?.kind === 'switch') {
      const sw = child.spec as SwitchSpec;
      const up = makeFunction(sw.upstream, sw.upstream.name!, sec, 0, 0, 'switch-upstream');
      next.n += 1;
      if (next.n > 255) fail(sw.path, `ran out of bus numbers (more than 255 below ${hb.name})`);
      const inner = new PciBus(hb, next.n, up);
      up._secondary = inner;
      const slots = assignSlots(sw.downstream, 0, `${sw.path}.downstream`);
      const order = sw.downstream.map((d, i) => ({ d, slot: slots[i]! })).sort((x, y) => x.slot - y.slot);
      for (const { d, slot } of order) {
        const dp = makeFunction(d, d.name!, inner, slot, d.fn ?? 0, 'switch-downstream');
        scanBridge(dp, hb, next, d.path);
      }
      up._subordinate = next.n;
    } else if (child?.kind === 'endpoint') {
      addEndpoint(child.spec as EndpointSpec, sec, 0, 'endpoint');
    }
    bridge._subordinate = next.n;
  };

  const addEndpoint = (ep: EndpointSpec, bus: PciBus, slot: number, kind: PciKind): void => {
    const fns = assignFunctions(ep);
    fns.sort((x, y) => x.fn - y.fn);
    for (const { f, fn } of fns) {
      const name = f.name ?? (fn === 0 ? ep.name : `${ep.name}.${fn}`);
      makeFunction(f, name, bus, slot, fn, kind);
    }
  };

  for (const hbs of spec.hostBridges) {
    const hb = new HostBridge(hbs.name, hbs.segment, hbs.busOffset);
    const rootNr = hbs.rootBus ?? nextFreeBus.get(hbs.segment) ?? 0;
    if (rootNr > 255) fail(`${hbs.path}.rootBus`, `no bus number left in segment ${hbs.segment} for this host bridge`);
    const root = new PciBus(hb, rootNr, null);
    hb._rootBus = root;

    // Root-bus residents, in devfn order: that order is the root bus device list.
    type Resident = { slot: number; fn: number; place: () => void; path: string };
    const residents: Resident[] = [];
    const taken = new Map<number, string>();
    const take = (slot: number, fn: number, path: string): void => {
      const devfn = (slot << 3) | fn;
      const prev = taken.get(devfn);
      if (prev !== undefined) fail(path, `slot ${slot.toString(16).padStart(2, '0')}.${fn} on the root bus is already used by ${prev}`);
      taken.set(devfn, path);
    };
    const next = { n: rootNr };
    if (hbs.hostDevice) {
      const hd = hbs.hostDevice;
      const slot = hd.slot ?? 0;
      const fn = hd.fn ?? 0;
      take(slot, fn, hd.path);
      residents.push({ slot, fn, path: hd.path, place: () => void makeFunction(hd, hd.name ?? `${hbs.name}.host`, root, slot, fn, 'host-bridge') });
    }
    const explicit = new Set<number>(hbs.rootPorts.filter((r) => r.slot !== undefined).map((r) => r.slot!));
    if (hbs.hostDevice) explicit.add(hbs.hostDevice.slot ?? 0);
    for (const ep of rcieps.get(hbs.name) ?? []) if (ep.slot !== undefined) explicit.add(ep.slot);
    let auto = 1;
    const nextAuto = (): number => {
      while (explicit.has(auto)) auto++;
      explicit.add(auto);
      return auto;
    };
    for (const rp of hbs.rootPorts) {
      const slot = rp.slot ?? nextAuto();
      if (slot > 31) fail(`${rp.path}.slot`, 'no free slot left on the root bus');
      const fn = rp.fn ?? 0;
      take(slot, fn, rp.path);
      residents.push({
        slot, fn, path: rp.path,
        place: () => {
          const f = makeFunction(rp, rp.name!, root, slot, fn, 'root-port');
          scanBridge(f, hb, next, rp.path);
        },
      });
    }
    for (const ep of rcieps.get(hbs.name) ?? []) {
      const slot = ep.slot ?? nextAuto();
      if (slot > 31) fail(`${ep.path}.slot`, 'no free slot left on the root bus');
      for (const { fn } of assignFunctions(ep)) take(slot, fn, ep.path);
      residents.push({ slot, fn: 0, path: ep.path, place: () => addEndpoint(ep, root, slot, 'rciep') });
    }
    residents.sort((x, y) => ((x.slot << 3) | x.fn) - ((y.slot << 3) | y.fn));
    for (const r of residents) r.place();
    // Functions of one RCiEP were pushed together; keep the bus list in devfn order.
    root.devices.sort((x, y) => x.devfn - y.devfn);

    hb._busEnd = next.n;
    const list = busesUsed.get(hbs.segment) ?? [];
    const clash = list.find((u) => rootNr <= u.range[1] && u.range[0] <= next.n);
    if (clash) {
      fail(hbs.path, `bus range ${rootNr}-${next.n} of segment ${hbs.segment} overlaps ${clash.path} (${clash.range[0]}-${clash.range[1]})`);
    }
    list.push({ range: [rootNr, next.n], path: hbs.path });
    busesUsed.set(hbs.segment, list);
    nextFreeBus.set(hbs.segment, Math.max(nextFreeBus.get(hbs.segment) ?? 0, next.n + 1));
    hostBridges.push(hb);
  }

  // Addresses: explicit ones are reserved first, then the rest are placed in enumeration order.
  const windows = { mem32: new WindowAllocator(MEM32_WINDOW), mem64: new WindowAllocator(MEM64_WINDOW), io: new WindowAllocator(IO_WINDOW) };
  const win = (s: BarSpec): WindowAllocator => (s.type === 'io' ? windows.io : s.is64 ? windows.mem64 : windows.mem32);
  const placed = new Map<BarSpec, bigint>();
  const owners = new Map<BarSpec, string>();
  for (const job of barJobs) {
    if (job.spec.cpuAddress === undefined) continue;
    const start = job.spec.cpuAddress;
    const clash = findClash(placed, owners, job.spec, start);
    if (clash) fail(`${job.spec.path}.cpuAddress`, `${hexb(start)}-${hexb(start + job.spec.size - 1n)} overlaps ${clash}`);
    win(job.spec).reserve(start, job.spec.size);
    placed.set(job.spec, start);
    owners.set(job.spec, job.spec.path);
  }
  for (const job of barJobs) {
    if (job.spec.cpuAddress !== undefined) continue;
    const at = win(job.spec).take(job.spec.size);
    if (at === undefined) fail(`${job.spec.path}.size`, `no room for ${hexb(job.spec.size)} bytes in the ${job.spec.type === 'io' ? 'I/O' : job.spec.is64 ? '64-bit' : '32-bit'} window`);
    placed.set(job.spec, at!);
    owners.set(job.spec, job.spec.path);
  }
  for (const job of barJobs) {
    const cpu = placed.get(job.spec)!;
    const off = job.spec.type === 'mem' ? job.fn.hostBridge.busOffset : 0n;
    const bus = cpu + off;
    if (bus < 0n) fail(`${job.spec.path}`, `bus address ${cpu} + busOffset ${off} is negative`);
    const bar: Bar = Object.freeze({
      device: job.fn, index: job.index, type: job.spec.type, size: job.spec.size, is64: job.spec.is64,
      prefetchable: job.spec.prefetchable, cpuAddress: cpu, busAddress: bus, busOffset: bus - cpu,
    });
    job.fn._bars.push(bar);
  }
  for (const f of functions) f._bars.sort((a, b) => a.index - b.index);

  // Platform devices, whose parents may be PCI functions or other platform devices.
  const byName = new Map<string, Device>(functions.map((f) => [f.name, f]));
  const pending = [...spec.platformDevices];
  const platform: PlatformDevice[] = [];
  while (pending.length > 0) {
    const before = pending.length;
    for (let i = 0; i < pending.length; ) {
      const p = pending[i]!;
      if (p.parent === null || byName.has(p.parent)) {
        const parent = p.parent === null ? null : byName.get(p.parent)!;
        const d = new PlatformDevice(p.name, parent);
        if (p.driver !== undefined) d.driver = p.driver;
        platform.push(d);
        byName.set(p.name, d);
        pending.splice(i, 1);
      } else i++;
    }
    if (pending.length === before) {
      const p = pending[0]!;
      fail(`${p.path}.parent`, names.has(p.parent!)
        ? `${JSON.stringify(p.parent)} is not a device (or the parents form a loop)`
        : `no device named ${JSON.stringify(p.parent)}`);
    }
  }

  const topo = new Topology(spec.cpu, hostBridges, functions, platform);
  if (spec.fabric) {
    checkFabricNames(topo, spec.fabric);
    topo.fabric = spec.fabric;
  }
  if (options.onBar) for (const b of topo.allBars()) if (b.type === 'mem') options.onBar(b, b.device);
  return topo;
}

function findClash(placed: Map<BarSpec, bigint>, owners: Map<BarSpec, string>, s: BarSpec, start: bigint): string | undefined {
  for (const [o, at] of placed) {
    if (o.type === 'io' !== (s.type === 'io')) continue;
    if (start < at + o.size && at < start + s.size) return owners.get(o);
  }
  return undefined;
}

/** Slot numbers for ports on a switch's internal bus: explicit ones, then the lowest free. */
function assignSlots(ports: SlotFunctionSpec[], first: number, path: string): number[] {
  const used = new Map<number, string>();
  for (const p of ports) {
    if (p.slot === undefined) continue;
    const key = (p.slot << 3) | (p.fn ?? 0);
    if (used.has(key)) fail(`${p.path}.slot`, `slot ${p.slot} is already used by ${used.get(key)}`);
    used.set(key, p.path);
  }
  const slotsTaken = new Set([...used.keys()].map((k) => k >> 3));
  let next = first;
  return ports.map((p) => {
    if (p.slot !== undefined) return p.slot;
    while (slotsTaken.has(next)) next++;
    if (next > 31) fail(path, 'more than 32 downstream ports on one switch');
    slotsTaken.add(next);
    return next++;
  });
}

/** Function numbers of an endpoint: explicit or 0..n-1; function 0 must exist. */
function assignFunctions(ep: EndpointSpec): Array<{ f: FunctionSpec; fn: number }> {
  const out: Array<{ f: FunctionSpec; fn: number }> = [];
  const used = new Map<number, string>();
  let auto = 0;
  for (const f of ep.functions) {
    let fn = f.fn;
    if (fn === undefined) {
      while (used.has(auto)) auto++;
      fn = auto;
    }
    if (fn > 7) fail(`${f.path}`, 'more than 8 functions in one device');
    if (used.has(fn)) fail(`${f.path}.function`, `function ${fn} is already used by ${used.get(fn)}`);
    used.set(fn, f.path);
    out.push({ f, fn });
  }
  if (!used.has(0)) fail(`${ep.path}.functions`, 'function 0 is missing (the kernel does not scan functions 1-7 of a device without function 0)');
  return out;
}

/** Checks a function's BAR list against the header type and assigns slot indices. */
function layoutBars(fs: FunctionSpec, kind: PciKind, emit: (s: BarSpec, index: number) => void): void {
  const bridge = kind === 'root-port' || kind === 'switch-upstream' || kind === 'switch-downstream';
  const slots = bridge ? 2 : 6; // a type 1 (bridge) header has only BAR0-1
  const used: Array<string | undefined> = new Array(slots).fill(undefined);
  let next = 0;
  for (const b of fs.bars) {
    const width = b.is64 ? 2 : 1;
    let index = b.index;
    if (index === undefined) {
      while (next < slots && used[next] !== undefined) next++;
      index = next;
    }
    if (index + width > slots) {
      fail(`${b.path}${b.index === undefined ? '' : '.index'}`,
        `${b.is64 ? '64-bit BAR needs slots ' + index + '-' + (index + 1) : 'BAR ' + index} but a ${bridge ? 'bridge (type 1 header)' : 'type 0 header'} has BAR0-${slots - 1}`);
    }
    for (let k = index; k < index + width; k++) {
      if (used[k] !== undefined) fail(`${b.path}.index`, `BAR slot ${k} is already used by ${used[k]}`);
      used[k] = b.path;
    }
    if (b.cpuAddress !== undefined) {
      if (b.cpuAddress % b.size !== 0n) fail(`${b.path}.cpuAddress`, `${hexb(b.cpuAddress)} is not aligned to the BAR size ${hexb(b.size)}`);
      if (b.type === 'mem' && !b.is64 && b.cpuAddress + b.size > 1n << 32n) fail(`${b.path}.cpuAddress`, 'a 32-bit BAR must lie below 4 GiB');
      if (b.type === 'io' && b.cpuAddress + b.size > 0x1_0000n) fail(`${b.path}.cpuAddress`, 'an I/O BAR must lie below port 0x10000');
    }
    emit(b, index);
  }
}
