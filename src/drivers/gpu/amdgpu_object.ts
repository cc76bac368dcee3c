/**
 * amdgpu buffer objects (amdgpu_object.c, amdgpu_gem.c's uAPI bits): a BO, its domains and
 * creation flags, where its bytes are (placement and backing storage) and, for an imported BO,
 * the importer state. Placement and moves are amdgpu_ttm.ts; dma-buf export/import is
 * amdgpu_dma_buf.ts; the device is amdgpu.ts.
 */
import {
  PAGE_SIZE,
  SimError,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaResv,
  type ScatterList,
  type SgTable,
} from '../../index.js';
import type { AmdgpuDevice } from './amdgpu.js';

const PAGE = BigInt(PAGE_SIZE);

/** amdgpu_drm.h domain bits. */
export const AMDGPU_GEM_DOMAIN_GTT = 0x2;
export const AMDGPU_GEM_DOMAIN_VRAM = 0x4;
/** amdgpu_drm.h creation flags the model knows. */
export const AMDGPU_GEM_CREATE_CPU_ACCESS_REQUIRED = 1 << 0;
export const AMDGPU_GEM_CREATE_NO_CPU_ACCESS = 1 << 1;

export type AmdgpuDomain = 'VRAM' | 'GTT';

export interface AmdgpuBoCreateOptions {
  /** Bytes; rounded up to whole pages. */
  size: number;
  /** Preferred domains (AMDGPU_GEM_DOMAIN_* bits, or names). */
  domain: number | AmdgpuDomain | readonly AmdgpuDomain[];
  /** AMDGPU_GEM_CREATE_* bits. @default 0 */
  flags?: number;
}

/** One contiguous piece of VRAM, by VRAM offset. */
export interface VramChunk {
  readonly offset: bigint;
  readonly length: bigint;
}

/** Where a BO's bytes are. */
export type AmdgpuPlacement =
  | { readonly domain: 'VRAM'; readonly chunks: readonly VramChunk[] }
  | { readonly domain: 'GTT'; readonly pages: readonly bigint[]; readonly gart: ScatterList };

/** @internal A BO's storage: one placement and who still points into it. */
export interface AmdgpuBacking {
  readonly id: number;
  readonly placement: AmdgpuPlacement;
  /** Exporter tables still pointing into it. */
  tables: number;
  /** Replaced by a move; freed once `fenced` and no tables remain. */
  retired: boolean;
  fenced: boolean;
  freed: boolean;
}

export type AmdgpuEventKind = 'create' | 'move' | 'evict' | 'pin' | 'unpin' | 'map' | 'unmap' | 'invalidate' | 'revalidate' | 'free';

export interface AmdgpuEvent {
  readonly seq: number;
  readonly kind: AmdgpuEventKind;
  readonly bo: number;
  readonly detail: Record<string, unknown>;
}

/** @internal The importer side of an imported BO. */
export interface AmdgpuImportState {
  readonly attach: DmaBufAttachment;
  sgt: SgTable | null;
  /** The GPU VM's entries for the BO (DMA segments), null when invalidated. */
  ptes: { dmaAddress: bigint; length: bigint }[] | null;
  invalidations: number;
  revalidations: number;
  /** move_notify could not take the VM lock: the page-table update waits for the next use. */
  deferredVmUpdates: number;
}

/** A buffer object: exported-capable (own memory) or imported (an attachment to another's dma-buf). */
export class AmdgpuBo {
  /** AMDGPU_GEM_CREATE_* flags; map for P2P adds CPU_ACCESS_REQUIRED, as the driver does. */
  flags: number;
  /** ttm pin_count. */
  pinCount = 0;
  /** Moves so far (evictions and migrations). */
  moves = 0;
  freed = false;
  /** @internal */ backing: AmdgpuBacking | null = null;
  /** @internal the exported dma-buf, while alive. */ exported: DmaBuf | null = null;
  /** @internal importer side */ importState: AmdgpuImportState | null = null;
  /** @internal references: the handle, the export. */ refs = 1;

