/**
 * mapsg_1g_ms: dma_map_sg + dma_unmap_sg of a 1 GiB list of 262144 scattered 4 KiB pages
 * through a strict VT-d domain. mapsg_overhead_vs_core: that time over the core's own batch
 * map + unmap of the same descriptors (mapBatch/unmapBatch driven directly), target <= 1.5.
 * Median of interleaved runs.
 */
import { ABI } from '../bindings/core.js';
import { createSimulator } from '../src/simulator.js';
import { DMA_BIDIRECTIONAL, DmaDevice, ScatterList, dmaBitMask } from '../src/dma-mapping/index.js';

const N = 262144;
const RUNS = 7;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchMapSg(): Promise<{ mapsg_1g_ms: number; mapsg_overhead_vs_core: number }> {
  const sim = await createSimulator({ arenaBytes: 128 << 20 });
  sim.memory.addRegion({ base: 0x8000_0000n, size: 2n << 30n, kind: 'ram', name: 'ram' });
  const unit = sim.iommu.createUnit({ family: 'vtd' });
  const domain = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48, strict: true });
  const dev = new DmaDevice(sim, { rid: 0x0300, domain, dmaMask: dmaBitMask(64) });
  const base = sim.memory.allocFrames(N);
  const basePfn = Number(base >> 12n);
  const sg = new ScatterList(N);
  for (let i = 0; i < N; i++) {
    sg.pfn[i] = basePfn + ((i * 5) % N); // no two neighbours contiguous: 262144 descriptors
    sg.length[i] = 4096;
  }

  const core = sim.core;
  const e = core.exports;
  const per = ABI.STAGING_SIZE / ABI.MAPDESC_STRIDE;
  const iovaBase = 0x1_0000_0000n;
  const writeDescs = (from: number, n: number, withPa: boolean): void => {
    const v = core.views.u64;
    const b = core.layout.staging >> 3;
    for (let k = 0; k < n; k++) {
      const i = from + k;
      const w = b + k * (ABI.MAPDESC_STRIDE >> 3);
      v[w] = iovaBase + BigInt(i) * 4096n;
      if (withPa) v[w + 1] = BigInt(sg.pfn[i]!) * 4096n;
      v[w + 2] = 4096n;
    }
  };
  const coreRun = (): number => {
    const t0 = performance.now();
    for (let i = 0; i < N; i += per) {
      const n = Math.min(per, N - i);
      writeDescs(i, n, true);
      if (e.mapBatch(domain.id, n, ABI.PROT_READ | ABI.PROT_WRITE | ABI.PROT_CACHE) < 0) throw new Error('core mapBatch failed');
    }
    for (let i = 0; i < N; i += per) {
      const n = Math.min(per, N - i);
      writeDescs(i, n, false);
      e.unmapBatch(domain.id, n);
    }
    return performance.now() - t0;
  };
  const apiRun = (): number => {
    const t0 = performance.now();
    if (dev.mapSg(sg, DMA_BIDIRECTIONAL) === 0) throw new Error('mapSg failed');
    dev.unmapSg(sg, DMA_BIDIRECTIONAL);
    return performance.now() - t0;
  };

  // Warm up both paths (JIT, page-table frames).
  apiRun();
  coreRun();
  const api: number[] = [];
  const raw: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    api.push(apiRun());
    raw.push(coreRun());
  }
  const a = median(api);
  const c = median(raw);
  return { mapsg_1g_ms: Math.round(a * 100) / 100, mapsg_overhead_vs_core: Math.round((a / c) * 1000) / 1000 };
}
