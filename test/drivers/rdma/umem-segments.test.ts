import { describe, expect, it } from 'vitest';
import { SgTable } from '../../../src/index.js';
import { UmemSegments, trimTable, type UmemSegment, type UmemTrim } from '../../../src/drivers/rdma/index.js';

// The IM-03 trim reads the table's columns in numbers and keeps the cut as one object; it must
// give what the entry-by-entry trim in bigints gives, segment for segment.

/** The entry-by-entry IM-03 trim over the table's entry objects, in bigints (the reference). */
function reference(sgt: SgTable, start: bigint, end: bigint): { segments: UmemSegment[]; trim: UmemTrim } {
  const segs = sgt.dmaSegments();
  const segments: UmemSegment[] = [];
  let cur = 0n;
  let nmap = 0;
  let firstIndex = -1;
  let firstOffset = 0n;
  let lastIndex = -1;
  let lastTrim = 0n;
  for (let i = 0; i < segs.length; i++) {
    let addr = segs[i]!.dmaAddress;
    let len = BigInt(segs[i]!.length);
    if (start < cur + len && cur < end) nmap++;
    if (cur <= start && start < cur + len) {
      const off = start - cur;
      firstIndex = i; firstOffset = off; addr += off; len -= off; cur += off;
    }
    const inRange = cur >= start && cur < end;
    if (cur < end && end <= cur + len) {
      const t = cur + len - end;
      lastIndex = i; lastTrim = t; len -= t;
      if (inRange) segments.push({ dmaAddress: addr, length: len, start: cur - start });
      break;
    }
    if (inRange) segments.push({ dmaAddress: addr, length: len, start: cur - start });
    cur += len;
  }
  return { segments, trim: { firstIndex, firstOffset, lastIndex, lastTrim, nmap } };
}

let seed = 3;
const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };

function randomTable(): SgTable {
  const n = 1 + rnd(60);
  const address = new BigUint64Array(n);
  const length = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    address[i] = BigInt(rnd(1 << 20)) * 4096n + (rnd(4) === 0 ? BigInt(rnd(4096)) : 0n) + (rnd(2) ? 1n << 60n : 0n);
    length[i] = rnd(3) === 0 ? 1 + rnd(100_000) : (1 + rnd(32)) * 4096;
  }
  return new SgTable({ address, length }, { nents: 1 + rnd(n), origNents: 0 });
}

describe('UmemSegments (IM-03 trim in columns)', () => {
  it('IM-03: the same segments and trim as the entry-by-entry trim, over random tables and ranges', () => {
    for (let round = 0; round < 400; round++) {
      const t = randomTable();
      const total = Number(t.totalLength());
      const start = rnd(total + 8192);
      const end = start + rnd(total + 8192 - start + 1);
      const want = reference(t, BigInt(start), BigInt(end));
      const { segments, trim } = UmemSegments.cut(t, start, end);
      expect(trim).toEqual(want.trim);
      expect(segments.toArray()).toEqual(want.segments);
      expect(trimTable(t, BigInt(start), BigInt(end))).toEqual(want);
      // Every accessor agrees with the objects.
      expect(segments.count).toBe(want.segments.length);
      want.segments.forEach((s, i) => {
        expect(segments.dmaAddress(i)).toBe(s.dmaAddress);
        expect(BigInt(segments.length(i))).toBe(s.length);
        expect(BigInt(segments.start(i))).toBe(s.start);
        expect(segments.find(Number(s.start))).toBe(i);
        expect(segments.find(Number(s.start + s.length) - 1)).toBe(i);
      });
      expect(BigInt(segments.totalLength)).toBe(want.segments.reduce((x, s) => x + s.length, 0n));
      const aligned = want.segments.every((s, i) => s.dmaAddress % 4096n === 0n && (i + 1 === want.segments.length || s.length % 4096n === 0n));
      expect(segments.pageAligned()).toBe(aligned);
    }
  });

  it('IM-03: a table of plain entries trims the same as one of columns', () => {
    const entries = [{ dmaAddress: 0x10_0000n, length: 0x2000, page: null }, { dmaAddress: 0x20_0000n, length: 0x3000n, page: null }];
    const t = new SgTable(entries);
    expect(trimTable(t, 0x1000n, 0x4000n)).toEqual(reference(t, 0x1000n, 0x4000n));
    expect(UmemSegments.cut(t, 0x1000, 0x4000).segments.toArray()).toEqual([
      { dmaAddress: 0x10_1000n, length: 0x1000n, start: 0n },
      { dmaAddress: 0x20_0000n, length: 0x2000n, start: 0x1000n },
    ]);
  });

  it('IM-03: trimTable refuses a range it cannot hold exactly (EINVAL), and an empty cut is the empty list', () => {
    const t = new SgTable([{ dmaAddress: 0n, length: 4096, page: null }]);
    expect(() => trimTable(t, 0n, (1n << 53n) + 1n)).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'IM-03' }));
    expect(() => trimTable(t, -1n, 1n)).toThrowError(expect.objectContaining({ code: 'EINVAL' }));
    const none = UmemSegments.cut(t, 8192, 12288);
    expect(none.segments).toBe(UmemSegments.EMPTY);
    expect(none.segments.count).toBe(0);
    expect(none.trim).toEqual({ firstIndex: -1, firstOffset: 0n, lastIndex: -1, lastTrim: 0n, nmap: 0 });
  });
});
