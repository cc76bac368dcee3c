import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PAGE_SIZE, DmaDataDirection } from '../../../src/dma-buf/index.js';
import { importerDevice } from '../../../src/drivers/device.js';
import {
  IBV_ACCESS_LOCAL_WRITE as LW, IBV_ACCESS_REMOTE_WRITE as RW, IBV_ACCESS_REMOTE_READ as RR,
} from '../../../src/drivers/rdma/index.js';
import { AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED } from '../../../src/drivers/gpu/index.js';
import { bytes, connect, gpuSetup, primeExportFd, rdmaClient, side } from './helpers.js';

const P = PAGE_SIZE;

describe('GPU buffer + mlx5-like on-demand MR (act 4)', () => {
  it('act 4 / IM-06+IM-08: VRAM BO as an ODP MR; memory pressure evicts it to GTT, move_notify invalidates, the next access faults it back; every byte is in place', async () => {
    const { m, proc, gpu } = await gpuSetup({ strictLocking: true });
    const SIZE = 8 * P;
    // 1. A BO in visible VRAM, exported as a dma-buf fd.
    const bo = gpu.createBo({ size: SIZE, domain: 'VRAM', flags: AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED });
    const fd = primeExportFd(gpu, proc, bo);
    // 2. nic0 (ODP, P2P-capable through the host bridge) registers a dma-buf MR; nic1 is the requester.
    const nic1 = side(m, proc, 'nic1');
    const nic0 = side(m, proc, 'nic0');
    connect(nic1, nic0);
    const mr = nic0.ctx.regDmabufMr(nic0.pd, 0, SIZE, 0x7000_0000n, fd, LW | RW | RR);
    expect(bo.domain).toBe('VRAM');
    expect(mr.translation[0]!.dmaAddress).not.toBe(bo.physRanges()[0]!.phys); // an IOVA onto BAR0
    const client = rdmaClient(m, nic1, mr, SIZE);
    // 3. RDMA WRITE of the first half lands in VRAM.
    const first = bytes(SIZE / 2, 11);
    expect(client.write(0, first).status).toBe('SUCCESS');
    expect(m.sim.memory.read(bo.physRanges()[0]!.phys, SIZE / 2)).toEqual(first);
    // 4. Memory pressure: the BO is evicted to GTT; move_notify zaps the MR.
    expect(gpu.memoryPressure()).toEqual([bo]);
    expect(bo.domain).toBe('GTT');
    expect(mr.mapped).toBe(false);
    expect(mr.invalidations).toBe(1);
    expect(gpu.liveTables).toBe(0);
    // 5. RDMA WRITE of the second half: page fault, re-map (now GTT pages through nic0's IOMMU), success.
    const second = bytes(SIZE / 2, 12);
    expect(client.write(SIZE / 2, second).status).toBe('SUCCESS');
    expect(mr.pageFaults).toBe(1);
    expect(nic0.dev.stats).toEqual({ invalidations: 1, pageFaults: 1, remaps: 1 });
    expect(bo.domain).toBe('GTT');
    const all = new Uint8Array([...first, ...second]);
    // 6. Every byte: in the GTT pages (CPU view), through the GPU, and through an RDMA READ.
    const pages = bo.physRanges();
    const cpu = new Uint8Array(SIZE);
    pages.forEach((r, i) => cpu.set(m.sim.memory.read(r.phys, P), i * P));
    expect(cpu).toEqual(all);
    expect(bo.read(0, SIZE)).toEqual(all);
    const rd = client.read(0, SIZE);
    expect(rd.wc.status).toBe('SUCCESS');
    expect(rd.data).toEqual(all);
    expect(m.kernel.events.filter((e) => e.kind === 'warn')).toEqual([]);
  });
});

type Op =
  | { t: 'rdmaWrite'; nic: 0 | 1; off: number; len: number; seed: number }
  | { t: 'rdmaRead'; nic: 0 | 1; off: number; len: number }
  | { t: 'gpuWrite'; off: number; len: number; seed: number }
  | { t: 'gpuRead'; off: number; len: number }
  | { t: 'evict' }
  | { t: 'pressure' }
  | { t: 'migrate'; to: 'VRAM' | 'GTT' }
  | { t: 'pin' }
  | { t: 'unpin' }
  | { t: 'tick'; n: number };

