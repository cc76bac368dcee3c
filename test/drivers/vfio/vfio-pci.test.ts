import { describe, expect, it } from 'vitest';
import { SimProcess, DmaDataDirection as Dir, PAGE_SIZE, MAP_SHARED, PROT_READ, type DmaBufAttachment } from '../../../src/dma-buf/index.js';
import { importerDevice } from '../../../src/drivers/device.js';
import {
  VfioPciDevice, VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_DMA_BUF, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_RESET, type VfioDeviceFeatureDmaBuf,
} from '../../../src/drivers/vfio/index.js';
import {
  IBV_ACCESS_LOCAL_WRITE as LW, IBV_ACCESS_REMOTE_WRITE as RW, IBV_ACCESS_REMOTE_READ as RR,
} from '../../../src/drivers/rdma/index.js';
import { bytes, connect, errOf, machine, rdmaClient, side } from '../gpu/helpers.js';

const P = PAGE_SIZE;
const BIDI = Dir.BIDIRECTIONAL;

async function setup(dev = 'fpga0', opts: { strictLocking?: boolean } = {}) {
  const m = await machine(opts);
  const proc = new SimProcess(m.kernel, { name: 'vmm', memory: m.sim.memory });
  const vfio = VfioPciDevice.create(m, dev);
  const vfd = vfio.open(proc);
  return { m, proc, vfio, vfd };
}

/** ioctl(vfd, VFIO_DEVICE_FEATURE, GET | DMA_BUF): the new dma-buf fd. */
function exportDmabuf(proc: SimProcess, vfd: number, data: VfioDeviceFeatureDmaBuf): number {
  return proc.ioctl(vfd, VFIO_DEVICE_FEATURE, { flags: VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF, data });
}

function recorder() {
  const calls: { att: number; locked: boolean }[] = [];
  return { calls, ops: { allowPeer2Peer: true, moveNotify: (a: DmaBufAttachment) => calls.push({ att: a.id, locked: a.dmabuf.resv.isLocked() }) } };
}

