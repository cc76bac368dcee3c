/**
 * ScenarioRunner: runs a validated Scenario act by act, each on its own Machine, step by step
 * through a registry of op handlers, checking each step's expectation.
 *
 *   const runner = new ScenarioRunner();          // the generic ops (note) are registered
 *   runner.registerOp('alloc', (step, ctx) => {   // step.args is typed for built-in ops
 *     const h = ctx.state.get('hl') ...; return { value: handle, summary: `handle ${h}` };
 *   });
 *   const report = await runner.run(scenario);    // report.exitCode: 0 or 1
 *   await runner.run(scenario, { acts: [1] });    // the second act alone (`run --act 2`)
 *
 * A handler gets the step (its args converted: sizes are bigints, names are strings) and a
 * context: the act's machine, the named objects (`as:`), a per-act state map for drivers, the
 * report (log lines and sections), the trace, and a DMA engine that records every transfer.
 * It returns nothing or a StepOutcome; its `value` is bound to the step's `as:` name. It fails
 * by throwing: a SimError whose code is in `expect.errno` passes the step; anything else fails
 * it, and the rest of the act is skipped. IOMMU faults are drained after every step into the
 * step's log and the trace; the trace also gets each step's IOMMU map/unmap and IOTLB
 * invalidations, and IOTLB counters after every transfer (IotlbTracker).
 */
import { SimError } from '../index.js';
import { Machine } from '../index.js';
import { P2pdma, type PciFunction, renderP2pMatrix, renderTopologyTree, topologyToJson, type TopologyJson } from '../index.js';
import type { DmaEndpoint } from '../index.js';
import type { FaultRecord } from '../index.js';
import { formatRid } from '../index.js';
import { DmaBufTraceSource, IotlbTracker, TracedDma, type TraceProcess, TraceRecorder, traceFault, type TransferRecord } from '../trace/index.js';
import { describePattern, firstMismatch, PatternCache, patternBytes } from './pattern.js';
import { formatNs, formatTiming } from '../index.js';
import {
  type ActReport, describeExpectation, formatArg, type ReportSection, type RunFailure, type RunReport, type StepRecord,
  type TopologyReport,
} from './report.js';
import { type Act, type ObjectKind, type OpArgs, OP_SPECS, type Pattern, type Scenario, type Step } from './schema.js';
import { ScenarioError } from './source.js';
import { GENERIC_OPS } from './op.js';
import { Ring } from '../index.js';

/** What a handler returns. */
export interface StepOutcome {
  /** Bound to the step's `as:` name (the handle, fd, MR, ...). */
  value?: unknown;
  /** One line for the report: "fd 3", "lkey 0x100". */
  summary?: string;
  /** What the step read, for `expect: { bytes }`. */
  bytes?: Uint8Array;
  /** Fields for `expect: { result }` and the JSON report. */
  result?: Record<string, unknown>;
}

/**
 * The handler of an op: runs one step against the act's machine. It fails the step by throwing
 * (a SimError whose code the step's `expect.errno` lists passes it) and may return a
 * {@link StepOutcome}. `A` is the op's argument type (OpArgs for built-in ops).
 */
export type StepHandler<A = Record<string, unknown>> = (step: Step<A>, ctx: StepContext) => StepOutcome | void | Promise<StepOutcome | void>;

/** Named objects of an act (what `as:` names). */
export class ObjectTable {
  private readonly _m = new Map<string, { kind: ObjectKind; value: unknown }>();

  /** Binds `name` (a step's `as:`) to a value of `kind`, replacing any earlier binding. */
  set(name: string, kind: ObjectKind, value: unknown): void {
    this._m.set(name, { kind, value });
  }

  /** Whether `name` is bound. */
  has(name: string): boolean {
    return this._m.has(name);
  }

