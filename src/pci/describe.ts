/**
 * The declarative form of a topology, the one a person writes by hand (see
 * test/pci/fixtures/two-switches.json). Flat lists that point at their parent by name:
 *
 *   { "cpu": {"vendor": "intel", "family": 6},
 *     "hostBridges": [{"name": "hb0", "hostDevice": {"vendor": "0x8086", "device": "0x2020"},
 *                      "rootPorts": [{"name": "rp0", "acs": ["RR", "CR", "EC"]}]}],
 *     "switches":   [{"name": "sw0", "parent": "rp0", "downstream": [{"name": "sw0.dp0"}]}],
 *     "endpoints":  [{"name": "gpu0", "parent": "sw0.dp0", "vendor": "0x10de", "device": "0x2330",
 *                     "bars": [{"size": "16M"}, {"size": "32G", "prefetchable": true}]}],
 *     "platformDevices": [{"name": "dsp0"}] }
 *
 * Every mistake is an EINVAL that names the JSON path (`switches[0].downstream[2].bars[0].size`)
 * and the problem. Numbers may be JSON numbers or strings ("0x8086", "256M", "16G").
 */
import { SimError } from '../../bindings/errors.js';
import { parseAcsCtrl } from './acs.js';
import {
  type BarSpec,
  type BuildOptions,
  buildTopology,
  type EndpointSpec,
  type FunctionSpec,
  type HostBridgeSpec,
  type PlatformSpec,
  type SlotFunctionSpec,
  type SwitchSpec,
  type TopologySpec,
} from './enumerate.js';
import { CPU_VENDORS, type CpuVendor, type Topology } from './topology.js';
import { type FabricDescription, normalizeFabric } from './fabric.js';

/** An integer written as a number or a string ("0x8086", "4096"). Sizes also take K/M/G/T suffixes. */
export type NumberLike = number | string | bigint;

/** A BAR as written in a topology description; the address is assigned when not given. */
export interface BarDescription {
  /** BAR slot 0..5. @default the next free slot */
  index?: number;
  /** @default 'mem' */
  type?: 'mem' | 'io';
  /** Bytes, a power of two ("16M", "32G"). */
  size: NumberLike;
  /** Default: true for prefetchable memory BARs, false otherwise. */
  is64?: boolean;
  /** @default false */
  prefetchable?: boolean;
  /** CPU physical address, aligned to the size. @default assigned from the 32-bit, 64-bit or I/O window */
  cpuAddress?: NumberLike;
}

/** A PCI function as written in a topology description: ids, ACS, BARs, driver. */
export interface FunctionDescription {
  /**
   * Its name. Defaults: an endpoint's function 0 takes the endpoint's name, the others
   * `<endpoint>.<fn>`; ports `<host bridge>.rp<i>`, `<switch>.up`, `<switch>.dp<i>`.
   */
  name?: string;
  /** Function number 0..7. @default the next free one */
  function?: number;
  /** PCI vendor ID ("0x10de"). */
  vendor?: NumberLike;
  /** PCI device ID. */
  device?: NumberLike;
  /** ACS control bits; absent = no ACS capability, [] = capability with nothing enabled. */
  acs?: string[] | NumberLike;
  /** Its BARs. @default none */
  bars?: BarDescription[];
  /** pdev->non_mappable_bars: the BARs cannot be mapped, so P2PDMA refuses the device. @default false */
  nonMappableBars?: boolean;
  /** The bound driver's name, printed in kernel log lines. */
  driver?: string;
}

/** A function at a chosen slot of a root bus (a root port or the host device). */
export interface PortDescription extends FunctionDescription {
  /** Slot on the root bus, 0..31. @default the next free one */
  slot?: number;
}

/** A host bridge as written in a topology description: its segment, root bus, offset and root ports. */
export interface HostBridgeDescription {
  /** Unique name. */
  name: string;
  /** PCI segment (domain). @default 0 */
  segment?: number;
  /** Number of its root bus. @default the next free number in the segment */
  rootBus?: number;
  /** Bus address minus CPU address for BARs below this host bridge. */
  busOffset?: NumberLike;
  /** The device at 00.0 of the root bus (what the whitelist reads); null = none. */
  hostDevice?: PortDescription | null;
  /** Its root ports, on the root bus. */
  rootPorts?: PortDescription[];
}

