/**
 * The embed path: the core on a host's WebAssembly.Memory. For simulators (written in Wasm or JS)
 * that already own their memory and give the emulator a window [base, base + bytes) of it.
 *
 * - All the core's state lives in the window: fixed blocks (result, stats, zero page, 1 MiB
 *   staging, tables; `fixedBytes` of them) at the front, the arena after. The embed builds have
 *   no data segments, no runtime heap and no memory.grow (scripts/gen-bindings.mjs checks), so
 *   nothing outside the window is ever written, except the host's own guest RAM given as direct
 *   regions (RegionOptions.linear), which is the point of them.
 * - Shared memories get the `embed-shared` build (imports a shared memory, max 65536 pages);
 *   others the `embed` build.
 * - The host may grow the memory whenever it likes: the core keeps only linear addresses, and
 *   CoreViews re-derives its views whenever memory.buffer changed (plain buffers are detached
 *   by a grow; shared ones are replaced by a longer SharedArrayBuffer).
 */
import { Core } from './core.js';
import { SimError } from './errors.js';

/** Where an embedded core lives: a window [base, base + bytes) of the host's memory. */
export interface EmbedOptions {
  /** The host's memory (shared or not). It must already hold the window. */
  memory: WebAssembly.Memory;
  /** Start of the window, a non-zero multiple of 4096. */
  base: number;
  /** Bytes of the window, a multiple of 4096: fixedBytes + an arena of at least 1 MiB. */
  bytes: number;
}

/**
 * Instantiates the embed core in the host's memory window (the promise rejects on failure).
 * @throws {@link SimError} EINVAL when the window is not page-aligned, wraps past 4 GiB or is
 *   smaller than {@link fixedBytes} + 1 MiB; ENOMEM when the memory does not yet hold the window.
 */
export function createEmbeddedCore(options: EmbedOptions): Promise<Core> {
  if (typeof options !== 'object' || options === null) {
    return Promise.reject(new SimError('EINVAL', 'embed', 'options must be { memory, base, bytes }'));
  }
  return Core.embed(options.memory, options.base, options.bytes);
}

/** Bytes of the fixed blocks in front of the arena; a window needs this + 1 MiB at least. */
export async function fixedBytes(): Promise<number> {
  // Any instance answers the same; a throwaway one over a small private memory.
  const memory = new WebAssembly.Memory({ initial: 64 });
  const core = await Core.embed(memory, 65536, 64 * 65536 - 65536);
  return core.exports.layoutFixedBytes();
}
