import { defineConfig } from 'vitest/config';

// The whole suite runs twice: against the debug Wasm build (asserts on) and the release build
// (-O3, noAssert). bindings/ picks the build from DMABUF_SIM_WASM.
const include = ['test/**/*.test.ts'];

export default defineConfig({
  test: {
    // Generous: a loaded 2-core CI machine runs the heavy property tests several times slower.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    setupFiles: ['test/helpers/setup-bytes.ts'],
    projects: [
      { extends: true, test: { name: 'debug', include, env: { DMABUF_SIM_WASM: 'debug' } } },
      { extends: true, test: { name: 'release', include, env: { DMABUF_SIM_WASM: 'release' } } },
    ],
  },
});
