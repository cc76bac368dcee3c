/**
 * The API reference is complete: TypeDoc (`npm run docs`, typedoc.json) validates every public
 * export of the package's entries and warns about each symbol without documentation, each
 * type a public signature uses but no entry exports, and each broken {@link}. The check runs
 * `typedoc --emit none` with the repository's own config, as `npm run docs` would, and reads
 * its warnings.
 *
 * Two assertions: the files listed in DOCUMENTED stay fully documented (a regression there
 * fails at once), and the whole package has no warning at all. While files remain to be
 * documented the second one fails and its message lists every remaining symbol by file.
 *
 * Runs in the debug project only: it does not depend on the Wasm build, and it costs about a
 * minute of CPU.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Files whose public symbols are all documented; they must stay that way. */
const DOCUMENTED = [
  'bindings/core.ts', 'bindings/core-source.ts', 'bindings/embed.ts', 'bindings/errors.ts',
  'src/simulator.ts', 'src/core-entry.ts', 'src/embed-entry.ts',
  'src/memory/physical-memory.ts', 'src/util/args.ts',
  'src/pci/acs.ts', 'src/pci/builder.ts', 'src/pci/describe.ts', 'src/pci/enumerate.ts', 'src/pci/log.ts',
  'src/pci/render.ts', 'src/pci/topology.ts', 'src/pci/whitelist.ts',
  'src/dma-mapping/constants.ts', 'src/dma-mapping/cookie.ts', 'src/dma-mapping/iova.ts',
  'src/dma-mapping/sg.ts', 'src/dma-mapping/swiotlb.ts',
  'src/scenario/schema.ts', 'src/scenario/source.ts', 'src/scenario/validate.ts', 'src/scenario/parse.ts',
  'src/scenario/pattern.ts', 'src/scenario/topology-source.ts', 'src/scenario/default-runner.ts',
  'src/scenario/sections.ts', 'src/scenario/builtin/seed-topology.ts', 'src/scenario/builtin/seed-scenario.ts',
  'src/dma-buf/attachment.ts', 'src/dma-buf/clock.ts', 'src/dma-buf/constants.ts', 'src/dma-buf/dma-buf.ts',
  'src/dma-buf/events.ts', 'src/dma-buf/fence.ts', 'src/dma-buf/file.ts', 'src/dma-buf/index.ts',
  'src/dma-buf/kernel.ts', 'src/dma-buf/ops.ts', 'src/dma-buf/process.ts', 'src/dma-buf/profile.ts',
  'src/dma-buf/resv.ts', 'src/dma-buf/sg-table.ts', 'src/dma-buf/sync-file.ts',
  'src/process/constants.ts', 'src/process/file.ts', 'src/process/index.ts', 'src/process/process.ts',
  'src/process/vma.ts', 'src/dma-mapping/dma-api.ts', 'src/pci/resource.ts', 'src/pci/p2pdma.ts',
  'src/iommu/iommu.ts', 'src/iommu/kernel.ts', 'src/iommu/pte-decode.ts',
  'src/drivers/udmabuf/uapi.ts', 'src/drivers/udmabuf/memfd.ts', 'src/drivers/udmabuf/cpu-access.ts',
  'src/drivers/dma-heap/uapi.ts', 'src/drivers/dma-heap/dma-heap.ts', 'src/drivers/rdma/qp.ts',
  'src/drivers/gpu/amdgpu_object.ts', 'src/driver-kit/gen-pool.ts', 'src/driver-kit/p2p-mapping.ts',
  'src/driver-kit/importer.ts', 'src/trace/iommu.ts', 'src/scenario/json-schema.ts',
  'src/machine/machine.ts', 'src/dma/dma-engine.ts', 'src/time/model.ts', 'src/time/pcie.ts', 'src/time/sweep.ts',
  'src/trace/trace.ts', 'src/trace/sources.ts', 'src/scenario/runner.ts', 'src/scenario/report.ts', 'src/scenario/op.ts',
  'src/drivers/rdma/constants.ts', 'src/drivers/rdma/device.ts', 'src/drivers/rdma/mr.ts', 'src/drivers/rdma/umem-dmabuf.ts',
  'src/drivers/accel/uapi.ts', 'src/drivers/accel/habanalabs.ts', 'src/drivers/vfio/vfio-pci.ts',
  'src/drivers/gpu/amdgpu.ts', 'src/drivers/udmabuf/udmabuf.ts', 'src/drivers/dma-heap/system-heap.ts',
];

interface Warning {
  /** Repository path of the file the symbol is defined in; '' when TypeDoc names none. */
  file: string;
  text: string;
}

/** Runs TypeDoc's validation with the repository's typedoc.json; resolves with its whole output. */
function runTypedoc(): Promise<{ code: number | null; output: string }> {
  const bin = join(dirname(createRequire(import.meta.url).resolve('typedoc/package.json')), 'bin', 'typedoc');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, '--emit', 'none'], {
      cwd: root, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

function parseWarnings(output: string): Warning[] {
  // eslint-disable-next-line no-control-regex
  const lines = output.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
  const out: Warning[] = [];
  for (const line of lines) {
    const m = /^\[(warning|error)\] (.*)$/.exec(line.trim());
    if (!m || /^Found \d+ errors? and \d+ warnings?$/.test(m[2]!)) continue;
    const file = /defined in dmabuf-sim\/(\S+?),? /.exec(m[2]!)?.[1] ?? '';
    out.push({ file, text: m[2]! });
  }
  return out;
}

/** The warnings grouped by file, one symbol a line, for a failure message people can act on. */
function report(warnings: readonly Warning[]): string {
  const byFile = new Map<string, string[]>();
  for (const w of warnings) {
    const key = w.file || '(no file)';
    byFile.set(key, [...(byFile.get(key) ?? []), w.text]);
  }
  const files = [...byFile.keys()].sort();
  return [`${warnings.length} TypeDoc warnings in ${files.length} files (run \`npm run docs\`):`,
    ...files.flatMap((f) => [`  ${f} (${byFile.get(f)!.length})`, ...byFile.get(f)!.map((t) => `    - ${t}`)]),
  ].join('\n');
}

describe.skipIf(process.env.DMABUF_SIM_WASM === 'release')('API reference (typedoc validation)', () => {
  let result: { code: number | null; output: string };
  let warnings: Warning[];

  beforeAll(async () => {
    result = await runTypedoc();
    warnings = parseWarnings(result.output);
  }, 600_000);

  it('ran TypeDoc to the end: no TypeScript or config error, only validation warnings', () => {
    const clean = result.code === 0 || /Found 0 errors and \d+ warnings?/.test(result.output);
    expect(clean, result.output.slice(0, 4000)).toBe(true);
  });

  it('keeps the documented files fully documented', () => {
    const bad = warnings.filter((w) => DOCUMENTED.includes(w.file));
    expect(bad.length, report(bad)).toBe(0);
  });

  it('documents every public symbol of every entry (the remaining ones are listed on failure)', () => {
    expect(warnings.length, report(warnings)).toBe(0);
    expect(result.code).toBe(0);
  });
});
