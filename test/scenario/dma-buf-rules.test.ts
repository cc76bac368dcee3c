// The scenario format's dmaBufRules: per-rule profile overrides (DB-09 alone), top level and per act.
import { describe, expect, it } from 'vitest';
import { parseScenario, ScenarioError, ScenarioRunner } from '../../src/scenario/index.js';
import type { KernelProfile } from '../../src/dma-buf/index.js';

const doc = `name: rules
topology: builtin
profile: 6.x
dmaBufRules: { attachTimeMapping: false, sgtCaching: false }
acts:
  - title: top-level rules
    steps:
      - { op: note, text: one }
  - title: an act turns DB-09 back on
    profile: 5.15
    dmaBufRules: { attachTimeMapping: true }
    steps:
      - { op: note, text: two }
`;

describe('scenario dmaBufRules', () => {
  it('reach each act\'s machine, merged over the top level rule by rule', async () => {
    const s = parseScenario(doc, 'rules.yaml');
    expect(s.acts.map((a) => [a.profile, a.dmaBufRules])).toEqual([
      ['6.x', { attachTimeMapping: false, sgtCaching: false }],
      ['5.15', { attachTimeMapping: true, sgtCaching: false }],
    ]);
    const seen: KernelProfile[] = [];
    const runner = new ScenarioRunner({ arenaBytes: 16 << 20 }).registerOp('note', (_step, ctx) => {
      seen.push(ctx.machine.kernel.profile);
    });
    const r = await runner.run(s);
    expect(r.exitCode).toBe(0);
    expect(seen).toEqual([
      expect.objectContaining({ name: '6.x', attachTimeMapping: false, sgtCaching: false, lockConvention: 'full' }),
      expect.objectContaining({ name: '5.15', attachTimeMapping: true, sgtCaching: false, lockConvention: 'legacy' }),
    ]);
  });

  it('a scenario without dmaBufRules keeps the profile\'s rules', () => {
    const s = parseScenario('name: p\ntopology: builtin\nprofile: latest\nsteps:\n  - { op: note, text: x }\n', 'p.yaml');
    expect(s.acts[0]!.dmaBufRules).toEqual({});
  });

  it('an unknown rule or a bad value is an error at its key, with the line', () => {
    const bad = 'name: b\ntopology: builtin\ndmaBufRules:\n  attachTimeMaping: false\n  lockConvention: strict\nsteps:\n  - { op: note, text: x }\n';
    let e: unknown;
    try {
      parseScenario(bad, 'b.yaml');
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ScenarioError);
    const d = (e as ScenarioError).diagnostics;
    expect(d.map((x) => [x.path, x.line])).toEqual([['dmaBufRules.attachTimeMaping', 4], ['dmaBufRules.lockConvention', 5]]);
    expect(d[0]!.message).toContain('attachTimeMapping'); // the suggestion
    expect(() => parseScenario('name: c\ntopology: builtin\ndmaBufRules: 3\nsteps:\n  - { op: note, text: x }\n', 'c.yaml')).toThrowError(ScenarioError);
  });
});
