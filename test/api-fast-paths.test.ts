/**
 * The public API's fast paths (issue 15, api keys): Iommu.translate, IommuDomain.map and
 * DmaEngine.copy/fill check the common call with compares only (isU64/isU63: asUintN against
 * the value) and hand the rest to the full checks. What they must keep:
 *  - every value outside the range, and every non-bigint (a boxed BigInt included), is still
 *    SimError EINVAL naming the field, and linear memory is byte for byte what it was;
 *  - the fast and the checked path leave the same linear memory (IOTLB, counters, fault queue,
 *    tables, bytes) and return equal results;
 *  - results are never shared between calls (translate) or only when frozen and equal (copy);
 *  - reads of the result block follow a grow of the memory (CoreViews.u64At/u32At).
 */
import { describe, expect, it } from 'vitest';
import { createSimulator, Prot, SimError, type Simulator } from '../src/index.js';
import { CoreViews } from '../bindings/core.js';
import { isU63, isU64, u64Arg } from '../src/util/args.js';
import { stateSnapshot } from './hardening/snapshot.js';
import { thrownBy } from './core/helpers/setup.js';

const RAM = 0x8000_0000n;
const RID = 0x0300; // 0000:03:00.0
const RID_STR = '03:00.0';
const RO = 0x30_0000n;
const TOP = 1n << 64n;

/** Bigints and other values around the edges of 0..2^64-1 (and of 0..2^63-1). */
const NOT_U64: unknown[] = [-1n, TOP, TOP + 4096n, -(TOP), 1n << 200n, -(1n << 63n), 4096, '4096', undefined, null, true, {}, Object(4096n), [4096n], Symbol('x')];

async function rig(): Promise<{ sim: Simulator; a: bigint; b: bigint }> {
  const sim = await createSimulator({ arenaBytes: 2 << 20 });
  sim.memory.addRegion({ base: RAM, size: 64n << 20n, kind: 'ram' });
  const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: 4, tlbWays: 2, faultQueue: 8 });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(RID, dom);
  sim.iommu.place(0x0500, unit); // behind the unit, no domain
  const a = sim.memory.allocFrames(4);
  const b = sim.memory.allocFrames(4);
  sim.memory.write(a, new Uint8Array(16384).map((_, i) => (i * 7 + 1) & 0xff));
  dom.map(0x10_0000n, a, 16384n, Prot.RW);
  dom.map(0x20_0000n, b, 16384n, Prot.RW);
  dom.map(RO, b, 4096n, Prot.READ);
  return { sim, a, b };
}

/** All of linear memory, copied. */
function image(sim: Simulator): Uint8Array {
  return new Uint8Array(sim.core.exports.memory.buffer).slice();
}

function sameMemory(x: Simulator, y: Simulator): void {
  const p = image(x);
  const q = image(y);
  expect(p.length).toBe(q.length);
  // Buffer.compare is one native call over the whole image (expect on 20 MiB of elements is not).
  expect(Buffer.compare(Buffer.from(p.buffer), Buffer.from(q.buffer))).toBe(0);
}

/** `fn` throws SimError EINVAL whose message names `field`, and linear memory is unchanged. */
function refused(sim: Simulator, field: RegExp, fn: () => unknown): void {
  const before = Buffer.from(image(sim).buffer);
  const err = thrownBy(fn);
  expect(err).toBeInstanceOf(SimError);
  expect((err as SimError).code).toBe('EINVAL');
  expect((err as SimError).message).toMatch(field);
  expect(Buffer.compare(before, Buffer.from(image(sim).buffer))).toBe(0);
}

/**
 * As {@link refused}, for a call that may write scratch (copyv fills the staging area as it
 * checks): the simulated state and the counters are compared instead of all of memory.
 */
function refusedState(sim: Simulator, field: RegExp, fn: () => unknown): void {
  const state = () => stateSnapshot({ sim, extra: () => [sim.iommu.units()[0]!.stats(), sim.dma.stats(), [...sim.memory.read(RAM, 65536)]] });
  const before = state();
  expect(fn).toThrow(SimError);
  expect(fn).toThrow(field);
  try { fn(); } catch (e) { expect((e as SimError).code).toBe('EINVAL'); }
  expect(state()).toBe(before);
}

