import { readFileSync } from 'node:fs';
import { Machine } from '../../../../src/machine/machine.js';
import { SimProcess, type KernelProfileName } from '../../../../src/dma-buf/index.js';
import {
  RdmaDevice, ibvOpenDevice, connectRcQps, allocUserMemory, type IbvContext, type IbvPd, type IbvCq, type IbvQp,
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
  const proc = new SimProcess(m.kernel, { name: 'app' });
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

export { allocUserMemory };
