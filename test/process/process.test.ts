// The process layer: file_operations dispatch with the VFS defaults, fd lifetime, the address
// space (anonymous memory, user copies, get/pin_user_pages).
import { describe, expect, it } from 'vitest';
import {
  EPOLLIN, EPOLLOUT, F_GETFD, F_SETFD, FD_CLOEXEC, FIOCLEX, FIONCLEX, MAP_PRIVATE, MAP_SHARED, O_CLOEXEC, O_RDONLY,
  O_WRONLY, PAGE_SIZE, PROT_READ, PROT_WRITE, Process, SEEK_SET, SimError, SimFile, VmArea,
  type FileOperations, type VmAreaInit,
} from '../../src/index.js';
import { RAM_BASE, makeSim, pattern } from '../helpers/sim.js';

const err = (code: string, rule?: string) => expect.objectContaining(rule ? { code, rule } : { code });

/** A driver that records what reached its operations. */
function recordingFops(opts: { mmap?: boolean; llseek?: boolean; poll?: number; rule?: string } = {}) {
  const calls: string[] = [];
  let releases = 0;
  const fops: FileOperations<{ tag: string }> = {
    name: 'recdev',
    ...(opts.rule ? { rule: opts.rule } : {}),
    ioctl: (file, cmd, arg, proc) => {
      calls.push(`ioctl:${file.privateData.tag}:${cmd}:${String(arg)}:${proc.name}`);
      if (cmd === 7) return 42;
      throw new SimError('ENOTTY', 'recdev_ioctl', `unknown ioctl ${cmd}`);
    },
    release: (file) => {
      releases++;
      calls.push(`release:${file.privateData.tag}`);
    },
    ...(opts.llseek ? { llseek: (file: SimFile<{ tag: string }>, off: bigint) => (file.pos = off) } : {}),
    ...(opts.mmap ? { mmap: (_f: SimFile<{ tag: string }>, init: VmAreaInit) => new VmArea(init) } : {}),
    ...(opts.poll !== undefined ? { poll: () => opts.poll! } : {}),
  };
  return { fops, calls, releases: () => releases };
}

