/**
 * struct file and struct file_operations (include/linux/fs.h): an open file, shared by every fd
 * that dup'ed it and every mapping made from it, and the operations its driver registered.
 *
 * Each driver gives its files one FileOperations object; the process layer's system calls
 * (Process.ioctl, llseek, mmap, poll, close) dispatch to it, applying the VFS defaults the kernel
 * applies when an operation is absent: no ioctl is ENOTTY, no llseek is ESPIPE, no mmap is
 * ENODEV, no poll is DEFAULT_POLLMASK. A driver finds its own files by `file.fops === myFops`,
 * as the kernel compares f_op (is_dma_buf_file, shmem_file), and keeps its per-file state in
 * `privateData`: no side tables of files.
 *
 * References (f_count) are counted by holder kind so that reports can tell them apart: the
 * kernel's (fget/get_file), the fd table's and the mappings'. The last put runs `release` once.
 */
import { SimError } from '../../bindings/errors.js';
import { O_RDWR } from './constants.js';
import type { Process } from './process.js';
import type { VmArea, VmAreaInit } from './vma.js';

/** Who holds a reference on a file. */
export type FileRefKind = 'kernel' | 'fd' | 'mmap';

/**
 * struct file_operations. Every member but `name` is optional; the VFS default of a missing one
 * is stated at the member. Callbacks report failure by throwing a SimError with the errno the
 * system call returns.
 */
export interface FileOperations<P = unknown> {
  /** The file type, in messages (e.g. 'dma-buf', 'memfd', '/dev/udmabuf'). */
  readonly name: string;
  /**
   * The spec rule id that the VFS refusals of this file type (mmap flag, length, offset and
   * access-mode checks) are reported under, when the spec gives them one (dma-buf: DB-18).
   */
  readonly rule?: string;
  /**
   * llseek(2): returns the new position. Called with a valid fd only. Absent: ESPIPE (the file is
   * not seekable, FMODE_LSEEK is not set).
   */
  llseek?(file: SimFile<P>, offset: bigint, whence: number): bigint;
  /**
   * unlocked_ioctl: `arg` is the user argument (an object standing for the struct, or null for a
   * bad pointer); `proc` is the calling process (current), e.g. to install new fds. Returns the
   * ioctl's non-negative result. Absent or an unknown command: ENOTTY.
   */
  ioctl?(file: SimFile<P>, cmd: number, arg: unknown, proc: Process): number;
  /**
   * mmap: called after the VFS checks (flags, length, page-aligned offset, overflow, access mode)
   * with the range the VFS chose. Returns the mapping, usually a VmArea subclass of the driver
   * carrying its vm_operations (fault, close); the VFS then takes the mapping's file reference
   * and inserts it into the address space. Throws to refuse (EINVAL, EACCES, EPERM...). Absent:
   * ENODEV.
   */
  mmap?(file: SimFile<P>, init: VmAreaInit): VmArea;
  /**
   * The file's page size for mappings (hugetlbfs: the huge page size). mmap rounds the length up
   * to it and aligns the address to it (ksys_mmap_pgoff, hugetlb_get_unmapped_area). Absent:
   * PAGE_SIZE.
   */
  mmapPageSize?(file: SimFile<P>): number;
  /**
   * read(2): up to `count` bytes of the file's records, returned as the plain objects that stand
   * for the structs copied to the user buffer (each of the file's record size). Absent: EINVAL.
   */
  read?(file: SimFile<P>, count: number, proc: Process): unknown[];
  /**
   * write(2): `records` stand for the structs in the user buffer; returns the bytes consumed.
   * Absent: EINVAL.
   */
  write?(file: SimFile<P>, records: readonly unknown[], proc: Process): number;
  /** poll: the ready events among `events`. Absent: DEFAULT_POLLMASK (always ready). */
  poll?(file: SimFile<P>, events: number): number;
  /** show_fdinfo: lines appended to /proc/<pid>/fdinfo/<fd> after pos and flags. */
  showFdinfo?(file: SimFile<P>): string;
  /**
   * release: runs exactly once, when the last reference of any kind (fd, mapping, kernel) goes.
   * Must not fail; if it throws anyway, the reference is still gone and the file released (the
   * fd closed, the mapping removed), and the error reaches the caller.
   */
  release?(file: SimFile<P>): void;
}

