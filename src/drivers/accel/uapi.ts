/**
 * The habanalabs memory uAPI (include/uapi/drm/habanalabs_accel.h): HL_IOCTL_MEMORY and
 * union hl_mem_args, as TypeScript objects. Numbers are the kernel's.
 */

/** HL_IOCTL_MEMORY's number among the driver's commands (DRM_COMMAND_BASE + 0x04). */
export const HL_IOCTL_MEMORY_NR = 0x04;
/** sizeof(union hl_mem_args): struct hl_mem_in (a 24-byte union, op, flags, ctx_id, num_of_elements). */
export const HL_MEM_ARGS_SIZE = 40;
/**
 * DRM_IOCTL_HL_MEMORY: DRM_IOWR(DRM_COMMAND_BASE + HL_IOCTL_MEMORY, union hl_mem_args), the
 * command of Process.ioctl on a compute-device fd.
 */
export const HL_IOCTL_MEMORY = (((1 | 2) << 30) | (HL_MEM_ARGS_SIZE << 16) | (0x64 /* 'd' */ << 8) | (0x40 + HL_IOCTL_MEMORY_NR)) >>> 0;

/** in.op values. MAP_BLOCK (4) and TS_ALLOC (6) are not modelled: they fail as unknown ops. */
export const HL_MEM_OP_ALLOC = 0;
/** HL_MEM_OP_FREE: release an ALLOC handle (in.free.handle). */
export const HL_MEM_OP_FREE = 1;
/** HL_MEM_OP_MAP: map device memory (a handle) or host memory (HL_MEM_USERPTR) into the device VA space. */
export const HL_MEM_OP_MAP = 2;
/** HL_MEM_OP_UNMAP: unmap a device VA that MAP returned. */
export const HL_MEM_OP_UNMAP = 3;
/** HL_MEM_OP_EXPORT_DMABUF_FD: export device memory as a dma-buf fd (out.fd). */
export const HL_MEM_OP_EXPORT_DMABUF_FD = 5;

/** in.flags bits of ALLOC and MAP. For EXPORT_DMABUF_FD, in.flags are dma-buf file/fd flags. */
export const HL_MEM_CONTIGUOUS = 0x1;
/** HL_MEM_SHARED (ALLOC): memory shared between contexts; the model has one context and ignores it. */
export const HL_MEM_SHARED = 0x2;
/** HL_MEM_USERPTR: MAP maps host memory at in.map_host.host_virt_addr instead of a device handle. */
export const HL_MEM_USERPTR = 0x4;

/** The names of the modelled in.op values, as {@link HlMemArgs}.op accepts them. */
export type HlMemOpName = 'ALLOC' | 'FREE' | 'MAP' | 'UNMAP' | 'EXPORT_DMABUF_FD';

/** in.op value of each {@link HlMemOpName}. */
export const HL_MEM_OPS: Readonly<Record<HlMemOpName, number>> = {
  ALLOC: HL_MEM_OP_ALLOC,
  FREE: HL_MEM_OP_FREE,
  MAP: HL_MEM_OP_MAP,
  UNMAP: HL_MEM_OP_UNMAP,
  EXPORT_DMABUF_FD: HL_MEM_OP_EXPORT_DMABUF_FD,
};

/**
 * union hl_mem_args, input side. Which fields count depends on `op`:
 *  - ALLOC: memSize, flags (HL_MEM_CONTIGUOUS).
 *  - FREE: handle.
 *  - MAP: handle (device memory), or flags HL_MEM_USERPTR with hostVirtAddr + memSize.
 *  - UNMAP: deviceVirtAddr.
 *  - EXPORT_DMABUF_FD: final form {addr, memSize, offset}; 5.15 form {handle, memSize} (the same
 *    union slot: `handle` is read when `addr` is absent). flags = dma-buf file/fd flags, passed on
 *    unvalidated (HL-08).
 */
export interface HlMemArgs {
  op: HlMemOpName | number;
  flags?: number;
  memSize?: bigint | number;
  handle?: bigint | number;
  hostVirtAddr?: bigint | number;
  deviceVirtAddr?: bigint | number;
  addr?: bigint | number;
  offset?: bigint | number;
  /** The output side, written by the ioctl on success (the kernel copies the union back). */
  out?: HlMemOut;
}

/** union hl_mem_args, output side (what the ioctl writes back). */
export interface HlMemOut {
  /** ALLOC: the memory handle (0 on a device without DRAM virtual memory). */
  handle?: bigint;
  /** MAP: the device virtual address (no-MMU mode: the physical DRAM address). */
  deviceVirtAddr?: bigint;
  /** EXPORT_DMABUF_FD: the new dma-buf fd. */
  fd?: number;
}
