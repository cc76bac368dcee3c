/**
 * The run report: a data model (what --json prints) and a text renderer in the manner of a
 * kernel log: each distinct topology once (tree and P2P matrix), then per act each step with its
 * result or errno and whatever sections its handler added (sg_table, IOMMU walks, bytes moved),
 * and the counters at the end of the act.
 */
import type { TopologyJson } from '../index.js';
import { describePattern } from './pattern.js';
import type { ActIommu, Expectation } from './schema.js';

/** A block of lines a handler (or the runner) adds under a step or an act, with its data. */
export interface ReportSection {
  title: string;
  lines: string[];
  data?: unknown;
}

/** A step's verdict: its expectation held, failed, or the step did not run (an earlier failure, or the act's machine or setup failing, ended the act). */
export type StepStatus = 'passed' | 'failed' | 'skipped';

/** One step of an act as it ran: where it is in the scenario, what it expected, what happened, its time and sections. */
export interface StepRecord {
  /** 1-based position within the act, notes included (what the step's path counts). */
  index: number;
  /** The step number the report shows: 1, 2, 3... within the act, notes not counted (null for a note). */
  number: number | null;
  op: string;
  path: string;
  line: number;
  col: number;
  args: Record<string, unknown>;
  as?: string;
  /** 'ok', 'errno EPERM', 'bytes counter', 'result {...}'. */
  expect: string;
  status: StepStatus;
  /** 'ok', the errno name it failed with, 'error' (a handler bug), or 'skipped'. */
  outcome: string;
  /** The error's message, when it failed. */
  message?: string;
  /** Why the expectation failed. */
  failure?: string;
  /** One line from the handler: "fd 3", "mr lkey 0x1". */
  summary?: string;
  result?: unknown;
  /** Virtual time (ns) when the step started (the same as startNs). */
  time: number;
  /** Virtual ns on the machine's clock when the step started. */
  startNs: number;
  /** Virtual ns the step took (its transfers, translations, invalidations, control-plane costs). */
  durationNs: number;
  /** The step's DMA transfers as the fabric model timed them. */
  transfers: StepTransfer[];
  log: string[];
  /** The dma-buf events of the step ('attach dma-buf 1 by nic0'), as `run --verbose` shows them. */
  events: string[];
  sections: ReportSection[];
}

/** One DMA transfer of a step, timed (virtual ns; rate in GB/s = bytes per ns). */
export interface StepTransfer {
  device: string;
  op: string;
  bytes: number;
  result: string;
  startNs: number;
  durationNs: number;
  rateGBps: number;
  translationNs: number;
  path: string;
  limitedBy: string;
}

/** A topology the scenario's acts run on, once however many acts use it. */
export interface TopologyReport {
  /** 'builtin:seed', a file, or '<scenario file> (inline)'. */
  source: string;
  /** Devices, host bridges and every endpoint pair's P2P decision, as `dmabuf-sim topo --json` prints them. */
  data: TopologyJson;
  /** The tree and the matrix as text, for the text report (--json leaves them out). */
  text: { tree: string; matrix: string };
}

/** One act of a run: its machine (profile, IOMMU, topology), its steps and end-of-act sections. */
export interface ActReport {
  /** 0-based, in the scenario (also when `run --act` runs one act). */
  index: number;
  title: string;
  profile: string;
  iommu: ActIommu | null;
  /** Index in RunReport.topologies. */
  topology: number;
  steps: StepRecord[];
  /** End-of-act sections: counters, faults. */
  sections: ReportSection[];
  ok: boolean;
  /** Virtual ns when the act started: where the previous act ended (the run has one timeline). */
  startNs: number;
  /** Virtual ns when it ended. */
  endNs: number;
  /** Set when the act could not start (the machine could not be built). */
  error?: string;
}

/** One failed expectation (or an act that could not start), located in the scenario file. */
export interface RunFailure {
  act: number;
  actTitle: string;
  /** The step's number (0: the act itself, before or after its steps). */
  step: number;
  path: string;
  line: number;
  message: string;
}

