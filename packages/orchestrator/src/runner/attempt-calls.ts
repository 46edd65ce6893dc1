import { CallAborter } from '@mpd/client';
import { ACCEPT_OUTPUT_HEADER, type ExecuteModuleRequest, OUTPUT_HEADER, OUTPUT_NONE } from '@mpd/contract';
import { backoffDelay } from '@mpd/server-kit';
import { UnknownStatusError } from '@ts-rest/core';
import type { Logger } from 'pino';
import type { NodeRegistry } from '../registry/node-registry.js';
import {
  type Attempt,
  type AttemptVerdict,
  type ExecuteAnswer,
  type ExecuteCall,
  judgeTransportError,
} from './attempt.js';
import type { RunTimers } from './run-clock.js';
import type { WorkerClients } from './worker-clients.js';

/**
 * Every execute call says that the run reads `Mpd-Output: none` in its answer (see
 * `OUTPUT_HEADER`). Frozen: the client merges a frozen `extraHeaders` with its own headers once.
 */
const ACCEPTS_OUTPUT_NONE = Object.freeze({ [ACCEPT_OUTPUT_HEADER]: OUTPUT_NONE });

/** Delays between re-sends of an execute call (ms): 250 ms, doubling up to 5 s, with jitter. */
export const RESEND_BACKOFF = { initialMs: 250, maxMs: 5_000 } as const;

/**
 * How many times in a row a worker may close the connection of a re-sent execute call without
 * a word, while its heartbeats do not list the execution, before its endpoint counts as broken
 * (it is not serving this run: a TLS server refusing the handshake, say).
 */
export const CLOSED_IN_A_ROW_LIMIT = 3;

/**
 * How long a running attempt that no heartbeat ever listed may have its call out before the
 * run asks again (ms): the request may never have reached the worker.
 */
export const NEVER_LISTED_GRACE_MS = 10_000;

/**
 * How long after its worker finished an attempt (heartbeats stopped listing it, named it
 * `finished`, or its cancel was answered 404 `finished`) the run still asks for its outcome
 * (ms): the worker keeps finished outcomes 10 minutes by default (`completedRetentionMs` of
 * `@mpd/worker`'s `WorkerOptions`, an option of `startWorker` only: its CLI has no flag for it);
 * later, a re-sent request would run the module again there, so the attempt is lost
 * (or ended, on two heartbeats that leave it out) instead and the module dispatched anew.
 *
 * Coupled to that retention, which the orchestrator sees only in a cancel's 404 `finished`
 * (`keptForMs`, what is left of it: the collects after such an answer stop there; review S, 3),
 * not in heartbeats: this window must stay shorter than it, by more than a collect's way to the
 * worker. 9 minutes leave a minute of the default 10. A worker given a shorter
 * `completedRetentionMs` may have forgotten an outcome a collect asks for: the collect then runs
 * the module again there, unless a cancel of it left a tombstone (kept as long), which answers
 * it Cancelled instead.
 */
export const COLLECT_WINDOW_MS = 9 * 60_000;

/** How an attempt's execute calls ended. */
export type CallsEnd =
  /**
   * The worker answered (perhaps to a re-send: the execution it joined, or the outcome it kept).
   * `outputNone`: the answer said the execution's output is complete and empty (`Mpd-Output:
   * none`): no output batch comes for it, not even the final one. `delivered`: an earlier call
   * failed on the way and may have reached the worker (so its module may have run there).
   */
  | { kind: 'answer'; answer: ExecuteAnswer; outputNone: boolean; delivered: boolean }
  /**
   * No answer, for good: past the deadline (`no-answer`), nothing listening (`refused`), not
   * this worker (`broken`), a failure on the way once the worker is no longer live
   * (`in-transit`), or an error that is no transport failure (`lost`). `delivered`: an earlier
   * call may have reached the worker (so it may run the module); false when none did.
   */
  | { kind: 'failure'; verdict: AttemptVerdict; delivered: boolean }
  /** The run stopped listening (it ended), or the attempt was abandoned between re-sends. */
  | { kind: 'stopped' };

/** What {@link sendExecute} works with. */
export interface AttemptCallsOptions {
  registry: NodeRegistry;
  clients: WorkerClients;
  timers: RunTimers;
  logger: Logger;
  /** The most an execute answer may hold, in bytes (what a result within `maxResultBytes` can take). */
  maxResponseBytes: number;
  /** Whether the worker process that got the attempt is still registered and live (re-sends go to it). */
  live: (attempt: Attempt) => boolean;
}

