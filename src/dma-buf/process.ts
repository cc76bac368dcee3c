import { SimError } from '../../bindings/errors.js';
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
  MAP_PRIVATE,
  MAP_SHARED,
  O_ACCMODE,
  O_CLOEXEC,
  O_RDONLY,
  O_WRONLY,
  PAGE_SHIFT,
  PAGE_SIZE,
  PROT_WRITE,
  SEEK_END,
  SEEK_SET,
} from './constants.js';
import type { DmaBuf, DmaBufMmap } from './dma-buf.js';
import type { DmaBufKernel } from './kernel.js';
import { DmaResvUsage, dmaResvUsageRw } from './resv.js';
import { SyncFile } from './sync-file.js';

const U64_MAX = (1n << 64n) - 1n;

/** What an fd points at. dma-buf files are shared by every fd that dup'ed them. */
export type OpenFile =
  | { readonly kind: 'dma-buf'; readonly dmabuf: DmaBuf }
  | { readonly kind: 'sync-file'; readonly sync: SyncFile }
  | { readonly kind: 'other'; readonly name: string };

interface FdEntry {
  readonly file: OpenFile;
  readonly cloexec: boolean;
}

export interface SimProcessOptions {
  /** RLIMIT_NOFILE: fds are 0..fdLimit-1; beyond that EMFILE. @default 1024 */
  fdLimit?: number;
  /** @default 'proc' */
  name?: string;
}

/** struct dma_buf_sync. A null argument stands for a bad user pointer (EFAULT). */
export interface DmaBufSyncArg {
  flags: number | bigint;
}
/** struct dma_buf_export_sync_file / dma_buf_import_sync_file; `fd` is written back on export. */
export interface DmaBufSyncFileArg {
  flags: number;
  fd: number;
}
/** The user string of SET_NAME: text, raw bytes (NUL-terminated or not), or null for a bad pointer. */
export type DmaBufNameArg = string | Uint8Array | null;

export interface MmapRequest {
  length: number;
  prot: number;
  flags: number;
  /** Byte offset into the file; must be page-aligned. @default 0 */
  offset?: bigint | number;
}

/**
 * A simulated process: an fd table plus the dma-buf system calls (DB-04, DB-05, DB-18..DB-24,
 * DB-26). Errors are the errno userspace would see; an interrupted wait is EINTR.
 */
export class SimProcess {
  readonly name: string;
  readonly fdLimit: number;
  private readonly _fds = new Map<number, FdEntry>();
  /** Open non-dma-buf files: how many fds share each, and its ->release. */
  private readonly _otherFiles = new Map<OpenFile, { fds: number; release: (() => void) | undefined }>();
  private readonly _mmaps = new Set<DmaBufMmap>();

