/**
 * The only code that touches WebAssembly: compiles the core once per build, instantiates it per
 * simulator, types its exports, keeps typed-array views over its memory fresh, and turns the
 * core's status codes into SimError.
 */
import * as ABI from './generated/abi.js';
import { SIGNATURES } from './generated/signatures.js';
import { CoreTrapError, SimError } from './errors.js';
import { CORE_FLAVORS, loadCoreBytes, type CoreFlavor } from './core-source.js';

export { ABI };

/** The raw exports of the core (assembly/index.ts). i64/u64 parameters and results are BigInt. */
export interface CoreExports {
  /** The core's linear memory (the host's own memory for an embedded core). */
  readonly memory: WebAssembly.Memory;
  /** ABI_VERSION the module was built with; Core checks it against the bindings' `ABI.ABI_VERSION`. */
  abiVersion(): number;
  /** init(0, arenaBytes) standalone; init(base, bytes) to live in [base, base + bytes) of an imported memory. */
  init(base: number, bytes: number): number;
  /** Bytes the fixed blocks take at the front of an embedded window (the arena is the rest). */
  layoutFixedBytes(): number;
  /** Linear address of the result block (status, bytes, value and fault fields at `ABI.RES_*`). Valid after init. */
  resultPtr(): number;
  /** Linear address of the u64 counters block (offsets `ABI.STAT_*`). */
  statsPtr(): number;
  /** Linear address of the 1 MiB staging buffer for batch descriptors and host transfers. */
  stagingPtr(): number;
  /** Linear address of the region table. */
  regionsPtr(): number;
  /** Linear address of the IOMMU unit table. */
  unitsPtr(): number;
  /** Linear address of the domain table. */
  domainsPtr(): number;
  /** Linear address of the page-walk trace block filled by `walk`. */
  tracePtr(): number;
  /**
   * Adds a physical region [base, base + size) of `kind` (`ABI.REGION_KIND_*`). Returns the region
   * id, or -EINVAL (size 0, not page-aligned, over 2^42, wrapping, unknown kind), -EEXIST
   * (overlap), -ENOSPC (table full), -ENOMEM (no arena).
   */
  addRegion(base: bigint, size: bigint, kind: number, flags: number, owner: number): number;
  /** A region backed by linear memory [linear, linear + size) the host owns (assembly/mem/direct.ts). */
  addDirectRegion(base: bigint, size: bigint, kind: number, flags: number, owner: number, linear: number): number;
  /** Free 4 KiB chunks left in the arena (the sparse backing store). */
  chunksFree(): number;
  /**
   * Allocates `n` contiguous RAM frames aligned to `alignFrames` (a power of two), refcount 1,
   * reading as zeros (alloc_pages). Returns the physical address, or -EINVAL / -ENOMEM.
   */
  frameAlloc(n: bigint, alignFrames: bigint, flags: number): bigint;
  /** get_page: refcount + 1. 0, or -EINVAL when `pa` is not an allocated frame. */
  frameGet(pa: bigint): number;
  /** put_page: refcount - 1, freeing the frame at zero. The new refcount, or -EINVAL (not allocated, or last reference of a pinned frame). */
  framePut(pa: bigint): number;
  /** Frees `n` frames from `pa` that each hold exactly one reference. 0, or -EINVAL with nothing freed. */
  frameFree(pa: bigint, n: bigint): number;
  /** pin_user_pages-style pin count: +1 when `pin` is non-zero, else -1. The new pin count, or -EINVAL. */
  framePin(pa: bigint, pin: number): number;
  /** Pins or unpins `n` frames from `pa`, all or nothing (RES_VALUE: index of the failing frame). */
  framePinRange(pa: bigint, n: bigint, pin: number): number;
  /** Copies the frame record of `pa` into the result block (value = refcount | pincount << 32, bytes = flags | aux << 32). 0 or -EINVAL (not a RAM frame). */
  frameInfo(pa: bigint): number;
  /** Free frames over all RAM regions. */
  framesFree(): bigint;
  /**
   * Creates an IOMMU unit of `family` (`ABI.FAMILY_*`) with a `tlbSets` x `tlbWays` IOTLB, a
   * fault queue of `faultCap` records and a lazy flush queue of `fqCap` entries. Returns the unit
   * id, or -EINVAL, -ENOSPC, -ENOMEM.
   */
  createUnit(family: number, tlbSets: number, tlbWays: number, faultCap: number, fqCap: number): number;
  /**
   * Creates a domain (`ABI.DOMAIN_*`) on `unit` (iommu_domain_alloc). Paging domains take a page
   * table format (`ABI.FMT_*`) and input/output address widths; `strict` 1 invalidates the IOTLB
   * on every unmap, 0 queues it (lazy). Returns the domain id, or -EINVAL, -ENOENT, -ENOSPC, -ENOMEM.
   */
  createDomain(unit: number, type: number, format: number, ias: number, oas: number, strict: number): number;
  /** iommu_domain_free: drops its IOTLB entries, queued invalidations and table frames. 0, -ENOENT, or -EBUSY while a device is attached. */
  destroyDomain(id: number): number;
  /** Attaches requester `rid` to domain `dom`, to `ABI.DOMAIN_DIRECT` (no IOMMU), or detaches it (-1). 0, -EINVAL, -ENOENT, -ENOSPC. */
  attachDevice(rid: number, dom: number): number;
  /** The domain `rid` is attached to: an id, `ABI.DOMAIN_DIRECT`, or -1 (none). */
  deviceDomain(rid: number): number;
  /** Places `rid` behind `unit` with no domain, so its DMA faults are recorded on that unit. 0, -EINVAL, -ENOENT, -ENOSPC. */
  placeDevice(rid: number, unit: number): number;
  /**
   * createDomain with a format's geometry: `granule` (bytes, ARM 4K/16K/64K), `flags`
   * (`ABI.DOMAIN_F_*`), the kernel's `policy` for partial unmap and overlapping map, and the
   * page sizes to use (`pgsizeMask`, 0 for the format's default). The domain id or -errno.
   */
  createDomainEx(unit: number, type: number, format: number, ias: number, oas: number, strict: number,
    granule: number, flags: number, policy: number, pgsizeMask: bigint): number;
  /** Sets a unit's option flags (`ABI.UNIT_F_*`, e.g. fault collapsing). 0 or -errno. */
  setUnitFlags(unit: number, flags: number): number;
  /**
   * iommu_map: maps [iova, iova + size) to [pa, pa + size) with `prot` (`ABI.PROT_*`). 0, or
   * -ENOENT (no domain), -ENODEV (not paging), -EINVAL, -ERANGE, -EEXIST, -ENOMEM, with nothing changed.
   */
  map(dom: number, iova: bigint, pa: bigint, size: bigint, prot: number): number;
  /**
   * iommu_unmap: returns the bytes unmapped (whole leaves; 0 at a hole), or -ENOENT, -ENODEV,
   * -EINVAL, -ERANGE. Strict domains are invalidated before it returns; lazy ones queue it.
   */
  unmap(dom: number, iova: bigint, size: bigint): bigint;
  /**
   * Maps `n` (iova, pa, size) descriptors placed in staging at `ABI.MAPDESC_STRIDE`, all or
   * nothing: on a failure the ones done are unmapped, RES_VALUE holds the failing index and its
   * negative status is returned.
   */
  mapBatch(dom: number, n: number, prot: number): number;
  /** Unmaps `n` (iova, size) descriptors in staging, writing each one's bytes back at +8. Returns the total bytes, or a negative errno. */
  unmapBatch(dom: number, n: number): bigint;
  /**
   * Software page walk (iommu_iova_to_phys) with a per-level trace. 0 (RES_VALUE = output
   * address, RES_SHIFT, RES_PERM), a positive `ABI.FAULT_*` reason, or -ENOENT / -ENODEV.
   */
  walk(dom: number, iova: bigint): number;
  /**
   * Translates one address as requester `rid` would, through its IOTLB. 0 (RES_VALUE = output),
   * or the fault's status (-EFAULT, -EACCES, -ERANGE, -EPERM when blocked, -ENODEV when no domain)
   * with a record on the unit's fault queue.
   */
  translate(rid: number, iova: bigint, access: number): number;
  /** Translates `n` u64 addresses in staging (outputs at `ABI.BATCH_OUT`, statuses at `ABI.BATCH_STATUS`). Returns the number of faults, or -EINVAL. */
  translateBatch(rid: number, n: number, access: number): number;
  /** Flushes the unit's lazy invalidation queue. Returns the entries that were pending, or -ENOENT. */
  flush(unit: number): number;
  /** Drops every IOTLB entry of the unit. 0 or -ENOENT. */
  invalidateAll(unit: number): number;
  /** Drops the IOTLB entries tagged with domain `dom`. 0 or -ENOENT. */
  invalidateDomain(dom: number): number;
  /** Drops the domain's IOTLB entries in [start, end) (end 0: to the top). 0, -ENOENT, -EINVAL (empty range). */
  invalidateRange(dom: number, start: bigint, end: bigint): number;
  /** Valid IOTLB entries of the unit, or -ENOENT. */
  tlbValid(unit: number): number;
  /** Moves up to `max` fault records of the unit to staging (`ABI.FAULT_STRIDE` each). The count, or -ENOENT / -EINVAL. */
  faultsDrain(unit: number, max: number): number;
  /** Clears the unit's fault-queue overflow flag. 0 or -ENOENT. */
  faultsClearOverflow(unit: number): number;
  /**
   * DMA copy of `len` bytes from (srcRid, src) to (dstRid, dst), each side translated by its
   * requester's domain. 0, or the status of the fault or error that stopped it; the result block
   * holds bytes done and, on a fault, the side (0 src, 1 dst), iova, reason and family code.
   */
  dmaCopy(srcRid: number, src: bigint, dstRid: number, dst: bigint, len: bigint): number;
  /** Vectored copy over `n` COPYDESC descriptors at staging (assembly/dma/engine.ts dmaCopyV). */
  dmaCopyV(n: number): number;
  /** Device read: `len` bytes at (rid, addr) into linear memory at `host` (the staging buffer). Status as dmaCopy. */
  dmaRead(rid: number, addr: bigint, len: bigint, host: number): number;
  /** Device write: `len` bytes from linear memory at `host` to (rid, addr). Status as dmaCopy. */
  dmaWrite(rid: number, addr: bigint, len: bigint, host: number): number;
  /** Device fill of `len` bytes at (rid, addr) with byte `value`. Status as dmaCopy. */
  dmaFill(rid: number, addr: bigint, len: bigint, value: number): number;
  /** The CPU's own read of physical memory into linear memory at `host` (not DMA: no counters). 0, -EIO (no region), -ENOMEM. */
  hostRead(pa: bigint, len: bigint, host: number): number;
  /** The CPU's own write of physical memory from linear memory at `host`. 0, -EIO (no region), -ENOMEM. */
  hostWrite(pa: bigint, len: bigint, host: number): number;
  /** Arena chunks a host write of [pa, pa + len) would take (pages not yet backed, radix nodes), or -EIO (no region). */
  backingNeeded(pa: bigint, len: bigint): bigint;
  /** Benchmark baseline: `reps` raw memory.copy calls of `len` bytes inside the arena. 0, -EINVAL (len 0 or over 16 MiB), -ENOMEM. */
  memcpyBench(len: number, reps: number): number;
  /** Routes `rid`'s accesses to bus addresses [bus, bus + size) to a peer's [cpu, cpu + size) (a P2P path). 0, -EINVAL, -EEXIST (overlap), -ENOSPC. */
  addP2pRoute(rid: number, bus: bigint, size: bigint, cpu: bigint): number;
  /** Removes `rid`'s peer route starting at `bus`. 0 or -ENOENT. */
  removeP2pRoute(rid: number, bus: bigint): number;
  /** Linear address of the stage-2 trace of the last nested walk. */
  trace2Ptr(): number;
  /** Enables `bits` of PASID on `rid` (0 disables). 0, -ENODEV (no unit), -EOPNOTSUPP (VT-d legacy mode), -EINVAL, -EBUSY. */
  enablePasid(rid: number, bits: number): number;
  /** The PASID width of `rid` (0: off), or -ENODEV for a requester the core does not know. */
  pasidBits(rid: number): number;
  /**
   * Binds (rid, pasid) to `dom`, replaces its domain (`replace` 1), or unbinds it (`dom` -1):
   * 0, -EINVAL, -EOPNOTSUPP, -EBUSY, -ENOENT, -ENODEV, -ENOSPC (assembly/iommu/pasid.ts).
   */
  attachPasid(rid: number, pasid: number, dom: number, replace: number): number;
  /** The domain (rid, pasid) is bound to, or -1. */
  pasidDomain(rid: number, pasid: number): number;
  /** The PASID `rid`'s DMA requests carry (0xffffffff: none). 0, -EINVAL, -ENODEV. */
  setDmaPasid(rid: number, pasid: number): number;
  /** Invalidates `pasid`'s IOTLB entries of `dom` in [start, end). Bindings matched, or -ENOENT / -EINVAL. */
  invalidatePasid(dom: number, pasid: number, start: bigint, end: bigint): number;
  /** translate() of a request tagged with `pasid`. */
  translatePasid(rid: number, pasid: number, iova: bigint, access: number): number;
  /** translateBatch() of requests tagged with `pasid`. */
  translateBatchPasid(rid: number, pasid: number, n: number, access: number): number;
  /** A nested domain over stage-2 domain `parent`, stage 1 of `format` at IPA `root`. The id or -errno. */
  createNested(parent: number, format: number, ias: number, oas: number, granule: number, flags: number, root: bigint): number;
  /** set_dirty_tracking: 0, -ENOENT, -ENODEV, -EOPNOTSUPP (not created dirty-capable). */
  setDirtyTracking(dom: number, on: number): number;
  /** read_and_clear_dirty: the bitmap goes to staging; returns the dirty pages or -errno. */
  readAndClearDirty(dom: number, iova: bigint, length: bigint, pageSize: bigint, flags: number): bigint;
  /** Enables ATS with a `sets` x `ways` ATC on `rid`, and PRI when `pri` is 1. 0 or -errno. */
  enableAts(rid: number, sets: number, ways: number, pri: number): number;
  /** Moves up to `max` page requests of `unit` to staging (`ABI.PRQ_STRIDE` each). The count or -errno. */
  pageRequestsDrain(unit: number, max: number): number;
}

