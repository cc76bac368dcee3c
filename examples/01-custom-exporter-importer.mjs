// Writing your own exporter and importer on the public API.
//
// The exporter: "fpga0", a card whose buffer lives in its BAR (MMIO: no struct pages, no CPU
// mapping handed out). It is a dynamic exporter (pin/unpin), builds its sg_tables with the
// driver kit's P2P helper (the kernel's dma_buf_phys_vec_to_sgt), moves its buffer inside the
// BAR (move_notify) and finally revokes access, as vfio-pci does on a reset.
// The importer: a DMA engine on "nic1", a dynamic importer that can take peer-to-peer memory;
// move_notify drops its mapping, and it re-maps before the next DMA.
import {
  Machine, SimError, DmaDataDirection, dmaBufPhysVecToSgt, dmaBufFreeSgt, importerDevice,
} from 'dmabuf-sim';

const hex = (v) => `0x${v.toString(16)}`;
const BIDI = DmaDataDirection.BIDIRECTIONAL;
const MiB = 1n << 20n;

// A whitelisted Intel root complex; fpga0 and nic0 under one PCIe switch, nic1 on another root port.
const machine = await Machine.create({
  iommu: { family: 'vtd' },
  topology: {
    cpu: { vendor: 'intel', family: 6 },
    hostBridges: [{
      name: 'hb0', hostDevice: { name: 'hb0.host', vendor: '0x8086', device: '0x2020' },
      rootPorts: [{ name: 'rp0', slot: 1, acs: ['SV', 'RR', 'CR', 'UF'] }, { name: 'rp1', slot: 2, acs: ['SV', 'RR', 'CR', 'UF'] }],
    }],
    switches: [{ name: 'sw0', parent: 'rp0', vendor: '0x1000', device: '0xc010', downstream: [{ name: 'sw0.dp0', acs: ['SV', 'UF'] }, { name: 'sw0.dp1', acs: ['SV', 'UF'] }] }],
    endpoints: [
      { name: 'fpga0', parent: 'sw0.dp0', vendor: '0x10ee', device: '0x9038', bars: [{ index: 0, size: '256M', prefetchable: true }] },
      { name: 'nic0', parent: 'sw0.dp1', vendor: '0x15b3', device: '0x101b', bars: [{ size: '32M', prefetchable: true }] },
      { name: 'nic1', parent: 'rp1', vendor: '0x15b3', device: '0x101d', bars: [{ size: '32M', prefetchable: true }] },
    ],
  },
});

// ---- the exporter ----------------------------------------------------------------------------
class FpgaExporter {
  constructor(machine, name, size) {
    this.machine = machine;
    this.fn = machine.pci(name);
    this.bar = this.fn.bars[0].cpuAddress;  // the BAR's CPU physical address
    this.size = size;
    this.offset = 0n;                       // where in the BAR the buffer lives now
    this.pins = 0;
    this.revoked = false;
  }

  export() {
    const self = this;
    this.dmabuf = this.machine.kernel.export({
      expName: 'fpga-example', size: Number(this.size), flags: 2 /* O_RDWR */, priv: this,
      ops: {
        attach(_buf, att) {
          if (self.revoked) throw new SimError('ENODEV', 'fpga attach', 'the device was reset');
        },
        pin() { self.pins++; },
        unpin() { self.pins--; },
        // Called with the reservation lock held. The kit decides BUS_ADDR / THRU_HOST_BRIDGE /
        // NOT_SUPPORTED for (fpga0, att.dev) and builds bus addresses or IOVAs.
        mapDmaBuf(att, dir) {
          if (self.revoked) throw new SimError('ENODEV', 'fpga map', 'the device was reset');
          if (!att.peer2peer) throw new SimError('EINVAL', 'fpga map', 'BAR memory needs a peer-to-peer capable importer');
          return dmaBufPhysVecToSgt(self.machine, att, self.fn, [{ phys: self.bar + self.offset, length: self.size }], dir);
        },
        unmapDmaBuf(att, sgt, dir) { dmaBufFreeSgt(att, sgt, dir); },
        release() {},
      },
    });
    return this.dmabuf;
  }

