import { ADDRESS_REFUSED, type CallAborter, isTlsFailure, MpdClientError } from '@mpd/client';
import {
  DEFAULT_MAX_RESULT_BYTES,
  type ErrorBody,
  type ExecuteModuleRequest,
  resultLimitProblem,
  type workerContract,
} from '@mpd/contract';
import type { ClientInferResponses } from '@ts-rest/core';
import type { ModuleState } from './module-state.js';
import type { AttemptRecord, ModuleRunResult } from './run-result.js';

/** Where an attempt is, for its module. */
export type AttemptState =
  /** Its module waits on it: its execute call is out (or about to be re-sent), and it holds a slot of its worker. */
  | 'running'
  /**
   * Its module no longer waits on it: it was declared lost (its worker offline, gone or
   * unreachable, its endpoint broken), the orchestrator gave up waiting for its answer
   * (`no-answer`), or another attempt's result was accepted. It may still be running (see
   * {@link Attempt.ended}), so it keeps its worker's slot and its module's `notInParallel` keys
   * until it has ended (`Attempt.holds`; round R, mend s5); an answer that still arrives is
   * recorded, and a successful one is accepted if the module has not ended meanwhile.
   */
  | 'abandoned'
  /** Its answer was judged and acted on. */
  | 'settled';

/**
 * Why an attempt can no longer be running anywhere:
 * - `answered`: the worker's own answer arrived (the execution ended there, or never started);
 * - `not-delivered`: the request never reached a worker process (connection refused, a TLS
 *   failure, an address the endpoint policy refuses); never for an answer that is not the
 *   worker's own contract body (a gateway may have passed the call on: see `isWorkersAnswer`);
 * - `worker-offline`: its worker missed its heartbeats past the timeout (it fences itself: it
 *   cancels what it runs when its heartbeats go unacknowledged that long);
 * - `worker-gone`: its worker unregistered (it does once no module process of it runs);
 * - `lease-ended`: another process registered under its worker's id, and the heartbeat lease of
 *   the process that had it has ended since (its module hosts killed their process groups then;
 *   a frozen or cut-off process fences itself);
 * - `cancel-acknowledged`: the worker answered its cancel 404 (it does not run it), or 200 when
 *   its heartbeats list no executions (an older worker: nothing else would tell when it
 *   stopped; known from a heartbeat of its start, at the 200 or the next one); a 200 from a worker that lists them is not an end: the attempt ends once it has
 *   stopped there (`not-listed`, or `answered` by its call or its collect; round R, R6);
 * - `not-listed`: its worker's heartbeats stopped listing it among the executions it runs;
 * - `overdue`: not an end seen: abandoned, it was still unended past its deadline plus
 *   `ABANDONED_STOP_ALLOWANCE_MS` (its worker never stopped it: under `--isolation none`, a
 *   module that ignores its signal and never returns); its module ended `TimedOut` for good,
 *   and its slot and `notInParallel` keys were given up so the run can end (round R, mend s5).
 */
export type AttemptEnd =
  | 'answered'
  | 'not-delivered'
  | 'worker-offline'
  | 'worker-gone'
  | 'lease-ended'
  | 'cancel-acknowledged'
  | 'not-listed'
  | 'overdue';

/** The execute call of an attempt that is out now (each re-send makes a new one). */
export interface ExecuteCall {
  /**
   * Aborts this call only (the attempt goes on: a re-send follows when `resend` is set). Not an
   * `AbortController`: see `CallAborter`.
   */
  readonly aborter: CallAborter;
  /** When it was sent (epoch ms). */
  readonly sentAt: number;
  /** Set before aborting the call to re-send at once (to collect an outcome whose answer was lost). */
  resend: boolean;
}

