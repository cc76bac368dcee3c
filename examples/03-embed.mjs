// Embedding: a host simulator owns a WebAssembly.Memory and its guest RAM lives in it. It gives
// dmabuf-sim a window of that memory, builds a whole Machine (PCI topology, IOMMU, DMA API,
// DMA-BUF) inside it, and routes a device's DMA through the emulated IOMMU: the bytes land in
// the host's own guest RAM, where its pointer sees them without any copy.
import { Machine, DMA_BIDIRECTIONAL, RAM_HIGH_BASE } from 'dmabuf-sim';
import { createEmbeddedSimulator } from 'dmabuf-sim/embed';

const MiB = 1 << 20;
const hex = (v) => `0x${v.toString(16)}`;
// The host's memory: [0, 16 MiB) its own guest RAM, [16 MiB, 48 MiB) the emulator's window.
const memory = new WebAssembly.Memory({ initial: (48 * MiB) / 65536 });
const GUEST_RAM = 0;
const sim = await createEmbeddedSimulator({ memory, base: 16 * MiB, bytes: 32 * MiB });

// One host bridge, one root port, one NIC; an Intel IOMMU; system RAM = the host's guest RAM.
const machine = await Machine.create({
  simulator: sim,
  ramLinear: GUEST_RAM,
  ramBytes: BigInt(16 * MiB),
  iommu: { family: 'vtd' },
  topology: {
    hostBridges: [{ name: 'hb0', hostDevice: { name: 'hb0.host', vendor: '0x8086', device: '0x2020' }, rootPorts: [{ name: 'rp0', slot: 1 }] }],
    endpoints: [{ name: 'nic0', parent: 'rp0', vendor: '0x15b3', device: '0x101b', driver: 'mlx5_core', bars: [{ size: '1M' }] }],
  },
});

// The driver maps a page of guest RAM for DMA (dma_map_page): an IOVA in the NIC's domain.
const nic = machine.pci('nic0');
const dev = machine.dmaDevice(nic);
const page = RAM_HIGH_BASE + 0x20_0000n; // guest physical: 2 MiB into RAM
const iova = dev.mapPage(page, 4096, DMA_BIDIRECTIONAL);

// The NIC writes a packet through the IOMMU...
const packet = new TextEncoder().encode('hello from the NIC');
const r = machine.sim.dma.write({ rid: machine.rid(nic), addr: iova + 0x10n }, packet);
if (!r.ok) throw new Error(`DMA faulted: ${r.fault.reason} at ${hex(r.fault.iova)}`);

// ...and the host reads it in its own memory, at its own pointer for that guest page.
const hostBytes = new Uint8Array(memory.buffer, GUEST_RAM + 0x20_0000 + 0x10, packet.length);
const seen = new TextDecoder().decode(hostBytes);
console.log(`iova ${iova.toString(16)} -> guest ${page.toString(16)}: host reads "${seen}"`);
if (seen !== 'hello from the NIC') throw new Error('the host does not see the DMA');
dev.unmapPage(iova, 4096, DMA_BIDIRECTIONAL);
console.log('ok');
