/**
 * A scoped reservation lock for drivers, on the public DmaResv lock/unlock pair: runs `fn` with
 * `resv` held and drops it afterwards, also on a throw. When the lock is already held (the caller
 * is inside a callback the framework runs with resv held, or holds it itself) `fn` runs under
 * that hold, as the framework's own lock takers do.
 */
import type { DmaResv } from '../dma-buf/index.js';

export function withResvLock<T>(resv: DmaResv, fn: () => T): T {
  if (resv.isLocked()) return fn();
  resv.lock();
  try {
    return fn();
  } finally {
    resv.unlock();
  }
}
