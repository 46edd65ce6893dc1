import type { Pipeline } from '@mpd/pipeline';

/**
 * Each module's remaining work: the longest path through its dependants, itself included,
 * weighted by the modules' duration hints (a module without one weighs the median hint; with
 * no usable hints every module weighs 1, so the height is the longest chain in modules).
 */
export function chainHeights(pipeline: Pipeline, hints: Readonly<Record<string, number>> = {}): Map<string, number> {
  const usable = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value) && value >= 0;
  const known = pipeline.order.map((name) => hints[name]).filter(usable);
  known.sort((a, b) => a - b);
  const fallback = known.length === 0 ? 1 : known[Math.floor(known.length / 2)]!;
  const heights = new Map<string, number>();
  for (let index = pipeline.order.length - 1; index >= 0; index--) {
    const name = pipeline.order[index]!;
    let below = 0;
    for (const dependant of pipeline.dependants.get(name) ?? []) below = Math.max(below, heights.get(dependant)!);
    const own = known.length === 0 ? 1 : usable(hints[name]) ? hints[name] : fallback;
    heights.set(name, below + own);
  }
  return heights;
}
