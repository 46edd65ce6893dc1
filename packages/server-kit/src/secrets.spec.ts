import { describe, expect, it } from 'vitest';
import { CIRCULAR, createSecretMasker, maskDeep, redactUrl, redactUrlsIn } from './secrets.js';

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

describe('URLs in messages', () => {
  it.each([
    ['http://user:pw@ci.example:8080/?token=abc', 'http://***@ci.example:8080/?…'],
    ['https://TOKEN@github.com/o/r.git', 'https://***@github.com/o/r.git'],
    ['https://host/path#access_token=abc', 'https://host/path#…'],
    // Not parseable, or no scheme: still masked, to the last @ (a password may hold @ / ? or a space).
    ['http://user:p@ss/w?rd x@host:1/', 'http://***@host:1/'],
    ['user:pw@host', '***@host'],
    ['s3://bucket/prefix', 's3://bucket/prefix'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
  ])('redactUrl(%j) is %j', (text, shown) => {
    expect(redactUrl(text)).toBe(shown);
  });

  it('redactUrlsIn masks from the first scheme:// on and leaves a text without one alone', () => {
    expect(redactUrlsIn('DB=postgres://u:pw@db:5432/x?sslmode=require')).toBe('DB=postgres://***@db:5432/x?…');
    expect(redactUrlsIn('a, https://u:pw@b, c@d')).toBe('a, https://***@d');
    expect(redactUrlsIn('user:pw@host?x')).toBe('user:pw@host?x');
  });

  it('redactUrlsIn finds a scheme as a URL reads it: from the first letter of the run before ://', () => {
    expect(redactUrlsIn('x=9a+b://u:pw@h')).toBe('x=9a+b://***@h');
    expect(redactUrlsIn('1+://u:pw@h, ftp://v:pw@k')).toBe('1+://u:pw@h, ftp://***@k');
    expect(redactUrlsIn('://u:pw@h')).toBe('://u:pw@h');
  });

  // Review of round L: an unanchored regex, tried at each position, took 20 s on 100,000
  // characters without `://` (and hung `mpd worker --id <that>`); this one returns at once.
  it('redactUrlsIn reads a long text in one pass', () => {
    const long = 'a'.repeat(100_000);
    expect(redactUrlsIn(long)).toBe(long);
    expect(redactUrlsIn(`${long}:/ ${long}://u:pw@h?t`)).toBe(`${long}:/ ${long}://***@h?…`);
  });
});
