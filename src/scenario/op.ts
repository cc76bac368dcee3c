/**
 * One definition per scenario op: its name, help line, fields (each with its kind, whether it is
 * required, and its help line), the kind of object its `as:` names, and its handler, in one
 * place. The handler's `step.args` type is derived from the field definitions (ArgsOf), so a
 * field added, renamed or made optional changes what the handler sees; the validator, the JSON
 * Schema generator and `dmabuf-sim help` read the same fields (schema.ts, OP_SPECS).
 *
 *   export const closeOp = defineOp({
 *     name: 'close', doc: 'close a dma-buf fd',
 *     fields: { fd: { kind: ref('fd'), required: true, doc: 'the fd' } },
 *     run: (step, ctx) => { ... step.args.fd ... },   // step.args: { fd: string }
 *   });
 *
 * This module has no runtime imports of the rest of the scenario layer (the op lists import it).
 */
import type { StepHandler } from './runner.js';
import { formatNs, renderSweep, runSweep, sweepSizes } from '../index.js';
import type { ObjectKind, Pattern } from './schema.js';

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

/** One scenario op as the validator and the schema generator see it: help line, fields, `as:` kind. */
export interface OpSpec {
  /** One line for `dmabuf-sim help`. */
  doc: string;
  /** The op's own fields by name (`op`, `expect` and `as` are common and not listed). */
  fields: Readonly<Record<string, FieldSpec>>;
  /** The kind of object `as:` names; absent: the op takes no `as:`. */
  produces?: ObjectKind;
}

/** The value validation gives a field of kind `K`. */
export type KindValue<K extends FieldKind> =
  K extends { type: 'device' | 'ref' | 'string' } ? string
    : K extends { type: 'size' | 'address' } ? bigint
      : K extends { type: 'int' } ? number
        : K extends { type: 'enum'; values: readonly (infer V)[] } ? V
          : K extends { type: 'flags'; values: readonly (infer V)[] } ? V[]
            : K extends { type: 'pattern' } ? Pattern
              : K extends { type: 'bool' } ? boolean
                : never;

/** The `step.args` of an op with fields `F`: required fields present, the others optional. */
export type ArgsOf<F extends Readonly<Record<string, FieldSpec>>> = (
  & { -readonly [N in keyof F as F[N] extends { required: true } ? N : never]: KindValue<F[N]['kind']> }
  & { -readonly [N in keyof F as F[N] extends { required: true } ? never : N]?: KindValue<F[N]['kind']> }
) extends infer A ? { [K in keyof A]: A[K] } : never;

/** An op's one definition: what OP_SPECS lists, plus its handler. */
export interface OpDefinition<N extends string = string, F extends Readonly<Record<string, FieldSpec>> = Readonly<Record<string, FieldSpec>>>
  extends OpSpec {
  readonly name: N;
  readonly fields: F;
  /** The handler the default runner registers; `step.args` is typed from `fields`. */
  readonly run: StepHandler<ArgsOf<F>>;
}

/** The `step.args` type of a definition. */
export type ArgsOfOp<D> = D extends OpDefinition<string, infer F> ? ArgsOf<F> : never;

/** Fields every step may have besides its op's. */
export const COMMON_FIELDS = ['op', 'expect'] as const;

/**
 * Defines an op. `const` inference keeps the field literals (required: true, enum values), which
 * is what types `run`'s `step.args`.
 * @throws Error (not a SimError: a programming mistake) for a bad op name or a field named
 *   `op`, `expect` or `as`.
 */
export function defineOp<const N extends string, const F extends Readonly<Record<string, FieldSpec>>>(def: {
  name: N;
  doc: string;
  produces?: ObjectKind;
  fields: F;
  run: StepHandler<ArgsOf<F>>;
}): OpDefinition<N, F> {
  if (!/^[a-zA-Z][a-zA-Z0-9_]*$/.test(def.name)) throw new Error(`defineOp: bad op name '${def.name}'`);
  for (const f of Object.keys(def.fields)) {
    if ((COMMON_FIELDS as readonly string[]).includes(f) || f === 'as') throw new Error(`defineOp: field '${f}' of op '${def.name}' is reserved`);
  }
  return Object.freeze({ ...def });
}

/** Field-kind shorthands for op definitions. */
export const ref = <const K extends ObjectKind[]>(...kinds: K) => ({ type: 'ref', kinds }) as const;
export const DEVICE = { type: 'device' } as const;
export const SIZE = { type: 'size' } as const;
export const ADDRESS = { type: 'address' } as const;
export const STRING = { type: 'string' } as const;
export const BOOL = { type: 'bool' } as const;
export const PATTERN = { type: 'pattern' } as const;
export const int = (min: number, max: number) => ({ type: 'int', min, max }) as const;
export const oneOf = <const V extends readonly string[]>(values: V) => ({ type: 'enum', values }) as const;
export const flags = <const V extends readonly string[]>(values: V) => ({ type: 'flags', values }) as const;

/** The generic ops (the runner registers their handlers itself): a note in the report. */
export const noteOp = defineOp({
  name: 'note',
  doc: 'a comment printed in the report',
  fields: { text: { kind: STRING, required: true, doc: 'the text' } },
  run: () => undefined,
});
/**
 * A bandwidth/latency sweep (like p2pBandwidthLatencyTest or ib_write_bw) on the virtual clock:
 * `from` DMAs into the memory BAR of `to` (or system RAM) at sizes from `min` to `max`.
 */
export const sweepOp = defineOp({
  name: 'sweep',
  doc: 'a bandwidth/latency sweep (like p2pBandwidthLatencyTest or ib_write_bw): `from` DMAs into the memory BAR of `to` (or system RAM) at sizes from `min` to `max`, each transfer timed on the virtual clock',
  fields: {
    from: { kind: DEVICE, required: true, doc: 'the device whose DMA engine moves the bytes' },
    to: { kind: STRING, required: true, doc: 'the device whose largest memory BAR receives them, or `ram`' },
    min: { kind: SIZE, doc: 'smallest size (default 4K)' },
    max: { kind: SIZE, doc: 'largest size (default 64M)' },
    factor: { kind: int(2, 16), doc: 'size step between rows (default 4)' },
  },
  run: (step, ctx) => {
    const a = step.args;
    const sweep = runSweep(ctx.machine, { from: a.from, to: a.to, sizes: sweepSizes(a.min ?? 4096n, a.max ?? 64n << 20n, a.factor ?? 4) });
    ctx.report.section({ title: 'sweep', lines: renderSweep(sweep), data: sweep });
    const peak = Math.max(...sweep.rows.map((x) => x.rateGBps));
    return {
      summary: `${sweep.rows.length} sizes, peak ${peak.toFixed(2)} GB/s, ${formatNs(sweep.rows[0]!.durationNs)} at ${sweep.rows[0]!.bytes} bytes`,
      result: { mapType: sweep.mapType, peakGBps: Number(peak.toFixed(2)), latencyNs: sweep.rows[0]!.durationNs },
    };
  },
});

export const GENERIC_OPS = [noteOp, sweepOp] as const;
