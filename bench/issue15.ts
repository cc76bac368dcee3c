/**
 * The same-work benchmarks of issue 15: every key is a ratio between the simulator doing some
 * work and a baseline doing the same work in the same process (samples interleaved, medians).
 * The absolute figures of both sides are returned as well (`*_ns`, `*_ms`, `*_gib_s`).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ABI } from '../bindings/core.js';
import { createSimulator, Machine, Prot, SimProcess, O_RDWR, O_CLOEXEC, type Simulator, type IommuDomain } from '../src/index.js';
import { HabanaDevice, hlIoctlMemory } from '../src/drivers/accel/index.js';
import { RdmaDevice, ibvOpenDevice, IBV_ACCESS_LOCAL_WRITE } from '../src/drivers/rdma/index.js';
import { SEED_TOPOLOGY } from '../src/scenario/index.js';
import { measure, now } from './harness.js';
import { TsWalker } from './core.js';

const MiB = 1 << 20;
const RID = 0x0300;
const RAM = 0x8000_0000n;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Timed rounds of several methods, interleaved; each round may have an untimed reset after it. */
function rounds(methods: { name: string; run: () => void; reset?: () => void }[], n: number, warm = 2): Map<string, number> {
  const t = methods.map(() => [] as number[]);
  for (let r = 0; r < n + warm; r++) {
    methods.forEach((m, i) => {
      const t0 = now();
      m.run();
      const dt = now() - t0;
      m.reset?.();
      if (r >= warm) t[i]!.push(dt * 1e6);
    });
  }
  return new Map(methods.map((m, i) => [m.name, median(t[i]!)]));
}

let seed = 12345;
const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = rnd() % (i + 1); [a[i], a[j]] = [a[j]!, a[i]!]; }
  return a;
}

// ---------------------------------------------------------------- copies

interface CopyCase { key: string; bytes: number; page: bigint; scattered: boolean }
const COPIES: CopyCase[] = [
  { key: 'copy_4k_map4k', bytes: 4096, page: 4096n, scattered: false },
  { key: 'copy_1m_map4k', bytes: MiB, page: 4096n, scattered: false },
  { key: 'copy_16m_map4k', bytes: 16 * MiB, page: 4096n, scattered: false },
  { key: 'copy_16m_map4k_scattered', bytes: 16 * MiB, page: 4096n, scattered: true },
  { key: 'copy_64m_map2m', bytes: 64 * MiB, page: 2n * BigInt(MiB), scattered: false },
];

/**
 * A DMA copy of `bytes` through the IOMMU with the public API (sim.dma.copy), between two
 * IOVA ranges mapped with `page` leaves, IOTLB warmed by one earlier pass; the baseline is
 * memory.copy of the same byte count inside the same instance (memcpyBench).
 */
async function copyCase(c: CopyCase, out: Record<string, number>): Promise<void> {
  const sim = await createSimulator({ arenaBytes: Math.max(64 * MiB, 5 * c.bytes + 16 * MiB) });
  sim.memory.addRegion({ base: RAM, size: 1n << 30n, kind: 'ram' });
  const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: 256, tlbWays: 4 });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  const pages = Math.max(1, c.bytes / 4096);
  const len = BigInt(c.bytes);
  const a = sim.memory.allocFrames(Math.max(pages, 512), 512);
  const b = sim.memory.allocFrames(Math.max(pages, 512), 512);
  // Backing: written in address order (one run of linear memory per buffer), or page by page
  // in a shuffled order (neighbouring pages land apart in linear memory).
  const page = new Uint8Array(4096);
  for (const [buf, v] of [[a, 0xa5], [b, 0x3c]] as const) {
    if (!c.scattered) { sim.memory.write(buf, new Uint8Array(c.bytes).fill(v)); continue; }
    page.fill(v);
    for (const p of shuffled(pages)) sim.memory.write(buf + BigInt(p) * 4096n, page);
  }
  const src = 0x10_0000_0000n;
  const dst = 0x20_0000_0000n;
  if (c.page === 4096n) {
    for (let off = 0n; off < len; off += 4096n) {
      dom.map(src + off, a + off, 4096n, Prot.RW);
      dom.map(dst + off, b + off, 4096n, Prot.RW);
    }
  } else {
    dom.map(src, a, len, Prot.RW);
    dom.map(dst, b, len, Prot.RW);
  }
  const e = sim.core.exports;
  const S = { rid: RID, addr: src };
  const D = { rid: RID, addr: dst };
  const r = sim.dma.copy(S, D, len); // warms the IOTLB
  if (!r.ok) throw new Error(`${c.key}: copy failed: ${r.code}`);
  if (e.memcpyBench(c.bytes, 1) !== 0) throw new Error(`${c.key}: memcpyBench failed`);
  const t = measure([
    { name: 'memcpy', run: (n) => { e.memcpyBench(c.bytes, n); } },
    { name: 'copy', run: (n) => { for (let i = 0; i < n; i++) sim.dma.copy(S, D, len); } },
  ], 7, c.bytes >= 16 * MiB ? 60 : 25);
  // The bytes moved: the copy is real.
  const back = sim.memory.read(b + len - 4096n, 4096);
  if (back[4095] !== 0xa5) throw new Error(`${c.key}: the copy did not land`);
  out[`${c.key}_vs_memcpy`] = t.get('memcpy')! / t.get('copy')!;
  out[`${c.key}_gib_s`] = c.bytes / t.get('copy')! / 1.073741824;
  out[`${c.key}_memcpy_gib_s`] = c.bytes / t.get('memcpy')! / 1.073741824;
}

