/**
 * The demo page (dist/web, built by npm run build) in a real browser: it runs the default
 * scenario and shows the P2P decision of each kind, a step that failed with EPERM, and a page
 * table walk of an IOVA from act 2's sg_table. A screenshot goes to test-artifacts/web-demo.png.
 *
 * The page carries only the release core, so it runs in the browser-release project alone.
 */
import { expect, it } from 'vitest';
import { page } from 'vitest/browser';

const env = (import.meta as unknown as { env: Record<string, string | undefined> }).env;
// The built page, not the sources, from the test server (its root is the repository).
const pageUrl = new URL('/dist/web/index.html', location.origin).href;

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 240_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function loadPage(): Promise<{ frame: HTMLIFrameElement; doc: Document }> {
  await page.viewport(1400, 1000);
  document.body.style.margin = '0';
  const frame = document.createElement('iframe');
  frame.style.cssText = 'width:1400px;height:1000px;border:0;display:block';
  frame.src = pageUrl;
  const loaded = new Promise((r) => frame.addEventListener('load', r, { once: true }));
  document.body.appendChild(frame);
  await loaded;
  return { frame, doc: frame.contentDocument! };
}

it.skipIf(env['DMABUF_SIM_WASM'] === 'debug')('the demo page runs the default scenario and shows decisions, errnos and a page-table walk', async () => {
  const { frame, doc } = await loadPage();
  const $ = <T extends Element = HTMLElement>(sel: string): T | null => doc.querySelector<T>(sel);
  const body = doc.body;

  // The page runs the built-in scenario on load; run it again with the Run button, as a user would.
  await until('the first run', () => body.dataset['state'] === 'done');
  expect($<HTMLSelectElement>('#scenario')!.value).toBe('seed');
  $<HTMLButtonElement>('#run')!.click();
  await until('the second run', () => body.dataset['runs'] === '2' && body.dataset['state'] === 'done');
  expect($('#status [data-result]')!.dataset['result']).toBe('ok');
  expect($('#status')!.textContent).toContain('6 acts, 64 steps, 64 passed, 0 failed');
  expect(doc.querySelectorAll('[data-act-tab]')).toHaveLength(6);
  // Tabs carry whole titles, however long.
  expect($('[data-act-tab="3"]')!.textContent).toContain('gaudi0 and nic2 across a host bridge not in the whitelist (6.x)');
  expect($('[data-act-tab="6"]')!.textContent).toContain('a vfio-pci BAR exported to a NIC, revoked by a device reset');
  // Act 1 is about gaudi0, nic0 and nic1: outlined in the topology, and their arcs too; nic2 is not.
  const focused = () => [...doc.querySelectorAll<SVGGElement>('#act svg.topo [data-focus]')].map((g) => g.getAttribute('data-node')).sort();
  expect(focused()).toEqual(['gaudi0', 'nic0', 'nic1']);
  expect($('#act svg.topo [data-arc="gaudi0:nic0"]')!.classList.contains('focus')).toBe(true);
  expect($('#act svg.topo [data-arc="gaudi0:nic2"]')!.classList.contains('focus')).toBe(false);
  // The RDMA WRITE is one vectored transfer (sender's buffer to the MR): one DMA line, and no
  // line of the act repeats the one before it (repeats are grouped into one).
  const post = $('#act .step[data-op="post"]')!;
  expect(post.querySelectorAll('.ev-dma')).toHaveLength(1);
  const lines = [...doc.querySelectorAll<HTMLElement>('#act .ev-dma')].map((e) => e.textContent);
  expect(lines.every((t, i) => i === 0 || t !== lines[i - 1])).toBe(true);
  // The act on a real time axis: the steps' lane and a lane per device with its DMA transfers.
  expect(doc.querySelectorAll('#act [data-time-axis] [data-lane="steps"] .step-bar').length).toBeGreaterThan(0);
  expect(doc.querySelectorAll('#act [data-time-axis] .dma-bar').length).toBeGreaterThan(0);
  expect($('#act [data-time-axis] .dma-bar')!.title).toMatch(/bytes in [\d.]+ (ns|us|ms), [\d.]+ GB\/s/);
  expect($('#isolation [data-isolated]')!.dataset['isolated']).toBe(String(globalThis.crossOriginIsolated === true));

  // Act 1: a pair of each kind, with the kernel's reason as its tooltip, in the matrix and as arcs.
  const pair = (p: string) => $<HTMLTableCellElement>(`#act table.matrix [data-pair="${p}"]`)!;
  const want = { 'gaudi0:nic0': 'BUS_ADDR', 'gaudi0:nic1': 'THRU_HOST_BRIDGE', 'gaudi0:nic2': 'NOT_SUPPORTED' } as const;
  for (const [p, mt] of Object.entries(want)) {
    const cell = pair(p);
    expect(cell.dataset['mapType'], p).toBe(mt);
    expect(cell.dataset['reason']!.length, p).toBeGreaterThan(10);
    expect(cell.title).toContain(cell.dataset['reason']!);
    const arc = $(`#act svg.topo [data-arc="${p}"]`)!;
    expect(arc.getAttribute('data-map-type')).toBe(mt);
    expect(arc.querySelector('title')!.textContent).toContain(cell.dataset['reason']!);
  }
  expect(pair('gaudi0:nic0').title).toContain('no ACS redirect');
  expect(pair('gaudi0:nic1').title).toContain('whitelisted');
  expect(pair('gaudi0:nic2').title).toMatch(/not.*whitelist|whitelist.*not/i);
  for (const mt of ['BUS_ADDR', 'THRU_HOST_BRIDGE', 'NOT_SUPPORTED']) {
    expect(doc.querySelectorAll(`#act table.matrix td[data-map-type="${mt}"]`).length, mt).toBeGreaterThan(0);
  }

  // Act 3: nic2 across the host bridge outside the whitelist: register fails with EPERM, as expected.
  $<HTMLButtonElement>('[data-act-tab="3"]')!.click();
  const eperm = await until('an EPERM step', () => $<HTMLElement>('#act .step[data-outcome="EPERM"]'));
  expect(eperm.dataset['op']).toBe('register');
  expect(eperm.dataset['status']).toBe('passed');
  expect(eperm.querySelector('.badge.errno')!.textContent).toContain('EPERM');
  expect(eperm.querySelector('.errno-msg')!.textContent).toContain('failed to map dmabuf because p2p is disabled');
  // An expected errno is a passed step: amber, not the red of a failure.
  const css = (el: Element) => doc.defaultView!.getComputedStyle(el);
  expect(css(eperm.querySelector('.errno-msg')!).color).toBe('rgb(122, 77, 0)');
  expect(css(eperm.querySelector('.badge.errno')!).backgroundColor).not.toMatch(/^rgb\(196, 49, 75\)/);
  expect(focused()).toEqual(['gaudi0', 'nic2']);
  expect($('#act .act-head')!.textContent).toContain('12 steps, 5 expected errnos');

  // Act 2: nic1's sg_table holds IOVA 0xffe00000; the walk of it in nic1's domain (after the
  // register step) ends in a 2M leaf at 0x4020000000 (gaudi0's BAR0 + 0x20000000).
  $<HTMLButtonElement>('[data-act-tab="2"]')!.click();
  const sgt = await until('nic1 sg_table', () => $<HTMLElement>('#act [data-sgt="nic1"]'));
  expect(sgt.textContent).toContain('0xffe00000');
  const panel = $('#act .pt-panel')!;
  const out = panel.querySelector<HTMLElement>('.walk-out')!;
  const device = await until('the device list', () => {
    const d = panel.querySelector<HTMLSelectElement>('select.pt-device');
    return d && [...d.options].some((o) => o.value === 'nic1') ? d : null;
  });
  // The panel opens on the act's last sg_table entry and walks it; wait for that, then walk by hand.
  await until('the first walk', () => out.dataset['walks'] === '1');
  const iova = panel.querySelector<HTMLInputElement>('input.pt-iova')!;
  const walk = async (dev: string, addr: string): Promise<HTMLElement> => {
    const n = Number(out.dataset['walks']);
    device.value = dev;
    iova.value = addr;
    panel.querySelector<HTMLButtonElement>('button.pt-walk')!.click();
    await until(`the walk of ${addr}`, () => Number(out.dataset['walks']) > n);
    return out.querySelector<HTMLElement>('[data-walk-iova]')!;
  };
  const hole = await walk('nic1', '0x1000');
  expect(hole.dataset['walkIova']).toBe('0x1000');
  expect(hole.dataset['walkFault']).toBeTruthy();
  expect(hole.dataset['walkPa']).toBeUndefined();
  const result = await walk('nic1', '0xffe00000');
  expect(result.dataset['walkIova']).toBe('0xffe00000');
  expect(result.dataset['walkFault']).toBeUndefined();
  expect(result.dataset['walkPa']).toBe('0x4020000000');
  expect(result.dataset['walkSize']).toBe('2M');
  const levels = [...panel.querySelectorAll<HTMLElement>('tr[data-level]')];
  expect(levels.map((l) => l.dataset['kind'])).toEqual(['table', 'table', 'leaf']);
  // VT-d numbers its levels down to the leaf, as the report and `demo` do.
  expect(levels.map((l) => l.dataset['level'])).toEqual(['4', '3', '2']);
  expect(levels.map((l) => l.querySelector('td')!.textContent)).toEqual(['L4 PML4E', 'L3 PDPE', 'L2 PDE']);
  expect(levels.at(-1)!.dataset['leafSize']).toBe('2M');
  expect(levels.at(-1)!.textContent).toContain('PS');
  expect(result.textContent).toContain('0x4020000000');

  // The whole page, as it stands, into the artifacts.
  const height = Math.min(2900, doc.documentElement.scrollHeight);
  await page.viewport(1400, height);
  frame.style.height = `${height}px`;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  await page.screenshot({ element: frame, path: '../../test-artifacts/web-demo.png' });

  // An invalid pasted scenario: the errors, and nothing left of the previous run.
  const source = $<HTMLTextAreaElement>('#source')!;
  source.value = 'name: broken\ntopology: builtin\nsteps:\n  - { op: alloc, device: nic9, size: 4K }\n';
  source.dispatchEvent(new Event('input'));
  $<HTMLButtonElement>('#run')!.click();
  await until('the invalid run', () => body.dataset['state'] === 'invalid');
  expect($('#status .errors')!.textContent).toContain("unknown device 'nic9'");
  expect(doc.querySelectorAll('[data-act-tab]')).toHaveLength(0);
  expect($('#act')!.children).toHaveLength(0);
  expect($('#description')!.textContent).toBe('');
});