/** What the run learnt of an attempt from its worker's heartbeats (`executions`). */
export interface AttemptSightings {
  /** When a heartbeat last listed it (epoch ms); undefined while none has. */
  listedAt: number | undefined;
  /** Since when heartbeats no longer list it (epoch ms), while its call is out; undefined while they do. */
  unlistedSince: number | undefined;
  /**
   * When the latest of its worker's own heartbeats (own credential: others carry no
   * `executions`) that listed it in neither `executions` nor `finished` came (epoch ms);
   * undefined while none has. The evidence a never-listed call needs besides the time (see
   * `unlistedFor`; review N3, 2).
   */
  unlistedBeatAt: number | undefined;
  /** Heartbeats in a row, since it was abandoned, that did not list it. */
  unlistedBeats: number;
  /**
   * When a heartbeat of its worker's (while it ran, or since it was abandoned), or its cancel's
   * 404, named it `finished` (epoch ms) while its module had not ended: its outcome is kept
   * there, to be collected (see `PipelineRun.collectKept`), and the heartbeats that leave it out
   * afterwards (the worker reports a finished execution until a heartbeat carrying it is
   * acknowledged; one named while it ran is named no more once abandoned: review S, 1) do not
   * end it. Cleared
   * once a collect got the outcome, past `COLLECT_WINDOW_MS`, or once the collect may no longer
   * be made (its module ended, another start of the worker); a collect that ran nothing keeps
   * it (asked again at the next heartbeat). Undefined while none has.
   */
  keptAt: number | undefined;
  /**
   * When its worker answered its cancel 200 ("stopping"; epoch ms) while the run did not know yet
   * whether that start of the worker lists its executions (no heartbeat since it registered):
   * the next heartbeat decides (one without `executions` ends it, as an older worker's 200
   * would; round R, mend s5). Undefined otherwise.
   */
  stoppingUndecidedAt?: number | undefined;
  /**
   * Until when (epoch ms, the run's clock) its worker keeps that outcome, as its cancel's 404
   * said (`keptForMs`, counted from the finish there): no collect is sent later, whatever is left
   * of `COLLECT_WINDOW_MS` from `keptAt` (review S, 3). Undefined when no such answer said it.
   */
  keptUntil?: number;
  /** How many times its outcome was asked for again because heartbeats no longer listed it. */
  collects: number;
  /** Cancels the armed check for an outcome to collect, if one is armed. */
  disarm: (() => void) | undefined;
}

