// npm run size: gzipped sizes of what a user loads (run after npm run build). Fails when the
// library bundle, JS + Wasm, is over budget (100 KB gzipped, tracker issue 6).
//   browser  dist/browser.js (release core inlined as base64): the budgeted library bundle
//   node     dist/node.js + dist/core.wasm
//   core     dist/core.js (release core inlined)
//   embed    dist/embed.js (both embed cores inlined)
import { readFileSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET = 100 * 1024;
const dist = new URL('../dist/', import.meta.url);
const bundles = {
  browser: ['browser.js'],
  node: ['node.js', 'core.wasm'],
  core: ['core.js'],
  embed: ['embed.js'],
};
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
let fail = false;
const rows = [];
for (const [name, files] of Object.entries(bundles)) {
  let raw = 0;
  let gz = 0;
  for (const f of files) {
    const u = new URL(f, dist);
    if (!existsSync(u)) { console.error(`size: dist/${f} is missing: run npm run build`); process.exit(1); }
    const b = readFileSync(u);
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
  }
  const budgeted = name === 'browser';
  if (budgeted && gz > BUDGET) fail = true;
  rows.push(`${name.padEnd(8)} ${files.join(' + ').padEnd(22)} ${kb(raw).padStart(9)} raw ${kb(gz).padStart(9)} gzip${budgeted ? `  (budget ${kb(BUDGET)}: ${gz > BUDGET ? 'OVER' : 'ok'})` : ''}`);
}
console.log(rows.join('\n'));
if (fail) {
  console.error('size: the library bundle is over its 100 KB gzip budget');
  process.exit(1);
}
