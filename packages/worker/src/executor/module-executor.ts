import { LIMITS } from '@mpd/contract';
import type { Pipeline } from '@mpd/pipeline';
import { createSecretMasker } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { ExecutionCancelledError } from '../errors.js';
import {
  type Execution,
  type ExecutionOutcome,
  type ExecutionRequest,
  startExecution,
  toOutcome,
  type WorkerArtifacts,
} from './execution.js';
import { type HostedExecutionOptions, startHostedExecution } from './hosted-execution.js';
import type { ModuleOutput } from './module-output.js';
import { ModuleHostPool } from './module-host-pool.js';
import { monotonicNow } from './process-group.js';
import { DEFAULT_INLINE_RESULT_BYTES, type ResultReferenceOptions, withResultReferences } from './result-references.js';

/** Masks nothing: a tombstone's answer carries only the cancel's reason, no module output. */
const NO_MASK = createSecretMasker([]);

/** What {@link ModuleExecutor.execute} did with a request. */
export type ExecuteDecision =
  /** Started a new execution. */
  | { kind: 'started'; outcome: Promise<ExecutionOutcome> }
  /** The same executionId is running or has just finished: this is its outcome, not a second run. */
  | { kind: 'joined'; outcome: Promise<ExecutionOutcome> }
  /**
   * A cancel for this executionId arrived before it did (see {@link ModuleExecutor.cancel}): not
   * started; `outcome` is the answer a cancelled execution gets (500, `failureKind: 'Cancelled'`).
   */
  | { kind: 'cancelled'; outcome: Promise<ExecutionOutcome> }
  /** Every slot is taken. */
  | { kind: 'busy'; load: number; slots: number }
  /** The worker is draining and takes nothing new. */
  | { kind: 'draining' }
  /** The worker is fenced (its heartbeats went unacknowledged) and takes nothing new until they are. */
  | { kind: 'fenced'; message: string }
  /** The loaded pipeline has no such module (or no pipeline is loaded). */
  | { kind: 'unknown-module'; message: string }
  /**
   * The executionId is running or kept with another module or other inputs (another fingerprint):
   * refused, never joined nor answered with the other request's outcome.
   */
  | { kind: 'conflict'; message: string };

export interface ModuleExecutorOptions {
  workerId: string;
  /** The pipeline whose modules this worker runs; without one every execute is `unknown-module`. */
  pipeline?: Pipeline | undefined;
  /** How many modules may run at once (the worker's slots). */
  slots: number;
  /** Timeout for a request without one, when the module sets none (ms). */
  defaultTimeoutMs: number;
  /** Where a module runs when the request names no working directory. */
  workingDirectory: string;
  /**
   * How long a finished execution's outcome is kept for a repeated executionId (ms): longer than
   * the orchestrator's `COLLECT_WINDOW_MS` (see `WorkerOptions.completedRetentionMs`).
   */
  completedRetentionMs: number;
  /**
   * The largest result a module may return, as JSON text in UTF-8 bytes; also the most the
   * results passed to a module by reference may take together.
   */
  maxResultBytes: number;
  /**
   * Results larger than this (JSON text, UTF-8 bytes) are stored in the artifact store and
   * passed by reference (with `artifacts` only).
   * @default DEFAULT_INLINE_RESULT_BYTES (256 KiB)
   */
  inlineResultBytes?: number | undefined;
  /**
   * Where modules run: `'process'` in module hosts (child processes, one per slot, each in its
   * own process group; the pipeline needs a `sourceFile`), `'none'` in the worker's own process.
   */
  isolation: WorkerIsolation;
  /** SIGTERM to SIGKILL when a module host's process group is stopped (ms). */
  killGraceMs: number;
  /** The module hosts' V8 heap limit (MiB); Node's default when undefined. */
  moduleHeapLimitMb: number | undefined;
  logger: Logger;
  /** `ctx.artifacts`' transport (the worker's cache and the orchestrator's store); undefined without an orchestrator. */
  artifacts?: WorkerArtifacts | undefined;
  /** Where the modules' output lines go, masked (the shipper to the orchestrator). @default nowhere */
  output?: ModuleOutput | undefined;
}

