/**
 * A machine with each IOMMU family: the DMA API's default domains take their page-table format
 * from the unit family (VT-d second stage, ARM LPAE stage 1, AMD v1, RISC-V Sv48) and their
 * kernel rules from the machine's profile; DMA then runs through that format's tables.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Machine } from '../../src/machine/machine.js';
import type { IommuFamily, PgtableFormat } from '../../src/index.js';
import { expectErrno } from '../core/helpers/setup.js';

const fixture = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const DMA_BIDIRECTIONAL = 0;

describe.each([
  ['vtd', 'vtd-ss', 'dmar0', 5], ['smmuv3', 'arm-lpae-s1', 'smmu0', 0x10], ['amd-vi', 'amd-v1', 'ivhd0', 2], ['riscv', 'riscv', 'riscv-iommu0', 15],
] as [IommuFamily, PgtableFormat, string, number][])('%s machine', (family, format, unitName, writeFault) => {
  it(`default domains are ${format}; DMA goes through them; faults carry the family's code`, async () => {
    const m = await Machine.create({ topology: fixture, iommu: { family }, profile: 'latest' });
    const nic = m.pci('nic0');
    const d = m.dmaDevice(nic);
    expect(d.mode).toBe('iommu');
    const dom = d.domain as Exclude<typeof d.domain, 'direct'>;
    expect(dom.format).toBe(format);
    expect(dom.kernel).toBe('mainline');
    expect(m.unitOf(nic)!.name).toBe(unitName);
    // The DMA API allocates IOVAs in the lower half only where the format is sign-extended.
    expect(d.cookie!.apertureEnd).toBe((1n << (format === 'riscv' ? 47n : 48n)) - 1n);
    const page = m.ram.base + 0x10_0000n;
    const iova = d.mapPage(page, 4096, DMA_BIDIRECTIONAL);
    expect(dom.walk(iova)).toMatchObject({ ok: true, pa: page });
    const w = m.sim.dma.write({ rid: m.rid(nic), addr: iova + 8n }, new Uint8Array([7, 8, 9]));
    expect(w.ok).toBe(true);
    expect(m.sim.memory.read(page + 8n, 3)).toEqual(new Uint8Array([7, 8, 9]));
    d.unmapPage(iova, 4096, DMA_BIDIRECTIONAL);
    const f = m.sim.dma.write({ rid: m.rid(nic), addr: iova }, new Uint8Array([1]));
    expect(f).toMatchObject({ ok: false, fault: { familyCode: writeFault } });
  });
});

describe('machine IOMMU options', () => {
  it('the profile picks the IOMMU kernel (5.15, 6.x -> 6.12, latest -> mainline); a format the family cannot walk is EINVAL', async () => {
    const a = await Machine.create({ topology: fixture, iommu: { family: 'smmuv3' } });
    const da = a.dmaDevice(a.pci('nic0'));
    expect((da.domain as { kernel: string }).kernel).toBe('6.12');
    const b = await Machine.create({ topology: fixture, iommu: { family: 'smmuv3', format: 'arm-lpae-s2', kernel: '6.13' } });
    const db = b.dmaDevice(b.pci('nic0'));
    expect(db.domain).toMatchObject({ format: 'arm-lpae-s2', kernel: '6.13' });
    await expect(Machine.create({ topology: fixture, iommu: { family: 'vtd', format: 'amd-v1' } })).rejects.toMatchObject({ code: 'EINVAL' });
    // No RISC-V IOMMU driver in 6.12: the default domain cannot be made.
    const c = await Machine.create({ topology: fixture, iommu: { family: 'riscv' } });
    expectErrno(() => c.dmaDevice(c.pci('nic0')), 'ENODEV');
  });
});
