#!/usr/bin/env node
/**
 * The package bin (dist/cli.js): loads the CLI bundle (dist/cli-main-<hash>.cjs, src/cli/main.ts
 * as a CommonJS module body) with V8's code cache, and runs it.
 *
 * Why: most of what `dmabuf-sim run` costs beyond Node's own start is V8 parsing the bundle and
 * compiling each function the run calls. Node 20 has no compile cache for modules
 * (module.enableCompileCache is Node 22); vm.Script's cachedData is its public way to the same
 * thing. The build runs the default scenario once and saves what V8 compiled for it
 * ({@link writeCodeCache}). A cache V8 does not take (another Node, other V8 flags) or no cache
 * only costs that compile again: the bundle is the same code either way.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { CLI_BUNDLE } from './bundle-name.js';
import { isMainScript } from './program.js';

/** What the CLI bundle exports. */
export type CliModule = typeof import('./main.js');

/** The CLI bundle, loaded. */
export interface LoadedCli {
  readonly cli: CliModule;
  /** The script the bundle was compiled as (its code cache: script.createCachedData()). */
  readonly script: Script;
  /** The bundle's path. */
  readonly file: string;
  /** Whether V8 took the code cache (false: none, or one made by another Node or with other V8 flags). */
  readonly cacheUsed: boolean;
}

/** Where the code cache of the bundle at `file` lives: beside it. */
export function codeCacheFile(file: string): string {
  return `${file}.cache`;
}

// The bundle becomes the body of a CommonJS module function (as Node's own loader wraps a .cjs
// file). The head has a line of its own and lineOffset -1 takes it back, so stack traces give
// the bundle's own lines.
const HEAD = '(function (exports, require, module, __filename, __dirname) {\n';
const TAIL = '\n})';

/** Loads the CLI bundle from `dir` (the launcher's own folder), with its code cache when there is one. */
export function loadCli(dir: string = dirname(fileURLToPath(import.meta.url))): LoadedCli {
  const file = join(dir, CLI_BUNDLE);
  // ASCII (the build checks), so latin1 reads it as UTF-8 would, without decoding.
  const source = readFileSync(file, 'latin1');
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(codeCacheFile(file));
  } catch {
    // no cache: V8 compiles from the source
  }
  const script = new Script(HEAD + source + TAIL, { filename: file, lineOffset: -1, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} as CliModule };
  const body = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void;
  body(module.exports, createRequire(file), module, file, dir);
  return { cli: module.exports, script, file, cacheUsed: cachedData !== undefined && script.cachedDataRejected === false };
}

/**
 * The build's last step: loads the bundle in `dir` without a cache, runs the default scenario
 * (output discarded) and saves the code V8 compiled for it as the bundle's code cache. Run it in
 * a plain `node` (no V8 flags): V8 takes a cache only under the flags it was made with.
 * @throws Error when the run does not pass (exit status not 0): no cache is written.
 */
export async function writeCodeCache(dir?: string): Promise<string> {
  const file = join(dir ?? dirname(fileURLToPath(import.meta.url)), CLI_BUNDLE);
  rmSync(codeCacheFile(file), { force: true });
  const { cli, script } = loadCli(dirname(file));
  let err = '';
  const code = await cli.main(['run'], { out: () => {}, err: (t) => { err += t; }, readText: () => '', writeText: () => {} });
  if (code !== 0) throw new Error(`writeCodeCache: dmabuf-sim run exited ${code}: ${err}`);
  writeFileSync(codeCacheFile(file), script.createCachedData());
  return codeCacheFile(file);
}

if (isMainScript(import.meta.url)) void loadCli().cli.runProgram(process.argv.slice(2));
