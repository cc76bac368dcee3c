/**
 * A map that runs out of arena changes nothing: no mapping, no table frame, and no arena chunk
 * left in use, including the radix nodes that backing its new tables made (mem/phys keeps radix
 * nodes for good once made, except for a failing map, which gives back the ones it made).
 */
import { describe, expect, it } from 'vitest';
import { createSimulator, Prot, SimError } from '../../src/index.js';

const MiB = 1 << 20;
const RAM = 0x8000_0000n;
const RID = 0x0300;

/** A machine whose arena has exactly `spare` chunks left, with the frame allocator at a fresh 4 MiB block. */
async function tight(spare: number) {
  const sim = await createSimulator({ arenaBytes: 2 * MiB });
  sim.memory.addRegion({ base: RAM, size: 1n << 30n, kind: 'ram' });
  const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: 16, tlbWays: 2 });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  dom.map(0x1000n, RAM + (512n << 20n), 4096n, Prot.RW);
  // `spare` written frames near the tables, freed at the end: their chunks are the spare ones.
  const spareFrames: bigint[] = [];
  for (let i = 0; i < spare; i++) {
    spareFrames.push(sim.memory.allocFrames(1));
    sim.memory.write(spareFrames[i]!, new Uint8Array([1]));
  }
  // Push the next-fit frame allocator into a 4 MiB block no page of which was ever written
  // (frames allocated but not written take no chunk): new tables then need new radix nodes.
  sim.memory.allocFrames(2048);
  // Fill the arena with the backing of pages far away.
  for (let p = RAM + (256n << 20n); sim.memory.arena().chunksUsed < sim.memory.arena().chunksTotal; p += 4096n) {
    sim.memory.write(p, new Uint8Array([1]));
  }
  for (const pa of spareFrames) sim.memory.freeFrames(pa, 1);
  expect(sim.memory.arena().chunksTotal - sim.memory.arena().chunksUsed).toBe(spare);
  return { sim, unit, dom };
}

describe('a map that runs out of arena leaves it as it was', () => {
  it('no chunk, frame or mapping left behind, whatever the point of failure', async () => {
    let failures = 0;
    for (let spare = 0; spare <= 8; spare++) {
      const { sim, dom } = await tight(spare);
      const before = { chunks: sim.memory.arena().chunksUsed, frames: sim.memory.framesFree(), tables: dom.tableFrames, mapped: dom.mappedBytes };
      // A new 1 GiB slot of IOVA: three new tables below the root.
      const iova = 0x7f_c000_0000n;
      let err: unknown = null;
      try { dom.map(iova, RAM + (600n << 20n), 4096n, Prot.RW); } catch (e) { err = e; }
      if (err === null) {
        expect(dom.mappedBytes).toBe(before.mapped + 4096n);
        continue;
      }
      failures++;
      expect(err).toBeInstanceOf(SimError);
      expect((err as SimError).code).toBe('ENOMEM');
      expect(sim.memory.arena().chunksUsed).toBe(before.chunks);
      expect(sim.memory.framesFree()).toBe(before.frames);
      expect(dom.tableFrames).toBe(before.tables);
      expect(dom.mappedBytes).toBe(before.mapped);
      expect(sim.iommu.translate(RID, iova, 'read').ok).toBe(false);
      expect(sim.core.trapped).toBe(false);
    }
    // The sweep met the failure at more than one point (tables, their backing, radix nodes).
    expect(failures).toBeGreaterThan(1);
  });
});
