/**
 * Byte patterns: patternBytes builds periodic patterns from one period by native copies, so its
 * bytes are checked against the definition, byte by byte, at lengths around each period;
 * firstMismatch finds the first differing offset (what a failing `expect: { bytes }` reports).
 */
import { describe, expect, it } from 'vitest';
import { firstMismatch, PatternCache, patternBytes } from '../../src/scenario/index.js';
import type { Pattern } from '../../src/scenario/index.js';

/** The patterns' definitions, one byte at a time. */
function reference(p: Pattern, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const src = p.kind === 'text' ? new TextEncoder().encode(p.text) : p.kind === 'hex' ? Uint8Array.from(p.bytes) : null;
  let x = p.kind === 'random' ? p.seed >>> 0 || 0x9e3779b9 : 0;
  for (let i = 0; i < length; i++) {
    if (p.kind === 'fill') out[i] = p.value;
    else if (p.kind === 'counter') out[i] = (p.start + i * p.step) & 0xff;
    else if (src) out[i] = src[i % src.length]!;
    else {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      out[i] = x & 0xff;
    }
  }
  return out;
}

const PATTERNS: Pattern[] = [
  { kind: 'fill', value: 0xa5 },
  { kind: 'counter', start: 0, step: 1 },
  { kind: 'counter', start: 16, step: 3 },
  { kind: 'counter', start: 7, step: 0 },
  { kind: 'counter', start: 1, step: 128 },
  { kind: 'text', text: 'hello, dma-buf' },
  { kind: 'text', text: 'é' },
  { kind: 'hex', bytes: [0xde, 0xad, 0xbe, 0xef, 0x01] },
  { kind: 'random', seed: 2021 },
  // The seed's edges: 0 (the default state), and the int32 sign bit the generator works in.
  { kind: 'random', seed: 0 },
  { kind: 'random', seed: 0x80000000 },
  { kind: 'random', seed: 0xffffffff },
];

describe('patternBytes', () => {
  it('gives the bytes of the definition at every length around the periods', () => {
    for (const p of PATTERNS) {
      for (const n of [0, 1, 2, 5, 13, 14, 15, 255, 256, 257, 511, 512, 513, 4096, 65536 + 7]) {
        expect(patternBytes(p, n), `${p.kind} ${JSON.stringify(p)} length ${n}`).toEqual(reference(p, n));
      }
    }
  });
});

describe('firstMismatch', () => {
  it('is -1 for the pattern itself and the first differing offset otherwise', () => {
    for (const p of PATTERNS) {
      const got = reference(p, 70_000);
      expect(firstMismatch(p, got)).toBe(-1);
      for (const at of [0, 1, 4095, 69_999]) {
        const bad = got.slice();
        bad[at] = bad[at]! ^ 0x40;
        bad[69_999] = bad[69_999]! ^ (at === 69_999 ? 0 : 0x01);
        expect(firstMismatch(p, bad)).toBe(at);
      }
    }
  });

  it('finds it in the tail past the last whole word, and in bytes that do not start on a word', () => {
    const p: Pattern = { kind: 'random', seed: 7 };
    const got = reference(p, 4099);
    got[4098] = got[4098]! ^ 1;
    expect(firstMismatch(p, got)).toBe(4098);
    const host = new Uint8Array(4101);
    host.set(reference(p, 4099), 1);
    const unaligned = host.subarray(1, 4100);
    expect(firstMismatch(p, unaligned)).toBe(-1);
    unaligned[5] = unaligned[5]! ^ 2;
    expect(firstMismatch(p, unaligned)).toBe(5);
  });
});

describe('firstMismatch without a native compare (as in a browser)', () => {
  it('gives the same answers by its own loop', () => {
    const g = globalThis as { Buffer?: unknown };
    const saved = g.Buffer;
    const p: Pattern = { kind: 'random', seed: 11 };
    const got = reference(p, 10_001);
    const bad = got.slice();
    bad[9_000] = bad[9_000]! ^ 4;
    let answers: number[];
    try {
      delete g.Buffer; // synchronous: nothing else runs until it is back
      answers = [firstMismatch(p, got), firstMismatch(p, bad), firstMismatch(p, got.subarray(0, 9_999))];
    } finally {
      g.Buffer = saved;
    }
    expect(answers).toEqual([-1, 9_000, -1]);
    expect([firstMismatch(p, got), firstMismatch(p, bad)]).toEqual([-1, 9_000]);
  });
});

describe('PatternCache', () => {
  it('hands out the bytes patternBytes makes, in any order of lengths, and the same bytes again', () => {
    const cache = new PatternCache();
    for (const p of PATTERNS) {
      for (const n of [4096, 1, 65536 + 7, 0, 4096, 300, 65536 + 7, 70_000]) {
        expect(cache.bytes(p, n), `${JSON.stringify(p)} length ${n}`).toEqual(reference(p, n));
      }
    }
    // A shorter ask is the front of the longest made so far: no new bytes.
    const p: Pattern = { kind: 'random', seed: 99 };
    const long = cache.bytes(p, 8192);
    const short = cache.bytes(p, 100);
    expect(short.buffer).toBe(long.buffer);
    expect(short.byteOffset).toBe(0);
    // Patterns that differ in any field are not confused.
    expect(cache.bytes({ kind: 'random', seed: 100 }, 64)).toEqual(reference({ kind: 'random', seed: 100 }, 64));
    expect(cache.bytes({ kind: 'counter', start: 16, step: 4 }, 64)).toEqual(reference({ kind: 'counter', start: 16, step: 4 }, 64));
  });

  it('keeps at most maxBytes: past it, the bytes are made each time and still right', () => {
    const cache = new PatternCache(1000);
    const p: Pattern = { kind: 'random', seed: 5 };
    const big = cache.bytes(p, 4096);
    expect(big).toEqual(reference(p, 4096));
    expect(cache.bytes(p, 4096)).not.toBe(big);
    expect(cache.bytes(p, 4096).buffer).not.toBe(big.buffer);
    const small = cache.bytes(p, 600);
    expect(cache.bytes(p, 500).buffer).toBe(small.buffer);
    // 600 kept; another 600 would pass 1000: made, not kept.
    const q: Pattern = { kind: 'random', seed: 6 };
    const other = cache.bytes(q, 600);
    expect(other).toEqual(reference(q, 600));
    expect(cache.bytes(q, 10).buffer).not.toBe(other.buffer);
  });

  it('firstMismatch takes the cached bytes as what it compares against', () => {
    const cache = new PatternCache();
    const p: Pattern = { kind: 'random', seed: 2021 };
    cache.bytes(p, 65536);
    const got = reference(p, 4096);
    expect(firstMismatch(p, got, cache.bytes(p, got.length))).toBe(-1);
    got[4000] = got[4000]! ^ 0x10;
    expect(firstMismatch(p, got, cache.bytes(p, got.length))).toBe(4000);
  });
});
