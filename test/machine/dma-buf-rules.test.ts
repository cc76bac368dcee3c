// DB-09 (attach-time mapping) switched on its own through Machine.create({ dmaBufRules }), under each profile.
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { SimError } from '../../bindings/errors.js';
import { Machine } from '../../src/machine/machine.js';
import { DmaDataDirection, KERNEL_PROFILE_NAMES, O_CLOEXEC, O_RDWR, SimProcess, type DmaBuf, type KernelProfileName } from '../../src/dma-buf/index.js';
import { HabanaDevice, hlIoctlMemory, importerDevice } from '../../src/drivers/accel/index.js';

const twoSwitches = readFileSync(new URL('../pci/fixtures/two-switches.json', import.meta.url), 'utf8');
const M = 1n << 20n;
const USER = 512n * M; // gaudi1 dram_user_base_address
const err = (code: string, rule?: string) => expect.objectContaining(rule ? { code, rule } : { code });

/** A gaudi1 buffer of 32 MiB (the 5.15 era wants 32 MiB multiples) exported on a machine of `profile` with `rules`. */
async function hlBuffer(profile: KernelProfileName, rules?: { attachTimeMapping?: boolean }): Promise<{ m: Machine; buf: DmaBuf }> {
  const m = await Machine.create({ topology: twoSwitches, iommu: { family: 'vtd' }, profile, ...(rules ? { dmaBufRules: rules } : {}) });
  const dev = HabanaDevice.create(m, { pci: 'gaudi0', generation: 'gaudi1' });
  const proc = new SimProcess(m.kernel, {});
  const hl = dev.open(proc);
  const fd = hlIoctlMemory(proc, hl, { op: 'EXPORT_DMABUF_FD', flags: O_RDWR | O_CLOEXEC, addr: USER, memSize: 32n * M }).fd!;
  const f = proc.file(fd);
  if (f.kind !== 'dma-buf') throw new Error('not a dma-buf');
  return { m, buf: f.dmabuf };
}

describe('DB-09 through the machine options', () => {
  for (const profile of KERNEL_PROFILE_NAMES) {
    for (const on of [true, false]) {
      it(`[${profile}] attachTimeMapping ${on}: a dynamic importer without a P2P path fails at ${on ? 'attach' : 'map'} (HL-14)`, async () => {
        const { m, buf } = await hlBuffer(profile, { attachTimeMapping: on });
        expect(m.kernel.profile).toMatchObject({ name: profile, attachTimeMapping: on });
        const importer = () => ({ allowPeer2Peer: true, moveNotify: vi.fn() });
        // nic1 sits behind a host bridge that is not whitelisted: habanalabs clears peer2peer.
        if (on) {
          expect(() => buf.dynamicAttach(importerDevice(m, 'nic1'), importer())).toThrowError(err('EPERM', 'HL-11'));
          expect(buf.attachments).toHaveLength(0);
        } else {
          const att = buf.dynamicAttach(importerDevice(m, 'nic1'), importer());
          expect(att.peer2peer).toBe(false);
          expect(att.cachedTable).toBeFalsy();
          expect(() => att.mapUnlocked(DmaDataDirection.BIDIRECTIONAL)).toThrowError(err('EPERM', 'HL-11'));
          att.detach();
        }
        // Over the switch (nic0) the attach works either way; only with DB-09 is a table cached at attach.
        m.dmaDevice(m.pci('nic0')).setMaxSegSize(Number(32n * M));
        const ok = buf.dynamicAttach(importerDevice(m, 'nic0'), importer());
        if (on) expect(ok.cachedTable!.nents).toBe(1);
        else expect(ok.cachedTable).toBeFalsy();
        const t = ok.mapUnlocked(DmaDataDirection.BIDIRECTIONAL);
        expect(t.nents).toBe(1);
        ok.unmapUnlocked(t, DmaDataDirection.BIDIRECTIONAL);
        ok.detach();
      });
    }

    it(`[${profile}] without dmaBufRules the profile's own DB-09 applies`, async () => {
      const { m } = await hlBuffer(profile);
      expect(m.kernel.profile.attachTimeMapping).toBe(profile !== 'latest');
      expect(m.kernel.profile.sgtCaching).toBe(profile !== 'latest');
    });
  }

  it('other rules keep the profile values when one is switched', async () => {
    const m = await Machine.create({ topology: twoSwitches, profile: '5.15', dmaBufRules: { attachTimeMapping: false } });
    expect(m.kernel.profile).toMatchObject({ name: '5.15', attachTimeMapping: false, setNameBusyWhenAttached: true, lockConvention: 'legacy', syncFileIoctls: false });
  });

  it('unknown rules and bad values are EINVAL naming the field; nothing is built', async () => {
    const cases: [unknown, string][] = [
      [{ attachTimeMaping: false }, 'dmaBufRules.attachTimeMaping'],
      [{ name: 'latest' }, 'dmaBufRules.name'],
      [{ attachTimeMapping: 'no' }, 'dmaBufRules.attachTimeMapping'],
      [{ lockConvention: 'strict' }, 'dmaBufRules.lockConvention'],
      [{ ['x'.repeat(500)]: true }, 'dmaBufRules.xxxx'],
      [[true], 'dmaBufRules'],
      [null, 'dmaBufRules'],
      ['attachTimeMapping', 'dmaBufRules'],
    ];
    for (const [rules, field] of cases) {
      let e: unknown;
      try {
        await Machine.create({ topology: twoSwitches, dmaBufRules: rules as never });
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(SimError);
      expect(e).toMatchObject({ code: 'EINVAL' });
      expect((e as SimError).message).toContain(field);
      expect((e as SimError).message.length).toBeLessThan(300);
    }
  });
});
