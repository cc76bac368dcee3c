/**
 * Max-min fair sharing of links between transfers in flight at the same time (progressive
 * filling): every transfer's rate grows at the same pace until a resource it crosses is full
 * (or it reaches its own cap, e.g. the reads its tags allow); those transfers freeze at that
 * rate and the others go on. When a transfer finishes, the rates are shared again among the
 * rest. A single transfer gets the smallest capacity on its path: the sequential case.
 *
 * Every transfer starts when the batch starts; its fixed cost (latency, translation) is added
 * after its data phase, without holding bandwidth.
 */

export interface Flow {
  /** Payload bytes. */
  bytes: number;
  /** Resources (link directions, root-complex P2P, memories) it crosses, by key. */
  resources: readonly string[];
  /** Its own rate limit, bytes/ns (Infinity: none). */
  cap: number;
  /** ns added after the data phase (latency, translation). */
  fixedNs: number;
}

/** Finish times (ns from the batch start) of `flows` sharing resources of `capacity` bytes/ns each. */
export function shareLinks(flows: readonly Flow[], capacity: ReadonlyMap<string, number>): number[] {
  const n = flows.length;
  const left = flows.map((f) => f.bytes);
  const dataEnd = new Array<number>(n).fill(0);
  let active = flows.map((_, i) => i).filter((i) => left[i]! > 0);
  let now = 0;
  while (active.length > 0) {
    const rate = fairRates(active.map((i) => flows[i]!), capacity);
    let dt = Infinity;
    active.forEach((i, k) => { dt = Math.min(dt, left[i]! / rate[k]!); });
    now += dt;
    const next: number[] = [];
    active.forEach((i, k) => {
      left[i] = left[i]! - rate[k]! * dt;
      // Relative tolerance: floating rounding must not leave a flow with a crumb of bytes.
      if (left[i]! <= flows[i]!.bytes * 1e-12) dataEnd[i] = now;
      else next.push(i);
    });
    active = next;
  }
  return flows.map((f, i) => dataEnd[i]! + f.fixedNs);
}

/** Max-min fair rates of flows that all have bytes left. */
export function fairRates(flows: readonly Flow[], capacity: ReadonlyMap<string, number>): number[] {
  const rate = new Array<number>(flows.length).fill(0);
  const frozen = new Array<boolean>(flows.length).fill(false);
  const rem = new Map<string, number>();
  for (const f of flows) for (const r of f.resources) if (!rem.has(r)) rem.set(r, capacity.get(r) ?? Infinity);
  let unfrozen = flows.length;
  while (unfrozen > 0) {
    // The smallest equal share any resource (or any flow's own cap) allows.
    const users = new Map<string, number>();
    flows.forEach((f, i) => { if (!frozen[i]) for (const r of f.resources) users.set(r, (users.get(r) ?? 0) + 1); });
    let share = Infinity;
    for (const [r, u] of users) share = Math.min(share, rem.get(r)! / u);
    flows.forEach((f, i) => { if (!frozen[i]) share = Math.min(share, f.cap - rate[i]!); });
    if (!Number.isFinite(share)) share = 0;
    // Raise every unfrozen flow by `share`, then freeze those on a full resource or at their cap.
    flows.forEach((f, i) => {
      if (frozen[i]) return;
      rate[i] = rate[i]! + share;
      for (const r of f.resources) rem.set(r, rem.get(r)! - share);
    });
    const full = new Set<string>();
    for (const [r, x] of rem) if (x <= (capacity.get(r) ?? Infinity) * 1e-12) full.add(r);
    let froze = 0;
    flows.forEach((f, i) => {
      if (frozen[i]) return;
      if (rate[i]! >= f.cap * (1 - 1e-12) || f.resources.some((r) => full.has(r))) {
        frozen[i] = true;
        froze++;
      }
    });
    unfrozen -= froze;
    if (froze === 0) break; // unbounded flows (no resource, no cap): nothing limits them
  }
  return rate.map((r) => (r > 0 && Number.isFinite(r) ? r : Number.MAX_VALUE));
}
