/**
 * The default scenario end to end (`dmabuf-sim run`, what `npm start` runs): the six acts of
 * the seed story on the real drivers, with the bytes checked by the scenario's own expectations
 * and the report, JSON and trace checked here.
 */
import { describe, expect, it } from 'vitest';
import { cli } from '../cli/cli-io.js';

interface JsonStep { op: string; status: string; outcome: string; message?: string; summary?: string; sections: { title: string; data: Record<string, unknown> }[]; log: string[] }
interface JsonAct { title: string; ok: boolean; steps: JsonStep[] }

describe('the seed story (default scenario)', () => {
  it('runs every act to its expectations and exits 0', async () => {
    const r = await cli(['run']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^dmabuf-sim run: seed \(builtin:seed\.yaml\)/);
    expect(r.out.trimEnd().split('\n').at(-1)).toMatch(/^result: OK: 6 acts, \d+ steps, (\d+) passed, 0 failed, 0 skipped$/);
  });

  it('act 1: BUS_ADDR over the switch; bus addresses without pages; the RDMA write lands in HBM', async () => {
    const { out } = await cli(['run']);
    const act1 = out.slice(out.indexOf('=== act 1/6'), out.indexOf('=== act 2/6'));
    expect(act1).toMatch(/mlx5_\d+ \(odp\): map type BUS_ADDR/);
    expect(act1).toContain('nents 1, orig_nents 0, 2M for DMA, no struct pages (P2P memory)');
    expect(act1).toContain('[0] dma 0x4020000000 len 2M page none');
    expect(act1).toContain('IBV_WC_SUCCESS');
    expect(act1).toContain('dma nic0 copy 65536 bytes to 0x4020001000: OK, 65536 done');
    expect(act1).toContain('65536 bytes match random seed 2021');
    expect(act1).not.toContain('IOMMU mapping');
    expect(act1).toContain('act 1: OK');
  });

  it('act 2: THRU_HOST_BRIDGE with the IOMMU on; IOVAs from dma_map_resource, the page table shows them', async () => {
    const { out } = await cli(['run']);
    const act2 = out.slice(out.indexOf('=== act 2/6'), out.indexOf('=== act 3/6'));
    expect(act2).toContain('map type THRU_HOST_BRIDGE');
    expect(act2).toMatch(/\[0\] dma 0xffe00000 len 2M page none/);
    expect(act2).toContain('nic1 IOMMU mapping of 0xffe00000:');
    expect(act2).toMatch(/leaf R W PS 2M page at 0x4020000000/);
    expect(act2).toContain('dma nic1 copy 131072 bytes to 0xffe10000: OK, 131072 done');
    expect(act2).toContain('131072 bytes match counter');
    expect(act2).toMatch(/dmar0: IOTLB \d+ translations, \d+ hits, \d+ misses/);
  });

  it('acts 3 and 4: refused across a non-whitelisted host bridge, as 6.x and the latest kernel refuse it', async () => {
    const r = await cli(['run', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out) as { acts: JsonAct[] };
    const outcomes = (a: JsonAct) => a.steps.filter((s) => s.op !== 'note').map((s) => `${s.op}:${s.outcome}`);
    expect(outcomes(rep.acts[2]!)).toEqual([
      'alloc:ok', 'map:ok', 'export:ok', 'register:EPERM', 'attach:EPERM', 'attach:ok', 'mapAttachment:EPERM',
      'detach:ok', 'mmap:EINVAL', 'unmap:EINVAL', 'close:ok', 'unmap:ok',
    ]);
    expect(outcomes(rep.acts[3]!)).toEqual([
      'alloc:ok', 'map:ok', 'export:ok', 'register:EPERM', 'attach:ok', 'mapAttachment:EPERM', 'detach:ok', 'close:ok', 'unmap:ok',
    ]);
    const act3 = rep.acts[2]!.steps;
    expect(act3.find((s) => s.op === 'mmap')!.message).toContain('[DB-18]');
    expect(act3.find((s) => s.op === 'unmap' && s.outcome === 'EINVAL')!.message).toContain('memory is exported [HL-07]');
    expect(act3.find((s) => s.op === 'mapAttachment')!.message).toContain('[HL-11]');
    for (const a of rep.acts) expect(a.ok).toBe(true);
  });

  it('act 5: a GPU buffer evicted under an on-demand MR: move_notify, page fault, every byte in place', async () => {
    const r = await cli(['run', '--json']);
    const act = (JSON.parse(r.out) as { acts: JsonAct[] }).acts[4]!;
    expect(act.ok).toBe(true);
    const steps = act.steps.filter((s) => s.op !== 'note');
    expect(steps.map((s) => `${s.op}:${s.outcome}`)).toEqual([
      'gpuAlloc:ok', 'export:ok', 'register:ok', 'post:ok', 'pressure:ok', 'post:ok', 'readBack:ok', 'readBack:ok', 'post:ok', 'unmap:ok', 'close:ok',
    ]);
    const pressure = steps.find((s) => s.op === 'pressure')!;
    expect(pressure.log.join('\n')).toMatch(/BO 1 evicted to GTT/);
    expect(pressure.log.join('\n')).toMatch(/move_notify -> 1 MR invalidated/);
    expect(steps[6]!.log.join('\n')).toContain('131072 bytes match random seed 4');
    expect(steps[7]!.log.join('\n')).toContain('131072 bytes match random seed 5');
  });

  it('act 6: a vfio-pci BAR revoked by a reset: the NIC sees REM_ACCESS_ERR, attach is ENODEV until restore', async () => {
    const r = await cli(['run', '--json']);
    const act = (JSON.parse(r.out) as { acts: JsonAct[] }).acts[5]!;
    expect(act.ok).toBe(true);
    const steps = act.steps.filter((s) => s.op !== 'note');
    expect(steps.map((s) => `${s.op}:${s.outcome}`)).toEqual([
      'vfioExport:ok', 'register:ok', 'post:ok', 'readBar:ok', 'reset:ok', 'post:ok', 'register:ENODEV', 'readBar:ok',
      'restore:ok', 'register:ok', 'post:ok', 'unmap:ok', 'unmap:ok', 'close:ok',
    ]);
    expect(steps[5]!.summary).toContain('IBV_WC_REM_ACCESS_ERR');
    expect(steps[6]!.message).toContain('[IM-12]');
    expect(steps[4]!.log.join('\n')).toMatch(/move_notify -> 1 MR invalidated/);
  });

  it('writes a Chrome trace with the steps, the dma-buf events and the DMA transfers', async () => {
    const r = await cli(['run', '--trace', 'seed-trace.json']);
    expect(r.code).toBe(0);
    const trace = JSON.parse(r.written.get('seed-trace.json')!) as { traceEvents: { ph: string; name: string; cat: string; pid: number; ts: number }[] };
    const ev = trace.traceEvents;
    expect(new Set(ev.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => e.pid))).toEqual(new Set([1, 2, 3, 4, 5, 6]));
    expect(ev.filter((e) => e.cat === 'dma').length).toBeGreaterThan(0);
    expect(ev.some((e) => e.cat === 'dma-buf' && /attach/.test(e.name))).toBe(true);
    expect(ev.some((e) => e.cat === 'dma-buf' && /map/.test(e.name))).toBe(true);
    for (const pid of [1, 2, 3, 4, 5, 6]) {
      const ts = ev.filter((e) => e.pid === pid && e.ph !== 'M').map((e) => e.ts);
      expect(ts).toEqual([...ts].sort((a, b) => a - b));
    }
  });
});
