import { describe, expect, it } from 'vitest';
import { SimError, errnoName } from '../../bindings/errors.js';

describe('SimError', () => {
  it('carries the kernel errno, its name, the operation and the rule', () => {
    const e = new SimError('EPERM', 'dma_buf_map_attachment', 'peer2peer is false', 'HL-14');
    expect(e.code).toBe('EPERM');
    expect(e.errno).toBe(1);
    expect(e.op).toBe('dma_buf_map_attachment');
    expect(e.message).toContain('HL-14');
    expect(e).toBeInstanceOf(Error);
  });
  it('maps core status codes back to names', () => {
    expect(SimError.fromStatus(-17, 'map', 'leaf present').code).toBe('EEXIST');
    expect(errnoName(-22)).toBe('EINVAL');
    expect(SimError.fromStatus(-4095, 'x', 'y').code).toBe('EIO');
  });
});
