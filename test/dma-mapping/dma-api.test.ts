import { describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/index.js';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_NONE, DMA_TO_DEVICE, DmaDevice, IOVA_MSI_WINDOW,
  IommuDmaCookie, ScatterList, Swiotlb, dmaBitMask, p2pResolverFrom, type P2pResolver,
} from '../../src/dma-mapping/index.js';
import { SgTable } from '../../src/dma-buf/sg-table.js';
import { pattern } from '../helpers/sim.js';
import { expectErrno } from '../core/helpers/setup.js';

const RAM = 0x8000_0000n;
const HBM = 0x40_0000_0000n;
const LOW = 0x1000_0000n;
const RID = 0x0300; // 00:03:00.0 -> bus 3, devfn 0
const RID2 = 0x0400;

async function sim(arena = 64 << 20, ramSize = 1n << 30n): Promise<Simulator> {
  const s = await createSimulator({ arenaBytes: arena });
  // RAM first: allocFrames takes from the first region with room, so buffers sit above 2 GiB.
  s.memory.addRegion({ base: RAM, size: ramSize, kind: 'ram', name: 'ram' });
  s.memory.addRegion({ base: LOW, size: 64n << 20n, kind: 'ram', name: 'low' });
  s.memory.addRegion({ base: HBM, size: 1n << 30n, kind: 'device', name: 'hbm', owner: 1 });
  return s;
}

function vtd(s: Simulator, strict = true) {
  const unit = s.iommu.createUnit({ family: 'vtd' });
  const domain = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48, strict });
  return { unit, domain };
}

const expectErr = expectErrno;

