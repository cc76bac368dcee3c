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
 * HL-12 [6.7+]: skip offset / pageSize whole pages, start at pages[start] + offset % pageSize,
 * grow an entry while bytes remain, the next page is physically contiguous and the entry stays
 * within the (page-aligned) max segment size; an entry that hits the maximum inside a page is
 * continued by the next one at the same page. EINVAL when the aligned max segment is below a
 * page; ENOMEM when the pages run out before the bytes do.
 */
export function layoutChunks(input: SgLayoutInput): DeviceChunk[] {
  const op = 'alloc_sgt_from_device_pages';
  const maxSeg = input.maxSegSize - (input.maxSegSize % PAGE);
  if (maxSeg < PAGE) throw new SimError('EINVAL', op, `max segment size ${input.maxSegSize} is below PAGE_SIZE`, 'HL-11');
  const { pages, pageSize } = input;
  if (pageSize <= 0n) throw new SimError('EINVAL', op, 'page size must be positive', 'HL-12');
  let left = input.exportedSize;
  let page = Number(input.offset / pageSize);
  let inPage = input.offset % pageSize; // bytes of the current page already behind us
  const out: DeviceChunk[] = [];
  while (left > 0n && page < pages.length) {
    const start = pages[page]! + inPage;
    let len = 0n;
    for (;;) {
      const take = min3(pageSize - inPage, left, maxSeg - len);
      len += take;
      left -= take;
      inPage += take;
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
  if (left > 0n) throw new SimError('ENOMEM', op, `${left} bytes left after the last page`, 'HL-12');
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

function min3(a: bigint, b: bigint, c: bigint): bigint {
  let m = a < b ? a : b;
  if (c < m) m = c;
  return m;
}
