// Fault records: hardware events, not exceptions. A bounded ring per unit; when it is full the
// new record is dropped and the overflow flag set (VT-d PFO, SMMU EVENTQ overflow). On VT-d the
// overflow is sticky: while PFO is set no new record is made, even after the ring drains, until
// software clears it. With UNIT_F_COLLAPSE a fault from a requester that already has a pending
// record is folded into it (QEMU VT-d, one fault-recording register: vtd_try_collapse_fault).

import {
  FAMILY_VTD, FAMILY_AMDVI, FAMILY_RISCV, UNIT_FAMILY, UNIT_FAULT_CAP, UNIT_FAULT_PTR,
  UNIT_FAULT_HEAD, UNIT_FAULT_COUNT, UNIT_FAULT_OVERFLOW, UNIT_FAULT_SEQ, UNIT_STAT_FAULTS,
  FAULT_STRIDE, FAULT_IOVA, FAULT_RID, FAULT_DOMAIN, FAULT_REASON, FAULT_ACCESS, FAULT_CODE,
  FAULT_SEQ, FAULT_FLAGS, ACCESS_WRITE, FAULT_TRANSLATION, FAULT_PERMISSION, FAULT_ADDRESS_SIZE,
  FAULT_BLOCKED, FAULT_NO_DOMAIN, FAULT_ACCESS_FLAG, FAULT_RESERVED_BIT, FAULT_WALK_EABT,
  FAULT_INTERRUPT_ADDR, VTD_FR_CONTEXT_ENTRY_P, VTD_FR_ADDR_BEYOND_MGAW, VTD_FR_WRITE, VTD_FR_READ,
  VTD_FR_PAGING_ENTRY_RSVD, VTD_FR_PAGING_ENTRY_INV, VTD_FR_INTERRUPT_ADDR, VTD_FR_SM_INTERRUPT_ADDR,
  SMMU_EVT_C_BAD_STE, SMMU_EVT_F_TRANSLATION, SMMU_EVT_F_ADDR_SIZE, SMMU_EVT_F_ACCESS,
  SMMU_EVT_F_PERMISSION, SMMU_EVT_F_WALK_EABT, AMDVI_EVT_ILLEGAL_DEV_TABLE_ENTRY,
  AMDVI_EVT_IO_PAGE_FAULT, AMDVI_EVT_PAGE_TAB_HW_ERROR, RISCV_CAUSE_RD_FAULT, RISCV_CAUSE_WR_FAULT,
  RISCV_CAUSE_RD_PAGE_FAULT, RISCV_CAUSE_WR_PAGE_FAULT,
  RISCV_CAUSE_DDT_INVALID, UNIT_FLAGS, UNIT_F_COLLAPSE, UNIT_F_SCALABLE, UNIT_STAT_COLLAPSED,
  FAULT_F_FIRST_STAGE, VTD_FR_FS_PAGING_ENTRY_P, VTD_FR_FS_PAGING_ENTRY_RSVD, VTD_FR_FS_NON_CANONICAL,
  VTD_FR_FS_PAGING_ENTRY_US, VTD_FR_SM_WRITE,
  EFAULT, EACCES, ERANGE, EPERM, ENODEV, FAULT_NO_PASID, VTD_FR_PASID_ENTRY_P, SMMU_EVT_C_BAD_SUBSTREAMID,
  SMMU_EVT_C_BAD_CD, RISCV_CAUSE_PDT_INVALID, FAULT_PASID, FAULT_IPA,
} from '../abi';

/**
 * The code the family's hardware reports. `outputSide` tells an address-size fault on the output
 * (SMMU F_ADDR_SIZE) from one on the input (SMMU reports that as F_TRANSLATION).
 * SMMUv3 hardware records no event for an abort STE (Linux's blocked domain); the emulator
 * still queues a record, for visibility, with code 0 to say the hardware would not.
 */
