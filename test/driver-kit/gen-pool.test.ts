import { describe, expect, it } from 'vitest';
import { GenPool, SimError } from '../../src/index.js';

const K = 1024n;
const M = 1024n * K;
const err = (code: string) => expect.objectContaining({ code });

function pool(size = 64n * K, start = 0x10_0000n): GenPool {
  const p = new GenPool({ name: 'test' });
  p.add(start, size);
  return p;
}

describe('gen_pool (lib/genalloc.c)', () => {
  it('first fit: lowest free run, whole units; a freed hole is reused before higher space', () => {
    const p = pool();
    const a = p.alloc(4096n);
    const b = p.alloc(100n); // rounded up to one 4 KiB unit
    const c = p.alloc(8192n);
    expect([a, b, c]).toEqual([0x10_0000n, 0x10_1000n, 0x10_2000n]);
    expect(p.avail()).toBe(64n * K - 16n * K);
    p.free(b, 100n);
    expect(p.alloc(4096n)).toBe(0x10_1000n);
    expect(p.alloc(8192n)).toBe(0x10_4000n); // the 4 KiB hole is gone, next run
  });

  it('alignment: the address (not the offset in the chunk) is a multiple of align; the gap stays free', () => {
    const p = pool(1n * M, 0x1000n);
    expect(p.alloc(4096n)).toBe(0x1000n);
    const x = p.alloc(4096n, { align: 64n * K });
    expect(x).toBe(0x1_0000n);
    expect(p.alloc(4096n)).toBe(0x2000n); // below the aligned piece
    // Non-power-of-two multiples of the unit are honoured exactly.
    expect(p.alloc(4096n, { align: 12n * K }) % (12n * K)).toBe(0n);
    expect(() => p.alloc(4096n, { align: 100n })).toThrow(err('EINVAL'));
  });

  it('free merges with both neighbours; freeing everything gives one extent back', () => {
    const p = pool(16n * K);
    const a = p.alloc(4096n);
    const b = p.alloc(4096n);
    const c = p.alloc(4096n);
    p.free(a, 4096n);
    p.free(c, 4096n);
    expect(p.freeExtents()).toEqual([{ start: a, size: 4096n }, { start: c, size: 8192n }]);
    p.free(b, 4096n);
    expect(p.freeExtents()).toEqual([{ start: a, size: 16n * K }]);
    expect(p.alloc(16n * K)).toBe(a);
  });

  it('exhaustion: tryAlloc is null, alloc is ENOMEM naming the op; nothing changes', () => {
    const p = pool(16n * K);
    p.alloc(4096n);
    p.alloc(8192n);
    const before = p.freeExtents();
    expect(p.tryAlloc(8192n)).toBeNull();
    const e = (() => { try { p.alloc(8192n, { op: 'my_alloc' }); } catch (x) { return x; } })() as SimError;
    expect(e).toBeInstanceOf(SimError);
    expect([e.code, e.op]).toEqual(['ENOMEM', 'my_alloc']);
    expect(p.freeExtents()).toEqual(before);
    expect(p.avail()).toBe(4096n);
  });

  it('bad arguments are SimError EINVAL with nothing changed', () => {
    const p = pool(16n * K);
    const a = p.alloc(4096n);
    const snap = () => [p.avail(), p.freeExtents()];
    const before = snap();
    expect(() => p.alloc(0n)).toThrow(err('EINVAL'));
    expect(() => p.alloc(-4096n)).toThrow(err('EINVAL'));
    expect(() => p.alloc(4096 as unknown as bigint)).toThrow(err('EINVAL'));
    expect(() => p.free(a + 1n, 4096n)).toThrow(err('EINVAL')); // not on a unit
    expect(() => p.free(0x9000_0000n, 4096n)).toThrow(err('EINVAL')); // not in the pool
    expect(() => p.free(a + 4096n, 4096n)).toThrow(err('EINVAL')); // free already
    expect(() => p.free(a, 8192n)).toThrow(err('EINVAL')); // partly free
    expect(() => p.free(a, 32n * K)).toThrow(err('EINVAL')); // past the chunk
    expect(() => p.add(0x10_2000n, 4096n)).toThrow(err('EINVAL')); // overlaps
    expect(() => p.add(0x20_0800n, 4096n)).toThrow(err('EINVAL')); // not on a unit
    expect(() => p.add(0x30_0000n, 100n)).toThrow(err('EINVAL')); // below one unit
    expect(() => new GenPool({ minAllocOrder: -1 })).toThrow(err('EINVAL'));
    expect(snap()).toEqual(before);
    p.free(a, 4096n);
    expect(p.avail()).toBe(16n * K);
  });

  it('chunks: newest first, virt_to_phys, has_addr, fixed allocation, a search start', () => {
    const p = new GenPool({ minAllocOrder: 12 });
    p.add(0x1000_0000n, 64n * K, 0x9_1000_0000n);
    p.add(0x2000_0000n, 64n * K); // no second address
    expect(p.alloc(4096n)).toBe(0x2000_0000n); // the newest chunk is searched first
    expect(p.virtToPhys(0x1000_2345n)).toBe(0x9_1000_2345n);
    expect(p.virtToPhys(0x2000_0000n)).toBe(-1n);
    expect(p.virtToPhys(0x3000_0000n)).toBe(-1n);
    expect(p.hasAddr(0x1000_0000n, 64n * K)).toBe(true);
    expect(p.hasAddr(0x1000_0000n, 64n * K + 1n)).toBe(false);
    p.allocFixed(0x1000_4000n, 8192n);
    expect(() => p.allocFixed(0x1000_5000n, 8192n)).toThrow(err('ENOMEM'));
    expect(p.size()).toBe(128n * K);
    // A search start applies to each chunk in turn (newest first): here only the older one.
    expect(p.alloc(4096n, { from: 0x1000_3000n })).toBe(0x2000_1000n);
    const q = pool(64n * K, 0x1000_0000n);
    q.allocFixed(0x1000_4000n, 8192n);
    expect(q.alloc(4096n, { from: 0x1000_3000n })).toBe(0x1000_3000n);
    expect(q.alloc(4096n, { from: 0x1000_3000n })).toBe(0x1000_6000n);
    expect(q.alloc(4096n, { from: 0x1000_2800n })).toBe(0x1000_7000n); // rounded up to a unit
    expect(q.alloc(4096n)).toBe(0x1000_0000n);
  });

  it('a large sparse space costs per hole, not per unit (2^44 bytes of 4 KiB units)', () => {
    const p = pool(1n << 44n, 0x1000_0000_0000n);
    const xs = Array.from({ length: 1000 }, () => p.alloc(2n * M, { align: 2n * M }));
    expect(xs[999]).toBe(0x1000_0000_0000n + 999n * 2n * M);
    for (let i = 0; i < xs.length; i += 2) p.free(xs[i]!, 2n * M);
    expect(p.freeExtents().length).toBe(501);
  });
});
