/**
 * The habanalabs memory manager (drivers/accel/habanalabs/common/memory.c, the memory ioctl
 * minus dma-buf export): ALLOC and FREE of DRAM pages (phys_pg_pack handles) from the device's
 * DRAM gen_pool, MAP and UNMAP of device VAs from the context's VA gen_pool (hash nodes), and the
 * no-MMU variant (HL-02, HL-07). EXPORT_DMABUF_FD goes to dmabuf.ts.
 */
import { SimError, type ErrnoCode, GenPool, PAGE_SIZE, uapiU64 } from '../../index.js';
import type { HabanaDevice, HlFpriv } from './habanalabs.js';
import {
  HL_MEM_CONTIGUOUS,
  HL_MEM_OP_ALLOC,
  HL_MEM_OP_EXPORT_DMABUF_FD,
  HL_MEM_OP_FREE,
  HL_MEM_OP_MAP,
  HL_MEM_OP_UNMAP,
  HL_MEM_USERPTR,
  type HlMemArgs,
  type HlMemOut,
} from './uapi.js';

const PAGE = BigInt(PAGE_SIZE);
/** Device VA space MAP hands out: 2^44 bytes from dramVaBase. */
const DRAM_VA_SPACE = 1n << 44n;

/** hl_vm_phys_pg_pack: the DRAM pages of one ALLOC handle. */
export interface HlPhysPgPack {
  readonly handle: number;
  readonly vmType: 'phys_pack' | 'userptr';
  readonly pages: readonly bigint[];
  readonly pageSize: bigint;
  readonly totalSize: bigint;
  readonly contiguous: boolean;
  /** MAPs of this handle not yet unmapped. */
  mappingCnt: number;
  /** [5.15] exports of this handle not yet released. */
  exportingCnt: number;
}

/** hl_vm_hash_node: one MAP of the context. */
export interface HlVmHashNode {
  readonly va: bigint;
  readonly size: bigint;
  /** The pack's handle, or (userptr) a kernel pointer, whose upper 32 bits are set. */
  readonly handle: bigint;
  readonly userptr: boolean;
  /** Exports of this VA not yet released (HL-07). */
  exportCnt: number;
}

/** @internal The device's memory manager (one per HabanaDevice). */
export class HlMemoryManager {
  private readonly _packs = new Map<number, HlPhysPgPack>();
  private _nextHandle = 1;
  /** DRAM pages ALLOC hands out (hl_vm dram_pg_pool), in units of 4 KiB aligned to dramPageSize. */
  private readonly _dramPool: GenPool;
  /** Device VA blocks MAP hands out (the context's va_range for DRAM). */
  private readonly _vaPool: GenPool;
  private _userptrTag = 0n;

  constructor(private readonly dev: HabanaDevice, vaBase: bigint) {
    // DRAM page pool: [user base rounded up to a page, end).
    const ps = dev.dramPageSize;
    const poolBase = (dev.dramUserBaseAddress + ps - 1n) / ps * ps;
    const n = poolBase < dev.dramEndAddress ? (dev.dramEndAddress - poolBase) / ps : 0n;
    this._dramPool = new GenPool({ name: `${dev.name} DRAM` });
    if (n > 0n) this._dramPool.add(poolBase, n * ps);
    this._vaPool = new GenPool({ name: `${dev.name} device VA` });
    this._vaPool.add(vaBase, DRAM_VA_SPACE);
  }

  /** Handles of live ALLOCs. */
  get handles(): number[] {
    return [...this._packs.keys()];
  }

  packOf(handle: number): HlPhysPgPack | undefined {
    return this._packs.get(handle);
  }

  /** The MAP node of the context covering [va, va + len), if any. */
  nodeAt(fpriv: HlFpriv, va: bigint, len: number): HlVmHashNode | undefined {
    return [...fpriv.nodes.values()].find((n) => va >= n.va && va + BigInt(len) <= n.va + n.size);
  }

  /** hl_ctx_fini / hl_vm_ctx_fini: tear down what the context still holds. */
  ctxFini(fpriv: HlFpriv): void {
    for (const node of fpriv.nodes.values()) {
      if (!node.userptr) {
        const pack = this._packs.get(Number(node.handle));
        if (pack) pack.mappingCnt--;
      }
      this.vaFreeBlock(node.va, node.size);
    }
    fpriv.nodes.clear();
    for (const pack of [...this._packs.values()]) this.releasePack(pack);
  }

