import { describe, expect, it } from 'vitest';
import { layoutChunks, layoutChunks515 } from '../../../src/drivers/accel/index.js';

const K = 1024n;
const M = 1024n * K;
const chunks = (c: { devAddr: bigint; length: bigint }[]) => c.map((x) => [x.devAddr, x.length]);

describe('HL-12 sg layout', () => {
  it('HL-12 [6.x] merges contiguous pages, skips whole pages of the offset and starts inside the page', () => {
    const c = layoutChunks({ pages: [0n, 2n * M, 4n * M, 8n * M], pageSize: 2n * M, exportedSize: 5n * M, offset: 3n * M, maxSegSize: 4n * M });
    expect(chunks(c)).toEqual([[3n * M, 3n * M], [8n * M, 2n * M]]);
  });

  it('HL-12 [6.x] an entry that reaches max_seg inside a page is continued at +chunk', () => {
    const c = layoutChunks({ pages: [0n, 8n * K, 16n * K], pageSize: 8n * K, exportedSize: 24n * K, offset: 0n, maxSegSize: 12n * K });
    expect(chunks(c)).toEqual([[0n, 12n * K], [12n * K, 12n * K]]);
  });

  it('HL-12 [6.x] max_seg is aligned down to PAGE_SIZE; a page larger than it is split', () => {
    const c = layoutChunks({ pages: [0x1000_0000n], pageSize: 10n * K, exportedSize: 10n * K, offset: 0n, maxSegSize: 4n * K + 100n });
    expect(chunks(c)).toEqual([[0x1000_0000n, 4n * K], [0x1000_1000n, 4n * K], [0x1000_2000n, 2n * K]]);
  });

  it('HL-12 [6.x] the exported size trims the last entry; bytes left after the last page are ENOMEM', () => {
    const c = layoutChunks({ pages: [0n, 2n * M], pageSize: 2n * M, exportedSize: 3n * M + 5n, offset: 0n, maxSegSize: 1n << 32n });
    expect(chunks(c)).toEqual([[0n, 3n * M + 5n]]);
    expect(() => layoutChunks({ pages: [0n], pageSize: 2n * M, exportedSize: 2n * M, offset: 4096n, maxSegSize: 1n << 32n }))
      .toThrowError(expect.objectContaining({ code: 'ENOMEM', rule: 'HL-12' }));
  });

  it('HL-11 max_seg below PAGE_SIZE after alignment is EINVAL', () => {
    expect(() => layoutChunks({ pages: [0n], pageSize: 8192n, exportedSize: 8192n, offset: 0n, maxSegSize: 4095n }))
      .toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'HL-11' }));
  });

  it('HL-12 [5.15] merges contiguous pages up to 512 MiB, whole pages only', () => {
    const pages = Array.from({ length: 40 }, (_, i) => BigInt(i) * 32n * M);
    expect(chunks(layoutChunks515(pages, 32n * M))).toEqual([[0n, 512n * M], [512n * M, 512n * M], [1024n * M, 256n * M]]);
    expect(chunks(layoutChunks515([0n, 64n * M, 96n * M], 32n * M))).toEqual([[0n, 32n * M], [64n * M, 64n * M]]);
  });
});
