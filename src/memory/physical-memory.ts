/**
 * The simulated physical address space: regions of system RAM and device memory with sparse
 * backing, the page-frame database of RAM, and the host's (backdoor) read and write.
 */
import { ABI, check, check64, type Core } from '../../bindings/core.js';
import { SimError } from '../../bindings/errors.js';
import { boolArg, hostBuffer, intArg, hex, objArg, oneOf, optStringArg, pageAlignedArg, u64Arg, u8ArrayArg, U64_MAX } from '../util/args.js';

/** System RAM (has a page-frame database, like the kernel's memmap) or device memory (a BAR, HBM, VRAM). */
export type RegionKind = 'ram' | 'device';

/** What {@link PhysicalMemory.addRegion} adds: one range of the physical address space. */
export interface RegionOptions {
  /** Physical base address, 4 KiB aligned. */
  base: bigint;
  /** Size in bytes, 4 KiB aligned, at most 4 TiB. Costs nothing until written. */
  size: bigint;
  /** RAM or device memory. */
  kind: RegionKind;
  /** Whether the CPU can reach it (false for HBM behind no BAR). @default true for RAM, false for device */
  cpuAccessible?: boolean;
  /** Whether CPU mappings of it are cacheable. @default true for RAM, false for device memory */
  cacheable?: boolean;
  /** An owner tag (a device index of the caller's choosing). @default 0 */
  owner?: number;
  /** A label for reports. */
  name?: string;
  /**
   * Embedded cores (dmabuf-sim/embed): back the region by the host's own linear memory at this
   * byte address (4 KiB aligned, [linear, linear + size) inside the memory and outside the core's
   * window) instead of the sparse arena, so the host's pointer sees what DMA does.
   */
  linear?: number;
}

/** A region as added (frozen): like a `struct resource` of the iomem tree. */
export interface Region {
  /** The core's region id. */
  readonly id: number;
  /** The label given, or `<kind><id>`. */
  readonly name: string;
  /** First physical address. */
  readonly base: bigint;
  /** Bytes. */
  readonly size: bigint;
  /** RAM or device memory. */
  readonly kind: RegionKind;
  /** Whether the CPU can reach it. */
  readonly cpuAccessible: boolean;
  /** Whether CPU mappings of it are cacheable. */
  readonly cacheable: boolean;
  /** The owner tag given. */
  readonly owner: number;
}

/** One RAM frame's record in the page-frame database (the simulator's `struct page`). */
export interface FrameInfo {
  /** page_ref_count: 0 for a free frame. */
  refcount: number;
  /** Pins taken by {@link PhysicalMemory.pinPage} (pin_user_pages' FOLL_PIN count). */
  pincount: number;
  /** `ABI.PG_*` flags of the allocation. */
  flags: number;
  /** Live entries when the frame holds a page table. */
  tableEntries: number;
}

/** How much of the core's arena (the sparse backing store, 4 KiB chunks) is in use. */
export interface ArenaUsage {
  /** Chunks in use (backing, radix nodes, frame records, tables). */
  chunksUsed: number;
  /** Chunks the arena has. */
  chunksTotal: number;
  /** chunksUsed x 4096. */
  bytesUsed: number;
}

/**
 * The simulated physical address space of one simulator: the regions (the kernel's iomem
 * resources), the page-frame database of RAM (alloc_pages, get_page/put_page, pin_user_pages)
 * and the CPU's own (backdoor) access to the bytes. Devices reach it through the IOMMU and
 * {@link DmaEngine}, not through this class. Get it from {@link Simulator.memory}.
 */
export class PhysicalMemory {
  private readonly _regions: Region[] = [];

  constructor(private readonly _core: Core) {}

