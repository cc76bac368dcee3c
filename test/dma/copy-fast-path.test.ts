import { describe, expect, it } from 'vitest';
import { createSimulator, Prot, type DmaTransfer } from '../../src/index.js';
import { simErrorCode } from '../core/helpers/setup.js';

const RAM = 0x8000_0000n;
const RID = 0x0300;

async function rig() {
  const sim = await createSimulator({ arenaBytes: 16 << 20 });
  sim.memory.addRegion({ base: RAM, size: 256n << 20n, kind: 'ram' });
  const unit = sim.iommu.createUnit({ family: 'vtd' });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  const a = sim.memory.allocFrames(2);
  const b = sim.memory.allocFrames(2);
  dom.map(0x10_0000n, a, 8192n, Prot.RW);
  dom.map(0x20_0000n, b, 8192n, Prot.RW);
  sim.memory.write(a, new Uint8Array(8192).fill(0x5a));
  return { sim, a, b, S: { rid: RID, addr: 0x10_0000n }, D: { rid: RID, addr: 0x20_0000n } };
}

const code = simErrorCode;

describe('dma.copy / dma.fill: the unobserved fast path', () => {
  it('moves the bytes; an unobserved success is one frozen result shared by successes of the same length', async () => {
    const { sim, b, S, D } = await rig();
    const r1 = sim.dma.copy(S, D, 4096n);
    const r2 = sim.dma.copy(S, D, 4096n);
    expect(r1).toEqual({ ok: true, code: 'OK', bytesDone: 4096n });
    expect(r2).toBe(r1);
    expect(Object.isFrozen(r1)).toBe(true);
    expect(sim.memory.read(b + 4095n, 2)).toEqual(new Uint8Array([0x5a, 0]));
    const r3 = sim.dma.copy(S, D, 8192n);
    expect(r3).toEqual({ ok: true, code: 'OK', bytesDone: 8192n });
    expect(sim.dma.fill(D, 7, 100n)).toEqual({ ok: true, code: 'OK', bytesDone: 100n });
    expect(sim.memory.read(b + 99n, 2)).toEqual(new Uint8Array([7, 0x5a]));
    // A fault is its own result, with what was done.
    const f = sim.dma.copy(S, { rid: RID, addr: 0x20_1000n }, 8192n);
    expect(f).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 4096n, fault: { side: 'dst', iova: 0x20_2000n } });
  });

  it('observers and a cost model still see every transfer, with its own record', async () => {
    const { sim, S, D } = await rig();
    const seen: DmaTransfer[] = [];
    const sub = sim.dma.onTransfer((t) => seen.push(t));
    sim.dma.copy(S, D, 4096n);
    sim.dma.fill(D, 1, 16n);
    expect(seen.map((t) => [t.op, t.length, t.result.bytesDone])).toEqual([['copy', 4096n, 4096n], ['fill', 16n, 16n]]);
    sub.dispose();
    let ends = 0;
    sim.dma.setCostModel({ begin: () => {}, end: () => { ends++; return undefined; } });
    sim.dma.copy(S, D, 4096n);
    expect(ends).toBe(1);
    sim.dma.setCostModel(null);
  });

  it('every bad input is still a SimError EINVAL naming the field, and nothing moves', async () => {
    const { sim, b, S, D } = await rig();
    const before = sim.dma.stats().ops;
    const arrayEnd = Object.assign([], { rid: RID, addr: 0x10_0000n }) as unknown as typeof S;
    const bad: [() => unknown, RegExp][] = [
      [() => sim.dma.copy(arrayEnd, D, 16n), /src must be an object/],
      [() => sim.dma.copy(S, null as never, 16n), /dst must be an object/],
      [() => sim.dma.copy({ rid: 1.5, addr: 0n }, D, 16n), /src\.rid/],
      [() => sim.dma.copy({ rid: -1, addr: 0n }, D, 16n), /src\.rid/],
      [() => sim.dma.copy({ rid: 2 ** 32, addr: 0n }, D, 16n), /src\.rid/],
      [() => sim.dma.copy(S, { rid: RID, addr: -1n }, 16n), /dst\.addr/],
      [() => sim.dma.copy(S, { rid: RID, addr: 1 as never }, 16n), /dst\.addr/],
      [() => sim.dma.copy(S, D, -1n), /length/],
      [() => sim.dma.copy(S, D, 16 as never), /length/],
      [() => sim.dma.copy(S, D, 1n << 64n), /length/],
      [() => sim.dma.copy({ rid: RID, addr: (1n << 64n) - 8n }, D, 16n), /wraps/],
      [() => sim.dma.fill(D, 256, 16n), /value/],
      [() => sim.dma.fill(D, 1.5, 16n), /value/],
      [() => sim.dma.fill(D, NaN, 16n), /value/],
      [() => sim.dma.fill({ rid: RID, addr: (1n << 64n) - 8n }, 1, 16n), /wraps/],
    ];
    for (const [fn, msg] of bad) {
      expect(code(fn)).toBe('EINVAL');
      expect(() => fn()).toThrow(msg);
    }
    expect(sim.dma.stats().ops).toBe(before);
    expect(sim.memory.read(b, 1)[0]).toBe(0);
    // High addresses and lengths that do not wrap take the full checks and reach the core.
    const hi = sim.dma.copy({ rid: 'phys', addr: (1n << 63n) + 4096n }, D, 16n);
    expect(hi.ok).toBe(false);
    expect(sim.dma.copy({ rid: '03:00.0', addr: 0x10_0000n }, { rid: 'phys', addr: b }, 16n)).toMatchObject({ ok: true, bytesDone: 16n });
  });

  it('copyv: the same checks per descriptor, naming its index; a good vector moves every piece', async () => {
    const { sim, b, S, D } = await rig();
    const good = { src: S, dst: D, length: 16n };
    const before = sim.dma.stats().ops;
    const bad: [unknown, RegExp][] = [
      [null, /descs\[1\] must be/],
      [{ src: S, dst: null, length: 1n }, /descs\[1\] must be/],
      [{ src: { rid: 1.5, addr: 0n }, dst: D, length: 1n }, /descs\[1\]\.src\.rid/],
      [{ src: S, dst: { rid: RID, addr: -1n }, length: 1n }, /descs\[1\]\.dst\.addr/],
      [{ src: S, dst: D, length: 1 }, /descs\[1\]\.length/],
      [{ src: { rid: RID, addr: (1n << 64n) - 8n }, dst: D, length: 16n }, /descs\[1\]: src\.addr \+ length wraps/],
    ];
    for (const [d, msg] of bad) {
      expect(code(() => sim.dma.copyv([good, d as typeof good]))).toBe('EINVAL');
      expect(() => sim.dma.copyv([good, d as typeof good])).toThrow(msg);
    }
    expect(sim.dma.stats().ops).toBe(before);
    expect(sim.memory.read(b, 1)[0]).toBe(0);
    const r = sim.dma.copyv([good, { src: { rid: RID, addr: 0x10_1000n }, dst: { rid: 'phys', addr: b + 100n }, length: 8n }]);
    expect(r).toMatchObject({ ok: true, bytesDone: 24n, index: 2 });
    expect(sim.memory.read(b + 14n, 4)).toEqual(new Uint8Array([0x5a, 0x5a, 0, 0]));
    expect(sim.memory.read(b + 100n, 8)).toEqual(new Uint8Array(8).fill(0x5a));
  });
});
