/**
 * The act on a real time axis: the virtual clock from the act's start to its end, one lane for
 * the steps and one per device with its DMA transfers as bars (position and length in time, the
 * rate in the tooltip); and a sweep's bandwidth-versus-size plot. Both read the run report only.
 */
import type { ActReport, ReportSection } from '../scenario/index.js';
import type { SweepResult } from '../time/sweep.js';
import { formatNs } from '../time/model.js';
import { h, s } from './dom.js';

const pct = (x: number): string => `${(x * 100).toFixed(3)}%`;

/** Five ticks at round virtual times across [start, end]. */
function ticks(start: number, end: number): number[] {
  const span = Math.max(1, end - start);
  const raw = span / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw)!;
  const out: number[] = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) out.push(t);
  return out;
}

export function timeAxis(act: ActReport): HTMLElement {
  const start = act.startNs;
  const end = Math.max(act.endNs, start + 1);
  const span = end - start;
  const at = (t: number): string => pct((t - start) / span);
  const len = (d: number): string => pct(Math.max(d / span, 0.002));
  const lanes = new Map<string, HTMLElement[]>();
  lanes.set('steps', []);
  for (const st of act.steps) {
    if (st.number === null) continue;
    lanes.get('steps')!.push(h('div', {
      class: `bar step-bar ${st.status === 'failed' ? 'failed' : st.outcome !== 'ok' ? 'errno' : ''}`,
      style: `left:${at(st.startNs)};width:${len(st.durationNs)}`,
      title: `#${st.number} ${st.op}: ${formatNs(st.startNs)} + ${formatNs(st.durationNs)}`, 'data-step-bar': st.number,
    }));
    for (const t of st.transfers) {
      const lane = lanes.get(t.device) ?? [];
      lane.push(h('div', {
        class: `bar dma-bar${t.result === 'OK' ? '' : ' bad'}`, style: `left:${at(t.startNs)};width:${len(t.durationNs)}`,
        title: `${t.op} ${t.bytes} bytes in ${formatNs(t.durationNs)}, ${t.rateGBps.toFixed(2)} GB/s\n${t.path}\nlimited by ${t.limitedBy}`,
        'data-transfer': `${t.device}@${t.startNs}`,
      }));
      lanes.set(t.device, lane);
    }
  }
  return h('div', { class: 'time-axis', 'data-time-axis': act.index + 1 },
    h('div', { class: 'muted small' }, `virtual time ${formatNs(start)} to ${formatNs(end)} (${formatNs(span)})`),
    [...lanes].map(([name, bars]) => h('div', { class: 'lane', 'data-lane': name }, h('span', { class: 'lane-name' }, name), h('div', { class: 'lane-track' }, bars))),
    h('div', { class: 'lane ticks' }, h('span', { class: 'lane-name' }, ''),
      h('div', { class: 'lane-track' }, ticks(start, end).map((t) => h('span', { class: 'tick', style: `left:${at(t)}` }, formatNs(t))))),
  );
}

/** A sweep section's rows as GB/s against log2(bytes), with the points labelled. */
export function sweepPlot(sec: ReportSection): SVGElement | null {
  const r = sec.data as SweepResult | undefined;
  if (!r || !Array.isArray(r.rows) || r.rows.length === 0) return null;
  const W = 360;
  const H = 160;
  const pad = 34;
  const xs = r.rows.map((x) => Math.log2(x.bytes));
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const top = Math.max(...r.rows.map((x) => x.rateGBps), 1) * 1.1;
  const X = (v: number): number => pad + ((v - x0) / (x1 - x0)) * (W - 2 * pad);
  const Y = (v: number): number => H - pad + 10 - (v / top) * (H - pad - 10);
  const pts = r.rows.map((row, i) => `${X(xs[i]!).toFixed(1)},${Y(row.rateGBps).toFixed(1)}`).join(' ');
  return s('svg', { class: 'sweep-plot', viewBox: `0 0 ${W} ${H}`, width: W, height: H, 'data-sweep': `${r.from}>${r.to}` },
    s('line', { x1: pad, y1: H - pad + 10, x2: W - pad, y2: H - pad + 10, stroke: '#98a2b3' }),
    s('line', { x1: pad, y1: 10, x2: pad, y2: H - pad + 10, stroke: '#98a2b3' }),
    s('text', { x: 4, y: 14, 'font-size': 10 }, `${top.toFixed(0)} GB/s`),
    s('text', { x: W - pad, y: H - 4, 'font-size': 10, 'text-anchor': 'end' }, 'bytes (log)'),
    s('polyline', { points: pts, fill: 'none', stroke: '#1d4ed8', 'stroke-width': 2 }),
    r.rows.map((row, i) => s('circle', { cx: X(xs[i]!), cy: Y(row.rateGBps), r: 3, fill: '#1d4ed8' },
      s('title', {}, `${row.bytes} bytes: ${formatNs(row.durationNs)}, ${row.rateGBps.toFixed(2)} GB/s`))),
    s('text', { x: pad + 4, y: 22, 'font-size': 10 }, `${r.from} -> ${r.to} (${r.mapType})`),
  );
}
