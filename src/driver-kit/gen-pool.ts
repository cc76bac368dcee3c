/**
 * A range allocator like the kernel's gen_pool (lib/genalloc.c): chunks of an address space are
 * added to a pool, and pieces of them are handed out in units of 2^minAllocOrder bytes with a
 * first-fit search. Each chunk may carry a second address ("phys") for the same bytes, as
 * gen_pool_add_virt does; P2PDMA uses it for the bus address of a BAR range.
 *
 * Every driver's range allocation stands on it: P2PDMA memory, device VAs, DRAM/VRAM pages,
 * device memory beyond the BARs. Free extents are kept sorted per chunk (not a bitmap), so the
 * cost grows with the number of holes, never with the size of the space.
 */
import { SimError } from '../../bindings/errors.js';

/** Options of a new {@link GenPool} (gen_pool_create's min_alloc_order; the name is ours). */
export interface GenPoolOptions {
  /** log2 of the allocation unit. @default 12 (4 KiB) */
  minAllocOrder?: number;
  /** Shown in error messages. @default 'gen_pool' */
  name?: string;
}

/** Options of {@link GenPool.alloc} and {@link GenPool.tryAlloc} (gen_pool_alloc_algo's data). */
export interface GenPoolAllocOptions {
  /**
   * Alignment of the returned address in bytes: a multiple of the unit (gen_pool_first_fit_align
   * rounds to a power of two; here any multiple of the unit is honoured exactly). @default the unit
   */
  align?: bigint;
  /** Search from this address up (bitmap_find_next_zero_area's start). @default the pool's lowest */
  from?: bigint;
  /** Operation named by errors. @default 'gen_pool_alloc' */
  op?: string;
}

/** One free extent, in bytes. */
export interface GenPoolExtent {
  readonly start: bigint;
  readonly size: bigint;
}

/** One chunk: an added range, with its free extents [start, end) in units from `start`. */
interface Chunk {
  readonly start: bigint;
  readonly phys: bigint;
  readonly size: bigint;
  readonly units: number;
  free: Array<[number, number]>;
  avail: bigint;
}

/**
 * A gen_pool (lib/genalloc.c): first-fit allocation of address ranges in units of
 * 2^minAllocOrder bytes from the chunks added to it. Use it for any range a driver hands out
 * (P2PDMA memory, device VAs, VRAM pages); failures leave the pool unchanged.
 */
export class GenPool {
  /** log2 of the allocation unit (min_alloc_order). */
  readonly minAllocOrder: number;
  /** The pool's name in error messages. */
  readonly name: string;
  /** Newest first: gen_pool_add puts new chunks at the head of the list. */
  private readonly _chunks: Chunk[] = [];
  private readonly _unit: bigint;

  /**
   * gen_pool_create: an empty pool.
   * @throws {@link SimError} EINVAL when minAllocOrder is not an integer in 0..40.
   */
  constructor(opts: GenPoolOptions = {}) {
    const order = opts.minAllocOrder ?? 12;
    if (!Number.isInteger(order) || order < 0 || order > 40) {
      throw new SimError('EINVAL', 'gen_pool_create', `minAllocOrder must be an integer in 0..40, got ${String(order)}`);
    }
    this.minAllocOrder = order;
    this._unit = 1n << BigInt(order);
    this.name = opts.name ?? 'gen_pool';
  }

  /** The allocation unit in bytes. */
  get unit(): bigint {
    return this._unit;
  }

  /**
   * gen_pool_add_virt: adds [start, start + size) with `phys` as the second address of `start`
   * (-1n: none, as gen_pool_add). The size is truncated to whole units. EINVAL for a start that
   * is negative or not on a unit, a size below one unit, or an overlap with a chunk of the pool.
   * @throws {@link SimError} EINVAL for non-bigint arguments, a bad start or size, or an overlap.
   */
  add(start: bigint, size: bigint, phys = -1n): void {
    const op = 'gen_pool_add';
    if (typeof start !== 'bigint' || typeof size !== 'bigint' || typeof phys !== 'bigint') {
      throw new SimError('EINVAL', op, 'start, size and phys must be bigints');
    }
    const units = size >> BigInt(this.minAllocOrder);
    if (start < 0n || start % this._unit !== 0n || units <= 0n) throw new SimError('EINVAL', op, `${this.name}: bad range 0x${start.toString(16)} + 0x${size.toString(16)}`);
    if (units > BigInt(Number.MAX_SAFE_INTEGER)) throw new SimError('EINVAL', op, `${this.name}: chunk of ${size} bytes has too many units`);
    const bytes = units << BigInt(this.minAllocOrder);
    if (this._chunks.some((c) => start < c.start + c.size && c.start < start + bytes)) {
      throw new SimError('EINVAL', op, `${this.name}: 0x${start.toString(16)} + 0x${bytes.toString(16)} overlaps a chunk of the pool`);
    }
    this._chunks.unshift({ start, phys, size: bytes, units: Number(units), free: [[0, Number(units)]], avail: bytes });
  }

