/**
 * CPU access to page-backed dma-bufs (udmabuf, the system heap): what a userspace mmap or a
 * kernel vmap of such a buffer reaches. The exporter's per-buffer state (dmabuf->priv) is a
 * PageBackedBuffer that knows the physical address of each 4 KiB page; reads and writes through a
 * mapping then go page by page to simulated RAM, so bytes a device DMAs into the buffer are the
 * bytes the CPU sees, and the other way round.
 */
import { DmaBufMmap, SimError, PAGE_SIZE, PROT_WRITE, type DmaBuf, type PhysicalMemory, type VmArea } from '../../index.js';

/** The pages behind a buffer: page i of the buffer is at `pagePhys(i)`. Exporters' priv extends it. */
export abstract class PageBackedBuffer {
  /** Pages in the buffer (4 KiB each). */
  abstract readonly pageCount: number;
  /** Physical address of page `index` (0 <= index < pageCount). */
  abstract pagePhys(index: number): bigint;
}

/** The page list of a page-backed buffer, or undefined for other exporters. */
export function pageBackedOf(buf: DmaBuf): PageBackedBuffer | undefined {
  return buf.priv instanceof PageBackedBuffer ? buf.priv : undefined;
}

function pagesOf(op: string, buf: DmaBuf, code: 'EINVAL' | 'EFAULT'): PageBackedBuffer {
  const pb = pageBackedOf(buf);
  if (!pb) throw new SimError(code, op, `dma-buf ${buf.id} (${buf.expName}) is not page-backed`);
  return pb;
}

/**
 * Physical address of byte `offset` of a page-backed buffer.
 * @throws {@link index!SimError} EINVAL when the buffer is not page-backed; EFAULT for an offset outside its pages.
 */
export function bufferPhys(buf: DmaBuf, offset: number): bigint {
  const pb = pagesOf('bufferPhys', buf, 'EINVAL');
  const idx = Math.floor(offset / PAGE_SIZE);
  if (!Number.isSafeInteger(offset) || offset < 0 || idx >= pb.pageCount) {
    throw new SimError('EFAULT', 'bufferPhys', `offset ${offset} is outside the buffer's ${pb.pageCount} pages`);
  }
  return pb.pagePhys(idx) + BigInt(offset % PAGE_SIZE);
}

function walk(
  op: string,
  pb: PageBackedBuffer,
  firstPage: number,
  pages: number,
  offset: number,
  length: number,
  fn: (pa: bigint, from: number, n: number) => void,
): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new SimError('EINVAL', op, `offset ${offset} / length ${length} must be non-negative integers`);
  }
  // A user access past the VMA is a segfault, past the buffer's pages a SIGBUS: both EFAULT here.
  if (offset + length > pages * PAGE_SIZE) {
    throw new SimError('EFAULT', op, `[${offset}, +${length}) is outside the ${pages}-page mapping`);
  }
  let done = 0;
  while (done < length) {
    const at = offset + done;
    const page = firstPage + Math.floor(at / PAGE_SIZE);
    if (page >= pb.pageCount) throw new SimError('EFAULT', op, `page ${page} is past the buffer (SIGBUS)`);
    const inPage = at % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - inPage, length - done);
    fn(pb.pagePhys(page) + BigInt(inPage), done, n);
    done += n;
  }
}

function mappingPages(op: string, m: VmArea): { pb: PageBackedBuffer; first: number } {
  if (!m.active) throw new SimError('EFAULT', op, 'the mapping was unmapped');
  if (!(m instanceof DmaBufMmap)) throw new SimError('EFAULT', op, 'not a mapping of a dma-buf');
  return { pb: pagesOf(op, m.dmabuf, 'EFAULT'), first: Number(m.pgoff) };
}

/**
 * A load of `length` bytes at byte `offset` of a userspace mapping of a dma-buf (from the VMA start).
 * @throws {@link index!SimError} EFAULT when the mapping is gone, not of a page-backed dma-buf, or the range is
 * outside it or past the buffer (SIGSEGV/SIGBUS); EINVAL for a negative offset or length.
 */
export function mmapRead(mem: PhysicalMemory, m: VmArea, offset: number, length: number): Uint8Array {
  const op = 'mmap read';
  const { pb, first } = mappingPages(op, m);
  const out = new Uint8Array(length);
  walk(op, pb, first, m.pages, offset, length, (pa, from, n) => out.set(mem.read(pa, n), from));
  return out;
}

/**
 * A store through a userspace mapping of a dma-buf.
 * @throws {@link index!SimError} EFAULT when the mapping is gone, not writable, not of a page-backed dma-buf, or the
 * range is outside it or past the buffer; EINVAL for a negative offset.
 */
export function mmapWrite(mem: PhysicalMemory, m: VmArea, offset: number, data: Uint8Array): void {
  const op = 'mmap write';
  const { pb, first } = mappingPages(op, m);
  if ((m.prot & PROT_WRITE) === 0) throw new SimError('EFAULT', op, 'the mapping is not writable (SIGSEGV)');
  walk(op, pb, first, m.pages, offset, data.length, (pa, from, n) => mem.write(pa, data.subarray(from, from + n)));
}

/**
 * A kernel access through vmap (or any CPU access to the whole buffer): read.
 * @throws {@link index!SimError} EINVAL when the buffer is not page-backed or offset/length are negative; EFAULT for
 * a range past the buffer.
 */
export function bufferRead(mem: PhysicalMemory, buf: DmaBuf, offset: number, length: number): Uint8Array {
  const op = 'vmap read';
  const pb = pagesOf(op, buf, 'EINVAL');
  const out = new Uint8Array(length);
  walk(op, pb, 0, pb.pageCount, offset, length, (pa, from, n) => out.set(mem.read(pa, n), from));
  return out;
}

/**
 * A kernel access through vmap: write.
 * @throws {@link index!SimError} EINVAL when the buffer is not page-backed or the offset is negative; EFAULT for a
 * range past the buffer.
 */
export function bufferWrite(mem: PhysicalMemory, buf: DmaBuf, offset: number, data: Uint8Array): void {
  const op = 'vmap write';
  const pb = pagesOf(op, buf, 'EINVAL');
  walk(op, pb, 0, pb.pageCount, offset, data.length, (pa, from, n) => mem.write(pa, data.subarray(from, from + n)));
}

/** A fake kernel virtual address for vmap (vmalloc space), distinct per buffer. */
export function fakeVmapAddress(buf: DmaBuf): bigint {
  return 0xffff_c900_0000_0000n + (BigInt(buf.id) << 32n);
}
