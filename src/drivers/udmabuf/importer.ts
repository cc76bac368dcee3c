/**
 * The DMA API device of an attachment (attach->dev) for exporters that map system-RAM pages with
 * dma_map_sgtable: a DmaDevice of src/dma-mapping passed straight to dma_buf_attach (e.g.
 * machine.dmaDevice(fn)), or an importer device `{ name, pci, dma }` of src/drivers/device.ts.
 */
import {
  DmaDevice as DmaApiDevice, SimError, errnoName, findParentPciDev,
  type DmaBufAttachment, type ErrnoCode, type Machine, type ScatterList,
} from '../../index.js';
import type { DmaBufImporterDevice } from '../device.js';

/** The DmaDevice mappings for `att` use. EINVAL when the attachment's device has no DMA API face. */
export function attachmentDmaDevice(machine: Machine, att: DmaBufAttachment, op: string): DmaApiDevice {
  const dev = att.dev as DmaBufImporterDevice | DmaApiDevice;
  if (dev instanceof DmaApiDevice) return dev;
  if (dev.dma instanceof DmaApiDevice) return dev.dma;
  const fn = dev.pci ? findParentPciDev(dev.pci) : null;
  if (fn) return machine.dmaDevice(fn);
  throw new SimError('EINVAL', op, `${dev.name} has no DMA device (pass a DmaDevice or an importer device with dma/pci)`);
}

/** dma_map_sgtable, throwing its negative status as the errno (map_dma_buf returns ERR_PTR(ret)). */
export function mapSgtableOrThrow(dev: DmaApiDevice, sgl: ScatterList, dir: number, op: string, rule?: string): void {
  const r = dev.mapSgtable(sgl, dir);
  if (r < 0) throw new SimError(errnoName(r) as ErrnoCode, op, `dma_map_sgtable for ${dev.name} failed (${r})`, rule);
}
