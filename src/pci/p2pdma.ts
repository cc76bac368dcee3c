/**
 * The kernel's P2PDMA decisions (drivers/pci/p2pdma.c): distance and map type between a
 * provider (the PCI function whose BAR memory is read or written) and its clients (the
 * devices that do the DMA), the per-provider cache of map types, and P2P memory.
 *
 * One `P2pdma` is one running kernel over one topology: it owns pdev->p2pdma for every
 * function, the pgmap registry, and a dmesg-like log.
 */
import { SimError } from '../../bindings/errors.js';
import { type KernelLogLine, logLine } from './log.js';
import { checkCap, DEFAULT_HISTORY_CAP, Ring } from '../util/ring.js';
import {
  DEFAULT_MAX_PHYSMEM_BITS,
  DEFAULT_SUBSECTION_SIZE,
  PAGE_SHIFT,
  PAGE_SIZE,
  type P2pAllocation,
  P2pdmaState,
  P2pPage,
  type P2pPagemap,
} from './resource.js';
import { type Device, PciFunction, type Topology } from './topology.js';
import { GenPool } from '../driver-kit/gen-pool.js';
import { cpuSupportsP2pdma, hostBridgeWhitelist } from './whitelist.js';

/**
 * enum pci_p2pdma_map_type without the internal UNKNOWN:
 * - BUS_ADDR: a switch routes the traffic; program the DMA engine with PCI bus addresses
 *   (CPU physical + bus offset) and bypass the IOMMU.
 * - THRU_HOST_BRIDGE: the traffic crosses the root complex; map it through the DMA API
 *   (dma_map_resource / IOMMU) like any MMIO.
 * - NOT_SUPPORTED: no P2P between these two.
 */
export type P2pMapType = 'NOT_SUPPORTED' | 'BUS_ADDR' | 'THRU_HOST_BRIDGE';

/** How the host-bridge step of the algorithm went. */
export type HostBridgeVerdict = 'not-needed' | 'amd-zen' | 'whitelisted' | 'not-whitelisted';

/** The decision for one provider/client pair, with everything that led to it. */
export interface P2pPairResult {
  readonly provider: PciFunction;
  /** The client as given. */
  readonly client: Device;
  /** The PCI device used for the client (itself, or its nearest PCI ancestor); null if none. */
  readonly pciClient: PciFunction | null;
  readonly mapType: P2pMapType;
  /** Hops between the two (0 = same function); -1 for a client with no PCI ancestor. */
  readonly distance: number;
  /** The closest common upstream device (may be the provider or client itself); null if none. */
  readonly commonUpstream: PciFunction | null;
  /** Devices on the path with ACS redirect (RR, CR or EC), in the order the kernel lists them. */
  readonly acsRedirect: readonly PciFunction[];
  readonly hostBridge: HostBridgeVerdict;
  /** One sentence for people. */
  readonly reason: string;
  /** What the kernel prints for this pair in verbose mode, in order. */
  readonly messages: readonly KernelLogLine[];
}

/** The result of pci_p2pdma_distance_many (P2pdma.distance): the kernel's number and the pairs behind it. */
export interface P2pDistanceResult {
  /** pci_p2pdma_distance_many(): the sum of distances, or -1. */
  readonly distance: number;
  /** The pairs the kernel actually evaluated (it stops early in some cases). */
  readonly clients: readonly P2pPairResult[];
  /** Lines printed by this call (only in verbose mode). */
  readonly log: readonly KernelLogLine[];
}

/** Options of a new P2pdma: the memory hot-add limits that memremap_pages checks. */
export interface P2pdmaOptions {
  /** Hot-add granularity for ZONE_DEVICE ranges (a power of two >= 4096). @default 2 MiB (x86-64 subsection) */
  subsectionSize?: bigint;
  /** Highest physical address bit for hot-added memory (MAX_PHYSMEM_BITS). @default 46 */
  maxPhysmemBits?: number;
  /** Lines the dmesg-like log keeps (the newest; 0 = none). @default DEFAULT_HISTORY_CAP (65536) */
  logCap?: number;
}

/** The p2pmem sysfs group of a provider (/sys/bus/pci/devices/<bdf>/p2pmem/), read as values. */
export interface P2pSysfs {
  /** p2pmem/size */
  readonly size: bigint;
  /** p2pmem/available */
  readonly available: bigint;
  /** p2pmem/published */
  readonly published: boolean;
}

