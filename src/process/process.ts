/**
 * A simulated process: its fd table (struct files_struct), its address space (struct mm_struct)
 * and the VFS system calls on them. Every driver's uAPI goes through here: ioctl, llseek, mmap
 * and poll look up the fd's file and dispatch to the file's FileOperations, applying the
 * kernel's defaults where the driver registered no operation (fs/ioctl.c, fs/read_write.c,
 * mm/mmap.c, fs/select.c). Errors are the errno userspace would see.
 */
import { SimError } from '../../bindings/errors.js';
import type { PhysicalMemory } from '../memory/physical-memory.js';
import { intArg, objArg, show } from '../util/args.js';
import {
  EPOLLERR,
  EPOLLIN,
  EPOLLOUT,
  F_GETFD,
  F_SETFD,
  FD_CLOEXEC,
  MAP_PRIVATE,
  MAP_SHARED,
  O_ACCMODE,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SHIFT,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { SimFile, type FileOperations } from './file.js';
import { AddressSpace, AnonVmArea, VmArea, type UserPage } from './vma.js';

const U64_MAX = (1n << 64n) - 1n;
/** FIONCLEX (asm-generic/ioctls.h): ioctl(2) clearing FD_CLOEXEC, handled by the VFS before the driver sees it. */
export const FIONCLEX = 0x5450;
/** FIOCLEX (asm-generic/ioctls.h): ioctl(2) setting FD_CLOEXEC, handled by the VFS before the driver sees it. */
export const FIOCLEX = 0x5451;
/** DEFAULT_POLLMASK: EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM. */
const DEFAULT_POLLMASK = EPOLLIN | EPOLLOUT | 0x040 | 0x100;
const EPOLLHUP = 0x010;

interface FdEntry {
  readonly file: SimFile;
  cloexec: boolean;
}

/** Options of a new Process. */
export interface ProcessOptions {
  /** RLIMIT_NOFILE: fds are 0..fdLimit-1; beyond that EMFILE. @default 1024 */
  fdLimit?: number;
  /** The process's name (comm), in messages and events. @default 'proc' */
  name?: string;
  /**
   * System RAM behind the process's anonymous memory (mmapAnonymous), e.g. machine.sim.memory.
   * Without it anonymous mappings are refused with ENOMEM.
   */
  memory?: PhysicalMemory | null;
}

/** The arguments of mmap(2) of a file (Process.mmap). */
export interface MmapRequest {
  /** Bytes; rounded up to whole pages (or to the file's mmap page size). */
  length: number;
  /** PROT_READ | PROT_WRITE bits. */
  prot: number;
  /** Exactly one of MAP_SHARED and MAP_PRIVATE, plus other MAP_* bits. */
  flags: number;
  /** Byte offset into the file; must be page-aligned. @default 0 */
  offset?: bigint | number;
  /** Address hint; when given it must be free (MAP_FIXED_NOREPLACE), else EEXIST. */
  addr?: bigint;
}

/** Options of Process.mmapAnonymous (mmap(2) with MAP_PRIVATE | MAP_ANONYMOUS). */
export interface AnonymousMmapOptions {
  /** mmap(2) prot. @default PROT_READ | PROT_WRITE */
  prot?: number;
  /** Address hint, as for MmapRequest.addr. */
  addr?: bigint;
  /** MAP_POPULATE: allocate every page now (one contiguous run when possible). @default false */
  populate?: boolean;
}

/** gup_flags of Process.getUserPages (get_user_pages / pin_user_pages). */
export interface GetUserPagesOptions {
  /** FOLL_WRITE: the pages will be written (a read-only mapping is EFAULT). @default false */
  write?: boolean;
  /** FOLL_PIN (pin_user_pages) instead of a plain reference (get_user_pages). @default false */
  pin?: boolean;
}

/**
 * A process (struct task_struct, as far as files and memory go): fd table (struct
 * files_struct), address space (struct mm_struct) and the VFS system calls on them.
 */
export class Process {
  readonly name: string;
  readonly fdLimit: number;
  /** The address space (struct mm_struct). */
  readonly mm: AddressSpace;
  private readonly _fds = new Map<number, FdEntry>();

  /** @throws {@link SimError} EINVAL when fdLimit is not a non-negative integer. */
  constructor(opts: ProcessOptions = {}) {
    const limit = opts.fdLimit ?? 1024;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new SimError('EINVAL', 'Process', `fdLimit must be a non-negative integer, got ${limit}`);
    }
    this.fdLimit = limit;
    this.name = opts.name ?? 'proc';
    this.mm = new AddressSpace(opts.memory ?? null);
  }

  /** Open fds, ascending. */
  get openFds(): number[] {
    return [...this._fds.keys()].sort((a, b) => a - b);
  }

  /** Live mappings, by address. */
  get mmaps(): readonly VmArea[] {
    return this.mm.vmas;
  }

  // ---- the fd table ----

  /**
   * The file behind `fd` (fdget without a reference).
   * @throws {@link SimError} EBADF when `fd` is not open.
   */
  file(fd: number): SimFile {
    return this._entry(fd, 'fcntl').file;
  }

  /**
   * fget: the file behind `fd` with a new kernel reference (put it when done).
   * @throws {@link SimError} EBADF when `fd` is not open.
   */
  fget(fd: number, op = 'fget'): SimFile {
    return this._entry(fd, op).file.get('kernel');
  }

  /**
   * FD_CLOEXEC of `fd` (close_on_exec).
   * @throws {@link SimError} EBADF when `fd` is not open.
   */
  isCloexec(fd: number): boolean {
    return this._entry(fd, 'fcntl').cloexec;
  }

  /**
   * fcntl(2) F_GETFD / F_SETFD.
   * @throws {@link SimError} EBADF when `fd` is not open; EINVAL for other commands (not modelled).
   */
  fcntl(fd: number, cmd: number, arg = 0): number {
    const e = this._entry(fd, 'fcntl');
    intArg('fcntl', 'arg', arg, -(2 ** 31), 2 ** 32 - 1);
    if (cmd === F_GETFD) return e.cloexec ? FD_CLOEXEC : 0;
    if (cmd === F_SETFD) {
      e.cloexec = (arg & FD_CLOEXEC) !== 0;
      return 0;
    }
    throw new SimError('EINVAL', 'fcntl', `command ${show(cmd)} is not modelled`);
  }

  /**
   * get_unused_fd_flags + fd_install: installs `file` at the lowest free fd; the caller's kernel
   * reference becomes the fd's.
   * @throws {@link SimError} EMFILE when the table is full (nothing changes); EINVAL when the
   * file was released or the caller holds no kernel reference on it.
   */
  fdInstall(file: SimFile, opts: { cloexec?: boolean } = {}, op = 'fd_install'): number {
    if (!(file instanceof SimFile)) throw new SimError('EINVAL', op, `file must be a SimFile, got ${show(file)}`);
    objArg(op, 'options', opts);
    const fd = this._freeFd(op);
    file.kernelRefToFd(op);
    this._fds.set(fd, { file, cloexec: opts.cloexec ?? false });
    return fd;
  }

  /**
   * Opens a new file with `fops` (and `privateData`) at the lowest free fd: what a driver's
   * open() gives userspace.
   * @throws {@link SimError} EMFILE when the table is full (the file is then never created);
   * EINVAL when `fops` has no name.
   */
  open<P>(fops: FileOperations<P>, privateData: P, opts: { cloexec?: boolean; flags?: number; name?: string } = {}): number {
    objArg('open', 'options', opts);
    this._freeFd('open');
    const file = new SimFile(fops, privateData, { flags: opts.flags ?? O_RDWR, name: opts.name ?? fops.name });
    return this.fdInstall(file, { cloexec: opts.cloexec ?? false }, 'open');
  }

  /**
   * Opens a file with no operations but `release` (a plain file or a node whose driver only
   * counts its users). Kept for drivers written before FileOperations; prefer open().
   * @throws {@link SimError} EMFILE when the table is full.
   */
  openFile(name: string, opts: { cloexec?: boolean; release?: () => void; flags?: number } = {}): number {
    const release = opts.release;
    const fops: FileOperations<null> = release ? { name, release: () => release() } : { name };
    return this.open(fops, null, { cloexec: opts.cloexec ?? false, flags: opts.flags ?? O_RDWR, name });
  }

  /**
   * close(2). The fd's reference goes first: when the file refuses the drop (a dma-buf still
   * attached), the fd stays open.
   * @throws {@link SimError} EBADF when `fd` is not open; whatever the file's put throws.
   */
  close(fd: number): void {
    const e = this._entry(fd, 'close');
    const held = e.file.refs.fd;
    try {
      e.file.put('fd', 'close');
    } catch (err) {
      // A release that threw after the drop still closed the fd; a refused drop changed nothing.
      if (e.file.refs.fd < held) this._fds.delete(fd);
      throw err;
    }
    this._fds.delete(fd);
  }

  /**
   * dup(2): the lowest free fd, same file, FD_CLOEXEC cleared.
   * @throws {@link SimError} EBADF when `fd` is not open; EMFILE when the table is full.
   */
  dup(fd: number): number {
    const op = 'dup';
    const e = this._entry(fd, op);
    const nfd = this._freeFd(op);
    e.file.get('fd');
    this._fds.set(nfd, { file: e.file, cloexec: false });
    return nfd;
  }

  /**
   * execve(2) as far as files and memory go: the old address space goes (every mapping is
   * unmapped), then every FD_CLOEXEC fd is closed (do_close_on_exec), in fd order. Never stops
   * half way: see {@link Process.exit}.
   * @throws {@link ProcessExitError} after everything was released, when some release failed.
   */
  exec(): void {
    this._releaseAll('execve', (e) => e.cloexec);
  }

  /**
   * Process exit (do_exit: exit_mm, exit_files): unmaps every mapping, then closes every fd in
   * order. Never stops half way, as the kernel cannot: every mapping and fd goes even when a
   * release throws or a file refuses the drop (a dma-buf still attached: its reference then leaks
   * as the kernel's, see SimFile.moveRef). The errors are collected and thrown at the end.
   * @throws {@link ProcessExitError} after everything was released, when some release failed.
   */
  exit(): void {
    this._releaseAll('exit', () => true);
  }

  /** exit_mm + exit_files (or do_close_on_exec): every mapping, then the fds `which` picks. */
  private _releaseAll(op: string, which: (e: FdEntry) => boolean): void {
    const errors: unknown[] = [];
    for (const v of this.mm.vmas) {
      const e = v.exitUnmap();
      if (e !== undefined) errors.push(e);
    }
    for (const fd of this.openFds) {
      const entry = this._fds.get(fd)!;
      if (!which(entry)) continue;
      try {
        this.close(fd);
      } catch (e) {
        errors.push(e);
        if (this._fds.has(fd)) {
          // The file refused the drop: the fd still goes, its reference leaks as the kernel's.
          try {
            entry.file.moveRef('fd', 'kernel', op);
          } catch {
            // No fd reference to move (cannot happen for an open fd); the entry goes regardless.
          }
          this._fds.delete(fd);
        }
      }
    }
    if (errors.length > 0) throw new ProcessExitError(op, this.name, errors);
  }

  // ---- system calls dispatched to the file's operations ----

  /**
   * llseek(2): fops.llseek.
   * @throws {@link SimError} EBADF when `fd` is not open; ESPIPE when the file has no llseek;
   * the errors of fops.llseek (EINVAL for a bad whence or offset).
   */
  llseek(fd: number, offset: bigint | number, whence: number): bigint {
    const op = 'llseek';
    const file = this._entry(fd, op).file;
    if (!file.fops.llseek) throw new SimError('ESPIPE', op, `fd ${fd} (${file.name}) is not seekable`);
    if (typeof offset !== 'bigint' && !Number.isSafeInteger(offset)) throw new SimError('EINVAL', op, `offset must be an integer, got ${show(offset)}`);
    intArg(op, 'whence', whence, -(2 ** 31), 2 ** 31 - 1);
    return file.fops.llseek(file, BigInt(offset), whence);
  }

  /**
   * ioctl(2): FIOCLEX/FIONCLEX are the VFS's; anything else goes to fops.ioctl with this process
   * as current. An ERESTARTSYS from the driver reaches the caller as EINTR (no SA_RESTART).
   * @throws {@link SimError} EBADF when `fd` is not open; ENOTTY when the file has no ioctl or the
   * command is unknown; the driver's errors.
   */
  ioctl(fd: number, cmd: number, arg?: unknown): number {
    const op = 'ioctl';
    const e = this._entry(fd, op);
    // unsigned int cmd: any 32-bit value, signed or not.
    intArg(op, 'cmd', cmd, -(2 ** 31), 2 ** 32 - 1);
    if (cmd === FIOCLEX || cmd === FIONCLEX) {
      e.cloexec = cmd === FIOCLEX;
      return 0;
    }
    const file = e.file;
    if (!file.fops.ioctl) throw new SimError('ENOTTY', op, `fd ${fd} (${file.name}) has no ioctls`);
    return syscallExit(() => file.fops.ioctl!(file, cmd, arg, this));
  }

  /**
   * read(2): fops.read with `count` bytes of room; returns the records read (see FileOperations.read).
   * @throws {@link SimError} EBADF when `fd` is not open or the file is write-only; EINVAL when the
   * file has no read; the driver's errors.
   */
  read(fd: number, count: number): unknown[] {
    const op = 'read';
    const file = this._entry(fd, op).file;
    if ((file.flags & O_ACCMODE) === O_WRONLY) throw new SimError('EBADF', op, `fd ${fd} (${file.name}) is open write-only`);
    if (!file.fops.read) throw new SimError('EINVAL', op, `fd ${fd} (${file.name}) cannot be read`);
    if (!Number.isSafeInteger(count) || count < 0) throw new SimError('EINVAL', op, `count must be a non-negative integer, got ${count}`);
    return syscallExit(() => file.fops.read!(file, count, this));
  }

  /**
   * write(2): fops.write of `records` (see FileOperations.write); returns the bytes written.
   * @throws {@link SimError} EBADF when `fd` is not open or the file is read-only; EINVAL when the
   * file has no write; the driver's errors.
   */
  write(fd: number, records: readonly unknown[]): number {
    const op = 'write';
    const file = this._entry(fd, op).file;
    if ((file.flags & O_ACCMODE) === O_RDONLY) throw new SimError('EBADF', op, `fd ${fd} (${file.name}) is open read-only`);
    if (!file.fops.write) throw new SimError('EINVAL', op, `fd ${fd} (${file.name}) cannot be written`);
    if (!Array.isArray(records)) throw new SimError('EFAULT', op, 'records must be an array');
    return syscallExit(() => file.fops.write!(file, records, this));
  }

  /**
   * poll(2) of one fd: fops.poll, or DEFAULT_POLLMASK for a file without it; only the requested
   * events (plus EPOLLERR/EPOLLHUP) are reported.
   * @throws {@link SimError} EBADF when `fd` is not open.
   */
  poll(fd: number, events: number): number {
    const file = this._entry(fd, 'poll').file;
    intArg('poll', 'events', events, 0, 0xffff_ffff);
    const mask = file.fops.poll ? file.fops.poll(file, events) : DEFAULT_POLLMASK;
    return mask & (events | EPOLLERR | EPOLLHUP);
  }

  /**
   * /proc/self/fdinfo/<fd>: pos and flags (f_flags, O_CLOEXEC from the fd, in octal), then the
   * file's show_fdinfo lines.
   * @throws {@link SimError} EBADF when `fd` is not open.
   */
  fdinfo(fd: number): string {
    const e = this._entry(fd, 'fdinfo');
    const flags = e.file.flags | (e.cloexec ? O_CLOEXEC : 0);
    return `pos:\t${e.file.pos}\nflags:\t0${flags.toString(8)}\n` + (e.file.fops.showFdinfo?.(e.file) ?? '');
  }

  // ---- memory ----

  /**
   * mmap(2) of a file (do_mmap). The VFS checks come first, then fops.mmap, which may refuse; on
   * success the mapping holds a file reference until munmap.
   * @throws {@link SimError} EBADF when `fd` is not open; EINVAL for flags without exactly one of
   * MAP_SHARED/MAP_PRIVATE, length <= 0 or an unaligned offset; EOVERFLOW when offset + length
   * wraps; EACCES for a write-only file, or a shared writable map of a read-only one; ENODEV when
   * the file has no mmap; EINVAL or EEXIST for an address hint that is unaligned or taken, ENOMEM
   * when no range fits (AddressSpace.unmappedArea); the errors of fops.mmap.
   */
  mmap(fd: number, req: MmapRequest): VmArea {
    const op = 'mmap';
    const file = this._entry(fd, op).file;
    const rule = file.fops.rule;
    objArg(op, 'request', req);
    intArg(op, 'flags', req.flags, -(2 ** 31), 2 ** 32 - 1);
    intArg(op, 'prot', req.prot, -(2 ** 31), 2 ** 32 - 1);
    if (req.offset !== undefined && typeof req.offset !== 'bigint' && !Number.isSafeInteger(req.offset)) {
      throw new SimError('EINVAL', op, `offset must be an integer, got ${show(req.offset)}`, rule);
    }
    if (req.addr !== undefined && typeof req.addr !== 'bigint') throw new SimError('EINVAL', op, `addr must be a bigint, got ${show(req.addr)}`, rule);
    const type = req.flags & (MAP_SHARED | MAP_PRIVATE);
    if (type !== MAP_SHARED && type !== MAP_PRIVATE) {
      throw new SimError('EINVAL', op, 'flags must contain exactly one of MAP_SHARED and MAP_PRIVATE', rule);
    }
    if (!Number.isSafeInteger(req.length) || req.length <= 0) {
      throw new SimError('EINVAL', op, `length must be positive, got ${show(req.length)}`, rule);
    }
    const offset = BigInt(req.offset ?? 0);
    if (offset < 0n || offset % BigInt(PAGE_SIZE) !== 0n) {
      throw new SimError('EINVAL', op, `offset must be page-aligned, got ${offset}`, rule);
    }
    const granule = file.fops.mmapPageSize?.(file) ?? PAGE_SIZE;
    const pages = Math.ceil(req.length / granule) * (granule / PAGE_SIZE);
    const pgoff = offset >> BigInt(PAGE_SHIFT);
    if (pgoff + BigInt(pages) > U64_MAX >> BigInt(PAGE_SHIFT)) {
      throw new SimError('EOVERFLOW', op, 'offset + length overflows', rule);
    }
    const acc = file.flags & O_ACCMODE;
    if (acc === O_WRONLY) throw new SimError('EACCES', op, `${file.name} is open write-only`, rule);
    if (type === MAP_SHARED && (req.prot & PROT_WRITE) !== 0 && acc === O_RDONLY) {
      throw new SimError('EACCES', op, `shared writable mapping of a read-only ${file.name}`, rule);
    }
    if (!file.fops.mmap) throw new SimError('ENODEV', op, `fd ${fd} (${file.name}) cannot be mapped`);
    const start = this.mm.unmappedArea(pages, req.addr, op, granule);
    const vma = file.fops.mmap(file, { mm: this.mm, start, pgoff, pages, prot: req.prot, flags: req.flags, file });
    file.get('mmap');
    this.mm.insert(vma);
    return vma;
  }

  /**
   * munmap(2) of a mapping of this process.
   * @throws {@link SimError} EINVAL when `vma` is not a live mapping of this process.
   */
  munmap(vma: VmArea): void {
    if (!vma || vma.mm !== this.mm || !vma.active) throw new SimError('EINVAL', 'munmap', 'not a live mapping of this process');
    vma.munmap();
  }

  /**
   * mmap(NULL, length, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0): zeroed user memory backed by
   * RAM frames of the process's memory, allocated on first touch (or now, with populate).
   * @throws {@link SimError} EINVAL for a bad length or hint; EEXIST when the hint overlaps a
   * mapping; ENOMEM without memory, address space, or (with populate) free frames.
   */
  mmapAnonymous(length: number, opts: AnonymousMmapOptions = {}): AnonVmArea {
    const op = 'mmap';
    if (!Number.isSafeInteger(length) || length <= 0) throw new SimError('EINVAL', op, `length must be positive, got ${show(length)}`);
    objArg(op, 'options', opts);
    if (opts.addr !== undefined && typeof opts.addr !== 'bigint') throw new SimError('EINVAL', op, `addr must be a bigint, got ${show(opts.addr)}`);
    if (opts.prot !== undefined) intArg(op, 'prot', opts.prot, -(2 ** 31), 2 ** 32 - 1);
    const mem = this.mm.memory;
    if (!mem) throw new SimError('ENOMEM', op, `${this.name} has no system RAM for anonymous memory (ProcessOptions.memory)`);
    const pages = Math.ceil(length / PAGE_SIZE);
    const start = this.mm.unmappedArea(pages, opts.addr, op);
    const vma = new AnonVmArea(
      { mm: this.mm, start, pgoff: start >> BigInt(PAGE_SHIFT), pages, prot: opts.prot ?? (PROT_READ | PROT_WRITE), flags: MAP_PRIVATE, file: null },
      mem,
    );
    if (opts.populate) vma.populate();
    this.mm.insert(vma);
    return vma;
  }

  /**
   * copy_from_user: `length` bytes at user address `addr`.
   * @throws {@link SimError} EFAULT when the process has no memory or a page is not mapped (or
   * cannot be faulted in).
   */
  readUser(addr: bigint, length: number): Uint8Array {
    const mem = this._memory('copy_from_user');
    userAddr('copy_from_user', addr);
    if (!Number.isSafeInteger(length) || length < 0) throw new SimError('EINVAL', 'copy_from_user', `length must be a non-negative integer, got ${show(length)}`);
    const out = new Uint8Array(length);
    this.mm.walk(addr, length, false, 'copy_from_user', (pa, done, n) => out.set(mem.read(pa, n), done));
    return out;
  }

  /**
   * copy_to_user: writes `data` at user address `addr`.
   * @throws {@link SimError} EFAULT when the process has no memory, a page is not mapped, or the
   * mapping is read-only.
   */
  writeUser(addr: bigint, data: Uint8Array): void {
    const mem = this._memory('copy_to_user');
    userAddr('copy_to_user', addr);
    if (!(data instanceof Uint8Array)) throw new SimError('EINVAL', 'copy_to_user', `data must be a Uint8Array, got ${show(data)}`);
    this.mm.walk(addr, data.length, true, 'copy_to_user', (pa, done, n) => mem.write(pa, data.subarray(done, done + n)));
  }

  /**
   * get_user_pages / pin_user_pages over [addr, addr + length): the page of every page-sized
   * step, faulted in, each with a reference (and a pin with `pin`). Give them back with
   * putUserPages.
   * @throws {@link SimError} EINVAL for length <= 0; EFAULT (nothing taken) when the process has
   * no memory, or a page is unmapped, read-only for a write, or in a PFN mapping (VmArea.pfnMap).
   */
  getUserPages(addr: bigint, length: number, opts: GetUserPagesOptions = {}): UserPage[] {
    const op = opts.pin ? 'pin_user_pages' : 'get_user_pages';
    const mem = this._memory(op);
    userAddr(op, addr);
    objArg(op, 'options', opts);
    if (!Number.isSafeInteger(length) || length <= 0) throw new SimError('EINVAL', op, `length must be positive, got ${show(length)}`);
    const page = BigInt(PAGE_SIZE);
    const first = addr - (addr % page);
    const n = Number((addr + BigInt(length) + page - 1n - first) / page);
    const out: UserPage[] = [];
    for (let i = 0; i < n; i++) {
      const va = first + BigInt(i) * page;
      const vma = this.mm.find(va);
      if (!vma) throw new SimError('EFAULT', op, `0x${va.toString(16)} is not mapped`);
      if (vma.pfnMap) throw new SimError('EFAULT', op, `0x${va.toString(16)} is in a PFN mapping (no struct page to take)`);
      out.push({ pa: vma.pagePhys(Number((va - vma.start) / page), opts.write ?? false, op), vma });
    }
    for (const p of out) mem.getPage(p.pa);
    // Pins go by physically contiguous run (one range pin each), not page by page.
    if (opts.pin) for (const [pa, n] of contiguousRuns(out)) mem.pinPages(pa, n);
    return out;
  }

  /**
   * put_page / unpin_user_page for each page getUserPages gave.
   * @throws {@link SimError} EFAULT when the process has no memory; EINVAL (PhysicalMemory) for a
   * page that holds no reference, or no pin.
   */
  putUserPages(pages: readonly UserPage[], opts: { pin?: boolean } = {}): void {
    const mem = this._memory(opts.pin ? 'unpin_user_pages' : 'put_page');
    if (opts.pin) for (const [pa, n] of contiguousRuns(pages)) mem.pinPages(pa, n, false);
    for (const p of pages) mem.putPage(p.pa);
  }

  private _memory(op: string): PhysicalMemory {
    const mem = this.mm.memory;
    if (!mem) throw new SimError('EFAULT', op, `${this.name} has no user memory (ProcessOptions.memory)`);
    return mem;
  }

  private _entry(fd: number, op: string): FdEntry {
    const e = Number.isInteger(fd) ? this._fds.get(fd) : undefined;
    if (!e) throw new SimError('EBADF', op, `fd ${show(fd)} is not open in ${this.name}`);
    return e;
  }

  private _freeFd(op: string): number {
    for (let fd = 0; fd < this.fdLimit; fd++) if (!this._fds.has(fd)) return fd;
    throw new SimError('EMFILE', op, `all ${this.fdLimit} fds of ${this.name} are in use`);
  }
}

