/**
 * Independent decoders for the formats added with issue 11, written from the spec tables and the
 * architecture texts (iommu.md §C1 stage 2 and granules, §C3 x86-64, §C4 AMD v1; RISC-V
 * privileged spec Sv39/48/57 and Svnapot), never from the core's constants.
 */
const bit = (e: bigint, n: number): boolean => ((e >> BigInt(n)) & 1n) === 1n;
const field = (e: bigint, hi: number, lo: number): bigint => (e >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n);

/** ARM stage-2 leaf (§C1 last column). */
export function decodeS2(raw: bigint) {
  return {
    valid: bit(raw, 0), type: Number(field(raw, 1, 1)), memAttr: Number(field(raw, 5, 2)),
    s2apRead: bit(raw, 6), s2apWrite: bit(raw, 7), sh: Number(field(raw, 9, 8)), af: bit(raw, 10),
    ng: bit(raw, 11), xn: Number(field(raw, 54, 53)), oa: raw & (((1n << 48n) - 1n) & ~0xfffn),
  };
}

/** AMD v1 entry (§C4): PR, NextLevel, OA, FC, IR, IW; size of a NextLevel-7 leaf. */
export function decodeAmd(raw: bigint) {
  const nl = Number(field(raw, 11, 9));
  const oaField = field(raw, 51, 12);
  let ones = 0;
  while (((oaField >> BigInt(ones)) & 1n) === 1n) ones++;
  const size = nl === 7 ? 1n << BigInt(13 + ones) : undefined;
  return {
    pr: bit(raw, 0), d: bit(raw, 6), nextLevel: nl, fc: bit(raw, 60), ir: bit(raw, 61), iw: bit(raw, 62),
    /** the address with the size-encoding ones cleared */
    addr: size ? (oaField << 12n) & ~(size - 1n) : oaField << 12n,
    size,
  };
}

/** x86-64 / VT-d first-stage entry (§C3). */
export function decodeX86(raw: bigint) {
  return {
    p: bit(raw, 0), rw: bit(raw, 1), us: bit(raw, 2), pwt: bit(raw, 3), pcd: bit(raw, 4), a: bit(raw, 5),
    d: bit(raw, 6), ps: bit(raw, 7), g: bit(raw, 8), addr: field(raw, 51, 12) << 12n, xd: bit(raw, 63),
  };
}

/** RISC-V Sv39/48/57 PTE (privileged spec 12.4; Svnapot). */
export function decodeRiscv(raw: bigint) {
  const ppn = field(raw, 53, 10);
  return {
    v: bit(raw, 0), r: bit(raw, 1), w: bit(raw, 2), x: bit(raw, 3), u: bit(raw, 4), g: bit(raw, 5),
    a: bit(raw, 6), d: bit(raw, 7), rsw: Number(field(raw, 9, 8)), ppn, pbmt: Number(field(raw, 62, 61)),
    n: bit(raw, 63), addr: ppn << 12n,
    /** Svnapot 64K: N = 1 and ppn[3:0] = 1000 */
    napot64k: bit(raw, 63) && (ppn & 0xfn) === 8n,
  };
}
