/**
 * uAPI numbers of the VFS and mm system calls the process layer models (asm-generic/fcntl.h,
 * asm-generic/mman-common.h, uapi/linux/fs.h, uapi/linux/eventpoll.h), with the kernel's values.
 */

/** PAGE_SIZE: the kernel's page size in bytes (4 KiB, as on x86-64). */
export const PAGE_SIZE = 4096;
/** PAGE_SHIFT: log2(PAGE_SIZE). */
export const PAGE_SHIFT = 12;

/** O_RDONLY: open(2) access mode, read only. */
export const O_RDONLY = 0;
/** O_WRONLY: open(2) access mode, write only. */
export const O_WRONLY = 1;
/** O_RDWR: open(2) access mode, read and write. */
export const O_RDWR = 2;
/** O_ACCMODE: the mask of the open(2) access mode bits (f_flags & O_ACCMODE). */
export const O_ACCMODE = 3;
/** O_NONBLOCK: open(2) status flag, non-blocking I/O (kept in a dma-buf file's f_flags, DB-03). */
export const O_NONBLOCK = 0o4000;
/** O_CLOEXEC: open(2) flag; the fd gets FD_CLOEXEC (closed on execve). */
export const O_CLOEXEC = 0o2000000;

/** PROT_NONE: mmap(2) prot, no access. */
export const PROT_NONE = 0;
/** PROT_READ: mmap(2) prot, pages may be read. */
export const PROT_READ = 1;
/** PROT_WRITE: mmap(2) prot, pages may be written. */
export const PROT_WRITE = 2;
/** MAP_SHARED: mmap(2) flag, writes reach the file and every other mapping of it. */
export const MAP_SHARED = 1;
/** MAP_PRIVATE: mmap(2) flag, copy-on-write mapping. */
export const MAP_PRIVATE = 2;
/** MAP_FIXED: mmap(2) flag, place the mapping exactly at `addr`, replacing what is there. */
export const MAP_FIXED = 0x10;
/** MAP_ANONYMOUS: mmap(2) flag, memory backed by no file (fd ignored). */
export const MAP_ANONYMOUS = 0x20;
/** MAP_POPULATE: mmap(2) flag, fault every page in at mmap time. */
export const MAP_POPULATE = 0x8000;

/** SEEK_SET: lseek(2) whence, offset from the start. */
export const SEEK_SET = 0;
/** SEEK_CUR: lseek(2) whence, offset from the current position. */
export const SEEK_CUR = 1;
/** SEEK_END: lseek(2) whence, offset from the end (dma_buf_llseek: how userspace learns the size). */
export const SEEK_END = 2;

/** EPOLLIN: poll(2) event, readable (dma_buf_poll: the WRITE-usage fences have signaled). */
export const EPOLLIN = 0x001;
/** EPOLLOUT: poll(2) event, writable (dma_buf_poll: the READ-usage fences, readers and writers, have signaled). */
export const EPOLLOUT = 0x004;
/** EPOLLERR: poll(2) event, error condition. */
export const EPOLLERR = 0x008;

/** F_GETFD: fcntl(2) command, read the fd flags. */
export const F_GETFD = 1;
/** F_SETFD: fcntl(2) command, set the fd flags. */
export const F_SETFD = 2;
/** FD_CLOEXEC: the one fd flag, close on execve. */
export const FD_CLOEXEC = 1;
