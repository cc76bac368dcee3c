/**
 * A machine: the core (memory, IOMMU, DMA engine) wired to a PCI topology, the kernel's P2PDMA
 * decisions, the DMA API per device and the DMA-BUF framework. Drivers and scenarios build on
 * this; it holds no policy of its own beyond what the kernel does at boot:
 *  - every memory BAR is a device-memory region at its CPU address;
 *  - with an IOMMU, one unit per host bridge and a default paging domain per device (the DMA
 *    API domain Linux gives each group); without, DMA is direct;
 *  - a client's DMA to a peer BAR whose map type is BUS_ADDR is routed by the switch below
 *    both of them and never reaches the IOMMU;
 *  - one virtual clock (the DMA-BUF kernel's SimClock, in ns), advanced by the fabric model
 *    (src/time) by what every DMA transfer costs on this topology (docs/performance-model.md).
 */
import { createSimulator, type Simulator } from '../simulator.js';
import { SimError } from '../../bindings/errors.js';
import { objArg } from '../util/args.js';
import type { Region } from '../memory/physical-memory.js';
import { defaultFormat, FAMILY_FORMATS, type IommuDomain, type IommuFamily, type IommuUnit, type PgtableFormat } from '../iommu/iommu.js';
import type { IommuKernel } from '../iommu/kernel.js';
import {
  parseTopology, P2pdma, Topology, PciFunction, type Bar, type Device, type HostBridge,
  type TopologyDescription,
} from '../pci/index.js';
import { DmaDevice, p2pResolverFrom, Swiotlb, type DmaDeviceOptions, type P2pResolver } from '../dma-mapping/index.js';
import { DmaBufKernel, type KernelProfileName } from '../dma-buf/index.js';
import { checkRuleOverrides, resolveProfile, type KernelRuleOverrides } from '../dma-buf/profile.js';
import { checkCap, DEFAULT_HISTORY_CAP } from '../util/ring.js';
import { SimClock } from '../dma-buf/clock.js';
import { FabricModel, type TimeOptions } from '../time/model.js';
import { GenPool } from '../driver-kit/gen-pool.js';
import { compileCore, defaultBuild, isSharedMemory, type CoreFlavor } from '../../bindings/core.js';
import { createEmbeddedCore, createEmbeddedSimulator } from '../embed-entry.js';

/**
 * The machine's IOMMU (MachineOptions.iommu): one unit of `family` per host bridge, and the
 * default DMA domain each device gets (iommu.strict, the page-table format, the kernel era).
 */
export interface MachineIommuOptions {
  /** The IOMMU architecture: 'vtd' (Intel VT-d), 'smmuv3' (Arm), 'amd-vi' or 'riscv'. */
  family: IommuFamily;
  /** Strict (default) or lazy IOTLB invalidation for the default domains. */
  strict?: boolean;
  /** @default 48 */
  ias?: number;
  /** The DMA domains' page-table format: one the family walks. @default the family's (vtd-ss, arm-lpae-s1, amd-v1, riscv) */
  format?: PgtableFormat;
  /** Kernel of the IOMMU layer (src/iommu/kernel.ts). @default from `profile`: 5.15 -> 5.15, 6.x -> 6.12, latest -> mainline */
  kernel?: IommuKernel;
  /**
   * VT-d only: the units run in scalable mode (intel_iommu=sm_on), which PASIDs need (a PASID
   * table per device) and which reports faults with the scalable-mode codes. @default false
   */
  scalableMode?: boolean;
}

/** The IOMMU kernel a DMA-BUF profile era runs on (each profile is one real kernel). */
export const IOMMU_KERNEL_OF_PROFILE: Record<KernelProfileName, IommuKernel> = { '5.15': '5.15', '6.x': '6.12', latest: 'mainline' };
const UNIT_NAME: Record<IommuFamily, string> = { vtd: 'dmar', smmuv3: 'smmu', 'amd-vi': 'ivhd', riscv: 'riscv-iommu' };

/**
 * How much history a machine keeps (MachineOptions.history). Every log is a ring of the newest
 * entries (older ones are counted as dropped), so a run of any length costs bounded memory; 0
 * turns a log off (the simulation runs the same). Each field falls back to `cap`.
 */
