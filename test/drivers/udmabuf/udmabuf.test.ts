import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { Machine } from '../../../src/machine/machine.js';
import {
  DMA_BUF_IOCTL_SYNC, DMA_BUF_SYNC_END, DMA_BUF_SYNC_READ, DMA_BUF_SYNC_RW, DMA_BUF_SYNC_START, DmaDataDirection,
  MAP_PRIVATE, MAP_SHARED, O_ACCMODE, O_RDWR, PROT_READ, PROT_WRITE, SEEK_END, SimProcess, type DmaBuf, type KernelProfileName,
} from '../../../src/dma-buf/index.js';
import type { IommuDomain } from '../../../src/iommu/iommu.js';
import {
  F_ADD_SEALS, F_GET_SEALS, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE, MFD_ALLOW_SEALING,
  MFD_HUGETLB, UDMABUF_CREATE, UDMABUF_CREATE_LIST, UDMABUF_FLAGS_CLOEXEC, UdmabufDevice, bufferRead, type UdmabufCreateItem, memfdCreate,
  memfdFcntl, memfdMmap, memfdOf, memfdTruncate, mmapRead, mmapWrite,
} from '../../../src/drivers/udmabuf/index.js';
import { importerDevice } from '../../../src/drivers/accel/index.js';

const twoSwitches = readFileSync(new URL('../../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const PAGE = 4096;
const NUM_PAGES = 4;
const BIDI = DmaDataDirection.BIDIRECTIONAL;
const err = (code: string) => expect.objectContaining({ code });

async function setup(opts: { profile?: KernelProfileName; iommu?: boolean } = {}) {
  const m = await Machine.create({ topology: twoSwitches, iommu: opts.iommu === false ? null : { family: 'vtd' }, profile: opts.profile ?? '6.x' });
  const dev = UdmabufDevice.create(m);
  const proc = new SimProcess(m.kernel);
  proc.openFile('/dev/stdin'); // fd 0, as the self-test's "not a memfd" case uses
  const devfd = dev.open(proc);
  return { m, dev, proc, devfd };
}

type S = Awaited<ReturnType<typeof setup>>;

/** struct udmabuf_create_list with count = the list's length unless given. */
const withCount = (l: { flags: number; count?: number; list: UdmabufCreateItem[] }) => ({ ...l, count: l.count ?? l.list.length });

/** memfd_create(MFD_ALLOW_SEALING) + F_ADD_SEALS(F_SEAL_SHRINK) + ftruncate, as the self-test does. */
function sealedMemfd(s: S, size: number, flags = MFD_ALLOW_SEALING): number {
  const fd = memfdCreate(s.m, s.proc, 'udmabuf-test', flags);
  memfdFcntl(s.proc, fd, F_ADD_SEALS, F_SEAL_SHRINK);
  memfdTruncate(s.proc, fd, size);
  return fd;
}

function bufOf(s: S, fd: number): DmaBuf {
  const f = s.proc.file(fd);
  if (f.kind !== 'dma-buf') throw new Error('not a dma-buf');
  return f.dmabuf;
}

/** One character at the start of each page, as write_to_memfd does. */
function markPages(write: (off: number, data: Uint8Array) => void, size: number, pageSize: number, chr: string): void {
  for (let i = 0; i < size / pageSize; i++) write(i * pageSize, new Uint8Array([chr.charCodeAt(0)]));
}

describe('udmabuf self-test (tools/testing/selftests/drivers/dma-buf/udmabuf.c)', () => {
  it('test-1: offset not page aligned -> EINVAL', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, PAGE * NUM_PAGES);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: PAGE / 2, size: PAGE })).toThrowError(err('EINVAL'));
  });

  it('test-2: size not a multiple of the page size -> EINVAL', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, PAGE * NUM_PAGES);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: PAGE / 2 })).toThrowError(err('EINVAL'));
  });

  it('test-3: not a memfd (stdin) -> EBADFD; a closed fd -> EBADFD', async () => {
    const s = await setup();
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: 0, flags: 0, offset: 0, size: PAGE * NUM_PAGES })).toThrowError(err('EBADFD'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: 77, flags: 0, offset: 0, size: PAGE * NUM_PAGES })).toThrowError(err('EBADFD'));
  });

  it('test-4: create ok, and the buffer shows what was written to the memfd', async () => {
    const s = await setup();
    const size = PAGE * NUM_PAGES;
    const memfd = sealedMemfd(s, size);
    const addr1 = memfdMmap(s.proc, memfd, { length: size, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    markPages((o, d) => addr1.write(o, d), size, PAGE, 'a');
    const buf = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size });
    expect(buf).toBeGreaterThan(0);
    expect(bufOf(s, buf).size).toBe(size);
    expect(bufOf(s, buf).expName).toBe('udmabuf');
    expect(bufOf(s, buf).fileFlags & O_ACCMODE).toBe(O_RDWR);
    expect(s.proc.llseek(buf, 0, SEEK_END)).toBe(BigInt(size));
    const addr2 = s.proc.mmap(buf, { length: size, prot: PROT_READ, flags: MAP_SHARED });
    for (let i = 0; i < NUM_PAGES; i++) expect(mmapRead(s.m.sim.memory, addr2, i * PAGE, 1)).toEqual(new Uint8Array([0x61]));
    addr1.munmap();
    s.proc.munmap(addr2);
    s.proc.close(buf);
    expect(s.dev.liveBuffers).toBe(0);
  });

  it('test-5: create-list of 4 chunks of a 1024-page memfd; later memfd writes show through the udmabuf mmap', async () => {
    const s = await setup();
    const size = 1024 * PAGE;
    const memfd = sealedMemfd(s, size);
    const addr1 = memfdMmap(s.proc, memfd, { length: size, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    markPages((o, d) => addr1.write(o, d), size, PAGE, 'a');
    const list = [0, 1, 2, 3].map((i) => ({ memfd, offset: i * (size / 4), size: PAGE * NUM_PAGES }));
    const buf = s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({ flags: UDMABUF_FLAGS_CLOEXEC, list }));
    expect(s.proc.isCloexec(buf)).toBe(true);
    const addr2 = s.proc.mmap(buf, { length: 16 * PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    markPages((o, d) => addr1.write(o, d), size, PAGE, 'b');
    let k = 0;
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < NUM_PAGES; j++, k++) {
        const c1 = addr1.read(i * (size / 4) + j * PAGE, 1);
        const c2 = mmapRead(s.m.sim.memory, addr2, k * PAGE, 1);
        expect(c2).toEqual(c1);
        expect(c2).toEqual(new Uint8Array([0x62]));
      }
    }
  });

  it('test-6/7: hugetlb memfd (2 MiB pages), pinned before or after the memfd is written', async () => {
    for (const pinFirst of [false, true]) {
      const s = await setup();
      const hpage = 2 * 1024 * 1024;
      const size = 8 * hpage; // the self-test uses 1024 huge pages; 8 keep the arena small
      const memfd = sealedMemfd(s, size, MFD_ALLOW_SEALING | MFD_HUGETLB);
      const list = [0, 1, 2, 3].map((i) => ({ memfd, offset: i * (size / 4), size: hpage * NUM_PAGES / 4 }));
      let buf = -1;
      if (pinFirst) buf = s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({ flags: UDMABUF_FLAGS_CLOEXEC, list }));
      const addr1 = memfdMmap(s.proc, memfd, { length: size, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
      markPages((o, d) => addr1.write(o, d), size, PAGE * 64, 'a');
      if (!pinFirst) buf = s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({ flags: UDMABUF_FLAGS_CLOEXEC, list }));
      markPages((o, d) => addr1.write(o, d), size, PAGE * 64, 'b');
      const total = 4 * (hpage * NUM_PAGES / 4);
      const addr2 = s.proc.mmap(buf, { length: total, prot: PROT_READ, flags: MAP_SHARED });
      for (let i = 0; i < 4; i++) {
        for (let off = 0; off < hpage; off += PAGE * 64) {
          const c1 = addr1.read(i * (size / 4) + off, 1);
          expect(mmapRead(s.m.sim.memory, addr2, i * hpage + off, 1)).toEqual(c1);
          expect(c1).toEqual(new Uint8Array([0x62]));
        }
      }
    }
  });
});

