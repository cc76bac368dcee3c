// RB: multi-step driver operations roll back (the kernel's goto-err unwinding): a failure at any
// step leaves the fd tables, dma-bufs, attachments, pins, IOMMU mappings, DMA API mappings,
// frames and driver counters as they were before the call.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.js';
import { DmaDataDirection, O_CLOEXEC, O_RDWR, SimProcess, type DmaBuf } from '../../src/dma-buf/index.js';
import { DMA_HEAP_IOCTL_ALLOC, DmaHeaps, type DmaHeapAllocationData } from '../../src/drivers/dma-heap/index.js';
import {
  F_ADD_SEALS, F_SEAL_SHRINK, MFD_ALLOW_SEALING, UDMABUF_CREATE, UDMABUF_CREATE_LIST, UdmabufDevice, memfdCreate, memfdFcntl,
  memfdTruncate,
} from '../../src/drivers/udmabuf/index.js';
import { HabanaDevice, hlIoctlMemory, importerDevice } from '../../src/drivers/accel/index.js';
import { RdmaDevice, ibvOpenDevice, IBV_ACCESS_LOCAL_WRITE, IBV_ACCESS_REMOTE_WRITE } from '../../src/drivers/rdma/index.js';
import { VfioPciDevice, VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_DMA_BUF, VFIO_DEVICE_FEATURE_GET } from '../../src/drivers/vfio/index.js';
import {
  AmdgpuDevice, DRM_IOCTL_PRIME_FD_TO_HANDLE, DRM_IOCTL_PRIME_HANDLE_TO_FD, DRM_RDWR, type DrmPrimeHandle,
} from '../../src/drivers/gpu/index.js';
import { PAGE_SIZE, PROT_READ, PROT_WRITE } from '../../src/process/index.js';
import { expectAtomicFailure, machineScope, stateSnapshot, type SnapshotScope } from './snapshot.js';

const twoSwitches = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const M = 1n << 20n;
const BIDI = DmaDataDirection.BIDIRECTIONAL;
/** A DMA mask that leaves the IOMMU allocator a single page of IOVA space (pfn 0 is never given). */
const ONE_PAGE_MASK = (1n << 13n) - 1n;

async function machine(profile: '5.15' | '6.x' | 'latest' = '6.x') {
  return Machine.create({ topology: twoSwitches, iommu: { family: 'vtd' }, profile, ramBytes: 256n * M });
}

/** Fills the fd table of `proc` to its limit. */
function fillFds(proc: SimProcess): void {
  while (proc.openFds.length < proc.fdLimit) proc.openFile('/dev/null');
}

function bufOf(proc: SimProcess, fd: number): DmaBuf {
  const f = proc.file(fd);
  if (f.kind !== 'dma-buf') throw new Error('not a dma-buf');
  return f.dmabuf;
}

describe('RB dma-heap DMA_HEAP_IOCTL_ALLOC', () => {
  it('RB-01 fd table full (EMFILE), export allocation failure (ENOMEM), RAM exhausted (ENOMEM): nothing changes', async () => {
    const m = await machine();
    const heaps = DmaHeaps.create(m);
    const proc = new SimProcess(m.kernel, { fdLimit: 8 });
    const hfd = heaps.open(proc, 'system');
    const scope = machineScope(m, { procs: [proc], extra: () => heaps.system!.liveBuffers });
    const alloc = (len: number) => {
      const d: DmaHeapAllocationData = { len, fd: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0 };
      proc.ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, d);
      return d.fd;
    };
    stateSnapshot(scope);
    m.kernel.injectAllocFailure(1);
    expectAtomicFailure(scope, 'ENOMEM', () => alloc(3 * PAGE_SIZE));
    // More than all RAM: chunks are taken until the allocator runs dry, then all given back.
    const ram = Number(m.sim.memory.framesFree()) * PAGE_SIZE;
    expectAtomicFailure(scope, 'ENOMEM', () => alloc(ram + 2 * 1024 * 1024));
    fillFds(proc);
    expectAtomicFailure(scope, 'EMFILE', () => alloc(5 * PAGE_SIZE));
    proc.close(7);
    expect(alloc(PAGE_SIZE)).toBe(7);
  });
});

