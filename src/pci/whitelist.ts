/**
 * When peer traffic has to cross the root complex, the kernel allows it only on CPUs it knows
 * route such traffic: AMD Zen and newer, or a root complex whose first root-bus device is in
 * a table of known-good host bridges (drivers/pci/p2pdma.c, pci_p2pdma_whitelist).
 */
import type { CpuInfo, HostBridge, PciFunction } from './topology.js';

/** Intel's PCI vendor ID (include/linux/pci_ids.h). */
export const PCI_VENDOR_ID_INTEL = 0x8086;
/** Google's PCI vendor ID. */
export const PCI_VENDOR_ID_GOOGLE = 0x1ae0;
/** NVIDIA's PCI vendor ID. */
export const PCI_VENDOR_ID_NVIDIA = 0x10de;
/** AMD's PCI vendor ID. */
export const PCI_VENDOR_ID_AMD = 0x1022;
/** Matches any device ID of the vendor. */
export const PCI_ANY_ID = -1;
/** The entry is good only when provider and client sit under this same host bridge. */
export const REQ_SAME_HOST_BRIDGE = 1 << 0;

/** One row of the P2PDMA host-bridge whitelist (pci_p2pdma_whitelist in drivers/pci/p2pdma.c). */
export interface WhitelistEntry {
  /** PCI vendor ID of the host bridge device. */
  readonly vendor: number;
  /** A device ID, or PCI_ANY_ID. */
  readonly device: number;
  /** REQ_SAME_HOST_BRIDGE or 0. */
  readonly flags: number;
  /** The kernel's comment for the row (the CPU family). */
  readonly comment: string;
}

const e = (vendor: number, device: number, flags: number, comment: string): WhitelistEntry => ({ vendor, device, flags, comment });
const I = PCI_VENDOR_ID_INTEL;

/** The table, in the kernel's order (the first vendor/device match decides). */
export const P2PDMA_WHITELIST: readonly WhitelistEntry[] = Object.freeze([
  e(I, 0x3c00, REQ_SAME_HOST_BRIDGE, 'Intel Xeon E5/Core i7'),
  e(I, 0x3c01, REQ_SAME_HOST_BRIDGE, 'Intel Xeon E5/Core i7'),
  e(I, 0x2f00, REQ_SAME_HOST_BRIDGE, 'Intel Xeon E7 v3/Xeon E5 v3/Core i7'),
  e(I, 0x2f01, REQ_SAME_HOST_BRIDGE, 'Intel Xeon E7 v3/Xeon E5 v3/Core i7'),
  e(I, 0x2030, 0, 'Intel Skylake-E'),
  e(I, 0x2031, 0, 'Intel Skylake-E'),
  e(I, 0x2032, 0, 'Intel Skylake-E'),
  e(I, 0x2033, 0, 'Intel Skylake-E'),
  e(I, 0x2020, 0, 'Intel Skylake-E'),
  e(I, 0x09a2, 0, 'Intel Ice Lake-SP'),
  e(I, 0x0b25, 0, 'Intel DSA SPR0'),
  e(I, 0x0cfe, 0, 'Intel IAX SPR0'),
  e(I, 0x11fb, 0, 'Intel DSA GNRD'),
  e(I, 0x1212, 0, 'Intel DSA DMR'),
  e(I, 0x1216, 0, 'Intel IAA DMR'),
  e(I, 0x4940, 0, 'Intel QAT 4xxx'),
  e(I, 0x4942, 0, 'Intel QAT 401xx'),
  e(I, 0x4944, 0, 'Intel QAT 402xx'),
  e(I, 0x4946, 0, 'Intel QAT 420xx'),
  e(I, 0x4948, 0, 'Intel QAT 6xxx'),
  e(PCI_VENDOR_ID_GOOGLE, PCI_ANY_ID, 0, 'Google SoCs'),
  e(PCI_VENDOR_ID_NVIDIA, 0x2f95, 0, 'NVIDIA CPUs'),
  e(PCI_VENDOR_ID_NVIDIA, 0x2f96, 0, 'NVIDIA CPUs'),
  e(PCI_VENDOR_ID_NVIDIA, 0x2f97, 0, 'NVIDIA CPUs'),
  e(PCI_VENDOR_ID_NVIDIA, 0x2f98, 0, 'NVIDIA CPUs'),
]);

