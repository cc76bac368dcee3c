/**
 * How habanalabs cuts exported device memory into sg entries (HL-12), as pure functions over
 * DRAM addresses. The exporter then maps each chunk for the importer (dma_map_resource).
 */
import { SimError } from '../../index.js';

const PAGE = 4096n;

/** One sg entry before mapping: a DRAM (device) address and a length in bytes. */
export interface DeviceChunk {
  readonly devAddr: bigint;
  readonly length: bigint;
}

/** Inputs of the [6.7+] algorithm. */
export interface SgLayoutInput {
  /** Start addresses of the DRAM pages, in buffer order. */
  readonly pages: readonly bigint[];
  readonly pageSize: bigint;
  /** dmabuf->size: bytes to describe. */
  readonly exportedSize: bigint;
  /** Byte offset of the export inside the pages. */
  readonly offset: bigint;
  /** dma_get_max_seg_size(importer), before the PAGE_SIZE alignment. */
  readonly maxSegSize: bigint;
}

/**
 * The HL-12 [6.7+] layout as columns, no object per chunk: chunk i starts `offset[i]` bytes into
 * `pages[page[i]]` and is `length[i]` bytes long. Sizes are numbers (below 2^53).
 */
export interface DeviceChunkColumns {
  readonly count: number;
  readonly page: Uint32Array;
  readonly offset: Float64Array;
  readonly length: Float64Array;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * HL-12 [6.7+]: skip offset / pageSize whole pages, start at pages[start] + offset % pageSize,
 * grow an entry while bytes remain, the next page is physically contiguous and the entry stays
 * within the (page-aligned) max segment size; an entry that hits the maximum inside a page is
 * continued by the next one at the same page. EINVAL when the aligned max segment is below a
 * page, or a size is not below 2^53; ENOMEM when the pages run out before the bytes do.
 */
export function layoutChunkColumns(input: SgLayoutInput): DeviceChunkColumns {
  const op = 'alloc_sgt_from_device_pages';
  const maxSegBig = input.maxSegSize - (input.maxSegSize % PAGE);
  if (maxSegBig < PAGE) throw new SimError('EINVAL', op, `max segment size ${input.maxSegSize} is below PAGE_SIZE`, 'HL-11');
  const { pages } = input;
  if (input.pageSize <= 0n) throw new SimError('EINVAL', op, 'page size must be positive', 'HL-12');
  if (input.pageSize > SAFE || input.exportedSize > SAFE || input.offset > SAFE || input.exportedSize < 0n || input.offset < 0n) {
    throw new SimError('EINVAL', op, 'page size, exported size and offset must be in 0..2^53-1', 'HL-12');
  }
  // Numbers from here: every length is at most the exported size.
  const pageSize = Number(input.pageSize);
  const maxSeg = maxSegBig > SAFE ? Number.MAX_SAFE_INTEGER : Number(maxSegBig);
  const np = pages.length;
  // Whether page p follows page p - 1 physically: one bigint compare per page, not per chunk.
  const follows = new Uint8Array(np);
  for (let p = 1; p < np; p++) follows[p] = pages[p - 1]! + input.pageSize === pages[p] ? 1 : 0;
  const left = Number(input.exportedSize);
  const page = Math.floor(Number(input.offset) / pageSize);
  const inPage = Number(input.offset % input.pageSize); // bytes of the current page already behind us
  // Chunks end at a max segment, at a page boundary, or at the last byte: a bound on the count
  // from the bytes the pages can give.
  const bytes = Math.min(left, Math.max(0, (np - page) * pageSize - inPage));
  const cap = Math.ceil(bytes / maxSeg) + Math.min(Math.ceil(bytes / pageSize) + 1, np) + 2;
  const out: DeviceChunkColumns = { count: 0, page: new Uint32Array(cap), offset: new Float64Array(cap), length: new Float64Array(cap) };
  const count = layoutLoop(out, follows, pageSize, maxSeg, left, page, inPage);
  if (count < 0) {
    let placed = 0;
    for (const l of out.length) placed += l;
    throw new SimError('ENOMEM', op, `${left - placed} bytes left after the last page`, 'HL-12');
  }
  return { count, page: out.page.subarray(0, count), offset: out.offset.subarray(0, count), length: out.length.subarray(0, count) };
}

/**
 * The HL-12 loop: `left` bytes from `inPage` bytes into page `page`, chunks into `out`; returns
 * the count, or -1 when the pages ran out first. A leaf function with nothing after its loop,
 * so that V8 optimizes it once (code compiled inside a loop has no feedback for what follows
 * it, and is thrown away again on each call).
 */
function layoutLoop(
  out: DeviceChunkColumns, follows: Uint8Array, pageSize: number, maxSeg: number, left: number, page: number, inPage: number,
): number {
  const np = follows.length;
  const pg = out.page;
  const off = out.offset;
  const len = out.length;
  let count = 0;
  while (left > 0 && page < np) {
    pg[count] = page;
    off[count] = inPage;
    let l = 0;
    for (;;) {
      const take = Math.min(pageSize - inPage, left, maxSeg - l);
      l += take;
      left -= take;
      inPage += take;
      if (inPage === pageSize) {
        inPage = 0;
        page++;
        const contiguous = page < np && follows[page] === 1;
        if (left === 0 || l === maxSeg || !contiguous) break;
      } else if (left === 0 || l === maxSeg) {
        break;
      }
    }
    len[count++] = l;
  }
  return left > 0 ? -1 : count;
}

/** HL-12 [6.7+] as chunk objects: see {@link layoutChunkColumns}. */
export function layoutChunks(input: SgLayoutInput): DeviceChunk[] {
  const c = layoutChunkColumns(input);
  const out: DeviceChunk[] = new Array<DeviceChunk>(c.count);
  for (let i = 0; i < c.count; i++) out[i] = { devAddr: input.pages[c.page[i]!]! + BigInt(c.offset[i]!), length: BigInt(c.length[i]!) };
  return out;
}

/** The 5.15 chunk limit (the scatterlist length is an unsigned int). */
export const DMA_BUF_CHUNK_MAX_SIZE = 512n << 20n;

/**
 * HL-12 [5.15]: merge physically contiguous pages into entries of at most 512 MiB; every page
 * is described in full (no exported-size trimming, no offset, no importer max segment size).
 */
export function layoutChunks515(pages: readonly bigint[], pageSize: bigint): DeviceChunk[] {
  const out: DeviceChunk[] = [];
  let i = 0;
  while (i < pages.length) {
    let len = pageSize;
    let j = i + 1;
    while (j < pages.length && pages[j - 1]! + pageSize === pages[j] && len + pageSize <= DMA_BUF_CHUNK_MAX_SIZE) {
      len += pageSize;
      j++;
    }
    out.push({ devAddr: pages[i]!, length: len });
    i = j;
  }
  return out;
}
