/** vfio-pci as a dma-buf exporter of BAR ranges, with revocation (IM-12, IM-13). */
export * from './vfio-pci.js';
