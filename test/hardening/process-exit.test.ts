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
