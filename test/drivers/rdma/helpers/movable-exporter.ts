/**
 * A small exporter for the RDMA importer tests. Its backing is a run of system RAM frames or a
 * window of a device BAR; each map builds a fresh table for the importer's DMA device (dma_map_sg
 * for RAM; bus addresses or dma_map_resource for a BAR, by the P2PDMA map type). It is dynamic by
 * default (pin/unpin) and can move its backing: under the resv lock it calls move_notify, copies
 * the bytes to new storage and switches to it.
 */
import { SimError, type ErrnoCode } from '../../../../bindings/errors.js';
import {
  O_RDWR, PAGE_SIZE, SgTable, type DmaBuf, type DmaBufAttachment, type DmaBufExporterOps, type DmaDataDirection,
} from '../../../../src/dma-buf/index.js';
import { ScatterList } from '../../../../src/dma-mapping/index.js';
import type { Machine } from '../../../../src/machine/machine.js';
import type { PciFunction } from '../../../../src/pci/index.js';
import { importerPciFunction } from '../../../../src/drivers/device.js';
import { requireImporterDmaDevice } from '../../../../src/driver-kit/index.js';

const PAGE = BigInt(PAGE_SIZE);

export interface MovableExporterOptions {
  size: number;
  /** Has pin/unpin. @default true */
  dynamic?: boolean;
  /** Back the buffer with BAR `bar` of `provider` (starting at `barOffset`) instead of RAM. */
  bar?: { provider: PciFunction; index: number; offset?: bigint };
  /** A static P2P-only exporter (like habanalabs): map fails EPERM unless attach.peer2peer. */
  p2pOnly?: boolean;
  /** Clear peer2peer in ops.attach (no P2P path), as an exporter does after a distance check. */
  clearPeer2peer?: boolean;
  failAttach?: ErrnoCode;
}

interface Backing {
  /** CPU physical address of byte 0 (contiguous). */
  phys: bigint;
  gen: number;
}

export class MovableExporter {
  readonly calls: { op: string; locked: boolean }[] = [];
  pins = 0;
  failMap: ErrnoCode | undefined;
  failPin: ErrnoCode | undefined;
  /** Map the next tables at this bogus DMA address (nothing is mapped there). */
  bogusDma: bigint | undefined;
  readonly ops: DmaBufExporterOps;
  backing: Backing;
  private readonly _tables = new Map<SgTable, { free: () => void; gen: number }>();
  private readonly _retired: Backing[] = [];
  private _barNext: bigint;
  buf: DmaBuf | undefined;

  constructor(
    readonly machine: Machine,
    readonly opts: MovableExporterOptions,
  ) {
    this._barNext = opts.bar?.offset ?? 0n;
    this.backing = this._alloc(0);
    const rec = (op: string, b: DmaBuf) => this.calls.push({ op, locked: b.resv.isLocked() });
    const ops: DmaBufExporterOps = {
      attach: (b, att) => {
        rec('attach', b);
        if (opts.failAttach) throw new SimError(opts.failAttach, 'test attach', 'injected');
        if (opts.clearPeer2peer) att.peer2peer = false;
      },
      detach: (b) => rec('detach', b),
      mapDmaBuf: (att, dir) => {
        rec('map', att.dmabuf);
        return this._map(att, dir);
      },
      unmapDmaBuf: (att, sgt) => {
        rec('unmap', att.dmabuf);
        const t = this._tables.get(sgt);
        if (!t) throw new Error('movable exporter: unmap of an unknown table');
        this._tables.delete(sgt);
        t.free();
        this._freeRetired();
      },
      release: (b) => rec('release', b),
    };
    if (opts.dynamic ?? true) {
      ops.pin = (att) => {
        rec('pin', att.dmabuf);
        if (this.failPin) throw new SimError(this.failPin, 'test pin', 'injected');
        this.pins++;
      };
      ops.unpin = (att) => {
        rec('unpin', att.dmabuf);
        this.pins--;
      };
    }
    this.ops = ops;
  }

  get pages(): number {
    return Math.ceil(this.opts.size / PAGE_SIZE);
  }

  get liveTables(): number {
    return this._tables.size;
  }

  export(): DmaBuf {
    this.buf = this.machine.kernel.export({ ops: this.ops, size: this.opts.size, priv: this, flags: O_RDWR, expName: 'movable' });
    return this.buf;
  }

