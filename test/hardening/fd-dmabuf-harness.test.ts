/**
 * FD-HARNESS: random fd and DMA-BUF calls (bench/fuzz-dmabuf.ts), often with bad arguments:
 * every call succeeds or fails with a SimError that leaves both machines unchanged, and at the
 * end, once the importer let go and the process exited, nothing is left behind. Bounded (fixed
 * seed, a few runs per profile, no clock); fast-check prints the seed and the failing sequence.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { dmaBufCallArb, makeDmaBufWorld, runDmaBufCalls, teardownLeaks } from '../../bench/fuzz-dmabuf.js';

describe('FD-HARNESS fds and dma-buf objects under random calls', () => {
  for (const profile of ['5.15', '6.x', 'latest'] as const) {
    it(`FD-HARNESS-01 (${profile}): SimError or success after every call, an unchanged snapshot after every failure, no leak at exit`, async () => {
      await fc.assert(fc.asyncProperty(fc.array(dmaBufCallArb, { minLength: 120, maxLength: 120 }), async (calls) => {
        const w = await makeDmaBufWorld(profile);
        const r = runDmaBufCalls(w, calls);
        expect(r.violation).toBeNull();
        expect(teardownLeaks(w)).toBeNull();
      }), { numRuns: 4, seed: 20261130, endOnFailure: true });
    });
  }
});