// ------------------------------------------------- IOTLB hits against a plain-TS IOTLB

/**
 * A plain-TypeScript IOTLB of the core's geometry and hash (iotlb.ts setIndex, tag, round-robin
 * replacement): entries of 8 u32 words (vpn lo/hi, tag, perm, out lo/hi).
 */
class TsIotlb {
  readonly e: Uint32Array;
  private readonly rr: Uint8Array;
  constructor(private readonly sets: number, private readonly ways: number, private readonly dom: number) {
    this.e = new Uint32Array(sets * ways * 8);
    this.rr = new Uint8Array(sets);
  }
  private set(vlo: number, vhi: number): number {
    return ((vlo ^ vhi ^ Math.imul(this.dom, 0x9e3779b1)) & (this.sets - 1)) >>> 0;
  }
  insert(lo: number, hi: number, outLo: number, outHi: number, perm: number): void {
    const vlo = ((lo >>> 12) | (hi << 20)) >>> 0;
    const vhi = hi >>> 12;
    const s = this.set(vlo, vhi);
    let w = 0;
    for (; w < this.ways; w++) if (this.e[(s * this.ways + w) * 8 + 2] === 0) break;
    if (w === this.ways) { w = this.rr[s]!; this.rr[s] = (w + 1) % this.ways; }
    const k = (s * this.ways + w) * 8;
    const E = this.e;
    E[k] = vlo; E[k + 1] = vhi; E[k + 2] = ((this.dom + 1) << 8) | 12; E[k + 3] = perm;
    E[k + 4] = outLo & ~0xfff; E[k + 5] = outHi;
  }
  outHi = 0;
  /** The low half of the output of (lo, hi) for `access`, or -1 on a miss or a denied access. */
  lookup(lo: number, hi: number, access: number): number {
    const vlo = ((lo >>> 12) | (hi << 20)) >>> 0;
    const vhi = hi >>> 12;
    const tag = ((this.dom + 1) << 8) | 12;
    const E = this.e;
    let k = this.set(vlo, vhi) * this.ways * 8;
    for (let w = 0; w < this.ways; w++, k += 8) {
      if (E[k] === vlo && E[k + 1] === vhi && E[k + 2] === tag) {
        if ((E[k + 3]! & access) !== access) return -1;
        this.outHi = E[k + 5]!;
        return (E[k + 4]! | (lo & 0xfff)) >>> 0;
      }
    }
    return -1;
  }
}

