/**
 * Exponential backoff with full jitter: attempt 0 waits up to `initialMs`, each later
 * attempt up to twice as long, never more than `maxMs`.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
