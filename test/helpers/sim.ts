/** Shared fixtures for core tests: a simulator with 1 GiB of RAM and a 96 GiB HBM region. */
import { createSimulator, type Simulator } from '../../src/index.js';

export const RAM_BASE = 0x8000_0000n;
export const RAM_SIZE = 1n << 30n;
export const HBM_BASE = 0x40_0000_0000n;
export const HBM_SIZE = 96n << 30n;

export async function makeSim(arenaBytes = 64 << 20): Promise<Simulator> {
  const sim = await createSimulator({ arenaBytes });
  sim.memory.addRegion({ base: RAM_BASE, size: RAM_SIZE, kind: 'ram', name: 'ram' });
  sim.memory.addRegion({ base: HBM_BASE, size: HBM_SIZE, kind: 'device', name: 'hbm', owner: 1 });
  return sim;
}

/** A deterministic byte pattern (dmatest-style: position-dependent, never all zero). */
export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x & 0xff) | 1;
  }
  return out;
}
