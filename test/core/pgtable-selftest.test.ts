/**
 * The Linux io-pgtable self-test procedure (io-pgtable-arm.c arm_lpae_run_tests), for both formats,
 * every 4K-granule page size and every IAS, with Linux >= 6.13 unmap semantics (a partial unmap
 * of a block removes the whole block and returns its size). Plus the argument checks and the
 * page-size choice of the map path, and the freeing of tables left empty.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type IommuDomain, type PgtableFormat, type Simulator } from '../../src/index.js';
import { HBM_BASE, RAM_BASE } from '../helpers/sim.js';
import { G1, K4, M2, P } from './helpers/pte.js';
import { expectErrno, hex, rig, RID } from './helpers/setup.js';

const SIZES = [K4, M2, G1];
const CONFIGS: [PgtableFormat, number][] = [
  ['vtd-ss', 39], ['vtd-ss', 48],
  ...[32, 36, 39, 40, 42, 44, 48].map((ias): [PgtableFormat, number] => ['arm-lpae-s1', ias]),
];
/** Output address for the n-th page: the iova itself (Linux's choice) or inside the device region. */
const PA_MODES: [string, (iova: bigint) => bigint][] = [['pa = iova', (i) => i], ['pa in device memory', (i) => HBM_BASE + i]];

/** Everything a failed operation must leave unchanged. */
function snapshot(sim: Simulator, dom: IommuDomain, iovas: bigint[]): unknown {
  return {
    free: sim.memory.framesFree(), tables: dom.tableFrames, mapped: dom.mappedBytes,
    walks: iovas.map((i) => { const w = dom.walk(i); return [w.ok, w.pa, w.pageSize, w.levels.map((l) => l.entry)]; }),
  };
}

function expectUnmapped(dom: IommuDomain, iova: bigint): void {
  const w = dom.walk(iova);
  expect(w.ok, `walk ${hex(iova)} should fail`).toBe(false);
  expect(w.reason).toBe('translation');
}

function expectMapped(dom: IommuDomain, iova: bigint, pa: bigint, size: bigint): void {
  const w = dom.walk(iova);
  expect(w.ok, `walk ${hex(iova)}`).toBe(true);
  expect(w.pa).toBe(pa);
  expect(w.pageSize).toBe(size);
}

describe.each(CONFIGS)('%s ias %i: io-pgtable self-test', (format, ias) => {
  it.each(PA_MODES)('%s', async (_name, paOf) => {
    const { sim, dom } = await rig(format, { ias, oas: 48 });
    const free0 = sim.memory.framesFree();
    expect(dom.tableFrames).toBe(1);

    // An empty table translates nothing.
    for (const iova of [42n, G1 + 42n, 2n * G1 + 42n]) {
      expectUnmapped(dom, iova);
      expect(sim.iommu.translate(RID, iova)).toMatchObject({ ok: false, reason: 'translation', code: 'EFAULT' });
    }

    // Map one page of each size at n GiB; an overlapping map fails with EEXIST and changes nothing.
    let iova = 0n;
    for (const size of SIZES) {
      dom.map(iova, paOf(iova), size, P.READ | P.WRITE | P.NOEXEC | P.CACHE);
      const before = snapshot(sim, dom, [iova, iova + size - K4]);
      expectErrno(() => dom.map(iova, paOf(iova) + size, size, P.READ | P.NOEXEC), 'EEXIST');
      if (size > K4) expectErrno(() => dom.map(iova + size - K4, paOf(iova), K4, P.READ), 'EEXIST');
      expect(snapshot(sim, dom, [iova, iova + size - K4])).toEqual(before);
      expectMapped(dom, iova + 42n, paOf(iova) + 42n, size);
      expect(sim.iommu.translate(RID, iova + 42n, 'rw')).toMatchObject({ ok: true, pa: paOf(iova) + 42n, pageSize: size });
      iova += G1;
    }
    expect(dom.mappedBytes).toBe(K4 + M2 + G1);

    // Partial unmap: 4K inside the 2M (at 1G) and inside the 1G (at 2G) leaf removes the whole leaf.
    const framesBefore = dom.tableFrames;
    expect(dom.unmap(G1 + K4, K4)).toBe(M2);
    expectUnmapped(dom, G1);
    expectUnmapped(dom, G1 + M2 - K4);
    expect(dom.unmap(2n * G1 + 5n * M2, K4)).toBe(G1);
    expectUnmapped(dom, 2n * G1);
    expectUnmapped(dom, 3n * G1 - K4);
    expect(dom.tableFrames).toBe(framesBefore - 1); // the table that held only the 2M leaf is freed
    // Remap of the partial unmap (Linux: map SZ_1G + size -> size, READ).
    dom.map(G1 + K4, paOf(K4), K4, P.READ);
    expectMapped(dom, G1 + K4 + 42n, paOf(K4) + 42n, K4);
    expect(dom.unmap(G1 + K4, K4)).toBe(K4);
    // Remap the whole leaves.
    dom.map(G1, paOf(G1), M2, Prot.RW);
    dom.map(2n * G1, paOf(2n * G1), G1, Prot.RW);

    // Full unmap returns each size and the walks then fail; remap again.
    iova = 0n;
    for (const size of SIZES) {
      expect(dom.unmap(iova, size)).toBe(size);
      expectUnmapped(dom, iova + 42n);
      dom.map(iova, paOf(iova), size, P.WRITE);
      expectMapped(dom, iova + 42n, paOf(iova) + 42n, size);
      iova += G1;
    }
    // Tear down: every table but the root is freed, every frame is back.
    iova = 0n;
    for (const size of SIZES) {
      expect(dom.unmap(iova, size)).toBe(size);
      iova += G1;
    }
    expect(dom.mappedBytes).toBe(0n);
    expect(dom.tableFrames).toBe(1);
    expect(sim.memory.framesFree()).toBe(free0);
  });
});

