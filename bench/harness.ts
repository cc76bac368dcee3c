/**
 * Benchmark harness: methods are sampled round-robin (interleaved, so machine noise hits all of
 * them alike), each sample runs long enough to time (>= 25 ms), and a method's figure is the
 * median of its samples. Ratios are taken between methods measured in the same run.
 */
export interface Method {
  name: string;
  /** Runs `reps` operations. */
  run(reps: number): void;
}

/**
 * The clock in ms: wall time, or with BENCH_CLOCK=cpu the process's CPU time (user + system,
 * every thread), which a machine shared with other jobs disturbs much less than wall time (a
 * sample there is mostly time spent waiting for a CPU).
 */
export const now: () => number = process.env.BENCH_CLOCK === 'cpu'
  ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }
  : () => Number(process.hrtime.bigint()) / 1e6;

function calibrate(m: Method, minMs: number): number {
  let reps = 1;
  for (;;) {
    if (reps > 2 ** 40) throw new Error(`benchmark method '${m.name}' does no measurable work`);
    const t0 = now();
    m.run(reps);
    const dt = now() - t0;
    if (dt >= minMs) return reps;
    reps = Math.ceil(reps * Math.min(100, Math.max(2, (minMs * 1.2) / Math.max(dt, 0.01))));
  }
}

/** Nanoseconds per operation for each method: median over `samples` interleaved samples. */
export function measure(methods: Method[], samples = 9, minMs = 25): Map<string, number> {
  const reps = methods.map((m) => calibrate(m, minMs)); // also the warm-up
  const times = methods.map(() => [] as number[]);
  for (let s = 0; s < samples; s++) {
    methods.forEach((m, i) => {
      const t0 = now();
      m.run(reps[i]!);
      times[i]!.push(((now() - t0) * 1e6) / reps[i]!);
    });
  }
  const out = new Map<string, number>();
  methods.forEach((m, i) => {
    const t = times[i]!.sort((a, b) => a - b);
    out.set(m.name, t[Math.floor(t.length / 2)]!);
  });
  return out;
}
