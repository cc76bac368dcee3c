/**
 * Human-readable decoding of page-table entries, for reports and the page-table view. The bit
 * positions follow spec/iommu.md §C (and the RISC-V privileged spec); the walker itself lives in
 * the core.
 */
import type { IommuDomain, PgtableFormat } from './iommu.js';

/** One page-table entry decoded by {@link decodeEntry}. */
export interface DecodedEntry {
  /**
   * What the walker makes of it: not present, a pointer to the next table, a leaf (page or
   * block), or an encoding that faults as reserved (e.g. a large page where the level allows none).
   */
  kind: 'invalid' | 'table' | 'leaf' | 'reserved';
  /** Next table or output address (0 for an invalid entry). */
  address: bigint;
  /** Page size of a leaf. */
  pageSize?: bigint;
  /** Named bits that are set, e.g. ['R', 'W', 'PS'] or ['AF', 'nG', 'AP[1]']. */
  flags: string[];
}

/** Where an entry sits: the table's granule and levels (AMD v1's grow; ARM's depend on the granule). */
export interface EntryGeometry {
  /** Translation granule in bytes. @default 4096 */
  granule?: number;
  /** Levels of the walk. @default from ias and the granule */
  levels?: number;
}

const bit = (v: bigint, n: number) => ((v >> BigInt(n)) & 1n) === 1n;
const named = (v: bigint, names: [string, number][]) => names.filter(([, n]) => bit(v, n)).map(([s]) => s);

/** Levels of a table of `ias` input bits over a granule of 2^g bytes (g - 3 index bits a level). */
export function levelsFor(ias: number, granule = 4096): number {
  const g = Math.log2(granule);
  return Math.ceil((ias - g) / (g - 3));
}

/** Page shift of level `level` (0 = top). */
export function levelShift(level: number, ias: number, geo: EntryGeometry = {}): number {
  const g = Math.log2(geo.granule ?? 4096);
  const levels = geo.levels ?? levelsFor(ias, geo.granule);
  return g + (g - 3) * (levels - 1 - level);
}

/** Decodes an entry of `domain` found at walk level `level`. */
export function decodeDomainEntry(domain: IommuDomain, level: number, entry: bigint): DecodedEntry {
  return decodeEntry(domain.format!, domain.ias, level, entry, { granule: domain.granule, levels: domain.levels });
}

/**
 * Decodes `entry` of a `format` table with `ias` input bits, read at walk level `level` (0 =
 * the top table): its kind, address, page size and named bits. It reads nothing else.
 */
