import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import {
  loadScenarioFile, parseScenario, renderJson, renderText, ScenarioError, ScenarioRunner, iommuWalkSection,
} from '../../src/scenario/index.js';
import { registerFakeOps } from './fake-handlers.js';

const read = (f: string): string => readFileSync(f, 'utf8');
const runner = (): ScenarioRunner => registerFakeOps(new ScenarioRunner({ arenaBytes: 16 << 20 }));

describe('ScenarioRunner', () => {
  it('runs the seed story with fake handlers: every expectation holds', async () => {
    const s = loadScenarioFile('test/scenario/fixtures/seed.yaml', read);
    const r = await runner().run(s);
    expect(r.failures).toEqual([]);
    expect(r).toMatchObject({ ok: true, exitCode: 0, totals: { acts: 3, steps: 15, passed: 15, failed: 0, skipped: 0 } });
    // Notes are not steps: the act's steps are numbered 1, 2, 3... past them.
    expect(r.acts[0]!.steps.map((x) => x.number)).toEqual([null, 1, 2, 3, 4, 5, 6]);
    const a0 = r.acts[0]!;
    expect(a0.steps.map((x) => [x.op, x.status, x.outcome])).toEqual([
      ['note', 'passed', 'ok'], ['alloc', 'passed', 'ok'], ['export', 'passed', 'ok'], ['mmap', 'passed', 'EINVAL'],
      ['register', 'passed', 'ok'], ['post', 'passed', 'ok'], ['readBack', 'passed', 'ok'],
    ]);
    expect(a0.steps[4]!.result).toEqual({ mapType: 'BUS_ADDR', length: 2n << 20n });
    // Each transfer with its modelled duration and rate, then its path and what limited it.
    expect(a0.steps[5]!.log).toHaveLength(2);
    expect(a0.steps[5]!.log[0]).toMatch(/^dma nic0 write 4096 bytes to 0x4000000000: OK, 4096 done; 4096 bytes in [\d.]+ us, [\d.]+ GB\/s$/);
    expect(a0.steps[5]!.log[1]).toMatch(/^ {2}path RAM -> hb0 -> sw0 -> nic0 -> sw0 -> gaudi0 BAR0; limited by /);
    expect(a0.steps[5]!.durationNs).toBeGreaterThan(0);
    expect(a0.steps[6]!.log).toEqual(['4096 bytes match counter']);
    expect(r.acts[2]!.steps[2]).toMatchObject({ status: 'passed', outcome: 'EPERM', expect: 'errno EPERM' });
    const text = renderText(r);
    expect(text).toContain('=== act 1/3: Same switch (BUS_ADDR, no IOMMU) ===');
    expect(text).toContain('kernel profile 6.x; IOMMU none (DMA is direct); topology builtin:seed');
    expect(text).toContain('  gaudi0    X       BUS 4   HB 6    HB 6    NS');
    expect(text).toContain('[    0.000000] -- gaudi0 and nic0 share a PCIe switch');
    expect(text).toContain('[    0.000000] #1 alloc device=gaudi0 size=2M -> buf0: ok, handle 1  (line 12)');
    expect(text).toContain('[    0.000000] #3 mmap fd=fd0: EINVAL (expected): mmap: EINVAL: habanalabs dma-buf has no CPU access  (line 20)');
    expect(text).toContain('[    0.000000] #4 register nic=nic0 fd=fd0 length=2M access=LOCAL_WRITE|REMOTE_WRITE|REMOTE_READ -> mr0: ok, mapType BUS_ADDR  (line 23)');
    expect(text).toContain('[    0.000000]     sg_table:\n[    0.000000]       nents 1: dma 0x4000000000 len 2097152 page none');
    expect(text).toContain('#5 post verb=WRITE from=nic1 to=nic0 mr=mr0 length=4K pattern=<counter>: ok, 4096 bytes  (line 29)');
    expect(text).toContain('counters:\n  no IOMMU: DMA is direct\n  DMA: 1 ops, 4096 bytes to device memory');
    expect(text).toContain('dmar0: IOTLB 0 translations');
    expect(text).toContain('act 3: OK (3 steps, 1 expected errno)');
    expect(text.trimEnd().split('\n').at(-1)).toBe('result: OK: 3 acts, 15 steps, 15 passed, 0 failed, 0 skipped');
    const json = JSON.parse(renderJson(r));
    expect(json.acts[0].steps[1]).toMatchObject({ op: 'alloc', args: { device: 'gaudi0', size: '0x200000' }, as: 'buf0', status: 'passed', result: { handle: 1 } });
    // Topologies are data, once each, and the acts point at them; no pre-rendered text.
    expect(json.topologies).toHaveLength(1);
    expect(json.topologies[0]).not.toHaveProperty('text');
    expect(json.acts.map((a: { topology: number }) => a.topology)).toEqual([0, 0, 0]);
    expect(text.match(/P2P map type and distance:/g)).toHaveLength(1);
    expect(json.topologies[json.acts[0].topology].data.p2p.find((p: { provider: string; client: string }) => p.provider === 'gaudi0' && p.client === 'nic2')).toMatchObject({ mapType: 'NOT_SUPPORTED' });
    expect(json.acts[0].sections[0].title).toBe('counters');
  });

  it('an expectation that fails fails the run, skips the rest of the act, and the next act still runs', async () => {
    const s = parseScenario([
      'name: fails',
      'topology: builtin',
      'acts:',
      '  - title: one',
      '    steps:',
      '      - { op: alloc, device: gaudi0, size: 4K, as: b }',
      '      - { op: export, buffer: b, as: f }',
      '      - { op: mmap, fd: f, expect: { errno: EPERM } }',
      '      - { op: close, fd: f }',
      '  - title: two',
      '    steps:',
      '      - { op: alloc, device: gaudi0, size: 4K, as: b, expect: { result: { handle: 2 } } }',
      '  - title: three',
      '    steps:',
      '      - { op: alloc, device: gaudi0, size: 4K, as: b }',
      '      - { op: readBack, buffer: b, length: 16, expect: { bytes: 0xff } }',
      '  - title: four',
      '    steps:',
      '      - { op: alloc, device: gaudi0, size: 4K, as: b, expect: { errno: [ENOMEM, ENOSPC] } }',
    ].join('\n'), 'f.yaml');
    const r = await runner().run(s);
    expect(r).toMatchObject({ ok: false, exitCode: 1, totals: { acts: 4, steps: 8, passed: 3, failed: 4, skipped: 1 } });
    expect(r.acts.map((a) => a.ok)).toEqual([false, false, false, false]);
    expect(r.acts[0]!.steps.map((x) => x.status)).toEqual(['passed', 'passed', 'failed', 'skipped']);
    expect(r.failures.map((f) => `${f.line}: ${f.message}`)).toEqual([
      '8: expected EPERM, got EINVAL: mmap: EINVAL: habanalabs dma-buf has no CPU access',
      '12: result.handle is 1, expected 2',
      '16: bytes differ from fill 0xff at offset 0x0: got 0x00, want 0xff (16 bytes compared)',
      '19: expected ENOMEM or ENOSPC, but the step succeeded',
    ]);
    const text = renderText(r);
    expect(text).toContain('#3 mmap fd=f: FAILED: expected EPERM, got EINVAL: mmap: EINVAL: habanalabs dma-buf has no CPU access  (line 8)');
    expect(text).toContain('#4 close fd=f: skipped  (line 9)');
    expect(text).toContain('act 1: FAILED (4 steps, 1 failed, 1 skipped)');
    expect(text).toContain('result: FAILED: 4 acts, 8 steps, 3 passed, 4 failed, 1 skipped\n  f.yaml:8: act 1 step #3 (acts[0].steps[2]): expected EPERM');
  });

  it('unexpected errors and handler bugs fail the step', async () => {
    const r = registerFakeOps(new ScenarioRunner({ arenaBytes: 16 << 20 }))
      .registerOp('close', () => {
        throw new SimError('EBADF', 'close', 'fd 3 is not open');
      })
      .registerOp('free', () => {
        throw new TypeError('x is undefined');
      });
    const s = parseScenario([
      'name: u', 'topology: builtin', 'acts:',
      '  - { title: a, steps: [{ op: alloc, device: gaudi0, size: 4K, as: b }, { op: export, buffer: b, as: f }, { op: close, fd: f }] }',
      '  - { title: b, steps: [{ op: alloc, device: gaudi0, size: 4K, as: b }, { op: free, buffer: b }] }',
    ].join('\n'), 'u.yaml');
    const rep = await r.run(s);
    expect(rep.exitCode).toBe(1);
    expect(rep.acts[0]!.steps[2]).toMatchObject({ status: 'failed', outcome: 'EBADF', failure: 'unexpected EBADF: close: EBADF: fd 3 is not open' });
    expect(rep.acts[1]!.steps[1]).toMatchObject({ status: 'failed', outcome: 'error', failure: 'handler error: x is undefined' });
  });

  it('refuses to start when an op has no handler, naming the step', async () => {
    const s = parseScenario('name: x\ntopology: builtin\nsteps:\n  - op: note\n    text: hi\n  - { op: alloc, device: gaudi0, size: 4K }\n', 'x.yaml');
    await expect(new ScenarioRunner().run(s)).rejects.toThrow(new ScenarioError([{ file: 'x.yaml', line: 6, col: 5, path: 'steps[1].op', message: "op 'alloc' has no handler in this build" }]));
    expect(() => new ScenarioRunner().registerOp('teleport', () => undefined)).toThrow("registerOp: unknown op 'teleport'");
  });

  it('act hooks, objects, IOMMU faults and sections', async () => {
    const seen: string[] = [];
    const r = registerFakeOps(new ScenarioRunner({ arenaBytes: 16 << 20 }))
      .onActStart((ctx) => void seen.push(`start ${ctx.act.title} ${ctx.machine.units().length}`))
      .onActEnd((ctx) => {
        seen.push(`end ${ctx.objects.entries().map(([n, k]) => `${n}:${k}`).join(',')}`);
        const nic = ctx.device('nic1');
        const dom = ctx.machine.dmaDevice(nic).domain;
        if (dom !== 'direct') ctx.report.section(iommuWalkSection(dom, 0x1000n));
      })
      .registerOp('post', (step, ctx) => {
        // nic1 is THRU_HOST_BRIDGE from gaudi0: its write goes to the IOMMU, where nothing is mapped.
        const nic = ctx.device(step.args.from);
        ctx.machine.dmaDevice(nic);
        const w = ctx.dma.write({ rid: ctx.machine.rid(nic), addr: 0x1000n }, new Uint8Array(8));
        throw new SimError(w.code as 'EFAULT', 'post', 'remote access error');
      });
    const s = parseScenario([
      'name: f', 'topology: builtin', 'iommu: { family: vtd }', 'steps:',
      '  - { op: alloc, device: gaudi0, size: 4K, as: b }',
      '  - { op: export, buffer: b, as: f }',
      '  - { op: register, nic: nic1, fd: f, length: 4K, as: m }',
      '  - { op: post, verb: WRITE, from: nic1, to: nic0, mr: m, length: 8, expect: { errno: EFAULT } }',
    ].join('\n'), 'f.yaml');
    const rep = await r.run(s);
    expect(rep.exitCode).toBe(0);
    expect(seen).toEqual(['start f 2', 'end b:buffer,f:fd,m:mr']);
    expect(rep.acts[0]!.steps[3]!.log[0]).toMatch(/^dma nic1 write 8 bytes to 0x1000: EFAULT, 0 done; stopped after [\d.]+ (us|ns)$/);
    expect(rep.acts[0]!.steps[3]!.log.slice(1)).toEqual([
      'DMAR: [DMA Write] Request device [0000:05:00.0] (nic1) fault addr 0x1000 [fault reason 0x05] translation',
    ]);
    const walk = rep.acts[0]!.sections.find((x) => x.title === 'IOMMU walk of 0x1000')!;
    expect(walk.lines[0]).toMatch(/^dmar0 domain \d+ \(vtd-ss, ias 48\)$/);
    expect(walk.lines.at(-1)).toBe('=> no translation (translation)');
    const counters = rep.acts[0]!.sections.at(-1)!;
    expect(counters.lines[0]).toMatch(/^dmar0: IOTLB 1 translations, 0 hits, 1 misses, \d+ walks, .*1 faults$/);
    expect(counters.lines.at(-2)).toBe('transfers by the scenario: 1, 0 bytes moved; IOMMU fault records: 1');
    expect(counters.lines.at(-1)).toMatch(/^time: act [\d.]+ us \(0 ns to [\d.]+ us\); DMA [\d.]+ us in 1 transfers, of which \d+ ns in IOMMU translation; /);
  });
});
