/**
 * Loader for the Node entry (dist/node.js): the Wasm files sit beside the bundle
 * (dist/core.wasm = release, dist/core.debug.wasm = debug).
 */
import { readFile } from 'node:fs/promises';
import type { CoreFlavor } from '../core-source.js';
export type { CoreFlavor } from '../core-source.js';

/** The builds this loader has. */
export const CORE_FLAVORS: readonly CoreFlavor[] = ['debug', 'release'];

export async function loadCoreBytes(flavor: CoreFlavor): Promise<BufferSource> {
  const name = flavor === 'release' ? 'core.wasm' : `core.${flavor}.wasm`;
  return new Uint8Array(await readFile(new URL(`./${name}`, import.meta.url)));
}