  /**
   * Adds a region of RAM or device memory; it costs nothing until written.
   * @throws {@link SimError} EINVAL for an unaligned base or size, size 0 or over 4 TiB, a range
   *   wrapping past 2^64, a bad kind, owner or `linear`; EEXIST when it overlaps another region;
   *   ENOSPC when the region table (64) is full; ENOMEM when the arena is full.
   */
  addRegion(opts: RegionOptions): Region {
    const op = 'addRegion';
    objArg(op, 'options', opts);
    const base = pageAlignedArg(op, 'base', opts.base);
    const size = pageAlignedArg(op, 'size', opts.size);
    const kind = oneOf(op, 'kind', opts.kind, ['ram', 'device'] as const);
    const owner = opts.owner === undefined ? 0 : intArg(op, 'owner', opts.owner, 0, 0xffffffff);
    if (size === 0n) throw new SimError('EINVAL', op, 'size is 0');
    if (base + size - 1n > U64_MAX) throw new SimError('EINVAL', op, `base + size wraps past 2^64`);
    const cpuAccessible = opts.cpuAccessible === undefined ? kind === 'ram' : boolArg(op, 'cpuAccessible', opts.cpuAccessible);
    const cacheable = opts.cacheable === undefined ? kind === 'ram' : boolArg(op, 'cacheable', opts.cacheable);
    const name = optStringArg(op, 'name', opts.name);
    const linear = opts.linear === undefined ? undefined : intArg(op, 'linear', opts.linear, 0, 2 ** 32 - 1);
    const flags = (cpuAccessible ? ABI.REGION_CPU_ACCESSIBLE : 0) | (cacheable ? ABI.REGION_CACHEABLE : 0);
    const kindCode = kind === 'ram' ? ABI.REGION_KIND_RAM : ABI.REGION_KIND_DEVICE;
    const id = linear === undefined
      ? check(this._core.exports.addRegion(base, size, kindCode, flags, owner), op, `${kind} region ${hex(base)}+${hex(size)}`)
      : check(this._core.exports.addDirectRegion(base, size, kindCode, flags, owner, linear), op,
        `${kind} region ${hex(base)}+${hex(size)} on linear memory ${hex(linear)}`,
        'linear 4 KiB aligned, inside the memory and outside the core\'s window');
    const region: Region = Object.freeze({
      id, name: name ?? `${kind}${id}`, base, size, kind, cpuAccessible, cacheable, owner,
    });
    this._regions.push(region);
    return region;
  }

  /** The regions added so far, in order. */
  regions(): readonly Region[] {
    return this._regions;
  }

  /** The region holding `pa`, or undefined. */
  regionOf(pa: bigint): Region | undefined {
    u64Arg('regionOf', 'pa', pa);
    return this._regions.find((r) => pa >= r.base && pa < r.base + r.size);
  }

  /**
   * Host (backdoor) read of physical memory: bytes never written read as zeros.
   * @throws {@link SimError} EINVAL for a bad `pa` or `length` or a range wrapping past 2^64;
   *   EIO when part of the range is in no region (nothing is returned).
   */
  read(pa: bigint, length: number): Uint8Array {
    intArg('read', 'length', length, 0, 2 ** 31);
    u64Arg('read', 'pa', pa);
    const out = hostBuffer('read', length);
    this._transfer('read', pa, out);
    return out;
  }

  /** Host read of physical memory into the caller's buffer `out` (no buffer is made). Errors as read. */
  readInto(pa: bigint, out: Uint8Array): void {
    u8ArrayArg('read', 'out', out);
    this._transfer('read', u64Arg('read', 'pa', pa), out);
  }

  /**
   * Host (backdoor) write of physical memory.
   * @throws {@link SimError} EINVAL for a bad `pa`, `data` not a Uint8Array or a range wrapping
   *   past 2^64; EIO when part of the range is in no region (nothing is written); ENOMEM when the
   *   arena cannot back a written page.
   */
  write(pa: bigint, data: Uint8Array): void {
    u8ArrayArg('write', 'data', data);
    this._transfer('write', u64Arg('write', 'pa', pa), data);
  }

  private _transfer(op: 'read' | 'write', pa: bigint, buf: Uint8Array): void {
    if (pa + BigInt(buf.length) - 1n > U64_MAX) throw new SimError('EINVAL', op, 'pa + length wraps past 2^64');
    // Check the whole range first, so a write that cannot complete writes nothing.
    let at = pa;
    const end = pa + BigInt(buf.length);
    while (at < end) {
      const r = this.regionOf(at);
      if (!r) throw new SimError('EIO', op, `physical address ${hex(at)} is in no region`);
      at = r.base + r.size;
    }
    // Reserve first: a write the arena cannot back in full is refused before a byte is written.
    if (op === 'write' && buf.length > 0) {
      const need = check64(this._core.exports.backingNeeded(pa, BigInt(buf.length)), op, `${buf.length} bytes at ${hex(pa)}`);
      const free = BigInt(this._core.exports.chunksFree() >>> 0);
      if (need > free) {
        throw new SimError('ENOMEM', op, `${buf.length} bytes at ${hex(pa)} need ${need} arena chunks, ${free} are free (nothing written)`);
      }
    }
    const e = this._core.exports;
    const staging = this._core.layout.staging;
    for (let off = 0; off < buf.length; off += ABI.STAGING_SIZE) {
      const n = Math.min(ABI.STAGING_SIZE, buf.length - off);
      if (op === 'write') this._core.views.u8.set(buf.subarray(off, off + n), staging);
      const st = op === 'write'
        ? e.hostWrite(pa + BigInt(off), BigInt(n), staging)
        : e.hostRead(pa + BigInt(off), BigInt(n), staging);
      check(st, op, `${n} bytes at ${hex(pa + BigInt(off))}`);
      if (op === 'read') buf.set(this._core.views.u8.subarray(staging, staging + n), off);
    }
  }