/**
 * Sends an attempt's execute call, and sends it again, with the same `executionId`, to the same
 * worker on a fresh connection, while the call fails on the way and the worker stays live: the
 * worker joins the execution it runs or answers the outcome it kept, so a connection blip never
 * makes a second run. Re-sends back off ({@link RESEND_BACKOFF}) and stop at the first answer,
 * at the call's deadline (`attempt.deadlineAt`), when the worker is no longer live, and when
 * the endpoint refuses the connection, unless heartbeats received since the first failure list
 * the execution (the process runs it; only its port is cut). A re-send answered 429 or 503 is
 * sent again the same way: the refusal says nothing of the earlier call that failed on the way,
 * which may run the module there; but no longer once the worker's own heartbeats say it does
 * not run it (never listed for {@link NEVER_LISTED_GRACE_MS}, or not for
 * {@link COLLECT_WINDOW_MS}): then it ends as a failure on the way (`in-transit`, delivered). No
 * backoff sleeps past `attempt.deadlineAt`; a re-send due at or after it ends `no-answer`.
 * {@link resendNow} aborts the call out to send it again at once.
 */
export async function sendExecute(
  attempt: Attempt,
  body: ExecuteModuleRequest,
  options: AttemptCallsOptions,
): Promise<CallsEnd> {
  const { registry, clients, timers, logger } = options;
  const clock = timers.clock;
  let failures = 0;
  let now = false;
  /**
   * Whether a call of this attempt may have reached the worker and run: one that failed on the
   * way. Not one refused 401/403: a refused call runs nothing.
   */
  let reached = false;
  /**
   * When the latest call that may have reached the worker went out (epoch ms): a heartbeat of
   * the worker's that says it does not run the execution must come after it (see `unlistedFor`).
   */
  let reachedSentAt = attempt.sentAt;
  /** Re-sends refused 429/503 since the latest run of closes began (see CLOSED_IN_A_ROW_LIMIT's reason). */
  let refusedAmongCloses = 0;
  /** Calls a gateway answered 502/504 since the latest run of closes began (the same). */
  let gatewayAmongCloses = 0;
  for (let send = 0; ; send++) {
    if (send > 0 && !now) {
      // Never past the call's deadline: the backoff sleeps at most until it (review R1, L1).
      if (clock.now() >= attempt.deadlineAt) return pastDeadline(attempt, reached);
      const delay = backoffDelay(failures - 1, RESEND_BACKOFF.initialMs, RESEND_BACKOFF.maxMs);
      const pause = new AbortController();
      attempt.pause = pause;
      const slept = await timers.sleep(Math.min(delay, attempt.deadlineAt - clock.now()), pause.signal);
      attempt.pause = undefined;
      if (!slept) return { kind: 'stopped' };
    }
    now = false;
    if (attempt.stopped || (send > 0 && attempt.state !== 'running')) return { kind: 'stopped' };
    if (send > 0 && clock.now() >= attempt.deadlineAt) return pastDeadline(attempt, reached);
    // Re-sends go where the worker is now: its endpoint and credential change when it registers again.
    const worker = send === 0 ? undefined : registry.snapshotOf(attempt.workerId);
    const endpoint = worker?.endpoint ?? attempt.endpoint;
    const credential =
      send === 0 ? attempt.credential : (registry.credentialOf(attempt.workerId) ?? attempt.credential);
    const call: ExecuteCall = { aborter: new CallAborter(), sentAt: clock.now(), resend: false };
    attempt.call = call;
    try {
      const answer = await clients.for(endpoint, credential).execution.execute({
        body,
        extraHeaders: ACCEPTS_OUTPUT_NONE,
        deadlineMs: Math.max(1, attempt.deadlineAt - call.sentAt),
        // Never read more than an answer with a result within the limit can take.
        maxResponseBytes: options.maxResponseBytes,
        aborter: call.aborter,
      });
      // Any status may come from the endpoint (judgeAnswer): not only those the contract lists.
      const status: number = answer.status;
      // A re-send refused (429/503: a gateway in front of the worker with no healthy upstream or
      // a rate limit, a worker full or draining): the refusal answers this call only. An earlier
      // call failed on the way and may have reached the worker, which may run the module: the
      // attempt is no refusal (re-queued, it would start a second run beside the first) but a
      // call still unanswered, sent again with backoff until an answer, the worker no longer
      // live (then judged as a failure on the way), or the call's deadline (no answer).
      // Not counted as a close, nor resetting closedInARow: alternating closes and refusals
      // still reach CLOSED_IN_A_ROW_LIMIT (review R1, L2).
      if ((status === 429 || status === 503) && reached) {
        const reason = `a re-send was answered ${status} after an earlier call failed on the way`;
        const over = handedOver(attempt, reason, options.live, clock.now(), reachedSentAt);
        if (over) return over;
        failures++;
        if (attempt.closedInARow > 0) refusedAmongCloses++;
        logger.info(
          { module: attempt.module.name, executionId: body.executionId, workerId: attempt.workerId, status },
          'execute re-send refused, and an earlier call may have reached the worker; sending it again to the same worker',
        );
        continue;
      }
      attempt.failingSince = undefined;
      // Refused for a credential the worker no longer holds: it registered again meanwhile (a
      // registration retry after a lost answer revokes the credential read here, and a worker
      // holds the calls that come before its registration completes). A 401 or 403 runs
      // nothing: sent again at once, with the credential it holds now (a second refusal, with
      // that credential unchanged, judges the worker as before).
      if ((status === 401 || status === 403) && attempt.state === 'running') {
        const current = registry.credentialOf(attempt.workerId);
        // Refused the credential it is to hold, which no request has used yet: the worker has
        // not read it (the answer of its registration again was lost, and it holds only an
        // earlier credential). Still registering, not broken: a refusal like a 503 (the module
        // goes to a worker again, no lost attempt, no quarantine), when no call of this attempt
        // may have run (else judged as before: the module may run there).
        if (current !== undefined && current === credential && !reached && !registry.credentialUsed(attempt.workerId)) {
          const message = `answered ${status} to a credential it has not read yet (it is registering again)`;
          return {
            kind: 'failure',
            verdict: { kind: 'rejected', status: status as 401 | 403, message },
            delivered: false,
          };
        }
        if (current !== undefined && current !== credential && options.live(attempt)) {
          logger.info(
            {
              module: attempt.module.name,
              executionId: body.executionId,
              workerId: attempt.workerId,
              status,
            },
            'execute call refused for a credential the worker registered again without; sending it again with its new one',
          );
          now = true;
          continue;
        }
      }
      // A stand-in client (tests) may answer without headers.
      const outputNone = (answer.headers as Headers | undefined)?.get(OUTPUT_HEADER) === OUTPUT_NONE;
      return { kind: 'answer', answer, outputNone, delivered: reached };
    } catch (error) {
      if (attempt.stopped) return { kind: 'stopped' };
      const delivered = reached;
      if (call.resend) {
        reached = true;
        reachedSentAt = call.sentAt;
        now = true;
        continue;
      }
      const gateway = gatewayStatus(error);
      if (gateway !== undefined) {
        // A gateway in front of the worker gave up on the call (502/504: its idle timeout ran
        // out on a long module, its upstream connection dropped) while the worker may run it:
        // the call is no answer, and the attempt no loss. Sent again, the same executionId (the
        // worker joins the execution it runs or answers the outcome it kept), never cancelled,
        // as a refused re-send is: while the worker is live and its heartbeats do not say it
        // runs nowhere (as Buildkite's and GitHub's runners keep a job whose connection dropped
        // while the agent still reports it; round N, N3).
        reached = true;
        reachedSentAt = call.sentAt;
        const reason = `a gateway answered ${gateway} in front of the worker, which may run it`;
        const over = handedOver(attempt, reason, options.live, clock.now(), reachedSentAt);
        if (over) return over;
        failures++;
        // As a refused re-send: not a close (something answered), nor the end of a run of closes
        // (a gateway answering for a worker whose port closes every connection would otherwise
        // keep the endpoint from ever counting as broken), but named in its reason (round P, R1 LOW).
        if (attempt.closedInARow > 0) gatewayAmongCloses++;
        logger.info(
          { module: attempt.module.name, executionId: body.executionId, workerId: attempt.workerId, status: gateway },
          'execute call answered by a gateway that gave up on it; sending it again to the same worker',
        );
        continue;
      }
      const verdict = judgeTransportError(error);
      if (verdict.kind !== 'in-transit' && verdict.kind !== 'refused') return { kind: 'failure', verdict, delivered };
      if (attempt.state !== 'running') return { kind: 'failure', verdict, delivered };
      attempt.failingSince ??= call.sentAt;
      const listed = listedSince(attempt, attempt.failingSince);
      // Refused: nothing listens, so the request reached no process, unless the process reports that it runs it.
      if (verdict.kind === 'refused' && !listed) return { kind: 'failure', verdict, delivered };
      if (!options.live(attempt)) return { kind: 'failure', verdict, delivered };
      attempt.closedInARow = verdict.kind === 'in-transit' && verdict.closed ? attempt.closedInARow + 1 : 0;
      if (attempt.closedInARow === 0) refusedAmongCloses = gatewayAmongCloses = 0;
      if (attempt.closedInARow >= CLOSED_IN_A_ROW_LIMIT && !listed) {
        // "In a row" only when nothing came between the closes: refusals (429/503) do not break
        // the run (review R1, L2), and the reason says they were there.
        const between = [
          ...(refusedAmongCloses > 0
            ? [`${refusedAmongCloses} re-send${refusedAmongCloses === 1 ? '' : 's'} refused 429/503`]
            : []),
          ...(gatewayAmongCloses > 0
            ? [`${gatewayAmongCloses} call${gatewayAmongCloses === 1 ? '' : 's'} answered 502/504 by a gateway`]
            : []),
        ];
        const how =
          between.length > 0
            ? `without an answer, with ${between.join(' and ')} between them`
            : 'in a row without an answer';
        const reason = `${verdict.reason} (the worker closed the connection ${attempt.closedInARow} times ${how})`;
        return { kind: 'failure', verdict: { kind: 'broken', reason }, delivered };
      }
      reached = true;
      reachedSentAt = call.sentAt;
      failures++;
      logger.info(
        {
          module: attempt.module.name,
          executionId: body.executionId,
          workerId: attempt.workerId,
          reason: verdict.reason,
        },
        'execute call failed on the way; sending it again to the same worker',
      );
    } finally {
      attempt.call = undefined;
    }
  }
}