/** The files of the p2pmem sysfs group. */
export type P2pSysfsFile = 'size' | 'available' | 'published';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** map_types_idx(): (domain << 16) | devid */
function cacheKey(client: PciFunction): number {
  return client.segment * 0x1_0000 + client.devId;
}

/** find_parent_pci_dev(): the device itself if PCI, else its nearest PCI ancestor. */
export function findParentPciDev(dev: Device): PciFunction | null {
  let d: Device | null = dev;
  while (d) {
    if (d instanceof PciFunction) return d;
    d = d.parent;
  }
  return null;
}

/**
 * The text of `pci=disable_acs_redir=` the kernel suggests, built in a 128-byte seq_buf: each
 * entry is 'BDF;'; the last ';' is dropped, unless the buffer overflowed (then it is cut at 127).
 */
function acsList(devs: readonly PciFunction[]): string {
  const full = devs.map((d) => `${d.bdf};`).join('');
  return full.length < 128 ? full.slice(0, -1) : full.slice(0, 127);
}

/**
 * PCI P2PDMA of one running kernel over one topology (drivers/pci/p2pdma.c): the provider/client
 * decisions (pci_p2pdma_distance_many, pci_p2pdma_map_type and its per-provider cache),
 * provider state and memory (pcim_p2pdma_init, pci_p2pdma_add_resource, pci_alloc_p2pmem,
 * publishing and the p2pmem sysfs group), the ZONE_DEVICE pages, and a dmesg-like log.
 */
export class P2pdma {
  /** What was printed, the newest `logCap` lines (a ring buffer, like dmesg's). */
  private readonly _log: Ring<KernelLogLine>;
  private readonly states = new Map<PciFunction, P2pdmaState>();
  /** The system-wide pgmap registry (pgmap_array), for conflicts and pfn look-ups. */
  private readonly pagemaps: P2pPagemap[] = [];
  private readonly pages = new Map<bigint, P2pPage>();
  private readonly subsection: bigint;
  private readonly maxPhysBits: number;

  /** @throws {@link SimError} EINVAL when subsectionSize is not a power of two of at least 4096. */
  constructor(
    readonly topology: Topology,
    options: P2pdmaOptions = {},
  ) {
    this.subsection = options.subsectionSize ?? DEFAULT_SUBSECTION_SIZE;
    this.maxPhysBits = options.maxPhysmemBits ?? DEFAULT_MAX_PHYSMEM_BITS;
    this._log = new Ring(options.logCap === undefined ? DEFAULT_HISTORY_CAP : checkCap('P2pdma', 'logCap', options.logCap));
    if (this.subsection < PAGE_SIZE || (this.subsection & (this.subsection - 1n)) !== 0n) {
      throw new SimError('EINVAL', 'P2pdma', `subsectionSize must be a power of two of at least ${PAGE_SIZE}`);
    }
  }

  /** The lines the log holds, oldest first (a snapshot; at most `logCap`). */
  get log(): readonly KernelLogLine[] {
    return this._log.toArray();
  }

  /** Lines printed that the log no longer holds (beyond `logCap`). */
  get logDropped(): number {
    return this._log.dropped;
  }

  /** The log as text, one line each. */
  dmesg(): string {
    return this.log.map((l) => l.line).join('\n');
  }

  private _print(lines: readonly KernelLogLine[]): void {
    for (const l of lines) this._log.push(l);
  }

  // ---------------------------------------------------------------------------------------
  // Decisions

  /**
   * calc_map_type_and_dist() without side effects: no cache write, no log. `messages` holds
   * what a verbose call would print.
   * @throws {@link SimError} EINVAL when `provider` is not a PCI function of this topology.
   */
  decide(provider: Device, client: Device): P2pPairResult {
    const p = this.asProvider(provider, 'decide');
    const c = findParentPciDev(client);
    if (!c) return this.notPci(p, client);
    return this.calc(p, c, client);
  }

