/**
 * The PCI device model: host bridges, buses, functions (bridges and endpoints) with BARs and
 * ACS, plus non-PCI platform devices. A `Topology` is built by `buildTopology` (enumerate.ts)
 * from a description, never assembled by hand, so its bus numbers are always the ones a
 * depth-first scan would give.
 */
import { SimError } from '../../bindings/errors.js';
import { acsRedirects, parseAcsCtrl } from './acs.js';
import type { FabricSpec } from './fabric.js';

/** A BAR's address space: memory (IORESOURCE_MEM) or I/O ports (IORESOURCE_IO). */
export type BarType = 'mem' | 'io';

/** One BAR of a function. For a 64-bit BAR `index` is the lower of its two slots. */
export interface Bar {
  /** The function it belongs to. */
  readonly device: PciFunction;
  /** BAR slot 0..5 (pci_resource n). */
  readonly index: number;
  /** Memory or I/O. */
  readonly type: BarType;
  /** Bytes (pci_resource_len), a power of two. */
  readonly size: bigint;
  /** A 64-bit memory BAR (takes two slots). */
  readonly is64: boolean;
  /** IORESOURCE_PREFETCH: P2PDMA providers publish prefetchable BARs. */
  readonly prefetchable: boolean;
  /** CPU physical address (pci_resource_start); an I/O port number for I/O BARs. */
  readonly cpuAddress: bigint;
  /** PCI bus address (pci_bus_address) = cpuAddress + busOffset. */
  readonly busAddress: bigint;
  /** busAddress - cpuAddress, the value P2PDMA adds for BUS_ADDR mappings. */
  readonly busOffset: bigint;
}

/** The boot CPU's vendor (cpuinfo_x86.x86_vendor, or the architecture for non-x86); the P2PDMA host-bridge whitelist keys on it. */
export type CpuVendor = 'intel' | 'amd' | 'hygon' | 'zhaoxin' | 'arm' | 'nvidia' | 'google' | 'other';
/** Every {@link CpuVendor}, for validation and listings. */
export const CPU_VENDORS: readonly CpuVendor[] = ['intel', 'amd', 'hygon', 'zhaoxin', 'arm', 'nvidia', 'google', 'other'];

/** The boot CPU as cpu_data(0) describes it: vendor and family (x86 "family", e.g. 0x19 for Zen 3/4). */
export interface CpuInfo {
  /** x86_vendor, or the architecture. */
  readonly vendor: CpuVendor;
  /** x86 family (boot_cpu_data.x86). */
  readonly family: number;
}

/**
 * What a PCI function is. `host-bridge` is the device that often sits at 00.0 of a root bus
 * (class 0600); `rciep` is any other integrated endpoint on a root bus.
 */
export type PciKind = 'host-bridge' | 'root-port' | 'switch-upstream' | 'switch-downstream' | 'endpoint' | 'rciep';

const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');

/** Common part of every device: a name, an optional driver and the device-model parent. */
abstract class DeviceBase {
  /** The kernel's bus type name: 'pci' or 'platform'. */
  abstract readonly busType: 'pci' | 'platform';
  /** Bound driver name, if any; the kernel prints it in dev_warn() lines instead of the bus name. */
  driver: string | null = null;
  constructor(
    /** The device's name in the description (unique in a topology). */
    readonly name: string,
  ) {}
  /** dev_name(): the BDF for PCI, the name for platform devices. */
  abstract get devName(): string;
  /** The device-model parent (find_parent_pci_dev walks it). */
  abstract get parent(): Device | null;
  /** The prefix dev_warn() puts before a message: `<driver or bus> <dev_name>:`. */
  get logPrefix(): string {
    return `${this.driver ?? this.busType} ${this.devName}:`;
  }
}

/**
 * A PCI bus (`struct pci_bus`): a root bus of a host bridge or the secondary bus of a bridge,
 * with the functions on it.
 */
export class PciBus {
  /** The functions on this bus, in scan order (bus->devices). */
  readonly devices: PciFunction[] = [];
  /** @internal */
  constructor(
    /** The host bridge whose hierarchy it belongs to. */
    readonly hostBridge: HostBridge,
    /** The bus number (bus->number). */
    readonly number: number,
    /** The bridge whose secondary bus this is; null for a root bus. */
    readonly self: PciFunction | null,
  ) {}
  /** The PCI segment (domain) of the host bridge above it. */
  get segment(): number {
    return this.hostBridge.segment;
  }
  /** 'SSSS:BB', as the kernel names buses. */
  toString(): string {
    return `${hex(this.segment, 4)}:${hex(this.number, 2)}`;
  }
}

/**
 * One PCI function (`struct pci_dev`): a bridge (root port, switch port) or an endpoint, with
 * its BARs and ACS control. Made by {@link buildTopology}; look one up with {@link Topology.pci}.
 */
