/**
 * The seed of faults.spec.ts's random kills from `FAULTS_SEED` (`value`, as the environment
 * gives it): a decimal integer from 0 to 2^32 − 1 (the 32 bits of state of its generator,
 * mulberry32), digits only. Unset (`undefined`): `fallback()`, a new seed each run.
 * @throws Error naming the variable and the value for anything else (`abc`, `904215043,`, an
 *   empty string, `1.5`, `-1`, `4294967296`): such a value would otherwise become another seed
 *   (`Number` then `>>> 0`), and the run would replay nothing it was asked to.
 */
export function faultsSeed(value: string | undefined, fallback: () => number): number {
  if (value === undefined) return fallback();
  const seed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(seed < 2 ** 32))
    throw new Error(`FAULTS_SEED must be an integer from 0 to 4294967295, got ${JSON.stringify(value)}`);
  return seed;
}
