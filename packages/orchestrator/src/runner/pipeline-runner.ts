import { randomBytes } from 'node:crypto';
import { type ClientOptions, createWorkerClient, MpdClientError, type WorkerClient } from '@mpd/client';
import { type ExecuteModuleRequest, formatTimeSpan, parseTimeSpan, type WorkerNode } from '@mpd/contract';
import {
  type AnyModule,
  dependencyName,
  type FailureMode,
  type Pipeline,
  type ResolvedRetryPolicy,
} from '@mpd/pipeline';
import { backoffDelay, createSecretMasker, maskDeep, type SecretMasker } from '@mpd/server-kit';
import type { Logger } from 'pino';
import type { NodeRegistry } from '../registry/node-registry.js';
import { ConcurrencyRules } from './concurrency.js';
import { WorkerPool } from './worker-pool.js';
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
  workerWaitMs?: number;
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
   * How long each module usually takes (ms), by module name: typically the durations of an
   * earlier run (the CLI's `--timings FILE` keeps them between runs). Among ready modules of
   * the same priority, the scheduler starts the one heading the most remaining work first
   * (the longest path of durations through its dependants), which keeps long chains from
   * waiting for slots at the end of the run. A module without a hint counts as the median of
   * the hints given; with no hints at all, every module counts the same (the longest chain
   * in modules).
   * @default {}
   */
  durationHints?: Readonly<Record<string, number>>;
  /**
   * Makes the client of a worker; `headers` carry the worker's credential.
   * @default createWorkerClient({ baseUrl: endpoint, headers, executeMarginMs: timeoutMarginMs, tls: workerTls })
   */
  createClient?: (endpoint: string, headers: Record<string, string> | undefined) => WorkerClient;
}

const PRIORITY_RANK = { Critical: 3, High: 2, Normal: 1, Low: 0 } as const;
const REJECTED_COOL_DOWN_MS = 1_000;
/**
 * Whether ready module `a` is considered before `b`: higher priority first, then the one
 * heading more remaining work (its duration hint plus its dependants'), then pipeline order.
 */
function goesBefore(a: ModuleState, b: ModuleState): boolean {
  if (a.rank !== b.rank) return a.rank > b.rank;
  if (a.height !== b.height) return a.height > b.height;
  return a.order < b.order;
}

/**
 * Each module's remaining work: the longest path through its dependants, itself included,
 * weighted by the modules' duration hints (a module without one weighs the median hint; with
 * no usable hints every module weighs 1, so the height is the longest chain in modules).
 */
export function chainHeights(pipeline: Pipeline, hints: Readonly<Record<string, number>> = {}): Map<string, number> {
  const usable = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value) && value >= 0;
  const known = pipeline.order.map((name) => hints[name]).filter(usable);
  known.sort((a, b) => a - b);
  const fallback = known.length === 0 ? 1 : known[Math.floor(known.length / 2)]!;
  const heights = new Map<string, number>();
  for (let index = pipeline.order.length - 1; index >= 0; index--) {
    const name = pipeline.order[index]!;
    let below = 0;
    for (const dependant of pipeline.dependants.get(name) ?? []) below = Math.max(below, heights.get(dependant)!);
    const own = known.length === 0 ? 1 : usable(hints[name]) ? hints[name] : fallback;
    heights.set(name, below + own);
  }
  return heights;
}

/** A copy of a module's result record, for a listener (the module's `result` value is shared: nothing changes it). */
function copyResult(result: ModuleRunResult): ModuleRunResult {
  const copy: ModuleRunResult = { ...result, attempts: result.attempts.map((attempt) => ({ ...attempt })) };
  for (const attempt of copy.attempts) if (attempt.lateAnswer) attempt.lateAnswer = { ...attempt.lateAnswer };
  if (result.error) copy.error = { ...result.error };
  return copy;
}

