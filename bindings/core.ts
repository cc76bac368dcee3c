/**
 * The only code that touches WebAssembly: compiles the core once per build, instantiates it per
 * simulator, types its exports, keeps typed-array views over its memory fresh, and turns the
 * core's status codes into SimError.
 */
import * as ABI from './generated/abi.js';
import { CoreTrapError, SimError } from './errors.js';
import { CORE_FLAVORS, loadCoreBytes, type CoreFlavor } from './core-source.js';

export { ABI };

/** The raw exports of the core (assembly/index.ts). i64/u64 parameters and results are BigInt. */
export interface CoreExports {
  readonly memory: WebAssembly.Memory;
  abiVersion(): number;
  /** init(0, arenaBytes) standalone; init(base, bytes) to live in [base, base + bytes) of an imported memory. */
  init(base: number, bytes: number): number;
  /** Bytes the fixed blocks take at the front of an embedded window (the arena is the rest). */
  layoutFixedBytes(): number;
  resultPtr(): number;
  statsPtr(): number;
  stagingPtr(): number;
  regionsPtr(): number;
  unitsPtr(): number;
  domainsPtr(): number;
  tracePtr(): number;
  addRegion(base: bigint, size: bigint, kind: number, flags: number, owner: number): number;
  /** A region backed by linear memory [linear, linear + size) the host owns (assembly/mem/direct.ts). */
  addDirectRegion(base: bigint, size: bigint, kind: number, flags: number, owner: number, linear: number): number;
  chunksFree(): number;
  frameAlloc(n: bigint, alignFrames: bigint, flags: number): bigint;
  frameGet(pa: bigint): number;
  framePut(pa: bigint): number;
  frameFree(pa: bigint, n: bigint): number;
  framePin(pa: bigint, pin: number): number;
  frameInfo(pa: bigint): number;
  framesFree(): bigint;
  createUnit(family: number, tlbSets: number, tlbWays: number, faultCap: number, fqCap: number): number;
  createDomain(unit: number, type: number, format: number, ias: number, oas: number, strict: number): number;
  destroyDomain(id: number): number;
  attachDevice(rid: number, dom: number): number;
  deviceDomain(rid: number): number;
  placeDevice(rid: number, unit: number): number;
  // Issue 11 (page-table formats, kernel policies, fault model): assembly/index.ts.
  createDomainEx(unit: number, type: number, format: number, ias: number, oas: number, strict: number,
    granule: number, flags: number, policy: number, pgsizeMask: bigint): number;
  setUnitFlags(unit: number, flags: number): number;
  map(dom: number, iova: bigint, pa: bigint, size: bigint, prot: number): number;
  unmap(dom: number, iova: bigint, size: bigint): bigint;
  mapBatch(dom: number, n: number, prot: number): number;
  unmapBatch(dom: number, n: number): bigint;
  walk(dom: number, iova: bigint): number;
  translate(rid: number, iova: bigint, access: number): number;
  translateBatch(rid: number, n: number, access: number): number;
  flush(unit: number): number;
  invalidateAll(unit: number): number;
  invalidateDomain(dom: number): number;
  invalidateRange(dom: number, start: bigint, end: bigint): number;
  tlbValid(unit: number): number;
  faultsDrain(unit: number, max: number): number;
  faultsClearOverflow(unit: number): number;
  dmaCopy(srcRid: number, src: bigint, dstRid: number, dst: bigint, len: bigint): number;
  dmaRead(rid: number, addr: bigint, len: bigint, host: number): number;
  dmaWrite(rid: number, addr: bigint, len: bigint, host: number): number;
  dmaFill(rid: number, addr: bigint, len: bigint, value: number): number;
  hostRead(pa: bigint, len: bigint, host: number): number;
  hostWrite(pa: bigint, len: bigint, host: number): number;
  memcpyBench(len: number, reps: number): number;
  addP2pRoute(rid: number, bus: bigint, size: bigint, cpu: bigint): number;
  removeP2pRoute(rid: number, bus: bigint): number;
}

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
  private _buffer: ArrayBuffer | SharedArrayBuffer | null = null;
  private _u8!: Uint8Array;
  private _i32!: Int32Array;
  private _u32!: Uint32Array;
  private _u64!: BigUint64Array;
  private _i64!: BigInt64Array;

  constructor(private readonly _memory: WebAssembly.Memory) {}

  private _fresh(): void {
    const b = this._memory.buffer;
    if (b === this._buffer) return;
    this._buffer = b;
    this._u8 = new Uint8Array(b);
    this._i32 = new Int32Array(b);
    this._u32 = new Uint32Array(b);
    this._u64 = new BigUint64Array(b);
    this._i64 = new BigInt64Array(b);
  }
  get u8(): Uint8Array { this._fresh(); return this._u8; }
  get i32(): Int32Array { this._fresh(); return this._i32; }
  get u32(): Uint32Array { this._fresh(); return this._u32; }
  get u64(): BigUint64Array { this._fresh(); return this._u64; }
  get i64(): BigInt64Array { this._fresh(); return this._i64; }
}