/**
 * How long a collect of an abandoned attempt's kept outcome may take (ms): the worker answers a
 * finished execution at once, from what it kept; this is the answer's way (a result up to
 * `maxResultBytes` through a slow link).
 */
export const KEPT_OUTCOME_CALL_MS = 60_000;

/**
 * One execute call of `attempt`'s own request (`body`, its `attempt.body`: the same
 * `executionId`) to its worker, for the outcome it kept of an execution it finished (`PipelineRun.collectKept`): sent
 * to the worker's endpoint now, with the credential the attempt was dispatched with, within
 * {@link KEPT_OUTCOME_CALL_MS}; never sent again. Its answer (`delivered`: the attempt's calls
 * reached the worker), or a failure (the verdict of its transport error), or `stopped` when the
 * run stopped listening.
 */
export async function collectOutcome(
  attempt: Attempt,
  body: ExecuteModuleRequest,
  options: AttemptCallsOptions,
): Promise<CallsEnd> {
  const { registry, clients, timers } = options;
  const endpoint = registry.snapshotOf(attempt.workerId)?.endpoint ?? attempt.endpoint;
  const call: ExecuteCall = { aborter: new CallAborter(), sentAt: timers.clock.now(), resend: false };
  attempt.call = call;
  try {
    const answer = await clients.for(endpoint, attempt.credential).execution.execute({
      body,
      extraHeaders: ACCEPTS_OUTPUT_NONE,
      deadlineMs: KEPT_OUTCOME_CALL_MS,
      maxResponseBytes: options.maxResponseBytes,
      aborter: call.aborter,
    });
    const outputNone = (answer.headers as Headers | undefined)?.get(OUTPUT_HEADER) === OUTPUT_NONE;
    return { kind: 'answer', answer, outputNone, delivered: true };
  } catch (error) {
    if (attempt.stopped) return { kind: 'stopped' };
    const gateway = gatewayStatus(error);
    const verdict: AttemptVerdict =
      gateway === undefined
        ? judgeTransportError(error)
        : { kind: 'in-transit', reason: `a gateway answered ${gateway} in front of the worker`, closed: false };
    return { kind: 'failure', verdict, delivered: true };
  } finally {
    attempt.call = undefined;
  }
}

