// The walk geometry every format's configure step records in the domain record: granule
// (log2 bytes of a table and of the smallest page), index bits per level, index bits of the top
// table (more for a concatenated ARM stage-2 start, fewer for a partial top), the number of
// levels, and the page sizes the format maps (a bitmap of log2 sizes, iommu_domain pgsize_bitmap).
import { DOMAIN_GRANULE, DOMAIN_LEVEL_BITS, DOMAIN_TOP_BITS, DOMAIN_LEVELS, DOMAIN_PGSIZES, OK } from '../abi';

/** Stores a format's geometry in domain record `d`; returns OK for the configure step to pass on. */
export function setGeometry(d: usize, granule: u32, levelBits: u32, topBits: u32, levels: u32, pgsizes: u64): i32 {
  store<u8>(d + DOMAIN_GRANULE, <u8>granule);
  store<u8>(d + DOMAIN_LEVEL_BITS, <u8>levelBits);
  store<u8>(d + DOMAIN_TOP_BITS, <u8>topBits);
  store<u32>(d + DOMAIN_LEVELS, levels);
  store<u64>(d + DOMAIN_PGSIZES, pgsizes);
  return OK;
}
