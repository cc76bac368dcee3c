// Bundles (npm run bundle, after npm run asbuild):
//   dist/node.js     Node ESM entry of the API ("."), loads dist/core.wasm (+ core.debug.wasm) beside it
//   dist/browser.js  the same API for pages ("." under the "browser" condition), release core inlined
//   dist/core.js     dmabuf-sim/core: raw core + ABI constants, release core inlined (Node and pages)
//   dist/embed.js    dmabuf-sim/embed: the API on a host's memory, embed cores inlined (Node and pages)
//   dist/web/        the demo page (npm run web): src/web/index.html and app.js, release core inlined
// Each bundle replaces bindings/core-source.ts (the loader seam) with one of bindings/sources/*.
// Types come from tsc (tsconfig.build.json: dist/src/*.d.ts). TypeScript is transpiled by esbuild.
import { existsSync, readFileSync } from 'node:fs';
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

/** Copies the Wasm builds beside the Node entry. */
const wasmBeside = {
  name: 'wasm-beside',
  generateBundle() {
    this.emitFile({ type: 'asset', fileName: 'core.wasm', source: readFileSync(here('./build/core.release.wasm')) });
    this.emitFile({ type: 'asset', fileName: 'core.debug.wasm', source: readFileSync(here('./build/core.debug.wasm')) });
  },
};

const nodeExternal = (id) => id.startsWith('node:') || builtinModules.includes(id) || runtimeDeps.some((d) => id === d || id.startsWith(`${d}/`));
const ts = () => esbuild({ target: 'es2022', tsconfig: here('./tsconfig.json') });
const output = (file) => ({ file, format: 'es', sourcemap: true, inlineDynamicImports: true });
const onwarn = (w, warn) => {
  // A bundle that would need something unresolved is broken: fail instead of warning.
  if (w.code === 'UNRESOLVED_IMPORT') throw new Error(w.message);
  warn(w);
};

export default [
  {
    input: 'src/index.ts',
    output: output('dist/node.js'),
    external: nodeExternal,
    plugins: [coreSource('file'), tsJs, ts(), wasmBeside],
    onwarn,
  },
  {
    input: 'src/index.ts',
    output: output('dist/browser.js'),
    plugins: [coreSource('inline-release'), tsJs, nodeResolve({ browser: true, preferBuiltins: false }), ts()],
    onwarn,
  },
  {
    input: 'src/core-entry.ts',
    output: output('dist/core.js'),
    plugins: [coreSource('inline-release'), tsJs, nodeResolve({ browser: true, preferBuiltins: false }), ts()],
    onwarn,
  },
  {
    input: 'src/embed-entry.ts',
    output: output('dist/embed.js'),
    plugins: [coreSource('inline-embed'), tsJs, nodeResolve({ browser: true, preferBuiltins: false }), ts()],
    onwarn,
  },
  {
    input: 'src/web/app.ts',
    output: { dir: 'dist/web', entryFileNames: 'app.js', format: 'es', sourcemap: true, inlineDynamicImports: true },
    plugins: [coreSource('inline-release'), tsJs, nodeResolve({ browser: true, preferBuiltins: false }), ts(), webHtml],
    onwarn,
  },
];