  memIoctl(fpriv: HlFpriv, op: number | undefined, args: HlMemArgs): HlMemOut {
    switch (op) {
      case HL_MEM_OP_ALLOC: {
        const size = u64(args.memSize, 'memSize');
        if (size === 0n) throw this.dev.err('EINVAL', 'hl_mem_ioctl', 'alloc size must be larger than 0');
        if (!this.dev.dramSupportsVirtualMemory) {
          // Accounting only: the user manages DRAM itself.
          this.dev.dramUsedMem += size;
          return { handle: 0n };
        }
        return { handle: BigInt(this.allocDeviceMemory(size, ((args.flags ?? 0) & HL_MEM_CONTIGUOUS) !== 0)) };
      }
      case HL_MEM_OP_FREE:
        if (!this.dev.dramSupportsVirtualMemory) {
          this.dev.dramUsedMem -= u64(args.memSize, 'memSize');
          return {};
        }
        this.freeDeviceMemory(u64(args.handle, 'handle'));
        return {};
      case HL_MEM_OP_MAP:
        return { deviceVirtAddr: this.mapDeviceVa(fpriv, args) };
      case HL_MEM_OP_UNMAP:
        this.unmapDeviceVa(fpriv, u64(args.deviceVirtAddr, 'deviceVirtAddr'));
        return {};
      case HL_MEM_OP_EXPORT_DMABUF_FD:
        if (this.dev.profile === '5.15') return { fd: this.dev.exporter.export515(fpriv, args) };
        return { fd: this.dev.exporter.exportFromAddr(fpriv, u64(args.addr ?? args.handle, 'addr'), u64(args.memSize, 'memSize'), u64(args.offset, 'offset'), args.flags ?? 0) };
      default:
        throw this.unknownOp(op, args.op);
    }
  }

  /** mem_ioctl_no_mmu (HL-02). */
  memIoctlNoMmu(fpriv: HlFpriv, op: number | undefined, args: HlMemArgs): HlMemOut {
    switch (op) {
      case HL_MEM_OP_ALLOC: {
        const size = u64(args.memSize, 'memSize');
        if (size === 0n) throw this.dev.err('EINVAL', 'mem_ioctl_no_mmu', 'alloc size must be larger than 0');
        return { handle: BigInt(this.allocDeviceMemory(size, true)) };
      }
      case HL_MEM_OP_FREE:
        this.freeDeviceMemory(u64(args.handle, 'handle'));
        return {};
      case HL_MEM_OP_MAP: {
        if ((args.flags ?? 0) & HL_MEM_USERPTR) throw this.dev.err('EPERM', 'mem_ioctl_no_mmu', 'failed to map host memory when MMU is disabled');
        const pack = this._packs.get(Number(u64(args.handle, 'handle') & 0xffff_ffffn));
        if (!pack) throw this.dev.err('EINVAL', 'get_paddr_from_handle', `no match for handle ${args.handle}`);
        return { deviceVirtAddr: pack.pages[0]! };
      }
      case HL_MEM_OP_UNMAP:
        return {};
      case HL_MEM_OP_EXPORT_DMABUF_FD:
        if (this.dev.profile === '5.15') return { fd: this.dev.exporter.export515(fpriv, args) };
        throw this.dev.err('EPERM', 'mem_ioctl_no_mmu', 'dma-buf export is not supported with the MMU disabled', 'HL-02');
      default:
        throw this.unknownOp(op, args.op);
    }
  }

  private unknownOp(op: number | undefined, given: unknown): SimError {
    const code: ErrnoCode = this.dev.profile === '5.15' ? 'ENOTTY' : 'EINVAL';
    return this.dev.err(code, 'hl_mem_ioctl', `unknown opcode ${String(op ?? given)} for memory IOCTL`, 'HL-02');
  }

  /**
   * alloc_device_memory: size rounded up to DRAM pages, one contiguous run (first fit) or page by
   * page, lowest free pages first; ENOMEM with nothing taken when they are not there.
   */
  private allocDeviceMemory(size: bigint, contiguous: boolean): number {
    const op = 'alloc_device_memory';
    const ps = this.dev.dramPageSize;
    const n = (size + ps - 1n) / ps;
    const pool = this._dramPool;
    if (n * ps > pool.size()) throw this.dev.err('ENOMEM', op, `cannot allocate ${n} pages of ${ps} bytes`);
    const pages: bigint[] = [];
    if (contiguous) {
      const start = pool.tryAlloc(n * ps, { align: ps, op });
      if (start === null) throw this.dev.err('ENOMEM', op, `cannot allocate ${n} contiguous pages`);
      for (let i = 0n; i < n; i++) pages.push(start + i * ps);
    } else {
      for (let i = 0n; i < n; i++) {
        const p = pool.tryAlloc(ps, { align: ps, op });
        if (p === null) {
          for (const q of pages) pool.free(q, ps, op);
          throw this.dev.err('ENOMEM', op, 'cannot allocate device memory (out of memory)');
        }
        pages.push(p);
      }
    }
    const handle = this._nextHandle++;
    const pack: HlPhysPgPack = {
      handle, vmType: 'phys_pack', pages, pageSize: ps, totalSize: n * ps, contiguous, mappingCnt: 0, exportingCnt: 0,
    };
    this._packs.set(handle, pack);
    this.dev.dramUsedMem += pack.totalSize;
    return handle;
  }

