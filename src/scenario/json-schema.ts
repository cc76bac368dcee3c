/**
 * JSON Schemas (draft 2020-12) of the two file formats, for editors: a `$schema` key (JSON) or a
 * yaml-language-server modeline (YAML) pointing at docs/schema/*.schema.json gives completion
 * and hover text. The scenario schema is generated from the op table (OP_SPECS), so it names
 * every op and field the validator knows; test/scenario/schema.test.ts checks that the shipped
 * files are this output and that they accept the built-in examples.
 *
 * The schemas describe the shape; the validator (validate.ts, parseTopology) stays the judge of
 * meaning: device names that exist, `as:` names defined earlier, BAR sizes that are powers of two.
 */
import { ACS_BITS } from '../index.js';
import { CPU_VENDORS } from '../index.js';
import { KERNEL_RULE_VALUES } from '../index.js';
import { IOMMU_FAMILIES, OP_SPECS, PROFILES, type FieldKind } from './schema.js';

type Json = Record<string, unknown>;

/** 4096, "0x1000", "2M", "16G", "4KiB". */
const SIZE: Json = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', pattern: '^\\s*(0[xX][0-9a-fA-F]+|\\d+\\s*([kKmMgGtT](i?[bB])?)?)\\s*$' },
  ],
};
/** 4096, "0x1000". */
const INTEGER: Json = {
  anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^\\s*(0[xX][0-9a-fA-F]+|\\d+)\\s*$' }],
};

/** An integer in min..max, or a string of one ("0x80"): parseTopology reads both. */
const intLike = (minimum: number, maximum: number): Json => ({
  anyOf: [{ type: 'integer', minimum, maximum }, { type: 'string', pattern: '^\\s*(0[xX][0-9a-fA-F]+|\\d+)\\s*$' }],
});

const PATTERN: Json = {
  description: 'A byte pattern: a byte (0xab), zero, counter, { fill }, { counter, step? }, { text }, { hex } or { random }',
  anyOf: [
    { type: 'integer', minimum: 0, maximum: 255, description: 'every byte this value' },
    { enum: ['counter', 'zero'] },
    { type: 'object', properties: { fill: { type: 'integer', minimum: 0, maximum: 255 } }, required: ['fill'], additionalProperties: false },
    {
      type: 'object', properties: { counter: { type: 'integer', minimum: 0, maximum: 255 }, step: { type: 'integer', minimum: 0, maximum: 255 } },
      required: ['counter'], additionalProperties: false,
    },
    { type: 'object', properties: { text: { type: 'string', minLength: 1 } }, required: ['text'], additionalProperties: false },
    { type: 'object', properties: { hex: { type: 'string', pattern: '^[0-9a-fA-Fx\\s:_-]+$' } }, required: ['hex'], additionalProperties: false },
    { type: 'object', properties: { random: { type: 'integer', minimum: 0, maximum: 4294967295 } }, required: ['random'], additionalProperties: false },
  ],
};

