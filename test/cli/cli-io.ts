/** Runs the CLI's main() in-process with captured output and an in-memory file system overlay. */
import { readFileSync } from 'node:fs';
import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  out: string;
  err: string;
  written: Map<string, string>;
}

/** `files['-']` is standard input. */
export async function cli(argv: string[], files: Record<string, string> = {}, opts: { color?: boolean } = {}): Promise<CliRun> {
  let out = '';
  let err = '';
  const written = new Map<string, string>();
  const code = await main(argv, {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readText: (f) => (f in files ? files[f]! : readFileSync(f, 'utf8')),
    writeText: (f, t) => void written.set(f, t),
    color: opts.color ?? false,
  });
  return { code, out, err, written };
}