describe('single mappings through the IOMMU', () => {
  it('mapPage gives the top IOVA below 4 GiB, keeps the offset, and translates to the page', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(64) });
    expect(s.iommu.domainOf(RID)).toBe(domain.id);
    const pa = s.memory.allocFrames(4);
    const a = dev.mapPage(pa + 0x123n, 100, DMA_BIDIRECTIONAL);
    expect(a).toBe(0xffff_f123n);
    expect(dev.mappingError(a)).toBe(0);
    // Crosses a page: 2 pages of IOVA whose first PFN is even (size-aligned), under a's page.
    const b = dev.mapPage(pa + 0xf00n, 0x200, DMA_TO_DEVICE);
    expect(b).toBe(0xffff_cf00n);
    const t = s.iommu.translate(RID, b + 0x180n, 'read');
    expect(t).toMatchObject({ ok: true, pa: pa + 0x1080n });
    // TO_DEVICE is read-only for the device.
    expect(s.iommu.translate(RID, b, 'write')).toMatchObject({ ok: false, reason: 'permission' });
    expect(domain.mappedBytes).toBe(0x3000n);
    dev.unmapPage(b, 0x200, DMA_TO_DEVICE);
    dev.unmapPage(a, 100, DMA_BIDIRECTIONAL);
    expect(domain.mappedBytes).toBe(0n);
    expect(s.iommu.translate(RID, a, 'read')).toMatchObject({ ok: false, reason: 'translation' });
    expect(dev.stats()).toEqual({ singles: 0, sgLists: 0, iovaStates: 0, mapErrors: 0 });
  });

  it('bytes move through a mapPage address', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain });
    const pa = s.memory.allocFrames(2);
    const a = dev.mapPage(pa + 0x10n, 0x1800, DMA_FROM_DEVICE);
    const data = pattern(0x1800, 7);
    expect(s.dma.write({ rid: RID, addr: a }, data).ok).toBe(true);
    expect(s.memory.read(pa + 0x10n, 0x1800)).toEqual(data);
    dev.unmapPage(a, 0x1800, DMA_FROM_DEVICE);
  });

  it('no IOVA space below the mask -> DMA_MAPPING_ERROR, mappingError -ENOMEM, nothing mapped', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(13) });
    const pa = s.memory.allocFrames(1);
    const a = dev.mapPage(pa, 4096, DMA_BIDIRECTIONAL);
    expect(a).toBe(0x1000n); // the only page: PFN 0 is never handed out
    const b = dev.mapPage(pa, 4096, DMA_BIDIRECTIONAL);
    expect(b).toBe(DMA_MAPPING_ERROR);
    expect(dev.mappingError(b)).toBe(-12);
    expect(dev.stats().mapErrors).toBe(1);
    expect(domain.mappedBytes).toBe(0x1000n);
  });

  it('misuse: DMA_NONE, never mapped, wrong size / direction / type, double unmap -> EINVAL', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain });
    const pa = s.memory.allocFrames(1);
    expectErr(() => dev.mapPage(pa, 4096, DMA_NONE), 'EINVAL');
    expectErr(() => dev.mapPage(pa, 4096, 7), 'EINVAL');
    expectErr(() => dev.mapPage(pa, 0, DMA_TO_DEVICE), 'EINVAL');
    expectErr(() => dev.unmapPage(0xdead_0000n, 4096, DMA_TO_DEVICE), 'EINVAL');
    const a = dev.mapPage(pa, 4096, DMA_TO_DEVICE);
    expectErr(() => dev.unmapPage(a, 4096, DMA_FROM_DEVICE), 'EINVAL');
    expectErr(() => dev.unmapPage(a, 2048, DMA_TO_DEVICE), 'EINVAL');
    expectErr(() => dev.unmapPage(a, 4096, DMA_NONE), 'EINVAL');
    expectErr(() => dev.unmapResource(a, 4096, DMA_TO_DEVICE), 'EINVAL');
    expect(domain.mappedBytes).toBe(0x1000n); // the failed unmaps changed nothing
    dev.unmapPage(a, 4096, DMA_TO_DEVICE);
    expectErr(() => dev.unmapPage(a, 4096, DMA_TO_DEVICE), 'EINVAL');
    const sg = ScatterList.fromPages([pa]);
    expectErr(() => dev.unmapSg(sg, DMA_TO_DEVICE), 'EINVAL');
    expect(dev.mapSg(sg, DMA_TO_DEVICE)).toBe(1);
    expectErr(() => dev.unmapSg(sg, DMA_FROM_DEVICE), 'EINVAL');
    expectErr(() => dev.mapSg(sg, DMA_TO_DEVICE), 'EBUSY');
    const other = new DmaDevice(s, { rid: RID2, domain });
    expectErr(() => other.unmapSg(sg, DMA_TO_DEVICE), 'EINVAL');
    dev.unmapSg(sg, DMA_TO_DEVICE);
    expectErr(() => dev.unmapSg(sg, DMA_TO_DEVICE), 'EINVAL');
  });

  it('mapResource maps MMIO (HBM behind a BAR) and the device reaches it', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain });
    const a = dev.mapResource(HBM + 0x2100n, 0x3000, DMA_BIDIRECTIONAL);
    expect(a).toBe(0xffff_c100n); // 4 pages (offset 0x100), 4-page aligned, under 0x1_0000_0000
    const data = pattern(0x3000, 3);
    expect(s.dma.write({ rid: RID, addr: a }, data).ok).toBe(true);
    expect(s.memory.read(HBM + 0x2100n, 0x3000)).toEqual(data);
    expect(domain.walk(a).perm! & 0x3).toBe(0x3);
    expectErr(() => dev.unmapPage(a, 0x3000, DMA_BIDIRECTIONAL), 'EINVAL'); // resource, not page
    dev.unmapResource(a, 0x3000, DMA_BIDIRECTIONAL);
    expect(domain.mappedBytes).toBe(0n);
  });

  it('direct mapResource is the physical address, refused past the mask', async () => {
    const s = await sim();
    const dev = new DmaDevice(s, { rid: RID, domain: 'direct', dmaMask: dmaBitMask(32) });
    expect(dev.mapResource(HBM, 4096, DMA_BIDIRECTIONAL)).toBe(DMA_MAPPING_ERROR);
    dev.setMask(dmaBitMask(40));
    expect(dev.mapResource(HBM + 8n, 4096, DMA_BIDIRECTIONAL)).toBe(HBM + 8n);
    dev.unmapResource(HBM + 8n, 4096, DMA_BIDIRECTIONAL);
    expectErr(() => dev.setMask(0xffffn), 'EIO');
  });
});

