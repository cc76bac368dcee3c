// The Wasm ABI: every constant the core and its hosts share, declared once.
//
// scripts/gen-bindings.mjs turns this file into bindings/generated/abi.ts for the TypeScript side,
// so each line must stay of the form `export const NAME: type = <expression of earlier names>;`.
// ABI_VERSION changes whenever a layout or a meaning below changes; bindings check it.

export const ABI_VERSION: u32 = 8;

// ---------------------------------------------------------------------------------------------
// Status codes: 0 or a negative Linux errno.
export const OK: i32 = 0;
export const EPERM: i32 = -1;
export const ENOENT: i32 = -2;
export const EIO: i32 = -5;
export const ENOMEM: i32 = -12;
export const EACCES: i32 = -13;
export const EFAULT: i32 = -14;
export const EBUSY: i32 = -16;
export const EEXIST: i32 = -17;
export const ENODEV: i32 = -19;
export const EINVAL: i32 = -22;
export const ENOSPC: i32 = -28;
export const ERANGE: i32 = -34;
export const EOPNOTSUPP: i32 = -95;

// ---------------------------------------------------------------------------------------------
// Pages. The simulated page size is 4 KiB; sparse backing hands out memory in chunks of a page.
export const PAGE_SHIFT: u32 = 12;
export const PAGE_SIZE: u32 = 4096;

// ---------------------------------------------------------------------------------------------
// Physical regions.
export const MAX_REGIONS: u32 = 64;
/** Largest region: the backing radix has 3 levels of 10 bits over 4 KiB pages. */
export const REGION_MAX_SHIFT: u32 = 42;
export const REGION_KIND_RAM: u32 = 1;
export const REGION_KIND_DEVICE: u32 = 2;
/** Region flags (bit 0..7). */
export const REGION_CPU_ACCESSIBLE: u32 = 1;
export const REGION_CACHEABLE: u32 = 2;
/**
 * Set by the core on regions made by addDirectRegion (mem/direct.ts): every page is backed by a
 * host-given range of linear memory (the radix is filled up front), not by the sparse arena.
 */
export const REGION_DIRECT: u32 = 256;

// Region record (REGION_STRIDE bytes):
//   0 base u64 | 8 size u64 | 16 kind u32 | 20 flags u32 | 24 owner u32 | 28 radix root u32
//  32 frame dir u32 | 36 groups u32 | 40 frames u64 | 48 free frames u64 | 56 alloc hint u64
export const REGION_STRIDE: u32 = 64;
export const REGION_BASE: u32 = 0;
export const REGION_SIZE: u32 = 8;
export const REGION_KIND: u32 = 16;
export const REGION_FLAGS: u32 = 20;
export const REGION_OWNER: u32 = 24;
export const REGION_RADIX: u32 = 28;
export const REGION_FRAME_DIR: u32 = 32;
export const REGION_GROUPS: u32 = 36;
export const REGION_FRAMES: u32 = 40;
export const REGION_FREE_FRAMES: u32 = 48;
export const REGION_ALLOC_HINT: u32 = 56;

// ---------------------------------------------------------------------------------------------
// Page-frame database (the emulator's struct page), RAM regions only. Frames are grouped by
// FRAME_GROUP; a group's records live in one arena chunk, made on the group's first allocation.
//
//   frame record (FRAME_STRIDE = 16 bytes)
//   +-----------+-----------+-----------+-----------+
//   | refcount  | pincount  |   flags   |    aux    |   aux: live entries of a page-table page
//   +-----------+-----------+-----------+-----------+
export const FRAME_GROUP: u32 = 256;
export const FRAME_STRIDE: u32 = 16;
export const FRAME_REFCOUNT: u32 = 0;
export const FRAME_PINCOUNT: u32 = 4;
export const FRAME_FLAGS: u32 = 8;
export const FRAME_AUX: u32 = 12;
/** Frame flags. */
export const PG_PGTABLE: u32 = 1;
export const PG_DRIVER: u32 = 2;

