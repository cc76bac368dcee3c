/**
 * One definition per scenario op: OP_SPECS (what validation, the JSON Schema and help read) and
 * the handlers the default runner registers come from the same defineOp definitions, and a
 * handler's step.args type is derived from its fields.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  BUILTIN_OPS, OP_SPECS, ScenarioRunner, createDefaultRunner, type ArgsOf, type OpArgs, type Pattern,
} from '../../src/scenario/index.js';
import { defineOp } from '../../src/scenario/op.js';

describe('scenario op definitions', () => {
  it('OP_SPECS lists every definition, with its doc, fields and as-kind, in definition order', () => {
    expect(Object.keys(OP_SPECS)).toEqual(BUILTIN_OPS.map((d) => d.name));
    for (const d of BUILTIN_OPS) {
      expect(OP_SPECS[d.name], d.name).toEqual({ doc: d.doc, fields: d.fields, ...(d.produces ? { produces: d.produces } : {}) });
    }
    expect(Object.isFrozen(OP_SPECS)).toBe(true);
  });

  it('the default runner registers the handler of every definition; a plain runner only the generic ones', () => {
    const r = createDefaultRunner();
    for (const d of BUILTIN_OPS) expect(r.hasOp(d.name), d.name).toBe(true);
    const plain = new ScenarioRunner();
    expect(BUILTIN_OPS.filter((d) => plain.hasOp(d.name)).map((d) => d.name)).toEqual(['note', 'sweep']);
  });

  it('defineOp refuses a bad name and the reserved field names', () => {
    const run = () => undefined;
    expect(() => defineOp({ name: '9lives', doc: '', fields: {}, run })).toThrow("bad op name '9lives'");
    for (const f of ['op', 'expect', 'as']) {
      expect(() => defineOp({ name: 'x', doc: '', fields: { [f]: { kind: { type: 'string' }, doc: '' } }, run })).toThrow(`field '${f}' of op 'x' is reserved`);
    }
  });

  it('step.args types follow the fields: required or optional, and each kind\'s value type', () => {
    expectTypeOf<OpArgs['post']>().toEqualTypeOf<ArgsOf<(typeof BUILTIN_OPS)[number] extends infer D ? D extends { name: 'post'; fields: infer F } ? F : never : never>>();
    expectTypeOf<OpArgs['post']['verb']>().toEqualTypeOf<'WRITE' | 'READ' | 'SEND'>();
    expectTypeOf<OpArgs['post']['pattern']>().toEqualTypeOf<Pattern | undefined>();
    expectTypeOf<OpArgs['alloc']>().toEqualTypeOf<{ device: string; size: bigint }>();
    expectTypeOf<OpArgs['export']['flags']>().toEqualTypeOf<('O_RDONLY' | 'O_WRONLY' | 'O_RDWR' | 'O_CLOEXEC')[] | undefined>();
    expectTypeOf<OpArgs['vfioExport']['bar']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<OpArgs['attach']['dynamic']>().toEqualTypeOf<boolean | undefined>();
    const d = defineOp({
      name: 'probe', doc: 'a test op',
      fields: { n: { kind: { type: 'int', min: 0, max: 3 }, required: true, doc: 'n' }, at: { kind: { type: 'address' }, doc: 'at' } },
      run: (step) => {
        expectTypeOf(step.args).toEqualTypeOf<{ n: number; at?: bigint }>();
        return { result: { n: step.args.n } };
      },
    });
    expect(d.name).toBe('probe');
  });
});
