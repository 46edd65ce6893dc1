import { randomBytes } from 'node:crypto';
import { createWorkerClient, MpdClientError, type WorkerClient } from '@mpd/client';
import { formatTimeSpan, parseTimeSpan, type WorkerNode } from '@mpd/contract';
import { DEFAULT_MODULE_TIMEOUT_MS, type Pipeline } from '@mpd/pipeline';
import type { Logger } from 'pino';
import type { NodeRegistry } from '../registry/node-registry.js';
import type { AttemptRecord, ModuleRunResult, ModuleStatus, RunEvent, RunResult } from './run-result.js';

/** Options of {@link runPipeline}. */
export interface RunPipelineOptions {
  pipeline: Pipeline;
  registry: NodeRegistry;
  logger: Logger;
  /** Sent to every module as `environmentVariables`. @default {} */
  environmentVariables?: Record<string, string>;
  /** Sent to every module as `workingDirectory`; the worker's own applies when absent. */
  workingDirectory?: string;
  /** Aborting it cancels the run: running modules are cancelled on their workers. */
  signal?: AbortSignal;
  /** Live progress. */
  onEvent?: (event: RunEvent) => void;
  /**
   * How many times a module is dispatched again after its worker was lost (unreachable,
   * or offline past the heartbeat timeout) before it fails.
   * @default 3
   */
  maxLostAttempts?: number;
  /**
   * How long ready modules may wait with no worker able to take them before the run
   * fails them (ms).
   * @default 300_000 (5 minutes)
   */
  noWorkerTimeoutMs?: number;
  /**
   * How often the scheduler looks at the registry again besides its change events (ms).
   * @default 1_000
   */
  rescheduleIntervalMs?: number;
  /** @default createWorkerClient({ baseUrl: endpoint }) */
  createClient?: (endpoint: string) => WorkerClient;
}

const REJECTED_COOL_DOWN_MS = 1_000;

interface ModuleState {
  readonly name: string;
  status: ModuleStatus;
  remainingDependencies: number;
  attempts: AttemptRecord[];
  lostAttempts: number;
  serializedResult?: string;
  result: ModuleRunResult;
}

interface InFlight {
  readonly module: ModuleState;
  readonly workerId: string;
  readonly endpoint: string;
  readonly record: AttemptRecord;
  readonly controller: AbortController;
  settled: boolean;
}

/**
 * Runs a pipeline on the registered workers. A module is dispatched as soon as its
 * dependencies succeeded, to the least-loaded live worker that loaded the same pipeline
 * (same fingerprint) and has a free slot. Results flow into dependants'
 * `dependencyResults`; a module that fails makes its dependants `DependencyFailed`.
 * Every dispatch is an attempt with its own `executionId`; an attempt whose worker is
 * lost is dispatched again elsewhere, and only one result per module is accepted.
 */
export function runPipeline(options: RunPipelineOptions): Promise<RunResult> {
  return new PipelineRun(options).start();
}

