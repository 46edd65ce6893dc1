import { ADDRESS_REFUSED, MpdClientError } from '@mpd/client';
import { errorResponse, LIMITS } from '@mpd/contract';
import { SPEC_EXAMPLES } from '@mpd/test-kit';
import { describe, expect, it } from 'vitest';
import {
  type ExecuteAnswer,
  isWorkersAnswer,
  judgeAnswer,
  judgeTransportError,
  lateOutcome,
  RESULT_LIMIT_ERROR,
} from './attempt.js';

const { executeOk, executeFailed } = SPEC_EXAMPLES;
const times = { startTime: '2025-09-30T10:00:00Z', endTime: '2025-09-30T10:00:05Z', duration: '00:00:05' };
const moduleError = {
  message: 'Module execution failed',
  type: 'System.InvalidOperationException',
  stackTrace: 'at ...',
};

/** An answer as the worker sends it (the spec's examples are not typed with literal statuses). */
function answer(status: number, body: unknown): ExecuteAnswer {
  return { status, body } as ExecuteAnswer;
}

describe('judgeAnswer', () => {
  it("judges the spec's success example: the result text and the worker's times", () => {
    expect(judgeAnswer(answer(200, executeOk))).toEqual({
      kind: 'succeeded',
      serializedResult: '{...}',
      times: { startTime: '2025-09-30T10:00:00Z', endTime: '2025-09-30T10:02:30Z', duration: '00:02:30' },
    });
  });

  it("judges the spec's failure example as the module's failure, with its exception and times", () => {
    expect(judgeAnswer(answer(500, executeFailed))).toEqual({ kind: 'failed', error: moduleError, times });
    expect(judgeAnswer(answer(500, { ...executeFailed, failureKind: 'Error', stackTrace: null }))).toEqual({
      kind: 'failed',
      error: { ...moduleError, stackTrace: null },
      times,
    });
  });

  it('judges a 200 without its result text as a broken endpoint (not a worker), not an empty result', () => {
    for (const body of [null, 'OK', {}, { ...executeOk, serializedResult: 42 }]) {
      expect(judgeAnswer(answer(200, body))).toEqual({
        kind: 'broken',
        reason: 'answered 200 without the serializedResult text the contract requires',
      });
    }
  });

  it('tells a cancelled and a timed-out module by their failure kind', () => {
    expect(judgeAnswer(answer(500, { ...executeFailed, failureKind: 'Cancelled' }))).toEqual({
      kind: 'cancelled',
      error: moduleError,
      times,
    });
    expect(judgeAnswer(answer(500, { ...executeFailed, failureKind: 'TimedOut' }))).toEqual({
      kind: 'timed-out',
      error: moduleError,
      times,
    });
  });

  it('judges 429 and 503 as a worker without room (rejected), not a failure of the module', () => {
    expect(judgeAnswer(errorResponse('WorkerAtCapacity', 'all 4 slots are taken'))).toEqual({
      kind: 'rejected',
      status: 429,
      message: 'all 4 slots are taken',
    });
    expect(judgeAnswer(errorResponse('WorkerDraining', 'draining'))).toEqual({
      kind: 'rejected',
      status: 503,
      message: 'draining',
    });
    // A proxy in front of the worker may answer without the contract's body.
    expect(judgeAnswer(answer(503, undefined))).toEqual({ kind: 'rejected', status: 503, message: 'answered 503' });
  });

  it('judges a 500 with an error body (the worker itself failed) as a lost attempt, any other 500 as a broken endpoint', () => {
    expect(judgeAnswer(errorResponse('InternalError', 'out of memory'))).toEqual({
      kind: 'lost',
      reason: 'worker answered 500: out of memory',
    });
    expect(judgeAnswer(answer(500, '<html>Bad gateway</html>'))).toEqual({
      kind: 'broken',
      reason: "answered 500 with a body that is not the contract's",
    });
  });

  it("judges every other error status with the contract's error body as the worker refusing the request", () => {
    const refusals = [
      errorResponse('ValidationFailed', 'timeout: must be a TimeSpan'),
      errorResponse('ModuleNotFound', "no module 'deploy'"),
      errorResponse('PayloadTooLarge', 'body over 1mb'),
      errorResponse('UnsupportedMediaType', 'send application/json'),
    ];
    expect(refusals.map(judgeAnswer)).toEqual([
      { kind: 'dispatch-rejected', status: 400, message: 'timeout: must be a TimeSpan' },
      { kind: 'dispatch-rejected', status: 404, message: "no module 'deploy'" },
      { kind: 'dispatch-rejected', status: 413, message: 'body over 1mb' },
      { kind: 'dispatch-rejected', status: 415, message: 'send application/json' },
    ]);
    expect(judgeAnswer(answer(404, SPEC_EXAMPLES.cancelNotFound))).toMatchObject({ message: 'Execution not found' });
  });

  it('judges an answer that proves the endpoint is not this worker as broken: no route, 401/403, not the contract', () => {
    expect(judgeAnswer(errorResponse('RouteNotFound', 'No route for POST /api/execution/execute'))).toEqual({
      kind: 'broken',
      reason: 'answered 404 RouteNotFound (No route for POST /api/execution/execute): not an mpd worker',
    });
    expect(judgeAnswer(errorResponse('Unauthorized', 'missing bearer token'))).toEqual({
      kind: 'broken',
      reason: "answered 401 to the worker's own credential: missing bearer token",
    });
    const forbidden = errorResponse('Forbidden', 'not yours');
    expect(judgeAnswer(answer(forbidden.status, forbidden.body))).toMatchObject({ kind: 'broken' });
    for (const [status, body] of [
      [400, ''],
      [404, '<html>Not Found</html>'],
      [302, undefined],
      [502, { error: 'upstream' }],
    ] as const) {
      expect(judgeAnswer(answer(status, body)), `${status}`).toEqual({
        kind: 'broken',
        reason: `answered ${status} with a body that is not the contract's`,
      });
    }
  });
});