/** The standalone builds of the core: `debug` (assertions, names) or `release` (-O3, what bundles carry). */
export type CoreBuild = 'debug' | 'release';
export type { CoreFlavor } from './core-source.js';

/**
 * The build the environment asks for (DMABUF_SIM_WASM=debug|release: process.env in Node,
 * import.meta.env under vite/vitest in a browser), release by default.
 */
export function defaultBuild(): CoreBuild {
  const want = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.DMABUF_SIM_WASM
    ?? (import.meta as { env?: Record<string, string | undefined> }).env?.DMABUF_SIM_WASM;
  // A bundle that carries only the release core (dist/browser.js, dist/core.js) runs it.
  return want === 'debug' && CORE_FLAVORS.includes('debug') ? 'debug' : 'release';
}

const modules = new Map<CoreFlavor, Promise<WebAssembly.Module>>();

/**
 * Compiles a build of the core once; later calls share the Module. The bytes come from
 * core-source.ts, the loader seam each bundle replaces (see rollup.config.mjs).
 */
export function compileCore(build: CoreFlavor = defaultBuild()): Promise<WebAssembly.Module> {
  if (!(CORE_FLAVORS as readonly unknown[]).includes(build)) {
    return Promise.reject(new SimError('EINVAL', 'compileCore', `build must be one of ${CORE_FLAVORS.join(', ')}, got ${showArg(build)}`));
  }
  let m = modules.get(build);
  if (!m) {
    m = loadCoreBytes(build).then((bytes) => WebAssembly.compile(bytes));
    m.catch(() => modules.delete(build));
    modules.set(build, m);
  }
  return m;
}

