import { describe, expect, it } from 'vitest';
import { isoTime } from './iso-time.js';

describe('isoTime', () => {
  it('writes what toISOString writes, within a second, across seconds and in any order', () => {
    const base = Date.UTC(2026, 11, 1, 3, 0, 59, 990);
    const times = [
      base,
      base + 5,
      base + 9,
      base + 10,
      base + 99,
      base + 100,
      base + 1_000,
      base - 1_000,
      base,
      0,
      999,
      1_000,
      -1,
      -999,
      -1_000,
      -1_001,
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10_000, 0, 1),
      Date.UTC(-1, 0, 1, 0, 0, 0, 7),
      8.64e15,
      -8.64e15,
      base + 1.5,
      -0.5,
    ];
    for (const ms of times) expect(isoTime(ms), String(ms)).toBe(new Date(ms).toISOString());
  });

  it('throws for a time a Date cannot hold, as toISOString does', () => {
    expect(() => isoTime(8.64e15 + 1)).toThrow(RangeError);
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
  });
});
