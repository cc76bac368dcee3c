/**
 * The built bundles in a page: dist/browser.js (the API, release core inlined as base64) and
 * dist/embed.js (embed cores inlined), as a page without a bundler would import them. Run by
 * vitest.browser.config.ts after npm run build; in Node these import the same files.
 */
import { describe, expect, it } from 'vitest';
import { embedScenario } from '../embed/scenario.js';

// The built files, not the sources: imported by URL so that type-checking needs no build.
// (the module URL goes through a variable: vite rewrites `new URL(<template>, import.meta.url)`)
const here = import.meta.url;
const bundle = <T>(name: string): Promise<T> => import(/* @vite-ignore */ new URL('../../dist/' + name, here).href);

describe('built bundles', () => {
  it('dist/browser.js: a simulator maps, translates and moves bytes', async () => {
    const api = await bundle<typeof import('../../src/index.js')>('browser.js');
    const sim = await api.createSimulator({ arenaBytes: 8 << 20 });
    expect(sim.core.build).toBe('release');
    sim.memory.addRegion({ base: 0x8000_0000n, size: 1n << 30n, kind: 'ram' });
    const unit = sim.iommu.createUnit({ family: 'smmuv3' });
    const dom = unit.createDomain({ type: 'paging', format: 'arm-lpae-s1' });
    sim.iommu.attach(0x100, dom);
    dom.map(0x4000_0000n, 0x8020_0000n, 0x20_0000n, api.Prot.RW);
    expect(sim.iommu.translate(0x100, 0x4000_1234n)).toMatchObject({ ok: true, pa: 0x8020_1234n });
    const data = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
    expect(sim.dma.write({ rid: 0x100, addr: 0x4000_0ff0n }, data).ok).toBe(true);
    expect(sim.memory.read(0x8020_0ff0n, 5000)).toEqual(data);
  });

  it('dist/core.js: the raw core', async () => {
    const { createCore, ABI } = await bundle<typeof import('../../src/core-entry.js')>('core.js');
    const core = await createCore({ arenaBytes: 4 << 20 });
    const e = core.exports;
    expect(e.addRegion(0n, 1n << 30n, ABI.REGION_KIND_RAM, ABI.REGION_CPU_ACCESSIBLE, 0)).toBe(0);
    const unit = e.createUnit(ABI.FAMILY_VTD, 64, 4, 64, 64);
    const dom = e.createDomain(unit, ABI.DOMAIN_PAGING, ABI.FMT_VTD_SS, 48, 48, 1);
    expect(e.attachDevice(0x0100, dom)).toBe(0);
    expect(e.map(dom, 0x1000n, 0x20_0000n, 0x1000n, ABI.PROT_READ | ABI.PROT_WRITE)).toBe(0);
    expect(e.translate(0x0100, 0x1234n, ABI.ACCESS_READ)).toBe(0);
    expect(core.views.u64[(core.layout.result + ABI.RES_VALUE) / 8]).toBe(0x20_0234n);
  });

  it('dist/embed.js: the embed scenario on a plain and a shared memory', async () => {
    const api = await bundle<typeof import('../../src/embed-entry.js')>('embed.js');
    await embedScenario(api, false);
    await embedScenario(api, true);
  });
});
