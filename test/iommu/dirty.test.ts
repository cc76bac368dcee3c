/**
 * Dirty tracking (issue 16): hardware marks leaves written through the IOMMU (D bits; ARM DBM),
 * read_and_clear_dirty returns iommufd's bitmap (LSB first, NO_CLEAR), clearing flushes the
 * IOTLB so that a write through a cached translation marks the leaf again, checked per format
 * and against a reference model with fast-check.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Prot, type PgtableFormat } from '../../src/index.js';
import { RAM_BASE } from '../helpers/sim.js';
import { expectErrno, rig, RID } from '../core/helpers/setup.js';

const K4 = 0x1000n;
const M2 = 0x20_0000n;
// Data pages far above the page tables, and off 64K alignment so every format maps 4K leaves.
const DATA = RAM_BASE + 0x1000_1000n;
const FORMATS: PgtableFormat[] = ['vtd-ss', 'x86-64', 'arm-lpae-s1', 'arm-lpae-s2', 'amd-v1', 'riscv'];
// Formats whose hardware marks writes whatever the tracking switch says: x86-64 always sets D,
// ARM DBM leaves made writable-clean stay tracked by HTTU.
// RISC-V leaves cleared of D need the hardware A/D update for any write.
const ALWAYS = new Set<PgtableFormat>(['x86-64', 'arm-lpae-s1', 'arm-lpae-s2', 'riscv']);
const ARM = new Set<PgtableFormat>(['arm-lpae-s1', 'arm-lpae-s2']);

async function dirtyRig(format: PgtableFormat) {
  const r = await rig(format, { ias: format === 'riscv' ? 39 : 48, attach: false });
  const dom = r.unit.createDomain({ type: 'paging', format, ias: format === 'riscv' ? 39 : 48, dirtyTracking: true });
  r.sim.iommu.attach(RID, dom);
  return { ...r, dom };
}

function bits(bm: BigUint64Array): number[] {
  const out: number[] = [];
  bm.forEach((w, i) => { for (let b = 0; b < 64; b++) if ((w >> BigInt(b)) & 1n) out.push(i * 64 + b); });
  return out;
}

describe('dirty bitmap per format', () => {
  it.each(FORMATS)('%s: writes mark pages, NO_CLEAR keeps them, clearing flushes the IOTLB', async (format) => {
    const { sim, unit, dom } = await dirtyRig(format);
    expect(dom.dirtyTracking).toBe(true);
    const base = 0x100_0000n;
    dom.map(base, DATA, 16n * K4, Prot.RW);
    // ARM: a writable leaf starts writable-dirty (Linux sets DBM with AP[2] clear at map time);
    // the others start as the map left them. Users clear once after enabling, as here.
    const first = bits(dom.readAndClearDirty(base, 16n * K4, K4));
    if (ARM.has(format) || format === 'vtd-ss' || format === 'amd-v1') expect(first).toEqual(ARM.has(format) ? [...Array(16).keys()] : []);
    expect(bits(dom.readAndClearDirty(base, 16n * K4, K4))).toEqual([]);
    // A read caches the translation of a clean leaf; the write after it must still mark it.
    expect(sim.iommu.translate(RID, base + 3n * K4, 'read')).toMatchObject({ ok: true });
    expect(sim.iommu.translate(RID, base + 3n * K4, 'write')).toMatchObject({ ok: true, pa: DATA + 3n * K4 });
    expect(sim.iommu.translate(RID, base + 9n * K4 + 7n, 'write')).toMatchObject({ ok: true });
    // A DMA write marks the pages it reaches.
    expect(sim.dma.fill({ rid: RID, addr: base + 12n * K4 + 100n }, 0xab, K4)).toMatchObject({ ok: true });
    const want = [3, 9, 12, 13];
    expect(bits(dom.readAndClearDirty(base, 16n * K4, K4, { noClear: true }))).toEqual(want);
    expect(bits(dom.readAndClearDirty(base, 16n * K4, K4))).toEqual(want);
    expect(bits(dom.readAndClearDirty(base, 16n * K4, K4))).toEqual([]);
    // After the clear, a write through the (flushed) IOTLB marks the leaf again.
    const inv = unit.stats().invalidations;
    expect(sim.iommu.translate(RID, base + 3n * K4, 'write')).toMatchObject({ ok: true });
    expect(bits(dom.readAndClearDirty(base + 2n * K4, 4n * K4, K4))).toEqual([1]);
    expect(unit.stats().invalidations).toBeGreaterThan(inv);
    // Reads never mark.
    sim.iommu.translate(RID, base + 5n * K4, 'read');
    expect(bits(dom.readAndClearDirty(base, 16n * K4, K4))).toEqual([]);
    // The bitmap is iommufd's: bit i = page i of pageSize from iova; one dirty 4K page marks the
    // 8K page that holds it; a range with holes skips them.
    sim.iommu.translate(RID, base + 5n * K4, 'write');
    expect(bits(dom.readAndClearDirty(base - 64n * K4, 128n * K4, 2n * K4))).toEqual([32 + 2]);
  });

  it('amd-v1: a dirty 64 KiB size-encoded leaf (16 replicated entries) marks its 16 pages', async () => {
    const { sim, dom } = await dirtyRig('amd-v1');
    dom.map(0x10_0000n, RAM_BASE + 0x1010_0000n, 0x1_0000n, Prot.RW);
    expect(dom.walk(0x10_0000n).pageSize).toBe(0x1_0000n);
    dom.readAndClearDirty(0x10_0000n, 0x1_0000n, K4);
    sim.iommu.translate(RID, 0x10_7000n, 'write');
    expect(bits(dom.readAndClearDirty(0x10_0000n, 0x2_0000n, K4))).toEqual([...Array(16).keys()]);
    expect(bits(dom.readAndClearDirty(0x10_0000n, 0x2_0000n, K4))).toEqual([]);
  });

  it.each(['vtd-ss', 'arm-lpae-s1', 'amd-v1'] as PgtableFormat[])('%s: a dirty 2 MiB leaf marks all of its pages', async (format) => {
    const { sim, dom } = await dirtyRig(format);
    dom.map(0x4000_0000n, RAM_BASE + 0x2000_0000n, M2, Prot.RW);
    dom.readAndClearDirty(0x4000_0000n, M2, K4);
    expect(dom.walk(0x4000_0000n).pageSize).toBe(M2);
    sim.iommu.translate(RID, 0x4000_0000n + 0x1234n, 'write');
    const bm = dom.readAndClearDirty(0x4000_0000n - M2, 2n * M2, M2);
    expect(bits(bm)).toEqual([1]);
    sim.iommu.translate(RID, 0x4000_0000n + 0x1234n, 'write');
    expect(bits(dom.readAndClearDirty(0x4000_0000n, M2, K4)).length).toBe(512);
  });

  it('bad input: EINVAL with tracking off or misaligned ranges, EOPNOTSUPP without the capability', async () => {
    const { sim, unit, dom } = await dirtyRig('vtd-ss');
    dom.map(0n, DATA, K4, Prot.RW);
    expectErrno(() => dom.readAndClearDirty(0n, K4, 3000n), 'EINVAL');
    expectErrno(() => dom.readAndClearDirty(0x800n, K4, K4), 'EINVAL');
    expectErrno(() => dom.readAndClearDirty(0n, 0n, K4), 'EINVAL');
    expectErrno(() => dom.readAndClearDirty(0n, K4, K4, { noClear: 1 as unknown as boolean }), 'EINVAL');
    dom.setDirtyTracking(false);
    expect(dom.dirtyTracking).toBe(false);
    sim.iommu.translate(RID, 0n, 'write');
    expectErrno(() => dom.readAndClearDirty(0n, K4, K4), 'EINVAL');
    dom.setDirtyTracking(true);
    // Written while tracking was off: VT-d set no D bit.
    expect(bits(dom.readAndClearDirty(0n, K4, K4))).toEqual([]);
    const plain = unit.createDomain({ type: 'paging', format: 'vtd-ss' });
    expectErrno(() => plain.setDirtyTracking(true), 'EOPNOTSUPP');
    expectErrno(() => unit.createDomain({ type: 'identity', dirtyTracking: true }), 'EOPNOTSUPP');
    expectErrno(() => unit.createDomain({ type: 'blocked' }).setDirtyTracking(true), 'EOPNOTSUPP');
  });
});

describe('dirty bitmap against a reference model', () => {
  it.each(FORMATS)('%s: random writes, reads, clears and switches', async (format) => {
    const { sim, dom } = await dirtyRig(format);
    const pages = 24;
    const base = 0x80_0000n;
    dom.map(base, DATA, BigInt(pages) * K4, Prot.RW);
    const model = new Set<number>();
    let on = true;
    type Op = { k: 'w' | 'r'; p: number } | { k: 'get'; noClear: boolean; first: number; n: number; shift: number } | { k: 'switch' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constantFrom('w' as const, 'r' as const), p: fc.nat(pages - 1) }),
      fc.record({ k: fc.constant('get' as const), noClear: fc.boolean(), first: fc.nat(pages - 1), n: fc.integer({ min: 1, max: pages }), shift: fc.constantFrom(0, 1) }),
      fc.record({ k: fc.constant('switch' as const) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      // Each run starts from tracking on and nothing dirty.
      on = true;
      dom.setDirtyTracking(true);
      dom.readAndClearDirty(base, BigInt(pages) * K4, K4);
      model.clear();
      for (const o of ops) {
        if (o.k === 'w' || o.k === 'r') {
          expect(sim.iommu.translate(RID, base + BigInt(o.p) * K4 + 8n, o.k === 'w' ? 'write' : 'read')).toMatchObject({ ok: true });
          if (o.k === 'w' && (on || ALWAYS.has(format))) model.add(o.p);
        } else if (o.k === 'switch') {
          on = !on;
          dom.setDirtyTracking(on);
        } else if (o.k === 'get' && on) {
          const ps = 1 << o.shift;
          const first = o.first & ~(ps - 1);
          const n = Math.min(o.n, pages - first);
          const span = Math.ceil(n / ps) * ps;
          const got = bits(dom.readAndClearDirty(base + BigInt(first) * K4, BigInt(span) * K4, BigInt(ps) * K4, { noClear: o.noClear }));
          const want = new Set<number>();
          for (let p = first; p < first + span; p++) {
            if (model.has(p)) { want.add((p - first) >> o.shift); if (!o.noClear) model.delete(p); }
          }
          expect(got).toEqual([...want].sort((a, b) => a - b));
        }
      }
    }), { numRuns: 60, seed: 16 });
  });
});