export function decodeEntry(format: PgtableFormat, ias: number, level: number, entry: bigint, geo: EntryGeometry = {}): DecodedEntry {
  const shift = levelShift(level, ias, geo);
  const size = 1n << BigInt(shift);
  const last = shift === Math.log2(geo.granule ?? 4096);
  switch (format) {
    case 'vtd-ss': {
      const flags = named(entry, [['R', 0], ['W', 1], ['X', 2], ['IPAT', 6], ['PS', 7], ['A', 8], ['D', 9], ['SNP', 11], ['TM', 62]]);
      const address = entry & 0x000f_ffff_ffff_f000n;
      if ((entry & 3n) === 0n) return { kind: 'invalid', address: 0n, flags };
      if (last || (bit(entry, 7) && shift <= 30)) return { kind: 'leaf', address: address & ~(size - 1n), pageSize: size, flags };
      if (bit(entry, 7)) return { kind: 'reserved', address, flags };
      return { kind: 'table', address, flags };
    }
    case 'x86-64': {
      const flags = named(entry, [['P', 0], ['RW', 1], ['U/S', 2], ['PWT', 3], ['PCD', 4], ['A', 5], ['D', 6], ['PS', 7], ['G', 8], ['XD', 63]]);
      const address = entry & 0x000f_ffff_ffff_f000n;
      if (!bit(entry, 0)) return { kind: 'invalid', address: 0n, flags };
      if (last || (bit(entry, 7) && shift <= 30)) return { kind: 'leaf', address: address & ~(size - 1n), pageSize: size, flags };
      return bit(entry, 7) ? { kind: 'reserved', address, flags } : { kind: 'table', address, flags };
    }
    case 'amd-v1': {
      const nl = Number((entry >> 9n) & 7n);
      const flags = [...named(entry, [['PR', 0], ['D', 6], ['FC', 60], ['IR', 61], ['IW', 62]]), `NL=${nl}`];
      const oa = entry & 0x000f_ffff_ffff_f000n;
      if (!bit(entry, 0)) return { kind: 'invalid', address: 0n, flags };
      if (nl === 7) {
        let ones = 0n;
        while (((oa >> (12n + ones)) & 1n) === 1n) ones++;
        const s = 1n << (13n + ones);
        return { kind: 'leaf', address: oa & ~(s - 1n), pageSize: s, flags };
      }
      if (nl === 0 || last) return { kind: 'leaf', address: oa & ~(size - 1n), pageSize: size, flags };
      return { kind: 'table', address: oa, flags };
    }
    case 'riscv': {
      const flags = named(entry, [['V', 0], ['R', 1], ['W', 2], ['X', 3], ['U', 4], ['G', 5], ['A', 6], ['D', 7], ['N', 63]]);
      const address = ((entry >> 10n) & ((1n << 44n) - 1n)) << 12n;
      if (!bit(entry, 0)) return { kind: 'invalid', address: 0n, flags };
      if ((entry & 0xen) === 0n) return last ? { kind: 'reserved', address, flags } : { kind: 'table', address, flags };
      if (bit(entry, 63)) {
        return last && ((entry >> 10n) & 0xfn) === 8n
          ? { kind: 'leaf', address: address & ~0xffffn, pageSize: 1n << 16n, flags }
          : { kind: 'reserved', address, flags };
      }
      return { kind: 'leaf', address: address & ~(size - 1n), pageSize: size, flags };
    }
    case 'arm-lpae-s1':
    case 'arm-lpae-s2': {
      const s2 = format === 'arm-lpae-s2';
      const flags = s2
        ? [...named(entry, [['V', 0], ['T', 1], ['S2AP[0]', 6], ['S2AP[1]', 7], ['AF', 10], ['DBM', 51], ['Cont', 52], ['XN[0]', 53], ['XN[1]', 54]]), `MemAttr=${(entry >> 2n) & 0xfn}`]
        : named(entry, [['V', 0], ['T', 1], ['NS', 5], ['AP[1]', 6], ['AP[2]', 7], ['AF', 10], ['nG', 11], ['DBM', 51], ['Cont', 52], ['PXN', 53], ['UXN', 54], ['APTable[0]', 61], ['APTable[1]', 62]]);
      const attrs = s2 ? [`SH=${(entry >> 8n) & 3n}`] : [`AttrIndx=${(entry >> 2n) & 7n}`, `SH=${(entry >> 8n) & 3n}`];
      let address = entry & 0x0000_ffff_ffff_f000n;
      if ((geo.granule ?? 4096) === 65536) address = (address | (address << 36n)) & 0x000f_ffff_ffff_0000n;
      if (!bit(entry, 0)) return { kind: 'invalid', address: 0n, flags };
      const t = bit(entry, 1);
      if (last) return t ? { kind: 'leaf', address, pageSize: size, flags: [...flags, ...attrs] } : { kind: 'reserved', address, flags };
      if (t) return { kind: 'table', address, flags };
      const g = geo.granule ?? 4096;
      const blockOk = g === 4096 ? shift === 21 || shift === 30 : g === 16384 ? shift === 25 : shift === 29 || shift === 42;
      return blockOk ? { kind: 'leaf', address: address & ~(size - 1n), pageSize: size, flags: [...flags, ...attrs] } : { kind: 'reserved', address, flags };
    }
  }
}