  /**
   * The object bound to `name`.
   * @throws Error (failing the step) when `name` is not bound (the step that defines it failed or
   *   did not run) or is bound to another kind than `kind`.
   */
  get<T = unknown>(name: string, kind?: ObjectKind): T {
    const o = this._m.get(name);
    if (!o) throw new Error(`'${name}' does not exist (the step that defines it failed or did not run)`);
    if (kind && o.kind !== kind) throw new Error(`'${name}' is a ${o.kind}, not a ${kind}`);
    return o.value as T;
  }

  /** The object bound to `name`, or undefined; never throws. */
  tryGet<T = unknown>(name: string): T | undefined {
    return this._m.get(name)?.value as T | undefined;
  }

  /** Unbinds `name` (a step that closed or freed the object); no-op when unbound. */
  delete(name: string): void {
    this._m.delete(name);
  }

  /** Every binding as [name, kind, value], in binding order. */
  entries(): [string, ObjectKind, unknown][] {
    return [...this._m].map(([n, o]) => [n, o.kind, o.value]);
  }
}

/** Where a handler writes its part of the report. */
export interface ReportSink {
  /** Adds a log line (shown under the step, or at the end of the act). */
  log(line: string): void;
  /** Adds a titled block of lines with its data (sg_table, IOMMU walk, counters). */
  section(section: ReportSection): void;
}

/** What a handler or an act hook sees of the act. */
export interface ActContext {
  readonly scenario: Scenario;
  readonly act: Act;
  readonly machine: Machine;
  readonly objects: ObjectTable;
  /** Per-act scratch space for drivers (a process, the probed drivers, ...). */
  readonly state: Map<string, unknown>;
  readonly trace: TraceProcess;
  /** The DMA engine with every transfer recorded (trace, report, bytes-moved counters). */
  readonly dma: TracedDma;
  /** Puts a dma-buf's own events on its exporter device's trace thread. */
  nameBuffer(dmaBufId: number, device: string): void;
  /** A PCI function of the act's machine by name or BDF. */
  device(nameOrBdf: string): PciFunction;
  /** The device name for a requester ID. */
  deviceName(rid: DmaEndpoint['rid']): string;
  /** Drains the IOMMU fault queues now: the records go to the report and the trace too. */
  collectFaults(): FaultRecord[];
  /**
   * `length` bytes of a pattern, made once per run (a step writing a pattern and the steps
   * expecting it back share them): read them, never write them.
   */
  pattern(p: Pattern, length: number): Uint8Array;
  /** Act-level report sections (shown at the end of the act). */
  readonly report: ReportSink;
}

export interface StepContext extends ActContext {
  readonly step: Step;
  /** Lines and sections under this step. */
  readonly report: ReportSink;
}

/** A hook run at the start or end of every act ({@link ScenarioRunner.onActStart}, {@link ScenarioRunner.onActEnd}); a throw fails the act. */
export type ActHook = (ctx: ActContext) => void | Promise<void>;

/** Options of `new ScenarioRunner(opts)`. */
export interface RunnerOptions {
  /** Builds the act's machine. @default Machine.create from the act's topology, IOMMU and profile */
  createMachine?: (act: Act) => Promise<Machine>;
  /** Bytes of Wasm arena per machine. @default 64 MiB */
  arenaBytes?: number;
  /**
   * Where the trace goes; `false`: no trace at all (the runner makes no trace events, and
   * `runner.trace` stays empty: what the CLI does without --trace). @default a new TraceRecorder (see `runner.trace`)
   */
  trace?: TraceRecorder | false;
}

/** What to run of a scenario. */
export interface RunOptions {
  /** 0-based indices of the acts to run, in scenario order. @default every act */
  acts?: readonly number[];
}

/**
 * Runs validated scenarios act by act, each act on a new {@link index!Machine}, each step through
 * the handler registered for its op, and builds the {@link RunReport} and the trace. The generic
 * ops are registered on construction; drivers register theirs (see the default runner).
 */
export class ScenarioRunner {
  private readonly _handlers = new Map<string, StepHandler>();
  private readonly _actStart: ActHook[] = [];
  private readonly _actEnd: ActHook[] = [];
  readonly trace: TraceRecorder;