  /** gen_pool_size(): bytes added. */
  size(): bigint {
    return this._chunks.reduce((s, c) => s + c.size, 0n);
  }

  /** gen_pool_avail(): bytes free. */
  avail(): bigint {
    return this._chunks.reduce((s, c) => s + c.avail, 0n);
  }

  /**
   * gen_pool_alloc with the first-fit algorithm (gen_pool_first_fit_align when `align` is given):
   * the start of the first free run of ceil(size / unit) units, or null when nothing fits.
   * @throws {@link SimError} EINVAL for a size that is not a positive bigint, an alignment that is not a
   * positive multiple of the unit, or a `from` that is not a bigint.
   */
  tryAlloc(size: bigint, opts: GenPoolAllocOptions = {}): bigint | null {
    const op = opts.op ?? 'gen_pool_alloc';
    const nunits = this._units(size, op);
    const align = this._align(opts.align, op);
    const from = opts.from ?? 0n;
    if (typeof from !== 'bigint') throw new SimError('EINVAL', op, 'from must be a bigint');
    const need = BigInt(nunits) << BigInt(this.minAllocOrder);
    for (const c of this._chunks) {
      if (need > c.avail || from >= c.start + c.size) continue;
      for (let i = 0; i < c.free.length; i++) {
        const ext = c.free[i]!;
        let addr = c.start + (BigInt(ext[0]) << BigInt(this.minAllocOrder));
        if (addr < from) addr = from;
        const rem = addr % align;
        if (rem !== 0n) addr += align - rem;
        // Chunks start on a unit and align is a multiple of it, so addr is on a unit boundary.
        const s = Number((addr - c.start) >> BigInt(this.minAllocOrder));
        if (s + nunits > ext[1]) continue;
        this._take(c, i, s, s + nunits);
        return c.start + (BigInt(s) << BigInt(this.minAllocOrder));
      }
    }
    return null;
  }

  /**
   * gen_pool_alloc: {@link GenPool.tryAlloc}, failing when nothing fits.
   * @throws {@link SimError} ENOMEM (named by `opts.op`) when no free run fits; EINVAL as tryAlloc.
   */
  alloc(size: bigint, opts: GenPoolAllocOptions = {}): bigint {
    const addr = this.tryAlloc(size, opts);
    if (addr === null) {
      throw new SimError('ENOMEM', opts.op ?? 'gen_pool_alloc', `${this.name}: no free run of 0x${size.toString(16)} bytes`);
    }
    return addr;
  }

  /**
   * gen_pool_fixed_alloc at an exact address: EINVAL when [addr, addr + size) is not inside one
   * chunk on unit boundaries, ENOMEM when part of it is in use. Nothing changes on failure.
   * @throws {@link SimError} EINVAL for a bad size, or a range not inside one chunk on unit boundaries.
   * @throws {@link SimError} ENOMEM when part of the range is in use.
   */
  allocFixed(addr: bigint, size: bigint, op = 'gen_pool_fixed_alloc'): void {
    const nunits = this._units(size, op);
    const { c, s } = this._locate(addr, nunits, op);
    const i = c.free.findIndex(([fs, fe]) => fs <= s && s + nunits <= fe);
    if (i < 0) throw new SimError('ENOMEM', op, `${this.name}: 0x${addr.toString(16)} + 0x${size.toString(16)} is (partly) in use`);
    this._take(c, i, s, s + nunits);
  }

