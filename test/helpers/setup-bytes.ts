/**
 * Setup file for every project: typed arrays compare element by element in one tight loop.
 * vitest's generic deep equality walks a typed array as an iterable, key by key, which costs
 * seconds for a few MiB and made byte-heavy tests slow enough to hit the timeout on a loaded
 * machine. Same answer, same failure diff (vitest prints it when this returns false).
 */
import { expect } from 'vitest';

type Typed = ArrayLike<number | bigint>;

function isTyped(x: unknown): x is Typed {
  return ArrayBuffer.isView(x) && !(x instanceof DataView);
}

expect.addEqualityTesters([
  function typedArrays(a: unknown, b: unknown): boolean | undefined {
    if (!isTyped(a) || !isTyped(b)) return undefined;
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
    return true;
  },
]);
