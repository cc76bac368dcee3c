/**
 * The iommufd scenario ops (iommufd-ops.ts) and the viommu built-in: PASID-tagged translations
 * next to the RID's, both stages of a nested walk and a stage-2 fault during a stage-1 fetch,
 * page requests with their responses and the device's retries, a dirty bitmap; the ops' errnos
 * (the kernel's, through /dev/iommu) and their validation errors at line:column.
 */
import { describe, expect, it } from 'vitest';
import { createDefaultRunner, parseScenario, renderJson, renderText, ScenarioError, type RunReport } from '../../src/scenario/index.js';
import { VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE } from '../../src/scenario/builtin/index.js';
import { cli } from '../cli/cli-io.js';

type Section = RunReport['acts'][number]['steps'][number]['sections'][number];
const hex = (v: bigint): string => `0x${v.toString(16)}`;
const run = (text: string, file = 't.yaml') => createDefaultRunner().run(parseScenario(text, file));

/** A one-act scenario on the seed-vfio machine with `steps` (YAML lines, 2-space indented). */
const act = (steps: string, family = 'smmuv3') => `name: t
topology: builtin:seed-vfio
iommu: { family: ${family}, strict: true }
steps:
${steps}`;

describe('the viommu built-in scenario', () => {
  let report: Promise<RunReport> | null = null;
  const viommu = () => (report ??= run(VIOMMU_SCENARIO, VIOMMU_SCENARIO_FILE));

  it('runs clean, four acts, every expectation met', async () => {
    const r = await viommu();
    expect(r.exitCode).toBe(0);
    expect(r.acts.map((a) => a.ok)).toEqual([true, true, true, true]);
  });

  it('act 1: the same IOVA untagged and with PASID 5 walks two domains to two pages; an unbound PASID faults C_BAD_CD (ENODEV)', async () => {
    const steps = (await viommu()).acts[0]!.steps;
    const walk = (i: number) => steps.find((s) => s.number === i)!.sections.find((x) => x.title.includes('walk of'))!;
    const [rid, pas] = [walk(12), walk(13)];
    expect(rid.title).toBe('fpga0 untagged (RID) walk of 0x100000');
    expect(pas.title).toBe('fpga0 pasid 5 walk of 0x100000');
    expect(pas.lines[0]).toMatch(/^smmu0 domain \d+ \(arm-lpae-s1, ias 48\) for pasid 5$/);
    const d = (s: Section) => s.data as { domain: number; pasid: number | null; pa: bigint };
    expect([d(rid).pasid, d(pas).pasid]).toEqual([null, 5]);
    expect(d(rid).domain).not.toBe(d(pas).domain);
    expect(d(rid).pa).not.toBe(d(pas).pa);
    expect(steps.find((s) => s.number === 13)!.summary).toContain('fpga0 pasid 5 DMA read');
    expect(steps.find((s) => s.number === 13)!.log).toContain(`translation fpga0 rid 0x500 PASID 5: iova 0x100000 -> pa ${hex(d(pas).pa)} in smmu0 domain ${d(pas).domain}`);
    expect(steps.find((s) => s.number === 12)!.log).toContain(`translation fpga0 rid 0x500 no PASID: iova 0x100000 -> pa ${hex(d(rid).pa)} in smmu0 domain ${d(rid).domain}`);
    const bad = steps.find((s) => s.number === 17)!;
    expect([bad.outcome, bad.status]).toEqual(['ENODEV', 'passed']);
    expect(bad.message).toMatch(/no-pasid, code 0xa, pasid 6/);
  });

  it('act 2: a nested walk shows stage 1 and the stage-2 walk of every table fetch and of the output; a missing stage-2 page faults stage 2 during a stage-1 fetch', async () => {
    const steps = (await viommu()).acts[1]!.steps;
    const ok = steps.find((s) => s.number === 9)!.sections.find((x) => x.title.includes('walk of'))!;
    expect(ok.lines[0]).toMatch(/\(arm-lpae-s1, ias 48, stage 1 over stage-2 domain \d+ \(arm-lpae-s2\)\)$/);
    const data = ok.data as { levels: unknown[]; stage2: { of: string; levels: unknown[] }[]; ok: boolean };
    expect(data.ok).toBe(true);
    expect(data.levels).toHaveLength(4);
    expect(data.stage2.map((s) => s.of)).toEqual(['L0', 'L1', 'L2', 'L3', 'output']);
    expect(ok.lines.filter((l) => l.startsWith('  stage 2 of '))).toHaveLength(5);
    const fault = steps.find((s) => s.number === 16)!;
    expect(fault.outcome).toBe('EFAULT');
    expect(fault.message).toMatch(/stage 2 \(stage-1 table fetch\) at ipa 0x201/);
    const fw = fault.sections.find((x) => x.title.includes('walk of'))!;
    expect(fw.lines.at(-1)).toMatch(/=> no translation \(translation, stage 2 at ipa 0x201/);
  });

  it('act 3: the PRI device waits on a page request; the response maps the page, the device retries into the next page, and INVALID makes it give up', async () => {
    const r = await viommu();
    const steps = r.acts[2]!.steps;
    expect(steps.find((s) => s.number === 10)!.result).toMatchObject({ state: 'waiting', bytesDone: 0 });
    const first = steps.find((s) => s.number === 11)!.log;
    expect(first).toContain('page request: dev_id 1 pasid 3 iova 0x5000 write (group 0, cookie 1)');
    expect(first).toContain('page response: cookie 1 SUCCESS');
    expect(first.some((l) => /retried \(attempt 2\), waiting, 4096 bytes$/.test(l))).toBe(true);
    const second = steps.find((s) => s.number === 12)!.log;
    expect(second).toContain('page request: dev_id 1 pasid 3 iova 0x6000 write (group 0, cookie 2)');
    expect(second.some((l) => /retried \(attempt 3\), done, 6144 bytes$/.test(l))).toBe(true);
    const last = steps.find((s) => s.number === 15)!.log;
    expect(last).toContain('page response: cookie 3 INVALID');
    expect(last.some((l) => l.endsWith('gave up (EFAULT), 0 bytes'))).toBe(true);
    const text = renderText(r);
    expect(text).toMatch(/page request: dev_id 1 pasid 3 iova 0x5000/);
  });

  it('act 4: the dirty bitmap holds the written pages only, and reading it cleared it', async () => {
    const steps = (await viommu()).acts[3]!.steps;
    const reads = steps.filter((s) => s.op === 'dirtyBitmap');
    expect(reads.map((s) => s.result)).toEqual([{ dirty: '1,10', count: 2 }, { dirty: '', count: 0 }]);
    expect(reads[0]!.log).toContain('bitmap 0x402 (bit i = page i of 0x1000 from 0x400000)');
  });

  it('the JSON report carries the PASID and both stages', async () => {
    const j = JSON.parse(renderJson(await viommu())) as { acts: { steps: { sections: { data: Record<string, unknown> }[] }[] }[] };
    const walks = j.acts.flatMap((a) => a.steps.flatMap((s) => s.sections.map((x) => x.data)));
    expect(walks.some((w) => w['pasid'] === 5)).toBe(true);
    expect(walks.some((w) => Array.isArray(w['stage2']) && (w['stage2'] as unknown[]).length === 5)).toBe(true);
  });

  it('the CLI runs it as builtin:viommu and prints it with show viommu; plain run stays the seed story', async () => {
    const r = await cli(['run', 'builtin:viommu', '--quiet']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('viommu');
    const s = await cli(['show', 'viommu']);
    expect(s.out).toContain('name: viommu');
    expect((await cli(['run', '--quiet'])).out).toContain('seed');
  });
});

describe('iommufd ops: errors', () => {
  it('the kernel\'s errnos come through: a PASID on a HWPT not made for PASIDs is EINVAL, a dirty bitmap of a HWPT without DIRTY_TRACKING EOPNOTSUPP, PASIDs on a VT-d unit without scalable mode EOPNOTSUPP, an unmapped IOVA without PRI EFAULT', async () => {
    const r = await run(act(`  - { op: vfioBind, device: fpga0, pasidBits: 8, as: dev }
  - { op: ioasAlloc, as: ioas }
  - { op: hwptAlloc, device: dev, pt: ioas, as: plain }
  - { op: ptAttach, device: dev, pt: plain }
  - { op: ptAttach, device: dev, pt: plain, pasid: 1, expect: { errno: EINVAL } }
  - { op: dirtyBitmap, hwpt: plain, iova: 0, length: 4K, expect: { errno: EOPNOTSUPP } }
  - { op: deviceDma, device: dev, verb: write, iova: 0x1000, length: 8, expect: { errno: EFAULT } }
  - { op: deviceDma, device: dev, verb: write, iova: 0x1000, length: 8 }
`));
    expect(r.exitCode).toBe(1);
    const steps = r.acts[0]!.steps;
    expect(steps.slice(0, 7).map((s) => s.status)).toEqual(['passed', 'passed', 'passed', 'passed', 'passed', 'passed', 'passed']);
    expect(steps[7]!.status).toBe('failed');
    expect(steps[7]!.outcome).toBe('EFAULT');
    const vtd = await run(act('  - { op: vfioBind, device: fpga0, pasidBits: 8, expect: { errno: EOPNOTSUPP } }\n', 'vtd'));
    expect(vtd.exitCode).toBe(0);
  });

  it('VT-d in scalable mode (iommu.scalableMode) takes PASIDs: the same IOVA with and without PASID 5 reaches two pages', async () => {
    const steps = `  - { op: vfioBind, device: fpga0, pasidBits: 20, as: dev }
  - { op: userAlloc, size: 8K, pattern: { random: 1 }, as: ridMem }
  - { op: userAlloc, size: 8K, pattern: { random: 2 }, as: pasMem }
  - { op: ioasAlloc, as: ridIoas }
  - { op: ioasAlloc, as: pasIoas }
  - { op: ioasMap, ioas: ridIoas, memory: ridMem, iova: 0x100000 }
  - { op: ioasMap, ioas: pasIoas, memory: pasMem, iova: 0x100000 }
  - { op: hwptAlloc, device: dev, pt: ridIoas, flags: PASID, as: ridHwpt }
  - { op: hwptAlloc, device: dev, pt: pasIoas, flags: PASID, as: pasHwpt }
  - { op: ptAttach, device: dev, pt: ridHwpt }
  - { op: ptAttach, device: dev, pt: pasHwpt, pasid: 5 }
  - { op: deviceDma, device: dev, verb: read, iova: 0x100000, length: 4K, expect: { bytes: { random: 1 } } }
  - { op: deviceDma, device: dev, verb: read, iova: 0x100000, length: 4K, pasid: 5, expect: { bytes: { random: 2 } } }
`;
    const r = await run(act(steps, 'vtd').replace('strict: true }', 'strict: true, scalableMode: true }'));
    expect(r.acts[0]!.steps.filter((s) => s.status !== 'passed').map((s) => `${s.index}: ${s.outcome}`)).toEqual([]);
    expect(r.exitCode).toBe(0);
    await expect((async () => run(act('  - { op: note, text: x }\n', 'smmuv3').replace('strict: true }', 'strict: true, scalableMode: true }')))())
      .rejects.toThrow(/iommu\.scalableMode: scalable mode is a VT-d mode; family is smmuv3/);
  });

  it('bad values are SimErrors naming the field: userAlloc size not a multiple of 4K, stage1Map unaligned, userRead past the end, pageResponse ioas without memory', async () => {
    const r = await run(act(`  - { op: userAlloc, size: 5000, expect: { errno: EINVAL } }
  - { op: userAlloc, size: 8K, as: m }
  - { op: vfioBind, device: fpga0, as: dev }
  - { op: stage1Map, device: dev, memory: m, ipa: 0x100010, iova: 0, target: 0, expect: { errno: EINVAL } }
  - { op: stage1Map, device: dev, memory: m, ipa: 0x100000, iova: 0, target: 0, expect: { errno: EFAULT } }
  - { op: userRead, memory: m, offset: 4K, length: 8K, expect: { errno: EFAULT } }
  - { op: faultAlloc, as: fq }
  - { op: ioasAlloc, as: ioas }
  - { op: pageResponse, fault: fq, code: success, ioas: ioas, expect: { errno: EINVAL } }
`));
    expect(r.exitCode).toBe(0);
    const msg = (i: number) => r.acts[0]!.steps[i]!.message!;
    expect(msg(0)).toMatch(/size: 5000 is not a positive multiple of 4K/);
    expect(msg(3)).toMatch(/ipa: 0x100010 is not 4K-aligned/);
    expect(msg(4)).toMatch(/memory: 'm' holds 2 pages, the table needs 4/);
    expect(msg(5)).toMatch(/offset \+ length: 0x3000 is past/);
    expect(msg(8)).toMatch(/memory: ioas and memory go together/);
  });

  it('pageResponse without room for the requested pages maps and answers nothing (EFAULT): the request it read stays unanswered and the device keeps waiting', async () => {
    const r = await run(act(`  - { op: vfioBind, device: fpga0, pasidBits: 8, pri: true, as: dev }
  - { op: faultAlloc, as: fq }
  - { op: ioasAlloc, as: ioas }
  - { op: hwptAlloc, device: dev, pt: ioas, flags: PASID, fault: fq, as: hw }
  - { op: ptAttach, device: dev, pt: hw }
  - { op: userAlloc, size: 4K, pattern: 0x11, as: m }
  - { op: deviceDma, device: dev, verb: read, iova: 0x3000, length: 16, expect: { result: { state: waiting } } }
  - { op: pageResponse, fault: fq, code: success, ioas: ioas, memory: m, offset: 4K, expect: { errno: EFAULT } }
  - { op: pageResponse, fault: fq, code: success, expect: { result: { requests: 0, waiting: 1 } } }
`));
    expect(r.exitCode).toBe(0);
    expect(r.acts[0]!.steps[7]!.message).toMatch(/memory: 'm' has no room for 1 pages at offset 0x1000/);
    expect(r.acts[0]!.steps[7]!.log.filter((l) => l.startsWith('page response'))).toEqual([]);
  });

  it('validation: a name of the wrong kind, an unknown field and a bad enum are errors at line:column', () => {
    const bad = act(`  - { op: userAlloc, size: 8K, as: m }
  - { op: ioasAlloc, as: ioas }
  - { op: ptAttach, device: m, pt: ioas }
  - { op: deviceDma, device: m, verb: copy, iova: 0, length: 4 }
  - { op: hwptAlloc, device: m, pt: ioas, flags: [NEST], root: 1 }
`);
    let err: unknown;
    try {
      parseScenario(bad, 'bad.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ScenarioError);
    const d = (err as ScenarioError).diagnostics;
    expect(d.some((x) => x.line === 7 && x.path.endsWith('.device'))).toBe(true);
    expect(d.some((x) => x.line === 8 && x.path.endsWith('.verb'))).toBe(true);
    expect(d.some((x) => x.line === 9 && x.path.endsWith(".flags[0]"))).toBe(true);
    expect(d.every((x) => x.col !== undefined)).toBe(true);
    expect(d[0]!.message).toBe("'m' is a user memory (line 5), expected a bound device");
  });
});