  constructor(private readonly _opts: RunnerOptions = {}) {
    this.trace = _opts.trace === false ? new TraceRecorder({ cap: 0 }) : _opts.trace ?? new TraceRecorder();
    registerGenericOps(this);
  }

  /**
   * Registers the handler of an op (replacing any). The op must be in OP_SPECS (one definition per
   * op: op.ts defineOp).
   * @throws Error when the op is not defined in OP_SPECS.
   */
  registerOp<K extends keyof OpArgs>(name: K, handler: StepHandler<OpArgs[K]>): this;
  registerOp(name: string, handler: StepHandler): this;
  registerOp(name: string, handler: StepHandler<never>): this {
    if (!OP_SPECS[name]) throw new Error(`registerOp: unknown op '${name}' (define its fields with defineOp first)`);
    this._handlers.set(name, handler as StepHandler);
    return this;
  }

  /** Whether a handler is registered for op `name`. */
  hasOp(name: string): boolean {
    return this._handlers.has(name);
  }

  /** Runs before the first step of every act (probe drivers, make a process). */
  onActStart(hook: ActHook): this {
    this._actStart.push(hook);
    return this;
  }

  /** Runs after the last step of every act (add sections: mappings, page tables). */
  onActEnd(hook: ActHook): this {
    this._actEnd.push(hook);
    return this;
  }

  /** Every op the scenario uses that has no handler, as diagnostics at the step. */
  missingHandlers(s: Scenario): ScenarioError | null {
    const diags = s.acts.flatMap((a) => a.steps.filter((st) => !this._handlers.has(st.op)).map((st) => ({
      file: s.file, line: st.line, col: st.col, path: `${st.path}.op`, message: `op '${st.op}' has no handler in this build`,
    })));
    return diags.length ? new ScenarioError(diags) : null;
  }

  /**
   * Runs every act (or those `opts.acts` names). Throws ScenarioError (before running anything)
   * when an op has no handler, RangeError for an act the scenario does not have.
   * A failing step does not throw: it is recorded in the report (exitCode 1).
   * @throws {@link ScenarioError} when an op of the chosen acts has no handler.
   * @throws RangeError when `opts.acts` names an act the scenario does not have.
   */
  async run(scenario: Scenario, opts: RunOptions = {}): Promise<RunReport> {
    const chosen = opts.acts ? scenario.acts.filter((a) => opts.acts!.includes(a.index)) : scenario.acts;
    for (const i of opts.acts ?? []) if (!scenario.acts[i]) throw new RangeError(`run: the scenario has no act ${i + 1}`);
    const missing = this.missingHandlers({ ...scenario, acts: chosen });
    if (missing) throw missing;
    const acts: ActReport[] = [];
    const failures: RunFailure[] = [];
    const topologies: TopologyReport[] = [];
    const topoIndex = new Map<string, number>();
    // One timeline for the run: each act's machine starts its clock where the last act ended.
    const clock = { ns: 0 };
    // The acts' machines one after another on one linear memory (MachineSeries).
    const series = Machine.series(this._opts.arenaBytes ?? 64 << 20);
    const patterns = new PatternCache();
    for (const act of chosen) {
      const key = `${act.topologySource}\n${JSON.stringify(act.topologyDescription, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`;
      let t = topoIndex.get(key);
      if (t === undefined) {
        const topology = act.topology;
        const p2p = new P2pdma(topology);
        t = topologies.length;
        const entry = { source: act.topologySource } as TopologyReport;
        // `data` (every pair's P2P decision over again) is made when first read: the JSON report
        // reads it, the text report (the CLI's default) never does. To a reader it is a field.
        let data: TopologyJson | undefined;
        Object.defineProperty(entry, 'data', {
          enumerable: true, configurable: true,
          get: () => (data ??= topologyToJson(topology, p2p)),
          set: (v: TopologyJson) => { data = v; },
        });
        entry.text = { tree: renderTopologyTree(topology), matrix: renderP2pMatrix(topology, p2p) };
        topologies.push(entry);
        topoIndex.set(key, t);
      }
      acts.push(await this._runAct(scenario, act, t, failures, clock, series, patterns));
    }
    const steps = acts.flatMap((a) => a.steps).filter((s) => s.number !== null);
    const ok = failures.length === 0 && acts.every((a) => a.ok);
    return {
      scenario: scenario.name, ...(scenario.description !== undefined ? { description: scenario.description } : {}), file: scenario.file,
      ok, exitCode: ok ? 0 : 1, actsInScenario: scenario.acts.length, topologies, acts, failures,
      totals: {
        acts: acts.length, steps: steps.length, passed: steps.filter((s) => s.status === 'passed').length,
        failed: steps.filter((s) => s.status === 'failed').length, skipped: steps.filter((s) => s.status === 'skipped').length,
      },
    };
  }