// ---------------------------------------------------------------------------------------------
// IOMMU prot bits (include/linux/iommu.h values).
export const PROT_READ: u32 = 1;
export const PROT_WRITE: u32 = 2;
export const PROT_CACHE: u32 = 4;
export const PROT_NOEXEC: u32 = 8;
export const PROT_MMIO: u32 = 16;
export const PROT_PRIV: u32 = 32;
export const PROT_ALL: u32 = 63;

/** Access of a DMA transaction. */
export const ACCESS_READ: u32 = 1;
export const ACCESS_WRITE: u32 = 2;

// ---------------------------------------------------------------------------------------------
// I/O page-table formats (io_pgtable_fmt in spirit).
export const FMT_VTD_SS: u32 = 1;
export const FMT_ARM_LPAE_S1: u32 = 2;

// Domain types.
export const DOMAIN_PAGING: u32 = 1;
export const DOMAIN_IDENTITY: u32 = 2;
export const DOMAIN_BLOCKED: u32 = 3;

// IOMMU families: decide the code a fault record carries.
export const FAMILY_VTD: u32 = 1;
export const FAMILY_SMMUV3: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Limits of the tables the core keeps.
export const MAX_UNITS: u32 = 16;
export const MAX_DOMAINS: u32 = 1024;
export const MAX_DEVICES: u32 = 4096;
/** Requester ID of the host itself: untranslated physical access. */
export const RID_PHYS: u32 = 0xffffffff;
/** Domain value of a device that does DMA without an IOMMU (dma-direct). */
export const DOMAIN_DIRECT: i32 = -2;

// Peer-to-peer routes: a requester's DMA to a bus address inside a peer's BAR below a common
// switch is routed by the switch and never reaches the IOMMU (P2PDMA BUS_ADDR).
//   window record: 0 rid u32 | 4 in use u32 | 8 bus base u64 | 16 size u64 | 24 cpu base u64
export const MAX_P2P_WINDOWS: u32 = 256;
export const P2P_WINDOW_STRIDE: u32 = 32;

// Unit record (UNIT_STRIDE bytes):
//   0 present u32 | 4 family u32 | 8 tlb sets u32 | 12 tlb ways u32 | 16 tlb ptr u32
//  20 tlb rr ptr u32 | 24 fault cap u32 | 28 fault ptr u32 | 32 fault head u32 | 36 fault count u32
//  40 fault overflow u32 | 44 fq cap u32 | 48 fq ptr u32 | 52 fq count u32 | 56 sizes cached u32
//  60 fault seq u32 | 64.. counters (u64 each, UNIT_STAT_*)
export const UNIT_STRIDE: u32 = 224;
export const UNIT_PRESENT: u32 = 0;
export const UNIT_FAMILY: u32 = 4;
export const UNIT_TLB_SETS: u32 = 8;
export const UNIT_TLB_WAYS: u32 = 12;
export const UNIT_TLB_PTR: u32 = 16;
export const UNIT_TLB_RR: u32 = 20;
export const UNIT_FAULT_CAP: u32 = 24;
export const UNIT_FAULT_PTR: u32 = 28;
export const UNIT_FAULT_HEAD: u32 = 32;
export const UNIT_FAULT_COUNT: u32 = 36;
export const UNIT_FAULT_OVERFLOW: u32 = 40;
export const UNIT_FQ_CAP: u32 = 44;
export const UNIT_FQ_PTR: u32 = 48;
export const UNIT_FQ_COUNT: u32 = 52;
export const UNIT_SIZES_CACHED: u32 = 56;
export const UNIT_FAULT_SEQ: u32 = 60;
export const UNIT_STAT_HITS: u32 = 64;
export const UNIT_STAT_MISSES: u32 = 72;
export const UNIT_STAT_WALKS: u32 = 80;
export const UNIT_STAT_INVALIDATIONS: u32 = 88;
export const UNIT_STAT_INVALIDATED: u32 = 96;
export const UNIT_STAT_FAULTS: u32 = 104;
export const UNIT_STAT_FQ_FLUSHES: u32 = 112;
export const UNIT_STAT_TRANSLATIONS: u32 = 120;
export const UNIT_STAT_COUNT: u32 = 8;

