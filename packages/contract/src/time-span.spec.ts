import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { durationSchema } from './common.schema.js';
import { formatTimeSpan, MAX_TIME_SPAN_MS, parseTimeSpan, parseTimeSpanByRegex } from './time-span.js';

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

// Issue 14: parseTimeSpan reads the common forms char by char; the regex path is the
// reference. Both must agree on every input, bit for bit, and refuse the same texts.
describe('parseTimeSpan against the regex path', () => {
  let differing: string[] = [];
  const same = (text: string) => {
    const fast = parseTimeSpan(text);
    const slow = parseTimeSpanByRegex(text);
    if (!Object.is(fast, slow)) differing.push(`${JSON.stringify(text)}: ${fast} vs ${slow}`);
  };
  beforeEach(() => {
    differing = [];
  });
  afterEach(() => {
    expect(differing.slice(0, 10)).toEqual([]);
  });

  it('agrees on every hh:mm:ss with fields 00 to 99 (in range or not), with and without fractions', () => {
    for (let h = 0; h < 100; h += 1) {
      for (let m = 0; m < 100; m += 7) {
        for (const s of [0, 1, 9, 10, 30, 59, 60, 61, 99]) {
          const base = `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
          for (const tail of [
            '',
            '.',
            '.0',
            '.5',
            '.001',
            '.123',
            '.0010000',
            '.9999999',
            '.12345678',
            '.1a',
            '. ',
            '.-1',
            'x',
          ]) {
            same(base + tail);
            same(`-${base}${tail}`);
            same(`1.${base}${tail}`);
          }
        }
      }
    }
  });

  it('agrees on what formatTimeSpan writes', () => {
    for (let ms = 0; ms < 200_000_000; ms += 9_973.1234567) same(formatTimeSpan(ms));
    for (let ms = 0; ms < 2_000; ms += 0.0001 * 997) same(formatTimeSpan(ms));
  });

  it("agrees on odd texts and on random strings over the grammar's characters", () => {
    for (const text of [
      '',
      '0',
      '00:00:00',
      '0:0:0',
      '0:00:00',
      '00:0:00',
      '00:00:0',
      '00:00:00.',
      '00:00:00.0000000',
      '00:00:00.00000000',
      '00:00:00 ',
      ' 00:00:00',
      '00-00-00',
      '00:00:00:00',
      '00.00:00:00',
      '٠٠:٠٠:٠٠',
      '00:00:00\n',
      '0a:00:00',
      '00:0a:00',
      '00:00:0a',
      '+00:00:00',
      '00:00:00.+1',
      '23:59:59.9999999',
      '24:00:00.0000000',
      '19:60:00',
      '10675199.02:48:05.4775807',
    ]) {
      same(text);
    }
    const alphabet = '0123456789:.-a ';
    let seed = 14;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let i = 0; i < 20_000; i++) {
      const length = 6 + Math.floor(random() * 12);
      let text = '';
      for (let j = 0; j < length; j++) text += alphabet[Math.floor(random() * alphabet.length)];
      same(text);
      // And near-valid texts: one character of a valid span changed.
      const valid = formatTimeSpan(Math.floor(random() * 86_400_000) + (random() < 0.5 ? 0.5 : 0));
      const at = Math.floor(random() * valid.length);
      same(valid.slice(0, at) + alphabet[Math.floor(random() * alphabet.length)] + valid.slice(at + 1));
    }
  });
});
