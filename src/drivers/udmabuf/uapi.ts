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

/** UDMABUF_FLAGS_CLOEXEC: the new dma-buf fd gets close-on-exec (`flags` of struct udmabuf_create). */
export const UDMABUF_FLAGS_CLOEXEC = 0x01;

/** Module parameter list_limit's default: most items one UDMABUF_CREATE_LIST may carry. */
export const UDMABUF_DEFAULT_LIST_LIMIT = 1024;
/** Module parameter size_limit_mb's default: the largest udmabuf, in MiB. */
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
/** memfd_create flag: the fd gets close-on-exec. */
export const MFD_CLOEXEC = 0x0001;
/** memfd_create flag: seals may be added (without it the file starts with F_SEAL_SEAL). */
export const MFD_ALLOW_SEALING = 0x0002;
/** memfd_create flag: a hugetlbfs file (2 MiB pages), which udmabuf also accepts. */
export const MFD_HUGETLB = 0x0004;
/** memfd_create flag: not executable, and implies MFD_ALLOW_SEALING; excludes MFD_EXEC. */
export const MFD_NOEXEC_SEAL = 0x0008;
/** memfd_create flag: executable; excludes MFD_NOEXEC_SEAL. */
export const MFD_EXEC = 0x0010;
/** The name's limit: NAME_MAX minus the "memfd:" prefix. */
export const MFD_NAME_MAX_LEN = 249;

// fcntl(2) sealing (include/uapi/linux/fcntl.h).
/** fcntl command F_ADD_SEALS (F_LINUX_SPECIFIC_BASE + 9): adds seals to a memfd. */
export const F_ADD_SEALS = 1033;
/** fcntl command F_GET_SEALS (F_LINUX_SPECIFIC_BASE + 10): reads a memfd's seals. */
export const F_GET_SEALS = 1034;
/** Seal: no further seal may be added. */
export const F_SEAL_SEAL = 0x0001;
/** Seal: the file may not shrink; udmabuf requires it. */
export const F_SEAL_SHRINK = 0x0002;
/** Seal: the file may not grow. */
export const F_SEAL_GROW = 0x0004;
/** Seal: no write(2) and no shared writable mapping; udmabuf refuses a memfd carrying it. */
export const F_SEAL_WRITE = 0x0008;
/** Seal: no new write access, existing shared writable mappings stay. */
export const F_SEAL_FUTURE_WRITE = 0x0010;
/** Seal: the exec mode bits may not change. */
export const F_SEAL_EXEC = 0x0020;
/** Every seal bit F_ADD_SEALS knows; other bits are EINVAL. */
export const F_ALL_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;

/** The default huge page size of a MFD_HUGETLB memfd (x86-64 2 MiB). */
export const HPAGE_SIZE = 2 * 1024 * 1024;
