/**
 * docs/ against the code: every op in the format reference, every rule id the sources cite in
 * rules.md, every relative link resolving, the README's command line naming every command.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OP_SPECS } from '../../src/scenario/schema.js';

const read = (f: string): string => readFileSync(f, 'utf8');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('docs/', () => {
  it('scenario-format.md documents every op and each of its fields', () => {
    const doc = read('docs/scenario-format.md');
    for (const [op, spec] of Object.entries(OP_SPECS)) {
      const at = doc.indexOf(`\n### ${op}\n`);
      expect(at, op).toBeGreaterThan(0);
      const section = doc.slice(at + 1, doc.indexOf('\n### ', at + 1) >>> 0);
      for (const f of Object.keys(spec.fields)) expect(section, `${op}.${f}`).toContain(`| \`${f}\``);
    }
  });

  it('rules.md explains every rule id the sources cite', () => {
    const rules = read('docs/rules.md');
    const cited = new Set(sources('src').flatMap((f) => read(f).match(/\b(DB|HL|IM)-\d\d\b/g) ?? []));
    expect(cited.size).toBeGreaterThan(40);
    for (const id of cited) expect(rules, id).toMatch(new RegExp(`^\\| ${id} \\| \\S`, 'm'));
  });

  it('relative links resolve; the README names every command and the docs', () => {
    for (const f of ['README.md', ...readdirSync('docs').filter((x) => x.endsWith('.md')).map((x) => `docs/${x}`)]) {
      for (const m of read(f).matchAll(/\]\(([^)#:\s]+)(#[^)]*)?\)/g)) {
        expect(existsSync(join(f.includes('/') ? 'docs' : '.', m[1]!)), `${f}: ${m[1]}`).toBe(true);
      }
    }
    const readme = read('README.md');
    const cmd = readme.slice(readme.indexOf('## Command line'), readme.indexOf('## Layers'));
    for (const c of ['run', 'topo', 'show', 'demo', '--help', '--act N', '--quiet', '--verbose', '--trace', '--json', 'NO_COLOR', 'exits 2']) expect(cmd, c).toContain(c);
    expect(cmd).toContain('page tables live in simulated RAM frames');
    expect(existsSync('LICENSE')).toBe(true);
    expect(read('LICENSE')).toContain('Copyright (c) 2026 dmabuf-sim contributors');
  });
});
