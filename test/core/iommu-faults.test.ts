/**
 * The fault model per family (spec iommu.md A1, A3, D; QEMU intel_iommu.c, smmuv3.c,
 * riscv-iommu.c; the AMD-Vi event log): the VT-d interrupt window, the sticky VT-d overflow,
 * walk external aborts, ARM hierarchical table attributes, stage-2 event records, same-requester
 * collapsing, and each family's code for each reason.
 */
import { describe, expect, it } from 'vitest';
import { Prot, type IommuDomain, type PgtableFormat, type Simulator } from '../../src/index.js';
import { HBM_BASE, RAM_BASE } from '../helpers/sim.js';
import { K4, M2, readEntry, writeEntry } from './helpers/pte.js';
import { rig, RID } from './helpers/setup.js';

const INTR = 0xfee0_0000n;

describe('VT-d: the interrupt range 0xFEE0_0000..0xFEEF_FFFF is never a DMA output', () => {
  it.each([['vtd-ss', false, 0xe], ['vtd-ss', true, 0x87], ['x86-64', false, 0xe]] as [PgtableFormat, boolean, number][])(
    '%s, scalable %s: reason %i, not cached, any page reaching into the window', async (format, scalableMode, code) => {
      const { sim, unit, dom } = await rig(format, { scalableMode, family: 'vtd' });
      dom.map(0n, INTR, K4, Prot.RW);
      dom.map(M2, INTR, M2, Prot.RW);                  // a 2M leaf over the window
      dom.map(4n * M2, INTR - K4, K4, Prot.RW);       // the page below it
      dom.map(4n * M2 + K4, INTR + 0x10_0000n, K4, Prot.RW); // the page above it
      const fault = { ok: false, code: 'EFAULT', reason: 'interrupt-address', familyCode: code };
      expect(sim.iommu.translate(RID, 8n, 'write')).toEqual(fault);
      expect(sim.iommu.translate(RID, 8n, 'read')).toEqual(fault); // never cached, faults again
      expect(sim.iommu.translate(RID, 2n * M2 - 1n)).toEqual(fault);
      expect(sim.iommu.translate(RID, 4n * M2 + 5n)).toMatchObject({ ok: true, pa: INTR - K4 + 5n });
      expect(sim.iommu.translate(RID, 4n * M2 + K4)).toMatchObject({ ok: true, pa: INTR + 0x10_0000n });
      expect(dom.walk(8n)).toMatchObject({ ok: true, pa: INTR + 8n }); // the table itself is fine
      expect(unit.stats().tlbValid).toBe(2);
      expect(unit.faults().map((f) => [f.reason, f.code])).toEqual(Array(3).fill(['interrupt-address', code]));
    });

  it('an SMMUv3 translation to the same address is an ordinary output', async () => {
    const { sim, dom } = await rig('arm-lpae-s1');
    dom.map(0n, INTR, K4, Prot.RW);
    expect(sim.iommu.translate(RID, 8n)).toMatchObject({ ok: true, pa: INTR + 8n });
  });
});

describe('fault queue overflow', () => {
  it('VT-d: PFO is sticky, no record is made after a drain until software clears it', async () => {
    const { sim, unit } = await rig('vtd-ss', { faultQueue: 2 });
    for (let i = 0n; i < 3n; i++) sim.iommu.translate(RID, i * K4);
    expect(unit.faults().length).toBe(2);
    expect(unit.stats().faultOverflow).toBe(true);
    sim.iommu.translate(RID, 9n * K4);
    expect(unit.faults()).toEqual([]);
    expect(unit.stats().faults).toBe(4n); // the fault happened, no record of it
    unit.clearFaultOverflow();
    sim.iommu.translate(RID, 10n * K4);
    expect(unit.faults().map((f) => f.iova)).toEqual([10n * K4]);
  });

  it('SMMUv3: once the queue drains, new events are recorded while the overflow flag stays', async () => {
    const { sim, unit } = await rig('arm-lpae-s1', { faultQueue: 2 });
    for (let i = 0n; i < 3n; i++) sim.iommu.translate(RID, i * K4);
    expect(unit.faults().length).toBe(2);
    sim.iommu.translate(RID, 9n * K4);
    expect(unit.faults().map((f) => f.iova)).toEqual([9n * K4]);
    expect(unit.stats().faultOverflow).toBe(true);
  });

  it('collapsing (QEMU VT-d, one fault register): a pending record absorbs faults of its requester', async () => {
    const { sim, unit, dom } = await rig('vtd-ss', { collapseFaults: true });
    sim.iommu.attach(RID + 1, dom);
    for (let i = 0n; i < 3n; i++) sim.iommu.translate(RID, i * K4);
    sim.iommu.translate(RID + 1, 0n);
    expect(unit.stats().collapsedFaults).toBe(2n);
    expect(unit.faults().map((f) => [f.rid, f.iova])).toEqual([[RID, 0n], [RID + 1, 0n]]);
    sim.iommu.translate(RID, 5n * K4); // nothing pending any more
    expect(unit.faults().map((f) => f.iova)).toEqual([5n * K4]);
    const plain = await rig('vtd-ss');
    for (let i = 0n; i < 3n; i++) plain.sim.iommu.translate(RID, i * K4);
    expect(plain.unit.faults().length).toBe(3);
  });
});

