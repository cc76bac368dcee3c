/**
 * The steps of an act as a timeline: op, arguments, outcome (errnos in red with the kernel's
 * message, expected ones marked), and under each step what happened during it: DMA-BUF events
 * (attach, map, unmap, move_notify, ...) and DMA transfers and IOMMU faults from the trace, the
 * step's log lines, its sg_table and IOMMU walk sections.
 */
import type { ActReport, ReportSection, StepRecord } from '../scenario/index.js';
import { formatArg } from '../scenario/index.js';
import type { TraceEvent, TraceFile } from '../trace/index.js';
import { h, hex, toBigInt } from './dom.js';
import { formatNs } from '../time/model.js';
import { sweepPlot } from './time-axis.js';
import { walkOfSection } from './pagetable.js';

/** dma-buf reference counting and fd bookkeeping: in the trace, too fine-grained for the timeline. */
const QUIET = new Set(['get', 'put', 'fd']);

/** Trace events per step (by the step's path), for one act (pid = act number). */
export function eventsByStep(trace: TraceFile, act: number): Map<string, { ev: TraceEvent; thread: string }[]> {
  const pid = act + 1;
  const threads = new Map<number, string>();
  for (const e of trace.traceEvents) if (e.pid === pid && e.ph === 'M' && e.name === 'thread_name') threads.set(e.tid, String(e.args['name']));
  const out = new Map<string, { ev: TraceEvent; thread: string }[]>();
  let current: string | null = null;
  for (const e of trace.traceEvents) {
    if (e.pid !== pid || e.ph === 'M' || e.ph === 'C') continue;
    if (e.cat === 'step') {
      current = e.ph === 'B' ? String(e.args['path']) : null;
      continue;
    }
    if (!current || QUIET.has(e.name)) continue;
    const list = out.get(current) ?? [];
    list.push({ ev: e, thread: threads.get(e.tid) ?? `tid ${e.tid}` });
    out.set(current, list);
  }
  return out;
}

function argText(s: StepRecord): string {
  return Object.entries(s.args).map(([k, v]) => `${k}=${formatArg(v)}`).join(' ');
}

interface Chip {
  ev: TraceEvent;
  thread: string;
  /** Transfers folded into this one (same device, direction and result, one after another). */
  n: number;
  bytes: bigint;
}

/** Consecutive DMA transfers of one device with the same result become one line: 16 x 4K is '16 transfers, 64K'. */
export function groupEvents(evs: readonly { ev: TraceEvent; thread: string }[]): Chip[] {
  const out: Chip[] = [];
  for (const e of evs) {
    const bytes = toBigInt(e.ev.args['bytes']) ?? 0n;
    const last = out.at(-1);
    if (last && e.ev.cat === 'dma' && last.ev.cat === 'dma' && last.thread === e.thread && last.ev.name === e.ev.name && last.ev.args['result'] === e.ev.args['result']) {
      last.n++;
      last.bytes += bytes;
      continue;
    }
    out.push({ ...e, n: 1, bytes });
  }
  return out;
}

