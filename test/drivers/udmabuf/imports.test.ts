// udmabuf and dma-heap are built on the public API only: every import that leaves src/drivers
// goes through the package's root entry (src/index.ts), types included.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const drivers = join(root, 'src/drivers');
const entry = join(root, 'src/index.ts');

function importsOf(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  return [...src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/g)].map((m) => m[1]!);
}

describe('udmabuf and dma-heap import only the public API', () => {
  for (const dir of ['udmabuf', 'dma-heap']) {
    it(`src/drivers/${dir}: imports outside src/drivers go through src/index.ts`, () => {
      const bad: string[] = [];
      let seen = 0;
      for (const name of readdirSync(join(drivers, dir)).filter((n) => n.endsWith('.ts'))) {
        const file = join(drivers, dir, name);
        const specs = importsOf(file);
        seen += specs.length;
        for (const spec of specs) {
          const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
          const insideDrivers = !relative(drivers, target).startsWith('..');
          if (!insideDrivers && target !== entry) bad.push(`${dir}/${name}: ${spec}`);
        }
      }
      expect(seen).toBeGreaterThan(0);
      expect(bad).toEqual([]);
    });
  }
});
