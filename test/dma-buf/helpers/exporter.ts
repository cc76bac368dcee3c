/**
 * A small test exporter whose map hands out fake page frames and IOVAs from counting pools, and
 * which records every callback with the lock state it saw.
 */
import { SimError, type ErrnoCode } from '../../../bindings/errors.js';
import {
  O_RDWR,
  PAGE_SIZE,
  SgTable,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufExporterOps,
  type DmaBufKernel,
  type DmaDataDirection,
  type IosysMap,
} from '../../../src/dma-buf/index.js';

/** Hands out unit numbers and counts what is outstanding. */
export class CountingPool {
  private _next = 0;
  private readonly _free: number[] = [];
  readonly inUse = new Set<number>();

  constructor(readonly capacity: number) {}

  alloc(n: number): number[] | null {
    if (this.inUse.size + n > this.capacity) return null;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const u = this._free.pop() ?? this._next++;
      this.inUse.add(u);
      out.push(u);
    }
    return out;
  }

  free(units: readonly number[]): void {
    for (const u of units) {
      if (!this.inUse.delete(u)) throw new Error(`pool: unit ${u} freed twice`);
      this._free.push(u);
    }
  }
}

export interface TestExporterOptions {
  size?: number;
  /** Has pin/unpin. */
  dynamic?: boolean;
  cacheSgt?: boolean;
  /** Device memory without struct pages: map refuses EPERM unless peer2peer. */
  p2p?: boolean;
  mmap?: boolean;
  vmap?: boolean;
  cpuAccess?: boolean;
  /** Runs in ops.attach (may throw or clear peer2peer). */
  onAttach?: (att: DmaBufAttachment) => void;
  /** Make the next maps fail: an errno, or 'null' to return no table. */
  failMap?: ErrnoCode | 'null';
  failPin?: ErrnoCode;
  framePoolSize?: number;
  flags?: number;
  expName?: string;
}

export interface CallRecord {
  readonly op: string;
  readonly locked: boolean;
  readonly attachmentId?: number;
}

const IOVA_BASE = 0x1_0000_0000n;
const P2P_BAR = 0x80_0000_0000n;

export class TestExporter {
  readonly frames: CountingPool;
  readonly iovas: CountingPool;
  readonly calls: CallRecord[] = [];
  /** Pins per attachment id, as the exporter sees them. */
  readonly pins = new Map<number, number>();
  releases = 0;
  failMap: ErrnoCode | 'null' | undefined;
  failPin: ErrnoCode | undefined;
  private readonly _tables = new Map<SgTable, { frames: number[]; iovas: number[] }>();
  readonly ops: DmaBufExporterOps;

  constructor(
    readonly kernel: DmaBufKernel,
    readonly opts: TestExporterOptions = {},
  ) {
    this.frames = new CountingPool(opts.framePoolSize ?? 1 << 20);
    this.iovas = new CountingPool(1 << 20);
    this.failMap = opts.failMap;
    this.failPin = opts.failPin;
    const rec = (op: string, buf: DmaBuf, att?: DmaBufAttachment): void => {
      this.calls.push({ op, locked: buf.resv.isLocked(), ...(att ? { attachmentId: att.id } : {}) });
    };
    const ops: DmaBufExporterOps = {
      attach: (buf, att) => {
        rec('attach', buf, att);
        opts.onAttach?.(att);
      },
      detach: (buf, att) => rec('detach', buf, att),
      mapDmaBuf: (att, dir) => {
        rec('map', att.dmabuf, att);
        return this._map(att, dir);
      },
      unmapDmaBuf: (att, sgt) => {
        rec('unmap', att.dmabuf, att);
        const t = this._tables.get(sgt);
        if (!t) throw new Error('test exporter: unmap of a table it never made');
        this._tables.delete(sgt);
        this.frames.free(t.frames);
        this.iovas.free(t.iovas);
      },
      release: (buf) => {
        rec('release', buf);
        this.releases++;
      },
      cacheSgtMapping: opts.cacheSgt ?? false,
    };
    if (opts.dynamic) {
      ops.pin = (att) => {
        rec('pin', att.dmabuf, att);
        if (this.failPin) throw new SimError(this.failPin, 'test pin', 'injected');
        this.pins.set(att.id, (this.pins.get(att.id) ?? 0) + 1);
      };
      ops.unpin = (att) => {
        rec('unpin', att.dmabuf, att);
        const n = this.pins.get(att.id) ?? 0;
        if (n === 0) throw new Error('test exporter: unpin underflow');
        if (n === 1) this.pins.delete(att.id);
        else this.pins.set(att.id, n - 1);
      };
    }
    if (opts.mmap) ops.mmap = (buf) => rec('mmap', buf);
    if (opts.vmap) {
      ops.vmap = (buf): IosysMap => {
        rec('vmap', buf);
        return { vaddr: 0xffff_8000_0000_0000n + BigInt(buf.id) * 0x1000_0000n, isIomem: false };
      };
      ops.vunmap = (buf) => rec('vunmap', buf);
    }
    if (opts.cpuAccess) {
      ops.beginCpuAccess = (buf) => rec('begin_cpu_access', buf);
      ops.endCpuAccess = (buf) => rec('end_cpu_access', buf);
    }
    this.ops = ops;
  }

  /** Exports a buffer (one kernel reference). */
  export(): DmaBuf {
    return this.kernel.export({
      ops: this.ops,
      size: this.opts.size ?? 4 * PAGE_SIZE,
      priv: this,
      flags: this.opts.flags ?? O_RDWR,
      expName: this.opts.expName ?? 'test-exporter',
    });
  }

  /** Tables handed out and not yet unmapped. */
  get liveTables(): number {
    return this._tables.size;
  }

  ops_of(op: string): CallRecord[] {
    return this.calls.filter((c) => c.op === op);
  }

  private _map(att: DmaBufAttachment, _dir: DmaDataDirection): SgTable | null {
    if (this.failMap === 'null') return null;
    if (this.failMap) throw new SimError(this.failMap, 'test map', 'injected');
    if (this.opts.p2p && !att.peer2peer) throw new SimError('EPERM', 'test map', 'P2P memory needs peer2peer');
    const pages = Math.ceil(att.dmabuf.size / PAGE_SIZE);
    const frames = this.opts.p2p ? [] : this.frames.alloc(pages);
    if (!frames) throw new SimError('ENOMEM', 'test map', 'frame pool exhausted');
    const iovas = this.iovas.alloc(pages)!;
    const base = this.opts.p2p ? P2P_BAR : IOVA_BASE;
    const sgt = new SgTable(
      iovas.map((iova, i) => ({
        dmaAddress: base + BigInt(iova) * BigInt(PAGE_SIZE),
        length: PAGE_SIZE,
        page: this.opts.p2p ? null : { pfn: BigInt(frames[i]!) },
      })),
      this.opts.p2p ? { origNents: 0 } : {},
    );
    this._tables.set(sgt, { frames, iovas });
    return sgt;
  }
}

/** A dynamic importer that records its move_notify calls. */
export function recordingImporter(allowPeer2Peer = true, log: number[] = []) {
  return {
    log,
    ops: {
      allowPeer2Peer,
      moveNotify: (att: DmaBufAttachment) => void log.push(att.id),
    },
  };
}

export const dev = (name = 'dev0') => ({ name });