/** A red mark for what went wrong, amber where the step expected it (the step passed). */
function eventChip({ ev, thread, n, bytes }: Chip, expected: boolean): HTMLElement {
  const a = ev.args;
  const bad = expected ? ' expected' : ' bad';
  if (ev.cat === 'dma') {
    const where = a['dst'] ? `to ${String(a['dst'])}` : a['src'] ? `from ${String(a['src'])}` : '';
    const ok = a['result'] === 'OK';
    return h('li', { class: `ev ev-dma${ok ? '' : bad}`, 'data-event': ev.name, 'data-count': n },
      h('span', { class: 'tag' }, 'DMA'), ` ${thread} ${ev.name.replace(/^dma /, '')} `,
      n > 1 ? h('span', { class: 'count' }, `${n} transfers, ${formatArg(bytes)}`) : `${bytes} B`,
      ` ${n > 1 ? `${where.replace(/^(to|from) /, '$1 ')} and on` : where}: ${String(a['result'])}`);
  }
  if (ev.cat === 'iommu' && ev.name.startsWith('iommu fault')) {
    return h('li', { class: `ev ev-fault${bad}`, 'data-event': 'fault' },
      h('span', { class: 'tag' }, 'FAULT'), ` ${thread} ${String(a['access'])} iova ${String(a['iova'])}: ${String(a['reason'])} (${String(a['unit'])})`);
  }
  if (ev.cat === 'iommu') {
    const what = ev.name === 'iotlb invalidation' ? `${String(a['invalidations'])} invalidation(s), ${String(a['entries'])} entries` : `${formatArg(BigInt(Number(a['bytes'] ?? 0)))}, domain ${String(a['domain'])} now maps ${formatArg(BigInt(Number(a['mapped'] ?? 0)))}`;
    return h('li', { class: 'ev ev-map', 'data-event': ev.name }, h('span', { class: 'tag' }, ev.name), ` ${thread} ${what}`);
  }
  if (ev.cat === 'warn') return h('li', { class: 'ev ev-warn bad', 'data-event': 'warn' }, h('span', { class: 'tag' }, 'WARN'), ` ${ev.name}`);
  const detail = Object.entries(a).filter(([k]) => !['seq', 'dmaBuf', 'attachment', 'cached', 'dir'].includes(k)).map(([k, v]) => `${k} ${String(v)}`).join(', ');
  const cls = ev.name === 'move_notify' ? 'ev-move' : ev.name === 'map' || ev.name === 'unmap' ? 'ev-map' : 'ev-dmabuf';
  return h('li', { class: `ev ${cls}`, 'data-event': ev.name },
    h('span', { class: 'tag' }, ev.name), ` ${thread} dma-buf ${String(a['dmaBuf'] ?? '')}${a['attachment'] !== undefined ? ` att ${String(a['attachment'])}` : ''}${detail ? `: ${detail}` : ''}`);
}

export type OnPickIova = (step: StepRecord, device: string, iova: bigint, pasid?: number) => void;

function section(sec: ReportSection, step: StepRecord, onPick: OnPickIova): HTMLElement {
  const data = sec.data as Record<string, unknown> | undefined;
  const sg = /^sg_table for (\S+)/.exec(sec.title);
  if (sg && data && Array.isArray(data['entries'])) {
    const device = sg[1]!;
    const entries = data['entries'] as { index: number; dmaAddress: unknown; length: unknown; page: unknown; dma: boolean }[];
    return h('div', { class: 'sec sgt', 'data-sgt': device },
      h('div', { class: 'sec-title' }, sec.title, h('span', { class: 'muted' }, ` — ${sec.lines[0] ?? ''}`)),
      h('table', { class: 'sgt-table' },
        h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'dma_address'), h('th', {}, 'length'), h('th', {}, 'page'), h('th', {}, ''))),
        h('tbody', {}, entries.map((e) => {
          const addr = toBigInt(e.dmaAddress);
          const len = toBigInt(e.length);
          return h('tr', { class: e.dma ? '' : 'muted' },
            h('td', {}, e.index),
            h('td', { class: 'mono' }, addr === null ? String(e.dmaAddress) : hex(addr)),
            h('td', {}, len === null ? String(e.length) : formatArg(len)),
            h('td', {}, e.page === null ? 'none' : `pfn ${hex(toBigInt(e.page) ?? 0n)}`),
            h('td', {}, addr !== null && e.dma ? h('button', { class: 'link', type: 'button', 'data-walk-iova': hex(addr), onclick: () => onPick(step, device, addr) }, 'walk') : ''),
          );
        })),
      ),
    );
  }
  const walk = walkOfSection(sec);
  if (walk) {
    // An IOMMU walk: its lines (the PASID, both stages of a nested walk), and a button that opens it in the page-table panel.
    const nested = Array.isArray(data?.['stage2']);
    return h('div', { class: 'sec walk-sec', 'data-walk-device': walk.device, 'data-pasid': walk.pasid === undefined ? 'none' : String(walk.pasid), 'data-nested': String(nested) },
      h('div', { class: 'sec-title' }, sec.title, ' ',
        h('button', { class: 'link', type: 'button', 'data-walk-iova': hex(walk.iova), onclick: () => onPick(step, walk.device, walk.iova, walk.pasid) }, 'walk')),
      h('pre', {}, sec.lines.join('\n')));
  }
  if (sec.title === 'sweep') return h('div', { class: 'sec sweep' }, h('div', { class: 'sec-title' }, sec.title), sweepPlot(sec), h('pre', {}, sec.lines.join('\n')));
  return h('div', { class: 'sec' }, h('div', { class: 'sec-title' }, sec.title), h('pre', {}, sec.lines.join('\n')));
}