/** A PCIe switch as written in a topology description: upstream port and downstream ports. */
export interface SwitchDescription {
  /** Unique name (its upstream port is `<name>.up` unless named). */
  name: string;
  /** A root port or a downstream port of another switch. */
  parent: string;
  /** Vendor ID of the switch ports. */
  vendor?: NumberLike;
  /** Device ID of the switch ports. */
  device?: NumberLike;
  /** The upstream port's own fields (ACS, BARs). */
  upstream?: FunctionDescription;
  /** Downstream ports, or how many (named `<switch>.dp<i>`). */
  downstream: PortDescription[] | number;
}

/** An endpoint device as written in a topology description, below a port or on a root bus. */
export interface EndpointDescription extends FunctionDescription {
  /** Unique name. */
  name: string;
  /** A root port, a downstream port, or a host bridge (then it is an RCiEP on the root bus). */
  parent: string;
  /** Slot on the root bus, for an RCiEP only. */
  slot?: number;
  /** Several functions; without it the endpoint is one function 0 described by its own fields. */
  functions?: FunctionDescription[];
}

/** A non-PCI platform device as written in a topology description. */
export interface PlatformDeviceDescription {
  /** Unique name (its dev_name). */
  name: string;
  /** Any device of the topology as its device-model parent. @default null */
  parent?: string | null;
  /** The bound driver's name. */
  driver?: string;
}

/**
 * The declarative (JSON) form of a topology: flat lists pointing at their parents by name.
 * Read by {@link parseTopology}; {@link TopologyBuilder} collects the same shape in code.
 */
export interface TopologyDescription {
  /** The boot CPU. @default Intel family 6 */
  cpu?: { vendor: CpuVendor; family: NumberLike };
  /** At least one host bridge. */
  hostBridges: HostBridgeDescription[];
  /** PCIe switches. */
  switches?: SwitchDescription[];
  /** Endpoint devices. */
  endpoints?: EndpointDescription[];
  /** Non-PCI devices. */
  platformDevices?: PlatformDeviceDescription[];
  /** Link attributes and root-complex P2P profiles for the performance model (fabric.ts). */
  fabric?: FabricDescription;
}

const OP = 'parseTopology';
const fail = (path: string, problem: string): never => {
  throw new SimError('EINVAL', OP, `${path}: ${problem}`);
};
const at = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;

type Obj = Record<string, unknown>;

function obj(v: unknown, path: string, allowed: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path || '(top level)', `expected an object, got ${kind(v)}`);
  for (const k of Object.keys(v as Obj)) {
    if (!allowed.includes(k)) fail(at(path, k), `unknown field (expected one of ${allowed.join(', ')})`);
  }
  return v as Obj;
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `${typeof v} ${String(v)}`;
}

function arr(v: unknown, path: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(path, `expected a list, got ${kind(v)}`);
  return v as unknown[];
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.trim() === '') fail(path, `expected a non-empty string, got ${kind(v)}`);
  return v as string;
}

function bool(v: unknown, path: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') fail(path, `expected true or false, got ${kind(v)}`);
  return v as boolean;
}

const SUFFIX: Record<string, bigint> = { '': 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

/** A non-negative integer from a number, bigint, "0x..." or (with `suffixes`) "256M". */
function big(v: unknown, path: string, suffixes: boolean): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n) fail(path, `must not be negative, got ${v}`);
    return v;
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) fail(path, `expected a non-negative integer, got ${v}`);
    return BigInt(v);
  }
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^0x[0-9a-f]+$/i.test(s)) return BigInt(s);
    const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(s);
    if (m && (suffixes || m[2] === '')) return BigInt(m[1]!) * SUFFIX[m[2]!.toUpperCase()]!;
    fail(path, `cannot read ${JSON.stringify(v)} as ${suffixes ? 'a size (e.g. 4096, "0x1000", "256M", "16G")' : 'an integer (e.g. 4096 or "0x1000")'}`);
  }
  return fail(path, `expected a number, got ${kind(v)}`);
}

