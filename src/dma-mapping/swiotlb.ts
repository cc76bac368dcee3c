/**
 * swiotlb: a pool of bounce buffers in low RAM for devices whose DMA mask cannot reach the
 * memory being mapped (kernel/dma/swiotlb.c, one pool, one area: a single simulated CPU).
 *
 * - The pool is cut in IO_TLB_SIZE (2 KiB) slots, grouped in segments of IO_TLB_SEGSIZE (128)
 *   slots; one mapping never crosses a segment, so the largest mapping is 256 KiB.
 * - Each slot keeps `list`: how many free slots follow from it to the end of its segment
 *   (itself included). A search looks for a slot whose list is at least the slots needed,
 *   starting after the last allocation and wrapping; mappings of a page or more start page
 *   aligned (a stride of two slots).
 * - Mapping always copies the original bytes into the bounce buffer (even for FROM_DEVICE, so a
 *   device that writes only part of the buffer cannot leak stale pool contents: the 2022 info
 *   leak fix); unmapping copies back for FROM_DEVICE and BIDIRECTIONAL. sync_single_for_device
 *   copies to the buffer (TO_DEVICE, BIDIRECTIONAL), sync_single_for_cpu copies back
 *   (FROM_DEVICE, BIDIRECTIONAL).
 */
import { SimError } from '../../bindings/errors.js';
import type { PhysicalMemory } from '../memory/physical-memory.js';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from './constants.js';

/** log2 of a bounce slot's size (include/linux/swiotlb.h). */
export const IO_TLB_SHIFT = 11;
/** Bytes of one bounce slot: 2 KiB. */
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
/** Slots per segment; no mapping crosses a segment, so the largest is 256 KiB. */
export const IO_TLB_SEGSIZE = 128;
/** The default pool: 64 MiB. */
export const IO_TLB_DEFAULT_SIZE = 64n << 20n;

/** Where and how large the bounce pool is (the kernel's `swiotlb=` parameter). */
export interface SwiotlbOptions {
  /** Physical base of the pool (4 KiB aligned, inside a RAM region). @default allocated with allocFrames */
  base?: bigint;
  /** Pool size, a multiple of IO_TLB_SIZE * IO_TLB_SEGSIZE (256 KiB). @default 64 MiB */
  size?: bigint;
}

/** Counters of a {@link Swiotlb} pool. */
export interface SwiotlbStats {
  /** Slots in the pool. */
  nslabs: number;
  /** Slots in use. */
  used: number;
  /** Mappings refused because no run of free slots was found. */
  full: number;
  /** Copies from original memory into a bounce buffer (map, sync for device). */
  bouncedToDevice: number;
  /** Copies from a bounce buffer back to original memory (unmap, sync for CPU). */
  bouncedToCpu: number;
}

function nrSlots(bytes: number): number {
  return Math.ceil(bytes / IO_TLB_SIZE);
}

/**
 * A swiotlb bounce-buffer pool (`struct io_tlb_mem`, kernel/dma/swiotlb.c): the DMA API maps
 * memory a device's DMA mask cannot reach through slots of this pool and copies the bytes.
 * Give one to a {@link DmaDevice} with its `swiotlb` option.
 */
export class Swiotlb {
  /** Physical address of the pool (io_tlb_mem.start). */
  readonly base: bigint;
  /** Bytes of the pool. */
  readonly size: bigint;
  /** Slots of IO_TLB_SIZE bytes in the pool. */
  readonly nslabs: number;
  private readonly _baseNum: number;
  // The slot tables are built on the first use of the pool (most machines never bounce).
  /** Free slots from here to the end of the segment (0 = in use). */
  private _list!: Uint16Array;
  /** Original physical address of each used slot's first byte. */
  private _orig!: BigUint64Array;
  /** Bytes of the mapping from this slot on (alloc_size), 0 when free. */
  private _allocSize!: Uint32Array;
  /** 1 on the first slot of each mapping. */
  private _head!: Uint8Array;
  private _built = false;
  private _index = 0;
  private _used = 0;
  private _full = 0;
  private _toDev = 0;
  private _toCpu = 0;