export interface MachineHistoryOptions {
  /** Entries of every log below that is not given. @default DEFAULT_HISTORY_CAP (65536) */
  cap?: number;
  /** The DMA-BUF kernel's event log (`machine.kernel.events`). */
  kernelEvents?: number;
  /** The P2PDMA kernel log (`machine.p2pdma.log`, `dmesg()`). */
  dmesg?: number;
  /** DMA transfer records a scenario run keeps per act (TracedDma.transfers). */
  transfers?: number;
  /** Each reference driver's event log (habanalabs `log`, vfio-pci, amdgpu and RDMA `events`). */
  driverEvents?: number;
}

/** MachineOptions.history resolved: a capacity for every log. */
export interface MachineHistory {
  /** Capacity of `machine.kernel.events`. */
  readonly kernelEvents: number;
  /** Capacity of `machine.p2pdma.log`. */
  readonly dmesg: number;
  /** Capacity of the transfer records of a traced run on this machine. */
  readonly transfers: number;
  /** Capacity of each reference driver's event log on this machine. */
  readonly driverEvents: number;
}

/** Checks MachineOptions.history: EINVAL naming the field. */
function checkHistoryOptions(h: MachineHistoryOptions | undefined): MachineHistory {
  const op = 'Machine.create';
  if (h === undefined) h = {};
  if (typeof h !== 'object' || h === null || Array.isArray(h)) throw new SimError('EINVAL', op, 'history must be an object');
  for (const k of Object.keys(h)) {
    if (!['cap', 'kernelEvents', 'dmesg', 'transfers', 'driverEvents'].includes(k)) throw new SimError('EINVAL', op, `history.${k.slice(0, 40)} is not a history (cap, kernelEvents, dmesg, transfers, driverEvents)`);
  }
  const cap = h.cap === undefined ? DEFAULT_HISTORY_CAP : checkCap(op, 'history.cap', h.cap);
  const one = (k: keyof MachineHistory): number => (h![k] === undefined ? cap : checkCap(op, `history.${k}`, h![k]));
  return Object.freeze({ kernelEvents: one('kernelEvents'), dmesg: one('dmesg'), transfers: one('transfers'), driverEvents: one('driverEvents') });
}

/** Options of {@link Machine.create}. Only `topology` is required. */
export interface MachineOptions {
  /** The PCI topology: a parsed Topology, its JSON description, or the JSON text. */
  topology: Topology | TopologyDescription | string;
  /** IOMMU per host bridge; omitted or null: no IOMMU, DMA is direct. */
  iommu?: MachineIommuOptions | null;
  /** DMA-BUF kernel behaviour era. @default '6.x' */
  profile?: KernelProfileName;
  /**
   * Per-rule overrides of the profile's DMA-BUF rules, each switchable on its own: e.g.
   * `{ attachTimeMapping: false }` turns off DB-09 (attach-time mapping of mismatched
   * dynamic-ness) under '5.15' or '6.x', `{ attachTimeMapping: true }` turns it on under
   * 'latest'. The rules are the switches of {@link index!KernelProfile} (KERNEL_RULE_VALUES).
   * @default the profile's own
   */
  dmaBufRules?: KernelRuleOverrides;
  /** How much history (event logs, kernel log, transfer records) the machine keeps. @default 65536 entries each */
  history?: MachineHistoryOptions;
  /** DB-25 violations throw instead of being reported. @default false */
  strictLocking?: boolean;
  /** System RAM above 4 GiB. @default 16 GiB */
  ramBytes?: bigint;
  /** @default 128 MiB (ignored with `simulator`) */
  arenaBytes?: number;
  /**
   * Build the machine on this simulator instead of a new one: for instance an embedded one
   * (dmabuf-sim/embed's createEmbeddedSimulator) whose core lives in a window of a host's memory.
   * The machine adds its RAM and BAR regions to it; the simulator must have none at those
   * addresses.
   */
  simulator?: Simulator;
  /**
   * Embedded simulators only: back the system RAM above 4 GiB (`ramBytes` of it) by the host's own
   * linear memory from this byte offset (RegionOptions.linear), so the host sees every byte a
   * device DMAs into RAM. IOMMU page tables are allocated from RAM too, so they land there.
   */
  ramLinear?: number;
  /**
   * The performance model: costs (link hops, switch and root-complex latencies, memories,
   * IOTLB and walk costs, invalidations, control-plane calls) and the clock's start. Every DMA
   * transfer advances the machine's clock by its modelled cost (docs/performance-model.md).
   */
  time?: TimeOptions;
}