// Domain record (DOMAIN_STRIDE bytes):
//   0 type u32 (0 = free) | 4 unit u32 | 8 format u32 | 12 ias u32 | 16 oas u32 | 20 levels u32
//  24 root u64 | 32 pgsize bitmap u64 | 40 strict u32 | 44 table frames u32 | 48 mapped bytes u64
export const DOMAIN_STRIDE: u32 = 96;
export const DOMAIN_TYPE: u32 = 0;
export const DOMAIN_UNIT: u32 = 4;
export const DOMAIN_FORMAT: u32 = 8;
export const DOMAIN_IAS: u32 = 12;
export const DOMAIN_OAS: u32 = 16;
export const DOMAIN_LEVELS: u32 = 20;
export const DOMAIN_ROOT: u32 = 24;
export const DOMAIN_PGSIZES: u32 = 32;
export const DOMAIN_STRICT: u32 = 40;
export const DOMAIN_TABLE_FRAMES: u32 = 44;
export const DOMAIN_MAPPED: u32 = 48;

// ---------------------------------------------------------------------------------------------
// IOTLB entry (TLB_STRIDE bytes), sets x ways per unit, round-robin replacement per set. The tag
// packs the domain and the page shift so that a probe is one u64 and one u32 compare:
//
//    63                                            0
//   +-----------------------------------------------+
//   | vpn = iova >> shift                            |  0
//   +-----------------------------------------------+
//   | output address of the leaf (aligned)          |  8
//   +-----------------------------+-----------------+
//   | perm (u32)                  | tag (u32)       | 16    tag = (domain id + 1) << 8 | shift
//   +-----------------------------+-----------------+        (0 = free entry)
//   | reserved                                      | 24
export const TLB_STRIDE: u32 = 32;
export const TLB_VPN: u32 = 0;
export const TLB_OUT: u32 = 8;
export const TLB_TAG: u32 = 16;
export const TLB_PERM: u32 = 20;

// ---------------------------------------------------------------------------------------------
// Fault record (FAULT_STRIDE bytes), a bounded ring per unit:
//   0 iova u64 | 8 rid u32 | 12 domain i32 | 16 reason u16 | 18 access u16 | 20 code u32 | 24 seq u32
export const FAULT_STRIDE: u32 = 48;
export const FAULT_IOVA: u32 = 0;
export const FAULT_RID: u32 = 8;
export const FAULT_DOMAIN: u32 = 12;
export const FAULT_REASON: u32 = 16;
export const FAULT_ACCESS: u32 = 18;
export const FAULT_CODE: u32 = 20;
export const FAULT_SEQ: u32 = 24;

/** Fault reasons, family-independent. */
export const FAULT_TRANSLATION: u32 = 1;
export const FAULT_PERMISSION: u32 = 2;
export const FAULT_ADDRESS_SIZE: u32 = 3;
export const FAULT_BLOCKED: u32 = 4;
export const FAULT_NO_DOMAIN: u32 = 5;
export const FAULT_ACCESS_FLAG: u32 = 6;
export const FAULT_RESERVED_BIT: u32 = 7;

/** VT-d fault reasons (VT-d spec 7.x; QEMU VTD_FR_*). */
export const VTD_FR_CONTEXT_ENTRY_P: u32 = 0x2;
export const VTD_FR_ADDR_BEYOND_MGAW: u32 = 0x4;
export const VTD_FR_WRITE: u32 = 0x5;
export const VTD_FR_READ: u32 = 0x6;
export const VTD_FR_PAGING_ENTRY_RSVD: u32 = 0xc;
/** SMMUv3 event ids. */
export const SMMU_EVT_C_BAD_STE: u32 = 0x04;
export const SMMU_EVT_F_STREAM_DISABLED: u32 = 0x06;
export const SMMU_EVT_F_TRANSLATION: u32 = 0x10;
export const SMMU_EVT_F_ADDR_SIZE: u32 = 0x11;
export const SMMU_EVT_F_ACCESS: u32 = 0x12;
export const SMMU_EVT_F_PERMISSION: u32 = 0x13;

// Flush-queue entry (lazy invalidation): 0 domain u32 | 8 start u64 | 16 end u64
export const FQ_STRIDE: u32 = 24;

