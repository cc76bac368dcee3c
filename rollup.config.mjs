// Bundles (npm run bundle, after npm run asbuild). Two multi-entry builds whose entries share
// chunks, so every entry of one build loads one copy of the library (one SimError class):
//   Node     dist/node.js (".") drivers.js scenario.js core.js embed.js + lib-*.js chunks;
//            the Wasm builds beside them (core.wasm = release, core.debug.wasm, core.embed.wasm,
//            core.embed-shared.wasm), read on first use (bindings/sources/file.ts)
//   CLI      dist/cli-main-<hash>.cjs: the whole CLI in one file, so that `dmabuf-sim run` loads
//            one module rather than dozens; it reads dist/core.wasm, and requires the YAML parser
//            (dist/cli-yaml.cjs) only when a file needs it.
//            dist/cli.js (the bin, src/cli/launch.ts) loads it with V8's code cache,
//            dist/cli-main-<hash>.cjs.cache, made here by running the default scenario once
//   browser  dist/browser.js (".") and dist/browser/{drivers,scenario,core,embed}.js + chunks;
//            no node: imports; each Wasm build inlined as base64 in a chunk of its own, loaded
//            only when asked for (bindings/core-source.ts)
//   web      dist/web/: the demo page (npm run web), release core inlined
// Types come from tsc (tsconfig.build.json: dist/src/*.d.ts). TypeScript is transpiled by esbuild.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { builtinModules } from 'node:module';
import esbuild from 'rollup-plugin-esbuild';
import { nodeResolve } from '@rollup/plugin-node-resolve';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const pkg = JSON.parse(readFileSync(here('./package.json'), 'utf8'));
const runtimeDeps = Object.keys(pkg.dependencies ?? {});

/** Sources import './x.js' for x.ts (NodeNext style); resolve those to the .ts file. */
const tsJs = {
  name: 'ts-js',
  resolveId(source, importer) {
    if (!importer || !source.startsWith('.') || !source.endsWith('.js')) return null;
    const ts = fileURLToPath(new URL(source.replace(/\.js$/, '.ts'), `file://${importer}`));
    return existsSync(ts) ? ts : null;
  },
};

/** The loader seam: bindings/core.ts's './core-source.js' becomes bindings/sources/<variant>.ts. */
function coreSource(variant) {
  return {
    name: 'core-source',
    resolveId(source, importer) {
      if (source === './core-source.js' && importer && /bindings[\\/]core\.ts$/.test(importer)) {
        return here(`./bindings/sources/${variant}.ts`);
      }
      return null;
    },
  };
}

/** Copies the demo page's HTML beside its script. */
const webHtml = {
  name: 'web-html',
  generateBundle() {
    this.emitFile({ type: 'asset', fileName: 'index.html', source: readFileSync(here('./src/web/index.html')) });
  },
};

/** Copies the Wasm builds beside the Node build. */
const wasmBeside = {
  name: 'wasm-beside',
  generateBundle() {
    for (const [file, build] of [['core.wasm', 'release'], ['core.debug.wasm', 'debug'], ['core.embed.wasm', 'embed'], ['core.embed-shared.wasm', 'embed-shared']]) {
      this.emitFile({ type: 'asset', fileName: file, source: readFileSync(here(`./build/core.${build}.wasm`)) });
    }
  },
};

/** The public entries, by output name. */
const entries = {
  drivers: 'src/drivers/index.ts',
  scenario: 'src/scenario/index.ts',
  core: 'src/core-entry.ts',
  embed: 'src/embed-entry.ts',
};

const nodeExternal = (id) => id.startsWith('node:') || builtinModules.includes(id) || runtimeDeps.some((d) => id === d || id.startsWith(`${d}/`));
const ts = (opts = {}) => esbuild({ target: 'es2022', tsconfig: here('./tsconfig.json'), ...opts });

// Each build writes its chunks under content hashes: clear the previous build's chunks first, so
// the package never ships a stale one.
if (existsSync(here('./dist'))) {
  for (const f of readdirSync(here('./dist'))) if (/^lib-.*\.js(\.map)?$|^cli-main-.*\.cjs(\.map|\.cache)?$/.test(f)) rmSync(here(`./dist/${f}`));
  rmSync(here('./dist/browser'), { recursive: true, force: true });
}
/** The browser build must not reach Node's built-ins (a page has none). */
const noNode = {
  name: 'no-node',
  resolveId(source, importer) {
    if (source.startsWith('node:') || builtinModules.includes(source)) throw new Error(`browser build: ${importer} imports ${source}`);
    return null;
  },
};
/**
 * The CLI bundle's hashed file name, from its build to the launcher's (built next): the launcher
 * imports it from src/cli/bundle-name.ts, which this replaces.
 */
let cliBundle = null;
const cliBundleName = {
  name: 'cli-bundle-name',
  generateBundle(_opts, bundle) {
    const chunk = Object.values(bundle).find((c) => c.type === 'chunk' && c.isEntry);
    // The launcher reads the bundle as latin1 (no UTF-8 decoding): it must be ASCII, as esbuild
    // writes it (non-ASCII characters escaped).
    const at = chunk.code.search(/[^\x00-\x7f]/);
    if (at >= 0) this.error(`the CLI bundle is not ASCII at offset ${at}: ${JSON.stringify(chunk.code.slice(at - 40, at + 10))}`);
    cliBundle = chunk.fileName;
  },
};
const cliBundleNameOf = {
  name: 'cli-bundle-name-of',
  resolveId(source, importer) {
    return source === './bundle-name.js' && importer && /src[\\/]cli[\\/]launch\.ts$/.test(importer) ? '\0cli-bundle-name' : null;
  },
  load(id) {
    if (id !== '\0cli-bundle-name') return null;
    if (!cliBundle) throw new Error('the CLI bundle must be built before its launcher');
    return `export const CLI_BUNDLE = ${JSON.stringify(cliBundle)};`;
  },
};
/**
 * In the CLI bundle, 'yaml' is a stand-in that loads the parser (dist/cli-yaml.cjs, built below)
 * on first use: the default run (the built-in story, parsed at build time) never parses YAML, so
 * the bundle V8 loads, and its code cache, leave the parser out. The stand-in keeps the loaded
 * module as require's own cache does; it holds no simulation state.
 */