/** One dispatch of a module to a worker, with its own `executionId` (in `record`). */
export interface Attempt {
  readonly module: ModuleState;
  readonly workerId: string;
  /** The worker's endpoint when it was dispatched (re-sends and cancels use the registry's current one). */
  readonly endpoint: string;
  /** The worker's credential when it was dispatched: the worker only accepts calls carrying it. */
  readonly credential: string | undefined;
  /** The worker's generation when it was dispatched (see `WorkerGenerations`): which start of it got the attempt. */
  readonly generation: number;
  /** What the run reports of it (in `module.result.attempts`). */
  readonly record: AttemptRecord;
  /**
   * Set when the run stopped listening for its answer for good (see `stopCalls`): its call out
   * is aborted, and no re-send follows. A flag and the call's own aborter, rather than an
   * `AbortController` of the attempt's that each call's listened to: the two `AbortSignal`s per
   * module and the listener cost about 4 µs of the orchestrator's CPU (issue 14, round H).
   */
  stopped: boolean;
  /** Wakes the wait before a re-send (see `stopCalls`); undefined while none waits. */
  pause: AbortController | undefined;
  /** When the first execute call was sent (epoch ms). */
  readonly sentAt: number;
  /** The call's deadline (epoch ms): the module's timeout plus the margin after `sentAt`. */
  readonly deadlineAt: number;
  state: AttemptState;
  /**
   * Whether it holds its worker's slot (`WorkerLoads`) and its module's `notInParallel` keys
   * (`ConcurrencyRules`): from its dispatch until it settled, or, once abandoned (lost,
   * superseded), until it ended — a lost attempt may still run (or be stopping) there, and the
   * worker counts it (round R, mend s5).
   */
  holds: boolean;
  /** Why it can no longer be running anywhere; undefined while it may still be. */
  ended: AttemptEnd | undefined;
  /** The execute call out now; undefined between re-sends and once the calls are over. */
  call: ExecuteCall | undefined;
  /** Whether its execute calls are over (answered, or given up). */
  callsDone: boolean;
  /** Transport failures in a row where the worker closed the connection without a word. */
  closedInARow: number;
  /** When its latest run of transport failures began (epoch ms); undefined after an answer. */
  failingSince: number | undefined;
  readonly sightings: AttemptSightings;
  /**
   * The execute request sent, for a collect of its kept outcome (`collectOutcome`: the same
   * request; re-sends take it from the call). Released (undefined) once no collect can be made
   * any more: the attempt retired, or its collect given up (its window over, its module ended,
   * another start of its worker; see `PipelineRun.collectKept`): an abandoned attempt may stay
   * minded for minutes without it.
   */
  body: ExecuteModuleRequest | undefined;
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
  /**
   * 429 or 503 with the worker's own error body to an attempt's first call (`sendExecute` sends
   * a refused re-send again: an earlier call may run the module; a 429/503 without that body is
   * a lost attempt, see `PipelineRun.notWorkersAnswer`): the worker had no room after all (its
   * own load, or draining): not the module's fault. 401 or 403 (from `sendExecute`, never `judgeAnswer`): the worker refused a credential
   * the orchestrator issued and no request has used yet: it is still registering (its
   * registration's answer was lost), and ran nothing.
   */
  | { kind: 'rejected'; status: 401 | 403 | 429 | 503; message: string }
  /** Another error status with the contract's error body (400, 404 `ModuleNotFound`, 413, 415): the worker refused the request. */
  | { kind: 'dispatch-rejected'; status: number; message: string }
  /** No answer within the module's timeout plus the margin (the call's deadline). */
  | { kind: 'no-answer'; message: string }
  /** The worker answered that it failed itself (500 with the contract's error body): the module does not run there. */
  | { kind: 'lost'; reason: string }
  /**
   * The call failed on the way (the connection reset or closed, a connect timeout): the worker
   * may have the request and run the module. `closed`: the worker's side closed the connection
   * without a word (a reset or a close), rather than the network timing out.
   */
  | { kind: 'in-transit'; reason: string; closed: boolean }
  /** Nothing listens at the endpoint (connection refused, no such host): the request reached no worker. */
  | { kind: 'refused'; reason: string }
  /**
   * The endpoint is not this worker: 404 `RouteNotFound`, 401 or 403 to the worker's own
   * credential, an answer that is not the contract's JSON, a TLS failure. `answered`: something
   * answered the call (a body that is not JSON): a gateway may have passed it on to the worker,
   * so it is no proof that nothing ran (unlike a TLS failure, where nothing was sent).
   */
  | { kind: 'broken'; reason: string; answered?: true };

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
      // text is not a worker's answer, not a module that returned nothing.
      const body: Partial<typeof answer.body> | null = answer.body;
      if (typeof body !== 'object' || body === null || typeof body.serializedResult !== 'string') {
        return { kind: 'broken', reason: 'answered 200 without the serializedResult text the contract requires' };
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
      // Also from a proxy or load balancer in front of the worker, which may answer without the contract's body.
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
      if (isErrorBody(body)) return { kind: 'lost', reason: `worker answered 500: ${body.errorMessage}` };
      return notContract(500);
    }
    default: {
      // Any status may come from something that is not a worker: not only those the contract lists.
      const status: number = answer.status;
      const body: unknown = answer.body;
      if (!isErrorBody(body)) return notContract(status);
      // The worker's own routes answer every call carrying its credential: 401/403 means this is another server.
      if (status === 401 || status === 403) {
        return { kind: 'broken', reason: `answered ${status} to the worker's own credential: ${body.errorMessage}` };
      }
      if (status === 404 && body.code === 'RouteNotFound') {
        return { kind: 'broken', reason: `answered 404 RouteNotFound (${body.errorMessage}): not an mpd worker` };
      }
      return { kind: 'dispatch-rejected', status, message: body.errorMessage };
    }
  }
}

/**
 * Judges an execute call that got no answer: past its deadline, `no-answer`; an answer too large
 * to read, `failed`; connection refused or no such host, `refused`; a TLS failure, a body that
 * is not JSON or an address the endpoint policy refuses, `broken`; any other failure on the way (a reset, a close, a connect timeout),
 * `in-transit`; an error that is no transport failure at all, `lost`.
 */