async function translateHit(out: Record<string, number>): Promise<void> {
  const sim = await createSimulator({ arenaBytes: 64 * MiB });
  sim.memory.addRegion({ base: RAM, size: 1n << 30n, kind: 'ram' });
  const SETS = 1024;
  const WAYS = 8;
  const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: SETS, tlbWays: WAYS });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  const bases: bigint[] = [];
  for (let r = 0; r < 64; r++) {
    const iova = ((BigInt(rnd() & 0x7fff) << 33n) | (BigInt(rnd() & 0xfff) << 21n)) & ((1n << 48n) - 1n);
    if (bases.includes(iova)) continue;
    bases.push(iova);
    dom.map(iova, RAM + 0x1000_0000n + BigInt(r) * 0x40000n, 64n * 4096n, Prot.RW);
  }
  // 4096 pages; the core's IOTLB (1024 sets x 8 ways) and the TS one are filled by the same
  // sequence of first touches, so they hold the same entries.
  const ts = new TsIotlb(SETS, WAYS, dom.id);
  const pages: bigint[] = [];
  for (const b of bases) for (let p = 0n; p < 64n; p++) pages.push(b + p * 4096n);
  const warm = sim.iommu.translateBatch(RID, BigUint64Array.from(pages), 'read');
  pages.forEach((v, i) => {
    const o = warm.out[i]!;
    ts.insert(Number(v & 0xffffffffn), Number(v >> 32n), Number(o & 0xffffffffn), Number(o >> 32n), 3);
  });
  const N = 32768;
  const iovas = new BigUint64Array(N);
  const lo = new Uint32Array(N);
  const hi = new Uint32Array(N);
  for (let i = 0; i < N; i++) {
    let v: bigint;
    // Only pages both IOTLBs hold (a set that overflowed evicted the same pages in both).
    do v = pages[rnd() % pages.length]! + BigInt(rnd() & 0xfff);
    while (ts.lookup(Number(v & 0xffffffffn), Number(v >> 32n), 1) < 0);
    iovas[i] = v; lo[i] = Number(v & 0xffffffffn); hi[i] = Number(v >> 32n);
  }
  const before = unit.stats().hits;
  const ref = sim.iommu.translateBatch(RID, iovas, 'read');
  if (ref.faults !== 0 || unit.stats().hits - before !== BigInt(N)) throw new Error('translate_hit: workload must be all IOTLB hits');
  for (let i = 0; i < N; i++) {
    const o = ts.lookup(lo[i]!, hi[i]!, 1);
    if ((BigInt(ts.outHi) << 32n) + BigInt(o) !== ref.out[i]) throw new Error(`TS IOTLB disagrees at ${iovas[i]!.toString(16)}`);
  }
  const core = sim.core;
  core.views.u64.set(iovas, core.layout.staging >> 3);
  let sink = 0;
  const t = measure([
    { name: 'core', run: (n) => { for (let i = 0; i < n; i++) sink += core.exports.translateBatch(RID, N, 1); } },
    { name: 'ts', run: (n) => { for (let i = 0; i < n; i++) for (let j = 0; j < N; j++) sink += ts.lookup(lo[j]!, hi[j]!, 1); } },
  ]);
  out.translate_hit_vs_ts_iotlb = t.get('ts')! / t.get('core')!;
  out.translate_hit_core_ns = t.get('core')! / N;
  out.translate_hit_ts_iotlb_ns = t.get('ts')! / N;

  // One call through the public API against the raw export (the same IOTLB-hit address).
  const v = iovas[0]!;
  // The raw side: the export itself, behind the trap guard only (Core.trusted: no argument
  // checks), the cheapest way into the core; the API checks its arguments and calls the same.
  const e = core.trusted;
  const api = measure([
    { name: 'api', run: (n) => { for (let i = 0; i < n; i++) if (!sim.iommu.translate(RID, v, 'read').ok) sink++; } },
    { name: 'raw', run: (n) => { for (let i = 0; i < n; i++) sink += e.translate(RID, v, 1); } },
  ]);
  out.api_translate_single_vs_raw = api.get('api')! / api.get('raw')!;
  out.api_translate_single_ns = api.get('api')!;
  out.api_translate_raw_ns = api.get('raw')!;

  // One 4K iommu_map through the API against the raw export: rounds of 4096, unmapped untimed.
  const start = 0x30_0000_0000n;
  const iv = Array.from({ length: 4096 }, (_, i) => start + (BigInt(i) << 12n));
  const pa = RAM + 0x2000_0000n;
  const unmapAll = () => { if (e.unmap(dom.id, start, 4096n << 12n) !== 4096n << 12n) throw new Error('map bench: unmap'); };
  const m = rounds([
    { name: 'api', run: () => { for (let i = 0; i < 4096; i++) dom.map(iv[i]!, pa, 4096n, Prot.RW); }, reset: unmapAll },
    { name: 'raw', run: () => { for (let i = 0; i < 4096; i++) if (e.map(dom.id, iv[i]!, pa, 4096n, Prot.RW) !== 0) throw new Error('raw map'); }, reset: unmapAll },
  ], 11, 3);
  out.api_map4k_vs_raw = m.get('api')! / m.get('raw')!;
  out.api_map4k_ns = m.get('api')! / 4096;
  out.api_map4k_raw_ns = m.get('raw')! / 4096;
  if (sink === 0.5) console.log('');
}

