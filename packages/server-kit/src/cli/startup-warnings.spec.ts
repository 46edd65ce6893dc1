import { describe, expect, it } from 'vitest';
import { isLoopbackHost, PLAIN_HTTP_WARNING, startupWarnings } from './startup-warnings.js';

describe('isLoopbackHost', () => {
  it.each([
    '127.0.0.1',
    '127.1.2.3',
    '127.9.9.9',
    '::1',
    '[::1]',
    'localhost',
    'LOCALHOST',
    'Localhost',
    'ci.localhost',
    '::ffff:127.0.0.1',
  ])('%s is loopback', (host) => expect(isLoopbackHost(host)).toBe(true));
  it.each([
    '0.0.0.0',
    '::',
    '[::]',
    '',
    '10.0.0.5',
    '10.1.2.3',
    '192.168.1.2',
    'ci.example.com',
    'worker1.ci.internal',
    '127.0.0.1.example.com',
    '127.0.0.1.nip.io',
    '::ffff:10.0.0.1',
  ])('%j is not loopback', (host) => expect(isLoopbackHost(host)).toBe(false));
});

describe('startupWarnings', () => {
  it('says nothing on a loopback address, whatever is missing', () => {
    expect(startupWarnings({ host: '127.0.0.1', tls: false }, ['no token'])).toEqual([]);
  });

  it('warns on a non-loopback address about plain HTTP first, then what the server lacks', () => {
    expect(startupWarnings({ host: '0.0.0.0', tls: false }, ['no token', 'no admin token'])).toEqual([
      PLAIN_HTTP_WARNING,
      'no token',
      'no admin token',
    ]);
    expect(PLAIN_HTTP_WARNING).toMatch(/^serving plain HTTP on a non-loopback address/);
    expect(startupWarnings({ host: '10.0.0.5', tls: true }, ['no token'])).toEqual(['no token']);
    expect(startupWarnings({ host: '10.0.0.5', tls: true }, [])).toEqual([]);
  });
});
