/**
 * uAPI numbers of the VFS and mm system calls the process layer models (asm-generic/fcntl.h,
 * asm-generic/mman-common.h, uapi/linux/fs.h, uapi/linux/eventpoll.h), with the kernel's values.
 */

/** The kernel's page size. */
export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

/** open(2) flags. */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** mmap(2) prot and flags. */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;

/** lseek(2) whence. */
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

/** poll(2) event bits. */
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;

/** fcntl(2) F_GETFD/F_SETFD and the one fd flag. */
export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
