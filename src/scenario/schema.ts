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
 * named object its `as:` defines. `defineOp` adds one; the runner needs a handler for every op
 * a scenario uses.
 */
import type { TopologyDescription, Topology } from '../index.js';
import type { KernelProfileName } from '../index.js';
import type { IommuFamily } from '../index.js';

/** The kernel profiles a scenario's `profile:` may name (which kernel's dma-buf rules apply). */
export const PROFILES: readonly KernelProfileName[] = ['5.15', '6.x', 'latest'];
/** The IOMMU families a scenario's `iommu.family` may name: Intel VT-d or Arm SMMUv3. */
export const IOMMU_FAMILIES: readonly IommuFamily[] = ['vtd', 'smmuv3'];

/** Kinds of named objects a step can define with `as:` and later steps refer to. */
export type ObjectKind = 'buffer' | 'va' | 'fd' | 'mr' | 'mmap' | 'attachment';
/** Every {@link ObjectKind}. */
export const OBJECT_KINDS: readonly ObjectKind[] = ['buffer', 'va', 'fd', 'mr', 'mmap', 'attachment'];
/** Plural for messages: 'unknown fd 'fd9' (fds: fd0, fd1)'. */
export const KIND_PLURAL: Record<ObjectKind, string> = { buffer: 'buffers', va: 'device VAs', fd: 'fds', mr: 'MRs', mmap: 'mmaps', attachment: 'attachments' };

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

/** Field kinds an op declares; validation converts each value to the type in the comment. */
export type FieldKind =
  /** string: a PCI function of the act's topology, by name or BDF */
  | { type: 'device' }
  /** string: a name an earlier step of the act defined with `as:` */
  | { type: 'ref'; kinds: readonly ObjectKind[] }
  /** bigint: 4096, "0x1000", "2M", "16G" */
  | { type: 'size' }
  /** bigint: 4096, "0x1000" */
  | { type: 'address' }
  /** number */
  | { type: 'int'; min: number; max: number }
  /** string */
  | { type: 'string' }
  /** string, one of values */
  | { type: 'enum'; values: readonly string[] }
  /** string[]: a list, or one string with '|' between names */
  | { type: 'flags'; values: readonly string[] }
  /** Pattern */
  | { type: 'pattern' }
  /** boolean */
  | { type: 'bool' };

/** One field of an op: its kind, whether it is required, and its help line. */
export interface FieldSpec {
  /** What the value must be, and what validation converts it to. */
  kind: FieldKind;
  /** Whether a step must give it. @default false */
  required?: boolean;
  /** One line for `dmabuf-sim help` and error messages. */
  doc: string;
}

/** One scenario op: its help line, its fields, and the kind of object its `as:` names. */
export interface OpSpec {
  /** One line for `dmabuf-sim help`. */
  doc: string;
  /** The op's own fields by name (`op`, `expect` and `as` are common and not listed). */
  fields: Readonly<Record<string, FieldSpec>>;
  /** The kind of object `as:` names; absent: the op takes no `as:`. */
  produces?: ObjectKind;
}

const ref = (...kinds: ObjectKind[]): FieldKind => ({ type: 'ref', kinds });
const DEVICE: FieldKind = { type: 'device' };
const SIZE: FieldKind = { type: 'size' };
const VFIO_DEVICE: FieldSpec = { kind: DEVICE, required: true, doc: 'the device bound to vfio-pci' };
/** A byte range of a BAR (vfioExport, readBar). */
const BAR_RANGE: Record<string, FieldSpec> = {
  bar: { kind: { type: 'int', min: 0, max: 5 }, doc: 'BAR index (default 0)' },
  offset: { kind: SIZE, doc: 'offset in the BAR (default 0)' },
  length: { kind: SIZE, required: true, doc: 'bytes' },
};

/** The open(2) flags a dma-buf export step may ask for (DMA_BUF export flags are O_* flags). */
export const OPEN_FLAGS = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_CLOEXEC'] as const;
/** The `enum ib_access_flags` names an MR registration step may give (IB_ACCESS_*). */
export const IB_ACCESS = ['LOCAL_WRITE', 'REMOTE_WRITE', 'REMOTE_READ', 'REMOTE_ATOMIC', 'RELAXED_ORDERING'] as const;
/** The RDMA work-request opcodes a `post` step may use (IB_WR_RDMA_WRITE, IB_WR_RDMA_READ, IB_WR_SEND). */
export const RDMA_VERBS = ['WRITE', 'READ', 'SEND'] as const;
/** The mmap(2) protections an `mmap` step may ask for (PROT_READ, PROT_WRITE). */
export const MMAP_PROT = ['READ', 'WRITE'] as const;

