/** base64 -> bytes, with atob (Node >= 16 and browsers). */
export function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/**
 * base64 of gzipped bytes -> the bytes, through the platform's DecompressionStream (Node >= 18,
 * browsers): how the bundles inline a core (scripts/gen-bindings.mjs writes `wasmGzipBase64`).
 */
export async function gunzipBase64(s: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([decodeBase64(s)]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
