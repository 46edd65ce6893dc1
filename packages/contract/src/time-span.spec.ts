import { describe, expect, it } from 'vitest';
import { durationSchema } from './common.schema.js';
import { formatTimeSpan, MAX_TIME_SPAN_MS, parseTimeSpan } from './time-span.js';

describe('parseTimeSpan', () => {
  it.each([
    ['00:02:30', 150_000],
    ['01:00:00', 3_600_000],
    ['00:00:05', 5_000],
    ['1.02:03:04.5', 93_784_500],
    ['1.02:03:04.5000000', 93_784_500],
    ['00:00:00.001', 1],
    ['-00:00:01', -1_000],
    ['10.00:00:00', 864_000_000],
    ['0:0:0', 0],
  ])('parses %s', (text, ms) => {
    expect(parseTimeSpan(text)).toBeCloseTo(ms, 6);
  });

  // Found by the HTTP fuzz test (tests/integration/fuzz/): a 400-digit day count parsed as Infinity, passed the
  // contract's durationSchema, and the worker's timeout timer then threw formatTimeSpan's
  // RangeError outside any request: an uncaught exception that crashes the worker.
  it('accepts spans up to TimeSpan.MaxValue and refuses longer ones (never Infinity)', () => {
    expect(parseTimeSpan('10675199.02:48:05.4775807')).toBe(MAX_TIME_SPAN_MS);
    expect(parseTimeSpan('-10675199.02:48:05.4775807')).toBe(-MAX_TIME_SPAN_MS);
    for (const text of [
      '10675199.02:48:06',
      '10675200.00:00:00',
      `${'9'.repeat(400)}.00:00:00`,
      `-${'9'.repeat(400)}.00:00:00`,
    ]) {
      expect(parseTimeSpan(text), text).toBeUndefined();
    }
    expect(durationSchema.safeParse(`${'9'.repeat(400)}.00:00:00`).success).toBe(false);
  });

  it.each([
    '',
    '5',
    '1h',
    '00:60:00',
    '24:00:00',
    '00:00:60',
    '00:00:00.12345678',
    'abc:de:fg',
    '1.2.03:00:00',
    ' 00:00:01',
  ])('rejects %j', (text) => {
    expect(parseTimeSpan(text)).toBeUndefined();
  });
});

describe('formatTimeSpan', () => {
  it.each([
    [150_000, '00:02:30'],
    [3_600_000, '01:00:00'],
    [0, '00:00:00'],
    [93_784_500, '1.02:03:04.5000000'],
    [1, '00:00:00.0010000'],
    [-1_000, '-00:00:01'],
    [0.0001, '00:00:00.0000001'],
  ])('formats %d ms as %s', (ms, text) => {
    expect(formatTimeSpan(ms)).toBe(text);
  });

  it('round-trips through parseTimeSpan', () => {
    for (const ms of [0, 1, 999, 1_000, 59_999, 86_399_999, 86_400_000, 123_456_789, 1_800_000]) {
      expect(parseTimeSpan(formatTimeSpan(ms))).toBeCloseTo(ms, 6);
    }
  });

  it('refuses non-finite input', () => {
    expect(() => formatTimeSpan(Number.NaN)).toThrow(RangeError);
    expect(() => formatTimeSpan(Number.POSITIVE_INFINITY)).toThrow(/finite/);
  });
});
