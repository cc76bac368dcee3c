/**
 * The dma-heap framework (drivers/dma-buf/dma-heap.c): named heaps under /dev/dma_heap/<name>,
 * each a character device whose one ioctl, DMA_HEAP_IOCTL_ALLOC, is reached through Process.ioctl
 * (the heaps' file_operations), as spec/dmabuf.md §C gives it.
 *
 * dma_heap_ioctl: _IOC_NR >= the number of commands -> EINVAL (the ioctl type byte is not
 * checked). The user struct is copied in for its own size (_IOC_SIZE of the user's command):
 * a smaller struct is zero-extended, the extra bytes of a larger one are ignored, and the result
 * goes back for the user's size. Then dma_heap_ioctl_allocate: fd != 0 -> EINVAL; fd_flags
 * outside O_CLOEXEC | O_ACCMODE -> EINVAL; heap_flags outside the (empty) valid set -> EINVAL;
 * dma_heap_buffer_alloc: len = PAGE_ALIGN(len) (wrapping, as on a 64-bit kernel), 0 -> EINVAL;
 * the heap's allocate; dma_buf_fd with fd_flags (on failure the buffer is put).
 */
import { O_RDWR, PAGE_SIZE, SimError, dmaBufFd, type DmaBuf, type FileOperations, type Machine, type Process, uapiU32, uapiU64 } from '../../index.js';
import {
  DMA_HEAP_ALLOCATION_DATA_SIZE,
  DMA_HEAP_IOCTL_ALLOC,
  DMA_HEAP_VALID_FD_FLAGS,
  DMA_HEAP_VALID_HEAP_FLAGS,
  IOC_READ,
  IOC_WRITE,
  decodeAllocationData,
  type DmaHeapAllocationData,
} from './uapi.js';
import { SystemHeap, type SystemHeapOptions } from './system-heap.js';

/** struct dma_heap_ops. */
export interface DmaHeapOps {
  /**
   * Allocates a buffer of `len` bytes (page-aligned, > 0) exported with `fdFlags`; throws a
   * SimError with the errno on failure (ENOMEM, EINTR...).
   */
  allocate(heap: DmaHeap, len: number, fdFlags: number, heapFlags: bigint): DmaBuf;
}

/** struct dma_heap. */
export class DmaHeap {
  /** @internal Use DmaHeaps.add. */
  constructor(
    readonly name: string,
    readonly ops: DmaHeapOps,
    readonly priv: unknown,
  ) {}
}

const U64 = (1n << 64n) - 1n;

/** Options of {@link DmaHeaps.create}. */
export interface DmaHeapsOptions {
  /** Register the "system" heap at creation (module init of system_heap.c). @default true */
  systemHeap?: boolean | SystemHeapOptions;
}

/** The heaps of a machine and their /dev/dma_heap nodes. */
export class DmaHeaps {
  private readonly _heaps = new Map<string, DmaHeap>();
  /**
   * The file_operations of every /dev/dma_heap/<name> node (dma_heap_fops): unlocked_ioctl only,
   * with the heap as the file's private data, reached through Process.ioctl.
   */
  readonly fops: FileOperations<DmaHeap> = {
    name: 'dma_heap',
    ioctl: (file, cmd, arg, proc) => this._ioctl(proc, file.privateData, cmd, arg as DmaHeapAllocationData | Uint8Array | null),
  };
  /** The system heap, when registered. */
  readonly system: SystemHeap | null;

  private constructor(
    readonly machine: Machine,
    opts: DmaHeapsOptions,
  ) {
    if (opts.systemHeap === false) {
      this.system = null;
    } else {
      this.system = new SystemHeap(machine, typeof opts.systemHeap === 'object' ? opts.systemHeap : {});
      this.add('system', this.system, this.system);
    }
  }

  /**
   * The dma-heap framework of `machine`, with the system heap registered unless
   * `opts.systemHeap` is false. Heaps are opened with {@link DmaHeaps.open} and allocated from
   * with DMA_HEAP_IOCTL_ALLOC through Process.ioctl.
   */
  static create(machine: Machine, opts: DmaHeapsOptions = {}): DmaHeaps {
    return new DmaHeaps(machine, opts);
  }

  /**
   * dma_heap_add: registers a heap as /dev/dma_heap/`name`.
   * @throws {@link index!SimError} EINVAL for an empty name, missing allocate, or a name already registered.
   */
  add(name: string, ops: DmaHeapOps, priv: unknown = null): DmaHeap {
    const op = 'dma_heap_add';
    if (typeof name !== 'string' || name === '') throw new SimError('EINVAL', op, 'the heap needs a name');
    if (!ops || typeof ops.allocate !== 'function') throw new SimError('EINVAL', op, 'ops.allocate is required');
    if (this._heaps.has(name)) throw new SimError('EINVAL', op, `a heap named '${name}' is already registered`);
    const heap = new DmaHeap(name, ops, priv);
    this._heaps.set(name, heap);
    return heap;
  }

  /** readdir("/dev/dma_heap"). */
  names(): string[] {
    return [...this._heaps.keys()];
  }

