/**
 * The system heap (drivers/dma-buf/heaps/system_heap.c): buffers of zeroed system-RAM pages.
 *
 * Allocation takes the largest chunk that fits the remaining size, trying orders 8, 4 and 0
 * (1 MiB, 64 KiB, 4 KiB runs, naturally aligned as the buddy allocator gives them) and never a
 * larger order than the previous chunk got; when no order fits, the allocation fails with ENOMEM
 * and everything taken so far is freed. The buffer's table has one entry per chunk.
 *
 * Exporter ops as the kernel's: attach duplicates the table for the attachment (its own
 * scatterlist) with `mapped` false; map_dma_buf maps it for the attachment's device with
 * dma_map_sgtable and sets `mapped`; unmap clears it and unmaps; begin/end_cpu_access sync every
 * mapped attachment (for the CPU, then for the device); mmap maps the pages from vm_pgoff
 * (private or shared); vmap is refcounted by the framework; release frees the pages.
 */
import {
  DmaDataDirection,
  PAGE_SIZE,
  ScatterList,
  SgTable,
  SimError,
  requireImporterDmaDevice,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type DmaDevice as DmaApiDevice,
  type Machine,
} from '../../index.js';
import { PageBackedBuffer, fakeVmapAddress } from '../udmabuf/cpu-access.js';
import { mapSgtableOrThrow } from '../udmabuf/importer.js';
import type { DmaHeap, DmaHeapOps } from './dma-heap.js';

/** The orders system_heap tries, largest first. */
export const SYSTEM_HEAP_ORDERS: readonly number[] = [8, 4, 0];

/** Options of the system heap (drivers/dma-buf/heaps/system_heap.c). */
export interface SystemHeapOptions {
  /** Orders to try, largest first. @default [8, 4, 0] */
  orders?: readonly number[];
}

/** One physically contiguous run of the buffer. */
export interface SystemHeapChunk {
  readonly pa: bigint;
  readonly order: number;
  readonly bytes: number;
}

/** struct system_heap_buffer: dmabuf->priv. */
export class SystemHeapBuffer extends PageBackedBuffer {
  readonly attachments = new Set<SystemHeapAttachment>();
  vmapCnt = 0;
  released = false;
  /** Buffer page index where each chunk starts. */
  readonly firstPage: readonly number[];
  readonly pageCount: number;

  constructor(
    readonly len: number,
    readonly chunks: readonly SystemHeapChunk[],
  ) {
    super();
    const first: number[] = [];
    let p = 0;
    for (const c of chunks) {
      first.push(p);
      p += c.bytes / PAGE_SIZE;
    }
    this.firstPage = first;
    this.pageCount = p;
  }

  pagePhys(i: number): bigint {
    // Binary search for the chunk holding page i.
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstPage[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return this.chunks[lo]!.pa + BigInt((i - this.firstPage[lo]!) * PAGE_SIZE);
  }
}

/** struct dma_heap_attachment: the attachment's own copy of the table and whether it is mapped. */
export interface SystemHeapAttachment {
  readonly dev: DmaApiDevice;
  readonly sgl: ScatterList;
  mapped: boolean;
  dir: DmaDataDirection;
}

export class SystemHeap implements DmaHeapOps {
  readonly orders: readonly number[];
  private readonly _live = new Set<SystemHeapBuffer>();
  private readonly _tables = new Map<SgTable, SystemHeapAttachment>();

  /** @internal Registered by DmaHeaps. */
  constructor(
    readonly machine: Machine,
    opts: SystemHeapOptions = {},
  ) {
    this.orders = opts.orders ?? SYSTEM_HEAP_ORDERS;
  }

  /** Buffers allocated and not yet released. */
  get liveBuffers(): number {
    return this._live.size;
  }

  /** The heap state of a buffer this heap allocated (undefined otherwise). */
  bufferOf(buf: DmaBuf): SystemHeapBuffer | undefined {
    const b = buf.priv as SystemHeapBuffer;
    return this._live.has(b) ? b : undefined;
  }

  /** The per-attachment state (attach->priv) of an attachment to one of this heap's buffers. */
  attachmentOf(att: DmaBufAttachment): SystemHeapAttachment | undefined {
    return att.priv as SystemHeapAttachment | undefined;
  }

  /** system_heap_allocate. */
  allocate(_heap: DmaHeap, len: number, fdFlags: number, _heapFlags: bigint): DmaBuf {
    const op = 'system_heap_allocate';
    const mem = this.machine.sim.memory;
    const chunks: SystemHeapChunk[] = [];
    const free = () => {
      for (const c of chunks) mem.freeFrames(c.pa, c.bytes / PAGE_SIZE);
    };
    if (BigInt(len / PAGE_SIZE) > mem.framesFree()) {
      throw new SimError('ENOMEM', op, `${len} bytes is more than the free system RAM`);
    }
    let remaining = len;
    let maxOrder = this.orders[0] ?? 0;
    while (remaining > 0) {
      const k = this.machine.kernel;
      if (k.signalPending) {
        free();
        throw new SimError('EINTR', op, 'a signal is pending (fatal_signal_pending)');
      }
      const c = this._allocLargest(remaining, maxOrder);
      if (!c) {
        free();
        throw new SimError('ENOMEM', op, `no free run for the remaining ${remaining} bytes`);
      }
      chunks.push(c);
      remaining -= c.bytes;
      maxOrder = c.order;
    }
    const hb = new SystemHeapBuffer(len, chunks);
    let buf: DmaBuf;
    try {
      buf = this.machine.kernel.export({ expName: 'system', ops: this._ops(), size: len, flags: fdFlags, priv: hb });
    } catch (e) {
      free();
      throw e;
    }
    this._live.add(hb);
    return buf;
  }

