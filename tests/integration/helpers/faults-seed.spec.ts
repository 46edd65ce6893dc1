import { describe, expect, it } from 'vitest';
import { faultsSeed } from './faults-seed.js';

describe('faultsSeed (FAULTS_SEED)', () => {
  it('takes a decimal integer from 0 to 2^32 - 1 as it is', () => {
    expect(faultsSeed('0', () => 7)).toBe(0);
    expect(faultsSeed('904215043', () => 7)).toBe(904_215_043);
    expect(faultsSeed('0042', () => 7)).toBe(42);
    expect(faultsSeed('4294967295', () => 7)).toBe(2 ** 32 - 1);
  });

  it('unset: a new seed from the fallback', () => {
    expect(faultsSeed(undefined, () => 7)).toBe(7);
  });

  it.each(['abc', '904215043,', '', ' ', ' 12', '1.5', '1e3', '0x10', '-1', '+1', '4294967296', '4294967301'])(
    'throws for %j, naming the variable and the value',
    (value) => {
      expect(() => faultsSeed(value, () => 7)).toThrow(
        `FAULTS_SEED must be an integer from 0 to 4294967295, got ${JSON.stringify(value)}`,
      );
    },
  );
});
