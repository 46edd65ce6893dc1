import { randomBytes } from 'node:crypto';
import { type ClientOptions, createWorkerClient, MpdClientError, type WorkerClient } from '@mpd/client';
import {
  createSecretMasker,
  formatTimeSpan,
  maskDeep,
  parseTimeSpan,
  type SecretMasker,
  type WorkerNode,
} from '@mpd/contract';
import type { AnyModule, FailureMode, Pipeline, ResolvedRetryPolicy } from '@mpd/pipeline';
import type { Logger } from 'pino';
import type { NodeRegistry } from '../registry/node-registry.js';
import { ConcurrencyRules } from './concurrency.js';
import { describeRequirements, missingCapabilities } from './placement.js';
import {
  type AttemptRecord,
  type ModuleRunResult,
  type ModuleStatus,
  type RunEvent,
  type RunResult,
  SUCCEEDED,
  TERMINAL,
} from './run-result.js';

/** Options of {@link runPipeline}. */
export interface RunPipelineOptions {
  pipeline: Pipeline;
  registry: NodeRegistry;
  logger: Logger;
  /** Sent to every module as `environmentVariables`, and given to `skipIf`. @default {} */
  environmentVariables?: Record<string, string>;
  /**
   * Secret environment variables, sent to every module with the others but marked secret: the
   * workers mask their values (`***`) in every log line and error message, and so does the run's
   * result (errors, reasons).
   */
  secretEnvironmentVariables?: Record<string, string>;
  /** Sent to every module as `workingDirectory`; the worker's own applies when absent. */
  workingDirectory?: string;
  /** Aborting it cancels the run: running modules are cancelled on their workers, then always-run modules run. */
  signal?: AbortSignal;
  /** Live progress. */
  onEvent?: (event: RunEvent) => void;
  /** Run only modules of these categories (others are Skipped). */
  runOnlyCategories?: readonly string[];
  /** Skip modules of these categories. */
  ignoreCategories?: readonly string[];
  /** @default the pipeline's (`StopOnFirstFailure` unless it says otherwise) */
  failureMode?: FailureMode;
  /** At most this many modules run at once across the cluster. @default the pipeline's */
  maxParallelism?: number;
  /**
   * How many times a module is dispatched again after its worker was lost (unreachable, or
   * offline past the heartbeat timeout) before it fails: a module that kills every worker it
   * lands on stops there.
   * @default 3
   */
  maxLostAttempts?: number;
  /**
   * How long a ready module waits for a live worker that can run it (same pipeline, the
   * module's requirements) before it fails, naming what is missing (ms).
   * @default 300_000 (5 minutes)
   */
  noWorkerTimeoutMs?: number;
  /**
   * How often the scheduler looks at the registry again besides its change events (ms).
   * @default 1_000
   */
  rescheduleIntervalMs?: number;
  /**
   * How long after a module's timeout the orchestrator stops waiting for its worker's answer,
   * declares it `TimedOut` and cancels it there (the worker enforces the timeout itself; this
   * covers a worker that cannot answer).
   * @default 60_000
   */
  timeoutMarginMs?: number;
  /**
   * TLS settings of the calls to `https://` workers (PEM contents): the CA their certificates
   * must chain to, and the client certificate to present to workers that require mutual TLS.
   * @default Node's default trusted roots, no client certificate
   */
  workerTls?: ClientOptions['tls'];
  /**
   * Makes the client of a worker; `headers` carry the worker's credential.
   * @default createWorkerClient({ baseUrl: endpoint, headers, executeMarginMs: timeoutMarginMs, tls: workerTls })
   */
  createClient?: (endpoint: string, headers: Record<string, string> | undefined) => WorkerClient;
}

const PRIORITY_RANK = { Critical: 3, High: 2, Normal: 1, Low: 0 } as const;
const REJECTED_COOL_DOWN_MS = 1_000;
/** Failure statuses that stop a `StopOnFirstFailure` run. */
const FAILED: ReadonlySet<ModuleStatus> = new Set(['Failed', 'TimedOut']);

type Phase =
  /** Waiting for dependencies. */
  | 'waiting'
  /** Dependencies ended; `skipIf` is being asked. */
  | 'deciding'
  /** May be dispatched (from `notBefore`, after a failed attempt). */
  | 'ready'
  | 'running'
  | 'done';

