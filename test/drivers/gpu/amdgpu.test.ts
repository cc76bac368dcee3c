import { describe, expect, it } from 'vitest';
import {
  DmaDataDirection as Dir, DmaResvUsage, MAP_SHARED, PROT_READ, PAGE_SIZE, type DmaBufAttachment,
} from '../../../src/dma-buf/index.js';
import { importerDevice } from '../../../src/drivers/device.js';
import {
  AmdgpuDevice, AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED, AMDGPU_GEM_CREATE_NO_CPU_ACCESS, AMDGPU_GEM_DOMAIN_GTT,
  AMDGPU_GEM_DOMAIN_VRAM, AMDGPU_INVISIBLE_VRAM_BASE, DRM_CLOEXEC, DRM_IOCTL_AMDGPU_GEM_CREATE, DRM_IOCTL_GEM_CLOSE,
  DRM_IOCTL_PRIME_HANDLE_TO_FD, DRM_RDWR, type DrmAmdgpuGemCreate, type DrmPrimeHandle,
} from '../../../src/drivers/gpu/index.js';
import { bytes, errOf, gpuSetup, MIB, primeExportFd, primeImport } from './helpers.js';

const P = PAGE_SIZE;
const BIDI = Dir.BIDIRECTIONAL;

/** A dynamic test importer that records move_notify calls and the lock state they came with. */
function recorder() {
  const calls: { att: number; locked: boolean }[] = [];
  return {
    calls,
    ops: { allowPeer2Peer: true, moveNotify: (att: DmaBufAttachment) => calls.push({ att: att.id, locked: att.dmabuf.resv.isLocked() }) },
  };
}

describe('amdgpu buffer objects', () => {
  it('places VRAM BOs in the visible window (BAR0) or invisible VRAM, GTT BOs in RAM pages; contents start zeroed', async () => {
    const { m, gpu } = await gpuSetup();
    const bar = m.pci('gpu0').bar(0)!;
    const v = gpu.createBo({ size: 3 * P, domain: 'VRAM' });
    expect(v.domain).toBe('VRAM');
    expect(v.visible).toBe(true);
    expect(v.physRanges()).toEqual([{ phys: bar.cpuAddress, length: 3n * BigInt(P) }]);
    const inv = gpu.createBo({ size: P, domain: 'VRAM', flags: AMDGPU_GEM_CREATE_NO_CPU_ACCESS });
    expect(inv.visible).toBe(false);
    expect(inv.physRanges()[0]!.phys).toBe(AMDGPU_INVISIBLE_VRAM_BASE);
    const g = gpu.createBo({ size: 2 * P + 1, domain: 'GTT' });
    expect(g.size).toBe(3 * P);
    expect(g.domain).toBe('GTT');
    expect(g.physRanges().every((r) => r.phys >= 0x1_0000_0000n)).toBe(true);
    for (const bo of [v, inv, g]) expect(bo.read(0, 64)).toEqual(new Uint8Array(64));
    g.write(100, bytes(5000, 2));
    expect(g.read(100, 5000)).toEqual(bytes(5000, 2));
    expect(gpu.vramUsage()).toEqual({ visible: 3n * BigInt(P), invisible: BigInt(P) });
  });

  it('migration copies every byte with the GPU DMA engine and fences the move (KERNEL usage); old VRAM is freed after the fence', async () => {
    const { m, gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: 4 * P, domain: ['VRAM', 'GTT'] });
    bo.write(0, bytes(4 * P, 5));
    const ops = m.sim.dma.stats().ops;
    expect(gpu.migrate(bo, 'GTT')).toBe(true);
    expect(m.sim.dma.stats().ops).toBeGreaterThan(ops);
    expect(bo.domain).toBe('GTT');
    expect(bo.resv.testSignaled(DmaResvUsage.KERNEL)).toBe(false);
    expect(bo.resv.getFences(DmaResvUsage.KERNEL)).toHaveLength(1);
    expect(gpu.vramUsage().visible).toBe(4n * BigInt(P)); // waiting for the fence
    m.kernel.clock.advance(4);
    expect(bo.resv.testSignaled(DmaResvUsage.KERNEL)).toBe(true);
    expect(gpu.vramUsage().visible).toBe(0n);
    expect(bo.read(0, 4 * P)).toEqual(bytes(4 * P, 5));
    expect(gpu.migrate(bo, 'VRAM')).toBe(true);
    expect(bo.read(0, 4 * P)).toEqual(bytes(4 * P, 5)); // the read waited for the move fence
    expect(bo.moves).toBe(2);
    expect(gpu.migrate(bo, 'VRAM')).toBe(false);
  });

  it('memory pressure evicts unpinned VRAM BOs, least recently placed first, and skips pinned ones', async () => {
    const { gpu } = await gpuSetup();
    const a = gpu.createBo({ size: P, domain: 'VRAM' });
    const b = gpu.createBo({ size: P, domain: 'VRAM' });
    const c = gpu.createBo({ size: P, domain: 'VRAM' });
    gpu.pinBo(a, 'VRAM');
    expect(gpu.memoryPressure({ bytes: P }).map((x) => x.id)).toEqual([b.id]);
    expect(gpu.memoryPressure().map((x) => x.id)).toEqual([c.id]);
    expect([a.domain, b.domain, c.domain]).toEqual(['VRAM', 'GTT', 'GTT']);
    expect(errOf(() => gpu.evict(a)).code).toBe('EBUSY');
    expect(errOf(() => gpu.migrate(a, 'GTT')).code).toBe('EBUSY');
    gpu.unpinBo(a);
    expect(gpu.evict(a)).toBe(true);
  });

  it('a full VRAM evicts others to make room (TTM eviction), waiting for their move fences', async () => {
    const { gpu } = await gpuSetup({ gpu: { visibleVramBytes: 4n * BigInt(P), vramBytes: 4n * BigInt(P) } });
    const a = gpu.createBo({ size: 2 * P, domain: 'VRAM' });
    a.write(0, bytes(2 * P, 1));
    const b = gpu.createBo({ size: 2 * P, domain: 'VRAM' });
    const c = gpu.createBo({ size: 2 * P, domain: 'VRAM' });
    expect([a.domain, b.domain, c.domain]).toEqual(['GTT', 'VRAM', 'VRAM']);
    expect(a.read(0, 2 * P)).toEqual(bytes(2 * P, 1));
    gpu.pinBo(b, 'VRAM');
    gpu.pinBo(c, 'VRAM');
    expect(errOf(() => gpu.createBo({ size: P, domain: 'VRAM' })).code).toBe('ENOMEM');
    expect(gpu.createBo({ size: P, domain: ['VRAM', 'GTT'] }).domain).toBe('GTT');
  });
});