class PipelineRun {
  private readonly runId = `run-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  private readonly modules = new Map<string, ModuleState>();
  private readonly ready: ModuleState[] = [];
  private readonly inFlight = new Map<string, InFlight>();
  private readonly dispatchedTo = new Map<string, number>();
  /** Workers that just refused work (429/503) get none until then. */
  private readonly coolingUntil = new Map<string, number>();
  private readonly clients = new Map<string, WorkerClient>();
  private readonly startedAt = new Date();
  private waitingSince: number | undefined;
  private cancelled = false;
  private finish!: (result: RunResult) => void;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private pumping = false;
  private readonly log: Logger;

  constructor(private readonly options: RunPipelineOptions) {
    this.log = options.logger.child({ runId: this.runId, pipeline: options.pipeline.name });
    for (const name of options.pipeline.order) {
      const remainingDependencies = options.pipeline.dependencies.get(name)?.length ?? 0;
      const state: ModuleState = {
        name,
        status: 'NotYetStarted',
        remainingDependencies,
        attempts: [],
        lostAttempts: 0,
        result: { name, status: 'NotYetStarted', attempts: [] },
      };
      state.result.attempts = state.attempts;
      this.modules.set(name, state);
      if (remainingDependencies === 0) this.ready.push(state);
    }
  }

  start(): Promise<RunResult> {
    const done = new Promise<RunResult>((resolve) => (this.finish = resolve));
    const { signal, registry } = this.options;
    if (signal?.aborted) this.cancel();
    signal?.addEventListener('abort', () => this.cancel(), { once: true });
    this.unsubscribe = registry.onChange((event) => {
      if (event.type === 'offline') this.workerLost(event.workerId, 'missed heartbeats past the timeout');
      this.schedulePump();
    });
    this.timer = setInterval(() => this.pump(), this.options.rescheduleIntervalMs ?? 1_000);
    this.log.info({ modules: this.modules.size }, 'run started');
    this.pump();
    return done;
  }

  private schedulePump(): void {
    queueMicrotask(() => this.pump());
  }

  /** Dispatches every ready module that a worker can take now. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.cancelled && this.ready.length > 0) {
        const worker = this.pickWorker();
        if (!worker) break;
        this.dispatch(this.ready.shift()!, worker);
      }
      if (!this.cancelled) this.checkStarvation();
      this.checkDone();
    } finally {
      this.pumping = false;
    }
  }

  private eligibleWorkers(): WorkerNode[] {
    const fingerprint = this.options.pipeline.fingerprint;
    return this.options.registry
      .list()
      .filter(
        (worker) =>
          (worker.status === 'Available' || worker.status === 'Busy') && worker.pipeline?.fingerprint === fingerprint,
      );
  }

  /** The least-loaded eligible worker with a free slot; ties go to the one given least work so far. */
  private pickWorker(): WorkerNode | undefined {
    let best: { worker: WorkerNode; ratio: number; given: number } | undefined;
    for (const worker of this.eligibleWorkers()) {
      const running = this.runningOn(worker.id);
      const slots = worker.capabilities.maxParallelModules;
      if (running >= slots || (this.coolingUntil.get(worker.id) ?? 0) > Date.now()) continue;
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

  private dispatch(module: ModuleState, worker: WorkerNode): void {
    const { pipeline } = this.options;
    const definition = pipeline.modules.get(module.name)!;
    const attempt = module.attempts.length + 1;
    const executionId = `${this.runId}.${module.name}.${attempt}`;
    const record: AttemptRecord = {
      executionId,
      workerId: worker.id,
      startTime: new Date().toISOString(),
      outcome: 'Running',
    };
    module.attempts.push(record);
    module.status = 'Processing';
    module.result.status = 'Processing';
    module.result.workerId = worker.id;
    const flight: InFlight = {
      module,
      workerId: worker.id,
      endpoint: worker.endpoint,
      record,
      controller: new AbortController(),
      settled: false,
    };
    this.inFlight.set(executionId, flight);
    this.dispatchedTo.set(worker.id, (this.dispatchedTo.get(worker.id) ?? 0) + 1);
    this.waitingSince = undefined;

    const dependencyResults: Record<string, string> = {};
    for (const dependency of pipeline.dependencies.get(module.name) ?? []) {
      dependencyResults[dependency] = this.modules.get(dependency)!.serializedResult ?? 'null';
    }
    this.log.info({ module: module.name, workerId: worker.id, executionId }, 'module dispatched');
    this.options.onEvent?.({ type: 'module-started', module: module.name, workerId: worker.id, executionId, attempt });

    const client = this.clientFor(worker.endpoint);
    client.execution
      .execute({
        body: {
          executionId,
          moduleTypeName: module.name,
          serializedModule: JSON.stringify(definition.params ?? null),
          dependencyResults,
          environmentVariables: this.options.environmentVariables ?? {},
          ...(this.options.workingDirectory ? { workingDirectory: this.options.workingDirectory } : {}),
          timeout: formatTimeSpan(definition.timeoutMs ?? DEFAULT_MODULE_TIMEOUT_MS),
          timestamp: new Date().toISOString(),
        },
        fetchOptions: { signal: flight.controller.signal },
      })
      .then(
        (response) => this.onResponse(flight, response),
        (error: unknown) => this.onTransportError(flight, error),
      )
      .catch((error: unknown) => {
        this.log.error({ err: error, executionId }, 'handling an execute answer failed');
      })
      .finally(() => this.pump());
  }

  private onResponse(flight: InFlight, response: { status: number; body: unknown }): void {
    if (flight.settled) {
      this.log.warn(
        { executionId: flight.record.executionId, status: response.status },
        'late answer of a settled attempt ignored',
      );
      return;
    }
    flight.settled = true;
    this.inFlight.delete(flight.record.executionId);
    const { module, record } = flight;
    record.endTime = new Date().toISOString();
    const body = response.body as Record<string, unknown>;
    switch (response.status) {
      case 200: {
        record.outcome = 'Succeeded';
        module.serializedResult = String(body.serializedResult);
        let result: unknown = null;
        try {
          result = JSON.parse(module.serializedResult);
        } catch {
          result = module.serializedResult;
        }
        this.complete(module, 'Successful', { workerId: flight.workerId, times: body, result });
        return;
      }
      case 429:
      case 503:
        // The worker had no room after all (its own load, or draining): not this module's fault.
        record.outcome = 'Rejected';
        record.error = String(body.errorMessage ?? `answered ${response.status}`);
        this.coolingUntil.set(flight.workerId, Date.now() + REJECTED_COOL_DOWN_MS);
        module.status = 'NotYetStarted';
        module.result.status = 'NotYetStarted';
        this.ready.unshift(module);
        return;
      case 500:
        if (body.success === false && typeof body.exceptionType === 'string') {
          record.outcome = 'Failed';
          record.error = String(body.errorMessage);
          const status: ModuleStatus = this.cancelled
            ? 'PipelineTerminated'
            : body.failureKind === 'TimedOut'
              ? 'TimedOut'
              : 'Failed';
          this.complete(module, status, {
            workerId: flight.workerId,
            times: body,
            error: {
              message: String(body.errorMessage),
              type: String(body.exceptionType),
              stackTrace: (body.stackTrace as string | null | undefined) ?? null,
            },
          });
          return;
        }
        this.lost(flight, `worker answered 500: ${String(body.errorMessage ?? 'internal error')}`);
        return;
      default:
        record.outcome = 'Failed';
        record.error = String(body.errorMessage ?? `worker answered ${response.status}`);
        this.complete(module, 'Failed', {
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
    const reason = error instanceof MpdClientError ? `${error.code}: ${error.message}` : String(error);
    this.lost(flight, reason);
  }

  /** Declares every running attempt on `workerId` lost. */
  private workerLost(workerId: string, reason: string): void {
    for (const flight of [...this.inFlight.values()]) {
      if (flight.workerId === workerId && !flight.settled) {
        flight.controller.abort();
        this.lost(flight, `worker ${workerId} ${reason}`);
        // If the worker is only frozen or cut off, stop the abandoned attempt when it hears us.
        this.cancelOnWorker(flight, 'attempt declared lost: the worker missed its heartbeats');
      }
    }
  }

  /** The attempt's worker is gone: dispatch the module again elsewhere, up to the limit. */
  private lost(flight: InFlight, reason: string): void {
    flight.settled = true;
    this.inFlight.delete(flight.record.executionId);
    const { module, record } = flight;
    record.outcome = 'Lost';
    record.endTime = new Date().toISOString();
    record.error = reason;
    module.lostAttempts++;
    this.log.warn(
      { module: module.name, workerId: flight.workerId, executionId: record.executionId, reason },
      'attempt lost',
    );
    this.options.onEvent?.({
      type: 'attempt-lost',
      module: module.name,
      workerId: flight.workerId,
      executionId: record.executionId,
      reason,
    });
    if (this.cancelled) {
      this.complete(module, 'PipelineTerminated', { workerId: flight.workerId });
      return;
    }
    const limit = this.options.maxLostAttempts ?? 3;
    if (module.lostAttempts > limit) {
      this.complete(module, 'Failed', {
        workerId: flight.workerId,
        error: {
          message: `Module '${module.name}' was lost with its worker ${module.lostAttempts} times; last: ${reason}`,
          type: 'WorkerLost',
        },
      });
      return;
    }
    module.status = 'NotYetStarted';
    module.result.status = 'NotYetStarted';
    this.ready.unshift(module);
    this.schedulePump();
  }

  private complete(
    module: ModuleState,
    status: ModuleStatus,
    details: { workerId?: string; times?: Record<string, unknown>; result?: unknown; error?: ModuleRunResult['error'] },
  ): void {
    module.status = status;
    const result = module.result;
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
    this.log.info(
      { module: module.name, status, workerId: result.workerId, durationMs: result.durationMs },
      'module finished',
    );
    this.options.onEvent?.({ type: 'module-finished', module: module.name, result });

    if (status === 'Successful') {
      for (const dependant of this.options.pipeline.dependants.get(module.name) ?? []) {
        const state = this.modules.get(dependant)!;
        state.remainingDependencies--;
        if (state.remainingDependencies === 0 && state.status === 'NotYetStarted' && !this.cancelled)
          this.ready.push(state);
      }
    } else {
      this.failDependants(module.name, status === 'PipelineTerminated' ? 'PipelineTerminated' : 'DependencyFailed');
    }
  }

  private failDependants(name: string, status: 'DependencyFailed' | 'PipelineTerminated'): void {
    for (const dependant of this.options.pipeline.dependants.get(name) ?? []) {
      const state = this.modules.get(dependant)!;
      if (state.status !== 'NotYetStarted') continue;
      state.status = status;
      state.result.status = status;
      const reason =
        status === 'DependencyFailed'
          ? `not run: dependency '${name}' did not succeed`
          : 'not run: the run was cancelled';
      state.result.error = { message: reason, type: status };
      this.options.onEvent?.({ type: 'module-not-run', module: dependant, status, reason });
      this.failDependants(dependant, status);
    }
  }

  /** Fails ready modules that no worker could take for `noWorkerTimeoutMs`. */
  private checkStarvation(): void {
    if (this.ready.length === 0 || this.inFlight.size > 0) {
      this.waitingSince = undefined;
      return;
    }
    const now = Date.now();
    this.waitingSince ??= now;
    const limit = this.options.noWorkerTimeoutMs ?? 300_000;
    if (now - this.waitingSince < limit) return;
    const eligible = this.eligibleWorkers().length;
    const reason =
      eligible === 0
        ? `no live worker with pipeline '${this.options.pipeline.name}' (fingerprint ${this.options.pipeline.fingerprint}) was registered for ${formatTimeSpan(limit)}`
        : `no worker had a free slot for ${formatTimeSpan(limit)}`;
    for (const module of this.ready.splice(0)) {
      this.complete(module, 'Failed', {
        error: { message: `Module '${module.name}' could not be dispatched: ${reason}`, type: 'NoWorkerAvailable' },
      });
    }
  }

  private cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.log.warn('run cancelled');
    for (const module of this.ready.splice(0)) this.complete(module, 'PipelineTerminated', {});
    for (const state of this.modules.values()) {
      if (state.status === 'NotYetStarted') {
        state.status = 'PipelineTerminated';
        state.result.status = 'PipelineTerminated';
        state.result.error = { message: 'not run: the run was cancelled', type: 'PipelineTerminated' };
      }
    }
    // Running modules: ask their workers to cancel; their execute calls then answer success: false.
    for (const flight of this.inFlight.values()) this.cancelOnWorker(flight, 'Pipeline run cancelled');
    this.checkDone();
  }

  /** Sends the spec's cancel call for an attempt; if the worker cannot be reached, stops waiting for it. */
  private cancelOnWorker(flight: InFlight, reason: string): void {
    this.clientFor(flight.endpoint)
      .execution.cancel({
        body: { executionId: flight.record.executionId, reason, timestamp: new Date().toISOString() },
      })
      .catch(() => flight.controller.abort());
  }

  private checkDone(): void {
    if (this.inFlight.size > 0) return;
    if (!this.cancelled && this.ready.length > 0) return;
    for (const state of this.modules.values()) if (state.status === 'Processing') return;
    if (!this.cancelled && [...this.modules.values()].some((state) => state.status === 'NotYetStarted')) return;
    this.end();
  }

  private ended = false;
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    for (const client of this.clients.values()) void client.close();
    const endedAt = new Date();
    const modules = [...this.modules.values()].map((state) => state.result);
    const success = !this.cancelled && modules.every((module) => module.status === 'Successful');
    const result: RunResult = {
      runId: this.runId,
      pipeline: this.options.pipeline.name,
      success,
      status: this.cancelled ? 'Cancelled' : success ? 'Successful' : 'Failed',
      startTime: this.startedAt.toISOString(),
      endTime: endedAt.toISOString(),
      durationMs: endedAt.getTime() - this.startedAt.getTime(),
      modules,
    };
    this.log.info({ status: result.status, durationMs: result.durationMs }, 'run ended');
    this.finish(result);
  }

  private clientFor(endpoint: string): WorkerClient {
    let client = this.clients.get(endpoint);
    if (!client) {
      client = this.options.createClient?.(endpoint) ?? createWorkerClient({ baseUrl: endpoint });
      this.clients.set(endpoint, client);
    }
    return client;
  }
}
