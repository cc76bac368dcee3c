/**
 * Scenario validation: a parsed document in, a typed Scenario out, or a ScenarioError with one
 * diagnostic per problem (unknown field, wrong type, unknown op, unknown device or object
 * name, bad topology), each at its line and column.
 */
import { ERRNO, PciFunction, SIMULATOR_LIMITS } from '../index.js';
import { KERNEL_RULE_VALUES, type KernelProfileName, type KernelRuleOverrides } from '../index.js';
import { parsePattern } from './pattern.js';
import {
  type Act, type ActIommu, COMMON_FIELDS, type Expectation, type FieldKind, IOMMU_FAMILIES, KIND_PLURAL,
  type ObjectKind, OP_SPECS, PROFILES, type Scenario, type Step,
} from './schema.js';
import { type Diagnostic, formatPath, type Path, ScenarioError, type SourceDoc } from './source.js';
import {
  builtinTopology, builtinTopologyName, type LoadedTopology, loadTopologyFile, type ReadText, topologyFromDoc,
} from './topology-source.js';
import type { IommuFamily } from '../index.js';

/** Options of {@link validateScenario}. */
export interface ValidateOptions {
  /** Reads topology files a scenario names. Without it, only built-in and inline topologies work. */
  readText?: ReadText;
  /** Stop after this many diagnostics. @default 50 */
  maxErrors?: number;
}

type Obj = Record<string, unknown>;

const KIND_NAME: Record<ObjectKind, string> = { buffer: 'buffer', va: 'device VA', fd: 'fd', mr: 'MR', mmap: 'mmap', attachment: 'attachment',
  umem: 'user memory', ioas: 'IOAS', hwpt: 'HWPT', fault: 'fault queue', vdev: 'bound device' };

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function suggest(word: string, options: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const dd = distance(word, o);
    if (dd < bestD) {
      best = o;
      bestD = dd;
    }
  }
  return best !== undefined && bestD <= (word.length <= 3 ? 1 : Math.max(2, Math.floor(word.length / 3))) ? `; did you mean '${best}'?` : '';
}

const SUFFIX: Record<string, bigint> = { '': 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

function readSize(v: unknown, suffixes: boolean): bigint | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (/^0x[0-9a-f]+$/i.test(s)) return BigInt(s);
  const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(s);
  if (m && (suffixes || m[2] === '')) return BigInt(m[1]!) * SUFFIX[m[2]!.toUpperCase()]!;
  return undefined;
}

interface Defined {
  kind: ObjectKind;
  path: string;
  line?: number;
}

class Validator {
  readonly diags: Diagnostic[] = [];
  private readonly _max: number;
  private readonly _topos = new Map<string, LoadedTopology | null>();

  constructor(readonly doc: SourceDoc, readonly opts: ValidateOptions) {
    this._max = opts.maxErrors ?? 50;
  }

  err(path: Path, message: string, at: 'key' | 'value' = 'value'): void {
    if (this.diags.length < this._max) this.diags.push(this.doc.diag(path, message, at));
  }

  line(path: Path): { line: number; col: number } {
    return this.doc.locate(path) ?? { line: 1, col: 1 };
  }