describe('isU64 / isU63: exact ranges, bigints only', () => {
  it('accept exactly 0..2^64-1 (0..2^63-1), refuse everything else', () => {
    for (const v of [0n, 1n, 4096n, (1n << 63n) - 1n, 1n << 63n, TOP - 1n]) expect(isU64(v)).toBe(true);
    for (const v of NOT_U64) expect(isU64(v)).toBe(false);
    for (const v of [0n, 4096n, (1n << 63n) - 1n]) expect(isU63(v)).toBe(true);
    for (const v of [1n << 63n, TOP - 1n, ...NOT_U64]) expect(isU63(v)).toBe(false);
    // u64Arg: the same range, and a message that names the field.
    expect(u64Arg('op', 'f', TOP - 1n)).toBe(TOP - 1n);
    for (const v of NOT_U64) expect(() => u64Arg('op', 'fieldname', v)).toThrow(/fieldname/);
  });
});

describe('Iommu.translate: fast path', () => {
  it('the fast path (numeric rid, read/write) and the checked path (string rid, options) leave the same memory and results', async () => {
    const x = await rig();
    const y = await rig();
    sameMemory(x.sim, y.sim);
    const calls: [bigint, 'read' | 'write'][] = [
      [0x10_0123n, 'read'], [0x10_0123n, 'read'], [0x11_2000n, 'write'], [0x20_3fffn, 'write'],
      [RO + 8n, 'write'], [RO + 8n, 'read'], [0x40_0000n, 'read'], [TOP - 1n, 'read'], [1n << 63n, 'write'],
      // 4 sets x 2 ways: enough pages to evict and refill.
      ...Array.from({ length: 12 }, (_, i) => [0x10_0000n + BigInt(i % 4) * 4096n + 0x20_0000n * BigInt(i & 1), 'read'] as [bigint, 'read']),
    ];
    for (const [iova, access] of calls) {
      const fast = x.sim.iommu.translate(RID, iova, access);
      const checked = y.sim.iommu.translate(RID_STR, iova, access, {});
      expect(fast).toEqual(checked);
      sameMemory(x.sim, y.sim);
    }
    // A requester with no domain, and one the core does not know.
    for (const rid of [0x0500, 0x0600]) {
      expect(x.sim.iommu.translate(rid, 0x1000n, 'read')).toEqual(y.sim.iommu.translate(rid, 0x1000n, 'read', {}));
    }
    sameMemory(x.sim, y.sim);
    expect(x.sim.iommu.units()[0]!.faults()).toEqual(y.sim.iommu.units()[0]!.faults());
    expect(x.sim.iommu.units()[0]!.stats()).toEqual(y.sim.iommu.units()[0]!.stats());
  });

  it('each success is its own object: a kept result does not change with later calls', async () => {
    const { sim, a, b } = await rig();
    const r1 = sim.iommu.translate(RID, 0x10_0010n, 'read');
    const r2 = sim.iommu.translate(RID, 0x20_0020n, 'write');
    expect(r1).not.toBe(r2);
    expect(r1).toEqual({ ok: true, pa: a + 0x10n, pageSize: 4096n, perm: 3 });
    expect(r2).toEqual({ ok: true, pa: b + 0x20n, pageSize: 4096n, perm: 3 });
    expect(Object.isFrozen(r1)).toBe(false);
  });

  it('bad rid, iova, access or options: SimError EINVAL naming the field, memory unchanged', async () => {
    const { sim } = await rig();
    const t = sim.iommu;
    for (const v of NOT_U64) refused(sim, /iova/, () => t.translate(RID, v as bigint, 'read'));
    for (const v of NOT_U64) refused(sim, /iova/, () => t.translate(RID_STR, v as bigint, 'write'));
    for (const r of [-1, 1.5, 2 ** 32, Number.NaN, 0xffffffff, 'phys', 'zz:00.0', 0x300n, null, {}]) {
      refused(sim, /rid/, () => t.translate(r as number, 0x10_0000n, 'read'));
    }
    for (const acc of ['READ', '', 'r', 1, null, {}]) refused(sim, /access/, () => t.translate(RID, 0x10_0000n, acc as 'read'));
    for (const o of [null, 5, 'x', [1]]) refused(sim, /options/, () => t.translate(RID, 0x10_0000n, 'read', o as {}));
    // The first bad argument is the one named, whichever path saw the call first.
    refused(sim, /rid/, () => t.translate(-1, -1n, 'x' as 'read'));
    refused(sim, /iova/, () => t.translate(RID, -1n, 'x' as 'read'));
    // The edges themselves are valid arguments: results, not exceptions.
    expect(t.translate(RID, 0n, 'read').ok).toBe(false);
    expect(t.translate(RID, TOP - 1n, 'read').ok).toBe(false);
    expect(t.translate(RID, 0x10_0000n).ok).toBe(true); // access defaults to 'read'
  });

  it('results read after the memory grew (views renewed on the read that finds them stale)', async () => {
    const { sim, a } = await rig();
    const mem = sim.core.exports.memory;
    const pages = mem.buffer.byteLength / 65536;
    const ops = sim.dma.stats().ops;
    const translations = sim.iommu.units()[0]!.stats().translations;
    expect(sim.iommu.translate(RID, 0x10_1004n, 'read')).toEqual({ ok: true, pa: a + 0x1004n, pageSize: 4096n, perm: 3 });
    mem.grow(1); // detaches the buffer every view was made on
    expect(mem.buffer.byteLength / 65536).toBe(pages + 1);
    expect(sim.iommu.translate(RID, 0x10_2008n, 'write')).toEqual({ ok: true, pa: a + 0x2008n, pageSize: 4096n, perm: 3 });
    expect(sim.core.resultValue()).toBe(a + 0x2008n);
    expect(sim.dma.copy({ rid: RID, addr: 0x10_0000n }, { rid: RID, addr: 0x20_0000n }, 64n)).toMatchObject({ ok: true, bytesDone: 64n });
    // Counters read through the renewed views too (Core.stat).
    expect(sim.dma.stats().ops).toBe(ops + 1n);
    expect(sim.iommu.units()[0]!.stats().translations).toBeGreaterThan(translations);
  });
});

