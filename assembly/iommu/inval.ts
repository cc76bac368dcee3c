// What an IOTLB invalidation of a domain range reaches beyond the domain's own entries:
//  - the entries its PASID bindings tagged (the range of every PASID on the domain);
//  - nested domains whose stage 2 it is: their entries combine both stages and are keyed by the
//    stage-1 input, so a stage-2 change drops them whole (SMMUv3 TLBI by VMID, VT-d flushing a
//    nested domain on a change of its parent);
//  - the ATCs of ATS devices using it (ats.ts), after the IOTLB, as drivers order them.

import { TAG_DOMAIN_BITS, MAX_DOMAINS, DOMAIN_TYPE, DOMAIN_PARENT, DOMAIN_CHILDREN, DOMAIN_NESTED } from '../abi';
import { tlbInvalidateRange } from './iotlb';
import { nextSlotOf, slotTag } from './pasid';
import { atcInvalidateTag } from './ats';
import { domainAt } from './unit';

export function afterInvalidate(u: usize, tdom: u32, start: u64, end: u64): void {
  if (tdom < <u32>(1 << TAG_DOMAIN_BITS)) {
    for (let s = nextSlotOf(tdom, 0); s >= 0; s = nextSlotOf(tdom, <u32>s + 1)) {
      tlbInvalidateRange(u, slotTag(tdom, <u32>s), start, end);
    }
    if (load<u32>(domainAt(tdom) + DOMAIN_CHILDREN) != 0) {
      for (let c: u32 = 0; c < MAX_DOMAINS; c++) {
        const d = domainAt(c);
        if (load<u32>(d + DOMAIN_TYPE) == DOMAIN_NESTED && load<u32>(d + DOMAIN_PARENT) == tdom + 1) tlbInvalidateRange(u, c, 0, 0);
      }
    }
  }
  atcInvalidateTag(u, tdom, start, end);
}
