import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The reference drivers stand on the public API: outside src/drivers they import only the
 * package root (src/index.ts), and they call no other object's underscore members.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const drivers = join(root, 'src/drivers');
const entry = join(root, 'src/index.ts');

function files(): string[] {
  const out = [join(drivers, 'device.ts')];
  for (const d of ['accel', 'gpu', 'vfio']) {
    for (const f of readdirSync(join(drivers, d))) if (f.endsWith('.ts')) out.push(join(drivers, d, f));
  }
  return out;
}

/** Import and re-export specifiers of a module (static and dynamic). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

/** Code without comments and string contents, for member scans. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '').replace(/(['"`])(?:\\.|(?!\1)[^\\])*\1/g, '""');
}

describe('reference drivers use only the public API (accel, gpu, vfio)', () => {
  const list = files();

  it('finds the driver files', () => {
    expect(list.length).toBeGreaterThanOrEqual(10);
  });

  it('import from outside src/drivers only through the package root entry', () => {
    const bad: string[] = [];
    for (const f of list) {
      for (const s of specifiers(readFileSync(f, 'utf8'))) {
        if (!s.startsWith('.')) {
          bad.push(`${relative(root, f)}: '${s}' (a bare import)`);
          continue;
        }
        const target = resolve(dirname(f), s).replace(/\.js$/, '.ts');
        const inside = !relative(drivers, target).startsWith('..');
        if (!inside && target !== entry) bad.push(`${relative(root, f)}: '${s}'`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("call no other object's underscore members", () => {
    const bad: string[] = [];
    for (const f of list) {
      const lines = code(readFileSync(f, 'utf8')).split('\n');
      lines.forEach((l, i) => {
        for (const m of l.matchAll(/([\w$)\]]+)\s*\??\.\s*(_\w+)/g)) {
          if (m[1] !== 'this') bad.push(`${relative(root, f)}:${i + 1}: ${m[0]}`);
        }
      });
    }
    expect(bad).toEqual([]);
  });

  it('the checks catch what they are for', () => {
    expect(specifiers("import { x } from '../../dma-buf/index.js';\nexport * from './y.js';")).toEqual(['../../dma-buf/index.js', './y.js']);
    expect(code('k._withResvLock(a); // this._x\n s = "a._b";')).toMatch(/k\._withResvLock/);
    expect(code('s = "a._b"; /* b._c */')).not.toMatch(/_b|_c/);
  });
});
