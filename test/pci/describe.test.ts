import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type Bar, P2pdma, parseTopology, TopologyBuilder, type TopologyDescription } from '../../src/pci/index.js';

const fixture = readFileSync(new URL('./fixtures/two-switches.json', import.meta.url), 'utf8');
const base = (): TopologyDescription => JSON.parse(fixture) as TopologyDescription;

/** Expects parseTopology to fail with EINVAL whose message starts with `path: `. */
function rejects(desc: unknown, path: string, problem: RegExp): void {
  try {
    parseTopology(desc);
  } catch (e) {
    const err = e as { code: string; message: string };
    expect(err.code).toBe('EINVAL');
    expect(err.message).toContain(`EINVAL: ${path}: `);
    expect(err.message).toMatch(problem);
    return;
  }
  throw new Error(`accepted; expected an error at ${path}`);
}

describe('the example description', () => {
  it('builds two host bridges with bus numbers, BARs and bus offsets', () => {
    const seen: Array<[string, number]> = [];
    const t = parseTopology(fixture, { onBar: (b: Bar, d) => seen.push([d.name, b.index]) });
    expect(t.hostBridges.map((h) => [h.name, ...h.busRange])).toEqual([['hb0', 0, 6], ['hb1', 0x80, 0x84]]);
    expect(t.pci('fpga0').bdf).toBe('0000:84:00.0');
    expect(t.pci('nic0.1').bdf).toBe('0000:04:00.1');
    const nic1 = t.pci('nic1').bar(0)!;
    expect(nic1.busAddress - nic1.cpuAddress).toBe(0x100_0000_0000n);
    expect(nic1.busOffset).toBe(0x100_0000_0000n);
    const g = t.pci('gaudi0');
    expect(g.bar(0)).toMatchObject({ size: 32n << 30n, is64: true, prefetchable: true, cpuAddress: 0x40_0000_0000n });
    expect(g.bar(2)).toMatchObject({ is64: false, prefetchable: false });
    expect(g.bar(2)!.cpuAddress < 1n << 32n).toBe(true);
    expect(seen).toContainEqual(['gpu0', 5]);
    expect(seen).toHaveLength(t.allBars().length);
    expect(t.get('mlx5_core.rdma.0').parent).toBe(t.pci('nic0'));
    expect(t.get('0000:06:00.0')).toBe(t.pci('gpu0'));
    expect(t.get('06:00.0')).toBe(t.pci('gpu0'));
    expect(t.barContaining(g.bar(0)!.cpuAddress + 5n)).toBe(g.bar(0));
  });

  it('P2P on it: switch peers BUS_ADDR, ACS port through the host bridge, the other host bridge refused', () => {
    const t = parseTopology(fixture);
    const p = new P2pdma(t);
    const d = (a: string, b: string) => p.decide(t.pci(a), t.get(b));
    expect([d('gaudi0', 'nic0').mapType, d('gaudi0', 'nic0').distance]).toEqual(['BUS_ADDR', 4]);
    expect([d('gaudi0', 'nvme0').mapType, d('gaudi0', 'nvme0').distance]).toEqual(['THRU_HOST_BRIDGE', 4]);
    expect([d('gaudi0', 'gpu0').mapType, d('gaudi0', 'gpu0').distance]).toEqual(['THRU_HOST_BRIDGE', 6]);
    expect(d('gaudi0', 'nic1').mapType).toBe('NOT_SUPPORTED');
    expect([d('nic1', 'fpga0').mapType, d('nic1', 'fpga0').distance]).toEqual(['BUS_ADDR', 4]);
    expect(p.busAddressOf(t.pci('fpga0'), t.pci('fpga0').bar(0)!.cpuAddress)).toBe(t.pci('fpga0').bar(0)!.busAddress);
  });
});

