import { describe, expect, it } from 'vitest';
import { workerStartupWarnings } from './startup-warnings.js';

// Which hosts count as loopback, and the plain-HTTP warning: packages/server-kit/src/cli/startup-warnings.spec.ts.
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
