/**
 * Per-format figures of the core's translation and map paths (issue 11): for each page-table
 * format, translate_hit_ns (IOTLB hit, batched), walk_miss_ns (a full walk after a flush) and
 * map4k_ns (iommu_map of one smallest page through the API), on the same workload shape as
 * core.ts (64 regions x 64 pages at random aligned IOVAs).
 */
import { createSimulator, Prot, type IommuFamily, type PgtableFormat } from '../src/index.js';
import { measure } from './harness.js';

const RID = 0x100;
const MiB = 1 << 20;

interface FormatCase { key: string; format: PgtableFormat; family: IommuFamily; ias: number; granule?: number }
const CASES: FormatCase[] = [
  { key: 'vtd_ss', format: 'vtd-ss', family: 'vtd', ias: 48 },
  { key: 'arm_s1_4k', format: 'arm-lpae-s1', family: 'smmuv3', ias: 48 },
  { key: 'arm_s1_64k', format: 'arm-lpae-s1', family: 'smmuv3', ias: 48, granule: 65536 },
  { key: 'arm_s2_4k', format: 'arm-lpae-s2', family: 'smmuv3', ias: 40 },
  { key: 'amd_v1', format: 'amd-v1', family: 'amd-vi', ias: 48 },
  { key: 'x86_64', format: 'x86-64', family: 'vtd', ias: 48 },
  { key: 'riscv_sv48', format: 'riscv', family: 'riscv', ias: 48 },
];

export async function benchFormats(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const c of CASES) {
    const sim = await createSimulator({ arenaBytes: 64 * MiB });
    const ramBase = 0x8000_0000n;
    sim.memory.addRegion({ base: ramBase, size: 1n << 30n, kind: 'ram' });
    const unit = sim.iommu.createUnit({ family: c.family, tlbSets: 1024, tlbWays: 8 });
    const dom = unit.createDomain({ type: 'paging', format: c.format, ias: c.ias, oas: 48, granule: c.granule });
    sim.iommu.attach(RID, dom);
    const page = dom.pageSizes()[0]!;
    const span = BigInt(c.format === 'x86-64' || c.format === 'riscv' ? c.ias - 1 : c.ias);
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
    const bases: bigint[] = [];
    for (let r = 0; r < 64; r++) {
      // Random bits from just above the region size, so regions spread over the IOTLB sets.
      const iova = ((BigInt(rnd()) << 40n) | (BigInt(rnd()) << 16n)) & ((1n << span) - 1n) & ~(64n * page - 1n);
      if (bases.some((b) => iova < b + 64n * page && b < iova + 64n * page)) continue;
      bases.push(iova);
      // Pages one apart in iova, scattered in pa (a 4K-aligned pa keeps every leaf the smallest).
      dom.map(iova, ramBase + 0x1000_0000n + BigInt(r) * 64n * page + page, 64n * page, Prot.RW);
    }
    const N = 32768;
    const iovas = new BigUint64Array(N);
    for (let i = 0; i < N; i++) iovas[i] = bases[rnd() % bases.length]! + BigInt(rnd() % 64) * page + BigInt(rnd() & 0xfff);
    const core = sim.core;
    if (sim.iommu.translateBatch(RID, iovas, 'read').faults !== 0) throw new Error(`${c.key}: workload must be all hits`);
    core.views.u64.set(iovas, core.layout.staging >> 3);
    let sink = 0;
    const hit = measure([{ name: 'hit', run: (n) => { for (let i = 0; i < n; i++) sink += core.exports.translateBatch(RID, N, 1); } }], 5);
    const miss = new BigUint64Array(4096);
    for (let i = 0; i < 4096; i++) miss[i] = bases[i % bases.length]! + BigInt((i >> 6) % 64) * page;
    core.views.u64.set(miss, core.layout.staging >> 3);
    const walk = measure([
      { name: 'miss', run: (n) => { for (let i = 0; i < n; i++) { core.exports.invalidateAll(unit.id); sink += core.exports.translateBatch(RID, 4096, 1); } } },
      { name: 'flush', run: (n) => { for (let i = 0; i < n; i++) core.exports.invalidateAll(unit.id); } },
    ], 5);
    const rounds: number[] = [];
    const start = 1n << (span - 2n);
    for (let round = 0; round < 9; round++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0n; i < 2048n; i++) dom.map(start + i * page, ramBase + 0x2000_0000n, page, Prot.RW);
      const t1 = process.hrtime.bigint();
      dom.unmap(start, 2048n * page);
      if (round >= 2) rounds.push(Number(t1 - t0) / 2048);
    }
    rounds.sort((a, b) => a - b);
    if (sink === 0.5) console.log('');
    out[`${c.key}.translate_hit_ns`] = hit.get('hit')! / N;
    out[`${c.key}.walk_miss_ns`] = (walk.get('miss')! - walk.get('flush')!) / 4096;
    out[`${c.key}.map4k_ns`] = rounds[Math.floor(rounds.length / 2)]!;
  }
  return out;
}
