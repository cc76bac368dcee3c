/**
 * Numeric constants of the dma-buf uAPI and kernel API, with their kernel values so that
 * scenarios written against the real headers read the same here.
 */

// Page size and the VFS/mm uAPI numbers live in the process layer; re-exported for dma-buf users.
export {
  PAGE_SIZE, PAGE_SHIFT, O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE, O_NONBLOCK, O_CLOEXEC, PROT_READ, PROT_WRITE,
  MAP_SHARED, MAP_PRIVATE, SEEK_SET, SEEK_CUR, SEEK_END, EPOLLIN, EPOLLOUT, EPOLLERR,
} from '../process/constants.js';

/** enum dma_data_direction (include/linux/dma-direction.h): DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_NONE. */
export const DmaDataDirection = {
  BIDIRECTIONAL: 0,
  TO_DEVICE: 1,
  FROM_DEVICE: 2,
  NONE: 3,
} as const;
export type DmaDataDirection = (typeof DmaDataDirection)[keyof typeof DmaDataDirection];

/** True for the three directions a mapping may use (DMA_NONE is not one of them). */
export function isValidMapDirection(dir: number): dir is DmaDataDirection {
  return dir === 0 || dir === 1 || dir === 2;
}

/** DMA_BUF_SYNC_READ, a struct dma_buf_sync flag (uapi/linux/dma-buf.h): the CPU will read. */
export const DMA_BUF_SYNC_READ = 1;
/** DMA_BUF_SYNC_WRITE, a struct dma_buf_sync flag: the CPU will write. */
export const DMA_BUF_SYNC_WRITE = 2;
/** DMA_BUF_SYNC_RW: READ | WRITE. */
export const DMA_BUF_SYNC_RW = 3;
/** DMA_BUF_SYNC_START: the CPU access begins (begin_cpu_access); the value is 0, so no END bit. */
export const DMA_BUF_SYNC_START = 0;
/** DMA_BUF_SYNC_END: the CPU access ends (end_cpu_access). */
export const DMA_BUF_SYNC_END = 4;
/** DMA_BUF_SYNC_VALID_FLAGS_MASK: any other bit in DMA_BUF_IOCTL_SYNC's flags is EINVAL. */
export const DMA_BUF_SYNC_VALID_FLAGS_MASK = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END;

/** DMA_BUF_NAME_LEN: the name buffer size, NUL included. */
export const DMA_BUF_NAME_LEN = 32;

// _IOC encoding of asm-generic/ioctl.h: dir(2) | size(14) | type(8) | nr(8).
function ioc(dir: number, type: string, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}
const IOC_WRITE = 1;
const IOC_READ = 2;

/** DMA_BUF_IOCTL_SYNC, _IOW('b', 0, struct dma_buf_sync): brackets CPU access to an mmap'ed buffer. */
export const DMA_BUF_IOCTL_SYNC = ioc(IOC_WRITE, 'b', 0, 8);
/**
 * DMA_BUF_SET_NAME_A, _IOW('b', 1, u32): the 32-bit-pointer encoding of DMA_BUF_SET_NAME. Both
 * pointer-size variants are accepted, as the kernel does.
 */
export const DMA_BUF_SET_NAME_A = ioc(IOC_WRITE, 'b', 1, 4);
/** DMA_BUF_SET_NAME_B, _IOW('b', 1, u64): the 64-bit-pointer encoding of DMA_BUF_SET_NAME. */
export const DMA_BUF_SET_NAME_B = ioc(IOC_WRITE, 'b', 1, 8);
/** DMA_BUF_IOCTL_EXPORT_SYNC_FILE, _IOWR('b', 2, struct dma_buf_export_sync_file) (v6.0+). */
export const DMA_BUF_IOCTL_EXPORT_SYNC_FILE = ioc(IOC_WRITE | IOC_READ, 'b', 2, 8);
/** DMA_BUF_IOCTL_IMPORT_SYNC_FILE, _IOW('b', 3, struct dma_buf_import_sync_file) (v6.0+). */
export const DMA_BUF_IOCTL_IMPORT_SYNC_FILE = ioc(IOC_WRITE, 'b', 3, 8);

/**
 * MAX_SCHEDULE_TIMEOUT: "wait forever". A successful infinite wait returns this value, as
 * schedule_timeout() does.
 */
export const MAX_SCHEDULE_TIMEOUT = Number.MAX_SAFE_INTEGER;

/** MAX_ERRNO: dma_fence_set_error accepts -MAX_ERRNO <= err < 0. */
export const MAX_ERRNO = 4095;

/** -EINVAL, as returned (not thrown) by int-returning kernel functions such as dma_fence_signal. */
export const NEG_EINVAL = -22;
/** -ENOENT, as dma_fence_add_callback returns it for a fence already signaled. */
export const NEG_ENOENT = -2;
/** -ERESTARTSYS: an interruptible wait saw a pending signal (uAPI calls turn it into EINTR). */
export const NEG_ERESTARTSYS = -512;
