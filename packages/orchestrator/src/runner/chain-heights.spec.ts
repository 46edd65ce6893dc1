import { defineModule, definePipeline } from '@mpd/pipeline';
import { describe, expect, it } from 'vitest';
import { chainHeights } from './chain-heights.js';

describe('chainHeights', () => {
  const run = () => null;
  const a = defineModule({ name: 'a', run });
  const b = defineModule({ name: 'b', dependsOn: [a], run });
  const c = defineModule({ name: 'c', dependsOn: [a], run });
  const d = defineModule({ name: 'd', run });
  const pipeline = definePipeline({ name: 'ci', modules: [a, b, c, d] });

  it('counts modules without hints', () => {
    expect(Object.fromEntries(chainHeights(pipeline))).toEqual({ a: 2, b: 1, c: 1, d: 1 });
  });

  it('weighs modules by their hints, the median for those without, ignoring unusable hints', () => {
    expect(Object.fromEntries(chainHeights(pipeline, { a: 10, b: 100, c: 30, d: Number.NaN }))).toEqual({
      a: 110,
      b: 100,
      c: 30,
      d: 30,
    });
  });
});