describe('RB udmabuf UDMABUF_CREATE / CREATE_LIST', () => {
  async function setup() {
    const m = await machine();
    const dev = UdmabufDevice.create(m);
    const proc = new SimProcess(m.kernel, { fdLimit: 16 });
    const devfd = dev.open(proc);
    const memfd = memfdCreate(m, proc, 'rb', MFD_ALLOW_SEALING);
    memfdFcntl(proc, memfd, F_ADD_SEALS, F_SEAL_SHRINK);
    memfdTruncate(proc, memfd, 8 * PAGE_SIZE);
    const plain = memfdCreate(m, proc, 'unsealed', MFD_ALLOW_SEALING);
    memfdTruncate(proc, plain, 8 * PAGE_SIZE);
    // Fault every memfd page in once, so that a failed create is compared with resident pages.
    proc.close(proc.ioctl(devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: 8 * PAGE_SIZE }));
    return { m, dev, proc, devfd, memfd, plain };
  }

  it('RB-02 the second item fails after the first item\'s pages were taken and pinned: all given back', async () => {
    const s = await setup();
    const scope = machineScope(s.m, { procs: [s.proc], extra: () => s.dev.liveBuffers });
    const list = [{ memfd: s.memfd, offset: 0, size: 4 * PAGE_SIZE }, { memfd: s.plain, offset: 0, size: PAGE_SIZE }];
    expectAtomicFailure(scope, 'EINVAL', () => s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, { flags: 0, count: 2, list }));
  });

  it('RB-03 export allocation failure and a full fd table after the pages were pinned: all given back', async () => {
    const s = await setup();
    const scope = machineScope(s.m, { procs: [s.proc], extra: () => s.dev.liveBuffers });
    const create = () => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: s.memfd, flags: 0, offset: PAGE_SIZE, size: 4 * PAGE_SIZE });
    s.m.kernel.injectAllocFailure(1);
    expectAtomicFailure(scope, 'ENOMEM', create);
    fillFds(s.proc);
    expectAtomicFailure(scope, 'EMFILE', create);
  });
});