describe('udmabuf create checks (spec §C)', () => {
  it('memfd without seals (no MFD_ALLOW_SEALING, or F_SEAL_SHRINK missing) -> EINVAL', async () => {
    const s = await setup();
    const noSealing = memfdCreate(s.m, s.proc, 'x', 0);
    memfdTruncate(s.proc, noSealing, PAGE);
    expect(memfdFcntl(s.proc, noSealing, F_GET_SEALS)).toBe(F_SEAL_SEAL);
    expect(() => memfdFcntl(s.proc, noSealing, F_ADD_SEALS, F_SEAL_SHRINK)).toThrowError(err('EPERM'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: noSealing, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EINVAL'));
    const unsealed = memfdCreate(s.m, s.proc, 'y', MFD_ALLOW_SEALING);
    memfdTruncate(s.proc, unsealed, PAGE);
    memfdFcntl(s.proc, unsealed, F_ADD_SEALS, F_SEAL_GROW);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: unsealed, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EINVAL'));
  });

  it('F_SEAL_WRITE -> EINVAL; F_SEAL_FUTURE_WRITE -> EINVAL in 6.x but accepted in 5.15', async () => {
    const s = await setup();
    const w = sealedMemfd(s, PAGE);
    memfdFcntl(s.proc, w, F_ADD_SEALS, F_SEAL_WRITE);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: w, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EINVAL'));
    const fw = sealedMemfd(s, PAGE);
    memfdFcntl(s.proc, fw, F_ADD_SEALS, F_SEAL_FUTURE_WRITE);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: fw, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EINVAL'));
    const s5 = await setup({ profile: '5.15' });
    const fw5 = sealedMemfd(s5, PAGE);
    memfdFcntl(s5.proc, fw5, F_ADD_SEALS, F_SEAL_FUTURE_WRITE);
    expect(s5.proc.ioctl(s5.devfd, UDMABUF_CREATE, { memfd: fw5, flags: 0, offset: 0, size: PAGE })).toBeGreaterThan(0);
    // hugetlbfs memfds only from 5.16
    const h5 = sealedMemfd(s5, 2 << 20, MFD_ALLOW_SEALING | MFD_HUGETLB);
    expect(() => s5.proc.ioctl(s5.devfd, UDMABUF_CREATE, { memfd: h5, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EBADFD'));
  });

  it('a dma-buf fd is not a memfd -> EBADFD', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, PAGE);
    const buf = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: PAGE });
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: buf, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EBADFD'));
  });

  it('size 0 -> EINVAL; a range past the end of the memfd -> EINVAL', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, 2 * PAGE);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: 0 })).toThrowError(err('EINVAL'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: PAGE, size: 2 * PAGE })).toThrowError(err('EINVAL'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({ flags: 0, list: [] }))).toThrowError(err('EINVAL'));
  });

  it('size limit: 64 MiB total is fine, one page more -> EINVAL (also summed over a list)', async () => {
    const s = await setup();
    const mb = 1024 * 1024;
    const memfd = sealedMemfd(s, 128 * mb);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: 64 * mb + PAGE })).toThrowError(err('EINVAL'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({
      flags: 0, list: [{ memfd, offset: 0, size: 32 * mb }, { memfd, offset: 32 * mb, size: 32 * mb + PAGE }],
    }))).toThrowError(err('EINVAL'));
    // The alignment and limit checks come before any fd is looked at.
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: 99, flags: 0, offset: 0, size: 64 * mb + PAGE })).toThrowError(err('EINVAL'));
    s.dev.sizeLimitMb = 1;
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: mb + PAGE })).toThrowError(err('EINVAL'));
    expect(s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: mb })).toBeGreaterThan(0);
  });

  it('list limit: count > 1024 -> EINVAL; 1024 items are fine; fewer items than count -> EFAULT', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, PAGE);
    const item = { memfd, offset: 0, size: PAGE };
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({ flags: 0, list: Array(1025).fill(item) }))).toThrowError(err('EINVAL'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({ flags: 0, count: 3, list: [item] }))).toThrowError(err('EFAULT'));
    const fd = s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({ flags: 0, list: Array(1024).fill(item) }));
    expect(bufOf(s, fd).size).toBe(1024 * PAGE);
    // The same memfd page 1024 times: every buffer page is that one frame.
    const pa = memfdOf(s.proc, memfd)!.pagePhys('t', 0);
    expect(s.m.sim.memory.frameInfo(pa)).toMatchObject({ refcount: 1025, pincount: 1024 });
    s.proc.close(fd);
    expect(s.m.sim.memory.frameInfo(pa)).toMatchObject({ refcount: 1, pincount: 0 });
  });

  it('ioctl: unknown command -> ENOTTY; not /dev/udmabuf -> ENOTTY; null argument -> EFAULT; closed fd -> EBADF', async () => {
    const s = await setup();
    expect(() => s.proc.ioctl(s.devfd, 0x1234, {})).toThrowError(err('ENOTTY'));
    expect(() => s.proc.ioctl(0, UDMABUF_CREATE, {})).toThrowError(err('ENOTTY'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, null)).toThrowError(err('EFAULT'));
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, null)).toThrowError(err('EFAULT'));
    expect(() => s.proc.ioctl(500, UDMABUF_CREATE, {})).toThrowError(err('EBADF'));
    expect(UDMABUF_CREATE).toBe(0x40187542);
    expect(UDMABUF_CREATE_LIST).toBe(0x40087543);
  });

  it('CLOEXEC flag only with UDMABUF_FLAGS_CLOEXEC; a failure leaves no page reference behind', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, 2 * PAGE);
    const a = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: PAGE });
    const b = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: UDMABUF_FLAGS_CLOEXEC, offset: 0, size: PAGE });
    expect(s.proc.isCloexec(a)).toBe(false);
    expect(s.proc.isCloexec(b)).toBe(true);
    const pa1 = memfdOf(s.proc, memfd)!.pagePhys('t', 1);
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE_LIST, withCount({
      flags: 0, list: [{ memfd, offset: PAGE, size: PAGE }, { memfd: 0, offset: 0, size: PAGE }],
    }))).toThrowError(err('EBADFD'));
    expect(s.m.sim.memory.frameInfo(pa1)).toMatchObject({ refcount: 1, pincount: 0 });
    const full = new SimProcess(s.m.kernel, { fdLimit: 3 });
    full.openFile('stdin');
    const dfd = s.dev.open(full);
    const mfd = sealedMemfd({ ...s, proc: full }, PAGE);
    expect(() => full.ioctl(dfd, UDMABUF_CREATE, { memfd: mfd, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EMFILE'));
    expect(s.dev.liveBuffers).toBe(2);
  });
});

