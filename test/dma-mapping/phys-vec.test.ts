import { describe, expect, it } from 'vitest';
import { createSimulator, type IommuDomain, type Simulator } from '../../src/index.js';
import { DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DmaDevice, dmaBitMask, physVecBytes, type PhysRange, type PhysVec } from '../../src/dma-mapping/index.js';
import { simErrorCode } from '../core/helpers/setup.js';

// dma_iova_link takes the ranges as objects or as columns (PhysVec): both must leave exactly the
// same page tables, statuses and counters.
const HBM = 0x40_0000_0000n;
const RID = 0x0300;
const K = 1024n;

async function rig(): Promise<{ s: Simulator; dev: DmaDevice; domain: IommuDomain }> {
  const s = await createSimulator({ arenaBytes: 64 << 20 });
  s.memory.addRegion({ base: 0x8000_0000n, size: 1n << 30n, kind: 'ram', name: 'ram' });
  s.memory.addRegion({ base: HBM, size: 1n << 32n, kind: 'device', name: 'hbm', owner: 1 });
  const unit = s.iommu.createUnit({ family: 'vtd' });
  const domain = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48, strict: true });
  const dev = new DmaDevice(s, { rid: RID, domain, dmaMask: dmaBitMask(48) });
  return { s, dev, domain };
}

function vecOf(ranges: readonly PhysRange[]): PhysVec {
  const v: PhysVec = { phys: new BigUint64Array(ranges.length), length: new Float64Array(ranges.length) };
  ranges.forEach((r, i) => { v.phys[i] = r.phys; v.length[i] = Number(r.length); });
  return v;
}

let seed = 7;
const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };

/** Random page-aligned ranges of the HBM region (some physically contiguous with the previous). */
function randomRanges(n: number): PhysRange[] {
  const out: PhysRange[] = [];
  for (let i = 0; i < n; i++) {
    const prev = out[i - 1];
    const length = BigInt(1 + rnd(600)) * 4n * K;
    const phys = prev && rnd(3) === 0 ? prev.phys + prev.length : HBM + BigInt(rnd(1 << 18)) * 4n * K;
    out.push({ phys, length });
  }
  return out;
}

const code = simErrorCode;

describe('dma_iova_link of a PhysVec (columns) against the same ranges as objects', () => {
  it('the same statuses, page tables, translations and counters, over random ranges', async () => {
    for (let round = 0; round < 4; round++) {
      const ranges = randomRanges(40 + rnd(200));
      const a = await rig();
      const b = await rig();
      const vec = vecOf(ranges);
      const size = ranges.reduce((s, r) => s + r.length, 0n);
      expect(physVecBytes(vec)).toBe(size);
      const sa = a.dev.iovaTryAlloc(size)!;
      const sb = b.dev.iovaTryAlloc(size)!;
      expect(sb.addr).toBe(sa.addr);
      expect(b.dev.iovaLink(sb, vec, DMA_TO_DEVICE)).toBe(a.dev.iovaLink(sa, ranges, DMA_TO_DEVICE));
      expect(b.dev.stats()).toEqual(a.dev.stats());
      expect(b.domain.mappedBytes).toBe(a.domain.mappedBytes);
      expect(b.domain.tableFrames).toBe(a.domain.tableFrames);
      let off = 0n;
      for (const r of ranges) {
        for (const at of [0n, r.length - 1n]) {
          const ta = a.s.iommu.translate(RID, sa.addr + off + at, 'read');
          expect(ta).toMatchObject({ ok: true, pa: r.phys + at });
          expect(b.s.iommu.translate(RID, sb.addr + off + at, 'read')).toEqual(ta);
          expect(b.domain.walk(sb.addr + off + at)).toEqual(a.domain.walk(sa.addr + off + at));
        }
        off += r.length;
      }
      expect(b.s.iommu.units()[0]!.stats()).toEqual(a.s.iommu.units()[0]!.stats());
    }
  });

  it('a range not page-aligned is -EIO for both (nothing mapped, mapErrors counted)', async () => {
    const ranges = [{ phys: HBM, length: 8n * K }, { phys: HBM + 0x10_0800n, length: 4n * K }];
    const a = await rig();
    const b = await rig();
    const sa = a.dev.iovaTryAlloc(12n * K)!;
    const sb = b.dev.iovaTryAlloc(12n * K)!;
    const st = a.dev.iovaLink(sa, ranges, DMA_BIDIRECTIONAL);
    expect(st).toBeLessThan(0);
    expect(b.dev.iovaLink(sb, vecOf(ranges), DMA_BIDIRECTIONAL)).toBe(st);
    expect(b.dev.stats()).toEqual(a.dev.stats());
    expect(b.dev.stats().mapErrors).toBe(1);
    expect(b.domain.mappedBytes).toBe(0n);
  });

  it('addresses past 2^53 keep their exact frame numbers (the same IOMMU verdict as the bigint path)', async () => {
    const high = [{ phys: (1n << 60n) + 0x1234_5000n, length: 8n * K }];
    const a = await rig();
    const b = await rig();
    const sa = a.dev.iovaTryAlloc(8n * K)!;
    const sb = b.dev.iovaTryAlloc(8n * K)!;
    expect(b.dev.iovaLink(sb, vecOf(high), DMA_BIDIRECTIONAL)).toBe(a.dev.iovaLink(sa, high, DMA_BIDIRECTIONAL));
    expect(b.dev.stats()).toEqual(a.dev.stats());
    expect(b.domain.mappedBytes).toBe(a.domain.mappedBytes);
  });

  it('bad columns are EINVAL with nothing changed: a length that is not a positive safe integer, a range past 2^64, an overrun', async () => {
    const { dev, domain } = await rig();
    const state = dev.iovaTryAlloc(64n * K)!;
    const bad = (phys: bigint, length: number): PhysVec => ({ phys: BigUint64Array.of(phys), length: Float64Array.of(length) });
    for (const v of [bad(HBM, 0), bad(HBM, -4096), bad(HBM, 4096.5), bad(HBM, NaN), bad(HBM, 2 ** 53), bad((1n << 64n) - 4096n, 8192)]) {
      expect(code(() => dev.iovaLink(state, v, DMA_BIDIRECTIONAL))).toBe('EINVAL');
    }
    expect(code(() => dev.iovaLink(state, bad(HBM, Number(128n * K)), DMA_BIDIRECTIONAL))).toBe('EINVAL');
    expect(code(() => dev.iovaLink(state, { phys: new BigUint64Array(2), length: new Float64Array(1) } as PhysVec, DMA_BIDIRECTIONAL))).toBe('EINVAL');
    expect(domain.mappedBytes).toBe(0n);
    expect(dev.stats()).toMatchObject({ mapErrors: 0, iovaStates: 1 });
    // The state is still usable.
    expect(dev.iovaLink(state, bad(HBM, Number(64n * K)), DMA_BIDIRECTIONAL)).toBe(0);
    expect(domain.mappedBytes).toBe(64n * K);
  });
});