export function familyCode(family: u32, reason: u32, access: u32, outputSide: bool, unitFlags: u32, flags: u32 = 0): u32 {
  const write = (access & ACCESS_WRITE) != 0;
  if (reason == FAULT_NO_PASID) {
    // The PASID has no entry: VT-d PASID-table entry not present, SMMUv3 SSID beyond the CD
    // table (`outputSide` says so) or an invalid CD, AMD an I/O page fault, RISC-V PDT invalid.
    if (family == FAMILY_VTD) return VTD_FR_PASID_ENTRY_P;
    if (family == FAMILY_AMDVI) return AMDVI_EVT_IO_PAGE_FAULT;
    if (family == FAMILY_RISCV) return RISCV_CAUSE_PDT_INVALID;
    return outputSide ? SMMU_EVT_C_BAD_SUBSTREAMID : SMMU_EVT_C_BAD_CD;
  }
  if (family == FAMILY_VTD && (flags & FAULT_F_FIRST_STAGE) != 0) {
    // First-stage (x86-64) walk: QEMU vtd_iova_to_flpte's reasons.
    switch (reason) {
      case FAULT_TRANSLATION: return VTD_FR_FS_PAGING_ENTRY_P;
      case FAULT_PERMISSION: return write ? VTD_FR_SM_WRITE : VTD_FR_FS_PAGING_ENTRY_US;
      case FAULT_ADDRESS_SIZE: return outputSide ? VTD_FR_FS_PAGING_ENTRY_RSVD : VTD_FR_FS_NON_CANONICAL;
      case FAULT_RESERVED_BIT: return VTD_FR_FS_PAGING_ENTRY_RSVD;
      default: break;
    }
  }
  if (family == FAMILY_VTD) {
    switch (reason) {
      case FAULT_TRANSLATION:
      case FAULT_PERMISSION: return write ? VTD_FR_WRITE : VTD_FR_READ;
      case FAULT_ADDRESS_SIZE: return VTD_FR_ADDR_BEYOND_MGAW;
      case FAULT_BLOCKED:
      case FAULT_NO_DOMAIN: return VTD_FR_CONTEXT_ENTRY_P;
      case FAULT_WALK_EABT: return VTD_FR_PAGING_ENTRY_INV;
      case FAULT_INTERRUPT_ADDR: return (unitFlags & UNIT_F_SCALABLE) != 0 ? VTD_FR_SM_INTERRUPT_ADDR : VTD_FR_INTERRUPT_ADDR;
      default: return VTD_FR_PAGING_ENTRY_RSVD;
    }
  }
  if (family == FAMILY_AMDVI) {
    switch (reason) {
      case FAULT_NO_DOMAIN: return AMDVI_EVT_ILLEGAL_DEV_TABLE_ENTRY;
      case FAULT_WALK_EABT: return AMDVI_EVT_PAGE_TAB_HW_ERROR;
      default: return AMDVI_EVT_IO_PAGE_FAULT;
    }
  }
  if (family == FAMILY_RISCV) {
    switch (reason) {
      // Linux blocks a device by invalidating its device context ("will fault w/ #258").
      case FAULT_NO_DOMAIN:
      case FAULT_BLOCKED: return RISCV_CAUSE_DDT_INVALID;
      case FAULT_WALK_EABT: return write ? RISCV_CAUSE_WR_FAULT : RISCV_CAUSE_RD_FAULT;
      default: return write ? RISCV_CAUSE_WR_PAGE_FAULT : RISCV_CAUSE_RD_PAGE_FAULT;
    }
  }
  switch (reason) {
    case FAULT_TRANSLATION: return SMMU_EVT_F_TRANSLATION;
    case FAULT_PERMISSION: return SMMU_EVT_F_PERMISSION;
    case FAULT_ADDRESS_SIZE: return outputSide ? SMMU_EVT_F_ADDR_SIZE : SMMU_EVT_F_TRANSLATION;
    case FAULT_ACCESS_FLAG: return SMMU_EVT_F_ACCESS;
    case FAULT_NO_DOMAIN: return SMMU_EVT_C_BAD_STE;
    case FAULT_WALK_EABT: return SMMU_EVT_F_WALK_EABT;
    case FAULT_BLOCKED: return 0;
    default: return SMMU_EVT_F_TRANSLATION;
  }
}

/** The status a faulted operation returns. */
export function reasonStatus(reason: u32): i32 {
  switch (reason) {
    case FAULT_PERMISSION:
    case FAULT_ACCESS_FLAG: return EACCES;
    case FAULT_ADDRESS_SIZE: return ERANGE;
    case FAULT_BLOCKED: return EPERM;
    case FAULT_NO_DOMAIN:
    case FAULT_NO_PASID: return ENODEV;
    case FAULT_RESERVED_BIT:
    default: return EFAULT;
  }
}

