/**
 * memfd_create(2) for a simulated process: a shmem (or hugetlbfs) file whose pages are system-RAM
 * frames of the machine, allocated on first touch, with the F_ADD_SEALS/F_GET_SEALS seals
 * (mm/memfd.c, mm/shmem.c) that udmabuf checks.
 *
 * The memfd is a file of the process layer with `memfdFops` (llseek, mmap, release) and the
 * inode, a MemfdFile, as its private data: dup'ed fds and mappings share it, a closed and reused
 * fd does not. The page cache holds one reference on each page; when the last reference to the
 * file goes (fds and mappings), the inode is evicted and those references are dropped, so pages
 * nobody else holds (a udmabuf, a pin) are freed. There is no read(2)/write(2) (pread/pwrite only).
 */
import {
  SimError, MAP_SHARED, O_RDWR, PAGE_SIZE, PROT_WRITE, SEEK_CUR, SEEK_END, SEEK_SET, VmArea,
  type FileOperations, type Machine, type PhysicalMemory, type Process, type VmAreaInit,
} from '../../index.js';
import {
  F_ADD_SEALS, F_ALL_SEALS, F_GET_SEALS, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE,
  HPAGE_SIZE, MFD_ALLOW_SEALING, MFD_CLOEXEC, MFD_EXEC, MFD_HUGETLB, MFD_NAME_MAX_LEN, MFD_NOEXEC_SEAL,
} from './uapi.js';

const MAX_FILE_SIZE = BigInt(Number.MAX_SAFE_INTEGER) & ~0xfffn;

/** The arguments of mmap(2) on a memfd ({@link memfdMmap}). */
export interface MemfdMmapRequest {
  /** Bytes to map. */
  length: number;
  /** PROT_* bits. */
  prot: number;
  /** MAP_SHARED or MAP_PRIVATE (stores through a private mapping are not modelled). */
  flags: number;
  /** Byte offset, page-aligned (huge-page-aligned for hugetlb). @default 0 */
  offset?: number;
}

/** A mapping of a memfd into the process: loads and stores reach the file's pages. */
export class MemfdMapping extends VmArea {
  /** @internal Made by the memfd's mmap. */
  constructor(
    init: VmAreaInit,
    readonly inode: MemfdFile,
  ) {
    super(init);
    if (this.sharedWritable) inode.sharedWritableMaps++;
  }

  /** Byte offset of the mapping in the file. */
  get offset(): number {
    return Number(this.pgoff) * PAGE_SIZE;
  }

  /**
   * A load; a page never touched is allocated (shmem fault), SIGBUS past EOF is EFAULT.
   * @throws {@link index!SimError} EFAULT when the mapping is gone, the range outside it or past EOF.
   */
  read(offset: number, length: number): Uint8Array {
    this._check('memfd mmap read', offset, length);
    return this.inode.access('memfd mmap read', this.offset + offset, length, null);
  }

  /**
   * A store. Private mappings are copy-on-write: modelled as unsupported (EFAULT).
   * @throws {@link index!SimError} EFAULT when the mapping is gone, not writable, MAP_PRIVATE, or the range is
   * outside it or past EOF.
   */
  write(offset: number, data: Uint8Array): void {
    const op = 'memfd mmap write';
    this._check(op, offset, data.length);
    if ((this.prot & PROT_WRITE) === 0) throw new SimError('EFAULT', op, 'the mapping is not writable (SIGSEGV)');
    if ((this.flags & MAP_SHARED) === 0) throw new SimError('EFAULT', op, 'stores to MAP_PRIVATE memfd mappings are not modelled');
    this.inode.access(op, this.offset + offset, data.length, data);
  }

