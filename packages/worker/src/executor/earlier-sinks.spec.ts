import { describe, expect, it } from 'vitest';
import { EARLIER_NAMES, EARLIER_SINKS, EarlierSinks } from './earlier-sinks.js';

/** Which of `ids` the ring still gives a sink for (taking one makes it the newest, as a late line does). */
function kept(ring: EarlierSinks<string>, ids: readonly string[]): string[] {
  return ids.filter((id) => ring.take(id) !== undefined);
}

describe('EarlierSinks', () => {
  it(`keeps the sinks of the last ${EARLIER_SINKS} executions, each over the oldest, and the module names of ${EARLIER_NAMES} before them`, () => {
    const ring = new EarlierSinks<string>();
    const ids = Array.from({ length: EARLIER_SINKS + EARLIER_NAMES + 1 }, (_, index) => `exec-${index}`);
    for (const [index, id] of ids.entries()) ring.keep(id, `module-${index}`, `sink-${index}`);
    expect(ring.take('exec-288')).toBe('sink-288');
    expect(kept(ring, ids)).toEqual(ids.slice(-EARLIER_SINKS));
    expect(ring.moduleOf('exec-1')).toBe('module-1');
    expect(ring.moduleOf(`exec-${EARLIER_NAMES}`)).toBe(`module-${EARLIER_NAMES}`);
    expect(ring.moduleOf('exec-0')).toBeUndefined(); // older than both
    expect(ring.moduleOf(ids.at(-1)!)).toBeUndefined(); // kept whole, not gone
  });

  it('an execution whose module logs again becomes the newest without pushing any other out, however often: a chatty leftover costs the others nothing', () => {
    const ring = new EarlierSinks<string>(4, 8);
    for (const id of ['a', 'b', 'c', 'd']) ring.keep(id, `module-${id}`, `sink-${id}`);
    // `b`'s leftover logs, again and again (a slot of its own each time took the oldest's).
    for (let line = 0; line < 10; line++) expect(ring.take('b')).toBe('sink-b');
    expect(kept(ring, ['a', 'c', 'd'])).toEqual(['a', 'c', 'd']);
    // Order now b, a, c, d (oldest first): the next two executions push out b and a, in that order.
    ring.keep('e', 'module-e', 'sink-e');
    expect(ring.take('b')).toBeUndefined();
    expect(ring.moduleOf('b')).toBe('module-b');
    ring.keep('f', 'module-f', 'sink-f');
    expect(kept(ring, ['a', 'c', 'd', 'e', 'f'])).toEqual(['c', 'd', 'e', 'f']);
    expect(ring.moduleOf('a')).toBe('module-a');
  });

  it('before the ring is full, a late line moves its execution to the newest among those kept so far', () => {
    const ring = new EarlierSinks<string>(4, 8);
    for (const id of ['a', 'b']) ring.keep(id, `module-${id}`, `sink-${id}`);
    expect(ring.take('a')).toBe('sink-a');
    for (const id of ['c', 'd', 'e']) ring.keep(id, `module-${id}`, `sink-${id}`);
    // Order was b, a, c, d: e pushed out b.
    expect(ring.moduleOf('b')).toBe('module-b');
    expect(kept(ring, ['a', 'c', 'd', 'e'])).toEqual(['a', 'c', 'd', 'e']);
  });
});
