/**
 * I/O page faults through iommufd (drivers/iommu/iommufd/fault.c, drivers/iommu/io-pgfault.c):
 * the fault object made by IOMMU_FAULT_QUEUE_ALLOC with its fd, and the path of a page request
 * from the IOMMU to it.
 *
 * A page request (PCIe PRI: a device with page requests enabled found no translation) is
 * reported with {@link reportPageRequest}, as iommu_report_device_fault does: the request goes to
 * the HWPT attached to the requester's RID (or PASID). When that HWPT was allocated with a fault
 * object (IOMMU_HWPT_FAULT_ID_VALID) the request waits on the fault's deliver list until user
 * space reads it from the fault fd (each read group gets a cookie), maps the page, and writes a
 * response with that cookie; the response reaches the device through `respond`, which retries
 * its access on IOMMUFD_PAGE_RESP_SUCCESS. A request with no fault handler is answered INVALID at
 * once. Detaching the device from the HWPT, or destroying the fault, answers its pending
 * requests INVALID (iommufd_auto_response_faults).
 */
import { EPOLLIN, EPOLLOUT, O_RDWR, SimError, type FileOperations, type Machine, type PageRequest, type Process } from '../../index.js';
import type { IommufdHwpt } from './hw-pagetable.js';
import type { IommufdCtx, IommufdDevice } from './iommufd.js';
import { IommufdObject, IommufdOwners } from './object.js';
import {
  IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID, IOMMU_PGFAULT_PERM_READ, IOMMU_PGFAULT_PERM_WRITE,
  IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS, type IommuHwptPageResponse, type IommuHwptPgfault,
} from './uapi.js';

/** sizeof(struct iommu_hwpt_pgfault): what one record read from a fault fd takes. */
export const IOMMU_HWPT_PGFAULT_SIZE = 40;
/** sizeof(struct iommu_hwpt_page_response): what one response written to a fault fd takes. */
export const IOMMU_HWPT_PAGE_RESPONSE_SIZE = 8;
/** EPOLLRDNORM (uapi/linux/eventpoll.h). */
const EPOLLRDNORM = 0x040;

/**
 * One page request as iommufd reports it (struct iommu_fault_page_request): the IOMMU's record
 * (Iommu PageRequest: rid, pasid or null, page, access) and its Page Request Group Index.
 */
export type IopfRequest = PageRequest & {
  /** Page Request Group Index. @default 0 */
  grpid?: number;
};

/**
 * Where a page response goes (the IOMMU's page_response to the device): `code` is
 * IOMMUFD_PAGE_RESP_SUCCESS (the device retries its access) or IOMMUFD_PAGE_RESP_INVALID (it
 * gives up).
 */
export type PageResponder = (code: number) => void;

/** struct iopf_group: the requests of one group, the device and HWPT they went to, and the way back. */
interface IopfGroup {
  readonly idev: IommufdDevice;
  readonly hwpt: IommufdHwpt;
  readonly request: IopfRequest;
  readonly respond: PageResponder;
  cookie: number;
}

/**
 * struct iommufd_fault: page requests waiting to be read (`deliver`) and read groups waiting for
 * their response, by cookie.
 */
export class IommufdFault extends IommufdObject {
  readonly type = 'fault';
  /** Requests not yet read. */
  private readonly _deliver: IopfGroup[] = [];
  /** Read groups by cookie, waiting for a response. */
  private readonly _response = new Map<number, IopfGroup>();
  private _nextCookie = 1;
  /** Requests delivered, read and answered so far. */
  readonly stats = { delivered: 0, read: 0, responded: 0, autoResponded: 0 };

  constructor(ctx: IommufdCtx, id: number) {
    super(ctx, id);
  }

  /** Requests waiting to be read. */
  get pending(): number {
    return this._deliver.length;
  }

  /** Groups read and not yet answered. */
  get awaitingResponse(): number {
    return this._response.size;
  }

  /** @internal iommufd_fault_iopf_handler: queues a group for the reader. */
  deliver(g: IopfGroup): void {
    this._deliver.push(g);
    this.stats.delivered++;
  }

