/**
 * uAPI numbers of udmabuf (include/uapi/linux/udmabuf.h) and of the memfd/sealing calls it
 * depends on (include/uapi/linux/memfd.h, include/uapi/linux/fcntl.h), with the kernel's values.
 */

// _IOC encoding of asm-generic/ioctl.h: dir(2) | size(14) | type(8) | nr(8).
function ioc(dir: number, type: string, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}
const IOC_WRITE = 1;

/** struct udmabuf_create { __u32 memfd; __u32 flags; __u64 offset; __u64 size; } */
export const UDMABUF_CREATE_SIZE = 24;
/** struct udmabuf_create_list { __u32 flags; __u32 count; struct udmabuf_create_item list[]; } */
export const UDMABUF_CREATE_LIST_SIZE = 8;
/** struct udmabuf_create_item { __u32 memfd; __u32 __pad; __u64 offset; __u64 size; } */
export const UDMABUF_CREATE_ITEM_SIZE = 24;

/** _IOW('u', 0x42, struct udmabuf_create) */
export const UDMABUF_CREATE = ioc(IOC_WRITE, 'u', 0x42, UDMABUF_CREATE_SIZE);
/** _IOW('u', 0x43, struct udmabuf_create_list) */
export const UDMABUF_CREATE_LIST = ioc(IOC_WRITE, 'u', 0x43, UDMABUF_CREATE_LIST_SIZE);

export const UDMABUF_FLAGS_CLOEXEC = 0x01;

/** Module parameters and their defaults. */
export const UDMABUF_DEFAULT_LIST_LIMIT = 1024;
export const UDMABUF_DEFAULT_SIZE_LIMIT_MB = 64;

/** struct udmabuf_create. Offsets and sizes are __u64: bigint or a safe integer. */
export interface UdmabufCreate {
  memfd: number;
  flags: number;
  offset: bigint | number;
  size: bigint | number;
}

/** struct udmabuf_create_item. */
export interface UdmabufCreateItem {
  memfd: number;
  offset: bigint | number;
  size: bigint | number;
}

/**
 * struct udmabuf_create_list. `list` stands for the items that follow the header in user memory:
 * fewer than `count` readable items is a fault (EFAULT), as memdup_user would give.
 */
export interface UdmabufCreateList {
  flags: number;
  count: number;
  list: readonly UdmabufCreateItem[];
}

// memfd_create(2) flags (include/uapi/linux/memfd.h).
export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
export const MFD_HUGETLB = 0x0004;
export const MFD_NOEXEC_SEAL = 0x0008;
export const MFD_EXEC = 0x0010;
/** The name's limit: NAME_MAX minus the "memfd:" prefix. */
export const MFD_NAME_MAX_LEN = 249;

// fcntl(2) sealing (include/uapi/linux/fcntl.h).
export const F_ADD_SEALS = 1033;
export const F_GET_SEALS = 1034;
export const F_SEAL_SEAL = 0x0001;
export const F_SEAL_SHRINK = 0x0002;
export const F_SEAL_GROW = 0x0004;
export const F_SEAL_WRITE = 0x0008;
export const F_SEAL_FUTURE_WRITE = 0x0010;
export const F_SEAL_EXEC = 0x0020;
export const F_ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

/** The default huge page size of a MFD_HUGETLB memfd (x86-64 2 MiB). */
export const HPAGE_SIZE = 2 * 1024 * 1024;
