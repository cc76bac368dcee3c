/**
 * A small JSON Schema (2020-12) checker for the keywords our schemas use, to test the shipped
 * schemas without a dependency. An unknown keyword throws, so a schema cannot pass by using
 * something this does not check.
 */
type Schema = Record<string, unknown> | boolean;

const IGNORED = new Set(['$schema', '$id', 'title', 'description', '$defs']);

export class SchemaChecker {
  constructor(private readonly _docs: Record<string, Schema>) {}

  /** Problems with `value` against the document `name` ('' when it conforms). */
  check(name: string, value: unknown): string[] {
    const out: string[] = [];
    this._check(this._docs[name]!, name, value, '$', out);
    return out;
  }

  private _resolve(ref: string, doc: string): { schema: Schema; doc: string } {
    const [file, frag] = ref.split('#');
    const d = file ? file : doc;
    let s = this._docs[d];
    if (s === undefined) throw new Error(`unknown schema document '${d}'`);
    for (const part of (frag ?? '').split('/').filter(Boolean)) s = (s as Record<string, Schema>)[part]!;
    if (s === undefined) throw new Error(`unresolved $ref ${ref}`);
    return { schema: s, doc: d };
  }

  private _check(schema: Schema, doc: string, v: unknown, at: string, out: string[]): void {
    if (schema === true) return;
    if (schema === false) {
      out.push(`${at}: not allowed`);
      return;
    }
    for (const [k, x] of Object.entries(schema)) {
      if (IGNORED.has(k)) continue;
      switch (k) {
        case '$ref': {
          const r = this._resolve(x as string, doc);
          this._check(r.schema, r.doc, v, at, out);
          break;
        }
        case 'type': {
          const types = Array.isArray(x) ? x : [x];
          if (!types.some((t) => typeOk(t as string, v))) out.push(`${at}: expected ${types.join('|')}, got ${JSON.stringify(v)}`);
          break;
        }
        case 'enum':
          if (!(x as unknown[]).some((e) => e === v)) out.push(`${at}: ${JSON.stringify(v)} not in ${JSON.stringify(x)}`);
          break;
        case 'const':
          if (x !== v) out.push(`${at}: expected ${JSON.stringify(x)}, got ${JSON.stringify(v)}`);
          break;
        case 'pattern':
          if (typeof v === 'string' && !new RegExp(x as string, 'u').test(v)) out.push(`${at}: '${v}' does not match ${String(x)}`);
          break;
        case 'minLength':
          if (typeof v === 'string' && v.length < (x as number)) out.push(`${at}: shorter than ${String(x)}`);
          break;
        case 'minimum':
          if (typeof v === 'number' && v < (x as number)) out.push(`${at}: ${v} < ${String(x)}`);
          break;
        case 'maximum':
          if (typeof v === 'number' && v > (x as number)) out.push(`${at}: ${v} > ${String(x)}`);
          break;
        case 'minItems':
          if (Array.isArray(v) && v.length < (x as number)) out.push(`${at}: fewer than ${String(x)} items`);
          break;
        case 'items':
          if (Array.isArray(v)) v.forEach((e, i) => this._check(x as Schema, doc, e, `${at}[${i}]`, out));
          break;
        case 'required':
          if (isObj(v)) for (const r of x as string[]) if (!(r in v)) out.push(`${at}: '${r}' is required`);
          break;
        case 'properties':
          if (isObj(v)) for (const [p, ps] of Object.entries(x as Record<string, Schema>)) if (p in v) this._check(ps, doc, v[p], `${at}.${p}`, out);
          break;
        case 'additionalProperties':
          if (isObj(v)) {
            const known = Object.keys((schema as Record<string, unknown>)['properties'] ?? {});
            for (const [p, pv] of Object.entries(v)) if (!known.includes(p)) this._check(x as Schema, doc, pv, `${at}.${p}`, out);
          }
          break;
        case 'anyOf':
        case 'oneOf': {
          const results = (x as Schema[]).map((s) => {
            const o: string[] = [];
            this._check(s, doc, v, at, o);
            return o;
          });
          const passing = results.filter((r) => r.length === 0).length;
          if (passing === 0) out.push(`${at}: matches none of ${k} (${results.map((r) => r[0]).join('; ')})`);
          else if (k === 'oneOf' && passing > 1) out.push(`${at}: matches ${passing} of oneOf`);
          break;
        }
        default:
          throw new Error(`schema keyword '${k}' is not supported by this checker (at ${at})`);
      }
    }
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'object': return isObj(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'boolean': return typeof v === 'boolean';
    case 'null': return v === null;
    default: throw new Error(`unknown type ${t}`);
  }
}