  read(offset: number, length: number): Uint8Array {
    return this.machine.sim.memory.read(this.backing.phys + BigInt(offset), length);
  }

  write(offset: number, data: Uint8Array): void {
    this.machine.sim.memory.write(this.backing.phys + BigInt(offset), data);
  }

  /**
   * Moves the backing: resv lock, move_notify (importers drop their mappings), copy to new
   * storage, switch, unlock. EBUSY while pinned (a pinned buffer must stay in place).
   */
  move(): { from: bigint; to: bigint } {
    const buf = this.buf!;
    buf.resv.lock();
    try {
      if (this.pins > 0) throw new SimError('EBUSY', 'test move', 'the buffer is pinned');
      buf.moveNotify();
      const old = this.backing;
      const next = this._alloc(old.gen + 1);
      const r = this.machine.sim.dma.copy({ rid: 'phys', addr: old.phys }, { rid: 'phys', addr: next.phys }, BigInt(this.opts.size));
      if (!r.ok) throw new Error(`move copy failed: ${r.code}`);
      this.backing = next;
      this._retired.push(old);
      this._freeRetired();
      return { from: old.phys, to: next.phys };
    } finally {
      buf.resv.unlock();
    }
  }

  private _alloc(gen: number): Backing {
    if (this.opts.bar) {
      const bar = this.opts.bar.provider.bar(this.opts.bar.index)!;
      const phys = bar.cpuAddress + this._barNext;
      this._barNext += BigInt(this.pages) * PAGE;
      return { phys, gen };
    }
    return { phys: this.machine.sim.memory.allocFrames(this.pages), gen };
  }

  private _freeRetired(): void {
    if (this.opts.bar) return;
    for (let i = this._retired.length - 1; i >= 0; i--) {
      const b = this._retired[i]!;
      if ([...this._tables.values()].some((t) => t.gen === b.gen)) continue;
      this.machine.sim.memory.freeFrames(b.phys, this.pages);
      this._retired.splice(i, 1);
    }
  }

  private _map(att: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    if (this.failMap) throw new SimError(this.failMap, 'test map', 'injected');
    if (this.opts.p2pOnly && !att.peer2peer) throw new SimError('EPERM', 'test map', 'device memory needs peer2peer');
    const dma = requireImporterDmaDevice(this.machine, att.dev, 'test map');
    const b = this.backing;
    const size = this.pages * PAGE_SIZE;
    let sgt: SgTable;
    let free: () => void;
    if (this.bogusDma !== undefined) {
      sgt = new SgTable([{ dmaAddress: this.bogusDma, length: size, page: null }]);
      free = () => {};
    } else if (this.opts.bar) {
      const provider = this.opts.bar.provider;
      const client = importerPciFunction(att.dev)!;
      const type = this.machine.decide(provider, client).mapType;
      if (type === 'BUS_ADDR') {
        const bus = this.machine.p2pdma.busAddressOf(provider, b.phys);
        sgt = new SgTable([{ dmaAddress: bus, length: size, page: null }], { origNents: 0 });
        free = () => {};
      } else if (type === 'THRU_HOST_BRIDGE') {
        const addr = dma.mapResource(b.phys, size, dir);
        if (dma.mappingError(addr)) throw new SimError('ENOMEM', 'test map', 'dma_map_resource failed');
        sgt = new SgTable([{ dmaAddress: addr, length: size, page: null }], { origNents: 0 });
        free = () => dma.unmapResource(addr, size, dir);
      } else {
        throw new SimError('EINVAL', 'test map', 'no P2P path');
      }
    } else {
      const pages: bigint[] = [];
      for (let i = 0; i < this.pages; i++) pages.push(b.phys + BigInt(i) * PAGE);
      const sgl = ScatterList.fromPages(pages);
      const r = dma.mapSgtable(sgl, dir);
      if (r < 0) throw SimError.fromStatus(r, 'test map', 'dma_map_sgtable');
      const segs = sgl.dmaSegments();
      sgt = new SgTable(segs, { nents: sgl.nents, origNents: sgl.origNents });
      free = () => dma.unmapSg(sgl, dir);
    }
    this._tables.set(sgt, { free, gen: b.gen });
    return sgt;
  }
}