  /**
   * swiotlb_init: a pool at `opts.base`, or in frames allocated from `_memory`.
   * @throws {@link SimError} EINVAL when the size is not a positive multiple of 256 KiB up to
   *   4 GiB, or the given base is not 4 KiB aligned or the pool not inside one RAM region;
   *   ENOMEM when no free frames are left for it.
   */
  constructor(private readonly _memory: PhysicalMemory, opts: SwiotlbOptions = {}) {
    const op = 'swiotlb_init';
    const size = opts.size ?? IO_TLB_DEFAULT_SIZE;
    const seg = BigInt(IO_TLB_SIZE * IO_TLB_SEGSIZE);
    if (typeof size !== 'bigint' || size <= 0n || size % seg !== 0n || size > 1n << 32n) {
      throw new SimError('EINVAL', op, `size must be a positive multiple of ${seg} bytes up to 4 GiB`);
    }
    let base = opts.base;
    if (base === undefined) {
      base = _memory.allocFrames(Number(size / 4096n));
    } else {
      if (typeof base !== 'bigint' || base < 0n || base % 4096n !== 0n) throw new SimError('EINVAL', op, 'base must be a 4 KiB aligned bigint');
      const r = _memory.regionOf(base);
      if (!r || r.kind !== 'ram' || base + size > r.base + r.size) {
        throw new SimError('EINVAL', op, `pool 0x${base.toString(16)}+0x${size.toString(16)} is not inside one RAM region`);
      }
    }
    this.base = base;
    this.size = size;
    this._baseNum = Number(base);
    this.nslabs = Number(size) / IO_TLB_SIZE;
  }

  /** The slot tables, every slot free, made on first use. */
  private _build(): void {
    if (this._built) return;
    this._built = true;
    this._list = new Uint16Array(this.nslabs);
    this._orig = new BigUint64Array(this.nslabs);
    this._allocSize = new Uint32Array(this.nslabs);
    this._head = new Uint8Array(this.nslabs);
    for (let i = 0; i < this.nslabs; i++) this._list[i] = IO_TLB_SEGSIZE - (i % IO_TLB_SEGSIZE);
  }

  /** swiotlb_max_mapping_size. */
  get maxMappingSize(): number {
    return IO_TLB_SIZE * IO_TLB_SEGSIZE;
  }

  /** is_swiotlb_buffer. */
  contains(pa: bigint): boolean {
    return pa >= this.base && pa < this.base + this.size;
  }

  /** The pool's counters, a snapshot. */
  stats(): SwiotlbStats {
    return { nslabs: this.nslabs, used: this._used, full: this._full, bouncedToDevice: this._toDev, bouncedToCpu: this._toCpu };
  }

  /**
   * swiotlb_tbl_map_single: bounce slots for [orig, +size), filled with the original bytes.
   * Returns the bounce buffer's physical address, or null when the pool has no room (or the
   * size is beyond the largest mapping): the caller returns DMA_MAPPING_ERROR.
   * @throws {@link SimError} EIO when the original range is in no region.
   */
  map(orig: bigint, size: number): bigint | null {
    if (size > this.maxMappingSize || size <= 0) {
      this._full++;
      return null;
    }
    this._build();
    const nslots = nrSlots(size);
    const stride = size >= 4096 ? 2 : 1;
    const n = this.nslabs;
    let index = Math.ceil(this._index / stride) * stride;
    if (index >= n) index = 0;
    const wrap = index;
    let found = -1;
    do {
      if (this._list[index]! >= nslots) {
        found = index;
        break;
      }
      index += stride;
      if (index >= n) index = 0;
    } while (index !== wrap);
    if (found < 0) {
      this._full++;
      return null;
    }
    for (let i = found; i < found + nslots; i++) {
      this._list[i] = 0;
      this._allocSize[i] = size - (i - found) * IO_TLB_SIZE;
      this._orig[i] = orig + BigInt((i - found) * IO_TLB_SIZE);
    }
    this._head[found] = 1;
    let count = 0;
    for (let i = found - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this._list[i]! > 0; i--) {
      this._list[i] = ++count;
    }
    this._index = found + nslots >= n ? 0 : found + nslots;
    this._used += nslots;
    const tlb = this.base + BigInt(found * IO_TLB_SIZE);
    this._bounce(tlb, size, DMA_TO_DEVICE);
    return tlb;
  }

