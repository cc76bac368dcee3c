/**
 * Report sections handlers add under a step: the sg_table of a mapping, the IOMMU walk of
 * each IOVA range mapped, the bytes a transfer moved. Each returns lines for the text report
 * and data for --json.
 */
import type { SgTable } from '../index.js';
import type { IommuDomain } from '../index.js';
import { decodeDomainEntry, formatSize } from '../index.js';
import type { DmaResult } from '../index.js';
import type { ReportSection } from './report.js';

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** sg_table: nents, orig_nents, and each DMA entry (address, length, struct page or none). */
export function sgTableSection(sgt: SgTable, title = 'sg_table'): ReportSection {
  const entries = sgt.entries.map((e, i) => ({
    index: i, dmaAddress: e.dmaAddress, length: BigInt(e.length), page: e.page ? e.page.pfn : null, dma: i < sgt.nents,
  }));
  const lines = [`nents ${sgt.nents}, orig_nents ${sgt.origNents}, ${formatSize(sgt.totalLength())} for DMA${sgt.isPageless() ? ', no struct pages (P2P memory)' : ''}`];
  for (const e of entries) {
    lines.push(`[${e.index}] dma ${hex(e.dmaAddress)} len ${formatSize(e.length)} ${e.page === null ? 'page none' : `pfn ${hex(e.page)}`}${e.dma ? '' : ' (not for DMA)'}`);
  }
  return { title, lines, data: { nents: sgt.nents, origNents: sgt.origNents, pageless: sgt.isPageless(), entries } };
}

/**
 * The walk of `iova` in a paging domain: one line per level with the entry decoded, then the
 * output address; for a nested domain, a line per stage-2 walk (each stage-1 fetch, the output).
 */
export function iommuWalkSection(domain: IommuDomain, iova: bigint, title = `IOMMU walk of ${hex(iova)}`, pasid: number | null = null): ReportSection {
  const w = domain.walk(iova);
  const fmt = domain.format ?? 'vtd-ss';
  const levels = w.levels.map((l) => {
    const d = decodeDomainEntry(domain, l.depth, l.entry);
    return { depth: l.depth, level: l.level, name: l.name, table: l.table, index: l.index, entry: l.entry, kind: d.kind, flags: d.flags, address: d.address ?? null, pageSize: d.pageSize ?? null };
  });
  const stages = domain.type === 'nested' ? `, stage 1 over stage-2 domain ${domain.parent?.id ?? '?'} (${domain.parent?.format ?? '?'})` : '';
  const lines = [`${domain.unit.name} domain ${domain.id} (${fmt}, ias ${domain.ias}${stages})${pasid === null ? '' : ` for pasid ${pasid}`}`];
  for (const l of levels) {
    const tail = l.kind === 'leaf' ? ` ${formatSize(l.pageSize!)} page at ${hex(l.address!)}` : l.kind === 'table' && l.address !== null ? ` -> ${hex(l.address)}` : '';
    lines.push(`${l.name.padEnd(8)} table ${hex(l.table)} [${String(l.index).padStart(3)}] = ${hex(l.entry).padEnd(18)} ${l.kind} ${l.flags.join(' ')}${tail}`);
  }
  // A nested domain: each stage-1 fetch and the output went through stage 2 (domain.parent).
  const stage2 = (w.stage2 ?? []).map((s, i) => ({ of: i < w.levels.length ? w.levels[i]!.name : 'output', levels: s }));
  for (const s of stage2) {
    lines.push(`  stage 2 of ${s.of}: ${s.levels.map((l) => `${l.name} [${l.index}] = ${hex(l.entry)}`).join(', ')}`);
  }
  const where = w.stage === undefined ? '' : `, stage ${w.stage}${w.ipa === undefined ? '' : ` at ipa ${hex(w.ipa)}`}`;
  lines.push(w.ok ? `=> ${hex(w.pa!)} (${formatSize(w.pageSize!)} page)` : `=> no translation (${w.reason}${where})`);
  const nested = domain.type === 'nested' ? { parent: domain.parent?.id ?? null, stage2, stage: w.stage ?? null, ipa: w.ipa ?? null } : {};
  return { title, lines, data: { unit: domain.unit.name, domain: domain.id, pasid, iova, ok: w.ok, pa: w.pa ?? null, pageSize: w.pageSize ?? null, reason: w.reason ?? null, levels, ...nested } };
}

/** What a transfer moved. */
export function bytesMovedSection(what: string, length: bigint, r: DmaResult): ReportSection {
  const lines = [`${what}: ${r.bytesDone} of ${length} bytes, ${r.code}`];
  if (r.fault) lines.push(`stopped by a fault on the ${r.fault.side} side at iova ${hex(r.fault.iova)}: ${r.fault.reason} (code ${r.fault.familyCode})`);
  return { title: 'bytes moved', lines, data: { what, length, bytesDone: r.bytesDone, code: r.code, fault: r.fault ?? null } };
}
