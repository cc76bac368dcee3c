/**
 * Where the core's Wasm bytes come from: the loader seam of bindings/core.ts. This default one
 * (used from source: tests, the tsc output, the CLI) has every build as a module (gzip, base64) and loads
 * the one asked for. Each rollup bundle replaces this module by one of bindings/sources/*
 * (rollup.config.mjs): the Node entry reads dist/core.wasm beside it, the browser bundle inlines
 * only the release build, the embed bundle only the embed builds.
 */
import { gunzipBase64 } from './base64.js';

/** Every build of the core: the two standalone ones and the two embed ones (plain or shared host memory). */
export type CoreFlavor = 'debug' | 'release' | 'embed' | 'embed-shared';

/** The builds this loader has. */
export const CORE_FLAVORS: readonly CoreFlavor[] = ['debug', 'release', 'embed', 'embed-shared'];

export async function loadCoreBytes(flavor: CoreFlavor): Promise<BufferSource> {
  const mod =
    flavor === 'debug' ? await import('./generated/core-debug.js')
    : flavor === 'release' ? await import('./generated/core-release.js')
    : flavor === 'embed' ? await import('./generated/core-embed.js')
    : await import('./generated/core-embed-shared.js');
  return gunzipBase64(mod.wasmGzipBase64);
}