  /**
   * pci_p2pdma_distance_many(provider, clients, verbose). A single client may be passed alone
   * (pci_p2pdma_distance). Map types are cached on the provider if it has P2PDMA state.
   * @throws {@link SimError} EINVAL when `provider` is not a PCI function of this topology.
   */
  distance(provider: Device, clients: Device | readonly Device[], opts: { verbose?: boolean } = {}): P2pDistanceResult {
    const p = this.asProvider(provider, 'pci_p2pdma_distance_many');
    const list: readonly Device[] = Array.isArray(clients) ? clients : [clients as Device];
    const verbose = opts.verbose ?? false;
    const out: P2pPairResult[] = [];
    const log: KernelLogLine[] = [];
    const emit = (lines: readonly KernelLogLine[]): void => {
      if (!verbose) return;
      log.push(...lines);
      this._print(lines);
    };
    if (list.length === 0) return { distance: -1, clients: out, log };

    let notSupported = false;
    let total = 0;
    for (const client of list) {
      const c = findParentPciDev(client);
      if (!c) {
        const r = this.notPci(p, client);
        out.push(r);
        emit(r.messages);
        return { distance: -1, clients: out, log };
      }
      const r = this.calc(p, c, client);
      this.store(p, c, r.mapType);
      out.push(r);
      emit(r.messages);
      if (r.mapType === 'NOT_SUPPORTED') notSupported = true;
      if (notSupported && !verbose) break;
      total += r.distance;
    }
    return { distance: notSupported ? -1 : total, clients: out, log };
  }

  /**
   * The kernel's integer answer: pci_p2pdma_distance_many(), the sum of distances or -1.
   * @throws {@link SimError} EINVAL when `provider` is not a PCI function of this topology.
   */
  distanceMany(provider: Device, clients: readonly Device[], verbose = false): number {
    return this.distance(provider, clients, { verbose }).distance;
  }

  /**
   * pci_p2pdma_map_type(): NOT_SUPPORTED if the provider has no P2PDMA state or the client is
   * not a PCI device; else the cached type, or a fresh verbose calculation (cached after).
   * @throws {@link SimError} EINVAL when `provider` is not a PCI function of this topology.
   */
  mapType(provider: Device, client: Device): P2pMapType {
    return this.mapTypeInfo(provider, client).mapType;
  }

  /**
   * mapType() with where the answer came from and why.
   * @throws {@link SimError} EINVAL when `provider` is not a PCI function of this topology.
   */
  mapTypeInfo(provider: Device, client: Device): { mapType: P2pMapType; source: 'no-p2pdma-state' | 'not-pci' | 'cache' | 'computed'; reason: string } {
    const p = this.asProvider(provider, 'pci_p2pdma_map_type');
    const state = this.states.get(p);
    if (!state) return { mapType: 'NOT_SUPPORTED', source: 'no-p2pdma-state', reason: `${p.bdf} has no P2PDMA state (no pcim_p2pdma_init/add_resource)` };
    if (!(client instanceof PciFunction)) return { mapType: 'NOT_SUPPORTED', source: 'not-pci', reason: `${client.devName} is not a PCI device` };
    const cached = state.mapTypes.get(cacheKey(client));
    if (cached !== undefined) return { mapType: cached, source: 'cache', reason: 'cached when first computed' };
    const r = this.calc(p, client, client);
    this.store(p, client, r.mapType);
    this._print(r.messages);
    return { mapType: r.mapType, source: 'computed', reason: r.reason };
  }

  /** The cached map type of a pair, or 'UNKNOWN' (the xarray has no entry). */
  cachedMapType(provider: PciFunction, client: PciFunction): P2pMapType | 'UNKNOWN' {
    return this.states.get(provider)?.mapTypes.get(cacheKey(client)) ?? 'UNKNOWN';
  }

  private store(p: PciFunction, c: PciFunction, t: P2pMapType): void {
    this.states.get(p)?.mapTypes.set(cacheKey(c), t);
  }

  private asProvider(d: Device, op: string): PciFunction {
    if (!(d instanceof PciFunction)) throw new SimError('EINVAL', op, `provider ${d.devName} is not a PCI device`);
    if (this.topology.find(d.bdf) !== d) throw new SimError('EINVAL', op, `provider ${d.bdf} belongs to another topology`);
    return d;
  }

  private notPci(p: PciFunction, client: Device): P2pPairResult {
    return {
      provider: p, client, pciClient: null, mapType: 'NOT_SUPPORTED', distance: -1, commonUpstream: null,
      acsRedirect: [], hostBridge: 'not-needed',
      reason: `${client.devName} is not a PCI device and has no PCI parent`,
      messages: [logLine('warn', client, 'cannot be used for peer-to-peer DMA as it is not a PCI device')],
    };
  }