describe('IommuDomain.map: fast path', () => {
  it('bad iova, pa, size or prot: SimError EINVAL naming the field, nothing mapped', async () => {
    const { sim } = await rig();
    const dom = sim.iommu.units()[0]!.domains()[0]!;
    const iv = 0x50_0000n;
    for (const v of NOT_U64) refused(sim, /iova/, () => dom.map(v as bigint, RAM, 4096n, Prot.RW));
    for (const v of NOT_U64) refused(sim, /\bpa\b/, () => dom.map(iv, v as bigint, 4096n, Prot.RW));
    for (const v of NOT_U64) refused(sim, /size/, () => dom.map(iv, RAM, v as bigint, Prot.RW));
    for (const p of [-1, 1.5, 0x10000, Number.NaN, '3', 3n, null, undefined]) refused(sim, /prot/, () => dom.map(iv, RAM, 4096n, p as number));
    refused(sim, /4 KiB aligned/, () => dom.map(iv + 1n, RAM, 4096n, Prot.RW));
    refused(sim, /size is 0/, () => dom.map(iv, RAM, 0n, Prot.RW));
    refused(sim, /neither READ nor WRITE/, () => dom.map(iv, RAM, 4096n, Prot.CACHE));
    expect(sim.iommu.translate(RID, iv, 'read').ok).toBe(false);
  });

  it('a map the core refuses throws its errno and changes nothing; a good one maps', async () => {
    const { sim, a } = await rig();
    const dom = sim.iommu.units()[0]!.domains()[0]!;
    // The core may touch its own caches on a refusal (not simulated state): compare the state.
    const state = () => stateSnapshot({ sim, extra: () => [sim.iommu.units()[0]!.stats(), sim.dma.stats()] });
    const before = state();
    const code = (fn: () => unknown) => { try { fn(); } catch (e) { expect(e).toBeInstanceOf(SimError); return (e as SimError).code; } return 'none'; };
    expect(code(() => dom.map(0x10_0000n, a, 4096n, Prot.RW))).toBe('EADDRINUSE'); // generic_pt VT-d
    expect(code(() => dom.map(1n << 48n, a, 4096n, Prot.RW))).toBe('ERANGE');
    expect(code(() => dom.map(0x50_0000n, TOP - 4096n, 4096n, Prot.RW))).toBe('ERANGE');
    expect(code(() => dom.map(TOP - 4096n, a, 8192n, Prot.RW))).toBe('ERANGE');
    expect(state()).toBe(before);
    dom.map(0x50_0000n, a, 4096n, Prot.READ);
    expect(sim.iommu.translate(RID, 0x50_0008n, 'read')).toEqual({ ok: true, pa: a + 8n, pageSize: 4096n, perm: 1 });
    dom.unmap(0x50_0000n, 4096n);
    dom.unmap(0x10_0000n, 16384n);
    dom.unmap(0x20_0000n, 16384n);
    dom.unmap(RO, 4096n);
    sim.iommu.attach(RID, null);
    dom.destroy();
    expect(code(() => dom.map(0x50_0000n, a, 4096n, Prot.RW))).toBe('ENOENT');
  });
});

