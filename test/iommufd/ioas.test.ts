/**
 * The iommufd selftest's iommufd_ioas procedures (tools/testing/selftests/iommu/iommufd.c) that
 * need no domain: object ids and IOMMU_DESTROY, IOVA ranges, MAP/UNMAP areas with fixed and
 * automatic IOVAs, ALLOW_IOVAS, COPY. Errnos are the functions' named in each case.
 */
import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP,
  ULONG_MAX, type IommuIoasIovaRanges, type IommuIovaRange,
} from '../../src/drivers/iommufd/index.js';
import { errOf, FIXED, PAGE, RW, setup } from './helpers.js';

describe('iommufd IOAS (selftest iommufd_ioas, no domain)', () => {
  it('IOMMU_IOAS_ALLOC / IOMMU_DESTROY: ids from 1; destroy of an unknown or destroyed id is ENOENT; flags are EOPNOTSUPP (iommufd_ioas_alloc_ioctl)', async () => {
    const { io, ioasAlloc, ctx } = await setup();
    const a = ioasAlloc();
    const b = ioasAlloc();
    expect([a, b]).toEqual([1, 2]);
    expect(errOf(() => io(IOMMU_IOAS_ALLOC, { flags: 1 })).code).toBe('EOPNOTSUPP');
    expect(io(IOMMU_DESTROY, { id: a })).toBe(0);
    expect(errOf(() => io(IOMMU_DESTROY, { id: a })).code).toBe('ENOENT');
    expect(errOf(() => io(IOMMU_DESTROY, { id: 99 })).code).toBe('ENOENT');
    expect(ctx.objects().map((o) => [o.id, o.type])).toEqual([[b, 'ioas']]);
    // An ioctl the file does not know, and a bad argument pointer.
    expect(errOf(() => io(0x3b00 + 0x99, {})).code).toBe('ENOTTY');
    expect(errOf(() => io(IOMMU_IOAS_ALLOC, null as unknown as object)).code).toBe('EFAULT');
  });

  it('IOMMU_IOAS_IOVA_RANGES: with no domain the whole of [0, ULONG_MAX], alignment 1; EMSGSIZE with no room, num_iovas says how many (iommufd_ioas_iova_ranges)', async () => {
    const { io, ioasAlloc } = await setup();
    const id = ioasAlloc();
    const none: IommuIoasIovaRanges = { ioasId: id, numIovas: 0 };
    expect(errOf(() => io(IOMMU_IOAS_IOVA_RANGES, none)).code).toBe('EMSGSIZE');
    expect(none.numIovas).toBe(1);
    const r: IommuIoasIovaRanges = { ioasId: id, numIovas: 4, allowedIovas: [] };
    io(IOMMU_IOAS_IOVA_RANGES, r);
    expect([r.numIovas, r.allowedIovas, r.outIovaAlignment]).toEqual([1, [{ start: 0n, last: ULONG_MAX }], 1n]);
    expect(errOf(() => io(IOMMU_IOAS_IOVA_RANGES, { ioasId: 77, numIovas: 0 })).code).toBe('ENOENT');
    expect(errOf(() => io(IOMMU_IOAS_IOVA_RANGES, { ioasId: id, __reserved: 1 })).code).toBe('EOPNOTSUPP');
  });

  it('area (fixed IOVA): an overlapping map is EEXIST; an unmap that cuts an area or holds none is ENOENT and changes nothing; whole areas unmap with their length (iopt_check_iova, iopt_unmap_iova_range)', async () => {
    const { ioasAlloc, map, unmap, user, ctx } = await setup();
    const id = ioasAlloc();
    const va = user(16);
    for (let i = 0; i < 4n; i++) expect(map(id, va + BigInt(i) * 4n * PAGE, 4n * PAGE, 0x10_0000n + BigInt(i) * 4n * PAGE)).toBe(0x10_0000n + BigInt(i) * 4n * PAGE);
    expect(errOf(() => map(id, va, PAGE, 0x10_3000n)).code).toBe('EEXIST');
    expect(errOf(() => map(id, va, 2n * PAGE, 0x0f_f000n)).code).toBe('EEXIST');
    // Cuts the first area at its start, the last at its end: ENOENT, all four areas stay.
    expect(errOf(() => unmap(id, 0x10_1000n, 8n * PAGE)).code).toBe('ENOENT');
    expect(errOf(() => unmap(id, 0x10_0000n, 15n * PAGE)).code).toBe('ENOENT');
    expect(errOf(() => unmap(id, 0x20_0000n, PAGE)).code).toBe('ENOENT');
    const ioas = ctx.object(id) as import('../../src/drivers/iommufd/index.js').IommufdIoas;
    expect(ioas.iopt.areas).toHaveLength(4);
    // A range covering two whole areas (and holes around them) unmaps exactly those.
    expect(unmap(id, 0x0f_0000n, 0x10_8000n - 0x0f_0000n)).toBe(8n * PAGE);
    expect(ioas.iopt.areas.map((a) => a.iova)).toEqual([0x10_8000n, 0x10_c000n]);
    // Unmap-all (iova 0, length U64_MAX) takes the rest; on an empty IOAS it succeeds with 0.
    expect(unmap(id, 0n, ULONG_MAX)).toBe(8n * PAGE);
    expect(unmap(id, 0n, ULONG_MAX)).toBe(0n);
  });

  it('MAP argument checks: EOPNOTSUPP unknown flags, EINVAL no access or length 0, EOVERFLOW at ULONG_MAX, ENOENT no IOAS (iommufd_ioas_map)', async () => {
    const { io, ioasAlloc, user } = await setup();
    const id = ioasAlloc();
    const va = user(1);
    const m = (a: object) => io(IOMMU_IOAS_MAP, { ioasId: id, userVa: va, length: PAGE, flags: RW, ...a });
    expect(errOf(() => m({ flags: RW | 8 })).code).toBe('EOPNOTSUPP');
    expect(errOf(() => m({ __reserved: 1 })).code).toBe('EOPNOTSUPP');
    expect(errOf(() => m({ flags: FIXED, iova: PAGE })).code).toBe('EINVAL');
    expect(errOf(() => m({ flags: RW | FIXED, iova: ULONG_MAX })).code).toBe('EOVERFLOW');
    expect(errOf(() => m({ length: ULONG_MAX })).code).toBe('EOVERFLOW');
    expect(errOf(() => m({ length: 0n })).code).toBe('EINVAL');
    expect(errOf(() => m({ flags: RW | FIXED, iova: ULONG_MAX - PAGE + 2n })).code).toBe('EOVERFLOW');
    expect(errOf(() => m({ ioasId: 42 })).code).toBe('ENOENT');
    expect(errOf(() => io(IOMMU_IOAS_UNMAP, { ioasId: id, iova: 0n, length: 0n })).code).toBe('EINVAL');
  });

  it('area_auto_iova: allocated IOVAs are never 0, aligned to the length (power of two) and to the user address, and never collide (iopt_alloc_iova)', async () => {
    const { ioasAlloc, map, unmap, user, ctx } = await setup();
    const id = ioasAlloc();
    const va = user(64);
    const got: { iova: bigint; len: bigint }[] = [];
    for (let i = 1; i <= 8; i++) {
      const len = BigInt(i) * PAGE;
      const iova = map(id, va, len);
      got.push({ iova, len });
      expect(iova).not.toBe(0n);
      let pow = 1n;
      while (pow < len) pow <<= 1n;
      const uAlign = va & -va;
      expect(iova % (pow < uAlign ? pow : uAlign)).toBe(0n);
    }
    const sorted = [...got].sort((a, b) => (a.iova < b.iova ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.iova >= sorted[i - 1]!.iova + sorted[i - 1]!.len).toBe(true);
    // A user address with a sub-page offset keeps it in the IOVA (iova_alignment is 1 with no domain).
    const odd = map(id, va + 0x123n, 0x100n);
    expect(odd % PAGE).toBe(0x123n);
    for (const g of got) expect(unmap(id, g.iova, g.len)).toBe(g.len);
    // No domain: nothing was ever pinned (pages are pinned when a domain needs them).
    expect(ctx.pinnedPages).toBe(0);
  });

  it('IOMMU_IOAS_ALLOW_IOVAS: EINVAL start >= last or overlapping ranges; automatic IOVAs come from the allowed ranges, ENOSPC when none fits; fixed IOVAs are not limited (iommufd_ioas_allow_iovas)', async () => {
    const { io, ioasAlloc, map, user } = await setup();
    const id = ioasAlloc();
    const allow = (r: IommuIovaRange[]) => io(IOMMU_IOAS_ALLOW_IOVAS, { ioasId: id, numIovas: r.length, allowedIovas: r });
    expect(errOf(() => allow([{ start: 0x2000n, last: 0x2000n }])).code).toBe('EINVAL');
    expect(errOf(() => allow([{ start: 0x1000n, last: 0x5fffn }, { start: 0x4000n, last: 0x8fffn }])).code).toBe('EINVAL');
    expect(errOf(() => io(IOMMU_IOAS_ALLOW_IOVAS, { ioasId: id, __reserved: 1, allowedIovas: [] })).code).toBe('EOPNOTSUPP');
    allow([{ start: 0x10_0000n, last: 0x10_ffffn }]);
    const va = user(32);
    const a = map(id, va, 0x8000n);
    expect(a >= 0x10_0000n && a + 0x8000n - 1n <= 0x10_ffffn).toBe(true);
    map(id, va, 0x8000n);
    expect(errOf(() => map(id, va, PAGE)).code).toBe('ENOSPC');
    expect(map(id, va, PAGE, 0x40_0000n)).toBe(0x40_0000n);
    // An empty list allows everything again.
    allow([]);
    expect(map(id, va, PAGE)).not.toBe(0n);
  });

  it('IOMMU_IOAS_COPY: the pages behind a fully mapped source range appear in another IOAS; ENOENT for a hole; EINVAL without access flags (iommufd_ioas_copy, iopt_get_pages)', async () => {
    const { io, ioasAlloc, map, user, ctx } = await setup();
    const src = ioasAlloc();
    const dst = ioasAlloc();
    const va = user(8);
    map(src, va, 4n * PAGE, 0x10_0000n);
    map(src, va + 4n * PAGE, 4n * PAGE, 0x10_4000n);
    const c: { dstIova?: bigint } & Record<string, unknown> = { flags: RW, srcIoasId: src, dstIoasId: dst, srcIova: 0x10_2000n, length: 4n * PAGE };
    io(IOMMU_IOAS_COPY, c);
    const d = ctx.object(dst) as import('../../src/drivers/iommufd/index.js').IommufdIoas;
    // Spanning two source areas gives two destination areas over the same pages.
    expect(d.iopt.areas.map((a) => [a.iova - c.dstIova!, a.length, a.pages])).toEqual([
      [0n, 2n * PAGE, (ctx.object(src) as typeof d).iopt.areas[0]!.pages],
      [2n * PAGE, 2n * PAGE, (ctx.object(src) as typeof d).iopt.areas[1]!.pages],
    ]);
    expect(errOf(() => io(IOMMU_IOAS_COPY, { ...c, srcIova: 0x10_6000n, length: 4n * PAGE })).code).toBe('ENOENT');
    expect(errOf(() => io(IOMMU_IOAS_COPY, { ...c, flags: 0 })).code).toBe('EINVAL');
    expect(errOf(() => io(IOMMU_IOAS_COPY, { ...c, dstIoasId: 55 })).code).toBe('ENOENT');
  });

  it('closing /dev/iommu destroys every object (iommufd_fops_release)', async () => {
    const { proc, fd, ioasAlloc, map, user, ctx } = await setup();
    const id = ioasAlloc();
    map(id, user(2), 2n * PAGE);
    proc.close(fd);
    expect(ctx.objects()).toEqual([]);
  });
});
