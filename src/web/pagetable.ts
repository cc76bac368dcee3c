/**
 * The page-table view: pick an act, the step after which to look, and a device with an IOMMU
 * paging or nested domain (optionally one of its PASIDs); type an IOVA and see each level of the
 * walk (table, index, entry, its bits decoded) and the physical address it reaches, or why it
 * does not. A nested domain shows stage 1 with the stage-2 walk of each table fetch and of the
 * output under it.
 */
import type { ActReport } from '../scenario/index.js';
import { decodeDomainEntry } from '../iommu/pte-decode.js';
import { formatSize } from '../pci/render.js';
import type { IommuDomain } from '../iommu/iommu.js';
import { h, hex } from './dom.js';
import { deviceDomain, pagingDomains, type MachineSnapshots } from './run.js';

export interface WalkRequest {
  act: number;
  /** Steps run before looking (the machine after step #steps). */
  steps: number;
  device: string;
  iova: bigint;
  /** Walk the domain this PASID of the device is attached to; absent: the RID's. */
  pasid?: number;
}

/**
 * Where to look first in an act: after the last step that mapped something for a device, at
 * the first entry of its sg_table (else after the last step, with no address).
 */
export function defaultWalkFor(act: ActReport): Partial<WalkRequest> {
  for (let i = act.steps.length - 1; i >= 0; i--) {
    for (const sec of act.steps[i]!.sections) {
      const walk = walkOfSection(sec);
      if (walk) return { steps: i + 1, ...walk };
      const m = /^sg_table for (\S+)/.exec(sec.title);
      const entries = (sec.data as { entries?: { dmaAddress: unknown; dma: boolean }[] } | undefined)?.entries;
      const first = entries?.find((e) => e.dma);
      if (m && first && typeof first.dmaAddress === 'bigint') return { steps: i + 1, device: m[1]!, iova: first.dmaAddress };
    }
  }
  return { steps: act.steps.length };
}

/** The device, IOVA and PASID of an IOMMU walk section ("<device> ... walk of", "<device> IOMMU mapping of"). */
export function walkOfSection(sec: ActReport['steps'][number]['sections'][number]): { device: string; iova: bigint; pasid?: number } | null {
  const d = sec.data as { iova?: unknown; levels?: unknown; pasid?: unknown } | undefined;
  const m = /^(\S+) .*(?:walk|mapping) of /.exec(sec.title);
  if (!m || !d || typeof d.iova !== 'bigint' || !Array.isArray(d.levels)) return null;
  return { device: m[1]!, iova: d.iova, ...(typeof d.pasid === 'number' ? { pasid: d.pasid } : {}) };
}

function parseIova(text: string): bigint | null {
  const t = text.trim().replace(/_/g, '');
  if (/^0x[0-9a-f]+$/i.test(t)) return BigInt(t);
  if (/^[0-9a-f]+$/i.test(t)) return BigInt(`0x${t}`);
  return null;
}

/** The stage-2 walk of one stage-1 table fetch (or of the output), as one row under it. */
function stage2Row(of: string, levels: readonly { name: string; index: number; entry: bigint }[]): HTMLElement {
  return h('tr', { class: 'lvl stage2', 'data-stage': '2', 'data-stage2-of': of },
    h('td', {}, `↳ stage 2`),
    h('td', { class: 'muted', colspan: 5 }, `of ${of === 'output' ? 'the output address' : `the ${of} fetch`}: `,
      levels.map((l, i) => h('span', { class: 'mono s2' }, `${i ? ', ' : ''}${l.name} [${l.index}] = ${hex(l.entry)}`))),
  );
}

