/** Fixtures for core IOMMU tests: a simulator, one unit, one paging domain, an attached requester. */
import { expect } from 'vitest';
import { SimError, type IommuDomain, type IommuFamily, type IommuUnit, type PgtableFormat, type Simulator } from '../../../src/index.js';
import { makeSim } from '../../helpers/sim.js';

export const RID = 0x0100; // 0000:01:00.0
export const FAMILY_OF: Record<PgtableFormat, IommuFamily> = { 'vtd-ss': 'vtd', 'arm-lpae-s1': 'smmuv3' };

export interface Rig {
  sim: Simulator;
  unit: IommuUnit;
  dom: IommuDomain;
}

export async function rig(format: PgtableFormat, opts: {
  ias?: number; oas?: number; strict?: boolean; tlbSets?: number; tlbWays?: number;
  faultQueue?: number; flushQueue?: number; sim?: Simulator; family?: IommuFamily; attach?: boolean;
} = {}): Promise<Rig> {
  const sim = opts.sim ?? await makeSim();
  const unit = sim.iommu.createUnit({
    family: opts.family ?? FAMILY_OF[format], tlbSets: opts.tlbSets ?? 64, tlbWays: opts.tlbWays ?? 4,
    faultQueue: opts.faultQueue ?? 256, flushQueue: opts.flushQueue ?? 256,
  });
  const dom = unit.createDomain({ type: 'paging', format, ias: opts.ias ?? 48, oas: opts.oas ?? 48, strict: opts.strict ?? true });
  if (opts.attach ?? true) sim.iommu.attach(RID, dom);
  return { sim, unit, dom };
}

/** Runs `fn`, which must throw SimError with exactly `code`. */
export function expectErrno(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(SimError);
  expect((caught as SimError).code).toBe(code);
}

export const hex = (v: bigint): string => `0x${v.toString(16)}`;