  /**
   * open("/dev/dma_heap/<name>", O_RDWR): the new fd, whose ioctl is DMA_HEAP_IOCTL_ALLOC.
   * @throws {@link index!SimError} ENOENT for an unknown heap; EMFILE when the process's fd table is full.
   */
  open(proc: Process, name: string): number {
    const heap = this._heaps.get(name);
    if (!heap) throw new SimError('ENOENT', 'open', `/dev/dma_heap/${name} does not exist`);
    return proc.open(this.fops, heap, { flags: O_RDWR, name: `/dev/dma_heap/${name}` });
  }

  /**
   * dma_heap_ioctl, from Process.ioctl on a heap fd. `arg` is the user struct: a DmaHeapAllocationData object (the full
   * struct; `fd` is written back) or its raw bytes (at least _IOC_SIZE(cmd) of them, else EFAULT;
   * the fd is written back into the first _IOC_SIZE(cmd) bytes); null is a bad pointer (EFAULT).
   * EINVAL (unknown nr), then the ALLOC checks. Returns 0.
   */
  private _ioctl(proc: Process, heap: DmaHeap, cmd: number, arg: DmaHeapAllocationData | Uint8Array | null): number {
    const op = 'dma_heap_ioctl';
    cmd >>>= 0;
    const nr = cmd & 0xff;
    if (nr >= 1) throw new SimError('EINVAL', op, `ioctl nr ${nr} is not a dma-heap command`);
    const kcmd = DMA_HEAP_IOCTL_ALLOC;
    const usize = (cmd >>> 16) & 0x3fff;
    const udir = cmd >>> 30;
    const kdir = kcmd >>> 30;
    const inSize = udir & kdir & IOC_WRITE ? usize : 0;
    const outSize = udir & kdir & IOC_READ ? usize : 0;
    const ksize = Math.max(inSize, outSize, DMA_HEAP_ALLOCATION_DATA_SIZE);
    const kdata = new Uint8Array(ksize);
    if (arg === null || arg === undefined) {
      if (inSize > 0 || outSize > 0) throw new SimError('EFAULT', op, 'bad argument pointer');
    } else if (arg instanceof Uint8Array) {
      if (arg.length < inSize) throw new SimError('EFAULT', op, `the user struct has ${arg.length} readable bytes, the command copies ${inSize}`);
      kdata.set(arg.subarray(0, inSize));
    } else {
      const full = new Uint8Array(DMA_HEAP_ALLOCATION_DATA_SIZE);
      const v = new DataView(full.buffer);
      v.setBigUint64(0, uapiU64(op, 'len', arg.len), true);
      v.setUint32(8, uapiU32(op, 'fd', arg.fd), true);
      v.setUint32(12, uapiU32(op, 'fd_flags', arg.fdFlags), true);
      v.setBigUint64(16, uapiU64(op, 'heap_flags', arg.heapFlags), true);
      kdata.set(full.subarray(0, Math.min(inSize, DMA_HEAP_ALLOCATION_DATA_SIZE)));
    }
    // switch (kcmd): only ALLOC exists.
    const data = decodeAllocationData(kdata.subarray(0, DMA_HEAP_ALLOCATION_DATA_SIZE));
    const newFd = this._allocate(proc, heap, data);
    new DataView(kdata.buffer).setUint32(8, newFd, true);
    if (arg instanceof Uint8Array) {
      if (arg.length < outSize) throw new SimError('EFAULT', op, 'the user struct is not writable for the whole size');
      arg.set(kdata.subarray(0, outSize));
    } else if (arg && outSize >= 12) {
      arg.fd = newFd;
    }
    return 0;
  }

  /** dma_heap_ioctl_allocate + dma_heap_buffer_alloc. */
  private _allocate(proc: Process, heap: DmaHeap, d: DmaHeapAllocationData): number {
    const op = 'DMA_HEAP_IOCTL_ALLOC';
    if (d.fd !== 0) throw new SimError('EINVAL', op, `fd must be 0 on input, got ${d.fd}`);
    if (d.fdFlags & ~DMA_HEAP_VALID_FD_FLAGS) throw new SimError('EINVAL', op, `fd_flags 0x${(d.fdFlags >>> 0).toString(16)} outside O_CLOEXEC|O_ACCMODE`);
    const heapFlags = BigInt(d.heapFlags);
    if (heapFlags & ~DMA_HEAP_VALID_HEAP_FLAGS & U64) throw new SimError('EINVAL', op, `heap_flags 0x${heapFlags.toString(16)} are not supported`);
    const page = BigInt(PAGE_SIZE);
    const len = BigInt.asUintN(64, BigInt(d.len) + page - 1n) & ~(page - 1n);
    if (len === 0n) throw new SimError('EINVAL', op, 'len is 0 (after PAGE_ALIGN)');
    if (len > BigInt(Number.MAX_SAFE_INTEGER)) throw new SimError('ENOMEM', op, `len ${len} is more than memory`);
    const buf = heap.ops.allocate(heap, Number(len), d.fdFlags, heapFlags);
    try {
      return dmaBufFd(proc, buf, d.fdFlags);
    } catch (e) {
      buf.put();
      throw e;
    }
  }
}