  /** free_device_memory (HL-07). */
  private freeDeviceMemory(handle64: bigint): void {
    const op = 'free_device_memory';
    const handle = Number(handle64 & 0xffff_ffffn);
    const pack = handle64 > 0xffff_ffffn ? undefined : this._packs.get(handle);
    if (!pack) throw this.dev.err('EINVAL', op, `no match for handle ${handle64}`);
    if (pack.mappingCnt > 0) throw this.dev.err('EINVAL', op, `handle ${handle} is mapped, cannot free`, 'HL-07');
    if (pack.exportingCnt > 0) throw this.dev.err('EINVAL', op, `handle ${handle} is exported, cannot free`, 'HL-07');
    this.releasePack(pack);
  }

  releasePack(pack: HlPhysPgPack): void {
    this._packs.delete(pack.handle);
    if (pack.contiguous) this._dramPool.free(pack.pages[0]!, pack.totalSize, 'free_device_memory');
    else for (const p of pack.pages) this._dramPool.free(p, pack.pageSize, 'free_device_memory');
    this.dev.dramUsedMem -= pack.totalSize;
  }

  /** map_device_va: a DRAM handle (or, with HL_MEM_USERPTR, host memory) at a new device VA. */
  private mapDeviceVa(fpriv: HlFpriv, args: HlMemArgs): bigint {
    const op = 'map_device_va';
    if ((args.flags ?? 0) & HL_MEM_USERPTR) {
      const size = u64(args.memSize, 'memSize');
      if (size === 0n || args.hostVirtAddr === undefined) throw this.dev.err('EINVAL', op, 'host mapping needs hostVirtAddr and memSize');
      const va = this.vaAlloc(size, PAGE);
      // The node's handle is the kernel's userptr pointer: its upper 32 bits are set.
      const handle = 0xffff_8880_0000_0000n + (this._userptrTag++ << 12n);
      fpriv.nodes.set(va, { va, size: (size + PAGE - 1n) & ~(PAGE - 1n), handle, userptr: true, exportCnt: 0 });
      return va;
    }
    const h = u64(args.handle, 'handle');
    const pack = h > 0xffff_ffffn ? undefined : this._packs.get(Number(h));
    if (!pack) throw this.dev.err('EINVAL', op, `no match for handle ${h}`);
    const va = this.vaAlloc(pack.totalSize, pack.pageSize);
    pack.mappingCnt++;
    fpriv.nodes.set(va, { va, size: pack.totalSize, handle: BigInt(pack.handle), userptr: false, exportCnt: 0 });
    return va;
  }

  /** unmap_device_va (HL-07): exact VA; an exported VA is refused. */
  private unmapDeviceVa(fpriv: HlFpriv, va: bigint): void {
    const op = 'unmap_device_va';
    const node = fpriv.nodes.get(va);
    if (!node) throw this.dev.err('EINVAL', op, `unmap failed, no mem hnode for vaddr 0x${va.toString(16)}`);
    if (node.exportCnt > 0) throw this.dev.err('EINVAL', op, `failed to unmap 0x${va.toString(16)}, memory is exported`, 'HL-07');
    fpriv.nodes.delete(va);
    if (!node.userptr) {
      const pack = this._packs.get(Number(node.handle));
      if (pack) pack.mappingCnt--;
    }
    this.vaFreeBlock(node.va, node.size);
  }

  private vaAlloc(size: bigint, align: bigint): bigint {
    const va = this._vaPool.tryAlloc(size, { align, op: 'map_device_va' });
    if (va === null) throw this.dev.err('ENOMEM', 'map_device_va', 'no free device VA block');
    return va;
  }

  vaFreeBlock(start: bigint, size: bigint): void {
    this._vaPool.free(start, size, 'unmap_device_va');
  }
}

/** @internal A uAPI u64 field as the kernel reads it. */
export function u64(v: unknown, field = 'argument', op = 'hl_mem_ioctl'): bigint {
  return uapiU64(op, field, v);
}

/** @internal */
export function minB(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
