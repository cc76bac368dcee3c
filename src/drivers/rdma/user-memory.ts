/**
 * Memory of a simulated process for RDMA user buffers: a virtual range (from the Machine's user
 * address space) backed by RAM frames. The host reads and writes it (a test writing a pattern,
 * reading it back) through caller-supplied buffers, one host access per physically contiguous run.
 */
import { PAGE_SIZE, SimError, type Machine } from '../../index.js';

const PAGE = BigInt(PAGE_SIZE);

/** Memory of a simulated process: a virtual range backed by RAM frames (one per page). */
export interface UserBuffer {
  /** Virtual address of the first byte. */
  readonly addr: bigint;
  readonly length: number;
  /** Physical address of each page of [ALIGN_DOWN(addr), ALIGN(addr + length)). */
  readonly pages: readonly bigint[];
}

/** A UserBuffer with CPU access and a way to give the frames back. */
export interface UserMemory extends UserBuffer {
  /** Reads [offset, offset + length) into `out` (at its start) when given, else into a new buffer. */
  read(offset: number, length: number, out?: Uint8Array): Uint8Array;
  write(offset: number, data: Uint8Array): void;
  free(): void;
}

/**
 * Splits `pages` (page addresses) into runs of physically consecutive pages, [first pa, pages].
 * What pin_user_pages and sg_alloc_table_from_pages work over: ranges, not single pages.
 */
export function pageRuns(pages: readonly bigint[]): [bigint, number][] {
  const runs: [bigint, number][] = [];
  for (const pa of pages) {
    const last = runs[runs.length - 1];
    if (last && last[0] + BigInt(last[1]) * PAGE === pa) last[1]++;
    else runs.push([pa, 1]);
  }
  return runs;
}

/**
 * Allocates a process buffer of `length` bytes starting `pageOffset` bytes into its first page,
 * backed by RAM frames (one contiguous run, or one frame per page with `scattered`).
 */
export function allocUserMemory(
  machine: Machine,
  length: number,
  opts: { pageOffset?: number; scattered?: boolean; addr?: bigint } = {},
): UserMemory {
  const op = 'allocUserMemory';
  const pageOffset = opts.pageOffset ?? 0;
  if (!Number.isSafeInteger(length) || length < 1) throw new SimError('EINVAL', op, `length must be a positive integer, got ${length}`);
  if (!Number.isInteger(pageOffset) || pageOffset < 0 || pageOffset >= PAGE_SIZE) {
    throw new SimError('EINVAL', op, `pageOffset must be within 0..${PAGE_SIZE - 1}`);
  }
  const n = Math.ceil((pageOffset + length) / PAGE_SIZE);
  const mem = machine.sim.memory;
  const pages: bigint[] = [];
  const runs: [bigint, number][] = [];
  if (opts.scattered) {
    for (let i = 0; i < n; i++) {
      const pa = mem.allocFrames(1);
      pages.push(pa);
      runs.push([pa, 1]);
      if (i + 1 < n) runs.push([mem.allocFrames(1), 1]); // a hole, so the next frame is not contiguous
    }
  } else {
    const base = mem.allocFrames(n);
    runs.push([base, n]);
    for (let i = 0; i < n; i++) pages.push(base + BigInt(i) * PAGE);
  }
  const va = opts.addr ?? machine.allocUserVa(n);
  const addr = (va - (va % PAGE)) + BigInt(pageOffset);
  /** Calls fn for each physically contiguous piece of [offset, offset + len). */
  const access = (offset: number, len: number, fn: (pa: bigint, from: number, n: number) => void): void => {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + len > length) {
      throw new SimError('EFAULT', op, `[${offset}, +${len}) is outside the ${length}-byte buffer`);
    }
    let done = 0;
    while (done < len) {
      const at = pageOffset + offset + done;
      const first = Math.floor(at / PAGE_SIZE);
      let last = first;
      while (last + 1 < n && (last + 1 - first) * PAGE_SIZE < len - done + (at % PAGE_SIZE) && pages[last + 1] === pages[last]! + PAGE) last++;
      const take = Math.min((last + 1) * PAGE_SIZE - at, len - done);
      fn(pages[first]! + BigInt(at % PAGE_SIZE), done, take);
      done += take;
    }
  };
  return {
    addr,
    length,
    pages,
    read(offset, len, out) {
      if (out !== undefined && (!(out instanceof Uint8Array) || out.length < len)) {
        throw new SimError('EINVAL', op, `out must be a Uint8Array of at least ${len} bytes`);
      }
      const dst = out ?? new Uint8Array(len);
      access(offset, len, (pa, from, k) => mem.readInto(pa, dst.subarray(from, from + k)));
      return dst;
    },
    write(offset, data) {
      access(offset, data.length, (pa, from, k) => mem.write(pa, data.subarray(from, from + k)));
    },
    free() {
      for (const [pa, k] of runs) mem.freeFrames(pa, k);
    },
  };
}