  /** alloc_largest_available: the largest order that fits the size and does not exceed maxOrder. */
  private _allocLargest(size: number, maxOrder: number): SystemHeapChunk | null {
    const mem = this.machine.sim.memory;
    for (const order of this.orders) {
      const bytes = PAGE_SIZE * 2 ** order;
      if (size < bytes) continue;
      if (maxOrder < order) continue;
      try {
        const pages = 2 ** order;
        return { pa: mem.allocFrames(pages, pages), order, bytes };
      } catch (e) {
        if (e instanceof SimError && e.code === 'ENOMEM') continue;
        throw e;
      }
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------------
  // Exporter ops

  private _opsCache: DmaBufExporterOps | undefined;

  private _ops(): DmaBufExporterOps {
    this._opsCache ??= {
      attach: (buf, att) => this._attach(buf, att),
      detach: (buf, att) => this._detach(buf, att),
      mapDmaBuf: (att, dir) => this._map(att, dir),
      unmapDmaBuf: (att, sgt, dir) => this._unmap(att, sgt, dir),
      release: (buf) => this._release(buf),
      mmap: () => {},
      fault: (buf, pgoff) => (buf.priv as PageBackedBuffer).pagePhys(Number(pgoff)),
      vmap: (buf) => {
        (buf.priv as SystemHeapBuffer).vmapCnt++;
        return { vaddr: fakeVmapAddress(buf), isIomem: false };
      },
      vunmap: (buf) => {
        (buf.priv as SystemHeapBuffer).vmapCnt--;
      },
      beginCpuAccess: (buf, dir) => this._sync(buf, dir, true),
      endCpuAccess: (buf, dir) => this._sync(buf, dir, false),
    };
    return this._opsCache;
  }

  /** system_heap_attach: dup_sg_table for the attachment, not mapped. */
  private _attach(buf: DmaBuf, att: DmaBufAttachment): void {
    const hb = buf.priv as SystemHeapBuffer;
    const dev = requireImporterDmaDevice(this.machine, att.dev, 'system_heap_attach');
    const sgl = new ScatterList(hb.chunks.length);
    hb.chunks.forEach((c, i) => sgl.set(i, c.pa, c.bytes));
    const a: SystemHeapAttachment = { dev, sgl, mapped: false, dir: DmaDataDirection.BIDIRECTIONAL };
    att.priv = a;
    hb.attachments.add(a);
  }

  /** system_heap_detach. */
  private _detach(buf: DmaBuf, att: DmaBufAttachment): void {
    const hb = buf.priv as SystemHeapBuffer;
    hb.attachments.delete(att.priv as SystemHeapAttachment);
  }

  /** system_heap_map_dma_buf. */
  private _map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    const a = att.priv as SystemHeapAttachment;
    mapSgtableOrThrow(a.dev, a.sgl, dir, 'system_heap_map_dma_buf');
    a.mapped = true;
    a.dir = dir;
    const sgt = SgTable.fromScatterList(a.sgl);
    this._tables.set(sgt, a);
    return sgt;
  }

  /** system_heap_unmap_dma_buf. */
  private _unmap(_att: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    const a = this._tables.get(sgt);
    if (!a) throw new SimError('EINVAL', 'system_heap_unmap_dma_buf', 'not a table this heap made');
    a.mapped = false;
    a.dev.unmapSg(a.sgl, dir);
    this._tables.delete(sgt);
  }

  /** system_heap_dma_buf_begin/end_cpu_access: sync every mapped attachment. */
  private _sync(buf: DmaBuf, dir: DmaDataDirection, forCpu: boolean): void {
    const hb = buf.priv as SystemHeapBuffer;
    for (const a of hb.attachments) {
      if (!a.mapped) continue;
      // A direction other than the mapping's only trips DMA-API debug in the kernel.
      if (dir !== a.dir && a.dir !== DmaDataDirection.BIDIRECTIONAL) continue;
      if (forCpu) a.dev.syncSgForCpu(a.sgl, dir);
      else a.dev.syncSgForDevice(a.sgl, dir);
    }
  }

  /** system_heap_dma_buf_release: free every chunk. */
  private _release(buf: DmaBuf): void {
    const hb = buf.priv as SystemHeapBuffer;
    if (hb.released) return;
    hb.released = true;
    const mem = this.machine.sim.memory;
    for (const c of hb.chunks) mem.freeFrames(c.pa, c.bytes / PAGE_SIZE);
    this._live.delete(hb);
  }
}
