import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { Machine } from '../../../src/machine/machine.js';
import {
  DmaDataDirection, MAP_SHARED, O_CLOEXEC, O_NONBLOCK, O_RDWR, O_WRONLY, PROT_READ, SEEK_END, SimProcess,
  DMA_BUF_IOCTL_SYNC, DMA_BUF_SYNC_RW, DMA_BUF_SYNC_START, type DmaBuf, type KernelProfileName, type SgTable,
} from '../../../src/dma-buf/index.js';
import type { IommuDomain } from '../../../src/iommu/iommu.js';
import {
  HabanaDevice, HL_IOCTL_MEMORY, HL_MEM_CONTIGUOUS, HL_MEM_USERPTR, hlIoctlMemory, importerDevice, type HlMemArgs, type HabanaGeneration, type HabanaDeviceOptions, type HlAttachInfo,
} from '../../../src/drivers/accel/index.js';

const twoSwitches = readFileSync(new URL('../../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const thruHostBridge = readFileSync(new URL('./fixtures/thru-host-bridge.json', import.meta.url), 'utf8');

const K = 1024n;
const M = 1024n * K;
const G = 1024n * M;
const BIDI = DmaDataDirection.BIDIRECTIONAL;
const USER = 512n * M; // default dram_user_base_address

interface Setup {
  m: Machine;
  dev: HabanaDevice;
  proc: SimProcess;
  fd: number;
}

async function setup(
  gen: HabanaGeneration,
  opts: { profile?: KernelProfileName; topology?: string; pci?: string; iommu?: boolean; fdLimit?: number } & Partial<HabanaDeviceOptions> = {},
): Promise<Setup> {
  const m = await Machine.create({
    topology: opts.topology ?? twoSwitches, iommu: opts.iommu === false ? null : { family: 'vtd' }, profile: opts.profile ?? '6.x',
  });
  const dev = HabanaDevice.create(m, { ...opts, pci: opts.pci ?? 'gaudi0', generation: gen });
  const proc = new SimProcess(m.kernel, { fdLimit: opts.fdLimit ?? 1024 });
  const fd = dev.open(proc);
  return { m, dev, proc, fd };
}

const err = (code: string, rule?: string) => expect.objectContaining(rule ? { code, rule } : { code });
const p2pImporter = () => ({ allowPeer2Peer: true, moveNotify: vi.fn() });

/** Gaudi2: ALLOC + MAP, returning the handle and VA. */
function allocMap(s: Setup, size: bigint, flags = 0): { handle: bigint; va: bigint } {
  const handle = hlIoctlMemory(s.proc, s.fd, { op: 'ALLOC', memSize: size, flags }).handle!;
  const va = hlIoctlMemory(s.proc, s.fd, { op: 'MAP', handle }).deviceVirtAddr!;
  return { handle, va };
}

function exportFd(s: Setup, args: { addr: bigint; memSize: bigint; offset?: bigint; flags?: number }): number {
  return hlIoctlMemory(s.proc, s.fd, { op: 'EXPORT_DMABUF_FD', flags: O_RDWR | O_CLOEXEC, ...args }).fd!;
}

function bufOf(s: Setup, fd: number): DmaBuf {
  const f = s.proc.file(fd);
  if (f.kind !== 'dma-buf') throw new Error('not a dma-buf');
  return f.dmabuf;
}

const segs = (sgt: SgTable) => sgt.dmaSegments().map((e) => [e.dmaAddress, BigInt(e.length)]);

describe('habanalabs memory ioctl', () => {
  it('HL-01 a device that is not operational refuses every memory op with EBUSY (and open)', async () => {
    const s = await setup('gaudi2');
    s.dev.status = 'in_reset';
    for (const op of ['ALLOC', 'FREE', 'MAP', 'UNMAP', 'EXPORT_DMABUF_FD'] as const) {
      expect(() => hlIoctlMemory(s.proc, s.fd, { op, memSize: 4096n })).toThrowError(err('EBUSY', 'HL-01'));
    }
    s.proc.close(s.fd);
    expect(() => s.dev.open(s.proc)).toThrowError(err('EBUSY'));
    s.dev.status = 'operational';
    expect(s.dev.open(s.proc)).toBeGreaterThanOrEqual(0);
  });

  it('HL-02 unknown op: EINVAL under 6.x and latest, ENOTTY under 5.15', async () => {
    for (const [profile, code] of [['6.x', 'EINVAL'], ['latest', 'EINVAL'], ['5.15', 'ENOTTY']] as const) {
      const s = await setup('gaudi2', { profile });
      expect(() => hlIoctlMemory(s.proc, s.fd, { op: 99 })).toThrowError(err(code, 'HL-02'));
      expect(() => hlIoctlMemory(s.proc, s.fd, { op: 4 /* MAP_BLOCK, not modelled */ })).toThrowError(err(code, 'HL-02'));
    }
  });

  it('HL-02 MMU disabled: export is EPERM under 6.x; 5.15 exported by physical address there', async () => {
    const s6 = await setup('gaudi1', { mmuEnabled: false });
    expect(() => exportFd(s6, { addr: USER, memSize: 32n * M })).toThrowError(err('EPERM', 'HL-02'));
    expect(() => hlIoctlMemory(s6.proc, s6.fd, { op: 'MAP', flags: HL_MEM_USERPTR, hostVirtAddr: 0x1000n, memSize: 4096n })).toThrowError(err('EPERM'));
    expect(() => hlIoctlMemory(s6.proc, s6.fd, { op: 77 })).toThrowError(err('EINVAL', 'HL-02'));
    const h = hlIoctlMemory(s6.proc, s6.fd, { op: 'ALLOC', memSize: 64n * M }).handle!;
    expect(hlIoctlMemory(s6.proc, s6.fd, { op: 'MAP', handle: h }).deviceVirtAddr).toBe(USER);
    const s5 = await setup('gaudi1', { mmuEnabled: false, profile: '5.15' });
    const fd = hlIoctlMemory(s5.proc, s5.fd, { op: 'EXPORT_DMABUF_FD', handle: USER, memSize: 32n * M, flags: O_RDWR }).fd!;
    expect(bufOf(s5, fd).size).toBe(Number(32n * M));
    expect(() => hlIoctlMemory(s5.proc, s5.fd, { op: 77 })).toThrowError(err('ENOTTY', 'HL-02'));
  });

  it('HL-03 Gaudi1 (no DRAM VM): offset must be 0; addr is a physical DRAM address', async () => {
    const s = await setup('gaudi1');
    expect(hlIoctlMemory(s.proc, s.fd, { op: 'ALLOC', memSize: 4096n })).toEqual({ handle: 0n });
    expect(() => exportFd(s, { addr: USER, memSize: 2n * M, offset: 4096n })).toThrowError(err('EINVAL', 'HL-03'));
    const fd = exportFd(s, { addr: USER, memSize: 2n * M, offset: 0n });
    expect(bufOf(s, fd).size).toBe(Number(2n * M));
    expect(s.dev.dmabufExportCnt).toBe(1);
  });

  it('HL-04 [v6.7+, 0b75cb5b240f] addr page-aligned, size a non-zero multiple of PAGE_SIZE, offset page-aligned, in every 6.x and latest export', async () => {
    const s = await setup('gaudi1');
    expect(() => exportFd(s, { addr: USER + 512n, memSize: 2n * M })).toThrowError(err('EINVAL', 'HL-04'));
    expect(() => exportFd(s, { addr: USER, memSize: 4095n })).toThrowError(err('EINVAL', 'HL-04'));
    // Since v6.7 a size that is not a page multiple is refused (before, size >= PAGE_SIZE was enough).
    expect(() => exportFd(s, { addr: USER, memSize: 4097n })).toThrowError(err('EINVAL', 'HL-04'));
    const fd = exportFd(s, { addr: USER, memSize: 8192n });
    expect(bufOf(s, fd).size).toBe(8192);
    expect(s.proc.llseek(fd, 0, SEEK_END)).toBe(8192n);
    const latest = await setup('gaudi1', { profile: 'latest' });
    expect(() => exportFd(latest, { addr: USER, memSize: 4097n })).toThrowError(err('EINVAL', 'HL-04'));
    const g2 = await setup('gaudi2');
    const { va } = allocMap(g2, 4n * M);
    expect(() => exportFd(g2, { addr: va, memSize: 8192n, offset: 100n })).toThrowError(err('EINVAL', 'HL-04'));
    expect(() => exportFd(g2, { addr: va, memSize: 100n, offset: 0n })).toThrowError(err('EINVAL', 'HL-04'));
    expect(() => exportFd(g2, { addr: va, memSize: 4096n + 100n, offset: 4096n })).toThrowError(err('EINVAL', 'HL-04'));
    expect(exportFd(g2, { addr: va, memSize: 8192n, offset: 4096n })).toBeGreaterThan(0);
  });

  it('HL-05 Gaudi1 DRAM and BAR range checks, with u64 wrap-around', async () => {
    // 48 GiB of HBM behind a 32 GiB BAR: DRAM above 32 GiB exists but is not in the BAR.
    const s = await setup('gaudi1', { hbmBytes: 48n * G });
    expect(s.dev.hiddenRegion).toMatchObject({ size: 16n * G, cpuAccessible: false });
    expect(s.dev.hiddenRegion!.base >= 1n << 46n).toBe(true);
    expect(() => exportFd(s, { addr: USER - 4096n, memSize: 8192n })).toThrowError(err('EINVAL', 'HL-05'));
    expect(() => exportFd(s, { addr: 48n * G - 4096n, memSize: 8192n })).toThrowError(err('EINVAL', 'HL-05'));
    expect(() => exportFd(s, { addr: (1n << 64n) - 4096n, memSize: 8192n })).toThrowError(err('EINVAL', 'HL-05'));
    expect(() => exportFd(s, { addr: 40n * G, memSize: 4096n })).toThrowError(err('EINVAL', 'HL-05'));
    expect(() => exportFd(s, { addr: 32n * G - 4096n, memSize: 8192n })).toThrowError(err('EINVAL', 'HL-05'));
    expect(exportFd(s, { addr: 32n * G - 4096n, memSize: 4096n })).toBeGreaterThan(0);
    expect(s.dev.log.some((l) => l.includes('outside of PCI BAR boundaries'))).toBe(true);
  });

  it('HL-05 [5.15] Gaudi1 export needs 32 MiB-aligned addr and size, size > 0', async () => {
    const s = await setup('gaudi1', { profile: '5.15' });
    const ex = (handle: bigint, memSize: bigint) => hlIoctlMemory(s.proc, s.fd, { op: 'EXPORT_DMABUF_FD', handle, memSize, flags: O_RDWR }).fd!;
    expect(() => ex(USER + 4096n, 32n * M)).toThrowError(err('EINVAL', 'HL-05'));
    expect(() => ex(USER, 0n)).toThrowError(err('EINVAL', 'HL-05'));
    expect(() => ex(USER, 4096n)).toThrowError(err('EINVAL', 'HL-05'));
    expect(() => ex(32n * G, 32n * M)).toThrowError(err('EINVAL', 'HL-05'));
    expect(ex(USER + 32n * M, 64n * M)).toBeGreaterThan(0);
    // The same page-aligned request passes under 6.x.
    const s6 = await setup('gaudi1');
    expect(exportFd(s6, { addr: USER + 4096n, memSize: 4096n })).toBeGreaterThan(0);
  });

  it('HL-06 Gaudi2: addr must be exactly a VA from MAP; host mappings and oversize ranges are refused', async () => {
    const s = await setup('gaudi2');
    const { va } = allocMap(s, 4n * M);
    expect(va % (2n * M)).toBe(0n);
    expect(() => exportFd(s, { addr: va + 4096n, memSize: 4096n })).toThrowError(err('EINVAL', 'HL-06'));
    expect(() => exportFd(s, { addr: 0xdead_0000n, memSize: 4096n })).toThrowError(err('EINVAL', 'HL-06'));
    expect(() => exportFd(s, { addr: va, memSize: 4n * M, offset: 4096n })).toThrowError(err('EINVAL', 'HL-06'));
    expect(() => exportFd(s, { addr: va, memSize: 4n * M + 4096n })).toThrowError(err('EINVAL', 'HL-06'));
    const host = hlIoctlMemory(s.proc, s.fd, { op: 'MAP', flags: HL_MEM_USERPTR, hostVirtAddr: 0x7f00_0000_0000n, memSize: 8192n }).deviceVirtAddr!;
    expect(() => exportFd(s, { addr: host, memSize: 4096n })).toThrowError(err('EINVAL', 'HL-06'));
    // Failed exports left no export count behind: the VA unmaps.
    expect(exportFd(s, { addr: va, memSize: 4n * M })).toBeGreaterThan(0);
    expect(s.dev.computeFile!.nodes.get(va)!.exportCnt).toBe(1);
  });

  it('HL-06 Gaudi2: every physical page of the pack must lie inside the DRAM BAR', async () => {
    // 96 GiB of HBM behind the fixture's 32 GiB BAR.
    const s = await setup('gaudi2');
    expect(s.dev.hbmBytes).toBe(96n * G);
    const big = allocMap(s, 32n * G, HL_MEM_CONTIGUOUS); // 0.5 GiB .. 32.5 GiB: the tail is beyond the BAR
    expect(() => exportFd(s, { addr: big.va, memSize: 4096n })).toThrowError(err('EINVAL', 'HL-06'));
    const small = allocMap(s, 2n * M);
    expect(s.dev.pack(Number(small.handle))!.pages[0]).toBe(USER + 32n * G);
    expect(() => exportFd(s, { addr: small.va, memSize: 4096n })).toThrowError(err('EINVAL', 'HL-06'));
    // Device-internal memory exists: the device writes and reads it.
    s.dev.vaWrite(small.va + 10n, new Uint8Array([7, 8, 9]));
    expect(s.dev.vaRead(small.va + 10n, 3)).toEqual(new Uint8Array([7, 8, 9]));
    expect(s.m.sim.memory.read(s.dev.hiddenRegion!.base + 512n * M + 10n, 3)).toEqual(new Uint8Array([7, 8, 9]));
  });

  it('HL-07 unmap of an exported VA and free of a mapped handle are EINVAL until the dma-buf is released', async () => {
    const s = await setup('gaudi2');
    const { handle, va } = allocMap(s, 4n * M);
    const fd = exportFd(s, { addr: va, memSize: 4n * M });
    expect(() => hlIoctlMemory(s.proc, s.fd, { op: 'UNMAP', deviceVirtAddr: va })).toThrowError(err('EINVAL', 'HL-07'));
    expect(() => hlIoctlMemory(s.proc, s.fd, { op: 'FREE', handle })).toThrowError(err('EINVAL', 'HL-07'));
    expect(() => hlIoctlMemory(s.proc, s.fd, { op: 'UNMAP', deviceVirtAddr: va + 4096n })).toThrowError(err('EINVAL'));
    s.proc.close(fd);
    expect(s.dev.dmabufExportCnt).toBe(0);
    hlIoctlMemory(s.proc, s.fd, { op: 'UNMAP', deviceVirtAddr: va });
    hlIoctlMemory(s.proc, s.fd, { op: 'FREE', handle });
    expect(s.dev.handles).toEqual([]);
    expect(() => hlIoctlMemory(s.proc, s.fd, { op: 'FREE', handle })).toThrowError(err('EINVAL'));
  });

  it('HL-07 [5.15] export by ALLOC handle; FREE of an exported handle is EINVAL (exporting_cnt)', async () => {
    const s = await setup('gaudi2', { profile: '5.15' });
    const handle = hlIoctlMemory(s.proc, s.fd, { op: 'ALLOC', memSize: 3n * M }).handle!;
    const fd = hlIoctlMemory(s.proc, s.fd, { op: 'EXPORT_DMABUF_FD', handle, memSize: 1n, flags: O_RDWR }).fd!;
    expect(bufOf(s, fd).size).toBe(Number(4n * M)); // the pack's total size, not mem_size
    expect(s.dev.pack(Number(handle))!.exportingCnt).toBe(1);
    expect(() => hlIoctlMemory(s.proc, s.fd, { op: 'FREE', handle })).toThrowError(err('EINVAL', 'HL-07'));
    expect(() => hlIoctlMemory(s.proc, s.fd, { op: 'EXPORT_DMABUF_FD', handle: handle + 7n, memSize: 1n })).toThrowError(err('EINVAL', 'HL-06'));
    s.proc.close(fd);
    hlIoctlMemory(s.proc, s.fd, { op: 'FREE', handle });
  });

  it('HL-08 non-dynamic exporter with attach/map/unmap/release only; flags pass unvalidated; size not rounded', async () => {
    const s = await setup('gaudi1');
    const fd = exportFd(s, { addr: USER, memSize: 12288n, flags: O_WRONLY | O_NONBLOCK });
    const buf = bufOf(s, fd);
    expect(Object.keys(buf.ops).sort()).toEqual(['attach', 'mapDmaBuf', 'release', 'unmapDmaBuf']);
    expect(buf.isDynamic()).toBe(false);
    expect(buf.expName).toBe('habanalabs');
    expect(buf.size).toBe(12288); // as given, not rounded to a DRAM page
    expect(buf.fileFlags).toBe(O_WRONLY | O_NONBLOCK);
    expect(s.proc.isCloexec(fd)).toBe(false);
    const fd2 = exportFd(s, { addr: USER, memSize: 8192n, flags: O_RDWR | O_CLOEXEC });
    expect(s.proc.isCloexec(fd2)).toBe(true);
    expect(bufOf(s, fd2).fileFlags).toBe(O_RDWR);
  });

  it('HL-09 the device file lives until its last exported dma-buf is released', async () => {
    const s = await setup('gaudi2');
    const { va } = allocMap(s, 2n * M);
    const fd = exportFd(s, { addr: va, memSize: 2n * M });
    const fpriv = s.dev.computeFile!;
    expect(fpriv.file.count).toBe(2);
    s.proc.close(s.fd);
    expect(s.dev.computeFile).toBe(fpriv);
    expect(fpriv.released).toBe(false);
    expect(s.dev.handles).toHaveLength(1); // the context still holds its memory
    expect(() => s.dev.open(s.proc)).toThrowError(err('EBUSY', 'HL-09'));
    s.proc.close(fd);
    expect(fpriv.released).toBe(true);
    expect(s.dev.computeFile).toBeNull();
    expect(s.dev.handles).toEqual([]);
    expect(s.dev.open(s.proc)).toBeGreaterThanOrEqual(0);
  });

  it('HL-09 a plain close(2) of the device fd drops the file reference too (the file ->release)', async () => {
    const s = await setup('gaudi2');
    const { va } = allocMap(s, 2n * M);
    const fd = exportFd(s, { addr: va, memSize: 2n * M });
    const fpriv = s.dev.computeFile!;
    const dup = s.proc.dup(s.fd);
    s.proc.close(s.fd);
    expect(fpriv.file.count).toBe(2); // the dup'ed fd still holds the file
    s.proc.close(dup);
    expect(fpriv.file.count).toBe(1); // only the exported dma-buf's reference is left
    expect(fpriv.released).toBe(false);
    s.proc.close(fd);
    expect(fpriv.released).toBe(true);
    expect(s.dev.open(s.proc)).toBeGreaterThanOrEqual(0);
  });

  it('HL-09 the fd is published last: EMFILE unwinds every count and leaves nothing installed', async () => {
    const s = await setup('gaudi2', { fdLimit: 1 });
    const { va } = allocMap(s, 2n * M);
    expect(() => exportFd(s, { addr: va, memSize: 2n * M })).toThrowError(err('EMFILE'));
    expect(s.dev.dmabufExportCnt).toBe(0);
    expect(s.dev.computeFile!.file.count).toBe(1);
    expect(s.dev.computeFile!.nodes.get(va)!.exportCnt).toBe(0);
    expect(s.m.kernel.liveBuffers.size).toBe(0);
    expect(s.proc.openFds).toEqual([s.fd]);
    hlIoctlMemory(s.proc, s.fd, { op: 'UNMAP', deviceVirtAddr: va });
  });

  it('compute-device fd checks: EBADF when closed, ENOTTY for another file', async () => {
    const s = await setup('gaudi1');
    const other = s.proc.openFile('null');
    expect(() => hlIoctlMemory(s.proc, other, { op: 'ALLOC', memSize: 1n })).toThrowError(err('ENOTTY'));
    expect(() => hlIoctlMemory(s.proc, 99, { op: 'ALLOC', memSize: 1n })).toThrowError(err('EBADF'));
    expect(() => hlIoctlMemory(s.proc, s.fd, { op: 'ALLOC', memSize: 0n })).toThrowError(err('EINVAL'));
    // The device file's own ioctl: another command is ENOTTY, a bad argument pointer EFAULT.
    expect(() => s.proc.ioctl(s.fd, HL_IOCTL_MEMORY + 1, { op: 'ALLOC', memSize: 1n })).toThrowError(err('ENOTTY'));
    expect(() => s.proc.ioctl(s.fd, HL_IOCTL_MEMORY, null)).toThrowError(err('EFAULT'));
    const args: HlMemArgs = { op: 'ALLOC', memSize: 2n * M };
    expect(s.proc.ioctl(s.fd, HL_IOCTL_MEMORY, args)).toBe(0);
    expect(args.out).toEqual({ handle: 0n }); // gaudi1: no DRAM virtual memory, accounting only
    expect(s.dev.dramUsedMem).toBe(2n * M);
  });
});

describe('habanalabs dma-buf exporter ops', () => {
  it('HL-10 attach computes the P2P distance and clears peer2peer without a path; it never fails', async () => {
    const s = await setup('gaudi1', { profile: 'latest' });
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 2n * M }));
    const nic0 = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter());
    expect(nic0.peer2peer).toBe(true);
    expect((nic0.priv as HlAttachInfo).distance).toBe(4);
    const rdma = buf.dynamicAttach(importerDevice(s.m, 'mlx5_core.rdma.0'), p2pImporter());
    expect(rdma.peer2peer).toBe(true);
    expect((rdma.priv as HlAttachInfo).client!.name).toBe('nic0');
    const nic1 = buf.dynamicAttach(importerDevice(s.m, 'nic1'), p2pImporter()); // hb1 is not whitelisted
    expect(nic1.peer2peer).toBe(false);
    expect((nic1.priv as HlAttachInfo).distance).toBe(-1);
    const dsp = buf.dynamicAttach(importerDevice(s.m, 'soc-dsp'), p2pImporter()); // not PCI
    expect(dsp.peer2peer).toBe(false);
    const plain = buf.dynamicAttach({ name: 'virtio-dev' }, p2pImporter());
    expect(plain.peer2peer).toBe(false);
    expect(s.m.p2pdma.dmesg()).toContain('Host bridge not in');
    for (const a of [nic0, rdma, nic1, dsp, plain]) a.detach();
  });

  it('HL-11 map refuses without peer2peer (EPERM); entries have no page and orig_nents is 0', async () => {
    const s = await setup('gaudi1');
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 2n * M }));
    const st = buf.attach(importerDevice(s.m, 'nic0')); // static importer: never P2P
    expect(st.peer2peer).toBe(false);
    expect(() => st.mapUnlocked(BIDI)).toThrowError(err('EPERM', 'HL-11'));
    st.detach();
    const dyn = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter());
    const sgt = dyn.mapUnlocked(BIDI);
    expect(sgt.origNents).toBe(0);
    expect(sgt.isPageless()).toBe(true);
    expect(sgt.nents).toBe(32); // 2 MiB in 64 KiB segments (the default max segment size)
    dyn.unmapUnlocked(sgt, BIDI);
    dyn.detach();
  });

  it('HL-11 a dma_map_resource failure is ENOMEM with every earlier entry unmapped', async () => {
    // nic2 reaches gaudi1 through the IOMMU with a 32-bit mask: 1 GiB entries exhaust the IOVA space.
    const s = await setup('gaudi1', { topology: thruHostBridge, pci: 'gaudi1', profile: 'latest' });
    const nicDma = s.m.dmaDevice(s.m.pci('nic2'));
    nicDma.setMaxSegSize(Number(1n * G));
    nicDma.setMask((1n << 32n) - 1n);
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 8n * G }));
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic2'), p2pImporter());
    expect(() => att.mapUnlocked(BIDI)).toThrowError(err('ENOMEM', 'HL-11'));
    expect(nicDma.stats()).toMatchObject({ singles: 0, mapErrors: 1 });
    expect(s.dev.liveTables).toBe(0);
    // With room for every entry the same map succeeds.
    nicDma.setMask((1n << 48n) - 1n);
    const sgt = att.mapUnlocked(BIDI);
    expect(sgt.nents).toBe(8);
    expect(nicDma.stats()).toMatchObject({ singles: 0, iovaStates: 1 }); // one IOVA range for the 8 entries
    att.unmapUnlocked(sgt, BIDI);
    att.detach();
  });

  it('HL-12 Gaudi2: contiguous pages merge up to the importer max segment, with the offset', async () => {
    const s = await setup('gaudi2', { p2pMapping: 'p2pdma', profile: 'latest' });
    const a = allocMap(s, 2n * M);
    const b = allocMap(s, 2n * M);
    allocMap(s, 2n * M);
    hlIoctlMemory(s.proc, s.fd, { op: 'UNMAP', deviceVirtAddr: b.va });
    hlIoctlMemory(s.proc, s.fd, { op: 'FREE', handle: b.handle });
    const d = allocMap(s, 6n * M); // takes b's hole, then two pages after the third allocation
    const pages = s.dev.pack(Number(d.handle))!.pages;
    expect(pages).toEqual([USER + 2n * M, USER + 6n * M, USER + 8n * M]);
    expect(s.dev.pack(Number(a.handle))!.pages).toEqual([USER]);
    const nicDma = s.m.dmaDevice(s.m.pci('nic0'));
    nicDma.setMaxSegSize(Number(3n * M));
    const bar = s.dev.dramPciBarStart;
    const buf = bufOf(s, exportFd(s, { addr: d.va, memSize: 5n * M, offset: 1n * M }));
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter());
    const sgt = att.mapUnlocked(BIDI);
    // 'p2pdma' mapping, BUS_ADDR peer: bus addresses (bus offset 0 on hb0), no IOMMU mapping.
    expect(segs(sgt)).toEqual([
      [bar + USER + 3n * M, 1n * M],
      [bar + USER + 6n * M, 3n * M],
      [bar + USER + 9n * M, 1n * M],
    ]);
    expect(nicDma.stats().singles).toBe(0);
    att.unmapUnlocked(sgt, BIDI);
    att.detach();
  });

  it('HL-12 [5.15] Gaudi1 exports above 512 MiB are 32 MiB pages merged into 512 MiB entries', async () => {
    const s = await setup('gaudi1', { iommu: false, profile: '5.15' });
    const fd = hlIoctlMemory(s.proc, s.fd, { op: 'EXPORT_DMABUF_FD', handle: 1n * G, memSize: 1n * G + 64n * M, flags: O_RDWR }).fd!;
    const buf = bufOf(s, fd);
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter()); // 5.15: mapped at attach (DB-09)
    const sgt = att.cachedTable!;
    const bar = s.dev.dramPciBarStart;
    expect(segs(sgt)).toEqual([[bar + 1n * G, 512n * M], [bar + 1n * G + 512n * M, 512n * M], [bar + 2n * G, 64n * M]]);
    att.detach();
  });

  it('HL-12 Gaudi1 [6.x]: one page of the whole size, cut at the max segment size', async () => {
    const s = await setup('gaudi1', { iommu: false, profile: 'latest' });
    s.m.dmaDevice(s.m.pci('nic0')).setMaxSegSize(Number(1n * G));
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 2n * G + 8192n }));
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter());
    const sgt = att.mapUnlocked(BIDI);
    const bar = s.dev.dramPciBarStart;
    expect(segs(sgt)).toEqual([[bar + USER, 1n * G], [bar + USER + G, 1n * G], [bar + USER + 2n * G, 8192n]]);
    att.unmapUnlocked(sgt, BIDI);
    att.detach();
  });

  it('HL-11 an importer whose max segment (dma_set_max_seg_size) is below a page: map is EINVAL, reached through the DMA API', async () => {
    const s = await setup('gaudi1', { iommu: false, profile: 'latest' });
    const nicDma = s.m.dmaDevice(s.m.pci('nic0'));
    nicDma.setMaxSegSize(2048);
    expect(nicDma.maxSegmentSize).toBe(2048);
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 64n * K }));
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter());
    expect(() => att.mapUnlocked(BIDI)).toThrowError(err('EINVAL', 'HL-11'));
    // A whole page is enough again.
    nicDma.setMaxSegSize(4096);
    const sgt = att.mapUnlocked(BIDI);
    expect(sgt.nents).toBe(16);
    att.unmapUnlocked(sgt, BIDI);
    att.detach();
  });

  it('HL-13 THRU_HOST_BRIDGE: entries are IOVAs in the importer IOMMU domain; unmap removes every one', async () => {
    const s = await setup('gaudi2', { topology: thruHostBridge, pci: 'gaudi1', profile: 'latest' });
    const nic = s.m.pci('nic2');
    expect(s.m.decide(s.dev.pci, nic).mapType).toBe('THRU_HOST_BRIDGE');
    const nicDma = s.m.dmaDevice(nic);
    nicDma.setMaxSegSize(Number(2n * M));
    const { va } = allocMap(s, 4n * M);
    const buf = bufOf(s, exportFd(s, { addr: va, memSize: 4n * M }));
    const att = buf.dynamicAttach(importerDevice(s.m, nic), p2pImporter());
    const sgt = att.mapUnlocked(BIDI);
    expect(sgt.nents).toBe(2);
    const domain = nicDma.domain as IommuDomain;
    const bar = s.dev.dramPciBarStart;
    sgt.dmaSegments().forEach((e, i) => {
      expect(e.dmaAddress < 1n << 32n).toBe(true); // an IOVA (pci_32bit_workaround), not the BAR
      expect(BigInt(e.length)).toBe(2n * M);
      expect(domain.walk(e.dmaAddress)).toMatchObject({ ok: true, pa: bar + USER + BigInt(i) * 2n * M });
    });
    expect(nicDma.stats()).toMatchObject({ singles: 0, iovaStates: 1 }); // one IOVA range for both entries
    const iovas = sgt.dmaSegments().map((e) => e.dmaAddress);
    att.unmapUnlocked(sgt, BIDI);
    expect(nicDma.stats()).toMatchObject({ singles: 0, iovaStates: 0 });
    for (const iova of iovas) expect(domain.walk(iova).ok).toBe(false);
    expect(s.dev.liveTables).toBe(0);
    att.detach();
  });

  it("'map-resource' mapping: even a switch peer gets an IOVA through the IOMMU, as the merged driver did", async () => {
    const s = await setup('gaudi1', { profile: 'latest', p2pMapping: 'map-resource' });
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 64n * K }));
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter());
    const sgt = att.mapUnlocked(BIDI);
    const nicDma = s.m.dmaDevice(s.m.pci('nic0'));
    expect((nicDma.domain as IommuDomain).walk(sgt.entries[0]!.dmaAddress)).toMatchObject({ ok: true, pa: s.dev.dramPciBarStart + USER });
    s.dev.dramWrite(USER, new Uint8Array([1, 2, 3]));
    const r = s.m.sim.dma.read({ rid: s.m.rid(s.m.pci('nic0')), addr: sgt.entries[0]!.dmaAddress }, 3);
    expect(r.data).toEqual(new Uint8Array([1, 2, 3]));
    att.unmapUnlocked(sgt, BIDI);
    att.detach();
  });

  it('HL-14 static importer EPERM; mmap EINVAL; SYNC 0; vmap EINVAL; pin a no-op; move_notify never sent', async () => {
    const s = await setup('gaudi1', { profile: 'latest' });
    const fd = exportFd(s, { addr: USER, memSize: 64n * K });
    const buf = bufOf(s, fd);
    const st = buf.attach(importerDevice(s.m, 'nic0'));
    expect(() => st.mapUnlocked(BIDI)).toThrowError(err('EPERM', 'HL-11'));
    st.detach();
    expect(() => s.proc.mmap(fd, { length: 4096, prot: PROT_READ, flags: MAP_SHARED })).toThrowError(err('EINVAL', 'DB-18'));
    expect(s.proc.ioctl(fd, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_RW | DMA_BUF_SYNC_START })).toBe(0);
    expect(() => buf.vmapUnlocked()).toThrowError(err('EINVAL', 'DB-24'));
    const imp = p2pImporter();
    const dyn = buf.dynamicAttach(importerDevice(s.m, 'nic0'), imp);
    buf.resv.lock();
    dyn.pin();
    dyn.unpin();
    buf.resv.unlock();
    const sgt = dyn.mapUnlocked(BIDI);
    dyn.unmapUnlocked(sgt, BIDI);
    dyn.detach();
    expect(imp.moveNotify).not.toHaveBeenCalled();
  });

  it('HL-14 / DB-09: a dynamic importer without a P2P path fails at attach (EPERM) under 6.x and 5.15, at map under latest', async () => {
    for (const profile of ['6.x', '5.15'] as const) {
      const s = await setup('gaudi1', { profile });
      const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 32n * M }));
      expect(() => buf.dynamicAttach(importerDevice(s.m, 'nic1'), p2pImporter())).toThrowError(err('EPERM', 'HL-11'));
      expect(buf.attachments).toHaveLength(0);
      // A P2P path: the table is built at attach and cached.
      s.m.dmaDevice(s.m.pci('nic0')).setMaxSegSize(Number(32n * M));
      const ok = buf.dynamicAttach(importerDevice(s.m, 'nic0'), p2pImporter());
      expect(ok.cachedTable!.nents).toBe(1);
      ok.detach();
    }
    const s = await setup('gaudi1', { profile: 'latest' });
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 64n * K }));
    const att = buf.dynamicAttach(importerDevice(s.m, 'nic1'), p2pImporter());
    expect(att.peer2peer).toBe(false);
    expect(() => att.mapUnlocked(BIDI)).toThrowError(err('EPERM', 'HL-11'));
    att.detach();
  });
});