  /** calc_map_type_and_dist(), step by step. */
  private calc(provider: PciFunction, client: PciFunction, asGiven: Device): P2pPairResult {
    const acs: PciFunction[] = [];
    const messages: KernelLogLine[] = [];
    let distA = 0;
    let distB = 0;
    let common: PciFunction | null = null;

    // Walk up from the provider; at each step look for that device on the client's chain.
    outer: for (let a: PciFunction | null = provider; a; a = a.upstream) {
      distB = 0;
      if (a.acsRedirect) acs.push(a);
      for (let bb: PciFunction | null = client; bb; bb = bb.upstream) {
        if (bb === a) {
          common = a;
          break outer;
        }
        distB++;
      }
      distA++;
    }

    const base = { provider, client: asGiven, pciClient: client };
    const distance = distA + distB;
    if (common) {
      // The client's side below the common device counts too.
      for (let bb: PciFunction | null = client; bb && bb !== common; bb = bb.upstream) if (bb.acsRedirect) acs.push(bb);
      if (acs.length === 0) {
        const reason =
          provider === client ? 'same PCI function'
          : provider.bus === client.bus && provider.slot === client.slot ? `functions of one device below ${common.bdf}`
          : `common upstream bridge ${common.bdf}, no ACS redirect on the path`;
        return { ...base, mapType: 'BUS_ADDR', distance, commonUpstream: common, acsRedirect: [], hostBridge: 'not-needed', reason, messages };
      }
      messages.push(logLine('warn', client, `ACS redirect is set between the client and provider (${provider.bdf})`));
      messages.push(logLine('warn', client, `to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=${acsList(acs)}`));
    }

    const via = common
      ? `ACS redirect on ${acs.map((d) => d.bdf).join(', ')} sends the traffic through the host bridge`
      : 'no common upstream bridge; the traffic crosses the host bridge';
    if (cpuSupportsP2pdma(this.topology.cpu)) {
      return {
        ...base, mapType: 'THRU_HOST_BRIDGE', distance, commonUpstream: common, acsRedirect: acs, hostBridge: 'amd-zen',
        reason: `${via}; AMD family 0x${this.topology.cpu.family.toString(16)} (Zen or newer) routes P2P`, messages,
      };
    }
    const wl = hostBridgeWhitelist(provider, client);
    if (wl.ok) {
      return { ...base, mapType: 'THRU_HOST_BRIDGE', distance, commonUpstream: common, acsRedirect: acs, hostBridge: 'whitelisted', reason: `${via}; ${wl.detail}`, messages };
    }
    for (const w of wl.warnings) messages.push(logLine('warn', w.dev, w.text));
    messages.push(logLine('warn', client,
      `cannot be used for peer-to-peer DMA as the client and provider (${provider.bdf}) do not share an upstream bridge or whitelisted host bridge`));
    return { ...base, mapType: 'NOT_SUPPORTED', distance, commonUpstream: common, acsRedirect: acs, hostBridge: 'not-whitelisted', reason: `${via}; ${wl.detail}`, messages };
  }

  // ---------------------------------------------------------------------------------------
  // Provider state and memory

  /** The provider's P2PDMA state (pdev->p2pdma), if any. */
  state(pdev: PciFunction): P2pdmaState | undefined {
    return this.states.get(pdev);
  }

  /**
   * pcim_p2pdma_init(): P2PDMA state without memory (enough for map types to be cached). A
   * second call changes nothing.
   * @throws {@link SimError} EINVAL when `pdev` is not a PCI function of this topology;
   * EOPNOTSUPP when it has non-mappable BARs.
   */
  init(pdev: PciFunction): void {
    const p = this.asProvider(pdev, 'pcim_p2pdma_init');
    if (p.nonMappableBars) throw new SimError('EOPNOTSUPP', 'pcim_p2pdma_init', `${p.bdf} has non-mappable BARs`);
    if (!this.states.has(p)) this.states.set(p, new P2pdmaState(p));
  }