describe('RB habanalabs memory ioctl and dma-buf export', () => {
  async function setup(profile: '5.15' | '6.x' = '6.x') {
    const m = await machine(profile);
    const dev = HabanaDevice.create(m, { pci: 'gaudi0', generation: 'gaudi2' });
    const proc = new SimProcess(m.kernel, { fdLimit: 16 });
    const fd = dev.open(proc);
    const handle = hlIoctlMemory(proc, fd, { op: 'ALLOC', memSize: 4n * M }).handle!;
    const va = hlIoctlMemory(proc, fd, { op: 'MAP', handle }).deviceVirtAddr!;
    const scope = machineScope(m, { procs: [proc], extra: () => [dev.dmabufExportCnt, dev.dramUsedMem] });
    return { m, dev, proc, fd, handle, va, scope };
  }

  it('RB-04 EXPORT_DMABUF_FD: export allocation failure, then a full fd table: nothing changes, UNMAP and FREE still work', async () => {
    const s = await setup();
    const exp = () => hlIoctlMemory(s.proc, s.fd, { op: 'EXPORT_DMABUF_FD', addr: s.va, memSize: 2n * M, flags: O_RDWR });
    s.m.kernel.injectAllocFailure(1);
    expectAtomicFailure(s.scope, 'ENOMEM', exp);
    fillFds(s.proc);
    expectAtomicFailure(s.scope, 'EMFILE', exp);
    // No export count was left behind: the VA can be unmapped and the memory freed.
    hlIoctlMemory(s.proc, s.fd, { op: 'UNMAP', deviceVirtAddr: s.va });
    hlIoctlMemory(s.proc, s.fd, { op: 'FREE', handle: s.handle });
    expect(s.dev.dramUsedMem).toBe(0n);
  });

  it('RB-05 MAP with the device VA space exhausted and ALLOC with the DRAM exhausted: ENOMEM, nothing taken', async () => {
    const s = await setup();
    // Take the DRAM in ever smaller pieces until not even one page is left.
    let big = s.handle;
    for (let pages = s.dev.hbmBytes / s.dev.dramPageSize; pages >= 1n; pages /= 2n) {
      try {
        const h = hlIoctlMemory(s.proc, s.fd, { op: 'ALLOC', memSize: pages * s.dev.dramPageSize }).handle!;
        if (big === s.handle) big = h;
      } catch (e) {
        expect((e as { code: string }).code).toBe('ENOMEM');
      }
    }
    expectAtomicFailure(s.scope, 'ENOMEM', () => hlIoctlMemory(s.proc, s.fd, { op: 'ALLOC', memSize: 2n * M }));
    // Map the largest pack until the VA space refuses it, then the small one until it is full.
    let maps = 0;
    for (const handle of [big, s.handle]) {
      for (;;) {
        try {
          hlIoctlMemory(s.proc, s.fd, { op: 'MAP', handle });
          maps++;
        } catch (e) {
          expect((e as { code: string }).code).toBe('ENOMEM');
          break;
        }
      }
    }
    expect(maps).toBeGreaterThan(0);
    expectAtomicFailure(s.scope, 'ENOMEM', () => hlIoctlMemory(s.proc, s.fd, { op: 'MAP', handle: s.handle }));
  });

  it('RB-06 an importer whose IOVA space is too small: map fails ENOMEM with nothing mapped, pinned or attached after it', async () => {
    const s = await setup();
    const nic = new RdmaDevice(s.m, 'nic0', { kind: 'odp' });
    nic.dma.setMask(ONE_PAGE_MASK);
    const dfd = hlIoctlMemory(s.proc, s.fd, { op: 'EXPORT_DMABUF_FD', addr: s.va, memSize: 2n * M, flags: O_RDWR }).fd!;
    const buf = bufOf(s.proc, dfd);
    const scope: SnapshotScope = { ...s.scope, devs: [nic.dma] };
    const imp = importerDevice(s.m, 'nic0');
    stateSnapshot(scope);
    // 6.x maps a static exporter at dynamic attach time (DB-09): the attach itself fails.
    expectAtomicFailure(scope, 'ENOMEM', () => buf.dynamicAttach(imp, { allowPeer2Peer: true, moveNotify: () => {} }));
    // A static attachment maps on demand: the map fails, the attachment stays as it was.
    const st = buf.attach(imp);
    st.peer2peer = true;
    expectAtomicFailure(scope, 'ENOMEM', () => st.mapUnlocked(BIDI));
    st.detach();
  });
});

