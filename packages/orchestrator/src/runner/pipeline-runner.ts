import { randomBytes } from 'node:crypto';
import { type ExecuteModuleRequest, formatTimeSpan, parseTimeSpan, type WorkerNode } from '@mpd/contract';
import { backoffDelay } from '@mpd/server-kit';
import type { Logger } from 'pino';
import {
  type Attempt,
  type AttemptVerdict,
  type ExecuteAnswer,
  type ExecutionTimes,
  judgeAnswer,
  judgeTransportError,
  lateOutcome,
  type ModuleError,
} from './attempt.js';
import { chainHeights } from './chain-heights.js';
import { ConcurrencyRules } from './concurrency.js';
import { createModuleStates, FAILED, type ModuleState, type Phase } from './module-state.js';
import { ReadyQueue } from './ready-queue.js';
import { categoryFilterReason, dependencyResults, dependencyVerdict } from './readiness.js';
import { noCapableWorkerReason } from './requirement-messages.js';
import { type ResolvedRunOptions, resolveRunOptions, type RunPipelineOptions } from './run-options.js';
import { RunReporter } from './run-report.js';
import { type AttemptRecord, type ModuleStatus, type RunResult, SUCCEEDED } from './run-result.js';
import { WorkerClients } from './worker-clients.js';
import { WorkerLoads } from './worker-loads.js';
import { WorkerPool } from './worker-pool.js';

/** A worker that refused work (429/503) gets none for this long (ms). */
const REJECTED_COOL_DOWN_MS = 1_000;

/** Where a run is. */
type RunState =
  /** Starting modules as they become ready. */
  | { readonly kind: 'running' }
  /**
   * A module failed under `StopOnFirstFailure` (`reason` says which): no module starts but
   * always-run ones, running ones are cancelled on their workers, and the run ends once the
   * always-run modules did. It may still be cancelled.
   */
  | { readonly kind: 'stopping'; readonly reason: string }
  /** The caller's signal aborted: as `stopping`, and the run ends `Cancelled`. */
  | { readonly kind: 'cancelling' }
  /** Every module ended and the result is out: nothing happens any more. */
  | { readonly kind: 'ended' };

/**
 * Runs a pipeline on the registered workers, with no stage barrier: a module is dispatched
 * the moment its dependencies ended and a worker that can run it (same pipeline fingerprint,
 * its requirements) has a free slot, in priority order, within the cluster-wide concurrency
 * rules. Every dispatch is an attempt with its own `executionId`; an attempt whose worker is
 * lost is dispatched again elsewhere, a failed one is retried per the module's policy, and a
 * module's result is accepted exactly once.
 * @throws OrchestratorConfigError (the promise rejects) when an option has a value that cannot work.
 */
export async function runPipeline(options: RunPipelineOptions): Promise<RunResult> {
  return new PipelineRun(resolveRunOptions(options)).start();
}

