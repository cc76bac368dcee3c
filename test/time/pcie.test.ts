import { describe, expect, it } from 'vitest';
import { checkLinkAttrs, linkBandwidth, rawBandwidth, readBandwidth } from '../../src/time/pcie.js';
import { shareLinks } from '../../src/time/share.js';

/**
 * Published effective rates of x16 links with 256-byte payloads (docs/performance-model.md):
 * Gen3 ~13 GB/s and Gen4 ~26 GB/s (pinned host-to-device DMA, CUDA bandwidthTest), Gen5
 * 54.3 GB/s (p2pmark, 64 MB P2P writes between Gen5 x16 GPUs).
 */
const PUBLISHED = { 3: 13.0, 4: 26.0, 5: 54.3 } as const;

describe('PCIe link arithmetic', () => {
  it('PERF-01: Gen3/Gen4/Gen5 x16 with MPS 256 are within 10% of the published effective rates', () => {
    for (const gen of [3, 4, 5] as const) {
      const bw = linkBandwidth({ gen, width: 16, mps: 256 });
      expect(Math.abs(bw - PUBLISHED[gen]) / PUBLISHED[gen]).toBeLessThan(0.1);
    }
  });

  it('PERF-02: encoding per generation: 8b/10b, 128b/130b, FLIT', () => {
    expect(rawBandwidth(1, 1)).toBeCloseTo(0.25, 6);
    expect(rawBandwidth(2, 16)).toBeCloseTo(8, 6);
    expect(rawBandwidth(3, 16)).toBeCloseTo(15.754, 3);
    expect(rawBandwidth(5, 16)).toBeCloseTo(63.015, 3);
    expect(rawBandwidth(6, 16)).toBeCloseTo(128, 6);
    // Larger payloads amortise the TLP overhead; narrower links scale down linearly.
    expect(linkBandwidth({ gen: 4, width: 16, mps: 128 })).toBeLessThan(linkBandwidth({ gen: 4, width: 16, mps: 512 }));
    expect(linkBandwidth({ gen: 4, width: 4, mps: 256 }) * 4).toBeCloseTo(linkBandwidth({ gen: 4, width: 16, mps: 256 }), 9);
    expect(linkBandwidth({ gen: 6, width: 16, mps: 256 })).toBeGreaterThan(linkBandwidth({ gen: 5, width: 16, mps: 256 }) * 1.8);
  });

  it('PERF-03: a small MRRS with a long round trip limits reads', () => {
    const l = { gen: 4 as const, width: 16 as const, mps: 256, mrrs: 128 };
    expect(readBandwidth(l, 2000, 32)).toBeCloseTo((32 * 128) / 2000, 9);
    expect(readBandwidth({ ...l, mrrs: 4096 }, 2000, 256)).toBe(linkBandwidth(l));
  });

  it('PERF-04: bad link attributes are EINVAL naming the field', () => {
    expect(() => checkLinkAttrs('t', 'fabric.links.x', { gen: 7 })).toThrow(/fabric\.links\.x\.gen/);
    expect(() => checkLinkAttrs('t', 'l', { width: 3 })).toThrow(/l\.width/);
    expect(() => checkLinkAttrs('t', 'l', { speed: 3 })).toThrow(/unknown field/);
  });

  it('PERF-05: max-min fair share: two flows on one link halve it; a capped flow leaves the rest to the other', () => {
    const cap = new Map([['l', 10], ['m', 100]]);
    const two = shareLinks([{ bytes: 1000, resources: ['l'], cap: Infinity, fixedNs: 0 }, { bytes: 1000, resources: ['l'], cap: Infinity, fixedNs: 0 }], cap);
    expect(two).toEqual([200, 200]);
    // One flow capped at 2: the other gets 8 until the first ends, then 10.
    const [a, b] = shareLinks([{ bytes: 200, resources: ['l'], cap: 2, fixedNs: 5 }, { bytes: 1000, resources: ['l', 'm'], cap: Infinity, fixedNs: 0 }], cap);
    expect(a).toBeCloseTo(105, 6);
    expect(b).toBeCloseTo(100 + (1000 - 800) / 10, 6);
  });
});

describe('formatNs', () => {
  it('PERF-06: three significant digits, units ns/us/ms/s', async () => {
    const { formatNs, formatTiming } = await import('../../src/time/model.js');
    expect([formatNs(812), formatNs(2900), formatNs(600_000), formatNs(1_250_000), formatNs(999_999), formatNs(2e9)]).toEqual(['812 ns', '2.9 us', '600 us', '1.25 ms', '1 ms', '2 s']);
    expect(formatTiming({ startNs: 0, durationNs: 2900, bytes: 65536, rateGBps: 65536 / 2900, translationNs: 0, latencyNs: 0, path: '', bottleneck: '' })).toBe('65536 bytes in 2.9 us, 22.6 GB/s');
  });
});