/** Where a worker runs modules: in module hosts (child processes), or in its own process. */
export type WorkerIsolation = 'process' | 'none';

/**
 * An execution running, with its request's fingerprint (a re-sent request joins it); `outputNone`
 * once its output ended complete and empty (the answer's `Mpd-Output: none`).
 */
type RunningEntry = { execution: Execution; fingerprint: string; outputNone?: true };

/**
 * The most cancels of executions this worker does not know that it keeps (its tombstones); past
 * it the oldest is forgotten first. The same cap as a heartbeat answer's `cancel` list (1024):
 * one orchestrator cannot ask for more at once, and a caller holding the credential cannot grow
 * the worker's memory without bound.
 */
export const MAX_CANCEL_TOMBSTONES = 1024;

/**
 * The most finished executions one heartbeat reports (its `finished`, bounded by the contract
 * as `executions` is); past it the oldest is left out.
 */
export const MAX_FINISHED_REPORTED = LIMITS.capabilities.maxSlots;

/** How long {@link ModuleExecutor.close} waits for in-process modules that ignore their signal (ms). */
const IN_PROCESS_STOP_WAIT_MS = 5_000;

/**
 * Runs modules of the loaded pipeline, at most `slots` at once. An execution
 * ends with an outcome when the module returns, throws, times out or is cancelled; a
 * module that ignores its `signal` keeps its slot until it really stops, so the load the
 * worker reports stays honest. With `isolation: 'process'` modules run in a pool of module
 * hosts started with the executor, and a slot is freed only once every process of its
 * module is gone.
 */
export class ModuleExecutor {
  private readonly running = new Map<string, RunningEntry>();
  private readonly finished = new Map<
    string,
    { outcome: Promise<ExecutionOutcome>; fingerprint: string; expiresAt: number; outputNone?: true }
  >();
  /**
   * Cancels that arrived before their execution (see {@link ModuleExecutor.cancel}): the reason
   * and when it is forgotten (`Date.now()` ms), by executionId, oldest first.
   */
  private readonly tombstones = new Map<string, { reason: string | undefined; expiresAt: number }>();
  /**
   * Executions that finished since the last acknowledged heartbeat, oldest first, at most
   * {@link MAX_FINISHED_REPORTED} (see {@link ModuleExecutor.finishedIds}).
   */
  private readonly recentlyFinished = new Set<string>();
  private readonly pool: ModuleHostPool | undefined;
  /**
   * What every execution takes from this executor, made once: one object of one shape for all
   * of them (an object per module, spread from a shared one and given more fields, got a hidden
   * class of its own per module on Node 20: issue 14, round L).
   */
  private readonly executionOptions: ResultReferenceOptions;
  /** {@link ModuleExecutor.executionOptions} with the pool, with `isolation: 'process'`. */
  private readonly hostedOptions: (ResultReferenceOptions & HostedExecutionOptions) | undefined;
  private draining = false;
  /** Why the worker is fenced, while it is (see {@link ModuleExecutor.fence}). */
  private fencedBecause: string | undefined;
  private closing: Promise<void> | undefined;