/** Checks MachineOptions.time: EINVAL naming the field. */
function checkTimeOptions(t: TimeOptions | undefined): TimeOptions {
  if (t === undefined) return {};
  const op = 'Machine.create';
  if (typeof t !== 'object' || t === null) throw new SimError('EINVAL', op, 'time must be an object');
  for (const [k, v] of Object.entries(t)) {
    if (typeof v === 'number' && !(Number.isFinite(v) && v >= 0)) throw new SimError('EINVAL', op, `time.${k} = ${v} must be a non-negative number`);
  }
  if (t.startNs !== undefined && !Number.isSafeInteger(t.startNs)) throw new SimError('EINVAL', op, `time.startNs = ${t.startNs} must be a safe integer`);
  return t;
}

/** Where system RAM lives: above 4 GiB (general use), and below 2 GiB (swiotlb, 32-bit masks). */
export const RAM_HIGH_BASE = 0x1_0000_0000n;
/** Base of the low RAM region (1 MiB): the swiotlb pool and 32-bit DMA masks allocate from it. */
export const RAM_LOW_BASE = 0x10_0000n;
/** Size of the low RAM region: up to 2 GiB. */
export const RAM_LOW_SIZE = 0x7ff0_0000n;
/**
 * Device memory beyond the BARs (HBM or VRAM no BAR reaches) lives above the MEM64 window, which
 * ends at 2^46, in 1 GiB-aligned pieces up to 2^48.
 */
export const DEVICE_MEMORY_BASE = 1n << 46n;
/** End (exclusive) of the device-memory space {@link Machine.addDeviceMemory} hands out. */
export const DEVICE_MEMORY_END = 1n << 48n;

/** Options of {@link Machine.addDeviceMemory}. */
export interface DeviceMemoryOptions {
  /** Bytes; the address space is handed out in whole GiB. */
  size: bigint;
  /** Region name, e.g. `gaudi0 HBM (beyond BAR0)`. */
  name: string;
  /** Lowest address to use (first fit from there). @default DEVICE_MEMORY_BASE */
  from?: bigint;
}

/**
 * A simulated host: RAM, a PCI topology with its BARs as device memory, an IOMMU unit per host
 * bridge (or direct DMA), the kernel's P2PDMA decisions, one DMA API device per PCI function,
 * the DMA-BUF kernel and the virtual clock with its fabric model. Drivers are created on it.
 * Create with {@link Machine.create}.
 */
export class Machine {
  private readonly _dmaDevices = new Map<PciFunction, DmaDevice>();
  private readonly _barRegions = new Map<Bar, Region>();
  /** Per client: the memory BARs it reaches by bus address (see routePeers). */
  private readonly _busAddrBars = new Map<PciFunction, Bar[]>();
  private readonly _units = new Map<HostBridge, IommuUnit>();
  private readonly _nameCounters = new Map<string, number>();
  /** The physical address space of device memory beyond the BARs (gen_pool, 1 GiB units). */
  private readonly _deviceMemory = new GenPool({ minAllocOrder: 30, name: 'device memory' });
  private readonly _driverState = new Map<abstract new () => unknown, unknown>();
  readonly swiotlb: Swiotlb;
  readonly p2pResolver: P2pResolver;
  /** The performance model timing every DMA transfer on `clock`. */
  readonly time: FabricModel;