// ---------------------------------------------------------------------------------------------
// Shared blocks the host reads and writes through typed-array views.
//
// Result block: what the last operation left behind.
//   0 status i32 | 4 fault side u32 (0 src, 1 dst) | 8 bytes done u64 | 16 value u64
//  24 fault iova u64 | 32 fault reason u32 | 36 fault code u32 | 40 leaf shift u32 | 44 perm u32
export const RESULT_SIZE: u32 = 64;
export const RES_STATUS: u32 = 0;
export const RES_FAULT_SIDE: u32 = 4;
export const RES_BYTES: u32 = 8;
export const RES_VALUE: u32 = 16;
export const RES_FAULT_IOVA: u32 = 24;
export const RES_FAULT_REASON: u32 = 32;
export const RES_FAULT_CODE: u32 = 36;
export const RES_SHIFT: u32 = 40;
export const RES_PERM: u32 = 44;

// Global counters (u64 each).
export const STAT_BYTES_TO_RAM: u32 = 0;
export const STAT_BYTES_TO_DEVICE: u32 = 8;
export const STAT_BYTES_FROM_RAM: u32 = 16;
export const STAT_BYTES_FROM_DEVICE: u32 = 24;
export const STAT_DMA_OPS: u32 = 32;
export const STAT_DMA_FAULTS: u32 = 40;
export const STAT_CHUNKS_USED: u32 = 48;
export const STAT_CHUNKS_TOTAL: u32 = 56;
/** Vectored copies (dmaCopyV calls) and the descriptors they ran. */
export const STAT_DMA_VECTORS: u32 = 64;
export const STAT_DMA_DESCRIPTORS: u32 = 72;
export const STATS_SIZE: u32 = 80;

/** Staging area for batches and host buffers: iova/pa arrays in, results out. */
export const STAGING_SIZE: u32 = 1048576;
/** Entries of a translate batch that fit the staging area: u64 in + u64 out + i32 status. */
export const BATCH_MAX: u32 = 32768;
/** Batch layout inside staging: inputs at 0, outputs at BATCH_OUT, status at BATCH_STATUS. */
export const BATCH_OUT: u32 = 262144;
export const BATCH_STATUS: u32 = 524288;

// Map batch descriptor (MAPDESC_STRIDE bytes): 0 iova u64 | 8 pa u64 | 16 size u64 | 24 status i32
export const MAPDESC_STRIDE: u32 = 32;

// Vectored copy descriptor (COPYDESC_STRIDE bytes), an array at the start of staging:
//   +------------+------------+
//   | src rid u32| dst rid u32|  0     rid RID_PHYS: untranslated physical access
//   +------------+------------+
//   | src addr u64            |  8
//   | dst addr u64            | 16
//   | length u64              | 24
//   +-------------------------+
export const COPYDESC_STRIDE: u32 = 32;
export const COPYDESC_SRC_RID: u32 = 0;
export const COPYDESC_DST_RID: u32 = 4;
export const COPYDESC_SRC: u32 = 8;
export const COPYDESC_DST: u32 = 16;
export const COPYDESC_LEN: u32 = 24;
export const COPYDESC_MAX: u32 = STAGING_SIZE / COPYDESC_STRIDE;

// Walk trace: up to 6 levels, each 0 level u32 | 4 index u32 | 8 table pa u64 | 16 entry u64
export const TRACE_STRIDE: u32 = 24;
export const TRACE_MAX: u32 = 6;

// ---------------------------------------------------------------------------------------------
// Page-table formats beyond the first two, kernel-era policies and the fault model (issue 11).
// Formats are registered by this enum in pgtable/format.ts, one file per format.
export const FMT_ARM_LPAE_S2: u32 = 3;
export const FMT_AMD_V1: u32 = 4;
export const FMT_X86_64: u32 = 5;
export const FMT_RISCV: u32 = 6;
export const FMT_COUNT: u32 = 7;
export const FAMILY_AMDVI: u32 = 3;
export const FAMILY_RISCV: u32 = 4;
export const EADDRINUSE: i32 = -98;

