/**
 * Scenario and topology files as a person writes them (YAML or JSON), with every value's
 * position: a diagnostic names the file, the line and column, the field path and the problem,
 *
 *   seed.yaml:14:7: steps[3].nic: unknown device 'nic9' (devices: gaudi0, nic0, nic1)
 *
 * JSON is read by a strict scanner (so a JSON file with a YAML-only construct is still an
 * error), then by the YAML parser for positions (JSON is YAML 1.2).
 */
import { SimError } from '../index.js';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

/** A path to a value: keys and list indices from the document root. */
export type Path = readonly (string | number)[];

/** One problem in a scenario or topology file, at its place. */
export interface Diagnostic {
  /** The file name (or `builtin:<name>`, `<inline>`). */
  file: string;
  /** 1-based; absent when the problem has no place in a file. */
  line?: number;
  /** 1-based column; absent with `line`. */
  col?: number;
  /** `steps[3].nic`; '' for the whole document. */
  path: string;
  /** The problem, for people. */
  message: string;
}

/** ['steps', 3, 'nic'] -> 'steps[3].nic'. */
export function formatPath(path: Path): string {
  let s = '';
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s === '' ? k : `.${k}`;
  return s;
}

/** 'a.b[2].c' -> ['a', 'b', 2, 'c'] (the inverse of formatPath for plain keys). */
export function parsePath(s: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** 'file:line:col: path: message', as compilers print it. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line !== undefined ? `${d.file}:${d.line}:${d.col ?? 1}` : d.file;
  return `${where}: ${d.path ? `${d.path}: ` : ''}${d.message}`;
}

/**
 * A file that could not be read, parsed or validated, with one {@link Diagnostic} per problem: a
 * {@link SimError} with code EINVAL. The CLI exits with status 2.
 */
export class ScenarioError extends SimError {
  /** Every problem found, in the order found; the message has them one a line. */
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    // A SimError like every other error of the package (EINVAL: the input is bad); its message
    // is the diagnostics alone, each pointing at file:line:column.
    super('EINVAL', 'scenario', 'invalid scenario');
    this.message = diagnostics.map(formatDiagnostic).join('\n');
    this.name = 'ScenarioError';
    this.diagnostics = diagnostics;
  }
}

/** The syntax of a scenario or topology text. */
export type SourceFormat = 'yaml' | 'json';

/** The format from a file name: .json is JSON, anything else YAML. */
export function formatOf(file: string): SourceFormat {
  return /\.json$/i.test(file) ? 'json' : 'yaml';
}

function lineColOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, col: offset - start + 1 };
}

/**
 * Where a JSON text first breaks the grammar (RFC 8259), or null when it is valid. Node 20's
 * JSON.parse does not say where.
 */
