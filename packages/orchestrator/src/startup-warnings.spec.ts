import { describe, expect, it } from 'vitest';
import { orchestratorStartupWarnings } from './startup-warnings.js';

// Which hosts count as loopback, and the plain-HTTP warning: packages/server-kit/src/cli/startup-warnings.spec.ts.
describe('orchestratorStartupWarnings', () => {
  it('says nothing on a loopback address, whatever is missing', () => {
    expect(orchestratorStartupWarnings({ host: '127.0.0.1', tls: false, joinToken: false, adminToken: false })).toEqual(
      [],
    );
  });

  it('warns on a non-loopback address about plain HTTP, a missing join token and a missing admin token', () => {
    const warnings = orchestratorStartupWarnings({ host: '0.0.0.0', tls: false, joinToken: false, adminToken: false });
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/^serving plain HTTP on a non-loopback address/);
    expect(warnings[1]).toMatch(/anyone who can reach the orchestrator can register workers/);
    expect(warnings[2]).toMatch(/anyone who can reach the orchestrator can list, unregister and drain workers/);
  });

  it('says nothing once TLS and both tokens are set', () => {
    expect(orchestratorStartupWarnings({ host: '10.0.0.5', tls: true, joinToken: true, adminToken: true })).toEqual([]);
    expect(orchestratorStartupWarnings({ host: '10.0.0.5', tls: true, joinToken: true, adminToken: false })).toEqual([
      expect.stringMatching(/^no admin token/),
    ]);
  });
});