  /**
   * iommufd_fault_fops_read: as many whole groups as `count` bytes hold, each given a cookie.
   * @throws {@link index!SimError} ESPIPE when count is not a multiple of the record size.
   */
  read(count: number): IommuHwptPgfault[] {
    if (count % IOMMU_HWPT_PGFAULT_SIZE !== 0) throw new SimError('ESPIPE', 'iommufd_fault_fops_read', `count ${count} is not a multiple of ${IOMMU_HWPT_PGFAULT_SIZE}`);
    const out: IommuHwptPgfault[] = [];
    while (this._deliver.length > 0 && (out.length + 1) * IOMMU_HWPT_PGFAULT_SIZE <= count) {
      const g = this._deliver.shift()!;
      g.cookie = this._nextCookie++;
      this._response.set(g.cookie, g);
      const r = g.request;
      const perm = (r.access === 'write' ? 0 : IOMMU_PGFAULT_PERM_READ) | (r.access === 'read' ? 0 : IOMMU_PGFAULT_PERM_WRITE);
      out.push({
        flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE | (r.pasid === null ? 0 : IOMMU_PGFAULT_FLAGS_PASID_VALID),
        devId: g.idev.id, pasid: r.pasid ?? 0, grpid: r.grpid ?? 0, perm, addr: r.iova & ~0xfffn, length: 0, cookie: g.cookie,
      });
      this.stats.read++;
    }
    return out;
  }

  /**
   * iommufd_fault_fops_write: answers groups by cookie, in order; returns the bytes consumed.
   * @throws {@link index!SimError} EINVAL when the first response has an unknown code or cookie (a later
   * bad one stops the write short).
   */
  write(records: readonly unknown[]): number {
    const op = 'iommufd_fault_fops_write';
    let done = 0;
    for (const rec of records) {
      const r = rec as IommuHwptPageResponse;
      let err: string | null = null;
      if (typeof rec !== 'object' || rec === null) err = 'bad response';
      else if (r.code !== IOMMUFD_PAGE_RESP_SUCCESS && r.code !== IOMMUFD_PAGE_RESP_INVALID) err = `code ${String(r.code)} is neither SUCCESS nor INVALID`;
      else if (!this._response.has(r.cookie)) err = `no page request group with cookie ${String(r.cookie)} waits for a response`;
      if (err !== null) {
        if (done === 0) throw new SimError('EINVAL', op, err);
        break;
      }
      const g = this._response.get(r.cookie)!;
      this._response.delete(r.cookie);
      this.stats.responded++;
      g.respond(r.code);
      done += IOMMU_HWPT_PAGE_RESPONSE_SIZE;
    }
    return done;
  }

  /** iommufd_fault_fops_poll: always writable; readable while requests wait. */
  poll(): number {
    return EPOLLOUT | (this._deliver.length > 0 ? EPOLLIN | EPOLLRDNORM : 0);
  }

  /**
   * iommufd_auto_response_faults: answers INVALID every pending group of `idev` on `hwpt` (every
   * group when both are omitted: the fault is being destroyed).
   */
  autoRespond(idev?: IommufdDevice, hwpt?: IommufdHwpt): void {
    const match = (g: IopfGroup) => idev === undefined || (g.idev === idev && g.hwpt === hwpt);
    const hit = [...this._deliver.filter(match), ...[...this._response.values()].filter(match)];
    for (let i = this._deliver.length - 1; i >= 0; i--) if (match(this._deliver[i]!)) this._deliver.splice(i, 1);
    for (const [c, g] of this._response) if (match(g)) this._response.delete(c);
    for (const g of hit) {
      this.stats.autoResponded++;
      g.respond(IOMMUFD_PAGE_RESP_INVALID);
    }
  }
}

/** The fault fd's operations (iommufd_fault_fops). */
export const IOMMUFD_FAULT_FOPS: FileOperations<IommufdFault> = {
  name: '[iommufd-pgfault]',
  read: (file, count) => file.privateData.read(count),
  write: (file, records) => file.privateData.write(records),
  poll: (file) => file.privateData.poll(),
  release: (file) => file.privateData.ctx.faultFileReleased(file.privateData),
};

/** Installs a fault's fd in `proc` (O_RDWR, O_CLOEXEC as anon_inode_getfile + get_unused_fd_flags). */
export function faultFd(proc: Process, fault: IommufdFault): number {
  return proc.open(IOMMUFD_FAULT_FOPS, fault, { flags: O_RDWR, cloexec: true, name: '[iommufd-pgfault]' });
}

/**
 * iommu_report_device_fault for a page request: finds the device bound to an iommufd by its RID
 * and the HWPT attached to its RID or PASID, and queues the request on that HWPT's fault object.
 * With no bound device, no HWPT or no fault object the request is answered INVALID at once.
 * Returns where it went.
 */
export function reportPageRequest(machine: Machine, req: IopfRequest, respond: PageResponder): 'delivered' | 'no-handler' {
  const idev = machine.driverState(IommufdOwners).byRid.get(req.rid);
  const hwpt = idev ? (req.pasid === null ? idev.hwpt : idev.pasidHwpt(req.pasid)) : null;
  const fault = hwpt?.fault ?? null;
  if (!idev || !hwpt || !fault) {
    respond(IOMMUFD_PAGE_RESP_INVALID);
    return 'no-handler';
  }
  fault.deliver({ idev, hwpt, request: req, respond, cookie: 0 });
  return 'delivered';
}

