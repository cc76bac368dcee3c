/**
 * What "a failed call changes nothing" compares: a canonical rendering of the state a driver or
 * dma-buf call can touch: free frames (and the frame records at probe addresses), every IOMMU
 * domain's mapped bytes and table frames, DMA API mappings and allocated IOVA space per device,
 * the live dma-bufs with their references, attachments, pins, tables, vmaps and fences, and the
 * fd tables and mappings of the processes. Not compared: event logs, id counters and the
 * arena's radix nodes (an index of the backing store, not simulated state).
 */
import type { Machine } from '../src/machine/machine.js';
import type { Process } from '../src/process/index.js';
import type { DmaBufKernel } from '../src/dma-buf/index.js';
import type { DmaDevice } from '../src/dma-mapping/index.js';
import type { Simulator } from '../src/index.js';

export interface SnapshotScope {
  sim?: Simulator;
  kernel?: DmaBufKernel;
  procs?: readonly Process[];
  devs?: readonly DmaDevice[];
  /** RAM pages whose frame records (refcount, pins) are compared. */
  probes?: readonly bigint[];
  /** Driver state to compare as well (counters, pools). */
  extra?: () => unknown;
}

/** The scope of a machine: its simulator and kernel. */
export function machineScope(m: Machine, rest: Omit<SnapshotScope, 'sim' | 'kernel'> = {}): SnapshotScope {
  return { sim: m.sim, kernel: m.kernel, ...rest };
}

export function stateSnapshot(s: SnapshotScope): string {
  const parts: Record<string, unknown> = {};
  if (s.sim) {
    const mem = s.sim.memory;
    parts.framesFree = mem.framesFree();
    parts.probes = (s.probes ?? []).map((pa) => mem.frameInfo(pa));
    parts.units = s.sim.iommu.units().map((u) => {
      const st = u.stats();
      return {
        tlbValid: st.tlbValid,
        fq: st.flushQueuePending,
        domains: u.domains().map((d) => (d.destroyed ? 'destroyed' : [d.mappedBytes, d.tableFrames])),
      };
    });
  }
  parts.devs = (s.devs ?? []).map((d) => {
    const st = d.stats();
    const iova = d.cookie?.iovad.stats();
    return [d.name, st.singles, st.sgLists, iova ? iova.allocatedPfns + iova.reservedPfns : null];
  });
  if (s.kernel) {
    parts.bufs = [...s.kernel.liveBuffers].sort((a, b) => a.id - b.id).map((b) => ({
      id: b.id,
      refs: b.refs,
      released: b.released,
      vmaps: b.vmapCount,
      name: b.name ?? null,
      fences: b.resv.numFences,
      locked: b.resv.isLocked(),
      atts: b.attachments.map((a) => [a.id, a.detached, a.pinCount, a.mappedTables.length, a.cachedTable !== undefined, a.peer2peer]),
    }));
  }
  parts.procs = (s.procs ?? []).map((p) => ({
    fds: p.openFds.map((fd) => [fd, p.file(fd).name, p.file(fd).refs, p.isCloexec(fd)]),
    mmaps: p.mmaps.map((v) => [v.start, v.pages, v.active, v.file?.name ?? null]),
  }));
  parts.extra = s.extra?.() ?? null;
  return JSON.stringify(parts, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}