  /** shmem_fault: the page cache page (a private mapping is read-only here: no COW). */
  protected override fault(index: number, write: boolean, op: string): bigint {
    if (write && (this.flags & MAP_SHARED) === 0) throw new SimError('EFAULT', op, 'copy-on-write of MAP_PRIVATE memfd pages is not modelled');
    const pgoff = Number(this.pgoff) + index;
    if (pgoff * PAGE_SIZE >= this.inode.size) throw new SimError('EFAULT', op, `page ${pgoff} is past EOF (SIGBUS)`);
    return this.inode.pagePhys(op, pgoff);
  }

  protected override close(): void {
    if (this.sharedWritable) this.inode.sharedWritableMaps--;
  }

  private _check(op: string, offset: number, length: number): void {
    if (!this.active) throw new SimError('EFAULT', op, 'the mapping was unmapped');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > this.length) {
      throw new SimError('EFAULT', op, `[${offset}, +${length}) is outside the ${this.length}-byte mapping`);
    }
  }
}

/** The shmem/hugetlbfs inode behind a memfd. */
export class MemfdFile {
  /** i_size in bytes. */
  private _size = 0;
  private _seals: number;
  /** Folio index -> physical address of the folio (page size `folioSize`). */
  private readonly _folios = new Map<number, bigint>();
  /** Live MAP_SHARED + PROT_WRITE mappings (mapping_writably_mapped). */
  sharedWritableMaps = 0;
  private _evicted = false;

  /** @internal Use memfdCreate. */
  constructor(
    private readonly _mem: PhysicalMemory,
    readonly name: string,
    readonly flags: number,
  ) {
    // Without MFD_ALLOW_SEALING the file starts with F_SEAL_SEAL: no seal can ever be added.
    this._seals = flags & MFD_ALLOW_SEALING ? 0 : F_SEAL_SEAL;
  }

  /** Made with MFD_HUGETLB: a hugetlbfs file of 2 MiB folios. */
  get hugetlb(): boolean {
    return (this.flags & MFD_HUGETLB) !== 0;
  }

  /** Bytes per folio: 4 KiB (shmem) or 2 MiB (hugetlbfs). */
  get folioSize(): number {
    return this.hugetlb ? HPAGE_SIZE : PAGE_SIZE;
  }

  /** i_size: the file's length in bytes (ftruncate, pwrite). */
  get size(): number {
    return this._size;
  }

  /** The F_SEAL_* bits set (as F_GET_SEALS returns). */
  get seals(): number {
    return this._seals;
  }

  /** Folios allocated so far. */
  get foliosAllocated(): number {
    return this._folios.size;
  }

  /** F_GET_SEALS. */
  getSeals(): number {
    return this._seals;
  }

  /**
   * F_ADD_SEALS (memfd_add_seals): EINVAL for unknown bits, EPERM once F_SEAL_SEAL is set, EBUSY
   * for F_SEAL_WRITE while a shared writable mapping exists.
   * @throws {@link index!SimError} EINVAL for bits outside F_ALL_SEALS.
   * @throws {@link index!SimError} EPERM when F_SEAL_SEAL is set.
   * @throws {@link index!SimError} EBUSY when adding F_SEAL_WRITE with a shared writable mapping alive.
   */
  addSeals(seals: number): void {
    const op = 'F_ADD_SEALS';
    if (!Number.isInteger(seals) || seals < 0 || (seals & ~F_ALL_SEALS) !== 0) {
      throw new SimError('EINVAL', op, `seals 0x${seals.toString(16)} has unknown bits`);
    }
    if (this._seals & F_SEAL_SEAL) throw new SimError('EPERM', op, 'the file is sealed against new seals (F_SEAL_SEAL)');
    if (seals & F_SEAL_WRITE && !(this._seals & F_SEAL_WRITE) && this.sharedWritableMaps > 0) {
      throw new SimError('EBUSY', op, `${this.sharedWritableMaps} shared writable mapping(s) exist`);
    }
    this._seals |= seals;
  }

