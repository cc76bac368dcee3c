/** Loader for the browser bundle and dmabuf-sim/core: only the release build, inlined (gzip, base64). */
import { wasmGzipBase64 } from '../generated/core-release.js';
import { gunzipBase64 } from '../base64.js';
import type { CoreFlavor } from '../core-source.js';
export type { CoreFlavor } from '../core-source.js';

/** The builds this loader has. */
export const CORE_FLAVORS: readonly CoreFlavor[] = ['release'];

export async function loadCoreBytes(flavor: CoreFlavor): Promise<BufferSource> {
  if (flavor !== 'release') {
    throw new Error(`dmabuf-sim: this bundle carries only the release core, not "${flavor}" (use the Node entry for the debug build)`);
  }
  return gunzipBase64(wasmGzipBase64);
}
