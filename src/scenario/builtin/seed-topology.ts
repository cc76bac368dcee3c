/**
 * The seed machine of the 2021 habanalabs thread, as a topology description (a TS module, so
 * it bundles for the browser):
 *  - host bridge hb0: a whitelisted Intel Skylake-E root complex (8086:2020) with three root
 *    ports; on rp0 a PCIe switch whose downstream ports do not redirect (no ACS RR/CR), with a
 *    Gaudi2 (gaudi0) and a ConnectX-6 NIC (nic0) below it: gaudi0 <-> nic0 is BUS_ADDR;
 *  - a second NIC (nic1) and a GPU (gpu0) on the other root ports of hb0: THRU_HOST_BRIDGE;
 *  - host bridge hb1: a root complex the kernel does not whitelist, with a third NIC (nic2):
 *    NOT_SUPPORTED from anything below hb0.
 */
import type { TopologyDescription } from '../../index.js';

/**
 * The seed machine (`topology: builtin` or `builtin:seed`): hb0 (whitelisted Skylake-E) with
 * gaudi0 and nic0 under one switch (BUS_ADDR), nic1 and gpu0 on other root ports
 * (THRU_HOST_BRIDGE); hb1 (not whitelisted) with nic2 (NOT_SUPPORTED from hb0).
 */
export const SEED_TOPOLOGY: TopologyDescription = {
  cpu: { vendor: 'intel', family: 6 },
  hostBridges: [
    {
      name: 'hb0',
      segment: 0,
      hostDevice: { name: 'hb0.dmi', vendor: '0x8086', device: '0x2020' },
      rootPorts: [
        { name: 'rp0', slot: 1, acs: ['SV', 'RR', 'CR', 'UF'] },
        { name: 'rp1', slot: 2, acs: ['SV', 'RR', 'CR', 'UF'] },
        { name: 'rp2', slot: 3, acs: ['SV', 'RR', 'CR', 'UF'] },
      ],
    },
    {
      name: 'hb1',
      segment: 0,
      rootBus: 0x80,
      hostDevice: { name: 'hb1.host', vendor: '0x1234', device: '0x5678' },
      rootPorts: [{ name: 'rp3', slot: 1, acs: ['SV', 'RR', 'CR', 'UF'] }],
    },
  ],
  switches: [
    {
      name: 'sw0',
      parent: 'rp0',
      vendor: '0x1000',
      device: '0xc010',
      downstream: [
        { name: 'sw0.dp0', acs: ['SV', 'UF'] },
        { name: 'sw0.dp1', acs: ['SV', 'UF'] },
      ],
    },
  ],
  endpoints: [
    {
      name: 'gaudi0',
      parent: 'sw0.dp0',
      vendor: '0x1da3',
      device: '0x1020',
      driver: 'habanalabs',
      bars: [
        { index: 0, size: '32G', prefetchable: true },
        { index: 2, size: '1M' },
      ],
    },
    { name: 'nic0', parent: 'sw0.dp1', vendor: '0x15b3', device: '0x101b', driver: 'mlx5_core', bars: [{ size: '32M', prefetchable: true }] },
    { name: 'nic1', parent: 'rp1', vendor: '0x15b3', device: '0x101d', driver: 'mlx5_core', bars: [{ size: '32M', prefetchable: true }] },
    {
      name: 'gpu0',
      parent: 'rp2',
      vendor: '0x1002',
      device: '0x740f',
      driver: 'amdgpu',
      bars: [
        { index: 0, size: '64G', prefetchable: true },
        { index: 2, size: '2M', prefetchable: true },
        { index: 5, size: '1M' },
      ],
    },
    { name: 'nic2', parent: 'rp3', vendor: '0x15b3', device: '0x101d', driver: 'mlx5_core', bars: [{ size: '32M', prefetchable: true }] },
  ],
};

/**
 * The seed machine with one more device under the switch: an FPGA card bound to vfio-pci
 * (fpga0, 10ee:9038, BAR0 256M), the revocable exporter of the 2025+ kernels.
 */
export const SEED_VFIO_TOPOLOGY: TopologyDescription = {
  ...SEED_TOPOLOGY,
  switches: SEED_TOPOLOGY.switches!.map((sw) => sw.name !== 'sw0' ? sw : {
    ...sw, downstream: [...(sw.downstream as object[]), { name: 'sw0.dp2', acs: ['SV', 'UF'] }],
  }) as TopologyDescription['switches'],
  endpoints: [
    ...SEED_TOPOLOGY.endpoints!,
    { name: 'fpga0', parent: 'sw0.dp2', vendor: '0x10ee', device: '0x9038', driver: 'vfio-pci', bars: [{ size: '256M', prefetchable: true }] },
  ],
};
