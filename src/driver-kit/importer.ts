/**
 * The importer device of an attachment (attach->dev): building one from a topology device, and
 * finding its PCI function and its DMA API device, as exporters need for the P2PDMA decision and
 * for mappings.
 */
import { SimError } from '../../bindings/errors.js';
import type { ImporterDevice } from '../dma-buf/ops.js';
import { DmaDevice as DmaApiDevice } from '../dma-mapping/index.js';
import { findParentPciDev, PciFunction, type Device, type P2pdma, type Topology } from '../pci/index.js';

/**
 * What the kit needs from a machine: the topology, the kernel's P2PDMA decisions and the DMA API
 * device of a PCI function. src/machine's Machine is one (the kit sits below it, so it names the
 * shape, not the class).
 */
export interface KitHost {
  /** The machine's PCI topology. */
  readonly topology: Topology;
  /** The kernel's P2PDMA decisions (pci_p2pdma_map_type, bus addresses). */
  readonly p2pdma: P2pdma;
  /** The DMA API device (struct device's DMA ops, IOMMU domain) of a PCI function. */
  dmaDevice(fn: PciFunction): DmaApiDevice;
}

/**
 * The importer device of a topology device (by object, name or BDF; ENODEV when unknown):
 * `{ name, pci }`, with the DMA device of its nearest PCI function unless `dma` is given.
 * @throws {@link SimError} ENODEV when a device named by `dev` is not in the topology.
 */
export function importerDevice(host: KitHost, dev: Device | string, dma?: DmaApiDevice): ImporterDevice {
  const d = typeof dev === 'string' ? host.topology.get(dev) : dev;
  const fn = findParentPciDev(d);
  return { name: d.name, pci: d, ...(dma ? { dma } : fn ? { dma: host.dmaDevice(fn) } : {}) };
}

/**
 * The PCI function an importer device resolves to (find_parent_pci_dev of `pci`, or the P2P
 * client of a DMA API device passed as attach->dev), or null: not a PCI device.
 */
export function importerPciFunction(dev: ImporterDevice): PciFunction | null {
  if (dev.pci) return findParentPciDev(dev.pci);
  if (dev instanceof DmaApiDevice && dev.p2pClient instanceof PciFunction) return dev.p2pClient;
  return null;
}

/**
 * dma_buf_sgt_dma_device: the DMA API device mappings for `dev` are made on: `dma`, a DMA API
 * device passed as attach->dev itself, or the host's DMA device of its PCI function; null when it
 * has none.
 */
export function importerDmaDevice(host: KitHost, dev: ImporterDevice): DmaApiDevice | null {
  checkImporterHost(host, dev);
  if (dev instanceof DmaApiDevice) return dev;
  if (dev.dma) return dev.dma;
  const fn = importerPciFunction(dev);
  return fn ? host.dmaDevice(fn) : null;
}

/**
 * An importer of another machine (its device or P2P client is not in `host`'s topology) cannot
 * have this host's memory mapped for it: two machines never see each other. Exporters call it in
 * their attach op, before a pin can move anything; the kit's mapping helpers call it again.
 * @throws {@link SimError} EINVAL naming the importer.
 */
export function checkImporterHost(host: KitHost, dev: ImporterDevice, op = 'dma_buf_map_attachment', rule?: string): void {
  const d = dev instanceof DmaApiDevice ? dev.p2pClient : dev?.pci;
  if (d && typeof d === 'object' && 'name' in d && host.topology.find((d as Device).name) !== d) {
    throw new SimError('EINVAL', op, `importer ${String((d as Device).name).slice(0, 40)} belongs to another machine`, rule);
  }
}

/**
 * {@link importerDmaDevice}, failing when there is none.
 * @throws {@link SimError} EINVAL (named by `op`, carrying `rule`) when the importer has no DMA API device.
 */
export function requireImporterDmaDevice(host: KitHost, dev: ImporterDevice, op: string, rule?: string): DmaApiDevice {
  const d = importerDmaDevice(host, dev);
  if (!d) throw new SimError('EINVAL', op, `${dev.name} has no DMA device (pass an importer device with dma or pci)`, rule);
  return d;
}
