/** FUZZ-CONTRACT: random calls, mostly bad arguments: SimError or success, and a failure changes nothing. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { callArb, makeWorld, runCalls } from '../../bench/fuzz.js';

describe('bad-input harness over memory, IOMMU, DMA engine, raw core and scenario parser', () => {
  it('a few hundred random calls per run keep the contract (fixed seeds, no clock)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(callArb, { minLength: 150, maxLength: 150 }), async (calls) => {
      const w = await makeWorld();
      const r = runCalls(w, calls);
      expect(r.violation).toBeNull();
    }), { numRuns: 3, seed: 20261130, endOnFailure: true });
  });
});
