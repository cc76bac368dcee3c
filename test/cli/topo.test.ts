import { describe, expect, it } from 'vitest';
import { cli } from './cli-io.js';

describe('dmabuf-sim topo', () => {
  it('the built-in seed machine: tree and P2P matrix', async () => {
    const r = await cli(['topo']);
    expect(r).toMatchObject({ code: 0, err: '' });
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('topology: builtin:seed');
    expect(lines).toContain('[0000:00-06] host bridge hb0: whitelisted 8086:2020 (Intel Skylake-E)');
    expect(lines).toContain('[0000:80-81] host bridge hb1: not whitelisted (1234:5678)');
    expect(lines).toContain('|     |  \\- 0000:03:00.0 gaudi0  endpoint 1da3:1020  driver habanalabs');
    expect(lines).toContain('|     \\- 0000:02:01.0 sw0.dp1  switch downstream port 1000:c010  [04-04]  ACS SV UF');
    expect(lines).toContain('   \\- 0000:81:00.0 nic2  endpoint 15b3:101d  driver mlx5_core');
    const m = lines.indexOf('P2P map type and distance:');
    expect(lines.slice(m + 1, m + 7)).toEqual([
      '          gaudi0  nic0    nic1    gpu0    nic2',
      'gaudi0    X       BUS 4   HB 6    HB 6    NS',
      'nic0      BUS 4   X       HB 6    HB 6    NS',
      'nic1      HB 6    HB 6    X       HB 4    NS',
      'gpu0      HB 6    HB 6    HB 4    X       NS',
      'nic2      NS      NS      NS      NS      X',
    ]);
    expect(await cli(['topo', 'builtin:seed'])).toMatchObject({ code: 0, out: r.out });
  });

  it('--json: every pair with map type, distance and the kernel reason', async () => {
    const r = await cli(['topo', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.source).toBe('builtin:seed');
    expect(j.hostBridges.map((h: { name: string; whitelisted: boolean }) => [h.name, h.whitelisted])).toEqual([['hb0', true], ['hb1', false]]);
    const pair = (p: string, c: string) => j.p2p.find((x: { provider: string; client: string }) => x.provider === p && x.client === c);
    const types = Object.fromEntries(['nic0', 'nic1', 'gpu0', 'nic2'].map((c) => [c, [pair('gaudi0', c).mapType, pair('gaudi0', c).distance]]));
    expect(types).toEqual({ nic0: ['BUS_ADDR', 4], nic1: ['THRU_HOST_BRIDGE', 6], gpu0: ['THRU_HOST_BRIDGE', 6], nic2: ['NOT_SUPPORTED', 6] });
    expect(pair('nic1', 'gpu0')).toMatchObject({ mapType: 'THRU_HOST_BRIDGE', distance: 4, hostBridge: 'whitelisted' });
    expect(pair('gaudi0', 'nic0').reason).toBe('common upstream bridge 0000:01:00.0, no ACS redirect on the path');
    expect(pair('gaudi0', 'nic2')).toMatchObject({
      hostBridge: 'not-whitelisted', reason: 'no common upstream bridge; the traffic crosses the host bridge; pci0000:80: host bridge 1234:5678 is not in the P2PDMA whitelist',
    });
    expect(pair('gaudi0', 'nic1').reason).toMatch(/8086:2020 is whitelisted \(Intel Skylake-E\)$/);
    expect(j.p2p).toHaveLength(25);
  });

  it('the output of topo --json is a topology file again (round trip)', async () => {
    for (const src of ['builtin:seed', 'builtin:seed-vfio', 'test/pci/fixtures/two-switches.json']) {
      const j = await cli(['topo', src, '--json']);
      expect(j.code, src).toBe(0);
      const first = JSON.parse(j.out);
      expect(first.description.hostBridges.length, src).toBe(first.hostBridges.length);
      const again = await cli(['topo', 'out.json', '--json'], { 'out.json': j.out });
      expect(again.code, src).toBe(0);
      const second = JSON.parse(again.out);
      expect(second.source).toBe('out.json');
      expect({ ...second, source: src }).toEqual(first);
      const text = await cli(['topo', '-'], { '-': j.out });
      expect(text.out.split('\n').slice(1), src).toEqual((await cli(['topo', src])).out.split('\n').slice(1));
    }
    // A scenario can name it as its topology too; a bad description inside it points into `description`.
    const j = (await cli(['topo', '--json'])).out;
    const r = await cli(['run', '-q', 's.yaml'], { 's.yaml': 'name: t\ntopology: t.json\nsteps:\n  - { op: alloc, device: gaudi0, size: 4K }\n', 't.json': j });
    expect(r).toMatchObject({ code: 0, err: '' });
    const bad = JSON.parse(j);
    bad.description.endpoints[0].parent = 'rp9';
    const e = await cli(['topo', 'b.json'], { 'b.json': JSON.stringify(bad, null, 2) });
    expect(e.code).toBe(2);
    expect(e.err).toMatch(/^b\.json:\d+:\d+: description\.endpoints\[0\]\.parent: no root port, downstream port or host bridge named "rp9"\n$/);
  });

  it('a topology file', async () => {
    const r = await cli(['topo', 'test/pci/fixtures/two-switches.json']);
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]).toBe('topology: test/pci/fixtures/two-switches.json');
    expect(r.out).toContain('gaudi0    X       BUS');
  });

  it('bad files: the file, the line:column and the JSON path; exit status 2', async () => {
    expect(await cli(['topo', 'test/scenario/fixtures/bad-topo.json'])).toMatchObject({
      code: 2, out: '', err: 'test/scenario/fixtures/bad-topo.json:6:33: endpoints[0].parent: no root port, downstream port or host bridge named "rp9"\n',
    });
    expect(await cli(['topo', 'test/scenario/fixtures/bad-syntax.json'])).toMatchObject({
      code: 2, err: "test/scenario/fixtures/bad-syntax.json:3:22: not valid JSON: trailing comma before '}'\n",
    });
    expect(await cli(['topo', 't.json'], { 't.json': '{\n  "hostBridges": [{ "name": "hb0", "segmnt": 1 }]\n}\n' })).toMatchObject({
      code: 2, err: 't.json:2:36: hostBridges[0].segmnt: unknown field (expected one of name, segment, rootBus, busOffset, hostDevice, rootPorts)\n',
    });
    expect(await cli(['topo', 't.json'], { 't.json': '{ "hostBridges": [{ "name": "hb0", "segment": "x" }] }' })).toMatchObject({
      code: 2, err: 't.json:1:47: hostBridges[0].segment: cannot read "x" as an integer (e.g. 4096 or "0x1000")\n',
    });
    expect(await cli(['topo', 'nowhere.json'])).toMatchObject({ code: 2, err: 'nowhere.json: cannot read the file: no such file\n' });
    expect(await cli(['topo', 'builtin:big'])).toMatchObject({ code: 2, err: "builtin:big: no built-in topology 'big' (built-in: seed, seed-vfio)\n" });
    expect((await cli(['topo', 'a.json', 'b.json'])).code).toBe(2);
    expect((await cli(['topo', '--trace', 'x'])).err).toMatch(/^dmabuf-sim topo: unknown option '--trace'/);
    expect(await cli(['topo', '-'], { '-': '{ "hostBridges": [] }' })).toMatchObject({ code: 2, err: '<stdin>:1:18: hostBridges: at least one host bridge is required\n' });
  });
});
