import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { Machine } from '../../../src/machine/machine.js';
import {
  DMA_BUF_IOCTL_SYNC, DMA_BUF_SYNC_END, DMA_BUF_SYNC_RW, DMA_BUF_SYNC_START, DmaDataDirection, MAP_PRIVATE, MAP_SHARED,
  O_ACCMODE, O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_RDWR, PROT_READ, PROT_WRITE, SEEK_END, SimProcess, type DmaBuf,
} from '../../../src/dma-buf/index.js';
import type { IommuDomain } from '../../../src/iommu/iommu.js';
import {
  DMA_HEAP_IOCTL_ALLOC, DmaHeaps, bufferRead, decodeAllocationData, dmaHeapIoctlAlloc, encodeAllocationData, mmapRead,
  mmapWrite, pageBackedOf, type DmaHeapAllocationData,
} from '../../../src/drivers/dma-heap/index.js';
import { importerDevice } from '../../../src/drivers/accel/index.js';

const twoSwitches = readFileSync(new URL('../../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const PAGE = 4096;
const ONE_MEG = 1024 * 1024;
const BIDI = DmaDataDirection.BIDIRECTIONAL;
const err = (code: string) => expect.objectContaining({ code });

async function setup(opts: { iommu?: boolean } = {}) {
  const m = await Machine.create({ topology: twoSwitches, iommu: opts.iommu === false ? null : { family: 'vtd' } });
  const heaps = DmaHeaps.create(m);
  const proc = new SimProcess(m.kernel);
  proc.openFile('/dev/stdin'); // fd 0
  const heapFd = heaps.open(proc, 'system');
  return { m, heaps, proc, heapFd };
}
type S = Awaited<ReturnType<typeof setup>>;

function alloc(s: S, len: number, heapFlags: number | bigint = 0, fdFlags = O_RDWR | O_CLOEXEC, fd = s.heapFd): number {
  const data: DmaHeapAllocationData = { len, fd: 0, fdFlags, heapFlags };
  s.proc.ioctl(fd, DMA_HEAP_IOCTL_ALLOC, data);
  return data.fd;
}

function bufOf(s: S, fd: number): DmaBuf {
  const f = s.proc.file(fd);
  if (f.kind !== 'dma-buf') throw new Error('not a dma-buf');
  return f.dmabuf;
}

const sync = (s: S, fd: number, startStop: number) => s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: startStop | DMA_BUF_SYNC_RW });