/** One run of a pipeline: the lifecycle of its modules and attempts. */
class PipelineRun {
  private readonly runId = `run-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  private readonly modules: ReadonlyMap<string, ModuleState>;
  private readonly ready = new ReadyQueue();
  private doneCount = 0;
  /** Attempts whose execute call is out: running ones, and lost ones still listened to for a late answer. */
  private readonly attempts = new Map<string, Attempt>();
  private readonly loads = new WorkerLoads();
  /** The live workers, least loaded first. */
  private readonly pool: WorkerPool;
  private readonly clients: WorkerClients;
  private readonly reporter: RunReporter;
  private readonly startedAt = new Date();
  private readonly rules: ConcurrencyRules;
  private readonly log: Logger;
  /** Environment of every module: the plain variables and the secret ones. */
  private readonly environment: Record<string, string>;
  private readonly secretNames: string[];
  private state: RunState = { kind: 'running' };
  private finish!: (result: RunResult) => void;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private pumpQueued = false;
  /** Requirement keys whose capable workers all turned out full during this walk of the ready queue. */
  private readonly full = new Set<string>();
  private readonly onAbort = (): void => this.stop('cancel', 'the run was cancelled');

  constructor(private readonly options: ResolvedRunOptions) {
    const { pipeline } = options;
    this.log = options.logger.child({ runId: this.runId, pipeline: pipeline.name });
    const secrets = options.secretEnvironmentVariables;
    this.environment = { ...options.environmentVariables, ...secrets };
    this.secretNames = Object.keys(secrets);
    this.reporter = new RunReporter(options.onEvent, secrets);
    this.rules = new ConcurrencyRules(options.maxParallelism);
    this.pool = new WorkerPool(options.registry, pipeline.fingerprint, this.loads);
    this.clients = new WorkerClients(options.createClient);
    this.modules = createModuleStates(pipeline, chainHeights(pipeline, options.durationHints));
  }

  start(): Promise<RunResult> {
    const done = new Promise<RunResult>((resolve) => (this.finish = resolve));
    const { signal, registry } = this.options;
    this.unsubscribe = registry.onChange((event) => {
      // A heartbeat of a worker the pool has changes nothing the scheduler uses.
      if (event.type !== 'heartbeat' || !this.pool.has(event.workerId)) this.pool.invalidate();
      if (event.type === 'offline') this.workerLost(event.workerId, 'missed heartbeats past the timeout');
      if (event.type === 'replaced') this.workerLost(event.workerId, 'was replaced by a new process under its id');
      this.schedulePump();
    });
    this.timer = setInterval(() => {
      // Also catches what raises no event at once: drained workers, heartbeats overdue but not swept yet.
      this.pool.invalidate();
      this.pump();
    }, this.options.rescheduleIntervalMs);
    this.log.info({ modules: this.modules.size }, 'run started');

    for (const state of this.modules.values()) {
      const filtered = categoryFilterReason(state.definition.category, this.options);
      if (filtered) this.notRun(state, 'Skipped', filtered);
    }
    for (const state of this.modules.values())
      if (state.phase === 'waiting' && state.pending.size === 0) this.decide(state);

    if (signal?.aborted) this.onAbort();
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.pump();
    return done;
  }

  /** Whether the run stopped starting modules (a failure under StopOnFirstFailure, or a cancel). */
  private get stopping(): boolean {
    return this.state.kind === 'stopping' || this.state.kind === 'cancelling';
  }

  // --- Deciding what may run -------------------------------------------------------------

  /** All dependencies ended: run it, skip it, or report it as not run. */
  private decide(state: ModuleState): void {
    const definition = state.definition;
    if (this.stopping && !definition.alwaysRun) {
      this.notRun(state, 'PipelineTerminated', this.stoppedReason(state));
      return;
    }
    const blocked = dependencyVerdict(state, this.options.pipeline, this.modules);
    if (blocked) {
      this.notRun(state, blocked.status, blocked.reason);
      return;
    }
    if (!definition.skipIf) {
      this.makeReady(state);
      return;
    }
    this.setPhase(state, 'deciding');
    Promise.resolve()
      .then(() =>
        definition.skipIf!({
          name: state.name,
          params: definition.params,
          results: this.resultsFor(state),
          env: { ...this.environment },
        } as never),
      )
      .then(
        (reason) => {
          if (state.phase !== 'deciding') return;
          if (typeof reason === 'string' && reason !== '') this.notRun(state, 'Skipped', reason);
          else this.makeReady(state);
        },
        (error: unknown) => {
          if (state.phase !== 'deciding') return;
          this.complete(state, 'Failed', {
            error: { message: `skipIf threw: ${(error as Error)?.message ?? String(error)}`, type: 'SkipIfError' },
          });
        },
      )
      .finally(() => this.schedulePump());
  }

  private makeReady(state: ModuleState): void {
    this.setPhase(state, 'ready');
    this.schedulePump();
  }

  /** Moves a module to `phase`, keeping the ready queue and the count of ended modules. */
  private setPhase(state: ModuleState, phase: Phase): void {
    const previous = state.phase;
    if (previous === phase) return;
    state.phase = phase;
    if (previous === 'ready') this.ready.leave(state);
    if (previous === 'done') this.doneCount--;
    if (phase === 'done') this.doneCount++;
    if (phase === 'ready') this.ready.enter(state);
  }

  /** Results of a module's dependencies that succeeded, parsed. */
  private resultsFor(state: ModuleState): Record<string, unknown> {
    const serialized = dependencyResults(state, this.options.pipeline, this.modules);
    return Object.fromEntries(Object.entries(serialized).map(([name, text]) => [name, JSON.parse(text)]));
  }

  // --- Dispatching -------------------------------------------------------------------------

  /** Pumps once the current task is done (however many times it is asked for meanwhile). */
  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Dispatches every ready module that a worker can take now, highest priority first. */
  private pump(): void {
    if (this.ready.walking || this.state.kind === 'ended') return;
    this.ready.walk(() => {
      if (this.ready.length > 0) this.dispatchReady();
    });
    this.checkDone();
  }

  /**
   * Walks the ready queue in order. Placement is worked out once per set of requirements, and
   * the walk stops as soon as no worker has a free slot, unless a module that no live worker
   * can run needs its wait checked: each dispatch costs about the same however many modules
   * wait.
   */
  private dispatchReady(): void {
    const now = Date.now();
    this.pool.sync(now);
    this.full.clear();
    let index = 0;
    for (let state = this.ready.at(index); state; state = this.ready.at(index)) {
      if (!this.pool.hasFreeSlot && !this.mustCheckWaits()) break;
      const outcome = this.consider(state, now);
      // A module that runs alone waits for the others to finish: start nothing past it.
      if (outcome === 'stop') break;
      // Dispatching (or ending) it took it out of the queue: the next one is at the same index.
      if (this.ready.at(index) === state) index++;
    }
  }

  /** Whether the walk must go on with no free slot left: a ready module may have no capable worker. */
  private mustCheckWaits(): boolean {
    if (this.ready.hasUnplaceable) return true;
    for (const [key, requires] of this.ready.requirements())
      if (this.pool.capable(key, requires).length === 0) return true;
    return false;
  }

  /** Dispatches one ready module if it may start and a worker can take it. */
  private consider(state: ModuleState, now: number): 'dispatched' | 'stop' | undefined {
    if (state.notBefore > now) return undefined;
    if (this.rules.blocker(state.definition)) return state.definition.notInParallel === 'all' ? 'stop' : undefined;
    const capable = this.pool.capable(state.requiresKey, state.definition.requires);
    if (capable.length === 0) {
      this.waitForCapableWorker(state, this.pool.live, now);
      return undefined;
    }
    this.ready.placeable(state);
    if (this.full.has(state.requiresKey)) return undefined;
    const worker = this.pool.pick(state, capable, now);
    if (worker) {
      this.dispatch(state, worker);
      return 'dispatched';
    }
    // No capable worker has a free slot: the same holds for every module with these requirements.
    if (state.lostOn.size === 0) this.full.add(state.requiresKey);
    return undefined;
  }

  /** Fails a module that no live worker could run for `workerWaitMs`, naming what is missing. */
  private waitForCapableWorker(state: ModuleState, live: readonly WorkerNode[], now: number): void {
    const since = this.ready.unplaceable(state, now);
    const limit = this.options.workerWaitMs;
    if (now - since < limit) return;
    const why = noCapableWorkerReason(this.options.pipeline, state.definition.requires, live);
    this.complete(state, 'Failed', {
      error: {
        message: `Module '${state.name}' could not be dispatched after waiting ${formatTimeSpan(limit)}: ${why}`,
        type: 'NoCapableWorker',
      },
    });
  }

  private dispatch(state: ModuleState, worker: WorkerNode): void {
    const { pipeline } = this.options;
    const number = state.result.attempts.length + 1;
    const executionId = `${this.runId}.${state.name}.${number}`;
    const now = new Date().toISOString();
    const record: AttemptRecord = { executionId, workerId: worker.id, startTime: now, outcome: 'Running' };
    state.result.attempts.push(record);
    this.setPhase(state, 'running');
    state.result.status = 'Processing';
    state.result.workerId = worker.id;
    const attempt: Attempt = {
      module: state,
      workerId: worker.id,
      endpoint: worker.endpoint,
      credential: this.options.registry.credentialOf(worker.id),
      record,
      controller: new AbortController(),
      state: 'running',
    };
    this.attempts.set(executionId, attempt);
    this.loads.started(worker.id);
    this.rules.started(state.definition);
    this.pool.update(worker.id, Date.now());

    // debug: 'module finished' (info) names the worker, and the progress output shows each start.
    this.log.debug({ module: state.name, workerId: worker.id, executionId }, 'module dispatched');
    this.reporter.emit({
      type: 'module-started',
      module: state.name,
      workerId: worker.id,
      executionId,
      attempt: number,
    });

    void this.execute(attempt, {
      executionId,
      moduleTypeName: state.name,
      serializedModule: state.serializedParams,
      dependencyResults: dependencyResults(state, pipeline, this.modules),
      environmentVariables: this.environment,
      ...(this.secretNames.length > 0 ? { secretEnvironmentVariables: this.secretNames } : {}),
      ...(this.options.workingDirectory ? { workingDirectory: this.options.workingDirectory } : {}),
      timeout: state.timeout,
      timestamp: now,
    });
  }

  /** Sends the execute call of an attempt and acts on its answer (a method, not closures per attempt). */
  private async execute(attempt: Attempt, body: ExecuteModuleRequest): Promise<void> {
    try {
      let answer: ExecuteAnswer;
      try {
        answer = await this.clients.for(attempt.endpoint, attempt.credential).execution.execute({
          body,
          deadlineMs: attempt.module.timeoutMs + this.options.timeoutMarginMs,
          fetchOptions: { signal: attempt.controller.signal },
        });
      } catch (error) {
        // A lost attempt's call failing tells nothing new.
        if (attempt.state === 'running') this.act(attempt, judgeTransportError(error));
        return;
      }
      if (attempt.state === 'running') this.act(attempt, judgeAnswer(answer));
      else if (attempt.state === 'lost') this.lateAnswer(attempt, answer);
    } catch (error) {
      this.log.error({ err: error, executionId: body.executionId }, 'handling an execute answer failed');
      // Never leave the module waiting for an attempt nobody listens to any more.
      if (attempt.state === 'running')
        this.act(attempt, { kind: 'lost', reason: `handling its answer failed: ${String(error)}` });
      this.schedulePump();
    } finally {
      this.attempts.delete(body.executionId);
    }
  }

  // --- Answers -----------------------------------------------------------------------------

  /** Acts on the verdict on a running attempt. */
  private act(attempt: Attempt, verdict: AttemptVerdict): void {
    const { module: state, record, workerId } = attempt;
    switch (verdict.kind) {
      case 'succeeded': {
        this.settle(attempt, 'settled');
        record.outcome = 'Succeeded';
        state.serializedResult = verdict.serializedResult;
        let result: unknown;
        try {
          result = JSON.parse(verdict.serializedResult);
        } catch {
          result = verdict.serializedResult;
        }
        this.complete(state, 'Successful', { workerId, times: verdict.times, result });
        return;
      }
      case 'rejected':
        this.settle(attempt, 'settled');
        record.outcome = 'Rejected';
        record.error = verdict.message;
        this.loads.coolDown(workerId, Date.now() + REJECTED_COOL_DOWN_MS);
        this.pool.update(workerId, Date.now());
        this.requeue(state);
        return;
      case 'failed':
      case 'timed-out':
      case 'cancelled': {
        this.settle(attempt, 'settled');
        const { error, times } = verdict;
        record.outcome =
          verdict.kind === 'cancelled' ? 'Cancelled' : verdict.kind === 'timed-out' ? 'TimedOut' : 'Failed';
        record.error = error.message;
        if (verdict.kind === 'cancelled' && this.stopping) {
          this.complete(state, 'PipelineTerminated', {
            workerId,
            times,
            error,
            reason: this.stoppedReason(state, true),
          });
        } else {
          this.failed(state, verdict.kind === 'timed-out' ? 'TimedOut' : 'Failed', { workerId, times, error });
        }
        return;
      }
      case 'dispatch-rejected':
        this.settle(attempt, 'settled');
        record.outcome = 'Failed';
        record.error = verdict.message;
        this.failed(state, 'Failed', {
          workerId,
          error: {
            message: `Worker ${workerId} refused the module (${verdict.status}): ${verdict.message}`,
            type: 'DispatchRejected',
          },
        });
        return;
      case 'no-answer':
        // The worker did not answer within the module's timeout plus the margin: enforce it here.
        this.settle(attempt, 'settled');
        record.outcome = 'TimedOut';
        record.error = verdict.message;
        this.cancelOnWorker(attempt, 'the orchestrator gave up waiting for the answer');
        this.failed(state, 'TimedOut', {
          workerId,
          error: {
            message: `Module '${state.name}' did not answer within its timeout of ${formatTimeSpan(state.timeoutMs)} plus the margin`,
            type: 'OrchestratorTimeout',
          },
        });
        return;
      case 'lost':
        this.lost(attempt, verdict.reason);
    }
  }

  /** A late answer of an attempt already declared lost: recorded, never accepted. */
  private lateAnswer(attempt: Attempt, answer: ExecuteAnswer): void {
    const outcome = lateOutcome(answer);
    if (outcome) attempt.record.lateAnswer = { outcome, at: new Date().toISOString() };
    this.log.warn(
      { executionId: attempt.record.executionId, status: answer.status },
      'late answer of a lost attempt ignored',
    );
  }

  /** The attempt no longer runs (`settled`), or is no longer waited for (`lost`): its slot is free. */
  private settle(attempt: Attempt, state: 'settled' | 'lost'): void {
    if (attempt.state === 'running') {
      // A slot is free: whatever else this answer changes, the ready modules get another look.
      this.loads.ended(attempt.workerId);
      this.rules.ended(attempt.module.definition);
      this.pool.update(attempt.workerId, Date.now());
      this.schedulePump();
    }
    attempt.state = state;
    attempt.record.endTime = new Date().toISOString();
  }

  /** Declares every running attempt on `workerId` lost. */
  private workerLost(workerId: string, reason: string): void {
    for (const attempt of [...this.attempts.values()]) {
      if (attempt.workerId === workerId && attempt.state === 'running') {
        this.lost(attempt, `worker ${workerId} ${reason}`);
        // If the worker is only frozen or cut off, stop the abandoned attempt when it hears us.
        this.cancelOnWorker(attempt, 'attempt declared lost: the worker missed its heartbeats');
      }
    }
  }

  /** The attempt's worker is gone: dispatch the module again elsewhere, up to the limit. */
  private lost(attempt: Attempt, reason: string): void {
    const { module: state, record, workerId } = attempt;
    // Its call stays listened to: a late answer is recorded on the attempt (see lateAnswer).
    this.settle(attempt, 'lost');
    record.outcome = 'Lost';
    record.error = reason;
    state.lost++;
    state.lostOn.add(workerId);
    this.log.warn({ module: state.name, workerId, executionId: record.executionId, reason }, 'attempt lost');
    this.reporter.emit({ type: 'attempt-lost', module: state.name, workerId, executionId: record.executionId, reason });
    if (state.lost > this.options.maxLostAttempts) {
      this.failed(state, 'Failed', {
        workerId,
        error: {
          message: `Module '${state.name}' was lost with its worker ${state.lost} times (${[...state.lostOn].join(', ')}); last: ${reason}`,
          type: 'WorkerLost',
        },
        final: true,
      });
      return;
    }
    this.requeue(state, true);
  }

  /**
   * Dispatches the module again (unless the run is stopping and it is not an always-run module).
   * @param wasRunning its attempt ran until now (it was lost), rather than being refused
   */
  private requeue(state: ModuleState, wasRunning = false): void {
    if (this.stopping && !state.definition.alwaysRun) {
      this.notRun(state, 'PipelineTerminated', this.stoppedReason(state, wasRunning));
      return;
    }
    state.result.status = 'NotYetStarted';
    this.makeReady(state);
  }

  /** A failed attempt: retry it per the module's policy, or end the module. */
  private failed(
    state: ModuleState,
    status: 'Failed' | 'TimedOut',
    details: { workerId?: string; times?: ExecutionTimes; error: ModuleError; final?: boolean },
  ): void {
    state.failures++;
    if (!details.final && state.failures <= state.retry.attempts && !this.stopping) {
      const delayMs = backoffDelay(state.failures - 1, state.retry.backoffMs, state.retry.maxBackoffMs);
      state.notBefore = Date.now() + delayMs;
      this.log.info({ module: state.name, failures: state.failures, delayMs }, 'module failed; retrying');
      this.reporter.emit({
        type: 'module-retrying',
        module: state.name,
        failures: state.failures,
        delayMs,
        error: details.error.message,
      });
      this.requeue(state);
      setTimeout(() => this.pump(), delayMs + 1).unref();
      return;
    }
    this.complete(state, state.definition.ignoreFailures ? 'IgnoredFailure' : status, details);
  }

  // --- Ending modules and the run ------------------------------------------------------------

  private complete(
    state: ModuleState,
    status: ModuleStatus,
    details: { workerId?: string; times?: ExecutionTimes; result?: unknown; error?: ModuleError; reason?: string },
  ): void {
    if (state.phase === 'done') return;
    this.setPhase(state, 'done');
    const result = state.result;
    result.status = status;
    if (details.workerId) result.workerId = details.workerId;
    if (details.times) {
      const { startTime, endTime, duration } = details.times;
      result.startTime = startTime;
      result.endTime = endTime;
      result.durationMs = parseTimeSpan(duration) ?? Date.parse(endTime) - Date.parse(startTime);
    }
    if (status === 'Successful') result.result = details.result;
    if (details.error) result.error = details.error;
    if (details.reason) result.reason = details.reason;
    this.log.info(
      { module: state.name, status, workerId: result.workerId, durationMs: result.durationMs },
      'module finished',
    );
    this.reporter.emit({ type: 'module-finished', module: state.name, result });
    this.afterEnd(state);
    if (FAILED.has(status) && this.options.failureMode === 'StopOnFirstFailure') {
      this.stop('failure', `module '${state.name}' ${status === 'TimedOut' ? 'timed out' : 'failed'}`);
    }
  }

  /** Reports a module that will not run, with why. */
  private notRun(
    state: ModuleState,
    status: 'Skipped' | 'DependencyFailed' | 'PipelineTerminated',
    reason: string,
  ): void {
    if (state.phase === 'done') return;
    this.setPhase(state, 'done');
    state.result.status = status;
    state.result.reason = reason;
    this.reporter.emit({ type: 'module-not-run', module: state.name, status, reason });
    this.afterEnd(state);
  }

  /** A module ended: its dependants may now be decided. */
  private afterEnd(state: ModuleState): void {
    for (const dependant of this.options.pipeline.dependants.get(state.name) ?? []) {
      const other = this.modules.get(dependant)!;
      other.pending.delete(state.name);
      if (other.phase !== 'waiting') continue;
      const required = other.required.has(state.name);
      // A failure makes non-always-run dependants DependencyFailed at once, without waiting for their other dependencies.
      if (
        required &&
        !other.definition.alwaysRun &&
        !SUCCEEDED.has(state.result.status) &&
        state.result.status !== 'Skipped'
      ) {
        this.notRun(other, 'DependencyFailed', `dependency '${state.name}' ended ${state.result.status}`);
      } else if (other.pending.size === 0) {
        this.decide(other);
      }
    }
    this.schedulePump();
  }

  /** Stops starting modules: cancels running ones (but always-run modules), then lets always-run modules run. */
  private stop(kind: 'failure' | 'cancel', reason: string): void {
    const current = this.state.kind;
    if (current === 'ended' || current === 'cancelling' || (current === 'stopping' && kind === 'failure')) return;
    this.state = kind === 'cancel' ? { kind: 'cancelling' } : { kind: 'stopping', reason };
    this.log.warn({ reason }, 'run stopping');
    this.reporter.emit({ type: 'run-stopping', reason });
    for (const state of this.modules.values()) {
      if (state.definition.alwaysRun) continue;
      if (state.phase === 'ready' || state.phase === 'deciding')
        this.notRun(state, 'PipelineTerminated', this.stoppedReason(state));
    }
    for (const attempt of this.attempts.values()) {
      if (attempt.state === 'running' && !attempt.module.definition.alwaysRun)
        this.cancelOnWorker(attempt, `Pipeline stopping: ${reason}`);
    }
    // Modules still waiting for dependencies end as those do (always-run ones then run).
    for (const state of this.modules.values()) {
      if (state.phase === 'waiting' && !state.definition.alwaysRun)
        this.notRun(state, 'PipelineTerminated', this.stoppedReason(state));
    }
    this.schedulePump();
  }

  /**
   * Why a module ends `PipelineTerminated` once the run is stopping or cancelling: `cancelled
   * while running: …` when it was running then, `not run again: …` when it had attempts before
   * (it was waiting for a retry, or a worker refused it), `not run: …` when it never started.
   */
  private stoppedReason(state: ModuleState, wasRunning = false): string {
    const why = `the run ${this.state.kind === 'stopping' ? `stopped because ${this.state.reason}` : 'was cancelled'}`;
    if (wasRunning) return `cancelled while running: ${why}`;
    return `${state.result.attempts.length > 0 ? 'not run again' : 'not run'}: ${why}`;
  }

  /** Sends the spec's cancel call for an attempt; if the worker cannot be reached, stops waiting for it. */
  private cancelOnWorker(attempt: Attempt, reason: string): void {
    this.options.registry.requestCancel(attempt.workerId, attempt.record.executionId, reason); // also on heartbeat answers
    this.clients
      .for(attempt.endpoint, attempt.credential)
      .execution.cancel({
        body: { executionId: attempt.record.executionId, reason, timestamp: new Date().toISOString() },
      })
      .catch(() => attempt.controller.abort());
  }

  private checkDone(): void {
    if (this.state.kind === 'ended' || this.doneCount < this.modules.size) return;
    this.end();
  }

  private end(): void {
    const cancelled = this.state.kind === 'cancelling';
    this.state = { kind: 'ended' };
    clearInterval(this.timer);
    this.unsubscribe?.();
    this.options.signal?.removeEventListener('abort', this.onAbort);
    for (const attempt of this.attempts.values()) attempt.controller.abort(); // stop waiting for late answers
    void this.clients.closeAll();
    const result = this.reporter.result({
      runId: this.runId,
      pipeline: this.options.pipeline.name,
      startedAt: this.startedAt,
      endedAt: new Date(),
      modules: [...this.modules.values()].map((state) => state.result),
      cancelled,
    });
    this.log.info({ status: result.status, durationMs: result.durationMs }, 'run ended');
    this.finish(result);
  }
}
