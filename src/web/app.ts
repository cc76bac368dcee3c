/**
 * The dmabuf-sim demo page: pick the built-in scenario or paste one, run it in the page, and
 * read per act the topology with its P2P decisions, the timeline of steps with the DMA-BUF
 * events and DMA transfers, the sg_tables, and the I/O page tables (walk any IOVA).
 *
 * The page state is on <body>: data-state = idle | running | done | invalid | error, and
 * data-runs counts finished runs (tests wait on these).
 */
import { timeAxis } from './time-axis.js';
import { OP_SPECS, ScenarioError, type Scenario, type StepRecord } from '../scenario/index.js';
import { h } from './dom.js';
import { BUILTIN_SCENARIOS, MachineSnapshots, parse, runScenario, type PageRun } from './run.js';
import { p2pLegend, p2pMatrix, topologyGraph } from './topology-view.js';
import { actSections, timeline } from './timeline.js';
import { pageTablePanel, type WalkRequest } from './pagetable.js';

const $ = <T extends HTMLElement>(sel: string): T => {
  const el = document.querySelector<T>(sel);
  if (!el) throw new Error(`demo page: ${sel} is missing`);
  return el;
};

const PASTED = '__pasted__';

interface State {
  run: PageRun | null;
  snapshots: MachineSnapshots | null;
  act: number;
  runs: number;
}

const state: State = { run: null, snapshots: null, act: 0, runs: 0 };

function setState(s: 'idle' | 'running' | 'done' | 'invalid' | 'error'): void {
  document.body.dataset['state'] = s;
}

function errorsView(e: unknown, source: HTMLTextAreaElement | null): HTMLElement {
  if (e instanceof ScenarioError) {
    return h('div', { class: 'errors', role: 'alert' },
      h('strong', {}, `The scenario is not valid (${e.diagnostics.length} problem${e.diagnostics.length === 1 ? '' : 's'}):`),
      h('ul', {}, e.diagnostics.map((d) => h('li', { 'data-diag-line': d.line ?? '' },
        d.line !== undefined
          ? h('button', { type: 'button', class: 'link mono', title: 'show in the editor', onclick: () => source && selectLine(source, d.line!, d.col ?? 1) }, `${d.line}:${d.col ?? 1}`)
          : h('span', { class: 'mono' }, d.file),
        ` ${d.path ? `${d.path}: ` : ''}${d.message}`))),
    );
  }
  return h('div', { class: 'errors', role: 'alert' }, h('strong', {}, 'The run failed: '), e instanceof Error ? e.message : String(e));
}

function selectLine(ta: HTMLTextAreaElement, line: number, col: number): void {
  const lines = ta.value.split('\n');
  let start = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) start += lines[i]!.length + 1;
  const len = lines[line - 1]?.length ?? 0;
  const details = ta.closest('details');
  if (details) details.open = true;
  ta.focus();
  ta.setSelectionRange(start + Math.min(col - 1, len), start + len);
  ta.scrollTop = Math.max(0, (line - 4) * 18);
}

