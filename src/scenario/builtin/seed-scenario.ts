/**
 * The default scenario, the story of the 2021 habanalabs thread in six acts on the seed
 * machine (builtin topology): Gaudi2 HBM exported as a dma-buf, registered by RDMA NICs with
 * ibv_reg_dmabuf_mr, written by a remote NIC, and refused where the kernel refuses it.
 * Kept as scenario text (a TS module, so it bundles for the browser): `dmabuf-sim run` runs it,
 * and it is the example of the file format.
 */
export const SEED_SCENARIO_FILE = 'builtin:seed.yaml';

/** The seed story's scenario file, as YAML text (what `dmabuf-sim show seed` prints). */
export const SEED_SCENARIO = `# habanalabs device memory exported for RDMA (dri-devel, June-September 2021)
name: seed
description: >-
  Gaudi2 HBM (no struct pages, no CPU access) exported as a dma-buf and imported by RDMA NICs:
  peer to peer over a PCIe switch, through the IOMMU across root ports, and refused across a
  host bridge the kernel does not whitelist.
topology: builtin
profile: 6.x
acts:
  - title: gaudi0 and nic0 under one PCIe switch (BUS_ADDR)
    iommu: null
    steps:
      - op: note
        text: sw0's downstream ports do not redirect (no ACS RR/CR), so the switch routes peer TLPs itself
      - { op: alloc, device: gaudi0, size: 2M, as: hbm }
      - { op: map, buffer: hbm, as: va }
      - { op: export, buffer: va, flags: O_RDWR|O_CLOEXEC, as: fd }
      - op: note
        text: nic0 is a dynamic importer with allow_peer2peer; the exporter's sg_table holds bus addresses, no struct pages
      - { op: register, nic: nic0, fd: fd, length: 2M, access: [LOCAL_WRITE, REMOTE_WRITE, REMOTE_READ], as: mr }
      - { op: post, verb: WRITE, from: nic1, to: nic0, mr: mr, offset: 0x1000, length: 64K, pattern: { random: 2021 } }
      - { op: readBack, buffer: va, offset: 0x1000, length: 64K, expect: { bytes: { random: 2021 } } }
      - { op: post, verb: READ, from: nic1, to: nic0, mr: mr, offset: 0x1000, length: 4K, expect: { bytes: { random: 2021 } } }
      - { op: unmap, target: mr }
      - { op: close, fd: fd }
      - { op: unmap, target: va }

  - title: gaudi0 and nic1 on different root ports, IOMMU on (THRU_HOST_BRIDGE)
    iommu: { family: vtd, strict: true }
    steps:
      - op: note
        text: the host bridge (Intel 8086:2020) is whitelisted; the exporter maps each entry with dma_map_resource, so the NIC gets IOVAs
      - { op: alloc, device: gaudi0, size: 2M, as: hbm }
      - { op: map, buffer: hbm, as: va }
      - { op: export, buffer: va, as: fd }
      - { op: register, nic: nic1, fd: fd, length: 2M, access: [LOCAL_WRITE, REMOTE_WRITE], as: mr }
      - { op: post, verb: WRITE, from: nic0, to: nic1, mr: mr, offset: 0x10000, length: 128K, pattern: counter }
      - { op: readBack, buffer: va, offset: 0x10000, length: 128K, expect: { bytes: counter } }
      - { op: unmap, target: mr }
      - { op: close, fd: fd }

  - title: gaudi0 and nic2 across a host bridge not in the whitelist (6.x)
    iommu: { family: vtd, strict: true }
    steps:
      - { op: alloc, device: gaudi0, size: 2M, as: hbm }
      - { op: map, buffer: hbm, as: va }
      - { op: export, buffer: va, as: fd }
      - op: note
        text: attach clears peer2peer (no P2P distance); 6.x maps at attach for a dynamic importer of a static exporter, so registration fails
      - { op: register, nic: nic2, fd: fd, length: 2M, access: [LOCAL_WRITE, REMOTE_WRITE], expect: { errno: EPERM } }
      - { op: attach, importer: nic2, fd: fd, dynamic: true, expect: { errno: EPERM } }
      - op: note
        text: a static importer is never P2P (DB-07); its attach succeeds and its map fails
      - { op: attach, importer: nic2, fd: fd, as: static }
      - { op: mapAttachment, attachment: static, expect: { errno: EPERM } }
      - { op: detach, attachment: static }
      - { op: mmap, fd: fd, expect: { errno: EINVAL } }
      - op: note
        text: the exported memory stays pinned until the dma-buf is released
      - { op: unmap, target: va, expect: { errno: EINVAL } }
      - { op: close, fd: fd }
      - { op: unmap, target: va }

  - title: the same pair under the latest kernel (no mapping at attach)
    iommu: { family: vtd, strict: true }
    profile: latest
    steps:
      - { op: alloc, device: gaudi0, size: 2M, as: hbm }
      - { op: map, buffer: hbm, as: va }
      - { op: export, buffer: va, as: fd }
      - op: note
        text: attach now succeeds with peer2peer cleared; mlx5 maps the MR at registration (its first page fault), and that map fails
      - { op: register, nic: nic2, fd: fd, length: 2M, access: [LOCAL_WRITE, REMOTE_WRITE], expect: { errno: EPERM } }
      - { op: attach, importer: nic2, fd: fd, dynamic: true, as: dyn, expect: { result: { peer2peer: false } } }
      - { op: mapAttachment, attachment: dyn, expect: { errno: EPERM } }
      - { op: detach, attachment: dyn }
      - { op: close, fd: fd }
      - { op: unmap, target: va }

  - title: an on-demand MR on a GPU buffer that memory pressure moves (move_notify)
    iommu: { family: vtd, strict: true }
    steps:
      - op: note
        text: amdgpu is a dynamic exporter; gpu0 and nic0 are P2P through the whitelisted host bridge, so the buffer stays in VRAM
      - { op: gpuAlloc, device: gpu0, size: 256K, domain: VRAM, as: bo }
      - { op: export, buffer: bo, as: fd }
      - { op: register, nic: nic0, fd: fd, length: 256K, access: [LOCAL_WRITE, REMOTE_WRITE, REMOTE_READ], as: mr }
      - { op: post, verb: WRITE, from: nic1, to: nic0, mr: mr, length: 128K, pattern: { random: 4 } }
      - op: note
        text: memory pressure evicts the buffer to GTT; the exporter calls move_notify under the reservation lock
      - { op: pressure, device: gpu0 }
      - op: note
        text: the next RDMA access page-faults the MR, which maps it again, now onto GTT pages
      - { op: post, verb: WRITE, from: nic1, to: nic0, mr: mr, offset: 128K, length: 128K, pattern: { random: 5 } }
      - { op: readBack, buffer: bo, length: 128K, expect: { bytes: { random: 4 } } }
      - { op: readBack, buffer: bo, offset: 128K, length: 128K, expect: { bytes: { random: 5 } } }
      - { op: post, verb: READ, from: nic1, to: nic0, mr: mr, length: 4K, expect: { bytes: { random: 4 } } }
      - { op: unmap, target: mr }
      - { op: close, fd: fd }

  - title: a vfio-pci BAR exported to a NIC, revoked by a device reset
    topology: builtin:seed-vfio
    iommu: { family: vtd, strict: true }
    steps:
      - { op: vfioExport, device: fpga0, offset: 1M, length: 16K, as: fd }
      - { op: register, nic: nic0, fd: fd, length: 16K, access: [LOCAL_WRITE, REMOTE_WRITE, REMOTE_READ], as: mr }
      - { op: post, verb: WRITE, from: nic1, to: nic0, mr: mr, length: 16K, pattern: counter }
      - { op: readBar, device: fpga0, offset: 1M, length: 16K, expect: { bytes: counter } }
      - op: note
        text: a reset revokes the dma-buf; move_notify invalidates the MR, and its next page fault cannot map it
      - { op: reset, device: fpga0 }
      - { op: post, verb: WRITE, from: nic1, to: nic0, mr: mr, length: 4K, pattern: 0xee, expect: { result: { status: REM_ACCESS_ERR } } }
      - { op: register, nic: nic0, fd: fd, length: 16K, expect: { errno: ENODEV } }
      - { op: readBar, device: fpga0, offset: 1M, length: 16K, expect: { bytes: counter } }
      - { op: restore, device: fpga0 }
      - { op: register, nic: nic0, fd: fd, length: 16K, access: [LOCAL_WRITE, REMOTE_WRITE, REMOTE_READ], as: mr2 }
      - { op: post, verb: READ, from: nic1, to: nic0, mr: mr2, length: 16K, expect: { bytes: counter } }
      - { op: unmap, target: mr2 }
      - { op: unmap, target: mr }
      - { op: close, fd: fd }
`;
