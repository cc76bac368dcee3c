/** The state snapshot of bench/state-snapshot.ts, and the check every rollback test makes with it. */
import { stateSnapshot, type SnapshotScope } from '../../bench/state-snapshot.js';

export { machineScope, stateSnapshot, type SnapshotScope } from '../../bench/state-snapshot.js';

/**
 * Runs `fn`, which must fail with a SimError of `code`, and checks the snapshot is unchanged.
 * Returns the error.
 */
export function expectAtomicFailure(scope: SnapshotScope, code: string, fn: () => unknown): Error & { code: string } {
  const before = stateSnapshot(scope);
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (thrown === undefined) throw new Error(`expected ${code}, the call succeeded`);
  const e = thrown as Error & { code: string; name: string };
  if (e.name !== 'SimError' || e.code !== code) throw new Error(`expected SimError ${code}, got ${e.name} ${e.code}: ${e.message}`);
  const after = stateSnapshot(scope);
  if (after !== before) throw new Error(`failed with ${code} but changed state:\nbefore ${before}\nafter  ${after}`);
  return e;
}