function fieldSchema(k: FieldKind, doc: string): Json {
  const d = { description: doc };
  switch (k.type) {
    case 'device': return { ...d, type: 'string', minLength: 1 };
    case 'ref': return { ...d, type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$' };
    case 'size': return { ...d, ...SIZE };
    case 'address': return { ...d, ...INTEGER };
    case 'int': return { ...d, type: 'integer', minimum: k.min, maximum: k.max };
    case 'string': return { ...d, type: 'string' };
    case 'enum': return { ...d, enum: [...k.values] };
    case 'flags': return {
      ...d,
      anyOf: [
        { type: 'array', items: { enum: [...k.values] } },
        { type: 'string', pattern: `^\\s*(${k.values.join('|')})(\\s*\\|\\s*(${k.values.join('|')}))*\\s*$` },
      ],
    };
    case 'pattern': return { ...d, ...PATTERN };
    case 'bool': return { ...d, type: 'boolean' };
  }
}

/** The scenario file format (docs/scenario-format.md). */
export function scenarioJsonSchema(): Record<string, unknown> {
  const ops = Object.entries(OP_SPECS).map(([name, spec]) => {
    const properties: Json = { op: { const: name, description: spec.doc } };
    for (const [f, fs] of Object.entries(spec.fields)) properties[f] = fieldSchema(fs.kind, fs.doc);
    if (spec.produces) properties['as'] = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$', description: `names the ${spec.produces} this step makes, for later steps` };
    properties['expect'] = { $ref: '#/$defs/expect' };
    return {
      title: name, description: spec.doc, type: 'object', properties,
      required: ['op', ...Object.entries(spec.fields).filter(([, f]) => f.required).map(([f]) => f)], additionalProperties: false,
    };
  });
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'dmabuf-sim scenario',
    description: 'A scenario for `dmabuf-sim run`: a machine (topology, IOMMU, kernel profile) and steps with expectations. See docs/scenario-format.md.',
    type: 'object',
    properties: {
      $schema: { type: 'string' },
      name: { type: 'string', minLength: 1, description: 'the scenario name' },
      description: { type: 'string', description: 'printed under the name' },
      profile: { $ref: '#/$defs/profile' },
      dmaBufRules: { $ref: '#/$defs/dmaBufRules' },
      iommu: { $ref: '#/$defs/iommu' },
      topology: { $ref: '#/$defs/topology' },
      steps: { $ref: '#/$defs/steps' },
      acts: {
        type: 'array', minItems: 1, description: 'acts, each on a machine of its own (instead of steps)',
        items: {
          type: 'object',
          properties: {
            title: { type: 'string', minLength: 1 }, topology: { $ref: '#/$defs/topology' }, iommu: { $ref: '#/$defs/iommu' },
            profile: { $ref: '#/$defs/profile' }, dmaBufRules: { $ref: '#/$defs/dmaBufRules' }, steps: { $ref: '#/$defs/steps' },
          },
          required: ['title', 'steps'], additionalProperties: false,
        },
      },
    },
    required: ['name'],
    oneOf: [{ required: ['steps'] }, { required: ['acts'] }],
    additionalProperties: false,
    $defs: {
      profile: { enum: [...PROFILES, 5.15], description: 'kernel behaviour profile (default 6.x)' },
      dmaBufRules: {
        type: 'object', description: "per-rule overrides of the profile's DMA-BUF rules, e.g. { attachTimeMapping: false } (DB-09); an act's override the top level's rule by rule",
        properties: Object.fromEntries(Object.entries(KERNEL_RULE_VALUES).map(([k, vals]) => [k, { enum: [...vals] }])),
        additionalProperties: false,
      },
      iommu: {
        description: 'the IOMMU of every host bridge; null or none: DMA is direct',
        anyOf: [
          { type: 'null' },
          { const: 'none' },
          {
            type: 'object', properties: { family: { enum: [...IOMMU_FAMILIES] }, strict: { type: 'boolean', description: 'strict invalidation (default true) or lazy' }, scalableMode: { type: 'boolean', description: 'VT-d scalable mode, which PASIDs need (default false; vtd only)' } },
            required: ['family'], additionalProperties: false,
          },
        ],
      },
      topology: {
        description: 'builtin (the seed machine), builtin:NAME, a topology file (relative to this file), or a description inline',
        anyOf: [{ type: 'string', minLength: 1 }, { $ref: 'topology.schema.json' }],
      },
      steps: { type: 'array', items: { $ref: '#/$defs/step' } },
      step: { oneOf: ops },
      expect: {
        description: 'what the step must do: ok (the default), fail with an errno, return bytes, or return a result',
        anyOf: [
          { const: 'ok' },
          {
            type: 'object',
            properties: {
              errno: { anyOf: [{ type: 'string', pattern: '^E[A-Z0-9]+$' }, { type: 'array', minItems: 1, items: { type: 'string', pattern: '^E[A-Z0-9]+$' } }] },
              bytes: PATTERN,
              result: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean', 'null'] } },
            },
            additionalProperties: false,
          },
        ],
      },
    },
  };
}

