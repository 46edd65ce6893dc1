/**
 * Exponential backoff with jitter, in ms: attempt 0 waits between half of `initialMs` and
 * `initialMs`, each later attempt up to twice as long, never more than `maxMs` (the
 * "equal jitter" of AWS's backoff article: never less than half the ceiling, so retries
 * neither stampede nor come back at once). BullMQ computes its backoffs in one place the
 * same way (`Backoffs.calculate`); here the worker's registration and heartbeat retries and
 * the runner's module retries share it.
 *
 * @param attempt 0 for the first retry, 1 for the second, ...
 * @param random a number in [0, 1) (injected by tests)
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
