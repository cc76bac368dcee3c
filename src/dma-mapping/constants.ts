/** Constants of the DMA API (include/linux/dma-mapping.h, dma-direction.h). */
import { ABI } from '../../bindings/core.js';

/** enum dma_data_direction: the device may read and write the buffer. */
export const DMA_BIDIRECTIONAL = 0;
/** The device reads the buffer (memory to device). */
export const DMA_TO_DEVICE = 1;
/** The device writes the buffer (device to memory). */
export const DMA_FROM_DEVICE = 2;
/** No direction: only for debugging in the kernel; every mapping call refuses it with EINVAL. */
export const DMA_NONE = 3;
/** enum dma_data_direction by name: `DmaDirection.TO_DEVICE` is {@link DMA_TO_DEVICE}. */
export const DmaDirection = {
  BIDIRECTIONAL: DMA_BIDIRECTIONAL, TO_DEVICE: DMA_TO_DEVICE, FROM_DEVICE: DMA_FROM_DEVICE, NONE: DMA_NONE,
} as const;
/** One of the enum dma_data_direction values (0..3). */
export type DmaDirection = (typeof DmaDirection)[keyof typeof DmaDirection];

/** The DMA address every failed single mapping returns (~(dma_addr_t)0). */
export const DMA_MAPPING_ERROR = (1n << 64n) - 1n;

/** DMA_BIT_MASK(n). */
export function dmaBitMask(n: number): bigint {
  return n >= 64 ? (1n << 64n) - 1n : (1n << BigInt(n)) - 1n;
}

/** valid_dma_direction. */
export function validDmaDirection(dir: unknown): dir is 0 | 1 | 2 {
  return dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE || dir === DMA_FROM_DEVICE;
}

/**
 * dma_info_to_prot: TO_DEVICE -> READ (the device reads memory), FROM_DEVICE -> WRITE,
 * BIDIRECTIONAL -> READ|WRITE; CACHE for coherent devices; MMIO for resources (and P2P through
 * the host bridge); PRIV for DMA_ATTR_PRIVILEGED. 0 for an invalid direction.
 */
export function dmaInfoToProt(dir: number, coherent: boolean, opts: { mmio?: boolean; privileged?: boolean } = {}): number {
  let prot = coherent ? ABI.PROT_CACHE : 0;
  if (opts.privileged) prot |= ABI.PROT_PRIV;
  if (opts.mmio) prot |= ABI.PROT_MMIO;
  switch (dir) {
    case DMA_BIDIRECTIONAL: return prot | ABI.PROT_READ | ABI.PROT_WRITE;
    case DMA_TO_DEVICE: return prot | ABI.PROT_READ;
    case DMA_FROM_DEVICE: return prot | ABI.PROT_WRITE;
    default: return 0;
  }
}

/** Negative errno values dma_map_sgtable returns (EREMOTEIO: a P2P segment the client cannot reach). */
export const DMA_ENOMEM = -12;
/** -EINVAL from dma_map_sgtable: the IOMMU refused the mapping. */
export const DMA_EINVAL = -22;
/** -EIO from dma_map_sgtable: a segment beyond the DMA mask and no bounce buffer for it. */
export const DMA_EIO = -5;
/** -EREMOTEIO from dma_map_sgtable: a P2P segment the device cannot reach. */
export const DMA_EREMOTEIO = -121;
