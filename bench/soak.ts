/**
 * `npm run soak`: a million random calls (bench/fuzz.ts) on one world, the contract checked on
 * every call and the unchanged-state snapshot on every 100th failing one; prints resident
 * memory before and after. Then --dmabuf-ops calls of the fd and DMA-BUF harness
 * (bench/fuzz-dmabuf.ts), 500 per fresh world, each world checked for leaks at its end.
 * Options: --ops N (default 1000000), --dmabuf-ops N (default 100000), --seed S.
 */
import fc from 'fast-check';
import { callArb, makeWorld, runCalls } from './fuzz.js';
import { dmaBufCallArb, makeDmaBufWorld, runDmaBufCalls, teardownLeaks } from './fuzz-dmabuf.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer`);
  return v;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const gc = (globalThis as { gc?: () => void }).gc;

async function main(): Promise<number> {
  const total = arg('ops', 1_000_000);
  const seed = arg('seed', 12);
  const batch = 10_000;
  const w = await makeWorld();
  gc?.();
  const rss0 = process.memoryUsage().rss;
  console.log(`soak: ${total} calls, seed ${seed}; resident before: ${mib(rss0)}`);
  let done = 0;
  let errors = 0;
  for (let b = 0; done < total; b++) {
    const n = Math.min(batch, Math.ceil((total - done) * 1.03));
    // The parser costs a thousand times a core call: keep one parse in 50 so the million calls
    // stay on the core layers (the parser has its own bounded run in the suite).
    const calls = fc.sample(callArb, { seed: seed * 1_000_003 + b, numRuns: n }).filter((c, i) => c.name !== 'scenario.parse' || i % 50 === 0).slice(0, total - done);
    const r = runCalls(w, calls, 100);
    errors += r.errors;
    if (r.violation) {
      console.error(`soak: contract broken after ${done} calls: ${r.violation}`);
      return 1;
    }
    done += calls.length;
    if (calls.length === 0) break;
    if (b % 20 === 19) console.log(`  ${done} calls, ${errors} refused, resident ${mib(process.memoryUsage().rss)}`);
  }
  const dmabufTotal = arg('dmabuf-ops', 100_000);
  let dmabufDone = 0;
  let dmabufErrors = 0;
  for (let b = 0; dmabufDone < dmabufTotal; b++) {
    const calls = fc.sample(dmaBufCallArb, { seed: seed * 7_919 + b, numRuns: Math.min(500, dmabufTotal - dmabufDone) });
    const dw = await makeDmaBufWorld((['5.15', '6.x', 'latest'] as const)[b % 3]);
    const r = runDmaBufCalls(dw, calls, 10);
    dmabufErrors += r.errors;
    const leak = r.violation ?? teardownLeaks(dw);
    if (leak) {
      console.error(`soak: fd/dma-buf contract broken in world ${b} (seed ${seed * 7_919 + b}): ${leak}`);
      return 1;
    }
    dmabufDone += calls.length;
  }
  if (dmabufTotal > 0) console.log(`soak: ${dmabufDone} fd/dma-buf calls, ${dmabufErrors} refused with SimError, no contract break, no leak at exit`);
  gc?.();
  const rss1 = process.memoryUsage().rss;
  console.log(`soak: ${done} calls, ${errors} refused with SimError, none broke the contract`);
  console.log(`resident before: ${mib(rss0)}, after: ${mib(rss1)} (${rss1 >= rss0 ? '+' : ''}${mib(rss1 - rss0)}); arena chunks in use ${w.sim.memory.arena().chunksUsed}`);
  return 0;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
