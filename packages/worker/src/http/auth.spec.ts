import { describe, expect, it } from 'vitest';
import { mayCall } from './auth.js';

describe('mayCall', () => {
  it('lets every call in while the worker accepts no token', () => {
    expect(mayCall(undefined, [])).toBeUndefined();
    expect(mayCall('anything', [])).toBeUndefined();
  });

  it('lets in a call with any of the accepted tokens', () => {
    expect(mayCall('credential-of-worker', ['configured-token', 'credential-of-worker'])).toBeUndefined();
    expect(mayCall('configured-token', ['configured-token', 'credential-of-worker'])).toBeUndefined();
  });

  it('refuses (401) a call without a token or with another one, naming neither token', () => {
    expect(mayCall(undefined, ['configured-token'])).toEqual({
      status: 401,
      message: 'execute and cancel take the bearer token the orchestrator got for this worker',
    });
    expect(mayCall('configured-tokem', ['configured-token'])).toEqual({
      status: 401,
      message: 'the bearer token is not valid for this worker',
    });
  });
});