  // Moves the buffer to another place in the BAR: copy the bytes, then tell every importer.
  migrate(newOffset) {
    const resv = this.dmabuf.resv;
    resv.lock();
    try {
      if (this.pins > 0) throw new SimError('EBUSY', 'fpga migrate', 'pinned');
      const r = this.machine.sim.dma.copy({ rid: 'phys', addr: this.bar + this.offset }, { rid: 'phys', addr: this.bar + newOffset }, this.size);
      if (!r.ok) throw new Error('migration copy faulted');
      this.offset = newOffset;
      this.dmabuf.moveNotify();
    } finally {
      resv.unlock();
    }
  }

  // Revocation: from now on no new mapping; importers are told to drop theirs.
  revoke() {
    const resv = this.dmabuf.resv;
    resv.lock();
    try {
      this.revoked = true;
      this.dmabuf.moveNotify();
    } finally {
      resv.unlock();
    }
  }
}

// ---- the importer ----------------------------------------------------------------------------
class DmaImporter {
  constructor(machine, name, dmabuf) {
    this.machine = machine;
    this.rid = machine.rid(machine.pci(name));
    this.sgt = null;
    this.invalidations = 0;
    const self = this;
    this.att = dmabuf.dynamicAttach(importerDevice(machine, name), {
      allowPeer2Peer: true,
      // Resv held; must not map here: drop the table, map again on next use.
      moveNotify(att) {
        self.invalidations++;
        if (self.sgt) att.unmap(self.sgt, BIDI);
        self.sgt = null;
      },
    });
  }

  table() {
    if (!this.sgt) {
      const resv = this.att.dmabuf.resv;
      resv.lock();
      try { this.sgt = this.att.map(BIDI); } finally { resv.unlock(); }
    }
    return this.sgt;
  }

  // The device writes `data` at `offset` of the buffer, through the sg_table's DMA addresses.
  write(offset, data) {
    const e = this.table().entries[0];  // one entry: the buffer is contiguous in the BAR
    const r = this.machine.sim.dma.write({ rid: this.rid, addr: e.dmaAddress + BigInt(offset) }, data);
    if (!r.ok) throw new Error(`DMA fault on the ${r.fault.side} side`);
  }
}

// ---- the story -------------------------------------------------------------------------------
const fpga = new FpgaExporter(machine, 'fpga0', MiB);
const buf = fpga.export();
const nic0 = new DmaImporter(machine, 'nic0', buf);  // same switch: bus addresses
const nic1 = new DmaImporter(machine, 'nic1', buf);  // across root ports: IOVAs through the IOMMU
for (const [name, imp] of [['nic0', nic0], ['nic1', nic1]]) {
  const sgt = imp.table();
  console.log(`${name}: ${sgt.mapType} sg_table, ${sgt.entries.length} entry at ${hex(sgt.entries[0].dmaAddress)} (+${hex(sgt.entries[0].length)}), no pages`);
}

const hello = new TextEncoder().encode('written by nic1 through the IOMMU');
nic1.write(0x100, hello);
const inBar = new TextDecoder().decode(machine.sim.memory.read(fpga.bar + 0x100n, hello.length));
console.log(`fpga0 BAR + 0x100: "${inBar}"`);
if (inBar !== 'written by nic1 through the IOMMU') throw new Error('bytes not in the BAR');

// The exporter moves the buffer: both importers are invalidated and map again; the data moved too.
fpga.migrate(16n * MiB);
console.log(`after the move: ${nic0.invalidations} + ${nic1.invalidations} invalidations; nic0 maps again at ${hex(nic0.table().entries[0].dmaAddress)}`);
const moved = new TextDecoder().decode(machine.sim.memory.read(fpga.bar + 16n * MiB + 0x100n, hello.length));
if (moved !== inBar) throw new Error('the move lost the bytes');
nic0.write(0x200, new Uint8Array([1, 2, 3]));
if (machine.sim.memory.read(fpga.bar + 16n * MiB + 0x200n, 3).join() !== '1,2,3') throw new Error('nic0 wrote elsewhere');

// Revocation: the importers drop their tables; a new mapping fails with ENODEV.
fpga.revoke();
try {
  nic1.table();
  throw new Error('mapped a revoked buffer');
} catch (e) {
  if (!(e instanceof SimError) || e.code !== 'ENODEV') throw e;
  console.log(`after revoke: map fails with ${e.code}`);
}
console.log('ok');
