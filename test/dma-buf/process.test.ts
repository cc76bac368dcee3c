// DB-04, DB-05, DB-18..DB-24, DB-26: fds, references and the uAPI.
import { describe, expect, it } from 'vitest';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DmaBufKernel,
  DmaResvUsage,
  EPOLLIN,
  EPOLLOUT,
  KERNEL_PROFILE_NAMES,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
  SimProcess,
  dmaBufFd,
  dmaBufFops,
  dmaBufGet,
  syncFileFops,
  type DmaBufMmap,
  type KernelProfileName,
} from '../../src/dma-buf/index.js';
import { TestExporter, dev, type TestExporterOptions } from './helpers/exporter.js';

const err = (code: string, rule?: string) => expect.objectContaining(rule ? { code, rule } : { code });

function setup(opts: TestExporterOptions = {}, profile: KernelProfileName = '6.x', fdLimit = 16) {
  const k = new DmaBufKernel({ profile });
  const exp = new TestExporter(k, { mmap: true, vmap: true, cpuAccess: true, ...opts });
  const p = new SimProcess(k, { fdLimit });
  const buf = exp.export();
  return { k, exp, p, buf };
}

describe('fds and references (DB-04, DB-05)', () => {
  it('a non-dma-buf file is released once, when its last (dup\'ed) fd closes; FD_CLOEXEC as opened', () => {
    const { p } = setup();
    let released = 0;
    const fd = p.openFile('dev', { cloexec: true, release: () => { released++; } });
    expect(p.isCloexec(fd)).toBe(true);
    const d = p.dup(fd);
    expect(p.isCloexec(d)).toBe(false);
    p.close(fd);
    expect(released).toBe(0);
    p.close(d);
    expect(released).toBe(1);
    expect(() => p.close(d)).toThrowError(err('EBADF'));
    expect(released).toBe(1);
  });

  it('DB-04 dma_buf_fd turns the export reference into the fd reference; only O_CLOEXEC matters', () => {
    const { p, buf } = setup();
    const fd = p.dmaBufFd(buf, O_CLOEXEC | O_WRONLY);
    expect(fd).toBe(0);
    expect(p.isCloexec(fd)).toBe(true);
    expect(buf.refs).toEqual({ kernel: 0, fd: 1, mmap: 0 });
    expect(buf.fileFlags).toBe(O_RDWR);
  });

  it('DB-04 no free fd is EMFILE and changes nothing; null buffer is EINVAL', () => {
    const { p, buf } = setup({}, '6.x', 1);
    p.openFile('other');
    expect(() => p.dmaBufFd(buf)).toThrowError(err('EMFILE'));
    expect(buf.refs.kernel).toBe(1);
    expect(() => p.dmaBufFd(null as never)).toThrowError(err('EINVAL', 'DB-04'));
  });

  it('DB-04 installing a second fd without another reference is refused (emulator-defined)', () => {
    const { p, buf } = setup();
    p.dmaBufFd(buf);
    expect(() => p.dmaBufFd(buf)).toThrowError(err('EINVAL', 'DB-04'));
    expect(p.openFds).toEqual([0]);
  });

  it('DB-05 dma_buf_get: EBADF for a closed fd, EINVAL for a non-dma-buf fd, a reference otherwise', () => {
    const { p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    const other = p.openFile('/dev/null');
    expect(() => p.dmaBufGet(7)).toThrowError(err('EBADF'));
    expect(() => p.dmaBufGet(other)).toThrowError(err('EINVAL', 'DB-05'));
    expect(p.dmaBufGet(fd)).toBe(buf);
    expect(buf.fileCount).toBe(2);
  });

  it('DB-05 release runs exactly once, when the last of fds, gets and mmaps goes', () => {
    const { k, exp, p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    const fd2 = p.dup(fd);
    expect(p.isCloexec(fd2)).toBe(false);
    p.dmaBufGet(fd);
    const m = p.mmap(fd, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED });
    p.close(fd);
    p.close(fd2);
    buf.put();
    expect(exp.releases).toBe(0);
    expect(buf.fileCount).toBe(1);
    m.munmap();
    expect(exp.releases).toBe(1);
    expect(exp.ops_of('release')).toEqual([{ op: 'release', locked: false }]);
    expect(k.events.filter((e) => e.kind === 'release')).toHaveLength(1);
    expect(k.liveBuffers.size).toBe(0);
    expect(() => buf.put()).toThrowError(err('EINVAL', 'DB-05'));
    expect(() => m.munmap()).toThrowError(err('EINVAL'));
  });

  it('DB-05 close of a closed fd is EBADF; dup beyond the limit is EMFILE', () => {
    const { p, buf } = setup({}, '6.x', 2);
    const fd = p.dmaBufFd(buf);
    p.dup(fd);
    expect(() => p.dup(fd)).toThrowError(err('EMFILE'));
    p.close(fd);
    expect(() => p.close(fd)).toThrowError(err('EBADF'));
  });

  it('DB-05 the last reference cannot go while attached (refused, emulator-defined)', () => {
    const { p, buf, exp } = setup();
    const fd = p.dmaBufFd(buf);
    const a = buf.attach(dev());
    expect(() => p.close(fd)).toThrowError(err('EINVAL', 'DB-05'));
    expect(p.openFds).toEqual([fd]);
    a.detach();
    p.close(fd);
    expect(exp.releases).toBe(1);
  });

  it('DB-05 process exit drops every mapping and fd', () => {
    const { p, buf, exp } = setup();
    const fd = p.dmaBufFd(buf);
    p.dup(fd);
    p.mmap(fd, { length: 1, prot: PROT_READ, flags: MAP_PRIVATE });
    p.exit();
    expect(exp.releases).toBe(1);
    expect(p.openFds).toEqual([]);
  });
});

describe('mmap and llseek (DB-18, DB-19)', () => {
  it('DB-18 no ops.mmap is EINVAL', () => {
    const { p, buf } = setup({ mmap: false });
    const fd = p.dmaBufFd(buf);
    expect(() => p.mmap(fd, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED })).toThrowError(err('EINVAL', 'DB-18'));
    expect(buf.refs.mmap).toBe(0);
  });

  it('DB-18 the range must fit in whole pages of the buffer', () => {
    const { p, buf, exp } = setup({ size: 4 * PAGE_SIZE + 100 });
    const fd = p.dmaBufFd(buf);
    const req = (length: number, offset: number) => ({ length, prot: PROT_READ, flags: MAP_SHARED, offset });
    expect((p.mmap(fd, req(4 * PAGE_SIZE, 0)) as DmaBufMmap).vma).toEqual({ pgoff: 0n, pages: 4, prot: PROT_READ, flags: MAP_SHARED });
    expect(() => p.mmap(fd, req(5 * PAGE_SIZE, 0))).toThrowError(err('EINVAL', 'DB-18'));
    expect(() => p.mmap(fd, req(PAGE_SIZE, 4 * PAGE_SIZE))).toThrowError(err('EINVAL', 'DB-18'));
    expect((p.mmap(fd, req(1, 3 * PAGE_SIZE)) as DmaBufMmap).vma.pgoff).toBe(3n);
    expect(() => p.mmap(fd, req(PAGE_SIZE, 100))).toThrowError(err('EINVAL'));
    expect(() => p.mmap(fd, req(0, 0))).toThrowError(err('EINVAL'));
    expect(exp.ops_of('mmap')).toHaveLength(2);
  });

  it('DB-18 kernel dma_buf_mmap: pgoff overflow is EOVERFLOW, past the end EINVAL', () => {
    const { buf } = setup();
    expect(() => buf.mmap({ pages: 2, prot: 1, flags: 1 }, (1n << 64n) - 1n)).toThrowError(err('EOVERFLOW', 'DB-18'));
    expect(() => buf.mmap({ pages: 2, prot: 1, flags: 1 }, 3n)).toThrowError(err('EINVAL', 'DB-18'));
    const m = buf.mmap({ pages: 2, prot: 1, flags: 1 }, 2n);
    expect(buf.refs.mmap).toBe(1);
    m.munmap();
  });

  it('DB-18 a shared writable map of an O_RDONLY dma-buf is EACCES; private is fine; O_WRONLY is EACCES', () => {
    const ro = setup({ flags: O_RDONLY });
    const fd = ro.p.dmaBufFd(ro.buf);
    expect(() => ro.p.mmap(fd, { length: 1, prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED })).toThrowError(err('EACCES', 'DB-18'));
    ro.p.mmap(fd, { length: 1, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE });
    const wo = setup({ flags: O_WRONLY });
    const fd2 = wo.p.dmaBufFd(wo.buf);
    expect(() => wo.p.mmap(fd2, { length: 1, prot: PROT_READ, flags: MAP_SHARED })).toThrowError(err('EACCES'));
  });

  it('DB-19 llseek: SEEK_END/0 gives the size, SEEK_SET/0 gives 0, anything else EINVAL', () => {
    const { p, buf } = setup({ size: 12345 });
    const fd = p.dmaBufFd(buf);
    expect(p.llseek(fd, 0, SEEK_END)).toBe(12345n);
    expect(p.llseek(fd, 0, SEEK_SET)).toBe(0n);
    expect(() => p.llseek(fd, 0, SEEK_CUR)).toThrowError(err('EINVAL', 'DB-19'));
    expect(() => p.llseek(fd, 1, SEEK_SET)).toThrowError(err('EINVAL', 'DB-19'));
    expect(() => p.llseek(fd, 0, 7)).toThrowError(err('EINVAL', 'DB-19'));
  });
});