/** Whether a memory is shared (its buffer a SharedArrayBuffer, even where that global is hidden). */
export function isSharedMemory(memory: WebAssembly.Memory): boolean {
  return Object.prototype.toString.call(memory.buffer) === '[object SharedArrayBuffer]';
}

/**
 * Typed-array views over linear memory, re-derived whenever the memory has grown: on every
 * access the buffer is compared with the one the views were made on. A grow detaches a plain
 * ArrayBuffer and, for shared memory, makes memory.buffer a new, longer SharedArrayBuffer, so
 * both kinds are caught, whoever grew the memory (the core, or an embedding host).
 */
export class CoreViews {
  private _buffer: ArrayBuffer | SharedArrayBuffer | undefined;
  private _u8!: Uint8Array;
  private _i32!: Int32Array;
  private _u32!: Uint32Array;
  private _u64!: BigUint64Array;
  private _i64!: BigInt64Array;

  // Whether the memory is shared (its buffer a SharedArrayBuffer: the global may be missing in a
  // page that is not cross-origin isolated, so by its tag).
  private readonly _shared: boolean;

  constructor(private readonly _memory: WebAssembly.Memory) {
    this._shared = isSharedMemory(_memory);
    this._renew(); // the views exist from the start: _fresh needs no undefined check
  }

