// DB-01..DB-17: export, attachments, mapping, pinning, move_notify.
import { describe, expect, it } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import {
  DmaBufKernel,
  DmaDataDirection as Dir,
  DmaResvUsage,
  KERNEL_PROFILE_NAMES,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  SgTable,
  type DmaBufExporterOps,
  type KernelProfileName,
} from '../../src/dma-buf/index.js';
import { TestExporter, dev, recordingImporter, type TestExporterOptions } from './helpers/exporter.js';

const err = (code: string, rule?: string) => expect.objectContaining(rule ? { code, rule } : { code });

function setup(opts: TestExporterOptions = {}, profile: KernelProfileName = '6.x', strict = false) {
  const k = new DmaBufKernel({ profile, strict });
  const exp = new TestExporter(k, opts);
  return { k, exp, buf: exp.export() };
}

const minimalOps = (): DmaBufExporterOps => ({ mapDmaBuf: () => null, unmapDmaBuf: () => {}, release: () => {} });

describe('export (DB-01..DB-03, DB-06)', () => {
  it.each(['priv', 'ops', 'mapDmaBuf', 'unmapDmaBuf', 'release'])('DB-01 missing %s is EINVAL with a WARN', (field) => {
    const k = new DmaBufKernel();
    const ops: Record<string, unknown> = { ...minimalOps() };
    const info: Record<string, unknown> = { ops, size: 4096, priv: {} };
    if (field === 'priv' || field === 'ops') delete info[field];
    else delete ops[field];
    expect(() => k.export(info as never)).toThrowError(err('EINVAL', 'DB-01'));
    expect(k.events.map((e) => e.kind)).toEqual(['warn']);
    expect(k.liveBuffers.size).toBe(0);
  });

  it('DB-01 the other ops are optional', () => {
    const k = new DmaBufKernel();
    const buf = k.export({ ops: minimalOps(), size: 4096, priv: 1 });
    expect(buf.isDynamic()).toBe(false);
    expect(k.events.map((e) => e.kind)).toEqual(['export']);
  });

  it('DB-02 pin without unpin (and unpin without pin) is EINVAL', () => {
    const k = new DmaBufKernel();
    expect(() => k.export({ ops: { ...minimalOps(), pin: () => {} }, size: 1, priv: 1 })).toThrowError(err('EINVAL', 'DB-02'));
    expect(() => k.export({ ops: { ...minimalOps(), unpin: () => {} }, size: 1, priv: 1 })).toThrowError(err('EINVAL', 'DB-02'));
  });

  for (const profile of KERNEL_PROFILE_NAMES) {
    it(`DB-02 [${profile}] cacheSgtMapping with pin/unpin is ${profile === 'latest' ? 'accepted' : 'EINVAL'}`, () => {
      const k = new DmaBufKernel({ profile });
      const info = { ops: { ...minimalOps(), pin: () => {}, unpin: () => {}, cacheSgtMapping: true }, size: 1, priv: 1 };
      if (profile === 'latest') expect(k.export(info).isDynamic()).toBe(true);
      else expect(() => k.export(info)).toThrowError(err('EINVAL', 'DB-02'));
    });
  }

  it('DB-03 a module going away is ENOENT; OOM is ENOMEM and drops the module ref', () => {
    const k = new DmaBufKernel();
    let refs = 0;
    const owner = (ok: boolean) => ({ name: 'm', tryGet: () => ok && ++refs > 0, put: () => void refs-- });
    expect(() => k.export({ ops: minimalOps(), size: 1, priv: 1, owner: owner(false) })).toThrowError(err('ENOENT', 'DB-03'));
    k.injectAllocFailure();
    expect(() => k.export({ ops: minimalOps(), size: 1, priv: 1, owner: owner(true) })).toThrowError(err('ENOMEM'));
    expect(refs).toBe(0);
    const buf = k.export({ ops: minimalOps(), size: 1, priv: 1, owner: owner(true) });
    expect(refs).toBe(1);
    buf.put();
    expect(refs).toBe(0);
  });

  it('DB-03 file flags keep only O_ACCMODE|O_NONBLOCK; size is fixed', () => {
    const k = new DmaBufKernel();
    const buf = k.export({ ops: minimalOps(), size: 12345, priv: 1, flags: O_RDWR | O_NONBLOCK | O_CLOEXEC });
    expect(buf.fileFlags).toBe(O_RDWR | O_NONBLOCK);
    expect(buf.size).toBe(12345);
    expect(() => k.export({ ops: minimalOps(), size: -1, priv: 1 })).toThrowError(err('EINVAL', 'DB-03'));
  });

  it('DB-06 an exporter is dynamic iff it has pin; an attachment iff it has importer ops', () => {
    const { buf } = setup({ dynamic: true });
    expect(buf.isDynamic()).toBe(true);
    const imp = recordingImporter();
    expect(buf.attach(dev()).isDynamic()).toBe(false);
    expect(buf.dynamicAttach(dev(), imp.ops).isDynamic()).toBe(true);
  });
});