describe('IommuDomain.unmap and Iommu.translateBatch through the trusted table', () => {
  it('bad arguments are SimError EINVAL naming the field with memory unchanged; core refusals keep their errno and text', async () => {
    const { sim, a } = await rig();
    const dom = sim.iommu.units()[0]!.domains()[0]!;
    for (const v of NOT_U64) refused(sim, /iova/, () => dom.unmap(v as bigint, 4096n));
    for (const v of NOT_U64) refused(sim, /size/, () => dom.unmap(0x10_0000n, v as bigint));
    refused(sim, /iova = 0x100001 is not 4 KiB aligned/, () => dom.unmap(0x10_0001n, 4096n));
    refused(sim, /size is 0/, () => dom.unmap(0x10_0000n, 0n));
    expect(() => dom.unmap(1n << 48n, 4096n)).toThrow(/iommu_unmap: ERANGE: domain 0: iova 0x1000000000000 size 0x1000/);
    expect(dom.unmap(0x10_1000n, 8192n)).toBe(8192n);
    expect(dom.unmap(0x10_1000n, 8192n)).toBe(0n); // a hole
    expect(sim.iommu.translate(RID, 0x10_0000n)).toMatchObject({ ok: true, pa: a });
    expect(sim.iommu.translate(RID, 0x10_1000n)).toMatchObject({ ok: false, code: 'EFAULT' });
    const b = sim.iommu.translateBatch(RID, BigUint64Array.from([0x10_0008n, 0x10_1000n, 0x10_3010n]), 'read');
    expect([...b.out]).toEqual([a + 8n, 0n, a + 0x3010n]);
    expect([...b.status]).toEqual([0, -14, 0]);
    expect(b.faults).toBe(1);
    refused(sim, /rid/, () => sim.iommu.translateBatch(-1, new BigUint64Array(1), 'read'));
    refused(sim, /access/, () => sim.iommu.translateBatch(RID, new BigUint64Array(1), 'x' as 'read'));
    refused(sim, /iovas/, () => sim.iommu.translateBatch(RID, [0n] as never, 'read'));
  });
});