describe('amdgpu exporter (IM-07..IM-10)', () => {
  it('IM-07: attach keeps peer2peer only with a P2P path: nic0 (THRU_HOST_BRIDGE) yes; nic1 (hb1, not whitelisted) and a non-PCI device no', async () => {
    const { m, gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: P, domain: 'VRAM' });
    const buf = gpu.exportDmabuf(bo);
    const r = recorder();
    const a0 = buf.dynamicAttach(importerDevice(m, 'nic0'), r.ops);
    const a1 = buf.dynamicAttach(importerDevice(m, 'nic1'), r.ops);
    const a2 = buf.dynamicAttach({ name: 'soc-dsp' }, r.ops);
    expect([a0.peer2peer, a1.peer2peer, a2.peer2peer]).toEqual([true, false, false]);
    expect((a0.priv as { distance: number }).distance).toBeGreaterThan(0);
    expect((a1.priv as { distance: number }).distance).toBe(-1);
    for (const a of [a0, a1, a2]) a.detach();
    buf.put();
  });

  it('IM-08: map for a P2P importer keeps the BO in visible VRAM: one dma_map_resource IOVA per VRAM chunk, no pages', async () => {
    const { m, gpu } = await gpuSetup();
    const hole = gpu.createBo({ size: P, domain: 'VRAM' });
    const mid = gpu.createBo({ size: P, domain: 'VRAM' });
    gpu.createBo({ size: (256 - 3) * P, domain: 'VRAM' }); // the rest of the window but one page
    gpu.freeBo(hole);
    gpu.freeBo(mid);
    m.kernel.clock.advance(1);
    // 3 pages in a window with free runs of 2 pages (offsets 0..2) and 1 page (the last): 2 chunks.
    const bo = gpu.createBo({ size: 3 * P, domain: 'VRAM', flags: AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED });
    expect(bo.physRanges().length).toBe(2);
    bo.write(0, bytes(3 * P, 9));
    const buf = gpu.exportDmabuf(bo);
    const nic0 = importerDevice(m, 'nic0');
    const att = buf.dynamicAttach(nic0, recorder().ops);
    buf.resv.lock();
    const sgt = att.map(BIDI);
    buf.resv.unlock();
    expect(bo.domain).toBe('VRAM');
    expect(bo.moves).toBe(0);
    expect(sgt.nents).toBe(2);
    expect(sgt.isPageless()).toBe(true);
    expect(sgt.entries.map((e) => BigInt(e.length))).toEqual(bo.physRanges().map((r) => r.length));
    expect(sgt.entries[0]!.dmaAddress).not.toBe(bo.physRanges()[0]!.phys); // an IOVA of nic0's domain
    // nic0 reads through those IOVAs and sees the BO's bytes.
    const rid = m.rid(m.pci('nic0'));
    const got = new Uint8Array(3 * P);
    let at = 0;
    for (const e of sgt.dmaSegments()) {
      const r = m.sim.dma.read({ rid, addr: e.dmaAddress }, Number(e.length));
      expect(r.ok).toBe(true);
      got.set(r.data, at);
      at += Number(e.length);
    }
    expect(got).toEqual(bytes(3 * P, 9));
    buf.resv.lock();
    att.unmap(sgt, BIDI);
    buf.resv.unlock();
    expect(gpu.liveTables).toBe(0);
  });

  it('IM-08: a BO in invisible VRAM is moved into the visible window for a P2P map (and flagged CPU_ACCESS_REQUIRED)', async () => {
    const { m, gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: 2 * P, domain: 'VRAM', flags: AMDGPU_GEM_CREATE_NO_CPU_ACCESS });
    bo.write(0, bytes(2 * P, 3));
    const buf = gpu.exportDmabuf(bo);
    const r = recorder();
    const att = buf.dynamicAttach(importerDevice(m, 'nic0'), r.ops);
    const sgt = att.mapUnlocked(BIDI);
    expect(bo.visible).toBe(true);
    expect(bo.flags & AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED).toBeTruthy();
    expect(bo.moves).toBe(1);
    expect(r.calls).toEqual([{ att: att.id, locked: true }]);
    expect(bo.read(0, 2 * P)).toEqual(bytes(2 * P, 3));
    att.unmapUnlocked(sgt, BIDI);
  });

  it('IM-08: map for a non-P2P importer moves the BO to GTT and returns a page-backed table (dma_map_sgtable)', async () => {
    const { m, gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: 3 * P, domain: 'VRAM' });
    bo.write(0, bytes(3 * P, 4));
    const buf = gpu.exportDmabuf(bo);
    const r = recorder();
    const att = buf.dynamicAttach(importerDevice(m, 'nic1'), r.ops);
    const sgt = att.mapUnlocked(BIDI);
    expect(bo.domain).toBe('GTT');
    expect(r.calls).toHaveLength(1);
    expect(sgt.origNents).toBe(3);
    expect(sgt.nents).toBe(1); // the IOMMU merged the three pages into one IOVA run
    expect(sgt.entries[0]!.page?.pfn).toBe(bo.physRanges()[0]!.phys >> 12n);
    expect(sgt.totalLength()).toBe(3n * BigInt(P));
    expect(bo.read(0, 3 * P)).toEqual(bytes(3 * P, 4));
    att.unmapUnlocked(sgt, BIDI);
  });

  it('IM-08/DB-09: a static importer (never P2P) gets the BO pinned in GTT at attach (6.x attach-time mapping)', async () => {
    const { m, gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: P, domain: 'VRAM' });
    const buf = gpu.exportDmabuf(bo);
    const att = buf.attach(importerDevice(m, 'nic0'));
    expect(att.peer2peer).toBe(false);
    expect(bo.domain).toBe('GTT');
    expect(bo.pinCount).toBe(1);
    expect(att.cachedTable!.entries[0]!.page).not.toBeNull();
    att.detach();
    expect(bo.pinCount).toBe(0);
  });

  it('IM-08: a BO pinned outside GTT cannot be mapped: EBUSY ([5.15]; [6.x] unless the importer is P2P)', async () => {
    for (const profile of ['5.15', '6.x'] as const) {
      const { m, gpu } = await gpuSetup({ profile });
      const bo = gpu.createBo({ size: P, domain: 'VRAM', flags: AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED });
      gpu.pinBo(bo, 'VRAM');
      const buf = gpu.exportDmabuf(bo);
      const p2p = buf.dynamicAttach(importerDevice(m, 'nic0'), recorder().ops);
      const nop2p = buf.dynamicAttach(importerDevice(m, 'nic1'), recorder().ops);
      const e = errOf(() => nop2p.mapUnlocked(BIDI));
      expect([e.code, e.rule]).toEqual(['EBUSY', 'IM-08']);
      if (profile === '5.15') {
        expect(errOf(() => p2p.mapUnlocked(BIDI)).code).toBe('EBUSY');
      } else {
        const sgt = p2p.mapUnlocked(BIDI);
        expect(sgt.isPageless()).toBe(true);
        p2p.unmapUnlocked(sgt, BIDI);
      }
    }
  });

  it('IM-09: pin: [5.15] always GTT; [6.x] stays in VRAM when every attachment is P2P, drops VRAM when any is not', async () => {
    const pinOnce = async (profile: '5.15' | '6.x', importers: string[]) => {
      const { m, gpu } = await gpuSetup({ profile });
      const bo = gpu.createBo({ size: P, domain: 'VRAM' });
      const buf = gpu.exportDmabuf(bo);
      const atts = importers.map((n) => buf.dynamicAttach(importerDevice(m, n), recorder().ops));
      buf.resv.lock();
      atts[0]!.pin();
      buf.resv.unlock();
      return { bo, buf, atts, gpu };
    };
    expect((await pinOnce('5.15', ['nic0'])).bo.domain).toBe('GTT');
    const x = await pinOnce('6.x', ['nic0']);
    expect([x.bo.domain, x.bo.visible, x.bo.pinCount]).toEqual(['VRAM', true, 1]);
    expect(errOf(() => x.gpu.evict(x.bo)).code).toBe('EBUSY');
    expect(x.gpu.memoryPressure()).toEqual([]);
    const y = await pinOnce('6.x', ['nic0', 'nic1']);
    expect(y.bo.domain).toBe('GTT');
    // Already pinned in GTT: a second pin wanting VRAM only is EINVAL.
    y.buf.resv.lock();
    y.atts[1]!.pin();
    expect(y.bo.pinCount).toBe(2);
    y.atts[1]!.unpin();
    y.atts[0]!.unpin();
    y.buf.resv.unlock();
    expect(y.bo.pinCount).toBe(0);
    const z = await gpuSetup();
    const vbo = z.gpu.createBo({ size: P, domain: 'GTT' });
    z.gpu.pinBo(vbo, 'GTT');
    expect(errOf(() => z.gpu.pinBo(vbo, 'VRAM')).code).toBe('EINVAL');
  });

  it('IM-08/DB-16: eviction calls move_notify on every dynamic attachment under the resv lock, then fences the copy', async () => {
    const { m, gpu } = await gpuSetup({ strictLocking: true });
    const bo = gpu.createBo({ size: 2 * P, domain: 'VRAM' });
    const buf = gpu.exportDmabuf(bo);
    const r = recorder();
    const a = buf.dynamicAttach(importerDevice(m, 'nic0'), r.ops);
    const b = buf.dynamicAttach(importerDevice(m, 'nic1'), r.ops);
    const events: string[] = [];
    const sub = m.kernel.onEvent((e) => {
      if (e.kind === 'move_notify' || e.kind === 'resv_add_fence') events.push(e.kind);
    });
    expect(gpu.memoryPressure()).toEqual([bo]);
    sub.dispose();
    expect(r.calls).toEqual([{ att: b.id, locked: true }, { att: a.id, locked: true }]);
    expect(events).toEqual(['move_notify', 'move_notify', 'resv_add_fence']);
    expect(buf.moveGeneration).toBe(1);
    const f = gpu.lastMoveFence(bo)!;
    expect([f.driverName, f.isSignaled()]).toEqual(['amdgpu', false]);
    expect(f.wait(false)).toBe(0);
    a.detach();
    b.detach();
    buf.put();
    expect(m.kernel.events.filter((e) => e.kind === 'warn')).toEqual([]);
  });

  it('IM-10: begin_cpu_access for reads migrates an unpinned BO to GTT; writes and pinned BOs stay', async () => {
    const { gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: P, domain: 'VRAM' });
    bo.write(0, bytes(P, 8));
    const buf = gpu.exportDmabuf(bo);
    buf.beginCpuAccess(Dir.TO_DEVICE);
    expect(bo.domain).toBe('VRAM');
    buf.beginCpuAccess(Dir.FROM_DEVICE);
    expect(bo.domain).toBe('GTT');
    expect(bo.resv.testSignaled(DmaResvUsage.KERNEL)).toBe(true); // begin_cpu_access waited for the move
    expect(bo.read(0, P)).toEqual(bytes(P, 8));
    const pinned = gpu.createBo({ size: P, domain: 'VRAM' });
    gpu.pinBo(pinned, 'VRAM');
    gpu.exportDmabuf(pinned).beginCpuAccess(Dir.BIDIRECTIONAL);
    expect(pinned.domain).toBe('VRAM');
  });

  it('IM-10: mmap of a GTT (or visible VRAM) BO works; of a NO_CPU_ACCESS (invisible VRAM) BO it is EPERM', async () => {
    const { proc, gpu } = await gpuSetup();
    const g = gpu.createBo({ size: 2 * P, domain: 'GTT' });
    const fd = primeExportFd(gpu, proc, g);
    const map = proc.mmap(fd, { length: 2 * P, prot: PROT_READ, flags: MAP_SHARED });
    expect(map.active).toBe(true);
    map.munmap();
    const inv = gpu.createBo({ size: P, domain: 'VRAM', flags: AMDGPU_GEM_CREATE_NO_CPU_ACCESS });
    const fd2 = primeExportFd(gpu, proc, inv);
    const e = errOf(() => proc.mmap(fd2, { length: P, prot: PROT_READ, flags: MAP_SHARED }));
    expect([e.code, e.rule]).toEqual(['EPERM', 'IM-10']);
  });

  it('exporting twice gives the same dma-buf; the BO lives until both its handle and the dma-buf are gone', async () => {
    const { m, proc, gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: P, domain: 'VRAM' });
    const buf = gpu.exportDmabuf(bo);
    expect(gpu.exportDmabuf(bo)).toBe(buf);
    buf.put();
    const fd = proc.dmaBufFd(buf);
    gpu.freeBo(bo);
    expect(bo.freed).toBe(false);
    proc.close(fd);
    expect(bo.freed).toBe(true);
    m.kernel.clock.advance(10);
    expect(gpu.vramUsage().visible).toBe(0n);
  });
});

