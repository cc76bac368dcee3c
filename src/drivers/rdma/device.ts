/**
 * An ib_device on a PCI function (drivers/infiniband/core/device.c with the probe of an mlx5- or
 * EFA-like driver), and the per-machine RDMA fabric its QPs connect over. Nothing here is
 * module-level state: device numbering and the fabric belong to the Machine, so two machines in
 * one process never see each other's NICs or QPs.
 */
import { Ring, SimError, type DmaDevice as DmaApiDevice, type Machine, type PciFunction } from '../../index.js';
import { importerDevice, type DmaBufImporterDevice } from '../device.js';
import type { IbvMr } from './mr.js';
import type { IbvQp } from './qp.js';
import { MLX5_MAX_SEG_SIZE } from './constants.js';

const U64_MAX = (1n << 64n) - 1n;

/**
 * The NIC model: 'pinned' is EFA-like (dma-buf MRs pinned through ib_umem_dmabuf_get_pinned),
 * 'odp' is mlx5-like (on-demand paging, the exporter may move the buffer and calls move_notify).
 */
export type RdmaNicKind = 'pinned' | 'odp';

/** Options of `new RdmaDevice(machine, fn, opts)`: the driver and HCA capabilities the NIC models. */
export interface RdmaDeviceOptions {
  /** 'pinned': EFA-like, dma-buf MRs are pinned. 'odp': mlx5-like, on-demand mapping with move_notify. */
  kind: RdmaNicKind;
  /** ib_device name. @default 'efa_<n>' or 'mlx5_<n>' */
  name?: string;
  /** The driver implements reg_user_mr_dmabuf. Without it REG_DMABUF_MR fails EOPNOTSUPP (IM-01). @default true */
  regDmabufMr?: boolean;
  /** odp only: CONFIG_INFINIBAND_USER_MEM + CONFIG_INFINIBAND_ON_DEMAND_PAGING (IM-06). @default true */
  configOdp?: boolean;
  /** odp only: the HCA's umr_extended_translation_offset capability (IM-06 UMR length limit). @default true */
  umrExtendedTranslationOffset?: boolean;
  /** pinned only: the RDMA READ / RDMA WRITE device caps that allow REMOTE_READ / REMOTE_WRITE MRs. @default true */
  rdmaRead?: boolean;
  rdmaWrite?: boolean;
  /** max_send_sge / max_recv_sge. @default 30 */
  maxSge?: number;
  /** The DMA API device; @default machine.dmaDevice(fn) */
  dma?: DmaApiDevice;
}

/** What an {@link RdmaEvent} records: MR registration, invalidation and ODP faults, QP state changes, async events, completions. */
export type RdmaEventKind =
  | 'reg_mr'
  | 'dereg_mr'
  | 'invalidate'
  | 'page_fault'
  | 'remap'
  | 'unexpected_move'
  | 'qp_state'
  | 'async_event'
  | 'completion';

/** One entry of `RdmaDevice.events`, in order (`seq`), with the MR key or QP number it concerns. */
export interface RdmaEvent {
  readonly seq: number;
  readonly kind: RdmaEventKind;
  readonly device: string;
  readonly lkey?: number;
  readonly qpNum?: number;
  readonly detail: Readonly<Record<string, unknown>>;
}

/** Counters the report shows. */
export interface RdmaDeviceStats {
  invalidations: number;
  pageFaults: number;
  remaps: number;
}

/** Every QP of a machine, by number (the fabric RC connections are made on). Lives in Machine.driverState. */
export class RdmaFabric {
  readonly qps = new Map<number, IbvQp>();
  nextQpn = 0x100;
}

/** The RDMA fabric of a machine. */
export function fabricOf(m: Machine): RdmaFabric {
  return m.driverState(RdmaFabric);
}

/**
 * An ib_device on a PCI function: `new RdmaDevice(machine, fn, opts)`.
 * The constructor throws {@link index!SimError} EINVAL when opts.kind is neither 'pinned' nor
 * 'odp', ENODEV when `fn` names no PCI function.
 */