describe('IOVA allocator integration', () => {
  it('no overlaps, never in the MSI window, freed IOVAs reused (strict)', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(64) });
    const cookie = dev.cookie!;
    const pa = s.memory.allocFrames(64);
    const maps: { a: bigint; size: number }[] = [];
    for (let i = 0; i < 200; i++) {
      const size = 1 + ((i * 7919) % 40000);
      const a = dev.mapPage(pa + BigInt((i * 97) % 4096), size, DMA_BIDIRECTIONAL);
      expect(a).not.toBe(DMA_MAPPING_ERROR);
      maps.push({ a, size });
    }
    cookie.iovad.checkInvariants();
    const ranges = [...cookie.iovad.ranges()];
    const msi = ranges.filter((r) => r.reserved);
    expect(msi).toEqual([{ pfnLo: 0xfee00, pfnHi: 0xfeeff, size: 256, reserved: true }]);
    let prevHi = -1;
    for (const r of ranges) {
      expect(r.pfnLo).toBeGreaterThan(prevHi);
      prevHi = r.pfnHi;
    }
    for (const m of maps) {
      const end = m.a + BigInt(m.size) - 1n;
      expect(end < IOVA_MSI_WINDOW.start || m.a > IOVA_MSI_WINDOW.end).toBe(true);
    }
    // Free one in the middle, map the same size: the same IOVA comes back.
    const victim = maps[100]!;
    dev.unmapPage(victim.a, victim.size, DMA_BIDIRECTIONAL);
    const again = dev.mapPage(pa + (victim.a & 4095n), victim.size, DMA_BIDIRECTIONAL);
    expect(again).toBe(victim.a);
  });

  it('lazy domain: unmapped IOVAs are not reused until the unit is flushed', async () => {
    const s = await sim();
    const { unit, domain } = vtd(s, false);
    const dev = new DmaDevice(s, { rid: RID, domain });
    const pa = s.memory.allocFrames(1);
    const a = dev.mapPage(pa, 4096, DMA_BIDIRECTIONAL);
    expect(a).toBe(0xffff_f000n);
    dev.unmapPage(a, 4096, DMA_BIDIRECTIONAL);
    expect(dev.cookie!.deferredCount).toBe(1);
    const b = dev.mapPage(pa, 4096, DMA_BIDIRECTIONAL);
    expect(b).toBe(0xffff_e000n); // not a: its IOTLB entry may still be live
    expect(unit.flush()).toBe(1);
    const c = dev.mapPage(pa, 4096, DMA_BIDIRECTIONAL);
    expect(c).toBe(0xffff_f000n);
    expect(dev.cookie!.deferredCount).toBe(0);
  });

  it('SMMU domains reserve no MSI window; PCI windows are reserved when given', async () => {
    const s = await sim();
    const unit = s.iommu.createUnit({ family: 'smmuv3' });
    const domain = unit.createDomain({ type: 'paging', format: 'arm-lpae-s1', ias: 48, oas: 48 });
    const cookie = IommuDmaCookie.of(s.core, domain, { pciWindows: [{ start: 0xf000_0000n, end: 0xffff_ffffn }] });
    expect([...cookie.iovad.ranges()]).toEqual([{ pfnLo: 0xf0000, pfnHi: 0xfffff, size: 0x10000, reserved: true }]);
    const dev = new DmaDevice(s, { rid: RID, domain });
    expect(dev.cookie).toBe(cookie);
    expect(dev.mapPage(s.memory.allocFrames(1), 4096, DMA_TO_DEVICE)).toBe(0xefff_f000n);
  });
});