function walkTable(domain: IommuDomain, iova: bigint, pasid?: number): HTMLElement {
  const w = domain.walk(iova);
  const fmt = domain.format ?? 'vtd-ss';
  const nested = domain.type === 'nested';
  const stage2 = w.stage2 ?? [];
  const rows = w.levels.flatMap((l, i) => {
    const d = decodeDomainEntry(domain, l.depth, l.entry);
    const to = d.kind === 'leaf' ? `${formatSize(d.pageSize!)} page at ${hex(d.address)}` : d.kind === 'table' ? `next table ${hex(d.address)}` : d.kind;
    const row = h('tr', { class: `lvl k-${d.kind}`, 'data-level': l.level, 'data-kind': d.kind, ...(nested ? { 'data-stage': '1' } : {}), ...(d.kind === 'leaf' ? { 'data-leaf-size': formatSize(d.pageSize!) } : {}) },
      h('td', {}, nested ? `S1 ${l.name}` : l.name),
      h('td', { class: 'mono' }, hex(l.table)),
      h('td', { class: 'num' }, l.index),
      h('td', { class: 'mono' }, `0x${l.entry.toString(16).padStart(16, '0')}`),
      h('td', {}, h('span', { class: `kind k-${d.kind}` }, d.kind), ' ', d.flags.map((f) => h('span', { class: 'bit' }, f))),
      h('td', { class: 'mono' }, to),
    );
    // Nested: the stage-2 walk that fetched this stage-1 table comes right under it.
    return stage2[i] ? [row, stage2Row(l.name, stage2[i]!)] : [row];
  });
  if (nested && stage2.length > w.levels.length) rows.push(stage2Row('output', stage2[w.levels.length]!));
  const result = w.ok
    ? h('div', { class: 'walk-result ok', 'data-walk-iova': hex(iova), 'data-walk-pa': hex(w.pa!), 'data-walk-size': formatSize(w.pageSize!) },
      `${hex(iova)} → PA `, h('strong', { class: 'mono' }, hex(w.pa!)), ` (${formatSize(w.pageSize!)} page)`)
    : h('div', { class: 'walk-result bad', 'data-walk-iova': hex(iova), 'data-walk-fault': w.reason ?? 'fault', ...(w.stage === undefined ? {} : { 'data-fault-stage': w.stage }) },
      `${hex(iova)}: no translation (${w.reason ?? 'fault'}${w.stage === undefined ? '' : `, stage ${w.stage}${w.ipa === undefined ? '' : ` at ipa ${hex(w.ipa)}`}`})`);
  const parent = nested && domain.parent ? `; stage 1 over stage-2 domain ${domain.parent.id} (${domain.parent.format ?? '?'})` : '';
  return h('div', { class: 'walk', 'data-pasid': pasid === undefined ? 'none' : String(pasid), 'data-nested': String(nested) },
    h('div', { class: 'muted walk-head' }, `${domain.unit.name} domain ${domain.id} (${fmt}, ias ${domain.ias}, ${domain.levels} levels${parent})${pasid === undefined ? '' : `, PASID ${pasid}`}`),
    h('table', { class: 'walk-table' },
      h('thead', {}, h('tr', {}, ['level', 'table PA', 'index', 'entry', 'decoded', 'points to'].map((x) => h('th', {}, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'no levels walked'))),
    ),
    result,
  );
}

/** The panel for one act. `snapshots` gives the act's machine after a step. */
export function pageTablePanel(act: ActReport, snapshots: MachineSnapshots, initial: Partial<WalkRequest> = defaultWalkFor(act)): HTMLElement {
  const out = h('div', { class: 'walk-out', 'aria-live': 'polite' });
  if (!act.iommu) {
    return h('section', { class: 'panel pt-panel', 'data-act': act.index + 1 },
      h('h3', {}, 'Page tables'), h('p', { class: 'muted' }, 'No IOMMU in this act: DMA is direct (bus or physical addresses), so there is no I/O page table to walk.'));
  }
  const stepSel = h('select', { id: `pt-step-${act.index}`, 'aria-label': 'after step' },
    h('option', { value: '0' }, 'before the first step'),
    act.steps.map((st, i) => h('option', { value: String(i + 1) }, st.number === null ? `after the note "${String(st.args['text'] ?? '').slice(0, 40)}"` : `after #${st.number} ${st.op}${st.outcome !== 'ok' ? ` (${st.outcome})` : ''}`)));
  stepSel.value = String(initial.steps ?? act.steps.length);
  const devSel = h('select', { 'aria-label': 'device', class: 'pt-device' });
  const iovaIn = h('input', { type: 'text', class: 'mono pt-iova', placeholder: '0xffe00000', spellcheck: 'false', 'aria-label': 'IOVA (hex)', value: initial.iova !== undefined ? hex(initial.iova) : '' });
  const pasidIn = h('input', { type: 'text', class: 'mono pt-pasid', size: 6, placeholder: 'none', spellcheck: 'false', 'aria-label': 'PASID (blank: the RID\'s domain)', value: initial.pasid !== undefined ? String(initial.pasid) : '' });
  const walkBtn = h('button', { type: 'submit', class: 'pt-walk' }, 'Walk');

  let seq = 0;
  let listSeq = 0;
  const refreshDevices = async (want?: string): Promise<void> => {
    const my = ++listSeq;
    const m = await snapshots.after(act.index, Number(stepSel.value));
    if (my !== listSeq) return;
    const prev = want ?? devSel.value;
    devSel.replaceChildren(...pagingDomains(m).map((d) => h('option', { value: d.device }, `${d.device} (${d.domain.unit.name} dom ${d.domain.id})`)));
    if (prev && [...devSel.options].some((o) => o.value === prev)) devSel.value = prev;
  };

  const walk = async (): Promise<void> => {
    const iova = parseIova(iovaIn.value);
    if (iova === null) {
      out.replaceChildren(h('div', { class: 'walk-result bad' }, `not a hex address: '${iovaIn.value}'`));
      return;
    }
    const my = ++seq;
    out.replaceChildren(h('div', { class: 'muted' }, 'walking…'));
    try {
      const m = await snapshots.after(act.index, Number(stepSel.value));
      if (my !== seq) return;
      const p = pasidIn.value.trim();
      if (p !== '' && !/^\d+$/.test(p)) {
        out.replaceChildren(h('div', { class: 'walk-result bad' }, `not a PASID: '${p}'`));
        return;
      }
      const pasid = p === '' ? undefined : Number(p);
      const dom = pasid === undefined ? pagingDomains(m).find((x) => x.device === devSel.value)?.domain
        : devSel.value ? deviceDomain(m, m.rid(m.pci(devSel.value)), pasid) : null;
      out.replaceChildren(dom ? walkTable(dom, iova, pasid) : h('div', { class: 'walk-result bad' },
        `${devSel.value || 'this device'} has no paging domain${pasid === undefined ? '' : ` on PASID ${pasid}`}`));
      out.dataset['walks'] = String(Number(out.dataset['walks'] ?? 0) + 1);
    } catch (e) {
      out.replaceChildren(h('div', { class: 'walk-result bad' }, e instanceof Error ? e.message : String(e)));
    }
  };

  stepSel.addEventListener('change', () => void refreshDevices().then(() => (iovaIn.value ? walk() : undefined)));
  devSel.addEventListener('change', () => void (iovaIn.value ? walk() : undefined));
  const form = h('form', { class: 'pt-form', onsubmit: (e: Event) => { e.preventDefault(); void walk(); } },
    h('label', {}, 'Machine ', stepSel),
    h('label', {}, 'Device ', devSel),
    h('label', {}, 'IOVA ', iovaIn),
    h('label', {}, 'PASID ', pasidIn),
    walkBtn,
  );
  void refreshDevices(initial.device).then(() => (initial.iova !== undefined ? walk() : undefined));
  return h('section', { class: 'panel pt-panel', 'data-act': act.index + 1 },
    h('h3', {}, 'Page tables'),
    h('p', { class: 'muted small' }, 'The device\'s DMA API domain as the act left it after the chosen step. Click "walk" next to an sg_table entry or a walk, or type an IOVA (and a PASID for a device\'s PASID domain).'),
    form, out);
}
