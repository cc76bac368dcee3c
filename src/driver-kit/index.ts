/**
 * The driver kit: what every reference driver stands on, between the machine and the drivers.
 *  - gen-pool: one range allocator (lib/genalloc.c) for device VAs, VRAM/DRAM pages and device
 *    memory beyond the BARs, and P2PDMA memory;
 *  - importer: the importer device of an attachment (attach->dev), its PCI function and its DMA
 *    API device;
 *  - p2p-mapping: the P2P exporter mapping helper (drivers/dma-buf/dma-buf-mapping.c).
 */
export * from './gen-pool.js';
export * from './importer.js';
export * from './p2p-mapping.js';
