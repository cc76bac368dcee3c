/**
 * The GPU's DRM file (drm_file: a render node opened by a process) with its GEM handle table, and
 * the ioctls on it that this driver models (include/uapi/drm/drm.h, amdgpu_drm.h; drm_gem.c,
 * drm_prime.c, amdgpu_gem.c): DRM_IOCTL_AMDGPU_GEM_CREATE, DRM_IOCTL_GEM_CLOSE,
 * DRM_IOCTL_PRIME_HANDLE_TO_FD and DRM_IOCTL_PRIME_FD_TO_HANDLE, reached through Process.ioctl.
 * A handle holds a BO reference until GEM_CLOSE or the file's release.
 */
import {
  O_CLOEXEC, O_RDWR, SimError, dmaBufFd, dmaBufGet, type FileOperations, type Process, type SimFile,
} from '../../index.js';
import type { AmdgpuDevice } from './amdgpu.js';
import type { AmdgpuBo } from './amdgpu_object.js';

// _IOC encoding (asm-generic/ioctl.h) with DRM_IOCTL_BASE 'd'.
const drmIoc = (dir: number, nr: number, size: number): number => ((dir << 30) | (size << 16) | (0x64 << 8) | nr) >>> 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
/** DRM_COMMAND_BASE: the first driver-private ioctl number. */
const DRM_COMMAND_BASE = 0x40;

/** DRM_IOCTL_GEM_CLOSE: DRM_IOW(0x09, struct drm_gem_close). */
export const DRM_IOCTL_GEM_CLOSE = drmIoc(IOC_WRITE, 0x09, 8);
/** DRM_IOCTL_PRIME_HANDLE_TO_FD: DRM_IOWR(0x2d, struct drm_prime_handle). */
export const DRM_IOCTL_PRIME_HANDLE_TO_FD = drmIoc(IOC_WRITE | IOC_READ, 0x2d, 12);
/** DRM_IOCTL_PRIME_FD_TO_HANDLE: DRM_IOWR(0x2e, struct drm_prime_handle). */
export const DRM_IOCTL_PRIME_FD_TO_HANDLE = drmIoc(IOC_WRITE | IOC_READ, 0x2e, 12);
/** DRM_IOCTL_AMDGPU_GEM_CREATE: DRM_IOWR(DRM_COMMAND_BASE + 0x00, union drm_amdgpu_gem_create). */
export const DRM_IOCTL_AMDGPU_GEM_CREATE = drmIoc(IOC_WRITE | IOC_READ, DRM_COMMAND_BASE + 0x00, 32);
/** drm_prime_handle flag: the new fd is close-on-exec (O_CLOEXEC). */
export const DRM_CLOEXEC = O_CLOEXEC;
/** drm_prime_handle flag: the dma-buf file is read-write (O_RDWR). */
export const DRM_RDWR = O_RDWR;

/** union drm_amdgpu_gem_create: in (size, alignment, domains, domain flags), out.handle written back. */
export interface DrmAmdgpuGemCreate {
  boSize: bigint | number;
  /** Accepted and not used (placement is page-granular). @default 0 */
  alignment?: bigint | number;
  /** AMDGPU_GEM_DOMAIN_* bits. */
  domains: number;
  /** AMDGPU_GEM_CREATE_* bits. @default 0 */
  domainFlags?: number;
  /** out: the new GEM handle. */
  handle?: number;
}

/** struct drm_gem_close. */
export interface DrmGemClose {
  handle: number;
}

/** struct drm_prime_handle: HANDLE_TO_FD reads handle and flags and writes fd; FD_TO_HANDLE the reverse. */
export interface DrmPrimeHandle {
  handle?: number;
  flags?: number;
  fd?: number;
}

/** struct drm_file of the GPU: the handle table of one open of its render node. */
export class AmdgpuDrmFile {
  private readonly _handles = new Map<number, AmdgpuBo>();
  private _next = 1;

  constructor(readonly dev: AmdgpuDevice) {}

  /** Live handles, ascending. */
  get handles(): number[] {
    return [...this._handles.keys()].sort((a, b) => a - b);
  }

  /**
   * drm_gem_handle_create: a new handle for `bo`, holding a reference of its own (the caller
   * keeps its reference). The handle of a BO already in the table is returned as it is.
   */
  handleCreate(bo: AmdgpuBo): number {
    for (const [h, b] of this._handles) if (b === bo) return h;
    bo.refs++;
    const h = this._next++;
    this._handles.set(h, bo);
    return h;
  }

