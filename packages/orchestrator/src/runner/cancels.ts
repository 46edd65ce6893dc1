import { backoffDelay } from '@mpd/server-kit';
import type { Logger } from 'pino';
import type { NodeRegistry } from '../registry/node-registry.js';
import type { Attempt, AttemptEnd } from './attempt.js';
import type { RunTimers } from './run-clock.js';
import type { WorkerClients } from './worker-clients.js';

/** The fields of a cancel's 404 body the desk reads, unchecked (any server may have answered). */
interface CancelNotFoundFields {
  code?: unknown;
  finished?: unknown;
  keptForMs?: unknown;
}

/** Delays between cancel calls of one attempt (ms): as the re-sends of an execute call. */
export const CANCEL_BACKOFF = { initialMs: 250, maxMs: 5_000 } as const;

/** How long one cancel call may wait for its answer (ms): a worker answers a cancel at once. */
export const CANCEL_CALL_TIMEOUT_MS = 10_000;

/** Ends after which an abandoned attempt needs no cancel: it runs nowhere, or no process could hear one. */
export const SETTLED: ReadonlySet<AttemptEnd> = new Set([
  'answered',
  'not-delivered',
  'worker-gone',
  'lease-ended',
  'cancel-acknowledged',
  'not-listed',
]);

/** What a {@link CancelDesk} works with. */
export interface CancelDeskOptions {
  registry: NodeRegistry;
  clients: WorkerClients;
  timers: RunTimers;
  logger: Logger;
  /**
   * The worker acknowledged the attempt's cancel with a 404 `ExecutionNotFound` without
   * `finished`: it does not run it, and keeps the cancel as a tombstone (an older worker's every
   * 404). Called once, or one of {@link CancelDeskOptions.onStopping} and
   * {@link CancelDeskOptions.onFinished}.
   */
  onAcknowledged: (attempt: Attempt) => void;
  /**
   * The worker answered the attempt's cancel 200: it runs the execution and is stopping it. Not
   * "it runs nowhere" yet: a module host's process group may run on for the worker's kill grace
   * (SIGTERM, then SIGKILL), and an outcome settling when the cancel came may still be the
   * module's (round R, R6). Called once; the desk sends no more cancel calls for it.
   */
  onStopping: (attempt: Attempt) => void;
  /**
   * The worker answered the attempt's cancel 404 `ExecutionNotFound` with `finished: true`: it
   * ran the attempt and it finished there, its outcome kept for the same request sent again
   * (the contract's `cancelNotFoundSchema`; round R, R1). Not "it runs nowhere" yet: the outcome,
   * perhaps the module's success, is to be collected first. Called once, instead of
   * {@link CancelDeskOptions.onAcknowledged}; the desk sends no more cancel calls for it.
   * `keptForMs`: how much longer the worker keeps the outcome (ms, from the answer's arrival;
   * undefined from a worker that does not say; review S, 3).
   */
  onFinished: (attempt: Attempt, keptForMs: number | undefined) => void;
  /** A cancel call of the attempt got no answer (the worker unreachable for now); the desk tries again. */
  onUnanswered: (attempt: Attempt) => void;
}

/**
 * Where the run asks for an attempt to be cancelled on its worker: the spec's cancel call,
 * retried with backoff ({@link CANCEL_BACKOFF}) until the worker acknowledges it, so that an
 * abandoned attempt cannot run on beside the one that replaced it because one call was lost:
 * until it says it does not run it (`onAcknowledged`), that it is stopping it (`onStopping`: the
 * run waits until it has stopped), or that the attempt finished there, its outcome kept
 * (`onFinished`: the run collects it before the module may run again). It stops when the
 * attempt cannot be running any more (answered, never delivered, its worker unregistered or
 * replaced, its heartbeats stopped listing it), when the worker's id is no longer registered,
 * and when the run ends. An `Offline` worker is still called: it may only be cut off, and hears
 * the cancel when the network heals. Each call goes to the worker's current endpoint and
 * credential (a worker that registered again has a new one).
 */
export class CancelDesk {
  /** The attempts whose cancel is being sent, by executionId, with the reason given. */
  readonly #pending = new Map<string, string>();

  constructor(private readonly options: CancelDeskOptions) {}

  /**
   * Cancels `attempt` on its worker: the one place a run asks for a cancel. Asking again for the
   * same attempt while its cancel is under way does nothing.
   */
  request(attempt: Attempt, reason: string): void {
    const executionId = attempt.record.executionId;
    if (this.#pending.has(executionId) || this.#needless(attempt)) return;
    this.#pending.set(executionId, reason);
    // The cancel also travels on the worker's heartbeat answers (its `cancel` list), which reach a
    // worker whose API port is cut while its heartbeats flow, and outlive the run.
    this.options.registry.requestCancel(attempt.workerId, executionId, reason);
    void this.#send(attempt, reason).finally(() => this.#pending.delete(executionId));
  }

  /** Whether the attempt's cancel is being sent (not yet acknowledged, and not given up). */
  pending(attempt: Attempt): boolean {
    return this.#pending.has(attempt.record.executionId);
  }

  #needless(attempt: Attempt): boolean {
    return attempt.ended !== undefined && SETTLED.has(attempt.ended);
  }

  async #send(attempt: Attempt, reason: string): Promise<void> {
    const { registry, clients, timers, logger } = this.options;
    const { workerId, record } = attempt;
    for (let call = 0; ; call++) {
      if (call > 0) {
        const delay = backoffDelay(call - 1, CANCEL_BACKOFF.initialMs, CANCEL_BACKOFF.maxMs);
        if (!(await timers.sleep(delay))) return;
      }
      if (this.#needless(attempt) || timers.signal.aborted) return;
      const worker = registry.snapshotOf(workerId);
      if (!worker) return; // unregistered: no process of this id is left to hear it
      try {
        const answer = await clients.for(worker.endpoint, registry.credentialOf(workerId)).execution.cancel({
          body: { executionId: record.executionId, reason, timestamp: new Date(timers.clock.now()).toISOString() },
          deadlineMs: CANCEL_CALL_TIMEOUT_MS,
          fetchOptions: { signal: timers.signal },
        });
        // The worker's 404 (`cancelNotFoundSchema`), read once; a gateway's 404 page is not one.
        const body = answer.status === 404 ? (answer.body as CancelNotFoundFields | null) : null;
        const notFound = body?.code === 'ExecutionNotFound';
        if (notFound && body.finished === true) {
          logger.info(
            { executionId: record.executionId, workerId, status: answer.status },
            'cancel answered: it finished there, its outcome kept',
          );
          this.options.onFinished(attempt, typeof body.keptForMs === 'number' ? body.keptForMs : undefined);
          return;
        }
        if (answer.status === 200) {
          logger.debug(
            { executionId: record.executionId, workerId, status: answer.status },
            'cancel accepted: stopping',
          );
          this.options.onStopping(attempt);
          return;
        }
        if (notFound) {
          logger.debug({ executionId: record.executionId, workerId, status: answer.status }, 'cancel acknowledged');
          this.options.onAcknowledged(attempt);
          return;
        }
        logger.warn({ executionId: record.executionId, workerId, status: answer.status }, 'cancel refused; retrying');
      } catch (error) {
        if (timers.signal.aborted) return;
        if (call === 0)
          logger.warn({ executionId: record.executionId, workerId, err: String(error) }, 'cancel unanswered; retrying');
        this.options.onUnanswered(attempt);
      }
    }
  }
}