describe('file_operations dispatch', () => {
  it('ioctl goes to the file\'s ops with the calling process; no ioctl op or an unknown command is ENOTTY; a closed fd EBADF', () => {
    const p = new Process({ name: 'app' });
    const { fops, calls } = recordingFops();
    const fd = p.open(fops, { tag: 'a' });
    expect(p.ioctl(fd, 7, 'x')).toBe(42);
    expect(calls).toEqual(['ioctl:a:7:x:app']);
    expect(() => p.ioctl(fd, 8)).toThrowError(err('ENOTTY'));
    const plain = p.open({ name: 'plain' }, null);
    expect(() => p.ioctl(plain, 7)).toThrowError(err('ENOTTY'));
    expect(() => p.ioctl(99, 7)).toThrowError(err('EBADF'));
  });

  it('an ioctl interrupted in the kernel (ERESTARTSYS) fails with EINTR at the syscall exit, rule kept', () => {
    const p = new Process();
    const fd = p.open({ name: 'waiter', ioctl: () => { throw new SimError('ERESTARTSYS', 'wait', 'signal', 'XX-02'); } }, null);
    expect(() => p.ioctl(fd, 1)).toThrowError(err('EINTR', 'XX-02'));
  });

  it('llseek without an llseek op is ESPIPE, as for a pipe; with one it reaches the driver and sets f_pos', () => {
    const p = new Process();
    const fd = p.open({ name: 'pipe' }, null);
    expect(() => p.llseek(fd, 0, SEEK_SET)).toThrowError(err('ESPIPE'));
    const { fops } = recordingFops({ llseek: true });
    const sfd = p.open(fops, { tag: 's' });
    expect(p.llseek(sfd, 123, SEEK_SET)).toBe(123n);
    expect(p.fdinfo(sfd).split('\n')[0]).toBe('pos:\t123');
  });

  it('poll without a poll op is always ready (DEFAULT_POLLMASK); with one only the requested events are reported', () => {
    const p = new Process();
    const fd = p.open({ name: 'plain' }, null);
    expect(p.poll(fd, EPOLLIN | EPOLLOUT)).toBe(EPOLLIN | EPOLLOUT);
    expect(p.poll(fd, EPOLLIN)).toBe(EPOLLIN);
    const { fops } = recordingFops({ poll: EPOLLIN | EPOLLOUT });
    const pfd = p.open(fops, { tag: 'p' });
    expect(p.poll(pfd, EPOLLOUT)).toBe(EPOLLOUT);
    expect(() => p.poll(77, EPOLLIN)).toThrowError(err('EBADF'));
  });

  it('mmap: VFS checks first (flags, length, offset, access mode) with the file type\'s rule, then ENODEV without an mmap op', () => {
    const p = new Process();
    const { fops } = recordingFops({ mmap: true, rule: 'XX-01' });
    const fd = p.open(fops, { tag: 'm' });
    const req = { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED };
    expect(() => p.mmap(fd, { ...req, flags: MAP_SHARED | MAP_PRIVATE })).toThrowError(err('EINVAL', 'XX-01'));
    expect(() => p.mmap(fd, { ...req, length: 0 })).toThrowError(err('EINVAL', 'XX-01'));
    expect(() => p.mmap(fd, { ...req, offset: 100 })).toThrowError(err('EINVAL', 'XX-01'));
    expect(() => p.mmap(fd, { ...req, offset: (1n << 64n) - BigInt(PAGE_SIZE) })).toThrowError(err('EOVERFLOW', 'XX-01'));
    const ro = p.open(fops, { tag: 'ro' }, { flags: O_RDONLY });
    expect(() => p.mmap(ro, { ...req, prot: PROT_READ | PROT_WRITE })).toThrowError(err('EACCES', 'XX-01'));
    expect(p.mmap(ro, { ...req, prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE }).active).toBe(true);
    const wo = p.open(fops, { tag: 'wo' }, { flags: O_WRONLY });
    expect(() => p.mmap(wo, req)).toThrowError(err('EACCES', 'XX-01'));
    const none = p.open({ name: 'nommap' }, null);
    expect(() => p.mmap(none, req)).toThrowError(err('ENODEV'));
    expect(p.mmaps).toHaveLength(1);
  });

  it('mappings get distinct page-aligned addresses; the mapping holds a file reference; munmap of a foreign mapping is EINVAL', () => {
    const p = new Process();
    const { fops, releases } = recordingFops({ mmap: true });
    const fd = p.open(fops, { tag: 'm' });
    const a = p.mmap(fd, { length: 3 * PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED, offset: PAGE_SIZE });
    const b = p.mmap(fd, { length: 1, prot: PROT_READ, flags: MAP_SHARED });
    expect(a.pgoff).toBe(1n);
    expect(a.start % BigInt(PAGE_SIZE)).toBe(0n);
    expect(b.start >= a.end || b.end <= a.start).toBe(true);
    expect(p.file(fd).refs).toEqual({ kernel: 0, fd: 1, mmap: 2 });
    p.close(fd);
    expect(releases()).toBe(0);
    expect(() => new Process().munmap(a)).toThrowError(err('EINVAL'));
    p.munmap(a);
    expect(releases()).toBe(0);
    b.munmap();
    expect(releases()).toBe(1);
    expect(() => b.munmap()).toThrowError(err('EINVAL'));
    expect(p.mmaps).toEqual([]);
  });
});

