// npm start's first half: build only when a source is newer than the last build, and say
// nothing unless the build fails (then its output is shown and the exit status passed on).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// The bundles are the build's last step: the CLI bundle's time is the build's time.
const output = join(root, 'dist', 'cli.js');
const inputs = ['assembly', 'bindings', 'src', 'scripts', 'package.json', 'package-lock.json', 'asconfig.json', 'rollup.config.mjs', 'tsconfig.json', 'tsconfig.build.json'];

/** Newest modification time under a path (generated bindings excluded: the build writes them). */
function newest(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(path)) {
    if (e === 'generated' || e === 'node_modules') continue;
    t = Math.max(t, newest(join(path, e)));
  }
  return t;
}

const built = existsSync(output) ? statSync(output).mtimeMs : 0;
const sources = Math.max(...inputs.map((p) => join(root, p)).filter(existsSync).map(newest));
if (sources > built) {
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, encoding: 'utf8', shell: process.platform === 'win32' });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    process.exit(r.status ?? 1);
  }
}
