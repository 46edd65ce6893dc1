/**
 * A seeded pseudo-random generator (mulberry32: 32 bits of state): the same seed gives the same
 * sequence of numbers in [0, 1) on every machine, so a randomised test or benchmark can print
 * its seed and be replayed. Not for anything secret.
 * @param seed any number; its low 32 bits (`seed >>> 0`) are the state.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
