/**
 * Byte patterns of scenario files. Written as:
 *   0xab                       every byte 0xab (same as { fill: 0xab }); zero = { fill: 0 }
 *   counter                    0, 1, 2, ... 255, 0, ... (same as { counter: 0 })
 *   { counter: 16, step: 3 }   16, 19, 22, ... (mod 256)
 *   { text: "hello" }          the UTF-8 bytes, repeated
 *   { hex: "de ad be ef" }     these bytes, repeated
 *   { random: 42 }             a deterministic xorshift32 stream from this seed
 */
import type { Pattern } from './schema.js';

/** A problem, or the pattern. */
export function parsePattern(v: unknown): Pattern | string {
  const byte = (x: unknown): number | undefined =>
    typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 255 ? x : undefined;
  if (typeof v === 'number') return byte(v) !== undefined ? { kind: 'fill', value: v } : `a fill byte must be 0..255, got ${v}`;
  if (v === 'counter') return { kind: 'counter', start: 0, step: 1 };
  if (v === 'zero') return { kind: 'fill', value: 0 };
  const HELP = 'expected a pattern: a byte (0xab), zero, counter, { fill }, { counter, step? }, { text }, { hex } or { random }';
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${HELP}, got ${JSON.stringify(v)}`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const only = (...allowed: string[]): string | undefined => {
    const extra = keys.find((k) => !allowed.includes(k));
    return extra === undefined ? undefined : `unknown field '${extra}' in a ${allowed[0]} pattern`;
  };
  if ('fill' in o) {
    const e = only('fill');
    if (e) return e;
    return byte(o.fill) !== undefined ? { kind: 'fill', value: o.fill as number } : `fill must be a byte 0..255, got ${JSON.stringify(o.fill)}`;
  }
  if ('counter' in o) {
    const e = only('counter', 'step');
    if (e) return e;
    if (byte(o.counter) === undefined) return `counter must start at a byte 0..255, got ${JSON.stringify(o.counter)}`;
    if (o.step !== undefined && byte(o.step) === undefined) return `step must be 0..255, got ${JSON.stringify(o.step)}`;
    return { kind: 'counter', start: o.counter as number, step: (o.step as number | undefined) ?? 1 };
  }
  if ('text' in o) {
    const e = only('text');
    if (e) return e;
    return typeof o.text === 'string' && o.text !== '' ? { kind: 'text', text: o.text } : 'text must be a non-empty string';
  }
  if ('hex' in o) {
    const e = only('hex');
    if (e) return e;
    const s = typeof o.hex === 'string' ? o.hex.replace(/[\s:_-]/g, '').replace(/^0x/i, '') : '';
    if (s === '' || s.length % 2 !== 0 || !/^[0-9a-f]+$/i.test(s)) return `hex must be an even number of hex digits, got ${JSON.stringify(o.hex)}`;
    return { kind: 'hex', bytes: Array.from({ length: s.length / 2 }, (_, i) => parseInt(s.slice(i * 2, i * 2 + 2), 16)) };
  }
  if ('random' in o) {
    const e = only('random');
    if (e) return e;
    const seed = o.random;
    return typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff
      ? { kind: 'random', seed }
      : `random must be a seed 0..2^32-1, got ${JSON.stringify(seed)}`;
  }
  return `${HELP}, got an object with ${keys.length ? keys.join(', ') : 'no fields'}`;
}

/** `length` bytes of the pattern. */
export function patternBytes(p: Pattern, length: number): Uint8Array {
  const out = new Uint8Array(length);
  switch (p.kind) {
    case 'fill':
      out.fill(p.value);
      break;
    case 'counter':
      // Periodic (the period divides 256): one period by hand, the rest by native copies.
      for (let i = 0; i < Math.min(length, 256); i++) out[i] = (p.start + i * p.step) & 0xff;
      repeatPeriod(out, 256);
      break;
    case 'text':
    case 'hex': {
      const src = p.kind === 'text' ? new TextEncoder().encode(p.text) : Uint8Array.from(p.bytes);
      out.set(length < src.length ? src.subarray(0, length) : src);
      repeatPeriod(out, src.length);
      break;
    }
    case 'random': {
      // xorshift32 on the state's bits held as an int32: the same bits as the uint32 form, but
      // a value V8 keeps unboxed even in unoptimised code (a uint32 above 2^31 becomes a heap
      // number at every step). The store keeps the low byte.
      let x = p.seed | 0 || 0x9e3779b9 | 0;
      for (let i = 0; i < length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out[i] = x;
      }
      break;
    }
  }
  return out;
}

/** Fills `out` beyond its first `period` bytes by repeating them (doubling copies). */
function repeatPeriod(out: Uint8Array, period: number): void {
  for (let n = period; n < out.length; n *= 2) out.copyWithin(n, 0, Math.min(n, out.length - n));
}

/** A pattern in words for reports: 'fill 0x5a', 'counter', 'text "..."'. */
export function describePattern(p: Pattern): string {
  switch (p.kind) {
    case 'fill':
      return `fill 0x${p.value.toString(16).padStart(2, '0')}`;
    case 'counter':
      return p.start === 0 && p.step === 1 ? 'counter' : `counter from ${p.start} step ${p.step}`;
    case 'text':
      return `text ${JSON.stringify(p.text)}`;
    case 'hex':
      return `hex ${p.bytes.map((b) => b.toString(16).padStart(2, '0')).join('')}`;
    case 'random':
      return `random seed ${p.seed}`;
  }
}

/**
 * The bytes of patterns, each made once for a run and handed out again: the step that writes a
 * pattern and the steps that expect it back ask for the same bytes, and a shorter ask is a prefix
 * of a longer one. What it hands out is shared: read it, never write it. It keeps the longest
 * buffer of each pattern asked for, `maxBytes` in all, so it does not grow with the run.
 */
export class PatternCache {
  private readonly _made = new Map<string, Uint8Array>();
  private _bytes = 0;

  constructor(private readonly _maxBytes = 16 << 20) {}

  /** `length` bytes of `p` (as {@link patternBytes} makes them), shared. */
  bytes(p: Pattern, length: number): Uint8Array {
    const key = JSON.stringify(p);
    const have = this._made.get(key);
    if (have && have.length >= length) return have.subarray(0, length);
    const made = patternBytes(p, length);
    const kept = this._bytes - (have?.length ?? 0) + length;
    if (kept <= this._maxBytes) {
      this._made.set(key, made);
      this._bytes = kept;
    }
    return made;
  }
}

/**
 * The first offset where `got` differs from the pattern, or -1 (length differences count).
 * `want`: the pattern's bytes when the caller has them (at least got.length of them).
 */
export function firstMismatch(p: Pattern, got: Uint8Array, want: Uint8Array = patternBytes(p, got.length)): number {
  if (want.length === got.length && sameBytesNative(got, want)) return -1;
  let i = 0;
  // Four bytes a step while both are aligned for it (a fresh or cached `want` is); as int32,
  // which unoptimised code keeps unboxed (a uint32 above 2^31 would be a heap number).
  if (got.byteOffset % 4 === 0 && want.byteOffset % 4 === 0) {
    const g = new Int32Array(got.buffer, got.byteOffset, got.length >> 2);
    const w = new Int32Array(want.buffer, want.byteOffset, got.length >> 2);
    while (i < g.length && g[i] === w[i]) i++;
    i *= 4;
  }
  for (; i < got.length; i++) if (got[i] !== want[i]) return i;
  return -1;
}

/** Node's Buffer, as far as {@link sameBytesNative} uses it (absent in a browser). */
type NodeBuffer = { from(b: ArrayBufferLike, offset: number, length: number): { equals(o: unknown): boolean } };

/**
 * Whether `a` and `b` hold the same bytes, by a native compare where the host has one (Node's
 * Buffer.equals, a memcmp); false where it has none (the caller's loop decides). Why: a run
 * compares hundreds of KiB as cold, barely optimised code, where a JS loop costs milliseconds.
 */
function sameBytesNative(a: Uint8Array, b: Uint8Array): boolean {
  const B = (globalThis as { Buffer?: NodeBuffer }).Buffer;
  return B !== undefined && B.from(a.buffer, a.byteOffset, a.length).equals(B.from(b.buffer, b.byteOffset, b.length));
}
