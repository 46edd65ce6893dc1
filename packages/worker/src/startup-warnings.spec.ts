import { describe, expect, it } from 'vitest';
import { isLoopbackHost, workerStartupWarnings } from './startup-warnings.js';

describe('isLoopbackHost', () => {
  it.each(['127.0.0.1', '127.9.9.9', '::1', '[::1]', 'localhost', 'Localhost', '::ffff:127.0.0.1'])(
    '%s is loopback',
    (host) => expect(isLoopbackHost(host)).toBe(true),
  );
  it.each(['0.0.0.0', '::', '10.1.2.3', 'worker1.ci.internal', '127.0.0.1.nip.io'])('%s is not loopback', (host) =>
    expect(isLoopbackHost(host)).toBe(false),
  );
});

describe('workerStartupWarnings', () => {
  it('says nothing on a loopback address', () => {
    expect(workerStartupWarnings({ host: '127.0.0.1', tls: false, token: false })).toEqual([]);
  });

  it('warns about plain HTTP and a missing token on a non-loopback address', () => {
    expect(workerStartupWarnings({ host: '0.0.0.0', tls: false, token: false })).toEqual([
      expect.stringMatching(/^serving plain HTTP on a non-loopback address/),
      expect.stringMatching(/^no token on a non-loopback address .*anyone who can reach the worker can run modules/),
    ]);
    expect(workerStartupWarnings({ host: '0.0.0.0', tls: true, token: false })).toHaveLength(1);
    expect(workerStartupWarnings({ host: '0.0.0.0', tls: true, token: true })).toEqual([]);
  });
});
