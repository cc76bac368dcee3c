/**
 * The files of the dma-buf framework and their file_operations (drivers/dma-buf/dma-buf.c
 * dma_buf_fops, drivers/dma-buf/sync_file.c sync_file_fops), registered through the process
 * layer like any driver's: llseek (DB-19), mmap (DB-18), the dma-buf ioctls (DB-20..DB-22),
 * poll (DB-23), show_fdinfo (DB-26) and release (DB-05).
 *
 * A buffer's file is `dmabuf.file`, one per buffer, shared by every fd and mapping of it. Its
 * reference count is the buffer's (kernel gets, fds, mmaps): the last put releases the buffer.
 */
import { show } from '../util/args.js';
import { SimError } from '../../bindings/errors.js';
import { SimFile, uapiU64, type FileOperations, type FileRefKind, type Process, type VmAreaInit } from '../process/index.js';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_NAME_LEN,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_VALID_FLAGS_MASK,
  DMA_BUF_SYNC_WRITE,
  DmaDataDirection,
  EPOLLIN,
  EPOLLOUT,
  SEEK_END,
  SEEK_SET,
} from './constants.js';
import type { DmaBuf, DmaBufMmap } from './dma-buf.js';
import { DmaResvUsage, dmaResvUsageRw } from './resv.js';
import { SyncFile } from './sync-file.js';

/** struct dma_buf_sync, DMA_BUF_IOCTL_SYNC's argument. A null argument stands for a bad user pointer (EFAULT). */
export interface DmaBufSyncArg {
  /** DMA_BUF_SYNC_START or DMA_BUF_SYNC_END, with DMA_BUF_SYNC_READ and/or DMA_BUF_SYNC_WRITE (a u64). */
  flags: number | bigint;
}
/** struct dma_buf_export_sync_file / dma_buf_import_sync_file; `fd` is written back on export. */
export interface DmaBufSyncFileArg {
  /** DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE or both. */
  flags: number;
  /** The sync_file fd: written by EXPORT_SYNC_FILE, read by IMPORT_SYNC_FILE. */
  fd: number;
}
/** The user string of SET_NAME: text, raw bytes (NUL-terminated or not), or null for a bad pointer. */
export type DmaBufNameArg = string | Uint8Array | null;

/**
 * dmabuf->file. Its references are the buffer's: taking or dropping one goes through the
 * buffer's checks (a drop that would release a vmapped or attached buffer is refused).
 */
export class DmaBufFile extends SimFile<DmaBuf> {
  override readonly kind = 'dma-buf' as const;

  /** @internal Made by dma_buf_export. */
  constructor(dmabuf: DmaBuf) {
    super(dmaBufFops, dmabuf, { flags: dmabuf.fileFlags, name: `dmabuf:${dmabuf.id}` });
  }

  /** The buffer this is the file of (file->private_data). */
  get dmabuf(): DmaBuf {
    return this.privateData;
  }

  /**
   * get_file on the buffer's file.
   * @throws {@link SimError} EINVAL when the buffer was released.
   */
  override get(kind: FileRefKind = 'kernel'): this {
    this.privateData._assertAlive('get_file');
    return super.get(kind);
  }

  /**
   * fput on the buffer's file; the last reference releases the buffer (DB-05).
   * @throws {@link SimError} EINVAL when no reference of `kind` is held, or the last reference
   * would go while the buffer is vmapped or attached (nothing changes).
   */
  override put(kind: FileRefKind = 'kernel', op = 'fput'): void {
    this.privateData._beforePut(kind, op);
    super.put(kind, op);
  }

  /**
   * fd_install of the buffer's file (DB-04).
   * @throws {@link SimError} EINVAL when the buffer was released or no kernel reference is held.
   */
  override kernelRefToFd(op: string): void {
    this.privateData._beforeFdInstall(op);
    super.kernelRefToFd(op);
  }
}

/** A sync_file's file (sync_file->file): readable once every fence signaled. */
export class SyncFileFile extends SimFile<SyncFile> {
  override readonly kind = 'sync-file' as const;

  /** sync_file_create's file: one kernel reference, to install with Process.fdInstall. */
  constructor(sync: SyncFile) {
    super(syncFileFops, sync, { flags: 0, name: 'sync_file' });
  }

  /** The sync_file (file->private_data). */
  get sync(): SyncFile {
    return this.privateData;
  }
}

/** sync_file_fops: poll and release (SYNC_IOC_MERGE/FILE_INFO are not modelled: ENOTTY). */
export const syncFileFops: FileOperations<SyncFile> = Object.freeze<FileOperations<SyncFile>>({
  name: 'sync_file',
  poll: (file) => (file.privateData.isSignaled() ? EPOLLIN : 0),
  release: () => {},
});

