/**
 * Benchmarks of the core (foundation issue): DMA copy through the IOMMU against raw memory.copy,
 * IOTLB-hit translation against a plain-TypeScript walker, map and walk costs, and the resident
 * memory of a large sparse machine.
 */
import { createSimulator, Prot, type Simulator, type IommuDomain } from '../src/index.js';
import { measure } from './harness.js';

const MiB = 1 << 20;
const RID = 0x0300;

async function copySetup(pageSize: bigint): Promise<{ sim: Simulator; src: bigint; dst: bigint }> {
  const sim = await createSimulator({ arenaBytes: 64 * MiB });
  sim.memory.addRegion({ base: 0x8000_0000n, size: 1n << 30n, kind: 'ram' });
  const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: 256, tlbWays: 4 });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  // Two 2 MiB-aligned buffers of 2 MiB each; 1 MiB of each is used.
  const a = sim.memory.allocFrames(512, 512);
  const b = sim.memory.allocFrames(512, 512);
  sim.memory.write(a, new Uint8Array(2 * MiB).fill(0xa5));
  sim.memory.write(b, new Uint8Array(2 * MiB).fill(0x3c));
  const src = 0x10_0000_0000n;
  const dst = 0x20_0000_0000n;
  if (pageSize === 4096n) {
    for (let off = 0n; off < 2n * BigInt(MiB); off += 4096n) {
      dom.map(src + off, a + off, 4096n, Prot.RW);
      dom.map(dst + off, b + off, 4096n, Prot.RW);
    }
  } else {
    dom.map(src, a, 2n * BigInt(MiB), Prot.RW);
    dom.map(dst, b, 2n * BigInt(MiB), Prot.RW);
  }
  const r = sim.dma.copy({ rid: RID, addr: src }, { rid: RID, addr: dst }, BigInt(MiB)); // warms the IOTLB
  if (!r.ok) throw new Error(`bench copy failed: ${r.code}`);
  return { sim, src, dst };
}

/**
 * The baseline: the same 4-level VT-d walk written in plain TypeScript over a copy of the
 * tables, each u64 entry read as two u32 halves (tables sit below 4 GiB here, so a table's
 * address is its low half). Returns the low half of the output; the high half goes to `outHi`.
 */
export class TsWalker {
  private readonly words: Uint32Array;
  private readonly baseLo: number;
  outHi = 0;
  constructor(sim: Simulator, private readonly rootLo: number, tableRegionBase: bigint, bytes: number) {
    this.words = new Uint32Array(sim.memory.read(tableRegionBase, bytes).buffer);
    this.baseLo = Number(tableRegionBase);
  }
  walk(lo: number, hi: number): number {
    const words = this.words;
    let table = this.rootLo;
    for (let lvl = 0; lvl < 4; lvl++) {
      const shift = 39 - 9 * lvl;
      const idx = (shift >= 32 ? hi >>> (shift - 32) : (lo >>> shift) | (hi << (32 - shift))) & 511;
      const w = ((table - this.baseLo) >>> 2) + (idx << 1);
      const elo = words[w]!;
      if ((elo & 3) === 0) return -1;
      if (lvl === 3 || (elo & 0x80) !== 0) {
        const mask = lvl === 3 ? 0xfff : lvl === 2 ? 0x1fffff : 0x3fffffff;
        this.outHi = words[w + 1]! & 0xfffff;
        return ((elo & 0xfffff000 & ~mask) | (lo & mask)) >>> 0;
      }
      table = (elo & 0xfffff000) >>> 0;
    }
    return -1;
  }
}

export interface CoreBench {
  copy4k_vs_memcpy: number;
  copy2m_vs_memcpy: number;
  translate_hit_vs_ts: number;
  map4k_ns: number;
  translate_hit_ns: number;
  walk_miss_ns: number;
  copy4k_gib_s: number;
  memcpy_gib_s: number;
}

