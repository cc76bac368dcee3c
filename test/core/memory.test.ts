/** Physical memory: regions, sparse backing, the page-frame database and its allocator. */
import { describe, expect, it } from 'vitest';
import { createSimulator } from '../../src/index.js';
import { HBM_BASE, RAM_BASE, makeSim, pattern } from '../helpers/sim.js';
import { expectErrno } from './helpers/setup.js';

describe('regions', () => {
  it('refuses overlaps, misalignment, empty and oversize regions, and changes nothing', async () => {
    const sim = await makeSim();
    const before = sim.memory.regions().length;
    expectErrno(() => sim.memory.addRegion({ base: RAM_BASE + 4096n, size: 4096n, kind: 'ram' }), 'EEXIST');
    expectErrno(() => sim.memory.addRegion({ base: 0x1001n, size: 4096n, kind: 'ram' }), 'EINVAL');
    expectErrno(() => sim.memory.addRegion({ base: 0x1000n, size: 0n, kind: 'ram' }), 'EINVAL');
    expectErrno(() => sim.memory.addRegion({ base: 0x1000n, size: 5n << 40n, kind: 'device' }), 'EINVAL');
    expectErrno(() => sim.memory.addRegion({ base: (1n << 64n) - 4096n, size: 8192n, kind: 'device' }), 'EINVAL');
    expectErrno(() => sim.memory.addRegion({ base: 0x1000n, size: 4096n, kind: 'rom' as 'ram' }), 'EINVAL');
    expect(sim.memory.regions().length).toBe(before);
    const r = sim.memory.addRegion({ base: 0x1000n, size: 4096n, kind: 'device', name: 'mmio' });
    expect(r).toMatchObject({ id: before, name: 'mmio', cpuAccessible: false, cacheable: false });
  });

  it('a 96 GiB device region costs only the pages written', async () => {
    const sim = await makeSim();
    const before = sim.memory.arena().chunksUsed;
    // 16 pages scattered over the whole 96 GiB.
    for (let i = 0n; i < 16n; i++) sim.memory.write(HBM_BASE + i * (6n << 30n) + 123n, pattern(100, Number(i)));
    for (let i = 0n; i < 16n; i++) expect(sim.memory.read(HBM_BASE + i * (6n << 30n) + 123n, 100)).toEqual(pattern(100, Number(i)));
    const used = sim.memory.arena().chunksUsed - before;
    // one data chunk per page plus radix nodes (at most 2 per page, far fewer when shared)
    expect(used).toBeGreaterThanOrEqual(16);
    expect(used).toBeLessThanOrEqual(48);
    expect(sim.memory.read(HBM_BASE + (95n << 30n), 8)).toEqual(new Uint8Array(8));
  });

  it('host reads and writes refuse holes before touching anything', async () => {
    const sim = await makeSim();
    const end = RAM_BASE + (1n << 30n);
    expectErrno(() => sim.memory.write(end - 4n, new Uint8Array(8).fill(1)), 'EIO');
    expect(sim.memory.read(end - 4n, 4)).toEqual(new Uint8Array(4)); // the first half was not written
    expectErrno(() => sim.memory.read(end - 4n, 8), 'EIO');
  });
});

describe('page frames', () => {
  it('allocates single pages and aligned contiguous runs; the free count comes back', async () => {
    const sim = await makeSim();
    const start = sim.memory.framesFree();
    expect(start).toBe((1n << 30n) / 4096n);
    const a = sim.memory.allocFrames(1);
    const run = sim.memory.allocFrames(512, 512);
    expect(run % (2n << 20n)).toBe(0n);
    expect(a).toBeGreaterThanOrEqual(RAM_BASE);
    expect(sim.memory.framesFree()).toBe(start - 513n);
    expect(sim.memory.frameInfo(run + 4096n * 7n)).toMatchObject({ refcount: 1, pincount: 0 });
    sim.memory.freeFrames(run, 512);
    sim.memory.freeFrames(a);
    expect(sim.memory.framesFree()).toBe(start);
    expect(sim.memory.frameInfo(a)).toEqual({ refcount: 0, pincount: 0, flags: 0, tableEntries: 0 });
  });

  it('refcount and pin count follow get/put/pin; a pinned frame cannot lose its last reference', async () => {
    const sim = await makeSim();
    const pa = sim.memory.allocFrames(1);
    sim.memory.write(pa, new Uint8Array([1, 2, 3]));
    sim.memory.getPage(pa);
    expect(sim.memory.frameInfo(pa).refcount).toBe(2);
    expect(sim.memory.pinPage(pa)).toBe(1);
    expect(sim.memory.putPage(pa)).toBe(1);
    expectErrno(() => sim.memory.putPage(pa), 'EINVAL'); // pinned, last reference
    expectErrno(() => sim.memory.freeFrames(pa), 'EINVAL');
    expect(sim.memory.pinPage(pa, false)).toBe(0);
    expectErrno(() => sim.memory.pinPage(pa, false), 'EINVAL');
    expect(sim.memory.putPage(pa)).toBe(0);
    // Freed: the contents are dropped, and a new allocation of the frame reads zeros.
    expect(sim.memory.read(pa, 3)).toEqual(new Uint8Array(3));
    expectErrno(() => sim.memory.getPage(pa), 'EINVAL');
  });

  it('runs out with ENOMEM, not a trap, and frees give everything back', async () => {
    const sim = await createSimulator({ arenaBytes: 4 << 20 });
    sim.memory.addRegion({ base: 0x10_0000n, size: 16n << 20n, kind: 'ram' });
    const got: bigint[] = [];
    for (;;) {
      try { got.push(sim.memory.allocFrames(64)); } catch (e) { expect((e as { code: string }).code).toBe('ENOMEM'); break; }
    }
    expect(got.length).toBe(64);
    expectErrno(() => sim.memory.allocFrames(1), 'ENOMEM');
    for (const pa of got) sim.memory.freeFrames(pa, 64);
    expect(sim.memory.framesFree()).toBe(4096n);
    expect(sim.core.trapped).toBe(false);
  });
});