  /** @throws Error when `isolation` is `'process'` and the pipeline has no `sourceFile`. */
  constructor(private readonly options: ModuleExecutorOptions) {
    const { pipeline } = options;
    if (options.isolation === 'process' && pipeline) {
      if (pipeline.sourceFile === undefined) {
        throw new Error(
          `isolation 'process' needs a pipeline loaded from its file (loadPipelineFile): pipeline '${pipeline.name}' was defined in code`,
        );
      }
      this.pool = new ModuleHostPool({
        size: options.slots,
        sourceFile: pipeline.sourceFile,
        moduleDigest: (moduleName) => pipeline.moduleDigest(moduleName),
        killGraceMs: options.killGraceMs,
        heapLimitMb: options.moduleHeapLimitMb,
        artifacts: options.artifacts,
        workerId: options.workerId,
        maxResultBytes: options.maxResultBytes,
        inlineResultBytes: options.inlineResultBytes ?? DEFAULT_INLINE_RESULT_BYTES,
        logger: options.logger.child({ component: 'module-hosts' }),
      });
    }
    const { pool } = this;
    const shared = {
      workerId: options.workerId,
      defaultTimeoutMs: options.defaultTimeoutMs,
      workingDirectory: options.workingDirectory,
      maxResultBytes: options.maxResultBytes,
      logger: options.logger,
      artifacts: options.artifacts,
      output: options.output,
      inlineResultBytes: options.inlineResultBytes ?? DEFAULT_INLINE_RESULT_BYTES,
      pool,
      heapLimitMb: options.moduleHeapLimitMb,
    };
    this.executionOptions = shared;
    this.hostedOptions = pool ? { ...shared, pool, killGraceMs: options.killGraceMs } : undefined;
  }

  /** Modules running now. */
  get load(): number {
    return this.running.size;
  }

  /** The `executionId` of every execution running now (whose module code has not stopped yet). */
  executionIds(): string[] {
    return [...this.running.keys()];
  }

  /**
   * The `executionId` of every execution that finished (its module code stopped, its outcome
   * kept `completedRetentionMs`) since the last heartbeat the orchestrator acknowledged
   * carrying it, oldest first, at most {@link MAX_FINISHED_REPORTED} (the newest): reported in
   * each heartbeat (`finished`) until {@link ModuleExecutor.finishedReported}. A module that
   * ran and finished between two heartbeats is in no heartbeat's `executions`; this tells the
   * orchestrator it arrived and its outcome waits to be collected.
   */
  finishedIds(): readonly string[] {
    return [...this.recentlyFinished];
  }

  /** An acknowledged heartbeat carried `ids` as finished: they are reported no more. */
  finishedReported(ids: readonly string[]): void {
    for (const id of ids) this.recentlyFinished.delete(id);
  }

  get slots(): number {
    return this.options.slots;
  }

  /**
   * Resolves once the module hosts started with the executor are ready (or failed to start, which
   * their executions will report); at once without module hosts.
   */
  ready(): Promise<void> {
    return this.pool?.started ?? Promise.resolve();
  }

  /** Stop taking new executions (running ones go on). */
  drain(): void {
    this.draining = true;
  }

  /**
   * Cancels every running execution with `reason` and takes no new ones until
   * {@link ModuleExecutor.unfence}: the worker's heartbeat lease expired, so the orchestrator
   * has given these modules to others. A repeated executionId still gets its outcome.
   */
  fence(reason: string): void {
    this.fencedBecause = reason;
    this.cancelAll(reason);
  }

  /**
   * The worker's heartbeat lease was renewed: it now ends in `endsInMs`. Every module host that
   * runs a module (or is being stopped) holds this lease, and so does each host given a module
   * later; a host whose lease ends kills its process group at once, and no kill grace runs past
   * it (see `ModuleHostPool.renewLease`). So a worker that stops renewing — frozen, stalled, cut
   * off — has no module process left once the orchestrator may run its modules elsewhere. Nothing
   * to do with `isolation: 'none'`: nothing but the worker's own process could stop its modules.
   */
  renewLease(endsInMs: number): void {
    this.pool?.renewLease(monotonicNow() + endsInMs);
  }

  /** Takes new executions again (a heartbeat was acknowledged after {@link ModuleExecutor.fence}). */
  unfence(): void {
    this.fencedBecause = undefined;
  }