describe('RB RDMA memory registration', () => {
  async function setup(kind: 'pinned' | 'odp', profile: '5.15' | '6.x' | 'latest' = '6.x') {
    const m = await machine(profile);
    const proc = new SimProcess(m.kernel, { name: 'app', memory: m.sim.memory, fdLimit: 32 });
    const hl = HabanaDevice.create(m, { pci: 'gaudi0', generation: 'gaudi2' });
    const hfd = hl.open(proc);
    const handle = hlIoctlMemory(proc, hfd, { op: 'ALLOC', memSize: 4n * M }).handle!;
    const va = hlIoctlMemory(proc, hfd, { op: 'MAP', handle }).deviceVirtAddr!;
    const dfd = hlIoctlMemory(proc, hfd, { op: 'EXPORT_DMABUF_FD', addr: va, memSize: 4n * M, flags: O_RDWR }).fd!;
    const nic = new RdmaDevice(m, 'nic0', { kind });
    const ctx = ibvOpenDevice(nic, proc);
    const pd = ctx.allocPd();
    const scope = machineScope(m, { procs: [proc], devs: [nic.dma], extra: () => [hl.liveTables, hl.dmabufExportCnt] });
    return { m, proc, nic, ctx, pd, dfd, scope };
  }

  for (const kind of ['pinned', 'odp'] as const) {
    for (const profile of ['6.x', 'latest'] as const) {
      it(`RB-07 ibv_reg_dmabuf_mr (${kind}, ${profile}): the mapping for the NIC fails: no attachment, pin, table or IOVA left`, async () => {
        const s = await setup(kind, profile);
        stateSnapshot(s.scope); // probes every lazily made object once
        s.nic.dma.setMask(ONE_PAGE_MASK);
        expectAtomicFailure(s.scope, 'ENOMEM', () => s.ctx.regDmabufMr(s.pd, 0, 2 * 1024 * 1024, 0, s.dfd, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE));
        s.nic.dma.setMask((1n << 64n) - 1n);
        const mr = s.ctx.regDmabufMr(s.pd, 0, 2 * 1024 * 1024, 0, s.dfd, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
        s.ctx.deregMr(mr);
      });
    }
  }

  it('RB-08 ibv_reg_mr: the NIC cannot map the pinned user pages: the pins and references go back', async () => {
    const s = await setup('pinned');
    const mem = s.proc.mmapAnonymous(8 * PAGE_SIZE, { prot: PROT_READ | PROT_WRITE, populate: true });
    const probes = Array.from({ length: 8 }, (_, i) => s.proc.getUserPages(mem.start + BigInt(i * PAGE_SIZE), 1)).map((p) => {
      s.proc.putUserPages(p);
      return p[0]!.pa;
    });
    const scope = { ...s.scope, probes };
    stateSnapshot(scope);
    s.nic.dma.setMask(ONE_PAGE_MASK);
    const err = expectAtomicFailure(scope, 'ENOMEM', () => s.ctx.regMr(s.pd, mem.start, 8 * PAGE_SIZE, IBV_ACCESS_LOCAL_WRITE));
    expect(err.message).toMatch(/dma_map_sgtable/);
  });
});

describe('RB vfio-pci VFIO_DEVICE_FEATURE_DMA_BUF', () => {
  it('RB-09 export allocation failure and a full fd table: nothing changes', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel, { name: 'vmm', memory: m.sim.memory, fdLimit: 8 });
    const vfio = VfioPciDevice.create(m, 'fpga0');
    const vfd = vfio.open(proc);
    const scope = machineScope(m, { procs: [proc], extra: () => vfio.liveTables });
    const exp = () => proc.ioctl(vfd, VFIO_DEVICE_FEATURE, {
      flags: VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF, data: { regionIndex: 0, dmaRanges: [{ offset: 0, length: PAGE_SIZE }] },
    });
    m.kernel.injectAllocFailure(1);
    expectAtomicFailure(scope, 'ENOMEM', exp);
    fillFds(proc);
    expectAtomicFailure(scope, 'EMFILE', exp);
  });
});

describe('RB amdgpu PRIME export and import', () => {
  it('RB-10 PRIME_HANDLE_TO_FD with a full fd table, PRIME_FD_TO_HANDLE whose attach fails: nothing changes', async () => {
    const m = await machine();
    const proc = new SimProcess(m.kernel, { name: 'app', memory: m.sim.memory, fdLimit: 16 });
    const gpu = AmdgpuDevice.create(m, { pci: 'gpu0', visibleVramBytes: M, vramBytes: 2n * M });
    const gpu2 = AmdgpuDevice.create(m, { pci: 'fpga0', visibleVramBytes: M, vramBytes: 2n * M });
    const drm = gpu.open(proc);
    const drm2 = gpu2.open(proc);
    const bo = gpu.createBo({ size: 64 * 1024, domain: 'VRAM' });
    const handle = gpu.drmFile(proc.file(drm)).handleCreate(bo);
    gpu.boPut(bo);
    const scope = machineScope(m, { procs: [proc], extra: () => [gpu.bos.map((b) => [b.id, b.refs, b.exported?.id ?? null]), gpu2.bos.length, gpu.liveTables] });
    const args: DrmPrimeHandle = { handle, flags: DRM_RDWR };
    m.kernel.injectAllocFailure(1);
    expectAtomicFailure(scope, 'ENOMEM', () => proc.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, args));
    proc.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, args);
    const dfd = args.fd!;
    m.kernel.injectAllocFailure(1);
    expectAtomicFailure(scope, 'ENOMEM', () => proc.ioctl(drm2, DRM_IOCTL_PRIME_FD_TO_HANDLE, { fd: dfd }));
    proc.close(dfd);
    fillFds(proc);
    expectAtomicFailure(scope, 'EMFILE', () => proc.ioctl(drm, DRM_IOCTL_PRIME_HANDLE_TO_FD, { handle, flags: DRM_RDWR }));
  });
});