// ----------------------------------------- walks over 1 GiB of 4K mappings, batch map

/** Writes `n` map descriptors (u32 words of iova, pa, size) from `d` into the core's staging. */
function descs(n: number, iova: (i: number) => bigint, pa: (i: number) => bigint): Uint32Array {
  const w = ABI.MAPDESC_STRIDE >> 2;
  const d = new Uint32Array(n * w);
  for (let i = 0; i < n; i++) {
    const v = iova(i);
    const p = pa(i);
    d[i * w] = Number(v & 0xffffffffn); d[i * w + 1] = Number(v >> 32n);
    d[i * w + 2] = Number(p & 0xffffffffn); d[i * w + 3] = Number(p >> 32n);
    d[i * w + 4] = 4096;
  }
  return d;
}

/** The core's batch map of descriptor words `d` (staging-sized chunks). */
function coreMapBatch(sim: Simulator, dom: IommuDomain, d: Uint32Array, prot: number): void {
  const w = ABI.MAPDESC_STRIDE >> 2;
  const per = ABI.STAGING_SIZE / ABI.MAPDESC_STRIDE;
  const n = d.length / w;
  for (let i = 0; i < n; i += per) {
    const k = Math.min(per, n - i);
    sim.core.views.u32.set(d.subarray(i * w, (i + k) * w), sim.core.layout.staging >> 2);
    const st = sim.core.exports.mapBatch(dom.id, k, prot);
    if (st !== 0) throw new Error(`mapBatch: ${st}`);
  }
}

/**
 * The same VT-d second-stage format in plain TypeScript: 4 levels of 512 u64 entries (two u32
 * words each) in an ArrayBuffer, tables from a bump allocator, a live-entry count per table
 * (as the core keeps for freeing empty tables), EEXIST over a present entry.
 */
class TsVtdMap {
  readonly w: Uint32Array;
  readonly live: Uint16Array;
  next = 1; // table 0 is the root
  constructor(maxTables: number) {
    this.w = new Uint32Array(maxTables * 1024);
    this.live = new Uint16Array(maxTables);
  }
  reset(): void { this.w.fill(0, 0, this.next * 1024); this.live.fill(0, 0, this.next); this.next = 1; }
  /** Maps descriptors `d` (iova, pa, size = 4096 each); returns the count mapped. */
  mapBatch(d: Uint32Array, prot: number): number {
    const W = this.w;
    const stride = ABI.MAPDESC_STRIDE >> 2;
    const perm = ((prot & ABI.PROT_READ) ? 1 : 0) | ((prot & ABI.PROT_WRITE) ? 2 : 0);
    let n = 0;
    for (let i = 0; i < d.length; i += stride) {
      const lo = d[i]!, hi = d[i + 1]!, plo = d[i + 2]!, phi = d[i + 3]!;
      if (((lo | plo | d[i + 4]!) & 0xfff) !== 0 || hi >>> 16 !== 0) throw new Error('TS map: EINVAL');
      let t = 0;
      for (let lvl = 0; lvl < 3; lvl++) {
        const shift = 39 - 9 * lvl;
        const idx = (shift >= 32 ? hi >>> (shift - 32) : (lo >>> shift) | (hi << (32 - shift))) & 511;
        const k = t * 1024 + idx * 2;
        if ((W[k]! & 3) === 0) {
          const nt = this.next++;
          W[k] = ((nt << 12) | 3) >>> 0; // table index stands for its address
          this.live[t]!++;
          t = nt;
        } else {
          t = W[k]! >>> 12;
        }
      }
      const k = t * 1024 + ((lo >>> 12) & 511) * 2;
      if ((W[k]! & 3) !== 0) throw new Error('TS map: EEXIST');
      W[k] = (plo | perm) >>> 0;
      W[k + 1] = phi;
      this.live[t]!++;
      n++;
    }
    return n;
  }

