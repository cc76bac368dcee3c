/**
 * The scenario model: what a scenario file says, after validation. A file is
 *
 *   name: seed
 *   description: ...            (optional)
 *   profile: 6.x                (optional: 5.15 | 6.x | latest; default 6.x)
 *   iommu: { family: vtd, strict: true }   (optional; null or absent: no IOMMU)
 *   topology: builtin           (builtin[:name], a topology file, or the description inline)
 *   steps: [ { op: ..., <fields>, as?: name, expect?: ... }, ... ]
 *
 * or, instead of `steps`, `acts: [{ title, topology?, iommu?, profile?, steps }]`, each act on
 * its own machine (an act inherits what it does not say from the top level).
 *
 * Ops are table-driven (OP_SPECS): each op lists its fields and their kinds, and what kind of
 * named object its `as:` defines. Each op has one definition (op.ts defineOp: fields, types and
 * handler together): the generic ones in op.ts, the driver-backed ones in driver-ops.ts; OP_SPECS
 * and OpArgs are derived from them. The runner needs a handler for every op a scenario uses.
 */
import type { TopologyDescription, Topology } from '../index.js';
import type { KernelProfileName, KernelRuleOverrides } from '../index.js';
import type { IommuFamily } from '../index.js';
import { GENERIC_OPS, type ArgsOfOp, type OpSpec } from './op.js';
import { DRIVER_OPS } from './driver-ops.js';
import { IOMMUFD_OPS } from './iommufd-ops.js';

/** The kernel profiles a scenario's `profile:` may name (which kernel's dma-buf rules apply). */
export const PROFILES: readonly KernelProfileName[] = ['5.15', '6.x', 'latest'];
/** The IOMMU families a scenario's `iommu.family` may name: Intel VT-d or Arm SMMUv3. */
export const IOMMU_FAMILIES: readonly IommuFamily[] = ['vtd', 'smmuv3'];

/** Kinds of named objects a step can define with `as:` and later steps refer to. */
export type ObjectKind = 'buffer' | 'va' | 'fd' | 'mr' | 'mmap' | 'attachment' | 'umem' | 'ioas' | 'hwpt' | 'fault' | 'vdev';
/** Every {@link ObjectKind}. */
export const OBJECT_KINDS: readonly ObjectKind[] = ['buffer', 'va', 'fd', 'mr', 'mmap', 'attachment', 'umem', 'ioas', 'hwpt', 'fault', 'vdev'];
/** Plural for messages: 'unknown fd 'fd9' (fds: fd0, fd1)'. */
export const KIND_PLURAL: Record<ObjectKind, string> = { buffer: 'buffers', va: 'device VAs', fd: 'fds', mr: 'MRs', mmap: 'mmaps', attachment: 'attachments',
  umem: 'user memories', ioas: 'IOASes', hwpt: 'HWPTs', fault: 'fault queues', vdev: 'bound devices' };

/** A byte pattern: what a transfer writes, or what a read must return. */
export type Pattern =
  | { kind: 'fill'; value: number }
  | { kind: 'counter'; start: number; step: number }
  | { kind: 'text'; text: string }
  | { kind: 'hex'; bytes: readonly number[] }
  | { kind: 'random'; seed: number };

/**
 * What a step must do. Nothing (`expect: ok`, or no `expect`): succeed. `errno`: fail with one
 * of these codes (SimError.code). `bytes`: succeed and return these bytes. `result`: succeed
 * and return a result whose fields equal these.
 */
export interface Expectation {
  /** The step must fail with one of these SimError codes ('EPERM', ...). */
  errno?: readonly string[];
  /** The step must succeed and return these bytes. */
  bytes?: Pattern;
  /** The step must succeed with a result whose named fields equal these. */
  result?: Readonly<Record<string, string | number | boolean | null>>;
}

export {
  COMMON_FIELDS, defineOp, type FieldKind, type FieldSpec, type OpSpec, type OpDefinition, type ArgsOf, type ArgsOfOp, type KindValue,
} from './op.js';
export { OPEN_FLAGS, IB_ACCESS, RDMA_VERBS, MMAP_PROT } from './driver-ops.js';

/** Every built-in op's definition, in the order help and the JSON Schema list them. */
export const BUILTIN_OPS = [...GENERIC_OPS, ...DRIVER_OPS, ...IOMMUFD_OPS] as const;

/** The op vocabulary: what validation and the JSON Schema read (derived from BUILTIN_OPS). */
export const OP_SPECS: Readonly<Record<string, OpSpec>> = Object.freeze(Object.fromEntries(
  BUILTIN_OPS.map((d): [string, OpSpec] => [d.name, { doc: d.doc, fields: d.fields, ...(d.produces ? { produces: d.produces } : {}) }]),
));

/** Typed arguments of the built-in ops, as handlers receive them (derived from their fields). */
export type OpArgs = { [D in (typeof BUILTIN_OPS)[number] as D['name']]: ArgsOfOp<D> };

/** The name of a built-in op. */
export type OpName = keyof OpArgs;

/** One step after validation. */
export interface Step<A = Record<string, unknown>> {
  /** The op's name. */
  op: string;
  /** 1-based position within its act. */
  index: number;
  /** `steps[3]` or `acts[1].steps[3]`. */
  path: string;
  /** Where the step starts in the file. */
  line: number;
  /** 1-based column of that place. */
  col: number;
  /** The op's fields, converted to their kinds' types. */
  args: A;
  /** The name `as:` gives the step's object. */
  as?: string;
  /** What the step must do (success when the file says nothing). */
  expect: Expectation;
}

/** An act's IOMMU: its family and whether unmaps invalidate the IOTLB at once (strict) or lazily. */
export interface ActIommu {
  /** Intel VT-d or Arm SMMUv3. */
  family: IommuFamily;
  /** iommu.strict=1 (true) or lazy flush-queue invalidation (false). */
  strict: boolean;
  /** VT-d scalable mode (intel_iommu=sm_on), which PASIDs need; present only when the file sets it. */
  scalableMode?: boolean;
}

/** One act of a validated scenario: its own machine (profile, IOMMU, topology) and its steps. */
export interface Act {
  /** 0-based. */
  index: number;
  /** The act's title (the scenario name for a file with plain `steps`). */
  title: string;
  /** The kernel profile its machine follows. */
  profile: KernelProfileName;
  /** Per-rule overrides of the profile (`dmaBufRules:`, e.g. `{ attachTimeMapping: false }`); empty when none. */
  dmaBufRules: KernelRuleOverrides;
  /** Its machine's IOMMU, or null for none. */
  iommu: ActIommu | null;
  /** Where the topology came from ('builtin:seed', a file name, or inline). */
  topologySource: string;
  /** The topology description the runner builds the machine from. */
  topologyDescription: TopologyDescription;
  /** Built once at validation, for device names. The runner builds the machine from the description. */
  topology: Topology;
  /** The validated steps, in order. */
  steps: Step[];
}

/** A validated scenario: what {@link parseScenario} returns and the runner runs, act by act. */
export interface Scenario {
  /** The scenario's `name:`. */
  name: string;
  /** The scenario's `description:`, if any. */
  description?: string;
  /** The file it came from ('<inline>' for text without a name). */
  file: string;
  /** Its acts; a file with plain `steps` has one. */
  acts: Act[];
}
