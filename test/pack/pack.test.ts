/**
 * npm pack yields a package that a fresh project can npm install and import: the Node entry
 * (dist/node.js + dist/core.wasm), the browser bundle (condition "browser"), dmabuf-sim/core and
 * dmabuf-sim/embed, with their type declarations. Needs the build (npm test's pretest does it).
 * Offline: the package's only runtime dependency is already in npm's cache from the install.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });

let tmp = '';
let project = '';
let files: string[] = [];

beforeAll(() => {
  for (const f of ['node.js', 'browser.js', 'core.js', 'embed.js', 'core.wasm', 'src/index.d.ts']) {
    if (!existsSync(join(root, 'dist', f))) throw new Error(`dist/${f} is missing: run npm run build`);
  }
  tmp = mkdtempSync(join(tmpdir(), 'dmabuf-sim-pack-'));
  const packed = JSON.parse(run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], root)) as
    { filename: string; files: { path: string }[] }[];
  files = packed[0]!.files.map((f) => f.path);
  project = join(tmp, 'consumer');
  run('mkdir', ['-p', project], tmp);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  run(npm, ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', join(tmp, packed[0]!.filename)], project);
}, 180_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the bundles, the Wasm beside the Node entry and the declarations, not the sources', () => {
    for (const f of ['dist/node.js', 'dist/core.wasm', 'dist/browser.js', 'dist/core.js', 'dist/embed.js',
      'dist/src/index.d.ts', 'dist/src/core-entry.d.ts', 'dist/src/embed-entry.d.ts', 'package.json']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /^(assembly|test|bench|scripts|build)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('a fresh project installs it and imports every entry in Node', () => {
    writeFileSync(join(project, 'check.mjs'), `
      import { createSimulator, Prot } from 'dmabuf-sim';
      import { createCore, ABI } from 'dmabuf-sim/core';
      import { createEmbeddedSimulator, fixedBytes } from 'dmabuf-sim/embed';
      const sim = await createSimulator({ arenaBytes: 4 << 20 });
      sim.memory.addRegion({ base: 0n, size: 1n << 20n, kind: 'ram' });
      const dom = sim.iommu.createUnit({ family: 'vtd' }).createDomain({ type: 'paging', format: 'vtd-ss' });
      sim.iommu.attach(1, dom);
      dom.map(0x1000n, 0x8000n, 0x1000n, Prot.RW);
      sim.dma.write({ rid: 1, addr: 0x1010n }, new Uint8Array([9, 8, 7]));
      const core = await createCore({ arenaBytes: 2 << 20 });
      const memory = new WebAssembly.Memory({ initial: 64 });
      const emb = await createEmbeddedSimulator({ memory, base: 1 << 20, bytes: 3 << 20 });
      console.log(JSON.stringify({
        bytes: [...sim.memory.read(0x8010n, 3)], build: sim.core.build,
        abi: core.exports.abiVersion() === ABI.ABI_VERSION, embed: emb.core.build, fixed: (await fixedBytes()) > 0,
      }));`);
    const out = JSON.parse(run(process.execPath, ['check.mjs'], project)) as Record<string, unknown>;
    // DMABUF_SIM_WASM (inherited) picks dist/core.debug.wasm or dist/core.wasm: both ship.
    const build = process.env['DMABUF_SIM_WASM'] === 'debug' ? 'debug' : 'release';
    expect(out).toEqual({ bytes: [9, 8, 7], build, abi: true, embed: 'embed', fixed: true });
    // The Node entry read the Wasm file beside it.
    const entry = readFileSync(join(project, 'node_modules/dmabuf-sim/dist/node.js'), 'utf8');
    expect(entry).toContain('core.wasm');
    expect(entry).not.toContain('wasmBase64');
  });

  it('the "browser" condition resolves to the inlined bundle (which also runs in Node)', () => {
    writeFileSync(join(project, 'browser.mjs'), `
      import * as api from 'dmabuf-sim';
      const sim = await api.createSimulator({ arenaBytes: 2 << 20 });
      console.log(import.meta.resolve('dmabuf-sim').split('/').pop(), sim.core.build);`);
    expect(run(process.execPath, ['--conditions=browser', 'browser.mjs'], project).trim()).toBe('browser.js release');
  });

  it('its type declarations check in a TypeScript consumer', () => {
    writeFileSync(join(project, 'check.ts'), `
      import { createSimulator, type Simulator } from 'dmabuf-sim';
      import { createCore, ABI, type CoreExports } from 'dmabuf-sim/core';
      import { createEmbeddedSimulator, type EmbedOptions } from 'dmabuf-sim/embed';
      const s: Promise<Simulator> = createSimulator({ arenaBytes: 1 << 20 });
      const e: Promise<CoreExports> = createCore().then((c) => c.exports);
      const o: EmbedOptions = { memory: new WebAssembly.Memory({ initial: 1 }), base: 4096, bytes: 4096 };
      const n: number = ABI.PAGE_SIZE;
      void [s, e, o, n, createEmbeddedSimulator];`);
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'dom'], strict: true, noEmit: true, skipLibCheck: true, types: [] },
      files: ['check.ts'],
    }));
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], project);
  });
});
