#!/usr/bin/env node
/** dmabuf-sim command line: `run` (the default scenario), `help`. */
import { runCoreDemo } from './core-demo.js';

const USAGE = `usage: dmabuf-sim <command>

commands:
  run        run the default scenario (the core demo: IOMMU domain, page table, DMA, faults)
  help       this text`;

async function main(argv: string[]): Promise<number> {
  const [cmd = 'run', ...rest] = argv;
  switch (cmd) {
    case 'run': {
      if (rest.length > 0) {
        console.error(`dmabuf-sim run: scenario files are not supported yet (got ${rest.join(' ')})`);
        return 2;
      }
      const r = await runCoreDemo();
      console.log(r.lines.join('\n'));
      return r.ok ? 0 : 1;
    }
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`dmabuf-sim: unknown command '${cmd}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exitCode = 1;
});