  // Small enough to be inlined into every getter; the rebuild is out of line. A grow detaches a
  // plain memory's old buffer, so its views read length 0 (the buffer getter, which costs more
  // than the calls it guards, is skipped). A shared memory keeps its old buffer at the old
  // length: ask it.
  private _fresh(): void {
    if (this._u8.length === 0 || (this._shared && this._memory.buffer !== this._buffer)) this._renew();
  }

  private _renew(): void {
    const b = this._memory.buffer;
    if (b === this._buffer) return;
    this._buffer = b;
    this._u8 = new Uint8Array(b);
    this._i32 = new Int32Array(b);
    this._u32 = new Uint32Array(b);
    this._u64 = new BigUint64Array(b);
    this._i64 = new BigInt64Array(b);
  }

  /**
   * The u64 at word index `i` (linear address >> 3), for a call that reads a few words: the read
   * itself tells whether the views are stale (a detached buffer reads undefined, and so does a
   * shared one past its old length; below it, a shared memory's old buffer maps the same bytes),
   * so no freshness check comes first.
   */
  u64At(i: number): bigint {
    const x = this._u64[i];
    if (x !== undefined) return x;
    this._renew();
    return this._u64[i]!;
  }

  /** The u32 at word index `i` (linear address >> 2), as {@link u64At}. */
  u32At(i: number): number {
    const x = this._u32[i];
    if (x !== undefined) return x;
    this._renew();
    return this._u32[i]!;
  }