  /**
   * The same map with the core's algorithm (io-pgtable map_pages): the leaf table of the last
   * page is kept, and the walk from the root runs again only when a page falls in another one.
   */
  mapBatchWalkOnce(d: Uint32Array, prot: number): number {
    const W = this.w;
    const stride = ABI.MAPDESC_STRIDE >> 2;
    const perm = ((prot & ABI.PROT_READ) ? 1 : 0) | ((prot & ABI.PROT_WRITE) ? 2 : 0);
    let n = 0;
    let keyLo = -1, keyHi = -1, leaf = 0;
    for (let i = 0; i < d.length; i += stride) {
      const lo = d[i]!, hi = d[i + 1]!, plo = d[i + 2]!, phi = d[i + 3]!;
      if (((lo | plo | d[i + 4]!) & 0xfff) !== 0 || hi >>> 16 !== 0) throw new Error('TS map: EINVAL');
      if ((lo >>> 21) !== keyLo || hi !== keyHi) {
        let t = 0;
        for (let lvl = 0; lvl < 3; lvl++) {
          const shift = 39 - 9 * lvl;
          const idx = (shift >= 32 ? hi >>> (shift - 32) : (lo >>> shift) | (hi << (32 - shift))) & 511;
          const k = t * 1024 + idx * 2;
          if ((W[k]! & 3) === 0) {
            const nt = this.next++;
            W[k] = ((nt << 12) | 3) >>> 0;
            this.live[t]!++;
            t = nt;
          } else {
            t = W[k]! >>> 12;
          }
        }
        keyLo = lo >>> 21; keyHi = hi; leaf = t;
      }
      const k = leaf * 1024 + ((lo >>> 12) & 511) * 2;
      if ((W[k]! & 3) !== 0) throw new Error('TS map: EEXIST');
      W[k] = (plo | perm) >>> 0;
      W[k + 1] = phi;
      this.live[leaf]!++;
      n++;
    }
    return n;
  }
}