  /**
   * pci_p2pdma_add_resource(pdev, bar, size, offset): registers [offset, offset+size) of a
   * memory BAR as P2P memory; size 0 means the rest of the BAR.
   *
   * As in the kernel, a failure at the memremap stage leaves the P2PDMA state and the (empty)
   * pool with its sysfs files in place.
   * @throws {@link SimError} in the kernel's order: EINVAL when `pdev` is not a PCI function of
   * this topology, for a BAR that is not memory, a negative size or offset, an offset past the BAR
   * or a range past its end (nothing changed); EOPNOTSUPP for non-mappable BARs; then from
   * memremap_pages: ENOMEM when the first or last page is already registered, EINVAL beyond
   * MAX_PHYSMEM_BITS (mhp_range_allowed) or when start or size is not subsection aligned
   * (check_pfn_span), EEXIST when the range covers an existing one.
   */
  addResource(pdev: PciFunction, bar: number, size: bigint = 0n, offset: bigint = 0n): P2pPagemap {
    const OP = 'pci_p2pdma_add_resource';
    const p = this.asProvider(pdev, OP);
    const b = p.bars.find((x) => x.index === bar);
    if (!b || b.type !== 'mem') {
      throw new SimError('EINVAL', OP, `${p.bdf}: BAR ${bar} is ${b ? 'an I/O BAR' : 'absent'}, not a memory BAR`);
    }
    if (offset < 0n || size < 0n) throw new SimError('EINVAL', OP, `${p.bdf}: negative size or offset`);
    if (offset >= b.size) throw new SimError('EINVAL', OP, `${p.bdf}: offset ${hex(offset)} is not below the BAR ${bar} length ${hex(b.size)}`);
    const len = size === 0n ? b.size - offset : size;
    if (len + offset > b.size) {
      throw new SimError('EINVAL', OP, `${p.bdf}: size ${hex(len)} + offset ${hex(offset)} is past the BAR ${bar} length ${hex(b.size)}`);
    }

    this.init(p);
    const state = this.states.get(p)!;
    state.pool ??= new GenPool({ name: `${p.bdf} p2pmem` }); // pci_p2pdma_setup_pool(): also creates the p2pmem sysfs group

    const start = b.cpuAddress + offset;
    const end = start + len - 1n;
    const covers = (pfnAddr: bigint): P2pPagemap | undefined =>
      this.pagemaps.find((m) => pfnAddr >= (m.start & ~(PAGE_SIZE - 1n)) && pfnAddr <= m.end);
    const page = (a: bigint): bigint => a & ~(PAGE_SIZE - 1n);
    if (covers(page(start)) || covers(page(end))) {
      this._print([logLine('warn', p, 'WARNING: Conflicting mapping in same section')]);
      throw new SimError('ENOMEM', OP, `${p.bdf}: ${hex(start)}-${hex(end)} conflicts with memory already registered for P2PDMA`);
    }
    if (end >> BigInt(this.maxPhysBits) !== 0n) {
      throw new SimError('EINVAL', OP, `${p.bdf}: ${hex(start)}-${hex(end)} exceeds the maximum addressable range (MAX_PHYSMEM_BITS ${this.maxPhysBits})`);
    }
    if (start % this.subsection !== 0n || len % this.subsection !== 0n) {
      this._print([logLine('warn', p, `WARNING: Misaligned __add_pages start: ${hex(start >> BigInt(PAGE_SHIFT))} end: ${hex((start + len) / PAGE_SIZE - 1n)}`)]);
      throw new SimError('EINVAL', OP, `${p.bdf}: ${hex(start)}+${hex(len)} is not aligned to the ${hex(this.subsection)}-byte memory hot-add subsection`);
    }
    if (this.pagemaps.some((m) => start <= m.end && m.start <= end)) {
      throw new SimError('EEXIST', OP, `${p.bdf}: ${hex(start)}-${hex(end)} overlaps memory already registered for P2PDMA`);
    }

    const pgmap: P2pPagemap = Object.freeze({ provider: p, bar: b, start, end, busStart: b.busAddress + offset });
    this.pagemaps.push(pgmap);
    state.pagemaps.push(pgmap);
    state.pool.add(start, len, pgmap.busStart);
    this._print([logLine('info', p, `added peer-to-peer DMA memory ${hex(start)}-${hex(end)}`)]);
    return pgmap;
  }

  /**
   * pci_alloc_p2pmem(): page-granular P2P memory, or null (no state, no pool, no room, size <= 0).
   * Free it with `free` and the same size.
   */
  alloc(pdev: PciFunction, size: bigint): P2pAllocation | null {
    const state = this.states.get(pdev);
    if (!state?.pool || size <= 0n) return null;
    const cpu = state.pool.tryAlloc(size, { op: 'pci_alloc_p2pmem' });
    if (cpu === null) return null;
    return Object.freeze({ provider: pdev, cpuAddress: cpu, busAddress: state.pool.virtToPhys(cpu), size });
  }

  /**
   * pci_free_p2pmem(pdev, addr, size).
   * @throws {@link SimError} EINVAL when `pdev` has no P2P memory, or the range was not allocated
   * with that size (the kernel BUG()s); nothing changes.
   */
  free(pdev: PciFunction, cpuAddress: bigint, size: bigint): void {
    const pool = this.states.get(pdev)?.pool;
    if (!pool) throw new SimError('EINVAL', 'pci_free_p2pmem', `${pdev.bdf} has no P2P memory`);
    pool.free(cpuAddress, size, 'pci_free_p2pmem');
  }

