/**
 * DMA engine: an overlapping copy within one address space has memmove semantics whatever the
 * order the backing pages were made in (issue 11). Pages are first written back to front, so the
 * sparse backing of the range runs against its addresses.
 */
import { describe, expect, it } from 'vitest';
import { Prot } from '../../src/index.js';
import { pattern } from '../helpers/sim.js';
import { RID, rig } from './helpers/setup.js';

const K4 = 4096;
const PAGES = 8;

/** memmove of `len` bytes from `s` to `d` inside `buf`, by the book. */
function memmove(buf: Uint8Array, s: number, d: number, len: number): Uint8Array {
  const out = buf.slice();
  out.set(buf.slice(s, s + len), d);
  return out;
}

describe('overlapping DMA copies (memmove)', () => {
  // [src offset, dst offset, length]: forward overlap by less than a page, by pages, by one byte;
  // backward overlap; identical ranges.
  const CASES: [number, number, number][] = [
    [0, 100, 5 * K4], [10, 3 * K4 + 7, 4 * K4 + 1], [K4, K4 + 1, 6 * K4 - 1], [0, 2 * K4, 6 * K4],
    [3 * K4 + 5, 11, 4 * K4], [K4, K4, 2 * K4],
  ];
  it.each(CASES)('through an IOMMU domain: src +%i, dst +%i, %i bytes', async (so, dOff, len) => {
    const { sim, dom } = await rig('vtd-ss');
    const base = sim.memory.allocFrames(PAGES);
    dom.map(0x10_0000n, base, BigInt(PAGES * K4), Prot.RW);
    const data = pattern(PAGES * K4, 5);
    for (let p = PAGES - 1; p >= 0; p--) sim.memory.write(base + BigInt(p * K4), data.subarray(p * K4, (p + 1) * K4));
    const r = sim.dma.copy({ rid: RID, addr: 0x10_0000n + BigInt(so) }, { rid: RID, addr: 0x10_0000n + BigInt(dOff) }, BigInt(len));
    expect(r).toEqual({ ok: true, code: 'OK', bytesDone: BigInt(len) });
    expect(sim.memory.read(base, PAGES * K4)).toEqual(memmove(data, so, dOff, len));
  });

  it('without an IOMMU (direct, physical addresses) too, and pages written in a shuffled order', async () => {
    const { sim } = await rig('vtd-ss', { attach: false });
    sim.iommu.attach(RID, 'direct');
    const base = sim.memory.allocFrames(PAGES);
    const data = pattern(PAGES * K4, 9);
    for (const p of [3, 0, 7, 5, 1, 6, 2, 4]) sim.memory.write(base + BigInt(p * K4), data.subarray(p * K4, (p + 1) * K4));
    const r = sim.dma.copy({ rid: RID, addr: base + 1000n }, { rid: RID, addr: base + 1000n + 3n * 4096n + 17n }, BigInt(4 * K4));
    expect(r.ok).toBe(true);
    expect(sim.memory.read(base, PAGES * K4)).toEqual(memmove(data, 1000, 1000 + 3 * K4 + 17, 4 * K4));
  });

  it('a fault in a backward copy stops it with the bytes from the end done', async () => {
    const { sim, dom } = await rig('vtd-ss');
    const base = sim.memory.allocFrames(PAGES);
    dom.map(0x10_0000n, base, BigInt(PAGES * K4), Prot.RW);
    const data = pattern(PAGES * K4, 3);
    sim.memory.write(base, data);
    dom.unmap(0x10_0000n + 4096n, 4096n); // a hole in the source, page 1
    // Chunks of dst - src = 2 pages from the end: pages 2-3 go to 4-5, then page 0 to 2, then the hole.
    const r = sim.dma.copy({ rid: RID, addr: 0x10_0000n }, { rid: RID, addr: 0x10_0000n + 2n * 4096n }, BigInt(4 * K4));
    expect(r).toMatchObject({ ok: false, bytesDone: BigInt(3 * K4), fault: { side: 'src', iova: 0x10_0000n + 4096n } });
    const want = data.slice();
    want.set(data.subarray(2 * K4, 4 * K4), 4 * K4);
    want.set(data.subarray(0, K4), 2 * K4);
    expect(sim.memory.read(base, PAGES * K4)).toEqual(want);
  });
});
