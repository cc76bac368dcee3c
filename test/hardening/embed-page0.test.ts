/** EMBED-PAGE0: a direct region at host offset 0 shares page 0 with the host like every other page. */
import { describe, expect, it } from 'vitest';
import { createEmbeddedSimulator, Prot } from '../../src/embed-entry.js';

describe('embed: direct region backed from linear address 0', () => {
  for (const shared of [false, true]) {
    it(`host and DMA see the same page 0 (${shared ? 'shared' : 'plain'} memory)`, async () => {
      const memory = new WebAssembly.Memory(shared ? { initial: 64, maximum: 256, shared: true } : { initial: 64 });
      const sim = await createEmbeddedSimulator({ memory, base: 1 << 20, bytes: 3 << 20 });
      const PA = 0x8000_0000n;
      // Page tables come from RAM frames: give them their own region, so the direct one holds only data.
      sim.memory.addRegion({ base: 0x1000_0000n, size: 0x10_0000n, kind: 'ram' });
      sim.memory.addRegion({ base: PA, size: 0x4000n, kind: 'ram', linear: 0 });
      const host = () => new Uint8Array(memory.buffer);
      // The host's bytes in page 0 are what the emulator reads, through every path.
      host().set([1, 2, 3, 4], 0);
      host().set([9, 8], 4096);
      expect([...sim.memory.read(PA, 4)]).toEqual([1, 2, 3, 4]);
      expect([...sim.memory.read(PA + 4096n, 2)]).toEqual([9, 8]);
      expect([...sim.dma.read({ rid: 'phys', addr: PA }, 4).data]).toEqual([1, 2, 3, 4]);
      // Writes land in the host's page 0, not in an arena chunk.
      const used = sim.memory.arena().chunksUsed;
      sim.memory.write(PA + 16n, new Uint8Array([0xaa, 0xbb]));
      expect([...host().subarray(16, 18)]).toEqual([0xaa, 0xbb]);
      sim.dma.fill({ rid: 'phys', addr: PA + 32n }, 0x5c, 8n);
      expect([...host().subarray(32, 40)]).toEqual(new Array(8).fill(0x5c));
      expect(sim.memory.arena().chunksUsed).toBe(used);
      // Device DMA through an IOMMU mapping, page 0 to page 2 and back across pages.
      const unit = sim.iommu.createUnit({ family: 'vtd' });
      const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss' });
      dom.map(0x10_0000n, PA, 0x4000n, Prot.RW);
      sim.iommu.attach(0x100, dom);
      const r = sim.dma.copy({ rid: 0x100, addr: 0x10_0000n }, { rid: 0x100, addr: 0x10_2000n }, 0x2000n);
      expect(r.ok).toBe(true);
      expect([...host().subarray(0x2000, 0x2004)]).toEqual([1, 2, 3, 4]);
      expect([...host().subarray(0x3000, 0x3002)]).toEqual([9, 8]);
      host().set([7, 7, 7], 0x2000);
      expect(sim.dma.copy({ rid: 0x100, addr: 0x10_2000n }, { rid: 0x100, addr: 0x10_0000n }, 3n).ok).toBe(true);
      expect([...host().subarray(0, 4)]).toEqual([7, 7, 7, 4]);
      // A frame of page 0 freed is zeroed in place (the host's page), and reads back zeros.
      let pa = sim.memory.allocFrames(1);
      for (let i = 0; i < 300 && pa !== PA; i++) pa = sim.memory.allocFrames(1);
      expect(pa).toBe(PA);
      sim.memory.write(pa, new Uint8Array([5]));
      expect(host()[0]).toBe(5);
      sim.memory.freeFrames(pa);
      expect(host()[0]).toBe(0);
      expect(sim.memory.read(pa, 1)[0]).toBe(0);
    });
  }

  it('page tables in the host page 0: the IOMMU walks them (0 is a real linear address)', async () => {
    const memory = new WebAssembly.Memory({ initial: 64 });
    const sim = await createEmbeddedSimulator({ memory, base: 1 << 20, bytes: 3 << 20 });
    // The only RAM is the host's bytes from 0: the domain's first table frame is host page 0.
    const PA = 0x8000_0000n;
    sim.memory.addRegion({ base: PA, size: 0x8_0000n, kind: 'ram', linear: 0 });
    const dom = sim.iommu.createUnit({ family: 'vtd' }).createDomain({ type: 'paging', format: 'vtd-ss' });
    sim.iommu.attach(0x100, dom);
    dom.map(0x10_0000n, PA + 0x4_0000n, 0x1000n, Prot.RW);
    expect(dom.walk(0x10_0000n).levels[0]!.table).toBe(PA);
    expect(sim.iommu.translate(0x100, 0x10_0010n)).toMatchObject({ ok: true, pa: PA + 0x4_0010n });
    expect(sim.dma.write({ rid: 0x100, addr: 0x10_0010n }, new Uint8Array([4, 2])).ok).toBe(true);
    expect([...new Uint8Array(memory.buffer).subarray(0x4_0010, 0x4_0012)]).toEqual([4, 2]);
  });
});