  private constructor(
    readonly sim: Simulator,
    readonly topology: Topology,
    readonly p2pdma: P2pdma,
    readonly kernel: DmaBufKernel,
    readonly ram: Region,
    readonly ramLow: Region,
    readonly iommu: MachineIommuOptions | null,
    timeOptions: TimeOptions,
    /** The capacity of every log this machine keeps (MachineOptions.history resolved). */
    readonly history: MachineHistory,
  ) {
    const { startNs, ...costs } = timeOptions;
    this.time = new FabricModel(this, kernel.clock, costs);
    if (startNs) kernel.clock.advance(startNs);
    this.swiotlb = new Swiotlb(sim.memory, {});
    this.p2pResolver = p2pResolverFrom(p2pdma);
    this._deviceMemory.add(DEVICE_MEMORY_BASE, DEVICE_MEMORY_END - DEVICE_MEMORY_BASE);
  }

  /**
   * The next instance name for a driver prefix on this machine: `hl0`, `hl1`, ... Each machine
   * counts on its own, so two machines in one process name their devices the same way.
   */
  deviceName(prefix: string): string {
    const n = this._nameCounters.get(prefix) ?? 0;
    this._nameCounters.set(prefix, n + 1);
    return `${prefix}${n}`;
  }

  /**
   * Device memory no BAR reaches (HBM beyond the DRAM BAR, invisible VRAM): a device-memory
   * region, not CPU-accessible, placed first fit in [DEVICE_MEMORY_BASE, DEVICE_MEMORY_END) from
   * `from`.
   * @throws {@link SimError} EINVAL when size is not a positive bigint; ENOMEM when no free range
   *   fits from `from` up to DEVICE_MEMORY_END.
   */
  addDeviceMemory(opts: DeviceMemoryOptions): Region {
    const op = 'addDeviceMemory';
    if (!opts || typeof opts.size !== 'bigint' || opts.size <= 0n) throw new SimError('EINVAL', op, 'size must be a positive bigint');
    const base = this._deviceMemory.alloc(opts.size, { from: opts.from, op });
    try {
      return this.sim.memory.addRegion({ base, size: opts.size, kind: 'device', cpuAccessible: false, cacheable: false, name: opts.name });
    } catch (e) {
      this._deviceMemory.free(base, opts.size, op);
      throw e;
    }
  }

  /**
   * Builds a machine (boot): parses the topology, adds RAM and every memory BAR as a region,
   * creates the IOMMU units and routes peer traffic the P2PDMA decisions allow.
   * @throws {@link SimError} EINVAL when options is not an object, the topology description is
   *   invalid (naming its JSON path), ramBytes is not a page-aligned size, the profile is unknown, iommu.format is not one the family
   *   walks, a `time` cost is negative or not a number, `dmaBufRules` names an unknown rule or
   *   gives a rule a value it does not take (naming `dmaBufRules.<rule>`), or a `history` cap is
   *   not a non-negative integer (naming `history.<log>`); EEXIST when a BAR overlaps RAM or
   *   another BAR; ENOMEM when the arena cannot hold the regions.
   */
  static async create(opts: MachineOptions): Promise<Machine> {
    objArg('Machine.create', 'options', opts);
    // Options checked before anything is built.
    const history = checkHistoryOptions(opts.history);
    const rules = checkRuleOverrides('Machine.create', 'dmaBufRules', opts.dmaBufRules);
    resolveProfile(opts.profile ?? '6.x', rules);
    const topo = opts.topology instanceof Topology ? opts.topology : parseTopology(opts.topology);
    const sim = opts.simulator ?? await createSimulator({ arenaBytes: opts.arenaBytes ?? 128 << 20 });
    const ram = sim.memory.addRegion({
      base: RAM_HIGH_BASE, size: opts.ramBytes ?? 16n << 30n, kind: 'ram', name: 'System RAM',
      ...(opts.ramLinear === undefined ? {} : { linear: opts.ramLinear }),
    });
    const ramLow = sim.memory.addRegion({ base: RAM_LOW_BASE, size: RAM_LOW_SIZE, kind: 'ram', name: 'System RAM (low)' });
    // One clock for the machine: fences, the kernel log and the fabric model all read it.
    const kernel = new DmaBufKernel({
      profile: opts.profile ?? '6.x', overrides: rules, strict: opts.strictLocking ?? false, clock: new SimClock(), eventCap: history.kernelEvents,
    });
    const io = opts.iommu ?? null;
    if (io?.scalableMode !== undefined && (typeof io.scalableMode !== 'boolean' || (io.scalableMode && io.family !== 'vtd'))) {
      throw new SimError('EINVAL', 'Machine.create', `iommu.scalableMode must be true or false, and true only for vtd units`);
    }
    if (io?.format !== undefined && !FAMILY_FORMATS[io.family]?.includes(io.format)) {
      throw new SimError('EINVAL', 'Machine.create', `iommu.format '${io.format}' is not walked by ${io.family} units (${FAMILY_FORMATS[io.family]?.join(', ')})`);
    }
    const m = new Machine(sim, topo, new P2pdma(topo, { logCap: history.dmesg }), kernel, ram, ramLow,
      io ? { ...io, kernel: io.kernel ?? IOMMU_KERNEL_OF_PROFILE[opts.profile ?? '6.x'] } : null, checkTimeOptions(opts.time), history);
    for (const bar of topo.allBars()) {
      if (bar.type !== 'mem') continue;
      const region = sim.memory.addRegion({
        base: bar.cpuAddress, size: bar.size, kind: 'device', cpuAccessible: true,
        cacheable: false, name: `${bar.device.name} BAR${bar.index}`,
      });
      m._barRegions.set(bar, region);
    }
    if (m.iommu) {
      for (const hb of topo.hostBridges) {
        m._units.set(hb, sim.iommu.createUnit({
          family: m.iommu.family, name: `${UNIT_NAME[m.iommu.family]}${m._units.size}`, scalableMode: m.iommu.scalableMode ?? false,
        }));
      }
    }
    m.routePeers();
    sim.dma.setCostModel(m.time);
    m.kernel.onEvent((e) => m.time.chargeEvent(e.kind));
    return m;
  }

