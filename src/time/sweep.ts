/**
 * A bandwidth/latency sweep between two devices, in the manner of CUDA's p2pBandwidthLatencyTest
 * and perftest's ib_write_bw: for each size, one real DMA transfer (the initiator's DMA engine
 * copies from its own memory into the target's memory BAR, or into system RAM), timed on the
 * machine's virtual clock. The bytes really move (the target BAR's first bytes are overwritten).
 * The target address is what the kernel would hand the initiator: the bus address when the P2P
 * map type is BUS_ADDR, dma_map_resource() (an IOVA under an IOMMU) when THRU_HOST_BRIDGE;
 * NOT_SUPPORTED fails with EOPNOTSUPP, as pci_p2pdma_map_type() makes drivers do.
 */
import { SimError } from '../../bindings/errors.js';
import type { DmaEndpoint } from '../dma/dma-engine.js';
import type { Machine } from '../machine/machine.js';
import type { Bar, PciFunction } from '../pci/index.js';
import { formatNs } from './model.js';
import { DMA_FROM_DEVICE } from '../dma-mapping/constants.js';

/** The sizes swept by default: 4 KiB to 16 MiB, by powers of 4. */
export const DEFAULT_SWEEP_SIZES: readonly bigint[] = [4n << 10n, 16n << 10n, 64n << 10n, 256n << 10n, 1n << 20n, 4n << 20n, 16n << 20n];

/** min, min*factor, ... up to max (max included when the steps miss it). EINVAL for a bad range. */
export function sweepSizes(min: bigint, max: bigint, factor = 4): bigint[] {
  const op = 'sweep';
  if (min <= 0n || max < min) throw new SimError('EINVAL', op, `min ${min} and max ${max} must satisfy 0 < min <= max`);
  if (!Number.isInteger(factor) || factor < 2) throw new SimError('EINVAL', op, `factor ${factor} must be an integer >= 2`);
  const out: bigint[] = [];
  for (let s = min; s <= max; s *= BigInt(factor)) out.push(s);
  if (out[out.length - 1] !== max) out.push(max);
  if (out.length > 64) throw new SimError('EINVAL', op, `${out.length} sizes: at most 64`);
  return out;
}

/** Options of {@link runSweep}: the two devices (by name or BDF) and the sizes. */
export interface SweepOptions {
  /** The device whose DMA engine moves the bytes. */
  from: string;
  /** The device whose memory BAR receives them, or 'ram' for system memory. */
  to: string;
  /** Transfer sizes. @default DEFAULT_SWEEP_SIZES (capped at the BARs' sizes) */
  sizes?: readonly bigint[];
}

/** One size of a sweep: one DMA transfer and its timing on the virtual clock. */
export interface SweepRow {
  /** Bytes transferred. */
  bytes: number;
  /** Virtual ns when the transfer started. */
  startNs: number;
  /** Virtual ns it took. */
  durationNs: number;
  /** Part of durationNs spent in IOMMU translation. */
  translationNs: number;
  /** bytes / durationNs, GB/s. */
  rateGBps: number;
}

/** The result of {@link runSweep}: the path the transfers took, what limited them, one row per size. */
export interface SweepResult {
  /** The initiator's name. */
  from: string;
  /** The target: `<device> BAR<n>` or 'RAM'. */
  to: string;
  /** P2P map type ('RAM' for system memory). */
  mapType: string;
  /** The route, for reports: "nic0 -> sw0 -> gaudi0 BAR0". */
  path: string;
  /** What limited the rate. */
  bottleneck: string;
  /** One row per size, in the order of `sizes`. */
  rows: SweepRow[];
}

const memBar = (f: PciFunction): Bar | undefined => f.bars.filter((b) => b.type === 'mem').sort((a, b) => (a.size > b.size ? -1 : 1))[0];

/**
 * Runs the sweep on `m`: for each size one DMA copy by `from` into the target, timed.
 * @throws {@link SimError} ENODEV when `from` or `to` names no PCI function; EINVAL when sizes is
 *   empty or a size is not a positive multiple of 4096, from and to are the same device, the
 *   target has no memory BAR or the largest size exceeds it; EOPNOTSUPP when the P2P map type is
 *   NOT_SUPPORTED; the transfer's errno (e.g. EFAULT) when a copy stops short; ENOMEM when RAM
 *   frames run out.
 */
