import { describe, expect, it } from 'vitest';
import { isPciP2pdmaPage, P2pdma, type Topology, TopologyBuilder } from '../../src/pci/index.js';

const M = 1n << 20n;
const OFF = 0x1000_0000_0000n;

function rig(): { t: Topology; p: P2pdma } {
  const t = new TopologyBuilder()
    .hostBridge('hb0', { hostDevice: { vendor: 0x8086, device: 0x2020 }, busOffset: OFF, rootPorts: [{ name: 'rp0' }, { name: 'rp1' }, { name: 'rp2' }] })
    .switch('sw', { parent: 'rp0', downstream: 2 })
    .endpoint('G', {
      parent: 'sw.dp0', vendor: 0x1da3, device: 0x1020,
      bars: [{ index: 0, size: '64M', prefetchable: true }, { index: 2, type: 'io', size: 64 }, { index: 3, size: '1M' }],
    })
    .endpoint('N', { parent: 'sw.dp1', vendor: 0x15b3, device: 0x101b, bars: [{ size: '32M', prefetchable: true }] })
    .endpoint('V', { parent: 'rp1', vendor: 0x1af4, device: 0x1041, nonMappableBars: true, bars: [{ size: '4M', is64: true }] })
    .endpoint('H', { parent: 'rp2', vendor: 0x10de, device: 0x2330, bars: [{ size: '64M', prefetchable: true }] })
    .build();
  return { t, p: new P2pdma(t) };
}

const err = (code: string) => expect.objectContaining({ code });

describe('pci_p2pdma_add_resource', () => {
  it('registers the whole BAR with size 0, logs it, and shows it in sysfs', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    expect(p.sysfs(g)).toBeNull();
    const m = p.addResource(g, 0);
    const bar = g.bar(0)!;
    expect([m.start, m.end, m.busStart]).toEqual([bar.cpuAddress, bar.cpuAddress + 64n * M - 1n, bar.cpuAddress + OFF]);
    expect(p.dmesg()).toBe(`pci 0000:03:00.0: added peer-to-peer DMA memory 0x${bar.cpuAddress.toString(16)}-0x${(bar.cpuAddress + 64n * M - 1n).toString(16)}`);
    expect(p.sysfs(g)).toEqual({ size: 64n * M, available: 64n * M, published: false });
    expect(p.readSysfs(g, 'size')).toBe('67108864\n');
    expect(p.readSysfs(g, 'published')).toBe('0\n');
    p.publish(g);
    expect(p.readSysfs(g, 'published')).toBe('1\n');
  });

  it('EINVAL: an I/O BAR, an unimplemented BAR, the upper half of a 64-bit BAR; nothing changes', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    for (const bar of [2, 1, 4, 6]) expect(() => p.addResource(g, bar)).toThrow(err('EINVAL'));
    expect(p.state(g)).toBeUndefined();
    expect(() => p.readSysfs(g, 'size')).toThrow(err('ENOENT'));
  });

  it('EINVAL: offset at or past the BAR length, size + offset past it; nothing changes', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    expect(() => p.addResource(g, 0, 0n, 64n * M)).toThrow(/offset 0x4000000 is not below the BAR 0 length 0x4000000/);
    expect(() => p.addResource(g, 0, 32n * M, 34n * M)).toThrow(err('EINVAL'));
    expect(() => p.addResource(g, 0, 65n * M)).toThrow(err('EINVAL'));
    expect(p.state(g)).toBeUndefined();
  });

  it('EOPNOTSUPP for a device with non-mappable BARs (pcim_p2pdma_init)', () => {
    const { t, p } = rig();
    expect(() => p.addResource(t.pci('V'), 0)).toThrow(err('EOPNOTSUPP'));
    expect(p.state(t.pci('V'))).toBeUndefined();
  });

  it('EINVAL for a range not aligned to the 2 MiB hot-add subsection; state and empty pool stay (as devm leaves them)', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    expect(() => p.addResource(g, 3)).toThrow(/not aligned to the 0x200000-byte memory hot-add subsection/); // a 1 MiB BAR
    expect(() => p.addResource(g, 0, 2n * M, 1n * M)).toThrow(err('EINVAL'));
    expect(p.sysfs(g)).toEqual({ size: 0n, available: 0n, published: false });
    // a smaller subsection (e.g. another architecture) accepts it
    const p2 = new P2pdma(t, { subsectionSize: 4096n });
    expect(p2.addResource(g, 3).start).toBe(g.bar(3)!.cpuAddress);
    expect(p2.addResource(g, 0, 2n * M, 1n * M).start).toBe(g.bar(0)!.cpuAddress + M);
    expect(p2.sysfs(g)!.size).toBe(3n * M);
  });

  it('ENOMEM when the first or last page is already registered; EEXIST when a range covers another', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    p.addResource(g, 0, 4n * M, 8n * M); // [8M, 12M)
    expect(() => p.addResource(g, 0, 4n * M, 8n * M)).toThrow(err('ENOMEM'));
    expect(() => p.addResource(g, 0, 4n * M, 10n * M)).toThrow(err('ENOMEM'));
    expect(() => p.addResource(g, 0, 4n * M, 6n * M)).toThrow(err('ENOMEM'));
    expect(() => p.addResource(g, 0, 16n * M, 4n * M)).toThrow(err('EEXIST'));
    expect(p.log.filter((l) => l.text.includes('Conflicting mapping'))).toHaveLength(3);
    expect(p.sysfs(g)!.size).toBe(4n * M);
    p.addResource(g, 0, 8n * M, 0n); // [0, 8M) is still free
    expect(p.sysfs(g)!.size).toBe(12n * M);
  });

  it('EINVAL beyond MAX_PHYSMEM_BITS', () => {
    const { t } = rig();
    const p = new P2pdma(t, { maxPhysmemBits: 36 }); // BARs sit at 256 GiB and up
    expect(() => p.addResource(t.pci('G'), 0)).toThrow(/maximum addressable range/);
  });
});

