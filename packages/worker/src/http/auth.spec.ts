import { describe, expect, it } from 'vitest';
import {
  type CallGate,
  callGateOf,
  type GateLink,
  mayCall,
  mayCallWhenReady,
  NOT_READY_HOLD_MS,
  NOT_READY_RETRY_AFTER_SECONDS,
} from './auth.js';

const gate = (overrides: Partial<CallGate>): CallGate => ({
  accepted: [],
  awaitingRegistration: false,
  open: false,
  ...overrides,
});

describe('mayCall', () => {
  it('lets in a call with any of the accepted tokens', () => {
    const accepted = ['configured-token', 'credential-of-worker'];
    expect(mayCall('credential-of-worker', gate({ accepted }))).toBeUndefined();
    expect(mayCall('configured-token', gate({ accepted }))).toBeUndefined();
    // A configured token works before the first registration too.
    expect(mayCall('configured-token', gate({ accepted, awaitingRegistration: true }))).toBeUndefined();
  });

  it('refuses (401) a call without a token or with another one, naming neither token', () => {
    expect(mayCall(undefined, gate({ accepted: ['configured-token'] }))).toEqual({
      status: 401,
      message: 'execute and cancel take the bearer token the orchestrator got for this worker',
    });
    expect(mayCall('configured-tokem', gate({ accepted: ['configured-token'] }))).toEqual({
      status: 401,
      message: 'the bearer token is not valid for this worker',
    });
  });

  it('refuses (401, the wrong token) a token that is not well-formed UTF-16, though it and the accepted one encode alike in UTF-8', () => {
    for (const [token, accepted] of [
      ['credential-\uD800', 'credential-\uDBFF'],
      ['credential-\uD800', 'credential-\uD800'],
      ['credential-\uFFFD', 'credential-\uD800'],
    ])
      expect(mayCall(token, gate({ accepted: [accepted!] })), JSON.stringify([token, accepted])).toEqual({
        status: 401,
        message: 'the bearer token is not valid for this worker',
      });
  });

  it('fails closed: a worker with nothing to accept refuses every call (401) unless in open mode', () => {
    for (const token of [undefined, 'anything']) {
      expect(mayCall(token, gate({}))).toMatchObject({ status: 401, message: expect.stringMatching(/--open/) });
      expect(mayCall(token, gate({ open: true }))).toBeUndefined();
    }
    // Open mode ends once the worker holds a credential.
    expect(mayCall(undefined, gate({ open: true, accepted: ['credential-of-worker'] }))).toMatchObject({ status: 401 });
  });

  it('answers 503 with a Retry-After until the first registration completes, whatever the token', () => {
    for (const token of [undefined, 'guessed-credential']) {
      expect(mayCall(token, gate({ awaitingRegistration: true }))).toEqual({
        status: 503,
        message: expect.stringMatching(/has not completed its first registration/),
        retryAfterSeconds: NOT_READY_RETRY_AFTER_SECONDS,
      });
      expect(mayCall(token, gate({ awaitingRegistration: true, accepted: ['configured-token'] }))).toMatchObject({
        status: 503,
      });
    }
  });
});

describe('mayCallWhenReady', () => {
  it('holds a call that would get 503 until the registration completes, then lets its credential in', async () => {
    // The orchestrator's first execute may arrive before the worker has read the registration's answer.
    let gate: CallGate = {
      accepted: [],
      awaitingRegistration: true,
      open: false,
      untilRegistered: async (maxMs) => {
        expect(maxMs).toBe(NOT_READY_HOLD_MS);
        gate = { ...gate, accepted: ['credential-of-worker'], awaitingRegistration: false };
      },
    };
    expect(await mayCallWhenReady('credential-of-worker', () => gate)).toBeUndefined();
  });

  it('answers 503 after the hold when the registration has not completed, and 401 without a hold', async () => {
    let holds = 0;
    const waiting: CallGate = {
      accepted: [],
      awaitingRegistration: true,
      open: false,
      untilRegistered: async () => void holds++,
    };
    expect(await mayCallWhenReady(undefined, () => waiting)).toMatchObject({ status: 503 });
    expect(holds).toBe(1);
    const registered: CallGate = { ...waiting, accepted: ['credential-of-worker'], awaitingRegistration: false };
    expect(await mayCallWhenReady(undefined, () => registered)).toMatchObject({ status: 401 });
    expect(holds).toBe(1);
  });

  it('gives a final verdict at once, not as a promise: only a call that may be held waits (issue 14)', () => {
    const registered: CallGate = { accepted: ['credential-of-worker'], awaitingRegistration: false, open: false };
    expect(mayCallWhenReady('credential-of-worker', () => registered)).toBeUndefined();
    expect(mayCallWhenReady('wrong', () => registered)).toMatchObject({ status: 401 });
    const waiting: CallGate = {
      ...registered,
      accepted: [],
      awaitingRegistration: true,
      untilRegistered: async () => {},
    };
    expect(mayCallWhenReady(undefined, () => waiting)).toBeInstanceOf(Promise);
  });
});

describe('callGateOf', () => {
  /** A link whose credential and registration state the test sets, as registrations change them. */
  const link = (): GateLink & { credential: string | undefined; awaitingRegistration: boolean; waits: number[] } => {
    const waits: number[] = [];
    return {
      credential: undefined,
      awaitingRegistration: true,
      waits,
      registeredWithin: (maxMs) => {
        waits.push(maxMs);
        return Promise.resolve();
      },
    };
  };

  it("follows the link's credential and registration state at every read, the configured token first", async () => {
    const linked = link();
    const callGate = callGateOf({ token: 'configured-token', open: false }, linked);
    expect(callGate()).toMatchObject({ accepted: ['configured-token'], awaitingRegistration: true, open: false });

    linked.credential = 'credential-1';
    linked.awaitingRegistration = false;
    expect(callGate()).toMatchObject({ accepted: ['configured-token', 'credential-1'], awaitingRegistration: false });
    expect(mayCall('credential-1', callGate())).toBeUndefined();

    // A registration again: a new credential replaces the old one at once.
    linked.credential = 'credential-2';
    expect(callGate().accepted).toEqual(['configured-token', 'credential-2']);
    expect(mayCall('credential-1', callGate())?.status).toBe(401);
    expect(mayCall('credential-2', callGate())).toBeUndefined();

    // Registering again after an unanswered attempt: held (503) again, with the same credential.
    linked.awaitingRegistration = true;
    expect(callGate()).toMatchObject({ accepted: ['configured-token', 'credential-2'], awaitingRegistration: true });
    expect(mayCall('unknown', callGate())?.status).toBe(503);

    await callGate().untilRegistered?.(250);
    expect(linked.waits).toEqual([250]);
  });

  it('gives the same gate while nothing changed, and accepts nothing without a token or a link', async () => {
    const linked = link();
    linked.credential = 'credential-1';
    linked.awaitingRegistration = false;
    const callGate = callGateOf({ token: undefined, open: false }, linked);
    expect(callGate()).toBe(callGate());
    expect(callGate().accepted).toEqual(['credential-1']);

    const alone = callGateOf({ token: undefined, open: true }, undefined);
    expect(alone()).toMatchObject({ accepted: [], awaitingRegistration: false, open: true });
    await expect(alone().untilRegistered?.(10)).resolves.toBeUndefined();
  });
});