  /**
   * gen_pool_free: returns [addr, addr + ceil(size / unit) units) and merges it with its free
   * neighbours. The kernel BUG()s on a bad free; here it is EINVAL and nothing changes.
   * @throws {@link SimError} EINVAL for a bad size, a range not inside one chunk on unit boundaries, or one not
   * (entirely) allocated.
   */
  free(addr: bigint, size: bigint, op = 'gen_pool_free'): void {
    const nunits = this._units(size, op);
    const { c, s } = this._locate(addr, nunits, op);
    const e = s + nunits;
    if (c.free.some(([fs, fe]) => s < fe && fs < e)) {
      throw new SimError('EINVAL', op, `${this.name}: 0x${addr.toString(16)} + 0x${size.toString(16)} was not (entirely) allocated`);
    }
    let i = 0;
    while (i < c.free.length && c.free[i]![0] < s) i++;
    c.free.splice(i, 0, [s, e]);
    if (i + 1 < c.free.length && c.free[i]![1] === c.free[i + 1]![0]) {
      c.free[i]![1] = c.free[i + 1]![1];
      c.free.splice(i + 1, 1);
    }
    if (i > 0 && c.free[i - 1]![1] === c.free[i]![0]) {
      c.free[i - 1]![1] = c.free[i]![1];
      c.free.splice(i, 1);
    }
    c.avail += BigInt(nunits) << BigInt(this.minAllocOrder);
  }

  /** gen_pool_has_addr: [addr, addr + size) lies inside one chunk. */
  hasAddr(addr: bigint, size = 1n): boolean {
    return this._chunks.some((c) => addr >= c.start && addr + size <= c.start + c.size);
  }

  /** gen_pool_virt_to_phys: the second address of `addr`, or -1n outside the pool or without one. */
  virtToPhys(addr: bigint): bigint {
    const c = this._chunks.find((k) => addr >= k.start && addr < k.start + k.size);
    return c && c.phys >= 0n ? c.phys + (addr - c.start) : -1n;
  }

  /** The free extents in address order (a snapshot). */
  freeExtents(): GenPoolExtent[] {
    const out: GenPoolExtent[] = [];
    for (const c of this._chunks) {
      for (const [s, e] of c.free) {
        out.push({ start: c.start + (BigInt(s) << BigInt(this.minAllocOrder)), size: BigInt(e - s) << BigInt(this.minAllocOrder) });
      }
    }
    return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  private _units(size: bigint, op: string): number {
    if (typeof size !== 'bigint' || size <= 0n) throw new SimError('EINVAL', op, `${this.name}: size must be a positive bigint, got ${String(size)}`);
    const n = (size + this._unit - 1n) >> BigInt(this.minAllocOrder);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new SimError('EINVAL', op, `${this.name}: size ${size} is too large`);
    return Number(n);
  }

  private _align(align: bigint | undefined, op: string): bigint {
    if (align === undefined) return this._unit;
    if (typeof align !== 'bigint' || align <= 0n || align % this._unit !== 0n) {
      throw new SimError('EINVAL', op, `${this.name}: align must be a positive multiple of 0x${this._unit.toString(16)}, got ${String(align)}`);
    }
    return align;
  }

  private _locate(addr: bigint, nunits: number, op: string): { c: Chunk; s: number } {
    if (typeof addr !== 'bigint') throw new SimError('EINVAL', op, `${this.name}: address must be a bigint`);
    const c = this._chunks.find((k) => addr >= k.start && addr < k.start + k.size);
    if (!c) throw new SimError('EINVAL', op, `${this.name}: 0x${addr.toString(16)} is not in the pool`);
    const off = addr - c.start;
    if (off % this._unit !== 0n) throw new SimError('EINVAL', op, `${this.name}: 0x${addr.toString(16)} is not aligned to 0x${this._unit.toString(16)}`);
    const s = Number(off >> BigInt(this.minAllocOrder));
    if (s + nunits > c.units) throw new SimError('EINVAL', op, `${this.name}: 0x${addr.toString(16)} + ${nunits} units runs past its chunk`);
    return { c, s };
  }

  private _take(c: Chunk, i: number, s: number, e: number): void {
    const [fs, fe] = c.free[i]!;
    const rest: Array<[number, number]> = [];
    if (fs < s) rest.push([fs, s]);
    if (e < fe) rest.push([e, fe]);
    c.free.splice(i, 1, ...rest);
    c.avail -= BigInt(e - s) << BigInt(this.minAllocOrder);
  }
}
