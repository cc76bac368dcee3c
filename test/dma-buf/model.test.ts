// Model-based test (fast-check commands) of the buffer/attachment life cycle against a simplified
// model: every refused step's errno matches the model, no mapping outlives its attachment,
// release runs exactly once, and every page frame and IOVA is back in its pool at the end.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import {
  DmaBufKernel,
  DmaDataDirection as Dir,
  SgTable,
  SimProcess,
  type DmaBuf,
  type DmaBufAttachment,
  type IosysMap,
  type KernelProfileName,
} from '../../src/dma-buf/index.js';
import { TestExporter, dev } from './helpers/exporter.js';

interface MAtt {
  dynamic: boolean;
  cached: boolean;
  maps: number;
  pins: number;
  detached: boolean;
}
interface MBuf {
  dynamic: boolean;
  released: boolean;
  kernel: number;
  fds: number;
  vmaps: number;
  atts: MAtt[];
}
interface Model {
  profile: KernelProfileName;
  bufs: MBuf[];
  moveNotifies: number;
}
interface Real {
  k: DmaBufKernel;
  exporters: { dyn: TestExporter; stat: TestExporter };
  proc: SimProcess;
  bufs: DmaBuf[];
  fds: number[][];
  atts: DmaBufAttachment[][];
  tables: Map<DmaBufAttachment, SgTable[]>;
  vmaps: Map<DmaBuf, IosysMap>;
  notified: number[];
}

type Errno = string | null;
const refs = (b: MBuf) => b.kernel + b.fds;
const liveAtts = (b: MBuf) => b.atts.filter((a) => !a.detached).length;
const lastRefBlocked = (b: MBuf) => refs(b) === 1 && (b.vmaps > 0 || liveAtts(b) > 0);

/** Runs `fn` and returns the SimError code it threw, or null. */
function attempt(fn: () => void): Errno {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof SimError) return e.code;
    throw e;
  }
}

function locked<T>(buf: DmaBuf, fn: () => T): T {
  buf.resv.lock();
  try {
    return fn();
  } finally {
    buf.resv.unlock();
  }
}

/** Every checked invariant after each step. */
function invariants(m: Model, r: Real): void {
  const { dyn, stat } = r.exporters;
  expect(dyn.releases + stat.releases).toBe(m.bufs.filter((b) => b.released).length);
  const held = m.bufs.reduce((s, b) => s + b.atts.reduce((t, a) => t + (a.detached ? 0 : a.maps + (a.cached ? 1 : 0)), 0), 0);
  expect(dyn.liveTables + stat.liveTables).toBe(held);
  expect(dyn.frames.inUse.size + stat.frames.inUse.size).toBe(held * 4); // 4 pages per table
  expect(dyn.iovas.inUse.size + stat.iovas.inUse.size).toBe(held * 4);
  expect(r.notified.length).toBe(m.moveNotifies);
}

abstract class Cmd implements fc.Command<Model, Real> {
  abstract expected(m: Model): Errno;
  abstract act(r: Real): void;
  abstract apply(m: Model): void;
  abstract toString(): string;
  check(m: Model): boolean {
    return m.bufs.length > 0;
  }
  run(m: Model, r: Real): void {
    const want = this.expected(m);
    const got = attempt(() => this.act(r));
    expect(got, this.toString()).toBe(want);
    if (want === null) this.apply(m);
    invariants(m, r);
  }
}

abstract class BufCmd extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  b(m: Model): MBuf {
    return m.bufs[this.i % m.bufs.length]!;
  }
  rb(r: Real): DmaBuf {
    return r.bufs[this.i % r.bufs.length]!;
  }
  idx(r: Real): number {
    return this.i % r.bufs.length;
  }
}

abstract class AttCmd extends BufCmd {
  constructor(
    i: number,
    readonly j: number,
  ) {
    super(i);
  }
  override check(m: Model): boolean {
    return m.bufs.length > 0 && this.b(m).atts.length > 0;
  }
  a(m: Model): MAtt {
    const atts = this.b(m).atts;
    return atts[this.j % atts.length]!;
  }
  ra(r: Real): DmaBufAttachment {
    const atts = r.atts[this.idx(r)]!;
    return atts[this.j % atts.length]!;
  }
}

class Export extends Cmd {
  constructor(readonly dynamic: boolean) {
    super();
  }
  override check(): boolean {
    return true;
  }
  expected(): Errno {
    return null;
  }
  act(r: Real): void {
    r.bufs.push((this.dynamic ? r.exporters.dyn : r.exporters.stat).export());
    r.fds.push([]);
    r.atts.push([]);
  }
  apply(m: Model): void {
    m.bufs.push({ dynamic: this.dynamic, released: false, kernel: 1, fds: 0, vmaps: 0, atts: [] });
  }
  toString(): string {
    return `export(${this.dynamic ? 'dynamic' : 'static'})`;
  }
}

