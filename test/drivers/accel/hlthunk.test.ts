import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Machine } from '../../../src/machine/machine.js';
import { O_CLOEXEC, O_RDWR, SimProcess } from '../../../src/dma-buf/index.js';
import {
  HabanaDevice, hlthunkClose, hlthunkDeviceMappedMemoryExportDmabufFd, hlthunkDeviceMemoryAlloc,
  hlthunkDeviceMemoryExportDmabufFd, hlthunkDeviceMemoryFree, hlthunkDeviceMemoryMap, hlthunkMemoryUnmap, hlthunkOpen,
  type HabanaGeneration, type HlthunkHandle,
} from '../../../src/drivers/accel/index.js';

const fixture = readFileSync(new URL('../../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const USER = 512n << 20n;

async function open(gen: HabanaGeneration): Promise<{ h: HlthunkHandle; m: Machine }> {
  const m = await Machine.create({ topology: fixture });
  const dev = HabanaDevice.create(m, { pci: 'gaudi0', generation: gen });
  const h = hlthunkOpen(dev, new SimProcess(m.kernel));
  if (typeof h === 'number') throw new Error(`open failed ${h}`);
  return { h, m };
}

describe('hl-thunk-like library (HL-08 userspace validation)', () => {
  it('HL-08 mapped export: -EINVAL unless flags == O_RDWR|O_CLOEXEC, without reaching the kernel', async () => {
    const { h, m } = await open('gaudi2');
    const handle = hlthunkDeviceMemoryAlloc(h, 2n << 20n, 0n, false, false) as bigint;
    expect(handle).toBe(1n);
    const va = hlthunkDeviceMemoryMap(h, handle) as bigint;
    expect(hlthunkDeviceMappedMemoryExportDmabufFd(h, va, 2n << 20n, 0n, O_RDWR)).toBe(-22);
    expect(hlthunkDeviceMappedMemoryExportDmabufFd(h, va, 2n << 20n, 0n, 0)).toBe(-22);
    expect(m.kernel.liveBuffers.size).toBe(0);
    const fd = hlthunkDeviceMappedMemoryExportDmabufFd(h, va, 2n << 20n, 0n, O_RDWR | O_CLOEXEC);
    expect(fd).toBeGreaterThan(0);
    expect(h.proc.isCloexec(fd)).toBe(true);
    // Kernel errors come back as negative errnos.
    expect(hlthunkMemoryUnmap(h, va)).toBe(-22);
    expect(hlthunkDeviceMemoryFree(h, handle)).toBe(-22);
    h.proc.close(fd);
    expect(hlthunkMemoryUnmap(h, va)).toBe(0);
    expect(hlthunkDeviceMemoryFree(h, handle)).toBe(0);
    expect(hlthunkClose(h)).toBe(0);
  });

  it('HL-08 Gaudi1 export variant forces O_RDWR|O_CLOEXEC whatever the caller passes', async () => {
    const { h } = await open('gaudi1');
    const fd = hlthunkDeviceMemoryExportDmabufFd(h, USER, 1n << 20n, 0);
    expect(fd).toBeGreaterThan(0);
    expect(h.proc.isCloexec(fd)).toBe(true);
    const f = h.proc.file(fd);
    expect(f.kind === 'dma-buf' && f.dmabuf.fileFlags).toBe(O_RDWR);
    expect(hlthunkDeviceMemoryExportDmabufFd(h, USER + 1n, 1n << 20n)).toBe(-22);
    h.dev.status = 'in_reset';
    expect(hlthunkDeviceMemoryExportDmabufFd(h, USER, 1n << 20n)).toBe(-16);
  });
});
