import { describe, expect, it } from 'vitest';
import { createSecretMasker, maskDeep } from './secrets.js';

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
