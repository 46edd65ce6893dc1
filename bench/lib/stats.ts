/** Small statistics helpers for the benchmarks. */

/** The p-th percentile (0-100) of `values`, by nearest rank on a sorted copy; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median of `values` (the mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function sum(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/**
 * A seeded pseudo-random generator (mulberry32): test-kit's, shared with the fault-injection tests.
 * From its own subpath, not test-kit's index: the bench pipeline (dag.ts) loads this file in
 * every module host of the bench, and the index loaded all of test-kit there (round Z, Z3).
 */
export { seededRandom } from '@mpd/test-kit/seeded-random';
