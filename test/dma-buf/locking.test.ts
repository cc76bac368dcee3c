// DB-25: the locking convention, checked on every call, per profile.
import { describe, expect, it } from 'vitest';
import { DmaBufKernel, DmaDataDirection as Dir, type KernelProfileName } from '../../src/dma-buf/index.js';
import { TestExporter, dev, recordingImporter } from './helpers/exporter.js';

function setup(profile: KernelProfileName = '6.x', strict = false) {
  const k = new DmaBufKernel({ profile, strict });
  const exp = new TestExporter(k, { dynamic: true, vmap: true, mmap: true, cpuAccess: true });
  const buf = exp.export();
  const warns = () => k.events.filter((e) => e.kind === 'warn').map((e) => `${e.rule}:${e.detail['op']}`);
  return { k, exp, buf, warns };
}

describe('DB-25 locking convention', () => {
  it('DB-25 [6.x] a correct importer produces no WARN, and exporter callbacks see the documented lock state', () => {
    const { exp, buf, warns } = setup();
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    buf.resv.lock();
    a.pin();
    const t = a.map(Dir.BIDIRECTIONAL);
    a.unmap(t, Dir.BIDIRECTIONAL);
    a.unpin();
    const v = buf.vmap();
    buf.vunmap(v);
    buf.moveNotify();
    buf.resv.unlock();
    const t2 = a.mapUnlocked(Dir.TO_DEVICE);
    a.unmapUnlocked(t2, Dir.TO_DEVICE);
    buf.vunmapUnlocked(buf.vmapUnlocked());
    buf.beginCpuAccess(Dir.FROM_DEVICE);
    buf.endCpuAccess(Dir.FROM_DEVICE);
    buf.mmap({ pages: 1, prot: 1, flags: 1 }, 0n).munmap();
    a.detach();
    buf.put();
    expect(warns()).toEqual([]);
    const state = Object.fromEntries(exp.calls.map((c) => [c.op, c.locked]));
    expect(state).toEqual({
      attach: false,
      detach: false,
      release: false,
      begin_cpu_access: false,
      end_cpu_access: false,
      mmap: false,
      pin: true,
      unpin: true,
      map: true,
      unmap: true,
      vmap: true,
      vunmap: true,
    });
  });

  it('DB-25 [6.x] each importer call made with the wrong lock state is reported with its op', () => {
    const { buf, warns } = setup();
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    const t = a.map(Dir.BIDIRECTIONAL); // unlocked: wrong
    a.unmap(t, Dir.BIDIRECTIONAL);
    a.pin();
    a.unpin();
    buf.vunmap(buf.vmap());
    buf.resv.lock();
    const b = buf.attach(dev('s')); // locked: wrong (attach-time map then runs under this hold)
    buf.get();
    buf.put();
    buf.beginCpuAccess(Dir.TO_DEVICE);
    buf.resv.unlock();
    void b;
    expect(warns()).toEqual([
      'DB-25:dma_buf_map_attachment',
      'DB-25:dma_buf_unmap_attachment',
      'DB-25:dma_buf_pin',
      'DB-25:dma_buf_unpin',
      'DB-25:dma_buf_vmap',
      'DB-25:dma_buf_vunmap',
      'DB-25:dma_buf_attach',
      'DB-25:dma_buf_put',
      'DB-25:dma_buf_begin_cpu_access',
    ]);
  });

  it('DB-25 [6.x] the _unlocked variants must be called without the lock', () => {
    const { buf, warns } = setup();
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    buf.resv.lock();
    const t = a.mapUnlocked(Dir.BIDIRECTIONAL);
    a.unmapUnlocked(t, Dir.BIDIRECTIONAL);
    expect(buf.resv.isLocked()).toBe(true); // the caller's hold is left alone
    buf.resv.unlock();
    expect(warns()).toEqual(['DB-25:dma_buf_map_attachment_unlocked', 'DB-25:dma_buf_unmap_attachment_unlocked']);
  });

  it('DB-25 [latest] a static importer must hold the lock to map', () => {
    const { buf, warns } = setup('latest');
    const a = buf.attach(dev());
    const t = a.map(Dir.BIDIRECTIONAL);
    expect(warns()).toEqual(['DB-25:dma_buf_map_attachment']);
    buf.resv.lock();
    a.unmap(t, Dir.BIDIRECTIONAL);
    buf.resv.unlock();
  });

  it('DB-25 [5.15] only dynamic paths assert the lock: a static importer of a static exporter maps unlocked', () => {
    const k = new DmaBufKernel({ profile: '5.15' });
    const exp = new TestExporter(k, { vmap: true });
    const buf = exp.export();
    const a = buf.attach(dev());
    const t = a.map(Dir.BIDIRECTIONAL);
    a.unmap(t, Dir.BIDIRECTIONAL);
    buf.vunmap(buf.vmap());
    buf.resv.lock();
    buf.get();
    buf.put();
    buf.resv.unlock();
    const d = buf.dynamicAttach(dev(), recordingImporter().ops); // attach-time map (cached)
    d.map(Dir.BIDIRECTIONAL); // dynamic attachment: must hold
    expect(k.events.filter((e) => e.kind === 'warn').map((e) => `${e.rule}:${e.detail['op']}`)).toEqual([
      'DB-25:dma_buf_map_attachment',
    ]);
  });

  it('DB-25 strict mode: a wrong lock state throws EINVAL before anything changes', () => {
    const { buf, exp } = setup('6.x', true);
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    expect(() => a.map(Dir.BIDIRECTIONAL)).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-25' }));
    expect(() => a.pin()).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-25' }));
    expect(exp.calls.map((c) => c.op)).toEqual(['attach']);
    buf.resv.lock();
    expect(() => buf.put()).toThrowError(expect.objectContaining({ rule: 'DB-25' }));
    buf.resv.unlock();
    expect(buf.refs.kernel).toBe(1);
  });
});
