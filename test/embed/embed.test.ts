import { describe, it } from 'vitest';
import * as api from '../../src/embed-entry.js';
import { embedScenario, embedValidation } from './scenario.js';

describe('embed build on a host-owned memory', () => {
  it('host writes guest RAM, DMA through an IOMMU mapping in and out, host reads back; survives grow', async () => {
    await embedScenario(api, false);
  });
  it('the same on a shared memory (embed-shared build)', async () => {
    await embedScenario(api, true);
  });
  it('refuses windows and direct regions it cannot honour', async () => {
    await embedValidation(api);
  });
});
