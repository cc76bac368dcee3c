/**
 * PCIe link arithmetic: what a link of a given generation, width and max payload size carries
 * per nanosecond once encoding, TLP framing and DLLPs are paid. The figures are the PCIe base
 * specification's (transfer rates, 8b/10b, 128b/130b, 256-byte FLITs); docs/performance-model.md
 * works the numbers through and cites the measurements the tests compare against.
 */
import { SimError } from '../../bindings/errors.js';

/** A PCIe generation (the Link Status register's Current Link Speed): 1 (2.5 GT/s) to 6 (64 GT/s). */
export type PcieGen = 1 | 2 | 3 | 4 | 5 | 6;
/** Every {@link PcieGen}, in order. */
export const PCIE_GENS: readonly PcieGen[] = [1, 2, 3, 4, 5, 6];
/** The link widths a link can train to (Negotiated Link Width), in lanes. */
export const PCIE_WIDTHS = [1, 2, 4, 8, 16] as const;
/** A link width in lanes: x1, x2, x4, x8 or x16. */
export type PcieWidth = (typeof PCIE_WIDTHS)[number];
/** Max payload size and max read request size: 128..4096, powers of two (Device Control register). */
export const PCIE_SIZES = [128, 256, 512, 1024, 2048, 4096] as const;

/** What a link trains to, and the sizes the kernel programmed (pcie_bus_config). */
export interface LinkAttrs {
  gen: PcieGen;
  width: PcieWidth;
  /** Max payload size, bytes. */
  mps: number;
  /** Max read request size, bytes. */
  mrrs: number;
}

/** Gen4 x16, MPS 256, MRRS 512: what the accelerators, NICs and GPUs of the seed machine train to. */
export const DEFAULT_LINK: Readonly<LinkAttrs> = Object.freeze({ gen: 4, width: 16, mps: 256, mrrs: 512 });

/** Giga-transfers per second per lane. */
const GTS: Record<PcieGen, number> = { 1: 2.5, 2: 5, 3: 8, 4: 16, 5: 32, 6: 64 };

/** Line-code efficiency: 8b/10b (gen 1-2), 128b/130b (gen 3-5), FLIT mode (gen 6: 1b/1b, PAM4). */
export function encodingEfficiency(gen: PcieGen): number {
  return gen <= 2 ? 8 / 10 : gen <= 5 ? 128 / 130 : 1;
}

/** The encoding's name, for reports. */
export function encodingName(gen: PcieGen): string {
  return gen <= 2 ? '8b/10b' : gen <= 5 ? '128b/130b' : 'FLIT';
}

/**
 * Bytes per TLP besides its payload. Gen 1-2: STP and END symbols (2), sequence number (2), a
 * 4-DW header (16, 64-bit addresses), LCRC (4). Gen 3-5: a 4-byte STP token carrying length and
 * sequence number, the header, LCRC. Gen 6 FLIT mode: the header only (CRC and FEC are per FLIT).
 */
export function tlpOverhead(gen: PcieGen): number {
  return gen <= 2 ? 24 : gen <= 5 ? 24 : 16;
}

/**
 * DLLP bytes per TLP: an Ack and an UpdateFC (8 bytes each with framing) for every two TLPs
 * of a long stream (receivers coalesce Acks; the ratio is this model's choice, see the docs). In FLIT mode
 * DLLPs ride in the FLIT's own 6 bytes (counted in the FLIT efficiency instead).
 */
export function dllpPerTlp(gen: PcieGen): number {
  return gen <= 5 ? 8 : 0;
}

/** FLIT efficiency (gen 6): 236 TLP bytes of every 256-byte FLIT (6 DLLP, 8 CRC, 6 FEC). */
function flitEfficiency(gen: PcieGen): number {
  return gen === 6 ? 236 / 256 : 1;
}

/** Raw bytes per ns after the line code, one direction: GT/s x lanes x efficiency / 8. */
export function rawBandwidth(gen: PcieGen, width: number): number {
  return (GTS[gen] * width * encodingEfficiency(gen)) / 8;
}

/**
 * Payload bytes per ns of a link for writes (posted TLPs) of `mps`-byte payloads, one direction:
 * the raw rate times payload / (payload + TLP overhead + DLLPs), times the FLIT efficiency.
 * Also what read completions carry (completions are split at MPS and the 64-byte RCB, the
 * larger of which is MPS here).
 */
export function linkBandwidth(attrs: Pick<LinkAttrs, 'gen' | 'width' | 'mps'>): number {
  const { gen, width, mps } = attrs;
  return rawBandwidth(gen, width) * (mps / (mps + tlpOverhead(gen) + dllpPerTlp(gen))) * flitEfficiency(gen);
}

/**
 * The rate a requester reads at: completions at the link rate, but no more than `tags` read
 * requests of MRRS bytes in flight per round trip (8-bit tags: 256 outstanding; the
 * Little's-law bound a small MRRS or a long round trip hits first).
 */
export function readBandwidth(attrs: LinkAttrs, roundTripNs: number, tags = 256): number {
  const link = linkBandwidth(attrs);
  if (roundTripNs <= 0) return link;
  return Math.min(link, (tags * attrs.mrrs) / roundTripNs);
}

/** Checks a link description (from a topology file or options). Throws EINVAL naming `path`. */
export function checkLinkAttrs(op: string, path: string, v: unknown, base: Readonly<LinkAttrs> = DEFAULT_LINK): LinkAttrs {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SimError('EINVAL', op, `${path}: expected an object { gen, width, mps, mrrs }`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['gen', 'width', 'mps', 'mrrs'].includes(k)) throw new SimError('EINVAL', op, `${path}.${k}: unknown field (expected gen, width, mps, mrrs)`);
  }
  const pick = <T extends number>(k: string, allowed: readonly number[], dflt: T): T => {
    const x = o[k];
    if (x === undefined) return dflt;
    if (typeof x !== 'number' || !allowed.includes(x)) throw new SimError('EINVAL', op, `${path}.${k}: ${JSON.stringify(x)} is not one of ${allowed.join(', ')}`);
    return x as T;
  };
  return {
    gen: pick('gen', PCIE_GENS, base.gen), width: pick('width', PCIE_WIDTHS, base.width),
    mps: pick('mps', PCIE_SIZES, base.mps), mrrs: pick('mrrs', PCIE_SIZES, base.mrrs),
  };
}

/** The link a pair of ports trains to: the lower generation and width; MPS and MRRS as programmed. */
export function trainLink(a: LinkAttrs, b: LinkAttrs): LinkAttrs {
  return {
    gen: Math.min(a.gen, b.gen) as PcieGen, width: Math.min(a.width, b.width) as PcieWidth,
    mps: Math.min(a.mps, b.mps), mrrs: a.mrrs,
  };
}

/** "Gen4 x16 (128b/130b), MPS 256". */
export function describeLink(l: LinkAttrs): string {
  return `Gen${l.gen} x${l.width} (${encodingName(l.gen)}), MPS ${l.mps}, MRRS ${l.mrrs}`;
}