/** The op vocabulary of the seed story. Fields common to every op: op, expect (and as, where produces). */
export const OP_SPECS: Record<string, OpSpec> = {
  note: {
    doc: 'a comment printed in the report',
    fields: { text: { kind: { type: 'string' }, required: true, doc: 'the text' } },
  },
  alloc: {
    doc: 'allocate device memory on an accelerator (HL_MEM_OP_ALLOC): a handle',
    produces: 'buffer',
    fields: {
      device: { kind: DEVICE, required: true, doc: 'the accelerator' },
      size: { kind: SIZE, required: true, doc: 'bytes ("2M")' },
    },
  },
  free: {
    doc: 'free device memory (HL_MEM_OP_FREE)',
    fields: { buffer: { kind: ref('buffer'), required: true, doc: 'what alloc made' } },
  },
  map: {
    doc: 'map device memory into the device\'s virtual address space (HL_MEM_OP_MAP): a device VA',
    produces: 'va',
    fields: {
      buffer: { kind: ref('buffer'), required: true, doc: 'what alloc made' },
      address: { kind: { type: 'address' }, doc: 'a device VA hint' },
    },
  },
  export: {
    doc: 'export device memory as a dma-buf (HL_MEM_OP_EXPORT_DMABUF_FD): an fd',
    produces: 'fd',
    fields: {
      buffer: { kind: ref('buffer', 'va'), required: true, doc: 'a handle (alloc) or a device VA (map)' },
      offset: { kind: SIZE, doc: 'offset in the buffer (default 0)' },
      length: { kind: SIZE, doc: 'bytes (default: the whole buffer)' },
      flags: { kind: { type: 'flags', values: OPEN_FLAGS }, doc: 'file flags (default O_RDWR|O_CLOEXEC)' },
    },
  },
  register: {
    doc: 'ibv_reg_dmabuf_mr on a NIC: import the dma-buf, map it for the NIC, make an MR',
    produces: 'mr',
    fields: {
      nic: { kind: DEVICE, required: true, doc: 'the NIC' },
      fd: { kind: ref('fd'), required: true, doc: 'the dma-buf fd' },
      offset: { kind: SIZE, doc: 'offset in the dma-buf (default 0)' },
      length: { kind: SIZE, required: true, doc: 'bytes' },
      iova: { kind: { type: 'address' }, doc: 'the MR\'s virtual address (default: offset)' },
      access: { kind: { type: 'flags', values: IB_ACCESS }, doc: 'IBV_ACCESS_* without the prefix (default LOCAL_WRITE)' },
      kind: { kind: { type: 'enum', values: ['odp', 'pinned'] }, doc: 'the NIC: odp (mlx5-like, honours move_notify) or pinned (EFA-like); default odp' },
    },
  },
  post: {
    doc: 'post an RDMA work request from one NIC\'s QP to another\'s, to or from an MR',
    fields: {
      verb: { kind: { type: 'enum', values: RDMA_VERBS }, required: true, doc: 'WRITE, READ or SEND' },
      from: { kind: DEVICE, required: true, doc: 'the NIC that posts' },
      to: { kind: DEVICE, required: true, doc: 'the NIC of the peer QP' },
      mr: { kind: ref('mr'), required: true, doc: 'the remote MR (WRITE, READ) or the receive MR (SEND)' },
      offset: { kind: SIZE, doc: 'offset in the MR (default 0)' },
      length: { kind: SIZE, required: true, doc: 'bytes' },
      pattern: { kind: { type: 'pattern' }, doc: 'what WRITE and SEND send (default counter)' },
    },
  },
  readBack: {
    doc: 'read device memory back and return its bytes (compare with expect: { bytes })',
    fields: {
      buffer: { kind: ref('buffer', 'va', 'mr', 'mmap'), required: true, doc: 'what to read' },
      offset: { kind: SIZE, doc: 'offset (default 0)' },
      length: { kind: SIZE, required: true, doc: 'bytes' },
    },
  },
  mmap: {
    doc: 'mmap a dma-buf fd into the process',
    produces: 'mmap',
    fields: {
      fd: { kind: ref('fd'), required: true, doc: 'the dma-buf fd' },
      offset: { kind: SIZE, doc: 'offset (default 0)' },
      length: { kind: SIZE, doc: 'bytes (default: the whole buffer)' },
      prot: { kind: { type: 'flags', values: MMAP_PROT }, doc: 'PROT_* without the prefix (default READ|WRITE)' },
    },
  },
  unmap: {
    doc: 'undo a map (device VA), an mmap, or a register (ibv_dereg_mr)',
    fields: { target: { kind: ref('va', 'mmap', 'mr'), required: true, doc: 'what to undo' } },
  },
  gpuAlloc: {
    doc: 'create a GPU buffer object (amdgpu-like) in VRAM or GTT',
    produces: 'buffer',
    fields: {
      device: { kind: DEVICE, required: true, doc: 'the GPU' },
      size: { kind: SIZE, required: true, doc: 'bytes' },
      domain: { kind: { type: 'enum', values: ['VRAM', 'GTT'] }, required: true, doc: 'where it starts' },
    },
  },
  pressure: {
    doc: 'GPU memory pressure: evict unpinned VRAM buffers to GTT (move_notify to every importer)',
    fields: {
      device: { kind: DEVICE, required: true, doc: 'the GPU' },
      bytes: { kind: SIZE, doc: 'stop after this much (default: everything evictable)' },
    },
  },
  vfioExport: {
    doc: 'export a range of a vfio-pci device BAR as a dma-buf (VFIO_DEVICE_FEATURE_DMA_BUF): an fd',
    produces: 'fd',
    fields: {
      device: VFIO_DEVICE,
      ...BAR_RANGE,
    },
  },
  reset: {
    doc: 'reset a vfio-pci device: its dma-bufs are revoked (move_notify) until restore',
    fields: { device: VFIO_DEVICE },
  },
  restore: {
    doc: 'restore a vfio-pci device (memory decode on, D0): its dma-bufs are usable again',
    fields: { device: VFIO_DEVICE },
  },
  sweep: {
    doc: 'a bandwidth/latency sweep (like p2pBandwidthLatencyTest or ib_write_bw): `from` DMAs into the memory BAR of `to` (or system RAM) at sizes from `min` to `max`, each transfer timed on the virtual clock',
    fields: {
      from: { kind: DEVICE, required: true, doc: 'the device whose DMA engine moves the bytes' },
      to: { kind: { type: 'string' }, required: true, doc: 'the device whose largest memory BAR receives them, or `ram`' },
      min: { kind: SIZE, doc: 'smallest size (default 4K)' },
      max: { kind: SIZE, doc: 'largest size (default 64M)' },
      factor: { kind: { type: 'int', min: 2, max: 16 }, doc: 'size step between rows (default 4)' },
    },
  },
  readBar: {
    doc: 'read BAR memory of a device (what the device holds there)',
    fields: {
      device: { kind: DEVICE, required: true, doc: 'the device' },
      ...BAR_RANGE,
    },
  },
  attach: {
    doc: 'a kernel importer attaches to a dma-buf: static (dma_buf_attach) or dynamic with allow_peer2peer',
    produces: 'attachment',
    fields: {
      importer: { kind: DEVICE, required: true, doc: 'the importing device' },
      fd: { kind: ref('fd'), required: true, doc: 'the dma-buf fd' },
      dynamic: { kind: { type: 'bool' }, doc: 'dynamic importer with allow_peer2peer and move_notify (default false: static)' },
    },
  },
  mapAttachment: {
    doc: 'dma_buf_map_attachment (bidirectional), showing the sg_table and the IOMMU mappings',
    fields: { attachment: { kind: ref('attachment'), required: true, doc: 'what attach made' } },
  },
  detach: {
    doc: 'unmap what mapAttachment mapped, then dma_buf_detach',
    fields: { attachment: { kind: ref('attachment'), required: true, doc: 'what attach made' } },
  },
  close: {
    doc: 'close a dma-buf fd',
    fields: { fd: { kind: ref('fd'), required: true, doc: 'the fd' } },
  },
};

