/**
 * What every iommufd object shares (struct iommufd_object) and the per-machine table of bound
 * devices. Kept apart from iommufd.ts so that the object kinds can live in their own files.
 */
import { type PciFunction } from '../../index.js';
import type { IommufdCtx, IommufdDevice } from './iommufd.js';

/** The kinds of iommufd objects (enum iommufd_object_type). */
export type IommufdObjectType = 'ioas' | 'hwpt-paging' | 'hwpt-nested' | 'device' | 'fault';

/** struct iommufd_object: an id in the context's table and its users. */
export abstract class IommufdObject {
  /** The kind of object. */
  abstract readonly type: IommufdObjectType;
  /** obj->users: 1 for the table, plus one per holder. */
  users = 1;
  /** Removed from the table. */
  destroyed = false;
  constructor(
    /** The context whose table holds the object. */
    readonly ctx: IommufdCtx,
    /** The object's id (what the ioctls name it by). */
    readonly id: number,
  ) {}
}

/**
 * Per machine: the PCI functions bound to an iommufd, by function (DMA ownership is exclusive)
 * and by requester ID (where page requests go).
 */
export class IommufdOwners {
  /** Function -> its iommufd device. */
  readonly byFn = new Map<PciFunction, IommufdDevice>();
  /** Requester ID -> its iommufd device. */
  readonly byRid = new Map<number, IommufdDevice>();
}
