/**
 * One public API, used by everyone: the reference drivers, the scenario runner and the examples
 * reach the rest of the package only through what it exports. A driver or scenario file may
 * import from its own layer and from the package's entries (src/index.ts = 'dmabuf-sim',
 * src/drivers/index.ts = 'dmabuf-sim/drivers'), nothing else; an example only from 'dmabuf-sim'
 * and its subpath entries. Nobody calls another module's underscore members.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ENTRIES = new Set(['src/index.ts', 'src/drivers/index.ts']);

function walk(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((e) => {
    const p = join(dir, e);
    return statSync(join(root, p)).isDirectory() ? walk(p) : /\.(ts|mjs)$/.test(e) ? [p] : [];
  });
}

/** Every module specifier of a file: import/export ... from '...', import('...'), import '...'. */
function specifiers(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
}

/** The repository path a relative specifier names ('./x.js' -> 'dir/x.ts'). */
const target = (file: string, spec: string) =>
  relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts').split('\\').join('/');

/** Imports of `layers`' files that reach outside them other than through a package entry. */
function outsideImports(...layers: string[]): string[] {
  const bad: string[] = [];
  for (const file of layers.flatMap(walk)) {
    for (const spec of specifiers(file)) {
      if (!spec.startsWith('.')) continue;
      const t = target(file, spec);
      if (layers.some((l) => t.startsWith(`${l}/`)) || ENTRIES.has(t)) continue;
      bad.push(`${file}: ${spec}`);
    }
  }
  return bad;
}

describe('one public API', () => {
  it('the reference drivers import only the package entries and their own layer', () => {
    expect(outsideImports('src/drivers')).toEqual([]);
  });

  it('the scenario runner (with its trace recorder) imports only the package entries and its own layer', () => {
    expect(outsideImports('src/scenario', 'src/trace')).toEqual([]);
  });

  it('the examples import only dmabuf-sim and its subpath entries', () => {
    const files = walk('examples');
    expect(files.length).toBeGreaterThanOrEqual(3);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    const allowed = new Set(Object.keys(pkg.exports).map((k) => k.replace(/^\./, 'dmabuf-sim')));
    for (const file of files) {
      for (const spec of specifiers(file)) {
        if (spec.startsWith('node:')) continue;
        expect(allowed.has(spec), `${file}: ${spec}`).toBe(true);
      }
    }
  });

  it('no module outside src/dma-buf, src/iommu, ... calls another module\'s underscore members', () => {
    const bad: string[] = [];
    for (const layer of ['src/drivers', 'src/scenario', 'src/machine', 'src/cli', 'src/web', 'examples']) {
      for (const file of walk(layer)) {
        const text = readFileSync(join(root, file), 'utf8');
        for (const m of text.matchAll(/([A-Za-z0-9_)\]]+)\._[a-z][A-Za-z0-9]*\s*\(/g)) {
          if (m[1] !== 'this') bad.push(`${file}: ${m[0]}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });
});