@inline function recordAt(u: usize, i: u32): usize {
  return <usize>load<u32>(u + UNIT_FAULT_PTR) + <usize>(i * FAULT_STRIDE);
}

/** Whether `rid` has a record still pending in the ring. */
function pendingFrom(u: usize, rid: u32): bool {
  const cap = load<u32>(u + UNIT_FAULT_CAP);
  const head = load<u32>(u + UNIT_FAULT_HEAD);
  const count = load<u32>(u + UNIT_FAULT_COUNT);
  for (let i: u32 = 0; i < count; i++) {
    if (load<u32>(recordAt(u, (head + i) % cap) + FAULT_RID) == rid) return true;
  }
  return false;
}

/**
 * Appends a record to unit `u`'s ring (FAULT_F_* in `flags`; the request's PASID + 1, 0 for
 * none; the IPA a stage-2 fault failed on). Returns the family code; the record
 * may be dropped (ring full, VT-d overflow pending, collapsed), as the hardware drops it.
 */
export function recordFault(u: usize, rid: u32, dom: i32, iova: u64, access: u32, reason: u32, outputSide: bool, flags: u32 = 0,
  pasidTag: u32 = 0, ipa: u64 = 0): u32 {
  const family = load<u32>(u + UNIT_FAMILY);
  const unitFlags = load<u32>(u + UNIT_FLAGS);
  const code = familyCode(family, reason, access, outputSide, unitFlags, flags);
  store<u64>(u + UNIT_STAT_FAULTS, load<u64>(u + UNIT_STAT_FAULTS) + 1);
  const seq = load<u32>(u + UNIT_FAULT_SEQ) + 1;
  store<u32>(u + UNIT_FAULT_SEQ, seq);
  if ((unitFlags & UNIT_F_COLLAPSE) != 0 && pendingFrom(u, rid)) {
    store<u64>(u + UNIT_STAT_COLLAPSED, load<u64>(u + UNIT_STAT_COLLAPSED) + 1);
    return code;
  }
  // VT-d: PFO is sticky, nothing is recorded while it is set.
  if (family == FAMILY_VTD && load<u32>(u + UNIT_FAULT_OVERFLOW) != 0) return code;
  const cap = load<u32>(u + UNIT_FAULT_CAP);
  const count = load<u32>(u + UNIT_FAULT_COUNT);
  if (count >= cap) {
    store<u32>(u + UNIT_FAULT_OVERFLOW, 1);
    return code;
  }
  const r = recordAt(u, (load<u32>(u + UNIT_FAULT_HEAD) + count) % cap);
  store<u64>(r + FAULT_IOVA, iova);
  store<u32>(r + FAULT_RID, rid);
  store<i32>(r + FAULT_DOMAIN, dom);
  store<u16>(r + FAULT_REASON, <u16>reason);
  store<u16>(r + FAULT_ACCESS, <u16>access);
  store<u32>(r + FAULT_CODE, code);
  store<u32>(r + FAULT_SEQ, seq);
  store<u32>(r + FAULT_FLAGS, flags);
  store<u32>(r + FAULT_PASID, pasidTag);
  store<u64>(r + FAULT_IPA, ipa);
  store<u32>(u + UNIT_FAULT_COUNT, count + 1);
  return code;
}

/**
 * Moves up to `max` records, oldest first, to `out`. Returns how many were moved. The overflow
 * flag stays set until the host clears it (as software clears PFO).
 */
export function drainFaults(u: usize, out: usize, max: u32): u32 {
  const cap = load<u32>(u + UNIT_FAULT_CAP);
  let head = load<u32>(u + UNIT_FAULT_HEAD);
  let count = load<u32>(u + UNIT_FAULT_COUNT);
  const ring = <usize>load<u32>(u + UNIT_FAULT_PTR);
  let n: u32 = 0;
  while (n < max && count > 0) {
    memory.copy(out + <usize>(n * FAULT_STRIDE), ring + <usize>(head * FAULT_STRIDE), FAULT_STRIDE);
    head = (head + 1) % cap;
    count--;
    n++;
  }
  store<u32>(u + UNIT_FAULT_HEAD, head);
  store<u32>(u + UNIT_FAULT_COUNT, count);
  return n;
}