  /** @internal Use AmdgpuDevice.createBo / importDmabuf. */
  constructor(
    readonly device: AmdgpuDevice,
    readonly id: number,
    readonly size: number,
    /** AMDGPU_GEM_DOMAIN_* bits the BO prefers (and is allowed in). */
    readonly preferredDomains: number,
    flags: number,
    readonly resv: DmaResv,
  ) {
    this.flags = flags;
  }

  /** True for a BO made by importing another exporter's dma-buf. */
  get imported(): boolean {
    return this.importState !== null;
  }

  /** Current domain of an own BO; null for imported BOs. */
  get domain(): AmdgpuDomain | null {
    return this.backing?.placement.domain ?? null;
  }

  /** The current placement (own BOs). */
  get placement(): AmdgpuPlacement | null {
    return this.backing?.placement ?? null;
  }

  /** In VRAM and entirely inside the CPU-visible window. */
  get visible(): boolean {
    const p = this.backing?.placement;
    return p?.domain === 'VRAM' && p.chunks.every((c) => c.offset + c.length <= this.device.visibleVramBytes);
  }

  /** The exported dma-buf, if any is alive. */
  get dmabuf(): DmaBuf | null {
    return this.exported;
  }

  /** Importer side: the attachment (imported BOs). */
  get attachment(): DmaBufAttachment | null {
    return this.importState?.attach ?? null;
  }

  /** Importer side: the GPU page-table entries are valid (false after move_notify until next use). */
  get ptesValid(): boolean {
    return this.importState?.ptes != null;
  }

  /** Importer side: move_notify invalidations so far. */
  get invalidations(): number {
    return this.importState?.invalidations ?? 0;
  }
  /** Importer side: re-validations (map again after move_notify) so far. */
  get revalidations(): number {
    return this.importState?.revalidations ?? 0;
  }

  /** Physical addresses of the bytes (own BOs): CPU physical for VRAM and GTT pages. */
  physRanges(): { phys: bigint; length: bigint }[] {
    const p = this.backing?.placement;
    if (!p) return [];
    if (p.domain === 'VRAM') return p.chunks.map((c) => ({ phys: this.device.vramPhys(c.offset), length: c.length }));
    return p.pages.map((pa) => ({ phys: pa, length: PAGE }));
  }

  /**
   * The GPU reads through its DMA engine (after waiting for the resv's WRITE-class fences, as a
   * command submission does implicitly). Imported BOs are re-validated first when invalidated.
   * @throws {@link index!SimError} EINVAL for a freed BO or a range outside it; EIO when a fence
   * never signals or the DMA faults; for imported BOs, what re-validation and the attachment's
   * access check throw.
   */
  read(offset: number, length: number): Uint8Array {
    return this.device.gpuAccess(this, 'read', offset, new Uint8Array(length));
  }

  /**
   * The GPU writes through its DMA engine (waits for READ-class fences first).
   * @throws {@link index!SimError} as {@link AmdgpuBo.read}.
   */
  write(offset: number, data: Uint8Array): void {
    this.device.gpuAccess(this, 'write', offset, data);
  }
}

/** @internal AMDGPU_GEM_DOMAIN_* bits of a domain argument; EINVAL for an unknown name. */
export function domainBits(d: number | AmdgpuDomain | readonly AmdgpuDomain[]): number {
  if (typeof d === 'number') return d;
  const list = typeof d === 'string' ? [d] : d;
  let bits = 0;
  for (const x of list) {
    if (x === 'VRAM') bits |= AMDGPU_GEM_DOMAIN_VRAM;
    else if (x === 'GTT') bits |= AMDGPU_GEM_DOMAIN_GTT;
    else throw new SimError('EINVAL', 'amdgpu domain', `unknown domain ${String(x)}`);
  }
  return bits;
}

/** @internal */
export function domainBit(d: AmdgpuDomain): number {
  return d === 'VRAM' ? AMDGPU_GEM_DOMAIN_VRAM : AMDGPU_GEM_DOMAIN_GTT;
}
