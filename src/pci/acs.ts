/**
 * ACS (Access Control Services) control register bits, as in PCI_ACS_CTRL of
 * include/uapi/linux/pci_regs.h. Only RR, CR and EC matter to P2PDMA: any of them makes a
 * bridge send peer traffic up towards the root complex instead of across (pci_bridge_has_acs_redir).
 *
 *   bit  6    5    4    3    2    1    0
 *      +----+----+----+----+----+----+----+
 *      | DT | EC | UF | CR | RR | TB | SV |
 *      +----+----+----+----+----+----+----+
 *        ^    ^         ^    ^
 *        |    +---------+----+-- redirect bits (P2PDMA counts these)
 */
import { SimError } from '../../bindings/errors.js';

/** ACS Source Validation. */
export const PCI_ACS_SV = 0x0001;
/** ACS Translation Blocking. */
export const PCI_ACS_TB = 0x0002;
/** ACS P2P Request Redirect: peer requests go up to the root complex. */
export const PCI_ACS_RR = 0x0004;
/** ACS P2P Completion Redirect. */
export const PCI_ACS_CR = 0x0008;
/** ACS Upstream Forwarding. */
export const PCI_ACS_UF = 0x0010;
/** ACS P2P Egress Control. */
export const PCI_ACS_EC = 0x0020;
/** ACS Direct Translated P2P. */
export const PCI_ACS_DT = 0x0040;

/** The bits that redirect peer-to-peer TLPs upstream. */
export const PCI_ACS_REDIRECT_MASK = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC;

/** The name of one ACS control bit, as the scenario files and `describe` output spell it. */
export type AcsBit = 'SV' | 'TB' | 'RR' | 'CR' | 'UF' | 'EC' | 'DT';

/** Each ACS bit name's value in the control register. */
export const ACS_BITS: Readonly<Record<AcsBit, number>> = {
  SV: PCI_ACS_SV,
  TB: PCI_ACS_TB,
  RR: PCI_ACS_RR,
  CR: PCI_ACS_CR,
  UF: PCI_ACS_UF,
  EC: PCI_ACS_EC,
  DT: PCI_ACS_DT,
};

const ACS_ORDER: readonly AcsBit[] = ['SV', 'TB', 'RR', 'CR', 'UF', 'EC', 'DT'];
const ACS_ALL = 0x7f;

/**
 * An ACS control value from a list of bit names (`['RR', 'CR']`), a number (`0x1d`) or a hex
 * string (`'0x1d'`). `op` and `path` name the operation and field in error messages.
 * @throws {@link SimError} EINVAL for a value over 16 bits, reserved bits (above 0x7f), an
 *   unknown bit name or any other type.
 */
export function parseAcsCtrl(value: unknown, op: string, path: string): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
      throw new SimError('EINVAL', op, `${path}: ACS control must be a 16-bit value, got ${value}`);
    }
    if ((value & ~ACS_ALL) !== 0) {
      throw new SimError('EINVAL', op, `${path}: ACS control 0x${value.toString(16)} sets reserved bits (only 0x7f are defined)`);
    }
    return value;
  }
  if (typeof value === 'string' && /^0x[0-9a-f]+$/i.test(value)) {
    return parseAcsCtrl(Number.parseInt(value, 16), op, path);
  }
  if (Array.isArray(value)) {
    let ctrl = 0;
    value.forEach((name, i) => {
      const key = typeof name === 'string' ? (name.toUpperCase() as AcsBit) : undefined;
      if (key === undefined || !(key in ACS_BITS)) {
        throw new SimError('EINVAL', op, `${path}[${i}]: unknown ACS bit ${JSON.stringify(name)} (expected one of ${ACS_ORDER.join(', ')})`);
      }
      ctrl |= ACS_BITS[key];
    });
    return ctrl;
  }
  throw new SimError('EINVAL', op, `${path}: ACS control must be a list of bit names like ["RR","CR","EC"] or a number`);
}

/** The names of the bits set in an ACS control value, in register order. */
export function acsBitNames(ctrl: number): AcsBit[] {
  return ACS_ORDER.filter((b) => (ctrl & ACS_BITS[b]) !== 0);
}

/** True when the bridge redirects P2P TLPs (RR, CR or EC set). No ACS capability: false. */
export function acsRedirects(ctrl: number | null): boolean {
  return ctrl !== null && (ctrl & PCI_ACS_REDIRECT_MASK) !== 0;
}

/** One entry of `pci=disable_acs_redir=`: `[segment:]bus:device.function`. */
export interface BdfPattern {
  /** PCI segment (domain), 0 when not given. */
  segment: number;
  /** Bus number. */
  bus: number;
  /** Device number, 0..31. */
  slot: number;
  /** Function number, 0..7. */
  fn: number;
}

/**
 * Parses the value of the kernel parameter `pci=disable_acs_redir=` (entries separated by `;`).
 * Only explicit addresses are supported, not the `pci:vendor:device` form.
 * @throws {@link SimError} EINVAL for an entry that is not `[segment:]bus:device.function` or a device above 0x1f.
 */
export function parseDisableAcsRedir(param: string, op: string): BdfPattern[] {
  if (param.trim() === '') return [];
  return param.split(';').map((raw, i) => {
    const m = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(raw.trim());
    if (!m) {
      throw new SimError('EINVAL', op, `disableAcsRedir[${i}]: ${JSON.stringify(raw)} is not [segment:]bus:device.function`);
    }
    const slot = Number.parseInt(m[3]!, 16);
    if (slot > 31) throw new SimError('EINVAL', op, `disableAcsRedir[${i}]: device ${m[3]} is above 1f`);
    return {
      segment: m[1] === undefined ? 0 : Number.parseInt(m[1], 16),
      bus: Number.parseInt(m[2]!, 16),
      slot,
      fn: Number.parseInt(m[4]!, 10),
    };
  });
}
