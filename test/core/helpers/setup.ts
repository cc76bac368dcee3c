/** Fixtures for core IOMMU tests: a simulator, one unit, one paging domain, an attached requester. */
import { expect } from 'vitest';
import { ABI } from '../../../bindings/core.js';
import { SimError, type IommuDomain, type IommuFamily, type IommuUnit, type PgtableFormat, type Simulator } from '../../../src/index.js';
import type { IommuKernel } from '../../../src/iommu/kernel.js';
import { makeSim } from '../../helpers/sim.js';

export const RID = 0x0100; // 0000:01:00.0
export const FAMILY_OF: Record<PgtableFormat, IommuFamily> = {
  'vtd-ss': 'vtd', 'arm-lpae-s1': 'smmuv3', 'arm-lpae-s2': 'smmuv3', 'amd-v1': 'amd-vi', 'x86-64': 'vtd', riscv: 'riscv',
};

export interface Rig {
  sim: Simulator;
  unit: IommuUnit;
  dom: IommuDomain;
}

export async function rig(format: PgtableFormat, opts: {
  ias?: number; oas?: number; strict?: boolean; tlbSets?: number; tlbWays?: number;
  faultQueue?: number; flushQueue?: number; sim?: Simulator; family?: IommuFamily; attach?: boolean;
  granule?: number; kernel?: IommuKernel; hierarchicalAttrs?: boolean; svnapot?: boolean;
  collapseFaults?: boolean; scalableMode?: boolean;
} = {}): Promise<Rig> {
  const sim = opts.sim ?? await makeSim();
  const unit = sim.iommu.createUnit({
    family: opts.family ?? FAMILY_OF[format], tlbSets: opts.tlbSets ?? 64, tlbWays: opts.tlbWays ?? 4,
    faultQueue: opts.faultQueue ?? 256, flushQueue: opts.flushQueue ?? 256,
    collapseFaults: opts.collapseFaults, scalableMode: opts.scalableMode,
  });
  const dom = unit.createDomain({
    type: 'paging', format, ias: opts.ias ?? 48, oas: opts.oas ?? 48, strict: opts.strict ?? true,
    granule: opts.granule, kernel: opts.kernel, hierarchicalAttrs: opts.hierarchicalAttrs, svnapot: opts.svnapot,
  });
  if (opts.attach ?? true) sim.iommu.attach(RID, dom);
  return { sim, unit, dom };
}

/** What `fn` throws (undefined when it returns). */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Runs `fn`, which must throw SimError with exactly `code`. */
export function expectErrno(fn: () => unknown, code: string): void {
  const caught = thrownBy(fn);
  expect(caught, `expected ${code}`).toBeInstanceOf(SimError);
  expect((caught as SimError).code).toBe(code);
}

/** The code of the SimError `fn` throws (anything else thrown fails), undefined when it returns. */
export function simErrorCode(fn: () => unknown): string | undefined {
  const e = thrownBy(fn);
  if (e === undefined) return undefined;
  expect(e).toBeInstanceOf(SimError);
  return (e as SimError).code;
}

/** Two rigs' units counted alike (hits, misses, walks, faults, translations, IOTLB entries). */
export function expectSameCounters(a: Rig, b: Rig, label: unknown = ''): void {
  const sa = a.unit.stats();
  const sb = b.unit.stats();
  for (const k of ['hits', 'misses', 'walks', 'faults', 'translations', 'tlbValid'] as const) expect([label, k, sa[k]]).toEqual([label, k, sb[k]]);
}

export const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The IOTLB of `r`'s unit as bytes: every entry, then the round-robin counter of every set. */
export function tlbBytes(r: Rig): Uint8Array {
  const v = r.sim.core.views;
  const u = r.sim.core.exports.unitsPtr() + r.unit.id * ABI.UNIT_STRIDE;
  const sets = v.u32[(u + ABI.UNIT_TLB_SETS) >> 2]!;
  const ways = v.u32[(u + ABI.UNIT_TLB_WAYS) >> 2]!;
  const tlb = v.u32[(u + ABI.UNIT_TLB_PTR) >> 2]!;
  const rr = v.u32[(u + ABI.UNIT_TLB_RR) >> 2]!;
  const out = new Uint8Array(sets * ways * ABI.TLB_STRIDE + sets);
  out.set(v.u8.subarray(tlb, tlb + sets * ways * ABI.TLB_STRIDE));
  out.set(v.u8.subarray(rr, rr + sets), sets * ways * ABI.TLB_STRIDE);
  return out;
}
