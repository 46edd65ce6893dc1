import { describe, expect, it } from 'vitest';
import { CIRCULAR, createSecretMasker, maskDeep } from './secrets.js';

describe('secret masking', () => {
  it('replaces every occurrence, longest secret first, and leaves short values alone', () => {
    const mask = createSecretMasker(['hunter2-token', 'hunter2', 'ok']);
    expect(mask('login with hunter2-token then hunter2; ok?')).toBe('login with *** then ***; ok?');
    expect(mask('nothing here')).toBe('nothing here');
    expect(createSecretMasker([])('hunter2')).toBe('hunter2');
  });

  it('masks strings deep inside values, keys included', () => {
    const mask = createSecretMasker(['s3cr3t!']);
    expect(maskDeep({ a: ['x s3cr3t! y', 1, null], 's3cr3t!': { b: 's3cr3t!' } }, mask)).toEqual({
      a: ['x *** y', 1, null],
      '***': { b: '***' },
    });
  });
});

describe('maskDeep on values from modules and the wire', () => {
  const mask = createSecretMasker(['s3cr3t!']);
  /** `{ a: { a: … { a: leaf } } }`, `depth` objects deep, built without recursion. */
  const nested = (depth: number, leaf: unknown): Record<string, unknown> => {
    let value: unknown = leaf;
    for (let level = 0; level < depth; level++) value = { a: value };
    return value as Record<string, unknown>;
  };
  const innermost = (value: unknown): unknown => {
    let current = value;
    while (typeof current === 'object' && current !== null && 'a' in current) current = (current as { a: unknown }).a;
    return current;
  };

  it('masks a value nested 100,000 levels deep (a recursive walk overflowed at a few thousand)', () => {
    const masked = maskDeep(nested(100_000, ['x s3cr3t! y']), mask);
    expect(innermost(masked)).toEqual(['x *** y']);
  });

  it('puts [Circular] where a value contains itself, and copies a shared value once', () => {
    const shared = { s: 's3cr3t!' };
    const loop: Record<string, unknown> = { shared, again: shared, list: [shared] };
    loop.self = loop;
    (loop.list as unknown[]).push(loop.list);
    const masked = maskDeep(loop, mask) as Record<string, unknown>;
    expect(masked.self).toBe(CIRCULAR);
    expect(masked.list).toEqual([{ s: '***' }, CIRCULAR]);
    expect(masked.shared).toEqual({ s: '***' });
    expect(masked.again).toBe(masked.shared);
    expect(JSON.stringify(masked)).toBe(
      '{"shared":{"s":"***"},"again":{"s":"***"},"list":[{"s":"***"},"[Circular]"],"self":"[Circular]"}',
    );
  });

  it('keeps an own __proto__ key a key, copies instead of changing, and turns errors into plain objects', () => {
    const value = JSON.parse('{"__proto__":{"polluted":"s3cr3t!"},"list":[1,"s3cr3t!"]}') as Record<string, unknown>;
    const masked = maskDeep({ value, error: new TypeError('bad s3cr3t!') }, mask);
    expect(Object.getPrototypeOf(masked.value)).toBe(Object.prototype);
    expect(Object.keys(masked.value)).toEqual(['__proto__', 'list']);
    expect(masked.value.list).toEqual([1, '***']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(value.list).toEqual([1, 's3cr3t!']);
    expect(masked.error).toMatchObject({ type: 'TypeError', message: 'bad ***' });
    expect(maskDeep('s3cr3t!', mask)).toBe('***');
    expect(maskDeep(null, mask)).toBeNull();
  });
});
