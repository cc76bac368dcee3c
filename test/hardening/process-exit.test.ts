// Process exit and exec never stop half way: every mapping and fd goes, errors come after.
import { describe, expect, it } from 'vitest';
import {
  MAP_SHARED, PAGE_SIZE, PROT_READ, Process, ProcessExitError, SimError, VmArea,
  type FileOperations, type VmAreaInit,
} from '../../src/index.js';
import { DmaBufKernel, SimProcess } from '../../src/dma-buf/index.js';
import { TestExporter, dev } from '../dma-buf/helpers/exporter.js';

/** A driver whose release throws for the files tagged 'bad', and whose mappings' close throws for 'badvma'. */
function flakyFops(log: string[]): FileOperations<string> {
  class FlakyVma extends VmArea {
    constructor(init: VmAreaInit, readonly tag: string) { super(init); }
    protected override close(): void {
      log.push(`close:${this.tag}`);
      if (this.tag === 'badvma') throw new SimError('EIO', 'flaky_vm_close', 'vm close failed');
    }
  }
  return {
    name: 'flaky',
    mmap: (file, init) => new FlakyVma(init, file.privateData),
    release: (file) => {
      log.push(`release:${file.privateData}`);
      if (file.privateData === 'bad') throw new SimError('EIO', 'flaky_release', 'release failed');
    },
  };
}

describe('PX: process exit that meets errors', () => {
  it('PX-01 a release that throws: every other fd is still closed, then one ProcessExitError lists the failure', () => {
    const p = new Process({ name: 'app' });
    const log: string[] = [];
    const fops = flakyFops(log);
    p.open(fops, 'a');
    p.open(fops, 'bad');
    p.open(fops, 'c');
    let thrown: unknown;
    try {
      p.exit();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ProcessExitError);
    expect(thrown).toBeInstanceOf(SimError);
    const pe = thrown as ProcessExitError;
    expect(pe.code).toBe('EIO');
    expect(pe.errors).toHaveLength(1);
    expect((pe.errors[0] as SimError).op).toBe('flaky_release');
    expect(log).toEqual(['release:a', 'release:bad', 'release:c']);
    expect(p.openFds).toEqual([]);
  });

  it('PX-02 close whose release throws still closes the fd (the reference was dropped)', () => {
    const p = new Process();
    const log: string[] = [];
    const fd = p.open(flakyFops(log), 'bad');
    expect(() => p.close(fd)).toThrowError(expect.objectContaining({ code: 'EIO' }));
    expect(p.openFds).toEqual([]);
    expect(() => p.close(fd)).toThrowError(expect.objectContaining({ code: 'EBADF' }));
  });

  it('PX-03 mappings whose close or file release throws are removed, the fds after them closed', () => {
    const p = new Process();
    const log: string[] = [];
    const fops = flakyFops(log);
    const bad = p.open(fops, 'bad');
    const badvma = p.open(fops, 'badvma');
    p.mmap(bad, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED });
    p.mmap(badvma, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED });
    p.close(bad); // the mapping keeps the file: its release runs at exit's unmap
    let pe: ProcessExitError | undefined;
    try {
      p.exit();
    } catch (e) {
      pe = e as ProcessExitError;
    }
    expect(pe).toBeInstanceOf(ProcessExitError);
    expect(pe!.errors.map((e) => (e as SimError).op)).toEqual(['flaky_release', 'flaky_vm_close']);
    expect(p.mmaps).toEqual([]);
    expect(p.openFds).toEqual([]);
    expect(log).toEqual(['release:bad', 'close:bad', 'close:badvma', 'release:badvma']);
  });

  it('PX-04 a dma-buf fd whose drop is refused (still attached): the fd goes, its reference leaks as the kernel\'s', () => {
    const kernel = new DmaBufKernel();
    const p = new SimProcess(kernel);
    const exp = new TestExporter(kernel, { mmap: true });
    const buf = exp.export();
    const fd = p.dmaBufFd(buf);
    const other = p.openFile('/dev/null');
    const att = buf.attach(dev());
    expect(() => p.exit()).toThrowError(expect.objectContaining({ code: 'EINVAL', name: 'ProcessExitError' }));
    expect(p.openFds).toEqual([]);
    expect(buf.released).toBe(false);
    expect(buf.refs).toEqual({ kernel: 1, fd: 0, mmap: 0 });
    void fd;
    void other;
    // The importer detaches; the leaked reference can still be dropped: the buffer goes.
    att.detach();
    buf.put();
    expect(buf.released).toBe(true);
    expect(exp.releases).toBe(1);
  });

  it('PX-05 exec collects the same way and keeps the fds without FD_CLOEXEC', () => {
    const p = new Process();
    const log: string[] = [];
    const fops = flakyFops(log);
    p.open(fops, 'bad', { cloexec: true });
    const keep = p.open(fops, 'keep');
    p.open(fops, 'c', { cloexec: true });
    expect(() => p.exec()).toThrowError(ProcessExitError);
    expect(p.openFds).toEqual([keep]);
    expect(log).toEqual(['release:bad', 'release:c']);
  });
});

