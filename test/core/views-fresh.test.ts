/**
 * CoreViews hands out views of linear memory without asking the memory for its buffer on every
 * call: a plain memory's grow detaches the old buffer (views of length 0: made again); a shared
 * memory keeps the old buffer at its old length, so it is asked every time.
 */
import { describe, expect, it } from 'vitest';
import { CoreViews } from '../../bindings/core.js';

describe('CoreViews freshness', () => {
  it('a plain memory: views follow a grow, and keep the bytes', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const v = new CoreViews(mem);
    v.u8[100] = 7;
    const before = v.u32;
    expect(v.u8.length).toBe(65536);
    mem.grow(1);
    expect(before.length).toBe(0); // detached by the grow
    expect(v.u8.length).toBe(2 * 65536);
    expect(v.u8[100]).toBe(7);
    expect(v.all.u64.length).toBe((2 * 65536) / 8);
    v.u8[65536 + 5] = 9; // the new page through the new view
    expect(new Uint8Array(mem.buffer)[65536 + 5]).toBe(9);
    // Unchanged memory: the same view object.
    expect(v.u32).toBe(v.u32);
  });

  it('a shared memory: views follow a grow too', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
    const v = new CoreViews(mem);
    v.u8[3] = 5;
    expect(v.u8.length).toBe(65536);
    mem.grow(2);
    expect(v.u8.length).toBe(3 * 65536);
    expect(v.i32.length).toBe((3 * 65536) / 4);
    expect(v.u8[3]).toBe(5);
  });
});