export async function benchCore(): Promise<CoreBench> {
  // --- copies ---
  const c4 = await copySetup(4096n);
  const c2 = await copySetup(2n * BigInt(MiB));
  const e4 = c4.sim.core.exports;
  const e2 = c2.sim.core.exports;
  // The baseline runs in each simulator's own linear memory, next to the copy it is compared with.
  if (e4.memcpyBench(MiB, 1) !== 0 || e2.memcpyBench(MiB, 1) !== 0) throw new Error('memcpyBench failed');
  const len = BigInt(MiB);
  const copies = measure([
    { name: 'memcpy', run: (n) => { e4.memcpyBench(MiB, n); } },
    { name: 'memcpy2', run: (n) => { e2.memcpyBench(MiB, n); } },
    { name: 'copy4k', run: (n) => { for (let i = 0; i < n; i++) c4.sim.dma.copy({ rid: RID, addr: c4.src }, { rid: RID, addr: c4.dst }, len); } },
    { name: 'copy2m', run: (n) => { for (let i = 0; i < n; i++) c2.sim.dma.copy({ rid: RID, addr: c2.src }, { rid: RID, addr: c2.dst }, len); } },
  ]);
  if (e2.dmaCopy(RID, c2.src, RID, c2.dst, len) !== 0) throw new Error('copy2m failed');

  // --- translation: IOTLB hits against a TS walker over the same tables ---
  const sim = await createSimulator({ arenaBytes: 64 * MiB });
  const ramBase = 0x8000_0000n;
  sim.memory.addRegion({ base: ramBase, size: 1n << 30n, kind: 'ram' });
  const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: 1024, tlbWays: 8 });
  const dom: IommuDomain = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  // 64 regions x 64 pages at random 2 MiB-aligned 48-bit IOVAs (4096 pages: fits the IOTLB).
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
  const bases: bigint[] = [];
  for (let r = 0; r < 64; r++) {
    const iova = ((BigInt(rnd() & 0x7fff) << 33n) | (BigInt(rnd() & 0xfff) << 21n)) & ((1n << 48n) - 1n);
    if (bases.includes(iova)) continue;
    bases.push(iova);
    dom.map(iova, ramBase + 0x1000_0000n + BigInt(r) * 0x40000n, 64n * 4096n, Prot.RW);
  }
  const N = 32768;
  const iovas = new BigUint64Array(N);
  const lo = new Uint32Array(N);
  const hi = new Uint32Array(N);
  for (let i = 0; i < N; i++) {
    const v = bases[rnd() % bases.length]! + BigInt((rnd() % 64) * 4096 + (rnd() & 0xfff));
    iovas[i] = v;
    lo[i] = Number(v & 0xffffffffn);
    hi[i] = Number(v >> 32n);
  }
  const tables = Number(dom.tableFrames);
  const walker = new TsWalker(sim, Number(dom.root), ramBase, Math.max(tables + 64, 256) * 4096);
  // Same answers, or the comparison means nothing.
  const ref = sim.iommu.translateBatch(RID, iovas, 'read');
  if (ref.faults !== 0) throw new Error('translation workload must be all hits');
  for (let i = 0; i < N; i++) {
    const outLo = walker.walk(lo[i]!, hi[i]!);
    if ((BigInt(walker.outHi) << 32n) + BigInt(outLo) !== ref.out[i]) throw new Error(`TS walker disagrees at ${iovas[i]!.toString(16)}`);
  }
  const core = sim.core;
  core.views.u64.set(iovas, core.layout.staging >> 3);
  let sink = 0;
  const tr = measure([
    { name: 'coreHit', run: (n) => { for (let i = 0; i < n; i++) sink += core.exports.translateBatch(RID, N, 1); } },
    { name: 'tsWalk', run: (n) => { for (let i = 0; i < n; i++) for (let j = 0; j < N; j++) sink += walker.walk(lo[j]!, hi[j]!); } },
  ]);

  // --- walk on a miss: invalidate before each batch, translate distinct pages ---
  const missIovas = new BigUint64Array(4096);
  for (let i = 0; i < 4096; i++) missIovas[i] = bases[i % bases.length]! + BigInt((i >> 6) % 64) * 4096n;
  core.views.u64.set(missIovas, core.layout.staging >> 3);
  const walkMiss = measure([
    { name: 'miss', run: (n) => { for (let i = 0; i < n; i++) { core.exports.invalidateAll(unit.id); sink += core.exports.translateBatch(RID, 4096, 1); } } },
    { name: 'flush', run: (n) => { for (let i = 0; i < n; i++) core.exports.invalidateAll(unit.id); } },
  ]);

  // --- map 4K through the API: timed rounds of 4096 maps, each round unmapped untimed ---
  const mapRounds: number[] = [];
  for (let round = 0; round < 15; round++) {
    const start = 0x30_0000_0000n;
    const t0 = process.hrtime.bigint();
    for (let i = 0n; i < 4096n; i++) dom.map(start + (i << 12n), ramBase + 0x2000_0000n, 4096n, Prot.RW);
    const t1 = process.hrtime.bigint();
    dom.unmap(start, 4096n << 12n);
    if (round >= 3) mapRounds.push(Number(t1 - t0) / 4096); // the first rounds warm up
  }
  mapRounds.sort((a, b) => a - b);
  if (sink === 42.5) console.log('');

  const memcpy = copies.get('memcpy')!;
  return {
    copy4k_vs_memcpy: memcpy / copies.get('copy4k')!,
    copy2m_vs_memcpy: copies.get('memcpy2')! / copies.get('copy2m')!,
    translate_hit_vs_ts: tr.get('tsWalk')! / tr.get('coreHit')!,
    map4k_ns: mapRounds[Math.floor(mapRounds.length / 2)]!,
    translate_hit_ns: tr.get('coreHit')! / N,
    walk_miss_ns: (walkMiss.get('miss')! - walkMiss.get('flush')!) / 4096,
    copy4k_gib_s: MiB / copies.get('copy4k')! / 1.073741824,
    memcpy_gib_s: MiB / memcpy / 1.073741824,
  };
}

/** Resident memory after a 96 GiB device region, 16 GiB of RAM and 64 MiB touched (run in a child). */
export async function rssChild(): Promise<number> {
  const sim = await createSimulator({ arenaBytes: 256 * MiB });
  sim.memory.addRegion({ base: 0x100_0000_0000n, size: 96n << 30n, kind: 'device' });
  sim.memory.addRegion({ base: 0x8000_0000n, size: 16n << 30n, kind: 'ram' });
  const chunk = new Uint8Array(MiB).fill(0x77);
  // 32 MiB spread over the device region, 32 MiB over RAM.
  for (let i = 0n; i < 32n; i++) {
    sim.memory.write(0x100_0000_0000n + i * (3n << 30n), chunk);
    sim.memory.write(0x8000_0000n + i * (512n << 20n), chunk);
  }
  return process.memoryUsage().rss / MiB;
}