describe('attach (DB-07, DB-08, DB-09)', () => {
  it('DB-07 null dev and importer ops without moveNotify are EINVAL; nothing is attached', () => {
    const { buf, exp } = setup();
    expect(() => buf.attach(null as never)).toThrowError(err('EINVAL', 'DB-07'));
    expect(() => buf.dynamicAttach(dev(), { allowPeer2Peer: true } as never)).toThrowError(err('EINVAL', 'DB-07'));
    expect(buf.attachments).toHaveLength(0);
    expect(exp.calls).toEqual([]);
  });

  it('DB-07 a static importer is never peer2peer; a dynamic one starts with allowPeer2Peer', () => {
    const { buf } = setup({ dynamic: true });
    expect(buf.attach(dev()).peer2peer).toBe(false);
    expect(buf.dynamicAttach(dev(), recordingImporter(true).ops).peer2peer).toBe(true);
    expect(buf.dynamicAttach(dev(), recordingImporter(false).ops).peer2peer).toBe(false);
  });

  it('DB-07 the exporter may clear peer2peer or refuse with its errno', () => {
    const { buf } = setup({
      dynamic: true,
      onAttach: (a) => {
        if (a.dev.name === 'far') a.peer2peer = false;
      },
    });
    const far = buf.dynamicAttach(dev('far'), recordingImporter(true).ops);
    expect(far.peer2peer).toBe(false);
    expect(buf.attachments).toEqual([far]);
  });

  it('DB-07 an exporter EBUSY refusal leaves no attachment and no event', () => {
    const k = new DmaBufKernel();
    const exp = new TestExporter(k, {
      onAttach: () => {
        throw new SimError('EBUSY', 'attach', 'storage cannot move');
      },
    });
    const buf = exp.export();
    k.clearEvents();
    expect(() => buf.attach(dev())).toThrowError(err('EBUSY'));
    expect(buf.attachments).toHaveLength(0);
    expect(k.events).toEqual([]);
  });

  it('DB-08 a P2P table has DMA addresses but no pages', () => {
    const { buf } = setup({ p2p: true, dynamic: true });
    const a = buf.dynamicAttach(dev(), recordingImporter(true).ops);
    buf.resv.lock();
    const sgt = a.map(Dir.BIDIRECTIONAL);
    buf.resv.unlock();
    expect(sgt.isPageless()).toBe(true);
    expect(sgt.origNents).toBe(0);
    expect(sgt.nents).toBe(4);
    expect(sgt.entries[0]!.dmaAddress).toBeTypeOf('bigint');
  });

  for (const profile of KERNEL_PROFILE_NAMES) {
    const mapsAtAttach = profile !== 'latest';
    it(`DB-09 [${profile}] static importer of a dynamic exporter ${mapsAtAttach ? 'is pinned and mapped at attach' : 'maps nothing at attach'}`, () => {
      const { buf, exp } = setup({ dynamic: true }, profile);
      const a = buf.attach(dev());
      expect(exp.calls.map((c) => c.op)).toEqual(mapsAtAttach ? ['attach', 'pin', 'map'] : ['attach']);
      expect(exp.calls.filter((c) => c.op !== 'attach').every((c) => c.locked)).toBe(true);
      expect(a.cachedTable !== undefined).toBe(mapsAtAttach);
      if (mapsAtAttach) {
        buf.resv.lock();
        const t1 = a.map(Dir.TO_DEVICE);
        const t2 = a.map(Dir.FROM_DEVICE);
        a.unmap(t1, Dir.TO_DEVICE); // no-op
        buf.resv.unlock();
        expect(t1).toBe(a.cachedTable);
        expect(t2).toBe(t1);
        expect(exp.liveTables).toBe(1);
      }
      a.detach();
      expect(exp.liveTables).toBe(0);
      expect(exp.pins.size).toBe(0);
      expect(exp.calls.map((c) => c.op)).toEqual(
        mapsAtAttach ? ['attach', 'pin', 'map', 'unmap', 'unpin', 'detach'] : ['attach', 'detach'],
      );
    });

    it(`DB-09 [${profile}] a dynamic P2P importer of a static exporter on a non-P2P path: ${mapsAtAttach ? 'attach fails EPERM' : 'map fails EPERM'}`, () => {
      const { buf, exp } = setup({ p2p: true, onAttach: (a) => void (a.peer2peer = false) }, profile);
      if (mapsAtAttach) {
        expect(() => buf.dynamicAttach(dev(), recordingImporter(true).ops)).toThrowError(err('EPERM'));
        expect(buf.attachments).toHaveLength(0);
        expect(exp.calls.map((c) => c.op)).toEqual(['attach', 'map', 'detach']);
      } else {
        const a = buf.dynamicAttach(dev(), recordingImporter(true).ops);
        buf.resv.lock();
        expect(() => a.map(Dir.BIDIRECTIONAL)).toThrowError(err('EPERM'));
        buf.resv.unlock();
        expect(a.mappedTables).toHaveLength(0);
      }
    });
  }

  it('DB-09 the attachTimeMapping override turns the 6.x behaviour off', () => {
    const k = new DmaBufKernel({ profile: '6.x', overrides: { attachTimeMapping: false } });
    const exp = new TestExporter(k, { dynamic: true });
    exp.export().attach(dev());
    expect(exp.calls.map((c) => c.op)).toEqual(['attach']);
  });

  it('DB-09 an attach-time map failure unpins, detaches and returns the error', () => {
    const { buf, exp } = setup({ dynamic: true, failMap: 'ENOMEM' });
    expect(() => buf.attach(dev())).toThrowError(err('ENOMEM'));
    expect(exp.calls.map((c) => c.op)).toEqual(['attach', 'pin', 'map', 'unpin', 'detach']);
    expect(exp.pins.size).toBe(0);
    expect(buf.attachments).toHaveLength(0);
  });
});