describe('memfd seals', () => {
  it('F_SEAL_SHRINK/GROW refuse ftruncate; F_SEAL_WRITE refuses writes and shared writable maps, and EBUSY while one exists', async () => {
    const s = await setup();
    const fd = memfdCreate(s.m, s.proc, 'm', MFD_ALLOW_SEALING);
    const f = memfdOf(s.proc, fd)!;
    f.ftruncate(4 * PAGE);
    f.addSeals(F_SEAL_SHRINK | F_SEAL_GROW);
    expect(() => f.ftruncate(PAGE)).toThrowError(err('EPERM'));
    expect(() => f.ftruncate(8 * PAGE)).toThrowError(err('EPERM'));
    const map = memfdMmap(s.proc, fd, { length: PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    expect(() => f.addSeals(F_SEAL_WRITE)).toThrowError(err('EBUSY'));
    map.munmap();
    f.addSeals(F_SEAL_WRITE);
    expect(() => f.pwrite(new Uint8Array([1]), 0)).toThrowError(err('EPERM'));
    expect(() => memfdMmap(s.proc, fd, { length: PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED })).toThrowError(err('EPERM'));
    expect(memfdMmap(s.proc, fd, { length: PAGE, prot: PROT_READ, flags: MAP_SHARED }).read(0, 1)).toEqual(new Uint8Array([0]));
    expect(() => f.addSeals(0x100)).toThrowError(err('EINVAL'));
    f.addSeals(F_SEAL_SEAL);
    expect(() => f.addSeals(F_SEAL_GROW)).toThrowError(err('EPERM'));
    expect(() => memfdFcntl(s.proc, 0, F_GET_SEALS)).toThrowError(err('EINVAL'));
  });
});

describe('memfd file lifetime', () => {
  it('the pages live until the last of fd, mapping, udmabuf and pin goes; then each frame is freed', async () => {
    const s = await setup();
    const proc = new SimProcess(s.m.kernel, { memory: s.m.sim.memory });
    const devfd = s.dev.open(proc);
    const mem = s.m.sim.memory;
    const memfd = memfdCreate(s.m, proc, 'life', MFD_ALLOW_SEALING);
    memfdFcntl(proc, memfd, F_ADD_SEALS, F_SEAL_SHRINK);
    memfdTruncate(proc, memfd, 2 * PAGE);
    const map = memfdMmap(proc, memfd, { length: 2 * PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
    proc.writeUser(map.start, new Uint8Array([0x11]));
    proc.writeUser(map.start + BigInt(PAGE), new Uint8Array([0x22]));
    const ufd = proc.ioctl(devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: PAGE });
    const pinned = proc.getUserPages(map.start + BigInt(PAGE), 1, { pin: true });
    const inode = memfdOf(proc, memfd)!;
    const [p0, p1] = [inode.pagePhys('t', 0), inode.pagePhys('t', 1)];
    expect(pinned[0]!.pa).toBe(p1);
    expect(mem.frameInfo(p0)).toMatchObject({ refcount: 2, pincount: 1 }); // page cache + udmabuf
    expect(mem.frameInfo(p1)).toMatchObject({ refcount: 2, pincount: 1 }); // page cache + pin
    const dup = proc.dup(memfd);
    proc.close(memfd);
    proc.close(dup);
    expect(map.active).toBe(true); // the mapping keeps the file
    expect(proc.readUser(map.start + BigInt(PAGE), 1)).toEqual(new Uint8Array([0x22]));
    expect(mem.frameInfo(p0).refcount).toBe(2);
    proc.munmap(map); // last file reference: the inode is evicted
    expect(mem.frameInfo(p0)).toMatchObject({ refcount: 1, pincount: 1 });
    expect(mem.frameInfo(p1)).toMatchObject({ refcount: 1, pincount: 1 });
    const ubuf = proc.dmaBufGet(ufd);
    expect(bufferRead(mem, ubuf, 0, 1)).toEqual(new Uint8Array([0x11]));
    ubuf.put();
    proc.close(ufd);
    expect(mem.frameInfo(p0)).toMatchObject({ refcount: 0, pincount: 0 });
    proc.putUserPages(pinned, { pin: true });
    expect(mem.frameInfo(p1)).toMatchObject({ refcount: 0, pincount: 0 });
  });

  it('a hugetlb memfd maps whole huge pages at a huge-page-aligned address (ksys_mmap_pgoff rounds the length)', async () => {
    const s = await setup();
    const hpage = 2 * 1024 * 1024;
    const memfd = sealedMemfd(s, 2 * hpage, MFD_ALLOW_SEALING | MFD_HUGETLB);
    const small = memfdOf(s.proc, memfd)!;
    const first = memfdMmap(s.proc, memfd, { length: PAGE, prot: PROT_READ, flags: MAP_SHARED });
    expect(first.length).toBe(hpage);
    expect(first.start % BigInt(hpage)).toBe(0n);
    const second = memfdMmap(s.proc, memfd, { length: hpage + 1, prot: PROT_READ, flags: MAP_SHARED });
    expect(second.length).toBe(2 * hpage);
    expect(second.start % BigInt(hpage)).toBe(0n);
    expect(second.start >= first.end).toBe(true);
    expect(() => memfdMmap(s.proc, memfd, { length: PAGE, prot: PROT_READ, flags: MAP_SHARED, offset: PAGE })).toThrowError(err('EINVAL'));
    expect(small.folioSize).toBe(hpage);
  });

  it('a memfd is seekable (SEEK_END gives its size) and has no ioctls; a reused fd number is not the old memfd', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, 3 * PAGE);
    expect(s.proc.llseek(memfd, 0, SEEK_END)).toBe(BigInt(3 * PAGE));
    expect(() => s.proc.ioctl(memfd, UDMABUF_CREATE, {})).toThrowError(err('ENOTTY'));
    s.proc.close(memfd);
    const other = s.proc.openFile('/dev/null');
    expect(other).toBe(memfd);
    expect(memfdOf(s.proc, other)).toBeNull();
    expect(() => s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd: other, flags: 0, offset: 0, size: PAGE })).toThrowError(err('EBADFD'));
  });
});