async function run(): Promise<void> {
  const picker = $<HTMLSelectElement>('#scenario');
  const source = $<HTMLTextAreaElement>('#source');
  const status = $('#status');
  const btn = $<HTMLButtonElement>('#run');
  const builtin = BUILTIN_SCENARIOS.find((b) => b.name === picker.value);
  const text = builtin ? builtin.text : source.value;
  const file = builtin ? builtin.file : /^\s*[{[]/.test(text) ? 'pasted.json' : 'pasted.yaml';
  setState('running');
  btn.disabled = true;
  status.replaceChildren(h('span', { class: 'muted' }, 'running…'));
  try {
    let scenario;
    try {
      scenario = parse(text, file);
    } catch (e) {
      // The results on the page were another scenario's: clear them with the errors.
      clearRun();
      setState('invalid');
      status.replaceChildren(errorsView(e, builtin ? null : source));
      return;
    }
    const r = await runScenario(scenario);
    state.run = r;
    state.snapshots = new MachineSnapshots(scenario);
    state.act = Math.min(state.act, r.report.acts.length - 1);
    state.runs++;
    const t = r.report.totals;
    status.replaceChildren(h('span', { class: `result ${r.report.ok ? 'ok' : 'fail'}`, 'data-result': r.report.ok ? 'ok' : 'failed' },
      r.report.ok ? 'OK' : 'FAILED'),
    ` ${r.report.scenario}: ${t.acts} act${t.acts === 1 ? '' : 's'}, ${t.steps} steps, ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped `,
    h('span', { class: 'muted' }, `(${r.ms.toFixed(0)} ms)`),
    r.report.failures.length ? h('ul', { class: 'errors' }, r.report.failures.map((f) => h('li', {}, `line ${f.line}: act ${f.act + 1} step #${f.step}: ${f.message}`))) : '');
    renderRun();
    document.body.dataset['runs'] = String(state.runs);
    setState('done');
  } catch (e) {
    setState(e instanceof ScenarioError ? 'invalid' : 'error');
    status.replaceChildren(errorsView(e, builtin ? null : source));
  } finally {
    btn.disabled = false;
  }
}

function clearRun(): void {
  state.run = null;
  state.snapshots = null;
  state.act = 0;
  $('#description').textContent = '';
  $('#tabs').replaceChildren();
  $('#act').replaceChildren();
}

/** The devices an act's steps name (device, nic, from, to, importer...): what the act is about. */
function actDevices(scenario: Scenario, act: number): Set<string> {
  const a = scenario.acts[act];
  const out = new Set<string>();
  if (!a) return out;
  for (const st of a.steps) {
    const spec = OP_SPECS[st.op];
    for (const [k, f] of Object.entries(spec?.fields ?? {})) {
      const v = st.args[k];
      if (f.kind.type !== 'device' || typeof v !== 'string') continue;
      out.add(a.topology.find(v)?.name ?? v);
    }
  }
  return out;
}

function renderRun(): void {
  const r = state.run;
  if (!r) return;
  $('#description').textContent = r.report.description ?? '';
  $('#tabs').replaceChildren(...r.report.acts.map((a) => h('button', {
    type: 'button', role: 'tab', class: `tab ${a.ok ? 'ok' : 'fail'}`, 'data-act-tab': a.index + 1,
    'aria-selected': a.index === state.act ? 'true' : 'false', title: a.title,
    onclick: () => showAct(a.index),
  }, h('span', { class: 'n' }, `${a.index + 1}`), ` ${a.title}`)));
  showAct(state.act);
}

function showAct(i: number, walk?: Partial<WalkRequest>): void {
  const r = state.run!;
  const a = r.report.acts[i]!;
  state.act = i;
  for (const t of document.querySelectorAll<HTMLElement>('#tabs .tab')) t.setAttribute('aria-selected', String(Number(t.dataset['actTab']) === i + 1));
  const onPick = (st: StepRecord, device: string, iova: bigint, pasid?: number): void => {
    const panel = pageTablePanel(a, state.snapshots!, { steps: st.index, device, iova, ...(pasid === undefined ? {} : { pasid }) });
    $('#act .pt-panel').replaceWith(panel);
    panel.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  };
  const topo = r.report.topologies[a.topology]!;
  const iommu = a.iommu ? `IOMMU ${a.iommu.family} (${a.iommu.strict ? 'strict' : 'lazy'})` : 'no IOMMU (DMA is direct)';
  const steps = a.steps.filter((s) => s.number !== null);
  const errnos = steps.filter((s) => s.status === 'passed' && s.outcome !== 'ok').length;
  const focus = actDevices(r.scenario, i);
  $('#act').replaceChildren(
    h('div', { class: 'act-head', 'data-act': i + 1 },
      h('h2', {}, `Act ${i + 1}: ${a.title}`),
      h('div', { class: 'meta' },
        h('span', { class: 'pill' }, `kernel ${a.profile}`), h('span', { class: 'pill' }, iommu), h('span', { class: 'pill' }, `topology ${topo.source}`),
        h('span', { class: `pill ${a.ok ? 'ok' : 'fail'}` }, `${a.ok ? 'OK' : 'FAILED'}: ${steps.length} steps${errnos ? `, ${errnos} expected errno${errnos === 1 ? '' : 's'}` : ''}`)),
      a.error ? h('div', { class: 'errors' }, a.error) : ''),
    h('div', { class: 'act-grid' },
      h('section', { class: 'panel topo-panel' },
        h('h3', {}, 'Topology and P2P decisions'),
        h('p', { class: 'muted small' }, 'Arcs join endpoint pairs, coloured by pci_p2pdma_map_type(); hover an arc, a box or a matrix cell for the kernel\'s reason. The devices this act uses are outlined.'),
        h('div', { class: 'topo-scroll' }, topologyGraph(topo.data, focus)),
        h('div', { class: 'matrix-wrap' }, p2pMatrix(topo.data), p2pLegend())),
      pageTablePanel(a, state.snapshots!, walk)),
    h('section', { class: 'panel' },
      h('h3', {}, 'Timeline'),
      timeAxis(a),
      timeline(a, r.trace, onPick),
      actSections(a)),
  );
}

function footer(): void {
  const iso = globalThis.crossOriginIsolated === true;
  $('#isolation').replaceChildren(h('span', { 'data-isolated': String(iso) },
    iso ? 'cross-origin isolated: SharedArrayBuffer is available' : 'not cross-origin isolated: no SharedArrayBuffer',
    '; the simulator runs on plain (non-shared) Wasm memory and needs none'));
}

function init(): void {
  const picker = $<HTMLSelectElement>('#scenario');
  const source = $<HTMLTextAreaElement>('#source');
  picker.replaceChildren(
    ...BUILTIN_SCENARIOS.map((b) => h('option', { value: b.name }, `${b.name} (built-in)`)),
    h('option', { value: PASTED }, 'pasted text (below)'),
  );
  source.addEventListener('input', () => {
    picker.value = PASTED;
  });
  $('#load-builtin').addEventListener('click', () => {
    const b = BUILTIN_SCENARIOS.find((x) => x.name === picker.value) ?? BUILTIN_SCENARIOS[0]!;
    source.value = b.text;
    picker.value = PASTED;
  });
  $('#run').addEventListener('click', () => void run());
  footer();
  setState('idle');
  document.body.dataset['runs'] = '0';
  void run();
}

init();
