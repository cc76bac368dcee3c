import { describe, expect, it } from 'vitest';
import { layoutRuns, layoutChunks, type DeviceChunk, type SgLayoutInput } from '../../../src/drivers/accel/index.js';

// HL-12 [6.7+] as runs in numbers, cut at the max segment, must give exactly what the
// page-by-page loop in bigints gives.

/** The HL-12 loop in bigints, one chunk object at a time (the reference). */
function reference(input: SgLayoutInput): DeviceChunk[] | 'ENOMEM' {
  const maxSeg = input.maxSegSize - (input.maxSegSize % 4096n);
  const { pages, pageSize } = input;
  let left = input.exportedSize;
  let page = Number(input.offset / pageSize);
  let inPage = input.offset % pageSize;
  const out: DeviceChunk[] = [];
  const min = (a: bigint, b: bigint) => (a < b ? a : b);
  while (left > 0n && page < pages.length) {
    const start = pages[page]! + inPage;
    let len = 0n;
    for (;;) {
      const take = min(min(pageSize - inPage, left), maxSeg - len);
      len += take; left -= take; inPage += take;
      if (inPage === pageSize) {
        inPage = 0n;
        page++;
        const contiguous = page < pages.length && pages[page - 1]! + pageSize === pages[page];
        if (left === 0n || len === maxSeg || !contiguous) break;
      } else if (left === 0n || len === maxSeg) {
        break;
      }
    }
    out.push({ devAddr: start, length: len });
  }
  return left > 0n ? 'ENOMEM' : out;
}

let seed = 5;
const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };

describe('HL-12 layout as contiguous runs cut at the max segment', () => {
  it('HL-12 [6.x]: the same chunks as the bigint loop over random pages, offsets, sizes and max segments', () => {
    for (let round = 0; round < 500; round++) {
      const pageSize = BigInt(1 + rnd(16)) * 4096n;
      const n = 1 + rnd(24);
      const pages: bigint[] = [];
      const base = rnd(2) ? 1n << 55n : 0n; // device addresses past 2^53 too
      for (let i = 0; i < n; i++) pages.push(i > 0 && rnd(2) ? pages[i - 1]! + pageSize : base + BigInt(rnd(1 << 16)) * pageSize);
      const total = BigInt(n) * pageSize;
      const offset = BigInt(rnd(Number(total) + 1));
      const exportedSize = BigInt(1 + rnd(Number(total) + 8192));
      const maxSegSize = BigInt(4096 + rnd(300_000));
      const input = { pages, pageSize, exportedSize, offset, maxSegSize };
      const want = reference(input);
      if (want === 'ENOMEM') {
        expect(() => layoutChunks(input)).toThrowError(expect.objectContaining({ code: 'ENOMEM', rule: 'HL-12' }));
        continue;
      }
      expect(layoutChunks(input)).toEqual(want);
      // The runs: physically contiguous, covering the chunks in order, each chunk inside one.
      const r = layoutRuns(input);
      let k = 0;
      for (let i = 0; i < r.count; i++) {
        let at = pages[r.page[i]!]! + BigInt(r.offset[i]!);
        const end = at + BigInt(r.length[i]!);
        if (i > 0) expect(at).not.toBe(pages[r.page[i - 1]!]! + BigInt(r.offset[i - 1]! + r.length[i - 1]!));
        for (; at < end; k++) {
          expect(want[k]!.devAddr).toBe(at);
          at += want[k]!.length;
        }
        expect(at).toBe(end);
      }
      expect(k).toBe(want.length);
    }
  });

  it('HL-12: sizes that numbers cannot hold exactly are EINVAL', () => {
    const input = { pages: [0n], pageSize: 4096n, exportedSize: 4096n, offset: 0n, maxSegSize: 1n << 62n };
    expect(layoutChunks(input)).toEqual([{ devAddr: 0n, length: 4096n }]);
    for (const bad of [{ pageSize: 1n << 60n }, { exportedSize: 1n << 60n }, { offset: 1n << 60n }, { exportedSize: -1n }]) {
      expect(() => layoutChunks({ ...input, ...bad })).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'HL-12' }));
    }
  });
});