// Domain record, bytes 56..63 (inside DOMAIN_STRIDE): the geometry and the kernel policy.
//  56 granule shift u8 | 57 index bits per level u8 | 58 index bits of the top table u8
//  59 policy u8 (unmap policy | map policy << 4) | 60 flags u32 (DOMAIN_F_*)
export const DOMAIN_GRANULE: u32 = 56;
export const DOMAIN_LEVEL_BITS: u32 = 57;
export const DOMAIN_TOP_BITS: u32 = 58;
export const DOMAIN_POLICY: u32 = 59;
export const DOMAIN_FLAGS: u32 = 60;
/** Input addresses are sign-extended from bit ias-1 (x86-64, RISC-V): an upper and a lower half. */
export const DOMAIN_F_SIGN_EXTEND: u32 = 1;
/** The top level grows on demand up to ias (AMD v1). */
export const DOMAIN_F_DYNAMIC_TOP: u32 = 2;
/** ARM stage 1: hierarchical attributes disabled (SMMU CD.HAD): APTable and friends ignored. */
export const DOMAIN_F_HAD: u32 = 4;
/** RISC-V: Svnapot 64 KiB leaves. */
export const DOMAIN_F_SVNAPOT: u32 = 8;

// Partial unmap of a large leaf (spec iommu.md A8/A9), low nibble of DOMAIN_POLICY.
/** io-pgtable-arm before v6.13: the block is split and only the range goes. */
export const UNMAP_SPLIT: u32 = 1;
/** io-pgtable-arm since v6.13 (33729a5fc0ca): refused, 0 unmapped. */
export const UNMAP_REFUSE: u32 = 2;
/** generic_pt and the pre-generic_pt RISC-V driver: whole leaf when the range starts at it, else 0. */
export const UNMAP_WHOLE_AT_START: u32 = 3;
/** Pre-generic_pt intel and AMD v1 drivers: the whole leaf goes for any overlap. */
export const UNMAP_WHOLE_ANY: u32 = 4;
// A map over something already mapped, high nibble of DOMAIN_POLICY.
/** io-pgtable-arm: a leaf in the way is EEXIST; a table in the way of a block is unmapped first. */
export const MAPPOL_EEXIST: u32 = 1;
/** generic_pt: EADDRINUSE for any leaf in the way; an empty table is replaced. */
export const MAPPOL_EADDRINUSE: u32 = 2;
/** Pre-generic_pt intel: an existing leaf is kept (WARN "PTE already set"), map returns 0. */
export const MAPPOL_KEEP: u32 = 3;
/** Pre-generic_pt AMD v1: whatever is in the way is replaced, map returns 0. */
export const MAPPOL_REPLACE: u32 = 4;
/** Pre-generic_pt RISC-V: replaced, but a leaf above the target level is ENOMEM. */
export const MAPPOL_REPLACE_RISCV: u32 = 5;

/** Fault reasons added by the fault model. */
export const FAULT_WALK_EABT: u32 = 8;
export const FAULT_INTERRUPT_ADDR: u32 = 9;
/** VT-d: the interrupt address range, never a DMA translation output. */
export const VTD_INTR_FIRST: u64 = 0xfee00000;
export const VTD_INTR_LAST: u64 = 0xfeefffff;
/** VT-d reasons: paging-entry access error (legacy 7), interrupt range (legacy 0xE, scalable 0x87). */
export const VTD_FR_PAGING_ENTRY_INV: u32 = 0x7;
export const VTD_FR_INTERRUPT_ADDR: u32 = 0xe;
export const VTD_FR_SM_INTERRUPT_ADDR: u32 = 0x87;
export const SMMU_EVT_F_WALK_EABT: u32 = 0x0b;
/** AMD-Vi event types (event log). */
export const AMDVI_EVT_ILLEGAL_DEV_TABLE_ENTRY: u32 = 0x1;
export const AMDVI_EVT_IO_PAGE_FAULT: u32 = 0x2;
export const AMDVI_EVT_PAGE_TAB_HW_ERROR: u32 = 0x4;
/** RISC-V IOMMU fault-queue causes. */
export const RISCV_CAUSE_RD_FAULT: u32 = 5;
export const RISCV_CAUSE_WR_FAULT: u32 = 7;
export const RISCV_CAUSE_RD_PAGE_FAULT: u32 = 13;
export const RISCV_CAUSE_WR_PAGE_FAULT: u32 = 15;
export const RISCV_CAUSE_DMA_DISABLED: u32 = 256;
export const RISCV_CAUSE_DDT_INVALID: u32 = 258;
/** Fault record flags (u32 at FAULT_FLAGS): the fault is a stage-2 one (SMMUv3 event S2 bit). */
export const FAULT_FLAGS: u32 = 28;
export const FAULT_F_STAGE2: u32 = 1;

