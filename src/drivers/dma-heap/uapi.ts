/** uAPI of dma-heaps (include/uapi/linux/dma-heap.h), with the kernel's values. */
import { O_ACCMODE, O_CLOEXEC } from '../../index.js';

function ioc(dir: number, type: string, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}
/** _IOC_WRITE direction bit of asm-generic/ioctl.h: userspace writes the struct (copy_from_user). */
export const IOC_WRITE = 1;
/** _IOC_READ direction bit: the kernel writes the struct back (copy_to_user). */
export const IOC_READ = 2;

/** DMA_HEAP_IOC_MAGIC: the ioctl type byte of the dma-heap commands. */
export const DMA_HEAP_IOC_MAGIC = 'H';
/** struct dma_heap_allocation_data { __u64 len; __u32 fd; __u32 fd_flags; __u64 heap_flags; } */
export const DMA_HEAP_ALLOCATION_DATA_SIZE = 24;
/** _IOWR('H', 0x0, struct dma_heap_allocation_data) */
export const DMA_HEAP_IOCTL_ALLOC = ioc(IOC_WRITE | IOC_READ, DMA_HEAP_IOC_MAGIC, 0x0, DMA_HEAP_ALLOCATION_DATA_SIZE);

/** The same ioctl number with another struct size, as older or newer userspace builds it. */
export function dmaHeapIoctlAlloc(structSize: number): number {
  return ioc(IOC_WRITE | IOC_READ, DMA_HEAP_IOC_MAGIC, 0x0, structSize);
}

/** Flags allowed in fd_flags. */
export const DMA_HEAP_VALID_FD_FLAGS = O_CLOEXEC | O_ACCMODE;
/** Flags allowed in heap_flags: none are defined. */
export const DMA_HEAP_VALID_HEAP_FLAGS = 0n;

/** struct dma_heap_allocation_data as an object; `fd` is written back on success. */
export interface DmaHeapAllocationData {
  len: bigint | number;
  /** Must be 0 on input. */
  fd: number;
  fdFlags: number;
  heapFlags: bigint | number;
}

/** Encodes the struct in user memory (little-endian), `size` bytes long (shorter: truncated). */
export function encodeAllocationData(d: DmaHeapAllocationData, size = DMA_HEAP_ALLOCATION_DATA_SIZE): Uint8Array {
  const full = new Uint8Array(Math.max(size, DMA_HEAP_ALLOCATION_DATA_SIZE));
  const v = new DataView(full.buffer);
  v.setBigUint64(0, BigInt.asUintN(64, BigInt(d.len)), true);
  v.setUint32(8, d.fd >>> 0, true);
  v.setUint32(12, d.fdFlags >>> 0, true);
  v.setBigUint64(16, BigInt.asUintN(64, BigInt(d.heapFlags)), true);
  return full.slice(0, size);
}

/** Decodes a full 24-byte struct. */
export function decodeAllocationData(b: Uint8Array): DmaHeapAllocationData {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { len: v.getBigUint64(0, true), fd: v.getUint32(8, true), fdFlags: v.getUint32(12, true), heapFlags: v.getBigUint64(16, true) };
}