export function jsonSyntaxError(text: string): { offset: number; message: string } | null {
  let i = 0;
  const n = text.length;
  class Stop {
    constructor(readonly offset: number, readonly message: string) {}
  }
  const ws = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const what = (): string => (i >= n ? 'the end of the file' : `'${text[i]}'`);
  const stop = (msg: string): never => {
    throw new Stop(i, msg);
  };
  const str = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= n) stop('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) stop('control character in a string (write \\n, \\t, ...)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) stop('bad \\u escape');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else stop('bad escape in a string');
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') stop(`expected a key in double quotes, found ${what()}`);
        str();
        ws();
        if (text[i] !== ':') stop(`expected ':' after the key, found ${what()}`);
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          ws();
          if (text[i] === '}') stop("trailing comma before '}'");
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        stop(`expected ',' or '}' after a value, found ${what()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          ws();
          if (text[i] === ']') stop("trailing comma before ']'");
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        stop(`expected ',' or ']' after a value, found ${what()}`);
      }
    }
    if (c === '"') return str();
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (m && m[0] !== '-' && m[0] !== '') {
      i += m[0].length;
      return;
    }
    for (const w of ['true', 'false', 'null']) {
      if (text.startsWith(w, i)) {
        i += w.length;
        return;
      }
    }
    stop(`expected a value, found ${what()}`);
  };
  try {
    value();
    ws();
    if (i < n) stop(`unexpected ${what()} after the end of the document`);
    return null;
  } catch (e) {
    if (e instanceof Stop) return { offset: e.offset, message: e.message };
    throw e;
  }
}

/** How deep lists and maps may nest in a scenario or topology file (real ones nest under 10). */
export const MAX_NESTING = 64;

/**
 * Where a text first nests lists or maps deeper than {@link MAX_NESTING}, or null: an iterative
 * scan run before any parser (the JSON scanner and the YAML composer recurse per level), so a
 * file nested thousands deep is a diagnostic, never a stack overflow. It counts flow brackets
 * outside strings and comments and, for YAML, block levels by indentation plus the compact
 * `- ` / `? ` indicators that open a level on the same line.
 */
export function nestingTooDeep(text: string, format: SourceFormat): number | null {
  const yaml = format === 'yaml';
  const n = text.length;
  const indents: number[] = [];
  let flow = 0;
  let i = 0;
  let lineStart = true;
  while (i < n) {
    if (yaml && lineStart && flow === 0) {
      let j = i;
      while (j < n && text[j] === ' ') j++;
      const c = text[j];
      if (c !== undefined && c !== '\n' && c !== '\r' && c !== '#') {
        const indent = j - i;
        while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
        indents.push(indent);
        if (indents.length > MAX_NESTING) return j;
        let compact = 0;
        while ((text[j] === '-' || text[j] === '?') && (text[j + 1] === ' ' || text[j + 1] === '\t')) {
          if (indents.length + ++compact > MAX_NESTING) return j;
          j += 2;
          while (text[j] === ' ' || text[j] === '\t') j++;
        }
      }
      i = j;
      lineStart = false;
      continue;
    }
    const c = text[i]!;
    if (c === '\n') {
      lineStart = true;
      i++;
    } else if (c === '"' || (yaml && c === "'" && (i === 0 || /[\s[{,:]/.test(text[i - 1]!)))) {
      // A quoted string: skip to its end (backslash escapes in "...", '' in '...').
      i++;
      while (i < n) {
        if (text[i] === c) {
          if (c === "'" && text[i + 1] === "'") { i += 2; continue; }
          i++;
          break;
        }
        i += c === '"' && text[i] === '\\' ? 2 : 1;
      }
    } else if (yaml && c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      while (i < n && text[i] !== '\n') i++;
    } else {
      if (c === '[' || c === '{') {
        if (++flow + (yaml ? indents.length : 0) > MAX_NESTING) return i;
      } else if ((c === ']' || c === '}') && flow > 0) flow--;
      i++;
    }
  }
  return null;
}

/** A short rendering of an exception from a parser for a diagnostic. */
function problemOf(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const first = m.split('\n')[0]!;
  return first.length > 120 ? `${first.slice(0, 120)}...` : first;
}

/**
 * A document parsed ahead of time (a built-in scenario, at build time): its plain value and the
 * position of every node, as {@link SourceDoc.locate} gives them, keyed by JSON.stringify(path)
 * (`keys` for the positions of map keys).
 */
export interface PreparsedDoc {
  readonly value: unknown;
  readonly values: Readonly<Record<string, readonly [number, number]>>;
  readonly keys: Readonly<Record<string, readonly [number, number]>>;
}

/** A parsed document: its plain value and the positions of its nodes. */
export class SourceDoc {
  private constructor(
    /** The file name diagnostics carry. */
    readonly file: string,
    /** The source text. */
    readonly text: string,
    /** The document as plain JavaScript values. */
    readonly value: unknown,
    private readonly _doc: Document.Parsed | null,
    private readonly _lines: LineCounter | null,
    private readonly _pre: PreparsedDoc | null = null,
  ) {}

  /**
   * The document of `text` from its parse made ahead of time (no parser runs): the value and the
   * positions `pre` holds, which must be those of `text` (a test checks the built-in ones). The
   * document takes `pre` as its own.
   */
  static fromPreparsed(text: string, file: string, pre: PreparsedDoc): SourceDoc {
    return new SourceDoc(file, text, pre.value, null, null, pre);
  }

  /**
   * Parses YAML or JSON.
   * @throws {@link ScenarioError} for a syntax error (or duplicate key), with its line and column.
   */
  static parse(text: string, file: string, format: SourceFormat = formatOf(file)): SourceDoc {
    if (typeof text !== 'string') throw new ScenarioError([{ file, path: '', message: 'the text is not a string' }]);
    const deep = nestingTooDeep(text, format);
    if (deep !== null) {
      const { line, col } = lineColOf(text, deep);
      throw new ScenarioError([{ file, line, col, path: '', message: `lists and maps nest more than ${MAX_NESTING} deep` }]);
    }
    try {
      return SourceDoc.parseChecked(text, file, format);
    } catch (e) {
      if (e instanceof ScenarioError) throw e;
      // The parser's own limits (alias expansion, a stack it still ran out of): the file's fault.
      const alias = e instanceof ReferenceError && /alias/i.test(e.message);
      const message = alias
        ? 'too many alias expansions (a YAML alias bomb?): at most 1000'
        : e instanceof RangeError ? 'nested too deep for the parser' : problemOf(e);
      // An alias bomb points at its first alias.
      const first = alias ? /(?:^|[\s,[{:])\*[^\s,\]}]/m.exec(text) : null;
      const pos = first ? lineColOf(text, first.index + first[0].indexOf('*')) : undefined;
      throw new ScenarioError([{ file, ...(pos ?? {}), path: '', message: `not valid ${format === 'json' ? 'JSON' : 'YAML'}: ${message}` }]);
    }
  }

  /** The parse itself, once the text passed the nesting check. */
  private static parseChecked(text: string, file: string, format: SourceFormat): SourceDoc {
    if (format === 'json') {
      const bad = jsonSyntaxError(text);
      if (bad) {
        const { line, col } = lineColOf(text, bad.offset);
        throw new ScenarioError([{ file, line, col, path: '', message: `not valid JSON: ${bad.message}` }]);
      }
    }
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      throw new ScenarioError(doc.errors.slice(0, 5).map((e) => {
        const pos = e.linePos?.[0];
        const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return { file, ...(pos ? { line: pos.line, col: pos.col } : {}), path: '', message: `not valid ${format === 'json' ? 'JSON' : 'YAML'}: ${message}` };
      }));
    }
    const value = doc.toJS({ maxAliasCount: 1000 }) as unknown;
    return new SourceDoc(file, text, value, doc, lines);
  }

  /**
   * The position of the value at `path` (or of its key, with at = 'key'). When the path goes
   * past what the document has, the position of the deepest node that exists.
   */
  locate(path: Path, at: 'key' | 'value' = 'value'): { line: number; col: number } | undefined {
    if (this._pre) return preparsedPos(this._pre, path, at);
    let node: unknown = this._doc!.contents;
    let pos = this._pos(node);
    for (let i = 0; i < path.length; i++) {
      const k = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === k);
        if (!pair) return pos;
        if (last && at === 'key') return this._pos(pair.key) ?? pos;
        node = pair.value;
        pos = this._pos(node) ?? this._pos(pair.key) ?? pos;
      } else if (isSeq(node) && typeof k === 'number') {
        node = node.items[k];
        if (node === undefined) return pos;
        pos = this._pos(node) ?? pos;
      } else return pos;
    }
    return pos;
  }

  /** The document's value and the position of each of its nodes (and map keys), for {@link SourceDoc.fromPreparsed}. */
  toPreparsed(): PreparsedDoc {
    const values: Record<string, [number, number]> = {};
    const keys: Record<string, [number, number]> = {};
    const visit = (v: unknown, path: (string | number)[]): void => {
      const at = this.locate(path);
      if (at) values[JSON.stringify(path)] = [at.line, at.col];
      if (Array.isArray(v)) v.forEach((x, i) => visit(x, [...path, i]));
      else if (typeof v === 'object' && v !== null) {
        for (const [k, x] of Object.entries(v)) {
          const kp = this.locate([...path, k], 'key');
          if (kp) keys[JSON.stringify([...path, k])] = [kp.line, kp.col];
          visit(x, [...path, k]);
        }
      }
    };
    visit(this.value, []);
    return { value: this.value, values, keys };
  }

  /** A diagnostic at `path`, with this file's name and the position. */
  diag(path: Path, message: string, at: 'key' | 'value' = 'value', prefix: Path = []): Diagnostic {
    const pos = this.locate(path, at);
    return { file: this.file, ...(pos ?? {}), path: formatPath([...prefix, ...path]), message };
  }

  private _pos(node: unknown): { line: number; col: number } | undefined {
    const range = (node as Node | null | undefined)?.range;
    return range ? this._lines!.linePos(range[0]) : undefined;
  }
}

/** locate() over a pre-parsed document: the position of the path, or of its deepest existing prefix. */
function preparsedPos(pre: PreparsedDoc, path: Path, at: 'key' | 'value'): { line: number; col: number } | undefined {
  if (at === 'key') {
    const k = pre.keys[JSON.stringify(path)];
    if (k) return { line: k[0], col: k[1] };
  }
  for (let n = path.length; n >= 0; n--) {
    const v = pre.values[JSON.stringify(n === path.length ? path : path.slice(0, n))];
    if (v) return { line: v[0], col: v[1] };
  }
  return undefined;
}
