import { describe, expect, it } from 'vitest';
import { P2pdma, P2PDMA_WHITELIST, PCI_ANY_ID, REQ_SAME_HOST_BRIDGE, TopologyBuilder } from '../../src/pci/index.js';
import { lab, pci } from './helpers.js';

const NO_WL = { vendor: 0x1234, device: 0x5678 };
const lines = (p: P2pdma): string[] => p.log.map((l) => l.line);

describe('topology addresses (the lab)', () => {
  it('numbers buses depth-first as the kernel scan does', () => {
    const t = lab();
    expect(pci(t, 'hb0.host').bdf).toBe('0000:00:00.0');
    expect([pci(t, 'rp0').bdf, pci(t, 'rp0').secondary, pci(t, 'rp0').subordinate]).toEqual(['0000:00:01.0', 1, 5]);
    expect([pci(t, 'sw0.up').bdf, pci(t, 'sw0.up').secondary, pci(t, 'sw0.up').subordinate]).toEqual(['0000:01:00.0', 2, 5]);
    expect(['dp0', 'dp1', 'dp2'].map((n) => [pci(t, n).bdf, pci(t, n).secondary])).toEqual([
      ['0000:02:00.0', 3], ['0000:02:01.0', 4], ['0000:02:02.0', 5],
    ]);
    expect(['A', 'A.1', 'B', 'C', 'D', 'E'].map((n) => pci(t, n).bdf)).toEqual([
      '0000:03:00.0', '0000:03:00.1', '0000:04:00.0', '0000:05:00.0', '0000:06:00.0', '0000:07:00.0',
    ]);
    expect(pci(t, 'A').upstream).toBe(pci(t, 'dp0'));
    expect(pci(t, 'rp0').upstream).toBeNull();
    expect(t.hostBridges[0]!.busRange).toEqual([0, 7]);
  });
});