  /** Every view after one freshness check, for a call that reads several words. */
  get all(): { readonly u8: Uint8Array; readonly i32: Int32Array; readonly u32: Uint32Array; readonly u64: BigUint64Array; readonly i64: BigInt64Array } {
    this._fresh();
    return { u8: this._u8, i32: this._i32, u32: this._u32, u64: this._u64, i64: this._i64 };
  }
  /** Bytes of linear memory (index = linear address). */
  get u8(): Uint8Array { this._fresh(); return this._u8; }
  /** Signed 32-bit words (index = address >> 2). */
  get i32(): Int32Array { this._fresh(); return this._i32; }
  /** Unsigned 32-bit words (index = address >> 2). */
  get u32(): Uint32Array { this._fresh(); return this._u32; }
  /** Unsigned 64-bit words (index = address >> 3). */
  get u64(): BigUint64Array { this._fresh(); return this._u64; }
  /** Signed 64-bit words (index = address >> 3). */
  get i64(): BigInt64Array { this._fresh(); return this._i64; }
}

const I64_MIN = -(1n << 63n);
const U64_MAX = (1n << 64n) - 1n;

/** A short, safe rendering of a bad argument (no throw on symbols, never the whole value). */
function showArg(v: unknown): string {
  if (typeof v === 'bigint') { const s = `${v}n`; return s.length > 24 ? `${s.slice(0, 20)}...n` : s; }
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  return `a ${typeof v}`;
}

const KIND_F = 0;
const KIND_I32 = 1;
const KIND_I64 = 2;

/**
 * Checks one argument of a raw call against its signature ('i' i32: an integer Number in
 * -2^31..2^32-1; 'I' i64: a BigInt in -2^63..2^64-1; 'f': a Number). Wasm would otherwise throw
 * TypeError for a Number given as i64, or wrap a value out of range silently.
 * @throws {@link SimError} EINVAL naming the export and the argument's position.
 */
function checkArg(name: string, i: number, kind: number, v: unknown): void {
  if (kind === KIND_I32) {
    // (v | 0) === v: an integer in i32 range; (v >>> 0) === v: one in u32 range.
    if (typeof v !== 'number' || ((v | 0) !== v && v >>> 0 !== v)) {
      throw new SimError('EINVAL', name, `argument ${i} must be an i32/u32 Number, got ${showArg(v)}`);
    }
  } else if (kind === KIND_I64) {
    if (typeof v !== 'bigint' || v < I64_MIN || v > U64_MAX) {
      throw new SimError('EINVAL', name, `argument ${i} must be an i64/u64 BigInt, got ${showArg(v)}`);
    }
  } else if (typeof v !== 'number') {
    throw new SimError('EINVAL', name, `argument ${i} must be a Number, got ${showArg(v)}`);
  }
}

/**
 * Export `f` (`n` parameters) behind the trap guard only: a call after a trap throws, a trap marks
 * the instance. The wrapper has the export's own arity, so V8 calls the Wasm function directly.
 */