/** The topology description format (docs/topology-format.md), as parseTopology reads it. */
export function topologyJsonSchema(): Record<string, unknown> {
  const acs = { anyOf: [{ type: 'array', items: { enum: Object.keys(ACS_BITS) } }, INTEGER], description: 'ACS control bits enabled (absent: no ACS capability)' };
  const bar = {
    type: 'object',
    properties: {
      index: intLike(0, 5), type: { enum: ['mem', 'io'] }, size: { ...SIZE, description: 'a power of two ("32G")' },
      is64: { type: 'boolean' }, prefetchable: { type: 'boolean' }, cpuAddress: INTEGER,
    },
    required: ['size'], additionalProperties: false,
  };
  const fn: Json = {
    name: { type: 'string', minLength: 1 }, function: intLike(0, 7),
    vendor: { ...INTEGER, description: 'PCI vendor ID ("0x15b3")' }, device: { ...INTEGER, description: 'PCI device ID' },
    acs, bars: { type: 'array', items: bar }, nonMappableBars: { type: 'boolean' }, driver: { type: 'string', minLength: 1 },
  };
  const slot = intLike(0, 31);
  const port = { type: 'object', properties: { ...fn, slot }, additionalProperties: false };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'dmabuf-sim topology',
    description: 'A PCI topology for dmabuf-sim: host bridges with root ports, switches, endpoints. See docs/topology-format.md.',
    type: 'object',
    properties: {
      $schema: { type: 'string' },
      comment: { type: 'string' },
      cpu: {
        type: 'object', properties: { vendor: { enum: [...CPU_VENDORS] }, family: INTEGER }, required: ['vendor', 'family'], additionalProperties: false,
        description: 'the CPU (the P2PDMA whitelist admits AMD Zen and later, family >= 0x17)',
      },
      hostBridges: {
        type: 'array', minItems: 1,
        items: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1 }, segment: intLike(0, 65535), rootBus: intLike(0, 255),
            busOffset: { anyOf: [SIZE, { type: 'string', pattern: '^\\s*-' }, { type: 'integer' }], description: 'bus address minus CPU address of BARs below it' },
            hostDevice: { anyOf: [{ type: 'null' }, port], description: 'the device at 00.0 of the root bus: what the P2PDMA whitelist reads' },
            rootPorts: { type: 'array', items: port },
          },
          required: ['name'], additionalProperties: false,
        },
      },
      switches: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1 }, parent: { type: 'string', minLength: 1, description: 'a root port or a downstream port' },
            vendor: INTEGER, device: INTEGER, upstream: { type: 'object', properties: fn, additionalProperties: false },
            downstream: { anyOf: [{ type: 'array', minItems: 1, items: port }, { type: 'integer', minimum: 1, maximum: 32 }] },
          },
          required: ['name', 'parent', 'downstream'], additionalProperties: false,
        },
      },
      endpoints: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            ...fn, parent: { type: 'string', minLength: 1, description: 'a root port, a downstream port, or a host bridge (an RCiEP)' }, slot,
            functions: { type: 'array', minItems: 1, items: { type: 'object', properties: fn, additionalProperties: false } },
          },
          required: ['name', 'parent'], additionalProperties: false,
        },
      },
      platformDevices: {
        type: 'array',
        items: {
          type: 'object', properties: { name: { type: 'string', minLength: 1 }, parent: { type: ['string', 'null'] }, driver: { type: 'string' } },
          required: ['name'], additionalProperties: false,
        },
      },
      fabric: {
        type: 'object', description: 'link attributes and root-complex P2P profiles for the performance model (docs/performance-model.md)',
        properties: {
          links: {
            type: 'object', description: 'link capability per PCI function name',
            additionalProperties: {
              type: 'object', additionalProperties: false,
              properties: {
                gen: { enum: [1, 2, 3, 4, 5, 6] }, width: { enum: [1, 2, 4, 8, 16] },
                mps: { enum: [128, 256, 512, 1024, 2048, 4096] }, mrrs: { enum: [128, 256, 512, 1024, 2048, 4096] },
              },
            },
          },
          p2p: {
            type: 'object', description: 'P2P profile per host bridge name',
            additionalProperties: {
              type: 'object', additionalProperties: false,
              properties: { bandwidthGBps: { type: 'number', exclusiveMinimum: 0 }, latencyNs: { type: 'integer', minimum: 0 } },
            },
          },
        },
        additionalProperties: false,
      },
    },
    required: ['hostBridges'],
    additionalProperties: false,
  };
}
