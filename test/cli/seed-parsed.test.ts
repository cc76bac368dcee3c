import { describe, expect, it } from 'vitest';
import { parseScenario, SEED_SCENARIO, SEED_SCENARIO_FILE, SourceDoc, validateScenario } from '../../src/scenario/index.js';
import { seedPreparsed } from '../../src/scenario/builtin/seed-parsed.js';

describe('the seed scenario parsed at build time (scripts/gen-seed.mjs)', () => {
  const real = SourceDoc.parse(SEED_SCENARIO, SEED_SCENARIO_FILE, 'yaml');

  it('is current: the same value and positions as a parse of seed-scenario.ts now (else: npm run gen:seed)', () => {
    expect(seedPreparsed()).toEqual(real.toPreparsed());
  });

  it('validates to the same scenario, step lines included, as the YAML text does', () => {
    const fast = parseScenario(SEED_SCENARIO, SEED_SCENARIO_FILE);
    expect(fast).toEqual(validateScenario(real));
    expect(fast.acts.flatMap((a) => a.steps).every((s) => s.line > 1)).toBe(true);
    // Each call gets a document of its own.
    expect(parseScenario(SEED_SCENARIO, SEED_SCENARIO_FILE)).not.toBe(fast);
  });

  it('locates what the YAML parse locates, paths past the document and map keys included', () => {
    const pre = SourceDoc.fromPreparsed(SEED_SCENARIO, SEED_SCENARIO_FILE, seedPreparsed());
    const paths: (string | number)[][] = [[], ['acts'], ['acts', 0, 'steps', 1], ['acts', 0, 'steps', 1, 'op'], ['acts', 2, 'nope', 'deeper'], ['acts', 99], ['name']];
    for (const p of paths) {
      expect(pre.locate(p)).toEqual(real.locate(p));
      expect(pre.locate(p, 'key')).toEqual(real.locate(p, 'key'));
    }
    expect(pre.diag(['acts', 1, 'title'], 'x')).toEqual(real.diag(['acts', 1, 'title'], 'x'));
  });

  it('a text that differs from the seed in any way is parsed for real', () => {
    const edited = SEED_SCENARIO.replace('name: seed', 'name: seed2');
    expect(parseScenario(edited, SEED_SCENARIO_FILE).name).toBe('seed2');
    expect(parseScenario(SEED_SCENARIO, 'mine.yaml').name).toBe('seed');
  });
});
