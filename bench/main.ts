/**
 * npm run bench [-- --json]: prints ratios measured in one process against baselines run in the
 * same process (raw memory.copy, a plain-TypeScript walker). Targets are the issue's.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchCore, rssChild } from './core.js';
import { benchMapSg } from './mapsg.js';
import { benchRdma } from './rdma.js';
import { benchFormats } from './formats.js';
import { benchIssue15 } from './issue15.js';

const TARGETS: Record<string, [string, number]> = {
  copy4k_vs_memcpy: ['>=', 0.8],
  copy2m_vs_memcpy: ['>=', 0.95],
  translate_hit_vs_ts: ['>=', 2.5],
  rss_mb_96g_device: ['<=', 200],
  mapsg_overhead_vs_core: ['<=', 1.5],
  rdma_write_1m_vs_dma_copy: ['>=', 0.8],
  // Issue 15: the same work on both sides (bench/issue15.ts).
  copy_4k_map4k_vs_memcpy: ['>=', 0.6],
  copy_1m_map4k_vs_memcpy: ['>=', 0.9],
  copy_16m_map4k_vs_memcpy: ['>=', 0.8],
  copy_16m_map4k_scattered_vs_memcpy: ['>=', 0.6],
  copy_64m_map2m_vs_memcpy: ['>=', 0.95],
  translate_hit_vs_ts_iotlb: ['>=', 3],
  walk_miss_1g_vs_ts_walk: ['>=', 3],
  map4k_batch_vs_ts: ['>=', 3],
  api_translate_single_vs_raw: ['<=', 2],
  api_map4k_vs_raw: ['<=', 1.5],
  attach_1g_64kseg_vs_core_batch: ['<=', 2],
  scenario_default_vs_node_startup: ['<=', 2.5],
};

async function main(): Promise<void> {
  if (process.argv.includes('--rss-child')) {
    console.log(JSON.stringify({ rss: await rssChild() }));
    return;
  }
  const json = process.argv.includes('--json');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  if (only === 'issue15' || only?.startsWith('issue15.')) {
    // The same-work keys only (npm run bench -- --only=issue15), or some parts of them
    // (--only=issue15.copy,hit,walk,attach,scenario).
    const r = await benchIssue15(only.includes('.') ? only.slice('issue15.'.length).split(',') : undefined);
    report(r, json);
    return;
  }
  if (only === 'rdma') {
    // A narrower run: just the RDMA key (npm run bench -- --json --only=rdma).
    const r: Record<string, number> = { ...(await benchRdma()), ...(await benchFormats()) };
    for (const k of Object.keys(r)) r[k] = Math.round(r[k]! * 1000) / 1000;
    console.log(json ? JSON.stringify(r) : r);
    return;
  }
  const results: Record<string, number> = {
    ...(await benchCore()), ...(await benchMapSg()), ...(await benchRdma()), ...(await benchFormats()), ...(await benchIssue15()),
  };
  const child = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--rss-child'], { encoding: 'utf8' });
  results.rss_mb_96g_device = JSON.parse(child.trim().split('\n').pop()!).rss;
  report(results, json);
}

function report(results: Record<string, number>, json: boolean): void {
  const round = (v: number) => Math.round(v * 1000) / 1000;
  for (const k of Object.keys(results)) results[k] = round(results[k]!);
  if (json) {
    console.log(JSON.stringify(results));
    return;
  }
  console.log('dmabuf-sim benchmarks (one process; ratios against baselines run alongside)\n');
  console.log(`${'key'.padEnd(38)} ${'value'.padStart(10)}   target`);
  for (const [k, v] of Object.entries(results)) {
    const t = TARGETS[k];
    const met = t ? (t[0] === '>=' ? v >= t[1] : v <= t[1]) : undefined;
    console.log(`${k.padEnd(38)} ${String(v).padStart(10)}   ${t ? `${t[0]} ${t[1]} ${met ? 'met' : 'NOT met'}` : ''}`);
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
