/** Fake op handlers for runner tests: they keep objects in plain maps and move real bytes. */
import { SimError } from '../../bindings/errors.js';
import { patternBytes, type ScenarioRunner, type StepContext } from '../../src/scenario/index.js';

interface FakeBuf {
  device: string;
  size: bigint;
  /** CPU address in the device's BAR0. */
  base: bigint;
}

export function registerFakeOps(r: ScenarioRunner): ScenarioRunner {
  const bufOf = (ctx: StepContext, name: string): FakeBuf => {
    const v = ctx.objects.get<FakeBuf | { buf: FakeBuf }>(name);
    return 'buf' in v ? v.buf : v;
  };
  return r
    .registerOp('alloc', (step, ctx) => {
      const fn = ctx.device(step.args.device);
      const n = (ctx.state.get('allocs') as number | undefined) ?? 0;
      ctx.state.set('allocs', n + 1);
      const base = fn.bar(0)!.cpuAddress + BigInt(n) * step.args.size;
      return { value: { device: step.args.device, size: step.args.size, base }, summary: `handle ${n + 1}`, result: { handle: n + 1 } };
    })
    .registerOp('map', (step, ctx) => ({ value: { buf: bufOf(ctx, step.args.buffer) }, summary: 'va 0x1000' }))
    .registerOp('export', (step, ctx) => {
      const buf = bufOf(ctx, step.args.buffer);
      const id = ctx.machine.kernel.clock.now + 1;
      ctx.machine.kernel.emit({ kind: 'export', dmaBufId: id, detail: { size: buf.size, expName: 'habanalabs' } });
      ctx.nameBuffer(id, buf.device);
      return { value: { buf, id }, summary: 'fd 3' };
    })
    .registerOp('mmap', () => {
      throw new SimError('EINVAL', 'mmap', 'habanalabs dma-buf has no CPU access');
    })
    .registerOp('register', (step, ctx) => {
      const fd = ctx.objects.get<{ buf: FakeBuf; id: number }>(step.args.fd);
      const client = ctx.device(step.args.nic);
      const mt = ctx.machine.decide(ctx.device(fd.buf.device), client).mapType;
      if (mt === 'NOT_SUPPORTED') throw new SimError('EPERM', 'ibv_reg_dmabuf_mr', `${fd.buf.device} -> ${step.args.nic}: P2P not supported`);
      ctx.machine.kernel.emit({ kind: 'attach', dmaBufId: fd.id, attachmentId: 1, detail: { device: step.args.nic, dynamic: true, peer2peer: true } });
      ctx.machine.kernel.emit({ kind: 'map', dmaBufId: fd.id, attachmentId: 1, detail: { dir: 'bidirectional', nents: 1 } });
      ctx.report.section({ title: 'sg_table', lines: [`nents 1: dma 0x${fd.buf.base.toString(16)} len ${step.args.length} page none`] });
      return { value: { fd, nic: step.args.nic }, summary: `mapType ${mt}`, result: { mapType: mt, length: step.args.length } };
    })
    .registerOp('post', (step, ctx) => {
      const mr = ctx.objects.get<{ fd: { buf: FakeBuf }; nic: string }>(step.args.mr);
      const nic = ctx.device(mr.nic);
      const data = patternBytes(step.args.pattern ?? { kind: 'counter', start: 0, step: 1 }, Number(step.args.length));
      // The receiving NIC writes the payload into the buffer by bus address (BUS_ADDR route).
      const r = ctx.dma.write({ rid: ctx.machine.rid(nic), addr: mr.fd.buf.base + (step.args.offset ?? 0n) }, data);
      if (!r.ok) throw new SimError(r.code as 'EFAULT', 'post', `DMA stopped after ${r.bytesDone} bytes`);
      return { summary: `${r.bytesDone} bytes` };
    })
    .registerOp('readBack', (step, ctx) => {
      const buf = bufOf(ctx, step.args.buffer);
      return { bytes: ctx.machine.sim.memory.read(buf.base + (step.args.offset ?? 0n), Number(step.args.length)) };
    })
    .registerOp('unmap', () => undefined)
    .registerOp('close', () => undefined)
    .registerOp('free', () => undefined);
}