describe('mapSg through the IOMMU', () => {
  it('merges into segments bounded by max segment size and boundary, with padding', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, segmentBoundaryMask: 0xffffn });
    const pa = s.memory.allocFrames(64);
    const sg = new ScatterList(3);
    sg.set(0, pa, 0x6000).set(1, pa + 0x10000n, 0x6000).set(2, pa + 0x20000n, 0x6000);
    expect(dev.mapSg(sg, DMA_BIDIRECTIONAL)).toBe(2);
    expect(sg.nents).toBe(2);
    expect(sg.origNents).toBe(3);
    expect([...sg.dmaAddress]).toEqual([0xfffe_0000n, 0xffff_0000n, DMA_MAPPING_ERROR]);
    expect([...sg.dmaLength]).toEqual([0xc000, 0x6000, 0]);
    // The padding of entry 1 maps 4 more pages after it; entry 2 starts on the boundary.
    expect(s.iommu.translate(RID, 0xffff_0000n)).toMatchObject({ ok: true, pa: pa + 0x20000n });
    expect(s.iommu.translate(RID, 0xfffe_c000n)).toMatchObject({ ok: true, pa: pa + 0x16000n });
    expect(domain.mappedBytes).toBe(0x16000n);
    dev.unmapSg(sg, DMA_BIDIRECTIONAL);
    expect(domain.mappedBytes).toBe(0n);
    expect(sg.nents).toBe(0);
  });

  it('an unaligned entry starts a new segment; max segment size splits', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, maxSegmentSize: 0x2000 });
    const pa = s.memory.allocFrames(16);
    const sg = new ScatterList(4);
    sg.set(0, pa, 0x1000).set(1, pa + 0x5000n, 0x1000).set(2, pa + 0x8800n, 0x400).set(3, pa + 0x3000n, 0x1000);
    expect(dev.mapSg(sg, DMA_TO_DEVICE)).toBe(3);
    // 4 pages of IOVA, 4-page aligned below 4 GiB.
    expect([...sg.dmaAddress.subarray(0, 3)]).toEqual([0xffff_c000n, 0xffff_e800n, 0xffff_f000n]);
    expect([...sg.dmaLength]).toEqual([0x2000, 0x400, 0x1000, 0]);
    const out = s.dma.read({ rid: RID, addr: 0xffff_e800n }, 0x400);
    expect(out.ok).toBe(true);
    s.memory.write(pa + 0x8800n, pattern(0x400, 9));
    expect(s.dma.read({ rid: RID, addr: 0xffff_e800n }, 0x400).data).toEqual(pattern(0x400, 9));
    // dma-buf's SgTable takes the DMA side as it is.
    const t = new SgTable(sg.dmaSegments(), { nents: sg.nents, origNents: sg.origNents });
    expect(t.totalLength()).toBe(0x3400n);
    dev.unmapSg(sg, DMA_TO_DEVICE);
  });

  it('1 GiB scattered over 4 KiB frames: one IOVA range, 16384 segments of 64 KiB, bytes arrive', async () => {
    const s = await sim(128 << 20, 2n << 30n);
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(64) });
    const n = 262144;
    const base = s.memory.allocFrames(n);
    const sg = new ScatterList(n);
    // Entry i takes frame (5 i) mod n: no two neighbours are physically contiguous.
    const basePfn = Number(base >> 12n);
    for (let i = 0; i < n; i++) {
      sg.pfn[i] = basePfn + ((i * 5) % n);
      sg.length[i] = 4096;
    }
    expect(dev.mapSg(sg, DMA_BIDIRECTIONAL)).toBe(16384);
    expect(sg.dmaAddress[0]).toBe(0x8000_0000n); // 1 GiB aligned, below the MSI window
    for (let k = 0; k < 16384; k++) {
      if (sg.dmaAddress[k] !== 0x8000_0000n + BigInt(k) * 0x10000n || sg.dmaLength[k] !== 0x10000) {
        throw new Error(`segment ${k}: ${sg.dmaAddress[k]!.toString(16)} +${sg.dmaLength[k]}`);
      }
    }
    expect(domain.mappedBytes).toBe(1n << 30n);
    // The device writes through sampled segments; the bytes land in the scattered frames.
    const samples = [0, 1, 4095, 8191, 12000, 16383];
    for (const k of samples) {
      const data = pattern(0x10000, k + 1);
      expect(s.dma.write({ rid: RID, addr: sg.dmaAddress[k]! }, data).ok).toBe(true);
      for (let j = 0; j < 16; j++) {
        const i = k * 16 + j;
        expect(s.memory.read(sg.phys(i), 4096)).toEqual(data.subarray(j * 4096, (j + 1) * 4096));
      }
    }
    // And a device-to-device copy across a segment boundary, through two mappings of one domain.
    const c = s.dma.copy({ rid: RID, addr: sg.dmaAddress[1]! - 0x800n }, { rid: RID, addr: sg.dmaAddress[100]! }, 0x1000n);
    expect(c.ok).toBe(true);
    const expected = new Uint8Array(0x1000);
    expected.set(pattern(0x10000, 1).subarray(0xf800), 0);
    expected.set(pattern(0x10000, 2).subarray(0, 0x800), 0x800);
    expect(s.memory.read(sg.phys(1600), 4096)).toEqual(expected);
    dev.unmapSg(sg, DMA_BIDIRECTIONAL);
    expect(domain.mappedBytes).toBe(0n);
    expect(s.iommu.translate(RID, 0x8000_0000n)).toMatchObject({ ok: false, reason: 'translation' });
    dev.cookie!.iovad.checkInvariants();
    expect(dev.cookie!.iovad.stats().allocatedRanges).toBe(0);
  });

  it('with a 4 GiB max segment the whole GiB is one segment', async () => {
    const s = await sim(128 << 20, 2n << 30n);
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(64), maxSegmentSize: 0xffff_ffff });
    const n = 262144;
    const base = s.memory.allocFrames(n);
    const pages = new BigUint64Array(n);
    for (let i = 0; i < n; i++) pages[i] = base + BigInt(((i * 7) % n) * 4096);
    const sg = ScatterList.fromPages(pages);
    expect(dev.mapSgtable(sg, DMA_TO_DEVICE)).toBe(0);
    expect(sg.nents).toBe(1);
    expect(sg.dmaAddress[0]).toBe(0x8000_0000n);
    expect(sg.dmaLength[0]).toBe(0x4000_0000 - 0); // 1 GiB fits an unsigned int
    dev.unmapSg(sg, DMA_TO_DEVICE);
  });

  it('IOVA exhaustion -> mapSg 0, mapSgtable -ENOMEM, nothing left mapped', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(16) });
    const pa = s.memory.allocFrames(32);
    const sg = new ScatterList(16);
    for (let i = 0; i < 16; i++) sg.set(i, pa + BigInt(i * 8192), 4096);
    expect(dev.mapSgtable(sg, DMA_BIDIRECTIONAL)).toBe(-12);
    expect(dev.mapSg(sg, DMA_BIDIRECTIONAL)).toBe(0);
    expect(sg.mapped).toBe(false);
    expect(domain.mappedBytes).toBe(0n);
  });
});