/** One key per distinct `requires` ('' for none). */
function requiresKeyOf(requires: AnyModule['requires']): string {
  const { os = [], tools = [], tags = [] } = requires;
  return os.length + tools.length + tags.length === 0 ? '' : JSON.stringify([os, tools, tags]);
}

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
  /** `PRIORITY_RANK` of its priority. */
  readonly rank: number;
  /**
   * The remaining work it heads (see {@link chainHeights}): among ready modules of the same
   * priority, the one heading the most starts first, so that long chains do not end up
   * waiting for slots at the end of the run.
   */
  readonly height: number;
  /** Modules with the same key have the same `requires` (placement is worked out once per key). */
  readonly requiresKey: string;
  /** Names of its required dependencies (`dependsOn`, not `optionalDependsOn`). */
  readonly required: ReadonlySet<string>;
  /** Its params as sent to workers (`serializedModule`). */
  readonly serializedParams: string;
  /** Its timeout as a TimeSpan, as sent to workers. */
  readonly timeout: string;
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
  /** Since when no live worker could run it (for `workerWaitMs`). */
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
  /** Modules in phase `ready`, highest priority first, then in pipeline order. */
  private readonly readyQueue: ModuleState[] = [];
  /** Modules made ready while the queue is being walked: queued when the walk ends. */
  private readonly readyLater: ModuleState[] = [];
  /** How many ready modules have each `requiresKey`, with their requirements. */
  private readonly readyKeys = new Map<string, { count: number; requires: AnyModule['requires'] }>();
  /** Ready modules that no live worker could run when last looked at (their `unplaceableSince` is set). */
  private readonly unplaceable = new Set<ModuleState>();
  private doneCount = 0;
  /** Attempts in flight (and lost attempts still listened to for a late answer). */
  private readonly inFlight = new Map<string, InFlight>();
  /** Unsettled attempts per worker. */
  private readonly runningOnWorker = new Map<string, number>();
  private readonly dispatchedTo = new Map<string, number>();
  /** Workers that just refused work (429/503) get none until then. */
  private readonly coolingUntil = new Map<string, number>();
  /** The live workers, least loaded first. */
  private readonly pool: WorkerPool;
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
  private pumpQueued = false;
  private ended = false;

  constructor(private readonly options: RunPipelineOptions) {
    const { pipeline } = options;
    this.log = options.logger.child({ runId: this.runId, pipeline: pipeline.name });
    const secrets = options.secretEnvironmentVariables ?? {};
    this.environment = { ...options.environmentVariables, ...secrets };
    this.secretNames = Object.keys(secrets);
    this.mask = createSecretMasker(Object.values(secrets));
    this.rules = new ConcurrencyRules(options.maxParallelism ?? pipeline.maxParallelism);
    this.pool = new WorkerPool(options.registry, pipeline.fingerprint, {
      running: (workerId) => this.runningOn(workerId),
      given: (workerId) => this.dispatchedTo.get(workerId) ?? 0,
      cooling: (workerId, now) => (this.coolingUntil.get(workerId) ?? 0) > now,
    });
    this.failureMode = options.failureMode ?? pipeline.failureMode;
    const heights = chainHeights(pipeline, options.durationHints);
    pipeline.order.forEach((name, order) => {
      const definition = pipeline.modules.get(name)!;
      const timeoutMs = definition.timeoutMs ?? pipeline.defaults.timeoutMs;
      const state: ModuleState = {
        name,
        definition,
        order,
        rank: PRIORITY_RANK[definition.priority],
        height: heights.get(name)!,
        requiresKey: requiresKeyOf(definition.requires),
        required: new Set(definition.dependsOn.map(dependencyName)),
        serializedParams: JSON.stringify(definition.params ?? null),
        timeout: formatTimeSpan(timeoutMs),
        retry: definition.retry ?? pipeline.defaults.retry,
        timeoutMs,
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
      // A heartbeat of a worker the pool has changes nothing the scheduler uses.
      if (event.type !== 'heartbeat' || !this.pool.has(event.workerId)) this.pool.invalidate();
      if (event.type === 'offline') this.workerLost(event.workerId, 'missed heartbeats past the timeout');
      this.schedulePump();
    });
    this.timer = setInterval(() => {
      // Also catches what raises no event at once: drained workers, heartbeats overdue but not swept yet.
      this.pool.invalidate();
      this.pump();
    }, this.options.rescheduleIntervalMs ?? 1_000);
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
    const required = state.required;
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
    if (previous === 'ready') this.leaveReady(state);
    if (previous === 'done') this.doneCount--;
    if (phase === 'done') this.doneCount++;
    if (phase === 'ready') {
      if (this.pumping) this.readyLater.push(state);
      else this.enterReady(state);
    }
  }

  /** Where `state` is, or goes, in the ready queue: the first module that does not go before it (binary search). */
  private readyPosition(state: ModuleState): number {
    const queue = this.readyQueue;
    let low = 0;
    let high = queue.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (goesBefore(queue[middle]!, state)) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private enterReady(state: ModuleState): void {
    this.readyQueue.splice(this.readyPosition(state), 0, state);
    const key = this.readyKeys.get(state.requiresKey);
    if (key) key.count++;
    else this.readyKeys.set(state.requiresKey, { count: 1, requires: state.definition.requires });
  }

  private leaveReady(state: ModuleState): void {
    this.unplaceable.delete(state);
    const later = this.readyLater.indexOf(state);
    if (later >= 0) {
      this.readyLater.splice(later, 1);
      return;
    }
    const position = this.readyPosition(state);
    if (this.readyQueue[position] !== state) return;
    this.readyQueue.splice(position, 1);
    const key = this.readyKeys.get(state.requiresKey)!;
    if (--key.count === 0) this.readyKeys.delete(state.requiresKey);
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
    if (this.pumping || this.ended) return;
    this.pumping = true;
    try {
      if (this.readyQueue.length > 0) this.dispatchReady();
    } finally {
      this.pumping = false;
      for (const state of this.readyLater.splice(0)) this.enterReady(state);
    }
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
    const queue = this.readyQueue;
    let index = 0;
    while (index < queue.length) {
      if (!this.pool.hasFreeSlot && !this.mustCheckWaits()) break;
      const state = queue[index]!;
      const outcome = this.consider(state, now);
      // A module that runs alone waits for the others to finish: start nothing past it.
      if (outcome === 'stop') break;
      // Dispatching (or ending) it took it out of the queue: the next one is at the same index.
      if (queue[index] === state) index++;
    }
  }

  /** Requirement keys whose capable workers all turned out full during this walk of the ready queue. */
  private readonly full = new Set<string>();

  /** Whether the walk must go on with no free slot left: a ready module may have no capable worker. */
  private mustCheckWaits(): boolean {
    if (this.unplaceable.size > 0) return true;
    for (const [key, { requires }] of this.readyKeys) if (this.pool.capable(key, requires).length === 0) return true;
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
    state.unplaceableSince = undefined;
    this.unplaceable.delete(state);
    if (this.full.has(state.requiresKey)) return undefined;
    const worker = this.pickWorker(state, capable, now);
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
    state.unplaceableSince ??= now;
    this.unplaceable.add(state);
    const limit = this.options.workerWaitMs ?? 300_000;
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
   * given least work so far, then to registry order; workers the module was lost on only when
   * no other can take it.
   */
  private pickWorker(state: ModuleState, capable: readonly WorkerNode[], now: number): WorkerNode | undefined {
    if (state.lostOn.size === 0 && state.requiresKey === '') return this.pool.pickAny(now);
    const fresh = state.lostOn.size === 0 ? capable : capable.filter((worker) => !state.lostOn.has(worker.id));
    return this.pool.pickAmong(fresh.length > 0 ? fresh : capable, now);
  }

  private runningOn(workerId: string): number {
    return this.runningOnWorker.get(workerId) ?? 0;
  }

  private dispatch(state: ModuleState, worker: WorkerNode): void {
    const { pipeline } = this.options;
    const attempt = state.result.attempts.length + 1;
    const executionId = `${this.runId}.${state.name}.${attempt}`;
    const now = new Date().toISOString();
    const record: AttemptRecord = { executionId, workerId: worker.id, startTime: now, outcome: 'Running' };
    state.result.attempts.push(record);
    this.setPhase(state, 'running');
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
    this.runningOnWorker.set(worker.id, this.runningOn(worker.id) + 1);
    this.rules.started(state.definition);
    this.dispatchedTo.set(worker.id, (this.dispatchedTo.get(worker.id) ?? 0) + 1);
    this.pool.update(worker.id, Date.now());

    const dependencyResults: Record<string, string> = {};
    for (const dependency of pipeline.dependencies.get(state.name) ?? []) {
      const serialized = this.modules.get(dependency)!.serializedResult;
      if (serialized !== undefined) dependencyResults[dependency] = serialized;
    }
    // debug: 'module finished' (info) names the worker, and the progress output shows each start.
    this.log.debug({ module: state.name, workerId: worker.id, executionId }, 'module dispatched');
    this.emit({ type: 'module-started', module: state.name, workerId: worker.id, executionId, attempt });

    void this.execute(flight, {
      executionId,
      moduleTypeName: state.name,
      serializedModule: state.serializedParams,
      dependencyResults,
      environmentVariables: this.environment,
      ...(this.secretNames.length > 0 ? { secretEnvironmentVariables: this.secretNames } : {}),
      ...(this.options.workingDirectory ? { workingDirectory: this.options.workingDirectory } : {}),
      timeout: state.timeout,
      timestamp: now,
    });
  }

  /** Sends the execute call of an attempt and handles its answer (a method, not closures per attempt). */
  private async execute(flight: InFlight, body: ExecuteModuleRequest): Promise<void> {
    try {
      let response: { status: number; body: unknown };
      try {
        response = await this.clientFor(flight).execution.execute({
          body,
          fetchOptions: { signal: flight.controller.signal },
        });
      } catch (error) {
        this.onTransportError(flight, error);
        return;
      }
      this.onResponse(flight, response);
    } catch (error) {
      this.log.error({ err: error, executionId: body.executionId }, 'handling an execute answer failed');
      this.schedulePump();
    }
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
        this.pool.update(flight.workerId, Date.now());
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
    if (!flight.settled) {
      // A slot is free: whatever else this answer changes, the ready modules get another look.
      this.runningOnWorker.set(flight.workerId, this.runningOn(flight.workerId) - 1);
      this.rules.ended(flight.module.definition);
      this.pool.update(flight.workerId, Date.now());
      this.schedulePump();
    }
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
      const delayMs = backoffDelay(state.failures - 1, state.retry.backoffMs, state.retry.maxBackoffMs);
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
    this.setPhase(state, 'done');
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
    this.setPhase(state, 'done');
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
    if (this.ended || this.doneCount < this.modules.size) return;
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
    const modules = [...this.modules.values()].map((state) =>
      this.secretNames.length > 0 ? maskDeep(state.result, this.mask) : copyResult(state.result),
    );
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

  /** Reports progress, with secrets masked. */
  private emit(event: RunEvent): void {
    const { onEvent } = this.options;
    if (!onEvent) return;
    if (this.secretNames.length > 0) {
      onEvent(maskDeep(event, this.mask));
      return;
    }
    // Nothing to mask: only a module's result record needs copying (the run goes on changing its own).
    onEvent(event.type === 'module-finished' ? { ...event, result: copyResult(event.result) } : event);
  }

  /** A client of the attempt's worker, sending the worker's credential. */
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
