/**
 * The core demo: a VT-d domain with a 4-level table, an accelerator's HBM and a buffer of system
 * RAM mapped through it, a device DMA moving bytes across, a fault, and the counters.
 */
import { createSimulator, Prot, formatRid } from '../index.js';
import { decodeDomainEntry } from '../iommu/pte-decode.js';
import { formatSize } from '../pci/render.js';
import { hex } from '../util/args.js';

export interface DemoReport {
  lines: string[];
  ok: boolean;
}

const NIC = '0000:03:00.0';

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + (i >> 12) * 7 + 1) & 0xff;
  return b;
}

export async function runCoreDemo(): Promise<DemoReport> {
  const out: string[] = [];
  const say = (s = '') => out.push(s);
  let ok = true;
  const sim = await createSimulator({ arenaBytes: 64 << 20 });
  const ram = sim.memory.addRegion({ base: 0x8000_0000n, size: 4n << 30n, kind: 'ram', name: 'system RAM' });
  const hbm = sim.memory.addRegion({ base: 0x40_0000_0000n, size: 96n << 30n, kind: 'device', name: 'HBM (Gaudi2)', owner: 1 });
  say('dmabuf-sim core demo: an IOMMU domain, a 4-level I/O page table, DMA through it');
  say();
  say('physical memory');
  for (const r of [ram, hbm]) {
    say(`  ${r.name.padEnd(14)} ${hex(r.base).padStart(14)} +${formatSize(r.size).padEnd(5)} ${r.kind}${r.cpuAccessible ? '' : ', no CPU access'}`);
  }

  const unit = sim.iommu.createUnit({ family: 'vtd', name: 'dmar0', tlbSets: 64, tlbWays: 4 });
  const dom = unit.createDomain({ type: 'paging', format: 'vtd-ss', ias: 48, oas: 48 });
  sim.iommu.attach(NIC, dom);
  say();
  say(`iommu ${unit.name} (VT-d): domain ${dom.id}, second-stage 4-level table, ias 48, root table at ${hex(dom.root)}`);
  say(`  device ${NIC} attached`);

  // A 2 MiB window of HBM (one 2M leaf) and 64 KiB of RAM (sixteen 4K leaves, scattered frames).
  const hbmIova = 0x1_0000_0000n;
  dom.map(hbmIova, hbm.base + 0x20_0000n, 2n << 20n, Prot.RW);
  const ramIova = 0x2_0000_0000n;
  const frames: bigint[] = [];
  for (let i = 0; i < 16; i++) {
    const pa = sim.memory.allocFrames(1);
    sim.memory.allocFrames(1); // a hole between frames, so the buffer is really scattered
    frames.push(pa);
    dom.map(ramIova + BigInt(i) * 4096n, pa, 4096n, Prot.READ);
  }
  say(`  map ${hex(hbmIova)} -> ${hex(hbm.base + 0x20_0000n)} 2M RW (HBM)`);
  say(`  map ${hex(ramIova)} -> 16 scattered RAM frames, 4K each, READ`);
  say(`  table frames: ${dom.tableFrames}, mapped: ${formatSize(dom.mappedBytes)}`);

  say();
  say(`walk of ${hex(hbmIova + 0x1234n)}:`);
  const w = dom.walk(hbmIova + 0x1234n);
  for (const l of w.levels) {
    const d = decodeDomainEntry(dom, l.depth, l.entry);
    say(`  ${l.name.padEnd(8)} table ${hex(l.table)} [${String(l.index).padStart(3)}] = ${hex(l.entry).padEnd(14)} ${d.kind} ${d.flags.join(' ')}${d.kind === 'leaf' ? ` ${formatSize(d.pageSize!)} page at ${hex(d.address)}` : d.kind === 'table' ? ` -> ${hex(d.address)}` : ''}`);
  }
  say(`  => ${hex(w.pa!)}`);

  // The host fills the RAM buffer; the device copies it into HBM through the IOMMU.
  const data = pattern(64 * 1024);
  for (let i = 0; i < 16; i++) sim.memory.write(frames[i]!, data.subarray(i * 4096, (i + 1) * 4096));
  const copy = sim.dma.copy({ rid: NIC, addr: ramIova }, { rid: NIC, addr: hbmIova + 0x1000n }, 64n * 1024n);
  const back = sim.memory.read(hbm.base + 0x20_0000n + 0x1000n, 64 * 1024);
  const same = back.every((b, i) => b === data[i]);
  ok &&= copy.ok && same;
  say();
  say(`DMA ${NIC}: copy 64K from iova ${hex(ramIova)} (RAM) to iova ${hex(hbmIova + 0x1000n)} (HBM): ${copy.code}, ${copy.bytesDone} bytes`);
  say(`  read back from HBM: ${same ? 'all 65536 bytes match' : 'MISMATCH'}`);

  // The device writes past its read-only buffer: a fault, as the hardware reports it.
  const bad = sim.dma.write({ rid: NIC, addr: ramIova + 0x2000n }, new Uint8Array(16));
  const f = unit.faults();
  ok &&= !bad.ok && f.length === 1;
  say();
  say(`DMA ${NIC}: write 16 bytes to read-only iova ${hex(ramIova + 0x2000n)}: ${bad.code}, ${bad.bytesDone} bytes`);
  for (const r of f) say(`  fault record: ${formatRid(r.rid)} iova ${hex(r.iova)} ${r.access} ${r.reason}, VT-d fault reason ${r.code}`);

  // Strict unmap: the cached translation goes with it.
  const n = dom.unmap(hbmIova, 4096n);
  const after = sim.iommu.translate(NIC, hbmIova, 'read');
  ok &&= n === 2n << 20n && !after.ok;
  say();
  say(`unmap ${hex(hbmIova)} 4K: ${formatSize(n)} unmapped (the whole 2M leaf goes); translate afterwards: ${after.ok ? 'still mapped (BUG)' : after.code}`);
  unit.faults();

  const s = unit.stats();
  const d = sim.dma.stats();
  say();
  say('counters');
  say(`  IOTLB: ${s.translations} translations, ${s.hits} hits, ${s.misses} misses, ${s.walks} walks, ${s.invalidations} invalidations (${s.invalidatedEntries} entries), ${s.faults} faults`);
  say(`  DMA: ${d.ops} ops, ${d.bytesFromRam} bytes from RAM, ${d.bytesToDevice} bytes to device memory, ${d.bytesToRam} to RAM, ${d.faults} faults`);
  const a = sim.memory.arena();
  say(`  backing: ${formatSize(BigInt(a.bytesUsed))} of arena used for ${formatSize(ram.size + hbm.size)} of emulated memory`);
  say();
  say(ok ? 'demo: OK' : 'demo: FAILED');
  return { lines: out, ok };
}
