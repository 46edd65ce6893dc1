import { describe, expect, it } from 'vitest';
import { redactUrl, redactUrlsIn } from './redact-url.js';

describe('URLs in messages', () => {
  it.each([
    ['http://user:pw@ci.example:8080/?token=abc', 'http://***@ci.example:8080/?…'],
    ['https://TOKEN@github.com/o/r.git', 'https://***@github.com/o/r.git'],
    ['https://host/path#access_token=abc', 'https://host/path#…'],
    // Not parseable, or no scheme: still masked, to the last @ (a password may hold @ / ? or a space).
    ['http://user:p@ss/w?rd x@host:1/', 'http://***@host:1/'],
    ['user:pw@host', '***@host'],
    // A password holding `/`, `#` or `?`: `@mpd/client`'s own rule (userinfo only up to the first
    // of those, fragments shown) echoed these whole until round N.
    ['ftp://u:p/w@host', 'ftp://***@host'],
    ['http://u:p#w@host/x', 'http://***@host/x'],
    ['https://u:p?w@host:1/a?b', 'https://***@host:1/a?…'],
    ['http://127.0.0.1:1/api/health#frag', 'http://127.0.0.1:1/api/health#…'],
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

  it('redactUrl reads a long text in one pass, whatever it holds', () => {
    const scheme = 'a'.repeat(100_000);
    expect(redactUrl(scheme)).toBe(scheme);
    expect(redactUrl(`${scheme}://${'@'.repeat(100_000)}h`)).toBe(`${scheme}://***@h`);
    expect(redactUrl(`http://${'/'.repeat(100_000)}@h${'?'.repeat(100_000)}`)).toBe('http://***@h?…');
  });
});