describe('bytes through the importer mapping', () => {
  it('BUS_ADDR (gaudi0 and nic0 under sw0): the NIC reads what the device wrote, and writes land in HBM', async () => {
    const s = await setup('gaudi2', { p2pMapping: 'p2pdma', profile: 'latest' });
    const { va } = allocMap(s, 4n * M);
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    s.dev.vaWrite(va + 2n * M - 100n, data); // straddles two DRAM pages
    const buf = bufOf(s, exportFd(s, { addr: va, memSize: 4n * M }));
    const nic = s.m.pci('nic0');
    s.m.dmaDevice(nic).setMaxSegSize(Number(4n * M));
    const att = buf.dynamicAttach(importerDevice(s.m, nic), p2pImporter());
    const sgt = att.mapUnlocked(BIDI);
    expect(sgt.nents).toBe(1);
    const e = sgt.entries[0]!;
    expect(e.dmaAddress).toBe(s.dev.dramBar.busAddress + USER);
    const r = s.m.sim.dma.read({ rid: s.m.rid(nic), addr: e.dmaAddress + 2n * M - 100n }, 300);
    expect(r.ok).toBe(true);
    expect(r.data).toEqual(data);
    const w = s.m.sim.dma.write({ rid: s.m.rid(nic), addr: e.dmaAddress + 8n }, new Uint8Array([0xaa, 0xbb]));
    expect(w.ok).toBe(true);
    expect(s.dev.vaRead(va + 8n, 2)).toEqual(new Uint8Array([0xaa, 0xbb]));
    expect(s.m.unitOf(nic)!.faults()).toHaveLength(0);
    att.unmapUnlocked(sgt, BIDI);
    att.detach();
  });

  it('THRU_HOST_BRIDGE (different root ports of a whitelisted host bridge): through the IOMMU, then unmapped', async () => {
    const s = await setup('gaudi1', { topology: thruHostBridge, pci: 'gaudi1', profile: '6.x' });
    const nic = s.m.pci('nic2');
    const data = new TextEncoder().encode('habanalabs HBM over the host bridge');
    s.dev.dramWrite(USER + 0x3000n, data);
    const buf = bufOf(s, exportFd(s, { addr: USER, memSize: 64n * K }));
    const att = buf.dynamicAttach(importerDevice(s.m, nic), p2pImporter()); // 6.x: mapped at attach
    const sgt = att.cachedTable!;
    expect(sgt.nents).toBe(1);
    const iova = sgt.entries[0]!.dmaAddress;
    expect(iova).not.toBe(s.dev.dramBar.busAddress + USER);
    const r = s.m.sim.dma.read({ rid: s.m.rid(nic), addr: iova + 0x3000n }, data.length);
    expect(r.ok).toBe(true);
    expect(r.data).toEqual(data);
    att.detach(); // the real unmap (DB-09)
    const f = s.m.sim.dma.read({ rid: s.m.rid(nic), addr: iova + 0x3000n }, 4);
    expect(f.ok).toBe(false);
    expect(s.m.dmaDevice(nic).stats().singles).toBe(0);
  });
});