describe.each([['vtd-ss', 39], ['vtd-ss', 48], ['arm-lpae-s1', 32], ['arm-lpae-s1', 40], ['arm-lpae-s1', 48]] as [PgtableFormat, number][])(
  '%s ias %i: map arguments and page-size choice', (format, ias) => {
    const top = 1n << BigInt(ias);

    it('ERANGE for iova >= 2^ias (also a range crossing it) and pa >= 2^oas', async () => {
      const { sim, dom } = await rig(format, { ias, oas: 40 });
      const free0 = sim.memory.framesFree();
      expectErrno(() => dom.map(top, RAM_BASE, K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.map(top - K4, RAM_BASE, 2n * K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.map(0n, 1n << 40n, K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.map(0n, (1n << 40n) - K4, 2n * K4, Prot.RW), 'ERANGE');
      expectErrno(() => dom.unmap(top, K4), 'ERANGE');
      dom.map(top - K4, (1n << 40n) - K4, K4, Prot.RW); // the last page of both spaces is fine
      expectMapped(dom, top - 1n, (1n << 40n) - 1n, K4);
      expect(dom.unmap(top - K4, K4)).toBe(K4);
      expect(dom.tableFrames).toBe(1);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('EINVAL for prot without READ|WRITE, unaligned iova/pa/size and size 0', async () => {
      const { sim, dom } = await rig(format, { ias });
      const free0 = sim.memory.framesFree();
      for (const prot of [0, P.CACHE, P.NOEXEC | P.MMIO | P.PRIV]) expectErrno(() => dom.map(0n, RAM_BASE, K4, prot), 'EINVAL');
      expectErrno(() => dom.map(0x800n, RAM_BASE, K4, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE + 0x10n, K4, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE, K4 + 1n, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE, 0n, Prot.RW), 'EINVAL');
      expectErrno(() => dom.map(0n, RAM_BASE, K4, 64), 'EINVAL');
      expectErrno(() => dom.unmap(0x800n, K4), 'EINVAL');
      expectErrno(() => dom.unmap(0n, 0n), 'EINVAL');
      expect(dom.tableFrames).toBe(1);
      expect(dom.mappedBytes).toBe(0n);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('4M at a 2M-aligned iova but a 4K-aligned pa: 1024 4K leaves', async () => {
      const { sim, dom } = await rig(format, { ias });
      const free0 = sim.memory.framesFree();
      const iova = 4n * M2;
      const pa = RAM_BASE + K4;
      dom.map(iova, pa, 2n * M2, Prot.RW);
      for (const off of [0n, K4, M2 - K4, M2, 2n * M2 - K4]) expectMapped(dom, iova + off + 7n, pa + off + 7n, K4);
      const w0 = dom.walk(iova);
      const w1 = dom.walk(iova + M2);
      const leafTables = [w0.levels.at(-1)!.table, w1.levels.at(-1)!.table];
      expect(leafTables[0]).not.toBe(leafTables[1]);
      expect(leafTables.map((t) => sim.memory.frameInfo(t).tableEntries)).toEqual([512, 512]);
      expect(dom.tableFrames).toBe(w0.levels.length + 1);
      expect(dom.mappedBytes).toBe(2n * M2);
      // Unmapping it returns 4M and frees both leaf tables (and the path above them).
      expect(dom.unmap(iova, 2n * M2)).toBe(2n * M2);
      expect(dom.tableFrames).toBe(1);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('2M+4K with both 2M-aligned: one 2M leaf and one 4K leaf; 1G+2M+4K: one of each', async () => {
      const { sim, dom } = await rig(format, { ias });
      const free0 = sim.memory.framesFree();
      dom.map(2n * M2, HBM_BASE + 8n * M2, M2 + K4, Prot.RW);
      expectMapped(dom, 2n * M2, HBM_BASE + 8n * M2, M2);
      expectMapped(dom, 3n * M2 + 1n, HBM_BASE + 9n * M2 + 1n, K4);
      expectUnmapped(dom, 3n * M2 + K4);
      const leafTable = dom.walk(3n * M2).levels.at(-1)!.table;
      expect(sim.memory.frameInfo(leafTable).tableEntries).toBe(1);
      dom.map(G1, HBM_BASE + G1, G1 + M2 + K4, Prot.RW);
      expectMapped(dom, G1 + 3n, HBM_BASE + G1 + 3n, G1);
      expectMapped(dom, 2n * G1 + 3n, HBM_BASE + 2n * G1 + 3n, M2);
      expectMapped(dom, 2n * G1 + M2 + 3n, HBM_BASE + 2n * G1 + M2 + 3n, K4);
      expect(dom.unmap(G1, G1 + M2 + K4)).toBe(G1 + M2 + K4);
      // Misaligned start: 4K then a 2M leaf once the iova reaches 2M alignment.
      dom.map(16n * M2 - K4, HBM_BASE + 16n * M2 - K4, M2 + K4, Prot.RW);
      expectMapped(dom, 16n * M2 - K4, HBM_BASE + 16n * M2 - K4, K4);
      expectMapped(dom, 16n * M2, HBM_BASE + 16n * M2, M2);
      // Unmap stops at a hole: from 4M, [4M,6M) and the 4K page go, then the hole at 6M+4K.
      expect(dom.unmap(2n * M2, 8n * M2)).toBe(M2 + K4);
      expect(dom.unmap(16n * M2 - K4, 4n * M2)).toBe(M2 + K4);
      expect(dom.unmap(0n, K4)).toBe(0n);
      expect(dom.tableFrames).toBe(1);
      expect(sim.memory.framesFree()).toBe(free0);
    });

    it('a map that fails half way leaves nothing mapped and no table allocated', async () => {
      const { sim, dom } = await rig(format, { ias });
      dom.map(8n * M2 + 3n * K4, RAM_BASE, K4, Prot.RW);
      const free0 = sim.memory.framesFree();
      const tables0 = dom.tableFrames;
      // [6M, 8M) would map as a 2M leaf, then 4K pieces of [8M, 10M) run into the page at 8M+12K.
      expectErrno(() => dom.map(6n * M2, HBM_BASE + 6n * M2, 4n * M2, Prot.RW), 'EEXIST');
      expectUnmapped(dom, 6n * M2);
      expectUnmapped(dom, 8n * M2);
      expectMapped(dom, 8n * M2 + 3n * K4, RAM_BASE, K4);
      expect(dom.tableFrames).toBe(tables0);
      expect(sim.memory.framesFree()).toBe(free0);
      expect(dom.mappedBytes).toBe(K4);
    });
  });
