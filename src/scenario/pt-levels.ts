/**
 * Page-table level names as each architecture numbers them, for every place that shows a walk
 * (the report, `dmabuf-sim demo`, the web page): the API's WalkLevel.level is a depth (0 = the
 * top table), which neither architecture uses.
 *  - Intel VT-d counts down to the leaf: a 4-level second-stage table is levels 4, 3, 2, 1, whose
 *    entries the VT-d specification calls PML4E, PDPE, PDE and PTE (PML5E above them with 5
 *    levels).
 *  - ARM VMSA counts up from the top: with a 4K granule level 0 translates bits 47:39 and level 3
 *    bits 20:12, so a table with fewer levels starts lower down (3 levels, 39 bits: levels 1..3).
 */
import type { PgtableFormat } from '../index.js';
import { levelsFor } from '../index.js';

export interface LevelName {
  /** The architecture's level number. */
  level: number;
  /** 'L4 PML4E' (VT-d), 'L0' (ARM). */
  label: string;
}

const VTD_ENTRY: Record<number, string> = { 5: 'PML5E', 4: 'PML4E', 3: 'PDPE', 2: 'PDE', 1: 'PTE' };

/** The level `depth` (0 = top) of a `format` table with `ias` input bits, as the architecture names it. */
export function levelName(format: PgtableFormat, ias: number, depth: number): LevelName {
  const levels = levelsFor(ias);
  if (format === 'vtd-ss') {
    const level = levels - depth;
    return { level, label: `L${level} ${VTD_ENTRY[level] ?? ''}`.trimEnd() };
  }
  const level = 4 - levels + depth;
  return { level, label: `L${level}` };
}
