// The fast typed-array equality of setup-bytes.ts still tells arrays apart.
import { describe, expect, it } from 'vitest';

describe('typed-array equality', () => {
  it('equal bytes are equal; one differing byte, a length or a type difference is not', () => {
    const a = new Uint8Array(1 << 20).map((_, i) => i * 7);
    expect(a).toEqual(a.slice());
    const b = a.slice();
    b[b.length - 1] ^= 1;
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(a.subarray(1));
    expect(new Uint8Array([1, 2])).not.toEqual(new Int8Array([1, 2]));
    expect(new Float64Array([NaN])).toEqual(new Float64Array([NaN]));
    expect(new BigUint64Array([1n])).not.toEqual(new BigUint64Array([2n]));
    expect(() => expect(a).toEqual(b)).toThrow();
  });
});