describe('calc_map_type_and_dist: one test per rule', () => {
  it('same function: distance 0, BUS_ADDR', () => {
    const t = lab();
    const r = new P2pdma(t).decide(pci(t, 'A'), pci(t, 'A'));
    expect([r.mapType, r.distance, r.commonUpstream?.name, r.reason]).toEqual(['BUS_ADDR', 0, 'A', 'same PCI function']);
  });

  it('sibling function of one device: distance 2, BUS_ADDR', () => {
    const t = lab();
    const r = new P2pdma(t).decide(pci(t, 'A'), pci(t, 'A.1'));
    expect([r.mapType, r.distance, r.commonUpstream?.name]).toEqual(['BUS_ADDR', 2, 'dp0']);
    expect(r.reason).toBe('functions of one device below 0000:02:00.0');
  });

  it('two endpoints under one switch: distance 4, BUS_ADDR, no log', () => {
    const t = lab({ downstreamAcs: ['SV', 'UF'] }); // ACS capability without redirect bits
    const p = new P2pdma(t);
    const r = p.distance(pci(t, 'A'), [pci(t, 'B')], { verbose: true });
    expect(r.distance).toBe(4);
    expect(r.clients[0]!.mapType).toBe('BUS_ADDR');
    expect(r.clients[0]!.commonUpstream?.name).toBe('sw0.up');
    expect(p.log).toEqual([]);
  });

  it('ACS redirect on the switch upstream port, whitelisted host bridge: THRU_HOST_BRIDGE 4', () => {
    const t = lab({ upstreamAcs: ['RR'] });
    const p = new P2pdma(t);
    const r = p.distance(pci(t, 'A'), pci(t, 'B'), { verbose: true });
    expect(r.distance).toBe(4);
    expect(r.clients[0]!.mapType).toBe('THRU_HOST_BRIDGE');
    expect(r.clients[0]!.hostBridge).toBe('whitelisted');
    expect(r.clients[0]!.acsRedirect.map((d) => d.bdf)).toEqual(['0000:01:00.0']);
    expect(lines(p)).toEqual([
      'pci 0000:04:00.0: ACS redirect is set between the client and provider (0000:03:00.0)',
      'pci 0000:04:00.0: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:01:00.0',
    ]);
  });

  it('ACS redirect on the switch upstream port, host bridge not whitelisted: NOT_SUPPORTED', () => {
    const t = lab({ upstreamAcs: ['EC'], host: NO_WL });
    const p = new P2pdma(t);
    const r = p.distance(pci(t, 'A'), pci(t, 'B'), { verbose: true });
    expect(r.distance).toBe(-1);
    expect(r.clients[0]!.mapType).toBe('NOT_SUPPORTED');
    expect(r.clients[0]!.distance).toBe(4);
    expect(lines(p)).toEqual([
      'pci 0000:04:00.0: ACS redirect is set between the client and provider (0000:03:00.0)',
      'pci 0000:04:00.0: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:01:00.0',
      'pci 0000:00:00.0: Host bridge not in P2PDMA whitelist: 1234:5678',
      'pci 0000:04:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:03:00.0) do not share an upstream bridge or whitelisted host bridge',
    ]);
  });

  it('ACS redirect on both downstream ports: listed provider side first, then client side', () => {
    const t = lab({ downstreamAcs: ['RR', 'CR'] });
    const r = new P2pdma(t).decide(pci(t, 'A'), pci(t, 'B'));
    expect(r.acsRedirect.map((d) => d.name)).toEqual(['dp0', 'dp1']);
    expect(r.messages[1]!.text).toBe('to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:02:00.0;0000:02:01.0');
  });

  it('pci=disable_acs_redir= clears RR/CR/EC at boot and the path is BUS_ADDR again', () => {
    const t = lab({ downstreamAcs: ['SV', 'RR', 'CR', 'UF'], disableAcsRedir: '0000:02:00.0;02:01.0' });
    expect(pci(t, 'dp0').acsCtrl).toBe(0x11);
    expect(new P2pdma(t).decide(pci(t, 'A'), pci(t, 'B')).mapType).toBe('BUS_ADDR');
  });

  it('ACS redirect on the provider function itself counts, even for the same function', () => {
    const t = new TopologyBuilder()
      .hostBridge('hb0', { hostDevice: { vendor: 0x8086, device: 0x2020 }, rootPorts: [{ name: 'rp0' }] })
      .endpoint('X', { parent: 'rp0', vendor: 0x1, device: 0x2, functions: [{ acs: ['RR'] }, { function: 1 }] })
      .build();
    const r = new P2pdma(t).decide(pci(t, 'X'), pci(t, 'X'));
    expect([r.mapType, r.distance]).toEqual(['THRU_HOST_BRIDGE', 0]);
  });

  describe('different root ports, each whitelist entry', () => {
    for (const e of P2PDMA_WHITELIST) {
      const id = e.device === PCI_ANY_ID ? 0x4242 : e.device;
      it(`${e.vendor.toString(16)}:${id.toString(16)} (${e.comment}): THRU_HOST_BRIDGE, distance 4`, () => {
        const t = lab({ host: { vendor: e.vendor, device: id } });
        const p = new P2pdma(t);
        const r = p.distance(pci(t, 'D'), [pci(t, 'E')], { verbose: true });
        expect(r.distance).toBe(4);
        expect(r.clients[0]!.mapType).toBe('THRU_HOST_BRIDGE');
        expect(r.clients[0]!.commonUpstream).toBeNull();
        expect(p.log).toEqual([]);
      });
    }
  });

  it('different root ports, not whitelisted: -1 with the vendor:device in the log', () => {
    const t = lab({ host: { vendor: 0x1022, device: 0x1480 } });
    const p = new P2pdma(t);
    expect(p.distanceMany(pci(t, 'D'), [pci(t, 'E')], true)).toBe(-1);
    expect(lines(p)).toEqual([
      'pci 0000:00:00.0: Host bridge not in P2PDMA whitelist: 1022:1480',
      'pci 0000:07:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:06:00.0) do not share an upstream bridge or whitelisted host bridge',
    ]);
  });

  it('no common upstream: distance counts both full chains (6 from below a switch)', () => {
    const t = lab();
    expect(new P2pdma(t).decide(pci(t, 'A'), pci(t, 'D')).distance).toBe(6);
  });

  describe('two host bridges', () => {
    const twoHb = (h0: { vendor: number; device: number }, h1: { vendor: number; device: number }) =>
      new TopologyBuilder()
        .hostBridge('hb0', { hostDevice: h0, rootPorts: [{ name: 'rp0' }] })
        .hostBridge('hb1', { hostDevice: h1, rootPorts: [{ name: 'rp1' }] })
        .endpoint('P', { parent: 'rp0', vendor: 1, device: 1 })
        .endpoint('Q', { parent: 'rp1', vendor: 1, device: 1 })
        .build();

    for (const e of P2PDMA_WHITELIST.filter((x) => x.flags & REQ_SAME_HOST_BRIDGE)) {
      it(`REQ_SAME_HOST_BRIDGE ${e.device.toString(16)} across two host bridges: NOT_SUPPORTED, no whitelist warning`, () => {
        const t = twoHb({ vendor: e.vendor, device: e.device }, { vendor: e.vendor, device: e.device });
        expect(pci(t, 'Q').bdf).toBe('0000:03:00.0');
        const p = new P2pdma(t);
        const r = p.distance(pci(t, 'P'), pci(t, 'Q'), { verbose: true });
        expect(r.distance).toBe(-1);
        expect(r.clients[0]!.distance).toBe(4);
        expect(lines(p)).toEqual([
          'pci 0000:03:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:01:00.0) do not share an upstream bridge or whitelisted host bridge',
        ]);
      });
    }

    it('REQ_SAME_HOST_BRIDGE entry within one host bridge is fine', () => {
      const t = lab({ host: { vendor: 0x8086, device: 0x3c00 } });
      expect(new P2pdma(t).decide(pci(t, 'D'), pci(t, 'E')).mapType).toBe('THRU_HOST_BRIDGE');
    });

    it('two whitelisted host bridges without the flag: THRU_HOST_BRIDGE', () => {
      const t = twoHb({ vendor: 0x8086, device: 0x2020 }, { vendor: 0x10de, device: 0x2f96 });
      expect(new P2pdma(t).decide(pci(t, 'P'), pci(t, 'Q')).mapType).toBe('THRU_HOST_BRIDGE');
    });

    it('the second host bridge is not checked (nor logged) when the first fails', () => {
      const t = twoHb(NO_WL, { vendor: 0xabcd, device: 0x1 });
      const r = new P2pdma(t).decide(pci(t, 'P'), pci(t, 'Q'));
      expect(r.messages.map((m) => m.line)).toEqual([
        'pci 0000:00:00.0: Host bridge not in P2PDMA whitelist: 1234:5678',
        'pci 0000:03:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:01:00.0) do not share an upstream bridge or whitelisted host bridge',
      ]);
    });

    it('whitelisted provider side, unknown client side: warns for the client host bridge', () => {
      const t = twoHb({ vendor: 0x8086, device: 0x2020 }, NO_WL);
      const r = new P2pdma(t).decide(pci(t, 'P'), pci(t, 'Q'));
      expect(r.mapType).toBe('NOT_SUPPORTED');
      expect(r.messages[0]!.line).toBe('pci 0000:02:00.0: Host bridge not in P2PDMA whitelist: 1234:5678');
    });
  });

  describe('the first device on the root bus', () => {
    it('neither 00.0 nor a root port: not whitelisted even with a whitelisted ID, and nothing logged about it', () => {
      const t = new TopologyBuilder()
        .hostBridge('hb0', {
          hostDevice: { vendor: 0x8086, device: 0x2020, slot: 3 },
          rootPorts: [{ name: 'rp0', slot: 4 }, { name: 'rp1', slot: 5 }],
        })
        .endpoint('P', { parent: 'rp0', vendor: 1, device: 1 })
        .endpoint('Q', { parent: 'rp1', vendor: 1, device: 1 })
        .build();
      expect(t.hostBridges[0]!.rootBus.devices[0]!.bdf).toBe('0000:00:03.0');
      const r = new P2pdma(t).decide(pci(t, 'P'), pci(t, 'Q'));
      expect(r.mapType).toBe('NOT_SUPPORTED');
      expect(r.messages.map((m) => m.text)).toEqual([
        'cannot be used for peer-to-peer DMA as the client and provider (0000:01:00.0) do not share an upstream bridge or whitelisted host bridge',
      ]);
      expect(r.reason).toContain('neither 00.0 nor a root port');
    });

    it('an RCiEP first on the root bus (not at 00.0) hides the host device', () => {
      const t = new TopologyBuilder()
        .hostBridge('hb0', { hostDevice: { vendor: 0x8086, device: 0x2020, slot: 2 }, rootPorts: [{ name: 'rp0', slot: 3 }, { name: 'rp1', slot: 4 }] })
        .endpoint('rciep', { parent: 'hb0', slot: 1, vendor: 0x8086, device: 0x0b25 })
        .endpoint('P', { parent: 'rp0', vendor: 1, device: 1 })
        .endpoint('Q', { parent: 'rp1', vendor: 1, device: 1 })
        .build();
      expect(pci(t, 'rciep').bdf).toBe('0000:00:01.0');
      expect(new P2pdma(t).decide(pci(t, 'P'), pci(t, 'Q')).mapType).toBe('NOT_SUPPORTED');
    });

    it('no 00.0 device but a root port first (Skylake): the root port ID is looked up', () => {
      const t = new TopologyBuilder()
        .hostBridge('hb0', { rootPorts: [{ name: 'rp0', vendor: 0x8086, device: 0x2030 }, { name: 'rp1' }] })
        .endpoint('P', { parent: 'rp0', vendor: 1, device: 1 })
        .endpoint('Q', { parent: 'rp1', vendor: 1, device: 1 })
        .build();
      expect(pci(t, 'rp0').bdf).toBe('0000:00:01.0');
      expect(new P2pdma(t).decide(pci(t, 'P'), pci(t, 'Q')).mapType).toBe('THRU_HOST_BRIDGE');
    });
  });

  describe('AMD Zen', () => {
    it('family 0x17 crosses a non-whitelisted host bridge, without consulting the whitelist', () => {
      const t = lab({ cpu: ['amd', 0x17], host: { vendor: 0x1022, device: 0x1450 } });
      const p = new P2pdma(t);
      const r = p.distance(pci(t, 'D'), pci(t, 'E'), { verbose: true });
      expect([r.distance, r.clients[0]!.mapType, r.clients[0]!.hostBridge]).toEqual([4, 'THRU_HOST_BRIDGE', 'amd-zen']);
      expect(p.log).toEqual([]);
    });

    it('still warns about ACS redirect', () => {
      const t = lab({ cpu: ['amd', 0x19], host: NO_WL, upstreamAcs: ['RR'] });
      const r = new P2pdma(t).decide(pci(t, 'A'), pci(t, 'B'));
      expect(r.mapType).toBe('THRU_HOST_BRIDGE');
      expect(r.messages).toHaveLength(2);
    });

    it('family 0x16 and Hygon 0x18 do not qualify', () => {
      for (const cpu of [['amd', 0x16], ['hygon', 0x18]] as const) {
        const t = lab({ cpu: [cpu[0], cpu[1]], host: NO_WL });
        expect(new P2pdma(t).decide(pci(t, 'D'), pci(t, 'E')).mapType).toBe('NOT_SUPPORTED');
      }
    });
  });

  it('RCiEP functions on a root bus share no upstream bridge: through the host bridge', () => {
    const t = new TopologyBuilder()
      .hostBridge('hb0', { hostDevice: { vendor: 0x8086, device: 0x2020 } })
      .endpoint('acc', { parent: 'hb0', vendor: 0x8086, device: 0x4940, functions: [{}, { function: 1 }] })
      .build();
    const r = new P2pdma(t).decide(pci(t, 'acc'), pci(t, 'acc.1'));
    expect([r.mapType, r.distance]).toEqual(['THRU_HOST_BRIDGE', 2]);
  });
});

