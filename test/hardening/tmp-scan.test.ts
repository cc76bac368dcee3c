import { it } from 'vitest';
import fc from 'fast-check';
import { dmaBufCallArb, makeDmaBufWorld, runDmaBufCalls, teardownLeaks } from '../../bench/fuzz-dmabuf.js';
it('scan', async () => {
  const seen = new Map<string, string>();
  for (let seed = 1; seed <= Number(process.env.SEEDS ?? 30); seed++) {
    for (const profile of ['5.15', '6.x', 'latest'] as const) {
      const calls = fc.sample(dmaBufCallArb, { seed, numRuns: 150 });
      const w = await makeDmaBufWorld(profile);
      const r = runDmaBufCalls(w, calls);
      if (r.violation) {
        const key = r.violation.replace(/^call \d+ /, '').split(/[(:]/)[0] + ' ' + (r.violation.match(/threw (\w+)|changed state|trapped/)?.[0] ?? '');
        if (!seen.has(key)) seen.set(key, `[seed ${seed} ${profile}] ${r.violation.slice(0, 1500)}`);
      } else {
        const l = teardownLeaks(w);
        if (l && !seen.has('leak' + l.slice(0, 30))) seen.set('leak' + l.slice(0, 30), `[seed ${seed} ${profile}] LEAK ${l}`);
      }
    }
  }
  for (const v of seen.values()) console.log('VIOLATION', v, '\n');
}, 600000);
