/**
 * Nested translation (issue 16): a guest-owned stage-1 table over a stage-2 nest parent, every
 * stage-1 table fetch and the output translated by stage 2, faults saying which stage failed with
 * the family's codes, walk() showing both stages, nested invalidation.
 *
 * The guest's stage-1 table is built by an ordinary paging domain of the stage-1 format (never
 * attached): its tables sit at addresses the stage 2 maps one to one (IPA = PA), page by page.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type IommuFamily, type PgtableFormat } from '../../src/index.js';
import { makeSim, pattern, RAM_BASE } from '../helpers/sim.js';
import { expectErrno, RID } from '../core/helpers/setup.js';

const K4 = 0x1000n;
const DATA = RAM_BASE + 0x1000_1000n;
const IOVA = 0x7_0000_0000n;
const PAIRS: [IommuFamily, PgtableFormat, PgtableFormat][] = [
  ['smmuv3', 'arm-lpae-s1', 'arm-lpae-s2'], ['vtd', 'x86-64', 'vtd-ss'], ['amd-vi', 'x86-64', 'amd-v1'],
];

async function nestedRig(family: IommuFamily, s1: PgtableFormat, s2fmt: PgtableFormat, s1Prot = Prot.RW, dirtyTracking = false) {
  const sim = await makeSim();
  const unit = sim.iommu.createUnit({ family });
  const guest = unit.createDomain({ type: 'paging', format: s1 });
  guest.map(IOVA, DATA, 4n * K4, s1Prot);
  const tables = [...new Set(guest.walk(IOVA).levels.map((l) => l.table))];
  const s2 = unit.createDomain({ type: 'paging', format: s2fmt, nestParent: true, dirtyTracking });
  for (const t of tables) s2.map(t, t, K4, Prot.RW);
  for (let i = 0n; i < 4n; i++) s2.map(DATA + i * K4, DATA + i * K4, K4, Prot.RW);
  const nested = unit.createDomain({ type: 'nested', parent: s2, format: s1, root: guest.root });
  sim.iommu.attach(RID, nested);
  return { sim, unit, guest, s2, nested, tables };
}

describe('nested stage 1 over stage 2', () => {
  it.each(PAIRS)('%s: %s over %s translates, byte for byte, and walk() shows both stages', async (family, s1, s2fmt) => {
    const { sim, unit, nested, guest, tables } = await nestedRig(family, s1, s2fmt);
    expect(nested.type).toBe('nested');
    expect(sim.iommu.translate(RID, IOVA + 0x123n, 'read')).toMatchObject({ ok: true, pa: DATA + 0x123n, perm: 3 });
    expect(unit.stats().nestedWalks).toBe(1n);
    expect(sim.iommu.translate(RID, IOVA + 0x456n, 'write')).toMatchObject({ ok: true });
    expect(unit.stats().nestedWalks).toBe(1n); // the combined translation was cached
    const data = pattern(3 * 4096, 5);
    expect(sim.dma.write({ rid: RID, addr: IOVA + 0x800n }, data)).toMatchObject({ ok: true });
    expect(sim.memory.read(DATA + 0x800n, data.length)).toEqual(data);
    const w = nested.walk(IOVA + 0x2010n);
    expect(w).toMatchObject({ ok: true, pa: DATA + 0x2010n, pageSize: K4 });
    expect(w.levels.map((l) => l.entry)).toEqual(guest.walk(IOVA + 0x2010n).levels.map((l) => l.entry));
    expect(w.levels.map((l) => l.table)).toEqual(tables);
    // One stage-2 walk per stage-1 table fetch, and one of the output.
    expect(w.stage2).toHaveLength(tables.length + 1);
    for (const s of w.stage2!) expect(s.length).toBeGreaterThan(0);
    expect(unit.faults()).toEqual([]);
  });

  it.each(PAIRS)('%s: a stage-2 fault on a stage-1 table fetch and on the output', async (family, s1, s2fmt) => {
    const { sim, unit, s2, nested, tables } = await nestedRig(family, s1, s2fmt);
    expect(sim.iommu.translate(RID, IOVA, 'read')).toMatchObject({ ok: true });
    // The host takes away the page holding the guest's last-level table.
    s2.unmap(tables.at(-1)!, K4);
    const r = sim.iommu.translate(RID, IOVA, 'read'); // the cached translation was dropped with it
    expect(r).toMatchObject({ ok: false, reason: 'translation', stage: 2 });
    const f = unit.faults();
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ domain: nested.id, iova: IOVA, stage2: true, nested: { stage: 2, tableFetch: true } });
    expect(f[0]!.nested!.ipa >> 12n).toBe(tables.at(-1)! >> 12n);
    expect(f[0]!.code).toBe(family === 'smmuv3' ? 0x10 : family === 'vtd' ? 6 : 2);
    const w = nested.walk(IOVA);
    expect(w).toMatchObject({ ok: false, stage: 2 });
    expect(w.ipa! >> 12n).toBe(tables.at(-1)! >> 12n);
    s2.map(tables.at(-1)!, tables.at(-1)!, K4, Prot.RW);
    // The output page: stage 2 read-only, then gone.
    s2.unmap(DATA + K4, K4);
    s2.map(DATA + K4, DATA + K4, K4, Prot.READ);
    expect(sim.iommu.translate(RID, IOVA + K4, 'read')).toMatchObject({ ok: true });
    expect(sim.iommu.translate(RID, IOVA + K4 + 8n, 'write')).toMatchObject({ ok: false, reason: 'permission', stage: 2 });
    s2.unmap(DATA + K4, K4);
    expect(sim.iommu.translate(RID, IOVA + K4, 'write')).toMatchObject({ ok: false, reason: 'translation', stage: 2 });
    const g = unit.faults();
    expect(g.map((x) => x.nested)).toEqual([
      { stage: 2, ipa: DATA + K4 + 8n, tableFetch: false },
      { stage: 2, ipa: DATA + K4, tableFetch: false },
    ]);
  });

  it.each(PAIRS)('%s: a stage-1 fault reports stage 1 with the first-stage codes', async (family, s1, s2fmt) => {
    const { sim, unit } = await nestedRig(family, s1, s2fmt, Prot.READ);
    expect(sim.iommu.translate(RID, IOVA + 0x10_0000n, 'read')).toMatchObject({ ok: false, reason: 'translation', stage: 1 });
    expect(sim.iommu.translate(RID, IOVA, 'write')).toMatchObject({ ok: false, reason: 'permission', stage: 1 });
    const f = unit.faults();
    expect(f.map((x) => x.nested?.stage)).toEqual([1, 1]);
    expect(f.every((x) => !x.stage2)).toBe(true);
    if (family === 'vtd') expect(f.map((x) => x.code)).toEqual([0x71, 0x85]); // first-stage reasons
    if (family === 'smmuv3') expect(f.map((x) => x.code)).toEqual([0x10, 0x13]);
  });

  it.each(PAIRS)('%s: a dirty-tracking stage 2 marks the guest pages written through the nested domain', async (family, s1, s2fmt) => {
    const { sim, s2 } = await nestedRig(family, s1, s2fmt, Prot.RW, true);
    s2.readAndClearDirty(DATA, 4n * K4, K4);
    expect(sim.iommu.translate(RID, IOVA + K4, 'read')).toMatchObject({ ok: true });
    expect(sim.iommu.translate(RID, IOVA + K4, 'write')).toMatchObject({ ok: true }); // cached clean: walked again
    expect(sim.dma.fill({ rid: RID, addr: IOVA + 3n * K4 }, 1, 16n)).toMatchObject({ ok: true });
    const bm = s2.readAndClearDirty(DATA, 4n * K4, K4);
    expect(bm[0]).toBe(0b1010n);
    // Cleared: the next write through the cached nested translation marks the page again.
    sim.iommu.translate(RID, IOVA + K4, 'write');
    expect(s2.readAndClearDirty(DATA, 4n * K4, K4)[0]).toBe(0b10n);
  });

  it('x86-64 stage 1: the walker setting an A bit writes through stage 2, which marks the table page', async () => {
    const { sim, s2, guest } = await nestedRig('vtd', 'x86-64', 'vtd-ss', Prot.RW, true);
    const leaf = guest.walk(IOVA + 2n * K4).levels.at(-1)!;
    const slot = leaf.table + BigInt(leaf.index) * 8n;
    const raw = new DataView(new ArrayBuffer(8));
    raw.setBigUint64(0, leaf.entry & ~0x20n, true); // A clear
    sim.memory.write(slot, new Uint8Array(raw.buffer));
    s2.readAndClearDirty(leaf.table, K4, K4);
    expect(sim.iommu.translate(RID, IOVA + 2n * K4, 'read')).toMatchObject({ ok: true });
    expect(guest.walk(IOVA + 2n * K4).levels.at(-1)!.entry & 0x20n).toBe(0x20n);
    expect(s2.readAndClearDirty(leaf.table, K4, K4)[0]).toBe(1n);
  });

  it('the guest changes its table: stale until the nested domain is invalidated', async () => {
    const { sim, guest, nested } = await nestedRig('smmuv3', 'arm-lpae-s1', 'arm-lpae-s2');
    expect(sim.iommu.translate(RID, IOVA, 'read')).toMatchObject({ ok: true, pa: DATA });
    guest.unmap(IOVA, K4); // the guest's own table write (its driver would then invalidate)
    expect(sim.iommu.translate(RID, IOVA, 'read')).toMatchObject({ ok: true, pa: DATA });
    nested.invalidate(IOVA, IOVA + K4);
    expect(sim.iommu.translate(RID, IOVA, 'read')).toMatchObject({ ok: false, stage: 1 });
  });

  it('bad input: parent, format pair, map, destroy order', async () => {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family: 'smmuv3' });
    const plain = unit.createDomain({ type: 'paging', format: 'arm-lpae-s2' });
    const s2 = unit.createDomain({ type: 'paging', format: 'arm-lpae-s2', nestParent: true });
    expect(s2.nestParent).toBe(true);
    expectErrno(() => unit.createDomain({ type: 'nested', parent: plain, format: 'arm-lpae-s1', root: RAM_BASE }), 'EINVAL');
    expectErrno(() => unit.createDomain({ type: 'nested', format: 'arm-lpae-s1', root: RAM_BASE }), 'EINVAL');
    expectErrno(() => unit.createDomain({ type: 'nested', parent: s2, format: 'x86-64', root: RAM_BASE }), 'EINVAL');
    expectErrno(() => unit.createDomain({ type: 'nested', parent: s2, format: 'arm-lpae-s1', root: RAM_BASE + 8n }), 'EINVAL');
    expectErrno(() => unit.createDomain({ type: 'nested', parent: s2, format: 'arm-lpae-s1', root: -1n }), 'EINVAL');
    const other = sim.iommu.createUnit({ family: 'smmuv3' });
    expectErrno(() => other.createDomain({ type: 'nested', parent: s2, format: 'arm-lpae-s1', root: RAM_BASE }), 'EINVAL');
    const n = unit.createDomain({ type: 'nested', parent: s2, format: 'arm-lpae-s1', root: RAM_BASE });
    expect(n.parent).toBe(s2);
    expectErrno(() => n.map(0n, RAM_BASE, K4, Prot.RW), 'ENODEV');
    expectErrno(() => s2.destroy(), 'EBUSY');
    n.destroy();
    s2.destroy();
  });
});

describe('report', () => {
  it('the walk section of a nested domain shows both stages and the failing stage', async () => {
    const { iommuWalkSection } = await import('../../src/scenario/sections.js');
    const { s2, nested, tables } = await nestedRig('smmuv3', 'arm-lpae-s1', 'arm-lpae-s2');
    const ok = iommuWalkSection(nested, IOVA);
    expect(ok.lines.filter((l) => l.includes('stage 2 of'))).toHaveLength(tables.length + 1);
    expect(ok.lines.at(-1)).toBe(`=> 0x${DATA.toString(16)} (4K page)`);
    s2.unmap(DATA, K4);
    const bad = iommuWalkSection(nested, IOVA);
    expect(bad.lines.at(-1)).toBe(`=> no translation (translation, stage 2 at ipa 0x${DATA.toString(16)})`);
    expect(bad.data).toMatchObject({ stage: 2, ipa: DATA, parent: s2.id });
  });
});
