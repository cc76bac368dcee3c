/**
 * Human-readable decoding of page-table entries, for reports and the page-table view. The bit
 * positions follow spec/iommu.md §C; the walker itself lives in the core.
 */
import type { PgtableFormat } from './iommu.js';

export interface DecodedEntry {
  kind: 'invalid' | 'table' | 'leaf' | 'reserved';
  /** Next table or output address. */
  address: bigint;
  /** Page size of a leaf. */
  pageSize?: bigint;
  /** Named bits that are set, e.g. ['R', 'W', 'PS'] or ['AF', 'nG', 'AP[1]']. */
  flags: string[];
}

const bit = (v: bigint, n: number) => ((v >> BigInt(n)) & 1n) === 1n;

/** Levels of a 4 KiB-granule table of `ias` input bits. */
export function levelsFor(ias: number): number {
  return Math.ceil((ias - 12) / 9);
}

/** Page shift of level `level` (0 = top). */
export function levelShift(level: number, ias: number): number {
  return 12 + 9 * (levelsFor(ias) - 1 - level);
}

export function decodeEntry(format: PgtableFormat, ias: number, level: number, entry: bigint): DecodedEntry {
  const shift = levelShift(level, ias);
  const size = 1n << BigInt(shift);
  if (format === 'vtd-ss') {
    const flags = [['R', 0], ['W', 1], ['X', 2], ['IPAT', 6], ['PS', 7], ['A', 8], ['D', 9], ['SNP', 11], ['TM', 62]]
      .filter(([, n]) => bit(entry, n as number)).map(([s]) => s as string);
    const address = entry & 0x000f_ffff_ffff_f000n;
    if ((entry & 3n) === 0n) return { kind: 'invalid', address: 0n, flags };
    if (shift === 12 || (bit(entry, 7) && shift <= 30)) return { kind: 'leaf', address: address & ~(size - 1n), pageSize: size, flags };
    if (bit(entry, 7)) return { kind: 'reserved', address, flags };
    return { kind: 'table', address, flags };
  }
  const flags = [['V', 0], ['T', 1], ['NS', 5], ['AP[1]', 6], ['AP[2]', 7], ['AF', 10], ['nG', 11], ['DBM', 51], ['Cont', 52], ['PXN', 53], ['UXN', 54]]
    .filter(([, n]) => bit(entry, n as number)).map(([s]) => s as string);
  const attr = Number((entry >> 2n) & 7n);
  const sh = Number((entry >> 8n) & 3n);
  const address = entry & 0x0000_ffff_ffff_f000n;
  if (!bit(entry, 0)) return { kind: 'invalid', address: 0n, flags };
  const t = bit(entry, 1);
  if (shift === 12) return t ? { kind: 'leaf', address, pageSize: size, flags: [...flags, `AttrIndx=${attr}`, `SH=${sh}`] } : { kind: 'reserved', address, flags };
  if (t) return { kind: 'table', address, flags };
  if (shift <= 30) return { kind: 'leaf', address: address & ~(size - 1n), pageSize: size, flags: [...flags, `AttrIndx=${attr}`, `SH=${sh}`] };
  return { kind: 'reserved', address, flags };
}

export function formatSize(bytes: bigint): string {
  const units: [bigint, string][] = [[1n << 40n, 'T'], [1n << 30n, 'G'], [1n << 20n, 'M'], [1n << 10n, 'K']];
  for (const [u, s] of units) if (bytes >= u && bytes % u === 0n) return `${bytes / u}${s}`;
  return `${bytes}`;
}