describe('vfio-pci dma-buf export (IM-12, IM-13)', () => {
  it('IM-13: ranges: offset = length = 0 is the whole BAR; page-aligned ranges inside the BAR add up; anything else is EINVAL', async () => {
    const { m, proc, vfio, vfd } = await setup();
    const bar = m.pci('fpga0').bar(0)!;
    const whole = proc.dmaBufGet(exportDmabuf(proc, vfd, { regionIndex: 0, dmaRanges: [{ offset: 0, length: 0 }] }));
    expect(BigInt(whole.size)).toBe(bar.size);
    whole.put();
    const two = proc.dmaBufGet(exportDmabuf(proc, vfd, { regionIndex: 0, dmaRanges: [{ offset: P, length: 2 * P }, { offset: 16 * P, length: P }] }));
    expect(two.size).toBe(3 * P);
    expect(two.isDynamic()).toBe(true);
    two.put();
    const bad: [string, VfioDeviceFeatureDmaBuf, string][] = [
      ['unaligned offset', { regionIndex: 0, dmaRanges: [{ offset: 1, length: P }] }, 'EINVAL'],
      ['unaligned length', { regionIndex: 0, dmaRanges: [{ offset: 0, length: P + 1 }] }, 'EINVAL'],
      ['empty range', { regionIndex: 0, dmaRanges: [{ offset: P, length: 0 }] }, 'EINVAL'],
      ['past the BAR', { regionIndex: 0, dmaRanges: [{ offset: bar.size - BigInt(P), length: 2 * P }] }, 'EINVAL'],
      ['no ranges', { regionIndex: 0, dmaRanges: [] }, 'EINVAL'],
      ['flags', { regionIndex: 0, flags: 1, dmaRanges: [{ offset: 0, length: P }] }, 'EINVAL'],
      ['open flags', { regionIndex: 0, openFlags: 0o100, dmaRanges: [{ offset: 0, length: P }] }, 'EINVAL'],
      ['no such BAR', { regionIndex: 2, dmaRanges: [{ offset: 0, length: P }] }, 'EINVAL'],
      ['ROM / config region', { regionIndex: 6, dmaRanges: [{ offset: 0, length: P }] }, 'ENODEV'],
    ];
    const fds = proc.openFds;
    for (const [what, arg, code] of bad) expect([what, errOf(() => exportDmabuf(proc, vfd, arg)).code]).toEqual([what, code]);
    // vfio_ioctl_device_feature and vfio_check_feature: DMA_BUF is GET only; PROBE answers 0.
    const data = { regionIndex: 0, dmaRanges: [{ offset: 0, length: P }] };
    const feature = (flags: number) => proc.ioctl(vfd, VFIO_DEVICE_FEATURE, { flags, data });
    expect(feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF)).toBe(0);
    expect(errOf(() => feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF)).code).toBe('EINVAL');
    expect(errOf(() => feature(VFIO_DEVICE_FEATURE_DMA_BUF)).code).toBe('EINVAL');
    expect(errOf(() => feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF)).code).toBe('EINVAL');
    expect(errOf(() => feature(VFIO_DEVICE_FEATURE_GET | (1 << 20) | VFIO_DEVICE_FEATURE_DMA_BUF)).code).toBe('EINVAL');
    expect(errOf(() => feature(VFIO_DEVICE_FEATURE_GET | 10)).code).toBe('ENOTTY');
    expect(errOf(() => proc.ioctl(vfd, 0x3b00 + 99)).code).toBe('ENOTTY');
    expect(proc.openFds).toEqual(fds); // no refusal left an fd behind
  });

  it('IM-12: attach: a static importer (no peer2peer) is EOPNOTSUPP; no P2P path (NOT_SUPPORTED) or a non-PCI device is EINVAL', async () => {
    const { m, proc, vfio, vfd } = await setup();
    const buf = proc.dmaBufGet(exportDmabuf(proc, vfd, { regionIndex: 0, dmaRanges: [{ offset: 0, length: 4 * P }] }));
    const e1 = errOf(() => buf.attach(importerDevice(m, 'nic1')));
    expect([e1.code, e1.rule]).toEqual(['EOPNOTSUPP', 'IM-12']);
    const e2 = errOf(() => buf.dynamicAttach(importerDevice(m, 'nic0'), recorder().ops));
    expect([e2.code, e2.rule]).toEqual(['EINVAL', 'IM-12']);
    expect(errOf(() => buf.dynamicAttach({ name: 'soc-dsp' }, recorder().ops)).code).toBe('EINVAL');
    expect(buf.attachments).toHaveLength(0);
    buf.put();
  });

  it('IM-12: BUS_ADDR importer (same switch) gets bus addresses, no IOVA; pin is EOPNOTSUPP; mmap is EINVAL', async () => {
    const { m, proc, vfio, vfd } = await setup();
    const bar = m.pci('fpga0').bar(0)!;
    const fd = exportDmabuf(proc, vfd, { regionIndex: 0, dmaRanges: [{ offset: 2 * P, length: 2 * P }, { offset: 8 * P, length: P }] });
    const buf = proc.dmaBufGet(fd);
    const att = buf.dynamicAttach(importerDevice(m, 'nic1'), recorder().ops);
    expect((att.priv as { mapType: string }).mapType).toBe('BUS_ADDR');
    buf.resv.lock();
    const sgt = att.map(BIDI);
    expect(sgt.entries.map((e) => [e.dmaAddress, e.length, e.page])).toEqual([
      [bar.busAddress + 2n * BigInt(P), 2 * P, null],
      [bar.busAddress + 8n * BigInt(P), P, null],
    ]);
    expect(bar.busAddress).not.toBe(bar.cpuAddress); // hb1 has a bus offset
    expect(sgt.origNents).toBe(0);
    expect(errOf(() => att.pin()).code).toBe('EOPNOTSUPP');
    att.unmap(sgt, BIDI);
    buf.resv.unlock();
    expect(errOf(() => proc.mmap(fd, { length: P, prot: PROT_READ, flags: MAP_SHARED })).code).toBe('EINVAL');
    att.detach();
    buf.put();
  });

  it('IM-12: THRU_HOST_BRIDGE importer gets dma_map_resource IOVAs of its own domain', async () => {
    const { m, proc, vfio, vfd } = await setup('gpu0');
    const bar = m.pci('gpu0').bar(2)!;
    const buf = proc.dmaBufGet(exportDmabuf(proc, vfd, { regionIndex: 2, dmaRanges: [{ offset: 0, length: 0 }] }));
    const att = buf.dynamicAttach(importerDevice(m, 'nic0'), recorder().ops);
    expect((att.priv as { mapType: string }).mapType).toBe('THRU_HOST_BRIDGE');
    const sgt = att.mapUnlocked(BIDI);
    expect(sgt.nents).toBe(1);
    expect(sgt.entries[0]!.length).toBe(Number(bar.size));
    expect(sgt.entries[0]!.dmaAddress).not.toBe(bar.cpuAddress);
    m.sim.memory.write(bar.cpuAddress + 0x10n, bytes(32, 3));
    const r = m.sim.dma.read({ rid: m.rid(m.pci('nic0')), addr: sgt.entries[0]!.dmaAddress + 0x10n }, 32);
    expect(r.ok).toBe(true);
    expect(r.data).toEqual(bytes(32, 3));
    att.unmapUnlocked(sgt, BIDI);
    expect(vfio.liveTables).toBe(0);
    att.detach();
    buf.put();
  });

  it('IM-13: reset, memory decode off and D3hot revoke with move_notify under resv; attach and map are ENODEV until restored, then move_notify again', async () => {
    const { m, proc, vfio, vfd } = await setup('fpga0', { strictLocking: true });
    const buf = proc.dmaBufGet(exportDmabuf(proc, vfd, { regionIndex: 0, dmaRanges: [{ offset: 0, length: 2 * P }] }));
    const r = recorder();
    const att = buf.dynamicAttach(importerDevice(m, 'nic1'), r.ops);
    const revokeCycle = (revoke: () => void, restore: () => void) => {
      const before = r.calls.length;
      revoke();
      expect(r.calls.slice(before)).toEqual([{ att: att.id, locked: true }]);
      const e = errOf(() => att.mapUnlocked(BIDI));
      expect([e.code, e.rule]).toEqual(['ENODEV', 'IM-12']);
      const e2 = errOf(() => buf.dynamicAttach(importerDevice(m, 'nic1'), recorder().ops));
      expect([e2.code, e2.rule]).toEqual(['ENODEV', 'IM-12']);
      restore();
      expect(r.calls.length).toBe(before + 2);
      const sgt = att.mapUnlocked(BIDI);
      att.unmapUnlocked(sgt, BIDI);
    };
    revokeCycle(() => proc.ioctl(vfd, VFIO_DEVICE_RESET), () => vfio.setMemoryDecode(true));
    revokeCycle(() => vfio.setMemoryDecode(false), () => vfio.setMemoryDecode(true));
    revokeCycle(() => vfio.setPowerState('D3hot'), () => vfio.setPowerState('D0'));
    revokeCycle(() => vfio.reset(), () => vfio.restore());
    // A reset that restores the saved config space comes back at once: revoke then restore.
    const n = r.calls.length;
    vfio.reset({ restoreConfig: true });
    expect(r.calls.length).toBe(n + 2);
    expect(vfio.events.filter((e) => e.kind === 'revoke' || e.kind === 'restore').map((e) => e.kind).slice(-2)).toEqual(['revoke', 'restore']);
    // A buffer exported while decode is off starts revoked; closing the device revokes for good.
    vfio.setMemoryDecode(false);
    const late = proc.dmaBufGet(exportDmabuf(proc, vfd, { regionIndex: 0, dmaRanges: [{ offset: 0, length: P }] }));
    expect(errOf(() => late.dynamicAttach(importerDevice(m, 'nic1'), recorder().ops)).code).toBe('ENODEV');
    vfio.setMemoryDecode(true);
    proc.close(vfd); // the last device fd: the device closes
    expect(vfio.closed).toBe(true);
    expect(errOf(() => att.mapUnlocked(BIDI)).code).toBe('ENODEV');
    expect(errOf(() => vfio.restore()).code).toBe('ENODEV');
    att.detach();
    buf.put();
    late.put();
    expect(m.kernel.events.filter((e) => e.kind === 'warn')).toEqual([]);
  });
});