describe('map and unmap (DB-10..DB-13)', () => {
  for (const profile of KERNEL_PROFILE_NAMES) {
    it(`DB-10 [${profile}] cacheSgtMapping: ${profile === 'latest' ? 'ignored, every map is new' : 'first map cached, other direction EBUSY'}`, () => {
      const { buf, exp } = setup({ cacheSgt: true }, profile);
      const a = buf.attach(dev());
      buf.resv.lock();
      const t = a.map(Dir.TO_DEVICE);
      if (profile === 'latest') {
        const t2 = a.map(Dir.FROM_DEVICE);
        expect(t2).not.toBe(t);
        a.unmap(t, Dir.TO_DEVICE);
        a.unmap(t2, Dir.FROM_DEVICE);
        expect(exp.liveTables).toBe(0);
      } else {
        expect(a.map(Dir.TO_DEVICE)).toBe(t);
        expect(() => a.map(Dir.FROM_DEVICE)).toThrowError(err('EBUSY', 'DB-10'));
        a.unmap(t, Dir.TO_DEVICE);
        expect(exp.liveTables).toBe(1); // real unmap happens at detach
      }
      buf.resv.unlock();
      a.detach();
      expect(exp.liveTables).toBe(0);
    });
  }

  it('DB-10 a cached BIDIRECTIONAL mapping serves every direction', () => {
    const { buf } = setup({ cacheSgt: true });
    const a = buf.attach(dev());
    buf.resv.lock();
    const t = a.map(Dir.BIDIRECTIONAL);
    expect(a.map(Dir.FROM_DEVICE)).toBe(t);
    buf.resv.unlock();
  });

  it('DB-11 map_dma_buf returning null is ENOMEM; an exporter error passes through; invalid direction EINVAL', () => {
    const { buf, exp } = setup({ failMap: 'null' });
    const a = buf.attach(dev());
    buf.resv.lock();
    expect(() => a.map(Dir.BIDIRECTIONAL)).toThrowError(err('ENOMEM', 'DB-11'));
    exp.failMap = 'EIO';
    expect(() => a.map(Dir.BIDIRECTIONAL)).toThrowError(err('EIO'));
    exp.failMap = undefined;
    expect(() => a.map(3 as Dir)).toThrowError(err('EINVAL'));
    expect(a.mappedTables).toHaveLength(0);
    buf.resv.unlock();
  });

  it('DB-11 [latest] a static importer of a dynamic exporter pins on each map and unpins on unmap', () => {
    const { buf, exp } = setup({ dynamic: true }, 'latest');
    const a = buf.attach(dev());
    buf.resv.lock();
    const t = a.map(Dir.BIDIRECTIONAL);
    expect(exp.pins.get(a.id)).toBe(1);
    a.unmap(t, Dir.BIDIRECTIONAL);
    expect(exp.pins.size).toBe(0);
    exp.failMap = 'EIO';
    expect(() => a.map(Dir.BIDIRECTIONAL)).toThrowError(err('EIO'));
    expect(exp.pins.size).toBe(0);
    buf.resv.unlock();
    expect(exp.calls.map((c) => c.op)).toEqual(['attach', 'pin', 'map', 'unmap', 'unpin', 'pin', 'map', 'unpin']);
  });

  it('DB-11 without CONFIG_DMABUF_MOVE_NOTIFY a dynamic importer of a dynamic exporter is pinned per map', () => {
    const k = new DmaBufKernel({ configMoveNotify: false });
    const exp = new TestExporter(k, { dynamic: true });
    const buf = exp.export();
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    buf.resv.lock();
    const t = a.map(Dir.BIDIRECTIONAL);
    expect(exp.pins.get(a.id)).toBe(1);
    a.unmap(t, Dir.BIDIRECTIONAL);
    buf.resv.unlock();
    expect(exp.pins.size).toBe(0);
  });

  for (const profile of KERNEL_PROFILE_NAMES) {
    it(`DB-11 [${profile}] a static importer's map ${profile === '5.15' ? 'does not wait' : 'waits on KERNEL fences'}`, () => {
      const { k, buf, exp } = setup({}, profile);
      const a = buf.attach(dev());
      const f = k.createFence(k.fenceContextAlloc(), 1);
      buf.resv.lock();
      buf.resv.reserveFences(1);
      buf.resv.addFence(f, DmaResvUsage.KERNEL);
      f.scheduleSignal(50);
      a.map(Dir.BIDIRECTIONAL);
      expect(k.clock.now).toBe(profile === '5.15' ? 0 : 50);
      buf.resv.unlock();
      expect(exp.ops_of('map')).toHaveLength(1);
    });
  }

  it('DB-11 an interrupted KERNEL-fence wait unmaps and returns ERESTARTSYS', () => {
    const { k, buf, exp } = setup();
    const a = buf.attach(dev());
    buf.resv.lock();
    buf.resv.reserveFences(1);
    buf.resv.addFence(k.createFence(k.fenceContextAlloc(), 1), DmaResvUsage.KERNEL);
    k.signalPending = true;
    expect(() => a.map(Dir.BIDIRECTIONAL)).toThrowError(err('ERESTARTSYS', 'DB-11'));
    buf.resv.unlock();
    expect(exp.liveTables).toBe(0);
    expect(a.mappedTables).toHaveLength(0);
  });

  it('DB-11 a dynamic importer does not wait on KERNEL fences at map', () => {
    const { k, buf } = setup({ dynamic: true });
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    buf.resv.lock();
    buf.resv.reserveFences(1);
    buf.resv.addFence(k.createFence(k.fenceContextAlloc(), 1), DmaResvUsage.KERNEL);
    a.map(Dir.BIDIRECTIONAL);
    buf.resv.unlock();
    expect(k.clock.now).toBe(0);
  });

  it('DB-12 each map gives a fresh table; an exporter returning a live table again is refused', () => {
    const k = new DmaBufKernel();
    const shared = new SgTable([{ dmaAddress: 0x1000n, length: 4096, page: null }]);
    const buf = k.export({ ops: { mapDmaBuf: () => shared, unmapDmaBuf: () => {}, release: () => {} }, size: 4096, priv: 1 });
    const a = buf.attach(dev());
    const b = buf.attach(dev('b'));
    buf.resv.lock();
    a.map(Dir.BIDIRECTIONAL);
    expect(() => b.map(Dir.BIDIRECTIONAL)).toThrowError(err('EINVAL', 'DB-12'));
    buf.resv.unlock();
  });

  it('DB-12 with dmaApiDebug, unaligned entries are reported as debug events', () => {
    const k = new DmaBufKernel({ dmaApiDebug: true });
    const buf = k.export({
      ops: { mapDmaBuf: () => new SgTable([{ dmaAddress: 0x1200n, length: 100, page: null }]), unmapDmaBuf: () => {}, release: () => {} },
      size: 100,
      priv: 1,
    });
    const a = buf.attach(dev());
    buf.resv.lock();
    a.map(Dir.BIDIRECTIONAL);
    buf.resv.unlock();
    expect(k.events.filter((e) => e.kind === 'debug').map((e) => e.rule)).toEqual(['DB-12']);
  });

  it('DB-13 unmapping a table never mapped, twice, or with another direction is EINVAL (emulator-defined)', () => {
    const { buf, exp } = setup();
    const a = buf.attach(dev());
    buf.resv.lock();
    const t = a.map(Dir.TO_DEVICE);
    expect(() => a.unmap(t, Dir.FROM_DEVICE)).toThrowError(err('EINVAL', 'DB-13'));
    a.unmap(t, Dir.TO_DEVICE);
    expect(() => a.unmap(t, Dir.TO_DEVICE)).toThrowError(err('EINVAL', 'DB-13'));
    const foreign = new SgTable([{ dmaAddress: 0n, length: 4096, page: null }]);
    expect(() => a.unmap(foreign, Dir.TO_DEVICE)).toThrowError(err('EINVAL', 'DB-13'));
    buf.resv.unlock();
    expect(exp.ops_of('unmap')).toHaveLength(1);
  });

  it('DB-13 a null table only WARNs', () => {
    const { k, buf } = setup();
    const a = buf.attach(dev());
    buf.resv.lock();
    a.unmap(null as never, Dir.TO_DEVICE);
    buf.resv.unlock();
    expect(k.events.at(-1)).toMatchObject({ kind: 'warn', rule: 'DB-13' });
  });
});