  fields(o: Obj, path: Path, allowed: readonly string[], what: string): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.err([...path, k], `unknown field${what} (fields: ${allowed.join(', ')})${suggest(k, allowed)}`, 'key');
    }
  }

  str(o: Obj, key: string, path: Path, required: boolean): string | undefined {
    const v = o[key];
    if (v === undefined) {
      if (required) this.err(path, `'${key}' is required`);
      return undefined;
    }
    if (typeof v !== 'string' || v.trim() === '') {
      this.err([...path, key], `expected a non-empty string, got ${kindOf(v)}`);
      return undefined;
    }
    return v;
  }

  profile(v: unknown, path: Path): KernelProfileName | undefined {
    if (v === undefined) return undefined;
    const s = typeof v === 'number' ? String(v) : v;
    if (typeof s !== 'string' || !(PROFILES as readonly string[]).includes(s)) {
      this.err(path, `expected one of ${PROFILES.join(', ')}, got ${kindOf(v)}`);
      return undefined;
    }
    return s as KernelProfileName;
  }

  /** `dmaBufRules:` a mapping of rule switches (KERNEL_RULE_VALUES), each error at its key. */
  dmaBufRules(v: unknown, path: Path): KernelRuleOverrides | undefined {
    if (v === undefined) return undefined;
    if (!isObj(v)) {
      this.err(path, `expected a mapping of rule switches (${Object.keys(KERNEL_RULE_VALUES).join(', ')}), got ${kindOf(v)}`);
      return undefined;
    }
    const rules = Object.keys(KERNEL_RULE_VALUES);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const allowed = rules.includes(k) ? KERNEL_RULE_VALUES[k as keyof KernelRuleOverrides] : undefined;
      if (!allowed) this.err([...path, k], `unknown kernel rule (rules: ${rules.join(', ')})${suggest(k, rules)}`, 'key');
      else if (!allowed.includes(x)) this.err([...path, k], `expected ${allowed.join(' or ')}, got ${kindOf(x)}`);
      else out[k] = x;
    }
    return out as KernelRuleOverrides;
  }

  iommu(v: unknown, path: Path): ActIommu | null | undefined {
    if (v === undefined) return undefined;
    if (v === null || v === 'none') return null;
    if (!isObj(v)) {
      this.err(path, `expected { family, strict? } or null, got ${kindOf(v)}`);
      return undefined;
    }
    this.fields(v, path, ['family', 'strict', 'scalableMode'], ' in iommu');
    const fam = v.family;
    if (typeof fam !== 'string' || !(IOMMU_FAMILIES as readonly string[]).includes(fam)) {
      if (fam === undefined) this.err(path, "'family' is required");
      else this.err([...path, 'family'], `expected one of ${IOMMU_FAMILIES.join(', ')}, got ${kindOf(fam)}`);
      return undefined;
    }
    if (v.strict !== undefined && typeof v.strict !== 'boolean') {
      this.err([...path, 'strict'], `expected true or false, got ${kindOf(v.strict)}`);
      return undefined;
    }
    if (v.scalableMode !== undefined && typeof v.scalableMode !== 'boolean') {
      this.err([...path, 'scalableMode'], `expected true or false, got ${kindOf(v.scalableMode)}`);
      return undefined;
    }
    if (v.scalableMode === true && fam !== 'vtd') {
      this.err([...path, 'scalableMode'], `scalable mode is a VT-d mode; family is ${fam}`);
      return undefined;
    }
    const out: ActIommu = { family: fam as IommuFamily, strict: (v.strict as boolean | undefined) ?? true };
    if (v.scalableMode !== undefined) out.scalableMode = v.scalableMode as boolean;
    return out;
  }

  topology(v: unknown, path: Path): LoadedTopology | null {
    if (typeof v === 'string') {
      const key = `ref:${v}`;
      if (this._topos.has(key)) return this._topos.get(key)!;
      let r: LoadedTopology | null = null;
      const name = builtinTopologyName(v);
      try {
        if (name !== undefined) r = builtinTopology(name);
        else if (!this.opts.readText) this.err(path, `cannot read topology file '${v}' here (only builtin and inline topologies)`);
        else {
          const file = resolveRelative(this.doc.file, v);
          r = loadTopologyFile(file, this.opts.readText);
        }
      } catch (e) {
        if (e instanceof ScenarioError) {
          const d = e.diagnostics[0];
          if (d && /^cannot read the file: /.test(d.message)) this.err(path, `cannot read topology file '${v}': ${d.message.replace(/^cannot read the file: /, '')}`);
          else if (name !== undefined) this.err(path, d?.message ?? e.message);
          else for (const dd of e.diagnostics) if (this.diags.length < this._max) this.diags.push(dd);
        } else throw e;
      }
      this._topos.set(key, r);
      return r;
    }
    if (isObj(v)) {
      const r = topologyFromDoc(this.doc, path, v, `${this.doc.file} (inline)`);
      if ('topology' in r) return r;
      if (this.diags.length < this._max) this.diags.push(r);
      return null;
    }
    this.err(path, `expected builtin, a topology file name, or a topology description, got ${kindOf(v)}`);
    return null;
  }

  /** The value of one op field, converted; undefined after reporting a problem. */
  field(kind: FieldKind, v: unknown, path: Path, act: ActScope): unknown {
    const bad = (what: string): undefined => {
      this.err(path, `expected ${what}, got ${kindOf(v)}`);
      return undefined;
    };
    switch (kind.type) {
      case 'string':
        return typeof v === 'string' ? v : bad('a string');
      case 'bool':
        return typeof v === 'boolean' ? v : bad('true or false');
      case 'int':
        return typeof v === 'number' && Number.isInteger(v) && v >= kind.min && v <= kind.max ? v : bad(`an integer ${kind.min}..${kind.max}`);
      case 'size': {
        const n = readSize(v, true);
        return n !== undefined ? n : bad('a size (e.g. 4096, "0x1000", "2M")');
      }
      case 'address': {
        const n = readSize(v, false);
        return n !== undefined ? n : bad('an address (e.g. 4096 or "0x1000")');
      }
      case 'enum':
        if (typeof v !== 'string') return bad(`one of ${kind.values.join(', ')}`);
        if (!kind.values.includes(v)) {
          this.err(path, `expected one of ${kind.values.join(', ')}, got '${v}'${suggest(v, kind.values)}`);
          return undefined;
        }
        return v;
      case 'flags': {
        const list = typeof v === 'string' ? v.split('|').map((s) => s.trim()).filter((s) => s !== '') : v;
        if (!Array.isArray(list)) return bad(`a list of flags (${kind.values.join(', ')})`);
        const out: string[] = [];
        for (const [i, f] of list.entries()) {
          const name = typeof f === 'string' ? f.replace(/^(IBV_ACCESS_|PROT_)/, '') : f;
          if (typeof name !== 'string' || !kind.values.includes(name)) {
            const p = typeof v === 'string' ? path : [...path, i];
            this.err(p, `unknown flag ${typeof f === 'string' ? `'${f}'` : kindOf(f)} (flags: ${kind.values.join(', ')})${typeof f === 'string' ? suggest(f, kind.values) : ''}`);
            return undefined;
          }
          out.push(name);
        }
        return out;
      }
      case 'pattern': {
        const p = parsePattern(v);
        if (typeof p === 'string') {
          this.err(path, p);
          return undefined;
        }
        return p;
      }
      case 'device': {
        if (typeof v !== 'string') return bad('a device name');
        if (!act.topology) return v; // the topology is broken: reported already
        const d = act.topology.topology.find(v);
        const names = act.topology.topology.endpoints().map((e) => e.name).join(', ');
        if (!d) {
          this.err(path, `unknown device '${v}' (devices: ${names})${suggest(v, act.topology.topology.endpoints().map((e) => e.name))}`);
          return undefined;
        }
        if (!(d instanceof PciFunction)) {
          this.err(path, `'${v}' is a platform device, not a PCI function (devices: ${names})`);
          return undefined;
        }
        return v;
      }
      case 'ref': {
        if (typeof v !== 'string') return bad(`the name of a ${kind.kinds.map((k) => KIND_NAME[k]).join(' or ')}`);
        const def = act.defined.get(v);
        const want = kind.kinds.map((k) => KIND_NAME[k]).join(' or ');
        if (!def) {
          const later = act.later.get(v);
          if (later) {
            this.err(path, `'${v}' is defined later, at line ${later.line} (${later.path})`);
            return undefined;
          }
          const candidates = [...act.defined].filter(([, d]) => kind.kinds.includes(d.kind)).map(([n]) => n);
          const list = kind.kinds.length === 1 ? KIND_PLURAL[kind.kinds[0]!] : 'defined so far';
          this.err(path, `unknown ${want} '${v}' (${candidates.length ? `${list}: ${candidates.join(', ')}` : `no ${want} is defined before this step`})${suggest(v, candidates)}`);
          return undefined;
        }
        if (!kind.kinds.includes(def.kind)) {
          this.err(path, `'${v}' is a ${KIND_NAME[def.kind]} (line ${def.line}), expected a ${want}`);
          return undefined;
        }
        return v;
      }
    }
  }

  expectation(v: unknown, path: Path): Expectation | undefined {
    if (v === undefined || v === 'ok') return {};
    if (!isObj(v)) {
      this.err(path, `expected ok, { errno }, { bytes } or { result }, got ${kindOf(v)}`);
      return undefined;
    }
    this.fields(v, path, ['errno', 'bytes', 'result'], ' in expect');
    const out: { errno?: string[]; bytes?: Expectation['bytes']; result?: Record<string, string | number | boolean | null> } = {};
    if (v.errno !== undefined) {
      const list = Array.isArray(v.errno) ? v.errno : [v.errno];
      const codes: string[] = [];
      list.forEach((c, i) => {
        const p = Array.isArray(v.errno) ? [...path, 'errno', i] : [...path, 'errno'];
        if (typeof c !== 'string') this.err(p, `expected an errno name like EPERM, got ${kindOf(c)}`);
        else if (!(c in ERRNO)) this.err(p, `unknown errno '${c}'${suggest(c, Object.keys(ERRNO))}`);
        else codes.push(c);
      });
      if (list.length === 0) this.err([...path, 'errno'], 'expected at least one errno name');
      out.errno = codes;
    }
    if (v.bytes !== undefined) {
      const p = parsePattern(v.bytes);
      if (typeof p === 'string') this.err([...path, 'bytes'], p);
      else out.bytes = p;
      if (v.errno !== undefined) this.err([...path, 'bytes'], 'a step cannot both fail (errno) and return bytes');
    }
    if (v.result !== undefined) {
      if (!isObj(v.result)) this.err([...path, 'result'], `expected an object of field values, got ${kindOf(v.result)}`);
      else {
        const r: Record<string, string | number | boolean | null> = {};
        for (const [k, x] of Object.entries(v.result)) {
          if (x === null || typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') r[k] = x;
          else this.err([...path, 'result', k], `expected a string, number, true, false or null, got ${kindOf(x)}`);
        }
        out.result = r;
      }
      if (v.errno !== undefined) this.err([...path, 'result'], 'a step cannot both fail (errno) and return a result');
    }
    return out;
  }

  /**
   * Records the sizes known before running and checks reads against them: a readBack past the
   * end of its buffer, a readBar past the end of its BAR, or more than MAX_READ_BYTES.
   */
  sizes(op: string, args: Record<string, unknown>, sp: Path, act: ActScope, as: string | undefined): void {
    const sizes = (act.sizes ??= new Map());
    if ((op === 'alloc' || op === 'gpuAlloc') && as !== undefined) sizes.set(as, args.size as bigint);
    if (op === 'map' && as !== undefined) {
      const n = sizes.get(args.buffer as string);
      if (n !== undefined) sizes.set(as, n);
    }
    if (op !== 'readBack' && op !== 'readBar') return;
    const off = (args.offset as bigint | undefined) ?? 0n;
    const len = args.length as bigint;
    if (len > MAX_READ_BYTES) {
      this.err([...sp, 'length'], `${len} bytes: a read returns at most ${MAX_READ_BYTES} (256 MiB)`);
      return;
    }
    let size: bigint | undefined;
    let what = '';
    if (op === 'readBack') {
      size = sizes.get(args.buffer as string);
      what = `'${String(args.buffer)}'`;
    } else if (act.topology) {
      const d = act.topology.topology.find(args.device as string);
      const bar = d instanceof PciFunction ? d.bars.find((b) => b.index === ((args.bar as number | undefined) ?? 0)) : undefined;
      if (d instanceof PciFunction && !bar) {
        this.err([...sp, 'bar'], `${d.name} has no BAR${(args.bar as number | undefined) ?? 0}`);
        return;
      }
      size = bar?.size;
      what = `BAR${(args.bar as number | undefined) ?? 0} of ${String(args.device)}`;
    }
    if (size !== undefined && off + len > size) {
      this.err([...sp, off > 0n ? 'offset' : 'length'], `offset + length = ${off + len} is past the end of ${what} (${size} bytes)`);
    }
  }

  steps(v: unknown, path: Path, act: ActScope): Step[] {
    if (!Array.isArray(v)) {
      this.err(path, `expected a list of steps, got ${kindOf(v)}`);
      return [];
    }
    // Every `as:` of the act, so a reference to a later name says so.
    v.forEach((s, i) => {
      if (isObj(s) && typeof s.as === 'string' && !act.later.has(s.as)) act.later.set(s.as, { kind: 'buffer', path: formatPath([...path, i]), line: this.line([...path, i]).line });
    });
    const out: Step[] = [];
    v.forEach((s, i) => {
      const sp = [...path, i];
      const step = this.step(s, sp, act, i + 1);
      if (step) out.push(step);
    });
    return out;
  }

  step(s: unknown, sp: Path, act: ActScope, index: number): Step | undefined {
    if (!isObj(s)) {
      this.err(sp, `expected a step (an object with an op), got ${kindOf(s)}`);
      return undefined;
    }
    const ops = Object.keys(OP_SPECS);
    if (s.op === undefined) {
      this.err(sp, `a step needs an op (ops: ${ops.join(', ')})`);
      return undefined;
    }
    if (typeof s.op !== 'string' || !OP_SPECS[s.op]) {
      this.err([...sp, 'op'], `unknown op ${typeof s.op === 'string' ? `'${s.op}'` : kindOf(s.op)} (ops: ${ops.join(', ')})${typeof s.op === 'string' ? suggest(s.op, ops) : ''}`);
      return undefined;
    }
    const op = s.op;
    const spec = OP_SPECS[op]!;
    const allowed = [...COMMON_FIELDS.slice(0, 1), ...Object.keys(spec.fields), ...(spec.produces ? ['as'] : []), ...COMMON_FIELDS.slice(1)];
    this.fields(s, sp, allowed, ` for op '${op}'`);
    let ok = true;
    const args: Record<string, unknown> = {};
    for (const [name, f] of Object.entries(spec.fields)) {
      const v = s[name];
      if (v === undefined) {
        if (f.required) {
          this.err(sp, `op '${op}' needs '${name}' (${f.doc})`);
          ok = false;
        }
        continue;
      }
      const x = this.field(f.kind, v, [...sp, name], act);
      if (x === undefined) ok = false;
      else args[name] = x;
    }
    const expect = this.expectation(s.expect, [...sp, 'expect']);
    if (!expect) ok = false;
    let as: string | undefined;
    if (spec.produces && s.as !== undefined) {
      if (typeof s.as !== 'string' || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(s.as)) {
        this.err([...sp, 'as'], `expected a name (letters, digits, _ . -), got ${kindOf(s.as)}`);
        ok = false;
      } else if (act.defined.has(s.as)) {
        const d = act.defined.get(s.as)!;
        this.err([...sp, 'as'], `'${s.as}' is already defined at line ${d.line} (${d.path})`);
        ok = false;
      } else {
        as = s.as;
        act.defined.set(as, { kind: spec.produces, path: formatPath(sp), line: this.line(sp).line });
        act.later.delete(as);
      }
    }
    if (ok) this.sizes(op, args, sp, act, as);
    if (!ok) return undefined;
    const pos = this.line(sp);
    return { op, index, path: formatPath(sp), line: pos.line, col: pos.col, args, ...(as !== undefined ? { as } : {}), expect: expect! };
  }
}

