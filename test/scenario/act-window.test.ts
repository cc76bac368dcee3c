/**
 * A run's acts share one linear memory, one after another (Machine.series, src/machine/machine.ts MachineSeries): each act gets a
 * fresh embedded core in the same window. The report must be what one core of its own per act
 * gives, no act may see another's bytes, and the arena stays the size asked for. With the debug
 * core (which has no embed build) every act keeps a standalone core of its own.
 */
import { describe, expect, it } from 'vitest';
import { Machine, RAM_HIGH_BASE } from '../../src/index.js';
import {
  createDefaultRunner, parseScenario, renderJson, renderText, SEED_SCENARIO, SEED_SCENARIO_FILE, type Act, type ActContext,
} from '../../src/scenario/index.js';

const ARENA = 16 << 20;
const release = process.env.DMABUF_SIM_WASM !== 'debug';

const seed = () => parseScenario(SEED_SCENARIO, SEED_SCENARIO_FILE);

describe('acts on one linear memory', () => {
  it('gives the report a core of its own per act gives, byte for byte (text, JSON and trace)', async () => {
    const shared = createDefaultRunner({ arenaBytes: ARENA });
    const own = createDefaultRunner({
      arenaBytes: ARENA,
      createMachine: (act: Act) => Machine.create({
        topology: act.topologyDescription, iommu: act.iommu, profile: act.profile, dmaBufRules: act.dmaBufRules, arenaBytes: ARENA,
      }),
    });
    const a = await shared.run(seed());
    const b = await own.run(seed());
    expect(a.ok).toBe(true);
    expect(renderJson(a)).toBe(renderJson(b));
    expect(renderText(a, { detail: 'verbose' })).toBe(renderText(b, { detail: 'verbose' }));
    expect(JSON.stringify(shared.trace.toJSON({ scenario: 'seed', file: 'seed' })))
      .toBe(JSON.stringify(own.trace.toJSON({ scenario: 'seed', file: 'seed' })));
  });

  it('no act sees the bytes an earlier act wrote, and each has the whole arena', async () => {
    const runner = createDefaultRunner({ arenaBytes: ARENA });
    const seen: { build: string; memory: WebAssembly.Memory; before: Uint8Array; chunksTotal: number }[] = [];
    const pa = RAM_HIGH_BASE + 0x20_0000n;
    const fresh: boolean[] = [];
    runner.onActStart((ctx: ActContext) => {
      const sim = ctx.machine.sim;
      seen.push({ build: sim.core.build, memory: sim.core.exports.memory, before: sim.memory.read(pa, 4096), chunksTotal: sim.memory.arena().chunksTotal });
      // Fresh backing pages come from arena chunks an earlier act used: they read as zeros
      // around the one byte written.
      for (let i = 1n; i <= 16n; i++) {
        sim.memory.write(pa + i * 0x1000n + 7n, new Uint8Array([0x3c]));
        const page = sim.memory.read(pa + i * 0x1000n, 4096);
        fresh.push(page.every((b, k) => b === (k === 7 ? 0x3c : 0)));
      }
    });
    // Every act leaves 64 KiB of 0xa5 in RAM (and through the arena, in linear memory).
    runner.onActEnd((ctx: ActContext) => { ctx.machine.sim.memory.write(pa, new Uint8Array(64 << 10).fill(0xa5)); });
    const r = await runner.run(seed());
    expect(r.ok).toBe(true);
    expect(seen).toHaveLength(6);
    expect(fresh).toHaveLength(6 * 16);
    expect(fresh.every(Boolean)).toBe(true);
    for (const s of seen) {
      expect(s.before.every((b) => b === 0)).toBe(true);
      expect(s.chunksTotal).toBe(ARENA / 4096);
    }
    if (release) {
      // One memory for the run, grown once; every act's core embedded in it. Shared in Node (V8
      // does not count it as external memory), with the embed-shared build.
      expect(seen.every((s) => s.build === 'embed-shared' && s.memory === seen[0]!.memory)).toBe(true);
      expect(Object.prototype.toString.call(seen[0]!.memory.buffer)).toBe('[object SharedArrayBuffer]');
    } else {
      expect(seen.every((s) => s.build === 'debug')).toBe(true);
      expect(new Set(seen.map((s) => s.memory)).size).toBe(6);
    }
    // A second run has a memory of its own (nothing kept between runs).
    const again: WebAssembly.Memory[] = [];
    const r2 = createDefaultRunner({ arenaBytes: ARENA }).onActStart((ctx: ActContext) => { again.push(ctx.machine.sim.core.exports.memory); });
    await r2.run(seed(), { acts: [0] });
    expect(seen.some((s) => s.memory === again[0])).toBe(false);
  });

  it('an arena createSimulator refuses fails every act as before, with its EINVAL', async () => {
    const r = await createDefaultRunner({ arenaBytes: 5000 }).run(seed(), { acts: [0, 1] });
    expect(r.ok).toBe(false);
    expect(r.acts.map((a) => a.error)).toEqual([0, 1].map(() => expect.stringMatching(/arenaBytes = 5000 must be a multiple of 4096/)));
    expect(r.failures.map((f) => f.message)).toEqual([0, 1].map(() => expect.stringMatching(/^the machine could not be built: /)));
  });
});