  /**
   * Machines built one after another, each done with before the next is built (a scenario's
   * acts): see {@link MachineSeries}. `arenaBytes` is every machine's arena. @default 128 MiB
   */
  static series(arenaBytes = 128 << 20): MachineSeries {
    return new MachineSeries(arenaBytes);
  }

  /** Adds a switch route for every (client, provider memory BAR) pair whose map type is BUS_ADDR. */
  private routePeers(): void {
    const eps = this.topology.endpoints();
    for (const provider of eps) {
      const bars = provider.bars.filter((b) => b.type === 'mem');
      if (bars.length === 0) continue;
      for (const client of eps) {
        if (client === provider || this.p2pdma.decide(provider, client).mapType !== 'BUS_ADDR') continue;
        for (const bar of bars) this.sim.iommu.addP2pRoute(this.rid(client), bar.busAddress, bar.size, bar.cpuAddress);
        let list = this._busAddrBars.get(client);
        if (!list) this._busAddrBars.set(client, (list = []));
        list.push(...bars);
      }
    }
  }

  /**
   * The memory BARs a PCI function reaches by bus address (map type BUS_ADDR: the switch routes
   * its requests there, past the IOMMU), in endpoint order: the P2P routes the machine was built
   * with. Empty for a function of another machine.
   */
  busAddrBars(fn: PciFunction): readonly Bar[] {
    return this._busAddrBars.get(fn) ?? [];
  }

  /** The machine's virtual clock (ns): the DMA-BUF kernel's, which fences and the log read. */
  get clock(): SimClock {
    return this.kernel.clock;
  }

  /** The memory BAR whose CPU address range holds `pa`, or undefined. */
  barAt(pa: bigint): Bar | undefined {
    for (const bar of this._barRegions.keys()) if (pa >= bar.cpuAddress && pa - bar.cpuAddress < bar.size) return bar;
    return undefined;
  }

  /** Argument check: `fn` is a PCI function of this machine's topology (not a look-alike, not another machine's). */
  private _ownFn(op: string, fn: unknown): void {
    if (!(fn instanceof PciFunction) || this.topology.find(fn.name) !== fn) {
      throw new SimError('EINVAL', op, 'fn must be a PCI function of this machine');
    }
  }

