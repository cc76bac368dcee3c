// What an entry is, as every format's kind() reports it.
export const PTE_INVALID: u32 = 0;
export const PTE_TABLE: u32 = 1;
export const PTE_LEAF: u32 = 2;
export const PTE_RESERVED: u32 = 3;
