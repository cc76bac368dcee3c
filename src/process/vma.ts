/**
 * struct vm_area_struct and a process's address space (struct mm_struct): the mappings of a
 * simulated process, each a page-aligned range of user virtual addresses, with its file (or
 * none, for anonymous memory) and the vm_operations the mapping's driver gave it.
 *
 * Deviation from the kernel: the driver's mmap returns its VmArea (a subclass carrying its
 * vm_operations as methods) instead of filling in one the VFS allocated. The VFS still chooses
 * the range, takes the file reference and inserts the mapping.
 */
import { SimError } from '../../bindings/errors.js';
import type { PhysicalMemory } from '../memory/physical-memory.js';
import { MAP_SHARED, PAGE_SHIFT, PAGE_SIZE, PROT_WRITE } from './constants.js';
import type { SimFile } from './file.js';

const PAGE = BigInt(PAGE_SIZE);

/** What the VFS decided for a new mapping; passed to FileOperations.mmap. */
export interface VmAreaInit {
  /** The address space, or null for a mapping no process owns (a kernel importer's dma_buf_mmap). */
  readonly mm: AddressSpace | null;
  /** First user virtual address (page-aligned); 0n without an address space. */
  readonly start: bigint;
  /** Offset into the file, in pages (vm_pgoff). */
  readonly pgoff: bigint;
  readonly pages: number;
  readonly prot: number;
  readonly flags: number;
  /** vm_file, or null for anonymous memory. */
  readonly file: SimFile | null;
}

/**
 * struct vm_area_struct. Subclasses are the vm_operations: `fault` (the physical page behind a
 * page of the mapping) and `close`.
 */
export class VmArea {
  readonly mm: AddressSpace | null;
  readonly start: bigint;
  readonly pgoff: bigint;
  readonly pages: number;
  readonly prot: number;
  readonly flags: number;
  readonly file: SimFile | null;
  private _active = true;

  constructor(init: VmAreaInit) {
    this.mm = init.mm;
    this.start = init.start;
    this.pgoff = init.pgoff;
    this.pages = init.pages;
    this.prot = init.prot;
    this.flags = init.flags;
    this.file = init.file;
  }

  /** Bytes covered (whole pages). */
  get length(): number {
    return this.pages * PAGE_SIZE;
  }

  /** One past the last address. */
  get end(): bigint {
    return this.start + BigInt(this.pages) * PAGE;
  }

  /** True until munmap: a mapping that is gone faults (EFAULT) on every access. */
  get active(): boolean {
    return this._active;
  }

  /**
   * VM_PFNMAP: the mapping's pages are raw page frames put there by its driver, with no struct
   * page to take a reference on; CPU accesses work, get_user_pages fails (EFAULT).
   */
  get pfnMap(): boolean {
    return false;
  }

  /** MAP_SHARED with PROT_WRITE (mapping_writably_mapped counts these). */
  get sharedWritable(): boolean {
    return (this.flags & MAP_SHARED) !== 0 && (this.prot & PROT_WRITE) !== 0;
  }