/** Fields every step may have besides its op's. */
export const COMMON_FIELDS = ['op', 'expect'] as const;

/**
 * Adds (or replaces) an op; the lead's driver ops use this to extend the vocabulary.
 * @throws Error (not a SimError: a programming mistake) for a bad op name or a field named
 *   `op`, `expect` or `as`.
 */
export function defineOp(name: string, spec: OpSpec): void {
  if (!/^[a-zA-Z][a-zA-Z0-9_]*$/.test(name)) throw new Error(`defineOp: bad op name '${name}'`);
  for (const f of Object.keys(spec.fields)) {
    if ((COMMON_FIELDS as readonly string[]).includes(f) || f === 'as') throw new Error(`defineOp: field '${f}' of op '${name}' is reserved`);
  }
  OP_SPECS[name] = spec;
}

/** Typed arguments of the built-in ops, as handlers receive them. */
export interface OpArgs {
  note: { text: string };
  alloc: { device: string; size: bigint };
  free: { buffer: string };
  map: { buffer: string; address?: bigint };
  export: { buffer: string; offset?: bigint; length?: bigint; flags?: string[] };
  register: { nic: string; fd: string; offset?: bigint; length: bigint; iova?: bigint; access?: string[]; kind?: 'odp' | 'pinned' };
  post: { verb: (typeof RDMA_VERBS)[number]; from: string; to: string; mr: string; offset?: bigint; length: bigint; pattern?: Pattern };
  readBack: { buffer: string; offset?: bigint; length: bigint };
  mmap: { fd: string; offset?: bigint; length?: bigint; prot?: string[] };
  unmap: { target: string };
  close: { fd: string };
  gpuAlloc: { device: string; size: bigint; domain: 'VRAM' | 'GTT' };
  pressure: { device: string; bytes?: bigint };
  vfioExport: { device: string; bar?: number; offset?: bigint; length: bigint };
  reset: { device: string };
  restore: { device: string };
  sweep: { from: string; to: string; min?: bigint; max?: bigint; factor?: number };
  readBar: { device: string; bar?: number; offset?: bigint; length: bigint };
  attach: { importer: string; fd: string; dynamic?: boolean };
  mapAttachment: { attachment: string };
  detach: { attachment: string };
}

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
}

/** One act of a validated scenario: its own machine (profile, IOMMU, topology) and its steps. */
export interface Act {
  /** 0-based. */
  index: number;
  /** The act's title (the scenario name for a file with plain `steps`). */
  title: string;
  /** The kernel profile its machine follows. */
  profile: KernelProfileName;
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