/** Points the top-level entry that maps iova 0 at `addr` (the format's address field). */
function retarget(sim: Simulator, dom: IommuDomain, addr: bigint): void {
  const top = dom.walk(0n).levels[0]!;
  const e = readEntry(sim, top.table, top.index);
  const v = dom.format === 'riscv' ? (e & 0x3ffn) | ((addr >> 12n) << 10n) : (e & ~0x000f_ffff_ffff_f000n) | addr;
  writeEntry(sim, top.table, top.index, v);
}

describe('a table fetch from an address in no memory region is a walk external abort', () => {
  const NOWHERE = 0x10_0000_0000n; // between RAM and the HBM region
  it.each([
    ['vtd-ss', 'read', 0x7], ['x86-64', 'read', 0x7], ['arm-lpae-s1', 'read', 0x0b], ['arm-lpae-s2', 'write', 0x0b],
    ['amd-v1', 'read', 0x4], ['riscv', 'read', 5], ['riscv', 'write', 7],
  ] as [PgtableFormat, 'read' | 'write', number][])('%s %s: code %i', async (format, access, code) => {
    const { sim, unit, dom } = await rig(format);
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    retarget(sim, dom, NOWHERE);
    expect(sim.iommu.translate(RID, 0n, access)).toEqual({ ok: false, code: 'EFAULT', reason: 'walk-eabt', familyCode: code });
    expect(dom.walk(0n)).toMatchObject({ ok: false, reason: 'walk-eabt' });
    // A table in device memory (a region) is fetched like any other: a translation fault there.
    retarget(sim, dom, HBM_BASE);
    expect(sim.iommu.translate(RID, 0n, access)).toMatchObject({ ok: false, reason: 'translation' });
    expect(unit.faults().map((f) => f.code)[0]).toBe(code);
  });
});

describe('ARM stage 1: hierarchical table attributes', () => {
  it('APTable[1] makes everything below read-only, APTable[0] denies unprivileged access; not with HAD', async () => {
    for (const hierarchicalAttrs of [true, false]) {
      const { sim, unit, dom } = await rig('arm-lpae-s1', { hierarchicalAttrs });
      dom.map(0n, RAM_BASE, K4, Prot.RW);
      const top = dom.walk(0n).levels[0]!;
      writeEntry(sim, top.table, top.index, top.entry | (1n << 62n));
      const w = sim.iommu.translate(RID, 0n, 'write');
      if (hierarchicalAttrs) expect(w).toEqual({ ok: false, code: 'EACCES', reason: 'permission', familyCode: 0x13 });
      else expect(w).toMatchObject({ ok: true, perm: 3 });
      unit.invalidateAll();
      expect(sim.iommu.translate(RID, 0n, 'read')).toMatchObject({ ok: true });
      writeEntry(sim, top.table, top.index, top.entry | (1n << 61n));
      unit.invalidateAll();
      expect(sim.iommu.translate(RID, 0n, 'read').ok).toBe(!hierarchicalAttrs);
    }
  });

  it('stage-2 tables carry no hierarchical attributes', async () => {
    const { sim, dom } = await rig('arm-lpae-s2');
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    const top = dom.walk(0n).levels[0]!;
    writeEntry(sim, top.table, top.index, top.entry | (3n << 61n));
    expect(sim.iommu.translate(RID, 0n, 'write')).toMatchObject({ ok: true, perm: 3 });
  });
});

describe('SMMUv3 stage-2 event records', () => {
  it('translation, permission (S2AP) and access faults carry the S2 flag and the IPA', async () => {
    const { sim, unit, dom } = await rig('arm-lpae-s2');
    dom.map(0n, RAM_BASE, 2n * K4, Prot.READ);
    dom.map(4n * K4, RAM_BASE, K4, Prot.WRITE);
    expect(sim.iommu.translate(RID, 0n, 'write')).toMatchObject({ ok: false, reason: 'permission', familyCode: 0x13 });
    expect(sim.iommu.translate(RID, 4n * K4, 'read')).toMatchObject({ ok: false, reason: 'permission', familyCode: 0x13 });
    expect(sim.iommu.translate(RID, 4n * K4, 'write')).toMatchObject({ ok: true, perm: 2 });
    expect(sim.iommu.translate(RID, 9n * K4)).toMatchObject({ ok: false, reason: 'translation', familyCode: 0x10 });
    const leaf = dom.walk(K4).levels.at(-1)!;
    writeEntry(sim, leaf.table, leaf.index, leaf.entry & ~(1n << 10n)); // AF = 0
    expect(sim.iommu.translate(RID, K4)).toMatchObject({ ok: false, reason: 'access-flag', familyCode: 0x12 });
    const f = unit.faults();
    expect(f.map((r) => [r.code, r.stage2, r.iova])).toEqual([[0x13, true, 0n], [0x13, true, 4n * K4], [0x10, true, 9n * K4], [0x12, true, K4]]);
    const s1 = await rig('arm-lpae-s1');
    s1.sim.iommu.translate(RID, 0n);
    expect(s1.unit.faults()[0]!.stage2).toBe(false);
  });
});

