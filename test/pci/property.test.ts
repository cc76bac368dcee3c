import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { P2pdma, type PciFunction, TopologyBuilder } from '../../src/pci/index.js';

/**
 * Random trees of switches; checks the algorithm against a simple model: distance is the
 * number of edges between the two functions counted through their common upstream device
 * (or both whole chains when there is none), and BUS_ADDR means a common device and no
 * redirecting device on either chain up to it.
 */
interface Shape {
  ports: number[]; // per root port: 0 = endpoint directly, n = switch with n downstream ports
  acs: boolean[];
  whitelisted: boolean;
}

const shape = fc.record({
  ports: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 }),
  acs: fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
  whitelisted: fc.boolean(),
});

function build(s: Shape) {
  const b = new TopologyBuilder().hostBridge('hb', {
    hostDevice: s.whitelisted ? { vendor: 0x8086, device: 0x2020 } : { vendor: 0x1234, device: 1 },
    rootPorts: s.ports.map((_, i) => ({ name: `rp${i}`, acs: s.acs[i] ? ['RR'] : [] })),
  });
  let k = 5;
  s.ports.forEach((n, i) => {
    if (n === 0) b.endpoint(`e${i}`, { parent: `rp${i}`, vendor: 1, device: 1 });
    else {
      b.switch(`s${i}`, { parent: `rp${i}`, upstream: { acs: s.acs[k++] ? ['CR'] : [] }, downstream: Array.from({ length: n }, (_, j) => ({ name: `s${i}.${j}`, acs: s.acs[k++ % 20] ? ['EC'] : [] })) });
      for (let j = 0; j < n; j++) b.endpoint(`e${i}.${j}`, { parent: `s${i}.${j}`, vendor: 1, device: 1, functions: [{}, { function: 1 }] });
    }
  });
  return b.build();
}

const chain = (f: PciFunction): PciFunction[] => {
  const out: PciFunction[] = [];
  for (let x: PciFunction | null = f; x; x = x.upstream) out.push(x);
  return out;
};

describe('P2PDMA against a path model', () => {
  it('distance, symmetry and BUS_ADDR follow the tree', () => {
    fc.assert(
      fc.property(shape, (s) => {
        const t = build(s);
        const p = new P2pdma(t);
        const eps = t.endpoints();
        for (const a of eps) {
          for (const c of eps) {
            const r = p.decide(a, c);
            const ca = chain(a);
            const cc = chain(c);
            const common = ca.find((x) => cc.includes(x)) ?? null;
            const dist = common ? ca.indexOf(common) + cc.indexOf(common) : ca.length + cc.length;
            expect(r.distance).toBe(dist);
            expect(r.commonUpstream).toBe(common);
            const path = common ? [...ca.slice(0, ca.indexOf(common) + 1), ...cc.slice(0, cc.indexOf(common))] : [];
            const direct = common !== null && path.every((x) => !x.acsRedirect);
            expect(r.mapType).toBe(direct ? 'BUS_ADDR' : s.whitelisted ? 'THRU_HOST_BRIDGE' : 'NOT_SUPPORTED');
            const back = p.decide(c, a);
            expect([back.mapType, back.distance]).toEqual([r.mapType, r.distance]);
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});
