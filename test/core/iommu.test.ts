/**
 * IOMMU behaviour: attachments, fault records with each family's exact codes, the bounded fault
 * ring, IOTLB counters and eviction, strict and lazy invalidation, batches, domain teardown.
 */
import { describe, expect, it } from 'vitest';
import { errnoName, Prot, type PgtableFormat } from '../../src/index.js';
import { HBM_BASE, makeSim, RAM_BASE } from '../helpers/sim.js';
import { G1, K4, lpaeLeaf, M2, readEntry, writeEntry } from './helpers/pte.js';
import { expectErrno, rig, RID } from './helpers/setup.js';

const FORMATS: PgtableFormat[] = ['vtd-ss', 'arm-lpae-s1'];

describe('attachments', () => {
  it.each(['vtd', 'smmuv3'] as const)('%s: identity and direct pass addresses through; blocked faults', async (family) => {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family });
    const ident = unit.createDomain({ type: 'identity' });
    const blocked = unit.createDomain({ type: 'blocked' });
    sim.iommu.attach(1, ident);
    sim.iommu.attach(2, 'direct');
    sim.iommu.attach(3, blocked);
    expect(sim.iommu.domainOf(1)).toBe(ident.id);
    expect(sim.iommu.domainOf(2)).toBe('direct');
    expect(sim.iommu.domainOf(3)).toBe(blocked.id);
    for (const rid of [1, 2]) {
      expect(sim.iommu.translate(rid, 0x1234_5678n, 'rw')).toMatchObject({ ok: true, pa: 0x1234_5678n, perm: 3 });
      expect(sim.iommu.translate(rid, HBM_BASE + 5n, 'write')).toMatchObject({ ok: true, pa: HBM_BASE + 5n });
    }
    expect(unit.faults()).toEqual([]);
    const r = sim.iommu.translate(3, 0x1000n, 'write');
    expect(r).toEqual({ ok: false, code: 'EPERM', reason: 'blocked', familyCode: family === 'vtd' ? 2 : 0 });
    expectErrno(() => ident.map(0n, RAM_BASE, K4, Prot.RW), 'ENODEV');
    expectErrno(() => blocked.map(0n, RAM_BASE, K4, Prot.RW), 'ENODEV');
  });

  it('paging domains check their widths per format (EINVAL) and start with one table frame', async () => {
    const sim = await makeSim();
    const free0 = sim.memory.framesFree();
    const v = sim.iommu.createUnit({ family: 'vtd' });
    for (const ias of [32, 40, 47, 64]) expectErrno(() => v.createDomain({ type: 'paging', format: 'vtd-ss', ias }), 'EINVAL');
    expectErrno(() => v.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 53 }), 'EINVAL');
    for (const ias of [31, 49]) expectErrno(() => v.createDomain({ type: 'paging', format: 'arm-lpae-s1', ias }), 'EINVAL');
    expectErrno(() => v.createDomain({ type: 'paging', format: 'arm-lpae-s1', ias: 48, oas: 49 }), 'EINVAL');
    expect(sim.memory.framesFree()).toBe(free0);
    const d = v.createDomain({ type: 'paging', format: 'vtd-ss', ias: 57, oas: 52 });
    expect(d.tableFrames).toBe(1);
    expect(sim.memory.framesFree()).toBe(free0 - 1n);
    d.map((1n << 57n) - K4, RAM_BASE, K4, Prot.RW);
    expect(d.walk((1n << 57n) - 1n)).toMatchObject({ ok: true, pa: RAM_BASE + K4 - 1n });
    expect(d.walk((1n << 57n) - 1n).levels.length).toBe(5);
    expect(d.tableFrames).toBe(5);
  });

  it('VT-d blocked records fault reason 2 (context entry not present) on the unit', async () => {
    const sim = await makeSim();
    const unit = sim.iommu.createUnit({ family: 'vtd' });
    const blocked = unit.createDomain({ type: 'blocked' });
    sim.iommu.attach(RID, blocked);
    sim.iommu.translate(RID, 0x5000n, 'read');
    expect(unit.faults()).toMatchObject([{ rid: RID, domain: blocked.id, iova: 0x5000n, access: 'read', reason: 'blocked', code: 2 }]);
  });

  it('a requester with no domain faults as no-domain (ENODEV), before and after a detach', async () => {
    const { sim, unit, dom } = await rig('vtd-ss');
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    expect(sim.iommu.domainOf(0x77)).toBe(null);
    expect(sim.iommu.translate(0x77, 0n)).toMatchObject({ ok: false, code: 'ENODEV', reason: 'no-domain' });
    expect(sim.iommu.translate(RID, 0n)).toMatchObject({ ok: true, pa: RAM_BASE });
    sim.iommu.attach(RID, null);
    expect(sim.iommu.domainOf(RID)).toBe(null);
    expect(sim.iommu.translate(RID, 0n)).toMatchObject({ ok: false, code: 'ENODEV', reason: 'no-domain', familyCode: 2 });
    expect(unit.stats().translations).toBe(1n);
    // The never-attached requester had no unit to record on; the detached one is recorded.
    expect(unit.faults()).toMatchObject([{ rid: RID, reason: 'no-domain', code: 2 }]);
  });

  // A stream with no valid STE: SMMUv3 C_BAD_STE 0x04 (spec §D). The requester stays behind the
  // unit it was attached on; one never attached is placed behind a unit explicitly.
  it('SMMUv3: a detached stream reports C_BAD_STE 0x04', async () => {
    const { sim, unit } = await rig('arm-lpae-s1');
    sim.iommu.attach(RID, null);
    const r = sim.iommu.translate(RID, 0n);
    expect(r).toEqual({ ok: false, code: 'ENODEV', reason: 'no-domain', familyCode: 0x04 });
    expect(unit.faults()).toMatchObject([{ rid: RID, domain: -1, code: 0x04, reason: 'no-domain' }]);
  });

  it('VT-d: a requester placed behind a unit with no context entry reports reason 2', async () => {
    const { sim, unit } = await rig('vtd-ss');
    sim.iommu.place(0x99, unit);
    expect(sim.iommu.translate(0x99, 0x1000n, 'write')).toEqual({ ok: false, code: 'ENODEV', reason: 'no-domain', familyCode: 2 });
    expect(unit.faults()).toMatchObject([{ rid: 0x99, iova: 0x1000n, access: 'write', code: 2 }]);
  });
});