/**
 * Stops the attempt's execute calls for good (the run no longer listens for its answer): the
 * call out now is aborted, a re-send waiting for its turn is not made.
 */
export function stopCalls(attempt: Attempt): void {
  attempt.stopped = true;
  attempt.call?.aborter.abort();
  attempt.pause?.abort();
}

/**
 * Aborts the attempt's execute call out now and sends it again at once (same `executionId`, a
 * fresh connection): for an outcome the worker kept whose answer was lost. False when no call is out.
 */
export function resendNow(attempt: Attempt): boolean {
  const call = attempt.call;
  if (!call || call.resend) return false;
  call.resend = true;
  call.aborter.abort();
  return true;
}

/** The end of an attempt whose call's deadline has come: no answer, naming the deadline. */
function pastDeadline(attempt: Attempt, delivered: boolean): CallsEnd {
  const message = `no answer by the call's deadline (the module's timeout plus the margin, ${new Date(attempt.deadlineAt).toISOString()})`;
  return { kind: 'failure', verdict: { kind: 'no-answer', message }, delivered };
}

/**
 * The end of a call that may have reached the worker and was not answered by it (a re-send
 * refused 429/503, a gateway's 502/504), when it is not to be sent again: a call lost on the way
 * (`in-transit`, `reason`), once the attempt is no longer running or its worker not `live` (asked only of a running one), or
 * once the worker's own heartbeats say it does not run it ({@link unlistedFor}: never listed, or
 * not listed for COLLECT_WINDOW_MS, past which its kept outcome is gone and a re-send that got
 * through would run it again; review R1, M1). Handed over so, it is cancelled and ends on
 * evidence (its cancel acknowledged, two of its worker's heartbeats that do not list it) before
 * the module runs again. Else undefined: the caller sends the same executionId again.
 */
