/**
 * CLI-EXIT: every failure to read, parse, validate or build a scenario or topology exits 2 with
 * file:line:column or the field and no stack trace; exit 1 is only a failed expectation.
 */
import { describe, expect, it } from 'vitest';
import { cli } from './cli-io.js';
import { MAX_NESTING, nestingTooDeep } from '../../src/scenario/source.js';

const TOPO_ACT = (steps: string, topo = 'builtin') => `name: x
topology: ${topo}
acts:
  - title: a
    steps:
${steps}`;

async function fails2(files: Record<string, string>, file = 'f.yaml', cmd = 'run') {
  const r = await cli([cmd, file], files);
  expect(r.code, r.err).toBe(2);
  expect(r.err).not.toMatch(/\n\s+at .*:\d+:\d+/); // no stack trace
  expect(r.err.length).toBeLessThan(2000);
  return r.err;
}

describe('CLI failure classes exit 2', () => {
  it('a file that cannot be read, stdin that cannot be read', async () => {
    expect(await fails2({}, '/nonexistent/x.yaml')).toMatch(/x\.yaml: cannot read the file: no such file/);
    const r = await cli(['run', '-'], {});
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/<stdin>: cannot read standard input/);
  });
  it('JSON nested thousands deep: a diagnostic at line:column, no stack overflow', async () => {
    const deep = `{"name":"x","acts":${'['.repeat(20000)}${']'.repeat(20000)}}`;
    expect(await fails2({ 'f.json': deep }, 'f.json')).toMatch(new RegExp(`f\\.json:1:\\d+: lists and maps nest more than ${MAX_NESTING} deep`));
    expect(await fails2({ 'f.json': deep }, 'f.json', 'topo')).toMatch(/nest more than/);
  });
  it('YAML nested thousands deep, in flow and in compact block sequences', async () => {
    expect(await fails2({ 'f.yaml': `name: x\nacts: ${'['.repeat(5000)}${']'.repeat(5000)}\n` })).toMatch(/f\.yaml:2:\d+: lists and maps nest/);
    expect(await fails2({ 'f.yaml': `name: x\nacts:\n${'- '.repeat(5000)}x\n` })).toMatch(/f\.yaml:3:\d+: lists and maps nest/);
    let indented = 'name: x\nacts:\n';
    for (let i = 0; i < 200; i++) indented += `${' '.repeat(i + 1)}k${i}:\n`;
    expect(await fails2({ 'f.yaml': indented })).toMatch(/nest more than/);
  });
  it('a YAML alias bomb', async () => {
    let bomb = 'a0: &a0 [x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 12; i++) bomb += `a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]\n`;
    bomb += 'name: x\nacts: []\n';
    expect(await fails2({ 'f.yaml': bomb })).toMatch(/f\.yaml:2:10: not valid YAML: too many alias expansions/);
  });
  it('a readBack past the end of its buffer, or too large, is found at validation with its line', async () => {
    const past = TOPO_ACT(`      - { op: alloc, device: gaudi0, size: 2M, as: hbm }
      - { op: map, buffer: hbm, as: va }
      - { op: readBack, buffer: va, offset: 0x1000, length: 2M }
`);
    expect(await fails2({ 'f.yaml': past })).toMatch(/f\.yaml:8:\d+: acts\[0\]\.steps\[2\]\.offset: offset \+ length = 2101248 is past the end of 'va' \(2097152 bytes\)/);
    const huge = TOPO_ACT(`      - { op: alloc, device: gaudi0, size: 2G, as: hbm }
      - { op: readBack, buffer: hbm, length: 1G }
`);
    expect(await fails2({ 'f.yaml': huge })).toMatch(/steps\[1\]\.length: 1073741824 bytes: a read returns at most/);
    const bar = TOPO_ACT(`      - { op: readBar, device: nic0, offset: 32M, length: 4K }
`);
    expect(await fails2({ 'f.yaml': bar })).toMatch(/steps\[0\]\.offset: .*past the end of BAR0 of nic0/);
  });
  it('machine limits: too many memory BARs, a BAR over 4 TiB, too many IOMMU units', async () => {
    // 11 endpoints with six 32-bit memory BARs each: 66 regions of BARs, 62 fit beside system RAM.
    const endpoints = Array.from({ length: 11 }, (_, i) => ({
      name: `e${i}`, parent: `rp${i}`, vendor: '0x1234', device: '0x1',
      bars: Array.from({ length: 6 }, (_, k) => ({ index: k, size: '64K', is64: false })),
    }));
    const many = {
      hostBridges: [{ name: 'hb0', rootPorts: Array.from({ length: 11 }, (_, i) => ({ name: `rp${i}`, slot: i + 1 })) }],
      endpoints,
    };
    const scen = (t: unknown, iommu = 'null') => `{"name":"x","iommu":${iommu},"topology":${JSON.stringify(t)},"steps":[{"op":"note","text":"x"}]}`;
    const e1 = await fails2({ 'f.json': scen(many) }, 'f.json');
    expect(e1).toMatch(/f\.json:1:\d+: topology: 66 memory BARs: the machine holds at most 62/);
    const big = { hostBridges: [{ name: 'hb0', rootPorts: [{ name: 'rp0', slot: 1 }] }], endpoints: [{ name: 'e0', parent: 'rp0', vendor: '0x1234', device: '0x1', bars: [{ size: '8T', prefetchable: true }] }] };
    const e2 = await fails2({ 'f.json': scen(big) }, 'f.json');
    expect(e2).toMatch(/f\.json:1:\d+: topology: e0 BAR0 of 8796093022208 bytes is over the largest region \(4 TiB\)/);
    const bridges = { hostBridges: Array.from({ length: 20 }, (_, i) => ({ name: `hb${i}`, rootBus: i * 8, rootPorts: [{ name: `rp${i}`, slot: 1 }] })) };
    const e3 = await fails2({ 'f.json': scen(bridges, '{"family":"vtd"}') }, 'f.json');
    expect(e3).toMatch(/topology: 20 host bridges with an IOMMU: at most 16 IOMMU units/);
  });
  it('exit 1 only for a failed expectation', async () => {
    const wrong = TOPO_ACT(`      - { op: alloc, device: gaudi0, size: 2M, as: hbm }
      - { op: map, buffer: hbm, as: va }
      - { op: readBack, buffer: va, length: 4K, expect: { bytes: counter } }
`);
    const r = await cli(['run', 'f.yaml'], { 'f.yaml': wrong });
    expect(r.code).toBe(1);
  });
});

describe('nestingTooDeep', () => {
  it('passes real files and strings, comments and quotes holding brackets', () => {
    expect(nestingTooDeep('a: "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["\n', 'yaml')).toBeNull();
    expect(nestingTooDeep(`a: '${'{'.repeat(100)}'\n# ${'['.repeat(100)}\nb: don't ${'['.repeat(3)}]]]\n`, 'yaml')).toBeNull();
    expect(nestingTooDeep(`{"a":"${'['.repeat(100)}\\"${'{'.repeat(100)}"}`, 'json')).toBeNull();
    expect(nestingTooDeep(`${'['.repeat(MAX_NESTING)}${']'.repeat(MAX_NESTING)}`, 'json')).toBeNull();
    expect(nestingTooDeep(`${'['.repeat(MAX_NESTING + 1)}${']'.repeat(MAX_NESTING + 1)}`, 'json')).toBe(MAX_NESTING);
  });
});
