import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatSize, P2pdma, parseTopology, renderP2pMatrix, renderTopologyTree, topologyToJson } from '../../src/pci/index.js';
import { lab } from './helpers.js';

const fixture = readFileSync(new URL('./fixtures/two-switches.json', import.meta.url), 'utf8');

describe('renderTopologyTree', () => {
  it('shows host bridges, bus ranges, ACS, BARs and platform devices', () => {
    const tree = renderTopologyTree(parseTopology(fixture));
    const lines = tree.split('\n');
    expect(lines[0]).toBe('CPU: intel family 0x6');
    expect(lines).toContain('[0000:00-06] host bridge hb0: whitelisted 8086:2020 (Intel Skylake-E)');
    expect(lines).toContain('[0000:80-84] host bridge hb1: not whitelisted (1234:5678), bus offset 0x10000000000');
    expect(lines).toContain('+- 0000:00:01.0 rp0  root port 8086:2030  [01-05]  ACS SV RR CR UF (redirect)');
    expect(lines).toContain('|  \\- 0000:01:00.0 sw0.up  switch upstream port 1000:c010  [02-05]');
    expect(lines).toContain('|     |  \\- 0000:03:00.0 gaudi0  endpoint 1da3:1020');
    expect(lines).toContain('|     |          BAR0 mem64 pref 32G @ 0x4000000000');
    expect(tree).toContain('BAR0 mem64 pref 32M @ 0x4806000000 (bus 0x14806000000)');
    expect(lines).toContain('  mlx5_core.rdma.0  (parent nic0 0000:04:00.0)');
  });
});

describe('renderP2pMatrix', () => {
  it('prints map type and distance per pair, with a legend, without touching the caches', () => {
    const t = lab({ upstreamAcs: ['RR'], host: { vendor: 0x1234, device: 0x5678 } });
    const p = new P2pdma(t);
    p.init(t.pci('A'));
    const m = renderP2pMatrix(t, p);
    const rows = m.split('\n');
    expect(rows[0]).toBe('          A       A.1     B       C       D       E       dsp     aux');
    expect(rows[1]).toBe('A         X       BUS 2   NS      NS      NS      NS      NS      NS');
    expect(m).toContain('BUS = BUS_ADDR');
    expect(p.cachedMapType(t.pci('A'), t.pci('B'))).toBe('UNKNOWN');
    expect(p.log).toEqual([]);
  });

  it('AMD Zen turns NS into HB', () => {
    const t = lab({ cpu: ['amd', 0x19], upstreamAcs: ['RR'] });
    const rows = renderP2pMatrix(t, new P2pdma(t)).split('\n');
    expect(rows[3]).toBe('B         HB 4    HB 4    X       HB 4    HB 6    HB 6    NS      BUS 0');
  });
});

describe('topologyToJson', () => {
  it('is plain JSON with hex strings and every pair', () => {
    const t = parseTopology(fixture);
    const j = topologyToJson(t, new P2pdma(t));
    expect(() => JSON.stringify(j)).not.toThrow();
    expect(j.hostBridges[1]).toMatchObject({ name: 'hb1', busRange: [0x80, 0x84], busOffset: '0x10000000000', whitelisted: false, whitelistDevice: '0000:80:00.0' });
    expect(j.devices.find((d) => d.name === 'sw0.dp2')!.acs).toEqual({ ctrl: 0x1d, bits: ['SV', 'RR', 'CR', 'UF'], redirect: true });
    expect(j.devices.find((d) => d.name === 'gaudi0')!.bars[0]).toEqual({
      index: 0, type: 'mem', size: '0x800000000', is64: true, prefetchable: true, cpuAddress: '0x4000000000', busAddress: '0x4000000000',
    });
    expect(j.p2p!.find((x) => x.provider === 'gaudi0' && x.client === 'nvme0')).toMatchObject({
      mapType: 'THRU_HOST_BRIDGE', distance: 4, acsRedirect: ['0000:02:02.0'], hostBridge: 'whitelisted',
    });
    expect(j.p2p).toHaveLength(7 * 9);
  });

  it('formatSize', () => {
    expect([formatSize(4096n), formatSize(32n << 30n), formatSize(100n), formatSize(0x1234_5678n)]).toEqual(['4K', '32G', '100', '0x12345678']);
  });
});