interface ActScope {
  topology: LoadedTopology | null;
  defined: Map<string, Defined>;
  later: Map<string, Defined>;
  /** Bytes of the objects whose size is known before running: alloc, gpuAlloc, and map of an alloc. */
  sizes?: Map<string, bigint>;
}

/** The most bytes one readBack or readBar returns (the report holds them). */
export const MAX_READ_BYTES = 256n << 20n;

/**
 * What the machine a scenario builds can hold, checked at validation so that a topology it
 * cannot build is a diagnostic (exit 2), not a failure in the middle of a run: a region per
 * memory BAR (plus the two of system RAM) in the core's region table, no BAR over the largest
 * region, an IOMMU unit per host bridge when the act has an IOMMU.
 */
export const MACHINE_LIMITS = { ...SIMULATOR_LIMITS, ramRegions: 2 } as const;

/** The machine-limit problems of a topology (empty when it fits). */
export function machineLimitProblems(t: LoadedTopology, iommu: boolean): string[] {
  const out: string[] = [];
  const bars = t.topology.allBars().filter((b) => b.type === 'mem');
  const room = MACHINE_LIMITS.regions - MACHINE_LIMITS.ramRegions;
  if (bars.length > room) out.push(`${bars.length} memory BARs: the machine holds at most ${room} (one memory region each)`);
  for (const b of bars) {
    if (b.size > MACHINE_LIMITS.regionBytes) out.push(`${b.device.name} BAR${b.index} of ${b.size} bytes is over the largest region (4 TiB)`);
  }
  if (iommu && t.topology.hostBridges.length > MACHINE_LIMITS.iommuUnits) {
    out.push(`${t.topology.hostBridges.length} host bridges with an IOMMU: at most ${MACHINE_LIMITS.iommuUnits} IOMMU units`);
  }
  return out;
}

