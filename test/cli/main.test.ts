import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cli } from './cli-io.js';
import { wantColor } from '../../src/cli/style.js';

const NOTES = 'name: notes\ndescription: only notes\ntopology: builtin\nsteps:\n  - op: note\n    text: first\n  - { op: note, text: second }\n';
/** One act through the IOMMU: an export registered by nic1 (THRU_HOST_BRIDGE), then released. */
const IOMMU = `name: iommu
topology: builtin
iommu: { family: vtd }
steps:
  - { op: alloc, device: gaudi0, size: 2M, as: hbm }
  - { op: map, buffer: hbm, as: va }
  - { op: export, buffer: va, as: fd }
  - { op: note, text: nic1 is across the root complex }
  - { op: register, nic: nic1, fd: fd, length: 2M, access: [LOCAL_WRITE, REMOTE_WRITE], as: mr }
  - { op: post, verb: WRITE, from: nic0, to: nic1, mr: mr, length: 64K, pattern: counter }
  - { op: mmap, fd: fd, expect: { errno: EINVAL } }
  - { op: unmap, target: mr }
  - { op: close, fd: fd }
  - { op: unmap, target: va }
`;
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

describe('dmabuf-sim: help, version, usage errors', () => {
  it('help for the tool and for each command, exit 0 on stdout', async () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const h = await cli(argv);
      expect(h, argv.join(' ')).toMatchObject({ code: 0, err: '' });
      expect(h.out).toMatch(/^usage: dmabuf-sim <command> \[options\]/);
      expect(h.out).toContain('run [file|-] [--json] [--trace out.json] [--act N] [--quiet|--verbose]');
      expect(h.out).toContain('topo [file|-] [--json]');
      expect(h.out).toContain('show [name]');
    }
    for (const cmd of ['run', 'topo', 'show', 'demo']) {
      for (const argv of [[cmd, '--help'], [cmd, '-h'], ['help', cmd]]) {
        const h = await cli(argv);
        expect(h, argv.join(' ')).toMatchObject({ code: 0, err: '' });
        expect(h.out.split('\n')[0]).toMatch(new RegExp(`^usage: dmabuf-sim ${cmd}\\b`));
      }
    }
    expect((await cli(['run', '--help'])).out).toContain('--act N           run act N only (1-based)');
    expect(await cli(['help', 'frob'])).toMatchObject({ code: 2, out: '' });
  });

  it('--version prints the package version', async () => {
    for (const argv of [['--version'], ['-V']]) expect(await cli(argv)).toMatchObject({ code: 0, out: `dmabuf-sim ${pkg.version}\n`, err: '' });
  });

  it('a bare dmabuf-sim prints the usage and exits 2 (it does not run the story)', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^usage: dmabuf-sim <command>/);
  });

  it('usage errors exit 2 and name the command', async () => {
    const u = await cli(['frobnicate']);
    expect(u).toMatchObject({ code: 2, out: '' });
    expect(u.err).toMatch(/^dmabuf-sim: unknown command 'frobnicate'\n\nusage:/);
    expect((await cli(['--jsn'])).err).toMatch(/^dmabuf-sim: unknown option '--jsn' \(a command comes first\)/);
    const bad = await cli(['run', '--jsn']);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe("dmabuf-sim run: unknown option '--jsn'\nusage: dmabuf-sim run [file|-] [--json] [--trace out.json] [--act N] [--quiet|--verbose]\n(dmabuf-sim run --help for the options)\n");
    expect(await cli(['run', 'a.yaml', 'b.yaml'])).toMatchObject({ code: 2 });
    expect((await cli(['run', 'x.yaml', '--trace'])).err).toMatch(/^dmabuf-sim run: --trace needs a value/);
    expect((await cli(['run', '--trace='])).err).toMatch(/^dmabuf-sim run: --trace needs a file name/);
    expect((await cli(['run', '-q', '-v'])).err).toMatch(/^dmabuf-sim run: --quiet and --verbose do not go together/);
    for (const n of ['0', '7', 'x', '1.5']) {
      const r = await cli(['run', '--act', n]);
      expect(r.code, n).toBe(2);
      expect(r.err, n).toMatch(new RegExp(`^dmabuf-sim run: --act ${n.replace('.', '\\.')}: the scenario has 6 acts \\(1\\.\\.6\\)`));
    }
    expect((await cli(['demo', 'x.yaml'])).err).toMatch(/^dmabuf-sim demo: takes no argument/);
    expect((await cli(['show', 'nope'])).err).toMatch(/^dmabuf-sim show: no built-in 'nope' \(built-in: seed, viommu, seed-topology, seed-vfio-topology\)/);
  });
});