const lazyYaml = {
  name: 'lazy-yaml',
  resolveId(source) {
    return source === 'yaml' ? '\0lazy-yaml' : null;
  },
  load(id) {
    if (id !== '\0lazy-yaml') return null;
    return `let yaml = null;
const y = () => (yaml ??= require('./cli-yaml.cjs'));
export const parseDocument = (...a) => y().parseDocument(...a);
export const isMap = (n) => y().isMap(n);
export const isScalar = (n) => y().isScalar(n);
export const isSeq = (n) => y().isSeq(n);
export class LineCounter { constructor() { return new (y().LineCounter)(); } }`;
  },
};
/** After the launcher is written: the bundle's code cache, from one run of the default scenario in a plain node. */
const cliCodeCache = {
  name: 'cli-code-cache',
  writeBundle() {
    const launcher = new URL('./dist/cli.js', import.meta.url).href;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await (await import(${JSON.stringify(launcher)})).writeCodeCache();`], {
      encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', DMABUF_SIM_WASM: '' },
    });
    if (r.status !== 0) throw new Error(`the CLI's code cache: ${r.stderr || r.error}`);
  },
};
/**
 * The browser build's chunking: every module the root entry (src/index.ts) loads statically goes
 * into one chunk, which the other entries share. One file gzips smaller than five (one window,
 * no names passed between chunks), and the root library is what a page downloads first.
 */
function rootLibChunk(entry) {
  let closure = null;
  return (id, { getModuleInfo }) => {
    if (closure === null) {
      closure = new Set();
      const todo = [entry];
      while (todo.length > 0) {
        const m = todo.pop();
        if (closure.has(m)) continue;
        closure.add(m);
        todo.push(...(getModuleInfo(m)?.importedIds ?? []));
      }
    }
    return id !== entry && closure.has(id) ? 'root' : undefined;
  };
}

const onwarn = (w, warn) => {
  // A bundle that would need something unresolved is broken: fail instead of warning.
  if (w.code === 'UNRESOLVED_IMPORT') throw new Error(w.message);
  warn(w);
};

export default [
  {
    input: { node: 'src/index.ts', ...entries },
    output: { dir: 'dist', format: 'es', sourcemap: true, entryFileNames: '[name].js', chunkFileNames: 'lib-[name]-[hash].js' },
    external: nodeExternal,
    plugins: [coreSource('file'), tsJs, ts(), wasmBeside],
    onwarn,
  },
  {
    // CommonJS: the launcher compiles it as a script (vm.Script), which is what takes a code cache.
    input: { 'cli-main': 'src/cli/main.ts' },
    output: { dir: 'dist', format: 'cjs', sourcemap: true, entryFileNames: '[name]-[hash].cjs', inlineDynamicImports: true },
    external: (id) => id.startsWith('node:') || builtinModules.includes(id),
    // Whitespace and syntax minified (less to compile at start); names kept, so stack traces stay
    // readable. The YAML parser is left out (lazyYaml).
    plugins: [lazyYaml, coreSource('file'), tsJs, nodeResolve({ browser: true, preferBuiltins: true }), ts({ minifyWhitespace: true, minifySyntax: true }), cliBundleName],
    onwarn,
  },
  {
    // yaml's ESM build (its "browser" entry is plain ESM with no Node or DOM dependence), as the
    // CommonJS module the CLI bundle requires when a scenario or topology file needs it.
    input: { 'cli-yaml': 'yaml' },
    output: { dir: 'dist', format: 'cjs', sourcemap: true, entryFileNames: '[name].cjs', exports: 'named' },
    plugins: [nodeResolve({ browser: true, preferBuiltins: true }), ts({ minifyWhitespace: true, minifySyntax: true })],
    onwarn,
  },
  {
    input: { cli: 'src/cli/launch.ts' },
    output: { dir: 'dist', format: 'es', sourcemap: true, entryFileNames: '[name].js' },
    external: (id) => id.startsWith('node:') || builtinModules.includes(id),
    plugins: [cliBundleNameOf, tsJs, ts(), cliCodeCache],
    onwarn,
  },
  {
    input: { browser: 'src/index.ts', ...Object.fromEntries(Object.entries(entries).map(([k, v]) => [`browser/${k}`, v])) },
    output: { dir: 'dist', format: 'es', sourcemap: true, entryFileNames: '[name].js', chunkFileNames: 'browser/lib-[name]-[hash].js', manualChunks: rootLibChunk(here('./src/index.ts')) },
    // Minified: what a page downloads (names and source stay readable through the source maps).
    plugins: [tsJs, nodeResolve({ browser: true, preferBuiltins: false }), ts({ minify: true }), noNode],
    onwarn,
  },
  {
    input: 'src/web/app.ts',
    output: { dir: 'dist/web', entryFileNames: 'app.js', format: 'es', sourcemap: true, inlineDynamicImports: true },
    plugins: [coreSource('inline-release'), tsJs, nodeResolve({ browser: true, preferBuiltins: false }), ts(), webHtml],
    onwarn,
  },
];