describe('ioctls and poll (DB-20..DB-23)', () => {
  it('DB-20 unknown ioctl is ENOTTY; a bad pointer EFAULT; bad flags EINVAL', () => {
    const { p, buf, exp } = setup();
    const fd = p.dmaBufFd(buf);
    expect(() => p.ioctl(fd, 0x1234, {})).toThrowError(err('ENOTTY'));
    expect(() => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, null)).toThrowError(err('EFAULT', 'DB-20'));
    expect(() => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: 8 })).toThrowError(err('EINVAL', 'DB-20'));
    expect(() => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START })).toThrowError(err('EINVAL', 'DB-20'));
    expect(() => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END })).toThrowError(err('EINVAL', 'DB-20'));
    expect(() => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: 1n << 40n | 1n })).toThrowError(err('EINVAL', 'DB-20'));
    expect(exp.calls.filter((c) => c.op.endsWith('cpu_access'))).toEqual([]);
  });

  it('DB-20 SYNC START/END call the exporter hooks with the mapped direction; no hooks and no fences is 0', () => {
    const { k, p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ })).toBe(0);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW })).toBe(0);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW })).toBe(0); // unbalanced is fine
    const dirs = k.events.filter((e) => e.kind.endsWith('cpu_access')).map((e) => `${e.kind}:${e.detail['dir']}`);
    expect(dirs).toEqual(['begin_cpu_access:2', 'end_cpu_access:0', 'end_cpu_access:0']);
    const bare = setup({ cpuAccess: false });
    expect(bare.p.ioctl(bare.p.dmaBufFd(bare.buf), DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_WRITE })).toBe(0);
  });

  it('DB-20 SYNC START waits on usage_rw fences; interrupted it is EINTR', () => {
    const { k, p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    const f = k.createFence(k.fenceContextAlloc(), 1);
    buf.resv.lock();
    buf.resv.reserveFences(1);
    buf.resv.addFence(f, DmaResvUsage.READ);
    buf.resv.unlock();
    f.scheduleSignal(40);
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_READ })).toBe(0); // reads ignore READ fences
    expect(k.clock.now).toBe(0);
    k.signalPending = true;
    expect(() => p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_WRITE })).toThrowError(err('EINTR'));
    k.signalPending = false;
    expect(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_WRITE })).toBe(0);
    expect(k.clock.now).toBe(40);
  });

  for (const profile of KERNEL_PROFILE_NAMES) {
    it(`DB-21 [${profile}] SET_NAME: 31 bytes fit, 32 do not; with attachments ${profile === '5.15' ? 'EBUSY' : 'allowed'}`, () => {
      const { p, buf } = setup({}, profile);
      const fd = p.dmaBufFd(buf);
      expect(() => p.ioctl(fd, DMA_BUF_SET_NAME_A, null)).toThrowError(err('EFAULT', 'DB-21'));
      expect(() => p.ioctl(fd, DMA_BUF_SET_NAME_B, 'x'.repeat(32))).toThrowError(err('EINVAL', 'DB-21'));
      expect(p.ioctl(fd, DMA_BUF_SET_NAME_B, 'y'.repeat(31))).toBe(0);
      expect(buf.name).toBe('y'.repeat(31));
      const a = buf.attach(dev());
      if (profile === '5.15') {
        expect(() => p.ioctl(fd, DMA_BUF_SET_NAME_A, 'z')).toThrowError(err('EBUSY', 'DB-21'));
        expect(buf.name).toBe('y'.repeat(31));
      } else {
        p.ioctl(fd, DMA_BUF_SET_NAME_A, new Uint8Array([104, 105, 0, 120]));
        expect(buf.name).toBe('hi');
      }
      void a;
    });

    it(`DB-22 [${profile}] EXPORT/IMPORT_SYNC_FILE ${profile === '5.15' ? 'do not exist (ENOTTY)' : 'move fences in and out'}`, () => {
      const { k, p, buf } = setup({}, profile);
      const fd = p.dmaBufFd(buf);
      if (profile === '5.15') {
        expect(() => p.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, { flags: 1, fd: -1 })).toThrowError(err('ENOTTY'));
        return;
      }
      const arg = { flags: DMA_BUF_SYNC_READ, fd: -1 };
      expect(() => p.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, { flags: 0, fd: -1 })).toThrowError(err('EINVAL', 'DB-22'));
      expect(() => p.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, { flags: 4, fd: -1 })).toThrowError(err('EINVAL', 'DB-22'));
      expect(() => p.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, null)).toThrowError(err('EFAULT'));
      p.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg);
      expect(p.isCloexec(arg.fd)).toBe(true);
      const stub = p.file(arg.fd);
      expect(stub.kind === 'sync-file' && stub.sync.fences).toEqual([k.getStub()]);
      // Import a pending fence with WRITE usage, then export for a write: it is there.
      const other = setup({}, profile);
      const f = other.k.createFence(other.k.fenceContextAlloc(), 1);
      const ofd = other.p.dmaBufFd(other.buf);
      other.buf.resv.lock();
      other.buf.resv.reserveFences(1);
      other.buf.resv.addFence(f, DmaResvUsage.WRITE);
      other.buf.resv.unlock();
      const out = { flags: DMA_BUF_SYNC_READ, fd: -1 };
      other.p.ioctl(ofd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, out);
      const sf = other.p.file(out.fd);
      expect(sf.kind).toBe('sync-file');
      // Import the stub's sync file back with WRITE usage.
      const imported = { flags: DMA_BUF_SYNC_WRITE, fd: arg.fd };
      expect(() => p.ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, { flags: 1, fd: p.openFile('x') })).toThrowError(err('EINVAL', 'DB-22'));
      expect(() => p.ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, { flags: 0, fd: arg.fd })).toThrowError(err('EINVAL', 'DB-22'));
      p.ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, imported);
      expect(buf.resv.numFences).toBe(1); // the stub, with WRITE usage
      buf.resv.lock();
      expect(buf.resv.fences(DmaResvUsage.BOOKKEEP)).toEqual([{ fence: k.getStub(), usage: DmaResvUsage.WRITE }]);
      buf.resv.unlock();
      expect(sf.kind === 'sync-file' && sf.sync.fences).toEqual([f]);
    });
  }

  it('DB-22 IMPORT_SYNC_FILE adds with READ usage unless WRITE is set', () => {
    const { k, p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    const f = k.createFence(k.fenceContextAlloc(), 1);
    buf.resv.lock();
    buf.resv.reserveFences(1);
    buf.resv.addFence(f, DmaResvUsage.WRITE);
    buf.resv.unlock();
    const out = { flags: DMA_BUF_SYNC_WRITE, fd: -1 };
    p.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, out);
    const b2 = new TestExporter(k).export();
    const fd2 = p.dmaBufFd(b2);
    p.ioctl(fd2, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, { flags: DMA_BUF_SYNC_READ, fd: out.fd });
    expect(b2.resv.getFences(DmaResvUsage.WRITE)).toEqual([]);
    expect(b2.resv.getFences(DmaResvUsage.READ)).toEqual([f]);
  });

  it('DB-23 poll: EPOLLIN after WRITE-class fences, EPOLLOUT after READ-class; no fences ready at once', () => {
    const { k, p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    expect(p.poll(fd, EPOLLIN | EPOLLOUT)).toBe(EPOLLIN | EPOLLOUT);
    const w = k.createFence(k.fenceContextAlloc(), 1);
    const r = k.createFence(k.fenceContextAlloc(), 1);
    buf.resv.lock();
    buf.resv.reserveFences(2);
    buf.resv.addFence(w, DmaResvUsage.WRITE);
    buf.resv.addFence(r, DmaResvUsage.READ);
    buf.resv.unlock();
    expect(p.poll(fd, EPOLLIN | EPOLLOUT)).toBe(0);
    w.signal();
    expect(p.poll(fd, EPOLLIN | EPOLLOUT)).toBe(EPOLLIN);
    r.signal();
    expect(p.poll(fd, EPOLLOUT)).toBe(EPOLLOUT);
  });
});