describe('dmabuf-sim run', () => {
  it('a scenario file: text, --json and --trace', async () => {
    const r = await cli(['run', 'n.yaml'], { 'n.yaml': NOTES });
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/^dmabuf-sim run: notes \(n\.yaml\)\n  only notes\n\ntopology builtin:seed:\n/);
    expect(r.out).toContain('\n=== act 1/1: notes ===\n');
    expect(r.out).toContain('[    0.000000] -- first\n[    0.000000] -- second\n');
    // Notes are not steps.
    expect(r.out.trimEnd().split('\n').at(-1)).toBe('result: OK: 1 act, 0 steps, 0 passed, 0 failed, 0 skipped');
    const j = await cli(['run', 'n.yaml', '--json', '--trace=t.json'], { 'n.yaml': NOTES });
    expect(j.code).toBe(0);
    const rep = JSON.parse(j.out);
    expect(rep).toMatchObject({ scenario: 'notes', file: 'n.yaml', ok: true, exitCode: 0, actsInScenario: 1, totals: { steps: 0 } });
    expect(rep.acts[0].steps.map((s: { op: string; args: unknown; number: unknown }) => [s.op, s.args, s.number])).toEqual([['note', { text: 'first' }, null], ['note', { text: 'second' }, null]]);
    expect(rep.topologies[rep.acts[0].topology].data.devices.map((d: { name: string }) => d.name)).toContain('gaudi0');
    const trace = JSON.parse(j.written.get('t.json')!);
    expect(trace).toMatchObject({ displayTimeUnit: 'ns', otherData: { scenario: 'notes', file: 'n.yaml' } });
    expect(trace.traceEvents.filter((e: { ph: string }) => e.ph === 'B').map((e: { name: string }) => e.name)).toEqual(['note', 'note']);
  });

  it('- reads the scenario from standard input (YAML or JSON)', async () => {
    const y = await cli(['run', '-'], { '-': NOTES });
    expect(y).toMatchObject({ code: 0, err: '' });
    expect(y.out).toMatch(/^dmabuf-sim run: notes \(<stdin>\)/);
    const json = JSON.stringify({ name: 'from-json', topology: 'builtin', steps: [{ op: 'note', text: 'hi' }] });
    const j = await cli(['run', '-', '--json'], { '-': json });
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({ scenario: 'from-json', file: '<stdin>' });
    const bad = await cli(['run', '-'], { '-': '{"name": "x",, }' });
    expect(bad).toMatchObject({ code: 2, err: "<stdin>:1:14: not valid JSON: expected a key in double quotes, found ','\n" });
  });

  it('--json counters are numbers; addresses stay hex strings', async () => {
    const r = await cli(['run', 'i.yaml', '--json'], { 'i.yaml': IOMMU });
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    const counters = rep.acts[0].sections.find((s: { title: string }) => s.title === 'counters').data;
    expect(counters.iommu[0]).toMatchObject({ unit: 'dmar0', family: 'vtd' });
    for (const k of ['hits', 'misses', 'walks', 'invalidations', 'translations']) expect(typeof counters.iommu[0][k], k).toBe('number');
    expect(counters.iommu[0].translations).toBeGreaterThan(0);
    expect(counters.dma.bytesToDevice).toBe(65536);
    expect(counters.bytesMoved).toBeGreaterThanOrEqual(65536);
    const sgt = rep.acts[0].steps.find((s: { op: string }) => s.op === 'register').sections.find((s: { title: string }) => s.title === 'sg_table for nic1');
    expect(sgt.data.entries[0].dmaAddress).toMatch(/^0x[0-9a-f]+$/);
    expect(rep.acts[0].steps.map((s: { number: number | null }) => s.number)).toEqual([1, 2, 3, null, 4, 5, 6, 7, 8, 9]);
  });

  it('--act N runs one act; --quiet prints a line per act; --verbose adds the dma-buf events', async () => {
    const one = await cli(['run', '--act', '2']);
    expect(one).toMatchObject({ code: 0, err: '' });
    expect(one.out).toContain('=== act 2/6: gaudi0 and nic1 on different root ports, IOMMU on (THRU_HOST_BRIDGE) ===');
    expect(one.out).not.toContain('=== act 1/6');
    expect(one.out).not.toContain('=== act 3/6');
    expect(one.out.trimEnd().split('\n').at(-1)).toMatch(/^result: OK: 1 act of 6, 8 steps, 8 passed, 0 failed, 0 skipped$/);
    const q = await cli(['run', '--quiet', 'i.yaml'], { 'i.yaml': IOMMU });
    expect(q).toMatchObject({ code: 0 });
    expect(q.out).toBe('dmabuf-sim run: iommu (i.yaml)\nact 1: OK (9 steps, 1 expected errno): iommu\nresult: OK: 1 act, 9 steps, 9 passed, 0 failed, 0 skipped\n');
    const n = await cli(['run', 'i.yaml'], { 'i.yaml': IOMMU });
    const v = await cli(['run', '-v', 'i.yaml'], { 'i.yaml': IOMMU });
    expect(n.out).not.toContain('dma-buf attach');
    expect(v.out).toMatch(/\] {5}dma-buf attach dma-buf 1 attachment 1 \(nic1\)\n/);
    expect(v.out).toMatch(/dma-buf map dma-buf 1 attachment 1\n/);
    expect(v.out.split('\n').length).toBeGreaterThan(n.out.split('\n').length);
  });

  it('colour only when asked (a TTY without NO_COLOR): results, errnos, expected errnos', async () => {
    const plain = await cli(['run', 'i.yaml'], { 'i.yaml': IOMMU });
    expect(plain.out).not.toContain('\u001b[');
    const c = await cli(['run', 'i.yaml'], { 'i.yaml': IOMMU }, { color: true });
    expect(c.code).toBe(0);
    expect(c.out).toContain('\u001b[32mok\u001b[39m');
    expect(c.out).toContain('\u001b[31mEINVAL\u001b[39m \u001b[33m(expected)\u001b[39m');
    expect(c.out.replace(/\u001b\[\d+m/g, '')).toBe(plain.out);
    expect(wantColor({ isTTY: true }, {})).toBe(true);
    expect(wantColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(wantColor({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(wantColor({ isTTY: false }, {})).toBe(false);
    expect(wantColor({}, {})).toBe(false);
  });

  it('bad scenarios exit 2 with the diagnostics on stderr; a failed expectation exits 1', async () => {
    const r = await cli(['run', 'test/scenario/fixtures/bad-fields.yaml']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.split('\n')).toHaveLength(7);
    expect(r.err).toContain("test/scenario/fixtures/bad-fields.yaml:13:10: steps[2].nic: unknown device 'nic9' (devices: gaudi0, nic0, nic1, gpu0, nic2); did you mean 'nic0'?\n");
    expect(await cli(['run', 'missing.yaml'])).toMatchObject({ code: 2, err: 'missing.yaml: cannot read the file: no such file\n' });
    expect(await cli(['run', 'b.json'], { 'b.json': '{"name": "x",, }' })).toMatchObject({ code: 2, err: "b.json:1:14: not valid JSON: expected a key in double quotes, found ','\n" });
    // A valid file whose expectation fails runs, and exits 1: this fixture exports a bare ALLOC
    // handle, which the 6.x Gaudi2 driver refuses (it wants a device VA from MAP).
    const seed = await cli(['run', 'test/scenario/fixtures/seed.yaml']);
    expect(seed).toMatchObject({ code: 1, err: '' });
    expect(seed.out).toContain('unexpected EINVAL');
    expect(seed.out).toContain('[HL-06]');
  });
});

describe('dmabuf-sim show and demo', () => {
  it('show lists the built-ins; show seed prints the scenario that run runs, ready to save and edit', async () => {
    const list = await cli(['show']);
    expect(list.code).toBe(0);
    for (const n of ['seed ', 'seed-topology', 'seed-vfio-topology']) expect(list.out).toContain(`  ${n}`);
    const seed = await cli(['show', 'seed']);
    expect(seed.code).toBe(0);
    expect(seed.out.split('\n')[0]).toBe('# yaml-language-server: $schema=./node_modules/dmabuf-sim/docs/schema/scenario.schema.json');
    expect(seed.out).toContain('name: seed\n');
    const fromFile = await cli(['run', '--quiet', 'my.yaml'], { 'my.yaml': seed.out });
    const builtin = await cli(['run', '--quiet']);
    expect(fromFile.code).toBe(0);
    expect(fromFile.out.split('\n').slice(1)).toEqual(builtin.out.split('\n').slice(1));
  });

  it('show seed-topology prints a topology file that topo (and - on stdin) reads back', async () => {
    const t = await cli(['show', 'seed-topology']);
    expect(t.code).toBe(0);
    const j = JSON.parse(t.out);
    expect(j.$schema).toBe('./node_modules/dmabuf-sim/docs/schema/topology.schema.json');
    const builtin = await cli(['topo']);
    const back = await cli(['topo', '-'], { '-': t.out });
    expect(back.code).toBe(0);
    expect(back.out.split('\n').slice(1)).toEqual(builtin.out.split('\n').slice(1));
    expect(back.out.split('\n')[0]).toBe('topology: <stdin>');
  });

  it('demo is the core demo (text and --json), its walk in VT-d level names', async () => {
    const r = await cli(['demo']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^dmabuf-sim core demo/);
    expect(r.out).toMatch(/\n {2}L4 PML4E table 0x[0-9a-f]+ \[ {2}0\]/);
    expect(r.out).toMatch(/\n {2}L3 PDPE {2}table/);
    expect(r.out).toMatch(/\n {2}L2 PDE {3}table 0x[0-9a-f]+ \[ *\d+\] = 0x[0-9a-f]+ +leaf .* 2M page/);
    expect(r.out.trimEnd().split('\n').at(-1)).toBe('demo: OK');
    const j = await cli(['demo', '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({ scenario: 'core-demo', ok: true, exitCode: 0 });
  });
});

describe('the built CLI (dist/cli.js, the package bin), when built', () => {
  const bin = 'dist/cli.js';
  const built = existsSync(bin) && readFileSync(bin, 'utf8').includes('loadCli');
  it.runIf(built)('runs as a program', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '' } });
    const help = run('help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: dmabuf-sim <command>/);
    expect(run('--version').stdout).toBe(`dmabuf-sim ${pkg.version}\n`);
    expect(run().status).toBe(2);
    expect(run('frobnicate').status).toBe(2);
    const topo = run('topo', '--json');
    expect(topo.status).toBe(0);
    expect(JSON.parse(topo.stdout).p2p).toHaveLength(25);
    // Standard input, and no colour when stdout is a pipe.
    const stdin = spawnSync(process.execPath, [bin, 'run', '-'], { input: NOTES, encoding: 'utf8' });
    expect(stdin.status).toBe(0);
    expect(stdin.stdout).toMatch(/^dmabuf-sim run: notes \(<stdin>\)/);
    expect(stdin.stdout).not.toContain('\u001b[');
  });

  // The bin loads the bundle through V8's code cache (src/cli/launch.ts); the cache changes how
  // fast, never what: the same report as main() in this process, byte for byte.
  it.runIf(built)('the default run: the report main() gives, the code cache taken by a plain node', async () => {
    const env = { ...process.env, NODE_OPTIONS: '', NO_COLOR: '' };
    for (const args of [['run'], ['run', '--json'], ['run', '-v']]) {
      const child = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
      const here = await cli(args);
      expect(child.status, args.join(' ')).toBe(here.code);
      expect(child.stdout, args.join(' ')).toBe(here.out);
    }
    // A YAML scenario needs the parser, which the bin loads only then (dist/cli-yaml.cjs): the
    // same report as in this process, and the bundle itself carries no YAML parser.
    const yaml = spawnSync(process.execPath, [bin, 'run', '-'], { input: IOMMU, encoding: 'utf8', env });
    const yamlHere = await cli(['run', '-'], { '-': IOMMU });
    expect(yaml.status).toBe(yamlHere.code);
    expect(yaml.stdout).toBe(yamlHere.out);
    const bundle = readdirSync('dist').find((f) => /^cli-main-.*\.cjs$/.test(f))!;
    expect(readFileSync(`dist/${bundle}`, 'utf8')).not.toContain('class Composer');
    expect(readFileSync('dist/cli-yaml.cjs', 'utf8')).toContain('class Composer');
    const probe = `const m = await import(${JSON.stringify(new URL(`../../${bin}`, import.meta.url).href)}); console.log(JSON.stringify(m.loadCli().cacheUsed))`;
    const used = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', env });
    expect(used.stderr).toBe('');
    expect(used.stdout.trim()).toBe('true');
  });
});