  private async _runAct(
    scenario: Scenario, act: Act, topology: number, failures: RunFailure[], runClock: { ns: number }, series: ReturnType<typeof Machine.series>, patterns: PatternCache,
  ): Promise<ActReport> {
    const report: ActReport = {
      index: act.index, title: act.title, profile: act.profile, iommu: act.iommu, topology, steps: [], sections: [], ok: true,
      startNs: runClock.ns, endNs: runClock.ns,
    };
    // Step numbers as the report shows them: notes are not steps.
    const numbers = new Map<Step, number>();
    for (const s of act.steps) if (s.op !== 'note') numbers.set(s, numbers.size + 1);
    const numberOf = (s: Step): number | null => numbers.get(s) ?? null;
    let machine: Machine;
    try {
      machine = this._opts.createMachine
        ? await this._opts.createMachine(act)
        : await series.create({ topology: act.topologyDescription, iommu: act.iommu, profile: act.profile, dmaBufRules: act.dmaBufRules });
    } catch (e) {
      report.ok = false;
      report.error = e instanceof Error ? e.message : String(e);
      failures.push({ act: act.index, actTitle: act.title, step: 0, path: `acts[${act.index}]`, line: act.steps[0]?.line ?? 1, message: `the machine could not be built: ${report.error}` });
      report.steps = act.steps.map((s) => this._record(s, numberOf(s), runClock.ns, 'skipped', 'skipped'));
      return report;
    }
    if (machine.clock.now < runClock.ns) machine.clock.advance(runClock.ns - machine.clock.now);
    report.startNs = machine.clock.now;
    const clock = () => machine.clock.now;
    const proc = this.trace.process(act.index + 1, `act ${act.index + 1}: ${act.title}`, clock);
    // No trace wanted (the CLI without --trace): the runner's own trace sources are not made.
    const tracing = this._opts.trace !== false;
    const dmabufSource = tracing ? new DmaBufTraceSource(machine.kernel, proc, machine.history.transfers) : null;
    const ridNames = new Map<number, string>();
    for (const f of machine.topology.functions) ridNames.set(machine.rid(f), f.name);
    const deviceName = (rid: DmaEndpoint['rid']): string =>
      rid === 'phys' ? 'cpu' : typeof rid === 'number' ? ridNames.get(rid) ?? formatRid(rid) : machine.topology.find(rid)?.name ?? rid;
    let stepSink: ReportSink | null = null;
    const actSections: ReportSection[] = [];
    const actSink: ReportSink = { log: (l) => actSections.push({ title: 'note', lines: [l] }), section: (s) => actSections.push(s) };
    // Per-act totals as counters: nothing here grows with the run.
    const totals = { transfers: 0, bytes: 0n, faults: 0, warns: new Ring<string>(machine.history.kernelEvents) };
    let stepTransfers: TransferRecord[] = [];
    // IOTLB counters over time, IOMMU map/unmap and invalidations, on the trace.
    const iotlb = tracing ? new IotlbTracker(machine, proc, deviceName) : null;
    const onTransfer = (t: TransferRecord): void => {
      totals.transfers++;
      totals.bytes += t.result.bytesDone;
      stepTransfers.push(t);
      iotlb?.sample();
    };
    let stepEvents: string[] | null = null;
    // Who exports each dma-buf and who imports each attachment: for the BUS_ADDR-but-IOVA note.
    const exporters = new Map<number, string>();
    const importers = new Map<number, string>();
    let stepMaps: { exporter: string; importer: string }[] = [];
    const eventSub = machine.kernel.onEvent((e) => {
      const d = e.detail as Record<string, unknown>;
      if (e.kind === 'warn') totals.warns.push(e.rule ?? '?');
      if (e.kind === 'attach' && e.attachmentId !== undefined && typeof d['device'] === 'string') importers.set(e.attachmentId, d['device']);
      if (e.kind === 'map' && e.attachmentId !== undefined && e.dmaBufId !== undefined) {
        const exporter = exporters.get(e.dmaBufId);
        const importer = importers.get(e.attachmentId);
        if (exporter && importer) stepMaps.push({ exporter, importer });
      }
      if (!stepEvents || QUIET_EVENTS.has(e.kind)) return;
      const who = typeof d['device'] === 'string' ? ` (${d['device']})` : '';
      stepEvents.push(`dma-buf ${e.kind}${e.rule ? ` [${e.rule}]` : ''}${e.dmaBufId !== undefined ? ` dma-buf ${e.dmaBufId}` : ''}${e.attachmentId !== undefined ? ` attachment ${e.attachmentId}` : ''}${who}`);
    });
    const dma = new TracedDma(machine.sim.dma, tracing ? proc : null, deviceName, onTransfer, machine.history.transfers);
    const retime = machine.time.onTiming((_t, timing) => dma.retime(timing));
    const collectFaults = (): FaultRecord[] => {
      const got: FaultRecord[] = [];
      for (const u of machine.units()) {
        for (const f of u.faults()) {
          got.push(f);
          totals.faults++;
          const dev = deviceName(f.rid);
          if (tracing) traceFault(proc, dev, u.name, f);
          stepSink?.log(u.family === 'vtd'
            ? `DMAR: [DMA ${f.access === 'write' ? 'Write' : 'Read'}] Request device [${f.bdf}] (${dev}) fault addr 0x${f.iova.toString(16)} [fault reason 0x${f.code.toString(16).padStart(2, '0')}] ${f.reason}`
            : `arm-smmu-v3 ${u.name}: event 0x${f.code.toString(16).padStart(2, '0')} from ${f.bdf} (${dev}): ${f.access} iova 0x${f.iova.toString(16)} ${f.reason}`);
        }
      }
      return got;
    };
    const objects = new ObjectTable();
    const state = new Map<string, unknown>();
    const base = {
      scenario, act, machine, objects, state, trace: proc, dma,
      nameBuffer: (id: number, dev: string) => {
        exporters.set(id, dev);
        dmabufSource?.nameBuffer(id, dev);
      },
      device: (n: string) => machine.pci(n),
      deviceName, collectFaults, pattern: (p: Pattern, length: number) => patterns.bytes(p, length),
    };
    const actCtx: ActContext = { ...base, report: actSink };
    let failed = false;
    try {
      for (const hook of this._actStart) await hook(actCtx);
    } catch (e) {
      failed = true;
      report.error = `act setup failed: ${errText(e)}`;
      failures.push({ act: act.index, actTitle: act.title, step: 0, path: `acts[${act.index}]`, line: act.steps[0]?.line ?? 1, message: report.error });
    }
    for (const step of act.steps) {
      if (failed) {
        report.steps.push(this._record(step, numberOf(step), clock(), 'skipped', 'skipped'));
        continue;
      }
      machine.time.sync();
      const rec = this._record(step, numberOf(step), clock(), 'passed', 'ok');
      stepEvents = rec.events;
      stepSink = { log: (l) => rec.log.push(l), section: (s) => rec.sections.push(s) };
      const ctx: StepContext = { ...base, step, report: stepSink };
      if (tracing) proc.begin('scenario', step.op, 'step', { path: step.path, line: step.line, args: step.args, ...(step.as ? { as: step.as } : {}) });
      let outcome: StepOutcome | void = undefined;
      let error: unknown;
      try {
        outcome = await this._handlers.get(step.op)!(step, ctx);
      } catch (e) {
        error = e;
      }
      // Control-plane costs and IOTLB invalidations of the step land before it ends.
      machine.time.sync();
      rec.durationNs = clock() - rec.startNs;
      for (const t of stepTransfers) {
        if (!t.timing) continue;
        const tm = t.timing;
        rec.transfers.push({
          device: t.device, op: t.op, bytes: tm.bytes, result: t.result.code, startNs: tm.startNs, durationNs: tm.durationNs,
          rateGBps: tm.rateGBps, translationNs: tm.translationNs, path: tm.path, limitedBy: tm.bottleneck,
        });
      }
      for (const l of summarizeTransfers(stepTransfers)) rec.log.push(l);
      stepTransfers = [];
      stepEvents = null;
      collectFaults();
      iotlb?.step();
      for (const l of busAddrIovaNotes(machine, rec, stepMaps)) rec.log.push(l);
      stepMaps = [];
      this._judge(step, rec, outcome, error, patterns);
      if (!error && step.as) objects.set(step.as, OP_SPECS[step.op]!.produces!, outcome && 'value' in outcome ? outcome.value : outcome?.result ?? true);
      if (tracing) proc.end('scenario', step.op, 'step', { status: rec.status, outcome: rec.outcome, ...(rec.failure ? { failure: rec.failure } : {}) });
      stepSink = null;
      report.steps.push(rec);
      if (rec.status === 'failed') {
        failed = true;
        failures.push({ act: act.index, actTitle: act.title, step: rec.number ?? 0, path: step.path, line: step.line, message: rec.failure! });
      }
    }
    try {
      for (const hook of this._actEnd) await hook(actCtx);
    } catch (e) {
      failed = true;
      failures.push({ act: act.index, actTitle: act.title, step: 0, path: `acts[${act.index}]`, line: act.steps[0]?.line ?? 1, message: `act teardown failed: ${errText(e)}` });
    }
    collectFaults();
    iotlb?.step();
    machine.time.sync();
    eventSub.dispose();
    dmabufSource?.dispose();
    dma.dispose();
    retime.dispose();
    report.endNs = clock();
    runClock.ns = report.endNs;
    report.sections = [...actSections, countersSection(machine, totals, report)];
    report.ok = !failed;
    return report;
  }

