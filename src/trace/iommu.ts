/**
 * The IOMMU side of a run on the trace: IOTLB counters over time (a counter track per unit,
 * sampled after every DMA transfer and every step, so Perfetto draws hits and misses climbing as
 * the transfers go), IOTLB invalidations as instants on the unit's thread, and IOMMU map and
 * unmap as instants on the attached device's thread (the bytes a domain gained or lost).
 * The core has no per-mapping callback, so map and unmap are read from the domain's mapped-bytes
 * counter at each step's end: one event per domain per step, not per page.
 */
import type { Machine } from '../index.js';
import type { IommuDomain, IommuUnit } from '../index.js';
import type { TraceProcess } from './trace.js';

interface UnitSample {
  hits: bigint;
  misses: bigint;
  walks: bigint;
  invalidations: bigint;
  invalidatedEntries: bigint;
  more?: { pasidHits: bigint; nestedWalks: bigint; atsRequests: bigint; atcHits: bigint; atcInvalidations: bigint; pageRequests: bigint };
}

/**
 * Records the IOMMU side of a scenario run on a trace process: IOTLB counters per unit,
 * invalidation instants, and map/unmap instants per paging domain. The scenario runner makes one
 * per traced run and calls {@link IotlbTracker.sample} after each transfer and
 * {@link IotlbTracker.step} at each step's end.
 */
export class IotlbTracker {
  private readonly _units = new Map<IommuUnit, UnitSample>();
  private readonly _mapped = new Map<IommuDomain, bigint>();

  constructor(
    private readonly _machine: Machine,
    private readonly _proc: TraceProcess,
    private readonly _deviceName: (rid: number) => string,
  ) {
    for (const u of _machine.units()) {
      const s = u.stats();
      this._units.set(u, { hits: s.hits, misses: s.misses, walks: s.walks, invalidations: s.invalidations, invalidatedEntries: s.invalidatedEntries });
      // A first sample at zero, so the counter track starts with the act.
      _proc.counter(`iotlb ${u.name}`, { hits: Number(s.hits), misses: Number(s.misses), walks: Number(s.walks) });
    }
  }

  /** A counter sample per unit whose counters moved; an instant per invalidation batch. */
  sample(): void {
    for (const [u, last] of this._units) {
      const s = u.stats();
      if (s.invalidations > last.invalidations) {
        this._proc.instant(u.name, 'iotlb invalidation', 'iommu', {
          unit: u.name, invalidations: Number(s.invalidations - last.invalidations), entries: Number(s.invalidatedEntries - last.invalidatedEntries),
        });
      }
      if (s.hits !== last.hits || s.misses !== last.misses || s.walks !== last.walks) {
        this._proc.counter(`iotlb ${u.name}`, { hits: Number(s.hits), misses: Number(s.misses), walks: Number(s.walks) });
      }
      // Issue 16: PASID-tagged hits, nested walks, ATS and page requests, on a track of their own
      // once any of them moved.
      const more = { pasidHits: s.pasidHits, nestedWalks: s.nestedWalks, atsRequests: s.atsRequests, atcHits: s.atcHits, atcInvalidations: s.atcInvalidations, pageRequests: s.pageRequests };
      if (Object.entries(more).some(([k, v]) => v !== (last.more?.[k as keyof typeof more] ?? 0n))) {
        this._proc.counter(`iommu ${u.name} pasid/ats/nested`, Object.fromEntries(Object.entries(more).map(([k, v]) => [k, Number(v)])));
        if (s.pageRequests > (last.more?.pageRequests ?? 0n)) {
          this._proc.instant(u.name, 'page request', 'iommu', { unit: u.name, requests: Number(s.pageRequests - (last.more?.pageRequests ?? 0n)), queued: s.pageRequestsQueued });
        }
      }
      last.more = more;
      Object.assign(last, { hits: s.hits, misses: s.misses, walks: s.walks, invalidations: s.invalidations, invalidatedEntries: s.invalidatedEntries });
    }
  }

  /** At a step's end: the counters, and map/unmap of every paging domain whose mapping changed. */
  step(): void {
    this.sample();
    let owners: Map<number, string[]> | null = null;
    for (const u of this._machine.units()) {
      for (const d of u.domains()) {
        if (d.type !== 'paging') continue;
        const before = this._mapped.get(d) ?? 0n;
        const now = d.mappedBytes;
        if (now === before) continue;
        this._mapped.set(d, now);
        owners ??= this._owners();
        const devices = owners.get(d.id) ?? [];
        this._proc.instant(devices[0] ?? u.name, now > before ? 'iommu map' : 'iommu unmap', 'iommu', {
          unit: u.name, domain: d.id, devices, bytes: Number(now > before ? now - before : before - now),
          mapped: Number(now), tableFrames: d.tableFrames,
        });
      }
    }
  }

  /** Device names per domain id (the functions attached to it). */
  private _owners(): Map<number, string[]> {
    const m = new Map<number, string[]>();
    for (const f of this._machine.topology.functions) {
      const rid = this._machine.rid(f);
      const d = this._machine.sim.iommu.domainOf(rid);
      if (typeof d !== 'number') continue;
      m.set(d, [...(m.get(d) ?? []), this._deviceName(rid)]);
    }
    return m;
  }
}