describe('bad descriptions name the path and the problem, and build nothing', () => {
  it('a BAR size that is not a power of two', () => {
    const d = base();
    (d.switches![0]!.downstream as Array<Record<string, unknown>>)[2]!.bars = [{ size: '3M' }];
    rejects(d, 'switches[0].downstream[2].bars[0].size', /power of two/);
  });

  it('no onBar call when the build fails', () => {
    const d = base();
    d.endpoints![0]!.parent = 'nowhere';
    let calls = 0;
    expect(() => parseTopology(d, { onBar: () => calls++ })).toThrow(/endpoints\[0\]\.parent: no root port/);
    expect(calls).toBe(0);
  });

  it('JSON syntax errors point at the line', () => {
    expect(() => parseTopology('{\n  "hostBridges": [\n    {"name": "hb0",}\n  ]\n}')).toThrow(/line 3, column \d+: not valid JSON/);
  });

  const cases: Array<[string, (d: TopologyDescription) => void, string, RegExp]> = [
    ['unknown field', (d) => ((d.hostBridges[0] as unknown as Record<string, unknown>).rootport = []), 'hostBridges[0].rootport', /unknown field/],
    ['unknown ACS bit', (d) => (d.hostBridges[0]!.rootPorts![0]!.acs = ['RR', 'XX']), 'hostBridges[0].rootPorts[0].acs[1]', /unknown ACS bit "XX"/],
    ['unknown CPU vendor', (d) => (d.cpu = { vendor: 'via' as never, family: 6 }), 'cpu.vendor', /unknown CPU vendor/],
    ['bad number', (d) => (d.endpoints![0]!.vendor = 'eight'), 'endpoints[0].vendor', /cannot read "eight"/],
    ['vendor too big', (d) => (d.endpoints![0]!.vendor = 0x10000), 'endpoints[0].vendor', /at most 65535/],
    ['duplicate name', (d) => (d.endpoints![1]!.name = 'gaudi0'), 'endpoints[1].name', /already used at endpoints\[0\]/],
    ['two devices below one port', (d) => (d.endpoints![1]!.parent = 'sw0.dp0'), 'endpoints[1].parent', /already has "gaudi0" below it/],
    ['switch below a host bridge', (d) => (d.switches![1]!.parent = 'hb1'), 'switches[1].parent', /not host bridge/],
    ['function 0 missing', (d) => (d.endpoints![1]!.functions![0]!.function = 2), 'endpoints[1].functions', /function 0 is missing/],
    ['duplicate function', (d) => (d.endpoints![1]!.functions![1]!.function = 0), 'endpoints[1].functions[1].function', /already used/],
    ['64-bit BAR in slot 5', (d) => (d.endpoints![4]!.bars = [{ index: 5, size: '1M', is64: true }]), 'endpoints[4].bars[0].index', /needs slots 5-6/],
    ['overlapping BAR slots', (d) => (d.endpoints![3]!.bars![2]!.index = 1), 'endpoints[3].bars[2].index', /slot 1 is already used by endpoints\[3\]\.bars\[0\]/],
    ['bridge with BAR2', (d) => (d.hostBridges[0]!.rootPorts![0]!.bars = [{ index: 2, size: 4096 }]), 'hostBridges[0].rootPorts[0].bars[0].index', /type 1 header/],
    ['32-bit BAR over 2 GiB', (d) => (d.endpoints![2]!.bars = [{ size: '4G' }]), 'endpoints[2].bars[0].size', /set "is64": true/],
    ['misaligned explicit address', (d) => (d.endpoints![2]!.bars = [{ size: '1M', cpuAddress: '0xd0001000' }]), 'endpoints[2].bars[0].cpuAddress', /not aligned/],
    ['overlapping explicit addresses', (d) => {
      d.endpoints![2]!.bars = [{ size: '1M', cpuAddress: '0xd0000000' }];
      d.endpoints![4]!.bars = [{ size: '2M', cpuAddress: '0xd0000000' }];
    }, 'endpoints[4].bars[0].cpuAddress', /overlaps endpoints\[2\]\.bars\[0\]/],
    ['host bridge bus ranges overlap', (d) => (d.hostBridges[1]!.rootBus = 3), 'hostBridges[1]', /overlaps hostBridges\[0\]/],
    ['I/O BAR too large', (d) => (d.endpoints![2]!.bars = [{ type: 'io', size: 4096 }]), 'endpoints[2].bars[0].size', /4 to 256 bytes/],
    ['slot given below a port', (d) => (d.endpoints![2]!.slot = 1), 'endpoints[2].slot', /only endpoints on a root bus/],
    ['platform parent missing', (d) => (d.platformDevices![1]!.parent = 'ghost'), 'platformDevices[1].parent', /no device named "ghost"/],
    ['no host bridges', (d) => (d.hostBridges = []), 'hostBridges', /at least one/],
    ['switch loop', (d) => {
      d.switches!.push({ name: 'swA', parent: 'swB.dp0', downstream: 1 }, { name: 'swB', parent: 'swA.dp0', downstream: 1 });
    }, 'switches[2].parent', /its own parent/],
    ['downstream count 0', (d) => (d.switches![1]!.downstream = 0), 'switches[1].downstream', /at least one downstream port/],
  ];
  for (const [what, mutate, path, problem] of cases) {
    it(what, () => {
      const d = base();
      mutate(d);
      rejects(d, path, problem);
    });
  }

  it('running out of bus numbers', () => {
    const b = new TopologyBuilder().hostBridge('hb0', { rootBus: 250, rootPorts: [{ name: 'rp0' }] });
    b.switch('sw', { parent: 'rp0', downstream: 8 });
    expect(() => b.build()).toThrow(/ran out of bus numbers/);
  });
});

describe('TopologyBuilder', () => {
  it('accepts bigints and numbers, and gives the JSON form back', () => {
    const b = new TopologyBuilder()
      .cpu('amd', '0x19')
      .hostBridge('hb0', { busOffset: -0x8000_0000n, rootPorts: [{ name: 'rp0', acs: 0x1d }] })
      .endpoint('x', { parent: 'rp0', vendor: 1, device: 2, bars: [{ size: 1n << 20n, cpuAddress: 0xe000_0000n }] });
    const t = b.build();
    expect(t.cpu).toEqual({ vendor: 'amd', family: 0x19 });
    expect(t.pci('rp0').acsCtrl).toBe(0x1d);
    expect(t.pci('x').bar(0)!.busAddress).toBe(0x6000_0000n);
    expect(b.description().endpoints![0]!.name).toBe('x');
  });

  it('a negative bus address is refused', () => {
    const b = new TopologyBuilder()
      .hostBridge('hb0', { busOffset: '-0xf0000000', rootPorts: [{ name: 'rp0' }] })
      .endpoint('x', { parent: 'rp0', vendor: 1, device: 2, bars: [{ size: '1M' }] });
    expect(() => b.build()).toThrow(/endpoints\[0\]\.bars\[0\]: bus address .* is negative/);
  });

  it('pci=disable_acs_redir with a bad entry is EINVAL', () => {
    const b = new TopologyBuilder().hostBridge('hb0');
    expect(() => b.build({ disableAcsRedir: '0000:00:01' })).toThrow(/disableAcsRedir\[0\]/);
  });
});
