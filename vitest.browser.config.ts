import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';

// npm run test:browser: the core tests (those that need no node:fs) in headless Chromium, Debian's
// /usr/bin/chromium (never a downloaded browser; .ci/run installs it with apt-get), plus the
// embed scenario and the built bundles (test/browser imports dist/*.js: npm run build first,
// which pretest:browser does). Both Wasm builds, as in Node. test/browser/*.spec.ts are
// browser-only (the Node config takes test/**/*.test.ts).
const include = ['test/core/**/*.test.ts', 'test/smoke/**/*.test.ts', 'test/embed/**/*.test.ts', 'test/browser/**/*.spec.ts'];

// A fresh object per project: vitest fills it in per project.
const browser = (name: string) => ({
  enabled: true,
  headless: true,
  screenshotFailures: false,
  instances: [{ browser: 'chromium' as const, name }],
  provider: playwright({
    launchOptions: {
      executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run',
      ], // playwright gives each launch a fresh temporary profile (it refuses --user-data-dir)
    },
    // Room for a whole page at scale 1: test/browser/web.spec.ts screenshots the demo page at
    // 1400px wide (the test iframe is scaled down when it does not fit this window).
    contextOptions: { viewport: { width: 1440, height: 3000 } },
  }),
});

export default defineConfig({
  // Tests that read process.env (e.g. IOMMU_PROPERTY_RUNS) get vite's import.meta.env, which holds
  // each project's test.env; bindings/core.ts reads DMABUF_SIM_WASM from there in a browser.
  define: { 'process.env': 'import.meta.env' },
  test: {
    testTimeout: 300_000,
    hookTimeout: 300_000,
    setupFiles: ['test/helpers/setup-bytes.ts'],
    projects: [
      { extends: true, test: { name: 'browser-debug', include, browser: browser('chromium-debug'), env: { DMABUF_SIM_WASM: 'debug' } } },
      { extends: true, test: { name: 'browser-release', include, browser: browser('chromium-release'), env: { DMABUF_SIM_WASM: 'release' } } },
    ],
  },
});
