import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { safeEqual, wellFormed } from './security.js';

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

describe('safeEqual', () => {
  it('accepts the same secret, ASCII or not, empty included, again once its digest is kept', () => {
    for (const secret of ['mpd-token-4f1c2a', '', 'é😀ü-clé', 'a'.repeat(10_000)]) {
      expect(safeEqual(secret, secret), JSON.stringify(secret.slice(0, 20))).toBe(true);
      expect(safeEqual(`${secret}`, secret)).toBe(true); // the kept digest of `expected`
    }
  });

  it('refuses a secret of another length: a prefix, one longer, empty against not', () => {
    expect(safeEqual('mpd-token-4f1c2', 'mpd-token-4f1c2a')).toBe(false);
    expect(safeEqual('mpd-token-4f1c2ab', 'mpd-token-4f1c2a')).toBe(false);
    expect(safeEqual('', 'mpd-token-4f1c2a')).toBe(false);
    expect(safeEqual('mpd-token-4f1c2a', '')).toBe(false);
    // The same UTF-16 length, other UTF-8 lengths.
    expect(safeEqual('e', 'é')).toBe(false);
    expect(safeEqual('é', 'e')).toBe(false);
  });

  it('refuses a different secret of the same length, wherever it differs', () => {
    expect(safeEqual('xpd-token-4f1c2a', 'mpd-token-4f1c2a')).toBe(false); // first character
    expect(safeEqual('mpd-token-4f1c2b', 'mpd-token-4f1c2a')).toBe(false); // last character
    expect(safeEqual('mpd-token-4f1c2a', 'mpd-token-4f1c2b')).toBe(false); // against a kept digest
    expect(safeEqual('clé-😀', 'clé-😁')).toBe(false); // non-ASCII, in its last UTF-8 byte
    // Digests alike in their first two bytes (0x4e 0x90): a comparison of a digest's first byte(s) only accepts it.
    expect([...sha256('mpd-token-009623').subarray(0, 2)]).toEqual([...sha256('mpd-token-4f1c2a').subarray(0, 2)]);
    expect(safeEqual('mpd-token-009623', 'mpd-token-4f1c2a')).toBe(false);
  });

  it('refuses a secret that is not well-formed UTF-16 (an unpaired surrogate), given or expected, itself included: its UTF-8 digest is that of U+FFFD in its place', () => {
    // What made it wrong: the same digest for the three.
    expect(sha256('a\uD800')).toEqual(sha256('a\uDBFF'));
    expect(sha256('a\uD800')).toEqual(sha256('a\uFFFD'));
    for (const [given, expected] of [
      ['a\uD800', 'a\uDBFF'],
      ['a\uDBFF', 'a\uD800'], // against a kept digest
      ['a\uD800', 'a\uD800'],
      ['a\uFFFD', 'a\uD800'],
      ['a\uD800', 'a\uFFFD'],
      ['\uDC00mpd-token', '\uDC00mpd-token'], // a lone low surrogate, first
      ['mpd-token-\uD83D', 'mpd-token-\uD83D'], // half of an emoji's pair, last
    ])
      expect(safeEqual(given!, expected!), JSON.stringify([given, expected])).toBe(false);
    // Well-formed pairs still compare: U+FFFD itself, an emoji (its surrogates paired).
    expect(safeEqual('a\uFFFD', 'a\uFFFD')).toBe(true);
    expect(safeEqual('mpd-token-\uD83D\uDE00', 'mpd-token-😀')).toBe(true);
    expect([wellFormed('a\uD800'), wellFormed('\uDC00'), wellFormed('a\uFFFD'), wellFormed('😀')]).toEqual([
      false,
      false,
      true,
      true,
    ]);
  });

  it('stays right past the digests it keeps (256 expected secrets, then cleared)', () => {
    for (let index = 0; index < 600; index++) {
      expect(safeEqual(`secret-${index}`, `secret-${index}`)).toBe(true);
      expect(safeEqual(`secret-${index + 1}`, `secret-${index}`)).toBe(false);
    }
  });
});