describe('VT-d fault records', () => {
  it('write to read-only 5, read of write-only 6, unmapped 5/6 by access, beyond ias 4', async () => {
    const { sim, unit, dom } = await rig('vtd-ss', { ias: 39 });
    dom.map(0x10_0000n, RAM_BASE, K4, Prot.READ);
    dom.map(0x20_0000n, RAM_BASE + K4, K4, Prot.WRITE);
    const t = (iova: bigint, a: 'read' | 'write') => sim.iommu.translate(RID, iova, a);
    expect(t(0x10_0000n, 'read')).toMatchObject({ ok: true, pa: RAM_BASE, perm: 1 });
    expect(t(0x20_0000n, 'write')).toMatchObject({ ok: true, pa: RAM_BASE + K4, perm: 2 });
    expect(t(0x10_0008n, 'write')).toEqual({ ok: false, code: 'EACCES', reason: 'permission', familyCode: 5 });
    expect(t(0x20_0008n, 'read')).toEqual({ ok: false, code: 'EACCES', reason: 'permission', familyCode: 6 });
    expect(t(0x30_0000n, 'read')).toEqual({ ok: false, code: 'EFAULT', reason: 'translation', familyCode: 6 });
    expect(t(0x30_0000n, 'write')).toEqual({ ok: false, code: 'EFAULT', reason: 'translation', familyCode: 5 });
    expect(t(1n << 39n, 'read')).toEqual({ ok: false, code: 'ERANGE', reason: 'address-size', familyCode: 4 });
    expect(sim.iommu.translate(RID, 0x10_0000n, 'rw')).toMatchObject({ ok: false, reason: 'permission', familyCode: 5 });
    const f = unit.faults();
    expect(f.map((x) => [x.iova, x.access, x.reason, x.code])).toEqual([
      [0x10_0008n, 'write', 'permission', 5], [0x20_0008n, 'read', 'permission', 6],
      [0x30_0000n, 'read', 'translation', 6], [0x30_0000n, 'write', 'translation', 5],
      [1n << 39n, 'read', 'address-size', 4], [0x10_0000n, 'write', 'permission', 5],
    ]);
    expect(f.every((x) => x.rid === RID && x.domain === dom.id)).toBe(true);
    expect(f.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(unit.stats().faults).toBe(6n);
  });

  it('a table entry without W restricts the leaf below it (permissions AND over levels)', async () => {
    const { sim, dom } = await rig('vtd-ss', { ias: 48 });
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    const w = dom.walk(0n);
    const l2 = w.levels[2]!; // PDE pointing at the leaf table
    writeEntry(sim, l2.table, l2.index, l2.entry & ~2n); // guest clears W on the PDE
    expect(sim.iommu.translate(RID, 0n, 'read')).toMatchObject({ ok: true, perm: 1 });
    expect(sim.iommu.translate(RID, 8n << 12n, 'read')).toMatchObject({ ok: false, familyCode: 6 });
    sim.iommu.translate(RID, 0n, 'write');
    expect(sim.iommu.translate(RID, 0n, 'write')).toMatchObject({ ok: false, reason: 'permission', familyCode: 5 });
  });
  it('guest-written reserved bits fault with reason 0xC: PS in a PML4E, a misaligned 2M leaf, an address beyond HAW', async () => {
    const { sim, unit, dom } = await rig('vtd-ss', { ias: 48, oas: 40 });
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    dom.map(G1, HBM_BASE & ((1n << 40n) - 1n), M2, Prot.RW);
    dom.map(0x80_0000_0000n, RAM_BASE, K4, Prot.RW);
    const pt = dom.walk(0n).levels[3]!;
    writeEntry(sim, pt.table, 1, (1n << 40n) | 3n);                 // 4K leaf with address bit 40 (HAW 40)
    const pd = dom.walk(G1).levels[2]!;
    writeEntry(sim, pd.table, pd.index, RAM_BASE + K4 | 1n << 7n | 3n); // 2M leaf with bit 12 set
    const pml4 = dom.walk(0x80_0000_0000n).levels[0]!;
    writeEntry(sim, pml4.table, pml4.index, pml4.entry | 1n << 7n);   // PS at level 4 is reserved
    const rsvd = { ok: false, code: 'EFAULT', reason: 'reserved-bit', familyCode: 0xc };
    expect(sim.iommu.translate(RID, K4, 'read')).toEqual(rsvd);
    expect(sim.iommu.translate(RID, G1, 'write')).toEqual(rsvd);
    expect(sim.iommu.translate(RID, 0x80_0000_0000n, 'read')).toEqual(rsvd);
    expect(dom.walk(K4).reason).toBe('reserved-bit');
    expect(sim.iommu.translate(RID, 0n, 'rw')).toMatchObject({ ok: true, pa: RAM_BASE });
    expect(unit.faults().map((f) => f.code)).toEqual([0xc, 0xc, 0xc]);
  });
});

describe('SMMUv3 event records', () => {
  it('unmapped 0x10, permission 0x13, output >= 2^oas 0x11, AF=0 0x12 (over permission)', async () => {
    const { sim, unit, dom } = await rig('arm-lpae-s1', { ias: 48, oas: 40 });
    dom.map(0n, RAM_BASE, 4n * K4, Prot.READ);
    const t = (iova: bigint, a: 'read' | 'write') => sim.iommu.translate(RID, iova, a);
    expect(t(0x10_0000n, 'read')).toEqual({ ok: false, code: 'EFAULT', reason: 'translation', familyCode: 0x10 });
    expect(t(0n, 'write')).toEqual({ ok: false, code: 'EACCES', reason: 'permission', familyCode: 0x13 });
    // A guest writes leaves into the page-table frame behind the IOMMU's back (never cached yet).
    const leaf = dom.walk(K4).levels[3]!;
    expect(leaf.index).toBe(1);
    expect(readEntry(sim, leaf.table, 1)).toBe(leaf.entry);
    writeEntry(sim, leaf.table, 1, lpaeLeaf(1n << 40n, true));               // OA beyond 40 bits
    writeEntry(sim, leaf.table, 2, lpaeLeaf(RAM_BASE, true, { af: false })); // AF = 0
    writeEntry(sim, leaf.table, 3, lpaeLeaf(RAM_BASE, true, { af: false, rdonly: true }));
    writeEntry(sim, leaf.table, 4, lpaeLeaf(RAM_BASE + K4, true));           // a fresh valid page
    writeEntry(sim, leaf.table, 5, lpaeLeaf(RAM_BASE, false));              // type 0 at L3: reserved
    expect(t(K4, 'read')).toEqual({ ok: false, code: 'ERANGE', reason: 'address-size', familyCode: 0x11 });
    expect(t(2n * K4, 'read')).toEqual({ ok: false, code: 'EACCES', reason: 'access-flag', familyCode: 0x12 });
    expect(t(3n * K4, 'write')).toEqual({ ok: false, code: 'EACCES', reason: 'access-flag', familyCode: 0x12 });
    expect(t(4n * K4 + 9n, 'write')).toMatchObject({ ok: true, pa: RAM_BASE + K4 + 9n, perm: 3 });
    expect(t(5n * K4, 'read')).toMatchObject({ ok: false, reason: 'translation', familyCode: 0x10 });
    // Input beyond IAS: SMMUv3 reports it as a translation fault.
    expect(t(1n << 48n, 'read')).toMatchObject({ ok: false, reason: 'address-size', familyCode: 0x10 });
    expect(unit.faults().map((f) => f.code)).toEqual([0x10, 0x13, 0x11, 0x12, 0x12, 0x10, 0x10]);
  });
});

describe('fault ring', () => {
  it.each(FORMATS)('%s: capacity N keeps N records of N+k faults, sets overflow until cleared', async (format) => {
    const N = 4;
    const { sim, unit } = await rig(format, { faultQueue: N });
    for (let i = 0; i < N + 3; i++) sim.iommu.translate(RID, BigInt(i) * K4, 'read');
    let s = unit.stats();
    expect([s.faults, s.faultsQueued, s.faultOverflow]).toEqual([7n, N, true]);
    const f = unit.faults();
    expect(f.map((x) => x.iova)).toEqual([0n, K4, 2n * K4, 3n * K4]);
    expect(f.map((x) => x.seq)).toEqual([1, 2, 3, 4]);
    s = unit.stats();
    expect([s.faultsQueued, s.faultOverflow]).toEqual([0, true]);
    expect(unit.faults()).toEqual([]);
    unit.clearFaultOverflow();
    expect(unit.stats().faultOverflow).toBe(false);
    sim.iommu.translate(RID, 0x99_9000n, 'write');
    expect(unit.faults()).toMatchObject([{ iova: 0x99_9000n, access: 'write', seq: 8 }]);
    expect(unit.stats().faultOverflow).toBe(false);
  });
});

describe.each(FORMATS)('%s IOTLB', (format) => {
  it('first translate is a miss and a walk, the second a hit; a 2M leaf is cached once for all its pieces', async () => {
    const { sim, unit, dom } = await rig(format);
    dom.map(M2, HBM_BASE, M2, Prot.RW);
    expect(sim.iommu.translate(RID, M2 + 8n)).toMatchObject({ ok: true, pa: HBM_BASE + 8n, pageSize: M2 });
    let s = unit.stats();
    expect([s.translations, s.misses, s.walks, s.hits, s.tlbValid]).toEqual([1n, 1n, 1n, 0n, 1]);
    expect(sim.iommu.translate(RID, M2 + 8n)).toMatchObject({ ok: true, pa: HBM_BASE + 8n });
    expect(sim.iommu.translate(RID, 2n * M2 - 1n, 'write')).toMatchObject({ ok: true, pa: HBM_BASE + M2 - 1n, pageSize: M2 });
    s = unit.stats();
    expect([s.translations, s.misses, s.walks, s.hits, s.tlbValid]).toEqual([3n, 1n, 1n, 2n, 1]);
    unit.invalidateAll();
    expect(unit.stats().tlbValid).toBe(0);
    sim.iommu.translate(RID, M2);
    expect(unit.stats().misses).toBe(2n);
  });

  it('a 2 x 2 IOTLB evicts and still translates right', async () => {
    const { sim, unit, dom } = await rig(format, { tlbSets: 2, tlbWays: 2 });
    const n = 64;
    for (let i = 0; i < n; i++) dom.map(BigInt(i) * K4, RAM_BASE + BigInt(n - 1 - i) * K4, K4, Prot.RW);
    dom.map(G1, HBM_BASE, 4n * M2, Prot.READ);
    for (let pass = 0; pass < 3; pass++) {
      for (let i = 0; i < n; i++) {
        const r = sim.iommu.translate(RID, BigInt(i) * K4 + 0x10n, 'rw');
        expect(r).toMatchObject({ ok: true, pa: RAM_BASE + BigInt(n - 1 - i) * K4 + 0x10n });
        const b = BigInt(i % 4) * M2 + BigInt(i) * K4;
        expect(sim.iommu.translate(RID, G1 + b)).toMatchObject({ ok: true, pa: HBM_BASE + b, pageSize: M2 });
      }
    }
    const s = unit.stats();
    expect(s.tlbValid).toBe(4);
    expect(s.hits + s.misses).toBe(BigInt(3 * 2 * n));
    expect(s.walks).toBe(s.misses);
    expect(s.misses).toBeGreaterThan(BigInt(3 * n)); // 64 pages cannot live in 4 entries
    // Remap a page to another pa (strict): the next translate sees the new one.
    expect(dom.unmap(0n, K4)).toBe(K4);
    dom.map(0n, HBM_BASE + 0x7000n, K4, Prot.RW);
    expect(sim.iommu.translate(RID, 5n)).toMatchObject({ ok: true, pa: HBM_BASE + 0x7005n });
  });

  it('strict: unmap invalidates before returning, every 4K piece of a cached 2M leaf included', async () => {
    const { sim, unit, dom } = await rig(format, { strict: true });
    dom.map(4n * M2, HBM_BASE, M2, Prot.RW);
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    sim.iommu.translate(RID, 0n);
    for (let p = 0n; p < 512n; p += 37n) expect(sim.iommu.translate(RID, 4n * M2 + p * K4)).toMatchObject({ ok: true, pa: HBM_BASE + p * K4 });
    expect(unit.stats().tlbValid).toBe(2);
    const inv0 = unit.stats().invalidations;
    expect(dom.unmap(4n * M2, M2)).toBe(M2);
    const s = unit.stats();
    expect(s.tlbValid).toBe(1);
    expect(s.invalidations).toBe(inv0 + 1n);
    expect(s.invalidatedEntries).toBe(1n);
    expect(s.flushQueuePending).toBe(0);
    for (let p = 0n; p < 512n; p++) {
      expect(sim.iommu.translate(RID, 4n * M2 + p * K4, 'read')).toMatchObject({ ok: false, reason: 'translation' });
    }
    expect(sim.iommu.translate(RID, 0n)).toMatchObject({ ok: true, pa: RAM_BASE });
  });

  it('lazy: the cached translation outlives unmap until unit.flush(), then faults', async () => {
    const { sim, unit, dom } = await rig(format, { strict: false });
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    dom.map(M2, HBM_BASE, M2, Prot.RW);
    sim.iommu.translate(RID, 0n);
    sim.iommu.translate(RID, M2);
    expect(dom.unmap(0n, K4)).toBe(K4);
    expect(dom.unmap(M2, M2)).toBe(M2);
    // The page tables are gone ...
    expect(dom.walk(0n).ok).toBe(false);
    expect(dom.walk(M2).ok).toBe(false);
    // ... but the IOTLB still answers (the stale window of lazy mode), for every piece of the 2M leaf.
    expect(sim.iommu.translate(RID, 8n)).toMatchObject({ ok: true, pa: RAM_BASE + 8n });
    expect(sim.iommu.translate(RID, M2 + 511n * K4)).toMatchObject({ ok: true, pa: HBM_BASE + 511n * K4 });
    expect(unit.stats().flushQueuePending).toBe(2);
    expect(unit.flush()).toBe(2);
    expect(unit.stats().flushQueuePending).toBe(0);
    expect(unit.stats().flushQueueFlushes).toBe(1n);
    expect(sim.iommu.translate(RID, 8n)).toMatchObject({ ok: false, reason: 'translation' });
    expect(sim.iommu.translate(RID, M2 + 511n * K4)).toMatchObject({ ok: false, reason: 'translation' });
    expect(unit.flush()).toBe(0);
    expect(unit.stats().flushQueueFlushes).toBe(1n);
  });

  it('lazy: a full flush queue flushes by itself', async () => {
    const { sim, unit, dom } = await rig(format, { strict: false, flushQueue: 2 });
    for (let i = 0n; i < 3n; i++) {
      dom.map(i * K4, RAM_BASE + i * K4, K4, Prot.RW);
      sim.iommu.translate(RID, i * K4);
    }
    dom.unmap(0n, K4);
    dom.unmap(K4, K4);
    expect(unit.stats()).toMatchObject({ flushQueuePending: 2, flushQueueFlushes: 0n, tlbValid: 3 });
    dom.unmap(2n * K4, K4); // queue full: flushed first, then this one queued
    expect(unit.stats()).toMatchObject({ flushQueuePending: 1, flushQueueFlushes: 1n, tlbValid: 0 });
    for (let i = 0n; i < 3n; i++) expect(sim.iommu.translate(RID, i * K4).ok).toBe(false);
  });

  it('translateBatch answers as translate does for mapped, unmapped, read-only and out-of-range addresses', async () => {
    const mk = () => rig(format, { ias: 39 });
    const a = await mk();
    const b = await mk();
    for (const { dom } of [a, b]) {
      dom.map(0n, RAM_BASE, 8n * K4, Prot.RW);
      dom.map(M2, HBM_BASE, M2, Prot.READ);
      dom.map(G1, HBM_BASE + G1, G1, Prot.RW);
    }
    const iovas = [0n, 5n * K4 + 1n, 8n * K4, M2 + 77n, 2n * M2, G1 + 0x1234_5678n, 2n * G1, 1n << 39n, 0n, M2];
    const batch = a.sim.iommu.translateBatch(RID, BigUint64Array.from(iovas), 'write');
    let faults = 0;
    iovas.forEach((iova, i) => {
      const r = b.sim.iommu.translate(RID, iova, 'write');
      if (r.ok) {
        expect(batch.status[i]).toBe(0);
        expect(batch.out[i]).toBe(r.pa);
      } else {
        faults++;
        expect(errnoName(batch.status[i]!)).toBe(r.code);
        expect(batch.out[i]).toBe(0n);
      }
    });
    expect(batch.faults).toBe(faults);
    expect(faults).toBe(6);
    expect(a.unit.faults().map((f) => f.code)).toEqual(b.unit.faults().map((f) => f.code));
  });

  it('destroying a domain with a device attached is EBUSY; after detach it frees every table frame', async () => {
    const sim = await makeSim();
    const free0 = sim.memory.framesFree();
    const { unit, dom } = await rig(format, { sim });
    const other = unit.createDomain({ type: 'paging', format, ias: 48 });
    sim.iommu.attach(0x200, other);
    other.map(0n, RAM_BASE + M2, K4, Prot.RW);
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    dom.map(G1, HBM_BASE, M2, Prot.RW);
    dom.map(0x80_0000_0000n, HBM_BASE, K4, Prot.RW);
    sim.iommu.translate(RID, 0n);
    sim.iommu.translate(RID, G1);
    sim.iommu.translate(0x200, 0n);
    expect(dom.tableFrames).toBe(8);
    expectErrno(() => dom.destroy(), 'EBUSY');
    expect(dom.destroyed).toBe(false);
    expect(sim.iommu.translate(RID, 0n)).toMatchObject({ ok: true, pa: RAM_BASE });
    sim.iommu.attach(RID, null);
    const otherFrames = other.tableFrames;
    dom.destroy();
    expect(dom.destroyed).toBe(true);
    expect(unit.domains()).toEqual([other]);
    expect(sim.memory.framesFree()).toBe(free0 - BigInt(otherFrames));
    expect(unit.stats().tlbValid).toBe(1);
    expectErrno(() => dom.walk(0n), 'ENOENT');
    expectErrno(() => sim.iommu.attach(RID, dom), 'ENOENT');
    expect(sim.iommu.translate(0x200, 0n)).toMatchObject({ ok: true, pa: RAM_BASE + M2 });
    // A new domain may reuse the id: it must see none of the old one's translations.
    const again = unit.createDomain({ type: 'paging', format, ias: 48 });
    sim.iommu.attach(RID, again);
    expect(sim.iommu.translate(RID, 0n)).toMatchObject({ ok: false, reason: 'translation' });
  });
});