  /** A PCI function by name or BDF. Throws ENODEV. */
  pci(nameOrBdf: string): PciFunction {
    const d = this.topology.get(nameOrBdf);
    if (!(d instanceof PciFunction)) throw new SimError('ENODEV', 'pci', `no PCI function '${nameOrBdf}'`);
    return d;
  }

  /**
   * Requester ID of a PCI function: segment << 16 | bus << 8 | devfn.
   * @throws {@link SimError} EINVAL when `fn` is not a PCI function of this machine.
   */
  rid(fn: PciFunction): number {
    this._ownFn('rid', fn);
    return ((fn.hostBridge.segment << 16) | fn.devId) >>> 0;
  }

  /**
   * The IOMMU unit of a function's host bridge (null without an IOMMU).
   * @throws {@link SimError} EINVAL when `fn` is not a PCI function of this machine.
   */
  unitOf(fn: PciFunction): IommuUnit | null {
    this._ownFn('unitOf', fn);
    return this._units.get(fn.hostBridge) ?? null;
  }

  /** The machine's IOMMU units, one per host bridge, in host-bridge order; empty without an IOMMU. */
  units(): IommuUnit[] {
    return [...this._units.values()];
  }

  /**
   * The device-memory region behind a BAR.
   * @throws {@link SimError} EINVAL when `bar` is not a memory BAR of this machine.
   */
  barRegion(bar: Bar): Region {
    const r = this._barRegions.get(bar);
    if (!r) throw new SimError('EINVAL', 'barRegion', typeof bar === 'object' && bar !== null && bar.device ? `BAR${bar.index} of ${bar.device.name} is not a memory BAR of this machine` : 'bar must be a BAR of this machine');
    return r;
  }

  /**
   * The DMA API face of a PCI function, made on first use with its default domain (a paging
   * domain on its host bridge's unit, or direct without an IOMMU). `opts` (DMA masks, segment
   * limits) apply only on that first call.
   * @throws {@link SimError} EINVAL when `fn` is not a PCI function of this machine or `opts` is
   *   not an object.
   */
  dmaDevice(fn: PciFunction, opts: Partial<Omit<DmaDeviceOptions, 'rid' | 'domain'>> = {}): DmaDevice {
    this._ownFn('dmaDevice', fn);
    objArg('dmaDevice', 'options', opts);
    let d = this._dmaDevices.get(fn);
    if (d) return d;
    const unit = this.unitOf(fn);
    let domain: IommuDomain | 'direct' = 'direct';
    if (unit && this.iommu) {
      const format: PgtableFormat = this.iommu.format ?? defaultFormat(this.iommu.family);
      domain = unit.createDomain({ type: 'paging', format, ias: this.iommu.ias ?? 48, oas: 48, strict: this.iommu.strict ?? true, kernel: this.iommu.kernel });
    }
    d = new DmaDevice(this.sim, {
      rid: this.rid(fn), domain, name: fn.name, p2pClient: fn, p2p: this.p2pResolver,
      dmaMask: (1n << 64n) - 1n, coherentDmaMask: (1n << 64n) - 1n, swiotlb: this.swiotlb, ...opts,
    });
    this._dmaDevices.set(fn, d);
    return d;
  }


  /**
   * Per-machine state of a driver (e.g. the RDMA fabric: every QP by number), made from `cls`
   * on first use, so that two machines never share it.
   */
  driverState<T>(cls: new () => T): T {
    let s = this._driverState.get(cls) as T | undefined;
    if (s === undefined) {
      s = new cls();
      this._driverState.set(cls, s);
    }
    return s;
  }

  /** P2PDMA map type between a provider and a client (the kernel's decision, cached as it does). */
  decide(provider: Device, client: Device) {
    return this.p2pdma.decide(provider, client);
  }
}

/** The largest arena a series' window is made for; larger ones get a core per machine. */
const SERIES_ARENA_MAX = 512 << 20;

