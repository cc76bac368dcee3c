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

const TARGETS: Record<string, [string, number]> = {
  copy4k_vs_memcpy: ['>=', 0.8],
  copy2m_vs_memcpy: ['>=', 0.95],
  translate_hit_vs_ts: ['>=', 2.5],
  rss_mb_96g_device: ['<=', 200],
  mapsg_overhead_vs_core: ['<=', 1.5],
  rdma_write_1m_vs_dma_copy: ['>=', 0.8],
};

async function main(): Promise<void> {
  if (process.argv.includes('--rss-child')) {
    console.log(JSON.stringify({ rss: await rssChild() }));
    return;
  }
  const json = process.argv.includes('--json');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  if (only === 'rdma') {
    // A narrower run: just the RDMA key (npm run bench -- --json --only=rdma).
    const r: Record<string, number> = { ...(await benchRdma()), ...(await benchFormats()) };
    for (const k of Object.keys(r)) r[k] = Math.round(r[k]! * 1000) / 1000;
    console.log(json ? JSON.stringify(r) : r);
    return;
  }
  const results: Record<string, number> = { ...(await benchCore()), ...(await benchMapSg()), ...(await benchRdma()), ...(await benchFormats()) };
  const child = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--rss-child'], { encoding: 'utf8' });
  results.rss_mb_96g_device = JSON.parse(child.trim().split('\n').pop()!).rss;
  const round = (v: number) => Math.round(v * 1000) / 1000;
  for (const k of Object.keys(results)) results[k] = round(results[k]!);
  if (json) {
    console.log(JSON.stringify(results));
    return;
  }
  console.log('dmabuf-sim benchmarks (one process; ratios against baselines run alongside)\n');
  console.log(`${'key'.padEnd(30)} ${'value'.padStart(10)}   target`);
  for (const [k, v] of Object.entries(results)) {
    const t = TARGETS[k];
    const met = t ? (t[0] === '>=' ? v >= t[1] : v <= t[1]) : undefined;
    console.log(`${k.padEnd(30)} ${String(v).padStart(10)}   ${t ? `${t[0]} ${t[1]} ${met ? 'met' : 'NOT met'}` : ''}`);
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