function handedOver(
  attempt: Attempt,
  reason: string,
  live: (attempt: Attempt) => boolean,
  now: number,
  reachedSentAt: number,
): CallsEnd | undefined {
  if (attempt.state !== 'running' || !live(attempt)) {
    return { kind: 'failure', verdict: { kind: 'in-transit', reason, closed: false }, delivered: true };
  }
  const unlisted = unlistedFor(attempt, now, reachedSentAt);
  if (unlisted === undefined) return undefined;
  const why = `${reason}, and its worker's heartbeats have not listed it for ${unlisted}`;
  return { kind: 'failure', verdict: { kind: 'in-transit', reason: why, closed: false }, delivered: true };
}

/**
 * How long (a phrase) the attempt's worker's heartbeats have not listed it, when that says the
 * worker does not run it: none ever did, its first call went out {@link NEVER_LISTED_GRACE_MS}
 * or more before `now`, and one of the worker's own heartbeats received after `reachedSentAt`
 * (epoch ms: when the latest call that may have reached it went out) listed it in neither
 * `executions` nor `finished` (time alone is no evidence: with 30 s heartbeats the grace is over
 * before any could list it; review N3, 2); or the last did more than {@link COLLECT_WINDOW_MS}
 * before. Else undefined.
 */
function unlistedFor(attempt: Attempt, now: number, reachedSentAt: number): string | undefined {
  const { listedAt, unlistedBeatAt } = attempt.sightings;
  if (listedAt === undefined) {
    const evidence = unlistedBeatAt !== undefined && unlistedBeatAt > reachedSentAt;
    return evidence && now - attempt.sentAt >= NEVER_LISTED_GRACE_MS
      ? `${now - attempt.sentAt} ms (never listed)`
      : undefined;
  }
  return now - listedAt > COLLECT_WINDOW_MS ? `${now - listedAt} ms since it was last listed` : undefined;
}

/**
 * The status of a gateway's answer that says it gave up on the call, not that the worker
 * refused it: 502 Bad Gateway or 504 Gateway Timeout, statuses the worker's contract never
 * answers (the client rejects them with ts-rest's `UnknownStatusError`). Else undefined.
 */
function gatewayStatus(error: unknown): 502 | 504 | undefined {
  if (!(error instanceof UnknownStatusError)) return undefined;
  const status = (error.response as { status?: unknown } | undefined)?.status;
  return status === 502 || status === 504 ? status : undefined;
}

/** Whether a heartbeat of the attempt's worker listed it at `since` (epoch ms) or later. */
export function listedSince(attempt: Attempt, since: number): boolean {
  const listedAt = attempt.sightings.listedAt;
  return listedAt !== undefined && listedAt >= since;
}