  constructor(
    readonly kernel: DmaBufKernel,
    opts: SimProcessOptions = {},
  ) {
    const limit = opts.fdLimit ?? 1024;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new SimError('EINVAL', 'SimProcess', `fdLimit must be a non-negative integer, got ${limit}`);
    }
    this.fdLimit = limit;
    this.name = opts.name ?? 'proc';
  }

  /** Open fds, ascending. */
  get openFds(): number[] {
    return [...this._fds.keys()].sort((a, b) => a - b);
  }

  /** Live userspace mappings. */
  get mmaps(): readonly DmaBufMmap[] {
    return [...this._mmaps];
  }

  /** What `fd` refers to; EBADF when closed. */
  file(fd: number): OpenFile {
    return this._entry(fd, 'fcntl').file;
  }

  /** FD_CLOEXEC of `fd`. */
  isCloexec(fd: number): boolean {
    return this._entry(fd, 'fcntl').cloexec;
  }

  /**
   * Opens a file that is not a dma-buf (a device node, a memfd, or a plain file for EINVAL/ENOTTY
   * cases). `release` is the file's ->release: it runs once, when the last fd of the file
   * closes (dup'ed fds share the file). EMFILE when the table is full.
   */
  openFile(name: string, opts: { cloexec?: boolean; release?: () => void } = {}): number {
    const file: OpenFile = { kind: 'other', name };
    const fd = this._install(file, opts.cloexec ?? false, 'open');
    this._otherFiles.set(file, { fds: 1, release: opts.release });
    return fd;
  }

  /**
   * dma_buf_fd (DB-04): installs the buffer's file; the caller's kernel reference becomes the
   * fd's. Only O_CLOEXEC in `flags` matters. EMFILE when the table is full.
   */
  dmaBufFd(dmabuf: DmaBuf, flags = 0): number {
    const op = 'dma_buf_fd';
    if (!dmabuf) throw new SimError('EINVAL', op, 'dmabuf is null', 'DB-04');
    dmabuf._assertAlive(op);
    this.kernel._checkLock(dmabuf.resv, false, op, dmabuf._ids());
    const fd = this._freeFd(op);
    dmabuf._kernelRefToFd(op);
    this._fds.set(fd, { file: { kind: 'dma-buf', dmabuf }, cloexec: (flags & O_CLOEXEC) !== 0 });
    this.kernel.emit({ kind: 'fd', dmaBufId: dmabuf.id, detail: { process: this.name, fd, count: dmabuf.fileCount } });
    return fd;
  }

  /**
   * dma_buf_get (DB-05): a new kernel reference from an fd. EBADF when not open, EINVAL when it is
   * not a dma-buf. Each success needs a `put()`.
   */
  dmaBufGet(fd: number): DmaBuf {
    const op = 'dma_buf_get';
    const file = this._entry(fd, op).file;
    if (file.kind !== 'dma-buf') throw new SimError('EINVAL', op, `fd ${fd} is not a dma-buf`, 'DB-05');
    this.kernel._checkLock(file.dmabuf.resv, false, op, file.dmabuf._ids());
    return file.dmabuf.get();
  }

  /**
   * close(2). EBADF when not open. Closing the last reference releases the buffer (DB-05); when
   * that is refused (vmapped or attached, see DmaBuf.put) the fd stays open.
   */
  close(fd: number): void {
    const op = 'close';
    const e = this._entry(fd, op);
    // The reference goes first: a refused drop (EINVAL) leaves the fd open.
    if (e.file.kind === 'dma-buf') e.file.dmabuf._dropRef('fd', op);
    this._fds.delete(fd);
    if (e.file.kind === 'dma-buf') return;
    const other = this._otherFiles.get(e.file);
    if (other && --other.fds === 0) {
      this._otherFiles.delete(e.file);
      other.release?.();
    }
  }

  /** dup(2): the lowest free fd, same file, FD_CLOEXEC cleared. EBADF, EMFILE. */
  dup(fd: number): number {
    const op = 'dup';
    const e = this._entry(fd, op);
    const nfd = this._install(e.file, false, op);
    return nfd;
  }

  /** llseek on a dma-buf (DB-19): SEEK_END/0 gives the size, SEEK_SET/0 gives 0, all else EINVAL. */
  llseek(fd: number, offset: bigint | number, whence: number): bigint {
    const op = 'llseek';
    const file = this._entry(fd, op).file;
    if (file.kind !== 'dma-buf') throw new SimError('ESPIPE', op, `fd ${fd} is not seekable`);
    if (BigInt(offset) !== 0n) throw new SimError('EINVAL', op, `offset must be 0, got ${offset}`, 'DB-19');
    if (whence === SEEK_END) return BigInt(file.dmabuf.size);
    if (whence === SEEK_SET) return 0n;
    throw new SimError('EINVAL', op, `whence must be SEEK_SET or SEEK_END, got ${whence}`, 'DB-19');
  }

  /**
   * mmap(2) of a dma-buf fd (DB-18). VFS checks first (EBADF, ENODEV for files without mmap,
   * EINVAL for flags/length/alignment, EOVERFLOW, EACCES for a shared writable map of a read-only
   * file or any map of a write-only one), then EINVAL without ops.mmap or past the whole pages.
   */
  mmap(fd: number, req: MmapRequest): DmaBufMmap {
    const op = 'mmap';
    const file = this._entry(fd, op).file;
    if (file.kind !== 'dma-buf') throw new SimError('ENODEV', op, `fd ${fd} cannot be mapped`);
    const buf = file.dmabuf;
    const type = req.flags & (MAP_SHARED | MAP_PRIVATE);
    if (type !== MAP_SHARED && type !== MAP_PRIVATE) {
      throw new SimError('EINVAL', op, 'flags must contain exactly one of MAP_SHARED and MAP_PRIVATE', 'DB-18');
    }
    if (!Number.isSafeInteger(req.length) || req.length <= 0) {
      throw new SimError('EINVAL', op, `length must be positive, got ${req.length}`, 'DB-18');
    }
    const offset = BigInt(req.offset ?? 0);
    if (offset < 0n || offset % BigInt(PAGE_SIZE) !== 0n) {
      throw new SimError('EINVAL', op, `offset must be page-aligned, got ${offset}`, 'DB-18');
    }
    const pages = Math.ceil(req.length / PAGE_SIZE);
    const pgoff = offset >> BigInt(PAGE_SHIFT);
    if (pgoff + BigInt(pages) > U64_MAX >> BigInt(PAGE_SHIFT)) {
      throw new SimError('EOVERFLOW', op, 'offset + length overflows', 'DB-18');
    }
    const acc = buf.fileFlags & O_ACCMODE;
    if (acc === O_WRONLY) throw new SimError('EACCES', op, 'the file is write-only', 'DB-18');
    if (type === MAP_SHARED && (req.prot & PROT_WRITE) !== 0 && acc === O_RDONLY) {
      throw new SimError('EACCES', op, 'shared writable mapping of a read-only dma-buf', 'DB-18');
    }
    const m = buf._mmap({ pgoff, pages, prot: req.prot, flags: req.flags }, op, (x) => this._mmaps.delete(x));
    this._mmaps.add(m);
    return m;
  }

  /** munmap(2) of a mapping made by this process. */
  munmap(m: DmaBufMmap): void {
    if (!this._mmaps.has(m)) throw new SimError('EINVAL', 'munmap', 'not a mapping of this process', 'DB-18');
    m.munmap();
  }

  /**
   * ioctl(2) on a dma-buf fd (DB-20..DB-22). Unknown commands and non-dma-buf files: ENOTTY.
   * Returns 0; EXPORT_SYNC_FILE writes the new fd into `arg.fd`.
   */
  ioctl(fd: number, cmd: number, arg: unknown): number {
    const op = 'ioctl';
    const file = this._entry(fd, op).file;
    if (file.kind !== 'dma-buf') throw new SimError('ENOTTY', op, `fd ${fd} is not a dma-buf`);
    const buf = file.dmabuf;
    const syncFiles = this.kernel.profile.syncFileIoctls;
    switch (cmd) {
      case DMA_BUF_IOCTL_SYNC:
        return this._sync(buf, arg as DmaBufSyncArg | null);
      case DMA_BUF_SET_NAME_A:
      case DMA_BUF_SET_NAME_B:
        return this._setName(buf, arg as DmaBufNameArg);
      case DMA_BUF_IOCTL_EXPORT_SYNC_FILE:
        if (syncFiles) return this._exportSyncFile(buf, arg as DmaBufSyncFileArg | null);
        break;
      case DMA_BUF_IOCTL_IMPORT_SYNC_FILE:
        if (syncFiles) return this._importSyncFile(buf, arg as DmaBufSyncFileArg | null);
        break;
    }
    throw new SimError('ENOTTY', op, `unknown dma-buf ioctl 0x${(cmd >>> 0).toString(16)}`, 'DB-20');
  }

  /**
   * poll(2) (DB-23): EPOLLIN once the WRITE-class fences signaled, EPOLLOUT once the READ-class
   * ones did. Only EPOLLIN/EPOLLOUT are reported. A sync_file is readable once signaled.
   */
  poll(fd: number, events: number): number {
    const file = this._entry(fd, 'poll').file;
    const want = events & (EPOLLIN | EPOLLOUT);
    if (file.kind === 'other') return want;
    if (file.kind === 'sync-file') return file.sync.isSignaled() ? want & EPOLLIN : 0;
    const resv = file.dmabuf.resv;
    let ready = 0;
    if (want & EPOLLIN && resv.testSignaled(DmaResvUsage.WRITE)) ready |= EPOLLIN;
    if (want & EPOLLOUT && resv.testSignaled(DmaResvUsage.READ)) ready |= EPOLLOUT;
    return ready;
  }

  /**
   * /proc/self/fdinfo/<fd> (DB-26): pos and flags, then size, count, exp_name and name (when set).
   * count is the file's references minus the one the reader itself takes, i.e. every fd, kernel
   * get and mmap.
   */
  fdinfo(fd: number): string {
    const e = this._entry(fd, 'fdinfo');
    if (e.file.kind !== 'dma-buf') return `pos:\t0\nflags:\t0${(e.cloexec ? O_CLOEXEC : 0).toString(8)}\n`;
    const flags = e.file.dmabuf.fileFlags | (e.cloexec ? O_CLOEXEC : 0);
    return `pos:\t0\nflags:\t0${flags.toString(8)}\n` + e.file.dmabuf.fdinfoLines();
  }

  /** Process exit: unmaps every mapping, then closes every fd in order. */
  exit(): void {
    for (const m of [...this._mmaps]) m.munmap();
    for (const fd of this.openFds) this.close(fd);
  }

  private _sync(buf: DmaBuf, arg: DmaBufSyncArg | null): number {
    const op = 'DMA_BUF_IOCTL_SYNC';
    if (!arg) throw new SimError('EFAULT', op, 'bad argument pointer', 'DB-20');
    const flags = BigInt(arg.flags);
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
    userErrno(op, () => {
      if (flags & BigInt(DMA_BUF_SYNC_END)) buf.endCpuAccess(dir);
      else buf.beginCpuAccess(dir);
    });
    return 0;
  }

  private _setName(buf: DmaBuf, arg: DmaBufNameArg): number {
    const op = 'DMA_BUF_SET_NAME';
    if (arg === null || arg === undefined) throw new SimError('EFAULT', op, 'bad name pointer', 'DB-21');
    let bytes = typeof arg === 'string' ? new TextEncoder().encode(arg) : arg;
    const nul = bytes.indexOf(0);
    if (nul >= 0) bytes = bytes.subarray(0, nul);
    if (bytes.length + 1 > DMA_BUF_NAME_LEN) {
      throw new SimError('EINVAL', op, `name is ${bytes.length} bytes; at most ${DMA_BUF_NAME_LEN - 1} fit with the NUL`, 'DB-21');
    }
    buf._setName(new TextDecoder().decode(bytes), op);
    return 0;
  }

  private _exportSyncFile(buf: DmaBuf, arg: DmaBufSyncFileArg | null): number {
    const op = 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE';
    if (!arg) throw new SimError('EFAULT', op, 'bad argument pointer', 'DB-22');
    checkSyncFileFlags(op, arg.flags);
    const fd = this._freeFd(op);
    const fences = buf.resv.getFences(dmaResvUsageRw((arg.flags & DMA_BUF_SYNC_WRITE) !== 0));
    const sync = new SyncFile(fences.length > 0 ? fences : [this.kernel.getStub()]);
    this._fds.set(fd, { file: { kind: 'sync-file', sync }, cloexec: true });
    arg.fd = fd;
    return 0;
  }

  private _importSyncFile(buf: DmaBuf, arg: DmaBufSyncFileArg | null): number {
    const op = 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE';
    if (!arg) throw new SimError('EFAULT', op, 'bad argument pointer', 'DB-22');
    checkSyncFileFlags(op, arg.flags);
    const file = this._fds.get(arg.fd)?.file;
    if (!file || file.kind !== 'sync-file') throw new SimError('EINVAL', op, `fd ${arg.fd} is not a sync_file`, 'DB-22');
    const usage = arg.flags & DMA_BUF_SYNC_WRITE ? DmaResvUsage.WRITE : DmaResvUsage.READ;
    this.kernel._withResvLock(buf.resv, () => {
      buf.resv.reserveFences(file.sync.fences.length);
      for (const f of file.sync.fences) buf.resv.addFence(f, usage);
    });
    return 0;
  }

  private _entry(fd: number, op: string): FdEntry {
    const e = Number.isInteger(fd) ? this._fds.get(fd) : undefined;
    if (!e) throw new SimError('EBADF', op, `fd ${fd} is not open in ${this.name}`);
    return e;
  }

  private _freeFd(op: string): number {
    for (let fd = 0; fd < this.fdLimit; fd++) if (!this._fds.has(fd)) return fd;
    throw new SimError('EMFILE', op, `all ${this.fdLimit} fds of ${this.name} are in use`, 'DB-04');
  }

  private _install(file: OpenFile, cloexec: boolean, op: string): number {
    const fd = this._freeFd(op);
    if (file.kind === 'dma-buf') file.dmabuf._addRef('fd');
    else { const o = this._otherFiles.get(file); if (o) o.fds++; }
    this._fds.set(fd, { file, cloexec });
    return fd;
  }
}

function checkSyncFileFlags(op: string, flags: number): void {
  if (!Number.isInteger(flags) || flags & ~DMA_BUF_SYNC_RW || flags === 0) {
    throw new SimError('EINVAL', op, `flags must be READ, WRITE or both, got ${flags}`, 'DB-22');
  }
}

/** ERESTARTSYS never reaches userspace: without SA_RESTART it is EINTR. */
function userErrno(op: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimError && e.code === 'ERESTARTSYS') {
      throw new SimError('EINTR', op, e.message, e.rule);
    }
    throw e;
  }
}