  /**
   * swiotlb_tbl_unmap_single: copies back (FROM_DEVICE, BIDIRECTIONAL) and frees the slots.
   * @throws {@link SimError} EINVAL when `tlb` does not start a mapping of this pool.
   */
  unmap(tlb: bigint, size: number, dir: number): void {
    const index = this._slotOf('swiotlb_tbl_unmap_single', tlb);
    if (!this._built || this._head[index] !== 1) {
      throw new SimError('EINVAL', 'swiotlb_tbl_unmap_single', `0x${tlb.toString(16)} does not start a bounce buffer`);
    }
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) this._bounce(tlb, size, DMA_FROM_DEVICE);
    const nslots = nrSlots(this._allocSize[index]!);
    this._head[index] = 0;
    const segEnd = (Math.floor(index / IO_TLB_SEGSIZE) + 1) * IO_TLB_SEGSIZE;
    let count = index + nslots < segEnd ? this._list[index + nslots]! : 0;
    for (let i = index + nslots - 1; i >= index; i--) {
      this._list[i] = ++count;
      this._allocSize[i] = 0;
      this._orig[i] = 0n;
    }
    for (let i = index - 1; i >= 0 && i % IO_TLB_SEGSIZE !== IO_TLB_SEGSIZE - 1 && this._list[i]! > 0; i--) {
      this._list[i] = ++count;
    }
    this._used -= nslots;
  }

  /**
   * swiotlb_sync_single_for_device: original -> bounce buffer for TO_DEVICE and BIDIRECTIONAL.
   * @throws {@link SimError} EINVAL when a copy is due and `tlb` is not in a live bounce buffer.
   */
  syncForDevice(tlb: bigint, size: number, dir: number): void {
    if (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL) this._bounce(tlb, size, DMA_TO_DEVICE);
  }

  /**
   * swiotlb_sync_single_for_cpu: bounce buffer -> original for FROM_DEVICE and BIDIRECTIONAL.
   * @throws {@link SimError} EINVAL when a copy is due and `tlb` is not in a live bounce buffer.
   */
  syncForCpu(tlb: bigint, size: number, dir: number): void {
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) this._bounce(tlb, size, DMA_FROM_DEVICE);
  }

  /** The original address behind a bounce address (any byte of a live mapping), or null. */
  origOf(tlb: bigint): bigint | null {
    if (!this._built || !this.contains(tlb)) return null;
    const index = Number(tlb - this.base) >> IO_TLB_SHIFT;
    if (this._allocSize[index] === 0) return null;
    return this._orig[index]! + (tlb - this.base - BigInt(index * IO_TLB_SIZE));
  }

  private _slotOf(op: string, tlb: bigint): number {
    if (!this.contains(tlb) || (tlb - this.base) % BigInt(IO_TLB_SIZE) !== 0n) {
      throw new SimError('EINVAL', op, `0x${tlb.toString(16)} is not a bounce slot of this pool`);
    }
    return (Number(tlb) - this._baseNum) / IO_TLB_SIZE;
  }

  /** swiotlb_bounce: copies `size` bytes between the bounce buffer at `tlb` and its original. */
  private _bounce(tlb: bigint, size: number, dir: number): void {
    const orig = this.origOf(tlb);
    if (orig === null) throw new SimError('EINVAL', 'swiotlb_bounce', `0x${tlb.toString(16)} is not in a live bounce buffer`);
    if (dir === DMA_TO_DEVICE) {
      this._memory.write(tlb, this._memory.read(orig, size));
      this._toDev++;
    } else {
      this._memory.write(orig, this._memory.read(tlb, size));
      this._toCpu++;
    }
  }
}
