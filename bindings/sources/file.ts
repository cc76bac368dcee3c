/**
 * Loader for the Node build (dist/node.js, drivers.js, scenario.js, core.js, embed.js, cli.js):
 * the Wasm files sit beside the bundles (dist/core.wasm = release, dist/core.debug.wasm,
 * dist/core.embed.wasm, dist/core.embed-shared.wasm) and are read on first use.
 */
import { readFile } from 'node:fs/promises';
import type { CoreFlavor } from '../core-source.js';
export type { CoreFlavor } from '../core-source.js';

/** The builds this loader has. */
export const CORE_FLAVORS: readonly CoreFlavor[] = ['debug', 'release', 'embed', 'embed-shared'];

export async function loadCoreBytes(flavor: CoreFlavor): Promise<BufferSource> {
  const name = flavor === 'release' ? 'core.wasm' : `core.${flavor}.wasm`;
  return new Uint8Array(await readFile(new URL(`./${name}`, import.meta.url)));
}
