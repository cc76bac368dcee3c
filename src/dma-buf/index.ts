/** The DMA-BUF framework: buffers, attachments, sg tables, fences, reservations, fds and uAPI. */
export * from './constants.js';
export { SimClock } from './clock.js';
export {
  EventLog, type Disposable, type DmaBufEvent, type DmaBufEventInput, type DmaBufEventKind, type DmaBufEventListener,
} from './events.js';
export {
  resolveProfile, KERNEL_PROFILE_NAMES, KERNEL_RULE_VALUES, type KernelProfile, type KernelProfileName, type KernelRuleOverrides,
} from './profile.js';
export { DmaBufKernel, type DmaBufKernelOptions, type EventIds } from './kernel.js';
export { DmaFence, type DmaFenceCallback, type DmaFenceNames } from './fence.js';
export {
  DmaResv, DmaResvIter, DmaResvUsage, dmaResvUsageRw, dmaResvLockAll, WwAcquireCtx, NEG_EDEADLK, NEG_EALREADY, NEG_EINTR, type DmaResvEntry,
} from './resv.js';
export { SgTable, type SgEntry, type PageRef, type SgTableOptions, type SgDmaColumns } from './sg-table.js';
export { SyncFile } from './sync-file.js';
export { DmaBuf, DmaBufMmap, type DmaBufRefKind } from './dma-buf.js';
export { DmaBufAttachment } from './attachment.js';
export type {
  DmaDevice,
  DmaBufExporterOps,
  DmaBufImporterOps,
  DmaBufExportInfo,
  DmaBufOwner,
  DmaBufVma,
  IosysMap,
} from './ops.js';
export {
  SimProcess,
  dmaBufFd,
  dmaBufGet,
  type OpenFile,
  type OtherFile,
  type SimProcessOptions,
  type DmaBufSyncArg,
  type DmaBufSyncFileArg,
  type DmaBufNameArg,
  type MmapRequest,
} from './process.js';
export { DmaBufFile, SyncFileFile, dmaBufFops, syncFileFops } from './file.js';
