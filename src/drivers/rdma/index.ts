/** Reference RDMA driver: verbs-like devices, PDs, MRs (system memory and dma-buf), RC QPs. */
export * from './constants.js';
export { UmemDmabuf, trimTable, umemNumPages, type UmemSegment, type UmemTrim } from './umem-dmabuf.js';
export {
  RdmaDevice, IbvContext, IbvPd, IbvMr, IbvCq, IbvQp, ibvOpenDevice, connectRcQps, allocUserMemory,
  type RdmaNicKind, type RdmaDeviceOptions, type RdmaEvent, type RdmaEventKind, type RdmaDeviceStats,
  type UserBuffer, type UserMemory, type IbvSge, type IbvSendWr, type IbvRecvWr, type IbvWc,
  type IbvQpInitAttr, type IbvQpAttr,
} from './verbs.js';
