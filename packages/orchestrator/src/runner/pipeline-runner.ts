import { randomBytes } from 'node:crypto';
import {
  type ExecuteModuleRequest,
  executeAnswerLimit,
  type OutputLine,
  formatTimeSpan,
  isoTime,
  parseTimeSpan,
  retryAfterMs,
  type WorkerNode,
} from '@mpd/contract';
import { backoffDelay } from '@mpd/server-kit';
import type { Logger } from 'pino';
import type { NodeRegistryEvent } from '../registry/node-registry.js';
import {
  type Attempt,
  type AttemptEnd,
  type AttemptVerdict,
  type ExecuteAnswer,
  type ExecutionTimes,
  isWorkersAnswer,
  judgeAnswer,
  lateOutcome,
  type ModuleError,
} from './attempt.js';
import {
  type AttemptCallsOptions,
  type CallsEnd,
  COLLECT_WINDOW_MS,
  collectOutcome,
  NEVER_LISTED_GRACE_MS,
  resendNow,
  sendExecute,
  stopCalls,
} from './attempt-calls.js';
import { CancelDesk, SETTLED } from './cancels.js';
import { chainHeights } from './chain-heights.js';
import { ConcurrencyRules } from './concurrency.js';
import { createModuleStates, FAILED, type ModuleState, type Phase } from './module-state.js';
import { Quarantine, REFUSAL_PROBATION } from './quarantine.js';
import { ReadyQueue } from './ready-queue.js';
import { executeRequestProblem } from './request-size.js';
import { categoryFilterReason, dependencyResults, dependencyVerdict } from './readiness.js';
import { noCapableWorkerReason, noLiveWorkerCanRun } from './requirement-messages.js';
import { type RunClock, RunTimers } from './run-clock.js';
import { type ResolvedRunOptions, resolveRunOptions, type RunPipelineOptions } from './run-options.js';
import { attemptLogFile, type ExecutionLogEntry } from './execution-logs.js';
import { waitForOutput } from './output-wait.js';
import { RunReporter } from './run-report.js';
import { type AttemptRecord, type ModuleStatus, type RunEvent, type RunResult, SUCCEEDED } from './run-result.js';
import { WorkerClients } from './worker-clients.js';
import { WorkerLoads } from './worker-loads.js';
import { WorkerPool } from './worker-pool.js';

/** A worker that refused work (429/503) gets none for this long (ms). */
const REJECTED_COOL_DOWN_MS = 1_000;

/** Delays before a lost module is dispatched again (ms): 250 ms, doubling with each loss up to 5 s, with jitter. */
const LOST_BACKOFF = { initialMs: 250, maxMs: 5_000 } as const;

/**
 * How long after its worker's heartbeats stop listing a running attempt, while its call is
 * still out, the run asks for its outcome again (ms): a finished execution's answer normally
 * arrives before that heartbeat, so its answer was lost on the way. It doubles with each ask
 * (a large result still on its way gets longer), up to {@link COLLECT_GRACE_MAX_MS}.
 */
const COLLECT_GRACE_MS = 3_000;
const COLLECT_GRACE_MAX_MS = 60_000;

/**
 * Verdicts on an answer carrying the contract's own body (see `isWorkersAnswer`) that say the
 * worker ran nothing for the call it answers: it refused the request with its error body
 * (429/503; 400, 404 `ModuleNotFound`, 409 `ExecutionIdConflict`, 413, 415), or another mpd
 * server did (`broken`: 401/403 to the worker's credential, 404 `RouteNotFound`). Without an
 * earlier call that may have reached the worker, no output comes for the attempt (see
 * `PipelineRun.dropLog`). The rule holds only for those bodies: a gateway's page or bare
 * 429/503 may come after it passed the call on (see `PipelineRun.notWorkersAnswer`).
 */
const RAN_NOTHING: ReadonlySet<AttemptVerdict['kind']> = new Set(['rejected', 'dispatch-rejected', 'broken']);

/**
 * How long past its deadline (`Attempt.deadlineAt`: its module's timeout plus the margin after
 * its dispatch) an abandoned attempt may go on stopping on its worker (ms): the worker's kill
 * grace (`--kill-grace`, 10 s by default) and the heartbeats that show it stopped fit in it.
 * Past it, its module ends `TimedOut` for good, naming the worker (see `overdue`).
 */
const ABANDONED_STOP_ALLOWANCE_MS = 60_000;