  /**
   * The physical address of page `index` (0-based from `start`), faulting it in (handle_mm_fault
   * calling vm_ops->fault).
   * @throws {@link index!SimError} EFAULT when the mapping is gone, the page outside it, a write to a
   * read-only mapping, or the mapping has no struct pages to hand out (fault not provided:
   * VM_PFNMAP/VM_IO, where get_user_pages fails); ENOMEM when anonymous memory has no free frame.
   */
  pagePhys(index: number, write = false, op = 'fault'): bigint {
    if (!this._active) throw new SimError('EFAULT', op, 'the mapping was unmapped');
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.pages) {
      throw new SimError('EFAULT', op, `page ${index} is outside the ${this.pages}-page mapping`);
    }
    if (write && (this.prot & PROT_WRITE) === 0) throw new SimError('EFAULT', op, 'the mapping is not writable (SIGSEGV)');
    return this.fault(index, write, op);
  }

  /**
   * munmap: removes the mapping from its address space, runs vm_ops->close and drops the
   * mapping's file reference (which may release the file). When the file refuses the drop (see
   * DmaBuf), nothing changes.
   * @throws {@link index!SimError} EINVAL on a second munmap; whatever the file's put throws.
   */
  munmap(): void {
    if (!this._active) throw new SimError('EINVAL', 'munmap', 'this mapping is already unmapped');
    const file = this.file;
    const held = file?.refs.mmap ?? 0;
    try {
      file?.put('mmap', 'munmap');
    } catch (e) {
      // Refused before the drop (the reference is still held): nothing changed. Otherwise the
      // file's release threw after the drop: the mapping goes all the same.
      if (!file || file.refs.mmap === held) throw e;
      this._teardown();
      throw e;
    }
    this._teardown();
  }

  /**
   * exit_mmap's unmap of one mapping: never stops half way. When the file refuses the drop of the
   * mapping's reference (see DmaBuf), the reference leaks as the kernel's and the mapping still
   * goes. Returns the error met (undefined when there was none).
   */
  exitUnmap(): unknown {
    if (!this._active) return undefined;
    try {
      this.munmap();
      return undefined;
    } catch (e) {
      if (this._active) {
        try {
          this.file?.moveRef('mmap', 'kernel', 'exit_mmap');
        } catch {
          // The file holds no such reference: nothing to leak.
        }
        try {
          this._teardown();
        } catch (e2) {
          void e2; // the mapping is already out of its address space; the first error is reported
        }
      }
      return e;
    }
  }

  /** Leaves the address space, then vm_ops->close (which may throw; the mapping is gone by then). */
  private _teardown(): void {
    this._active = false;
    this.mm?.remove(this);
    this.close();
  }

  /** vm_ops->fault: the physical address of page `index`. Default: no struct pages (EFAULT). */
  protected fault(index: number, write: boolean, op: string): bigint {
    void index;
    void write;
    throw new SimError('EFAULT', op, 'the mapping has no struct pages (VM_PFNMAP)');
  }

  /** vm_ops->close: runs once, after the mapping left its address space. */
  protected close(): void {}
}

/** Anonymous memory (MAP_PRIVATE | MAP_ANONYMOUS): zeroed RAM frames, allocated on first touch. */
export class AnonVmArea extends VmArea {
  private readonly _frames: (bigint | undefined)[];

  /** @internal Use Process.mmapAnonymous. */
  constructor(
    init: VmAreaInit,
    private readonly _mem: PhysicalMemory,
  ) {
    super(init);
    this._frames = new Array<bigint | undefined>(init.pages);
  }

  /** Frames allocated so far. */
  get residentPages(): number {
    return this._frames.filter((f) => f !== undefined).length;
  }

  /**
   * MAP_POPULATE (mm_populate): fault in every page now, as one contiguous run when the allocator
   * has one.
   * @throws {@link SimError} ENOMEM when RAM runs out (pages faulted in before stay).
   */
  populate(): void {
    if (this.residentPages === 0) {
      try {
        const base = this._mem.allocFrames(this.pages);
        for (let i = 0; i < this.pages; i++) this._frames[i] = base + BigInt(i) * PAGE;
        return;
      } catch (e) {
        if (!(e instanceof SimError) || e.code !== 'ENOMEM') throw e;
      }
    }
    for (let i = 0; i < this.pages; i++) this.pagePhys(i, false, 'mm_populate');
  }

  protected override fault(index: number): bigint {
    let pa = this._frames[index];
    if (pa === undefined) {
      pa = this._mem.allocFrames(1);
      this._frames[index] = pa;
    }
    return pa;
  }

  /** The page table's reference on each frame goes; pages pinned elsewhere live on until unpinned. */
  protected override close(): void {
    for (const pa of this._frames) if (pa !== undefined) this._mem.putPage(pa);
    this._frames.fill(undefined);
  }
}

/** One page of user memory resolved by getUserPages. */
export interface UserPage {
  /** Physical address of the page (page-aligned). */
  readonly pa: bigint;
  readonly vma: VmArea;
}

/**
 * struct mm_struct: the mappings of one process, sorted by address, and the range new mappings
 * are placed in (bottom-up from `mmapBase`, first fit).
 */