export function runSweep(m: Machine, opts: SweepOptions): SweepResult {
  const op = 'sweep';
  const from = m.pci(opts.from);
  const sizes = opts.sizes ?? DEFAULT_SWEEP_SIZES;
  if (!Array.isArray(sizes) || sizes.length === 0) throw new SimError('EINVAL', op, 'sizes must be a non-empty list');
  for (const [i, size] of sizes.entries()) {
    if (typeof size !== 'bigint' || size <= 0n || size % 4096n !== 0n) throw new SimError('EINVAL', op, `sizes[${i}] must be a positive multiple of 4096`);
  }
  const most = sizes.reduce((a, b) => (a > b ? a : b));
  // System RAM the sweep uses comes from the frame allocator (page tables live in RAM too).
  const frames: bigint[] = [];
  const unmaps: (() => void)[] = [];
  // dma_map_page for RAM, dma_map_resource for a BAR; the device writes: DMA_FROM_DEVICE.
  const map = (pa: bigint, ram: boolean): bigint => {
    const dev = m.dmaDevice(from);
    const n = Number(most);
    const iova = ram ? dev.mapPage(pa, n, DMA_FROM_DEVICE) : dev.mapResource(pa, n, DMA_FROM_DEVICE);
    unmaps.push(() => (ram ? dev.unmapPage(iova, n, DMA_FROM_DEVICE) : dev.unmapResource(iova, n, DMA_FROM_DEVICE)));
    return iova;
  };
  const ramBuffer = (): bigint => {
    const pa = m.sim.memory.allocFrames(Number(most / 4096n));
    frames.push(pa);
    return pa;
  };
  try {
    let dstAddr: bigint;
    let room: bigint;
    let mapType = 'RAM';
    let target = 'RAM';
    if (opts.to === 'ram') {
      room = most;
      dstAddr = map(ramBuffer(), true);
    } else {
      const to = m.pci(opts.to);
      if (to === from) throw new SimError('EINVAL', op, `from and to are both ${from.name}`);
      const bar = memBar(to);
      if (!bar) throw new SimError('EINVAL', op, `${to.name} has no memory BAR to write into`);
      const d = m.decide(to, from);
      mapType = d.mapType;
      target = `${to.name} BAR${bar.index}`;
      room = bar.size;
      if (most > room) throw new SimError('EINVAL', op, `${most} bytes is more than the ${room} bytes ${target} offers`);
      if (d.mapType === 'BUS_ADDR') dstAddr = bar.busAddress;
      else if (d.mapType === 'THRU_HOST_BRIDGE') dstAddr = map(bar.cpuAddress, false);
      else throw new SimError('EOPNOTSUPP', op, `P2P from ${from.name} to ${to.name} is ${d.mapType}`);
    }
    const own = memBar(from);
    const src: DmaEndpoint = own && own.size >= most ? { rid: 'phys', addr: own.cpuAddress } : { rid: 'phys', addr: ramBuffer() };
    return sweepRows(m, from.name, target, mapType, src, { rid: m.rid(from), addr: dstAddr }, sizes);
  } finally {
    for (const u of unmaps) u();
    for (const pa of frames) m.sim.memory.freeFrames(pa, Number(most / 4096n));
  }
}

function sweepRows(m: Machine, from: string, target: string, mapType: string, src: DmaEndpoint, dst: DmaEndpoint, sizes: readonly bigint[]): SweepResult {
  const op = 'sweep';
  const rows: SweepRow[] = [];
  let path = '';
  let bottleneck = '';
  for (const size of sizes) {
    let got: SweepRow | undefined;
    const sub = m.time.onTiming((_t, tm) => {
      got = { bytes: tm.bytes, startNs: tm.startNs, durationNs: tm.durationNs, translationNs: tm.translationNs, rateGBps: tm.rateGBps };
      path = tm.path;
      bottleneck = tm.bottleneck;
    });
    let r;
    try {
      r = m.sim.dma.copy(src, dst, size);
    } finally {
      sub.dispose();
    }
    if (!r.ok) throw new SimError(r.code === 'OK' ? 'EIO' : (r.code as never), op, `the ${size}-byte transfer stopped: ${r.code}`);
    rows.push(got!);
  }
  return { from, to: target, mapType, path, bottleneck, rows };
}

/** The sweep as a table, like p2pBandwidthLatencyTest / ib_write_bw print. */
export function renderSweep(r: SweepResult): string[] {
  const lines = [
    `${r.from} -> ${r.to} (${r.mapType}): ${r.path}`,
    `limited by: ${r.bottleneck}`,
    `${'#bytes'.padStart(10)}  ${'time'.padStart(10)}  ${'GB/s'.padStart(8)}  ${'translation'.padStart(11)}`,
  ];
  for (const row of r.rows) {
    lines.push(`${String(row.bytes).padStart(10)}  ${formatNs(row.durationNs).padStart(10)}  ${row.rateGBps.toFixed(2).padStart(8)}  ${formatNs(row.translationNs).padStart(11)}`);
  }
  return lines;
}
