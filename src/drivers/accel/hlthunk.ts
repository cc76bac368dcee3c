/**
 * A user library in the spirit of hl-thunk (HabanaAI/hl-thunk-open, libhlthunk.c): thin wrappers
 * over HL_IOCTL_MEMORY that return C-style results, a value >= 0 on success and a negative errno
 * on failure, never throwing for a kernel error. The dma-buf export wrappers do the only flag
 * validation there is (HL-08): the kernel passes flags through unchecked.
 */
import { O_CLOEXEC, O_RDWR, SimError, type Process, type SimProcess } from '../../index.js';
import type { HabanaDevice } from './habanalabs.js';
import { HL_IOCTL_MEMORY, HL_MEM_CONTIGUOUS, HL_MEM_SHARED, type HlMemArgs, type HlMemOut } from './uapi.js';

const EINVAL = 22;

/** An open device: the process, its compute-device fd and the driver behind it. */
export interface HlthunkHandle {
  readonly dev: HabanaDevice;
  readonly proc: SimProcess;
  readonly fd: number;
}

/** hlthunk_open: opens the device in `proc`. Returns the handle, or a negative errno. */
export function hlthunkOpen(dev: HabanaDevice, proc: SimProcess): HlthunkHandle | number {
  return call(() => ({ dev, proc, fd: dev.open(proc) }));
}

/** hlthunk_close. 0 or a negative errno. */
export function hlthunkClose(h: HlthunkHandle): number {
  return call(() => {
    h.proc.close(h.fd);
    return 0;
  });
}

/**
 * hlthunk_device_memory_alloc(fd, size, page_size, contiguous, shared): the handle, 0 on a
 * device without DRAM virtual memory, or a negative errno. `pageSize` is accepted and ignored
 * (the device's DRAM page size is used).
 */
export function hlthunkDeviceMemoryAlloc(h: HlthunkHandle, size: bigint, _pageSize: bigint, contiguous: boolean, shared: boolean): bigint | number {
  const flags = (contiguous ? HL_MEM_CONTIGUOUS : 0) | (shared ? HL_MEM_SHARED : 0);
  return call(() => ioctl(h, { op: 'ALLOC', memSize: size, flags }).handle ?? 0n);
}

/** hlthunk_device_memory_free. 0 or a negative errno. */
export function hlthunkDeviceMemoryFree(h: HlthunkHandle, handle: bigint): number {
  return call(() => (ioctl(h, { op: 'FREE', handle }), 0));
}

/** hlthunk_device_memory_map(fd, handle, hint_addr): the device VA, or a negative errno. */
export function hlthunkDeviceMemoryMap(h: HlthunkHandle, handle: bigint, _hintAddr: bigint = 0n): bigint | number {
  return call(() => ioctl(h, { op: 'MAP', handle }).deviceVirtAddr ?? 0n);
}

/** hlthunk_memory_unmap(fd, device_virt_addr). 0 or a negative errno. */
export function hlthunkMemoryUnmap(h: HlthunkHandle, deviceVirtAddr: bigint): number {
  return call(() => (ioctl(h, { op: 'UNMAP', deviceVirtAddr }), 0));
}

/**
 * hlthunk_device_memory_export_dmabuf_fd(fd, addr, size, flags), the Gaudi1 (physical address)
 * variant: the caller's flags are ignored and O_RDWR | O_CLOEXEC is forced; offset is 0.
 * The dma-buf fd, or a negative errno.
 */
export function hlthunkDeviceMemoryExportDmabufFd(h: HlthunkHandle, addr: bigint, size: bigint, _flags = 0): number {
  return call(() => ioctl(h, { op: 'EXPORT_DMABUF_FD', addr, memSize: size, offset: 0n, flags: O_RDWR | O_CLOEXEC }).fd!);
}

/**
 * hlthunk_device_mapped_memory_export_dmabuf_fd(fd, addr, size, offset, flags): -EINVAL unless
 * flags == O_RDWR | O_CLOEXEC, without calling the kernel; else the dma-buf fd or a negative errno.
 */
export function hlthunkDeviceMappedMemoryExportDmabufFd(h: HlthunkHandle, addr: bigint, size: bigint, offset: bigint, flags: number): number {
  if (flags !== (O_RDWR | O_CLOEXEC)) return -EINVAL;
  return call(() => ioctl(h, { op: 'EXPORT_DMABUF_FD', addr, memSize: size, offset, flags }).fd!);
}

function ioctl(h: HlthunkHandle, args: HlMemArgs): HlMemOut {
  return hlIoctlMemory(h.proc, h.fd, args);
}

/**
 * ioctl(fd, HL_IOCTL_MEMORY, &args) as userspace writes it: the call goes through the process's
 * fd table to the device file's ioctl; returns the output side the kernel wrote back into `args`.
 * Throws the SimError the ioctl failed with (EBADF, ENOTTY for another file, the driver's errno).
 */
export function hlIoctlMemory(proc: Process, fd: number, args: HlMemArgs): HlMemOut {
  proc.ioctl(fd, HL_IOCTL_MEMORY, args);
  return args.out!;
}

function call<T>(fn: () => T): T | number {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SimError) return -e.errno;
    throw e;
  }
}
