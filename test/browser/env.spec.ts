/** The browser projects run the Wasm build they name, as the Node projects do. */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/index.js';

it('runs in a browser, on the build its project asks for', async () => {
  expect(typeof document).toBe('object');
  const sim = await createSimulator({ arenaBytes: 2 << 20 });
  expect(sim.core.build).toBe((import.meta as unknown as { env: Record<string, string> }).env['DMABUF_SIM_WASM']);
});