describe('fd lifetime', () => {
  it('dup shares the file with FD_CLOEXEC cleared; release runs once, on the last close', () => {
    const p = new Process({ fdLimit: 8 });
    const { fops, releases } = recordingFops();
    const fd = p.open(fops, { tag: 'd' }, { cloexec: true });
    expect(p.isCloexec(fd)).toBe(true);
    const d = p.dup(fd);
    expect(d).toBe(fd + 1);
    expect(p.file(d)).toBe(p.file(fd));
    expect(p.isCloexec(d)).toBe(false);
    expect(p.file(fd).count).toBe(2);
    p.close(fd);
    expect(releases()).toBe(0);
    expect(() => p.close(fd)).toThrowError(err('EBADF'));
    p.close(d);
    expect(releases()).toBe(1);
  });

  it('the lowest free fd is reused; EMFILE when the table is full, with nothing created', () => {
    const p = new Process({ fdLimit: 2 });
    const { fops, releases } = recordingFops();
    const a = p.open(fops, { tag: 'a' });
    const b = p.open(fops, { tag: 'b' });
    expect(() => p.open(fops, { tag: 'c' })).toThrowError(err('EMFILE'));
    expect(() => p.dup(a)).toThrowError(err('EMFILE'));
    p.close(a);
    expect(releases()).toBe(1);
    expect(p.dup(b)).toBe(a);
  });

  it('a kernel reference (fget) keeps the file past its last close; fput then releases it', () => {
    const p = new Process();
    const { fops, releases } = recordingFops();
    const fd = p.open(fops, { tag: 'k' });
    const f = p.fget(fd);
    p.close(fd);
    expect(releases()).toBe(0);
    expect(f.refs).toEqual({ kernel: 1, fd: 0, mmap: 0 });
    f.put();
    expect(releases()).toBe(1);
    expect(f.released).toBe(true);
    expect(() => f.put()).toThrowError(err('EINVAL'));
    expect(() => f.get()).toThrowError(err('EINVAL'));
  });

  it('FD_CLOEXEC: F_GETFD/F_SETFD and FIOCLEX/FIONCLEX; exec closes exactly the close-on-exec fds and drops the address space', async () => {
    const sim = await makeSim();
    sim.memory.addRegion({ base: RAM_BASE + (1n << 30n), size: 1n << 20n, kind: 'ram', name: 'spare' });
    const p = new Process({ memory: sim.memory });
    const { fops, calls } = recordingFops();
    const keep = p.open(fops, { tag: 'keep' });
    const go = p.open(fops, { tag: 'go' }, { cloexec: true });
    const set = p.open(fops, { tag: 'set' });
    const viaIoctl = p.open(fops, { tag: 'ioctl' });
    const cleared = p.open(fops, { tag: 'cleared' }, { cloexec: true });
    expect(p.fcntl(go, F_GETFD)).toBe(FD_CLOEXEC);
    p.fcntl(set, F_SETFD, FD_CLOEXEC);
    expect(p.ioctl(viaIoctl, FIOCLEX)).toBe(0);
    expect(p.ioctl(cleared, FIONCLEX)).toBe(0);
    expect(calls).toEqual([]); // the VFS handled both
    expect(p.fdinfo(go).split('\n')[1]).toBe(`flags:\t0${(2 | O_CLOEXEC).toString(8)}`);
    const anon = p.mmapAnonymous(PAGE_SIZE);
    p.exec();
    expect(p.openFds).toEqual([keep, cleared]);
    expect(calls).toEqual(['release:go', 'release:set', 'release:ioctl']);
    expect(anon.active).toBe(false);
    expect(p.mmaps).toEqual([]);
  });

  it('exit unmaps everything, then closes every fd in order', () => {
    const p = new Process();
    const { fops, calls } = recordingFops({ mmap: true });
    const a = p.open(fops, { tag: 'a' });
    p.open(fops, { tag: 'b' });
    p.mmap(a, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED });
    p.exit();
    expect(calls).toEqual(['release:a', 'release:b']);
    expect(p.openFds).toEqual([]);
  });
});

