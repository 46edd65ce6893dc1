import { MpdClientError } from '@mpd/client';
import { DEFAULT_MAX_RESULT_BYTES, type ErrorBody, resultLimitProblem, type workerContract } from '@mpd/contract';
import type { ClientInferResponses } from '@ts-rest/core';
import type { ModuleState } from './module-state.js';
import type { AttemptRecord, ModuleRunResult } from './run-result.js';

/** Where an attempt is. */
export type AttemptState =
  /** Its execute call is out and holds a slot of its worker. */
  | 'running'
  /** Its answer (or the failure of its call) was judged and acted on. */
  | 'settled'
  /**
   * Declared lost (its worker unreachable, offline, or broken): its slot is free and its
   * module may run elsewhere, but its call is still listened to, and a late answer is recorded
   * on its record, never accepted.
   */
  | 'lost';

/** One dispatch of a module to a worker, with its own `executionId` (in `record`). */
export interface Attempt {
  readonly module: ModuleState;
  readonly workerId: string;
  readonly endpoint: string;
  /** The worker's credential when it was dispatched: the worker only accepts calls carrying it. */
  readonly credential: string | undefined;
  /** What the run reports of it (in `module.result.attempts`). */
  readonly record: AttemptRecord;
  /** Aborts its execute call (when the run stops waiting for it). */
  readonly controller: AbortController;
  state: AttemptState;
}

type WithoutHeaders<T> = T extends unknown ? Omit<T, 'headers'> : never;

/**
 * The worker's answer to an execute call, as the contract types it: `200` with the module's
 * result, `500` with its failure or an error body, an error body for every other status.
 */
export type ExecuteAnswer = WithoutHeaders<ClientInferResponses<typeof workerContract.execution.execute>>;

/** Start, end and duration (TimeSpan) of an execution, as its worker measured them. */
export interface ExecutionTimes {
  startTime: string;
  endTime: string;
  duration: string;
}

/** Why a module failed, as the run reports it. */
export type ModuleError = NonNullable<ModuleRunResult['error']>;

/** What the answer to an attempt (or the lack of one) means for its module. */
export type AttemptVerdict =
  /** 200: the module ran and returned `serializedResult` (JSON text). */
  | { kind: 'succeeded'; serializedResult: string; times: ExecutionTimes }
  /**
   * 500 with the module's failure: `failed` (it threw), `timed-out` (its worker stopped it at
   * its timeout) or `cancelled` (a cancel call stopped it). Also `failed`: a result over the
   * orchestrator's limits (`times` then absent when the answer was too large to read).
   */
  | { kind: 'failed' | 'timed-out' | 'cancelled'; error: ModuleError; times?: ExecutionTimes }
  /** 429 or 503: the worker had no room after all (its own load, or draining): not the module's fault. */
  | { kind: 'rejected'; status: 429 | 503; message: string }
  /** Any other error status (400, 401, 404, 413, 415): the worker refused the request. */
  | { kind: 'dispatch-rejected'; status: number; message: string }
  /** No answer within the module's timeout plus the margin (the call's deadline). */
  | { kind: 'no-answer'; message: string }
  /**
   * The worker is gone or broken: unreachable, the call aborted, a 500 that is not the module's
   * failure, or a status outside the contract.
   */
  | { kind: 'lost'; reason: string };

/** The `type` of a module error for a result over the limits, whichever side caught it (the worker's exception type). */
export const RESULT_LIMIT_ERROR = 'ResultLimitError';

/**
 * Judges the worker's answer to an execute call. A result over `maxResultBytes` (the run's
 * `maxResultBytes`) or nested past the contract's `LIMITS.json.maxDepth` fails its module (a
 * worker with a larger limit, or one that does not check, sent it).
 */
export function judgeAnswer(answer: ExecuteAnswer, maxResultBytes = DEFAULT_MAX_RESULT_BYTES): AttemptVerdict {
  switch (answer.status) {
    case 200: {
      // Answers are not validated against the contract (see messageOf): a 200 without its result
      // text is a broken worker, not a module that returned nothing.
      const body: Partial<typeof answer.body> | null = answer.body;
      if (typeof body !== 'object' || body === null || typeof body.serializedResult !== 'string') {
        return { kind: 'lost', reason: 'worker answered 200 without the serializedResult text the contract requires' };
      }
      const { serializedResult, startTime, endTime, duration } = answer.body;
      const times = { startTime, endTime, duration };
      const problem = resultLimitProblem(serializedResult, maxResultBytes);
      if (problem) {
        const limit =
          problem.code === 'ResultTooLarge'
            ? "; the orchestrator's --max-result-size (maxResultBytes) sets the limit"
            : '';
        const message = `The worker sent ${problem.phrase}${limit}`;
        return { kind: 'failed', error: { message, type: RESULT_LIMIT_ERROR, stackTrace: null }, times };
      }
      return { kind: 'succeeded', serializedResult, times };
    }
    case 429:
    case 503:
      return {
        kind: 'rejected',
        status: answer.status,
        message: messageOf(answer.body) ?? `answered ${answer.status}`,
      };
    case 500: {
      const body = answer.body;
      // The module's failure carries its exception type; an error body (the worker itself failed) does not.
      if (typeof body === 'object' && body !== null && 'exceptionType' in body) {
        const { errorMessage, exceptionType, stackTrace, failureKind, startTime, endTime, duration } = body;
        return {
          kind: failureKind === 'Cancelled' ? 'cancelled' : failureKind === 'TimedOut' ? 'timed-out' : 'failed',
          error: { message: errorMessage, type: exceptionType, stackTrace: stackTrace ?? null },
          times: { startTime, endTime, duration },
        };
      }
      return { kind: 'lost', reason: `worker answered 500: ${messageOf(body) ?? 'internal error'}` };
    }
    default:
      return {
        kind: 'dispatch-rejected',
        status: answer.status,
        message: messageOf(answer.body) ?? `worker answered ${answer.status}`,
      };
  }
}

/**
 * Judges an execute call that got no answer: past its deadline, `no-answer`; an answer too large
 * to read, `failed`; otherwise (the worker unreachable, the call aborted, an answer the client
 * could not take) `lost`.
 */
export function judgeTransportError(error: unknown): AttemptVerdict {
  if (error instanceof MpdClientError && error.code === 'Timeout') return { kind: 'no-answer', message: error.message };
  if (error instanceof MpdClientError && error.code === 'TooLarge') {
    // Larger than any answer carrying a result within the limit: the module's output, not a lost worker.
    const message = `The worker's answer was not read, larger than a result within the orchestrator's --max-result-size (maxResultBytes) can make: ${error.message}`;
    return { kind: 'failed', error: { message, type: RESULT_LIMIT_ERROR, stackTrace: null } };
  }
  return { kind: 'lost', reason: error instanceof MpdClientError ? `${error.code}: ${error.message}` : String(error) };
}

/** What a late answer of a lost attempt tells its record: whether the module ran (200) or failed (500), else nothing. */
export function lateOutcome(answer: ExecuteAnswer): 'Succeeded' | 'Failed' | undefined {
  return answer.status === 200 ? 'Succeeded' : answer.status === 500 ? 'Failed' : undefined;
}

/**
 * The `errorMessage` of an error body. Answers are not validated against the contract (the
 * client's `validateResponse` is off), so a proxy's page or an empty answer gets here too:
 * then there is none.
 */
function messageOf(body: ErrorBody): string | undefined {
  const message: unknown = (body as Partial<ErrorBody> | null | undefined)?.errorMessage;
  return message === undefined || message === null ? undefined : String(message);
}