// Unit record, bytes 128..143: options and the collapsed-fault counter.
//  128 flags u32 (UNIT_F_*) | 136 collapsed faults u64
export const UNIT_FLAGS: u32 = 128;
export const UNIT_STAT_COLLAPSED: u32 = 136;
/** QEMU VT-d: a fault from a requester that already has a pending record is collapsed into it. */
export const UNIT_F_COLLAPSE: u32 = 1;
/** VT-d scalable mode (fault codes of the scalable tables). */
export const UNIT_F_SCALABLE: u32 = 2;
/** The fault comes from a first-stage (x86-64) table: VT-d reports the first-stage codes. */
export const FAULT_F_FIRST_STAGE: u32 = 2;
/** VT-d first-stage reasons (QEMU VTD_FR_FS_*, VTD_FR_SM_WRITE). */
export const VTD_FR_FS_PAGING_ENTRY_P: u32 = 0x71;
export const VTD_FR_FS_PAGING_ENTRY_RSVD: u32 = 0x72;
export const VTD_FR_FS_NON_CANONICAL: u32 = 0x80;
export const VTD_FR_FS_PAGING_ENTRY_US: u32 = 0x81;
export const VTD_FR_SM_WRITE: u32 = 0x85;

// ---------------------------------------------------------------------------------------------
// Issue 16: PASID, nested stage 1 over stage 2, ATS with page requests, dirty tracking.

// Unit record, bytes 144..223: counters of issue 16 (u64 each) and the page-request ring.
//  144 PASID-tagged hits | 152 ATS translation requests | 160 ATC hits | 168 ATC invalidations
//  176 page requests | 184 nested walks | 192 prq cap u32 | 196 prq ptr u32 | 200 prq head u32
//  204 prq count u32 | 208 prq overflow u32 | 212 ATS devices on the unit u32
export const UNIT_STAT_PASID_HITS: u32 = 144;
export const UNIT_STAT_ATS_REQUESTS: u32 = 152;
export const UNIT_STAT_ATC_HITS: u32 = 160;
export const UNIT_STAT_ATC_INVALIDATIONS: u32 = 168;
export const UNIT_STAT_PAGE_REQUESTS: u32 = 176;
export const UNIT_STAT_NESTED_WALKS: u32 = 184;
export const UNIT_PRQ_CAP: u32 = 192;
export const UNIT_PRQ_PTR: u32 = 196;
export const UNIT_PRQ_HEAD: u32 = 200;
export const UNIT_PRQ_COUNT: u32 = 204;
export const UNIT_PRQ_OVERFLOW: u32 = 208;
export const UNIT_ATS_DEVICES: u32 = 212;

// Domain record, bytes 64..95: nesting and dirty tracking.
//  64 parent domain + 1 u32 (nested: its stage-2 domain; 0 none) | 68 nested children u32
//  72 stage-1 root (IPA) u64 of a nested domain
export const DOMAIN_PARENT: u32 = 64;
export const DOMAIN_CHILDREN: u32 = 68;
/** Domain type: stage 1 owned by a guest over a stage-2 parent (iommufd nested HWPT). */
export const DOMAIN_NESTED: u32 = 4;
/** Paging domain flags (DOMAIN_FLAGS): may be a nesting parent (IOMMU_HWPT_ALLOC_NEST_PARENT). */
export const DOMAIN_F_NEST_PARENT: u32 = 16;
/** Hardware dirty tracking is on (VT-d SSADE, SMMUv3 HTTU HD, AMD HAD, RISC-V SADE). */
export const DOMAIN_F_DIRTY: u32 = 32;
/** The domain was created able to track dirty pages (IOMMU_HWPT_ALLOC_DIRTY_TRACKING). */
export const DOMAIN_F_DIRTY_CAP: u32 = 64;