  /**
   * ftruncate(2): shrinking drops the page cache's reference on the pages past the new end and
   * zeroes the tail of the last partial folio.
   * @throws {@link index!SimError} EINVAL for a negative or too large length, or (hugetlb) one not a multiple of 2 MiB.
   * @throws {@link index!SimError} EPERM for shrinking under F_SEAL_SHRINK or growing under F_SEAL_GROW.
   */
  ftruncate(length: number | bigint): void {
    const op = 'ftruncate';
    const len = BigInt(length);
    if (len < 0n || len > MAX_FILE_SIZE) throw new SimError('EINVAL', op, `length ${len} out of range`);
    if (this.hugetlb && len % BigInt(HPAGE_SIZE) !== 0n) throw new SimError('EINVAL', op, 'hugetlbfs sizes are multiples of the huge page size');
    const n = Number(len);
    if (n < this._size && this._seals & F_SEAL_SHRINK) throw new SimError('EPERM', op, 'F_SEAL_SHRINK is set');
    if (n > this._size && this._seals & F_SEAL_GROW) throw new SimError('EPERM', op, 'F_SEAL_GROW is set');
    if (n < this._size) {
      const keep = Math.ceil(n / this.folioSize);
      for (const [idx, pa] of [...this._folios]) {
        if (idx < keep) continue;
        // The page cache drops its reference; pages pinned elsewhere (udmabuf) live on.
        const frames = this.folioSize / PAGE_SIZE;
        for (let i = 0; i < frames; i++) this._mem.putPage(pa + BigInt(i * PAGE_SIZE));
        this._folios.delete(idx);
      }
      if (n % this.folioSize !== 0 && this._folios.has(keep - 1)) {
        // Zero the tail of the last partial folio, as truncate_inode_pages does.
        const start = n % this.folioSize;
        this._mem.write(this._folios.get(keep - 1)! + BigInt(start), new Uint8Array(this.folioSize - start));
      }
    }
    this._size = n;
  }

  /**
   * pwrite(2): writes `data` at `offset`, growing the file; returns the bytes written.
   * @throws {@link index!SimError} EPERM under F_SEAL_WRITE or F_SEAL_FUTURE_WRITE, or growing under F_SEAL_GROW.
   * @throws {@link index!SimError} EINVAL for a bad offset, or growing a hugetlbfs file (no write(2) there).
   * @throws {@link index!SimError} ENOMEM when RAM has no free frame for a new page.
   */
  pwrite(data: Uint8Array, offset: number): number {
    const op = 'pwrite';
    if (this._seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) throw new SimError('EPERM', op, 'the file is sealed against writes');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new SimError('EINVAL', op, `offset ${offset}`);
    const end = offset + data.length;
    if (end > this._size) {
      if (this._seals & F_SEAL_GROW) throw new SimError('EPERM', op, 'F_SEAL_GROW is set');
      if (this.hugetlb) throw new SimError('EINVAL', op, 'hugetlbfs files have no write(2)');
      this._size = end;
    }
    this.access(op, offset, data.length, data);
    return data.length;
  }