/** `dir/of/file` + `ref`, without node:path (this bundles for the browser). */
export function resolveRelative(file: string, ref: string): string {
  if (ref.startsWith('/') || /^[a-zA-Z]:[\\/]/.test(ref)) return ref;
  const slash = Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\'));
  return slash < 0 ? ref : `${file.slice(0, slash + 1)}${ref}`;
}

const TOP_FIELDS = ['name', 'description', 'profile', 'dmaBufRules', 'iommu', 'topology', 'steps', 'acts', '$schema'];
const ACT_FIELDS = ['title', 'topology', 'iommu', 'profile', 'dmaBufRules', 'steps'];

/**
 * Validates a parsed scenario document into a typed {@link Scenario}, building each act's topology.
 * @throws {@link ScenarioError} listing every problem found (up to `maxErrors`), each at its line.
 */
export function validateScenario(doc: SourceDoc, opts: ValidateOptions = {}): Scenario {
  const v = new Validator(doc, opts);
  const top = doc.value;
  if (!isObj(top)) throw new ScenarioError([doc.diag([], `a scenario is an object with name, topology and steps (or acts), got ${kindOf(top)}`)]);
  v.fields(top, [], TOP_FIELDS, '');
  const name = v.str(top, 'name', [], true);
  const description = v.str(top, 'description', [], false);
  const profile = v.profile(top.profile, ['profile']) ?? '6.x';
  const rules = v.dmaBufRules(top.dmaBufRules, ['dmaBufRules']) ?? {};
  const iommu = v.iommu(top.iommu, ['iommu']) ?? null;
  const topTopology = top.topology === undefined ? undefined : v.topology(top.topology, ['topology']);
  const acts: Act[] = [];
  const makeAct = (index: number, title: string, t: LoadedTopology | null, stepsValue: unknown, stepsPath: Path, prof: KernelProfileName, io: ActIommu | null, topoPath: Path, dmaBufRules: KernelRuleOverrides): void => {
    if (t) for (const problem of machineLimitProblems(t, io !== null)) v.err(topoPath, problem);
    const scope: ActScope = { topology: t, defined: new Map(), later: new Map() };
    const steps = v.steps(stepsValue, stepsPath, scope);
    if (t) {
      acts.push({
        index, title, profile: prof, dmaBufRules, iommu: io, topologySource: t.source, topologyDescription: t.description, topology: t.topology, steps,
      });
    }
  };
  if (top.steps !== undefined && top.acts !== undefined) v.err(['acts'], 'give steps or acts, not both');
  else if (top.acts !== undefined) {
    if (!Array.isArray(top.acts) || top.acts.length === 0) v.err(['acts'], `expected a non-empty list of acts, got ${kindOf(top.acts)}`);
    else {
      top.acts.forEach((a, i) => {
        const ap: Path = ['acts', i];
        if (!isObj(a)) {
          v.err(ap, `expected an act ({ title, steps, topology?, iommu?, profile?, dmaBufRules? }), got ${kindOf(a)}`);
          return;
        }
        v.fields(a, ap, ACT_FIELDS, ' in an act');
        const title = v.str(a, 'title', ap, true) ?? `act ${i + 1}`;
        let t: LoadedTopology | null;
        if (a.topology !== undefined) t = v.topology(a.topology, [...ap, 'topology']);
        else if (topTopology !== undefined) t = topTopology;
        else {
          v.err(ap, 'no topology (give one here or at the top level)');
          t = null;
        }
        const prof = v.profile(a.profile, [...ap, 'profile']) ?? profile;
        const io = a.iommu === undefined ? iommu : v.iommu(a.iommu, [...ap, 'iommu']) ?? null;
        // An act's rules override the top level's rule by rule.
        const actRules = { ...rules, ...v.dmaBufRules(a.dmaBufRules, [...ap, 'dmaBufRules']) };
        if (a.steps === undefined) v.err(ap, "'steps' is required");
        else makeAct(i, title, t, a.steps, [...ap, 'steps'], prof, io, a.topology !== undefined ? [...ap, 'topology'] : ['topology'], actRules);
      });
    }
  } else if (top.steps !== undefined) {
    if (topTopology === undefined) v.err([], "'topology' is required (builtin, a topology file, or a description)");
    makeAct(0, name ?? 'scenario', topTopology ?? null, top.steps, ['steps'], profile, iommu, ['topology'], rules);
  } else v.err([], "'steps' is required (or 'acts')");
  if (v.diags.length > 0) throw new ScenarioError(v.diags);
  return { name: name!, ...(description !== undefined ? { description } : {}), file: doc.file, acts };
}
