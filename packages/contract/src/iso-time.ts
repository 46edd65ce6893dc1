/** The last whole second {@link isoTime} formatted (epoch s), and its text up to the milliseconds. */
let cachedSecond = Number.NaN;
let cachedPrefix = '';

/**
 * `new Date(ms).toISOString()`, the same text, cheaper for times in the same second as the
 * previous call: the date and time up to the second are formatted once per second, the
 * milliseconds appended. `toISOString` costs about 0.5–1 µs (Node 20), a heartbeat's largest
 * single cost in the registry (each one's `lastHeartbeat`; issue 14, benchmark 1). Also the
 * runner's times of each attempt and execution log line, and the worker's `startTime`/`endTime`
 * of each answer (issue 14, round Z: `bench/own-code.ts`).
 * @throws RangeError for a time a `Date` cannot hold, as `toISOString` does
 */
export function isoTime(ms: number): string {
  // A Date drops a fraction of a millisecond (and takes no NaN): toISOString says how.
  if (!Number.isInteger(ms)) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1_000);
  if (second !== cachedSecond) {
    const iso = new Date(ms).toISOString();
    // Years 0 to 9999 only (`2026-12-01T03:00:00.123Z`): others are written with a sign and six digits.
    if (iso.length !== 24) return iso;
    cachedSecond = second;
    cachedPrefix = iso.slice(0, 20);
  }
  const millis = ms - second * 1_000;
  return `${cachedPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}
