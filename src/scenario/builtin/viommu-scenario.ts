/**
 * The second built-in scenario: what a vIOMMU/VFIO developer tests against, told through the
 * iommufd user API on an SMMUv3 machine (the seed-vfio topology, fpga0 assigned to a VMM): a
 * PASID-tagged translation next to the RID's on one device, a nested stage-1-over-stage-2 walk
 * and a stage-2 fault during a stage-1 table fetch, page requests answered through a fault
 * queue while the device retries, and a dirty bitmap read. `dmabuf-sim run builtin:viommu`.
 */
export const VIOMMU_SCENARIO_FILE = 'builtin:viommu.yaml';

/** The viommu story's scenario file, as YAML text. */
export const VIOMMU_SCENARIO = `# PASID, nested translation, page requests and dirty tracking through /dev/iommu
name: viommu
description: >-
  A VMM assigns fpga0 through iommufd on an SMMUv3: one device with a RID and a PASID in two
  address spaces, a guest stage-1 table walked through stage 2, page requests answered by a fault
  queue, and the dirty pages of a live migration.
topology: builtin:seed-vfio
iommu: { family: smmuv3, strict: true }
acts:
  - title: a PASID next to the RID on one device (substream IDs)
    steps:
      - { op: vfioBind, device: fpga0, pasidBits: 20, as: dev }
      - { op: userAlloc, size: 16K, pattern: { random: 1 }, as: ridMem }
      - { op: userAlloc, size: 16K, pattern: { random: 2 }, as: pasMem }
      - { op: ioasAlloc, as: ridIoas }
      - { op: ioasAlloc, as: pasIoas }
      - { op: ioasMap, ioas: ridIoas, memory: ridMem, iova: 0x100000 }
      - { op: ioasMap, ioas: pasIoas, memory: pasMem, iova: 0x100000 }
      - op: note
        text: a PASID takes only a HWPT allocated for PASIDs, and only while the RID's is one too
      - { op: hwptAlloc, device: dev, pt: ridIoas, flags: PASID, as: ridHwpt }
      - { op: hwptAlloc, device: dev, pt: pasIoas, flags: PASID, as: pasHwpt }
      - { op: ptAttach, device: dev, pt: ridHwpt }
      - { op: ptAttach, device: dev, pt: pasHwpt, pasid: 5 }
      - op: note
        text: the same IOVA, untagged and tagged with PASID 5, reaches two different pages
      - { op: deviceDma, device: dev, verb: read, iova: 0x100000, length: 4K, expect: { bytes: { random: 1 } } }
      - { op: deviceDma, device: dev, verb: read, iova: 0x100000, length: 4K, pasid: 5, expect: { bytes: { random: 2 } } }
      - { op: deviceDma, device: dev, verb: write, iova: 0x101000, length: 4K, pasid: 5, pattern: { random: 3 } }
      - { op: userRead, memory: pasMem, offset: 4K, length: 4K, expect: { bytes: { random: 3 } } }
      - { op: userRead, memory: ridMem, length: 8K, expect: { bytes: { random: 1 } } }
      - op: note
        text: PASID 6 has no context descriptor (C_BAD_CD)
      - { op: deviceDma, device: dev, verb: read, iova: 0x100000, length: 4K, pasid: 6, expect: { errno: ENODEV } }

  - title: a guest's stage-1 table over the host's stage 2 (nested)
    steps:
      - { op: vfioBind, device: fpga0, as: dev }
      - op: note
        text: guest RAM is 6 pages at IPA 0x100000, mapped in the IOAS; the nest parent is the stage-2 table
      - { op: userAlloc, size: 24K, as: guest }
      - { op: ioasAlloc, as: ioas }
      - { op: ioasMap, ioas: ioas, memory: guest, iova: 0x100000 }
      - { op: hwptAlloc, device: dev, pt: ioas, flags: NEST_PARENT, as: s2 }
      - { op: stage1Map, device: dev, memory: guest, ipa: 0x100000, iova: 0x700000000, target: 0x104000 }
      - { op: hwptAlloc, device: dev, pt: s2, root: 0x100000, as: nested }
      - { op: ptAttach, device: dev, pt: nested }
      - op: note
        text: every stage-1 table fetch and the output address go through stage 2
      - { op: deviceDma, device: dev, verb: write, iova: 0x700000020, length: 100, pattern: { random: 7 } }
      - { op: userRead, memory: guest, offset: 0x4020, length: 100, expect: { bytes: { random: 7 } } }
      - op: note
        text: a second guest table whose root page is mapped at IPA 0x200000 but whose next level is not
      - { op: userAlloc, size: 16K, as: guest2 }
      - { op: ioasMap, ioas: ioas, memory: guest2, length: 4K, iova: 0x200000 }
      - { op: stage1Map, device: dev, memory: guest2, ipa: 0x200000, iova: 0x700000000, target: 0x104000 }
      - { op: hwptAlloc, device: dev, pt: s2, root: 0x200000, as: broken }
      - { op: ptAttach, device: dev, pt: broken }
      - { op: deviceDma, device: dev, verb: write, iova: 0x700000000, length: 64, expect: { errno: EFAULT } }

  - title: page requests answered by a fault queue, the device retrying (ATS + PRI)
    steps:
      - { op: vfioBind, device: fpga0, pasidBits: 20, pri: true, as: dev }
      - { op: faultAlloc, as: fq }
      - { op: ioasAlloc, as: ridIoas }
      - { op: ioasAlloc, as: svaIoas }
      - { op: hwptAlloc, device: dev, pt: ridIoas, flags: PASID, as: ridHwpt }
      - { op: hwptAlloc, device: dev, pt: svaIoas, flags: PASID, fault: fq, as: svaHwpt }
      - { op: ptAttach, device: dev, pt: ridHwpt }
      - { op: ptAttach, device: dev, pt: svaHwpt, pasid: 3 }
      - { op: userAlloc, size: 16K, as: mem }
      - op: note
        text: nothing is mapped yet; the device's first access raises a page request instead of a fault
      - { op: deviceDma, device: dev, verb: write, iova: 0x5000, length: 6K, pasid: 3, pattern: { random: 9 }, expect: { result: { state: waiting } } }
      - { op: pageResponse, fault: fq, code: success, ioas: svaIoas, memory: mem }
      - op: note
        text: the retry crossed into the next page, which raised a second request
      - { op: pageResponse, fault: fq, code: success, ioas: svaIoas, memory: mem, offset: 4K, expect: { result: { waiting: 0 } } }
      - { op: userRead, memory: mem, length: 6K, expect: { bytes: { random: 9 } } }
      - { op: deviceDma, device: dev, verb: write, iova: 0x9000, length: 64, pasid: 3, expect: { result: { state: waiting } } }
      - { op: pageResponse, fault: fq, code: invalid, expect: { result: { requests: 1, waiting: 0 } } }

  - title: dirty tracking for live migration
    steps:
      - { op: vfioBind, device: fpga0, as: dev }
      - { op: ioasAlloc, as: ioas }
      - { op: hwptAlloc, device: dev, pt: ioas, flags: DIRTY_TRACKING, as: hwpt }
      - { op: ptAttach, device: dev, pt: hwpt }
      - { op: userAlloc, size: 64K, as: ram }
      - { op: ioasMap, ioas: ioas, memory: ram, iova: 0x400000 }
      - op: note
        text: enabling clears the marks the map left (Linux maps writable ARM leaves DBM + writable)
      - { op: dirtyTracking, hwpt: hwpt }
      - { op: deviceDma, device: dev, verb: write, iova: 0x401000, length: 4K }
      - { op: deviceDma, device: dev, verb: write, iova: 0x40a010, length: 100 }
      - { op: deviceDma, device: dev, verb: read, iova: 0x40c000, length: 4K }
      - { op: dirtyBitmap, hwpt: hwpt, iova: 0x400000, length: 64K, expect: { result: { dirty: '1,10' } } }
      - op: note
        text: the read cleared the bits
      - { op: dirtyBitmap, hwpt: hwpt, iova: 0x400000, length: 64K, expect: { result: { count: 0 } } }
`;