async function walksAndMaps(out: Record<string, number>): Promise<void> {
  const sim = await createSimulator({ arenaBytes: 64 * MiB });
  sim.memory.addRegion({ base: RAM, size: 4n << 30n, kind: 'ram' }); // outputs above 4 GiB: clear of the VT-d interrupt range
  const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: 256, tlbWays: 4 });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  // 1 GiB of 4K mappings: 262144 pages, each to a scattered 4K frame of a second GiB.
  const P = 262144;
  const base = 0x40_0000_0000n;
  const perm = shuffled(P);
  coreMapBatch(sim, dom, descs(P, (i) => base + BigInt(i) * 4096n, (i) => (4n << 30n) + BigInt(perm[i]!) * 4096n), Prot.RW);
  const N = 32768;
  const iovas = new BigUint64Array(N);
  const lo = new Uint32Array(N);
  const hi = new Uint32Array(N);
  for (let i = 0; i < N; i++) {
    // The page from the LCG's high bits: its low bits repeat with a short period, which would
    // send every page to a handful of IOTLB sets.
    const v = base + BigInt((rnd() >>> 8) % P) * 4096n + BigInt(rnd() & 0xfff);
    iovas[i] = v; lo[i] = Number(v & 0xffffffffn); hi[i] = Number(v >> 32n);
  }
  const walker = new TsWalker(sim, Number(dom.root), RAM, (Number(dom.tableFrames) + 64) * 4096);
  // The same work as the core's batch: probe an IOTLB of the unit's geometry and hash, walk on
  // a miss and fill it, store each output and status.
  const tlb = new TsIotlb(256, 4, dom.id);
  const outLo = new Uint32Array(N);
  const outHi = new Uint32Array(N);
  const sts = new Int32Array(N);
  let tsHits = 0;
  const tsBatch = (): number => {
    let faults = 0;
    for (let j = 0; j < N; j++) {
      const l = lo[j]!, h = hi[j]!;
      let o = tlb.lookup(l, h, 1);
      if (o >= 0) { tsHits++; outHi[j] = tlb.outHi; } else {
        o = walker.walk(l, h);
        if (o < 0) { outLo[j] = 0; outHi[j] = 0; sts[j] = -14; faults++; continue; }
        tlb.insert(l, h, o, walker.outHi, 3);
        outHi[j] = walker.outHi;
      }
      outLo[j] = o;
      sts[j] = 0;
    }
    return faults;
  };
  unit.invalidateAll();
  const ref = sim.iommu.translateBatch(RID, iovas, 'read');
  if (ref.faults !== 0 || tsBatch() !== 0) throw new Error('walk_miss: faults');
  for (let i = 0; i < N; i++) {
    if ((BigInt(outHi[i]!) << 32n) + BigInt(outLo[i]!) !== ref.out[i]) throw new Error(`TS walker disagrees at ${iovas[i]!.toString(16)}`);
  }
  const core = sim.core;
  core.views.u64.set(iovas, core.layout.staging >> 3);
  const h0 = unit.stats();
  tsHits = 0;
  core.exports.translateBatch(RID, N, 1);
  tsBatch();
  const h1 = unit.stats();
  // Both IOTLBs hold the same entries: the same translations hit.
  if (BigInt(tsHits) !== h1.hits - h0.hits) throw new Error(`walk_miss: TS IOTLB hits ${tsHits}, core ${h1.hits - h0.hits}`);
  // A random working set 256x larger than the IOTLB: nearly every translation walks.
  out.walk_miss_1g_walk_fraction = Number(h1.walks - h0.walks) / N;
  let sink = 0;
  const t = measure([
    { name: 'core', run: (n) => { for (let i = 0; i < n; i++) sink += core.exports.translateBatch(RID, N, 1); } },
    { name: 'ts', run: (n) => { for (let i = 0; i < n; i++) sink += tsBatch(); } },
  ]);
  out.walk_miss_1g_vs_ts_walk = t.get('ts')! / t.get('core')!;
  out.walk_miss_1g_core_ns = t.get('core')! / N;
  out.walk_miss_1g_ts_ns = t.get('ts')! / N;

  // A batch map of 64K 4K pages into an empty range, against the TS format writer.
  const M = 65536;
  const mbase = 0x50_0000_0000n;
  const mperm = shuffled(M);
  const d = descs(M, (i) => mbase + BigInt(i) * 4096n, (i) => (4n << 30n) + BigInt(mperm[i]!) * 4096n);
  const ts = new TsVtdMap(1024);
  const ts1 = new TsVtdMap(1024);
  if (ts.mapBatch(d, Prot.RW) !== M || ts1.mapBatchWalkOnce(d, Prot.RW) !== M) throw new Error('TS map');
  if (ts.w.some((v, i) => ts1.w[i] !== v)) throw new Error('TS maps disagree');
  ts.reset();
  ts1.reset();
  const m = rounds([
    { name: 'core', run: () => coreMapBatch(sim, dom, d, Prot.RW), reset: () => { if (core.exports.unmap(dom.id, mbase, BigInt(M) * 4096n) !== BigInt(M) * 4096n) throw new Error('unmap'); } },
    { name: 'ts', run: () => { sink += ts.mapBatch(d, Prot.RW); }, reset: () => ts.reset() },
    { name: 'ts1', run: () => { sink += ts1.mapBatchWalkOnce(d, Prot.RW); }, reset: () => ts1.reset() },
  ], 25, 3);
  out.map4k_batch_vs_ts = m.get('ts')! / m.get('core')!;
  out.map4k_batch_core_ns = m.get('core')! / M;
  out.map4k_batch_ts_ns = m.get('ts')! / M;
  // The same ratio against a TS writer with the core's algorithm (a walk per leaf table, not
  // per page): what the Wasm itself gains, apart from the algorithm.
  out.map4k_batch_vs_ts_walk_once = m.get('ts1')! / m.get('core')!;
  out.map4k_batch_ts_walk_once_ns = m.get('ts1')! / M;
  if (sink === 0.5) console.log('');
}

// ------------------------------------------- a 1 GiB habanalabs dma-buf MR, 64K segments