describe('vfio-pci BAR to an RDMA NIC, revoked by a reset (act 5)', () => {
  it('act 5 / IM-13+IM-06: the MR is invalidated by the reset, access completes with REM_ACCESS_ERR, attach/map are ENODEV; after restore a new MR works', async () => {
    const { m, proc, vfio, vfd } = await setup('fpga0', { strictLocking: true });
    const bar = m.pci('fpga0').bar(0)!;
    const SIZE = 4 * P;
    // 1. The VMM exports 4 pages of fpga0's BAR0.
    const fd = exportDmabuf(proc, vfd, { regionIndex: 0, dmaRanges: [{ offset: 0x10_0000, length: SIZE }] });
    // 2. nic1 (same switch: BUS_ADDR) registers an ODP dma-buf MR; nic0 is the requester.
    const nic0 = side(m, proc, 'nic0');
    const nic1 = side(m, proc, 'nic1');
    connect(nic0, nic1);
    const mr = nic1.ctx.regDmabufMr(nic1.pd, 0, SIZE, 0x9000_0000n, fd, LW | RW | RR);
    expect(mr.translation[0]!.dmaAddress).toBe(bar.busAddress + 0x10_0000n);
    const client = rdmaClient(m, nic0, mr, SIZE);
    expect(client.write(0, bytes(SIZE, 21)).status).toBe('SUCCESS');
    expect(m.sim.memory.read(bar.cpuAddress + 0x10_0000n, SIZE)).toEqual(bytes(SIZE, 21));
    // 3. Device reset: revoked, move_notify zaps the MR.
    vfio.reset();
    expect(mr.mapped).toBe(false);
    expect(mr.invalidations).toBe(1);
    expect(vfio.liveTables).toBe(0);
    // 4. The next access faults; the re-map fails with ENODEV: the responder NAKs, REM_ACCESS_ERR.
    const wc = client.write(0, bytes(64, 22));
    expect(wc.status).toBe('REM_ACCESS_ERR');
    expect(wc.detail).toContain('ENODEV');
    expect(nic0.qp.state).toBe('ERR');
    expect(nic1.qp.state).toBe('ERR');
    expect(m.sim.memory.read(bar.cpuAddress + 0x10_0000n, 64)).toEqual(bytes(SIZE, 21).subarray(0, 64));
    // 5. A new registration fails at attach: ENODEV.
    expect(errOf(() => nic1.ctx.regDmabufMr(nic1.pd, 0, SIZE, 0, fd, LW)).code).toBe('ENODEV');
    // 6. Restore (decode back on): a new MR on fresh QPs faults in and works; the old one re-maps too.
    vfio.setMemoryDecode(true);
    const a2 = side(m, proc, 'nic0');
    const b2 = side(m, proc, 'nic1');
    connect(a2, b2);
    const mr2 = b2.ctx.regDmabufMr(b2.pd, 0, SIZE, 0, fd, LW | RW | RR);
    const c2 = rdmaClient(m, a2, mr2, SIZE);
    const rd = c2.read(0, SIZE);
    expect(rd.wc.status).toBe('SUCCESS');
    expect(rd.data).toEqual(bytes(SIZE, 21));
    nic1.ctx.deregMr(mr);
    b2.ctx.deregMr(mr2);
    expect(m.kernel.events.filter((e) => e.kind === 'warn')).toEqual([]);
  });
});