/** The whole run: what `dmabuf-sim run --json` prints and the text renderer reads. */
export interface RunReport {
  scenario: string;
  description?: string;
  file: string;
  ok: boolean;
  /** 0: every expectation held; 1: one failed. */
  exitCode: 0 | 1;
  /** Acts in the scenario (the report holds fewer when only some were run). */
  actsInScenario: number;
  topologies: TopologyReport[];
  acts: ActReport[];
  failures: RunFailure[];
  /** Steps do not count notes. */
  totals: { acts: number; steps: number; passed: number; failed: number; skipped: number };
}

/** What the text renderer may colour. */
export type StyleKind = 'ok' | 'fail' | 'errno' | 'expected' | 'head' | 'dim';
/** Colours `text` as `kind` (the CLI passes util.styleText on a terminal). */
export type ReportStyle = (kind: StyleKind, text: string) => string;
/** quiet: one line per act; normal: every step; verbose: also each step's dma-buf events. */
export type ReportDetail = 'quiet' | 'normal' | 'verbose';

/** Options of the text renderer. */
export interface RenderOptions {
  /** How much to show. @default 'normal' */
  detail?: ReportDetail;
  /** Colouring. @default no colour */
  style?: ReportStyle;
}

/** A step's expectation as the report shows it: 'ok', 'errno EPERM|EINVAL', 'bytes ...', 'result {...}'. */
export function describeExpectation(e: Expectation): string {
  const parts: string[] = [];
  if (e.errno) parts.push(`errno ${e.errno.join('|')}`);
  if (e.bytes) parts.push(`bytes ${describePattern(e.bytes)}`);
  if (e.result) parts.push(`result ${JSON.stringify(e.result)}`);
  return parts.length ? parts.join(', ') : 'ok';
}

/** A value for text: bigints in hex (sizes with a unit), lists with '|'. */
export function formatArg(v: unknown): string {
  if (typeof v === 'bigint') {
    for (const [u, s] of [['G', 30n], ['M', 20n], ['K', 10n]] as const) {
      if (v >= 1n << s && v % (1n << s) === 0n) return `${v >> s}${u}`;
    }
    return v < 4096n ? `${v}` : `0x${v.toString(16)}`;
  }
  if (Array.isArray(v)) return v.map(formatArg).join('|');
  if (typeof v === 'object' && v !== null && 'kind' in v) return `<${describePattern(v as never)}>`;
  if (typeof v === 'string') return /\s/.test(v) ? JSON.stringify(v) : v;
  return String(v);
}

/** The JSON-ready form of anything in a report: bigint -> '0x..', Uint8Array -> hex, Map -> object. */
export function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (v instanceof Uint8Array) return Array.from(v.subarray(0, 256), (b) => b.toString(16).padStart(2, '0')).join('') + (v.length > 256 ? `...(${v.length} bytes)` : '');
  if (v instanceof Map) return jsonSafe(Object.fromEntries(v));
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof v === 'object' && v !== null) {
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return jsonSafe((v as { toJSON(): unknown }).toJSON());
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined && typeof x !== 'function') o[k] = jsonSafe(x);
    return o;
  }
  if (typeof v === 'function' || typeof v === 'symbol') return undefined;
  return v;
}

/** The report as JSON text: topologies as data (their text rendering left out). */
export function renderJson(r: RunReport): string {
  return JSON.stringify(jsonSafe({ ...r, topologies: r.topologies.map(({ text: _, ...t }) => t) }), null, 2);
}

function stamp(ns: number): string {
  const us = Math.floor(ns / 1000);
  return `[${String(Math.floor(us / 1e6)).padStart(5)}.${String(us % 1e6).padStart(6, '0')}]`;
}

function indent(text: string, pad: string): string[] {
  return text.replace(/\n$/, '').split('\n').map((l) => (l === '' ? '' : pad + l));
}

function stepHead(s: StepRecord): string {
  if (s.op === 'note') return `-- ${String(s.args.text ?? '')}`;
  const args = Object.entries(s.args).map(([k, v]) => `${k}=${formatArg(v)}`).join(' ');
  return `#${s.number} ${s.op}${args ? ` ${args}` : ''}${s.as ? ` -> ${s.as}` : ''}`;
}

function stepResult(s: StepRecord, st: ReportStyle): string {
  if (s.status === 'skipped') return st('dim', 'skipped');
  if (s.status === 'failed') return st('fail', `FAILED: ${s.failure ?? s.message ?? s.outcome}`);
  // An expected errno, with the kernel's words for it (the SimError message names the op and rule).
  if (s.outcome !== 'ok') return `${st('errno', s.outcome)} ${st('expected', '(expected)')}${s.message ? `: ${s.message}` : ''}`;
  return s.summary ? `${st('ok', 'ok')}, ${s.summary}` : st('ok', 'ok');
}