interface ModuleState {
  readonly name: string;
  readonly definition: AnyModule;
  readonly order: number;
  readonly retry: ResolvedRetryPolicy;
  readonly timeoutMs: number;
  phase: Phase;
  /** Dependencies that have not ended yet. */
  readonly pending: Set<string>;
  failures: number;
  lost: number;
  /** Workers this module was lost on: avoided while others can take it. */
  readonly lostOn: Set<string>;
  notBefore: number;
  /** Since when no live worker could run it (for `noWorkerTimeoutMs`). */
  unplaceableSince: number | undefined;
  serializedResult?: string;
  readonly result: ModuleRunResult;
}

interface InFlight {
  readonly module: ModuleState;
  readonly workerId: string;
  readonly endpoint: string;
  /** The worker's credential when it was dispatched: the worker only accepts calls carrying it. */
  readonly credential: string | undefined;
  readonly record: AttemptRecord;
  readonly controller: AbortController;
  settled: boolean;
}

/**
 * Runs a pipeline on the registered workers, with no stage barrier: a module is dispatched
 * the moment its dependencies ended and a worker that can run it (same pipeline fingerprint,
 * its requirements) has a free slot, in priority order, within the cluster-wide concurrency
 * rules. Every dispatch is an attempt with its own `executionId`; an attempt whose worker is
 * lost is dispatched again elsewhere, a failed one is retried per the module's policy, and a
 * module's result is accepted exactly once.
 */
export function runPipeline(options: RunPipelineOptions): Promise<RunResult> {
  return new PipelineRun(options).start();
}