it.skipIf(env['DMABUF_SIM_WASM'] === 'debug')('the viommu built-in in the page: a PASID-tagged walk, both stages of a nested walk, page requests and retries', async () => {
  const { doc } = await loadPage();
  const $ = <T extends Element = HTMLElement>(sel: string): T | null => doc.querySelector<T>(sel);
  const body = doc.body;
  await until('the first run', () => body.dataset['state'] === 'done');
  const picker = $<HTMLSelectElement>('#scenario')!;
  expect([...picker.options].map((o) => o.value)).toContain('viommu');
  picker.value = 'viommu';
  $<HTMLButtonElement>('#run')!.click();
  await until('the viommu run', () => body.dataset['runs'] === '2' && body.dataset['state'] === 'done');
  expect($('#status [data-result]')!.dataset['result']).toBe('ok');
  expect(doc.querySelectorAll('[data-act-tab]')).toHaveLength(4);

  // Act 1: the same IOVA walked untagged and with PASID 5, in two domains.
  $<HTMLButtonElement>('[data-act-tab="1"]')!.click();
  const tagged = await until('a PASID-tagged walk', () => $<HTMLElement>('#act .walk-sec[data-pasid="5"]'));
  expect(tagged.textContent).toContain('fpga0 pasid 5 walk of 0x100000');
  expect(tagged.textContent).toMatch(/for pasid 5/);
  expect($('#act .walk-sec[data-pasid="none"]')!.textContent).toContain('fpga0 untagged (RID) walk of 0x100000');
  const logs = [...doc.querySelectorAll<HTMLElement>('#act .step[data-op="deviceDma"] .log')].map((l) => l.textContent ?? '');
  expect(logs.some((l) => /translation fpga0 rid 0x500 PASID 5: iova 0x100000 -> pa 0x/.test(l))).toBe(true);
  expect(logs.some((l) => /translation fpga0 rid 0x500 no PASID: iova 0x100000 -> pa 0x/.test(l))).toBe(true);
  // Its walk button opens the page-table panel on that PASID's domain.
  tagged.querySelector<HTMLButtonElement>('button[data-walk-iova]')!.click();
  const pasWalk = await until('the PASID walk in the panel', () => $<HTMLElement>('#act .pt-panel .walk[data-pasid="5"]'));
  expect(pasWalk.querySelector('.walk-head')!.textContent).toContain('PASID 5');
  expect(pasWalk.querySelector<HTMLElement>('[data-walk-pa]')).not.toBeNull();

  // Act 2: a nested walk, stage 1 with the stage-2 walk of each fetch, in the step and in the panel.
  $<HTMLButtonElement>('[data-act-tab="2"]')!.click();
  const nested = await until('a nested walk', () => $<HTMLElement>('#act .walk-sec[data-nested="true"]'));
  expect(nested.textContent).toContain('stage 1 over stage-2 domain');
  expect(nested.textContent).toContain('stage 2 of L0');
  expect(nested.textContent).toContain('stage 2 of output');
  nested.querySelector<HTMLButtonElement>('button[data-walk-iova]')!.click();
  const both = await until('the nested walk in the panel', () => $<HTMLElement>('#act .pt-panel .walk[data-nested="true"]'));
  expect(both.querySelectorAll('tr[data-stage="1"]')).toHaveLength(4);
  expect([...both.querySelectorAll<HTMLElement>('tr[data-stage="2"]')].map((r) => r.dataset['stage2Of'])).toEqual(['L0', 'L1', 'L2', 'L3', 'output']);
  expect(both.querySelector('.walk-head')!.textContent).toContain('stage 1 over stage-2 domain');
  // The stage-2 fault during a stage-1 table fetch.
  expect($('#act .step[data-outcome="EFAULT"]')!.textContent).toContain('stage 2 (stage-1 table fetch)');

  // Act 3: page requests, responses and the device's retries.
  $<HTMLButtonElement>('[data-act-tab="3"]')!.click();
  const responses = await until('the page responses', () => {
    const s = [...doc.querySelectorAll<HTMLElement>('#act .step[data-op="pageResponse"]')];
    return s.length === 3 ? s : null;
  });
  expect(responses[0]!.textContent).toContain('page request: dev_id 1 pasid 3 iova 0x5000 write');
  expect(responses[0]!.textContent).toContain('page response: cookie 1 SUCCESS');
  expect(responses[0]!.textContent).toMatch(/retried \(attempt 2\)/);
  expect(responses[1]!.textContent).toMatch(/retried \(attempt 3\), done, 6144 bytes/);
  expect(responses[2]!.textContent).toContain('gave up (EFAULT)');
});
