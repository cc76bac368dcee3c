/**
 * npm pack yields a package that a fresh project installs offline and uses through its public
 * entries only: the Node build (dist/*.js + the Wasm files beside it), the browser build
 * (condition "browser"), dmabuf-sim/drivers, /scenario, /core and /embed, the CLI, the type
 * declarations (under nodenext and node10 resolution) and every example in examples/.
 * Needs the build (npm test's pretest does it). It never reaches the registry or the user's npm
 * cache: the package's runtime dependencies are packed from the checkout's node_modules and
 * installed with them, offline, into an empty cache of its own.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.mjs')).sort();
// Generous: a loaded 2-core machine runs this beside the rest of the suite.
const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, env: { ...process.env, ...env } });

let tmp = '';
let project = '';
let files: string[] = [];

beforeAll(() => {
  for (const f of ['node.js', 'browser.js', 'drivers.js', 'scenario.js', 'core.js', 'embed.js', 'cli.js', 'core.wasm', 'src/index.d.ts']) {
    if (!existsSync(join(root, 'dist', f))) throw new Error(`dist/${f} is missing: run npm run build`);
  }
  tmp = mkdtempSync(join(tmpdir(), 'dmabuf-sim-pack-'));
  // An empty cache of its own, and no registry: whatever is not in the tarballs cannot be had.
  const env = { npm_config_cache: join(tmp, 'npm-cache'), npm_config_offline: 'true', npm_config_registry: 'http://127.0.0.1:9/' };
  const packOne = (dir: string) =>
    (JSON.parse(run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp, dir], root, env)) as
      { filename: string; files: { path: string }[] }[])[0]!;
  const self = packOne('.');
  files = self.files.map((f) => f.path);
  const deps = Object.keys(pkg.dependencies ?? {}).map((d) => {
    const depPkg = JSON.parse(readFileSync(join(root, 'node_modules', d, 'package.json'), 'utf8')) as { dependencies?: object };
    if (Object.keys(depPkg.dependencies ?? {}).length > 0) throw new Error(`pack test: ${d} has dependencies of its own; pack them too`);
    return join(tmp, packOne(`./node_modules/${d}`).filename);
  });
  project = join(tmp, 'consumer');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  run(npm, ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', ...deps, join(tmp, self.filename)], project, env);
}, 300_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the bundles, the Wasm beside the Node build, the declarations, docs and examples, not the sources', () => {
    for (const f of ['dist/node.js', 'dist/drivers.js', 'dist/scenario.js', 'dist/core.js', 'dist/embed.js', 'dist/cli.js',
      'dist/core.wasm', 'dist/core.debug.wasm', 'dist/core.embed.wasm', 'dist/core.embed-shared.wasm', 'dist/browser.js',
      'dist/browser/drivers.js', 'dist/src/index.d.ts', 'dist/src/drivers/index.d.ts', 'dist/src/scenario/index.d.ts',
      'dist/src/core-entry.d.ts', 'dist/src/embed-entry.d.ts', 'package.json', 'README.md', 'CHANGELOG.md',
      ...examples.map((e) => `examples/${e}`)]) {
      expect(files).toContain(f);
    }
    // The bin (dist/cli.js) loads the CLI bundle and its V8 code cache, both named after its hash.
    const cliBundle = files.find((f) => /^dist\/cli-main-[\w-]+\.cjs$/.test(f));
    expect(cliBundle).toBeDefined();
    expect(files).toContain(`${cliBundle}.cache`);
    expect(files).toContain('dist/cli-yaml.cjs');
    expect(files.filter((f) => /^(assembly|test|bench|scripts|build)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    // Bundled JS maps carry their sources (nothing to resolve against a checkout).
    const map = JSON.parse(readFileSync(join(project, 'node_modules/dmabuf-sim/dist/node.js.map'), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
    expect(map.sourcesContent?.length).toBe(map.sources.length);
    expect(map.sourcesContent!.every((c) => typeof c === 'string' && c.length > 0)).toBe(true);
  });

  it('a fresh project imports every entry in Node, and they share one SimError', () => {
    writeFileSync(join(project, 'check.mjs'), `
      import { createSimulator, Machine, SimError, Prot, parseTopology } from 'dmabuf-sim';
      import * as drivers from 'dmabuf-sim/drivers';
      import * as scenario from 'dmabuf-sim/scenario';
      import { createCore, ABI, SimError as CoreSimError } from 'dmabuf-sim/core';
      import { createEmbeddedSimulator, fixedBytes, SimError as EmbedSimError } from 'dmabuf-sim/embed';
      const sim = await createSimulator({ arenaBytes: 4 << 20 });
      sim.memory.addRegion({ base: 0n, size: 1n << 20n, kind: 'ram' });
      const dom = sim.iommu.createUnit({ family: 'vtd' }).createDomain({ type: 'paging', format: 'vtd-ss' });
      sim.iommu.attach(1, dom);
      dom.map(0x1000n, 0x8000n, 0x1000n, Prot.RW);
      sim.dma.write({ rid: 1, addr: 0x1010n }, new Uint8Array([9, 8, 7]));
      const core = await createCore({ arenaBytes: 2 << 20 });
      const memory = new WebAssembly.Memory({ initial: 64 });
      const emb = await createEmbeddedSimulator({ memory, base: 1 << 20, bytes: 3 << 20 });
      const m = await Machine.create({ topology: scenario.SEED_TOPOLOGY });
      // An error from a driver, from the machine and from the core's layer: all the public class.
      const errs = [];
      try { m.pci('no-such-device'); } catch (e) { errs.push(e); }
      try { await createCore({ arenaBytes: 3 }); } catch (e) { errs.push(e); }
      try { scenario.parseScenario('acts: [', 'x.yaml'); } catch (e) { errs.push(e); }
      console.log(JSON.stringify({
        bytes: [...sim.memory.read(0x8010n, 3)], build: sim.core.build,
        abi: core.exports.abiVersion() === ABI.ABI_VERSION, embed: emb.core.build, fixed: (await fixedBytes()) > 0,
        oneClass: SimError === CoreSimError && SimError === EmbedSimError,
        errors: errs.map((e) => e instanceof SimError),
        drivers: typeof drivers.HabanaDevice === 'function' || Object.keys(drivers).length > 20,
        machine: m.topology.endpoints().length > 0,
      }));`);
    const out = JSON.parse(run(process.execPath, ['check.mjs'], project)) as Record<string, unknown>;
    // DMABUF_SIM_WASM (inherited) picks dist/core.debug.wasm or dist/core.wasm: both ship.
    const build = process.env['DMABUF_SIM_WASM'] === 'debug' ? 'debug' : 'release';
    expect(out).toEqual({
      bytes: [9, 8, 7], build, abi: true, embed: 'embed', fixed: true, oneClass: true,
      errors: [true, true, true], drivers: true, machine: true,
    });
    // The Node build reads the Wasm files beside it instead of carrying them inline.
    const chunks = readdirSync(join(project, 'node_modules/dmabuf-sim/dist')).filter((f) => f.endsWith('.js'));
    expect(chunks.some((f) => readFileSync(join(project, 'node_modules/dmabuf-sim/dist', f), 'utf8').includes('core.wasm'))).toBe(true);
    expect(chunks.every((f) => !readFileSync(join(project, 'node_modules/dmabuf-sim/dist', f), 'utf8').includes('wasmGzipBase64'))).toBe(true);
  });

  it('the "browser" condition resolves every entry to the browser build (which also runs in Node)', () => {
    writeFileSync(join(project, 'browser.mjs'), `
      import * as api from 'dmabuf-sim';
      import * as drivers from 'dmabuf-sim/drivers';
      import * as core from 'dmabuf-sim/core';
      import { SEED_TOPOLOGY } from 'dmabuf-sim/scenario';
      const sim = await api.createSimulator({ arenaBytes: 2 << 20 });
      const m = await api.Machine.create({ topology: SEED_TOPOLOGY });
      console.log(import.meta.resolve('dmabuf-sim').split('/').slice(-1)[0], import.meta.resolve('dmabuf-sim/drivers').split('/').slice(-2).join('/'),
        sim.core.build, api.SimError === core.SimError, Object.keys(drivers).length > 0, typeof m.rid);`);
    // The browser build loads each Wasm build from a chunk of its own; DMABUF_SIM_WASM picks one.
    const build = process.env['DMABUF_SIM_WASM'] === 'debug' ? 'debug' : 'release';
    expect(run(process.execPath, ['--conditions=browser', 'browser.mjs'], project).trim())
      .toBe(`browser.js browser/drivers.js ${build} true true function`);
  });

  it('the browser library (dist/browser.js, the chunks it imports and the release core) stays within 100 KB gzipped', () => {
    // scripts/size.mjs follows the static imports and exits non-zero over the budget.
    const out = run(process.execPath, [join(root, 'scripts/size.mjs')], root);
    expect(out).toMatch(/^browser .*\(budget 100\.0 KB: ok\)$/m);
  });

  it('the CLI runs from the installed package', () => {
    const out = run(join(project, 'node_modules/.bin/dmabuf-sim'), ['topo', '--json'], project);
    expect(Object.keys(JSON.parse(out) as object).length).toBeGreaterThan(0);
  });

  it.each(examples)('example %s runs from the installed package', (example) => {
    copyFileSync(join(root, 'examples', example), join(project, example));
    const out = run(process.execPath, [example], project);
    expect(out).toMatch(/\bok\b/);
  });

  it.each(['nodenext', 'node10'] as const)('its type declarations check in a TypeScript consumer (%s resolution)', (resolution) => {
    writeFileSync(join(project, 'check.ts'), `
      import { createSimulator, Machine, SimError, type Simulator } from 'dmabuf-sim';
      import * as drivers from 'dmabuf-sim/drivers';
      import { createDefaultRunner } from 'dmabuf-sim/scenario';
      import { createCore, ABI, type CoreExports } from 'dmabuf-sim/core';
      import { createEmbeddedSimulator, type EmbedOptions } from 'dmabuf-sim/embed';
      const s: Promise<Simulator> = createSimulator({ arenaBytes: 1 << 20 });
      const m: Promise<Machine> = Machine.create({ topology: '{}' });
      const e: Promise<CoreExports> = createCore().then((c) => c.exports);
      const o: EmbedOptions = { memory: new WebAssembly.Memory({ initial: 1 }), base: 4096, bytes: 4096 };
      const n: number = ABI.PAGE_SIZE;
      const err: SimError = new SimError('EINVAL', 'op', 'message');
      void [s, m, e, o, n, err, drivers, createDefaultRunner, createEmbeddedSimulator];`);
    const module = resolution === 'nodenext' ? 'nodenext' : 'commonjs';
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      // TypeScript 6 flags node10 as deprecated (it still resolves); silence that, not errors.
      compilerOptions: { ...(resolution === 'node10' ? { ignoreDeprecations: '6.0' } : {}), module, moduleResolution: resolution, target: 'es2022', lib: ['es2022', 'dom'], strict: true, noEmit: true, skipLibCheck: false, types: [] },
      files: ['check.ts'],
    }));
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], project);
  });
});