describe('DmaEngine.copy / fill: fast path', () => {
  it('a numeric rid (fast) and a string rid (checked) move the same bytes and leave the same memory', async () => {
    const x = await rig();
    const y = await rig();
    const runs: [bigint, bigint, bigint][] = [[0x10_0000n, 0x20_0000n, 4096n], [0x10_0ff0n, 0x20_1ff0n, 8192n], [0x10_3000n, 0x40_0000n, 8192n], [0x10_0000n, RO, 16n], [0x10_0000n, 0x20_0000n, 0n]];
    for (const [s, d, len] of runs) {
      const r1 = x.sim.dma.copy({ rid: RID, addr: s }, { rid: RID, addr: d }, len);
      const r2 = y.sim.dma.copy({ rid: RID_STR, addr: s }, { rid: RID_STR, addr: d }, len);
      expect({ ...r1 }).toEqual({ ...r2 });
      sameMemory(x.sim, y.sim);
    }
    expect(x.sim.dma.fill({ rid: RID, addr: 0x20_0100n }, 0xee, 300n)).toEqual(y.sim.dma.fill({ rid: RID_STR, addr: 0x20_0100n }, 0xee, 300n));
    sameMemory(x.sim, y.sim);
    // The physical requester as a number takes the fast path, as 'phys' the checked one.
    expect(x.sim.dma.copy({ rid: 0xffffffff, addr: x.a }, { rid: 0xffffffff, addr: x.b + 8192n }, 100n))
      .toEqual(y.sim.dma.copy({ rid: 'phys', addr: y.a }, { rid: 'phys', addr: y.b + 8192n }, 100n));
    sameMemory(x.sim, y.sim);
    expect(x.sim.memory.read(x.b + 8192n, 100)).toEqual(x.sim.memory.read(x.a, 100));
    expect(x.sim.dma.stats()).toEqual(y.sim.dma.stats());
  });

  it('addresses and lengths at 2^63 and beyond: checked in full (results), or refused naming the field', async () => {
    const { sim } = await rig();
    const S = { rid: RID, addr: 0x10_0000n };
    const D = { rid: RID, addr: 0x20_0000n };
    // Past the fast range but valid: a translation fault, not an exception.
    expect(sim.dma.copy({ rid: RID, addr: 1n << 63n }, D, 16n)).toMatchObject({ ok: false, code: 'ERANGE', bytesDone: 0n });
    expect(sim.dma.copy(S, { rid: RID, addr: TOP - 16n }, 16n)).toMatchObject({ ok: false, bytesDone: 0n });
    for (const v of NOT_U64) refused(sim, /src\.addr/, () => sim.dma.copy({ rid: RID, addr: v as bigint }, D, 16n));
    for (const v of NOT_U64) refused(sim, /dst\.addr/, () => sim.dma.copy(S, { rid: RID, addr: v as bigint }, 16n));
    for (const v of NOT_U64) refused(sim, /length/, () => sim.dma.copy(S, D, v as bigint));
    for (const v of NOT_U64) refused(sim, /length/, () => sim.dma.fill(D, 1, v as bigint));
    for (const v of NOT_U64) refused(sim, /dst\.addr/, () => sim.dma.fill({ rid: RID, addr: v as bigint }, 1, 16n));
    // copyv: the same checks per descriptor, naming it.
    const desc = { src: S, dst: D, length: 16n };
    for (const v of NOT_U64) refusedState(sim, /descs\[1\]\.src\.addr/, () => sim.dma.copyv([desc, { ...desc, src: { rid: RID, addr: v as bigint } }]));
    for (const v of NOT_U64) refusedState(sim, /descs\[0\]\.dst\.addr/, () => sim.dma.copyv([{ ...desc, dst: { rid: RID, addr: v as bigint } }]));
    for (const v of NOT_U64) refusedState(sim, /descs\[2\]\.length/, () => sim.dma.copyv([desc, desc, { ...desc, length: v as bigint }]));
    expect(sim.dma.copyv([desc, { ...desc, src: { rid: RID, addr: 1n << 63n } }])).toMatchObject({ ok: false, code: 'ERANGE', bytesDone: 16n, index: 1 });
    refused(sim, /wraps/, () => sim.dma.copy(S, { rid: RID, addr: TOP - 8n }, 16n));
    refused(sim, /wraps/, () => sim.dma.fill({ rid: RID, addr: TOP - 8n }, 0, 16n));
    for (const r of [-1, 1.5, 2 ** 32, Number.NaN, 'zz', null, 0x300n]) refused(sim, /src\.rid/, () => sim.dma.copy({ rid: r as number, addr: 0n }, D, 16n));
    for (const r of [-1, 1.5, 2 ** 32, Number.NaN]) refused(sim, /dst\.rid/, () => sim.dma.fill({ rid: r as number, addr: 0n }, 1, 16n));
  });
});

