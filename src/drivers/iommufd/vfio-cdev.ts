/**
 * The iommufd side of a vfio device cdev (drivers/vfio/device_cdev.c, iommufd.c): the per-open
 * state of /dev/vfio/devices/vfioX and its three iommufd ioctls. A cdev fd grants nothing until
 * VFIO_DEVICE_BIND_IOMMUFD succeeds (every other ioctl is EINVAL before); ATTACH attaches or, when
 * attached, replaces; closing the fd detaches and unbinds. The driver (vfio-pci) owns the file
 * operations and hands every other command to its own ioctl once access is granted.
 */
import { SimError, type Machine, type PciFunction, type Process, type SimFile } from '../../index.js';
import { iommufdCtxFromFd, type IommufdCtx, type IommufdDevice } from './iommufd.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_PASID, type VfioDeviceAttachIommufdPt, type VfioDeviceBindIommufd, type VfioDeviceDetachIommufdPt,
} from './uapi.js';

function argObj<T>(op: string, arg: unknown): T {
  if (typeof arg !== 'object' || arg === null) throw new SimError('EFAULT', op, 'bad argument pointer');
  return arg as T;
}

function flagsOf(op: string, v: unknown, allowed: number): number {
  const f = v ?? 0;
  if (typeof f !== 'number' || !Number.isInteger(f) || (f & ~allowed) !== 0) throw new SimError('EINVAL', op, `flags 0x${Number(f).toString(16)} has unknown bits`);
  return f;
}

/** struct vfio_device_file of a cdev open: the iommufd binding once there is one. */
export class VfioCdevFile {
  /** The iommufd device object while bound (access granted). */
  idev: IommufdDevice | null = null;
  private _ctxFile: SimFile<IommufdCtx> | null = null;

  constructor(readonly machine: Machine, readonly fn: PciFunction) {}

  /** The bound iommufd context, or null. */
  get ictx(): IommufdCtx | null {
    return this.idev?.ctx ?? null;
  }

  /**
   * The cdev's iommufd ioctls. Returns undefined for a command that is the driver's, once bound.
   * @throws {@link index!SimError} EINVAL for any command but BIND before a bind; the errors of each command.
   */
  ioctl(cmd: number, arg: unknown, proc: Process): number | undefined {
    if (cmd === VFIO_DEVICE_BIND_IOMMUFD) return this._bind(argObj('vfio_df_ioctl_bind_iommufd', arg), proc);
    if (!this.idev) throw new SimError('EINVAL', 'vfio_device_fops_unl_ioctl', `${this.fn.name}: the cdev is not bound to an iommufd (VFIO_DEVICE_BIND_IOMMUFD first)`);
    if (cmd === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return this._attach(argObj('vfio_df_ioctl_attach_pt', arg));
    if (cmd === VFIO_DEVICE_DETACH_IOMMUFD_PT) return this._detach(argObj('vfio_df_ioctl_detach_pt', arg));
    return undefined;
  }

  /**
   * VFIO_DEVICE_BIND_IOMMUFD (vfio_df_ioctl_bind_iommufd): EINVAL flags or a negative fd, or the
   * cdev is bound already; EBADF/EBADFD the fd is not an iommufd; then iommufd_device_bind's errors.
   * Writes out_devid.
   */
  private _bind(arg: VfioDeviceBindIommufd, proc: Process): number {
    const op = 'vfio_df_ioctl_bind_iommufd';
    flagsOf(op, arg.flags, 0);
    if (!Number.isInteger(arg.iommufd) || arg.iommufd < 0) throw new SimError('EINVAL', op, 'iommufd must be an fd');
    if (this.idev) throw new SimError('EINVAL', op, `${this.fn.name} is bound already`);
    const ctx = iommufdCtxFromFd(proc, arg.iommufd, op);
    const idev = ctx.bindDevice(this.fn);
    // The binding holds the iommufd file (iommufd_ctx_get) until unbind.
    this._ctxFile = ctx.file!.get('kernel');
    this.idev = idev;
    arg.outDevid = idev.id;
    return 0;
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT (vfio_df_ioctl_attach_pt, vfio_iommufd_physical_attach_ioas):
   * EINVAL unknown flags; attach when not attached, replace when attached (errors as
   * IommufdCtx.attachDevice). Writes back pt_id with the HWPT attached.
   */
  private _attach(arg: VfioDeviceAttachIommufdPt): number {
    const op = 'vfio_df_ioctl_attach_pt';
    const flags = flagsOf(op, arg.flags, VFIO_DEVICE_ATTACH_PASID);
    if (typeof arg.ptId !== 'number') throw new SimError('EINVAL', op, 'pt_id must be a number');
    const idev = this.idev!;
    if ((flags & VFIO_DEVICE_ATTACH_PASID) !== 0) {
      arg.ptId = idev.ctx.attachPasid(idev, arg.pasid, arg.ptId);
      return 0;
    }
    arg.ptId = idev.ctx.attachDevice(idev, arg.ptId, { replace: idev.hwpt !== null });
    return 0;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT (vfio_df_ioctl_detach_pt): EINVAL unknown flags; blocked DMA after. */
  private _detach(arg: VfioDeviceDetachIommufdPt): number {
    const op = 'vfio_df_ioctl_detach_pt';
    const flags = flagsOf(op, arg.flags, VFIO_DEVICE_DETACH_PASID);
    const idev = this.idev!;
    if ((flags & VFIO_DEVICE_DETACH_PASID) !== 0) idev.ctx.detachPasid(idev, arg.pasid);
    else idev.ctx.detachDevice(idev);
    return 0;
  }

  /** The cdev's release (vfio_df_unbind_iommufd): detach, unbind, drop the iommufd file. */
  release(): void {
    if (!this.idev) return;
    this.idev.ctx.unbindDevice(this.idev);
    this.idev = null;
    const f = this._ctxFile!;
    this._ctxFile = null;
    f.put('kernel');
  }
}