describe('PX: move_notify never stops half way', () => {
  it('PX-06 an importer whose moveNotify throws: every other importer is still told, then the error reaches the exporter', () => {
    const kernel = new DmaBufKernel();
    const buf = new TestExporter(kernel, { dynamic: true }).export();
    const told: string[] = [];
    const a = buf.dynamicAttach(dev(), { allowPeer2Peer: true, moveNotify: () => { told.push('a'); } });
    const b = buf.dynamicAttach(dev(), { allowPeer2Peer: true, moveNotify: () => { told.push('b'); throw new SimError('EIO', 'importer', 'buggy importer'); } });
    const c = buf.dynamicAttach(dev(), { allowPeer2Peer: true, moveNotify: () => { told.push('c'); } });
    expect(() => buf.resv.withLock(() => buf.moveNotify())).toThrowError(expect.objectContaining({ code: 'EIO' }));
    expect(told).toEqual(['c', 'b', 'a']); // newest first
    expect(buf.moveGeneration).toBe(1);
    for (const x of [a, b, c]) x.detach();
  });
});

describe('PX: the process layer refuses junk arguments with a SimError', () => {
  it('PX-07 fds, commands, events, mmap requests, user addresses and options of the wrong type: SimError naming the field, nothing opened or mapped', async () => {
    const { makeSim } = await import('../helpers/sim.js');
    const sim = await makeSim();
    const p = new Process({ memory: sim.memory });
    const fd = p.open({ name: 'dev', ioctl: () => 0, llseek: () => 0n, mmap: (_f, init) => new VmArea(init) }, null);
    const junk: unknown[] = [Symbol('s'), null, undefined, '3', 1.5, {}, [1], 10n ** 30n, () => 0];
    const calls: [string, (j: never) => unknown][] = [
      ['close', (j) => p.close(j)], ['dup', (j) => p.dup(j)], ['fcntl fd', (j) => p.fcntl(j, 1)], ['fcntl arg', (j) => p.fcntl(fd, 2, j)],
      ['ioctl cmd', (j) => p.ioctl(fd, j)], ['poll events', (j) => p.poll(fd, j)], ['llseek offset', (j) => p.llseek(fd, j, 0)],
      ['llseek whence', (j) => p.llseek(fd, 0, j)], ['mmap req', (j) => p.mmap(fd, j)],
      ['mmap flags', (j) => p.mmap(fd, { length: PAGE_SIZE, prot: PROT_READ, flags: j })],
      ['mmap offset', (j) => p.mmap(fd, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED, offset: j })],
      ['mmap addr', (j) => p.mmap(fd, { length: PAGE_SIZE, prot: PROT_READ, flags: MAP_SHARED, addr: j })],
      ['readUser', (j) => p.readUser(j, 4)], ['writeUser addr', (j) => p.writeUser(j, new Uint8Array(1))],
      ['writeUser data', (j) => p.writeUser(0x7f00_0000_0000n, j)], ['getUserPages', (j) => p.getUserPages(j, 4)],
      ['mmapAnonymous opts', (j) => p.mmapAnonymous(PAGE_SIZE, j)], ['fdInstall', (j) => p.fdInstall(j)], ['open opts', (j) => p.open({ name: 'x' }, null, j)],
    ];
    const bad: string[] = [];
    for (const [name, fn] of calls) {
      for (const j of junk) {
        if (j === undefined && /opts|offset|addr|arg|whence|req/.test(name) && name !== 'mmap req' && name !== 'llseek whence') continue; // optional
        if (/opts/.test(name) && j !== null && typeof j === 'object' && !Array.isArray(j)) continue; // an empty options object is fine
        try {
          fn(j as never);
        } catch (e) {
          if (!(e instanceof SimError)) bad.push(`${name}(${typeof j}): ${(e as Error).name}`);
          continue;
        }
        if (!/offset|whence/.test(name) || typeof j !== 'bigint') bad.push(`${name}(${typeof j}) succeeded`);
      }
    }
    expect(bad).toEqual([]);
    expect(p.openFds).toEqual([fd]);
    expect(p.mmaps).toEqual([]);
  });
});
