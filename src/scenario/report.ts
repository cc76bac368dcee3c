/**
 * The run report: a data model (what --json prints) and a text renderer in the manner of a
 * kernel log: per act the topology tree, the P2P matrix, then each step with its result or
 * errno and whatever sections its handler added (sg_table, IOMMU walks, bytes moved), and the
 * counters at the end of the act.
 */
import type { TopologyJson } from '../pci/index.js';
import { describePattern } from './pattern.js';
import type { ActIommu, Expectation } from './schema.js';

/** A block of lines a handler (or the runner) adds under a step or an act, with its data. */
export interface ReportSection {
  title: string;
  lines: string[];
  data?: unknown;
}

export type StepStatus = 'passed' | 'failed' | 'skipped';

export interface StepRecord {
  /** 1-based within the act. */
  index: number;
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
  /** Virtual time (ns) when the step started. */
  time: number;
  log: string[];
  sections: ReportSection[];
}

export interface ActReport {
  /** 0-based. */
  index: number;
  title: string;
  profile: string;
  iommu: ActIommu | null;
  topology: { source: string; tree: string; matrix: string; json: TopologyJson };
  steps: StepRecord[];
  /** End-of-act sections: counters, faults. */
  sections: ReportSection[];
  ok: boolean;
  /** Set when the act could not start (the machine could not be built). */
  error?: string;
}

export interface RunFailure {
  act: number;
  actTitle: string;
  step: number;
  path: string;
  line: number;
  message: string;
}

export interface RunReport {
  scenario: string;
  description?: string;
  file: string;
  ok: boolean;
  /** 0: every expectation held; 1: one failed. */
  exitCode: 0 | 1;
  acts: ActReport[];
  failures: RunFailure[];
  totals: { acts: number; steps: number; passed: number; failed: number; skipped: number };
}

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

/** The report as JSON text. */
export function renderJson(r: RunReport): string {
  return JSON.stringify(jsonSafe(r), null, 2);
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
  return `#${s.index} ${s.op}${args ? ` ${args}` : ''}${s.as ? ` -> ${s.as}` : ''}`;
}

function stepResult(s: StepRecord): string {
  if (s.status === 'skipped') return 'skipped';
  if (s.status === 'failed') return `FAILED: ${s.failure ?? s.message ?? s.outcome}`;
  // An expected errno, with the kernel's words for it (the SimError message names the op and rule).
  if (s.outcome !== 'ok') return `${s.outcome} (expected)${s.message ? `: ${s.message}` : ''}`;
  return s.summary ? `ok, ${s.summary}` : 'ok';
}

/** The report as text, one act after another. */
export function renderText(r: RunReport): string {
  const out: string[] = [];
  out.push(`dmabuf-sim run: ${r.scenario} (${r.file})`);
  if (r.description) out.push(...indent(r.description.trim(), '  '));
  for (const a of r.acts) {
    out.push('');
    out.push(`=== act ${a.index + 1}/${r.acts.length}: ${a.title} ===`);
    out.push(`kernel profile ${a.profile}; IOMMU ${a.iommu ? `${a.iommu.family} (${a.iommu.strict ? 'strict' : 'lazy'})` : 'none (DMA is direct)'}; topology ${a.topology.source}`);
    out.push('');
    out.push('topology:');
    out.push(...indent(a.topology.tree, '  '));
    out.push('');
    out.push('P2P map type and distance:');
    out.push(...indent(a.topology.matrix, '  '));
    out.push('');
    if (a.error) out.push(`act could not start: ${a.error}`);
    for (const s of a.steps) {
      const t = stamp(s.time);
      if (s.op === 'note' && s.status === 'passed') {
        out.push(`${t} ${stepHead(s)}`);
        continue;
      }
      out.push(`${t} ${stepHead(s)}: ${stepResult(s)}  (line ${s.line})`);
      if (s.status === 'failed' && s.message && s.failure && !s.failure.includes(s.message)) out.push(`${t}     ${s.message}`);
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
    const failed = a.steps.filter((s) => s.status === 'failed');
    const skipped = a.steps.filter((s) => s.status === 'skipped').length;
    out.push(`act ${a.index + 1}: ${a.ok ? 'OK' : 'FAILED'} (${a.steps.length} step${a.steps.length === 1 ? '' : 's'}${failed.length ? `, ${failed.length} failed` : ''}${skipped ? `, ${skipped} skipped` : ''})`);
  }
  out.push('');
  const t = r.totals;
  out.push(`result: ${r.ok ? 'OK' : 'FAILED'}: ${t.acts} act${t.acts === 1 ? '' : 's'}, ${t.steps} step${t.steps === 1 ? '' : 's'}, ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`);
  for (const f of r.failures) out.push(`  ${r.file}:${f.line}: act ${f.act + 1} step #${f.step} (${f.path}): ${f.message}`);
  return out.join('\n') + '\n';
}
