/**
 * A process of a machine with a dma-buf kernel: the process layer's Process (fd table, address
 * space, VFS calls dispatched to each file's operations) plus the two kernel helpers that tie a
 * dma-buf to an fd table, dma_buf_fd (DB-04) and dma_buf_get (DB-05). The dma-buf system calls
 * themselves (llseek, mmap, ioctl, poll, fdinfo) are dma-buf's file operations (file.ts).
 */
import { intArg, show } from '../util/args.js';
import { SimError } from '../../bindings/errors.js';
import { Process, type ProcessOptions, type SimFile } from '../process/index.js';
import { O_CLOEXEC } from './constants.js';
import { DmaBuf } from './dma-buf.js';
import { DmaBufFile, SyncFileFile } from './file.js';
import type { DmaBufKernel } from './kernel.js';

export type { DmaBufSyncArg, DmaBufSyncFileArg, DmaBufNameArg } from './file.js';
export type { MmapRequest } from '../process/index.js';

/** A driver's file (neither a dma-buf nor a sync_file). */
export type OtherFile = SimFile & { readonly kind: 'other' };

/**
 * What an fd points at, narrowed by `kind`: a dma-buf's file (`.dmabuf`), a sync_file's
 * (`.sync`), or any other driver's file. dma-buf files are shared by every fd that dup'ed them.
 */
export type OpenFile = DmaBufFile | SyncFileFile | OtherFile;

/** Options of a new SimProcess: those of the process layer's Process. */
export type SimProcessOptions = ProcessOptions;

/**
 * A simulated process attached to a dma-buf kernel. Errors are the errno userspace would see;
 * an interrupted wait is EINTR.
 */
export class SimProcess extends Process {
  /** @throws {@link SimError} EINVAL when fdLimit is not a non-negative integer. */
  constructor(
    readonly kernel: DmaBufKernel,
    opts: SimProcessOptions = {},
  ) {
    super(opts);
  }

  /**
   * What `fd` refers to, narrowed by `kind`.
   * @throws {@link SimError} EBADF when `fd` is not open.
   */
  override file(fd: number): OpenFile {
    return super.file(fd) as OpenFile;
  }

  /**
   * dma_buf_fd (DB-04): installs the buffer's file; the caller's kernel reference becomes the
   * fd's. Only O_CLOEXEC in `flags` matters. Call with resv NOT held (DB-25).
   * @throws {@link SimError} as {@link dmaBufFd}.
   */
  dmaBufFd(dmabuf: DmaBuf, flags = 0): number {
    return dmaBufFd(this, dmabuf, flags);
  }

  /**
   * dma_buf_get (DB-05): a new kernel reference from an fd. Each success needs a `put()`.
   * Call with resv NOT held (DB-25).
   * @throws {@link SimError} as {@link dmaBufGet}.
   */
  dmaBufGet(fd: number): DmaBuf {
    return dmaBufGet(this, fd);
  }
}

/**
 * dma_buf_fd (DB-04) in `proc`: installs the buffer's file; the caller's kernel reference becomes
 * the fd's. Only O_CLOEXEC in `flags` matters. Call with resv NOT held (DB-25).
 * @throws {@link SimError} EINVAL for a null or released buffer, or (strict mode) with resv
 * held; EMFILE when the table is full (the reference stays the caller's).
 */
export function dmaBufFd(proc: Process, dmabuf: DmaBuf, flags = 0): number {
  const op = 'dma_buf_fd';
  if (!(dmabuf instanceof DmaBuf)) throw new SimError('EINVAL', op, 'dmabuf must be a DmaBuf', 'DB-04');
  if (proc instanceof SimProcess && proc.kernel !== dmabuf.kernel) {
    throw new SimError('EINVAL', op, `dma-buf ${dmabuf.id} belongs to another machine's kernel`, 'DB-04');
  }
  dmabuf._assertAlive(op);
  intArg(op, 'flags', flags, -(2 ** 31), 2 ** 32 - 1);
  dmabuf.kernel._checkLock(dmabuf.resv, false, op, dmabuf._ids());
  const fd = proc.fdInstall(dmabuf.file, { cloexec: (flags & O_CLOEXEC) !== 0 }, op);
  dmabuf.kernel.emit({ kind: 'fd', dmaBufId: dmabuf.id, detail: { process: proc.name, fd, count: dmabuf.fileCount } });
  return fd;
}

/**
 * dma_buf_get (DB-05) in `proc`: a new kernel reference from an fd. Each success needs a
 * `put()`. Call with resv NOT held (DB-25).
 * @throws {@link SimError} EBADF when `fd` is not open; EINVAL when it is not a dma-buf, or
 * (strict mode) with resv held.
 */
export function dmaBufGet(proc: Process, fd: number): DmaBuf {
  const op = 'dma_buf_get';
  const file = fileFor(proc, fd, op);
  if (!(file instanceof DmaBufFile)) throw new SimError('EINVAL', op, `fd ${show(fd)} is not a dma-buf`, 'DB-05');
  file.dmabuf.kernel._checkLock(file.dmabuf.resv, false, op, file.dmabuf._ids());
  return file.dmabuf.get();
}

function fileFor(proc: Process, fd: number, op: string): SimFile {
  try {
    return proc.file(fd);
  } catch (e) {
    if (e instanceof SimError && e.code === 'EBADF') throw new SimError('EBADF', op, `fd ${show(fd)} is not open in ${proc.name}`);
    throw e;
  }
}