const plain: ReportStyle = (_k, t) => t;
const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;

function actLine(r: RunReport, a: ActReport, st: ReportStyle): string {
  const steps = a.steps.filter((s) => s.number !== null);
  const failed = steps.filter((s) => s.status === 'failed').length;
  const skipped = steps.filter((s) => s.status === 'skipped').length;
  const errnos = steps.filter((s) => s.status === 'passed' && s.outcome !== 'ok').length;
  return `act ${a.index + 1}: ${a.ok ? st('ok', 'OK') : st('fail', 'FAILED')} (${plural(steps.length, 'step')}`
    + `${errnos ? `, ${errnos} expected errno${errnos === 1 ? '' : 's'}` : ''}${failed ? `, ${failed} failed` : ''}${skipped ? `, ${skipped} skipped` : ''})`;
}

/** The report as text: each topology once, then one act after another. */
export function renderText(r: RunReport, opts: RenderOptions = {}): string {
  const st = opts.style ?? plain;
  const detail = opts.detail ?? 'normal';
  const out: string[] = [];
  out.push(st('head', `dmabuf-sim run: ${r.scenario} (${r.file})`));
  if (r.description && detail !== 'quiet') out.push(...indent(r.description.trim(), '  '));
  const shown = new Set<number>();
  for (const a of r.acts) {
    if (detail === 'quiet') {
      out.push(`${actLine(r, a, st)}: ${a.title}`);
      continue;
    }
    const topo = r.topologies[a.topology]!;
    if (!shown.has(a.topology)) {
      // Once per distinct topology: the acts after it that share it say so in their header.
      shown.add(a.topology);
      out.push('');
      out.push(st('head', `topology ${topo.source}:`));
      out.push(...indent(topo.text.tree, '  '));
      out.push('');
      out.push('P2P map type and distance:');
      out.push(...indent(topo.text.matrix, '  '));
    }
    out.push('');
    out.push(st('head', `=== act ${a.index + 1}/${r.actsInScenario}: ${a.title} ===`));
    out.push(`kernel profile ${a.profile}; IOMMU ${a.iommu ? `${a.iommu.family} (${a.iommu.strict ? 'strict' : 'lazy'})` : 'none (DMA is direct)'}; topology ${topo.source}`);
    out.push('');
    if (a.error) out.push(st('fail', `act could not start: ${a.error}`));
    for (const s of a.steps) {
      const t = st('dim', stamp(s.time));
      if (s.op === 'note' && s.status === 'passed') {
        out.push(`${t} ${stepHead(s)}`);
        continue;
      }
      out.push(`${t} ${stepHead(s)}: ${stepResult(s, st)}  ${st('dim', `(line ${s.line})`)}`);
      if (s.status === 'failed' && s.message && s.failure && !s.failure.includes(s.message)) out.push(`${t}     ${s.message}`);
      if (detail === 'verbose') for (const e of s.events) out.push(`${t}     ${st('dim', e)}`);
      for (const l of s.log) out.push(`${t}     ${l}`);
      for (const sec of s.sections) {
        out.push(`${t}     ${sec.title}:`);
        for (const l of sec.lines) out.push(`${t}       ${l}`);
      }
    }
    for (const sec of a.sections) {
      out.push('');
      out.push(`${sec.title}:`);
      out.push(...sec.lines.map((l) => `  ${l}`));
    }
    out.push('');
    out.push(actLine(r, a, st));
  }
  if (detail !== 'quiet') out.push('');
  const t = r.totals;
  const ran = r.acts.length < r.actsInScenario ? ` of ${r.actsInScenario}` : '';
  out.push(`result: ${r.ok ? st('ok', 'OK') : st('fail', 'FAILED')}: ${plural(t.acts, 'act')}${ran}, ${plural(t.steps, 'step')}, ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`);
  for (const f of r.failures) out.push(st('fail', `  ${r.file}:${f.line}: act ${f.act + 1}${f.step ? ` step #${f.step}` : ''} (${f.path}): ${f.message}`));
  return out.join('\n') + '\n';
}
