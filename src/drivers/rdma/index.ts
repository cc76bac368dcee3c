/** Reference RDMA driver: verbs-like devices, PDs, MRs (system memory and dma-buf), RC QPs. */
export * from './constants.js';
export { UmemDmabuf, UmemSegments, trimTable, umemNumPages, type UmemSegment, type UmemTrim } from './umem-dmabuf.js';
export {
  RdmaDevice, type RdmaNicKind, type RdmaDeviceOptions, type RdmaEvent, type RdmaEventKind, type RdmaDeviceStats,
} from './device.js';
export { IbvMr } from './mr.js';
export {
  IbvCq, IbvQp, connectRcQps, type IbvSge, type IbvSendWr, type IbvRecvWr, type IbvWc, type IbvQpInitAttr, type IbvQpAttr,
} from './qp.js';
export { IbvContext, IbvPd, ibvOpenDevice } from './verbs.js';