// PASID binding table: (requester, PASID) -> domain, the union of every device's PASID table
// (VT-d scalable-mode PASID table, SMMUv3 CD table by SSID, AMD GCR3 table, RISC-V PDT).
//   0 rid u32 | 4 pasid u32 | 8 domain + 1 u32 (0 = free slot) | 12 reserved
// IOTLB entries of a PASID request are tagged by the slot: tag domain = dom | (slot + 1) << 11.
export const MAX_PASID_BINDINGS: u32 = 4095;
export const PASID_STRIDE: u32 = 16;
export const PASID_MAX_BITS: u32 = 20;
/** Bits of a tagged domain id that hold the domain itself. */
export const TAG_DOMAIN_BITS: u32 = 11;

// Device record (DEVICE_STRIDE bytes):
//   0 rid u32 | 4 domain i32 (-1 none) | 8 unit u32 | 12 PASID width u8 | 13 flags u8 (DEV_F_*)
//  16 DMA PASID + 1 u32 (0: DMA without PASID) | 20 ATC ptr u32 | 24 ATC sets u32 | 28 ATC ways u32
export const DEVICE_RECORD_STRIDE: u32 = 32;
export const DEV_PASID_BITS: u32 = 12;
export const DEV_FLAGS: u32 = 13;
export const DEV_DMA_PASID: u32 = 16;
export const DEV_ATC_PTR: u32 = 20;
export const DEV_ATC_SETS: u32 = 24;
export const DEV_ATC_WAYS: u32 = 28;
export const DEV_F_ATS: u32 = 1;
export const DEV_F_PRI: u32 = 2;

/** Fault reasons of issue 16: no domain for the request's PASID; a page request sent instead. */
export const FAULT_NO_PASID: u32 = 10;
/** Status of a translation answered by a page request (PRI): the device waits and retries. */
export const EAGAIN: i32 = -11;

// Fault record, bytes 32..47: 32 PASID + 1 u32 (0 none) | 36 reserved | 40 IPA u64 (a stage-2
// fault: the stage-1 table fetch or output address it failed on).
export const FAULT_PASID: u32 = 32;
export const FAULT_IPA: u32 = 40;
/** Flags: SMMUv3 event CLASS=TT, the stage-2 fault happened on a stage-1 table fetch. */
export const FAULT_F_CLASS_TT: u32 = 4;
/** The fault is on a nested domain's stage 1 (guest table). */
export const FAULT_F_NESTED: u32 = 8;

/** VT-d scalable mode: PASID-table entry not present (QEMU VTD_FR_PASID_ENTRY_P). */
export const VTD_FR_PASID_ENTRY_P: u32 = 0x59;
/** SMMUv3: SubstreamID beyond the CD table (C_BAD_SUBSTREAMID) or an invalid CD (C_BAD_CD). */
export const SMMU_EVT_C_BAD_SUBSTREAMID: u32 = 0x08;
export const SMMU_EVT_C_BAD_CD: u32 = 0x0a;
/** RISC-V IOMMU: process-directory entry not valid. */
export const RISCV_CAUSE_PDT_INVALID: u32 = 266;

// Page-request record (PRQ_STRIDE bytes): 0 iova u64 | 8 rid u32 | 12 PASID + 1 u32 | 16 access u32
export const PRQ_STRIDE: u32 = 24;

// Nested walk trace: stage-2 levels, each TRACE_STRIDE bytes whose level field is
// (stage-1 step << 8) | stage-2 depth; stage-1 step TRACE_MAX is the walk of the output address.
export const TRACE2_MAX: u32 = 42;

// readAndClearDirty flags (iommufd IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).
export const DIRTY_NO_CLEAR: u32 = 1;
/** Bitmap bits readAndClearDirty can return in one call (the staging area). */
export const DIRTY_MAX_PAGES: u32 = STAGING_SIZE * 8;

// Result block, bytes 48..63: 48 stage-2 trace entries of the last nested walk u32
//  52 fault flags of the last failed translation u32 (FAULT_F_*) | 56 fault IPA u64
export const RES_TRACE2: u32 = 48;
export const RES_FAULT_FLAGS: u32 = 52;
export const RES_FAULT_IPA: u32 = 56;