  /**
   * pread(2): reads up to `length` bytes at `offset`, fewer at EOF.
   * @throws {@link index!SimError} EINVAL for a negative or non-integer offset or length.
   */
  pread(length: number, offset: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new SimError('EINVAL', 'pread', 'offset and length must be non-negative integers');
    }
    const n = Math.max(0, Math.min(length, this._size - offset));
    return this.access('pread', offset, n, null);
  }

  /**
   * The memfd's mmap, after the VFS checks: EINVAL for an offset not aligned to the folio size
   * (hugetlbfs), EPERM for a shared writable mapping under F_SEAL_WRITE/F_SEAL_FUTURE_WRITE.
   * Pages past EOF fault with SIGBUS.
   * @throws {@link index!SimError} EINVAL for an offset not aligned to the folio size.
   * @throws {@link index!SimError} EPERM for a shared writable mapping of a write-sealed file.
   */
  mmap(init: VmAreaInit): MemfdMapping {
    const op = 'mmap';
    const offset = Number(init.pgoff) * PAGE_SIZE;
    if (offset % this.folioSize !== 0) throw new SimError('EINVAL', op, `offset ${offset} is not ${this.folioSize}-aligned`);
    if (init.flags & MAP_SHARED && init.prot & PROT_WRITE && this._seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) {
      throw new SimError('EPERM', op, 'shared writable mapping of a write-sealed memfd');
    }
    return new MemfdMapping(init, this);
  }

  /**
   * Eviction when the last reference to the file went: the page cache drops its reference on
   * every page; pages a udmabuf or a pin still holds live on until those go.
   */
  evict(): void {
    if (this._evicted) return;
    this._evicted = true;
    const frames = this.folioSize / PAGE_SIZE;
    for (const pa of this._folios.values()) for (let i = 0; i < frames; i++) this._mem.putPage(pa + BigInt(i * PAGE_SIZE));
    this._folios.clear();
  }

  /**
   * shmem_read_mapping_page / memfd_alloc_folio: the physical address of 4 KiB page `pgoff`,
   * allocating its folio on first use. Past EOF: EINVAL (SGP_CACHE refuses it).
   * @throws {@link index!SimError} EINVAL past EOF or after eviction; ENOMEM when RAM has no free folio.
   */
  pagePhys(op: string, pgoff: number): bigint {
    if (this._evicted) throw new SimError('EINVAL', op, `${this.name} was evicted`);
    if (!Number.isSafeInteger(pgoff) || pgoff < 0 || pgoff * PAGE_SIZE >= this._size) {
      throw new SimError('EINVAL', op, `page ${pgoff} is past the end of ${this.name} (${this._size} bytes)`);
    }
    const per = this.folioSize / PAGE_SIZE;
    const fidx = Math.floor(pgoff / per);
    let pa = this._folios.get(fidx);
    if (pa === undefined) {
      pa = this._mem.allocFrames(per, per);
      this._folios.set(fidx, pa);
    }
    return pa + BigInt((pgoff % per) * PAGE_SIZE);
  }

  /**
   * Byte access through the page cache: writes `data` at `offset`, or reads `length` bytes when
   * `data` is null; returns the bytes.
   * @throws {@link index!SimError} EFAULT for a range past EOF (SIGBUS); ENOMEM when RAM has no free folio.
   */
  access(op: string, offset: number, length: number, data: Uint8Array | null): Uint8Array {
    if (offset + length > this._size && length > 0) {
      throw new SimError('EFAULT', op, `[${offset}, +${length}) is past EOF (${this._size}): SIGBUS`);
    }
    const out = data ? data : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const n = Math.min(PAGE_SIZE - (at % PAGE_SIZE), length - done);
      const pa = this.pagePhys(op, Math.floor(at / PAGE_SIZE)) + BigInt(at % PAGE_SIZE);
      if (data) this._mem.write(pa, data.subarray(done, done + n));
      else out.set(this._mem.read(pa, n), done);
      done += n;
    }
    return out;
  }
}

/** The memfd's file_operations: the file position, mmap of the page cache, eviction at release. */
export const memfdFops: FileOperations<MemfdFile> = Object.freeze<FileOperations<MemfdFile>>({
  name: 'memfd',
  llseek: (file, offset, whence) => {
    const base = whence === SEEK_SET ? 0n : whence === SEEK_CUR ? file.pos : whence === SEEK_END ? BigInt(file.privateData.size) : -1n;
    if (base < 0n) throw new SimError('EINVAL', 'llseek', `whence ${whence} is not SEEK_SET, SEEK_CUR or SEEK_END`);
    if (base + offset < 0n) throw new SimError('EINVAL', 'llseek', `position ${base + offset} is negative`);
    file.pos = base + offset;
    return file.pos;
  },
  mmap: (file, init) => file.privateData.mmap(init),
  mmapPageSize: (file) => file.privateData.folioSize,
  release: (file) => file.privateData.evict(),
});

