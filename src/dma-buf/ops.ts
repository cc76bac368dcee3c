/**
 * The exporter and importer contracts (include/linux/dma-buf.h). Callbacks report failure by
 * throwing a SimError carrying the kernel errno; anything else thrown is treated as a bug and
 * passes through untouched.
 */
import type { DmaDataDirection } from './constants.js';
import type { DmaBuf } from './dma-buf.js';
import type { DmaBufAttachment } from './attachment.js';
import type { SgTable } from './sg-table.js';
import type { DmaResv } from './resv.js';
// dma-buf sits above PCI and the DMA API: attach->dev may reference both (types only).
import type { Device } from '../pci/topology.js';
import type { DmaDevice as DmaApiDevice } from '../dma-mapping/dma-api.js';

/**
 * The device an attachment is made for (attach->dev), the one type every importer passes to
 * attach/dynamicAttach and every exporter reads from `attach.dev`. The framework itself needs only
 * the name; P2P exporters need the rest:
 *  - `pci`: the topology device the importer's struct device hangs off: a PciFunction, or a
 *    platform/auxiliary device whose nearest PCI ancestor is used (find_parent_pci_dev). Absent:
 *    not a PCI device, so there is no P2P path (pci_p2pdma_distance < 0).
 *  - `dma`: the DMA API device mappings are made on (dma_buf_sgt_dma_device). Absent: the
 *    machine's DMA device of the nearest PCI function (its default IOMMU domain or direct).
 * A DMA API DmaDevice of src/dma-mapping fits this type as it is (its name, no pci, no dma), and
 * exporters that map pages treat it as its own DMA device. importerDevice() of the driver kit
 * builds one from a topology device.
 */
export interface ImporterDevice {
  readonly name: string;
  readonly pci?: Device;
  readonly dma?: DmaApiDevice;
}

/** @deprecated The old name of ImporterDevice (kept for src/dma-buf's own files). */
export type DmaDevice = ImporterDevice;

/** struct iosys_map: a kernel virtual address of the whole buffer. */
export interface IosysMap {
  readonly vaddr: bigint;
  readonly isIomem: boolean;
}

/** The part of a VMA that dma-buf's mmap hooks see. */
export interface DmaBufVma {
  /** Offset into the buffer, in pages. */
  readonly pgoff: bigint;
  readonly pages: number;
  readonly prot: number;
  readonly flags: number;
}

/** The kernel module owning the exporter; export takes a reference on it (DB-03). */
export interface DmaBufOwner {
  readonly name: string;
  /** try_module_get: false when the module is going away (export then fails with ENOENT). */
  tryGet(): boolean;
  /** module_put, once per successful tryGet, at release. */
  put(): void;
}

/**
 * struct dma_buf_ops. Locks: the framework calls each op in the lock state the DB-25 convention
 * gives it, so an exporter can rely on `dmabuf.resv.isLocked()`.
 */