function trapGuard(core: Core, name: string, n: number, f: (...a: unknown[]) => unknown): unknown {
  switch (n) {
    case 0: return function trusted0(): unknown {
      if (core.trapped) throw core.trapError(name);
      try { return f(); } catch (e) { throw core.trapError(name, e); }
    };
    case 1: return function trusted1(a0: unknown): unknown {
      if (core.trapped) throw core.trapError(name);
      try { return f(a0); } catch (e) { throw core.trapError(name, e); }
    };
    case 2: return function trusted2(a0: unknown, a1: unknown): unknown {
      if (core.trapped) throw core.trapError(name);
      try { return f(a0, a1); } catch (e) { throw core.trapError(name, e); }
    };
    case 3: return function trusted3(a0: unknown, a1: unknown, a2: unknown): unknown {
      if (core.trapped) throw core.trapError(name);
      try { return f(a0, a1, a2); } catch (e) { throw core.trapError(name, e); }
    };
    case 4: return function trusted4(a0: unknown, a1: unknown, a2: unknown, a3: unknown): unknown {
      if (core.trapped) throw core.trapError(name);
      try { return f(a0, a1, a2, a3); } catch (e) { throw core.trapError(name, e); }
    };
    case 5: return function trusted5(a0: unknown, a1: unknown, a2: unknown, a3: unknown, a4: unknown): unknown {
      if (core.trapped) throw core.trapError(name);
      try { return f(a0, a1, a2, a3, a4); } catch (e) { throw core.trapError(name, e); }
    };
    default: return function trustedN(...a: unknown[]): unknown {
      if (core.trapped) throw core.trapError(name);
      try { return f(...a); } catch (e) { throw core.trapError(name, e); }
    };
  }
}

/** Reads an AssemblyScript string (UTF-16, byte length at ptr - 4) for abort messages. */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return '';
  const len = new Uint32Array(memory.buffer, ptr - 4, 1)[0]! >>> 1;
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr, len));
}

/** Linear addresses of the core's shared blocks, read once after init (see the `*Ptr` exports). */
export interface CoreLayout {
  /** The result block: status, bytes, value and fault fields at `ABI.RES_*`. */
  result: number;
  /** The u64 counters at `ABI.STAT_*`. */
  stats: number;
  /** The 1 MiB staging buffer for batch descriptors and host transfers. */
  staging: number;
  /** The region table. */
  regions: number;
  /** The IOMMU unit table. */
  units: number;
  /** The domain table. */
  domains: number;
  /** The page-walk trace filled by `walk` (`ABI.TRACE_STRIDE` per level). */
  trace: number;
  /** The stage-2 trace of a nested `walk`: stage-1 levels, then `RES_TRACE2` stage-2 entries from `ABI.TRACE_MAX`. */
  trace2: number;
}

/** One instance of the core: its exports, views and the addresses of its shared blocks. */
export class Core {
  /** The core's exports, each guarded: after a trap every call throws {@link CoreTrapError}. */
  readonly exports: CoreExports;
  /**
   * The same exports with the trap guard but without the per-argument checks, for the package's
   * own hot paths (the DMA engine) that validated every argument before the call: the checks of
   * {@link Core.exports} cost more than a short transfer. Anyone else uses `exports`.
   */
  readonly trusted: CoreExports;
  /** Typed views over the core's linear memory, fresh after any grow. */
  readonly views: CoreViews;
  /** Where the shared blocks are in linear memory. */
  readonly layout: CoreLayout;
  /** Which build of the core this instance runs. */
  readonly build: CoreFlavor;
  private _trapped: string | null = null;

  /** For an embedded core: its window [base, base + bytes) in the host's memory. */
  readonly window: { readonly base: number; readonly bytes: number } | null;