const SIZE = 6 * P;
const range = fc.integer({ min: 0, max: SIZE - 1 }).chain((off) => fc.record({ off: fc.constant(off), len: fc.integer({ min: 1, max: Math.min(SIZE - off, 2 * P + 17) }) }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(fc.constantFrom(0 as const, 1 as const), range, fc.nat()).map(([nic, r, seed]) => ({ t: 'rdmaWrite' as const, nic, ...r, seed })),
  fc.tuple(fc.constantFrom(0 as const, 1 as const), range).map(([nic, r]) => ({ t: 'rdmaRead' as const, nic, ...r })),
  fc.tuple(range, fc.nat()).map(([r, seed]) => ({ t: 'gpuWrite' as const, ...r, seed })),
  range.map((r) => ({ t: 'gpuRead' as const, ...r })),
  fc.constant({ t: 'evict' as const }),
  fc.constant({ t: 'pressure' as const }),
  fc.constantFrom('VRAM' as const, 'GTT' as const).map((to) => ({ t: 'migrate' as const, to })),
  fc.constant({ t: 'pin' as const }),
  fc.constant({ t: 'unpin' as const }),
  fc.integer({ min: 0, max: 20 }).map((n) => ({ t: 'tick' as const, n })),
);

describe('GPU exporter under random moves (fast-check)', () => {
  it('IM-06/IM-08/IM-09/DB-16: random migrations, evictions, pins and RDMA accesses never lose a byte nor read a stale location', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
        const { m, proc, gpu } = await gpuSetup({ strictLocking: true, gpu: { visibleVramBytes: 8n * BigInt(P), vramBytes: 16n * BigInt(P) } });
        const bo = gpu.createBo({ size: SIZE, domain: ['VRAM', 'GTT'] });
        const fd = primeExportFd(gpu, proc, bo);
        // nic0 is P2P-capable with gpu0 (VRAM tables), nic1 is not (GTT tables): both import the BO.
        const nic0 = side(m, proc, 'nic0');
        const nic1 = side(m, proc, 'nic1');
        const nic0b = side(m, proc, 'nic0');
        const nic1b = side(m, proc, 'nic1');
        connect(nic1, nic0); // nic1 -> MR on nic0
        connect(nic0b, nic1b); // nic0 -> MR on nic1
        const mr0 = nic0.ctx.regDmabufMr(nic0.pd, 0, SIZE, 0, fd, LW | RW | RR);
        const mr1 = nic1b.ctx.regDmabufMr(nic1b.pd, 0, SIZE, 0, fd, LW | RW | RR);
        const clients = [rdmaClient(m, nic1, mr0, SIZE), rdmaClient(m, nic0b, mr1, SIZE)];
        // A third, pin-capable importer (a pinned-mode user of the same buffer).
        const pinAtt = bo.dmabuf!.dynamicAttach(importerDevice(m, 'nic0'), { allowPeer2Peer: true, moveNotify: () => {} });
        const model = new Uint8Array(SIZE);
        let pins = 0;
        for (const op of ops) {
          switch (op.t) {
            case 'rdmaWrite': {
              const d = bytes(op.len, op.seed);
              expect(clients[op.nic]!.write(op.off, d).status).toBe('SUCCESS');
              model.set(d, op.off);
              break;
            }
            case 'rdmaRead': {
              const r = clients[op.nic]!.read(op.off, op.len);
              expect(r.wc.status).toBe('SUCCESS');
              expect(r.data).toEqual(model.subarray(op.off, op.off + op.len));
              break;
            }
            case 'gpuWrite': {
              const d = bytes(op.len, op.seed ^ 0x5a5a);
              bo.write(op.off, d);
              model.set(d, op.off);
              break;
            }
            case 'gpuRead':
              expect(bo.read(op.off, op.len)).toEqual(model.subarray(op.off, op.off + op.len));
              break;
            case 'evict':
              if (pins > 0 && bo.domain === 'VRAM') expect(() => gpu.evict(bo)).toThrow(/EBUSY/);
              else gpu.evict(bo);
              if (pins === 0) expect(bo.domain).toBe('GTT');
              break;
            case 'pressure':
              gpu.memoryPressure();
              if (pins === 0) expect(bo.domain).toBe('GTT');
              break;
            case 'migrate':
              if (pins > 0) expect(() => gpu.migrate(bo, op.to)).toThrow(/EBUSY/);
              else {
                gpu.migrate(bo, op.to);
                expect(bo.domain).toBe(op.to);
              }
              break;
            case 'pin':
              bo.resv.lock();
              try {
                pinAtt.pin();
              } finally {
                bo.resv.unlock();
              }
              pins++;
              break;
            case 'unpin':
              if (pins === 0) break;
              bo.resv.lock();
              try {
                pinAtt.unpin();
              } finally {
                bo.resv.unlock();
              }
              pins--;
              break;
            case 'tick':
              m.kernel.clock.advance(op.n);
              break;
          }
          // No MR may keep a translation into storage the BO has left: a mapped MR's table is current.
          for (const mr of [mr0, mr1]) {
            if (mr.mapped) expect(mr.umem!.attach.isStale(mr.umem!.sgt!)).toBe(false);
          }
        }
        // Final check: every view agrees with the model.
        expect(bo.read(0, SIZE)).toEqual(model);
        for (const c of clients) {
          const r = c.read(0, SIZE);
          expect(r.wc.status).toBe('SUCCESS');
          expect(r.data).toEqual(model);
        }
        expect(m.kernel.events.filter((e) => e.kind === 'warn')).toEqual([]);
        void DmaDataDirection;
      }),
      { numRuns: 40 },
    );
  });
});
