/**
 * Core.trusted: the exports without the per-argument checks, for the package's own callers that
 * checked their arguments (the DMA engine). They keep the trap guard: a trap through either table
 * marks the instance, and every later call through either table throws CoreTrapError.
 */
import { describe, expect, it } from 'vitest';
import { ABI, Core, type CoreExports } from '../../bindings/core.js';
import { CoreTrapError, SimError } from '../../bindings/errors.js';
import { createSimulator } from '../../src/index.js';

/** A Core over a stand-in instance whose dmaCopy traps as a Wasm bug would. */
function fakeCore(): Core {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const exports: Record<string, unknown> = { memory };
  for (const name of ['resultPtr', 'statsPtr', 'stagingPtr', 'regionsPtr', 'unitsPtr', 'domainsPtr', 'tracePtr', 'trace2Ptr']) exports[name] = () => 0;
  exports.abiVersion = () => ABI.ABI_VERSION;
  exports.init = () => 0;
  exports.chunksFree = () => 7;
  exports.dmaCopy = () => { throw new WebAssembly.RuntimeError('memory access out of bounds'); };
  const ctor = Core as unknown as new (instance: { exports: unknown }, build: string, base: number, bytes: number) => Core;
  return new ctor({ exports }, 'release', 0, 1 << 20);
}

describe('Core.trusted', () => {
  it('has every export of Core.exports, and serves the same calls', async () => {
    const sim = await createSimulator({ arenaBytes: 16 << 20 });
    const { exports, trusted } = sim.core;
    expect(Object.keys(trusted).sort()).toEqual(Object.keys(exports).sort());
    expect(trusted.memory).toBe(exports.memory);
    expect(trusted.abiVersion()).toBe(ABI.ABI_VERSION);
    expect(trusted.chunksFree()).toBe(exports.chunksFree());
    // The guarded table still checks; the trusted one leaves that to its caller.
    expect(() => (exports.dmaCopy as (...a: unknown[]) => number)(1, 0, 1, 0n, 8n)).toThrow(SimError);
    expect(trusted.dmaCopy(0xffff, 0n, 0xffff, 0x1000n, 8n)).toBeLessThan(0);
    expect(sim.core.trapped).toBe(false);
  });

  it('keeps the trap guard: a trap marks the instance for both tables', () => {
    const core = fakeCore();
    expect(core.trusted.chunksFree()).toBe(7);
    let caught: unknown;
    try { core.trusted.dmaCopy(1, 0n, 1, 0n, 8n); } catch (e) { caught = e; }
    expect(caught).toBeInstanceOf(CoreTrapError);
    expect(String((caught as Error).message)).toMatch(/dmaCopy: memory access out of bounds/);
    expect(core.trapped).toBe(true);
    for (const table of [core.trusted, core.exports] as CoreExports[]) {
      expect(() => table.chunksFree()).toThrow(CoreTrapError);
      expect(() => table.abiVersion()).toThrow(/instance already trapped: dmaCopy/);
    }
  });

  it('a value Wasm cannot convert is a SimError EINVAL and leaves the instance usable', async () => {
    const sim = await createSimulator({ arenaBytes: 16 << 20 });
    const call = sim.core.trusted.dmaCopy as (...a: unknown[]) => number;
    expect(() => call(1, 0, 1, 0n, 8n)).toThrow(SimError); // a Number for an i64
    expect(sim.core.trapped).toBe(false);
    expect(sim.core.trusted.abiVersion()).toBe(ABI.ABI_VERSION);
  });

  it('a trap through the guarded table stops the trusted one too', () => {
    const core = fakeCore();
    expect(() => core.exports.dmaCopy(1, 0n, 1, 0n, 8n)).toThrow(CoreTrapError);
    expect(() => core.trusted.chunksFree()).toThrow(CoreTrapError);
  });
});
