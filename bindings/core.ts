/**
 * The only code that touches WebAssembly: compiles the core once per build, instantiates it per
 * simulator, types its exports, keeps typed-array views over its memory fresh, and turns the
 * core's status codes into SimError.
 */
import * as ABI from './generated/abi.js';
import { CoreTrapError, SimError } from './errors.js';

export { ABI };

/** The raw exports of the core (assembly/index.ts). i64/u64 parameters and results are BigInt. */
export interface CoreExports {
  readonly memory: WebAssembly.Memory;
  abiVersion(): number;
  init(arenaBytes: number): number;
  resultPtr(): number;
  statsPtr(): number;
  stagingPtr(): number;
  regionsPtr(): number;
  unitsPtr(): number;
  domainsPtr(): number;
  tracePtr(): number;
  addRegion(base: bigint, size: bigint, kind: number, flags: number, owner: number): number;
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

/** The build the environment asks for (DMABUF_SIM_WASM=debug|release), release by default. */
export function defaultBuild(): CoreBuild {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.DMABUF_SIM_WASM === 'debug' ? 'debug' : 'release';
}

const modules = new Map<CoreBuild, Promise<WebAssembly.Module>>();

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** Compiles a build of the core once; later calls share the Module. */
export function compileCore(build: CoreBuild = defaultBuild()): Promise<WebAssembly.Module> {
  let m = modules.get(build);
  if (!m) {
    const load = build === 'debug' ? import('./generated/core-debug.js') : import('./generated/core-release.js');
    m = load.then((mod) => WebAssembly.compile(decodeBase64(mod.wasmBase64)));
    modules.set(build, m);
  }
  return m;
}

/** Typed-array views over linear memory, re-derived whenever the memory has grown. */
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
  readonly build: CoreBuild;
  private _trapped: string | null = null;

  private constructor(instance: WebAssembly.Instance, build: CoreBuild, arenaBytes: number) {
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
    check(this.exports.init(arenaBytes), 'init', `arenaBytes=${arenaBytes}`);
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
    return new Core(instance, build, arenaBytes);
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
