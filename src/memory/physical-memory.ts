/**
 * The simulated physical address space: regions of system RAM and device memory with sparse
 * backing, the page-frame database of RAM, and the host's (backdoor) read and write.
 */
import { ABI, check, check64, type Core } from '../../bindings/core.js';
import { SimError } from '../../bindings/errors.js';
import { intArg, hex, oneOf, pageAlignedArg, u64Arg, U64_MAX } from '../util/args.js';

export type RegionKind = 'ram' | 'device';

export interface RegionOptions {
  /** Physical base address, 4 KiB aligned. */
  base: bigint;
  /** Size in bytes, 4 KiB aligned, at most 4 TiB. Costs nothing until written. */
  size: bigint;
  kind: RegionKind;
  /** Whether the CPU can reach it (false for HBM behind no BAR). @default true for RAM, false for device */
  cpuAccessible?: boolean;
  /** @default true for RAM, false for device memory */
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

export interface Region {
  readonly id: number;
  readonly name: string;
  readonly base: bigint;
  readonly size: bigint;
  readonly kind: RegionKind;
  readonly cpuAccessible: boolean;
  readonly cacheable: boolean;
  readonly owner: number;
}

export interface FrameInfo {
  refcount: number;
  pincount: number;
  flags: number;
  /** Live entries when the frame holds a page table. */
  tableEntries: number;
}

export interface ArenaUsage {
  chunksUsed: number;
  chunksTotal: number;
  bytesUsed: number;
}

export class PhysicalMemory {
  private readonly _regions: Region[] = [];

  constructor(private readonly _core: Core) {}

  /**
   * Adds a region. Throws EINVAL (alignment, size 0 or over 4 TiB, wrapping), EEXIST (overlaps
   * another region), ENOSPC (64 regions), ENOMEM (arena full).
   */
  addRegion(opts: RegionOptions): Region {
    const op = 'addRegion';
    const base = pageAlignedArg(op, 'base', opts.base);
    const size = pageAlignedArg(op, 'size', opts.size);
    const kind = oneOf(op, 'kind', opts.kind, ['ram', 'device'] as const);
    const owner = opts.owner === undefined ? 0 : intArg(op, 'owner', opts.owner, 0, 0xffffffff);
    if (size === 0n) throw new SimError('EINVAL', op, 'size is 0');
    if (base + size - 1n > U64_MAX) throw new SimError('EINVAL', op, `base + size wraps past 2^64`);
    const cpuAccessible = opts.cpuAccessible ?? kind === 'ram';
    const cacheable = opts.cacheable ?? kind === 'ram';
    const flags = (cpuAccessible ? ABI.REGION_CPU_ACCESSIBLE : 0) | (cacheable ? ABI.REGION_CACHEABLE : 0);
    const kindCode = kind === 'ram' ? ABI.REGION_KIND_RAM : ABI.REGION_KIND_DEVICE;
    const id = opts.linear === undefined
      ? check(this._core.exports.addRegion(base, size, kindCode, flags, owner), op, `${kind} region ${hex(base)}+${hex(size)}`)
      : check(this._core.exports.addDirectRegion(base, size, kindCode, flags, owner,
        intArg(op, 'linear', opts.linear, 0, 2 ** 32 - 1)), op,
        `${kind} region ${hex(base)}+${hex(size)} on linear memory ${hex(BigInt(opts.linear))}`,
        'linear 4 KiB aligned, inside the memory and outside the core\'s window');
    const region: Region = Object.freeze({
      id, name: opts.name ?? `${kind}${id}`, base, size, kind, cpuAccessible, cacheable, owner,
    });
    this._regions.push(region);
    return region;
  }

  regions(): readonly Region[] {
    return this._regions;
  }

  /** The region holding `pa`, or undefined. */
  regionOf(pa: bigint): Region | undefined {
    return this._regions.find((r) => pa >= r.base && pa < r.base + r.size);
  }