class Get extends BufCmd {
  expected(m: Model): Errno {
    return this.b(m).released ? 'EINVAL' : null;
  }
  act(r: Real): void {
    this.rb(r).get();
  }
  apply(m: Model): void {
    this.b(m).kernel++;
  }
  toString(): string {
    return `get(${this.i})`;
  }
}

class Put extends BufCmd {
  expected(m: Model): Errno {
    const b = this.b(m);
    return b.released || b.kernel === 0 || lastRefBlocked(b) ? 'EINVAL' : null;
  }
  act(r: Real): void {
    this.rb(r).put();
  }
  apply(m: Model): void {
    const b = this.b(m);
    b.kernel--;
    b.released = refs(b) === 0;
  }
  toString(): string {
    return `put(${this.i})`;
  }
}

class ToFd extends BufCmd {
  expected(m: Model): Errno {
    const b = this.b(m);
    return b.released || b.kernel === 0 ? 'EINVAL' : null;
  }
  act(r: Real): void {
    r.fds[this.idx(r)]!.push(r.proc.dmaBufFd(this.rb(r)));
  }
  apply(m: Model): void {
    this.b(m).kernel--;
    this.b(m).fds++;
  }
  toString(): string {
    return `dmaBufFd(${this.i})`;
  }
}

class Close extends BufCmd {
  expected(m: Model): Errno {
    const b = this.b(m);
    if (b.fds === 0) return 'EBADF';
    return lastRefBlocked(b) ? 'EINVAL' : null;
  }
  act(r: Real): void {
    const fds = r.fds[this.idx(r)]!;
    r.proc.close(fds.length ? fds.at(-1)! : 9999);
    fds.pop();
  }
  apply(m: Model): void {
    const b = this.b(m);
    b.fds--;
    b.released = refs(b) === 0;
  }
  toString(): string {
    return `close(${this.i})`;
  }
}

class Attach extends BufCmd {
  constructor(
    i: number,
    readonly dynamic: boolean,
  ) {
    super(i);
  }
  expected(m: Model): Errno {
    return this.b(m).released ? 'EINVAL' : null;
  }
  act(r: Real): void {
    const buf = this.rb(r);
    const a = this.dynamic
      ? buf.dynamicAttach(dev(), { allowPeer2Peer: true, moveNotify: (x) => void r.notified.push(x.id) })
      : buf.attach(dev());
    r.atts[this.idx(r)]!.push(a);
    r.tables.set(a, []);
  }
  apply(m: Model): void {
    const b = this.b(m);
    const cached = m.profile !== 'latest' && this.dynamic !== b.dynamic;
    b.atts.push({ dynamic: this.dynamic, cached, maps: 0, pins: 0, detached: false });
  }
  toString(): string {
    return `${this.dynamic ? 'dynamicAttach' : 'attach'}(${this.i})`;
  }
}

class MapCmd extends AttCmd {
  expected(m: Model): Errno {
    return this.a(m).detached ? 'EINVAL' : null;
  }
  act(r: Real): void {
    const a = this.ra(r);
    const t = locked(this.rb(r), () => a.map(Dir.BIDIRECTIONAL));
    if (a.cachedTable !== t) r.tables.get(a)!.push(t);
  }
  apply(m: Model): void {
    if (!this.a(m).cached) this.a(m).maps++;
  }
  toString(): string {
    return `map(${this.i},${this.j})`;
  }
}

class Unmap extends AttCmd {
  expected(m: Model): Errno {
    const a = this.a(m);
    return a.detached || a.maps === 0 ? 'EINVAL' : null;
  }
  act(r: Real): void {
    const a = this.ra(r);
    const list = r.tables.get(a) ?? [];
    const t = list.at(-1) ?? new SgTable([{ dmaAddress: 0n, length: 4096, page: null }]);
    locked(this.rb(r), () => a.unmap(t, Dir.BIDIRECTIONAL));
    list.pop();
  }
  apply(m: Model): void {
    this.a(m).maps--;
  }
  toString(): string {
    return `unmap(${this.i},${this.j})`;
  }
}

class Detach extends AttCmd {
  expected(m: Model): Errno {
    const a = this.a(m);
    return a.detached || a.maps > 0 || a.pins > 0 ? 'EINVAL' : null;
  }
  act(r: Real): void {
    this.ra(r).detach();
  }
  apply(m: Model): void {
    this.a(m).detached = true;
  }
  toString(): string {
    return `detach(${this.i},${this.j})`;
  }
}

class Pin extends AttCmd {
  expected(m: Model): Errno {
    return this.a(m).detached ? 'EINVAL' : null;
  }
  act(r: Real): void {
    locked(this.rb(r), () => this.ra(r).pin());
  }
  apply(m: Model): void {
    if (this.b(m).dynamic) this.a(m).pins++;
  }
  toString(): string {
    return `pin(${this.i},${this.j})`;
  }
}

class Unpin extends AttCmd {
  expected(m: Model): Errno {
    const a = this.a(m);
    return a.detached || (this.b(m).dynamic && a.pins === 0) ? 'EINVAL' : null;
  }
  act(r: Real): void {
    locked(this.rb(r), () => this.ra(r).unpin());
  }
  apply(m: Model): void {
    if (this.b(m).dynamic) this.a(m).pins--;
  }
  toString(): string {
    return `unpin(${this.i},${this.j})`;
  }
}