describe('judgeTransportError', () => {
  it('judges a call past its deadline as no answer', () => {
    const error = new MpdClientError('Timeout', 'POST http://w1:9000/api/execution/execute: no answer within 61000 ms');
    expect(judgeTransportError(error)).toEqual({ kind: 'no-answer', message: error.message });
  });

  it('judges a refused connection or an unknown host as refused: the request reached no worker', () => {
    const refused = new MpdClientError('Unreachable', 'POST http://w1:9000/x: ECONNREFUSED', { errno: 'ECONNREFUSED' });
    expect(judgeTransportError(refused)).toEqual({
      kind: 'refused',
      reason: 'Unreachable: POST http://w1:9000/x: ECONNREFUSED',
    });
    const unknown = new MpdClientError('Unreachable', 'POST http://nowhere:9000/x: ENOTFOUND', { errno: 'ENOTFOUND' });
    expect(judgeTransportError(unknown)).toMatchObject({ kind: 'refused' });
  });

  it('judges an address the endpoint policy refused at connect time as a broken endpoint: nothing was sent', () => {
    const refused = new MpdClientError(
      'Unreachable',
      `POST http://w.test:9000/x: ${ADDRESS_REFUSED}: w.test:9000 is not allowed: w.test resolves to 169.254.169.254: a link-local address`,
      { errno: ADDRESS_REFUSED },
    );
    expect(judgeTransportError(refused)).toEqual({ kind: 'broken', reason: `Unreachable: ${refused.message}` });
  });

  it('judges a reset, a close or a connect timeout as a failure on the way (the worker may run it)', () => {
    const reset = new MpdClientError('ConnectionLost', 'POST http://w1:9000/x: ECONNRESET', { errno: 'ECONNRESET' });
    expect(judgeTransportError(reset)).toEqual({
      kind: 'in-transit',
      reason: 'ConnectionLost: POST http://w1:9000/x: ECONNRESET',
      closed: true,
    });
    const closed = new MpdClientError('ConnectionLost', 'x: UND_ERR_SOCKET', { errno: 'UND_ERR_SOCKET' });
    expect(judgeTransportError(closed)).toMatchObject({ kind: 'in-transit', closed: true });
    const slow = new MpdClientError('Unreachable', 'x: UND_ERR_CONNECT_TIMEOUT', { errno: 'UND_ERR_CONNECT_TIMEOUT' });
    expect(judgeTransportError(slow)).toMatchObject({ kind: 'in-transit', closed: false });
  });

  it('judges a TLS failure or a body that is not JSON as a broken endpoint, any other error as a lost attempt', () => {
    const tls = new MpdClientError('Unreachable', 'x: UNABLE_TO_VERIFY_LEAF_SIGNATURE', {
      errno: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    expect(judgeTransportError(tls)).toMatchObject({ kind: 'broken' });
    expect(judgeTransportError(new SyntaxError('Unexpected token < in JSON'))).toEqual({
      kind: 'broken',
      reason: 'answered a body that is not JSON: Unexpected token < in JSON',
      // Something answered: perhaps a gateway that passed the call on (review R1, H1).
      answered: true,
    });
    expect(judgeTransportError(tls)).not.toHaveProperty('answered');
    expect(judgeTransportError(new TypeError('boom'))).toEqual({ kind: 'lost', reason: 'TypeError: boom' });
  });
});

describe('isWorkersAnswer', () => {
  it("tells the worker's own contract bodies from a gateway's pages and bare refusals (review R1, H1)", () => {
    expect(isWorkersAnswer(answer(200, executeOk))).toBe(true);
    expect(isWorkersAnswer(answer(500, executeFailed))).toBe(true);
    expect(isWorkersAnswer(errorResponse('WorkerAtCapacity', 'full'))).toBe(true);
    expect(isWorkersAnswer(errorResponse('InternalError', 'broken'))).toBe(true);
    expect(isWorkersAnswer(answer(500, '<html>500</html>'))).toBe(false);
    expect(isWorkersAnswer(answer(503, 'no healthy upstream'))).toBe(false);
    expect(isWorkersAnswer(answer(429, undefined))).toBe(false);
    expect(isWorkersAnswer(answer(200, { ok: true }))).toBe(false);
    expect(isWorkersAnswer(answer(502, { success: false }))).toBe(false);
  });
});

describe('lateOutcome', () => {
  it('records what a late answer says about the module: ran (200) or failed (500), else nothing', () => {
    expect(lateOutcome(answer(200, executeOk))).toBe('Succeeded');
    expect(lateOutcome(answer(500, executeFailed))).toBe('Failed');
    expect(lateOutcome(errorResponse('InternalError', 'broken'))).toBe('Failed');
    expect(lateOutcome(errorResponse('WorkerAtCapacity', 'full'))).toBeUndefined();
  });

  it('records a late cancelled or timed-out answer (500 with failureKind) as such, not as a failure (N3, 4)', () => {
    expect(lateOutcome(answer(500, { ...executeFailed, failureKind: 'Cancelled' }))).toBe('Cancelled');
    expect(lateOutcome(answer(500, { ...executeFailed, failureKind: 'TimedOut' }))).toBe('TimedOut');
    expect(lateOutcome(answer(500, { ...executeFailed, failureKind: 'Error' }))).toBe('Failed');
  });
});

describe('judgeAnswer and judgeTransportError: results over the limits', () => {
  const okTimes = { startTime: executeOk.startTime, endTime: executeOk.endTime, duration: executeOk.duration };

  it('fails the module whose result is over maxResultBytes or nested past LIMITS.json.maxDepth, naming size and limit', () => {
    expect(
      judgeAnswer(answer(200, { ...executeOk, serializedResult: JSON.stringify('x'.repeat(2_000)) }), 1_024),
    ).toEqual({
      kind: 'failed',
      error: {
        message:
          "The worker sent a result of 2 KiB (2,002 bytes) as JSON, over the limit of 1 KiB (1,024 bytes); the orchestrator's --max-result-size (maxResultBytes) sets the limit",
        type: RESULT_LIMIT_ERROR,
        stackTrace: null,
      },
      times: okTimes,
    });
    const deep = '['.repeat(LIMITS.json.maxDepth + 1) + ']'.repeat(LIMITS.json.maxDepth + 1);
    expect(judgeAnswer(answer(200, { ...executeOk, serializedResult: deep }))).toMatchObject({
      kind: 'failed',
      error: { message: 'The worker sent a result nested 1,001 levels deep, over the limit of 1,000 levels' },
    });
    expect(judgeAnswer(answer(200, { ...executeOk, serializedResult: '"x"' }), 3)).toMatchObject({ kind: 'succeeded' });
  });

  it('fails (does not lose) an attempt whose answer was too large to read', () => {
    const error = new MpdClientError(
      'TooLarge',
      'POST http://w1/api/execution/execute: the answer is 99 bytes, over the 9 bytes this call reads',
    );
    expect(judgeTransportError(error)).toEqual({
      kind: 'failed',
      error: {
        message: `The worker's answer was not read, larger than a result within the orchestrator's --max-result-size (maxResultBytes) can make: ${error.message}`,
        type: RESULT_LIMIT_ERROR,
        stackTrace: null,
      },
    });
  });
});
