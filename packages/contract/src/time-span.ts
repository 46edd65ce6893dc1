/**
 * .NET `TimeSpan` strings, as the spec carries durations and timeouts:
 * `[-][d.]hh:mm:ss[.fffffff]` (the invariant "c" format), e.g. `"00:02:30"`,
 * `"01:00:00"`, `"1.02:03:04.5000000"`.
 */

const TIME_SPAN = /^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$/;

const MS_PER_SECOND = 1000;
const MS_PER_MINUTE = 60 * MS_PER_SECOND;
const MS_PER_HOUR = 60 * MS_PER_MINUTE;
const MS_PER_DAY = 24 * MS_PER_HOUR;

/**
 * `TimeSpan.MaxValue` (`10675199.02:48:05.4775807`) in milliseconds: .NET refuses longer
 * spans, and without a bound a day count of a few hundred digits parses as `Infinity`.
 */
export const MAX_TIME_SPAN_MS = 922_337_203_685_477.5807;

/**
 * Parses a .NET TimeSpan string into milliseconds (fractions below a millisecond
 * are kept as a fractional number). Returns `undefined` when the text is not a
 * TimeSpan, a component is out of range (hours > 23, minutes or seconds > 59), or the
 * span is longer than `TimeSpan.MaxValue` ({@link MAX_TIME_SPAN_MS}), so the result is
 * always finite.
 *
 * The common forms (`hh:mm:ss` and `hh:mm:ss.f` to `.fffffff`, two-digit fields, no sign or
 * days: what {@link formatTimeSpan} writes for spans under a day) are read char by char,
 * without the regex (issue 14: 213 -> 33 ns a call, `bench/time-span.ts`); every other text
 * goes through {@link parseTimeSpanByRegex}, with the same result for every input.
 */
export function parseTimeSpan(text: string): number | undefined {
  const length = text.length;
  if (length === 8 || (length >= 10 && length <= 16 && text.charCodeAt(8) === DOT)) {
    const h = twoDigits(text, 0);
    const m = twoDigits(text, 3);
    const s = twoDigits(text, 6);
    if (h >= 0 && m >= 0 && s >= 0 && text.charCodeAt(2) === COLON && text.charCodeAt(5) === COLON) {
      if (h > 23 || m > 59 || s > 59) return undefined;
      const whole = h * MS_PER_HOUR + m * MS_PER_MINUTE + s * MS_PER_SECOND;
      if (length === 8) return whole;
      for (let i = 9; i < length; i++) {
        const code = text.charCodeAt(i);
        if (code < ZERO || code > NINE) return parseTimeSpanByRegex(text);
      }
      // The fraction exactly as the regex path computes it, so that both agree to the bit.
      return whole + Number(`0.${text.slice(9)}`) * MS_PER_SECOND;
    }
  }
  return parseTimeSpanByRegex(text);
}

const ZERO = 48;
const NINE = 57;
const COLON = 58;
const DOT = 46;

/** The two decimal digits at `at` as a number, or -1 when either is not a digit. */
function twoDigits(text: string, at: number): number {
  const tens = text.charCodeAt(at) - ZERO;
  const ones = text.charCodeAt(at + 1) - ZERO;
  return tens >= 0 && tens <= 9 && ones >= 0 && ones <= 9 ? tens * 10 + ones : -1;
}

/**
 * {@link parseTimeSpan} by the regex alone: the whole grammar, the path for every text the
 * fast path does not take. Exported for the spec and the bench, which compare the two.
 * @internal
 */
export function parseTimeSpanByRegex(text: string): number | undefined {
  const match = TIME_SPAN.exec(text);
  if (!match) return undefined;
  const [, sign, days = '0', hours = '0', minutes = '0', seconds = '0', fraction = ''] = match;
  const h = Number(hours);
  const m = Number(minutes);
  const s = Number(seconds);
  if (h > 23 || m > 59 || s > 59) return undefined;
  const ms =
    Number(days) * MS_PER_DAY +
    h * MS_PER_HOUR +
    m * MS_PER_MINUTE +
    s * MS_PER_SECOND +
    (fraction ? Number(`0.${fraction}`) * MS_PER_SECOND : 0);
  if (!(ms <= MAX_TIME_SPAN_MS)) return undefined;
  return sign ? -ms : ms;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * Formats milliseconds as a .NET TimeSpan string in the invariant "c" format:
 * days only when non-zero, a seven-digit fraction only when non-zero.
 * `formatTimeSpan(150_000) === "00:02:30"`, `formatTimeSpan(93_784_500) === "1.02:03:04.5000000"`.
 */
export function formatTimeSpan(milliseconds: number): string {
  if (!Number.isFinite(milliseconds)) {
    throw new RangeError(`formatTimeSpan: expected a finite number of milliseconds, got ${milliseconds}`);
  }
  const sign = milliseconds < 0 ? '-' : '';
  // Work in ticks (100 ns), the unit .NET uses, so fractions round the same way.
  let ticks = Math.round(Math.abs(milliseconds) * 10_000);
  const ticksPerSecond = 10_000_000;
  const fractionTicks = ticks % ticksPerSecond;
  let totalSeconds = (ticks - fractionTicks) / ticksPerSecond;
  const seconds = totalSeconds % 60;
  totalSeconds = (totalSeconds - seconds) / 60;
  const minutes = totalSeconds % 60;
  totalSeconds = (totalSeconds - minutes) / 60;
  const hours = totalSeconds % 24;
  const days = (totalSeconds - hours) / 24;
  ticks = fractionTicks;
  const dayPart = days > 0 ? `${days}.` : '';
  const fractionPart = ticks > 0 ? `.${String(ticks).padStart(7, '0')}` : '';
  return `${sign}${dayPart}${pad2(hours)}:${pad2(minutes)}:${pad2(seconds)}${fractionPart}`;
}
