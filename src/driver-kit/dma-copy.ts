/**
 * Vectored device-to-device copies for drivers: a transfer between two devices (an RDMA NIC's
 * SGEs and a peer's MR, a GPU's copy between two buffers) is two lists of DMA runs, each run an
 * address range one requester accesses; pairing them gives the descriptors of one vectored copy
 * of the core's DMA engine (DmaEngine.copyv): one core call, both sides translated by their
 * requester's IOMMU domain or switch route, no byte through JavaScript.
 */
import { SimError } from '../../bindings/errors.js';
import type { DmaCopyDescriptor, DmaEngine, DmaVectorResult } from '../dma/dma-engine.js';

/** `length` bytes at `addr` as requester `rid` (a Machine.rid, or 'phys') sees them. */
export interface DmaRun {
  rid: number | 'phys';
  addr: bigint;
  length: bigint;
}

/** Appends a run to `runs`, extending the last one when it continues it (same requester, next address). */
export function pushDmaRun(runs: DmaRun[], rid: DmaRun['rid'], addr: bigint, length: bigint): void {
  if (length === 0n) return;
  const last = runs[runs.length - 1];
  if (last && last.rid === rid && last.addr + last.length === addr) last.length += length;
  else runs.push({ rid, addr, length });
}

/**
 * Copies the bytes of the runs `src` to the runs `dst`, in order, as one vectored copy. Both
 * lists must hold the same number of bytes (EINVAL otherwise, nothing moved). The result is the
 * engine's: bytes done over the whole transfer, and on a fault the side ('src' or 'dst') and the
 * descriptor that stopped it; `descriptors` are the pairs it ran.
 */
export function copyDmaRuns(
  dma: DmaEngine, src: readonly DmaRun[], dst: readonly DmaRun[],
): DmaVectorResult & { descriptors: readonly DmaCopyDescriptor[] } {
  const descs: DmaCopyDescriptor[] = [];
  let i = 0;
  let j = 0;
  let si = 0n;
  let dj = 0n;
  while (i < src.length && j < dst.length) {
    const a = src[i]!;
    const b = dst[j]!;
    const n = a.length - si < b.length - dj ? a.length - si : b.length - dj;
    if (n > 0n) descs.push({ src: { rid: a.rid, addr: a.addr + si }, dst: { rid: b.rid, addr: b.addr + dj }, length: n });
    si += n;
    dj += n;
    if (si >= a.length) { i++; si = 0n; }
    if (dj >= b.length) { j++; dj = 0n; }
  }
  for (; i < src.length; i++, si = 0n) if (src[i]!.length - si > 0n) throw new SimError('EINVAL', 'copyDmaRuns', 'src has more bytes than dst');
  for (; j < dst.length; j++, dj = 0n) if (dst[j]!.length - dj > 0n) throw new SimError('EINVAL', 'copyDmaRuns', 'dst has more bytes than src');
  return { ...dma.copyv(descs), descriptors: descs };
}