describe('P2P pages', () => {
  const providerBus = { name: 'switch-peer' };
  const providerHb = { name: 'other-root-port' };
  const providerNo = { name: 'not-whitelisted' };
  const client = { name: 'nic' };
  const resolver: P2pResolver = {
    mapType: (p, c) => {
      expect(c).toBe(client);
      return p === providerBus ? 'BUS_ADDR' : p === providerHb ? 'THRU_HOST_BRIDGE' : 'NOT_SUPPORTED';
    },
    busOffset: () => 0x10_0000_0000n,
  };

  it('BUS_ADDR segments get bus addresses and skip the IOMMU; THRU_HOST_BRIDGE ones are mapped', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, p2p: resolver, p2pClient: client });
    const pa = s.memory.allocFrames(4);
    const sg = new ScatterList(4);
    sg.set(0, pa, 0x1000)
      .set(1, pa + 0x1000n, 0x1000)
      .set(2, HBM + 0x4000n, 0x2000, { provider: providerBus })
      .set(3, HBM + 0x8000n, 0x1000, { provider: providerHb });
    expect(dev.mapSg(sg, DMA_BIDIRECTIONAL)).toBe(3);
    // 3 IOVA pages (rounded to 4) for entries 0, 1 and 3; entry 2 is a bus address.
    expect([...sg.dmaAddress.subarray(0, 3)]).toEqual([0xffff_c000n, HBM + 0x4000n + 0x10_0000_0000n, 0xffff_e000n]);
    expect([...sg.dmaLength]).toEqual([0x2000, 0x2000, 0x1000, 0]);
    expect([...sg.busAddress]).toEqual([0, 1, 0, 0]);
    expect(domain.mappedBytes).toBe(0x3000n);
    const data = pattern(0x1000, 5);
    expect(s.dma.write({ rid: RID, addr: 0xffff_e000n }, data).ok).toBe(true);
    expect(s.iommu.translate(RID, HBM + 0x4000n + 0x10_0000_0000n)).toMatchObject({ ok: false });
    expect(s.memory.read(HBM + 0x8000n, 0x1000)).toEqual(data);
    dev.unmapSg(sg, DMA_BIDIRECTIONAL);
    expect(domain.mappedBytes).toBe(0n);
  });

  it('NOT_SUPPORTED (or no resolver) -> -EREMOTEIO and nothing mapped', async () => {
    const s = await sim();
    const { domain } = vtd(s);
    const dev = new DmaDevice(s, { rid: RID, domain, p2p: resolver, p2pClient: client });
    const pa = s.memory.allocFrames(1);
    const sg = new ScatterList(2);
    sg.set(0, pa, 0x1000).set(1, HBM, 0x1000, { provider: providerNo });
    expect(dev.mapSgtable(sg, DMA_TO_DEVICE)).toBe(-121);
    expect(domain.mappedBytes).toBe(0n);
    const bare = new DmaDevice(s, { rid: RID2, domain: 'direct' });
    sg.set(1, HBM, 0x1000, { provider: providerBus });
    expect(bare.mapSgtable(sg, DMA_TO_DEVICE)).toBe(-121);
  });

  it('direct: BUS_ADDR gets the bus address, RAM its physical address', async () => {
    const s = await sim();
    const dev = new DmaDevice(s, { rid: RID, domain: 'direct', dmaMask: dmaBitMask(64), p2p: resolver, p2pClient: client });
    const pa = s.memory.allocFrames(1);
    const sg = new ScatterList(2);
    sg.set(0, pa + 0x10n, 0x100).set(1, HBM, 0x1000, { provider: providerBus });
    expect(dev.mapSg(sg, DMA_FROM_DEVICE)).toBe(2);
    expect([...sg.dmaAddress]).toEqual([pa + 0x10n, HBM + 0x10_0000_0000n]);
    expect([...sg.busAddress]).toEqual([0, 1]);
    dev.unmapSg(sg, DMA_FROM_DEVICE);
  });

  it('p2pResolverFrom adapts a P2pdma-shaped object', () => {
    const r = p2pResolverFrom({
      mapType: (() => 'THRU_HOST_BRIDGE') as never,
      busAddressOf: ((_p: unknown, phys: bigint) => phys + 0x1000n) as never,
    });
    expect(r.mapType({}, {})).toBe('THRU_HOST_BRIDGE');
    expect(r.busOffset({}, 0x5000n)).toBe(0x1000n);
  });
});