describe('detach, pin, move_notify (DB-14..DB-17)', () => {
  it('DB-14 detach with a mapped table is refused (EINVAL); after unmap it runs ops.detach unlocked', () => {
    const { buf, exp } = setup();
    const a = buf.attach(dev());
    buf.resv.lock();
    const t = a.map(Dir.BIDIRECTIONAL);
    buf.resv.unlock();
    expect(() => a.detach()).toThrowError(err('EINVAL', 'DB-14'));
    expect(buf.attachments).toEqual([a]);
    buf.resv.lock();
    a.unmap(t, Dir.BIDIRECTIONAL);
    buf.resv.unlock();
    a.detach();
    expect(exp.ops_of('detach')).toEqual([{ op: 'detach', locked: false, attachmentId: a.id }]);
    expect(() => a.detach()).toThrowError(err('EINVAL', 'DB-14'));
  });

  it('DB-14 detaching an attachment of another buffer WARNs and does nothing', () => {
    const { k, exp, buf } = setup();
    const other = exp.export();
    const a = buf.attach(dev());
    expect(() => other.detach(a)).toThrowError(err('EINVAL', 'DB-14'));
    expect(buf.attachments).toEqual([a]);
    expect(k.events.at(-1)).toMatchObject({ kind: 'warn', rule: 'DB-14' });
  });

  it('DB-15 pin/unpin reach the exporter under the lock; without pin op they are no-ops', () => {
    const { buf, exp } = setup({ dynamic: true });
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    buf.resv.lock();
    a.pin();
    a.pin();
    expect(exp.pins.get(a.id)).toBe(2);
    expect(() => a.detach()).toThrowError(err('EINVAL'));
    a.unpin();
    a.unpin();
    expect(() => a.unpin()).toThrowError(err('EINVAL', 'DB-15'));
    buf.resv.unlock();
    expect(exp.ops_of('pin').every((c) => c.locked)).toBe(true);
    const s = setup();
    const b = s.buf.dynamicAttach(dev(), recordingImporter().ops);
    s.buf.resv.lock();
    b.pin();
    b.unpin();
    b.unpin();
    s.buf.resv.unlock();
    expect(s.exp.calls.map((c) => c.op)).toEqual(['attach', 'map']); // DB-09 attach-time map only
  });

  it('DB-15 pin on a static attachment WARNs (an error in strict mode) and a failing pin pins nothing', () => {
    const { k, buf, exp } = setup({ dynamic: true }, 'latest');
    const a = buf.attach(dev());
    buf.resv.lock();
    a.pin();
    expect(k.events.filter((e) => e.kind === 'warn').map((e) => e.rule)).toEqual(['DB-15']);
    a.unpin();
    exp.failPin = 'ENOMEM';
    const d = buf.dynamicAttach(dev(), recordingImporter().ops);
    expect(() => d.pin()).toThrowError(err('ENOMEM'));
    expect(d.pinCount).toBe(0);
    buf.resv.unlock();
    const s = setup({ dynamic: true }, 'latest', true);
    const b = s.buf.attach(dev());
    s.buf.resv.lock();
    expect(() => b.pin()).toThrowError(err('EINVAL', 'DB-15'));
    expect(s.exp.pins.size).toBe(0);
  });

  it('DB-16 move_notify calls every dynamic importer (newest first), mapped or not, and skips static ones', () => {
    const { buf } = setup({ dynamic: true });
    const log: number[] = [];
    const s = buf.attach(dev('static'));
    const d1 = buf.dynamicAttach(dev('d1'), recordingImporter(true, log).ops);
    const d2 = buf.dynamicAttach(dev('d2'), recordingImporter(true, log).ops);
    buf.resv.lock();
    const t = d1.map(Dir.BIDIRECTIONAL);
    buf.moveNotify();
    expect(log).toEqual([d2.id, d1.id]);
    expect(d1.isStale(t)).toBe(true);
    const t2 = d1.map(Dir.BIDIRECTIONAL);
    expect(d1.isStale(t2)).toBe(false);
    buf.resv.unlock();
    expect(log).not.toContain(s.id);
  });

  it('DB-16 move_notify without the lock WARNs (strict: throws before calling importers)', () => {
    const { k, buf } = setup({ dynamic: true });
    const log: number[] = [];
    buf.dynamicAttach(dev(), recordingImporter(true, log).ops);
    buf.moveNotify();
    expect(k.events.filter((e) => e.kind === 'warn').map((e) => e.rule)).toEqual(['DB-16']);
    expect(log).toHaveLength(1);
    const s = setup({ dynamic: true }, '6.x', true);
    const log2: number[] = [];
    s.buf.dynamicAttach(dev(), recordingImporter(true, log2).ops);
    expect(() => s.buf.moveNotify()).toThrowError(err('EINVAL', 'DB-16'));
    expect(log2).toEqual([]);
  });

  it('DB-16 the importer may unmap from inside move_notify', () => {
    const { buf, exp } = setup({ dynamic: true });
    const tables: { t?: SgTable } = {};
    const a = buf.dynamicAttach(dev(), {
      allowPeer2Peer: true,
      moveNotify: (att) => {
        att.unmap(tables.t!, Dir.BIDIRECTIONAL);
      },
    });
    buf.resv.lock();
    tables.t = a.map(Dir.BIDIRECTIONAL);
    buf.moveNotify();
    buf.resv.unlock();
    expect(exp.liveTables).toBe(0);
  });

  it('DB-17 device access before the WRITE fences signal, or through a stale table, is reported', () => {
    const { k, buf } = setup({ dynamic: true });
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    const f = k.createFence(k.fenceContextAlloc(), 1);
    buf.resv.lock();
    const t = a.map(Dir.BIDIRECTIONAL);
    buf.resv.reserveFences(1);
    buf.resv.addFence(f, DmaResvUsage.WRITE);
    a.checkDeviceAccess(t, false);
    expect(k.events.filter((e) => e.kind === 'warn').map((e) => e.rule)).toEqual(['DB-17']);
    expect(buf.resv.waitTimeout(DmaResvUsage.WRITE, true, 10)).toBe(0);
    f.signal();
    a.checkDeviceAccess(t, false);
    buf.moveNotify();
    a.checkDeviceAccess(t, true);
    buf.resv.unlock();
    expect(k.events.filter((e) => e.kind === 'warn').map((e) => e.rule)).toEqual(['DB-17', 'DB-16']);
  });

  it('DB-17 a write must also wait for READ fences', () => {
    const { k, buf } = setup({ dynamic: true }, '6.x', true);
    const a = buf.dynamicAttach(dev(), recordingImporter().ops);
    buf.resv.lock();
    const t = a.map(Dir.BIDIRECTIONAL);
    buf.resv.reserveFences(1);
    buf.resv.addFence(k.createFence(k.fenceContextAlloc(), 1), DmaResvUsage.READ);
    expect(() => a.checkDeviceAccess(t, false)).not.toThrow();
    expect(() => a.checkDeviceAccess(t, true)).toThrowError(err('EINVAL', 'DB-17'));
    buf.resv.unlock();
  });
});


describe('SgTable over a ScatterList (one scatterlist, two faces)', () => {
  it('DB-12 a view needs a mapped list: an unmapped ScatterList is EINVAL; a table of plain entries has no page face', async () => {
    const { ScatterList } = await import('../../src/dma-mapping/index.js');
    const { SgTable } = await import('../../src/dma-buf/index.js');
    const sgl = new ScatterList(2).set(0, 0x1000n, 4096).set(1, 0x3000n, 4096);
    expect(() => SgTable.fromScatterList(sgl)).toThrowError(expect.objectContaining({ code: 'EINVAL', rule: 'DB-12' }));
    const plain = new SgTable([{ dmaAddress: 0x1000n, length: 4096, page: null }]);
    expect(plain.sgl).toBeNull();
    expect(plain.cpuSegments()).toEqual([]);
  });
});