class MoveNotify extends BufCmd {
  expected(m: Model): Errno {
    return this.b(m).released ? 'EINVAL' : null;
  }
  act(r: Real): void {
    locked(this.rb(r), () => this.rb(r).moveNotify());
  }
  apply(m: Model): void {
    m.moveNotifies += this.b(m).atts.filter((a) => a.dynamic && !a.detached).length;
  }
  toString(): string {
    return `moveNotify(${this.i})`;
  }
}

class Vmap extends BufCmd {
  expected(m: Model): Errno {
    return this.b(m).released ? 'EINVAL' : null;
  }
  act(r: Real): void {
    r.vmaps.set(this.rb(r), locked(this.rb(r), () => this.rb(r).vmap()));
  }
  apply(m: Model): void {
    this.b(m).vmaps++;
  }
  toString(): string {
    return `vmap(${this.i})`;
  }
}

class Vunmap extends BufCmd {
  expected(m: Model): Errno {
    const b = this.b(m);
    return b.released || b.vmaps === 0 ? 'EINVAL' : null;
  }
  act(r: Real): void {
    const buf = this.rb(r);
    locked(buf, () => buf.vunmap(r.vmaps.get(buf) ?? { vaddr: 0n, isIomem: false }));
  }
  apply(m: Model): void {
    this.b(m).vmaps--;
  }
  toString(): string {
    return `vunmap(${this.i})`;
  }
}

const nat = fc.nat(7);
const commands = [
  fc.boolean().map((d) => new Export(d)),
  nat.map((i) => new Get(i)),
  nat.map((i) => new Put(i)),
  nat.map((i) => new ToFd(i)),
  nat.map((i) => new Close(i)),
  fc.tuple(nat, fc.boolean()).map(([i, d]) => new Attach(i, d)),
  fc.tuple(nat, nat).map(([i, j]) => new MapCmd(i, j)),
  fc.tuple(nat, nat).map(([i, j]) => new Unmap(i, j)),
  fc.tuple(nat, nat).map(([i, j]) => new Detach(i, j)),
  fc.tuple(nat, nat).map(([i, j]) => new Pin(i, j)),
  fc.tuple(nat, nat).map(([i, j]) => new Unpin(i, j)),
  nat.map((i) => new MoveNotify(i)),
  nat.map((i) => new Vmap(i)),
  nat.map((i) => new Vunmap(i)),
];

/** Tears everything down in a legal order; afterwards every buffer is released once and pools are full. */
function teardown(m: Model, r: Real): void {
  r.bufs.forEach((buf, i) => {
    for (const a of r.atts[i]!) {
      if (a.detached) continue;
      for (const t of r.tables.get(a)!.splice(0)) locked(buf, () => a.unmap(t, Dir.BIDIRECTIONAL));
      if (buf.isDynamic()) locked(buf, () => { while (a.pinCount > 0) a.unpin(); });
      a.detach();
    }
    while (!buf.released && buf.vmapCount > 0) locked(buf, () => buf.vunmap(r.vmaps.get(buf)!));
    for (const fd of r.fds[i]!.splice(0)) r.proc.close(fd);
    while (!buf.released) buf.put();
  });
  const { dyn, stat } = r.exporters;
  expect(dyn.releases + stat.releases).toBe(m.bufs.length);
  for (const e of [dyn, stat]) {
    expect(e.liveTables).toBe(0);
    expect(e.frames.inUse.size).toBe(0);
    expect(e.iovas.inUse.size).toBe(0);
    expect(e.pins.size).toBe(0);
  }
  expect(r.k.liveBuffers.size).toBe(0);
  expect(r.k.events.filter((e) => e.kind === 'warn' && !e.detail['emulatorDefined'] && e.rule !== 'DB-15')).toEqual([]);
}

describe('model-based life cycle (DB-05, DB-07, DB-09, DB-13..DB-16, DB-24)', () => {
  for (const profile of ['6.x', 'latest', '5.15'] as const) {
    it(`[${profile}] random export/get/put/close/attach/map/unmap/detach/pin/unpin/moveNotify/vmap/vunmap sequences`, () => {
      fc.assert(
        fc.property(fc.commands(commands, { maxCommands: 60 }), (cmds) => {
          const k = new DmaBufKernel({ profile });
          const real: Real = {
            k,
            exporters: { dyn: new TestExporter(k, { dynamic: true, vmap: true }), stat: new TestExporter(k, { vmap: true }) },
            proc: new SimProcess(k, { fdLimit: 4096 }),
            bufs: [],
            fds: [],
            atts: [],
            tables: new Map(),
            vmaps: new Map(),
            notified: [],
          };
          const model: Model = { profile, bufs: [], moveNotifies: 0 };
          fc.modelRun(() => ({ model, real }), cmds);
          teardown(model, real);
        }),
        { numRuns: 150 },
      );
    });
  }
});