describe('the address space: anonymous memory and user pages', () => {
  it('mmapAnonymous: zeroed pages on first touch; copy_to/from_user across pages; EFAULT outside any mapping', async () => {
    const sim = await makeSim();
    const p = new Process({ memory: sim.memory });
    const free0 = sim.memory.framesFree();
    const m = p.mmapAnonymous(3 * PAGE_SIZE);
    expect(m.residentPages).toBe(0);
    expect(p.readUser(m.start + 10n, 4)).toEqual(new Uint8Array(4));
    const data = pattern(PAGE_SIZE + 100, 3);
    p.writeUser(m.start + BigInt(PAGE_SIZE - 50), data);
    expect(p.readUser(m.start + BigInt(PAGE_SIZE - 50), data.length)).toEqual(data);
    expect(m.residentPages).toBe(3);
    expect(sim.memory.framesFree()).toBe(free0 - 3n);
    expect(() => p.readUser(m.end - 2n, 4)).toThrowError(err('EFAULT'));
    m.munmap();
    expect(sim.memory.framesFree()).toBe(free0);
    expect(() => p.readUser(m.start, 1)).toThrowError(err('EFAULT'));
  });

  it('a read-only mapping refuses copy_to_user and a FOLL_WRITE get_user_pages; no memory is ENOMEM', async () => {
    const sim = await makeSim();
    const p = new Process({ memory: sim.memory });
    const ro = p.mmapAnonymous(PAGE_SIZE, { prot: PROT_READ });
    expect(() => p.writeUser(ro.start, new Uint8Array([1]))).toThrowError(err('EFAULT'));
    expect(() => p.getUserPages(ro.start, 1, { write: true })).toThrowError(err('EFAULT'));
    expect(() => new Process().mmapAnonymous(PAGE_SIZE)).toThrowError(err('ENOMEM'));
    expect(() => p.mmapAnonymous(0)).toThrowError(err('EINVAL'));
  });

  it('an address hint is used when free and EEXIST when it overlaps; populate allocates one contiguous run', async () => {
    const sim = await makeSim();
    const p = new Process({ memory: sim.memory });
    const at = 0x7f12_3400_0000n;
    const m = p.mmapAnonymous(4 * PAGE_SIZE, { addr: at, populate: true });
    expect(m.start).toBe(at);
    const pages = p.getUserPages(at, 4 * PAGE_SIZE);
    expect(pages.map((x) => x.pa - pages[0]!.pa)).toEqual([0n, 4096n, 8192n, 12288n]);
    p.putUserPages(pages);
    expect(() => p.mmapAnonymous(PAGE_SIZE, { addr: at + 4096n })).toThrowError(err('EEXIST'));
    expect(() => p.mmapAnonymous(PAGE_SIZE, { addr: at + 1n })).toThrowError(err('EINVAL'));
  });

  it('pinned pages outlive munmap and are freed by the last unpin; each process numbers its own addresses', async () => {
    const sim = await makeSim();
    const p = new Process({ memory: sim.memory });
    const q = new Process({ memory: sim.memory });
    const free0 = sim.memory.framesFree();
    const m = p.mmapAnonymous(2 * PAGE_SIZE);
    expect(q.mmapAnonymous(PAGE_SIZE).start).toBe(m.start); // no shared counter between processes
    p.writeUser(m.start + 4096n, new Uint8Array([7]));
    const pinned = p.getUserPages(m.start + 100n, PAGE_SIZE, { pin: true, write: true });
    expect(pinned).toHaveLength(2);
    expect(sim.memory.frameInfo(pinned[1]!.pa)).toMatchObject({ refcount: 2, pincount: 1 });
    m.munmap();
    expect(sim.memory.frameInfo(pinned[1]!.pa)).toMatchObject({ refcount: 1, pincount: 1 });
    expect(sim.memory.read(pinned[1]!.pa, 1)).toEqual(new Uint8Array([7]));
    p.putUserPages(pinned, { pin: true });
    expect(sim.memory.framesFree()).toBe(free0); // q never touched its page: none was allocated
  });
});