describe('udmabuf exporter ops', () => {
  it('mmap: MAP_PRIVATE -> EINVAL; MAP_SHARED writes land in the memfd pages', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, 4 * PAGE);
    const buf = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: PAGE, size: 2 * PAGE });
    expect(() => s.proc.mmap(buf, { length: PAGE, prot: PROT_READ, flags: MAP_PRIVATE })).toThrowError(err('EINVAL'));
    const m = s.proc.mmap(buf, { length: PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, offset: PAGE });
    mmapWrite(s.m.sim.memory, m, 10, new Uint8Array([9, 8, 7]));
    expect(memfdOf(s.proc, memfd)!.pread(3, 2 * PAGE + 10)).toEqual(new Uint8Array([9, 8, 7]));
    expect(() => mmapRead(s.m.sim.memory, m, PAGE - 1, 2)).toThrowError(err('EFAULT'));
    expect(() => s.proc.mmap(buf, { length: PAGE, prot: PROT_READ, flags: MAP_SHARED, offset: 2 * PAGE })).toThrowError(err('EINVAL'));
  });

  it('bytes really move: a NIC DMAs into the imported udmabuf through its IOMMU; the CPU reads them through mmap, and back', async () => {
    for (const iommu of [true, false]) {
      const s = await setup({ iommu });
      const memfd = sealedMemfd(s, 8 * PAGE);
      const fd = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: 8 * PAGE });
      const buf = s.proc.dmaBufGet(fd);
      const nic = s.m.pci('nic0');
      const att = buf.attach(s.m.dmaDevice(nic));
      const sgt = att.mapUnlocked(BIDI);
      expect(sgt.isPageless()).toBe(false);
      expect(sgt.totalLength()).toBe(BigInt(8 * PAGE));
      // The table is a view of the mapped ScatterList: the page face and the DMA face of one list.
      const sgl = sgt.sgl!;
      expect([sgt.nents, sgt.origNents]).toEqual([sgl.nents, sgl.origNents]);
      expect(sgt.entries.map((e) => e.dmaAddress)).toEqual([...sgl.dmaAddress.subarray(0, sgl.nents)]);
      expect(sgl.phys(3)).toBe(memfdOf(s.proc, memfd)!.pagePhys('t', 3));
      expect(sgt.cpuSegments().map((c) => c.phys)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => memfdOf(s.proc, memfd)!.pagePhys('t', i)));
      expect(sgt.entries[0]!.page).toEqual({ pfn: sgl.phys(0) >> 12n });
      if (iommu) {
        expect(sgt.nents).toBe(1); // one IOVA range
        const dom = s.m.dmaDevice(nic).domain as IommuDomain;
        expect(dom.walk(sgt.entries[0]!.dmaAddress + BigInt(3 * PAGE))).toMatchObject({ ok: true, pa: memfdOf(s.proc, memfd)!.pagePhys('t', 3) });
      }
      const data = new Uint8Array(3 * PAGE).map((_, i) => (i * 7 + 1) & 0xff);
      let off = 0;
      for (const e of sgt.dmaSegments()) {
        const n = Math.min(Number(e.length), data.length - off);
        if (n <= 0) break;
        expect(s.m.sim.dma.write({ rid: s.m.rid(nic), addr: e.dmaAddress }, data.subarray(off, off + n)).ok).toBe(true);
        off += n;
      }
      const m = s.proc.mmap(fd, { length: 8 * PAGE, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED });
      s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW });
      expect(mmapRead(s.m.sim.memory, m, 0, data.length)).toEqual(data);
      expect(memfdOf(s.proc, memfd)!.pread(data.length, 0)).toEqual(data);
      mmapWrite(s.m.sim.memory, m, 5 * PAGE, new Uint8Array([0xde, 0xad]));
      s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW });
      // device reads page 5 (find which segment holds byte 5*PAGE)
      let base = 0;
      for (const e of sgt.dmaSegments()) {
        if (5 * PAGE < base + Number(e.length)) {
          const r = s.m.sim.dma.read({ rid: s.m.rid(nic), addr: e.dmaAddress + BigInt(5 * PAGE - base) }, 2);
          expect(r.data).toEqual(new Uint8Array([0xde, 0xad]));
          break;
        }
        base += Number(e.length);
      }
      att.unmapUnlocked(sgt, BIDI);
      att.detach();
      s.proc.munmap(m);
      buf.put();
      s.proc.close(fd);
      expect(s.dev.liveTables).toBe(0);
      expect(s.dev.liveBuffers).toBe(0);
    }
  });

  it('DB-10 cache_sgt_mapping [<=6.14]: a second map in another direction -> EBUSY; latest maps afresh', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, 2 * PAGE);
    const buf = s.proc.dmaBufGet(s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: 2 * PAGE }));
    const att = buf.attach(s.m.dmaDevice(s.m.pci('nic0')));
    const t1 = att.mapUnlocked(DmaDataDirection.TO_DEVICE);
    expect(att.cachedTable).toBe(t1);
    expect(() => att.mapUnlocked(DmaDataDirection.FROM_DEVICE)).toThrowError(err('EBUSY'));
    expect(att.mapUnlocked(DmaDataDirection.TO_DEVICE)).toBe(t1);
    att.unmapUnlocked(t1, DmaDataDirection.TO_DEVICE);
    expect(s.dev.liveTables).toBe(1); // cached until detach
    att.detach();
    expect(s.dev.liveTables).toBe(0);

    const l = await setup({ profile: 'latest' });
    const lm = sealedMemfd(l, 2 * PAGE);
    const lbuf = l.proc.dmaBufGet(l.proc.ioctl(l.devfd, UDMABUF_CREATE, { memfd: lm, flags: 0, offset: 0, size: 2 * PAGE }));
    const latt = lbuf.attach(l.m.dmaDevice(l.m.pci('nic0')));
    const a = latt.mapUnlocked(DmaDataDirection.TO_DEVICE);
    const b = latt.mapUnlocked(DmaDataDirection.FROM_DEVICE);
    expect(a).not.toBe(b);
    expect(l.dev.liveTables).toBe(2);
    latt.unmapUnlocked(a, DmaDataDirection.TO_DEVICE);
    latt.unmapUnlocked(b, DmaDataDirection.FROM_DEVICE);
    expect(l.dev.liveTables).toBe(0);
  });

  it('a dynamic P2P importer (RDMA-like) gets the attach-time BIDIRECTIONAL mapping under 6.x (DB-09)', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, PAGE);
    const buf = s.proc.dmaBufGet(s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: PAGE }));
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic0'), { allowPeer2Peer: true, moveNotify: vi.fn() });
    expect(att.cachedTable).toBeDefined();
    expect(s.dev.liveTables).toBe(1);
    att.detach();
    expect(s.dev.liveTables).toBe(0);
  });

  it('SYNC: END before any START -> EINVAL; START maps for the misc device once; release unmaps it', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, PAGE);
    const fd = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: 0, size: PAGE });
    expect(() => s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ })).toThrowError(err('EINVAL'));
    s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ });
    expect(s.dev.misc.stats().sgLists).toBe(1);
    s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW });
    s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ });
    expect(s.dev.misc.stats().sgLists).toBe(1);
    s.proc.close(fd);
    expect(s.dev.misc.stats().sgLists).toBe(0);
  });

  it('vmap shows the memfd bytes; release drops the page pins', async () => {
    const s = await setup();
    const memfd = sealedMemfd(s, 2 * PAGE);
    memfdOf(s.proc, memfd)!.pwrite(new Uint8Array([1, 2, 3]), PAGE);
    const ufd = s.proc.ioctl(s.devfd, UDMABUF_CREATE, { memfd, flags: 0, offset: PAGE, size: PAGE });
    const buf = s.proc.dmaBufGet(ufd);
    const map = buf.vmapUnlocked();
    expect(map.isIomem).toBe(false);
    expect(bufferRead(s.m.sim.memory, buf, 0, 3)).toEqual(new Uint8Array([1, 2, 3]));
    const pa = memfdOf(s.proc, memfd)!.pagePhys('t', 1);
    expect(s.m.sim.memory.frameInfo(pa)).toMatchObject({ refcount: 2, pincount: 1 });
    buf.vunmapUnlocked(map);
    buf.put();
    s.proc.close(ufd);
    expect(s.m.sim.memory.frameInfo(pa)).toMatchObject({ refcount: 1, pincount: 0 });
    // The memfd's last fd goes: the inode is evicted and its page freed.
    s.proc.exit();
    expect(s.m.sim.memory.frameInfo(pa)).toMatchObject({ refcount: 0, pincount: 0 });
  });
});