export function judgeTransportError(error: unknown): AttemptVerdict {
  if (error instanceof MpdClientError) {
    const reason = `${error.code}: ${error.message}`;
    if (error.code === 'Timeout') return { kind: 'no-answer', message: error.message };
    if (error.code === 'TooLarge') {
      // Larger than any answer carrying a result within the limit: the module's output, not a lost worker.
      const message = `The worker's answer was not read, larger than a result within the orchestrator's --max-result-size (maxResultBytes) can make: ${error.message}`;
      return { kind: 'failed', error: { message, type: RESULT_LIMIT_ERROR, stackTrace: null } };
    }
    // The endpoint policy refused the address connected to (it resolves elsewhere since it registered): nothing was sent.
    if (error.errno === ADDRESS_REFUSED) return { kind: 'broken', reason };
    if (error.errno === 'ECONNREFUSED' || error.errno === 'ENOTFOUND') return { kind: 'refused', reason };
    if (error.code === 'Unreachable' && isTlsFailure(error.errno)) return { kind: 'broken', reason };
    return { kind: 'in-transit', reason, closed: CLOSED.has(error.errno ?? '') };
  }
  // The client parses a body declared as JSON: one that is not came from something other than a worker.
  // Something answered (the call was sent, and a gateway may have passed it on): not proof that nothing ran.
  if (error instanceof SyntaxError)
    return { kind: 'broken', reason: `answered a body that is not JSON: ${error.message}`, answered: true };
  return { kind: 'lost', reason: String(error) };
}

/** Network error codes of a connection the other side reset or closed. */
const CLOSED = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/**
 * What a late answer of an abandoned attempt tells its record: the module ran (200), was
 * cancelled (500 with `failureKind: 'Cancelled'`: its cancel stopped it, or arrived first),
 * timed out at its worker (500, `TimedOut`) or failed (any other 500), else nothing.
 */
export function lateOutcome(answer: ExecuteAnswer): LateOutcome | undefined {
  if (answer.status === 200) return 'Succeeded';
  if (answer.status !== 500) return undefined;
  const body: unknown = answer.body;
  const kind = typeof body === 'object' && body !== null ? (body as { failureKind?: unknown }).failureKind : undefined;
  return kind === 'Cancelled' ? 'Cancelled' : kind === 'TimedOut' ? 'TimedOut' : 'Failed';
}

/** What a late answer said of its attempt (see {@link lateOutcome}, `AttemptRecord.lateAnswer`). */
export type LateOutcome = 'Succeeded' | 'Failed' | 'TimedOut' | 'Cancelled';

/**
 * Whether `answer` carries the worker's own contract body: 200 with its `serializedResult` text,
 * 500 with the module's failure, or the contract's error body (`{ success: false, errorMessage }`)
 * for any status. Only such an answer says what the worker did with the call (ran it, or refused
 * it and ran nothing). Anything else came from something in front of the worker (a gateway's
 * 500 page, a load balancer's 503 "no healthy upstream", a rate limiter's 429), which may have
 * passed the call on first: the module may run there (review R1, H1).
 */
export function isWorkersAnswer(answer: ExecuteAnswer): boolean {
  const body: unknown = answer.body;
  if (isErrorBody(body)) return true;
  if (typeof body !== 'object' || body === null) return false;
  if (answer.status === 200) return typeof (body as { serializedResult?: unknown }).serializedResult === 'string';
  return answer.status === 500 && 'exceptionType' in body;
}

function notContract(status: number): AttemptVerdict {
  return { kind: 'broken', reason: `answered ${status} with a body that is not the contract's` };
}

/** Whether `body` is the contract's error body (`{ success: false, errorMessage, code? }`). */
function isErrorBody(body: unknown): body is ErrorBody {
  const candidate = body as Partial<ErrorBody> | null | undefined;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    candidate.success === false &&
    typeof candidate.errorMessage === 'string'
  );
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
