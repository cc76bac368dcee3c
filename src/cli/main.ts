/**
 * dmabuf-sim command line (see USAGE and docs/guide.md). Arguments are parsed with Node's
 * util.parseArgs, strictly: an unknown option is a usage error.
 * Exit status: 0 ok, 1 an expectation failed, 2 usage or file error (a bare `dmabuf-sim` too).
 * The package bin is dist/cli.js (src/cli/launch.ts), which loads this module's bundle with V8's
 * code cache and calls {@link runProgram}.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { runCoreDemo } from './core-demo.js';
import { isMainScript } from './program.js';
import { parseSizeArg, sweepOutput } from './sweep.js';
import { SimError } from '../../bindings/errors.js';
import { BUILTINS, showBuiltin } from './show.js';
import { wantColor, ttyStyle } from './style.js';
import { loadTopologyArg, topoJson, topoText } from './topo.js';
import { createDefaultRunner } from '../scenario/default-runner.js';
import { prefetchCore } from '../machine/machine.js';
import { loadScenarioFile, parseScenario } from '../scenario/parse.js';
import { SEED_SCENARIO, SEED_SCENARIO_FILE, VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE } from '../scenario/builtin/index.js';
import { renderJson, renderText, type ReportDetail, type ReportStyle } from '../scenario/report.js';
import { OP_SPECS } from '../scenario/schema.js';
import { ScenarioError } from '../scenario/source.js';
import { readProblem } from '../scenario/topology-source.js';
import type { Scenario } from '../scenario/schema.js';
import { stringifyTrace } from '../trace/trace.js';

/** What `-` names: standard input, for a scenario or a topology. */
export const STDIN = '-';

const COMMANDS: Record<string, { synopsis: string; help: string }> = {
  run: {
    synopsis: 'run [file|-] [--json] [--trace out.json] [--act N] [--quiet|--verbose]',
    help: `Runs a scenario file (YAML or JSON; - reads standard input). Without a file, the built-in
seed scenario: habanalabs HBM exported to RDMA NICs over a PCIe switch, through the IOMMU,
refused across a host bridge that is not whitelisted, and three more acts (dmabuf-sim show seed
prints it). builtin:seed and builtin:viommu name the built-in scenarios (viommu: PASIDs, nested
stage 1 over stage 2, page requests and dirty tracking through /dev/iommu).

options:
  --json            the report as JSON (counters as numbers, topologies as data)
  --trace FILE      also write a Chrome trace-event file (open it in https://ui.perfetto.dev)
  --act N           run act N only (1-based)
  -q, --quiet       one line per act and the result
  -v, --verbose     also the dma-buf events of each step
  -h, --help        this text`,
  },
  topo: {
    synopsis: 'topo [file|-] [--json]',
    help: `Prints a PCI topology's tree and the pairwise P2P matrix (map type and distance) of a
topology file (JSON or YAML; - reads standard input; builtin:NAME for a built-in machine), or of
the built-in seed machine. The output of topo --json is accepted back as a topology file.

options:
  --json            the devices and every provider/client pair with the kernel's reason
  -h, --help        this text`,
  },
  show: {
    synopsis: 'show [name]',
    help: `Prints a built-in scenario or topology, to start a file of your own from:
${Object.entries(BUILTINS).map(([n, b]) => `  ${n.padEnd(20)}${b.doc}`).join('\n')}
Without a name, lists them.

  dmabuf-sim show seed > my.yaml && dmabuf-sim run my.yaml`,
  },
  sweep: {
    synopsis: 'sweep [FROM TO] [--topology file] [--iommu vtd|smmuv3|none] [--lazy] [--min 4K] [--max 16M] [--factor 4] [--json]',
    help: `DMA bandwidth and latency on the virtual clock (docs/performance-model.md). With FROM and
TO, FROM's DMA engine writes into TO's largest memory BAR (or system RAM for TO = ram) at every
size from --min to --max, as ib_write_bw does; without them, every pair of endpoints with a memory
BAR, as p2pBandwidthLatencyTest does: the rate of a --max transfer and the time of a --min one.
The address is the one the kernel hands out: a bus address for BUS_ADDR, dma_map_resource() for
THRU_HOST_BRIDGE; P2P the kernel refuses is EOPNOTSUPP. Default topology: the seed machine.

options:
  --topology FILE   a topology file (JSON or YAML; builtin:NAME for a built-in machine)
  --iommu FAMILY    vtd, smmuv3 or none (default vtd)
  --lazy            lazy IOTLB invalidation (default strict)
  --min SIZE        smallest transfer (default 4K)
  --max SIZE        largest transfer (default 16M; at most 1G)
  --factor N        size step (default 4)
  --json            the table as JSON (numbers in ns and GB/s)
  -h, --help        this text`,
  },
  demo: {
    synopsis: 'demo [--json]',
    help: `The core alone: an IOMMU domain, a 4-level VT-d page table, DMA through it, a fault and
the IOTLB counters.

options:
  --json            the lines as JSON
  -h, --help        this text`,
  },
  help: { synopsis: 'help [command]', help: 'Prints the usage, or the help of a command.' },
};

