/**
 * The built browser bundles in a page: dist/browser.js (the API) and dist/browser/{drivers,
 * scenario,core,embed}.js, as a page without a bundler would import them; each Wasm build comes
 * inlined in a chunk of its own, loaded when asked for. Run by vitest.browser.config.ts after npm
 * run build. Every entry shares one copy of the library.
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
    // DMABUF_SIM_WASM of the project picks the build (a page without it gets the release core).
    expect(sim.core.build).toBe(process.env['DMABUF_SIM_WASM'] === 'debug' ? 'debug' : 'release');
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

  it('dist/browser/drivers.js and scenario.js: a machine with a driver, on the one library copy', async () => {
    const api = await bundle<typeof import('../../src/index.js')>('browser.js');
    const drivers = await bundle<typeof import('../../src/drivers/index.js')>('browser/drivers.js');
    const scenario = await bundle<typeof import('../../src/scenario/index.js')>('browser/scenario.js');
    const m = await api.Machine.create({ topology: scenario.SEED_TOPOLOGY, iommu: { family: 'vtd' } });
    const hl = drivers.HabanaDevice.create(m, { pci: m.pci('gaudi0'), generation: 'gaudi2', hbmBytes: 1n << 30n });
    expect(hl.name).toBe('hl0');
    let err: unknown;
    try { m.pci('nope'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(api.SimError);
    expect((await bundle<typeof import('../../src/core-entry.js')>('browser/core.js')).SimError).toBe(api.SimError);
  });

  it('dist/browser/core.js: the raw core', async () => {
    const { createCore, ABI } = await bundle<typeof import('../../src/core-entry.js')>('browser/core.js');
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

  it('dist/browser/embed.js: the embed scenario on a plain and a shared memory', async () => {
    const api = await bundle<typeof import('../../src/embed-entry.js')>('browser/embed.js');
    await embedScenario(api, false);
    await embedScenario(api, true);
  });
});