/**
 * A process exit (or exec) that met errors: everything was released all the same, and `errors`
 * holds what each failing release threw, in order. `code` is the first error's errno (EINVAL
 * when it was not a SimError).
 */
export class ProcessExitError extends SimError {
  constructor(
    op: string,
    proc: string,
    readonly errors: readonly unknown[],
  ) {
    const first = errors[0];
    const code = first instanceof SimError ? first.code : 'EINVAL';
    const what = first instanceof Error ? first.message : String(first);
    super(code, op, `${errors.length} release(s) of ${proc} failed; everything was released (first: ${what.slice(0, 200)})`);
    this.name = 'ProcessExitError';
  }
}

/** A user virtual address: a bigint in the 64-bit space (what copy_*_user and GUP take). */
function userAddr(op: string, addr: unknown): void {
  if (typeof addr !== 'bigint' || addr < 0n || addr > U64_MAX) throw new SimError('EINVAL', op, `addr must be a 64-bit bigint address, got ${show(addr)}`);
}

/** [first pa, count] runs of physically consecutive pages, in order. */
function contiguousRuns(pages: readonly UserPage[]): [bigint, number][] {
  const runs: [bigint, number][] = [];
  for (const { pa } of pages) {
    const last = runs[runs.length - 1];
    if (last && last[0] + BigInt(last[1] * PAGE_SIZE) === pa) last[1]++;
    else runs.push([pa, 1]);
  }
  return runs;
}

/**
 * The system-call exit path: ERESTARTSYS never reaches userspace; without SA_RESTART (the only
 * case modelled) an interrupted call fails with EINTR.
 */
function syscallExit<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SimError && e.code === 'ERESTARTSYS') throw new SimError('EINTR', e.op, 'interrupted by a signal (ERESTARTSYS, no SA_RESTART)', e.rule);
    throw e;
  }
}
