/**
 * The device object an importer passes to DmaBuf.attach / dynamicAttach (attach->dev).
 *
 * src/dma-buf only needs `{ name }`; P2P exporters (habanalabs, amdgpu) need to find the importer's
 * place in the PCI topology (pci_p2pdma_distance(provider, attach->dev)) and its DMA API face
 * (dma_map_resource(attach->dev, ...), dma_get_max_seg_size(attach->dev)). The contract:
 *  - `pci`: the topology device the importer's struct device hangs off: a PciFunction, or a
 *    platform/auxiliary device whose nearest PCI ancestor is used (find_parent_pci_dev). Absent:
 *    not a PCI device at all, so the P2P distance is < 0 (e.g. a SoC device, or a VM without a
 *    whitelisted root complex).
 *  - `dma`: the DMA API device used for mappings. Absent: the machine's DmaDevice of the nearest
 *    PCI function (Machine.dmaDevice), i.e. its default IOMMU domain or direct mapping.
 */
import type { DmaDevice as DmaApiDevice } from '../dma-mapping/index.js';
import type { DmaDevice } from '../dma-buf/index.js';
import type { Machine } from '../machine/machine.js';
import { findParentPciDev, type Device, type PciFunction } from '../pci/index.js';

export interface DmaBufImporterDevice extends DmaDevice {
  readonly name: string;
  readonly pci?: Device;
  readonly dma?: DmaApiDevice;
}

/**
 * The importer device of a topology device (by object, name or BDF; ENODEV when unknown):
 * `{ name, pci }`, with the DMA device of its nearest PCI function unless `dma` is given.
 */
export function importerDevice(machine: Machine, dev: Device | string, dma?: DmaApiDevice): DmaBufImporterDevice {
  const d = typeof dev === 'string' ? machine.topology.get(dev) : dev;
  const fn = findParentPciDev(d);
  return { name: d.name, pci: d, ...(dma ? { dma } : fn ? { dma: machine.dmaDevice(fn) } : {}) };
}

/** The PCI function an importer device resolves to, or null (not a PCI device). */
export function importerPciFunction(dev: DmaDevice): PciFunction | null {
  const pci = (dev as DmaBufImporterDevice).pci;
  return pci ? findParentPciDev(pci) : null;
}