function int(v: unknown, path: string, max: number): number {
  const n = big(v, path, false);
  if (n > BigInt(max)) fail(path, `must be at most ${max} (0x${max.toString(16)}), got ${n}`);
  return Number(n);
}

function optInt(v: unknown, path: string, max: number): number | undefined {
  return v === undefined ? undefined : int(v, path, max);
}

function signedBig(v: unknown, path: string): bigint {
  if (typeof v === 'string' && v.trim().startsWith('-')) return -big(v.trim().slice(1), path, true);
  if (typeof v === 'number' && v < 0) return -big(-v, path, true);
  if (typeof v === 'bigint' && v < 0n) return v;
  return big(v, path, true);
}

const FUNCTION_KEYS = ['name', 'function', 'vendor', 'device', 'acs', 'bars', 'nonMappableBars', 'driver'] as const;
const BAR_KEYS = ['index', 'type', 'size', 'is64', 'prefetchable', 'cpuAddress'] as const;

function bar(v: unknown, path: string): BarSpec {
  const o = obj(v, path, BAR_KEYS);
  const rawType = o.type === undefined ? 'mem' : o.type;
  if (rawType !== 'mem' && rawType !== 'io') fail(at(path, 'type'), `expected "mem" or "io", got ${kind(rawType)}`);
  const type = rawType as 'mem' | 'io';
  if (o.size === undefined) fail(at(path, 'size'), 'is required');
  const size = big(o.size, at(path, 'size'), true);
  const prefetchable = bool(o.prefetchable, at(path, 'prefetchable'), false);
  const is64 = bool(o.is64, at(path, 'is64'), type === 'mem' && prefetchable);
  if (type === 'io') {
    if (is64) fail(at(path, 'is64'), 'an I/O BAR cannot be 64-bit');
    if (prefetchable) fail(at(path, 'prefetchable'), 'an I/O BAR cannot be prefetchable');
    if (size < 4n || size > 256n || (size & (size - 1n)) !== 0n) fail(at(path, 'size'), `an I/O BAR size must be a power of two from 4 to 256 bytes, got ${size}`);
  } else {
    if (size < 16n || (size & (size - 1n)) !== 0n) fail(at(path, 'size'), `a memory BAR size must be a power of two of at least 16 bytes, got ${size}`);
    if (!is64 && size > 1n << 31n) fail(at(path, 'size'), `a 32-bit BAR cannot be larger than 2 GiB (got ${size}); set "is64": true`);
    if (size > 1n << 45n) fail(at(path, 'size'), `BAR larger than 32 TiB is not supported, got ${size}`);
  }
  return {
    path, type, size, is64, prefetchable,
    index: optInt(o.index, at(path, 'index'), 5),
    cpuAddress: o.cpuAddress === undefined ? undefined : big(o.cpuAddress, at(path, 'cpuAddress'), false),
  };
}

interface IdDefaults {
  vendor: number | undefined;
  device: number | undefined;
}

function fnSpec(o: Obj, path: string, ids: IdDefaults, what: string): FunctionSpec {
  const vendor = o.vendor === undefined ? ids.vendor : int(o.vendor, at(path, 'vendor'), 0xffff);
  const device = o.device === undefined ? ids.device : int(o.device, at(path, 'device'), 0xffff);
  if (vendor === undefined) fail(at(path, 'vendor'), `is required for ${what}`);
  if (device === undefined) fail(at(path, 'device'), `is required for ${what}`);
  if (vendor === 0xffff) fail(at(path, 'vendor'), '0xffff is what an empty slot reads; not a vendor ID');
  return {
    path,
    name: o.name === undefined ? undefined : str(o.name, at(path, 'name')),
    fn: optInt(o.function, at(path, 'function'), 7),
    vendor: vendor!,
    device: device!,
    acs: o.acs === undefined ? null : parseAcsCtrl(o.acs, OP, at(path, 'acs')),
    nonMappableBars: bool(o.nonMappableBars, at(path, 'nonMappableBars'), false),
    bars: arr(o.bars, at(path, 'bars')).map((b, i) => bar(b, at(at(path, 'bars'), i))),
    driver: o.driver === undefined ? undefined : str(o.driver, at(path, 'driver')),
  };
}

