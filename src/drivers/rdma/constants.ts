/**
 * Verbs constants with the values of rdma-core's <infiniband/verbs.h> and the kernel's
 * include/rdma/ib_verbs.h / include/uapi/rdma/ib_user_ioctl_verbs.h, so that code written
 * against the real headers reads the same here.
 */

/** enum ibv_access_flags (= IB_ACCESS_* / IB_UVERBS_ACCESS_*). */
export const IBV_ACCESS_LOCAL_WRITE = 1;
/** IBV_ACCESS_REMOTE_WRITE: a peer may RDMA-write into the region (ib_check_mr_access: EINVAL without LOCAL_WRITE). */
export const IBV_ACCESS_REMOTE_WRITE = 1 << 1;
/** IBV_ACCESS_REMOTE_READ: a peer may RDMA-read the region. */
export const IBV_ACCESS_REMOTE_READ = 1 << 2;
/** IBV_ACCESS_REMOTE_ATOMIC: a peer may run atomic operations on the region (EINVAL without LOCAL_WRITE). */
export const IBV_ACCESS_REMOTE_ATOMIC = 1 << 3;
/** IBV_ACCESS_MW_BIND: memory windows may be bound to the MR; refused for dma-buf MRs. */
export const IBV_ACCESS_MW_BIND = 1 << 4;
/** IBV_ACCESS_ZERO_BASED: remote addresses count from 0, not from the MR start; refused for dma-buf MRs. */
export const IBV_ACCESS_ZERO_BASED = 1 << 5;
/** IBV_ACCESS_ON_DEMAND: an ODP MR, faulted in on use; refused for dma-buf MRs. */
export const IBV_ACCESS_ON_DEMAND = 1 << 6;
/** IBV_ACCESS_HUGETLB: the user memory is backed by huge pages. */
export const IBV_ACCESS_HUGETLB = 1 << 7;
/** IBV_ACCESS_FLUSH_GLOBAL: a peer may issue RDMA FLUSH to global visibility. */
export const IBV_ACCESS_FLUSH_GLOBAL = 1 << 8;
/** IBV_ACCESS_FLUSH_PERSISTENT: a peer may issue RDMA FLUSH to persistence; the last mandatory bit. */
export const IBV_ACCESS_FLUSH_PERSISTENT = 1 << 9;
/** The first bit of the optional range: a device that does not know it may ignore it. */
export const IBV_ACCESS_RELAXED_ORDERING = 1 << 20;
/** IB_UVERBS_ACCESS_OPTIONAL_RANGE: bits 20..29. */
export const IBV_ACCESS_OPTIONAL_RANGE = ((1 << 10) - 1) << 20;

/** IB_ACCESS_SUPPORTED: every mandatory bit up to FLUSH_PERSISTENT, plus the optional range. */
export const IB_ACCESS_SUPPORTED = ((IBV_ACCESS_FLUSH_PERSISTENT << 1) - 1) | IBV_ACCESS_OPTIONAL_RANGE;

/** The access bits UVERBS_METHOD_REG_DMABUF_MR accepts (IM-01): no ON_DEMAND, MW_BIND, ZERO_BASED... */
export const REG_DMABUF_MR_ACCESS_MASK =
  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC |
  IBV_ACCESS_RELAXED_ORDERING;

/** MLX5_MAX_UMR_PAGES: without umr_extended_translation_offset a UMR cannot load this many pages. */
export const MLX5_MAX_UMR_PAGES = 1 << 16;

/** enum ibv_wc_status, as names without the IBV_WC_ prefix, with their numeric values. */
export const IBV_WC_STATUS = {
  SUCCESS: 0,
  LOC_LEN_ERR: 1,
  LOC_QP_OP_ERR: 2,
  LOC_EEC_OP_ERR: 3,
  LOC_PROT_ERR: 4,
  WR_FLUSH_ERR: 5,
  MW_BIND_ERR: 6,
  BAD_RESP_ERR: 7,
  LOC_ACCESS_ERR: 8,
  REM_INV_REQ_ERR: 9,
  REM_ACCESS_ERR: 10,
  REM_OP_ERR: 11,
  RETRY_EXC_ERR: 12,
  RNR_RETRY_EXC_ERR: 13,
  LOC_RDD_VIOL_ERR: 14,
  REM_INV_RD_REQ_ERR: 15,
  REM_ABORT_ERR: 16,
  INV_EECN_ERR: 17,
  INV_EEC_STATE_ERR: 18,
  FATAL_ERR: 19,
  RESP_TIMEOUT_ERR: 20,
  GENERAL_ERR: 21,
} as const;
/** A work-completion status name (ibv_wc_status without IBV_WC_), such as SUCCESS or REM_ACCESS_ERR. */
export type IbvWcStatus = keyof typeof IBV_WC_STATUS;

/** enum ibv_wc_opcode (names without IBV_WC_). */
export type IbvWcOpcode = 'SEND' | 'RDMA_WRITE' | 'RDMA_READ' | 'RECV';

/** enum ibv_wr_opcode (names without IBV_WR_) that the simulated RC QPs carry. */
export type IbvWrOpcode = 'RDMA_WRITE' | 'RDMA_READ' | 'SEND';

/** enum ibv_qp_state (names without IBV_QPS_). */
export type IbvQpState = 'RESET' | 'INIT' | 'RTR' | 'RTS' | 'SQD' | 'SQE' | 'ERR';

/** mlx5_core set_dma_caps: dma_set_max_seg_size(&pdev->dev, 2u * 1024 * 1024 * 1024). */
export const MLX5_MAX_SEG_SIZE = 2 ** 31;
