/**
 * The JSON Schemas shipped in docs/schema: they are what src/scenario/json-schema.ts generates
 * (DMABUF_SIM_WRITE_SCHEMAS=1 rewrites them), they accept every built-in example and fixture,
 * and they reject what the validator rejects for shape (an unknown op, a missing field, a bad flag).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { scenarioJsonSchema, topologyJsonSchema } from '../../src/scenario/json-schema.js';
import { BUILTIN_TOPOLOGIES, OP_SPECS } from '../../src/scenario/index.js';
import { SEED_SCENARIO } from '../../src/scenario/builtin/index.js';
import { showBuiltin } from '../../src/cli/show.js';
import { cli } from '../cli/cli-io.js';
import { SchemaChecker } from './json-schema-check.js';

const FILES = { 'scenario.schema.json': scenarioJsonSchema(), 'topology.schema.json': topologyJsonSchema() };
const text = (o: unknown): string => `${JSON.stringify(o, null, 2)}\n`;
if (process.env['DMABUF_SIM_WRITE_SCHEMAS'] === '1') for (const [f, o] of Object.entries(FILES)) writeFileSync(`docs/schema/${f}`, text(o));
const shipped = Object.fromEntries(Object.keys(FILES).map((f) => [f, JSON.parse(readFileSync(`docs/schema/${f}`, 'utf8'))]));
const checker = new SchemaChecker(shipped);
const scenario = (v: unknown) => checker.check('scenario.schema.json', v);
const topology = (v: unknown) => checker.check('topology.schema.json', v);

describe('docs/schema', () => {
  it('the shipped files are the generated schemas (DMABUF_SIM_WRITE_SCHEMAS=1 to rewrite)', () => {
    for (const [f, o] of Object.entries(FILES)) expect(readFileSync(`docs/schema/${f}`, 'utf8'), f).toBe(text(o));
    const ops = (shipped['scenario.schema.json'].$defs.step.oneOf as { properties: { op: { const: string } } }[]).map((s) => s.properties.op.const);
    expect(ops).toEqual(Object.keys(OP_SPECS));
  });

  it('accept the built-in scenario and topologies, the fixtures, and what `show` prints', async () => {
    expect(scenario(parseYaml(SEED_SCENARIO))).toEqual([]);
    expect(scenario(parseYaml(showBuiltin('seed')!))).toEqual([]);
    for (const [n, t] of Object.entries(BUILTIN_TOPOLOGIES)) {
      expect(topology(JSON.parse(JSON.stringify(t))), n).toEqual([]);
      expect(topology(JSON.parse(showBuiltin(`${n}-topology`)!)), n).toEqual([]);
    }
    expect(scenario(parseYaml(readFileSync('test/scenario/fixtures/seed.yaml', 'utf8')))).toEqual([]);
    expect(scenario(JSON.parse(readFileSync('test/scenario/fixtures/small.json', 'utf8')))).toEqual([]);
    for (const f of readdirSync('test/pci/fixtures').filter((x) => x.endsWith('.json'))) {
      expect(topology(JSON.parse(readFileSync(`test/pci/fixtures/${f}`, 'utf8'))), f).toEqual([]);
    }
    // The description inside `topo --json` is a topology too.
    expect(topology(JSON.parse((await cli(['topo', 'builtin:seed-vfio', '--json'])).out).description)).toEqual([]);
  });

  it('reject what is wrong in shape', () => {
    const base = { name: 'x', topology: 'builtin', steps: [{ op: 'alloc', device: 'gaudi0', size: '2M', as: 'b' }] };
    expect(scenario(base)).toEqual([]);
    const bad = (step: Record<string, unknown>) => scenario({ ...base, steps: [step] });
    expect(bad({ op: 'frob' })).not.toEqual([]);
    expect(bad({ op: 'alloc', device: 'gaudi0' })).not.toEqual([]);
    expect(bad({ op: 'alloc', device: 'gaudi0', size: '2 parsecs' })).not.toEqual([]);
    expect(bad({ op: 'alloc', device: 'gaudi0', size: '2M', colour: 'red' })).not.toEqual([]);
    expect(bad({ op: 'export', buffer: 'b', flags: 'O_RDWR|O_SYNC' })).not.toEqual([]);
    expect(bad({ op: 'export', buffer: 'b', flags: 'O_RDWR|O_CLOEXEC' })).toEqual([]);
    expect(bad({ op: 'mmap', fd: 'f', expect: { errno: 'EINVAL' } })).toEqual([]);
    expect(bad({ op: 'mmap', fd: 'f', expect: { errno: 'einval' } })).not.toEqual([]);
    expect(bad({ op: 'post', verb: 'WRITE', from: 'a', to: 'b', mr: 'm', length: 4096, pattern: { random: -1 } })).not.toEqual([]);
    expect(scenario({ name: 'x', topology: 'builtin' })).not.toEqual([]);
    expect(scenario({ ...base, acts: [] })).not.toEqual([]);
    expect(scenario({ ...base, iommu: { family: 'amd' } })).not.toEqual([]);
    expect(topology({ hostBridges: [{ name: 'hb0', segmnt: 1 }] })).not.toEqual([]);
    expect(topology({ hostBridges: [] })).not.toEqual([]);
    expect(topology({ hostBridges: [{ name: 'hb0' }], endpoints: [{ name: 'e', parent: 'hb0', bars: [{ size: '1M', kind: 'mem' }] }] })).not.toEqual([]);
    expect(topology({ hostBridges: [{ name: 'hb0' }], endpoints: [{ name: 'e', parent: 'hb0', acs: ['SV', 'XX'] }] })).not.toEqual([]);
  });
});