  /**
   * Host (backdoor) read of physical memory: bytes never written read as zeros. Throws EINVAL
   * for bad arguments and EIO when part of the range is in no region (nothing is returned).
   */
  read(pa: bigint, length: number): Uint8Array {
    const out = new Uint8Array(intArg('read', 'length', length, 0, 2 ** 31));
    this._transfer('read', u64Arg('read', 'pa', pa), out);
    return out;
  }

  /** Host read of physical memory into the caller's buffer `out` (no buffer is made). Errors as read. */
  readInto(pa: bigint, out: Uint8Array): void {
    if (!(out instanceof Uint8Array)) throw new SimError('EINVAL', 'read', 'out must be a Uint8Array');
    this._transfer('read', u64Arg('read', 'pa', pa), out);
  }

  /** Host write of physical memory. Throws EINVAL, EIO (no region), ENOMEM (arena full). */
  write(pa: bigint, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new SimError('EINVAL', 'write', 'data must be a Uint8Array');
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
   * read as zeros and each frame has refcount 1. Returns the physical address. Throws EINVAL or
   * ENOMEM.
   */
  allocFrames(count: number, alignFrames = 1): bigint {
    const op = 'allocFrames';
    intArg(op, 'count', count, 1, 2 ** 40);
    intArg(op, 'alignFrames', alignFrames, 1, 2 ** 30);
    return check64(this._core.exports.frameAlloc(BigInt(count), BigInt(alignFrames), ABI.PG_DRIVER), op,
      `${count} frames aligned to ${alignFrames}`);
  }

  /** Frees `count` frames from `pa`, each holding only its allocation reference. Throws EINVAL otherwise. */
  freeFrames(pa: bigint, count = 1): void {
    check(this._core.exports.frameFree(pageAlignedArg('freeFrames', 'pa', pa), BigInt(intArg('freeFrames', 'count', count, 1, 2 ** 40))),
      'freeFrames', `${count} frames at ${hex(pa)}: not all allocated with refcount 1 and unpinned`);
  }

  /** get_page. Throws EINVAL when `pa` is not an allocated frame. */
  getPage(pa: bigint): void {
    check(this._core.exports.frameGet(pageAlignedArg('getPage', 'pa', pa)), 'getPage', `${hex(pa)} is not an allocated frame`);
  }

  /** put_page; the frame is freed when its count reaches 0. Returns the new count. */
  putPage(pa: bigint): number {
    return check(this._core.exports.framePut(pageAlignedArg('putPage', 'pa', pa)), 'putPage',
      `${hex(pa)} is not an allocated frame, or is pinned`);
  }

  /** pin_user_pages-style pin / unpin. Returns the new pin count. */
  pinPage(pa: bigint, pin = true): number {
    const op = pin ? 'pinPage' : 'unpinPage';
    return check(this._core.exports.framePin(pageAlignedArg(op, 'pa', pa), pin ? 1 : 0), op,
      `${hex(pa)} is not an allocated frame${pin ? '' : ' or is not pinned'}`);
  }

  /**
   * pin_user_pages over `count` consecutive frames from `pa` (or unpin them), all or nothing:
   * EINVAL when one is not an allocated frame (or, unpinning, not pinned), and none changed.
   */
  pinPages(pa: bigint, count: number, pin = true): void {
    const op = pin ? 'pinPages' : 'unpinPages';
    const n = intArg(op, 'count', count, 1, 2 ** 40);
    const st = this._core.exports.framePinRange(pageAlignedArg(op, 'pa', pa), BigInt(n), pin ? 1 : 0);
    check(st, op, `frame ${this._core.resultValue()} of ${count} at ${hex(pa)} is not an allocated frame${pin ? '' : ' or is not pinned'}`);
  }

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

  arena(): ArenaUsage {
    const used = Number(this._core.stat(ABI.STAT_CHUNKS_USED));
    return { chunksUsed: used, chunksTotal: Number(this._core.stat(ABI.STAT_CHUNKS_TOTAL)), bytesUsed: used * ABI.PAGE_SIZE };
  }
}
