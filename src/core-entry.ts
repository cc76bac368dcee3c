/**
 * dmabuf-sim/core: the raw core for hosts that want no TypeScript layer: the Wasm exports
 * (map/unmap/mapBatch, translate/translateBatch, dmaCopy/dmaRead/dmaWrite/dmaFill, regions,
 * frames, units, domains, faults), the ABI constants and typed views over linear memory.
 * Statuses are returned as numbers (0 or -errno), never thrown, except for a trap (a bug).
 *
 *   import { createCore, ABI } from 'dmabuf-sim/core';
 *   const core = await createCore({ arenaBytes: 16 << 20 });
 *   const e = core.exports;
 *   e.addRegion(0n, 1n << 30n, ABI.REGION_KIND_RAM, ABI.REGION_CPU_ACCESSIBLE, 0);
 *   const unit = e.createUnit(ABI.FAMILY_VTD, 64, 4, 64, 64);
 *   const dom = e.createDomain(unit, ABI.DOMAIN_PAGING, ABI.FMT_VTD_SS, 48, 48, 1);
 *   e.attachDevice(0x0100, dom);
 *   e.map(dom, 0x1000n, 0x20_0000n, 0x1000n, ABI.PROT_READ | ABI.PROT_WRITE);
 *   e.translate(0x0100, 0x1234n, ABI.ACCESS_READ);           // 0; output at layout.result
 *   core.views.u64[(core.layout.result + ABI.RES_VALUE) / 8]; // 0x200234n
 */
import { ABI, Core, CoreViews, compileCore, type CoreBuild, type CoreExports, type CoreFlavor, type CoreLayout } from '../bindings/core.js';
import { SimError, CoreTrapError, ERRNO, errnoName, type ErrnoCode } from '../bindings/errors.js';
import { objArg, oneOf, show } from './util/args.js';

export { ABI, Core, CoreViews, compileCore, SimError, CoreTrapError, ERRNO, errnoName };
export type { CoreBuild, CoreExports, CoreFlavor, CoreLayout, ErrnoCode };

/** Options of {@link createCore}. */
export interface CoreOptions {
  /** Bytes of arena (backing, radix, frame records, IOTLBs, rings), 1 MiB .. 3.5 GiB. @default 64 MiB */
  arenaBytes?: number;
  /** @default 'release' (bundles carry only that build) */
  build?: CoreBuild;
}

/**
 * One core instance with its own memory. Compiles the module once per process.
 * @throws {@link SimError} EINVAL (the promise rejects) when `arenaBytes` is not a multiple of
 *   4096 in 1 MiB..3.5 GiB; ENOMEM when linear memory cannot grow to hold it.
 */
export function createCore(options: CoreOptions = {}): Promise<Core> {
  const op = 'createCore';
  try {
    objArg(op, 'options', options);
    const arena = options.arenaBytes ?? 64 << 20;
    if (typeof arena !== 'number' || !Number.isInteger(arena) || arena < 1 << 20 || arena > 3.5 * 2 ** 30 || arena % 4096 !== 0) {
      throw new SimError('EINVAL', op, `arenaBytes = ${show(arena)} must be a multiple of 4096 in 1 MiB..3.5 GiB`);
    }
    return Core.create(arena, oneOf(op, 'build', options.build ?? 'release', ['debug', 'release'] as const));
  } catch (e) {
    return Promise.reject(e);
  }
}
