// FX: objects of another machine are refused (EINVAL) before anything changes: two machines in one
// process never see each other.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/machine/machine.js';
import { O_RDWR, SimProcess } from '../../src/dma-buf/index.js';
import { DMA_HEAP_IOCTL_ALLOC, DmaHeaps } from '../../src/drivers/dma-heap/index.js';
import { HabanaDevice, hlIoctlMemory, importerDevice } from '../../src/drivers/accel/index.js';
import { VfioPciDevice, VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_DMA_BUF, VFIO_DEVICE_FEATURE_GET } from '../../src/drivers/vfio/index.js';
import { expectAtomicFailure, machineScope, stateSnapshot } from './snapshot.js';

const twoSwitches = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const machine = () => Machine.create({ topology: twoSwitches, iommu: { family: 'vtd' }, ramBytes: 256n << 20n });

describe('FX foreign objects', () => {
  it('FX-01 dma_buf_fd of a buffer of another machine\'s kernel is EINVAL; the reference stays the caller\'s', async () => {
    const [a, b] = [await machine(), await machine()];
    const heaps = DmaHeaps.create(b);
    const pb = new SimProcess(b.kernel);
    const d = { len: 4096, fd: 0, fdFlags: O_RDWR, heapFlags: 0 };
    pb.ioctl(heaps.open(pb, 'system'), DMA_HEAP_IOCTL_ALLOC, d);
    const buf = pb.dmaBufGet(d.fd);
    const pa = new SimProcess(a.kernel);
    const scope = { ...machineScope(a, { procs: [pa] }), extra: () => [buf.refs, stateSnapshot(machineScope(b, { procs: [pb] }))] };
    expect(expectAtomicFailure(scope, 'EINVAL', () => pa.dmaBufFd(buf)).message).toMatch(/another machine/);
    buf.put();
  });

  it('FX-02 an importer of another machine: refused at attach (vfio, habanalabs, system heap) with nothing changed', async () => {
    const [a, b] = [await machine(), await machine()];
    const pa = new SimProcess(a.kernel);
    const vfio = VfioPciDevice.create(a, 'fpga0');
    const vfd = vfio.open(pa);
    const vbuf = pa.dmaBufGet(pa.ioctl(vfd, VFIO_DEVICE_FEATURE, {
      flags: VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF, data: { regionIndex: 0, dmaRanges: [{ offset: 0, length: 4096 }] },
    }));
    const hl = HabanaDevice.create(a, { pci: 'gaudi0', generation: 'gaudi2' });
    const hfd = hl.open(pa);
    const handle = hlIoctlMemory(pa, hfd, { op: 'ALLOC', memSize: 2n << 20n }).handle!;
    const va = hlIoctlMemory(pa, hfd, { op: 'MAP', handle }).deviceVirtAddr!;
    const hbuf = pa.dmaBufGet(hlIoctlMemory(pa, hfd, { op: 'EXPORT_DMABUF_FD', addr: va, memSize: 2n << 20n, flags: O_RDWR }).fd!);
    const heaps = DmaHeaps.create(a);
    const d = { len: 4096, fd: 0, fdFlags: O_RDWR, heapFlags: 0 };
    pa.ioctl(heaps.open(pa, 'system'), DMA_HEAP_IOCTL_ALLOC, d);
    const sbuf = pa.dmaBufGet(d.fd);
    const foreign = importerDevice(b, 'nic0');
    const scope = machineScope(a, { procs: [pa] });
    stateSnapshot(scope);
    const ops = { allowPeer2Peer: true, moveNotify: () => {} };
    expectAtomicFailure(scope, 'EINVAL', () => vbuf.dynamicAttach(foreign, ops));
    expectAtomicFailure(scope, 'EINVAL', () => hbuf.attach(foreign));
    // The system heap looks the importer's DMA device up in its attach op.
    expect(expectAtomicFailure(scope, 'EINVAL', () => sbuf.attach(foreign)).message).toMatch(/another machine/);
    // The same importer device of machine a is accepted by all three.
    vbuf.dynamicAttach(importerDevice(a, 'nic1'), ops).detach(); // below fpga0's switch
    hbuf.dynamicAttach(importerDevice(a, 'nic0'), ops).detach();
    sbuf.attach(importerDevice(a, 'nic0')).detach();
    for (const buf of [vbuf, hbuf, sbuf]) buf.put();
  });
});