describe('DmaEngine.write / read / readInto: one chunk without a running total, no record unobserved', () => {
  async function big(): Promise<{ sim: Simulator; frames: bigint }> {
    const sim = await createSimulator({ arenaBytes: 8 << 20 });
    sim.memory.addRegion({ base: RAM, size: 64n << 20n, kind: 'ram' });
    const unit = sim.iommu.createUnit({ family: 'vtd', tlbSets: 4, tlbWays: 2 });
    const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
    sim.iommu.attach(RID, dom);
    const frames = sim.memory.allocFrames(768);
    dom.map(0x100_0000n, frames, 768n * 4096n, Prot.RW); // 3 MiB, then a hole
    return { sim, frames };
  }

  it('a numeric rid (fast) and a string rid (checked) move the same bytes, with the same results, in one chunk and in several', async () => {
    const x = await big();
    const y = await big();
    const data = new Uint8Array((1 << 20) + 5000).map((_, i) => (i * 13 + 5) & 0xff);
    const cases: [bigint, number][] = [[0x100_0000n, 0], [0x100_0010n, 100], [0x100_0ff0n, 4096 + 32], [0x100_3000n, data.length], [0x100_0000n + 768n * 4096n - 8192n, 12288], [0x100_0000n + 768n * 4096n - 2000n, (1 << 20) + 10]];
    for (const [addr, len] of cases) {
      const w1 = x.sim.dma.write({ rid: RID, addr }, data.subarray(0, len));
      const w2 = y.sim.dma.write({ rid: RID_STR, addr }, data.subarray(0, len));
      expect(w1).toEqual(w2);
      const r1 = x.sim.dma.read({ rid: RID, addr }, len);
      const r2 = y.sim.dma.read({ rid: RID_STR, addr }, len);
      expect(r1).toEqual(r2);
      expect(Object.keys(r1)).toEqual(Object.keys(r2));
      const o1 = new Uint8Array(len).fill(0xcc);
      const o2 = new Uint8Array(len).fill(0xcc);
      expect(x.sim.dma.readInto({ rid: RID, addr }, o1)).toEqual(y.sim.dma.readInto({ rid: RID_STR, addr }, o2));
      expect(Buffer.compare(Buffer.from(o1), Buffer.from(o2))).toBe(0);
      if (w1.ok) expect(Buffer.compare(Buffer.from(r1.data), Buffer.from(data.subarray(0, len)))).toBe(0);
      sameMemory(x.sim, y.sim);
    }
    // Past the hole: the fault and what was done before it.
    const end = 0x100_0000n + 768n * 4096n;
    const w = x.sim.dma.write({ rid: RID, addr: end - 2000n }, data.subarray(0, 3000));
    expect(w).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 2000n, fault: { side: 'dst', iova: end } });
    const r = x.sim.dma.read({ rid: RID, addr: end - 100n }, 300);
    expect(r).toMatchObject({ ok: false, code: 'EFAULT', bytesDone: 100n, fault: { side: 'src', iova: end } });
    expect(Object.keys(r)).toEqual(['ok', 'code', 'bytesDone', 'fault', 'data']);
    expect(r.data.subarray(0, 100)).toEqual(data.subarray(1900, 2000));
    expect(r.data.subarray(100).every((v) => v === 0)).toBe(true);
  });

  it('observers and a cost model see every write and read, with their lengths and results', async () => {
    const { sim } = await big();
    const seen: [string, bigint, bigint][] = [];
    const sub = sim.dma.onTransfer((t) => seen.push([t.op, t.length, t.result.bytesDone]));
    let ends = 0;
    sim.dma.setCostModel({ begin: () => {}, end: () => { ends++; return undefined; } });
    sim.dma.write({ rid: RID, addr: 0x100_0000n }, new Uint8Array(10));
    sim.dma.read({ rid: RID, addr: 0x100_0000n }, 7);
    sim.dma.readInto({ rid: RID, addr: 0x100_0000n }, new Uint8Array(5));
    sim.dma.setCostModel(null);
    sim.dma.read({ rid: RID, addr: 0x100_0000n }, 3);
    sub.dispose();
    sim.dma.read({ rid: RID, addr: 0x100_0000n }, 2);
    expect(seen).toEqual([['write', 10n, 10n], ['read', 7n, 7n], ['read', 5n, 5n], ['read', 3n, 3n]]);
    expect(ends).toBe(3);
  });

  it('bad endpoints, addresses, data: SimError EINVAL naming the field, memory unchanged', async () => {
    const { sim } = await big();
    const E = { rid: RID, addr: 0x100_0000n };
    for (const v of NOT_U64) refused(sim, /dst\.addr/, () => sim.dma.write({ rid: RID, addr: v as bigint }, new Uint8Array(4)));
    for (const v of NOT_U64) refused(sim, /src\.addr/, () => sim.dma.readInto({ rid: RID, addr: v as bigint }, new Uint8Array(4)));
    for (const v of NOT_U64) refused(sim, /src\.addr/, () => sim.dma.read({ rid: RID, addr: v as bigint }, 4));
    for (const r of [-1, 1.5, 2 ** 32, Number.NaN, 'zz', null, 0x300n]) {
      refused(sim, /dst\.rid/, () => sim.dma.write({ rid: r as number, addr: 0n }, new Uint8Array(4)));
      refused(sim, /src\.rid/, () => sim.dma.read({ rid: r as number, addr: 0n }, 4));
      refused(sim, /src\.rid/, () => sim.dma.readInto({ rid: r as number, addr: 0n }, new Uint8Array(4)));
    }
    for (const e of [null, 5, [E]]) refused(sim, /dst must be an object/, () => sim.dma.write(e as never, new Uint8Array(4)));
    refused(sim, /wraps/, () => sim.dma.write({ rid: RID, addr: TOP - 2n }, new Uint8Array(4)));
    refused(sim, /wraps/, () => sim.dma.readInto({ rid: RID, addr: TOP - 2n }, new Uint8Array(4)));
    for (const d of [[1, 2], 'ab', null, new Uint16Array(2)]) refused(sim, /data/, () => sim.dma.write(E, d as never));
    for (const d of [[1, 2], null, new Int8Array(2)]) refused(sim, /out/, () => sim.dma.readInto(E, d as never));
    for (const n of [-1, 1.5, 2 ** 31 + 1, '4']) refused(sim, /length/, () => sim.dma.read(E, n as number));
    // 2^63 and above: the full checks, then a result.
    expect(sim.dma.write({ rid: RID, addr: 1n << 63n }, new Uint8Array(4))).toMatchObject({ ok: false, bytesDone: 0n });
    expect(sim.dma.readInto({ rid: RID, addr: TOP - 4n }, new Uint8Array(4))).toMatchObject({ ok: false, bytesDone: 0n });
  });
});

describe('CoreViews.u64At / u32At', () => {
  it('a plain memory: reads follow a grow', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const v = new CoreViews(mem);
    v.u64[3] = 0x1234_5678_9abc_def0n;
    v.u32[40] = 77;
    expect(v.u64At(3)).toBe(0x1234_5678_9abc_def0n);
    mem.grow(1);
    new BigUint64Array(mem.buffer)[8192 + 1] = 5n; // in the new page
    expect(v.u64At(3)).toBe(0x1234_5678_9abc_def0n);
    expect(v.u32At(40)).toBe(77);
    expect(v.u64At(8192 + 1)).toBe(5n);
    expect(v.u8.length).toBe(2 * 65536);
  });

  it('a shared memory: below the old length through the old buffer, past it through a new one', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
    const v = new CoreViews(mem);
    v.u32[10] = 9;
    mem.grow(2);
    const w = new Uint32Array(mem.buffer);
    w[10] = 11;
    w[3 * 16384 - 1] = 13; // the last word of the grown memory
    expect(v.u32At(10)).toBe(11);
    expect(v.u32At(3 * 16384 - 1)).toBe(13);
    expect(v.u64At(3 * 8192 - 1)).toBe(13n << 32n);
  });
});
