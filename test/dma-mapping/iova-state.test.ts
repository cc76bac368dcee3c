import { describe, expect, it } from 'vitest';
import { createSimulator, Prot, type Simulator } from '../../src/index.js';
import { DMA_BIDIRECTIONAL, DMA_NONE, DMA_TO_DEVICE, DmaDevice, DmaIovaState, dmaBitMask } from '../../src/dma-mapping/index.js';
import { simErrorCode } from '../core/helpers/setup.js';

const HBM = 0x40_0000_0000n;
const RID = 0x0300;
const M = 1n << 20n;

async function rig(strict = true): Promise<{ s: Simulator; dev: DmaDevice; domain: import('../../src/index.js').IommuDomain }> {
  const s = await createSimulator({ arenaBytes: 64 << 20 });
  s.memory.addRegion({ base: 0x8000_0000n, size: 1n << 30n, kind: 'ram', name: 'ram' }); // page tables
  s.memory.addRegion({ base: HBM, size: 1n << 32n, kind: 'device', name: 'hbm', owner: 1 });
  const unit = s.iommu.createUnit({ family: 'vtd' });
  const domain = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48, strict });
  const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(48) });
  return { s, dev, domain };
}

const code = simErrorCode;

describe('dma_iova_try_alloc / dma_iova_link / dma_iova_destroy', () => {
  it('one IOVA range, the ranges laid out in order, each byte translating to its physical address; destroy undoes all', async () => {
    const { s, dev, domain } = await rig();
    const before = dev.cookie!.iovad.stats().allocatedRanges;
    const ranges = [{ phys: HBM + 64n * M, length: 4n * M }, { phys: HBM, length: 64n * 1024n }, { phys: HBM + 4n * M, length: 2n * M }];
    const state = dev.iovaTryAlloc(6n * M + 64n * 1024n)!;
    expect(state).toBeInstanceOf(DmaIovaState);
    expect(dev.cookie!.iovad.stats().allocatedRanges).toBe(before + 1);
    expect(dev.iovaLink(state, ranges, DMA_BIDIRECTIONAL)).toBe(0);
    expect(dev.stats()).toMatchObject({ singles: 0, iovaStates: 1, mapErrors: 0 });
    let off = 0n;
    for (const r of ranges) {
      for (const at of [0n, r.length / 2n + 0x123n, r.length - 1n]) {
        expect(s.iommu.translate(RID, state.addr + off + at, 'write')).toMatchObject({ ok: true, pa: r.phys + at });
      }
      off += r.length;
    }
    // A 2 MiB-aligned run maps with 2 MiB leaves, as iommu_map picks page sizes.
    expect(domain.walk(state.addr).pageSize).toBe(2n * M);
    expect(domain.mappedBytes).toBe(6n * M + 64n * 1024n);
    dev.iovaDestroy(state, DMA_BIDIRECTIONAL);
    expect(domain.mappedBytes).toBe(0n);
    expect(s.iommu.translate(RID, state.addr, 'read').ok).toBe(false);
    expect(dev.stats().iovaStates).toBe(0);
    expect(dev.cookie!.iovad.stats().allocatedRanges).toBe(before);
    // Destroyed: a second destroy, or a link, is refused.
    expect(code(() => dev.iovaDestroy(state, DMA_BIDIRECTIONAL))).toBe('EINVAL');
    expect(code(() => dev.iovaLink(state, ranges, DMA_BIDIRECTIONAL))).toBe('EINVAL');
  });

  it('links append: a second link continues where the first ended; MMIO prot follows the direction', async () => {
    const { s, dev } = await rig();
    const state = dev.iovaTryAlloc(2n * M)!;
    expect(dev.iovaLink(state, [{ phys: HBM + 8n * M, length: 1n * M }], DMA_TO_DEVICE)).toBe(0);
    expect(dev.iovaLink(state, [{ phys: HBM + 32n * M, length: 1n * M }], DMA_TO_DEVICE)).toBe(0);
    expect(s.iommu.translate(RID, state.addr + M + 8n, 'read')).toMatchObject({ ok: true, pa: HBM + 32n * M + 8n });
    // TO_DEVICE: the device only reads.
    expect(s.iommu.translate(RID, state.addr, 'write')).toMatchObject({ ok: false, reason: 'permission' });
    // Past the state's size: EINVAL, nothing changed.
    expect(code(() => dev.iovaLink(state, [{ phys: HBM, length: 4096n }], DMA_TO_DEVICE))).toBe('EINVAL');
    // Destroyed with another direction than the links': EINVAL, still mapped.
    expect(code(() => dev.iovaDestroy(state, DMA_BIDIRECTIONAL))).toBe('EINVAL');
    expect(s.iommu.translate(RID, state.addr, 'read').ok).toBe(true);
    dev.iovaDestroy(state, DMA_TO_DEVICE);
    expect(dev.stats().iovaStates).toBe(0);
  });

  it('a link the IOMMU refuses part-way leaves nothing of it mapped; the earlier mapping in the way stays', async () => {
    const { s, dev, domain } = await rig();
    const state = dev.iovaTryAlloc(4n * M)!;
    // Something already mapped inside the range (3 MiB in): the batched map fails there.
    domain.map(state.addr + 3n * M, HBM + 512n * M, 4096n, Prot.RW);
    const ranges = [{ phys: HBM, length: 1n * M }, { phys: HBM + 16n * M, length: 2n * M }, { phys: HBM + 64n * M, length: 1n * M }];
    const st = dev.iovaLink(state, ranges, DMA_BIDIRECTIONAL);
    expect(st).toBeLessThan(0);
    expect(dev.stats().mapErrors).toBe(1);
    for (const at of [0n, 1n * M, 2n * M + 4096n]) expect(s.iommu.translate(RID, state.addr + at, 'read').ok).toBe(false);
    expect(s.iommu.translate(RID, state.addr + 3n * M, 'read')).toMatchObject({ ok: true, pa: HBM + 512n * M });
    expect(domain.mappedBytes).toBe(4096n);
    const before = dev.cookie!.iovad.stats().allocatedRanges;
    dev.iovaDestroy(state, DMA_BIDIRECTIONAL); // frees the IOVA, unmaps nothing it did not link
    expect(dev.cookie!.iovad.stats().allocatedRanges).toBe(before - 1);
    expect(domain.mappedBytes).toBe(4096n);
  });

  it('falls back (null) where the kernel does: dma-direct, or no room for the whole size', async () => {
    const { s, dev } = await rig();
    const direct = new DmaDevice(s, { rid: 0x0500, domain: 'direct', dmaMask: dmaBitMask(64) });
    expect(direct.iovaTryAlloc(4096n)).toBeNull();
    dev.setMask(dmaBitMask(30)); // 1 GiB of IOVA space cannot hold 2 GiB
    expect(dev.iovaTryAlloc(2n << 30n)).toBeNull();
    expect(dev.stats().iovaStates).toBe(0);
  });

  it('bad input: a size that is no positive bigint, bad ranges, DMA_NONE, a foreign state; -EIO for an unaligned range', async () => {
    const { dev, s, domain } = await rig();
    expect(code(() => dev.iovaTryAlloc(0n))).toBe('EINVAL');
    expect(code(() => dev.iovaTryAlloc(4096 as unknown as bigint))).toBe('EINVAL');
    const state = dev.iovaTryAlloc(1n * M)!;
    expect(code(() => dev.iovaLink(state, [{ phys: HBM, length: 0n }], DMA_BIDIRECTIONAL))).toBe('EINVAL');
    expect(code(() => dev.iovaLink(state, [{ phys: -1n, length: 4096n }], DMA_BIDIRECTIONAL))).toBe('EINVAL');
    expect(code(() => dev.iovaLink(state, {} as never, DMA_BIDIRECTIONAL))).toBe('EINVAL');
    expect(code(() => dev.iovaLink(state, [{ phys: HBM, length: 4096n }], DMA_NONE))).toBe('EINVAL');
    expect(dev.iovaLink(state, [{ phys: HBM + 0x800n, length: 4096n }], DMA_BIDIRECTIONAL)).toBe(-5);
    expect(domain.mappedBytes).toBe(0n);
    const other = new DmaDevice(s, { rid: 0x0600, domain, attach: false });
    expect(code(() => other.iovaDestroy(state, DMA_BIDIRECTIONAL))).toBe('EINVAL');
    dev.iovaDestroy(state, DMA_BIDIRECTIONAL);
  });
});