function outcomeBadge(s: StepRecord): HTMLElement {
  if (s.status === 'skipped') return h('span', { class: 'badge skip' }, 'skipped');
  if (s.status === 'failed') return h('span', { class: 'badge fail' }, s.outcome === 'ok' ? 'FAILED' : `${s.outcome} FAILED`);
  if (s.outcome !== 'ok') return h('span', { class: 'badge errno', title: 'this errno was expected' }, s.outcome, h('small', {}, ' expected'));
  return h('span', { class: 'badge ok' }, 'ok');
}

export function timeline(act: ActReport, trace: TraceFile, onPick: OnPickIova): HTMLElement {
  const events = eventsByStep(trace, act.index);
  const items = act.steps.map((st) => {
    const id = `${act.index + 1}:${st.number ?? `note${st.index}`}`;
    if (st.op === 'note' && st.status === 'passed') {
      return h('li', { class: 'step note', 'data-step': id }, h('span', { class: 'idx' }, ''), h('div', { class: 'body' }, String(st.args['text'] ?? '')));
    }
    const evs = events.get(st.path) ?? [];
    const cls = st.status === 'failed' ? 'failed' : st.status === 'skipped' ? 'skipped' : st.outcome !== 'ok' ? 'errno' : 'ok';
    return h('li', { class: `step ${cls}`, 'data-step': id, 'data-op': st.op, 'data-outcome': st.outcome, 'data-status': st.status },
      h('span', { class: 'idx' }, `#${st.number}`),
      h('div', { class: 'body' },
        h('div', { class: 'head' },
          h('span', { class: 'op' }, st.op), ' ', h('span', { class: 'args mono' }, argText(st)),
          st.as ? h('span', { class: 'as' }, ` → ${st.as}`) : '',
          ' ', outcomeBadge(st),
          h('span', { class: 'line muted', title: st.path }, ` line ${st.line}`),
          h('span', { class: 'when muted', title: 'virtual time: start + duration' }, ` @ ${formatNs(st.startNs)} + ${formatNs(st.durationNs)}`),
        ),
        st.status === 'failed' ? h('div', { class: 'msg fail-msg' }, st.failure ?? st.message ?? '') : '',
        st.outcome !== 'ok' && st.message && st.status !== 'failed' ? h('div', { class: 'msg errno-msg' }, st.message) : '',
        st.summary ? h('div', { class: 'summary' }, st.summary) : '',
        evs.length ? h('ul', { class: 'events' }, groupEvents(evs).map((c) => eventChip(c, st.status === 'passed'))) : '',
        st.log.length ? h('pre', { class: 'log' }, st.log.join('\n')) : '',
        st.sections.map((sec) => section(sec, st, onPick)),
      ),
    );
  });
  return h('ol', { class: 'timeline' }, items);
}

/** End-of-act sections (counters). */
export function actSections(act: ActReport): HTMLElement {
  return h('div', { class: 'act-sections' }, act.sections.map((sec) => h('div', { class: 'sec' }, h('div', { class: 'sec-title' }, sec.title), h('pre', {}, sec.lines.join('\n')))));
}
