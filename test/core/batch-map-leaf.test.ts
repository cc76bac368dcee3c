/**
 * The batch map's in-place loop (one copy per format; for VT-d, x86-64 and AMD v1 the leaf is
 * the address ORed with bits computed once from prot) writes the leaves one map per descriptor
 * writes, for every prot a map accepts: table bytes, walks and accounting equal.
 */
import { describe, expect, it } from 'vitest';
import { ABI } from '../../bindings/core.js';
import { Prot, type IommuDomain, type PgtableFormat, type Simulator } from '../../src/index.js';
import { RAM_BASE } from '../helpers/sim.js';
import { rig } from './helpers/setup.js';

const K4 = 4096n;
const FORMATS: PgtableFormat[] = ['vtd-ss', 'arm-lpae-s1', 'arm-lpae-s2', 'amd-v1', 'x86-64', 'riscv'];
const PROTS = [Prot.READ, Prot.WRITE, Prot.RW, Prot.RW | Prot.CACHE, Prot.READ | Prot.NOEXEC | Prot.PRIV, Prot.RW | Prot.MMIO];

function mapBatch(sim: Simulator, dom: IommuDomain, d: [bigint, bigint][], prot: number): number {
  const w = ABI.MAPDESC_STRIDE >> 3;
  const v = sim.core.views.u64;
  const at = sim.core.layout.staging >> 3;
  d.forEach(([iova, pa], i) => { v[at + i * w] = iova; v[at + i * w + 1] = pa; v[at + i * w + 2] = K4; });
  return sim.core.exports.mapBatch(dom.id, d.length, prot);
}

describe.each(FORMATS)('%s', (format) => {
  it.each(PROTS)('prot %i: batch leaves equal one map per descriptor', async (prot) => {
    const a = await rig(format);
    const b = await rig(format);
    // Pages across two leaf tables, outputs high and scattered (bits up to the 48-bit OAS).
    const d: [bigint, bigint][] = [];
    for (let i = 0n; i < 700n; i++) d.push([0x40_0000_0000n + 0x1ff000n - 100n * K4 + i * K4, (i % 3n === 0n ? 0xfff0_0000_0000n : RAM_BASE) + ((i * 7919n) % 4096n) * K4]);
    expect(mapBatch(a.sim, a.dom, d, prot)).toBe(0);
    for (const [iova, pa] of d) b.dom.map(iova, pa, K4, prot);
    expect(a.dom.mappedBytes).toBe(b.dom.mappedBytes);
    const bytes = (a.dom.tableFrames + 8) * 4096;
    expect(a.sim.memory.read(a.dom.root, bytes)).toEqual(b.sim.memory.read(b.dom.root, bytes));
    for (const [iova] of d.filter((_, i) => i % 29 === 0)) expect(a.dom.walk(iova)).toEqual(b.dom.walk(iova));
  });
});
