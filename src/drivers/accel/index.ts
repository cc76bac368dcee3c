/** The habanalabs-like accelerator driver, its uAPI and the hl-thunk-like user library. */
export * from './uapi.js';
export * from './sg.js';
export * from './habanalabs.js';
export { type HlPhysPgPack, type HlVmHashNode } from './memory.js';
export { type HlAttachInfo, type HlP2pMapping } from './dmabuf.js';
export * from './hlthunk.js';
export { type DmaBufImporterDevice, importerDevice, importerPciFunction } from '../device.js';