/**
 * dma_buf_fops: the file operations of every dma-buf file, reached through Process.llseek, mmap,
 * ioctl, poll and fdinfo on a dma-buf fd. Their errors, as userspace sees them:
 *  - llseek (DB-19): only offset 0 with SEEK_END (the size) or SEEK_SET (0); anything else EINVAL.
 *  - mmap (DB-18): EINVAL without an exporter mmap op or past the buffer's whole pages, then the
 *    exporter's errors (after the VFS checks of Process.mmap).
 *  - ioctl: ENOTTY for an unknown command, and for EXPORT/IMPORT_SYNC_FILE under the '5.15'
 *    profile. DMA_BUF_IOCTL_SYNC (DB-20): EFAULT for a null argument, EINVAL for flags outside
 *    READ|WRITE|END or with neither READ nor WRITE, the exporter's begin/end_cpu_access errors,
 *    EINTR when the fence wait is interrupted. DMA_BUF_SET_NAME (DB-21): EFAULT for a null name,
 *    EINVAL for a name of DMA_BUF_NAME_LEN bytes or more, EBUSY under '5.15' while attached.
 *    EXPORT_SYNC_FILE / IMPORT_SYNC_FILE (DB-22): EFAULT for a null argument, EINVAL for flags
 *    that are not READ, WRITE or both, EINVAL (import) when `fd` is not a sync_file, EMFILE
 *    (export) when the fd table is full.
 *  - poll (DB-23): EPOLLIN once the WRITE-usage fences signaled, EPOLLOUT once the READ-usage
 *    ones did; never fails.
 */
export const dmaBufFops: FileOperations<DmaBuf> = Object.freeze<FileOperations<DmaBuf>>({
  name: 'dma-buf',
  rule: 'DB-18',
  llseek: (file, offset, whence) => dmaBufLlseek(file.privateData, offset, whence),
  mmap: (file, init) => dmaBufMmapInternal(file.privateData, init),
  ioctl: (file, cmd, arg, proc) => dmaBufIoctl(file.privateData, cmd, arg, proc),
  poll: (file, events) => dmaBufPoll(file.privateData, events),
  showFdinfo: (file) => file.privateData.fdinfoLines(),
  release: (file) => file.privateData._release(),
});

/** dma_buf_llseek (DB-19): SEEK_END/0 gives the size, SEEK_SET/0 gives 0, all else EINVAL. */
function dmaBufLlseek(buf: DmaBuf, offset: bigint, whence: number): bigint {
  const op = 'llseek';
  if (offset !== 0n) throw new SimError('EINVAL', op, `offset must be 0, got ${offset}`, 'DB-19');
  if (whence === SEEK_END) return BigInt(buf.size);
  if (whence === SEEK_SET) return 0n;
  throw new SimError('EINVAL', op, `whence must be SEEK_SET or SEEK_END, got ${whence}`, 'DB-19');
}

/** dma_buf_mmap_internal (DB-18): after the VFS checks, the range check and the exporter's mmap. */
function dmaBufMmapInternal(buf: DmaBuf, init: VmAreaInit): DmaBufMmap {
  return buf._mmap(init, 'mmap');
}

/**
 * dma_buf_poll (DB-23): EPOLLIN once the WRITE-class fences signaled, EPOLLOUT once the
 * READ-class ones did.
 */
function dmaBufPoll(buf: DmaBuf, events: number): number {
  const resv = buf.resv;
  let ready = 0;
  if (events & EPOLLIN && resv.testSignaled(DmaResvUsage.WRITE)) ready |= EPOLLIN;
  if (events & EPOLLOUT && resv.testSignaled(DmaResvUsage.READ)) ready |= EPOLLOUT;
  return ready;
}

/**
 * dma_buf_ioctl (DB-20..DB-22). Unknown commands: ENOTTY. Returns 0; EXPORT_SYNC_FILE writes the
 * new fd into `arg.fd`.
 */
function dmaBufIoctl(buf: DmaBuf, cmd: number, arg: unknown, proc: Process): number {
  const syncFiles = buf.kernel.profile.syncFileIoctls;
  switch (cmd) {
    case DMA_BUF_IOCTL_SYNC:
      return sync(buf, arg as DmaBufSyncArg | null);
    case DMA_BUF_SET_NAME_A:
    case DMA_BUF_SET_NAME_B:
      return setName(buf, arg as DmaBufNameArg);
    case DMA_BUF_IOCTL_EXPORT_SYNC_FILE:
      if (syncFiles) return exportSyncFile(buf, arg as DmaBufSyncFileArg | null, proc);
      break;
    case DMA_BUF_IOCTL_IMPORT_SYNC_FILE:
      if (syncFiles) return importSyncFile(buf, arg as DmaBufSyncFileArg | null, proc);
      break;
  }
  throw new SimError('ENOTTY', 'ioctl', `unknown dma-buf ioctl 0x${(cmd >>> 0).toString(16)}`, 'DB-20');
}

