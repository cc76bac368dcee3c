/**
 * Errors of the whole package. The core returns negative errno values; the TypeScript layers
 * throw `SimError`, shaped like Node's own system errors (`code`, `errno`, plus the operation).
 */

/** Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ESPIPE: 29,
  ERANGE: 34,
  EDEADLK: 35,
  ENOSYS: 38,
  EOVERFLOW: 75,
  EMSGSIZE: 90,
  EBADFD: 77,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  EREMOTEIO: 121,
  ETIMEDOUT: 110,
  EALREADY: 114,
  ERESTARTSYS: 512,
} as const;

/** A symbolic errno name the simulator uses ('EINVAL', 'EPERM', ...): a key of {@link ERRNO}. */
export type ErrnoCode = keyof typeof ERRNO;

const CODE_BY_ERRNO = new Map<number, ErrnoCode>(
  (Object.entries(ERRNO) as [ErrnoCode, number][]).map(([code, n]) => [n, code]),
);

/** The symbolic name of a positive or negative errno value, or `E<n>` when it has none. */
export function errnoName(errno: number): string {
  return CODE_BY_ERRNO.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/**
 * An error with a kernel errno. `code` is the symbolic name ('EINVAL'), `errno` the positive
 * number, `op` the operation that failed, `rule` the spec rule id where one applies (DB-07, ...).
 */
export class SimError extends Error {
  /** The symbolic errno, as Node's system errors have it: 'EINVAL', 'EPERM', ... */
  readonly code: ErrnoCode;
  /** The positive errno number (22 for EINVAL). */
  readonly errno: number;
  /** The operation that failed, usually named after the kernel function ('dma_buf_attach', 'addRegion'). */
  readonly op: string;
  /** The spec rule id the refusal comes from (DB-07, IM-03, ...), when there is one. */
  readonly rule: string | undefined;

  /** The message becomes `<op>: <code>: <message> [<rule>]`. */
  constructor(code: ErrnoCode, op: string, message: string, rule?: string) {
    super(`${op}: ${code}: ${message}${rule ? ` [${rule}]` : ''}`);
    this.name = 'SimError';
    this.code = code;
    this.errno = ERRNO[code];
    this.op = op;
    this.rule = rule;
  }

  /** Builds the error for a negative status returned by the core. */
  static fromStatus(status: number, op: string, message: string, rule?: string): SimError {
    const code = CODE_BY_ERRNO.get(-status);
    if (code === undefined) return new SimError('EIO', op, `core status ${status}: ${message}`, rule);
    return new SimError(code, op, message, rule);
  }
}

/** Thrown when the core traps (a bug, never bad input). The simulator that trapped is unusable. */
export class CoreTrapError extends Error {
  constructor(message: string) {
    super(`dmabuf-sim core trapped (this is a bug; the simulator instance is discarded): ${message}`);
    this.name = 'CoreTrapError';
  }
}
