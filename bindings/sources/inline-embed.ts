/** Loader for dmabuf-sim/embed: the two embed builds (imported memory, plain and shared), inlined. */
import { wasmBase64 as embed } from '../generated/core-embed.js';
import { wasmBase64 as embedShared } from '../generated/core-embed-shared.js';
import { decodeBase64 } from '../base64.js';
import type { CoreFlavor } from '../core-source.js';
export type { CoreFlavor } from '../core-source.js';

/** The builds this loader has. */
export const CORE_FLAVORS: readonly CoreFlavor[] = ['embed', 'embed-shared'];

export async function loadCoreBytes(flavor: CoreFlavor): Promise<BufferSource> {
  if (flavor === 'embed') return decodeBase64(embed);
  if (flavor === 'embed-shared') return decodeBase64(embedShared);
  throw new Error(`dmabuf-sim/embed carries only the embed cores, not "${flavor}"`);
}
