/**
 * The I/O page fault path from the hardware side (drivers/iommu/io-pgfault.c, the IOMMU drivers'
 * page-request queue handlers, PCIe PRI): a device with page requests enabled
 * (Iommu.enableAts(rid, { pri: true })) whose access finds no translation gets no fault record;
 * the IOMMU queues a page request on its unit and the access stops there ('EAGAIN' from the DMA
 * engine). The unit's queue is drained by the machine's {@link IopfQueue} (the PRQ interrupt),
 * which reports each request to iommufd ({@link reportPageRequest}); the page response comes back
 * to the device, which retries on SUCCESS and gives up on INVALID.
 *
 * {@link PriDma} is that device side: a transfer that stops on a page request waits for the
 * response and resumes from the byte where it stopped.
 */
import { SimError, type DmaResult, type Machine } from '../../index.js';
import { reportPageRequest } from './fault.js';
import { IOMMUFD_PAGE_RESP_SUCCESS } from './uapi.js';

const PAGE_MASK = ~0xfffn;

/** The key transfers wait under: requester, PASID and page. */
function waitKey(rid: number, pasid: number | null, page: bigint): string {
  return `${rid}:${pasid ?? '-'}:${page}`;
}

/** Where a transfer of {@link PriDma} is. */
export type PriTransferState = 'done' | 'waiting' | 'failed';

/** One DMA transfer of a PRI device, retried after each successful page response. */
export class PriTransfer {
  /** 'waiting' while a page request is outstanding. */
  state: PriTransferState = 'waiting';
  /** Bytes moved so far. */
  bytesDone = 0n;
  /** Accesses made (1 + one per SUCCESS response). */
  attempts = 0;
  /** Page requests the transfer raised. */
  pageRequests = 0;
  /** The result of the last attempt ('EFAULT' when a response was INVALID). */
  result: DmaResult | null = null;

  /** @internal */
  constructor(
    private readonly _dev: PriDma,
    /** The device address of the transfer's first byte. */
    readonly iova: bigint,
    private readonly _data: Uint8Array | null,
    private readonly _out: Uint8Array | null,
  ) {}

  /** The bytes read so far (read transfers). */
  get data(): Uint8Array | null {
    return this._out;
  }

  /** The page the transfer is waiting for, or null. */
  get waitingFor(): bigint | null {
    return this.state === 'waiting' ? (this.iova + this.bytesDone) & PAGE_MASK : null;
  }

  /** @internal one attempt from where the last one stopped. */
  run(): void {
    const dev = this._dev;
    const sim = dev.machine.sim;
    const off = Number(this.bytesDone);
    const addr = this.iova + this.bytesDone;
    this.attempts++;
    sim.iommu.setDmaPasid(dev.rid, dev.pasid);
    let r: DmaResult;
    try {
      r = this._data ? sim.dma.write({ rid: dev.rid, addr }, this._data.subarray(off)) : sim.dma.readInto({ rid: dev.rid, addr }, this._out!.subarray(off));
    } finally {
      sim.iommu.setDmaPasid(dev.rid, null);
    }
    this.bytesDone += r.bytesDone;
    this.result = { ...r, bytesDone: this.bytesDone };
    if (r.ok) {
      this.state = 'done';
      return;
    }
    if (r.code !== 'EAGAIN') {
      this.state = 'failed';
      return;
    }
    // Stopped on a page request: wait for the response to it.
    this.state = 'waiting';
    this.pageRequests++;
    IopfQueue.of(dev.machine).wait(this, dev.rid, dev.pasid);
  }

  /** @internal the page response: SUCCESS retries, INVALID fails the transfer. */
  respond(code: number): void {
    if (this.state !== 'waiting') return;
    if (code === IOMMUFD_PAGE_RESP_SUCCESS) {
      this.run();
      return;
    }
    this.state = 'failed';
    this.result = { ok: false, code: 'EFAULT', bytesDone: this.bytesDone };
  }
}

/**
 * The machine's IOPF queue (struct iopf_queue): transfers waiting for page responses, and the
 * handler that drains the IOMMU units' page-request queues into iommufd.
 */
export class IopfQueue {
  private readonly _waiting = new Map<string, PriTransfer[]>();
  private _machine: Machine | null = null;
  /** Requests drained from the units and reported. */
  reported = 0;

  /** The queue of `machine` (one per machine). */
  static of(machine: Machine): IopfQueue {
    const q = machine.driverState(IopfQueue);
    q._machine = machine;
    return q;
  }

  /** @internal a transfer waits for the page it stopped on; the units' queues are handled at once (the PRQ interrupt). */
  wait(t: PriTransfer, rid: number, pasid: number | null): void {
    const key = waitKey(rid, pasid, t.waitingFor!);
    const list = this._waiting.get(key);
    if (list) list.push(t);
    else this._waiting.set(key, [t]);
    this.handle();
  }

  /**
   * The page-request handler (intel_prq_event_thread, arm_smmu_handle_ppr, ...): drains every
   * unit's page requests, oldest first, and reports each to iommufd; the response goes to the
   * transfers waiting on that page. Returns how many requests it handled.
   */
  handle(): number {
    const m = this._machine;
    if (!m) throw new SimError('EINVAL', 'iopf_queue', 'IopfQueue.of(machine) first');
    let n = 0;
    for (const unit of m.units()) {
      for (const req of unit.pageRequests()) {
        n++;
        this.reported++;
        const key = waitKey(req.rid, req.pasid, req.iova & PAGE_MASK);
        reportPageRequest(m, req, (code) => {
          const list = this._waiting.get(key) ?? [];
          this._waiting.delete(key);
          for (const t of list) t.respond(code);
        });
      }
    }
    return n;
  }
}

/**
 * The DMA side of a PRI-capable device: transfers that stop on a page request resume after a
 * SUCCESS response. The requester must have ATS with `pri` enabled on its IOMMU
 * (Iommu.enableAts) for its misses to become page requests rather than faults.
 */
export class PriDma {
  constructor(
    readonly machine: Machine,
    /** Requester ID of the device. */
    readonly rid: number,
    /** The PASID its requests carry, or null. */
    readonly pasid: number | null = null,
  ) {}

  /** A DMA write of `data` at `iova`; look at the transfer's state for the outcome. */
  write(iova: bigint, data: Uint8Array): PriTransfer {
    const t = new PriTransfer(this, iova, data, null);
    t.run();
    return t;
  }

  /** A DMA read of `length` bytes at `iova` into the transfer's `data`. */
  read(iova: bigint, length: number): PriTransfer {
    const t = new PriTransfer(this, iova, null, new Uint8Array(length));
    t.run();
    return t;
  }
}