export class AddressSpace {
  /** Sorted by start; never overlapping. */
  private readonly _vmas: VmArea[] = [];

  constructor(
    /** System RAM behind anonymous memory; null when the process has none. */
    readonly memory: PhysicalMemory | null,
    readonly mmapBase = 0x7f00_0000_0000n,
    readonly taskSize = 0x7fff_ffff_f000n,
  ) {}

  /** Live mappings, by address. */
  get vmas(): readonly VmArea[] {
    return [...this._vmas];
  }

  /** find_vma: the mapping containing `addr`, or undefined. */
  find(addr: bigint): VmArea | undefined {
    let lo = 0;
    let hi = this._vmas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this._vmas[mid]!;
      if (addr < v.start) hi = mid - 1;
      else if (addr >= v.end) lo = mid + 1;
      else return v;
    }
    return undefined;
  }

  /**
   * get_unmapped_area: `hint` when it is `align`-aligned and [hint, +pages) is free, else the
   * first free `align`-aligned gap from mmapBase.
   * @throws {@link SimError} EINVAL when `hint` is unaligned or past taskSize; EEXIST when it
   * overlaps a mapping (as MAP_FIXED_NOREPLACE); ENOMEM when nothing fits below taskSize.
   */
  unmappedArea(pages: number, hint: bigint | undefined, op: string, align = PAGE_SIZE): bigint {
    const len = BigInt(pages) * PAGE;
    const a = BigInt(align);
    if (hint !== undefined) {
      if (hint < 0n || hint % a !== 0n || hint + len > this.taskSize) {
        throw new SimError('EINVAL', op, `address 0x${hint.toString(16)} is not a page-aligned user address`);
      }
      if (this._vmas.some((v) => v.start < hint + len && hint < v.end)) {
        throw new SimError('EEXIST', op, `[0x${hint.toString(16)}, +0x${len.toString(16)}) overlaps a mapping`);
      }
      return hint;
    }
    const up = (x: bigint) => ((x + a - 1n) / a) * a;
    let at = up(this.mmapBase);
    for (const v of this._vmas) {
      if (v.end <= at) continue;
      if (v.start >= at + len) break;
      at = up(v.end);
    }
    if (at + len > this.taskSize) throw new SimError('ENOMEM', op, 'no room left in the address space');
    return at;
  }

  /** @internal Inserts a mapping made for this address space. */
  insert(vma: VmArea): void {
    if (vma.mm !== this) throw new SimError('EINVAL', 'insert_vm_struct', 'the mapping belongs to another address space');
    let i = this._vmas.length;
    while (i > 0 && this._vmas[i - 1]!.start > vma.start) i--;
    this._vmas.splice(i, 0, vma);
  }

  /** @internal Called by VmArea.munmap. */
  remove(vma: VmArea): void {
    const i = this._vmas.indexOf(vma);
    if (i >= 0) this._vmas.splice(i, 1);
  }

  /**
   * Walks [addr, addr + length) page by page, faulting pages in: `fn(pa, done, n)` per piece, the
   * physical address of byte `done` of the range and the bytes in that page.
   * @throws {@link SimError} EINVAL for a bad length; EFAULT where nothing is mapped or a page
   * cannot be reached (see VmArea.pagePhys).
   */
  walk(addr: bigint, length: number, write: boolean, op: string, fn: (pa: bigint, done: number, n: number) => void): void {
    if (!Number.isSafeInteger(length) || length < 0) throw new SimError('EINVAL', op, `length ${length}`);
    let done = 0;
    while (done < length) {
      const va = addr + BigInt(done);
      const vma = this.find(va);
      if (!vma) throw new SimError('EFAULT', op, `0x${va.toString(16)} is not mapped`);
      const index = Number((va - vma.start) >> BigInt(PAGE_SHIFT));
      const inPage = Number(va % PAGE);
      const n = Math.min(PAGE_SIZE - inPage, length - done);
      fn(vma.pagePhys(index, write, op) + BigInt(inPage), done, n);
      done += n;
    }
  }
}