  private _record(step: Step, number: number | null, time: number, status: StepRecord['status'], outcome: string): StepRecord {
    return {
      index: step.index, number, op: step.op, path: step.path, line: step.line, col: step.col, args: step.args,
      ...(step.as ? { as: step.as } : {}), expect: describeExpectation(step.expect), status, outcome, time,
      startNs: time, durationNs: 0, transfers: [], log: [], events: [], sections: [],
    };
  }

  /** Sets rec.status/outcome/failure from what the handler did and what the step expects. */
  private _judge(step: Step, rec: StepRecord, outcome: StepOutcome | void, error: unknown, patterns: PatternCache): void {
    const e = step.expect;
    if (outcome?.summary) rec.summary = outcome.summary;
    if (outcome?.result) rec.result = outcome.result;
    const fail = (why: string): void => {
      rec.status = 'failed';
      rec.failure = why;
    };
    if (error !== undefined) {
      if (error instanceof SimError) {
        rec.outcome = error.code;
        rec.message = error.message;
        if (e.errno?.includes(error.code)) return;
        fail(e.errno ? `expected ${e.errno.join(' or ')}, got ${error.code}: ${error.message}` : `unexpected ${error.code}: ${error.message}`);
      } else {
        rec.outcome = 'error';
        rec.message = errText(error);
        fail(`handler error: ${rec.message}`);
      }
      return;
    }
    if (e.errno) return fail(`expected ${e.errno.join(' or ')}, but the step succeeded`);
    if (e.bytes) {
      const got = outcome?.bytes;
      if (!(got instanceof Uint8Array)) return fail(`expected bytes (${describePattern(e.bytes)}), but the step returned none`);
      // A plain loop, not findIndex with a callback per byte: steps compare up to megabytes.
      const at = firstMismatch(e.bytes, got, patterns.bytes(e.bytes, got.length));
      if (at >= 0) {
        const h = (b: number) => `0x${b.toString(16).padStart(2, '0')}`;
        const want = patternBytes(e.bytes, at + 1)[at]!;
        return fail(`bytes differ from ${describePattern(e.bytes)} at offset 0x${at.toString(16)}: got ${h(got[at]!)}, want ${h(want)} (${got.length} bytes compared)`);
      }
      rec.log.push(`${got.length} bytes match ${describePattern(e.bytes)}`);
    }
    if (e.result) {
      const r = outcome?.result ?? {};
      for (const [k, want] of Object.entries(e.result)) {
        if (!sameValue(r[k], want)) return fail(`result.${k} is ${r[k] === undefined ? 'missing' : formatArg(r[k])}, expected ${formatArg(want)}`);
      }
    }
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function sameValue(got: unknown, want: string | number | boolean | null): boolean {
  if (typeof got === 'bigint') {
    if (typeof want === 'number') return Number.isInteger(want) && BigInt(want) === got;
    if (typeof want === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(want)) return BigInt(want) === got;
    return false;
  }
  return got === want;
}

function countersSection(machine: Machine, totals: { transfers: number; bytes: bigint; faults: number; warns: Ring<string> }, act: ActReport): ReportSection {
  const nFaults = totals.faults;
  const lines: string[] = [];
  const units = machine.units().map((u) => ({ unit: u.name, family: u.family, ...counts(u.stats()) }));
  for (const s of units) {
    lines.push(`${s.unit}: IOTLB ${s.translations} translations, ${s.hits} hits, ${s.misses} misses, ${s.walks} walks, ${s.invalidations} invalidations (${s.invalidatedEntries} entries), ${s.faults} faults`);
  }
  if (units.length === 0) lines.push('no IOMMU: DMA is direct');
  const tt = machine.time.totals;
  const time = {
    startNs: act.startNs, endNs: act.endNs, durationNs: act.endNs - act.startNs, transferNs: tt.transferNs,
    translationNs: tt.translationNs, invalidationNs: tt.invalidationNs, controlNs: tt.controlNs,
  };
  const d = machine.sim.dma.stats();
  const moved = totals.bytes;
  lines.push(`DMA: ${d.ops} ops, ${d.bytesToDevice} bytes to device memory, ${d.bytesFromDevice} from device memory, ${d.bytesToRam} to RAM, ${d.bytesFromRam} from RAM, ${d.faults} faults`);
  lines.push(`transfers by the scenario: ${totals.transfers}, ${moved} bytes moved; IOMMU fault records: ${nFaults}`);
  const warns = totals.warns;
  if (warns.total) lines.push(`dma-buf WARNs: ${warns.dropped ? `${warns.dropped} earlier, then ` : ''}${warns.toArray().join(', ')}`);
  lines.push(`time: act ${formatNs(time.durationNs)} (${formatNs(act.startNs)} to ${formatNs(act.endNs)}); DMA ${formatNs(tt.transferNs)} in ${tt.transfers} transfers, `
    + `of which ${formatNs(tt.translationNs)} in IOMMU translation; IOTLB invalidations ${formatNs(tt.invalidationNs)}`);
  return { title: 'counters', lines, data: { iommu: units, dma: counts(d), transfers: totals.transfers, bytesMoved: Number(moved), faults: nFaults, warns: warns.total, time } };
}

/**
 * When pci_p2pdma_map_type() says BUS_ADDR (a switch could route the TLPs) yet the importer got
 * IOVAs: the exporter called dma_map_resource() for every entry, as habanalabs does (HL-11), and
 * under an IOMMU that returns an IOVA whatever the topology. Say so, or the reader sees a
 * contradiction. Reads the step's sg_table sections (their entries are the DMA addresses).
 */
function busAddrIovaNotes(machine: Machine, rec: StepRecord, maps: readonly { exporter: string; importer: string }[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const { exporter, importer } of maps) {
    if (seen.has(`${exporter}>${importer}`)) continue;
    seen.add(`${exporter}>${importer}`);
    const exp = machine.topology.find(exporter);
    const imp = machine.topology.functions.find((f) => f.name === importer);
    if (!exp || !imp || machine.decide(exp, imp).mapType !== 'BUS_ADDR') continue;
    const dom = machine.units().flatMap((u) => u.domains()).find((d) => d.id === machine.sim.iommu.domainOf(machine.rid(imp)));
    if (!dom || dom.type !== 'paging') continue;
    const entries = rec.sections
      .filter((sec) => sec.title === `sg_table for ${importer}`)
      .flatMap((sec) => ((sec.data as { entries?: { dmaAddress: unknown; dma: boolean }[] } | undefined)?.entries ?? []));
    const iova = entries.find((e) => e.dma && typeof e.dmaAddress === 'bigint' && dom.walk(e.dmaAddress).ok);
    if (!iova) continue;
    out.push(`${exporter} -> ${importer} is BUS_ADDR, yet ${importer} got IOVAs (0x${(iova.dmaAddress as bigint).toString(16)}...): `
      + `the exporter maps every entry with dma_map_resource() (HL-11), which under an IOMMU returns an IOVA in ${importer}'s domain; `
      + 'its DMA goes up to the IOMMU instead of across the switch');
  }
  return out;
}

/** Counters as plain numbers for --json (they stay far below 2^53; addresses stay hex strings). */
function counts<T extends object>(o: T): { [K in keyof T]: T[K] extends bigint ? number : T[K] } {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])) as never;
}

