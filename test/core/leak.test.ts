/**
 * Leak test: 100k map/unmap pairs per format (strict; 30k lazy) (4K and 2M leaves, translations in between so the
 * IOTLB fills and evicts), then every resource is back where it started.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type PgtableFormat } from '../../src/index.js';
import { HBM_BASE, RAM_BASE } from '../helpers/sim.js';
import { K4, M2 } from './helpers/pte.js';
import { rig, RID } from './helpers/setup.js';

/** Map/unmap pairs: 100k for strict domains, fewer for lazy ones (same code paths plus the queue). */
const ROUNDS = { strict: 100_000, lazy: 30_000 };
const LIVE = 300;   // mappings alive at once: more than the 256-entry IOTLB holds
const SLOTS = 640;  // 2 MiB IOVA slots the mappings rotate through (1.25 GiB of IOVA)
const BASE = 0x10_0000_0000n;

describe.each([['vtd-ss', true], ['arm-lpae-s1', true], ['vtd-ss', false], ['arm-lpae-s1', false]] as [PgtableFormat, boolean][])(
  '%s strict=%s', (format, strict) => {
    it(`${strict ? ROUNDS.strict : ROUNDS.lazy} map/unmap pairs leave no frame, table, IOTLB entry or arena chunk behind`, async () => {
      const { sim, unit, dom } = await rig(format, { strict, tlbSets: 64, tlbWays: 4, flushQueue: 64 });
      const live: { iova: bigint; size: bigint; pa: bigint }[] = [];
      let n = 0;
      const step = (i: number): void => {
        const slot = BigInt((i * 7919) % SLOTS);
        const big = i % 3 === 0;
        const size = big ? M2 : K4;
        const iova = BASE + slot * M2 + (big ? 0n : BigInt(i % 512) * K4);
        const pa = (i & 1 ? HBM_BASE : RAM_BASE) + BigInt(i % 256) * M2 + (big ? 0n : BigInt(i % 7) * K4);
        // A slot still in use by an older mapping is skipped (map would be EEXIST).
        if (live.some((l) => l.iova >> 21n === iova >> 21n)) return;
        dom.map(iova, pa, size, Prot.RW);
        live.push({ iova, size, pa });
        n++;
        const t = sim.iommu.translate(RID, iova + size - 8n, 'rw');
        if (!t.ok || t.pa !== pa + size - 8n) throw new Error(`translate ${iova.toString(16)}: ${JSON.stringify(t, (_k, v) => String(v))}`);
        const old = live[(i * 31) % live.length]!;
        const o = sim.iommu.translate(RID, old.iova, 'read');
        if (!o.ok || o.pa !== old.pa) throw new Error(`translate old ${old.iova.toString(16)}`);
        if (live.length > LIVE) {
          const gone = live.shift()!;
          const r = dom.unmap(gone.iova, gone.size);
          if (r !== gone.size) throw new Error(`unmap ${gone.iova.toString(16)} returned ${r}`);
        }
      };
      const drain = (): void => {
        for (const l of live.splice(0)) expect(dom.unmap(l.iova, l.size)).toBe(l.size);
        unit.flush();
      };

      // Warm-up. The arena backs RAM sparsely through a radix tree whose leaf nodes (one per
      // 4 MiB of RAM) are made on a page's first write and kept for good; freed frames give back
      // their data chunk and their frame-group record, but not the radix node. The frame
      // allocator is next-fit, so table frames walk through all of RAM and would keep adding
      // radix nodes (a bounded cost: 256 nodes for 1 GiB) until every 4 MiB block was touched.
      // So the warm-up touches every block once: hold every free frame, write one zero entry per
      // 4 MiB (the last slot of the page, which is zero in any table), free them all again, and
      // run one round of the workload. The start values are measured after that.
      const held: [bigint, number][] = [];
      for (const run of [4096, 1]) {
        for (;;) {
          try { held.push([sim.memory.allocFrames(run), run]); } catch { break; }
        }
      }
      expect(sim.memory.framesFree()).toBe(0n);
      for (let b = 0n; b < 1n << 30n; b += 4n << 20n) sim.memory.write(RAM_BASE + b + 4088n, new Uint8Array(8));
      for (const [pa, run] of held) sim.memory.freeFrames(pa, run);
      for (let i = 0; i < 2 * LIVE; i++) step(i);
      drain();
      const start = {
        free: sim.memory.framesFree(), tables: dom.tableFrames, tlb: unit.stats().tlbValid,
        chunks: sim.memory.arena().chunksUsed, mapped: dom.mappedBytes,
      };
      expect(start.tables).toBe(1);
      expect(start.tlb).toBe(0);
      expect(start.mapped).toBe(0n);

      let peakTlb = 0;
      const rounds = strict ? ROUNDS.strict : ROUNDS.lazy;
      for (let i = 2 * LIVE; n < rounds + 2 * LIVE; i++) {
        step(i);
        if (i % 1000 === 0) peakTlb = Math.max(peakTlb, unit.stats().tlbValid);
      }
      // The IOTLB filled (set conflicts keep a 64 x 4 TLB a little short of 256; lazy mode flushes
      // the domain every 64 unmaps) and evicted: far more walks than the live set needs.
      expect(peakTlb).toBeGreaterThanOrEqual(strict ? 200 : 100);
      const s = unit.stats();
      expect(s.hits).toBeGreaterThan(0n);
      expect(s.misses).toBeGreaterThan(BigInt(rounds));
      drain();
      expect({
        free: sim.memory.framesFree(), tables: dom.tableFrames, tlb: unit.stats().tlbValid,
        chunks: sim.memory.arena().chunksUsed, mapped: dom.mappedBytes,
      }).toEqual(start);
    });
  });