  /**
   * Allocates `count` contiguous RAM frames aligned to `alignFrames` (a power of two); contents
   * read as zeros and each frame has refcount 1 (alloc_pages). Returns the physical address.
   * @throws {@link SimError} EINVAL for a bad count or an alignment that is not a power of two;
   *   ENOMEM when no RAM region has such a free run.
   */
  allocFrames(count: number, alignFrames = 1): bigint {
    const op = 'allocFrames';
    intArg(op, 'count', count, 1, 2 ** 40);
    intArg(op, 'alignFrames', alignFrames, 1, 2 ** 30);
    return check64(this._core.exports.frameAlloc(BigInt(count), BigInt(alignFrames), ABI.PG_DRIVER), op,
      `${count} frames aligned to ${alignFrames}`);
  }

  /**
   * Frees `count` frames from `pa` (__free_pages), each holding only its allocation reference.
   * @throws {@link SimError} EINVAL when one is not allocated, has another reference or is pinned (nothing is freed).
   */
  freeFrames(pa: bigint, count = 1): void {
    check(this._core.exports.frameFree(pageAlignedArg('freeFrames', 'pa', pa), BigInt(intArg('freeFrames', 'count', count, 1, 2 ** 40))),
      'freeFrames', `${count} frames at ${hex(pa)}: not all allocated with refcount 1 and unpinned`);
  }

  /**
   * get_page: takes a reference on the frame at `pa`.
   * @throws {@link SimError} EINVAL when `pa` is not an allocated frame.
   */
  getPage(pa: bigint): void {
    check(this._core.exports.frameGet(pageAlignedArg('getPage', 'pa', pa)), 'getPage', `${hex(pa)} is not an allocated frame`);
  }

  /**
   * put_page: drops a reference; the frame is freed when its count reaches 0. Returns the new count.
   * @throws {@link SimError} EINVAL when `pa` is not an allocated frame, or this is the last
   *   reference of a pinned frame.
   */
  putPage(pa: bigint): number {
    return check(this._core.exports.framePut(pageAlignedArg('putPage', 'pa', pa)), 'putPage',
      `${hex(pa)} is not an allocated frame, or is pinned`);
  }

  /**
   * pin_user_pages-style pin (`pin` true) or unpin_user_page (false). Returns the new pin count.
   * @throws {@link SimError} EINVAL when `pa` is not an allocated frame, or (unpin) it is not pinned.
   */
  pinPage(pa: bigint, pin = true): number {
    boolArg('pinPage', 'pin', pin);
    const op = pin ? 'pinPage' : 'unpinPage';
    return check(this._core.exports.framePin(pageAlignedArg(op, 'pa', pa), pin ? 1 : 0), op,
      `${hex(pa)} is not an allocated frame${pin ? '' : ' or is not pinned'}`);
  }

  /**
   * pin_user_pages over `count` consecutive frames from `pa` (or unpin them), all or nothing:
   * EINVAL when one is not an allocated frame (or, unpinning, not pinned), and none changed.
   */
  pinPages(pa: bigint, count: number, pin = true): void {
    boolArg('pinPages', 'pin', pin);
    const op = pin ? 'pinPages' : 'unpinPages';
    const n = intArg(op, 'count', count, 1, 2 ** 40);
    const st = this._core.exports.framePinRange(pageAlignedArg(op, 'pa', pa), BigInt(n), pin ? 1 : 0);
    check(st, op, `frame ${this._core.resultValue()} of ${count} at ${hex(pa)} is not an allocated frame${pin ? '' : ' or is not pinned'}`);
  }

  /**
   * The frame record of the RAM frame at `pa` (zeros for a free frame).
   * @throws {@link SimError} EINVAL when `pa` is not page-aligned or not in a RAM region.
   */
  frameInfo(pa: bigint): FrameInfo {
    check(this._core.exports.frameInfo(pageAlignedArg('frameInfo', 'pa', pa)), 'frameInfo', `${hex(pa)} is not in a RAM region`);
    const v = this._core.resultValue();
    const b = this._core.resultBytes();
    return {
      refcount: Number(v & 0xffffffffn), pincount: Number(v >> 32n),
      flags: Number(b & 0xffffffffn), tableEntries: Number(b >> 32n),
    };
  }

  /** Free frames over all RAM regions. */
  framesFree(): bigint {
    return BigInt.asUintN(64, this._core.exports.framesFree());
  }

  /** The arena's use: what the simulated memory and tables cost in the host. */
  arena(): ArenaUsage {
    const used = Number(this._core.stat(ABI.STAT_CHUNKS_USED));
    return { chunksUsed: used, chunksTotal: Number(this._core.stat(ABI.STAT_CHUNKS_TOTAL)), bytesUsed: used * ABI.PAGE_SIZE };
  }
}