  /** drm_gem_object_lookup: the BO behind `handle` (no reference taken). ENOENT when there is none. */
  lookup(handle: number, op = 'drm_gem_object_lookup'): AmdgpuBo {
    const bo = Number.isInteger(handle) ? this._handles.get(handle) : undefined;
    if (!bo) throw new SimError('ENOENT', op, Number.isInteger(handle) ? `no GEM handle ${handle} in this file` : 'the GEM handle is not an integer');
    return bo;
  }

  /** drm_gem_handle_delete: the handle goes with its reference. ENOENT when there is none. */
  handleDelete(handle: number, op = 'drm_gem_handle_delete'): void {
    const bo = this.lookup(handle, op);
    this._handles.delete(handle);
    this.dev.boPut(bo);
  }

  /** drm_gem_release: every handle goes. */
  release(): void {
    for (const h of this.handles) this.handleDelete(h);
  }
}

/** The render node's file operations: the GEM/PRIME ioctls, and release dropping every handle. */
export function amdgpuFops(): FileOperations<AmdgpuDrmFile> {
  return {
    name: 'amdgpu',
    ioctl: (file, cmd, arg, proc) => drmIoctl(file.privateData, proc, cmd, arg),
    release: (file) => file.privateData.release(),
  };
}

/** The AmdgpuDrmFile of `file`, or EINVAL when it is not a render node of `dev`. */
export function drmFileOf(dev: AmdgpuDevice, file: SimFile): AmdgpuDrmFile {
  if (file.fops !== dev.fops) throw new SimError('EINVAL', 'drm_file', `${file.name} is not a DRM file of ${dev.name}`);
  return file.privateData as AmdgpuDrmFile;
}

function drmIoctl(f: AmdgpuDrmFile, proc: Process, cmd: number, arg: unknown): number {
  if (cmd !== DRM_IOCTL_AMDGPU_GEM_CREATE && cmd !== DRM_IOCTL_GEM_CLOSE && cmd !== DRM_IOCTL_PRIME_HANDLE_TO_FD && cmd !== DRM_IOCTL_PRIME_FD_TO_HANDLE) {
    throw new SimError('EINVAL', 'drm_ioctl', `unknown ioctl 0x${(cmd >>> 0).toString(16)}`);
  }
  if (!arg || typeof arg !== 'object') throw new SimError('EFAULT', 'drm_ioctl', 'bad argument pointer');
  switch (cmd) {
    case DRM_IOCTL_AMDGPU_GEM_CREATE: {
      const a = arg as DrmAmdgpuGemCreate;
      const size = typeof a.boSize === 'bigint' ? a.boSize : BigInt(a.boSize);
      if (size <= 0n || size > BigInt(Number.MAX_SAFE_INTEGER)) throw new SimError('EINVAL', 'amdgpu_gem_create_ioctl', `bo_size ${size} is invalid`);
      const bo = f.dev.createBo({ size: Number(size), domain: a.domains, flags: a.domainFlags ?? 0 });
      // The handle takes over the creator's reference (drm_gem_handle_create, then put).
      a.handle = f.handleCreate(bo);
      f.dev.boPut(bo);
      return 0;
    }
    case DRM_IOCTL_GEM_CLOSE:
      f.handleDelete((arg as DrmGemClose).handle, 'drm_gem_close_ioctl');
      return 0;
    case DRM_IOCTL_PRIME_HANDLE_TO_FD: {
      const op = 'drm_prime_handle_to_fd_ioctl';
      const a = arg as DrmPrimeHandle;
      const flags = a.flags ?? 0;
      if (!Number.isInteger(flags)) throw new SimError('EINVAL', op, 'flags must be an integer');
      if ((flags & ~(DRM_CLOEXEC | DRM_RDWR)) !== 0) {
        throw new SimError('EINVAL', op, `flags 0x${Number(flags).toString(16)} other than DRM_CLOEXEC | DRM_RDWR`);
      }
      const bo = f.lookup(a.handle ?? 0, op);
      const buf = f.dev.exportDmabuf(bo, flags & ~DRM_CLOEXEC);
      try {
        a.fd = dmaBufFd(proc, buf, flags);
      } catch (e) {
        buf.put();
        throw e;
      }
      return 0;
    }
    default: {
      const a = arg as DrmPrimeHandle;
      const buf = dmaBufGet(proc, a.fd ?? -1);
      try {
        const bo = f.dev.importDmabuf(buf);
        a.handle = f.handleCreate(bo);
        f.dev.boPut(bo); // the handle holds the BO now
      } finally {
        buf.put();
      }
      return 0;
    }
  }
}
