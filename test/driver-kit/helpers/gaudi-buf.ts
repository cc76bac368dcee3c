import { readFileSync } from 'node:fs';
import { Machine, O_RDWR, type DmaBuf } from '../../../src/index.js';

const twoSwitches = readFileSync(new URL('../../pci/fixtures/two-switches.json', import.meta.url), 'utf8');

/** A machine of two switches (VT-d) and a 64 MiB dma-buf over gaudi0's BAR 0. */
export interface GaudiBuf { m: Machine; buf: DmaBuf; bar: { cpu: bigint; bus: bigint } }

export async function gaudiBuf(): Promise<GaudiBuf> {
  const m = await Machine.create({ topology: twoSwitches, iommu: { family: 'vtd' } });
  const bar = m.pci('gaudi0').bar(0)!;
  const buf = m.kernel.export({
    expName: 'test', size: 64 << 20, flags: O_RDWR, priv: {},
    // Dynamic (pin/unpin), so a dynamic attach does not map at once (DB-11).
    ops: { pin: () => {}, unpin: () => {}, mapDmaBuf: () => null, unmapDmaBuf: () => {}, release: () => {} },
  });
  return { m, buf, bar: { cpu: bar.cpuAddress, bus: bar.busAddress } };
}
