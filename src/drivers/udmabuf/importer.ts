/**
 * Mapping helpers of the exporters that hand out system-RAM pages with dma_map_sgtable (udmabuf,
 * the system heap). The DMA API device of an attachment is the driver kit's
 * requireImporterDmaDevice.
 */
import { SimError, errnoName, type DmaDevice as DmaApiDevice, type ErrnoCode, type ScatterList } from '../../index.js';

/** dma_map_sgtable, throwing its negative status as the errno (map_dma_buf returns ERR_PTR(ret)). */
export function mapSgtableOrThrow(dev: DmaApiDevice, sgl: ScatterList, dir: number, op: string, rule?: string): void {
  const r = dev.mapSgtable(sgl, dir);
  if (r < 0) throw new SimError(errnoName(r) as ErrnoCode, op, `dma_map_sgtable for ${dev.name} failed (${r})`, rule);
}
