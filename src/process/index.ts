/** Processes: files with their operations, fd tables, address spaces (what every uAPI goes through). */
export * from './constants.js';
export { SimFile, type FileOperations, type FileRefKind, type SimFileOptions } from './file.js';
export { VmArea, AnonVmArea, AddressSpace, type VmAreaInit, type UserPage } from './vma.js';
export {
  Process, ProcessExitError, FIOCLEX, FIONCLEX, type ProcessOptions, type MmapRequest, type AnonymousMmapOptions, type GetUserPagesOptions,
} from './process.js';
export { uapiU32, uapiU64 } from './uapi.js';