describe('swiotlb', () => {
  async function bounceSetup(poolSize = 1n << 20n) {
    const s = await sim();
    const pool = new Swiotlb(s.memory, { base: LOW, size: poolSize });
    // RAM starts at 2 GiB: a 31-bit device reaches only the low pool.
    const dev = new DmaDevice(s, { rid: RID, domain: 'direct', dmaMask: dmaBitMask(31), swiotlb: pool });
    return { s, pool, dev };
  }

  it('round trip: map bounces in, sync for cpu / device copy, unmap bounces back', async () => {
    const { s, pool, dev } = await bounceSetup();
    const buf = s.memory.allocFrames(2) + 0x100n;
    const orig = pattern(5000, 1);
    s.memory.write(buf, orig);
    const a = dev.mapPage(buf, 5000, DMA_BIDIRECTIONAL);
    expect(a).toBe(LOW);
    expect(pool.stats().used).toBe(3);
    expect(s.memory.read(LOW, 5000)).toEqual(orig);
    // Device writes; the CPU sees it only after sync_for_cpu.
    const fromDev = pattern(5000, 2);
    expect(s.dma.write({ rid: RID, addr: a }, fromDev).ok).toBe(true);
    expect(s.memory.read(buf, 5000)).toEqual(orig);
    dev.syncSingleForCpu(a, 5000, DMA_BIDIRECTIONAL);
    expect(s.memory.read(buf, 5000)).toEqual(fromDev);
    // CPU writes; the device sees it only after sync_for_device.
    const fromCpu = pattern(5000, 3);
    s.memory.write(buf, fromCpu);
    expect(s.dma.read({ rid: RID, addr: a }, 5000).data).toEqual(fromDev);
    dev.syncSingleForDevice(a, 5000, DMA_BIDIRECTIONAL);
    expect(s.dma.read({ rid: RID, addr: a }, 5000).data).toEqual(fromCpu);
    // Last device write, then unmap copies it back.
    const last = pattern(5000, 4);
    s.dma.write({ rid: RID, addr: a }, last);
    dev.unmapPage(a, 5000, DMA_BIDIRECTIONAL);
    expect(s.memory.read(buf, 5000)).toEqual(last);
    expect(pool.stats().used).toBe(0);
  });

  it('TO_DEVICE does not copy back; FROM_DEVICE still bounces the original in (no stale leak)', async () => {
    const { s, pool, dev } = await bounceSetup();
    const buf = s.memory.allocFrames(1);
    s.memory.write(buf, pattern(4096, 1));
    const a = dev.mapPage(buf, 4096, DMA_TO_DEVICE);
    expect(s.dma.read({ rid: RID, addr: a }, 4096).data).toEqual(pattern(4096, 1));
    s.dma.write({ rid: RID, addr: a }, pattern(4096, 9));
    dev.unmapPage(a, 4096, DMA_TO_DEVICE);
    expect(s.memory.read(buf, 4096)).toEqual(pattern(4096, 1));
    const b = dev.mapPage(buf, 4096, DMA_FROM_DEVICE);
    expect(b).toBe(a + 0x1000n); // the search goes on after the last allocation
    expect(s.memory.read(b, 4096)).toEqual(pattern(4096, 1));
    // The device writes only half; unmap copies the whole buffer back and the rest is intact.
    s.dma.write({ rid: RID, addr: b }, pattern(2048, 5));
    dev.unmapPage(b, 4096, DMA_FROM_DEVICE);
    const got = s.memory.read(buf, 4096);
    expect(got.subarray(0, 2048)).toEqual(pattern(2048, 5));
    expect(got.subarray(2048)).toEqual(pattern(4096, 1).subarray(2048));
    expect(pool.stats()).toMatchObject({ used: 0, bouncedToDevice: 2, bouncedToCpu: 1 });
  });

  it('slots: 2 KiB granules, page-sized mappings page aligned, no segment crossing, full -> error', async () => {
    const { s, pool, dev } = await bounceSetup(256n << 10n); // one segment of 128 slots
    const buf = s.memory.allocFrames(80);
    const small = dev.mapPage(buf, 100, DMA_TO_DEVICE);
    expect(small).toBe(LOW);
    const page = dev.mapPage(buf, 4096, DMA_TO_DEVICE);
    expect(page).toBe(LOW + 0x1000n); // stride 2 from slot 1 -> slot 2
    expect(dev.mapPage(buf, 0x40001, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR); // > 256 KiB
    const big = dev.mapPage(buf, 0x3c000, DMA_TO_DEVICE); // 120 slots from slot 4
    expect(big).toBe(LOW + 0x2000n);
    expect(pool.stats().used).toBe(1 + 2 + 120);
    expect(dev.mapPage(buf, 0x3000, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(dev.mappingError(DMA_MAPPING_ERROR)).toBe(-12);
    dev.unmapPage(page, 4096, DMA_TO_DEVICE);
    dev.unmapPage(small, 100, DMA_TO_DEVICE);
    // The search resumes at slot 124 (after the big one): 4 free slots to the segment end.
    expect(dev.mapPage(buf, 0x2000, DMA_TO_DEVICE)).toBe(LOW + 0x3e000n);
    // Then it wraps to slot 0, free again.
    expect(dev.mapPage(buf, 0x2000, DMA_TO_DEVICE)).toBe(LOW);
    expect(dev.mapPage(buf, 0x1000, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
  });

  it('mask unreachable and no swiotlb -> DMA_MAPPING_ERROR; mapSgtable -EIO; with swiotlb sg entries bounce', async () => {
    const s = await sim();
    const noPool = new DmaDevice(s, { rid: RID, domain: 'direct', dmaMask: dmaBitMask(31) });
    const buf = s.memory.allocFrames(2);
    expect(noPool.mapPage(buf, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    const sg = new ScatterList(2);
    sg.set(0, buf, 4096).set(1, buf + 0x1000n, 4096);
    expect(noPool.mapSgtable(sg, DMA_TO_DEVICE)).toBe(-5);
    const pool = new Swiotlb(s.memory, { base: LOW, size: 1n << 20n });
    const dev = new DmaDevice(s, { rid: RID2, domain: 'direct', dmaMask: dmaBitMask(31), swiotlb: pool });
    s.memory.write(buf, pattern(8192, 6));
    expect(dev.mapSg(sg, DMA_BIDIRECTIONAL)).toBe(2);
    expect([...sg.dmaAddress]).toEqual([LOW, LOW + 0x1000n]);
    expect(s.dma.read({ rid: RID2, addr: LOW }, 8192).data).toEqual(pattern(8192, 6));
    s.dma.write({ rid: RID2, addr: LOW + 0x1000n }, pattern(4096, 8));
    dev.syncSgForCpu(sg, DMA_BIDIRECTIONAL);
    expect(s.memory.read(buf + 0x1000n, 4096)).toEqual(pattern(4096, 8));
    dev.unmapSg(sg, DMA_BIDIRECTIONAL);
    expect(pool.stats().used).toBe(0);
  });

  it('a reachable buffer is not bounced unless forced; bus offset applies', async () => {
    const s = await sim();
    const pool = new Swiotlb(s.memory, { base: LOW, size: 1n << 20n });
    const dev = new DmaDevice(s, { rid: RID, domain: 'direct', dmaMask: dmaBitMask(32), swiotlb: pool, busOffset: 0x1000_0000n });
    const buf = s.memory.allocFrames(1);
    expect(dev.mapPage(buf, 4096, DMA_TO_DEVICE)).toBe(buf + 0x1000_0000n);
    const forced = new DmaDevice(s, { rid: RID2, domain: 'direct', dmaMask: dmaBitMask(64), swiotlb: pool, forceBounce: true });
    expect(forced.mapPage(buf, 4096, DMA_TO_DEVICE)).toBe(LOW);
  });
});
