import { describe, expect, it } from 'vitest';
import { workerStartupWarnings } from './startup-warnings.js';

// Which hosts count as loopback, and the plain-HTTP warning: packages/server-kit/src/cli/startup-warnings.spec.ts.
describe('workerStartupWarnings', () => {
  it('says nothing on a loopback address for a worker that registers or has a token', () => {
    expect(workerStartupWarnings({ host: '127.0.0.1', tls: false, token: false, orchestrator: true })).toEqual([]);
    expect(workerStartupWarnings({ host: '127.0.0.1', tls: false, token: true })).toEqual([]);
  });

  it('warns about plain HTTP on a non-loopback address, and about a missing token in open mode only', () => {
    expect(workerStartupWarnings({ host: '0.0.0.0', tls: false, token: false, open: true })).toEqual([
      expect.stringMatching(/^serving plain HTTP on a non-loopback address/),
      expect.stringMatching(/^no token on a non-loopback address .*anyone who can reach the worker can run modules/),
      expect.stringMatching(/^open mode \(--open\): execute and cancel are served without any token; /),
    ]);
    expect(workerStartupWarnings({ host: '0.0.0.0', tls: true, token: false, orchestrator: true })).toEqual([]);
    expect(workerStartupWarnings({ host: '0.0.0.0', tls: false, token: true })).toHaveLength(1);
  });

  it('warns on any address in open mode, and when nothing lets a call in (fails closed)', () => {
    expect(
      workerStartupWarnings({ host: '127.0.0.1', tls: false, token: false, open: true, orchestrator: true }),
    ).toEqual([
      expect.stringMatching(/^open mode \(--open\): .* until the first registration gives this worker its credential/),
    ]);
    expect(workerStartupWarnings({ host: '127.0.0.1', tls: false, token: false })).toEqual([
      expect.stringMatching(/^no token and no --orchestrator: execute and cancel answer 401 to every call/),
    ]);
  });
});