describe('vmap and fdinfo (DB-24, DB-26)', () => {
  it('DB-24 vmap is refcounted: the exporter sees the first vmap and the last vunmap only', () => {
    const { buf, exp } = setup();
    buf.resv.lock();
    const m1 = buf.vmap();
    const m2 = buf.vmap();
    expect(m2).toBe(m1);
    buf.vunmap(m1);
    expect(exp.ops_of('vunmap')).toHaveLength(0);
    buf.vunmap(m2);
    expect(() => buf.vunmap(m1)).toThrowError(err('EINVAL', 'DB-24'));
    buf.resv.unlock();
    expect(exp.calls.map((c) => c.op)).toEqual(['vmap', 'vunmap']);
  });

  it('DB-24 no ops.vmap is EINVAL; a wrong address or release while vmapped is refused', () => {
    const none = setup({ vmap: false });
    none.buf.resv.lock();
    expect(() => none.buf.vmap()).toThrowError(err('EINVAL', 'DB-24'));
    none.buf.resv.unlock();
    const { buf, exp } = setup();
    const m = buf.vmapUnlocked();
    expect(() => buf.vunmapUnlocked({ vaddr: 1n, isIomem: false })).toThrowError(err('EINVAL', 'DB-24'));
    expect(() => buf.put()).toThrowError(err('EINVAL', 'DB-24'));
    buf.vunmapUnlocked(m);
    buf.put();
    expect(exp.releases).toBe(1);
  });

  it('DB-26 fdinfo shows size, count, exp_name and name when set', () => {
    const { p, buf } = setup({ size: 8192, expName: 'habanalabs' });
    const fd = p.dmaBufFd(buf, O_CLOEXEC);
    p.dup(fd);
    expect(p.fdinfo(fd)).toBe(`pos:\t0\nflags:\t02000002\nsize:\t8192\ncount:\t2\nexp_name:\thabanalabs\n`);
    p.ioctl(fd, DMA_BUF_SET_NAME_A, 'rdma-mr');
    p.dmaBufGet(fd);
    expect(p.fdinfo(fd).split('\n').slice(2)).toEqual(['size:\t8192', 'count:\t3', 'exp_name:\thabanalabs', 'name:\trdma-mr', '']);
  });
});

