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
 * Physically contiguous runs of exported DRAM as columns, no object per run: run i starts
 * `offset[i]` bytes into `pages[page[i]]` and is `length[i]` bytes long (numbers, below 2^53).
 */
export interface DeviceRuns {
  readonly count: number;
  readonly page: Uint32Array;
  readonly offset: Float64Array;
  readonly length: Float64Array;
  /** The page-aligned max segment size (bytes) the runs are to be cut at. */
  readonly maxSeg: number;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * HL-12 [6.7+], first half: skip offset / pageSize whole pages, start at pages[start] +
 * offset % pageSize, and follow the pages while bytes remain and the next page is physically
 * contiguous: each such run is what the driver's loop fills entries from. EINVAL when the aligned
 * max segment is below a page (HL-11) or a size is not below 2^53; ENOMEM when the pages run out
 * before the bytes do. Cutting each run at the max segment from its start gives the entries
 * ({@link layoutChunks}): an entry grows while the run goes on and it stays within the max
 * segment, and one that hits the maximum inside a page is continued by the next at the same page.
 */
export function layoutRuns(input: SgLayoutInput): DeviceRuns {
  const op = 'alloc_sgt_from_device_pages';
  const maxSegBig = input.maxSegSize - (input.maxSegSize % PAGE);
  if (maxSegBig < PAGE) throw new SimError('EINVAL', op, `max segment size ${input.maxSegSize} is below PAGE_SIZE`, 'HL-11');
  const { pages } = input;
  if (input.pageSize <= 0n) throw new SimError('EINVAL', op, 'page size must be positive', 'HL-12');
  if (input.pageSize > SAFE || input.exportedSize > SAFE || input.offset > SAFE || input.exportedSize < 0n || input.offset < 0n) {
    throw new SimError('EINVAL', op, 'page size, exported size and offset must be in 0..2^53-1', 'HL-12');
  }
  // Numbers from here: every length is at most the exported size. One bigint compare per page.
  const pageSize = Number(input.pageSize);
  const np = pages.length;
  let left = Number(input.exportedSize);
  let page = Number(input.offset / input.pageSize);
  let inPage = Number(input.offset % input.pageSize); // bytes of the current page already behind us
  const cap = Math.max(0, Math.min(np - page, Math.ceil((left + inPage) / pageSize)));
  const pg = new Uint32Array(cap);
  const off = new Float64Array(cap);
  const len = new Float64Array(cap);
  let count = 0;
  while (left > 0 && page < np) {
    pg[count] = page;
    off[count] = inPage;
    let l = 0;
    for (;;) {
      const take = Math.min(pageSize - inPage, left);
      l += take;
      left -= take;
      inPage = 0;
      page++;
      if (left === 0 || page >= np || pages[page - 1]! + input.pageSize !== pages[page]) break;
    }
    len[count++] = l;
  }
  if (left > 0) throw new SimError('ENOMEM', op, `${left} bytes left after the last page`, 'HL-12');
  const maxSeg = maxSegBig > SAFE ? Number.MAX_SAFE_INTEGER : Number(maxSegBig);
  return { count, page: pg.subarray(0, count), offset: off.subarray(0, count), length: len.subarray(0, count), maxSeg };
}

/** HL-12 [6.7+]: the entries, each run of {@link layoutRuns} cut at the max segment from its start. */
export function layoutChunks(input: SgLayoutInput): DeviceChunk[] {
  const r = layoutRuns(input);
  const out: DeviceChunk[] = [];
  for (let i = 0; i < r.count; i++) {
    const len = r.length[i]!;
    const at = input.pages[r.page[i]!]! + BigInt(r.offset[i]!);
    for (let o = 0; o < len; o += r.maxSeg) out.push({ devAddr: at + BigInt(o), length: BigInt(Math.min(r.maxSeg, len - o)) });
  }
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