  private constructor(instance: WebAssembly.Instance, build: CoreFlavor, base: number, bytes: number) {
    const raw = instance.exports as unknown as CoreExports;
    this.build = build;
    this.views = new CoreViews(raw.memory);
    // Every export goes through a guard: its arguments are checked against the signature table
    // generated from the module (a wrong JS type is a usage error, SimError, and the instance
    // stays usable); a trap is a bug, and the instance is not used again.
    const guarded: Record<string, unknown> = { memory: raw.memory };
    const trusted: Record<string, unknown> = { memory: raw.memory };
    const self = this;
    for (const [name, fn] of Object.entries(raw)) {
      if (typeof fn !== 'function') continue;
      const sig = SIGNATURES[name] ?? '';
      const n = sig.length;
      const k = Array.from(sig, (c) => (c === 'I' ? KIND_I64 : c === 'i' ? KIND_I32 : KIND_F));
      const f = fn as (...a: unknown[]) => unknown;
      trusted[name] = trapGuard(self, name, n, f);
      if (n > 6) {
        // The few wide exports (createDomainEx) are control-plane calls: a rest array is fine there.
        guarded[name] = function guardWide(...a: unknown[]): unknown {
          if (self._trapped) throw new CoreTrapError(`instance already trapped: ${self._trapped}`);
          if (a.length !== n) throw new SimError('EINVAL', name, `takes ${n} arguments, got ${a.length}`);
          for (let i = 0; i < n; i++) checkArg(name, i, k[i]!, a[i]);
          try {
            return f(...a);
          } catch (e) {
            self._trapped = `${name}: ${(e as Error).message}`;
            throw e instanceof CoreTrapError ? e : new CoreTrapError(self._trapped);
          }
        };
        continue;
      }
      // Fixed parameters, no rest array: this runs on every core call (extra undefined arguments
      // are ignored by Wasm).
      guarded[name] = function guard(a0?: unknown, a1?: unknown, a2?: unknown, a3?: unknown, a4?: unknown, a5?: unknown): unknown {
        if (self._trapped) throw new CoreTrapError(`instance already trapped: ${self._trapped}`);
        if (arguments.length !== n) throw new SimError('EINVAL', name, `takes ${n} arguments, got ${arguments.length}`);
        if (n > 0) {
          checkArg(name, 0, k[0]!, a0);
          if (n > 1) {
            checkArg(name, 1, k[1]!, a1);
            if (n > 2) {
              checkArg(name, 2, k[2]!, a2);
              if (n > 3) {
                checkArg(name, 3, k[3]!, a3);
                if (n > 4) { checkArg(name, 4, k[4]!, a4); if (n > 5) checkArg(name, 5, k[5]!, a5); }
              }
            }
          }
        }
        try {
          return f(a0, a1, a2, a3, a4, a5);
        } catch (e) {
          self._trapped = `${name}: ${(e as Error).message}`;
          throw e instanceof CoreTrapError ? e : new CoreTrapError(self._trapped);
        }
      };
    }
    // Copied into objects made in one step: V8 keeps those in fast mode, where the ~70 keyed
    // stores above leave a dictionary whose every lookup costs more than a short call.
    this.exports = Object.fromEntries(Object.entries(guarded)) as unknown as CoreExports;
    this.trusted = Object.fromEntries(Object.entries(trusted)) as unknown as CoreExports;
    if (this.exports.abiVersion() !== ABI.ABI_VERSION) {
      throw new Error(`dmabuf-sim: core ABI ${this.exports.abiVersion()} does not match bindings ABI ${ABI.ABI_VERSION}`);
    }
    this.window = base === 0 ? null : { base, bytes };
    check(this.exports.init(base, bytes), 'init', base === 0 ? `arenaBytes=${bytes}` : `base=${base} bytes=${bytes}`,
      base === 0 ? undefined : 'base and bytes multiples of 4096, the window inside the memory, fixed blocks + 1 MiB arena at least');
    const e = this.exports;
    this.layout = {
      result: e.resultPtr(), stats: e.statsPtr(), staging: e.stagingPtr(), regions: e.regionsPtr(),
      units: e.unitsPtr(), domains: e.domainsPtr(), trace: e.tracePtr(), trace2: e.trace2Ptr(),
    };
  }

  /**
   * Instantiates a core with an arena of `arenaBytes` (a multiple of 4 KiB, at least 1 MiB).
   * @throws {@link SimError} EINVAL when `arenaBytes` is below 1 MiB or not a multiple of 4096;
   *   ENOMEM when linear memory cannot grow that far (the promise rejects).
   */
  static async create(arenaBytes: number, build: CoreBuild = defaultBuild()): Promise<Core> {
    const module = await compileCore(build);
    let memory: WebAssembly.Memory | undefined;
    const instance = await WebAssembly.instantiate(module, {
      env: {
        abort(msg: number, file: number, line: number, col: number) {
          const text = memory ? `${readAsString(memory, msg)} in ${readAsString(memory, file)}:${line}:${col}` : 'abort';
          throw new CoreTrapError(text);
        },
      },
    });
    memory = (instance.exports as unknown as CoreExports).memory;
    return new Core(instance, build, 0, arenaBytes);
  }