export class PciFunction extends DeviceBase {
  readonly busType = 'pci' as const;
  /** @internal set by enumeration */
  _bars: Bar[] = [];
  /** @internal */
  _secondary: PciBus | null = null;
  /** @internal */
  _subordinate: number | null = null;
  private _acs: number | null;

  /** @internal */
  constructor(
    name: string,
    /** The bus it sits on (pdev->bus). */
    readonly bus: PciBus,
    /** PCI_SLOT(devfn), 0..31. */
    readonly slot: number,
    /** PCI_FUNC(devfn), 0..7. */
    readonly fn: number,
    /** PCI vendor ID. */
    readonly vendor: number,
    /** PCI device ID. */
    readonly device: number,
    /** What kind of function it is (pci_pcie_type; `host-bridge` for the class 0600 device). */
    readonly kind: PciKind,
    acs: number | null,
    /** pdev->non_mappable_bars: pcim_p2pdma_init refuses such devices with EOPNOTSUPP. */
    readonly nonMappableBars: boolean,
  ) {
    super(name);
    this._acs = acs;
  }

  /** pci_domain_nr(): the segment of its bus. */
  get segment(): number {
    return this.bus.segment;
  }
  /** The number of the bus it sits on. */
  get busNr(): number {
    return this.bus.number;
  }
  /** PCI_DEVFN(slot, fn): slot << 3 | fn. */
  get devfn(): number {
    return (this.slot << 3) | this.fn;
  }
  /** pci_dev_id(): bus << 8 | devfn (the requester ID). */
  get devId(): number {
    return (this.bus.number << 8) | this.devfn;
  }
  /** 'SSSS:BB:DD.F' */
  get bdf(): string {
    return `${hex(this.segment, 4)}:${hex(this.bus.number, 2)}:${hex(this.slot, 2)}.${this.fn}`;
  }
  /** dev_name(): the BDF. */
  get devName(): string {
    return this.bdf;
  }
  /** The host bridge above it (pci_find_host_bridge). */
  get hostBridge(): HostBridge {
    return this.bus.hostBridge;
  }
  /** pci_upstream_bridge(): the bridge above this function, null on a root bus. */
  get upstream(): PciFunction | null {
    return this.bus.self;
  }
  /** The device-model parent: the upstream bridge, null on a root bus. */
  get parent(): Device | null {
    return this.bus.self;
  }
  /** Whether it is a PCI-to-PCI bridge (root port or switch port), with a secondary bus. */
  get isBridge(): boolean {
    return this.kind === 'root-port' || this.kind === 'switch-upstream' || this.kind === 'switch-downstream';
  }
  /** The bus below a bridge, null for other functions. */
  get secondaryBus(): PciBus | null {
    return this._secondary;
  }
  /** A bridge's secondary bus number, null for other functions. */
  get secondary(): number | null {
    return this._secondary?.number ?? null;
  }
  /** A bridge's subordinate bus number (the highest bus below it), null for other functions. */
  get subordinate(): number | null {
    return this._subordinate;
  }
  /** Its implemented BARs, in slot order. */
  get bars(): readonly Bar[] {
    return this._bars;
  }
  /** The BAR whose (lower) slot is `index`, if implemented. */
  bar(index: number): Bar | undefined {
    return this._bars.find((b) => b.index === index);
  }
  /** ACS control register value, or null when the function has no ACS capability. */
  get acsCtrl(): number | null {
    return this._acs;
  }
  /** pci_bridge_has_acs_redir() */
  get acsRedirect(): boolean {
    return acsRedirects(this._acs);
  }
  /**
   * Writes the ACS control register (as setpci would). P2PDMA results already cached per
   * provider are not recomputed, exactly as in the kernel.
   * @throws {@link SimError} EINVAL when the function has no ACS capability or `value` is not a valid ACS control.
   */
  setAcsCtrl(value: number | readonly string[]): void {
    if (this._acs === null) {
      throw new SimError('EINVAL', 'setAcsCtrl', `${this.bdf} has no ACS capability`);
    }
    this._acs = parseAcsCtrl(value, 'setAcsCtrl', `${this.bdf}.acs`);
  }
  /** vendor:device as lspci -n prints it. */
  get ids(): string {
    return `${hex(this.vendor, 4)}:${hex(this.device, 4)}`;
  }
}

/** A device that is not on PCI (a platform device, an auxiliary device, ...). */
export class PlatformDevice extends DeviceBase {
  readonly busType = 'platform' as const;
  /** @internal */
  constructor(
    name: string,
    private readonly _parent: Device | null,
  ) {
    super(name);
  }
  /** dev_name(): its name. */
  get devName(): string {
    return this.name;
  }
  /** The device-model parent given at build time, or null. */
  get parent(): Device | null {
    return this._parent;
  }
}