describe('amdgpu importer (IM-11)', () => {
  async function twoGpus() {
    const s = await gpuSetup();
    // A second amdgpu-like device on fpga0 (hb1): no P2P path to gpu0, so its exports map as GTT pages.
    const gpu1 = AmdgpuDevice.create(s.m, { pci: 'fpga0', visibleVramBytes: MIB, vramBytes: 2n * MIB });
    return { ...s, gpu1 };
  }

  it('IM-11: importing its own export returns the same BO and makes no attachment', async () => {
    const { proc, gpu } = await gpuSetup();
    const bo = gpu.createBo({ size: P, domain: 'VRAM' });
    const fd = primeExportFd(gpu, proc, bo);
    const drm = gpu.open(proc);
    const again = primeImport(gpu, proc, drm, fd);
    expect(again.bo).toBe(bo);
    expect(bo.dmabuf!.attachments).toHaveLength(0);
    // The same BO gets the same handle in one file (drm_prime's handle lookup).
    expect(primeImport(gpu, proc, drm, fd).handle).toBe(again.handle);
  });

  it('the render node: GEM_CREATE gives a handle holding the BO, PRIME_HANDLE_TO_FD exports it, GEM_CLOSE and close drop it', async () => {
    const { proc, gpu } = await gpuSetup();
    const drm = gpu.open(proc);
    const create: DrmAmdgpuGemCreate = { boSize: 3 * P, domains: AMDGPU_GEM_DOMAIN_VRAM };
    expect(proc.ioctl(drm, DRM_IOCTL_AMDGPU_GEM_CREATE, create)).toBe(0);
    const bo = gpu.drmFile(proc.file(drm)).lookup(create.handle!);
    expect([bo.size, bo.domain]).toEqual([3 * P, 'VRAM']);
    expect(errOf(() => proc.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, { handle: create.handle, flags: 0o100 })).code).toBe('EINVAL');
    expect(errOf(() => proc.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, { handle: 99, flags: 0 })).code).toBe('ENOENT');
    const prime: DrmPrimeHandle = { handle: create.handle, flags: DRM_RDWR | DRM_CLOEXEC };
    proc.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, prime);
    expect(proc.isCloexec(prime.fd!)).toBe(true);
    expect(proc.dmaBufGet(prime.fd!).put()).toBeUndefined();
    proc.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: create.handle });
    expect(errOf(() => proc.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: create.handle })).code).toBe('ENOENT');
    expect(bo.freed).toBe(false); // the dma-buf still holds it
    proc.close(prime.fd!);
    expect(bo.freed).toBe(true);
    const c2: DrmAmdgpuGemCreate = { boSize: P, domains: AMDGPU_GEM_DOMAIN_GTT };
    proc.ioctl(drm, DRM_IOCTL_AMDGPU_GEM_CREATE, c2);
    const bo2 = gpu.drmFile(proc.file(drm)).lookup(c2.handle!);
    proc.close(drm); // drm_gem_release: every handle goes
    expect(bo2.freed).toBe(true);
    expect(errOf(() => proc.ioctl(drm, DRM_IOCTL_GEM_CLOSE, { handle: 1 })).code).toBe('EBADF');
  });

  it('IM-11: imports with a dynamic P2P attachment; move_notify invalidates the PTEs; the next use re-validates at the new place', async () => {
    const { m, gpu, gpu1 } = await twoGpus();
    const src = gpu1.createBo({ size: 4 * P, domain: ['VRAM', 'GTT'] });
    src.write(0, bytes(4 * P, 6));
    const buf = gpu1.exportDmabuf(src);
    const imp = gpu.importDmabuf(buf);
    const att = imp.attachment!;
    expect(att.isDynamic()).toBe(true);
    expect(att.peer2peer).toBe(false); // gpu1's attach: no P2P path from fpga0 to gpu0
    expect(imp.ptesValid).toBe(false);
    expect(imp.read(0, 4 * P)).toEqual(bytes(4 * P, 6)); // first use validates: src moves to GTT
    expect(src.domain).toBe('GTT');
    expect([imp.ptesValid, imp.revalidations, imp.invalidations]).toEqual([true, 1, 0]);
    imp.write(P, bytes(100, 7));
    expect(src.read(P, 100)).toEqual(bytes(100, 7));
    // The exporter migrates: move_notify under resv invalidates the importer's PTEs.
    gpu1.migrate(src, 'VRAM');
    expect([imp.ptesValid, imp.invalidations]).toEqual([false, 1]);
    expect(att.mappedTables).toHaveLength(0);
    // Next use: re-map (the BO goes back to GTT for this non-P2P importer), wait the move fence, rewrite PTEs.
    const want = bytes(4 * P, 6);
    want.set(bytes(100, 7), P);
    expect(imp.read(0, 4 * P)).toEqual(want);
    expect([imp.ptesValid, imp.revalidations]).toEqual([true, 2]);
    expect(src.domain).toBe('GTT');
    expect(gpu.events.filter((e) => e.bo === imp.id).map((e) => e.kind)).toEqual(['create', 'revalidate', 'invalidate', 'revalidate']);
    gpu.freeBo(imp);
    expect(buf.attachments).toHaveLength(0);
    void m;
  });

  it('IM-11: with the VM lock contended, move_notify skips the page-table update; the next use still re-validates', async () => {
    const { gpu, gpu1 } = await twoGpus();
    const src = gpu1.createBo({ size: P, domain: 'GTT' });
    const imp = gpu.importDmabuf(gpu1.exportDmabuf(src));
    imp.write(0, bytes(10, 1));
    gpu.vmLockContended = true;
    gpu1.migrate(src, 'VRAM');
    expect(imp.ptesValid).toBe(false);
    expect(gpu.events.at(-1)!.detail.deferred).toBe(true);
    expect(imp.read(0, 10)).toEqual(bytes(10, 1));
  });
});