  execute(request: ExecutionRequest): ExecuteDecision {
    this.forgetExpired();
    const running = this.running.get(request.executionId);
    const existing = running
      ? { outcome: running.execution.outcome, fingerprint: running.fingerprint }
      : this.finished.get(request.executionId);
    if (existing) {
      if (existing.fingerprint === request.fingerprint) return { kind: 'joined', outcome: existing.outcome };
      return {
        kind: 'conflict',
        message: `Execution '${request.executionId}' is ${running ? 'running' : 'known'} on worker ${this.options.workerId} with another module or other inputs; an executionId names one request (send the same request to join it, or use a new executionId)`,
      };
    }
    const tombstone = this.tombstones.get(request.executionId);
    if (tombstone) {
      const reason = tombstone.reason ? `: ${tombstone.reason}` : '';
      const error = new ExecutionCancelledError(`Execution cancelled before it started${reason}`);
      const { executionId } = request;
      const outcome = toOutcome(
        { ok: false, error },
        { executionId, workerId: this.options.workerId, started: new Date() },
        NO_MASK,
      );
      return { kind: 'cancelled', outcome: Promise.resolve(outcome) };
    }
    if (this.draining) return { kind: 'draining' };
    if (this.fencedBecause !== undefined) {
      return {
        kind: 'fenced',
        message: `Worker ${this.options.workerId} takes no new modules until a heartbeat is acknowledged (${this.fencedBecause})`,
      };
    }
    const module = this.options.pipeline?.modules.get(request.moduleTypeName);
    if (!module) {
      const pipeline = this.options.pipeline;
      return {
        kind: 'unknown-module',
        message: pipeline
          ? `Module '${request.moduleTypeName}' is not in pipeline '${pipeline.name}' loaded by worker ${this.options.workerId}`
          : `Worker ${this.options.workerId} has no pipeline loaded (start it with --pipeline FILE)`,
      };
    }
    if (this.running.size >= this.options.slots) {
      return { kind: 'busy', load: this.running.size, slots: this.options.slots };
    }
    const hosted = this.hostedOptions;
    const execution = hosted
      ? withResultReferences(
          module,
          request,
          hosted,
          (resolved, resultFiles) => startHostedExecution(module, resolved, hosted, resultFiles),
          true,
        )
      : withResultReferences(module, request, this.executionOptions, (resolved) =>
          startExecution(module, resolved, this.executionOptions),
        );
    const { fingerprint } = request;
    const entry: RunningEntry = { execution, fingerprint };
    this.running.set(request.executionId, entry);
    // Whether `stopped` resolves or (a defect) rejects, the slot is freed and nothing goes unhandled.
    const freed = (error?: unknown): void => {
      if (error !== undefined)
        this.options.logger.error(
          { err: error, executionId: request.executionId, module: module.name },
          'execution ended with an error',
        );
      this.running.delete(request.executionId);
      this.finished.set(request.executionId, {
        outcome: execution.outcome,
        fingerprint,
        expiresAt: Date.now() + this.options.completedRetentionMs,
        ...(entry.outputNone ? { outputNone: true } : {}),
      });
      const recent = this.recentlyFinished;
      recent.add(request.executionId);
      if (recent.size > MAX_FINISHED_REPORTED) recent.delete(recent.values().next().value!);
    };
    execution.stopped.then(
      () => freed(),
      (error: unknown) => freed(error ?? new Error('rejected without a reason')),
    );
    return { kind: 'started', outcome: execution.outcome };
  }

  /**
   * Whether `executionId`'s output is complete and empty, to be said in its answer (`Mpd-Output:
   * none`) instead of by a final output batch: its module ended, wrote no line, and nothing was
   * sent for it (see `ModuleOutput.endEmpty`; from then on no batch is sent for it). Asked when
   * its outcome is answered; true again for an answer to a re-sent request once it was true.
   */
  outputEndedEmpty(executionId: string): boolean {
    const entry = this.running.get(executionId) ?? this.finished.get(executionId);
    if (!entry) return false;
    if (entry.outputNone) return true;
    if (!this.options.output?.endEmpty?.(executionId)) return false;
    entry.outputNone = true;
    return true;
  }

