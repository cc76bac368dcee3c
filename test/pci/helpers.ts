import { type CpuVendor, type Device, type PciFunction, type Topology, TopologyBuilder } from '../../src/pci/index.js';

export interface LabOptions {
  cpu?: [CpuVendor, number];
  host?: { vendor: number; device: number } | null;
  /** ACS bits on the switch upstream port. */
  upstreamAcs?: string[];
  /** ACS bits on both downstream ports used by A and B. */
  downstreamAcs?: string[];
  disableAcsRedir?: string;
}

/**
 * The standard lab: one host bridge with a host device at 00.0 and three root ports.
 *
 *   00:00.0 host
 *   00:01.0 rp0 [01-05] - 01:00.0 sw0.up [02-05] - 02:00.0 dp0 [03] - 03:00.0 A (functions 0, 1)
 *                                                - 02:01.0 dp1 [04] - 04:00.0 B
 *                                                - 02:02.0 dp2 [05] - 05:00.0 C
 *   00:02.0 rp1 [06]    - 06:00.0 D
 *   00:03.0 rp2 [07]    - 07:00.0 E
 *   platform: dsp (no parent), aux (parent B)
 */
export function lab(o: LabOptions = {}): Topology {
  const b = new TopologyBuilder();
  if (o.cpu) b.cpu(o.cpu[0], o.cpu[1]);
  b.hostBridge('hb0', {
    hostDevice: o.host === undefined ? { vendor: 0x8086, device: 0x2020 } : o.host,
    rootPorts: [{ name: 'rp0' }, { name: 'rp1' }, { name: 'rp2' }],
  });
  const dsAcs = o.downstreamAcs ? { acs: o.downstreamAcs } : {};
  b.switch('sw0', {
    parent: 'rp0',
    upstream: o.upstreamAcs ? { acs: o.upstreamAcs } : {},
    downstream: [{ name: 'dp0', ...dsAcs }, { name: 'dp1', ...dsAcs }, { name: 'dp2' }],
  });
  const bar = { bars: [{ size: '64M', prefetchable: true }] };
  b.endpoint('A', { parent: 'dp0', vendor: 0x1da3, device: 0x1020, functions: [{ ...bar }, { function: 1, ...bar }] });
  b.endpoint('B', { parent: 'dp1', vendor: 0x15b3, device: 0x101b, ...bar });
  b.endpoint('C', { parent: 'dp2', vendor: 0x144d, device: 0xa80a, ...bar });
  b.endpoint('D', { parent: 'rp1', vendor: 0x10de, device: 0x2330, ...bar });
  b.endpoint('E', { parent: 'rp2', vendor: 0x10de, device: 0x2330, ...bar });
  b.platform('dsp');
  b.platform('aux', { parent: 'B' });
  return b.build(o.disableAcsRedir ? { disableAcsRedir: o.disableAcsRedir } : {});
}

export const pci = (t: Topology, n: string): PciFunction => t.pci(n);
export const dev = (t: Topology, n: string): Device => t.get(n);
