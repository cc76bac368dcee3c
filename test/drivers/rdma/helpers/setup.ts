import { readFileSync } from 'node:fs';
import { Machine } from '../../../../src/machine/machine.js';
import { SimProcess, type KernelProfileName } from '../../../../src/dma-buf/index.js';
import { PAGE_SIZE, type AnonVmArea, type Process } from '../../../../src/process/index.js';
import {
  RdmaDevice, ibvOpenDevice, connectRcQps, type IbvContext, type IbvPd, type IbvCq, type IbvQp,
  type RdmaDeviceOptions, type RdmaNicKind,
} from '../../../../src/drivers/rdma/index.js';
import { MovableExporter, type MovableExporterOptions } from './movable-exporter.js';

export const fixture = readFileSync(new URL('../../../pci/fixtures/two-switches.json', import.meta.url), 'utf8');

export interface Side {
  dev: RdmaDevice;
  ctx: IbvContext;
  pd: IbvPd;
  cq: IbvCq;
  qp: IbvQp;
}

export async function machine(opts: { profile?: KernelProfileName; iommu?: boolean; strictLocking?: boolean } = {}) {
  return Machine.create({
    topology: fixture,
    iommu: opts.iommu === false ? null : { family: 'vtd' },
    profile: opts.profile ?? '6.x',
    strictLocking: opts.strictLocking ?? false,
  });
}

export function side(m: Machine, proc: SimProcess, fn: string, kind: RdmaNicKind, extra: Partial<RdmaDeviceOptions> = {}): Side {
  const dev = new RdmaDevice(m, fn, { kind, ...extra });
  const ctx = ibvOpenDevice(dev, proc);
  const pd = ctx.allocPd();
  const cq = ctx.createCq();
  const qp = ctx.createQp(pd, { sendCq: cq, maxSendSge: 8, maxRecvSge: 8 });
  return { dev, ctx, pd, cq, qp };
}

/** nic0 (responder, importer of the dma-buf) and nic1 (requester), QPs connected. */
export async function pair(opts: {
  profile?: KernelProfileName;
  responder?: RdmaNicKind;
  requester?: RdmaNicKind;
  responderOpts?: Partial<RdmaDeviceOptions>;
  strictLocking?: boolean;
} = {}) {
  const m = await machine({ profile: opts.profile, strictLocking: opts.strictLocking });
  const proc = new SimProcess(m.kernel, { name: 'app', memory: m.sim.memory });
  const a = side(m, proc, 'nic1', opts.requester ?? 'odp');
  const b = side(m, proc, 'nic0', opts.responder ?? 'odp', opts.responderOpts);
  connectRcQps(a.qp, b.qp);
  return { m, proc, a, b };
}

export function exporter(m: Machine, proc: SimProcess, opts: MovableExporterOptions) {
  const exp = new MovableExporter(m, opts);
  const buf = exp.export();
  const fd = proc.dmaBufFd(buf);
  return { exp, buf, fd };
}

export function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A process of `m` with user memory (anonymous mappings backed by the machine's RAM). */
export function process(m: Machine, name = 'app'): SimProcess {
  return new SimProcess(m.kernel, { name, memory: m.sim.memory });
}

/** User memory of a process for ibv_reg_mr: an anonymous mapping, read and written as the process would. */
export interface UserMemory {
  readonly addr: bigint;
  readonly length: number;
  readonly vma: AnonVmArea;
  /** The physical page behind each page of the range (faulted in). */
  readonly pages: readonly bigint[];
  read(offset: number, length: number): Uint8Array;
  write(offset: number, data: Uint8Array): void;
  free(): void;
}

/**
 * `length` bytes of user memory in the process of `owner` (a side's verbs context, or a process),
 * starting `pageOffset` bytes into an anonymous mapping. Populated as one physically contiguous
 * run, or with `scattered` faulted in page by page with another mapping's page taken between
 * two of them, so that no two pages are physically adjacent.
 */
export function userMemory(
  owner: { ctx: IbvContext } | Process, length: number, opts: { pageOffset?: number; scattered?: boolean } = {},
): UserMemory {
  const proc: Process = 'ctx' in owner ? owner.ctx.process : owner;
  const pageOffset = opts.pageOffset ?? 0;
  const n = Math.ceil((pageOffset + length) / PAGE_SIZE);
  const vma = proc.mmapAnonymous(n * PAGE_SIZE, { populate: !opts.scattered });
  let spacer: AnonVmArea | null = null;
  if (opts.scattered) {
    spacer = proc.mmapAnonymous(n * PAGE_SIZE);
    for (let i = 0; i < n; i++) {
      vma.pagePhys(i, true);
      spacer.pagePhys(i, true);
    }
  }
  const addr = vma.start + BigInt(pageOffset);
  return {
    addr,
    length,
    vma,
    pages: Array.from({ length: n }, (_, i) => vma.pagePhys(i)),
    read: (offset, len) => proc.readUser(addr + BigInt(offset), len),
    write: (offset, data) => proc.writeUser(addr + BigInt(offset), data),
    free: () => {
      proc.munmap(vma);
      if (spacer) proc.munmap(spacer);
    },
  };
}
