/** The habanalabs-like accelerator driver, its uAPI and the hl-thunk-like user library. */
export * from './uapi.js';
export * from './sg.js';
export * from './habanalabs.js';
export * from './hlthunk.js';
export { type DmaBufImporterDevice, importerDevice, importerPciFunction } from '../device.js';