describe('pci_p2pdma_distance_many', () => {
  it('no clients: -1', () => {
    const t = lab();
    expect(new P2pdma(t).distanceMany(pci(t, 'A'), [])).toBe(-1);
  });

  it('sums the distances', () => {
    const t = lab();
    expect(new P2pdma(t).distanceMany(pci(t, 'A'), [pci(t, 'A'), pci(t, 'A.1'), pci(t, 'B'), pci(t, 'D')])).toBe(0 + 2 + 4 + 6);
  });

  it('a non-PCI client with no PCI parent: -1 at once, logged on the platform device', () => {
    const t = lab();
    const p = new P2pdma(t);
    const r = p.distance(pci(t, 'A'), [t.get('B'), t.get('dsp'), t.get('C')], { verbose: true });
    expect(r.distance).toBe(-1);
    expect(r.clients.map((c) => c.client.name)).toEqual(['B', 'dsp']);
    expect(lines(p)).toEqual(['platform dsp: cannot be used for peer-to-peer DMA as it is not a PCI device']);
  });

  it('a platform device with a PCI parent is judged as that parent', () => {
    const t = lab();
    const r = new P2pdma(t).distance(pci(t, 'A'), [t.get('aux')]);
    expect(r.distance).toBe(4);
    expect(r.clients[0]!.pciClient?.name).toBe('B');
  });

  it('several clients, one unreachable: non-verbose stops at it, verbose evaluates all', () => {
    const t = lab({ host: NO_WL });
    const p = new P2pdma(t);
    const quiet = p.distance(pci(t, 'A'), [pci(t, 'B'), pci(t, 'D'), pci(t, 'C')]);
    expect(quiet.distance).toBe(-1);
    expect(quiet.clients.map((c) => [c.client.name, c.mapType])).toEqual([['B', 'BUS_ADDR'], ['D', 'NOT_SUPPORTED']]);
    expect(p.log).toEqual([]);
    const loud = p.distance(pci(t, 'A'), [pci(t, 'B'), pci(t, 'D'), pci(t, 'C')], { verbose: true });
    expect(loud.distance).toBe(-1);
    expect(loud.clients.map((c) => [c.client.name, c.mapType])).toEqual([['B', 'BUS_ADDR'], ['D', 'NOT_SUPPORTED'], ['C', 'BUS_ADDR']]);
    expect(loud.log.map((l) => l.device)).toEqual(['0000:00:00.0', '0000:06:00.0']);
  });

  it('a driver name replaces the bus name in the log prefix', () => {
    const t = lab({ host: NO_WL });
    pci(t, 'D').driver = 'mlx5_core';
    const p = new P2pdma(t);
    p.distance(pci(t, 'A'), pci(t, 'D'), { verbose: true });
    expect(p.log[1]!.line.startsWith('mlx5_core 0000:06:00.0: cannot be used')).toBe(true);
  });

  it('a non-PCI provider is a misuse: EINVAL', () => {
    const t = lab();
    expect(() => new P2pdma(t).distance(t.get('dsp'), [pci(t, 'A')])).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe('pci_p2pdma_map_type and the per-provider cache', () => {
  it('NOT_SUPPORTED while the provider has no P2PDMA state, whatever the topology', () => {
    const t = lab();
    const p = new P2pdma(t);
    expect(p.mapTypeInfo(pci(t, 'A'), pci(t, 'B'))).toMatchObject({ mapType: 'NOT_SUPPORTED', source: 'no-p2pdma-state' });
    // distance works without state and caches nothing
    expect(p.distanceMany(pci(t, 'A'), [pci(t, 'B')])).toBe(4);
    p.init(pci(t, 'A'));
    expect(p.cachedMapType(pci(t, 'A'), pci(t, 'B'))).toBe('UNKNOWN');
    expect(p.mapTypeInfo(pci(t, 'A'), pci(t, 'B'))).toMatchObject({ mapType: 'BUS_ADDR', source: 'computed' });
    expect(p.mapTypeInfo(pci(t, 'A'), pci(t, 'B'))).toMatchObject({ mapType: 'BUS_ADDR', source: 'cache' });
  });

  it('a non-PCI client is NOT_SUPPORTED even when its parent is PCI (no parent walk here)', () => {
    const t = lab();
    const p = new P2pdma(t);
    p.init(pci(t, 'A'));
    expect(p.mapType(pci(t, 'A'), t.get('aux'))).toBe('NOT_SUPPORTED');
  });

  it('computes verbosely on a cache miss, and keeps the cached type after ACS changes', () => {
    const t = lab({ host: NO_WL, downstreamAcs: [] });
    const p = new P2pdma(t);
    p.init(pci(t, 'A'));
    p.distance(pci(t, 'A'), [pci(t, 'B')]); // non-verbose, caches BUS_ADDR
    expect(p.cachedMapType(pci(t, 'A'), pci(t, 'B'))).toBe('BUS_ADDR');
    pci(t, 'dp1').setAcsCtrl(['RR']);
    expect(p.decide(pci(t, 'A'), pci(t, 'B')).mapType).toBe('NOT_SUPPORTED');
    expect(p.mapType(pci(t, 'A'), pci(t, 'B'))).toBe('BUS_ADDR'); // stale, as in the kernel
    expect(p.mapType(pci(t, 'A'), pci(t, 'C'))).toBe('BUS_ADDR');
    expect(p.mapType(pci(t, 'A'), pci(t, 'D'))).toBe('NOT_SUPPORTED');
    expect(lines(p)).toHaveLength(2); // the D computation was verbose
  });

  it('the cache key is (segment << 16) | devid: same BDF in another segment is another entry', () => {
    const t = new TopologyBuilder()
      .cpu('amd', 0x19)
      .hostBridge('hb0', { segment: 0, hostDevice: NO_WL, rootPorts: [{ name: 'rp0' }] })
      .hostBridge('hb1', { segment: 1, hostDevice: NO_WL, rootPorts: [{ name: 'rp1' }] })
      .switch('sw', { parent: 'rp0', downstream: 2 })
      .endpoint('P', { parent: 'sw.dp0', vendor: 1, device: 1 })
      .endpoint('Q', { parent: 'sw.dp1', vendor: 1, device: 1 })
      .endpoint('R', { parent: 'rp1', vendor: 1, device: 1 })
      .build();
    expect([pci(t, 'rp1').bdf, pci(t, 'R').bdf]).toEqual(['0001:00:01.0', '0001:01:00.0']);
    expect(pci(t, 'sw.up').bdf).toBe('0000:01:00.0');
    const p = new P2pdma(t);
    p.init(pci(t, 'P'));
    expect(p.mapType(pci(t, 'P'), pci(t, 'sw.up'))).toBe('BUS_ADDR');
    expect(p.mapType(pci(t, 'P'), pci(t, 'R'))).toBe('THRU_HOST_BRIDGE');
  });

  it('EINVAL when writing ACS on a function without the capability', () => {
    const t = lab();
    expect(() => pci(t, 'A').setAcsCtrl(['RR'])).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe('the disable_acs_redir suggestion', () => {
  it('is cut at 127 characters when the 128-byte buffer overflows, keeping the list order', () => {
    const b = new TopologyBuilder().hostBridge('hb0', { hostDevice: { vendor: 0x8086, device: 0x2020 }, rootPorts: [{ name: 'rp0' }] });
    let parent = 'rp0';
    for (let i = 1; i <= 5; i++) {
      b.switch(`sw${i}`, { parent, upstream: { acs: ['RR'] }, downstream: [{ name: `sw${i}.dp0`, acs: ['RR'] }, { name: `sw${i}.dp1`, acs: ['RR'] }] });
      parent = `sw${i}.dp0`;
    }
    b.endpoint('P', { parent: 'sw5.dp0', vendor: 1, device: 1 });
    b.endpoint('Q', { parent: 'sw1.dp1', vendor: 1, device: 1 });
    const t = b.build();
    const r = new P2pdma(t).decide(pci(t, 'P'), pci(t, 'Q'));
    expect(r.acsRedirect.map((d) => d.name)).toEqual([
      'sw5.dp0', 'sw5.up', 'sw4.dp0', 'sw4.up', 'sw3.dp0', 'sw3.up', 'sw2.dp0', 'sw2.up', 'sw1.dp0', 'sw1.up', 'sw1.dp1',
    ]);
    const full = r.acsRedirect.map((d) => `${d.bdf};`).join('');
    const text = r.messages[1]!.text;
    const list = text.slice(text.indexOf('=disable_acs_redir=') + '=disable_acs_redir='.length);
    expect(list).toBe(full.slice(0, 127));
    expect(r.distance).toBe(12);
    expect(r.mapType).toBe('THRU_HOST_BRIDGE');
  });

  it('drops the final semicolon when it fits', () => {
    const t = lab({ upstreamAcs: ['RR'], downstreamAcs: ['CR'] });
    const r = new P2pdma(t).decide(pci(t, 'A'), pci(t, 'B'));
    expect(r.messages[1]!.text.endsWith('pci=disable_acs_redir=0000:02:00.0;0000:01:00.0;0000:02:01.0')).toBe(true);
  });
});
