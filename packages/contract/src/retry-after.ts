/**
 * An answer's `Retry-After` in ms: delta-seconds only (RFC 9110 §10.2.3: what the orchestrator,
 * the worker and gateways send on 409, 429 and 503); undefined without one, or with an HTTP date
 * or anything else (more than 10 digits included). At most `maxMs` (default: not capped; each
 * caller bounds it by its own rule: the worker's registration at an hour, the run's probation
 * at its longest).
 */
export function retryAfterMs(
  headers: { get(name: string): string | null } | undefined,
  maxMs = Number.POSITIVE_INFINITY,
): number | undefined {
  const value = headers?.get('retry-after')?.trim();
  if (value === undefined || !/^\d{1,10}$/.test(value)) return undefined;
  return Math.min(Number(value) * 1000, maxMs);
}