  /** pci_p2pmem_virt_to_bus(): 0n when the device has no state or the address is not in its pool. */
  virtToBus(pdev: PciFunction, cpuAddress: bigint): bigint {
    const pool = this.states.get(pdev)?.pool;
    if (!pool) return 0n;
    const bus = pool.virtToPhys(cpuAddress);
    return bus < 0n ? 0n : bus;
  }

  /** pci_p2pmem_publish(): no effect on a device without P2PDMA state. */
  publish(pdev: PciFunction, publish = true): void {
    const s = this.states.get(pdev);
    if (s) s.published = publish;
  }

  /** pci_has_p2pmem(): state, a pool and published. */
  hasP2pmem(pdev: PciFunction): boolean {
    const s = this.states.get(pdev);
    return !!s && s.pool !== null && s.published;
  }

  /**
   * pci_p2pmem_find_many(): the published provider closest to all clients; ties are broken at
   * random (pass `random` for a fixed choice). Null when none is compatible.
   */
  findMany(clients: readonly Device[], opts: { random?: () => number } = {}): PciFunction | null {
    let best = Number.MAX_SAFE_INTEGER;
    let closest: PciFunction[] = [];
    for (const pdev of this.topology.functions) {
      if (!this.hasP2pmem(pdev)) continue;
      const d = this.distance(pdev, clients).distance;
      if (d < 0 || d > best) continue;
      if (d < best) {
        closest = [];
        best = d;
      }
      closest.push(pdev);
    }
    if (closest.length === 0) return null;
    const r = (opts.random ?? Math.random)();
    return closest[Math.min(closest.length - 1, Math.floor(r * closest.length))]!;
  }

  /** The p2pmem sysfs group; null when it does not exist (no pool was ever set up). */
  sysfs(pdev: PciFunction): P2pSysfs | null {
    const s = this.states.get(pdev);
    if (!s?.pool) return null;
    return { size: s.pool.size(), available: s.pool.avail(), published: s.published };
  }

  /**
   * Reads /sys/bus/pci/devices/<bdf>/p2pmem/<file> as text (a number and a newline).
   * @throws {@link SimError} ENOENT when the group is absent (no pool was ever set up).
   */
  readSysfs(pdev: PciFunction, file: P2pSysfsFile): string {
    const s = this.sysfs(pdev);
    if (!s) throw new SimError('ENOENT', 'read', `/sys/bus/pci/devices/${pdev.bdf}/p2pmem/${file}: no such file`);
    switch (file) {
      case 'size':
        return `${s.size}\n`;
      case 'available':
        return `${s.available}\n`;
      case 'published':
        return `${s.published ? 1 : 0}\n`;
    }
  }

  /** The ZONE_DEVICE page at a CPU physical address, or null if it is not P2P memory. */
  pageAt(cpuAddress: bigint): P2pPage | null {
    const m = this.pagemaps.find((x) => cpuAddress >= x.start && cpuAddress <= x.end);
    if (!m) return null;
    const pfn = cpuAddress >> BigInt(PAGE_SHIFT);
    let pg = this.pages.get(pfn);
    if (!pg) {
      pg = new P2pPage(m, pfn);
      this.pages.set(pfn, pg);
    }
    return pg;
  }

  /** The pages of an allocation, created on first look. */
  *pagesOf(a: P2pAllocation): Generator<P2pPage> {
    const first = a.cpuAddress & ~(PAGE_SIZE - 1n);
    for (let at = first; at < a.cpuAddress + a.size; at += PAGE_SIZE) yield this.pageAt(at)!;
  }

  /**
   * The bus address for a CPU physical address inside a provider's memory BAR, as a BUS_ADDR
   * mapping programs it (phys + p2pdma_provider.bus_offset).
   * @throws {@link SimError} EINVAL when the address is outside the memory BARs of `pdev`.
   */
  busAddressOf(pdev: PciFunction, cpuAddress: bigint): bigint {
    const b = pdev.bars.find((x) => x.type === 'mem' && cpuAddress >= x.cpuAddress && cpuAddress < x.cpuAddress + x.size);
    if (!b) throw new SimError('EINVAL', 'pci_p2pdma_bus_addr_map', `${hex(cpuAddress)} is not in a memory BAR of ${pdev.bdf}`);
    return cpuAddress + b.busOffset;
  }
}
