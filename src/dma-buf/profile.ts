import { SimError } from '../../bindings/errors.js';

/** Kernel behaviour eras of spec/dmabuf.md: '5.15', '6.x' (v6.2-6.14, default), 'latest' (2025+). */
export type KernelProfileName = '5.15' | '6.x' | 'latest';

/**
 * Every era-tagged rule, as a switch. A profile is a named set of these; each can be overridden
 * (the spec asks for DB-09 to be an option because it decides the habanalabs errno).
 */
export interface KernelProfile {
  readonly name: KernelProfileName;
  /**
   * DB-09 [5.x-6.14]: when attachment and exporter disagree on dynamic-ness, attach maps at once
   * (BIDIRECTIONAL, pinning a dynamic exporter) and caches the table. Off in 'latest'.
   */
  readonly attachTimeMapping: boolean;
  /** DB-10 / DB-02 [<=6.14]: exporters may ask for `cacheSgtMapping`. Ignored in 'latest'. */
  readonly sgtCaching: boolean;
  /** DB-21 [5.13-5.15]: SET_NAME on a buffer with attachments fails with EBUSY. */
  readonly setNameBusyWhenAttached: boolean;
  /** DB-29 [<6.15]: a second dma_fence_signal returns -EINVAL (later it returns nothing). */
  readonly doubleSignalReturnsEinval: boolean;
  /**
   * DB-25: 'full' is the 6.2+ convention (importers hold resv for pin/unpin/map/unmap/vmap/vunmap
   * and not for the rest). 'legacy' is 5.15: only dynamic paths assert the lock.
   */
  readonly lockConvention: 'full' | 'legacy';
  /** DB-11 [6.x]: a map for a static importer waits on KERNEL-usage fences. */
  readonly mapWaitsKernelFences: boolean;
  /** DB-22: EXPORT/IMPORT_SYNC_FILE exist (v6.0+); before that they are unknown ioctls. */
  readonly syncFileIoctls: boolean;
}

const PROFILES: Record<KernelProfileName, KernelProfile> = {
  '5.15': {
    name: '5.15',
    attachTimeMapping: true,
    sgtCaching: true,
    setNameBusyWhenAttached: true,
    doubleSignalReturnsEinval: true,
    lockConvention: 'legacy',
    mapWaitsKernelFences: false,
    syncFileIoctls: false,
  },
  '6.x': {
    name: '6.x',
    attachTimeMapping: true,
    sgtCaching: true,
    setNameBusyWhenAttached: false,
    doubleSignalReturnsEinval: true,
    lockConvention: 'full',
    mapWaitsKernelFences: true,
    syncFileIoctls: true,
  },
  latest: {
    name: 'latest',
    attachTimeMapping: false,
    sgtCaching: false,
    setNameBusyWhenAttached: false,
    doubleSignalReturnsEinval: false,
    lockConvention: 'full',
    mapWaitsKernelFences: true,
    syncFileIoctls: true,
  },
};

/** Every kernel profile name, oldest first (for CLIs and schema enums). */
export const KERNEL_PROFILE_NAMES: readonly KernelProfileName[] = ['5.15', '6.x', 'latest'];

/** Per-rule overrides of a profile: any era-tagged switch of {@link KernelProfile}, by name. */
export type KernelRuleOverrides = Partial<Omit<KernelProfile, 'name'>>;

/** The switches a profile has, each with the values it may take (for validation and docs). */
export const KERNEL_RULE_VALUES: Readonly<Record<keyof KernelRuleOverrides, readonly unknown[]>> = {
  attachTimeMapping: [true, false],
  sgtCaching: [true, false],
  setNameBusyWhenAttached: [true, false],
  doubleSignalReturnsEinval: [true, false],
  lockConvention: ['full', 'legacy'],
  mapWaitsKernelFences: [true, false],
  syncFileIoctls: [true, false],
};

/**
 * Checks per-rule overrides: an object (or undefined) whose every key is a rule of
 * KERNEL_RULE_VALUES and every value one that rule takes. Returns a copy with only those keys.
 * @throws {@link SimError} EINVAL naming `field.<rule>` for an unknown rule or a bad value, or
 *   `field` when it is not an object.
 */
export function checkRuleOverrides(op: string, field: string, v: unknown): KernelRuleOverrides {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SimError('EINVAL', op, `${field} must be an object of rule switches`);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const allowed = Object.prototype.hasOwnProperty.call(KERNEL_RULE_VALUES, k) ? KERNEL_RULE_VALUES[k as keyof KernelRuleOverrides] : undefined;
    if (!allowed) {
      throw new SimError('EINVAL', op, `${field}.${k.length > 40 ? `${k.slice(0, 40)}...` : k} is not a kernel rule (${Object.keys(KERNEL_RULE_VALUES).join(', ')})`);
    }
    if (x === undefined) continue;
    if (!allowed.includes(x)) throw new SimError('EINVAL', op, `${field}.${k} must be ${allowed.map((a) => (typeof a === 'string' ? `'${a}'` : String(a))).join(' or ')}`);
    out[k] = x;
  }
  return out as KernelRuleOverrides;
}

/**
 * The named profile, with any switches overridden (DmaBufKernel's `profile` and `overrides`).
 * @throws {@link SimError} EINVAL for an unknown profile name, or an unknown rule or bad value in
 *   `overrides` (naming `overrides.<rule>`).
 */
export function resolveProfile(
  name: KernelProfileName = '6.x',
  overrides: KernelRuleOverrides = {},
): KernelProfile {
  const base = Object.prototype.hasOwnProperty.call(PROFILES, name) ? PROFILES[name] : undefined;
  if (!base) {
    throw new SimError('EINVAL', 'resolveProfile', `unknown kernel profile '${String(name).slice(0, 40)}' (expected 5.15, 6.x or latest)`);
  }
  return Object.freeze({ ...base, ...checkRuleOverrides('resolveProfile', 'overrides', overrides), name });
}