describe('RB amdgpu moves with the arena exhausted', () => {
  it('RB-11 a migration whose GART mapping cannot get table frames fails with the BO where it was and nothing taken', async () => {
    const m = await Machine.create({ topology: twoSwitches, iommu: { family: 'vtd' }, ramBytes: 256n * M, arenaBytes: 8 << 20 });
    const gpu = AmdgpuDevice.create(m, { pci: 'gpu0', visibleVramBytes: M, vramBytes: 2n * M });
    const bo = gpu.createBo({ size: 256 * 1024, domain: 'VRAM' });
    bo.write(0, new Uint8Array(256 * 1024).fill(7));
    const mem = m.sim.memory;
    const scope = machineScope(m, { extra: () => [bo.domain, bo.moves, gpu.vramUsage(), gpu.liveTables] });
    // Touch fresh RAM pages until the arena has no chunk left.
    let pa = 0x1_0000_0000n + (128n * M);
    for (;;) {
      try {
        mem.write(pa, new Uint8Array([1]));
      } catch (e) {
        expect((e as { code: string }).code).toBe('ENOMEM');
        break;
      }
      pa += BigInt(PAGE_SIZE);
    }
    const before = stateSnapshot(scope);
    let code = '';
    try {
      gpu.migrate(bo, 'GTT');
    } catch (e) {
      code = (e as { code: string }).code;
    }
    expect(code).toBe('ENOMEM');
    expect(stateSnapshot(scope)).toBe(before);
    expect(bo.domain).toBe('VRAM');
    expect(bo.read(0, 4)).toEqual(new Uint8Array([7, 7, 7, 7]));
  });
});

describe('RB page-backed exporters whose importer cannot map', () => {
  for (const profile of ['5.15', '6.x', 'latest'] as const) {
    it(`RB-12 (${profile}) system heap and udmabuf: map (and attach-time map) fail ENOMEM with nothing mapped or listed`, async () => {
      const m = await machine(profile);
      const proc = new SimProcess(m.kernel, { fdLimit: 16 });
      const heaps = DmaHeaps.create(m);
      const d: DmaHeapAllocationData = { len: 8 * PAGE_SIZE, fd: 0, fdFlags: O_RDWR, heapFlags: 0 };
      proc.ioctl(heaps.open(proc, 'system'), DMA_HEAP_IOCTL_ALLOC, d);
      const udev = UdmabufDevice.create(m);
      const memfd = memfdCreate(m, proc, 'rb', MFD_ALLOW_SEALING);
      memfdFcntl(proc, memfd, F_ADD_SEALS, F_SEAL_SHRINK);
      memfdTruncate(proc, memfd, 8 * PAGE_SIZE);
      const ufd = proc.ioctl(udev.open(proc), UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: 8 * PAGE_SIZE });
      const nic = new RdmaDevice(m, 'nic0', { kind: 'odp' });
      const imp = importerDevice(m, 'nic0');
      const scope = machineScope(m, { procs: [proc], devs: [nic.dma], extra: () => [heaps.system!.liveBuffers, udev.liveBuffers, udev.liveTables] });
      stateSnapshot(scope);
      nic.dma.setMask(ONE_PAGE_MASK);
      for (const fd of [d.fd, ufd]) {
        const buf = bufOf(proc, fd);
        const att = buf.attach(imp);
        expectAtomicFailure(scope, 'ENOMEM', () => att.mapUnlocked(BIDI));
        att.detach();
        // A dynamic importer of a static exporter is mapped at attach time before 'latest'.
        const ops = { allowPeer2Peer: false, moveNotify: () => {} };
        if (profile === 'latest') buf.dynamicAttach(imp, ops).detach();
        else expectAtomicFailure(scope, 'ENOMEM', () => buf.dynamicAttach(imp, ops));
      }
    });
  }
});
