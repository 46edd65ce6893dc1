import { describe, expect, it } from 'vitest';
import { retryAfterMs } from './retry-after.js';

describe('retryAfterMs', () => {
  const of = (value?: string, maxMs?: number) =>
    retryAfterMs(new Headers(value === undefined ? {} : { 'retry-after': value }), maxMs);

  it('takes delta-seconds, uncapped unless the caller caps it', () => {
    expect(of('12')).toBe(12_000);
    expect(of(' 1 ')).toBe(1_000);
    expect(of('0')).toBe(0);
    expect(of('999999')).toBe(999_999_000);
    expect(of('999999', 3_600_000)).toBe(3_600_000);
  });

  it('ignores a date, a negative or fractional number, anything else, and no header at all', () => {
    for (const value of [undefined, '', 'Wed, 21 Oct 2015 07:28:00 GMT', '-1', '1.5', '12abc', '99999999999'])
      expect(of(value)).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });
});
