import { describe, expect, it } from 'vitest';
import { copyJson, deepFreeze } from './frozen-json.js';

/** JSON text of arrays nested `depth` deep around `leaf`. */
const nestedText = (depth: number, leaf = '1'): string => '['.repeat(depth) + leaf + ']'.repeat(depth);

describe('copyJson and deepFreeze', () => {
  it('copy and freeze values nested 100,000 levels deep (no recursion)', () => {
    const value = JSON.parse(nestedText(100_000, '{"k":"v"}')) as unknown;
    const copy = copyJson(value);
    expect(copy === value).toBe(false);
    deepFreeze(copy);
    let current = copy as unknown;
    let depth = 0;
    let unfrozen = 0;
    while (Array.isArray(current)) {
      if (!Object.isFrozen(current)) unfrozen++;
      current = current[0];
      depth++;
    }
    expect(depth).toBe(100_000);
    expect(unfrozen).toBe(0);
    expect(current).toEqual({ k: 'v' });
    expect(Object.isFrozen(current)).toBe(true);
    expect(Object.isFrozen(value)).toBe(false);
  });

  it('copy equal values whose containers are new, keeping an own __proto__ key a key', () => {
    const value = JSON.parse('{"a":[1,{"b":null}],"__proto__":{"x":[]},"s":"t"}') as Record<string, unknown>;
    const copy = copyJson(value);
    expect(copy).toStrictEqual(value);
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.keys(copy)).toEqual(['a', '__proto__', 's']);
    expect(copy.a).not.toBe(value.a);
    expect((copy.a as unknown[])[1]).not.toBe((value.a as unknown[])[1]);
    expect(copyJson('text')).toBe('text');
    expect(copyJson(null)).toBeNull();
  });
});