/** dma-buf reference counting and fd bookkeeping: too fine-grained for a step's event list. */
const QUIET_EVENTS = new Set(['get', 'put', 'fd']);

/** The generic ops: note. */
/**
 * One line per (device, op, result) group of a step's DMA transfers: a 64K RDMA write over
 * scattered 4K pages is sixteen transfers, and the reader wants the sum, plus the first address.
 */
export function summarizeTransfers(ts: readonly TransferRecord[]): string[] {
  const groups = new Map<string, { first: TransferRecord; n: number; length: bigint; done: bigint; ns: number; translationNs: number }>();
  for (const t of ts) {
    const key = `${t.device}|${t.op}|${t.result.code}`;
    const g = groups.get(key);
    const ns = t.timing?.durationNs ?? 0;
    const tr = t.timing?.translationNs ?? 0;
    if (g) { g.n++; g.length += t.length; g.done += t.result.bytesDone; g.ns += ns; g.translationNs += tr; } else groups.set(key, { first: t, n: 1, length: t.length, done: t.result.bytesDone, ns, translationNs: tr });
  }
  return [...groups.values()].flatMap(({ first: t, n, length, done, ns, translationNs }) => {
    const at = t.dst ? ` to 0x${t.dst.addr.toString(16)}` : t.src ? ` from 0x${t.src.addr.toString(16)}` : '';
    const head = `dma ${t.device} ${t.op} ${length} bytes${at}${n > 1 ? ` and on, in ${n} transfers` : ''}: ${t.result.code}, ${done} done`;
    if (!t.timing) return [head];
    if (done === 0n) return [`${head}; stopped after ${formatNs(ns)}`];
    const timing = formatTiming({ ...t.timing, bytes: Number(done), durationNs: ns, rateGBps: ns > 0 ? Number(done) / ns : 0 });
    return [`${head}; ${timing}${translationNs ? ` (${formatNs(translationNs)} translating)` : ''}`,
      `  path ${t.timing.path}; limited by ${t.timing.bottleneck}`];
  });
}

/** Registers the generic ops' handlers (their one definitions are in op.ts). */
export function registerGenericOps(r: ScenarioRunner): void {
  for (const d of GENERIC_OPS) r.registerOp(d.name, d.run as StepHandler);
}