describe('codes per family for the common reasons', () => {
  it('AMD-Vi: IO_PAGE_FAULT for translation and permission, ILLEGAL_DEV_TABLE_ENTRY without a domain', async () => {
    const { sim, unit, dom } = await rig('amd-v1');
    dom.map(0n, RAM_BASE, K4, Prot.READ);
    expect(sim.iommu.translate(RID, 0n, 'write')).toMatchObject({ ok: false, reason: 'permission', familyCode: 2 });
    expect(sim.iommu.translate(RID, K4)).toMatchObject({ ok: false, reason: 'translation', familyCode: 2 });
    sim.iommu.place(RID + 1, unit);
    expect(sim.iommu.translate(RID + 1, 0n)).toMatchObject({ ok: false, reason: 'no-domain', familyCode: 1 });
  });

  it('RISC-V: read/write page faults 13/15, non-canonical input 13, no device context or blocked 258 (DC invalid)', async () => {
    const { sim, unit, dom } = await rig('riscv', { ias: 48 });
    dom.map(0n, RAM_BASE, K4, Prot.READ);
    expect(sim.iommu.translate(RID, 0n, 'write')).toMatchObject({ ok: false, reason: 'permission', familyCode: 15 });
    expect(sim.iommu.translate(RID, K4)).toMatchObject({ ok: false, reason: 'translation', familyCode: 13 });
    expect(sim.iommu.translate(RID, 1n << 47n)).toMatchObject({ ok: false, reason: 'address-size', familyCode: 13 });
    sim.iommu.place(RID + 1, unit);
    expect(sim.iommu.translate(RID + 1, 0n)).toMatchObject({ ok: false, reason: 'no-domain', familyCode: 258 });
    const blocked = unit.createDomain({ type: 'blocked' });
    sim.iommu.attach(RID + 2, blocked);
    expect(sim.iommu.translate(RID + 2, 0n, 'write')).toMatchObject({ ok: false, reason: 'blocked', familyCode: 258 });
  });

  it('VT-d first stage (x86-64): not present 0x71, write to RW=0 0x85, U/S=0 0x81, non-canonical 0x80', async () => {
    const { sim, dom } = await rig('x86-64', { family: 'vtd' });
    dom.map(0n, RAM_BASE, K4, Prot.READ);
    dom.map(K4, RAM_BASE, K4, Prot.RW);
    expect(sim.iommu.translate(RID, 0n, 'write')).toMatchObject({ ok: false, reason: 'permission', familyCode: 0x85 });
    expect(sim.iommu.translate(RID, 9n * K4)).toMatchObject({ ok: false, reason: 'translation', familyCode: 0x71 });
    expect(sim.iommu.translate(RID, 1n << 47n)).toMatchObject({ ok: false, reason: 'address-size', familyCode: 0x80 });
    const leaf = dom.walk(K4).levels.at(-1)!;
    writeEntry(sim, leaf.table, leaf.index, leaf.entry & ~4n); // U/S = 0
    expect(sim.iommu.translate(RID, K4)).toMatchObject({ ok: false, reason: 'permission', familyCode: 0x81 });
    // The upper half of the sign-extended space maps and translates.
    const hi = 0xffff_ffff_ffe0_0000n;
    dom.map(hi, HBM_BASE, M2, Prot.RW);
    expect(sim.iommu.translate(RID, hi + 5n, 'write')).toMatchObject({ ok: true, pa: HBM_BASE + 5n, pageSize: M2 });
    expect(dom.walk(hi).levels[0]!.index).toBe(511);
  });
});

describe('x86-64 first stage: the walker sets A and D as VT-d does', () => {
  it('A on every entry a translation uses, D on the leaf of a write; a software walk changes nothing', async () => {
    const { sim, unit, dom } = await rig('x86-64', { family: 'vtd' });
    dom.map(0n, RAM_BASE, K4, Prot.RW);
    const w = dom.walk(0n);
    // A guest clears A and D everywhere (as a driver that does not preset them would write them).
    for (const l of w.levels) writeEntry(sim, l.table, l.index, l.entry & ~0x60n);
    const bits = () => w.levels.map((l) => readEntry(sim, l.table, l.index) & 0x60n);
    dom.walk(0n);
    expect(bits()).toEqual([0n, 0n, 0n, 0n]);
    expect(sim.iommu.translate(RID, 0n, 'read')).toMatchObject({ ok: true });
    expect(bits()).toEqual([0x20n, 0x20n, 0x20n, 0x20n]);
    unit.invalidateAll();
    expect(sim.iommu.translate(RID, 0n, 'write')).toMatchObject({ ok: true });
    expect(bits()).toEqual([0x20n, 0x20n, 0x20n, 0x60n]);
  });
});