/** Any device of a topology: a PCI function or a platform device. */
export type Device = PciFunction | PlatformDevice;

/**
 * A PCI host bridge (`struct pci_host_bridge`): the root of one PCI hierarchy, in a segment, with
 * the offset between CPU and bus addresses of the windows below it. Peer traffic that has to
 * cross a root complex is allowed only when the whitelist knows its host bridge device.
 */
export class HostBridge {
  /** @internal */
  _rootBus!: PciBus;
  /** @internal */
  _busEnd = 0;
  /** @internal */
  constructor(
    /** Its name in the description. */
    readonly name: string,
    /** PCI segment (domain) number. */
    readonly segment: number,
    /** Bus address minus CPU physical address for every BAR below (the window offset). */
    readonly busOffset: bigint,
  ) {}
  /** Its root bus. */
  get rootBus(): PciBus {
    return this._rootBus;
  }
  /** Bus numbers this host bridge decodes: [root bus, highest subordinate]. */
  get busRange(): readonly [number, number] {
    return [this._rootBus.number, this._busEnd];
  }
  /** dev_name() of the pci_host_bridge: pciSSSS:BB */
  get devName(): string {
    return `pci${hex(this.segment, 4)}:${hex(this._rootBus.number, 2)}`;
  }
}

/**
 * A whole enumerated PCI hierarchy plus platform devices, as the kernel sees it after the PCI
 * scan: what P2PDMA distance checks and the machine's drivers walk. Made by {@link buildTopology}
 * or a {@link TopologyBuilder}, never by hand.
 */
export class Topology {
  /** @internal */
  readonly _byName = new Map<string, Device>();
  /** @internal */
  readonly _byBdf = new Map<string, PciFunction>();
  /** Link attributes and root-complex P2P profiles from the description's `fabric` (fabric.ts). */
  fabric: FabricSpec = { links: new Map(), p2p: new Map() };

  /** @internal */
  constructor(
    /** The boot CPU (the AMD Zen P2PDMA rule reads it). */
    readonly cpu: CpuInfo,
    /** The host bridges, in description order. */
    readonly hostBridges: readonly HostBridge[],
    /** Every PCI function in enumeration (depth-first) order, as for_each_pci_dev visits them. */
    readonly functions: readonly PciFunction[],
    /** The non-PCI devices. */
    readonly platformDevices: readonly PlatformDevice[],
  ) {
    for (const f of functions) {
      this._byName.set(f.name, f);
      this._byBdf.set(f.bdf, f);
    }
    for (const p of platformDevices) this._byName.set(p.name, p);
  }

  /**
   * A device by name or by BDF ('0000:03:00.0', or '03:00.0' in segment 0).
   * @throws {@link SimError} ENODEV when there is no such device.
   */
  get(nameOrBdf: string): Device {
    const d = this.find(nameOrBdf);
    if (!d) throw new SimError('ENODEV', 'Topology.get', `no device named ${JSON.stringify(nameOrBdf)}`);
    return d;
  }

  /** Like get(), returning undefined when absent. */
  find(nameOrBdf: string): Device | undefined {
    const byName = this._byName.get(nameOrBdf);
    if (byName) return byName;
    const full = /^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(nameOrBdf) ? `0000:${nameOrBdf}` : nameOrBdf;
    return this._byBdf.get(full.toLowerCase());
  }

  /**
   * A PCI function by name or BDF.
   * @throws {@link SimError} ENODEV when absent; EINVAL when the device is not on PCI.
   */
  pci(nameOrBdf: string): PciFunction {
    const d = this.get(nameOrBdf);
    if (!(d instanceof PciFunction)) {
      throw new SimError('EINVAL', 'Topology.pci', `${JSON.stringify(nameOrBdf)} is not a PCI device`);
    }
    return d;
  }

  /** Endpoints (and RCiEPs): the functions that are neither bridges nor host-bridge devices. */
  endpoints(): PciFunction[] {
    return this.functions.filter((f) => f.kind === 'endpoint' || f.kind === 'rciep');
  }

  /** Every BAR of every function, memory and I/O, in enumeration order. */
  allBars(): Bar[] {
    return this.functions.flatMap((f) => f.bars);
  }

  /** The memory BAR that contains a CPU physical address, if any. */
  barContaining(cpuAddress: bigint): Bar | undefined {
    for (const f of this.functions) {
      for (const b of f.bars) {
        if (b.type === 'mem' && cpuAddress >= b.cpuAddress && cpuAddress < b.cpuAddress + b.size) return b;
      }
    }
    return undefined;
  }
}
