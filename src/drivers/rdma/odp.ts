/**
 * On-demand paging of dma-buf MRs (drivers/infiniband/hw/mlx5/odp.c: pagefault_dmabuf_mr, and
 * mr.c: mlx5_ib_dmabuf_invalidate_cb), IM-06: move_notify zaps the MR's translation and unmaps;
 * the next access page-faults, re-maps under the resv lock and rewrites the translation as one
 * range of segments (the umem's own list, not a copy).
 */
import { SimError, type DmaBufAttachment } from '../../index.js';
import type { RdmaDevice } from './device.js';
import type { IbvMr } from './mr.js';
import { UmemDmabuf } from './umem-dmabuf.js';

/**
 * mlx5 pagefault_dmabuf_mr: under resv, map_pages, check the page size, point the MTT at the
 * umem's segments. Returns an error text or null; with `initial` (at registration) it throws.
 */
export function odpPageFault(mr: IbvMr, initial = false): string | null {
  const umem = mr._umem;
  const dev = mr.device;
  if (!umem || dev.kind !== 'odp') return `MR 0x${mr.lkey.toString(16)} has no translation`;
  const resv = umem.dmabuf.resv;
  if (!initial) {
    mr.pageFaults++;
    dev.stats.pageFaults++;
    dev.emit('page_fault', { offset: umem.address, length: umem.length }, { lkey: mr.lkey });
  }
  try {
    resv.lock();
  } catch (e) {
    return `page fault: ${(e as Error).message}`;
  }
  try {
    umem.mapPages();
    const segs = umem.segmentList;
    if (segs.count === 0 || !segs.pageAligned()) {
      umem.unmapPages();
      throw new SimError('EINVAL', 'pagefault_dmabuf_mr', 'no page size fits the mapping', 'IM-06');
    }
    mr._mtt = segs;
    mr._base = umem.firstByteOffset;
  } catch (e) {
    if (initial) throw e;
    return `page fault: ${(e as Error).message}`;
  } finally {
    resv.unlock();
  }
  if (!initial) {
    dev.stats.remaps++;
    dev.emit('remap', { segments: mr._mtt.count, first: mr._mtt.dmaAddress(0) }, { lkey: mr.lkey });
  }
  return null;
}

/** mlx5_ib_dmabuf_invalidate_cb (IM-06): resv must be held; if mapped, zap the MTT and unmap. */
export function odpInvalidate(dev: RdmaDevice, att: DmaBufAttachment): void {
  const umem = UmemDmabuf.of(att);
  att.dmabuf.resv.assertHeld('mlx5_ib_dmabuf_invalidate_cb', 'DB-16', att.ids);
  const mr = umem?.private as IbvMr | undefined;
  if (!umem || !mr || !umem.mapped) return;
  mr._mtt = null;
  umem.unmapPages();
  mr.invalidations++;
  dev.stats.invalidations++;
  dev.emit('invalidate', { generation: att.dmabuf.moveGeneration }, { lkey: mr.lkey });
}