/** Heartbeats in a row that must leave out an abandoned attempt before it counts as no longer running. */
const UNLISTED_BEATS_TO_END = 2;

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
 * its requirements, not quarantined) has a free slot, in priority order, within the
 * cluster-wide concurrency rules. Every dispatch is an attempt with its own `executionId`.
 *
 * At most one attempt of a module is live at a time: an execute call that fails on the way is
 * sent again, with the same `executionId`, to the same worker while it is live (see
 * `sendExecute`); an attempt whose worker is lost is dispatched again elsewhere only once the
 * earlier attempt can no longer be running (answered, its worker offline, gone or replaced,
 * its cancel answered 404, or no longer listed by its worker's heartbeats: a cancel answered
 * 200 means "stopping", and a module host's group may run on for the kill grace), and the cancel of
 * every abandoned attempt is retried until acknowledged (see `CancelDesk`). A failed attempt
 * is retried per the module's policy. A module's first successful answer is accepted, once,
 * whichever attempt gives it.
 * @throws OrchestratorConfigError (the promise rejects) when an option has a value that cannot work.
 */
export async function runPipeline(options: RunPipelineOptions): Promise<RunResult> {
  return new PipelineRun(resolveRunOptions(options)).start();
}

/**
 * Whether the collect of an abandoned attempt's kept outcome (`collectOutcome`) got that outcome:
 * the worker's own answer carrying a module's end (a success, a failure, a timeout, a cancel).
 * Anything else ran nothing and says nothing of the outcome: a refusal (429/503, such as
 * `WorkerNotReady` while the worker registers again), 401/403, another 4xx, the worker's own 500
 * error body, an answer that is not the worker's, or a failure on the way (round P, R1).
 */
function keptOutcomeCollected(end: CallsEnd, maxResultBytes: number | undefined): boolean {
  if (end.kind !== 'answer' || !isWorkersAnswer(end.answer)) return false;
  return OUTCOMES.has(judgeAnswer(end.answer, maxResultBytes).kind);
}

/** Verdicts on an answer that carry a module's end (what a worker keeps of a finished execution). */
const OUTCOMES: ReadonlySet<AttemptVerdict['kind']> = new Set(['succeeded', 'failed', 'timed-out', 'cancelled']);

/** How a collect that got no outcome ended, for the log. */
function collectEndOf(end: CallsEnd): string {
  if (end.kind === 'answer') return `answered ${end.answer.status}`;
  if (end.kind === 'failure') return `${end.verdict.kind}${'reason' in end.verdict ? `: ${end.verdict.reason}` : ''}`;
  return end.kind;
}

/** Where an {@link AttemptLog} reports its lines (the run's reporter, while the run takes output). */
interface OutputSink {
  emit(event: Extract<RunEvent, { type: 'output' }>): void;
}

/**
 * The log entry of one attempt (see `ExecutionLogs.open`): its methods report its lines and record
 * its file. One object with methods per attempt, where an object literal with two closures was
 * made per module, each of which tsx's `keepNames` named with an `Object.defineProperty` (1.3 %
 * of the orchestrator's main thread through the CLIs, issue 14, round V).
 */
class AttemptLog implements ExecutionLogEntry {
  readonly executionId: string;

  constructor(
    private readonly record: AttemptRecord,
    readonly workerId: string,
    readonly module: string,
    readonly attempt: number,
    readonly file: string | undefined,
    private readonly sink: OutputSink,
  ) {
    this.executionId = record.executionId;
  }

  /** Referenced once it exists: an attempt that wrote nothing has no file. */
  onFile(made: string): void {
    this.record.log = made;
  }

  onLines(lines: OutputLine[], closed: boolean): void {
    const { module, attempt, workerId } = this;
    this.sink.emit(
      closed
        ? { type: 'output', module, attempt, workerId, lines, closed }
        : { type: 'output', module, attempt, workerId, lines },
    );
  }
}

/** One run of a pipeline: the lifecycle of its modules and attempts. */
class PipelineRun {
  private readonly runId = `run-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  private readonly modules: ReadonlyMap<string, ModuleState>;
  private readonly ready = new ReadyQueue();
  private doneCount = 0;
  /**
   * Attempts the run still minds: running ones, abandoned ones that may still be running, and
   * those whose call is still out (listened to for a late answer); by executionId.
   */
  private readonly attempts = new Map<string, Attempt>();
  /** The same attempts, by worker. */
  private readonly attemptsOn = new Map<string, Set<Attempt>>();
  private readonly loads = new WorkerLoads();
  /** The live workers, least loaded first. */
  private readonly pool: WorkerPool;
  private readonly clients: WorkerClients;
  private readonly reporter: RunReporter;
  private readonly clock: RunClock;
  private readonly timers: RunTimers;
  private readonly startedAt: Date;
  private readonly rules: ConcurrencyRules;
  private readonly log: Logger;
  /** Workers the run does not dispatch to (their endpoint refused it, or is not theirs). */
  private readonly quarantine = new Quarantine();
  /** How many times each worker registered since the run started: which start of it an attempt went to. */
  private readonly generations = new Map<string, number>();
  /**
   * The incarnation of each worker's start the run last saw (when it dispatched to it, or saw it
   * register; `undefined`: an older worker that names none): a registration under another one
   * is a new start, whose refusals begin afresh, even when the old entry had gone from the
   * registry (unregistered, or removed after Offline) and it arrives as `registered`, not
   * `replaced` (round P review, R1).
   */
  private readonly incarnations = new Map<string, string | undefined>();
  /**
   * Whether each worker's start lists its executions in its heartbeats, learnt from them (the
   * registry forgets `executions` at every registration, and the first heartbeat comes an
   * interval later): sticky for that start once a heartbeat listed them (`true`); `false` once a
   * heartbeat came without (an older worker); unknown (no entry, or one of another start) until
   * then. Keyed by worker id, for the start in `generation` under `incarnation`.
   */
  private readonly listsExecutions = new Map<
    string,
    { generation: number; incarnation: string | undefined; lists: boolean }
  >();
  private readonly cancels: CancelDesk;
  private readonly calls: AttemptCallsOptions;
  /** Environment of every module: the plain variables and the secret ones. */
  private readonly environment: Record<string, string>;
  private readonly secretNames: string[];
  private state: RunState = { kind: 'running' };
  /** Set once the run stopped taking its modules' output (see outputSettled): no `output` event follows. */
  private outputDone = false;
  private finish!: (result: RunResult) => void;
  private unsubscribe: (() => void) | undefined;
  private pumpQueued = false;
  /** Modules that ended and whose dependants are being told (see afterEnd). */
  private readonly endedModules: ModuleState[] = [];
  private releasing = false;
  /** Requirement keys whose capable workers all turned out full during this walk of the ready queue. */
  private readonly full = new Set<string>();
  private readonly onAbort = (): void => this.stop('cancel', 'the run was cancelled');

  constructor(private readonly options: ResolvedRunOptions) {
    const { pipeline, registry } = options;
    this.log = options.logger.child({ runId: this.runId, pipeline: pipeline.name });
    this.clock = options.clock;
    this.timers = new RunTimers(options.clock);
    this.startedAt = new Date(this.clock.now());
    const secrets = options.secretEnvironmentVariables;
    this.environment = { ...options.environmentVariables, ...secrets };
    this.secretNames = Object.keys(secrets);
    this.reporter = new RunReporter(options.onEvent, secrets);
    this.rules = new ConcurrencyRules(options.maxParallelism);
    this.pool = new WorkerPool(registry, pipeline.fingerprint, this.loads, (workerId) =>
      this.quarantine.empty ? false : this.quarantine.has(workerId),
    );
    this.clients = new WorkerClients(options.createClient);
    this.modules = createModuleStates(pipeline, chainHeights(pipeline, options.durationHints));
    this.cancels = new CancelDesk({
      registry,
      clients: this.clients,
      timers: this.timers,
      logger: this.log,
      onAcknowledged: (attempt) => {
        // A cancel reaches the id's current process: a new one does not run the old one's attempts.
        if (attempt.generation === (this.generations.get(attempt.workerId) ?? 0))
          this.ended(attempt, 'cancel-acknowledged');
      },
      onStopping: (attempt) => this.cancelStopping(attempt),
      onFinished: (attempt, keptForMs) => this.cancelFoundFinished(attempt, keptForMs),
      onUnanswered: (attempt) => this.cancelUnanswered(attempt),
    });
    this.calls = {
      registry,
      clients: this.clients,
      timers: this.timers,
      logger: this.log,
      maxResponseBytes: executeAnswerLimit(options.maxResultBytes),
      live: (attempt) => this.workerLive(attempt),
    };
  }

  start(): Promise<RunResult> {
    const done = new Promise<RunResult>((resolve) => (this.finish = resolve));
    const { signal, registry } = this.options;
    this.unsubscribe = registry.onChange((event) => this.registryChanged(event));
    this.tick();
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

  /** Looks at the registry again every `rescheduleIntervalMs`, besides its change events. */
  private tick(): void {
    this.timers.after(this.options.rescheduleIntervalMs, () => {
      // Also catches what raises no event at once: drained workers, heartbeats overdue but not swept yet.
      this.pool.invalidate();
      this.pump();
      this.tick();
    });
  }

  /** Whether the run stopped starting modules (a failure under StopOnFirstFailure, or a cancel). */
  private get stopping(): boolean {
    return this.state.kind === 'stopping' || this.state.kind === 'cancelling';
  }

  private isoNow(): string {
    return isoTime(this.clock.now());
  }

  // --- Workers ---------------------------------------------------------------------------

  private registryChanged(event: NodeRegistryEvent): void {
    const { type, workerId } = event;
    switch (type) {
      case 'heartbeat':
        this.sighted(workerId);
        break;
      case 'registered':
        // The same process registering again (the orchestrator restarted, or forgot it) keeps
        // its attempts; a new process under the id comes as 'replaced' first, unless its
        // predecessor's entry had gone (then only its incarnation tells).
        this.registered(workerId);
        break;
      case 'replaced':
        this.newStart(workerId);
        this.workerReplaced(workerId, event.leaseRemainingMs ?? 0);
        break;
      case 'offline':
        this.workerLost(workerId, 'worker-offline', 'missed heartbeats past the timeout');
        break;
      case 'unregistered':
        this.workerUnregistered(workerId, event.leaseRemainingMs ?? 0);
        break;
      case 'removed':
        // Its `offline` came first (its attempts were lost then): this only ends what a run that
        // started watching later still minds.
        this.workerLost(workerId, 'worker-offline', 'removed after the offline retention');
        break;
    }
    // After the above: a registration lifts a quarantine, which makes the worker usable again.
    this.pool.changed(workerId, type);
    this.schedulePump();
  }

  /** The attempts the run minds on `workerId`. */
  private attemptsOnWorker(workerId: string): readonly Attempt[] {
    const attempts = this.attemptsOn.get(workerId);
    return attempts ? [...attempts] : [];
  }

  /** `workerId` registered (again): a new start of it, or new details; its quarantine ends. */
  private newStart(workerId: string): void {
    this.generations.set(workerId, (this.generations.get(workerId) ?? 0) + 1);
    // A new process starts its refusals afresh (its probation the first one again).
    if (this.quarantine.newStart(workerId)) {
      this.log.info({ workerId }, 'worker registered again: its quarantine for this run is over');
    }
  }

  /**
   * The worker registered (again): a quarantine for this run is over. Under another incarnation
   * than the run last saw of it, a new start: its refusals are forgotten too (as on `replaced`).
   */
  private registered(workerId: string): void {
    const incarnation = this.options.registry.incarnationOf(workerId);
    const newStart = this.incarnations.has(workerId) && this.incarnations.get(workerId) !== incarnation;
    this.incarnations.set(workerId, incarnation);
    if (newStart ? this.quarantine.newStart(workerId) : this.quarantine.registered(workerId)) {
      this.log.info({ workerId }, 'worker registered again: its quarantine for this run is over');
    }
  }

  /** Whether the worker process an attempt went to is still registered and live: re-sends go to it. */
  private workerLive(attempt: Attempt): boolean {
    const worker = this.options.registry.snapshotOf(attempt.workerId);
    return (
      worker !== undefined &&
      worker.status !== 'Offline' &&
      (this.generations.get(attempt.workerId) ?? 0) === attempt.generation
    );
  }

  /**
   * Another process registered under `workerId`: every running attempt of the old process is
   * lost at once (its slot is free, the module is queued again), but ends — a new attempt of its
   * module may start — only once the old process's heartbeat lease has ended, in
   * `leaseRemainingMs`: until then a frozen old process's module hosts may still run it (they kill
   * their groups when the lease ends), and so may a cut-off old process (it fences itself by
   * then). Neither a cancel acknowledged by the new process nor its heartbeats say anything of
   * the old one's attempts (see `ended`, `sighted`). `how` 'unregistered': the process was
   * unregistered instead (see `workerUnregistered`).
   */
  private workerReplaced(
    workerId: string,
    leaseRemainingMs: number,
    how: 'replaced' | 'unregistered' = 'replaced',
  ): void {
    const reason =
      how === 'replaced' ? 'was replaced by a new process under its id' : 'was unregistered while it ran modules';
    const generation = this.generations.get(workerId) ?? 0;
    const old = this.attemptsOnWorker(workerId).filter((attempt) => attempt.generation < generation);
    for (const attempt of old) {
      if (attempt.state === 'running') this.lost(attempt, `worker ${workerId} ${reason}`);
    }
    const leaseEnded = (): void => {
      for (const attempt of old) this.ended(attempt, 'lease-ended');
    };
    if (leaseRemainingMs <= 0) leaseEnded();
    else {
      if (old.some((attempt) => attempt.ended === undefined)) {
        this.log.info(
          { workerId, leaseRemainingMs },
          `the ${how} process's attempts run again once its heartbeat lease has ended`,
        );
      }
      this.timers.after(leaseRemainingMs, leaseEnded);
    }
  }

  /**
   * `workerId` was unregistered. A worker unregisters itself once drained (nothing running: this
   * ends nothing), but an admin's unregister, or anyone's in a cluster without tokens, may remove
   * a live process that runs modules: its attempts are lost at once (their modules queued again)
   * but end, as a replaced process's do, only once its heartbeat lease has ended, in
   * `leaseRemainingMs`; until then it may run them still. It fences itself by then: its
   * heartbeats are answered 404 (or 401), and it cancels what it runs at once; a partitioned
   * process fences at its renew deadline. Whoever registers under the id next is a new start of
   * it: its heartbeats say nothing of these attempts (a stranger may take the freed id).
   */
  private workerUnregistered(workerId: string, leaseRemainingMs: number): void {
    const minded = this.attemptsOnWorker(workerId).filter((attempt) => attempt.ended === undefined);
    if (minded.length === 0) return;
    this.generations.set(workerId, (this.generations.get(workerId) ?? 0) + 1);
    this.workerReplaced(workerId, leaseRemainingMs, 'unregistered');
  }

  /** Declares every running attempt on `workerId` lost, and every abandoned one ended, for `end`. */
  private workerLost(workerId: string, end: AttemptEnd, reason: string): void {
    for (const attempt of this.attemptsOnWorker(workerId)) {
      if (attempt.state === 'running') this.lost(attempt, `worker ${workerId} ${reason}`, { end });
      else this.ended(attempt, end);
    }
  }

  /**
   * A heartbeat of `workerId`: a refused worker past its probation is out of quarantine, and
   * the executions it lists tell which attempts still run there. A running attempt whose call
   * is out but which the worker no longer runs finished there, its answer lost on the way: the
   * run asks for its outcome again (see `collect`). An abandoned attempt it no longer runs has
   * ended.
   */
  private sighted(workerId: string): void {
    const now = this.clock.now();
    if (this.quarantine.heartbeat(workerId, now)) {
      this.log.info({ workerId }, 'worker heartbeats past its probation: its quarantine for this run is over');
      this.pool.invalidate();
    }
    const { registry } = this.options;
    const executions = registry.executionsOf(workerId);
    const lists = this.learnListsExecutions(workerId, executions !== undefined);
    const attempts = this.attemptsOn.get(workerId);
    if (!attempts || attempts.size === 0) return;
    const generation = this.generations.get(workerId) ?? 0;
    if (executions === undefined) {
      if (lists) return; // this start lists them: a heartbeat without says nothing
      // An older worker: it cannot show when an execution stopped, and its 200 ends the attempt
      // (a 200 that came before its first heartbeat waited for this one; see cancelStopping).
      for (const attempt of [...attempts])
        if (attempt.generation === generation && attempt.sightings.stoppingUndecidedAt !== undefined)
          this.ended(attempt, 'cancel-acknowledged');
      return;
    }
    const finished = registry.finishedOf(workerId);
    for (const attempt of [...attempts]) {
      // A new process under the id lists only its own executions (see workerReplaced).
      if (attempt.generation !== generation) continue;
      const sightings = attempt.sightings;
      if (executions.includes(attempt.record.executionId)) {
        sightings.listedAt = now;
        sightings.unlistedSince = undefined;
        sightings.unlistedBeats = 0;
        continue;
      }
      const kept = finished?.includes(attempt.record.executionId) === true;
      if (attempt.state === 'running') {
        // It ran and finished there since the worker's last heartbeat, perhaps between two (so
        // never listed as running), and its outcome is kept: it reached the worker, and is no
        // "never listed" call to hand over as lost (a module that ran would run again
        // elsewhere): its outcome is collected as any unlisted attempt's (round N, N3).
        if (kept) sightings.listedAt = now;
        else sightings.unlistedBeatAt = now;
        // Named so only until this heartbeat is acknowledged: should the attempt be lost and
        // abandoned later, the heartbeats that leave it out must not end it (review S, 1).
        if (kept && attempt.module.phase !== 'done') sightings.keptAt ??= now;
        if (attempt.call === undefined) continue;
        sightings.unlistedSince ??= now;
        if (!sightings.disarm) this.armCollect(attempt, collectGrace(sightings.collects));
      } else if (attempt.state === 'abandoned') {
        // Named `finished` while its module has not ended: its outcome is kept there (perhaps
        // the module's success), collected before the module may run again. The worker names it
        // so only until a heartbeat carrying it is acknowledged: the heartbeats after that leave
        // it out, and must not count as "runs nowhere" (which would run the module again with
        // its kept outcome never asked for; round P, O2's gap).
        if (kept && attempt.module.phase !== 'done') sightings.keptAt ??= now;
        if (sightings.keptAt !== undefined) {
          if (attempt.callsDone) this.collectKept(attempt, now);
          continue;
        }
        // Not one the worker names `finished`: it ran there, so it is no evidence that the
        // module runs nowhere (review N3, 2).
        if (!kept && ++sightings.unlistedBeats >= UNLISTED_BEATS_TO_END) this.ended(attempt, 'not-listed');
      }
    }
  }

  /**
   * Asks, with the same `executionId` and request, for the outcome of an abandoned attempt
   * whose worker named it `finished` ({@link AttemptSightings.keptAt}), its calls being over: the
   * worker answers the outcome it kept, never runs it again (a finished execution's outcome
   * stays its answer, cancelled or not). Its answer is judged as a late one (a success accepted
   * while the module has not ended). Not past {@link COLLECT_WINDOW_MS} after it was named (the
   * worker keeps outcomes `completedRetentionMs`, 10 minutes by default: later the request would
   * run the module again there), nor once its module ended or another start of the worker
   * replaced the one that ran it, nor past the `keptForMs` its cancel's 404 said
   * ({@link AttemptSightings.keptUntil}). Sent with the credential it was dispatched with: a new process
   * under the id holds another and refuses it (401), running nothing. A collect that gets no
   * outcome (see `keptOutcomeCollected`: a refusal such as 503 `WorkerNotReady` while the worker
   * registers again, 401, a failure on the way) ends nothing: the next heartbeat asks again, one
   * collect out at a time, within the window; past it, the attempt ends as before, on two
   * heartbeats that leave it out. Once no collect can be made (past the window, its module ended,
   * another start of its worker, the run ended), its request (`attempt.body`) is released.
   */
  private collectKept(attempt: Attempt, now: number): void {
    const { sightings, body } = attempt;
    const keptAt = sightings.keptAt!;
    const current = attempt.generation === (this.generations.get(attempt.workerId) ?? 0);
    if (
      attempt.module.phase === 'done' ||
      !current ||
      now - keptAt > COLLECT_WINDOW_MS ||
      now > (sightings.keptUntil ?? Infinity) ||
      attempt.stopped ||
      body === undefined
    ) {
      sightings.keptAt = undefined;
      // No collect of it can be made any more: its request is not kept for one (round R, R1).
      attempt.body = undefined;
      return;
    }
    attempt.callsDone = false;
    this.log.info(
      { module: attempt.module.name, workerId: attempt.workerId, executionId: attempt.record.executionId },
      'its worker finished an abandoned attempt: asking for the outcome it kept',
    );
    void (async () => {
      let collected = true;
      try {
        const end = await collectOutcome(attempt, body, this.calls);
        collected = keptOutcomeCollected(end, this.options.maxResultBytes);
        if (collected) this.callsEnded(attempt, end);
        else
          this.log.info(
            { executionId: attempt.record.executionId, workerId: attempt.workerId, end: collectEndOf(end) },
            'the collect of an abandoned attempt got no outcome (the worker ran nothing): asking again at its next heartbeat',
          );
      } catch (error) {
        this.log.error({ err: error, executionId: attempt.record.executionId }, 'handling a collected answer failed');
      } finally {
        // Not collected (refused, not ready, another server's or a gateway's answer, a failure on
        // the way): the outcome is still kept there, so the attempt stays unended and `keptAt`
        // stays, and the next heartbeat asks again (within COLLECT_WINDOW_MS; round P, R1).
        if (collected) {
          sightings.keptAt = undefined;
          sightings.unlistedBeats = 0;
        }
        attempt.callsDone = true;
        this.retire(attempt);
        this.schedulePump();
      }
    })();
  }

  /**
   * The attempt's worker answered its cancel 404 with `finished: true`: the attempt ran there and
   * finished before the cancel came, and its outcome is kept (perhaps the module's success). An
   * abandoned attempt is not ended ("runs nowhere" would let the module run again elsewhere, and
   * the kept outcome would never be asked for: a module with side effects ran twice; round R,
   * R1): its outcome is collected first, as one its worker's heartbeat named `finished`
   * ({@link PipelineRun.collectKept}: a success accepted while the module has not ended; a
   * collect that gets nothing asked again at the next heartbeat, within COLLECT_WINDOW_MS, then
   * the end on two heartbeats that leave it out). A running attempt (cancelled as the run stops)
   * is not ended either: its call is out and brings the outcome, or its collect does. One whose
   * module has ended runs nowhere and has nothing left to give: it ends as acknowledged. A
   * cancel answered by another process under the worker's id says nothing of it (as for
   * `onAcknowledged`).
   */
  private cancelFoundFinished(attempt: Attempt, keptForMs: number | undefined): void {
    if (attempt.ended !== undefined || attempt.generation !== (this.generations.get(attempt.workerId) ?? 0)) return;
    if (attempt.module.phase === 'done') {
      this.ended(attempt, 'cancel-acknowledged');
      return;
    }
    if (attempt.state !== 'abandoned') return;
    const now = this.clock.now();
    attempt.sightings.keptAt ??= now;
    // Kept there only so much longer, counted from its finish (review S, 3).
    if (keptForMs !== undefined) attempt.sightings.keptUntil = now + keptForMs;
    // Its calls still out (a late answer listened to): the next heartbeat collects it once they are over.
    if (attempt.callsDone) this.collectKept(attempt, now);
  }

  /**
   * The attempt's worker answered its cancel 200: it runs the execution and is stopping it. Not
   * "it runs nowhere" yet (round R, R6): a module host's process group gets SIGTERM, then SIGKILL
   * only after the worker's kill grace (`--kill-grace`, 10 s by default), and a module that
   * ignores SIGTERM runs on until then, with its child processes; ending the attempt here let its
   * module start on another worker beside it, breaking "at most once at a time". As a Buildkite
   * job cancelled is over only once its agent reports it finished after its cancel grace, and a
   * StatefulSet's replacement pod waits for the old one's termination, the attempt stays unended
   * until its worker shows it stopped: its heartbeats list an execution until its process group
   * is gone (the worker's `ModuleExecutor.executionIds()`: its entry leaves once the execution's `stopped`
   * resolves, after the group's end in a module host), then name it `finished`, and its outcome
   * is collected (`collectKept`: Cancelled, or the module's success when the cancel came too
   * late to stop it); or its call's answer arrives (in a module host, once the group is gone;
   * under `--isolation none` at the cancel, while the module's code may run on: the answer ends
   * the attempt then); or two
   * heartbeats leave it out; or its worker goes offline, unregisters or is replaced (the rules
   * of `sighted` and `workerLost`). An older worker whose heartbeats list no executions cannot
   * show that: its 200 ends the attempt as before, once a heartbeat of its start has shown it
   * lists none (at the 200 when one came before, else at the next: see `listsExecutions`). A 200 from another process under the id
   * says nothing of this attempt (as for `onAcknowledged`).
   */
  private cancelStopping(attempt: Attempt): void {
    if (attempt.ended !== undefined || attempt.generation !== (this.generations.get(attempt.workerId) ?? 0)) return;
    const lists = this.knowsListsExecutions(attempt.workerId);
    if (lists === false) {
      this.ended(attempt, 'cancel-acknowledged');
      return;
    }
    if (lists === undefined) {
      // No heartbeat of this start yet (the registry forgets `executions` at each registration,
      // and the first heartbeat comes an interval later): an older worker cannot be told from a
      // new one yet, and ending here would run the module elsewhere beside it. The next
      // heartbeat decides (see sighted).
      attempt.sightings.stoppingUndecidedAt = this.clock.now();
    }
    // Only heartbeats after the worker said it runs it count as leaving it out.
    attempt.sightings.unlistedBeats = 0;
    this.log.info(
      { module: attempt.module.name, workerId: attempt.workerId, executionId: attempt.record.executionId },
      'cancel accepted: the attempt counts as running there until its worker shows it stopped',
    );
  }

  /**
   * Whether `workerId`'s current start lists its executions in its heartbeats: `true` once one
   * did (sticky for the start), `false` once one came without, `undefined` while none has come
   * since it registered (see {@link PipelineRun.listsExecutions}).
   */
  private knowsListsExecutions(workerId: string): boolean | undefined {
    const known = this.listsExecutions.get(workerId);
    if (
      known === undefined ||
      known.generation !== (this.generations.get(workerId) ?? 0) ||
      known.incarnation !== this.options.registry.incarnationOf(workerId)
    )
      return undefined;
    return known.lists;
  }

  /** Learns from a heartbeat of `workerId` whether its start lists its executions; returns what is known now. */
  private learnListsExecutions(workerId: string, listed: boolean): boolean {
    const lists = listed || this.knowsListsExecutions(workerId) === true;
    this.listsExecutions.set(workerId, {
      generation: this.generations.get(workerId) ?? 0,
      incarnation: this.options.registry.incarnationOf(workerId),
      lists,
    });
    return lists;
  }

  private armCollect(attempt: Attempt, delayMs: number): void {
    attempt.sightings.disarm = this.timers.after(delayMs, () => {
      attempt.sightings.disarm = undefined;
      this.collect(attempt);
    });
  }

  /**
   * Asks again (same `executionId`, a fresh connection) for the outcome of a running attempt
   * whose worker no longer lists it, once that has lasted the grace period and its call has been
   * out as long: the worker answers the outcome it kept. Past {@link COLLECT_WINDOW_MS} the
   * outcome is no longer kept: the attempt is lost.
   */
  private collect(attempt: Attempt): void {
    const { sightings, call } = attempt;
    if (attempt.state !== 'running' || call === undefined || sightings.unlistedSince === undefined) return;
    const now = this.clock.now();
    const grace = collectGrace(sightings.collects);
    const since = Math.max(sightings.unlistedSince, call.sentAt);
    const waitMs =
      sightings.listedAt === undefined
        ? Math.max(grace - (now - since), NEVER_LISTED_GRACE_MS - (now - call.sentAt))
        : grace - (now - since);
    if (waitMs > 0) {
      this.armCollect(attempt, waitMs);
      return;
    }
    if (sightings.listedAt !== undefined && now - sightings.unlistedSince > COLLECT_WINDOW_MS) {
      this.ended(attempt, 'not-listed');
      this.lost(
        attempt,
        `its worker finished it ${formatTimeSpan(now - sightings.unlistedSince)} ago and its answer could not be collected`,
      );
      return;
    }
    sightings.collects++;
    this.log.info(
      { module: attempt.module.name, workerId: attempt.workerId, executionId: attempt.record.executionId },
      'the worker no longer runs the attempt and its answer has not arrived: asking for its outcome again',
    );
    resendNow(attempt);
  }

  /** Quarantines `workerId` for the run (see {@link Quarantine}). */
  private quarantineWorker(workerId: string, kind: 'refused' | 'broken', reason: string, retryAfterMs?: number): void {
    if (!this.quarantine.add(workerId, kind, reason, this.clock.now(), retryAfterMs)) return;
    this.log.warn({ workerId, kind, reason }, 'worker quarantined for this run');
    this.pool.invalidate();
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
    const now = this.clock.now();
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
    // An earlier attempt may still run (its worker unreachable but not yet offline, its cancel
    // not yet acknowledged): a new one would run beside it.
    if (state.unended.size > 0) return undefined;
    if (this.rules.blocker(state.definition)) return state.definition.notInParallel === 'all' ? 'stop' : undefined;
    const capable = this.pool.capable(state.requiresKey, state.definition.requires);
    if (capable.length === 0) {
      this.waitForCapableWorker(state, now);
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

  /**
   * Fails a module that no live worker could run for `workerWaitMs`, naming every registered
   * worker and why it does not fit (with `workerWaitMs` 0, at once: naming what it asks for). A cancelled run waits for no worker: an always-run module
   * that no live worker can run then ends not run at once.
   */
  private waitForCapableWorker(state: ModuleState, now: number): void {
    const since = this.ready.unplaceable(state, now);
    const limit = this.options.workerWaitMs;
    const cancelled = this.state.kind === 'cancelling';
    if (now - since < limit && !cancelled) return;
    const { pipeline } = this.options;
    const { requires } = state.definition;
    const workers = this.options.registry.snapshot();
    const quarantined = (workerId: string): string | undefined => this.quarantine.describe(workerId, now);
    if (cancelled) {
      const why = noCapableWorkerReason(pipeline, requires, workers, quarantined);
      this.notRun(state, 'PipelineTerminated', `${this.stoppedReason(state)}, while it waited for a worker: ${why}`);
      return;
    }
    // Without a wait (workerWaitMs 0), "after waiting 00:00:00" would be untrue: say what was
    // asked for and what each registered worker lacks instead.
    const message =
      limit > 0
        ? `Module '${state.name}' could not be dispatched after waiting ${formatTimeSpan(limit)}: ${noCapableWorkerReason(pipeline, requires, workers, quarantined)}`
        : `Module '${state.name}' could not be dispatched: ${noLiveWorkerCanRun(pipeline, requires, workers, quarantined)}`;
    this.complete(state, 'Failed', { error: { message, type: 'NoCapableWorker' } });
  }

  private dispatch(state: ModuleState, worker: WorkerNode): void {
    const { pipeline, registry } = this.options;
    const number = state.result.attempts.length + 1;
    const executionId = `${this.runId}.${state.name}.${number}`;
    const sentAt = this.clock.now();
    const now = isoTime(sentAt);
    const body: ExecuteModuleRequest = {
      executionId,
      moduleTypeName: state.name,
      serializedModule: state.serializedParams,
      dependencyResults: dependencyResults(state, pipeline, this.modules),
      environmentVariables: this.environment,
      ...(this.secretNames.length > 0 ? { secretEnvironmentVariables: this.secretNames } : {}),
      ...(this.options.workingDirectory ? { workingDirectory: this.options.workingDirectory } : {}),
      timeout: state.timeout,
      timestamp: now,
    };
    // The worker would refuse it (413) without running anything: fail it here, saying why.
    const tooLarge = executeRequestProblem(body, worker);
    if (tooLarge !== undefined) {
      const message = `Module '${state.name}' was not sent to worker ${worker.id}: ${tooLarge}`;
      this.failed(state, 'Failed', { workerId: worker.id, error: { message, type: 'RequestTooLarge' }, final: true });
      return;
    }
    const record: AttemptRecord = { executionId, workerId: worker.id, startTime: now, outcome: 'Running' };
    state.result.attempts.push(record);
    this.openLog(state.name, number, worker.id, record);
    this.setPhase(state, 'running');
    state.result.status = 'Processing';
    state.result.workerId = worker.id;
    const attempt: Attempt = {
      module: state,
      workerId: worker.id,
      endpoint: worker.endpoint,
      credential: registry.credentialOf(worker.id),
      generation: this.generations.get(worker.id) ?? 0,
      record,
      stopped: false,
      pause: undefined,
      sentAt,
      deadlineAt: sentAt + state.timeoutMs + this.options.timeoutMarginMs,
      state: 'running',
      holds: true,
      ended: undefined,
      call: undefined,
      callsDone: false,
      closedInARow: 0,
      failingSince: undefined,
      sightings: {
        listedAt: undefined,
        unlistedSince: undefined,
        unlistedBeatAt: undefined,
        unlistedBeats: 0,
        keptAt: undefined,
        collects: 0,
        disarm: undefined,
      },
      body,
    };
    this.track(attempt);
    // The start its refusals will be counted against (see `registered`).
    if (!this.incarnations.has(worker.id))
      this.incarnations.set(worker.id, this.options.registry.incarnationOf(worker.id));
    this.loads.started(worker.id);
    this.rules.started(state.definition);
    this.pool.update(worker.id, sentAt);

    // debug: the progress output shows each start, and 'module finished' (info unless it succeeded) names the worker.
    this.log.debug({ module: state.name, workerId: worker.id, executionId }, 'module dispatched');
    this.reporter.emit({
      type: 'module-started',
      module: state.name,
      workerId: worker.id,
      executionId,
      attempt: number,
    });

    void this.execute(attempt, body);
  }

  /**
   * Takes the output of an attempt from the worker it goes to (with `executionLogs`): its lines
   * are reported as `output` events, and written to its file (with `logsDir`), referenced from
   * its record.
   */
  private openLog(module: string, attempt: number, workerId: string, record: AttemptRecord): void {
    const { executionLogs, logsDir } = this.options;
    if (!executionLogs) return;
    const file = logsDir === undefined ? undefined : attemptLogFile(logsDir, module, attempt);
    executionLogs.open(new AttemptLog(record, workerId, module, attempt, file, this.outputSink));
  }

  /** Where {@link AttemptLog}s report their lines: to the run's reporter until the run's output is done. */
  private readonly outputSink: OutputSink = {
    emit: (event) => {
      if (!this.outputDone) this.reporter.emit(event);
    },
  };

  /**
   * Drops the log of an attempt its worker refused before running anything (429/503, or 401/403
   * to a credential it has not read yet: outcome `Rejected`; 400, 404 `ModuleNotFound`, 409,
   * 413, 415: `DispatchRejected`) or whose request reached no worker process (see
   * {@link RAN_NOTHING}): no output comes for it, so the run's end does not wait for it nor
   * report it incomplete (`output-incomplete`). A batch sent for it later is refused (404), as
   * after the run.
   */
  private dropLog(attempt: Attempt): void {
    this.options.executionLogs?.forget([attempt.record.executionId]);
  }

  /** The run minds `attempt` (until {@link PipelineRun.retire}). */
  private track(attempt: Attempt): void {
    this.attempts.set(attempt.record.executionId, attempt);
    let onWorker = this.attemptsOn.get(attempt.workerId);
    if (!onWorker) this.attemptsOn.set(attempt.workerId, (onWorker = new Set()));
    onWorker.add(attempt);
    attempt.module.unended.add(attempt);
  }

  /** Forgets `attempt` once its calls are over and it cannot be running any more. */
  private retire(attempt: Attempt): void {
    if (!attempt.callsDone || attempt.ended === undefined) return;
    attempt.body = undefined;
    this.attempts.delete(attempt.record.executionId);
    const onWorker = this.attemptsOn.get(attempt.workerId);
    onWorker?.delete(attempt);
    if (onWorker?.size === 0) this.attemptsOn.delete(attempt.workerId);
  }

  /**
   * Sends the execute call of an attempt, and again while it fails on the way (see
   * `sendExecute`), then acts on how that ended (a method, not closures per attempt).
   */
  private async execute(attempt: Attempt, body: ExecuteModuleRequest): Promise<void> {
    try {
      this.callsEnded(attempt, await sendExecute(attempt, body, this.calls));
    } catch (error) {
      this.log.error({ err: error, executionId: body.executionId }, 'handling an execute answer failed');
      // Never leave the module waiting for an attempt nobody listens to any more.
      if (attempt.state === 'running')
        this.act(attempt, { kind: 'lost', reason: `handling its answer failed: ${String(error)}` });
      this.schedulePump();
    } finally {
      attempt.callsDone = true;
      this.retire(attempt);
    }
  }

  // --- Answers -----------------------------------------------------------------------------

  /** Acts on how an attempt's execute calls ended. */
  private callsEnded(attempt: Attempt, end: CallsEnd): void {
    switch (end.kind) {
      case 'stopped':
        return;
      case 'answer': {
        // Not the worker's own contract body: something in front of it answered, perhaps after
        // passing the call on. Not "answered" nor "ran nothing": judged as a call lost on the way.
        if (!isWorkersAnswer(end.answer)) {
          this.notWorkersAnswer(attempt, end.answer);
          return;
        }
        // The worker sends no output batch for this execution: its log closes now (as an empty final batch closes it).
        if (end.outputNone) this.options.executionLogs?.endEmpty(attempt.record.executionId, attempt.workerId);
        this.ended(attempt, 'answered');
        if (attempt.state !== 'running') {
          this.lateAnswer(attempt, end.answer);
          return;
        }
        const verdict = judgeAnswer(end.answer, this.options.maxResultBytes);
        // The worker refused the request (a 4xx, 429/503, or an answer that is not the
        // worker's) and no earlier call may have reached it: nothing ran, no output comes.
        if (!end.delivered && RAN_NOTHING.has(verdict.kind)) this.dropLog(attempt);
        this.act(attempt, verdict);
        return;
      }
      case 'failure': {
        const { verdict, delivered } = end;
        // Refused, or answered by something that is not the worker, or refused for a credential
        // the worker does not hold yet, when no call reached it: it runs nowhere.
        // (Not a body that is not JSON: something answered it, perhaps after passing it on.)
        const unsent =
          verdict.kind === 'refused' || verdict.kind === 'rejected' || (verdict.kind === 'broken' && !verdict.answered);
        if (!delivered && unsent) {
          this.ended(attempt, 'not-delivered');
          this.dropLog(attempt);
        }
        if (attempt.state === 'running') this.act(attempt, verdict);
      }
    }
  }

  /**
   * An answer that is not the worker's own contract body (see `isWorkersAnswer`): a gateway's
   * page, a load balancer's 429/503 without the worker's error body, a 200 without its result.
   * The gateway may have passed the call on, so the module may run on the worker: the attempt
   * is lost (a page in a status the contract lists also quarantines the worker, as broken), its
   * log kept, and it ends only on evidence, as after an unlisted 502/504: its cancel
   * acknowledged, two of its worker's own heartbeats that do not list it, or its worker gone.
   * An abandoned attempt's such answer is only logged.
   */
  private notWorkersAnswer(attempt: Attempt, answer: ExecuteAnswer): void {
    const status: number = answer.status;
    if (attempt.state !== 'running') {
      this.log.warn(
        { executionId: attempt.record.executionId, status },
        "late answer of an abandoned attempt, not the worker's own, ignored",
      );
      return;
    }
    if (status === 429 || status === 503) {
      // A gateway refusing calls (a rate limit, no healthy upstream): lost, as it may have
      // passed the call on first, but a refusal for the module's count and the worker's
      // dispatch: the worker is quarantined on probation (a cool-down growing with each
      // refusal, REFUSAL_PROBATION) and every refusal of one start of it counts as one loss, so
      // a gateway refusing first calls does not use up the module's maxLostAttempts in seconds
      // (as Temporal backs off further on ResourceExhausted, and Buildkite's agent retries a
      // 429 later rather than failing the job; round N, N3).
      const reason = `answered ${status} without the worker's error body (a gateway's refusal, which may have passed the call on first)`;
      // Its Retry-After, when it gives one, lengthens the probation (at most to the longest).
      this.lost(attempt, reason, {
        refusal: true,
        retryAfterMs: retryAfterMs((answer as { headers?: Headers }).headers),
      });
      return;
    }
    this.act(attempt, judgeAnswer(answer, this.options.maxResultBytes));
  }

  /** Acts on the verdict on a running attempt. */
  private act(attempt: Attempt, verdict: AttemptVerdict): void {
    const { module: state, record, workerId } = attempt;
    switch (verdict.kind) {
      case 'succeeded':
        this.settle(attempt, 'settled');
        record.outcome = 'Succeeded';
        this.succeeded(attempt, verdict.serializedResult, verdict.times);
        return;
      case 'rejected': {
        this.settle(attempt, 'settled');
        record.outcome = 'Rejected';
        record.error = verdict.message;
        const now = this.clock.now();
        this.loads.coolDown(workerId, now + REJECTED_COOL_DOWN_MS);
        this.pool.update(workerId, now);
        this.requeue(state);
        return;
      }
      case 'failed':
      case 'timed-out':
      case 'cancelled': {
        if (verdict.kind === 'cancelled' && !this.stopping) {
          // The run asked for no cancel: the worker gave the module up itself (it fenced itself
          // when its heartbeats went unacknowledged, or it was shut down). Not the module's
          // failure: it runs again elsewhere, as a lost attempt.
          this.lost(attempt, `the worker cancelled it itself: ${verdict.error.message}`);
          return;
        }
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
        this.settle(attempt, 'abandoned');
        record.outcome = 'TimedOut';
        record.error = verdict.message;
        this.cancels.request(attempt, 'the orchestrator gave up waiting for the answer');
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
        return;
      case 'refused':
        this.lost(attempt, verdict.reason, { refusal: true });
        return;
      case 'broken':
        this.lost(attempt, verdict.reason, { quarantine: 'broken' });
        return;
      case 'in-transit': {
        // Its calls failed on the way and its worker is no longer live (or no longer the same start).
        const worker = this.options.registry.snapshotOf(workerId);
        const end = !worker ? 'worker-gone' : worker.status === 'Offline' ? 'worker-offline' : undefined;
        this.lost(attempt, verdict.reason, end ? { end } : {});
      }
    }
  }

  /** `attempt` succeeded with `serializedResult`: its module's result, accepted. */
  private succeeded(attempt: Attempt, serializedResult: string, times: ExecutionTimes): void {
    const state = attempt.module;
    state.serializedResult = serializedResult;
    let result: unknown;
    try {
      result = JSON.parse(serializedResult);
    } catch {
      result = serializedResult;
    }
    this.complete(state, 'Successful', { workerId: attempt.workerId, times, result });
  }

  /**
   * An answer of an attempt the module no longer waited on. A success while the module has not
   * ended is accepted (the module's first success, whichever attempt gives it), and the attempt
   * running in its place is cancelled; anything else is recorded, never accepted.
   */
  private lateAnswer(attempt: Attempt, answer: ExecuteAnswer): void {
    const verdict = judgeAnswer(answer, this.options.maxResultBytes);
    const { module: state, record } = attempt;
    if (verdict.kind === 'succeeded' && state.phase !== 'done' && attempt.state === 'abandoned') {
      const after = record.outcome === 'TimedOut' ? 'TimedOut' : 'Lost';
      record.acceptedLate = { after, ...(record.error ? { reason: record.error } : {}), at: this.isoNow() };
      record.outcome = 'Succeeded';
      record.endTime = record.acceptedLate.at;
      delete record.error;
      this.log.warn(
        { module: state.name, executionId: record.executionId, workerId: attempt.workerId, after },
        'a success arrived from an abandoned attempt before the module ended: accepted',
      );
      for (const other of this.attemptsOfModule(state)) {
        if (other !== attempt && other.state === 'running') this.supersede(other, attempt);
      }
      this.succeeded(attempt, verdict.serializedResult, verdict.times);
      return;
    }
    const outcome = lateOutcome(answer);
    if (outcome) record.lateAnswer = { outcome, at: this.isoNow() };
    this.log.warn(
      { executionId: record.executionId, status: answer.status },
      'late answer of an abandoned attempt ignored',
    );
  }

  /** The attempts of `state` the run still minds. */
  private attemptsOfModule(state: ModuleState): Attempt[] {
    return [...this.attempts.values()].filter((attempt) => attempt.module === state);
  }

  /** Another attempt's result was accepted: `attempt` is no longer waited on, and is cancelled on its worker. */
  private supersede(attempt: Attempt, winner: Attempt): void {
    this.settle(attempt, 'abandoned');
    attempt.record.outcome = 'Cancelled';
    attempt.record.error = `superseded: the result of ${winner.record.executionId} was accepted`;
    this.cancels.request(attempt, attempt.record.error);
  }

  /**
   * The attempt no longer runs for its module (`settled`: its slot and `notInParallel` keys are
   * free), or is no longer waited on (`abandoned`: it may still run, or be stopping, on its
   * worker, which counts it: its slot and keys are freed once it ended, see `ended`).
   */
  private settle(attempt: Attempt, state: 'settled' | 'abandoned'): void {
    if (attempt.state === 'running') {
      // Whatever else this answer changes, the ready modules get another look.
      if (state === 'settled') this.release(attempt);
      else {
        const waitMs = Math.max(0, attempt.deadlineAt + ABANDONED_STOP_ALLOWANCE_MS - this.clock.now());
        this.timers.after(waitMs, () => this.overdue(attempt));
      }
      this.schedulePump();
    }
    attempt.state = state;
    attempt.sightings.disarm?.();
    attempt.sightings.disarm = undefined;
    attempt.record.endTime = this.isoNow();
  }

  /**
   * An abandoned attempt still unended past its deadline plus {@link ABANDONED_STOP_ALLOWANCE_MS}:
   * its worker still runs it (it is listed, or its stop was never shown; under `--isolation
   * none` a module that ignores its signal and never returns runs on in the worker's process).
   * Waiting longer would hold its module back for ever and hang the run: its module ends
   * `TimedOut`, final (never run elsewhere: it runs there still), naming the worker; the attempt
   * is given up (`overdue`), its slot and `notInParallel` keys freed so the run can go on, and
   * its cancel stays asked for at the worker's heartbeats until it stops. A module already ended
   * (lost too often, the run stopped) only gives the attempt up.
   */
  private overdue(attempt: Attempt): void {
    if (attempt.ended !== undefined || attempt.state !== 'abandoned') return;
    const { module: state, workerId } = attempt;
    const message =
      `Module '${state.name}' was abandoned on worker ${workerId} and still runs there ` +
      `${formatTimeSpan(ABANDONED_STOP_ALLOWANCE_MS)} past its timeout of ${formatTimeSpan(state.timeoutMs)} plus the margin ` +
      `(its worker did not stop it): it is not run elsewhere`;
    this.log.warn(
      { module: state.name, workerId, executionId: attempt.record.executionId },
      'an abandoned attempt still runs on its worker past its deadline: its module ends TimedOut, not run elsewhere',
    );
    this.ended(attempt, 'overdue');
    if (state.phase !== 'done')
      this.failed(state, 'TimedOut', { workerId, final: true, error: { message, type: 'OrchestratorTimeout' } });
  }

  /** Frees the worker's slot and the module's `notInParallel` keys `attempt` holds, once. */
  private release(attempt: Attempt): void {
    if (!attempt.holds) return;
    attempt.holds = false;
    this.loads.ended(attempt.workerId);
    this.rules.ended(attempt.module.definition);
    this.pool.update(attempt.workerId, this.clock.now());
    this.schedulePump();
  }

  /**
   * `attempt` can no longer be running anywhere (`end` says why): a new attempt of its module may
   * start, and its slot and `notInParallel` keys are free (as an abandoned one held them).
   */
  private ended(attempt: Attempt, end: AttemptEnd): void {
    if (attempt.ended !== undefined) return;
    attempt.ended = end;
    this.release(attempt);
    // It cannot be running any more: its heartbeat answers stop asking for its cancel.
    if (SETTLED.has(end)) this.options.registry.cancelSettled(attempt.workerId, attempt.record.executionId);
    const state = attempt.module;
    state.unended.delete(attempt);
    this.retire(attempt);
    if (state.unended.size === 0 && state.phase === 'ready') this.schedulePump();
  }

  /**
   * A cancel call of `attempt` got no answer. A stopping run does not wait for such a worker's
   * answer (the cancel goes on being retried): the module ends `PipelineTerminated`.
   */
  private cancelUnanswered(attempt: Attempt): void {
    if (this.stopping && attempt.state === 'running' && !attempt.module.definition.alwaysRun) {
      this.lost(attempt, `its worker ${attempt.workerId} could not be reached to cancel it while the run was stopping`);
    }
  }

  /**
   * The attempt's worker is gone, unreachable or not the worker it registered as: the module is
   * dispatched again, once no earlier attempt of it can still be running, after a backoff, up to
   * `maxLostAttempts`. All refusals of one start of a worker count as one loss, until the
   * worker's probation has reached its longest ({@link REFUSAL_PROBATION}): each refusal after
   * that counts as a loss of its own, so a worker refused for good ends the module `WorkerLost`.
   * @param how.end why the attempt can no longer be running, when that is known
   * @param how.refusal the worker's endpoint refused the connection, or a gateway in front of it
   *   refused the call (429/503 without the worker's body): the worker is quarantined on probation
   * @param how.retryAfterMs the refusing gateway's `Retry-After` (ms): the probation lasts at least that, at most the longest
   * @param how.quarantine quarantine the worker for another reason (its endpoint is broken)
   */
  private lost(
    attempt: Attempt,
    why: string,
    how: { end?: AttemptEnd; refusal?: boolean; retryAfterMs?: number | undefined; quarantine?: 'broken' } = {},
  ): void {
    const { module: state, record, workerId } = attempt;
    // A refusal after the worker's longest probation counts as a loss even from a start that
    // refused before: a gateway refusing every call, its worker heartbeating behind it, would
    // otherwise get the module again after each probation for ever (review N3, 1).
    const pastLongest = how.refusal === true && this.quarantine.probationAtLongest(workerId);
    const reason = pastLongest
      ? `${why}; refused again after its longest probation (${formatTimeSpan(REFUSAL_PROBATION.maxMs)}), counted as a loss`
      : why;
    // Its call stays listened to: a late answer is recorded on the attempt (see lateAnswer).
    this.settle(attempt, 'abandoned');
    record.outcome = 'Lost';
    record.error = reason;
    if (how.end) this.ended(attempt, how.end);
    if (how.refusal) this.quarantineWorker(workerId, 'refused', reason, how.retryAfterMs);
    if (how.quarantine) this.quarantineWorker(workerId, how.quarantine, reason);
    const start = `${workerId}#${attempt.generation}`;
    const counted = !how.refusal || pastLongest || !state.refusedBy.has(start);
    if (how.refusal) state.refusedBy.add(start);
    if (counted) state.lost++;
    state.lostOn.add(workerId);
    this.log.warn({ module: state.name, workerId, executionId: record.executionId, reason }, 'attempt lost');
    this.reporter.emit({ type: 'attempt-lost', module: state.name, workerId, executionId: record.executionId, reason });
    // If the worker is only frozen or cut off, stop the abandoned attempt when it hears us.
    this.cancels.request(attempt, `attempt declared lost: ${reason}`);
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
    const delayMs = backoffDelay(Math.max(0, state.lost - 1), LOST_BACKOFF.initialMs, LOST_BACKOFF.maxMs);
    state.notBefore = this.clock.now() + delayMs;
    this.requeue(state, true);
    this.timers.after(delayMs + 1, () => this.pump());
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
      state.notBefore = this.clock.now() + delayMs;
      this.log.info({ module: state.name, failures: state.failures, delayMs }, 'module failed; retrying');
      this.reporter.emit({
        type: 'module-retrying',
        module: state.name,
        failures: state.failures,
        delayMs,
        error: details.error.message,
      });
      this.requeue(state);
      this.timers.after(delayMs + 1, () => this.pump());
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
    // A success at debug: the progress output prints its line (worker, duration) already, and a
    // log write per module sat on the dispatch hot path (issue 14, `--cpu-prof` of the CLI). Any
    // other end stays at info.
    this.log[status === 'Successful' ? 'debug' : 'info'](
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

  /**
   * A module ended: its dependants may now be decided. Through a queue, not recursion: a
   * dependant that ends at once (`DependencyFailed`) releases its own dependants in turn, and a
   * chain may be as long as the pipeline (a failure at the head of a 6,000-module chain overflowed
   * the call stack, and the run never ended).
   */
  private afterEnd(state: ModuleState): void {
    this.endedModules.push(state);
    if (this.releasing) return; // the loop below, further up the stack, takes it
    this.releasing = true;
    try {
      for (let index = 0; index < this.endedModules.length; index++) this.releaseDependants(this.endedModules[index]!);
    } finally {
      this.endedModules.length = 0;
      this.releasing = false;
    }
    this.schedulePump();
  }

  /** Tells each dependant of a module that ended: it fails at once, or is decided once nothing else is pending. */
  private releaseDependants(state: ModuleState): void {
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
    for (const attempt of [...this.attempts.values()]) {
      if (attempt.state === 'running' && !attempt.module.definition.alwaysRun)
        this.cancels.request(attempt, `Pipeline stopping: ${reason}`);
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

  private checkDone(): void {
    if (this.state.kind === 'ended' || this.doneCount < this.modules.size) return;
    this.end();
  }

  private end(): void {
    const cancelled = this.state.kind === 'cancelling';
    this.state = { kind: 'ended' };
    // Stops the periodic look, backoff sleeps, re-sends and cancel retries.
    this.timers.clear();
    this.unsubscribe?.();
    this.options.signal?.removeEventListener('abort', this.onAbort);
    for (const attempt of this.attempts.values()) stopCalls(attempt); // stop listening for late answers
    void this.clients.closeAll();
    const result = this.reporter.result({
      runId: this.runId,
      pipeline: this.options.pipeline.name,
      startedAt: this.startedAt,
      endedAt: new Date(this.clock.now()),
      modules: [...this.modules.values()].map((state) => state.result),
      cancelled,
    });
    this.log.info({ status: result.status, durationMs: result.durationMs }, 'run ended');
    void this.outputSettled().then(() => {
      // An attempt's log file is referenced once made, at its first line, which may come after
      // the copy above (a module's last lines follow its answer).
      const states = [...this.modules.values()];
      result.modules.forEach((module, index) =>
        module.attempts.forEach((attempt, number) => {
          const log = states[index]?.result.attempts[number]?.log;
          if (log !== undefined) attempt.log = log;
        }),
      );
      this.finish(result);
    });
  }

  /**
   * Resolves once every attempt's log is closed (its worker sent its `final` batch), or its
   * worker sent nothing for `outputGraceMs`, or `maxOutputWaitMs` passed (see `waitForOutput`);
   * the logs are forgotten then, and each one still open is reported (`output-incomplete`). A
   * worker answers an execute call without waiting for the output to be shipped: the last lines
   * of a module arrive after its answer, many MiB of them when it wrote fast.
   */
  private async outputSettled(): Promise<void> {
    const { executionLogs, outputGraceMs, maxOutputWaitMs, clock } = this.options;
    if (!executionLogs) return;
    const attempts = [...this.modules.values()].flatMap((state) =>
      state.result.attempts.map((record, index) => ({
        executionId: record.executionId,
        workerId: record.workerId,
        module: state.name,
        attempt: index + 1,
      })),
    );
    const cut = await waitForOutput({
      logs: executionLogs,
      attempts,
      clock,
      graceMs: outputGraceMs,
      maxWaitMs: maxOutputWaitMs,
    });
    for (const { executionId, workerId, module, attempt, reason } of cut) {
      const linesReceived = executionLogs.received(executionId);
      const waitedMs = reason === 'silent' ? outputGraceMs : maxOutputWaitMs;
      this.log.warn({ module, attempt, workerId, linesReceived, reason }, "output not complete at the run's end");
      this.reporter.emit({ type: 'output-incomplete', module, attempt, workerId, linesReceived, reason, waitedMs });
    }
    this.outputDone = true;
    executionLogs.forget(attempts.map((attempt) => attempt.executionId));
  }
}

/** How long the run waits before asking again for an outcome the `collects`-th time (ms). */
function collectGrace(collects: number): number {
  return Math.min(COLLECT_GRACE_MAX_MS, COLLECT_GRACE_MS * 2 ** Math.min(collects, 10));
}