export interface DmaBufExporterOps {
  /**
   * Optional. Called by attach/dynamicAttach, resv NOT held, before the attachment is listed.
   * The exporter may clear `attach.peer2peer` (e.g. no P2P path to `attach.dev`) and may throw to
   * refuse: EBUSY means the backing storage suits the device but cannot move there (DB-07).
   * Default: accept every device.
   */
  attach?(dmabuf: DmaBuf, attach: DmaBufAttachment): void;
  /** Optional. Called by detach, resv NOT held, after every mapping is gone. Must not fail. */
  detach?(dmabuf: DmaBuf, attach: DmaBufAttachment): void;
  /**
   * Optional, but only together with `unpin` (DB-02); its presence makes the exporter dynamic
   * (DB-06). Called with resv held: from dma_buf_pin, and by the framework before mapping for an
   * importer that cannot handle moves (DB-09/DB-11). The buffer must stay in place until `unpin`.
   * May throw (ENOMEM, EBUSY...), in which case nothing is pinned.
   */
  pin?(attach: DmaBufAttachment): void;
  /** Optional, paired with `pin`. Called with resv held. Must not fail. */
  unpin?(attach: DmaBufAttachment): void;
  /**
   * Required (DB-01). Called with resv held (6.x convention) to build a new table for
   * `attach.dev`; must return a fresh table each time (DB-12), page-aligned entries, `page` null
   * where there is no struct page. Returning null means ENOMEM; throw for any other errno (EPERM
   * when peer2peer is false and only P2P memory is possible, as habanalabs does). A dynamic
   * exporter that is not pinned may move the buffer afterwards, after calling moveNotify.
   */
  mapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable | null;
  /** Required (DB-01). Called with resv held; frees a table returned by `mapDmaBuf`. Must not fail. */
  unmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void;
  /** Required (DB-01). Called exactly once when the last reference goes, resv NOT held (DB-05). */
  release(dmabuf: DmaBuf): void;
  /**
   * Optional; without it mmap fails with EINVAL (DB-18). Called resv NOT held after the range
   * checks. May throw (EINVAL, EACCES...).
   */
  mmap?(dmabuf: DmaBuf, vma: DmaBufVma): void;
  /**
   * Optional. The physical address of buffer page `pgoff` that a CPU access through a userspace
   * mapping reaches (what the exporter's vm_ops->fault, or its remap_pfn_range, puts in the page
   * table), for Process.readUser/writeUser. Called resv NOT held, only for pages inside a mapping
   * that `mmap` accepted. Such mappings are PFN mappings: get_user_pages on them fails (EFAULT).
   * Absent: CPU accesses through the mapping fault (EFAULT).
   */
  fault?(dmabuf: DmaBuf, pgoff: bigint, write: boolean): bigint;
  /** Optional; without it vmap fails with EINVAL (DB-24). Called with resv held, on the first vmap only. */
  vmap?(dmabuf: DmaBuf): IosysMap;
  /** Optional. Called with resv held, on the last vunmap only. */
  vunmap?(dmabuf: DmaBuf, map: IosysMap): void;
  /** Optional. Called resv NOT held before CPU access (DMA_BUF_IOCTL_SYNC START). May throw. */
  beginCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): void;
  /** Optional. Called resv NOT held after CPU access (SYNC END). May throw. */
  endCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): void;
  /**
   * Cache the first mapping of each attachment (DB-10). Only honoured by profiles '5.15' and
   * '6.x'; not allowed together with pin/unpin there (DB-02). @default false
   */
  cacheSgtMapping?: boolean;
}

/**
 * struct dma_buf_attach_ops: what makes an attachment dynamic (DB-06).
 */
export interface DmaBufImporterOps {
  /**
   * The importer copes with sg entries that have no struct page, only a DMA address and length
   * (DB-08). Sets the attachment's initial `peer2peer` (DB-07). @default false
   */
  readonly allowPeer2Peer?: boolean;
  /**
   * Required for a dynamic attachment (DB-07). Called by the exporter through
   * `DmaBuf.moveNotify`, with resv held, on every dynamic attachment whether mapped or not
   * (DB-16). Existing tables stay readable but are stale: the importer must stop using them and
   * unmap and re-map as soon as possible; maps made after this returns point to the new place.
   * It must not map from inside the callback. It may add fences for access it cannot stop
   * synchronously (DB-17). Must not fail.
   */
  moveNotify(attach: DmaBufAttachment): void;
}

/** struct dma_buf_export_info (DEFINE_DMA_BUF_EXPORT_INFO gives the defaults). */
export interface DmaBufExportInfo {
  /** Exporter name shown in fdinfo as exp_name. @default 'dmabuf-sim' */
  expName?: string;
  owner?: DmaBufOwner;
  /** Required (DB-01). */
  ops: DmaBufExporterOps;
  /** Bytes; fixed for the buffer's life (DB-03). Need not be page-aligned. */
  size: number;
  /**
   * File flags; only O_ACCMODE and O_NONBLOCK are kept (DB-03). @default 0, i.e. O_RDONLY, as
   * the zeroed DEFINE_DMA_BUF_EXPORT_INFO gives; exporters normally pass O_RDWR.
   */
  flags?: number;
  /** An existing reservation object to share; a new one is made when absent. */
  resv?: DmaResv;
  /** Required, non-null (DB-01): the exporter's private data. */
  priv: unknown;
}