/** The first table entry for a vendor/device pair, or undefined. */
export function findWhitelistEntry(vendor: number, device: number): WhitelistEntry | undefined {
  return P2PDMA_WHITELIST.find((x) => x.vendor === vendor && (x.device === PCI_ANY_ID || x.device === device));
}

/** cpu_supports_p2pdma(): an AMD CPU of family 0x17 (Zen) or newer. */
export function cpuSupportsP2pdma(cpu: CpuInfo): boolean {
  return cpu.vendor === 'amd' && cpu.family >= 0x17;
}

/**
 * pci_host_bridge_dev(): the first device on the host bridge's root bus, but only if it is at
 * devfn 00.0 or is a root port; otherwise null (and the whitelist cannot match).
 */
export function hostBridgeDev(host: HostBridge): PciFunction | null {
  const root = host.rootBus.devices[0];
  if (!root) return null;
  if (root.devfn === 0) return root;
  if (root.kind === 'root-port') return root;
  return null;
}

/** A message the whitelist check would print, already formatted for the kernel log. */
export interface WhitelistWarning {
  /** The device the kernel prints the warning for (pci_warn). */
  readonly dev: PciFunction;
  /** The message text. */
  readonly text: string;
}

/** The answer of {@link hostBridgeWhitelist}: may peer traffic cross these host bridges? */
export interface HostBridgeCheck {
  /** Whether the whitelist allows the path. */
  readonly ok: boolean;
  /** The 'Host bridge not in P2PDMA whitelist' warnings, in the order the kernel prints them. */
  readonly warnings: WhitelistWarning[];
  /** Why the answer is what it is, for people. */
  readonly detail: string;
}

function checkOne(host: HostBridge, same: boolean, warnings: WhitelistWarning[]): { ok: boolean; detail: string } {
  const root = hostBridgeDev(host);
  if (!root) {
    return { ok: false, detail: `${host.devName}: first device on the root bus is neither 00.0 nor a root port` };
  }
  const entry = findWhitelistEntry(root.vendor, root.device);
  if (entry) {
    if ((entry.flags & REQ_SAME_HOST_BRIDGE) !== 0 && !same) {
      return { ok: false, detail: `${host.devName}: ${root.ids} is whitelisted only within one host bridge (REQ_SAME_HOST_BRIDGE)` };
    }
    return { ok: true, detail: `${host.devName}: ${root.ids} is whitelisted (${entry.comment})` };
  }
  warnings.push({ dev: root, text: `Host bridge not in P2PDMA whitelist: ${root.ids}` });
  return { ok: false, detail: `${host.devName}: host bridge ${root.ids} is not in the P2PDMA whitelist` };
}

/**
 * host_bridge_whitelist(): one host bridge is checked with same=true; two must both pass with
 * same=false, and the second is not looked at when the first fails (so it prints nothing).
 */
export function hostBridgeWhitelist(a: PciFunction, b: PciFunction): HostBridgeCheck {
  const warnings: WhitelistWarning[] = [];
  const ha = a.hostBridge;
  const hb = b.hostBridge;
  if (ha === hb) {
    const r = checkOne(ha, true, warnings);
    return { ok: r.ok, warnings, detail: r.detail };
  }
  const ra = checkOne(ha, false, warnings);
  if (!ra.ok) return { ok: false, warnings, detail: ra.detail };
  const rb = checkOne(hb, false, warnings);
  return { ok: rb.ok, warnings, detail: rb.ok ? `${ra.detail}; ${rb.detail}` : rb.detail };
}