class PipelineRun {
  private readonly runId = `run-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  private readonly modules = new Map<string, ModuleState>();
  private readonly inFlight = new Map<string, InFlight>();
  private readonly dispatchedTo = new Map<string, number>();
  /** Workers that just refused work (429/503) get none until then. */
  private readonly coolingUntil = new Map<string, number>();
  private readonly clients = new Map<string, WorkerClient>();
  private readonly startedAt = new Date();
  private readonly rules: ConcurrencyRules;
  private readonly failureMode: FailureMode;
  private readonly log: Logger;
  /** Environment of every module: the plain variables and the secret ones. */
  private readonly environment: Record<string, string>;
  private readonly secretNames: string[];
  private readonly mask: SecretMasker;
  /** Set once the run stops starting modules (a failure under StopOnFirstFailure, or a cancel). */
  private stopping: 'failure' | 'cancel' | undefined;
  private finish!: (result: RunResult) => void;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private pumping = false;
  private ended = false;

  constructor(private readonly options: RunPipelineOptions) {
    const { pipeline } = options;
    this.log = options.logger.child({ runId: this.runId, pipeline: pipeline.name });
    const secrets = options.secretEnvironmentVariables ?? {};
    this.environment = { ...options.environmentVariables, ...secrets };
    this.secretNames = Object.keys(secrets);
    this.mask = createSecretMasker(Object.values(secrets));
    this.rules = new ConcurrencyRules(options.maxParallelism ?? pipeline.maxParallelism);
    this.failureMode = options.failureMode ?? pipeline.failureMode;
    pipeline.order.forEach((name, order) => {
      const definition = pipeline.modules.get(name)!;
      const state: ModuleState = {
        name,
        definition,
        order,
        retry: definition.retry ?? pipeline.defaults.retry,
        timeoutMs: definition.timeoutMs ?? pipeline.defaults.timeoutMs,
        phase: 'waiting',
        pending: new Set(pipeline.dependencies.get(name) ?? []),
        failures: 0,
        lost: 0,
        lostOn: new Set(),
        notBefore: 0,
        unplaceableSince: undefined,
        result: { name, status: 'NotYetStarted', attempts: [] },
      };
      this.modules.set(name, state);
    });
  }

  start(): Promise<RunResult> {
    const done = new Promise<RunResult>((resolve) => (this.finish = resolve));
    const { signal, registry } = this.options;
    this.unsubscribe = registry.onChange((event) => {
      if (event.type === 'offline') this.workerLost(event.workerId, 'missed heartbeats past the timeout');
      this.schedulePump();
    });
    this.timer = setInterval(() => this.pump(), this.options.rescheduleIntervalMs ?? 1_000);
    this.log.info({ modules: this.modules.size }, 'run started');

    const { runOnlyCategories, ignoreCategories } = this.options;
    for (const state of this.modules.values()) {
      const category = state.definition.category;
      if (runOnlyCategories && runOnlyCategories.length > 0 && !(category && runOnlyCategories.includes(category))) {
        this.notRun(state, 'Skipped', `category ${category ? `'${category}'` : '(none)'} is not in runOnlyCategories`);
      } else if (category && ignoreCategories?.includes(category)) {
        this.notRun(state, 'Skipped', `category '${category}' is in ignoreCategories`);
      }
    }
    for (const state of this.modules.values())
      if (state.phase === 'waiting' && state.pending.size === 0) this.decide(state);

    if (signal?.aborted) this.stop('cancel', 'the run was cancelled');
    signal?.addEventListener('abort', () => this.stop('cancel', 'the run was cancelled'), { once: true });
    this.pump();
    return done;
  }

  // --- Deciding what may run -------------------------------------------------------------

  /** All dependencies ended: run it, skip it, or report it as not run. */
  private decide(state: ModuleState): void {
    const { pipeline } = this.options;
    const definition = state.definition;
    const required = new Set(
      definition.dependsOn.map((dependency) => (typeof dependency === 'string' ? dependency : dependency.name)),
    );
    if (this.stopping && !definition.alwaysRun) {
      this.notRun(state, 'PipelineTerminated', this.stoppedReason());
      return;
    }
    if (!definition.alwaysRun) {
      for (const dependency of pipeline.dependencies.get(state.name) ?? []) {
        if (!required.has(dependency)) continue; // optional: its outcome does not matter
        const status = this.modules.get(dependency)!.result.status;
        if (status === 'Skipped') {
          this.notRun(state, 'Skipped', `dependency '${dependency}' was skipped`);
          return;
        }
        if (!SUCCEEDED.has(status)) {
          this.notRun(state, 'DependencyFailed', `dependency '${dependency}' ended ${status}`);
          return;
        }
      }
    }
    if (!definition.skipIf) {
      this.makeReady(state);
      return;
    }
    state.phase = 'deciding';
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
    state.phase = 'ready';
    this.schedulePump();
  }

  /** Results of a module's dependencies that succeeded, parsed. */
  private resultsFor(state: ModuleState): Record<string, unknown> {
    const results: Record<string, unknown> = {};
    for (const dependency of this.options.pipeline.dependencies.get(state.name) ?? []) {
      const serialized = this.modules.get(dependency)!.serializedResult;
      if (serialized !== undefined) results[dependency] = JSON.parse(serialized);
    }
    return results;
  }

  // --- Dispatching -------------------------------------------------------------------------

  private schedulePump(): void {
    queueMicrotask(() => this.pump());
  }

  /** Dispatches every ready module that a worker can take now, highest priority first. */
  private pump(): void {
    if (this.pumping || this.ended) return;
    this.pumping = true;
    try {
      const now = Date.now();
      const ready = [...this.modules.values()]
        .filter((state) => state.phase === 'ready')
        .sort(
          (a, b) => PRIORITY_RANK[b.definition.priority] - PRIORITY_RANK[a.definition.priority] || a.order - b.order,
        );
      const live = this.liveWorkers();
      for (const state of ready) {
        if (state.notBefore > now) continue;
        const running = [...this.inFlight.values()]
          .filter((flight) => !flight.settled)
          .map((flight) => flight.module.definition);
        const blocker = this.rules.blocker(state.definition, running);
        if (blocker) {
          // A module that runs alone waits for the others to finish: start nothing past it.
          if (state.definition.notInParallel === 'all') break;
          continue;
        }
        const capable = live.filter((worker) => missingCapabilities(worker, state.definition.requires).length === 0);
        if (capable.length === 0) {
          this.waitForCapableWorker(state, live, now);
          continue;
        }
        state.unplaceableSince = undefined;
        const worker = this.pickWorker(state, capable, now);
        if (worker) this.dispatch(state, worker);
      }
      this.checkDone();
    } finally {
      this.pumping = false;
    }
  }

  /** Live workers that loaded this pipeline and are not draining. */
  private liveWorkers(): WorkerNode[] {
    const fingerprint = this.options.pipeline.fingerprint;
    return this.options.registry
      .list()
      .filter(
        (worker) =>
          (worker.status === 'Available' || worker.status === 'Busy') && worker.pipeline?.fingerprint === fingerprint,
      );
  }

  /** Fails a module that no live worker could run for `noWorkerTimeoutMs`, naming what is missing. */
  private waitForCapableWorker(state: ModuleState, live: WorkerNode[], now: number): void {
    state.unplaceableSince ??= now;
    const limit = this.options.noWorkerTimeoutMs ?? 300_000;
    if (now - state.unplaceableSince < limit) return;
    const { pipeline } = this.options;
    const requires = state.definition.requires;
    const why =
      live.length === 0
        ? `no live worker with pipeline '${pipeline.name}' (fingerprint ${pipeline.fingerprint}) was registered`
        : `it needs ${describeRequirements(requires)}, and no live worker has it: ${live
            .map((worker) => `${worker.id} lacks ${missingCapabilities(worker, requires).join(', ')}`)
            .join('; ')}`;
    this.complete(state, 'Failed', {
      error: {
        message: `Module '${state.name}' could not be dispatched after waiting ${formatTimeSpan(limit)}: ${why}`,
        type: 'NoCapableWorker',
      },
    });
  }

  /**
   * The least-loaded capable worker with a free slot (load / slots), ties going to the one
   * given least work so far; workers the module was lost on only when no other can take it.
   */
  private pickWorker(state: ModuleState, capable: WorkerNode[], now: number): WorkerNode | undefined {
    const fresh = capable.filter((worker) => !state.lostOn.has(worker.id));
    const candidates = fresh.length > 0 ? fresh : capable;
    let best: { worker: WorkerNode; ratio: number; given: number } | undefined;
    for (const worker of candidates) {
      const running = this.runningOn(worker.id);
      const slots = worker.capabilities.maxParallelModules;
      if (running >= slots || (this.coolingUntil.get(worker.id) ?? 0) > now) continue;
      const ratio = running / slots;
      const given = this.dispatchedTo.get(worker.id) ?? 0;
      if (!best || ratio < best.ratio || (ratio === best.ratio && given < best.given)) best = { worker, ratio, given };
    }
    return best?.worker;
  }

  private runningOn(workerId: string): number {
    let count = 0;
    for (const flight of this.inFlight.values()) if (flight.workerId === workerId && !flight.settled) count++;
    return count;
  }

  private dispatch(state: ModuleState, worker: WorkerNode): void {
    const { pipeline } = this.options;
    const attempt = state.result.attempts.length + 1;
    const executionId = `${this.runId}.${state.name}.${attempt}`;
    const record: AttemptRecord = {
      executionId,
      workerId: worker.id,
      startTime: new Date().toISOString(),
      outcome: 'Running',
    };
    state.result.attempts.push(record);
    state.phase = 'running';
    state.result.status = 'Processing';
    state.result.workerId = worker.id;
    const flight: InFlight = {
      module: state,
      workerId: worker.id,
      endpoint: worker.endpoint,
      credential: this.options.registry.credentialOf(worker.id),
      record,
      controller: new AbortController(),
      settled: false,
    };
    this.inFlight.set(executionId, flight);
    this.dispatchedTo.set(worker.id, (this.dispatchedTo.get(worker.id) ?? 0) + 1);

    const dependencyResults: Record<string, string> = {};
    for (const dependency of pipeline.dependencies.get(state.name) ?? []) {
      const serialized = this.modules.get(dependency)!.serializedResult;
      if (serialized !== undefined) dependencyResults[dependency] = serialized;
    }
    this.log.info({ module: state.name, workerId: worker.id, executionId }, 'module dispatched');
    this.emit({ type: 'module-started', module: state.name, workerId: worker.id, executionId, attempt });

    this.clientFor(flight)
      .execution.execute({
        body: {
          executionId,
          moduleTypeName: state.name,
          serializedModule: JSON.stringify(state.definition.params ?? null),
          dependencyResults,
          environmentVariables: this.environment,
          ...(this.secretNames.length > 0 ? { secretEnvironmentVariables: this.secretNames } : {}),
          ...(this.options.workingDirectory ? { workingDirectory: this.options.workingDirectory } : {}),
          timeout: formatTimeSpan(state.timeoutMs),
          timestamp: new Date().toISOString(),
        },
        fetchOptions: { signal: flight.controller.signal },
      })
      .then(
        (response) => this.onResponse(flight, response),
        (error: unknown) => this.onTransportError(flight, error),
      )
      .catch((error: unknown) => this.log.error({ err: error, executionId }, 'handling an execute answer failed'))
      .finally(() => this.pump());
  }

  // --- Answers -----------------------------------------------------------------------------

  private onResponse(flight: InFlight, response: { status: number; body: unknown }): void {
    const body = response.body as Record<string, unknown>;
    if (flight.settled) {
      // A late answer of an attempt already declared lost: recorded, never accepted.
      if (response.status === 200 || response.status === 500) {
        flight.record.lateAnswer = {
          outcome: response.status === 200 ? 'Succeeded' : 'Failed',
          at: new Date().toISOString(),
        };
      }
      this.log.warn(
        { executionId: flight.record.executionId, status: response.status },
        'late answer of a lost attempt ignored',
      );
      return;
    }
    const { module: state, record } = flight;
    this.settle(flight);
    switch (response.status) {
      case 200: {
        record.outcome = 'Succeeded';
        state.serializedResult = String(body.serializedResult);
        let result: unknown;
        try {
          result = JSON.parse(state.serializedResult);
        } catch {
          result = state.serializedResult;
        }
        this.complete(state, 'Successful', { workerId: flight.workerId, times: body, result });
        return;
      }
      case 429:
      case 503:
        // The worker had no room after all (its own load, or draining): not the module's fault.
        record.outcome = 'Rejected';
        record.error = String(body.errorMessage ?? `answered ${response.status}`);
        this.coolingUntil.set(flight.workerId, Date.now() + REJECTED_COOL_DOWN_MS);
        this.requeue(state);
        return;
      case 500:
        if (body.success === false && typeof body.exceptionType === 'string') {
          const cancelled = body.failureKind === 'Cancelled';
          const timedOut = body.failureKind === 'TimedOut';
          record.outcome = cancelled ? 'Cancelled' : timedOut ? 'TimedOut' : 'Failed';
          record.error = String(body.errorMessage);
          const error = {
            message: String(body.errorMessage),
            type: String(body.exceptionType),
            stackTrace: (body.stackTrace as string | null | undefined) ?? null,
          };
          if (cancelled && this.stopping) {
            this.complete(state, 'PipelineTerminated', {
              workerId: flight.workerId,
              times: body,
              error,
              reason: this.stoppedReason(),
            });
          } else {
            this.failed(state, timedOut ? 'TimedOut' : 'Failed', { workerId: flight.workerId, times: body, error });
          }
          return;
        }
        this.lost(flight, `worker answered 500: ${String(body.errorMessage ?? 'internal error')}`);
        return;
      default:
        record.outcome = 'Failed';
        record.error = String(body.errorMessage ?? `worker answered ${response.status}`);
        this.failed(state, 'Failed', {
          workerId: flight.workerId,
          error: {
            message: `Worker ${flight.workerId} refused the module (${response.status}): ${record.error}`,
            type: 'DispatchRejected',
          },
        });
    }
  }

  private onTransportError(flight: InFlight, error: unknown): void {
    if (flight.settled) return;
    if (error instanceof MpdClientError && error.code === 'Timeout') {
      // The worker did not answer within the module's timeout plus the margin: enforce it here.
      this.settle(flight);
      flight.record.outcome = 'TimedOut';
      flight.record.error = error.message;
      this.cancelOnWorker(flight, 'the orchestrator gave up waiting for the answer');
      this.failed(flight.module, 'TimedOut', {
        workerId: flight.workerId,
        error: {
          message: `Module '${flight.module.name}' did not answer within its timeout of ${formatTimeSpan(flight.module.timeoutMs)} plus the margin`,
          type: 'OrchestratorTimeout',
        },
      });
      return;
    }
    const reason = error instanceof MpdClientError ? `${error.code}: ${error.message}` : String(error);
    this.lost(flight, reason);
  }

  private settle(flight: InFlight): void {
    flight.settled = true;
    flight.record.endTime = new Date().toISOString();
    this.inFlight.delete(flight.record.executionId);
  }

  /** Declares every running attempt on `workerId` lost. */
  private workerLost(workerId: string, reason: string): void {
    for (const flight of [...this.inFlight.values()]) {
      if (flight.workerId === workerId && !flight.settled) {
        this.lost(flight, `worker ${workerId} ${reason}`);
        // If the worker is only frozen or cut off, stop the abandoned attempt when it hears us.
        this.cancelOnWorker(flight, 'attempt declared lost: the worker missed its heartbeats');
      }
    }
  }

  /** The attempt's worker is gone: dispatch the module again elsewhere, up to the limit. */
  private lost(flight: InFlight, reason: string): void {
    const { module: state, record } = flight;
    this.settle(flight);
    // Keep listening: a late answer is recorded on the attempt (see onResponse).
    this.inFlight.set(record.executionId, flight);
    record.outcome = 'Lost';
    record.error = reason;
    state.lost++;
    state.lostOn.add(flight.workerId);
    this.log.warn(
      { module: state.name, workerId: flight.workerId, executionId: record.executionId, reason },
      'attempt lost',
    );
    this.emit({
      type: 'attempt-lost',
      module: state.name,
      workerId: flight.workerId,
      executionId: record.executionId,
      reason,
    });
    const limit = this.options.maxLostAttempts ?? 3;
    if (state.lost > limit) {
      this.failed(state, 'Failed', {
        workerId: flight.workerId,
        error: {
          message: `Module '${state.name}' was lost with its worker ${state.lost} times (${[...state.lostOn].join(', ')}); last: ${reason}`,
          type: 'WorkerLost',
        },
        final: true,
      });
      return;
    }
    this.requeue(state);
  }

  /** Dispatches the module again (unless the run is stopping and it is not an always-run module). */
  private requeue(state: ModuleState): void {
    if (this.stopping && !state.definition.alwaysRun) {
      this.notRun(state, 'PipelineTerminated', this.stoppedReason());
      return;
    }
    state.result.status = 'NotYetStarted';
    this.makeReady(state);
  }

  /** A failed attempt: retry it per the module's policy, or end the module. */
  private failed(
    state: ModuleState,
    status: 'Failed' | 'TimedOut',
    details: {
      workerId?: string;
      times?: Record<string, unknown>;
      error: NonNullable<ModuleRunResult['error']>;
      final?: boolean;
    },
  ): void {
    state.failures++;
    if (!details.final && state.failures <= state.retry.attempts && !this.stopping) {
      const ceiling = Math.min(state.retry.maxBackoffMs, state.retry.backoffMs * 2 ** (state.failures - 1));
      const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      state.notBefore = Date.now() + delayMs;
      this.log.info({ module: state.name, failures: state.failures, delayMs }, 'module failed; retrying');
      this.emit({
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
    details: {
      workerId?: string;
      times?: Record<string, unknown>;
      result?: unknown;
      error?: ModuleRunResult['error'];
      reason?: string;
    },
  ): void {
    if (state.phase === 'done') return;
    state.phase = 'done';
    const result = state.result;
    result.status = status;
    if (details.workerId) result.workerId = details.workerId;
    if (details.times) {
      result.startTime = String(details.times.startTime);
      result.endTime = String(details.times.endTime);
      result.durationMs =
        parseTimeSpan(String(details.times.duration)) ?? Date.parse(result.endTime) - Date.parse(result.startTime);
    }
    if (status === 'Successful') result.result = details.result;
    if (details.error) result.error = details.error;
    if (details.reason) result.reason = details.reason;
    this.log.info(
      { module: state.name, status, workerId: result.workerId, durationMs: result.durationMs },
      'module finished',
    );
    this.emit({ type: 'module-finished', module: state.name, result });
    this.afterEnd(state);
    if (FAILED.has(status) && this.failureMode === 'StopOnFirstFailure') {
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
    state.phase = 'done';
    state.result.status = status;
    state.result.reason = reason;
    this.emit({ type: 'module-not-run', module: state.name, status, reason });
    this.afterEnd(state);
  }

  /** A module ended: its dependants may now be decided. */
  private afterEnd(state: ModuleState): void {
    for (const dependant of this.options.pipeline.dependants.get(state.name) ?? []) {
      const other = this.modules.get(dependant)!;
      other.pending.delete(state.name);
      if (other.phase !== 'waiting') continue;
      const required = other.definition.dependsOn.some(
        (dependency) => (typeof dependency === 'string' ? dependency : dependency.name) === state.name,
      );
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
    if (this.stopping === 'cancel' || (this.stopping && kind === 'failure')) return;
    this.stopping = kind;
    this.stopReason = reason;
    this.log.warn({ reason }, 'run stopping');
    this.emit({ type: 'run-stopping', reason });
    for (const state of this.modules.values()) {
      if (state.definition.alwaysRun) continue;
      if (state.phase === 'ready' || state.phase === 'deciding')
        this.notRun(state, 'PipelineTerminated', this.stoppedReason());
    }
    for (const flight of this.inFlight.values()) {
      if (!flight.settled && !flight.module.definition.alwaysRun)
        this.cancelOnWorker(flight, `Pipeline stopping: ${reason}`);
    }
    // Modules still waiting for dependencies end as those do (always-run ones then run).
    for (const state of this.modules.values()) {
      if (state.phase === 'waiting' && !state.definition.alwaysRun)
        this.notRun(state, 'PipelineTerminated', this.stoppedReason());
    }
    this.schedulePump();
  }

  private stopReason = '';
  private stoppedReason(): string {
    return `not run: the run ${this.stopping === 'cancel' ? 'was cancelled' : `stopped because ${this.stopReason}`}`;
  }

  /** Sends the spec's cancel call for an attempt; if the worker cannot be reached, stops waiting for it. */
  private cancelOnWorker(flight: InFlight, reason: string): void {
    this.clientFor(flight)
      .execution.cancel({
        body: { executionId: flight.record.executionId, reason, timestamp: new Date().toISOString() },
      })
      .catch(() => flight.controller.abort());
  }

  private checkDone(): void {
    if (this.ended) return;
    for (const state of this.modules.values()) if (state.phase !== 'done') return;
    this.end();
  }

  private end(): void {
    this.ended = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    for (const flight of this.inFlight.values()) flight.controller.abort(); // stop waiting for late answers
    for (const client of this.clients.values()) void client.close().catch(() => undefined);
    const endedAt = new Date();
    // Workers already mask secrets in what they send; mask again what the run reports (results included).
    const modules = [...this.modules.values()].map((state) => maskDeep(state.result, this.mask));
    const cancelled = this.stopping === 'cancel';
    const success =
      !cancelled &&
      modules.every(
        (module) => module.status === 'Successful' || module.status === 'IgnoredFailure' || module.status === 'Skipped',
      );
    const result: RunResult = {
      runId: this.runId,
      pipeline: this.options.pipeline.name,
      success,
      status: cancelled ? 'Cancelled' : success ? 'Successful' : 'Failed',
      startTime: this.startedAt.toISOString(),
      endTime: endedAt.toISOString(),
      durationMs: endedAt.getTime() - this.startedAt.getTime(),
      modules,
    };
    this.log.info({ status: result.status, durationMs: result.durationMs }, 'run ended');
    this.finish(result);
  }

  /** A client of the attempt's worker, sending the worker's credential. */
  /** Reports progress, with secrets masked. */
  private emit(event: RunEvent): void {
    this.options.onEvent?.(maskDeep(event, this.mask));
  }

  private clientFor({ endpoint, credential }: InFlight): WorkerClient {
    const key = `${endpoint} ${credential ?? ''}`;
    let client = this.clients.get(key);
    if (!client) {
      const headers = credential ? { authorization: `Bearer ${credential}` } : undefined;
      client =
        this.options.createClient?.(endpoint, headers) ??
        createWorkerClient({
          baseUrl: endpoint,
          executeMarginMs: this.options.timeoutMarginMs ?? 60_000,
          ...(headers ? { headers } : {}),
          ...(this.options.workerTls ? { tls: this.options.workerTls } : {}),
        });
      this.clients.set(key, client);
    }
    return client;
  }
}