describe('P2P memory from the genpool', () => {
  it('allocates page-rounded first-fit pieces with bus addresses, and frees them', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    expect(p.alloc(g, 4096n)).toBeNull(); // no pool yet
    p.addResource(g, 0);
    const base = g.bar(0)!.cpuAddress;
    const a = p.alloc(g, 100n)!;
    const b = p.alloc(g, 8192n)!;
    expect([a.cpuAddress, a.busAddress, b.cpuAddress]).toEqual([base, base + OFF, base + 4096n]);
    expect(p.virtToBus(g, b.cpuAddress + 5n)).toBe(b.busAddress + 5n);
    expect(p.readSysfs(g, 'available')).toBe(`${64n * M - 3n * 4096n}\n`);
    p.free(g, a.cpuAddress, a.size);
    expect(p.alloc(g, 4096n)!.cpuAddress).toBe(base); // first fit reuses the hole
    expect(() => p.free(g, base + 32n * M, 4096n)).toThrow(err('EINVAL')); // never allocated
    expect(p.alloc(g, 0n)).toBeNull();
    expect(p.alloc(g, 65n * M)).toBeNull();
    expect(p.alloc(g, 64n * M - 3n * 4096n)).not.toBeNull();
    expect(p.sysfs(g)!.available).toBe(0n);
  });

  it('searches the newest range first, as gen_pool_add puts chunks at the head', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    p.addResource(g, 0, 2n * M, 0n);
    p.addResource(g, 0, 2n * M, 4n * M);
    expect(p.alloc(g, 4096n)!.cpuAddress).toBe(g.bar(0)!.cpuAddress + 4n * M);
  });

  it('ZONE_DEVICE pages carry their provider and both addresses; RAM is not P2P', () => {
    const { t, p } = rig();
    const g = t.pci('G');
    p.addResource(g, 0);
    const a = p.alloc(g, 3n * 4096n)!;
    const pages = [...p.pagesOf(a)];
    expect(pages).toHaveLength(3);
    expect(pages.every(isPciP2pdmaPage)).toBe(true);
    expect(pages[1]).toMatchObject({ zone: 'ZONE_DEVICE', pgmapType: 'MEMORY_DEVICE_PCI_P2PDMA', refcount: 0 });
    expect(pages[1]!.provider).toBe(g);
    expect(pages[1]!.physAddress).toBe(a.cpuAddress + 4096n);
    expect(pages[1]!.busAddress).toBe(a.busAddress + 4096n);
    expect(p.pageAt(a.cpuAddress + 4096n)).toBe(pages[1]); // one struct page per pfn
    expect(p.pageAt(0x1000n)).toBeNull();
    pages[0]!.get();
    pages[0]!.put();
    expect(() => pages[0]!.put()).toThrow(err('EINVAL'));
    expect(p.busAddressOf(g, a.cpuAddress)).toBe(a.busAddress);
  });

  it('find_many picks the closest published provider', () => {
    const { t, p } = rig();
    for (const n of ['G', 'H']) p.addResource(t.pci(n), 0);
    expect(p.findMany([t.pci('N')])).toBeNull(); // nothing published
    p.publish(t.pci('G'));
    p.publish(t.pci('H'));
    expect(p.findMany([t.pci('N')])).toBe(t.pci('G')); // 4 versus 6
    expect(p.findMany([t.pci('H')])).toBe(t.pci('H')); // distance 0 wins
    p.publish(t.pci('H'), false);
    expect(p.hasP2pmem(t.pci('H'))).toBe(false);
  });
});