/**
 * Machines built one after another, each done with before the next (a scenario's acts), on one
 * linear memory: every machine is a fresh embedded core in the same window, which the core
 * zeroes as it uses it, so nothing of an earlier machine shows. Why: V8 counts every Wasm memory
 * as external memory and collects garbage each time one grows by tens of MiB; six machines on
 * six memories of 64 MiB cost six full collections, one memory grows once (and a shared one, where
 * the host has them, is not counted at all: see seriesMemory in machine.ts). Once a machine of the
 * series is built, the earlier ones must not be used any more. Where there is no embed build (the
 * debug core, a bundle that carries the release core alone), or for an arena createSimulator
 * refuses or a large one, each machine gets a core of its own, as {@link Machine.create} gives.
 * Make one with {@link Machine.series}; one per run, never shared between runs.
 */
export class MachineSeries {
  private _memory: WebAssembly.Memory | null = null;
  private _standalone: boolean;
  private _base = 65536;
  private _bytes = 0;

  /** @internal use {@link Machine.series} */
  constructor(readonly arenaBytes: number) {
    const a = arenaBytes;
    this._standalone = !(Number.isInteger(a) && a % 4096 === 0 && a >= 1 << 20 && a <= SERIES_ARENA_MAX) || defaultBuild() !== 'release';
  }

  /**
   * The next machine of the series (options as {@link Machine.create}, the arena the series').
   * @throws {@link SimError} as {@link Machine.create} (the promise rejects).
   */
  async create(opts: Omit<MachineOptions, 'arenaBytes' | 'simulator' | 'ramLinear'>): Promise<Machine> {
    if (!this._memory && !this._standalone) {
      // The fixed blocks' size, from a throwaway core of the build the series will run (as
      // fixedBytes does for the plain one): the shared build where the host has shared memory.
      let probe = seriesMemory(64, true);
      let fixed = await fixedBytesOn(probe);
      if (fixed === null && isSharedMemory(probe)) fixed = await fixedBytesOn(probe = seriesMemory(64, false));
      if (fixed === null) {
        this._standalone = true; // no embed build in this bundle
      } else {
        this._bytes = fixed + this.arenaBytes;
        this._memory = seriesMemory(Math.ceil((this._base + this._bytes) / 65536), isSharedMemory(probe));
      }
    }
    if (!this._memory) return Machine.create({ ...opts, arenaBytes: this.arenaBytes });
    const simulator = await createEmbeddedSimulator({ memory: this._memory, base: this._base, bytes: this._bytes });
    return Machine.create({ ...opts, simulator });
  }
}

/**
 * A series' memory of `pages`, shared when `shared` and the host allows it. Why shared: V8 counts
 * a plain Wasm memory as external memory, and one of tens of MiB starts a full garbage
 * collection as it is made (several ms, more than a short run spends in all its other
 * collections); a shared memory is not counted. The machines are the same on either: the
 * embed-shared build is the embed build over a shared memory, and the memory never grows.
 */
function seriesMemory(pages: number, shared: boolean): WebAssembly.Memory {
  if (shared) {
    try {
      return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    } catch {
      // No shared memory here (a page that is not cross-origin isolated): a plain one.
    }
  }
  return new WebAssembly.Memory({ initial: pages });
}

/** The fixed blocks' bytes of the embed build `probe` (4 MiB) takes, or null when the bundle has no such build. */
async function fixedBytesOn(probe: WebAssembly.Memory): Promise<number | null> {
  try {
    const core = await createEmbeddedCore({ memory: probe, base: 65536, bytes: probe.buffer.byteLength - 65536 });
    return core.exports.layoutFixedBytes();
  } catch (e) {
    if (e instanceof SimError && e.op === 'compileCore') return null;
    throw e;
  }
}

/**
 * Starts reading and compiling the core build that {@link Machine.series} machines run on (an
 * embed build, or the debug core when DMABUF_SIM_WASM=debug), so that the work, done off the main
 * thread, overlaps what the caller does before the first machine (the CLI validating its
 * scenario). The compiled module is the one every later machine uses; a failure is left to them.
 */
export function prefetchCore(): void {
  const build: CoreFlavor = defaultBuild() !== 'release' ? defaultBuild() : isSharedMemory(seriesMemory(1, true)) ? 'embed-shared' : 'embed';
  compileCore(build).catch(() => {});
}


