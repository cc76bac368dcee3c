#!/usr/bin/env node
/**
 * dmabuf-sim command line:
 *   run [file] [--json] [--trace out.json]   a scenario (without a file, the built-in default)
 *   topo [file] [--json]                      a topology's tree and P2P matrix
 *   help
 * Exit status: 0 ok, 1 an expectation failed, 2 usage or file error.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runCoreDemo } from './core-demo.js';
import { loadTopologyArg, topoJson, topoText } from './topo.js';
import { createDefaultRunner } from '../scenario/default-runner.js';
import { loadScenarioFile, parseScenario } from '../scenario/parse.js';
import { SEED_SCENARIO, SEED_SCENARIO_FILE } from '../scenario/builtin/index.js';
import { renderJson, renderText } from '../scenario/report.js';
import { OP_SPECS } from '../scenario/schema.js';
import { ScenarioError } from '../scenario/source.js';
import { stringifyTrace } from '../trace/trace.js';

export const USAGE = `usage: dmabuf-sim <command> [options]

commands:
  run [file] [--json] [--trace out.json]
             run a scenario file (YAML or JSON); without a file, the built-in seed
             scenario (habanalabs HBM exported to RDMA NICs: over a PCIe switch, through
             the IOMMU, refused across a host bridge that is not whitelisted)
  demo [--json]
             the core demo: an IOMMU domain, a 4-level page table, DMA through it, a fault
  topo [file] [--json]
             the PCI topology tree and the pairwise P2P matrix (map type, distance; with
             --json every pair with the kernel's reason) of a topology JSON file, or of the
             built-in seed machine
  help       this text

exit status: 0 ok, 1 an expectation failed, 2 usage or file error

scenario ops: ${Object.keys(OP_SPECS).join(', ')}`;

/** Where the CLI writes; tests capture it. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readText(file: string): string;
  writeText(file: string, text: string): void;
}

export const nodeIo: CliIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  readText: (f) => readFileSync(f, 'utf8'),
  writeText: (f, t) => writeFileSync(f, t),
};

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  json: boolean;
  trace?: string;
}

function parseArgs(cmd: string, args: string[], allowTrace: boolean): Parsed {
  const p: Parsed = { positional: [], json: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') p.json = true;
    else if (allowTrace && (a === '--trace' || a.startsWith('--trace='))) {
      const v = a === '--trace' ? args[++i] : a.slice('--trace='.length);
      if (!v) throw new UsageError(`${cmd}: --trace needs a file name`);
      p.trace = v;
    } else if (a.startsWith('-') && a !== '-') throw new UsageError(`${cmd}: unknown option '${a}'`);
    else p.positional.push(a);
  }
  if (p.positional.length > 1) throw new UsageError(`${cmd}: one file at most (got ${p.positional.join(' ')})`);
  return p;
}

const line = (s: string): string => (s.endsWith('\n') ? s : `${s}\n`);

async function runCommand(args: string[], io: CliIo): Promise<number> {
  const p = parseArgs('run', args, true);
  const file = p.positional[0];
  const scenario = file === undefined
    ? parseScenario(SEED_SCENARIO, SEED_SCENARIO_FILE)
    : loadScenarioFile(file, io.readText);
  const runner = createDefaultRunner();
  const report = await runner.run(scenario);
  io.out(p.json ? line(renderJson(report)) : renderText(report));
  if (p.trace) {
    try {
      io.writeText(p.trace, stringifyTrace(runner.trace.toJSON({ scenario: scenario.name, file: scenario.file })));
    } catch (e) {
      io.err(`dmabuf-sim run: cannot write the trace to '${p.trace}': ${e instanceof Error ? e.message : String(e)}\n`);
      return 2;
    }
  }
  return report.exitCode;
}

function topoCommand(args: string[], io: CliIo): number {
  const p = parseArgs('topo', args, false);
  const t = loadTopologyArg(p.positional[0], io.readText);
  io.out(p.json ? topoJson(t) : topoText(t));
  return 0;
}

/** Runs the CLI with `argv` (without node and the script); returns the exit status. */
export async function main(argv: string[], io: CliIo = nodeIo): Promise<number> {
  const [cmd = 'run', ...rest] = argv;
  try {
    switch (cmd) {
      case 'run':
        return await runCommand(rest, io);
      case 'topo':
        return topoCommand(rest, io);
      case 'demo': {
        const p = parseArgs('demo', rest, false);
        if (p.positional.length) throw new UsageError('demo: takes no file');
        const r = await runCoreDemo();
        io.out(p.json ? JSON.stringify({ scenario: 'core-demo', ok: r.ok, exitCode: r.ok ? 0 : 1, lines: r.lines }, null, 2) + '\n' : line(r.lines.join('\n')));
        return r.ok ? 0 : 1;
      }
      case 'help':
      case '--help':
      case '-h':
        io.out(`${USAGE}\n`);
        return 0;
      default:
        io.err(`dmabuf-sim: unknown command '${cmd}'\n\n${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`dmabuf-sim ${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof ScenarioError) {
      io.err(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
    console.error(e instanceof Error ? e.stack ?? e.message : e);
    process.exitCode = 1;
  });
}