function sync(buf: DmaBuf, arg: DmaBufSyncArg | null): number {
  const op = 'DMA_BUF_IOCTL_SYNC';
  if (!arg || typeof arg !== 'object') throw new SimError('EFAULT', op, 'bad argument pointer', 'DB-20');
  const flags = uapiU64(op, 'flags', arg.flags);
  if (flags & ~BigInt(DMA_BUF_SYNC_VALID_FLAGS_MASK)) {
    throw new SimError('EINVAL', op, `flags 0x${flags.toString(16)} outside READ|WRITE|END`, 'DB-20');
  }
  const rw = Number(flags & BigInt(DMA_BUF_SYNC_RW));
  const dir =
    rw === DMA_BUF_SYNC_READ
      ? DmaDataDirection.FROM_DEVICE
      : rw === DMA_BUF_SYNC_WRITE
        ? DmaDataDirection.TO_DEVICE
        : rw === DMA_BUF_SYNC_RW
          ? DmaDataDirection.BIDIRECTIONAL
          : undefined;
  if (dir === undefined) throw new SimError('EINVAL', op, 'flags must include READ and/or WRITE', 'DB-20');
  // An interrupted wait throws ERESTARTSYS; the syscall exit (Process.ioctl) makes it EINTR.
  if (flags & BigInt(DMA_BUF_SYNC_END)) buf.endCpuAccess(dir);
  else buf.beginCpuAccess(dir);
  return 0;
}

function setName(buf: DmaBuf, arg: DmaBufNameArg): number {
  const op = 'DMA_BUF_SET_NAME';
  if (typeof arg !== 'string' && !(arg instanceof Uint8Array)) throw new SimError('EFAULT', op, 'bad name pointer', 'DB-21');
  let bytes = typeof arg === 'string' ? new TextEncoder().encode(arg) : arg;
  const nul = bytes.indexOf(0);
  if (nul >= 0) bytes = bytes.subarray(0, nul);
  if (bytes.length + 1 > DMA_BUF_NAME_LEN) {
    throw new SimError('EINVAL', op, `name is ${bytes.length} bytes; at most ${DMA_BUF_NAME_LEN - 1} fit with the NUL`, 'DB-21');
  }
  buf._setName(new TextDecoder().decode(bytes), op);
  return 0;
}

function exportSyncFile(buf: DmaBuf, arg: DmaBufSyncFileArg | null, proc: Process): number {
  const op = 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE';
  if (!arg || typeof arg !== 'object') throw new SimError('EFAULT', op, 'bad argument pointer', 'DB-22');
  checkSyncFileFlags(op, arg.flags);
  const fences = buf.resv.getFences(dmaResvUsageRw((arg.flags & DMA_BUF_SYNC_WRITE) !== 0));
  const sync = new SyncFile(fences.length > 0 ? fences : [buf.kernel.getStub()]);
  arg.fd = proc.fdInstall(new SyncFileFile(sync), { cloexec: true }, op);
  return 0;
}

function importSyncFile(buf: DmaBuf, arg: DmaBufSyncFileArg | null, proc: Process): number {
  const op = 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE';
  if (!arg || typeof arg !== 'object') throw new SimError('EFAULT', op, 'bad argument pointer', 'DB-22');
  checkSyncFileFlags(op, arg.flags);
  let file: SimFile | undefined;
  try {
    file = proc.file(arg.fd);
  } catch {
    file = undefined;
  }
  if (!(file instanceof SyncFileFile)) throw new SimError('EINVAL', op, `fd ${show(arg.fd)} is not a sync_file`, 'DB-22');
  const usage = arg.flags & DMA_BUF_SYNC_WRITE ? DmaResvUsage.WRITE : DmaResvUsage.READ;
  const fences = file.sync.fences;
  buf.kernel._withResvLock(buf.resv, () => {
    buf.resv.reserveFences(fences.length);
    for (const f of fences) buf.resv.addFence(f, usage);
  });
  return 0;
}

function checkSyncFileFlags(op: string, flags: number): void {
  if (!Number.isInteger(flags) || flags & ~DMA_BUF_SYNC_RW || flags === 0) {
    throw new SimError('EINVAL', op, `flags must be READ, WRITE or both, got ${show(flags)}`, 'DB-22');
  }
}
