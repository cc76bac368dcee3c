import { describe, expect, it } from 'vitest';
import { createSimulator, SimError } from '../../src/index.js';
import { DMA_FROM_DEVICE, IO_TLB_SIZE, Swiotlb } from '../../src/dma-mapping/index.js';

describe('swiotlb: slot tables built on first use', () => {
  it('an untouched pool answers as an empty one; the first map builds it and bounces', async () => {
    const s = await createSimulator({ arenaBytes: 8 << 20 });
    s.memory.addRegion({ base: 0x8000_0000n, size: 64n << 20n, kind: 'ram' });
    const pool = new Swiotlb(s.memory, { size: 1n << 20n });
    expect(pool.stats()).toMatchObject({ nslabs: (1 << 20) / IO_TLB_SIZE, used: 0 });
    expect(pool.origOf(pool.base)).toBeNull();
    expect(() => pool.unmap(pool.base, 16, DMA_FROM_DEVICE)).toThrow(SimError);
    const orig = s.memory.allocFrames(1);
    s.memory.write(orig, new Uint8Array([1, 2, 3]));
    const tlb = pool.map(orig, 3)!;
    expect(tlb).toBe(pool.base);
    expect(s.memory.read(tlb, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(pool.origOf(tlb + 2n)).toBe(orig + 2n);
    s.memory.write(tlb, new Uint8Array([9]));
    pool.unmap(tlb, 3, DMA_FROM_DEVICE);
    expect(s.memory.read(orig, 1)[0]).toBe(9);
    expect(pool.stats()).toMatchObject({ used: 0, bouncedToDevice: 1, bouncedToCpu: 1 });
  });
});