describe('CPU access through a process mapping (DB-18)', () => {
  it('an exporter without a fault op gives a mapping the CPU cannot reach: copy_from_user is EFAULT', async () => {
    const { makeSim } = await import('../helpers/sim.js');
    const sim = await makeSim();
    const k = new DmaBufKernel();
    const p = new SimProcess(k, { memory: sim.memory });
    const fd = p.dmaBufFd(new TestExporter(k, { mmap: true }).export());
    const m = p.mmap(fd, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED });
    expect(m.pfnMap).toBe(true);
    expect(() => p.readUser(m.start, 1)).toThrowError(err('EFAULT'));
    m.munmap();
    p.close(fd);
  });
});

describe('dma-buf file operations through the process layer', () => {
  it('a dma-buf fd is the buffer\'s one file (dma_buf_fops), shared by dup and by every process it is installed in', () => {
    const { k, p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    const f = p.file(fd);
    expect(f).toBe(buf.file);
    expect(f.fops).toBe(dmaBufFops);
    expect(p.file(p.dup(fd))).toBe(f);
    const q = new SimProcess(k, { name: 'other' });
    const qfd = dmaBufFd(q, buf.get());
    expect(q.file(qfd)).toBe(f);
    expect(buf.refs).toEqual({ kernel: 0, fd: 3, mmap: 0 });
    expect(dmaBufGet(q, qfd)).toBe(buf);
    buf.put();
  });

  it('DB-22/DB-23 an exported sync_file fd polls readable once its fences signal; it has no llseek and no ioctls', () => {
    const { k, p, buf } = setup();
    const fd = p.dmaBufFd(buf);
    const f = k.createFence(k.fenceContextAlloc(), 1);
    buf.resv.withLock(() => {
      buf.resv.reserveFences(1);
      buf.resv.addFence(f, DmaResvUsage.WRITE);
    });
    const arg = { flags: DMA_BUF_SYNC_READ, fd: -1 };
    p.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg);
    expect(p.file(arg.fd).fops).toBe(syncFileFops);
    expect(p.poll(arg.fd, EPOLLIN)).toBe(0);
    f.signal();
    expect(p.poll(arg.fd, EPOLLIN | EPOLLOUT)).toBe(EPOLLIN);
    expect(() => p.llseek(arg.fd, 0, SEEK_SET)).toThrowError(err('ESPIPE'));
    expect(() => p.ioctl(arg.fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_READ })).toThrowError(err('ENOTTY'));
    p.close(arg.fd);
  });
});
