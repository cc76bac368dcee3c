/**
 * Building a topology in code. The builder only collects a `TopologyDescription` (the same
 * shape as the JSON form) and hands it to the same checker, so code and files fail alike:
 *
 *   const topo = new TopologyBuilder()
 *     .cpu('amd', 0x19)
 *     .hostBridge('hb0', { hostDevice: { vendor: 0x1022, device: 0x14a4 }, rootPorts: [{ name: 'rp0' }] })
 *     .switch('sw0', { parent: 'rp0', downstream: 2 })
 *     .endpoint('gpu0', { parent: 'sw0.dp0', vendor: 0x10de, device: 0x2330, bars: [{ size: '32G', prefetchable: true }] })
 *     .build();
 */
import type { FabricDescription } from './fabric.js';
import type { BuildOptions } from './enumerate.js';
import {
  type EndpointDescription,
  type HostBridgeDescription,
  type NumberLike,
  parseTopology,
  type PlatformDeviceDescription,
  type SwitchDescription,
  type TopologyDescription,
} from './describe.js';
import type { CpuVendor, Topology } from './topology.js';

/**
 * Builds a {@link Topology} in code: each call adds one element of a {@link TopologyDescription}
 * (the JSON form), and {@link TopologyBuilder.build} checks and enumerates it like
 * {@link parseTopology}. Nothing is checked before `build`.
 */
export class TopologyBuilder {
  private readonly desc: Required<TopologyDescription>;

  constructor() {
    this.desc = { cpu: { vendor: 'intel', family: 6 }, hostBridges: [], switches: [], endpoints: [], platformDevices: [], fabric: {} };
  }

  /** The boot CPU (the AMD Zen rule reads it). Default: Intel family 6. */
  cpu(vendor: CpuVendor, family: NumberLike): this {
    this.desc.cpu = { vendor, family };
    return this;
  }

  /** Adds a host bridge (a PCI root complex with its root ports and optional host device 00.0). */
  hostBridge(name: string, d: Omit<HostBridgeDescription, 'name'> = {}): this {
    this.desc.hostBridges.push({ name, ...d });
    return this;
  }

  /** Adds a PCIe switch below `d.parent` (a root port or another switch's downstream port). */
  switch(name: string, d: Omit<SwitchDescription, 'name'>): this {
    this.desc.switches.push({ name, ...d });
    return this;
  }

  /** Adds an endpoint (one or more functions with BARs) below `d.parent`, or an RCiEP on a root bus. */
  endpoint(name: string, d: Omit<EndpointDescription, 'name'>): this {
    this.desc.endpoints.push({ name, ...d });
    return this;
  }

  /** Adds a non-PCI platform device, optionally parented to another device. */
  platform(name: string, d: Omit<PlatformDeviceDescription, 'name'> = {}): this {
    this.desc.platformDevices.push({ name, ...d });
    return this;
  }

  /** Sets a function's link capability (fabric.links): generation, width, MPS, MRRS. */
  link(name: string, attrs: NonNullable<FabricDescription['links']>[string]): this {
    (this.desc.fabric.links ??= {})[name] = { ...attrs };
    return this;
  }

  /** Sets a host bridge's P2P profile (fabric.p2p): bandwidth cap and added latency. */
  p2pProfile(hostBridge: string, profile: NonNullable<FabricDescription['p2p']>[string]): this {
    (this.desc.fabric.p2p ??= {})[hostBridge] = { ...profile };
    return this;
  }

  /** The description collected so far (a copy); JSON.stringify-able unless bigints were used. */
  description(): TopologyDescription {
    return structuredClone(this.desc);
  }

  /**
   * Checks the description and builds the topology.
   * @throws {@link SimError} EINVAL naming the path of the first bad field (unknown parent,
   *   duplicate name, bad BAR size or address, bus numbers exhausted, ...); nothing is built.
   */
  build(options: BuildOptions = {}): Topology {
    return parseTopology(this.description(), options);
  }
}