export class RdmaDevice {
  readonly name: string;
  readonly kind: RdmaNicKind;
  readonly fn: PciFunction;
  readonly dma: DmaApiDevice;
  /** The NIC's requester ID (Machine.rid(fn)). */
  readonly rid: number;
  /** The device object passed to dma_buf_dynamic_attach (attach->dev). */
  readonly importer: DmaBufImporterDevice;
  private readonly _events: Ring<RdmaEvent>;
  readonly stats: RdmaDeviceStats = { invalidations: 0, pageFaults: 0, remaps: 0 };
  readonly opts: Readonly<Required<Omit<RdmaDeviceOptions, 'name' | 'dma'>>>;
  /** @internal */
  readonly _mrs = new Map<number, IbvMr>();
  private _mrIndex = 1;
  private _seq = 0;

  /** What the device did (newest `machine.history.driverEvents`, oldest first; a snapshot). */
  get events(): readonly RdmaEvent[] {
    return this._events.toArray();
  }

  /** Entries of `events` dropped off the bounded log's old end. */
  get eventsDropped(): number {
    return this._events.dropped;
  }

  constructor(
    readonly machine: Machine,
    fn: PciFunction | string,
    opts: RdmaDeviceOptions,
  ) {
    this._events = new Ring<RdmaEvent>(machine.history.driverEvents);
    if (opts.kind !== 'pinned' && opts.kind !== 'odp') {
      throw new SimError('EINVAL', 'RdmaDevice', `kind must be 'pinned' or 'odp', got ${String(opts.kind)}`);
    }
    this.fn = typeof fn === 'string' ? machine.pci(fn) : fn;
    this.kind = opts.kind;
    // ib_device names (mlx5_0, efa_0, ...) are numbered per machine, as per host.
    const prefix = opts.kind === 'odp' ? 'mlx5' : 'efa';
    this.name = opts.name ?? machine.deviceName(`${prefix}_`);
    this.dma = opts.dma ?? machine.dmaDevice(this.fn);
    // mlx5_core probe (set_dma_caps): a 64-bit DMA mask and dma_set_max_seg_size(2 GiB), so
    // its sg_tables keep P2P ranges whole. The driver sets it for its own device; a DMA device
    // the caller passes in keeps what the caller chose.
    if (opts.kind === 'odp' && !opts.dma) {
      this.dma.setMaskAndCoherent(U64_MAX);
      this.dma.setMaxSegSize(MLX5_MAX_SEG_SIZE);
    }
    this.rid = machine.rid(this.fn);
    this.importer = importerDevice(machine, this.fn, this.dma);
    this.opts = {
      kind: opts.kind,
      regDmabufMr: opts.regDmabufMr ?? true,
      configOdp: opts.configOdp ?? true,
      umrExtendedTranslationOffset: opts.umrExtendedTranslationOffset ?? true,
      rdmaRead: opts.rdmaRead ?? true,
      rdmaWrite: opts.rdmaWrite ?? true,
      maxSge: opts.maxSge ?? 30,
    };
  }

  /** IBK_ON_DEMAND_PAGING. */
  get odpCapable(): boolean {
    return this.kind === 'odp' && this.opts.configOdp;
  }

  /** The live MR with this lkey/rkey. */
  lookupMr(key: number): IbvMr | undefined {
    const mr = this._mrs.get(key >>> 8);
    return mr && mr.lkey === key >>> 0 ? mr : undefined;
  }

  /** @internal */
  emit(kind: RdmaEventKind, detail: Record<string, unknown>, ids: { lkey?: number; qpNum?: number } = {}): void {
    this._events.push({ seq: this._seq++, kind, device: this.name, ...ids, detail });
  }

  /** @internal mlx5-style key: index << 8 | variant byte. */
  allocKey(mr: IbvMr): number {
    const index = this._mrIndex++;
    this._mrs.set(index, mr);
    return ((index << 8) | ((index * 0x3b) & 0xff)) >>> 0;
  }
}
