// npm run size: gzipped sizes of what a user loads (run after npm run build). An entry's size is
// the entry file plus every chunk it imports statically, plus the Wasm it loads to create a
// simulator (the release core: the inlined chunk in the browser build, core.wasm in Node).
// Fails when the browser library (dist/browser.js and what it loads) is over 100 KB gzipped.
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUDGET = 100 * 1024;
const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const releaseChunk = readdirSync(join(dist, 'browser')).find((f) => /^lib-core-release-.*\.js$/.test(f));
const entries = {
  browser: ['browser.js', `browser/${releaseChunk}`],
  'browser drivers': ['browser/drivers.js', `browser/${releaseChunk}`],
  'browser scenario': ['browser/scenario.js', `browser/${releaseChunk}`],
  node: ['node.js', 'core.wasm'],
  drivers: ['drivers.js', 'core.wasm'],
  // The bin (cli.js) is a small launcher; the CLI is the bundle it loads.
  cli: [readdirSync(dist).find((f) => /^cli-main-.*\.cjs$/.test(f)), 'core.wasm'],
  core: ['core.js', 'core.wasm'],
};

/** The file and every module it imports statically (relative specifiers only). */
function closure(file, seen = new Set()) {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = readFileSync(join(dist, file), 'utf8');
  for (const m of text.matchAll(/(?:^|[;\n}])\s*(?:import|export)\s*(?:[^'"();]*?from\s*)?['"](\.\.?\/[^'"]+)['"]/g)) {
    closure(relative(dist, join(dist, dirname(file), m[1])), seen);
  }
  return seen;
}

const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
let fail = false;
for (const [name, [entry, wasm]] of Object.entries(entries)) {
  for (const f of [entry, wasm]) {
    if (!f || !existsSync(join(dist, f))) { console.error(`size: dist/${f} is missing: run npm run build`); process.exit(1); }
  }
  const files = [...closure(entry), wasm];
  let raw = 0;
  let gz = 0;
  for (const f of files) {
    const b = readFileSync(join(dist, f));
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
  }
  const budgeted = name === 'browser';
  if (budgeted && gz > BUDGET) fail = true;
  console.log(`${name.padEnd(17)} ${String(files.length).padStart(2)} files ${kb(raw).padStart(9)} raw ${kb(gz).padStart(9)} gzip${budgeted ? `  (budget ${kb(BUDGET)}: ${gz > BUDGET ? 'OVER' : 'ok'})` : ''}`);
}
if (fail) {
  console.error('size: the library bundle is over its 100 KB gzip budget');
  process.exit(1);
}