async function attach(out: Record<string, number>): Promise<void> {
  const GiB = 1n << 30n;
  const m = await Machine.create({ topology: SEED_TOPOLOGY, iommu: { family: 'vtd' }, arenaBytes: 128 * MiB });
  const proc = new SimProcess(m.kernel, { name: 'bench' });
  const hl = HabanaDevice.create(m, { pci: 'gaudi0', generation: 'gaudi2', hbmBytes: 4n * GiB });
  const hfd = hl.open(proc);
  const handle = hlIoctlMemory(proc, hfd, { op: 'ALLOC', memSize: GiB }).handle!;
  const va = hlIoctlMemory(proc, hfd, { op: 'MAP', handle }).deviceVirtAddr!;
  const fd = hlIoctlMemory(proc, hfd, { op: 'EXPORT_DMABUF_FD', addr: va, handle, memSize: GiB, offset: 0n, flags: O_RDWR | O_CLOEXEC }).fd!;
  // nic1 sits under another root port: the peer path goes through the host bridge and the IOMMU.
  const nic = new RdmaDevice(m, 'nic1', { kind: 'pinned' });
  const ctx = ibvOpenDevice(nic, proc);
  const pd = ctx.allocPd();
  const dom = nic.dma.domain;
  if (dom === 'direct') throw new Error('attach bench: nic1 must be behind the IOMMU');
  if (nic.dma.maxSegmentSize !== 65536) throw new Error(`attach bench: max segment ${nic.dma.maxSegmentSize}, expected 64K`);
  const reg = () => ctx.regDmabufMr(pd, 0, Number(GiB), 0, fd, IBV_ACCESS_LOCAL_WRITE);
  const mr = reg();
  const segs = mr.translation;
  if (segs.length !== 16384) throw new Error(`attach bench: ${segs.length} segments, expected 16384`);
  // The same pages, for the baseline: each segment's output address through the domain.
  const pas = m.sim.iommu.translateBatch(nic.rid, BigUint64Array.from(segs.map((s) => s.dmaAddress)), 'read');
  if (pas.faults !== 0) throw new Error('attach bench: segments do not translate');
  ctx.deregMr(mr);
  const P = 262144;
  const cbase = 0x7000_0000_0000n;
  const d = descs(P, (i) => cbase + BigInt(i) * 4096n, (i) => pas.out[i >> 4]! + BigInt(i & 15) * 4096n);
  let live: ReturnType<typeof reg> | null = null;
  const t = rounds([
    { name: 'api', run: () => { live = reg(); }, reset: () => { ctx.deregMr(live!); } },
    { name: 'core', run: () => coreMapBatch(m.sim, dom, d, Prot.RW), reset: () => { m.sim.core.exports.unmap(dom.id, cbase, GiB); } },
  ], 5, 1);
  out.attach_1g_64kseg_vs_core_batch = t.get('api')! / t.get('core')!;
  out.attach_1g_64kseg_ms = t.get('api')! / 1e6;
  out.attach_1g_core_batch_ms = t.get('core')! / 1e6;
}

// --------------------------------------------------------------- the default scenario

function scenario(out: Record<string, number>): void {
  const cli = fileURLToPath(new URL('../cli.js', import.meta.url));
  const time = (args: string[]) => {
    const t0 = performance.now();
    execFileSync(process.execPath, args, { stdio: 'ignore' });
    return performance.now() - t0;
  };
  // Wall time of the children, whatever BENCH_CLOCK says: this process's CPU time stays near
  // zero while it waits for a child. Interleaved, one warm-up round, medians.
  const run: number[] = [];
  const node: number[] = [];
  for (let r = 0; r < 6; r++) {
    const a = time([cli, 'run']);
    const b = time(['-e', '']);
    if (r > 0) { run.push(a); node.push(b); }
  }
  out.scenario_default_vs_node_startup = median(run) / median(node);
  out.scenario_default_ms = median(run);
  out.node_startup_ms = median(node);
}

/** All the keys, or only the named parts (copy, hit, walk, attach, scenario: --only=issue15.walk,hit). */
export async function benchIssue15(parts?: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const want = (p: string) => !parts || parts.includes(p);
  if (want('copy')) for (const c of COPIES) await copyCase(c, out);
  if (want('hit')) await translateHit(out);
  if (want('walk')) await walksAndMaps(out);
  if (want('attach')) await attach(out);
  if (want('scenario')) scenario(out);
  return out;
}