  /**
   * Instantiates the embed build on the host's memory (shared or not: the matching build is
   * chosen), keeping all its state in [base, base + bytes). The core writes nothing outside that
   * window and never grows the memory; the host may grow it at any time.
   * @throws {@link SimError} EINVAL when `memory` is not a WebAssembly.Memory, `base` or `bytes`
   *   is not a positive multiple of 4096 below 2^32, the window wraps past 4 GiB or is smaller
   *   than the fixed blocks plus 1 MiB; ENOMEM when the memory does not yet hold the window.
   */
  static async embed(memory: WebAssembly.Memory, base: number, bytes: number): Promise<Core> {
    if (!(memory instanceof WebAssembly.Memory)) throw new SimError('EINVAL', 'embed', 'memory must be a WebAssembly.Memory');
    for (const [name, v] of [['base', base], ['bytes', bytes]] as const) {
      if (!Number.isInteger(v) || v <= 0 || v % 4096 !== 0 || v >= 2 ** 32) {
        throw new SimError('EINVAL', 'embed', `${name} = ${showArg(v)} must be a positive multiple of 4096 below 2^32`);
      }
    }
    const build: CoreFlavor = isSharedMemory(memory) ? 'embed-shared' : 'embed';
    const module = await compileCore(build);
    const instance = await WebAssembly.instantiate(module, {
      env: {
        memory,
        abort() { throw new CoreTrapError('abort in the embed core'); },
      },
    });
    return new Core(instance, build, base, bytes);
  }

  /** Whether an export trapped; every later call then throws {@link CoreTrapError}. */
  get trapped(): boolean {
    return this._trapped !== null;
  }

  /** @internal The error for a call after a trap (`e` undefined) or for the trap `e` of export `name`. */
  trapError(name: string, e?: unknown): CoreTrapError | SimError {
    if (e === undefined) return new CoreTrapError(`instance already trapped: ${this._trapped}`);
    // A JS value Wasm cannot convert (a Number for an i64) fails before the call enters the
    // instance: a usage error of `trusted`, and the instance is intact.
    if (e instanceof TypeError) return new SimError('EINVAL', name, `bad argument: ${e.message}`);
    this._trapped ??= `${name}: ${(e as Error).message}`;
    return e instanceof CoreTrapError ? e : new CoreTrapError(this._trapped);
  }

  // Result block accessors.
  /** The status (0 or -errno) the last call left at `ABI.RES_STATUS`. */
  resultStatus(): number { return this.views.u32At((this.layout.result + ABI.RES_STATUS) >> 2) | 0; }
  /** `ABI.RES_BYTES` of the result block: bytes done by the last transfer (or a level count, a frame's flags). */
  resultBytes(): bigint { return this.views.u64At((this.layout.result + ABI.RES_BYTES) >> 3); }
  /** `ABI.RES_VALUE` of the result block: an output address, a failing index, a frame's counts. */
  resultValue(): bigint { return this.views.u64At((this.layout.result + ABI.RES_VALUE) >> 3); }
  /** The u32 at byte offset `off` (an `ABI.RES_*` constant) of the result block. */
  resultU32(off: number): number { return this.views.u32At((this.layout.result + off) >> 2); }
  /** The u64 at byte offset `off` (an `ABI.RES_*` constant) of the result block. */
  resultU64(off: number): bigint { return this.views.u64At((this.layout.result + off) >> 3); }
  /** The counter at byte offset `off` (an `ABI.STAT_*` constant) of the stats block. */
  stat(off: number): bigint { return this.views.u64At((this.layout.stats + off) >> 3); }
}

/**
 * Throws the SimError for a negative status; returns non-negative values unchanged. `op`,
 * `detail` and `rule` become the error's operation, message and rule id.
 * @throws {@link SimError} with the errno of `-status` (EIO for a status with no known name).
 */
export function check(status: number, op: string, detail: string, rule?: string): number {
  if (status < 0) throw SimError.fromStatus(status, op, detail, rule);
  return status;
}

/**
 * {@link check} for i64 results.
 * @throws {@link SimError} with the errno of `-status` (EIO for a status with no known name).
 */
export function check64(status: bigint, op: string, detail: string, rule?: string): bigint {
  if (status < 0n) throw SimError.fromStatus(Number(status), op, detail, rule);
  return status;
}