export const USAGE = `usage: dmabuf-sim <command> [options]

commands:
${Object.values(COMMANDS).map((c) => `  ${c.synopsis}`).join('\n')}

  dmabuf-sim run                  the seed story (npm start runs this)
  dmabuf-sim show seed > my.yaml  a scenario to start from
  dmabuf-sim <command> --help     the options of a command

options: -h, --help; -V, --version
exit status: 0 ok, 1 an expectation failed, 2 usage or file error, 70 internal error
colour: when standard output is a terminal, unless NO_COLOR is set
docs: docs/guide.md, docs/scenario-format.md, docs/topology-format.md, docs/rules.md in the package

scenario ops: ${Object.keys(OP_SPECS).join(', ')}`;

/** Where the CLI reads and writes; tests capture it. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** A file's text; `-` is standard input. */
  readText(file: string): string;
  writeText(file: string, text: string): void;
  /** Colour the report (standard output is a terminal and NO_COLOR is unset). */
  color?: boolean;
}

export const nodeIo: CliIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
  readText: (f) => readFileSync(f === STDIN ? 0 : f, 'utf8'),
  writeText: (f, t) => writeFileSync(f, t),
  color: wantColor(process.stdout),
};

class UsageError extends Error {
  constructor(readonly command: string | null, message: string) {
    super(message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
const HELP: Options = { help: { type: 'boolean', short: 'h' } };

/** util.parseArgs with our usage errors: unknown options and missing values name the command. */
function parse<O extends Options>(cmd: string, args: string[], options: O, maxPositionals: number) {
  let r;
  try {
    r = parseArgs({ args, options: { ...HELP, ...options }, allowPositionals: true, strict: true });
  } catch (e) {
    const m = e instanceof Error ? e.message : String(e);
    // Node's messages are long ("Unknown option '--jsn'. To specify a positional argument
    // starting with a '-', place it at the end of the command after '--', as in '-- \"--jsn\"").
    const unknown = /Unknown option '([^']+)'/.exec(m);
    const missing = /Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument missing/.exec(m);
    throw new UsageError(cmd, unknown ? `unknown option '${unknown[1]}'` : missing ? `${missing[1]} needs a value` : m);
  }
  if (r.positionals.length > maxPositionals) {
    throw new UsageError(cmd, maxPositionals === 0 ? `takes no argument (got ${r.positionals.join(' ')})` : `one argument at most (got ${r.positionals.join(' ')})`);
  }
  return r;
}

const line = (s: string): string => (s.endsWith('\n') ? s : `${s}\n`);

/** The package version, from the package.json above this file (src/cli or dist/src/cli). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'dmabuf-sim' && p.version) return p.version;
    } catch {
      // not here: one level up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

/** Standard input's text; a failure to read it is a file error (exit 2) like any other. */
export function readStdin(read: (file: string) => string): string {
  try {
    return read(STDIN);
  } catch (e) {
    throw new ScenarioError([{ file: '<stdin>', path: '', message: `cannot read standard input: ${readProblem(e)}` }]);
  }
}

/** Scenario text from `file` ('-': standard input; undefined: the built-in seed). */
function loadScenario(file: string | undefined, io: CliIo): Scenario {
  if (file === undefined || file === 'builtin:seed') return parseScenario(SEED_SCENARIO, SEED_SCENARIO_FILE);
  if (file === 'builtin:viommu') return parseScenario(VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE);
  if (file !== STDIN) return loadScenarioFile(file, io.readText);
  const text = readStdin(io.readText);
  return parseScenario(text, '<stdin>', { format: /^\s*[{[]/.test(text) ? 'json' : 'yaml', readText: io.readText });
}

async function runCommand(args: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parse('run', args, {
    json: { type: 'boolean' }, trace: { type: 'string' }, act: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' }, verbose: { type: 'boolean', short: 'v' },
  }, 1);
  if (v.help) return help('run', io);
  if (v.quiet && v.verbose) throw new UsageError('run', '--quiet and --verbose do not go together');
  if (v.trace === '') throw new UsageError('run', '--trace needs a file name');
  prefetchCore(); // the Wasm compile overlaps the scenario's validation
  const scenario = loadScenario(positionals[0], io);
  let acts: number[] | undefined;
  if (v.act !== undefined) {
    const n = /^\d+$/.test(v.act) ? Number(v.act) : NaN;
    if (!(n >= 1 && n <= scenario.acts.length)) {
      throw new UsageError('run', `--act ${v.act}: the scenario has ${scenario.acts.length} act${scenario.acts.length === 1 ? '' : 's'} (1..${scenario.acts.length})`);
    }
    acts = [n - 1];
  }
  // Without --trace nothing reads the trace: not making it spares the work.
  const runner = createDefaultRunner(v.trace === undefined ? { trace: false } : {});
  const report = await runner.run(scenario, acts ? { acts } : {});
  const detail: ReportDetail = v.quiet ? 'quiet' : v.verbose ? 'verbose' : 'normal';
  const style: ReportStyle | undefined = io.color ? ttyStyle : undefined;
  io.out(v.json ? line(renderJson(report)) : renderText(report, { detail, ...(style ? { style } : {}) }));
  if (v.trace !== undefined) {
    try {
      io.writeText(v.trace, stringifyTrace(runner.trace.toJSON({ scenario: scenario.name, file: scenario.file })));
    } catch (e) {
      io.err(`dmabuf-sim run: cannot write the trace to '${v.trace}': ${e instanceof Error ? e.message : String(e)}\n`);
      return 2;
    }
  }
  return report.exitCode;
}

function topoCommand(args: string[], io: CliIo): number {
  const { values: v, positionals } = parse('topo', args, { json: { type: 'boolean' } }, 1);
  if (v.help) return help('topo', io);
  const t = loadTopologyArg(positionals[0], io.readText);
  io.out(v.json ? topoJson(t) : topoText(t));
  return 0;
}

function showCommand(args: string[], io: CliIo): number {
  const { values: v, positionals } = parse('show', args, {}, 1);
  if (v.help || positionals.length === 0) return help('show', io);
  const text = showBuiltin(positionals[0]!);
  if (text === undefined) throw new UsageError('show', `no built-in '${positionals[0]}' (built-in: ${Object.keys(BUILTINS).join(', ')})`);
  io.out(line(text));
  return 0;
}

async function sweepCommand(args: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parse('sweep', args, {
    topology: { type: 'string' }, iommu: { type: 'string' }, lazy: { type: 'boolean' },
    min: { type: 'string' }, max: { type: 'string' }, factor: { type: 'string' }, json: { type: 'boolean' },
  }, 2);
  if (v.help) return help('sweep', io);
  if (positionals.length === 1) throw new UsageError('sweep', 'give both FROM and TO, or neither (the matrix)');
  const family = v.iommu ?? 'vtd';
  if (!['vtd', 'smmuv3', 'none'].includes(family)) throw new UsageError('sweep', `--iommu ${family}: expected vtd, smmuv3 or none`);
  const factor = v.factor === undefined ? 4 : Number(v.factor);
  if (!Number.isInteger(factor) || factor < 2 || factor > 16) throw new UsageError('sweep', `--factor ${v.factor}: expected an integer 2..16`);
  const t = loadTopologyArg(v.topology, io.readText);
  try {
    const size = (name: string, text: string | undefined, dflt: bigint): bigint => (text === undefined ? dflt : parseSizeArg(name, text));
    const pair = positionals.length === 2;
    const max = size('--max', v.max, 16n << 20n);
    if (max > 1n << 30n) throw new UsageError('sweep', `--max ${v.max}: at most 1G`);
    io.out(await sweepOutput({
      topology: t.description, source: t.source, iommu: family === 'none' ? null : family as 'vtd' | 'smmuv3', strict: !v.lazy,
      ...(pair ? { from: positionals[0], to: positionals[1] } : {}),
      min: size('--min', v.min, 4096n), max, factor,
    }, v.json === true));
    return 0;
  } catch (e) {
    if (e instanceof SimError) throw new UsageError('sweep', e.message);
    throw e;
  }
}

async function demoCommand(args: string[], io: CliIo): Promise<number> {
  const { values: v } = parse('demo', args, { json: { type: 'boolean' } }, 0);
  if (v.help) return help('demo', io);
  const r = await runCoreDemo();
  io.out(v.json ? JSON.stringify({ scenario: 'core-demo', ok: r.ok, exitCode: r.ok ? 0 : 1, lines: r.lines }, null, 2) + '\n' : line(r.lines.join('\n')));
  return r.ok ? 0 : 1;
}

function help(cmd: string | undefined, io: CliIo): number {
  if (cmd === undefined) {
    io.out(`${USAGE}\n`);
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) throw new UsageError(null, `no command '${cmd}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
  io.out(`usage: dmabuf-sim ${c.synopsis}\n\n${c.help}\n`);
  return 0;
}

/** Runs the CLI with `argv` (without node and the script); returns the exit status. */
export async function main(argv: string[], io: CliIo = nodeIo): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
        // A bare command prints the usage, not the 500-line story: `dmabuf-sim run` does that.
        io.err(`${USAGE}\n`);
        return 2;
      case 'run':
        return await runCommand(rest, io);
      case 'topo':
        return topoCommand(rest, io);
      case 'show':
        return showCommand(rest, io);
      case 'demo':
        return await demoCommand(rest, io);
      case 'sweep':
        return await sweepCommand(rest, io);
      case 'help': {
        const { positionals } = parse('help', rest, {}, 1);
        return help(positionals[0], io);
      }
      case '--help':
      case '-h':
        return help(undefined, io);
      case '--version':
      case '-V':
        io.out(`dmabuf-sim ${packageVersion()}\n`);
        return 0;
      default:
        throw new UsageError(null, cmd.startsWith('-') ? `unknown option '${cmd}' (a command comes first)` : `unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      const synopsis = e.command ? COMMANDS[e.command]?.synopsis : undefined;
      io.err(e.command
        ? `dmabuf-sim ${e.command}: ${e.message}\nusage: dmabuf-sim ${synopsis}\n(dmabuf-sim ${e.command} --help for the options)\n`
        : `dmabuf-sim: ${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof ScenarioError) {
      io.err(`${e.message}\n`);
      return 2;
    }
    // Any other refusal of the input (a machine the scenario cannot build, ...): the message,
    // no stack trace. Exit 1 is kept for a failed expectation.
    if (e instanceof SimError) {
      io.err(`dmabuf-sim ${cmd}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

/** Runs the CLI as the program: `argv` without node and the script; sets process.exitCode. */
export function runProgram(argv: string[]): Promise<void> {
  return main(argv).then((code) => { process.exitCode = code; }, (e) => {
    // Not the input's fault: a bug. Its stack helps the report; 70 (EX_SOFTWARE) keeps it apart
    // from a failed expectation (1) and a bad file (2).
    console.error(`dmabuf-sim: internal error (a bug): ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exitCode = 70;
  });
}

// Also a program of its own (node dist/cli-main-<hash>.cjs), as the bin was before the launcher.
if (isMainScript(import.meta.url)) void runProgram(process.argv.slice(2));