describe('dmabuf-heap self-test (tools/testing/selftests/dmabuf-heaps/dmabuf-heap.c)', () => {
  it('opens /dev/dma_heap/system; an unknown heap is ENOENT', async () => {
    const s = await setup();
    expect(s.heaps.names()).toEqual(['system']);
    expect(s.heapFd).toBeGreaterThan(0);
    expect(() => s.heaps.open(s.proc, 'cma')).toThrowError(err('ENOENT'));
  });

  it('test_alloc_and_import: 1 MiB, mmap, SYNC START, memset halves, SYNC END; import into a device; SYNC again, memset 0xff', async () => {
    const s = await setup();
    const fd = alloc(s, ONE_MEG);
    expect(fd).toBeGreaterThan(0);
    expect(s.proc.isCloexec(fd)).toBe(true);
    const p = s.proc.mmap(fd, { length: ONE_MEG, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    expect(sync(s, fd, DMA_BUF_SYNC_START)).toBe(0);
    mmapWrite(s.m.sim.memory, p, 0, new Uint8Array(ONE_MEG / 2).fill(1));
    mmapWrite(s.m.sim.memory, p, ONE_MEG / 2, new Uint8Array(ONE_MEG / 2).fill(0));
    expect(sync(s, fd, DMA_BUF_SYNC_END)).toBe(0);
    // import (the self-test uses vgem's PRIME import; here a PCI device attaches and maps)
    const buf = s.proc.dmaBufGet(fd);
    const att = buf.attach(s.m.dmaDevice(s.m.pci('gpu0')));
    const sgt = att.mapUnlocked(BIDI);
    expect(s.heaps.system!.attachmentOf(att)!.mapped).toBe(true);
    expect(sync(s, fd, DMA_BUF_SYNC_START)).toBe(0);
    mmapWrite(s.m.sim.memory, p, 0, new Uint8Array(ONE_MEG).fill(0xff));
    expect(sync(s, fd, DMA_BUF_SYNC_END)).toBe(0);
    const r = s.m.sim.dma.read({ rid: s.m.rid(s.m.pci('gpu0')), addr: sgt.entries[0]!.dmaAddress }, 16);
    expect(r.data).toEqual(new Uint8Array(16).fill(0xff));
    att.unmapUnlocked(sgt, BIDI);
    expect(s.heaps.system!.attachmentOf(att)!.mapped).toBe(false);
    att.detach();
    buf.put();
    s.proc.munmap(p);
    s.proc.close(fd);
    expect(s.heaps.system!.liveBuffers).toBe(0);
  });

  it('test_alloc_compat: an older (16-byte) struct is zero-extended, a newer (48-byte) one has its extra bytes ignored', async () => {
    const s = await setup();
    const older = encodeAllocationData({ len: ONE_MEG, fd: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0 }, 16);
    expect(dmaHeapIoctlAlloc(16)).not.toBe(DMA_HEAP_IOCTL_ALLOC);
    expect(s.proc.ioctl(s.heapFd, dmaHeapIoctlAlloc(16), older)).toBe(0);
    const olderFd = new DataView(older.buffer).getUint32(8, true);
    expect(bufOf(s, olderFd).size).toBe(ONE_MEG);
    s.proc.close(olderFd);

    const newer = encodeAllocationData({ len: ONE_MEG, fd: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0 }, 48);
    const v = new DataView(newer.buffer);
    v.setBigUint64(24, 0xffffffffn, true);
    v.setBigUint64(32, 0x88888888n, true);
    v.setBigUint64(40, 0x11111111n, true);
    expect(s.proc.ioctl(s.heapFd, dmaHeapIoctlAlloc(48), newer)).toBe(0);
    const newerFd = decodeAllocationData(newer).fd;
    expect(bufOf(s, newerFd).size).toBe(ONE_MEG);
    expect(v.getBigUint64(24, true)).toBe(0xffffffffn); // written back unchanged
    // heap_flags in the tail of an older struct do not exist: a 16-byte struct ignores them
    const trunc = encodeAllocationData({ len: PAGE, fd: 0, fdFlags: O_RDWR, heapFlags: 0x111111 }, 24).slice(0, 16);
    expect(s.proc.ioctl(s.heapFd, dmaHeapIoctlAlloc(16), trunc)).toBe(0);
    // a user struct shorter than the command's size faults
    expect(() => s.proc.ioctl(s.heapFd, DMA_HEAP_IOCTL_ALLOC, older)).toThrowError(err('EFAULT'));
  });

  it('test_alloc_errors: invalid fd (not a heap) -> ENOTTY; invalid heap flags -> EINVAL; invalid fd flags -> EINVAL', async () => {
    const s = await setup();
    expect(() => alloc(s, ONE_MEG, 0x111111, O_RDWR | O_CLOEXEC, 0)).toThrowError(err('ENOTTY'));
    expect(() => alloc(s, ONE_MEG, 0x111111)).toThrowError(err('EINVAL'));
    expect(() => alloc(s, ONE_MEG, 0, ~(O_RDWR | O_CLOEXEC))).toThrowError(err('EINVAL'));
    expect(() => alloc(s, ONE_MEG, 0, O_RDWR | O_NONBLOCK)).toThrowError(err('EINVAL'));
    expect(() => alloc(s, ONE_MEG, 1n << 63n)).toThrowError(err('EINVAL'));
    expect(s.heaps.system!.liveBuffers).toBe(0);
  });

  it('test_alloc_zeroed: a buffer filled with 0xff and freed; 32 new allocations all read zeros', async () => {
    const s = await setup();
    const fd = alloc(s, ONE_MEG);
    const p = s.proc.mmap(fd, { length: ONE_MEG, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    sync(s, fd, DMA_BUF_SYNC_START);
    mmapWrite(s.m.sim.memory, p, 0, new Uint8Array(ONE_MEG).fill(0xff));
    sync(s, fd, DMA_BUF_SYNC_END);
    const oldPages = [0, 100, 255].map((i) => pageBackedOf(bufOf(s, fd))!.pagePhys(i));
    s.proc.munmap(p);
    s.proc.close(fd);
    const seen = new Set<bigint>();
    for (let i = 0; i < 32; i++) {
      const nfd = alloc(s, ONE_MEG);
      const q = s.proc.mmap(nfd, { length: ONE_MEG, prot: PROT_READ, flags: MAP_SHARED });
      sync(s, nfd, DMA_BUF_SYNC_START);
      expect(mmapRead(s.m.sim.memory, q, 0, ONE_MEG).every((b) => b === 0)).toBe(true);
      sync(s, nfd, DMA_BUF_SYNC_END);
      const pb = pageBackedOf(bufOf(s, nfd))!;
      for (let j = 0; j < pb.pageCount; j += 64) seen.add(pb.pagePhys(j));
      s.proc.munmap(q);
      s.proc.close(nfd);
    }
    // Whether or not the allocator handed the same frames out again, none kept the 0xff bytes.
    for (const pa of oldPages) if (seen.has(pa)) expect(s.m.sim.memory.read(pa, 4)).toEqual(new Uint8Array(4));
  });
});

describe('DMA_HEAP_IOCTL_ALLOC checks (spec §C)', () => {
  it('fd != 0 on input -> EINVAL; len 0 -> EINVAL; len wrapping on PAGE_ALIGN -> EINVAL; len is page-aligned up', async () => {
    const s = await setup();
    expect(() => s.proc.ioctl(s.heapFd, DMA_HEAP_IOCTL_ALLOC, { len: PAGE, fd: 3, fdFlags: O_RDWR, heapFlags: 0 })).toThrowError(err('EINVAL'));
    expect(() => alloc(s, 0)).toThrowError(err('EINVAL'));
    expect(() => s.proc.ioctl(s.heapFd, DMA_HEAP_IOCTL_ALLOC, { len: (1n << 64n) - 1n, fd: 0, fdFlags: O_RDWR, heapFlags: 0 })).toThrowError(err('EINVAL'));
    const fd = alloc(s, 1);
    expect(bufOf(s, fd).size).toBe(PAGE);
    expect(s.proc.llseek(fd, 0, SEEK_END)).toBe(BigInt(PAGE));
    expect(bufOf(s, alloc(s, PAGE + 1)).size).toBe(2 * PAGE);
  });

  it('more than memory -> ENOMEM; unknown ioctl nr -> EINVAL; null argument -> EFAULT', async () => {
    const s = await setup();
    expect(() => alloc(s, 2 ** 50)).toThrowError(err('ENOMEM'));
    expect(() => s.proc.ioctl(s.heapFd, (DMA_HEAP_IOCTL_ALLOC & ~0xff) | 1, { len: PAGE, fd: 0, fdFlags: 0, heapFlags: 0 })).toThrowError(err('EINVAL'));
    expect(() => s.proc.ioctl(s.heapFd, DMA_HEAP_IOCTL_ALLOC, null)).toThrowError(err('EFAULT'));
    expect(() => s.proc.ioctl(99, DMA_HEAP_IOCTL_ALLOC, null)).toThrowError(err('EBADF'));
    expect(DMA_HEAP_IOCTL_ALLOC).toBe(0xc0184800);
  });

  it('fd_flags: O_ACCMODE reaches the file (O_RDONLY refuses a shared writable map), only O_CLOEXEC reaches the fd', async () => {
    const s = await setup();
    const ro = alloc(s, PAGE, 0, O_RDONLY);
    expect(bufOf(s, ro).fileFlags & O_ACCMODE).toBe(O_RDONLY);
    expect(s.proc.isCloexec(ro)).toBe(false);
    expect(() => s.proc.mmap(ro, { length: PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED })).toThrowError(err('EACCES'));
    expect(s.proc.mmap(ro, { length: PAGE, prot: PROT_READ, flags: MAP_PRIVATE }).active).toBe(true);
    expect(() => alloc(s, PAGE, 0, O_RDWR, 0)).toThrowError(err('ENOTTY'));
  });

  it('EMFILE when the process has no free fd: the buffer is freed', async () => {
    const m = await Machine.create({ topology: twoSwitches });
    const heaps = DmaHeaps.create(m);
    const proc = new SimProcess(m.kernel, { fdLimit: 1 });
    const hfd = heaps.open(proc, 'system');
    expect(() => proc.ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, { len: PAGE, fd: 0, fdFlags: O_RDWR, heapFlags: 0 })).toThrowError(err('EMFILE'));
    expect(heaps.system!.liveBuffers).toBe(0);
    expect(m.kernel.liveBuffers.size).toBe(0);
  });

  it('dma_heap_add: duplicate or empty names -> EINVAL', async () => {
    const s = await setup();
    expect(() => s.heaps.add('system', { allocate: vi.fn() })).toThrowError(err('EINVAL'));
    expect(() => s.heaps.add('', { allocate: vi.fn() })).toThrowError(err('EINVAL'));
  });
});

describe('system heap', () => {
  it('allocates 1 MiB / 64 KiB / 4 KiB chunks (orders 8/4/0), largest first, naturally aligned', async () => {
    const s = await setup();
    const len = 2 * ONE_MEG + 3 * 65536 + 5 * PAGE;
    const buf = bufOf(s, alloc(s, len));
    const hb = s.heaps.system!.bufferOf(buf)!;
    expect(hb.chunks.map((c) => c.order)).toEqual([8, 8, 4, 4, 4, 0, 0, 0, 0, 0]);
    for (const c of hb.chunks) expect(c.pa % BigInt(c.bytes)).toBe(0n);
    expect(hb.chunks.reduce((a, c) => a + c.bytes, 0)).toBe(len);
  });

  it('bytes really move: DMA from a NIC lands in the heap pages and shows through mmap; CPU writes reach the device', async () => {
    for (const iommu of [true, false]) {
      const s = await setup({ iommu });
      const len = ONE_MEG + 65536 + PAGE;
      const fd = alloc(s, len);
      const buf = s.proc.dmaBufGet(fd);
      const nic = s.m.pci('nic0');
      const att = buf.attach(s.m.dmaDevice(nic));
      const a = s.heaps.system!.attachmentOf(att)!;
      expect(a.mapped).toBe(false);
      const sgt = att.mapUnlocked(BIDI);
      expect(a.mapped).toBe(true);
      expect(sgt.isPageless()).toBe(false);
      if (iommu) {
        const dom = s.m.dmaDevice(nic).domain as IommuDomain;
        expect(dom.walk(sgt.entries[0]!.dmaAddress)).toMatchObject({ ok: true, pa: s.heaps.system!.bufferOf(buf)!.chunks[0]!.pa });
      }
      const data = new Uint8Array(len).map((_, i) => ((i >> 3) ^ i) & 0xff);
      let off = 0;
      for (const e of sgt.dmaSegments()) {
        const n = Number(e.length);
        expect(s.m.sim.dma.write({ rid: s.m.rid(nic), addr: e.dmaAddress }, data.subarray(off, off + n)).ok).toBe(true);
        off += n;
      }
      expect(off).toBe(len);
      const m = s.proc.mmap(fd, { length: len, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
      sync(s, fd, DMA_BUF_SYNC_START);
      expect(Buffer.from(mmapRead(s.m.sim.memory, m, 0, len)).equals(Buffer.from(data))).toBe(true);
      mmapWrite(s.m.sim.memory, m, len - 4, new Uint8Array([4, 3, 2, 1]));
      sync(s, fd, DMA_BUF_SYNC_END);
      const last = sgt.dmaSegments()[sgt.nents - 1]!;
      const r = s.m.sim.dma.read({ rid: s.m.rid(nic), addr: last.dmaAddress + BigInt(Number(last.length) - 4) }, 4);
      expect(r.ok).toBe(true);
      expect(r.data).toEqual(new Uint8Array([4, 3, 2, 1]));
      // vmap sees the same bytes
      const map = buf.vmapUnlocked();
      expect(bufferRead(s.m.sim.memory, buf, len - 4, 4)).toEqual(new Uint8Array([4, 3, 2, 1]));
      expect(s.heaps.system!.bufferOf(buf)!.vmapCnt).toBe(1);
      buf.vunmapUnlocked(map);
      att.unmapUnlocked(sgt, BIDI);
      att.detach();
      buf.put();
      s.proc.munmap(m);
      const free0 = s.m.sim.memory.framesFree();
      s.proc.close(fd);
      expect(s.m.sim.memory.framesFree()).toBe(free0 + BigInt(len / PAGE));
    }
  });

  it('per-attachment mapped tracking: SYNC syncs only mapped attachments; two attachments map independently', async () => {
    const s = await setup();
    const fd = alloc(s, 2 * PAGE);
    const buf = s.proc.dmaBufGet(fd);
    const a1 = buf.attach(s.m.dmaDevice(s.m.pci('nic0')));
    const a2 = buf.attach(importerDevice(s.m, 'gpu0'));
    const t1 = a1.mapUnlocked(BIDI);
    expect(s.heaps.system!.attachmentOf(a1)!.mapped).toBe(true);
    expect(s.heaps.system!.attachmentOf(a2)!.mapped).toBe(false);
    const spy = vi.spyOn(s.heaps.system!.attachmentOf(a1)!.dev, 'syncSgForCpu');
    const spy2 = vi.spyOn(s.heaps.system!.attachmentOf(a2)!.dev, 'syncSgForCpu');
    sync(s, fd, DMA_BUF_SYNC_START);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy2).not.toHaveBeenCalled();
    const t2 = a2.mapUnlocked(DmaDataDirection.TO_DEVICE);
    const pa = s.heaps.system!.bufferOf(buf)!.chunks[0]!.pa;
    const nicDom = s.m.dmaDevice(s.m.pci('nic0')).domain as IommuDomain;
    const gpuDom = s.m.dmaDevice(s.m.pci('gpu0')).domain as IommuDomain;
    expect(nicDom).not.toBe(gpuDom);
    expect(nicDom.walk(t1.entries[0]!.dmaAddress)).toMatchObject({ ok: true, pa });
    expect(gpuDom.walk(t2.entries[0]!.dmaAddress)).toMatchObject({ ok: true, pa });
    sync(s, fd, DMA_BUF_SYNC_END);
    a1.unmapUnlocked(t1, BIDI);
    a2.unmapUnlocked(t2, DmaDataDirection.TO_DEVICE);
    a1.detach();
    a2.detach();
    expect(s.heaps.system!.bufferOf(buf)!.attachments.size).toBe(0);
    buf.put();
  });

  it('mmap at a page offset maps the right pages; past the buffer -> EINVAL', async () => {
    const s = await setup();
    const fd = alloc(s, 4 * PAGE);
    const whole = s.proc.mmap(fd, { length: 4 * PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    mmapWrite(s.m.sim.memory, whole, 2 * PAGE + 7, new Uint8Array([0x5a]));
    const part = s.proc.mmap(fd, { length: PAGE, prot: PROT_READ, flags: MAP_SHARED, offset: 2 * PAGE });
    expect(mmapRead(s.m.sim.memory, part, 7, 1)).toEqual(new Uint8Array([0x5a]));
    expect(() => mmapWrite(s.m.sim.memory, part, 0, new Uint8Array([1]))).toThrowError(err('EFAULT'));
    expect(() => s.proc.mmap(fd, { length: 2 * PAGE, prot: PROT_READ, flags: MAP_SHARED, offset: 3 * PAGE })).toThrowError(err('EINVAL'));
  });

  it('user copies through the mapping reach the heap pages (the exporter\'s fault op); get_user_pages on it is EFAULT (PFN mapping)', async () => {
    const s = await setup();
    const proc = new SimProcess(s.m.kernel, { memory: s.m.sim.memory });
    const heapFd = s.heaps.open(proc, 'system');
    const data: DmaHeapAllocationData = { len: 3 * PAGE, fd: 0, fdFlags: O_RDWR, heapFlags: 0 };
    proc.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, data);
    const m = proc.mmap(data.fd, { length: 2 * PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset: PAGE });
    proc.writeUser(m.start + BigInt(PAGE - 2), new Uint8Array([1, 2, 3, 4]));
    const buf = proc.dmaBufGet(data.fd);
    expect(bufferRead(s.m.sim.memory, buf, 2 * PAGE - 2, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(proc.readUser(m.start + BigInt(PAGE - 2), 4)).toEqual(mmapRead(s.m.sim.memory, m, PAGE - 2, 4));
    expect(() => proc.getUserPages(m.start, PAGE)).toThrowError(err('EFAULT'));
    expect(() => proc.readUser(m.end, 1)).toThrowError(err('EFAULT'));
    buf.put();
  });
});