  /**
   * Cancels a running execution; false when none runs with that id (the cancel call's 404). Then
   * the id is kept as a tombstone: an execute of it arriving later is not started but answered as
   * cancelled (`cancelled`), since the orchestrator takes that 404 as "it does not run there" and
   * may start the module elsewhere, while the execute call may still be on its way (a slow network
   * or proxy; held by the worker's auth while it registers again, `NOT_READY_HOLD_MS`). Cancels
   * from heartbeat answers come here too. A tombstone is kept `completedRetentionMs` (as a
   * finished execution's outcome is: the window in which a re-sent execute is answered rather than
   * run; far longer than any call's way to the worker) and at most {@link MAX_CANCEL_TOMBSTONES}.
   * A finished execution's outcome stays its answer (it ran before the cancel; see
   * {@link ModuleExecutor.outcomeKept}).
   */
  cancel(executionId: string, reason?: string): boolean {
    const running = this.running.get(executionId);
    if (!running) {
      this.bury(executionId, reason);
      return false;
    }
    running.execution.cancel(reason);
    return true;
  }

  /**
   * Whether `executionId` ran here and finished, its outcome kept (`completedRetentionMs`) for
   * the same request sent again: what a cancel that found nothing running tells the
   * orchestrator (the cancel's 404 with `finished: true`), so that it collects the outcome
   * before it may run the module elsewhere rather than take it as "never here" (round R, R1).
   */
  outcomeKept(executionId: string): boolean {
    return this.outcomeKeptForMs(executionId) !== undefined;
  }

  /**
   * How much longer (ms, ≥ 0) `executionId`'s outcome is kept here, counted from its finish
   * (`completedRetentionMs`); undefined when none is (see {@link ModuleExecutor.outcomeKept}).
   * The cancel's 404 says it (`keptForMs`), so that the orchestrator collects no later (review S, 3).
   */
  outcomeKeptForMs(executionId: string): number | undefined {
    this.forgetExpired();
    const kept = this.finished.get(executionId);
    return kept === undefined ? undefined : Math.max(0, kept.expiresAt - Date.now());
  }

  /** Keeps `executionId` as a tombstone (again: renewed, first reason kept), within the cap. */
  private bury(executionId: string, reason: string | undefined): void {
    this.forgetExpired();
    const earlier = this.tombstones.get(executionId);
    this.tombstones.delete(executionId); // re-inserted last: insertion order stays expiry order
    this.tombstones.set(executionId, {
      reason: earlier?.reason ?? reason,
      expiresAt: Date.now() + this.options.completedRetentionMs,
    });
    while (this.tombstones.size > MAX_CANCEL_TOMBSTONES) {
      this.tombstones.delete(this.tombstones.keys().next().value!);
    }
  }

  /** Cancels every running execution (shutdown). */
  cancelAll(reason: string): void {
    for (const id of this.running.keys()) this.cancel(id, reason);
  }

  /**
   * Stops for good: takes nothing new, cancels what runs (`reason`), and stops every module
   * host with its process group. Resolves once no process of any module runs (with module
   * hosts: within the kill grace and a SIGKILL; in-process modules that ignore their signal are
   * waited for 5 s at most). Once: later calls get the same promise.
   */
  close(reason: string): Promise<void> {
    return (this.closing ??= (async () => {
      this.draining = true;
      this.cancelAll(reason);
      const idle = this.idle();
      if (this.pool) await Promise.all([idle, this.pool.close()]);
      else await Promise.race([idle, new Promise((resolve) => setTimeout(resolve, IN_PROCESS_STOP_WAIT_MS).unref())]);
    })());
  }

  /** Resolves when nothing runs any more. */
  async idle(): Promise<void> {
    while (this.running.size > 0) {
      await Promise.allSettled([...this.running.values()].map(({ execution }) => execution.outcome));
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private forgetExpired(): void {
    const now = Date.now();
    for (const [id, entry] of this.finished) {
      if (entry.expiresAt > now) break; // insertion order is expiry order
      this.finished.delete(id);
    }
    for (const [id, tombstone] of this.tombstones) {
      if (tombstone.expiresAt > now) break; // insertion order is expiry order
      this.tombstones.delete(id);
    }
  }
}
