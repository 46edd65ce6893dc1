import { parseTimeSpan } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import type { ExecuteModuleBody } from './execution.js';
import { requestFingerprint as fingerprintOf } from './request-fingerprint.js';

/** The fingerprint of `body` with its timeout parsed as the execute route parses it (once, `parseExecuteBody`). */
const requestFingerprint = (body: ExecuteModuleBody): string =>
  fingerprintOf(body, body.timeout === undefined ? undefined : parseTimeSpan(body.timeout));

const body: ExecuteModuleBody = {
  executionId: 'run-1.c.1',
  moduleTypeName: 'c',
  serializedModule: '{"target":"prod"}',
  dependencyResults: { a: '1', b: '"two"' },
  environmentVariables: { CI: 'true', TOKEN: 's3cret' },
  secretEnvironmentVariables: ['TOKEN'],
  workingDirectory: '/work',
  timeout: '00:10:00',
  timestamp: '2025-09-30T10:00:00Z',
};

describe('requestFingerprint', () => {
  it('is the same for the same request re-sent: another timestamp, key order or TimeSpan spelling', () => {
    const fingerprint = requestFingerprint(body);
    expect(fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(
      requestFingerprint({
        ...body,
        timestamp: '2025-09-30T10:05:00Z',
        dependencyResults: { b: '"two"', a: '1' },
        environmentVariables: { TOKEN: 's3cret', CI: 'true' },
        timeout: '0:10:00',
      }),
    ).toBe(fingerprint);
  });

  it('hashes the same bytes as one update per text did: small texts joined, a large one on its own', () => {
    // The values of one hash update per length and per text (before issue 14's cut).
    expect(requestFingerprint(body)).toBe('e8d0d4e55c35bc6b5b72e77819a48d94305c86ec82c20644d29d74416deb61f9');
    const large = { ...body, dependencyResults: { a: '1', big: `"${'é'.repeat(40_000)}"` } };
    expect(requestFingerprint(large)).toBe('3b92889cb06a639d83812e43b67251ec00f23c28f4c56422c900f54cbbaf3a8c');
    // Without secret variables (round P's shared empty list): the value main computed before it;
    // an empty list and none are the same request.
    const noSecrets = '1e60e335ed3607dd888dff37db5dcfd3eca3459498e25f9ba5f1a2e63f853514';
    expect(requestFingerprint({ ...body, secretEnvironmentVariables: undefined })).toBe(noSecrets);
    expect(requestFingerprint({ ...body, secretEnvironmentVariables: [] })).toBe(noSecrets);
  });

  it.each<[string, Partial<ExecuteModuleBody>]>([
    ['another module', { moduleTypeName: 'a' }],
    ['other parameters', { serializedModule: '{"target":"dev"}' }],
    ['another dependency result', { dependencyResults: { a: '1', b: '"three"' } }],
    ['one dependency less', { dependencyResults: { a: '1' } }],
    ['another environment value', { environmentVariables: { CI: 'true', TOKEN: 'other' } }],
    ['another secret name', { secretEnvironmentVariables: ['CI'] }],
    ['no secrets', { secretEnvironmentVariables: undefined }],
    ['another working directory', { workingDirectory: '/tmp' }],
    ['another timeout', { timeout: '00:20:00' }],
    ['no timeout', { timeout: undefined }],
    // Texts go in with their lengths: moving characters between fields changes the fingerprint.
    ['a key and value shifted', { dependencyResults: { a1: '', b: '"two"' } }],
  ])('differs for %s', (_case, change) => {
    expect(requestFingerprint({ ...body, ...change })).not.toBe(requestFingerprint(body));
  });
});