/**
 * memfd_create(2) in `proc`: returns the new fd. EINVAL for unknown flags, MFD_EXEC with
 * MFD_NOEXEC_SEAL, or a name longer than 249 bytes; EFAULT for a missing name; EMFILE.
 * @throws {@link index!SimError} EINVAL for unknown flags, MFD_EXEC with MFD_NOEXEC_SEAL, or a name over 249 bytes.
 * @throws {@link index!SimError} EFAULT when `name` is not a string.
 * @throws {@link index!SimError} EMFILE when the process's fd table is full.
 */
export function memfdCreate(machine: Machine, proc: Process, name: string, flags = 0): number {
  const op = 'memfd_create';
  if (typeof name !== 'string') throw new SimError('EFAULT', op, 'name is not a string');
  if (new TextEncoder().encode(name).length > MFD_NAME_MAX_LEN) throw new SimError('EINVAL', op, `name is longer than ${MFD_NAME_MAX_LEN} bytes`);
  const known = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~known) !== 0) throw new SimError('EINVAL', op, `unknown flags 0x${flags.toString(16)}`);
  if (flags & MFD_EXEC && flags & MFD_NOEXEC_SEAL) throw new SimError('EINVAL', op, 'MFD_EXEC and MFD_NOEXEC_SEAL together');
  // MFD_NOEXEC_SEAL implies MFD_ALLOW_SEALING (and seals F_SEAL_EXEC, not modelled).
  const eff = flags & MFD_NOEXEC_SEAL ? flags | MFD_ALLOW_SEALING : flags;
  const inode = new MemfdFile(machine.sim.memory, name, eff);
  return proc.open(memfdFops, inode, { cloexec: (flags & MFD_CLOEXEC) !== 0, flags: O_RDWR, name: `memfd:${name}` });
}

/**
 * The memfd behind `fd`, or null when the fd is open but not a memfd.
 * @throws {@link index!SimError} EBADF when `fd` is not open.
 */
export function memfdOf(proc: Process, fd: number): MemfdFile | null {
  const file = proc.file(fd);
  return file.fops === memfdFops ? (file.privateData as MemfdFile) : null;
}

/**
 * fcntl(2) F_ADD_SEALS / F_GET_SEALS: the seals for F_GET_SEALS, 0 for F_ADD_SEALS.
 * @throws {@link index!SimError} EBADF when `fd` is not open.
 * @throws {@link index!SimError} EINVAL for another command or a file that is not a memfd; what
 * {@link MemfdFile.addSeals} throws.
 */
export function memfdFcntl(proc: Process, fd: number, cmd: number, arg = 0): number {
  const f = memfdOf(proc, fd);
  if (cmd !== F_ADD_SEALS && cmd !== F_GET_SEALS) throw new SimError('EINVAL', 'fcntl', `command ${cmd} is not modelled`);
  if (!f) throw new SimError('EINVAL', 'fcntl', `fd ${fd} does not support sealing`);
  if (cmd === F_GET_SEALS) return f.getSeals();
  f.addSeals(arg);
  return 0;
}

/**
 * ftruncate(2) on a memfd fd.
 * @throws {@link index!SimError} EBADF when `fd` is not open; EINVAL when it is not a memfd; what
 * {@link MemfdFile.ftruncate} throws.
 */
export function memfdTruncate(proc: Process, fd: number, length: number | bigint): void {
  const f = memfdOf(proc, fd);
  if (!f) throw new SimError('EINVAL', 'ftruncate', `fd ${fd} is not a memfd`);
  f.ftruncate(length);
}

/**
 * mmap(2) of a memfd fd: Process.mmap, typed.
 * @throws {@link index!SimError} EBADF when `fd` is not open; ENODEV when it is not a memfd; what Process.mmap
 * and {@link MemfdFile.mmap} throw.
 */
export function memfdMmap(proc: Process, fd: number, req: MemfdMmapRequest): MemfdMapping {
  if (!memfdOf(proc, fd)) throw new SimError('ENODEV', 'mmap', `fd ${fd} is not a memfd`);
  return proc.mmap(fd, req) as MemfdMapping;
}
