import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jsonSyntaxError, loadScenarioFile, parseScenario, ScenarioError, type Scenario } from '../../src/scenario/index.js';

const FIX = 'test/scenario/fixtures';
const read = (f: string): string => readFileSync(f, 'utf8');

/** The diagnostics of a scenario text, one formatted line each. */
function errors(text: string, file = 's.yaml'): string[] {
  try {
    parseScenario(text, file, { readText: read });
  } catch (e) {
    if (e instanceof ScenarioError) return e.message.split('\n');
    throw e;
  }
  throw new Error('expected a ScenarioError');
}

describe('scenario validation', () => {
  it('accepts the seed story and builds the typed model', () => {
    const s: Scenario = loadScenarioFile(`${FIX}/seed.yaml`, read);
    expect(s.name).toBe('seed');
    expect(s.acts.map((a) => [a.title, a.profile, a.iommu, a.topologySource])).toEqual([
      ['Same switch (BUS_ADDR, no IOMMU)', '6.x', null, 'builtin:seed'],
      ['Through the host bridge (IOMMU)', '6.x', { family: 'vtd', strict: true }, 'builtin:seed'],
      ['Across host bridges (NOT_SUPPORTED)', 'latest', { family: 'vtd', strict: true }, 'builtin:seed'],
    ]);
    const a0 = s.acts[0]!.steps;
    expect(a0.map((x) => `${x.op}@${x.line}:${x.col}`)).toEqual(['note@10:9', 'alloc@12:9', 'export@16:9', 'mmap@20:9', 'register@23:9', 'post@29:9', 'readBack@36:9']);
    expect(a0[1]).toMatchObject({ op: 'alloc', index: 2, path: 'acts[0].steps[1]', args: { device: 'gaudi0', size: 2n << 20n }, as: 'buf0', expect: {} });
    expect(a0[2]!.args).toEqual({ buffer: 'buf0', flags: ['O_RDWR', 'O_CLOEXEC'] });
    expect(a0[3]!.expect).toEqual({ errno: ['EINVAL'] });
    expect(a0[4]!.args).toEqual({ nic: 'nic0', fd: 'fd0', length: 2n << 20n, access: ['LOCAL_WRITE', 'REMOTE_WRITE', 'REMOTE_READ'] });
    expect(a0[5]!.args).toMatchObject({ verb: 'WRITE', length: 4096n, pattern: { kind: 'counter', start: 0, step: 1 } });
    expect(a0[6]!.expect).toEqual({ bytes: { kind: 'counter', start: 0, step: 1 } });
    expect(s.acts[2]!.steps[2]!.expect).toEqual({ errno: ['EPERM'] });
  });

  it('reads JSON scenarios with positions', () => {
    const s = loadScenarioFile(`${FIX}/small.json`, read);
    expect(s.acts[0]!.steps.map((x) => [x.op, x.line, x.col])).toEqual([['note', 5, 5], ['alloc', 6, 5]]);
  });

  it('reports every problem at its line and field', () => {
    let err: ScenarioError | undefined;
    try {
      loadScenarioFile(`${FIX}/bad-fields.yaml`, read);
    } catch (e) {
      err = e as ScenarioError;
    }
    expect(err).toBeInstanceOf(ScenarioError);
    expect(err!.message.split('\n')).toEqual([
      "test/scenario/fixtures/bad-fields.yaml:6:5: steps[0].sise: unknown field for op 'alloc' (fields: op, device, size, as, expect); did you mean 'size'?",
      `test/scenario/fixtures/bad-fields.yaml:4:5: steps[0]: op 'alloc' needs 'size' (bytes ("2M"))`,
      'test/scenario/fixtures/bad-fields.yaml:10:13: steps[1].length: expected a size (e.g. 4096, "0x1000", "2M"), got boolean true',
      "test/scenario/fixtures/bad-fields.yaml:13:10: steps[2].nic: unknown device 'nic9' (devices: gaudi0, nic0, nic1, gpu0, nic2); did you mean 'nic0'?",
      "test/scenario/fixtures/bad-fields.yaml:16:9: steps[3].op: unknown op 'alocc' (ops: note, sweep, alloc, free, map, export, register, post, readBack, mmap, unmap, gpuAlloc, pressure, vfioExport, reset, restore, readBar, attach, mapAttachment, detach, close, userAlloc, userRead, ioasAlloc, ioasMap, vfioBind, hwptAlloc, ptAttach, stage1Map, dirtyTracking, dirtyBitmap, faultAlloc, pageResponse, deviceDma); did you mean 'alloc'?",
      "test/scenario/fixtures/bad-fields.yaml:19:9: steps[4].fd: unknown fd 'fd7' (fds: fd0); did you mean 'fd0'?",
    ]);
    expect(err!.diagnostics[3]).toEqual({ file: 'test/scenario/fixtures/bad-fields.yaml', line: 13, col: 10, path: 'steps[2].nic', message: "unknown device 'nic9' (devices: gaudi0, nic0, nic1, gpu0, nic2); did you mean 'nic0'?" });
  });

  it('top-level and act fields', () => {
    expect(errors('name: x\ntopology: builtin\nstep: []\n')).toEqual([
      "s.yaml:3:1: step: unknown field (fields: name, description, profile, dmaBufRules, iommu, topology, steps, acts, $schema); did you mean 'steps'?",
      "s.yaml:1:1: 'steps' is required (or 'acts')",
    ]);
    expect(errors('name: x\nprofile: 5.10\niommu: { family: amd }\ntopology: builtin\nsteps: []\n')).toEqual([
      's.yaml:2:10: profile: expected one of 5.15, 6.x, latest, got number 5.1',
      's.yaml:3:18: iommu.family: expected one of vtd, smmuv3, got the string "amd"',
    ]);
    expect(errors('name: x\ntopology: builtin\nacts:\n  - title: one\n    steps: []\n    iommus: null\n')).toEqual([
      "s.yaml:6:5: acts[0].iommus: unknown field in an act (fields: title, topology, iommu, profile, dmaBufRules, steps); did you mean 'iommu'?",
    ]);
    expect(errors('name: x\nacts:\n  - title: one\n    steps: []\n')).toEqual(['s.yaml:3:5: acts[0]: no topology (give one here or at the top level)']);
    expect(errors('- 1\n')).toEqual(['s.yaml:1:1: a scenario is an object with name, topology and steps (or acts), got a list']);
  });

  it('wrong types, flags, patterns and expectations', () => {
    const text = [
      'name: x', //                                  1
      'topology: builtin', //                        2
      'steps:', //                                   3
      '  - { op: alloc, device: 7, size: 2M, as: b }', // 4
      '  - { op: export, buffer: b, flags: [O_RDWR, O_SYNC], as: f }', // 5
      '  - { op: post, verb: WRTE, from: nic0, to: nic1, mr: m, length: 4K }', // 6
      '  - { op: readBack, buffer: f, length: 4K, expect: { bytes: { fill: 300 } } }', // 7
      '  - { op: close, fd: f, expect: { errno: EPREM } }', // 8
      '  - { op: close, fd: f, expect: maybe }', // 9
      '  - { op: note, text: hi, as: n }', // 10
    ].join('\n');
    expect(errors(text)).toEqual([
      's.yaml:4:26: steps[0].device: expected a device name, got number 7',
      "s.yaml:5:46: steps[1].flags[1]: unknown flag 'O_SYNC' (flags: O_RDONLY, O_WRONLY, O_RDWR, O_CLOEXEC)",
      "s.yaml:6:23: steps[2].verb: expected one of WRITE, READ, SEND, got 'WRTE'; did you mean 'WRITE'?",
      "s.yaml:6:55: steps[2].mr: unknown MR 'm' (no MR is defined before this step)",
      "s.yaml:7:29: steps[3].buffer: 'f' is a fd (line 5), expected a buffer or device VA or MR or mmap",
      's.yaml:7:61: steps[3].expect.bytes: fill must be a byte 0..255, got 300',
      "s.yaml:8:42: steps[4].expect.errno: unknown errno 'EPREM'; did you mean 'EPERM'?",
      's.yaml:9:33: steps[5].expect: expected ok, { errno }, { bytes } or { result }, got the string "maybe"',
      "s.yaml:10:27: steps[6].as: unknown field for op 'note' (fields: op, text, expect)",
    ]);
  });

  it('names: defined later, defined twice', () => {
    const text = 'name: x\ntopology: builtin\nsteps:\n  - { op: close, fd: f }\n  - { op: alloc, device: gaudi0, size: 4K, as: b }\n  - { op: alloc, device: gaudi0, size: 4K, as: b }\n  - { op: export, buffer: b, as: f }\n';
    expect(errors(text)).toEqual([
      "s.yaml:4:22: steps[0].fd: 'f' is defined later, at line 7 (steps[3])",
      "s.yaml:6:48: steps[2].as: 'b' is already defined at line 5 (steps[1])",
    ]);
  });

  it('platform devices and BDFs', () => {
    const ok = parseScenario('name: x\ntopology: builtin\nsteps:\n  - { op: alloc, device: "0000:03:00.0", size: 4K }\n', 's.yaml');
    expect(ok.acts[0]!.steps[0]!.args.device).toBe('0000:03:00.0');
  });

  it('bad YAML and bad JSON: the line and column of the syntax error', () => {
    expect(errors('name: x\nsteps:\n  - op: alloc\n    size: [1\n  - b: 2\n')).toEqual([
      's.yaml:5:3: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    expect(errors('{\n  "name": "x",\n  "steps": [\n    { "op": "note" "text": "a" }\n  ]\n}\n', 's.json')).toEqual([
      "s.json:4:20: not valid JSON: expected ',' or '}' after a value, found '\"'",
    ]);
    expect(errors('{ "name": "x", }', 's.json')).toEqual(["s.json:1:16: not valid JSON: trailing comma before '}'"]);
    expect(errors('name: a\nname: b\n')[0]).toMatch(/^s\.yaml:\d+:\d+: not valid YAML: Map keys must be unique$/);
    expect(jsonSyntaxError('[1, 2, {"a": [true, null, -0.5e3, "\\u00e9"]}]')).toBeNull();
    expect(jsonSyntaxError('[1, 2')).toEqual({ offset: 5, message: "expected ',' or ']' after a value, found the end of the file" });
    expect(jsonSyntaxError("{'a': 1}")).toEqual({ offset: 1, message: "expected a key in double quotes, found '''" });
  });

  it('inline topologies and topology files: errors in their own place', () => {
    const inline = [
      'name: x',
      'topology:',
      '  hostBridges:',
      '    - name: hb0',
      '      rootPorts: [{ name: rp0 }]',
      '  endpoints:',
      '    - { name: gpu0, parent: rp0, vendor: 0x1002, device: 0x740f, bars: [{ size: 3M }] }',
      'steps:',
      '  - { op: alloc, device: gpu0, size: 4K }',
    ].join('\n');
    expect(errors(inline)).toEqual(['s.yaml:7:81: topology.endpoints[0].bars[0].size: a memory BAR size must be a power of two of at least 16 bytes, got 3145728']);
    const wrongKey = 'name: x\ntopology:\n  hostBridges: [{ name: hb0 }]\n  endpoint: []\nsteps: []\n';
    expect(errors(wrongKey)).toEqual(['s.yaml:4:3: topology.endpoint: unknown field (expected one of cpu, hostBridges, switches, endpoints, platformDevices, fabric, $schema, comment)']);
    // A topology file next to the scenario: its errors name that file.
    expect(errors('name: x\ntopology: bad-topo.json\nsteps: []\n', `${FIX}/s.yaml`)).toEqual([
      `${FIX}/bad-topo.json:6:33: endpoints[0].parent: no root port, downstream port or host bridge named "rp9"`,
    ]);
    expect(errors('name: x\ntopology: nowhere.json\nsteps: []\n', `${FIX}/s.yaml`)).toEqual([
      `${FIX}/s.yaml:2:11: topology: cannot read topology file 'nowhere.json': no such file`,
    ]);
    expect(errors('name: x\ntopology: builtin:nope\nsteps: []\n')).toEqual(["s.yaml:2:11: topology: no built-in topology 'nope' (built-in: seed, seed-vfio)"]);
    const viaFile = parseScenario('name: x\ntopology: ../../pci/fixtures/two-switches.json\nsteps:\n  - { op: alloc, device: fpga0, size: 4K }\n', `${FIX}/s.yaml`, { readText: read });
    expect(viaFile.acts[0]!.topologySource).toBe(`${FIX}/../../pci/fixtures/two-switches.json`);
  });

  it('a missing scenario file', () => {
    expect(() => loadScenarioFile(`${FIX}/none.yaml`, read)).toThrow(`${FIX}/none.yaml: cannot read the file: no such file`);
  });
});
