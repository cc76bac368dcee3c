#!/usr/bin/env node
// Serves the demo page (dist/web, built by `npm run build`) on loopback only.
//   node scripts/serve.mjs            http://127.0.0.1:8080/  (PORT=... to change the port)
//   node scripts/serve.mjs --isolated also sends COOP/COEP, so the page is cross-origin isolated
//   node scripts/serve.mjs --build    first runs `npm run build` when dist/web is missing or older
//                                     than the sources (what `npm run web` does)
import { createServer } from 'node:http';
import { readFile, readdir, stat } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../dist/web/', import.meta.url));
const port = Number(process.env.PORT ?? 8080);
const isolated = process.argv.includes('--isolated');
const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8', '.json': 'application/json; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8',
};

/** Newest modification time under `dir` (0 when missing). */
async function newest(dir) {
  let t = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return 0;
  }
  for (const e of entries) if (e.isFile()) t = Math.max(t, (await stat(join(e.parentPath ?? e.path, e.name))).mtimeMs);
  return t;
}

if (process.argv.includes('--build')) {
  const repo = fileURLToPath(new URL('../', import.meta.url));
  const built = await stat(join(root, 'app.js')).then((s) => s.mtimeMs, () => 0);
  const sources = Math.max(...(await Promise.all(['src', 'assembly', 'bindings/sources'].map((d) => newest(join(repo, d))))));
  if (built < sources) {
    console.log(built ? 'dist/web is older than the sources: npm run build' : 'dist/web is missing: npm run build');
    const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: repo, stdio: 'inherit', shell: process.platform === 'win32' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}

try {
  await stat(join(root, 'index.html'));
} catch {
  console.error(`dist/web/index.html is missing: run \`npm run build\` first`);
  process.exit(1);
}

const server = createServer(async (req, res) => {
  const headers = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
  if (isolated) Object.assign(headers, { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, allow: 'GET, HEAD' }).end();
    return;
  }
  let path;
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
  } catch {
    res.writeHead(400, headers).end('bad request');
    return;
  }
  if (path.endsWith('/')) path += 'index.html';
  const file = normalize(join(root, path));
  if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) {
    res.writeHead(403, headers).end('forbidden');
    return;
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { ...headers, 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain; charset=utf-8' }).end('not found');
  }
});

server.listen(port, '127.0.0.1', () => {
  const { port: p } = server.address();
  console.log(`dmabuf-sim demo: http://127.0.0.1:${p}/${isolated ? '  (cross-origin isolated)' : ''}`);
});
