/**
 * Independent PTE decoders for the core's page-table formats, written from the spec tables
 * (shared/spec/iommu.md §C1 ARM VMSAv8-64 4 KiB granule, §C2 VT-d second stage), NOT from the
 * core's own constants: a test that decodes with the writer's constants can never catch a
 * wrongly placed bit.
 */
import type { Simulator } from '../../../src/index.js';

const bit = (e: bigint, n: number): boolean => ((e >> BigInt(n)) & 1n) === 1n;
const field = (e: bigint, hi: number, lo: number): bigint => (e >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n);
const bits = (hi: number, lo: number): bigint => ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);

// ---- §C2 VT-d second-stage entry --------------------------------------------------------------
export interface VtdEntry {
  raw: bigint;
  /** bit 0 */ r: boolean;
  /** bit 1 */ w: boolean;
  /** bit 2 */ x: boolean;
  /** bits 5:3 */ emt: number;
  /** bit 6 */ ipat: boolean;
  /** bit 7: leaf at L2/L3 */ ps: boolean;
  /** bit 8 / 9 */ a: boolean;
  d: boolean;
  /** bit 11 */ snp: boolean;
  /** bits 51:12 */ addr: bigint;
  /** "present" iff R or W */ present: boolean;
  /** bits 61:52 and 63 (ignored) and 62 (TM) */ high: bigint;
}

export function decodeVtd(raw: bigint): VtdEntry {
  return {
    raw,
    r: bit(raw, 0), w: bit(raw, 1), x: bit(raw, 2),
    emt: Number(field(raw, 5, 3)), ipat: bit(raw, 6), ps: bit(raw, 7),
    a: bit(raw, 8), d: bit(raw, 9), snp: bit(raw, 11),
    addr: raw & bits(51, 12),
    present: bit(raw, 0) || bit(raw, 1),
    high: raw & bits(63, 52),
  };
}

// ---- §C1 ARM VMSAv8-64 stage-1 descriptor, 4 KiB granule --------------------------------------
export interface LpaeEntry {
  raw: bigint;
  /** bit 0 */ valid: boolean;
  /** bit 1: table (L0-L2) / page (L3); 0 = block at L1/L2 */ type: number;
  /** bits 4:2 */ attrIndx: number;
  /** bit 5 */ ns: boolean;
  /** bit 6 AP[1]: unprivileged (EL0) access */ apUnpriv: boolean;
  /** bit 7 AP[2]: read-only */ apRdonly: boolean;
  /** bits 9:8 */ sh: number;
  /** bit 10 */ af: boolean;
  /** bit 11 */ ng: boolean;
  /** bits 47:12 */ oa: bigint;
  /** bit 51 */ dbm: boolean;
  /** bit 52 */ cont: boolean;
  /** bit 53 */ pxn: boolean;
  /** bit 54 */ uxn: boolean;
  /** bits 58:55 */ sw: number;
  /** bits 63:59 (table attributes) */ tableAttrs: number;
  /** bits 50:48 (RES0 with 48-bit OA) */ res0: number;
}

export function decodeLpae(raw: bigint): LpaeEntry {
  return {
    raw,
    valid: bit(raw, 0), type: Number(field(raw, 1, 1)), attrIndx: Number(field(raw, 4, 2)),
    ns: bit(raw, 5), apUnpriv: bit(raw, 6), apRdonly: bit(raw, 7), sh: Number(field(raw, 9, 8)),
    af: bit(raw, 10), ng: bit(raw, 11), oa: raw & bits(47, 12), dbm: bit(raw, 51),
    cont: bit(raw, 52), pxn: bit(raw, 53), uxn: bit(raw, 54), sw: Number(field(raw, 58, 55)),
    tableAttrs: Number(field(raw, 63, 59)), res0: Number(field(raw, 50, 48)),
  };
}

/** Encodes an ARM S1 leaf from fields (for "guest-written" descriptors). */
export function lpaeLeaf(oa: bigint, level3: boolean, o: { af?: boolean; rdonly?: boolean; unpriv?: boolean } = {}): bigint {
  let e = oa | 1n;
  if (level3) e |= 1n << 1n;
  if (o.af ?? true) e |= 1n << 10n;
  if (o.unpriv ?? true) e |= 1n << 6n;
  if (o.rdonly) e |= 1n << 7n;
  return e;
}

// ---- geometry (§C1 / §C2: 9 index bits per level over a 4 KiB granule) --------------------------
/** Levels of a 4 KiB-granule table for `ias` input bits. */
export function levelsFor(ias: number): number {
  return Math.ceil((ias - 12) / 9);
}
/** Page shift of a walk's i-th level (0 = top) in a table of `levels` levels. */
export function shiftAt(i: number, levels: number): number {
  return 12 + 9 * (levels - 1 - i);
}
/** Index bits of the top level: ias - its shift (may be < 9). */
export function topIndexBits(ias: number): number {
  return ias - shiftAt(0, levelsFor(ias));
}
/** Index of `iova` at walk level i. */
export function indexAt(iova: bigint, i: number, ias: number): number {
  const levels = levelsFor(ias);
  const s = shiftAt(i, levels);
  const w = i === 0 ? ias - s : 9;
  return Number((iova >> BigInt(s)) & ((1n << BigInt(w)) - 1n));
}

/** Little-endian u64 from 8 raw bytes of simulated physical memory. */
export function readEntry(sim: Simulator, table: bigint, index: number): bigint {
  const b = sim.memory.read(table + BigInt(index) * 8n, 8);
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

/** Writes a u64 entry as a guest driver would (host backdoor store into the table frame). */
export function writeEntry(sim: Simulator, table: bigint, index: number, value: bigint): void {
  const b = new Uint8Array(8);
  for (let i = 0; i < 8; i++) b[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  sim.memory.write(table + BigInt(index) * 8n, b);
}

export const K4 = 1n << 12n;
export const M2 = 1n << 21n;
export const G1 = 1n << 30n;
/** include/linux/iommu.h prot values, spelled out here so the tests do not trust the ABI file. */
export const P = { READ: 1, WRITE: 2, CACHE: 4, NOEXEC: 8, MMIO: 16, PRIV: 32 } as const;