function slotSpec(o: Obj, path: string, ids: IdDefaults, what: string, name: string | undefined): SlotFunctionSpec {
  const f = fnSpec(o, path, ids, what);
  return { ...f, name: f.name ?? name, slot: optInt(o.slot, at(path, 'slot'), 31) };
}

// Generic IDs for ports people do not care to describe (a PLX/Broadcom switch, a generic root port).
const RP_IDS: IdDefaults = { vendor: 0x8086, device: 0x2030 };
const SW_IDS: IdDefaults = { vendor: 0x1000, device: 0xc010 };

/**
 * Checks a description and converts it to the internal spec (no topology is built yet).
 * @throws {@link SimError} EINVAL naming the JSON path of the first bad field.
 */
export function normalizeDescription(input: unknown): TopologySpec {
  const top = obj(input, '', ['cpu', 'hostBridges', 'switches', 'endpoints', 'platformDevices', 'fabric', '$schema', 'comment']);

  let cpu: TopologySpec['cpu'] = { vendor: 'intel', family: 6 };
  if (top.cpu !== undefined) {
    const c = obj(top.cpu, 'cpu', ['vendor', 'family']);
    const vendor = str(c.vendor, 'cpu.vendor').toLowerCase();
    if (!CPU_VENDORS.includes(vendor as CpuVendor)) fail('cpu.vendor', `unknown CPU vendor ${JSON.stringify(c.vendor)} (expected one of ${CPU_VENDORS.join(', ')})`);
    if (c.family === undefined) fail('cpu.family', 'is required');
    cpu = { vendor: vendor as CpuVendor, family: int(c.family, 'cpu.family', 0xfff) };
  }

  const hbs = arr(top.hostBridges, 'hostBridges');
  if (hbs.length === 0) fail('hostBridges', 'at least one host bridge is required');
  const hostBridges: HostBridgeSpec[] = hbs.map((h, i) => {
    const path = at('hostBridges', i);
    const o = obj(h, path, ['name', 'segment', 'rootBus', 'busOffset', 'hostDevice', 'rootPorts']);
    const name = str(o.name, at(path, 'name'));
    let hostDevice: SlotFunctionSpec | null = null;
    if (o.hostDevice !== undefined && o.hostDevice !== null) {
      const hp = at(path, 'hostDevice');
      const ho = obj(o.hostDevice, hp, [...FUNCTION_KEYS, 'slot']);
      hostDevice = slotSpec(ho, hp, { vendor: undefined, device: undefined }, 'the host bridge device', undefined);
    }
    return {
      path, name,
      segment: o.segment === undefined ? 0 : int(o.segment, at(path, 'segment'), 0xffff),
      rootBus: optInt(o.rootBus, at(path, 'rootBus'), 255),
      busOffset: o.busOffset === undefined ? 0n : signedBig(o.busOffset, at(path, 'busOffset')),
      hostDevice,
      rootPorts: arr(o.rootPorts, at(path, 'rootPorts')).map((r, j) => {
        const rp = at(at(path, 'rootPorts'), j);
        return slotSpec(obj(r, rp, [...FUNCTION_KEYS, 'slot']), rp, RP_IDS, 'a root port', `${name}.rp${j}`);
      }),
    };
  });

  const switches: SwitchSpec[] = arr(top.switches, 'switches').map((s, i) => {
    const path = at('switches', i);
    const o = obj(s, path, ['name', 'parent', 'vendor', 'device', 'upstream', 'downstream']);
    const name = str(o.name, at(path, 'name'));
    const ids: IdDefaults = {
      vendor: o.vendor === undefined ? SW_IDS.vendor : int(o.vendor, at(path, 'vendor'), 0xfffe),
      device: o.device === undefined ? SW_IDS.device : int(o.device, at(path, 'device'), 0xffff),
    };
    const up = o.upstream === undefined ? {} : obj(o.upstream, at(path, 'upstream'), FUNCTION_KEYS);
    const upstream = fnSpec(up, at(path, 'upstream'), ids, 'a switch port');
    if (upstream.fn !== undefined && upstream.fn !== 0) fail(at(at(path, 'upstream'), 'function'), 'the upstream port is function 0');
    upstream.name ??= `${name}.up`;
    let downstream: SlotFunctionSpec[];
    if (o.downstream === undefined) fail(at(path, 'downstream'), 'is required (a list of ports, or how many)');
    if (typeof o.downstream === 'number') {
      const n = int(o.downstream, at(path, 'downstream'), 32);
      if (n === 0) fail(at(path, 'downstream'), 'a switch needs at least one downstream port');
      downstream = Array.from({ length: n }, (_, j) => slotSpec({}, at(at(path, 'downstream'), j), ids, 'a switch port', `${name}.dp${j}`));
    } else {
      const list = arr(o.downstream, at(path, 'downstream'));
      if (list.length === 0) fail(at(path, 'downstream'), 'a switch needs at least one downstream port');
      downstream = list.map((d, j) => {
        const dp = at(at(path, 'downstream'), j);
        return slotSpec(obj(d, dp, [...FUNCTION_KEYS, 'slot']), dp, ids, 'a switch port', `${name}.dp${j}`);
      });
    }
    return { path, name, parent: str(o.parent, at(path, 'parent')), upstream, downstream };
  });

  const endpoints: EndpointSpec[] = arr(top.endpoints, 'endpoints').map((e, i) => {
    const path = at('endpoints', i);
    const o = obj(e, path, [...FUNCTION_KEYS, 'parent', 'slot', 'functions']);
    const name = str(o.name, at(path, 'name'));
    let functions: FunctionSpec[];
    if (o.functions !== undefined) {
      for (const k of ['function', 'acs', 'bars', 'nonMappableBars', 'driver']) {
        if (o[k] !== undefined) fail(at(path, k), 'give it per function when "functions" is present');
      }
      const ids: IdDefaults = {
        vendor: o.vendor === undefined ? undefined : int(o.vendor, at(path, 'vendor'), 0xfffe),
        device: o.device === undefined ? undefined : int(o.device, at(path, 'device'), 0xffff),
      };
      const list = arr(o.functions, at(path, 'functions'));
      if (list.length === 0) fail(at(path, 'functions'), 'an endpoint needs at least one function');
      functions = list.map((f, j) => {
        const fp = at(at(path, 'functions'), j);
        return fnSpec(obj(f, fp, FUNCTION_KEYS), fp, ids, 'an endpoint function');
      });
    } else {
      const f = fnSpec(o, path, { vendor: undefined, device: undefined }, 'an endpoint');
      f.name = undefined;
      functions = [f];
    }
    return { path, name, parent: str(o.parent, at(path, 'parent')), slot: optInt(o.slot, at(path, 'slot'), 31), functions };
  });

  const platformDevices: PlatformSpec[] = arr(top.platformDevices, 'platformDevices').map((p, i) => {
    const path = at('platformDevices', i);
    const o = obj(p, path, ['name', 'parent', 'driver']);
    return {
      path,
      name: str(o.name, at(path, 'name')),
      parent: o.parent === undefined || o.parent === null ? null : str(o.parent, at(path, 'parent')),
      driver: o.driver === undefined ? undefined : str(o.driver, at(path, 'driver')),
    };
  });

  return { cpu, hostBridges, switches, endpoints, platformDevices, fabric: normalizeFabric(top.fabric) };
}

/** Where in a JSON text a character offset falls, as "line L, column C". */
function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${col}`;
}

/**
 * Builds a topology from a JSON text or an already-parsed description.
 * @throws {@link SimError} EINVAL naming the JSON path (or the line and column, for a syntax
 *   error) and the problem; nothing is built.
 */
export function parseTopology(input: string | TopologyDescription | unknown, options: BuildOptions = {}): Topology {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      const msg = (err as Error).message;
      const pos = /position (\d+)/.exec(msg);
      fail(pos ? lineCol(input, Number(pos[1])) : '(text)', `not valid JSON: ${msg}`);
    }
  }
  return buildTopology(normalizeDescription(value), options);
}