/** Reads an AssemblyScript string (UTF-16, byte length at ptr - 4) for abort messages. */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  if (!ptr) return '';
  const len = new Uint32Array(memory.buffer, ptr - 4, 1)[0]! >>> 1;
  return String.fromCharCode(...new Uint16Array(memory.buffer, ptr, len));
}

export interface CoreLayout {
  result: number;
  stats: number;
  staging: number;
  regions: number;
  units: number;
  domains: number;
  trace: number;
}

/** One instance of the core: its exports, views and the addresses of its shared blocks. */
export class Core {
  readonly exports: CoreExports;
  readonly views: CoreViews;
  readonly layout: CoreLayout;
  readonly build: CoreFlavor;
  private _trapped: string | null = null;

  /** For an embedded core: its window [base, base + bytes) in the host's memory. */
  readonly window: { readonly base: number; readonly bytes: number } | null;

  private constructor(instance: WebAssembly.Instance, build: CoreFlavor, base: number, bytes: number) {
    const raw = instance.exports as unknown as CoreExports;
    this.build = build;
    this.views = new CoreViews(raw.memory);
    // Every export goes through a guard: a trap is a bug, and the instance is not used again.
    const guarded: Record<string, unknown> = { memory: raw.memory };
    for (const [name, fn] of Object.entries(raw)) {
      if (typeof fn !== 'function') continue;
      guarded[name] = (...args: unknown[]) => {
        if (this._trapped) throw new CoreTrapError(`instance already trapped: ${this._trapped}`);
        try {
          return (fn as (...a: unknown[]) => unknown)(...args);
        } catch (e) {
          this._trapped = `${name}: ${(e as Error).message}`;
          throw e instanceof CoreTrapError ? e : new CoreTrapError(this._trapped);
        }
      };
    }
    this.exports = guarded as unknown as CoreExports;
    if (this.exports.abiVersion() !== ABI.ABI_VERSION) {
      throw new Error(`dmabuf-sim: core ABI ${this.exports.abiVersion()} does not match bindings ABI ${ABI.ABI_VERSION}`);
    }
    this.window = base === 0 ? null : { base, bytes };
    check(this.exports.init(base, bytes), 'init', base === 0 ? `arenaBytes=${bytes}` : `base=${base} bytes=${bytes}`,
      base === 0 ? undefined : 'base and bytes multiples of 4096, the window inside the memory, fixed blocks + 1 MiB arena at least');
    const e = this.exports;
    this.layout = {
      result: e.resultPtr(), stats: e.statsPtr(), staging: e.stagingPtr(), regions: e.regionsPtr(),
      units: e.unitsPtr(), domains: e.domainsPtr(), trace: e.tracePtr(),
    };
  }

  /** Instantiates a core with an arena of `arenaBytes` (a multiple of 4 KiB, at least 1 MiB). */
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
   */
  static async embed(memory: WebAssembly.Memory, base: number, bytes: number): Promise<Core> {
    if (!(memory instanceof WebAssembly.Memory)) throw new SimError('EINVAL', 'embed', 'memory must be a WebAssembly.Memory');
    for (const [name, v] of [['base', base], ['bytes', bytes]] as const) {
      if (!Number.isInteger(v) || v <= 0 || v % 4096 !== 0 || v >= 2 ** 32) {
        throw new SimError('EINVAL', 'embed', `${name} = ${v} must be a positive multiple of 4096 below 2^32`);
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

  get trapped(): boolean {
    return this._trapped !== null;
  }

  // Result block accessors.
  resultStatus(): number { return this.views.i32[(this.layout.result + ABI.RES_STATUS) >> 2]!; }
  resultBytes(): bigint { return this.views.u64[(this.layout.result + ABI.RES_BYTES) >> 3]!; }
  resultValue(): bigint { return this.views.u64[(this.layout.result + ABI.RES_VALUE) >> 3]!; }
  resultU32(off: number): number { return this.views.u32[(this.layout.result + off) >> 2]!; }
  resultU64(off: number): bigint { return this.views.u64[(this.layout.result + off) >> 3]!; }
  stat(off: number): bigint { return this.views.u64[(this.layout.stats + off) >> 3]!; }
}

/** Throws the SimError for a negative status; returns non-negative values unchanged. */
export function check(status: number, op: string, detail: string, rule?: string): number {
  if (status < 0) throw SimError.fromStatus(status, op, detail, rule);
  return status;
}

/** The same for i64 results. */
export function check64(status: bigint, op: string, detail: string, rule?: string): bigint {
  if (status < 0n) throw SimError.fromStatus(Number(status), op, detail, rule);
  return status;
}