/** Options of a new SimFile (alloc_file). */
export interface SimFileOptions {
  /** f_flags: O_ACCMODE, O_NONBLOCK... (O_CLOEXEC belongs to the fd, not the file). @default O_RDWR */
  flags?: number;
  /** Shown in messages and fdinfo-style reports. @default fops.name */
  name?: string;
}

/**
 * struct file. A new file holds one 'kernel' reference, the creator's: install it with
 * Process.fdInstall (the reference becomes the fd's) or drop it with put().
 */
export class SimFile<P = unknown> {
  /**
   * The coarse type, for code that narrows Process.file(fd) without knowing the drivers:
   * 'dma-buf' and 'sync-file' for the framework's files (subclasses), 'other' for driver files.
   */
  readonly kind: string = 'other';
  readonly name: string;
  /** f_flags. */
  readonly flags: number;
  /** f_pos: the file position, for files whose llseek keeps one. */
  pos = 0n;
  private readonly _refs: Record<FileRefKind, number> = { kernel: 1, fd: 0, mmap: 0 };
  private _released = false;

  /**
   * alloc_file: a new file of the driver with `fops`, holding the creator's kernel reference.
   * @throws {@link SimError} EINVAL when `fops` is missing or has no name.
   */
  constructor(
    readonly fops: FileOperations<P>,
    /** private_data: the driver's state for this open file. */
    readonly privateData: P,
    opts: SimFileOptions = {},
  ) {
    if (!fops || typeof fops.name !== 'string') throw new SimError('EINVAL', 'alloc_file', 'fops with a name are required');
    this.flags = opts.flags ?? O_RDWR;
    this.name = opts.name ?? fops.name;
  }

  /** References by holder kind. */
  get refs(): Readonly<Record<FileRefKind, number>> {
    return { ...this._refs };
  }

  /** file_count. */
  get count(): number {
    return this._refs.kernel + this._refs.fd + this._refs.mmap;
  }

  /** True once the last reference went and fops.release ran: the file must not be used again. */
  get released(): boolean {
    return this._released;
  }

  /**
   * get_file: one more reference of `kind`.
   * @throws {@link SimError} EINVAL when the file was released (use after free).
   */
  get(kind: FileRefKind = 'kernel'): this {
    if (this._released) throw new SimError('EINVAL', 'get_file', `${this.name} was released (use after free)`);
    this._refs[kind]++;
    return this;
  }

  /**
   * fput: drops a reference of `kind`; the last one runs fops.release.
   * @throws {@link SimError} EINVAL when no reference of `kind` is held (nothing changes); what
   * fops.release throws (the reference is dropped and the file released all the same).
   */
  put(kind: FileRefKind = 'kernel', op = 'fput'): void {
    if (this._refs[kind] === 0) throw new SimError('EINVAL', op, `no ${kind} reference on ${this.name} is held`);
    this._refs[kind]--;
    if (this.count === 0) {
      // Released before release runs: a release that throws still leaves the file gone (the
      // reference was dropped; the caller sees the error).
      this._released = true;
      this.fops.release?.(this);
    }
  }

  /**
   * Moves one reference from holder `from` to holder `to`; the count does not change. Process
   * exit uses it when a file refuses the drop of its last fd or mapping reference (a dma-buf
   * still attached): the reference leaks as the kernel's, so the file stays alive and consistent.
   * @throws {@link SimError} EINVAL when no reference of `from` is held, or the file was released.
   */
  moveRef(from: FileRefKind, to: FileRefKind, op = 'fput'): void {
    if (this._released) throw new SimError('EINVAL', op, `${this.name} was released (use after free)`);
    if (this._refs[from] === 0) throw new SimError('EINVAL', op, `no ${from} reference on ${this.name} is held`);
    this._refs[from]--;
    this._refs[to]++;
  }

  /**
   * fd_install: the caller's kernel reference becomes the fd's (Process.fdInstall calls this).
   * @throws {@link SimError} EINVAL when the file was released or no kernel reference is held.
   */
  kernelRefToFd(op: string): void {
    if (this._released) throw new SimError('EINVAL', op, `${this.name} was released (use after free)`);
    if (this._refs.kernel === 0) throw new SimError('EINVAL', op, `no kernel reference on ${this.name} to hand over to the fd`);
    this._refs.kernel--;
    this._refs.fd++;
  }
}
