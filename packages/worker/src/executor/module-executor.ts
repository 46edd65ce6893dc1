import { statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import {
  type ExecuteModuleFailure,
  type ExecuteModuleSuccess,
  type FailureKind,
  formatTimeSpan,
  parseTimeSpan,
} from '@mpd/contract';
import type { AnyModule, JsonValue, ModuleContext, ModuleLogger, Pipeline } from '@mpd/pipeline';
import { createSecretMasker, maskDeep, type SecretMasker } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { ExecutionCancelledError, ModuleTimeoutError, WorkerError } from '../errors.js';

/** A module execution request, after contract validation. */
export interface ExecutionRequest {
  executionId: string;
  moduleTypeName: string;
  /** The module's parameters (parsed from `serializedModule`). */
  params: JsonValue | undefined;
  dependencyResults: Record<string, string>;
  environmentVariables: Record<string, string>;
  /** Names of `environmentVariables` whose values are masked (`***`) in logs and errors. */
  secretEnvironmentVariables?: string[] | undefined;
  workingDirectory?: string | undefined;
  /** TimeSpan; the module's own timeout (or the worker default) applies when absent. */
  timeout?: string | undefined;
}

export type ExecutionOutcome =
  { status: 200; body: ExecuteModuleSuccess } | { status: 500; body: ExecuteModuleFailure };

/** What {@link ModuleExecutor.execute} did with a request. */
export type ExecuteDecision =
  /** Started a new execution. */
  | { kind: 'started'; outcome: Promise<ExecutionOutcome> }
  /** The same executionId is running or has just finished: this is its outcome, not a second run. */
  | { kind: 'joined'; outcome: Promise<ExecutionOutcome> }
  /** Every slot is taken. */
  | { kind: 'busy'; load: number; slots: number }
  /** The worker is draining and takes nothing new. */
  | { kind: 'draining' }
  /** The loaded pipeline has no such module (or no pipeline is loaded). */
  | { kind: 'unknown-module'; message: string };

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
  /** How long a finished execution's outcome is kept for a repeated executionId (ms). */
  completedRetentionMs: number;
  logger: Logger;
}

interface Execution {
  readonly moduleName: string;
  readonly controller: AbortController;
  readonly outcome: Promise<ExecutionOutcome>;
}

/**
 * Runs modules of the loaded pipeline, at most `slots` at once. An execution
 * ends with an outcome when the module returns, throws, times out or is cancelled; a
 * module that ignores its `signal` keeps its slot until it really stops, so the load the
 * worker reports stays honest.
 */
export class ModuleExecutor {
  private readonly running = new Map<string, Execution>();
  private readonly finished = new Map<string, { outcome: Promise<ExecutionOutcome>; expiresAt: number }>();
  private draining = false;

  constructor(private readonly options: ModuleExecutorOptions) {}

  /** Modules running now. */
  get load(): number {
    return this.running.size;
  }

  get slots(): number {
    return this.options.slots;
  }

  /** Stop taking new executions (running ones go on). */
  drain(): void {
    this.draining = true;
  }

  execute(request: ExecutionRequest): ExecuteDecision {
    this.forgetExpired();
    const existing = this.running.get(request.executionId) ?? this.finished.get(request.executionId);
    if (existing) return { kind: 'joined', outcome: existing.outcome };
    if (this.draining) return { kind: 'draining' };
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
    const controller = new AbortController();
    let settle!: (outcome: ExecutionOutcome) => void;
    const outcome = new Promise<ExecutionOutcome>((resolve) => (settle = resolve));
    this.running.set(request.executionId, { moduleName: module.name, controller, outcome });
    void this.run(module, request, controller, settle);
    return { kind: 'started', outcome };
  }

  /** Cancels a running execution; false when no execution has that id. */
  cancel(executionId: string, reason?: string): boolean {
    const execution = this.running.get(executionId);
    if (!execution) return false;
    if (!execution.controller.signal.aborted) {
      execution.controller.abort(new ExecutionCancelledError(`Execution cancelled${reason ? `: ${reason}` : ''}`));
    }
    return true;
  }

  /** Cancels every running execution (shutdown). */
  cancelAll(reason: string): void {
    for (const id of this.running.keys()) this.cancel(id, reason);
  }

  /** Resolves when nothing runs any more. */
  async idle(): Promise<void> {
    while (this.running.size > 0) {
      await Promise.allSettled([...this.running.values()].map((execution) => execution.outcome));
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private async run(
    module: AnyModule,
    request: ExecutionRequest,
    controller: AbortController,
    settle: (outcome: ExecutionOutcome) => void,
  ): Promise<void> {
    const { workerId } = this.options;
    const started = new Date();
    const timeoutMs =
      (request.timeout !== undefined ? parseTimeSpan(request.timeout) : undefined) ??
      module.timeoutMs ??
      this.options.defaultTimeoutMs;
    const log = this.options.logger.child({ module: module.name, executionId: request.executionId });
    const mask = createSecretMasker(
      (request.secretEnvironmentVariables ?? []).flatMap((name) => {
        const value = request.environmentVariables[name];
        return value === undefined ? [] : [value];
      }),
    );
    const timer = longTimeout(() => {
      controller.abort(new ModuleTimeoutError(`Module '${module.name}' timed out after ${formatTimeSpan(timeoutMs)}`));
    }, timeoutMs);

    const finish = (result: { ok: true; value: string } | { ok: false; error: unknown }): ExecutionOutcome => {
      const ended = new Date();
      const times = {
        executionId: request.executionId,
        duration: formatTimeSpan(ended.getTime() - started.getTime()),
        startTime: started.toISOString(),
        endTime: ended.toISOString(),
        workerId,
      };
      if (result.ok) return { status: 200, body: { ...times, success: true, serializedResult: result.value } };
      const error = result.error;
      const failureKind: FailureKind =
        error instanceof ModuleTimeoutError
          ? 'TimedOut'
          : error instanceof ExecutionCancelledError
            ? 'Cancelled'
            : 'Error';
      const isError = error instanceof Error;
      return {
        status: 500,
        body: {
          ...times,
          success: false,
          errorMessage: mask(isError ? error.message : `Module threw a non-Error value: ${safeString(error)}`),
          exceptionType: isError ? error.name || error.constructor.name : typeof error,
          stackTrace: isError && error.stack !== undefined ? mask(error.stack) : null,
          failureKind,
        },
      };
    };

    log.info('module started');
    // The outcome is given at the first of: the module settles, or its signal aborts.
    const aborted = new Promise<never>((_, reject) => {
      if (controller.signal.aborted) reject(controller.signal.reason);
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
    });
    aborted.catch(() => undefined);
    const work = (async () => {
      const ctx = await this.contextFor(module, request, controller.signal, log, mask);
      return module.run(ctx);
    })();
    let outcome: ExecutionOutcome;
    try {
      const value = await Promise.race([work, aborted]);
      outcome = finish({ ok: true, value: serialise(module.name, value) });
    } catch (error) {
      outcome = finish({ ok: false, error: controller.signal.aborted ? controller.signal.reason : error });
    }
    timer.clear();
    if (outcome.status === 200) log.info({ duration: outcome.body.duration }, 'module succeeded');
    else
      log.warn(
        { duration: outcome.body.duration, error: outcome.body.errorMessage, failureKind: outcome.body.failureKind },
        'module failed',
      );
    settle(outcome);

    // The slot stays taken until the module's code has really stopped.
    await work.catch(() => undefined);
    this.running.delete(request.executionId);
    this.finished.set(request.executionId, {
      outcome: Promise.resolve(outcome),
      expiresAt: Date.now() + this.options.completedRetentionMs,
    });
  }

  private async contextFor(
    module: AnyModule,
    request: ExecutionRequest,
    signal: AbortSignal,
    log: Logger,
    mask: SecretMasker,
  ): Promise<ModuleContext> {
    const results: Record<string, unknown> = {};
    for (const [name, text] of Object.entries(request.dependencyResults)) {
      try {
        results[name] = JSON.parse(text);
      } catch (cause) {
        throw new WorkerError('InvalidDependencyResult', `The result of dependency '${name}' is not JSON`, { cause });
      }
    }
    const workingDirectory = request.workingDirectory ?? this.options.workingDirectory;
    // A stat is much cheaper than a mkdir through the thread pool, and the directory usually exists.
    if (!statSync(workingDirectory, { throwIfNoEntry: false })?.isDirectory()) {
      await mkdir(workingDirectory, { recursive: true });
    }
    return {
      name: module.name,
      params: request.params ?? module.params,
      results,
      result: (dependency: AnyModule) => results[dependency.name],
      optionalResult: (dependency: AnyModule | string) =>
        results[typeof dependency === 'string' ? dependency : dependency.name],
      env: Object.freeze({ ...request.environmentVariables }),
      workingDirectory,
      signal,
      logger: toModuleLogger(log, mask),
      executionId: request.executionId,
      workerId: this.options.workerId,
    } as ModuleContext;
  }

  private forgetExpired(): void {
    const now = Date.now();
    for (const [id, entry] of this.finished) {
      if (entry.expiresAt > now) break; // insertion order is expiry order
      this.finished.delete(id);
    }
  }
}

/** Node's timers overflow past 2^31 - 1 ms (about 24.8 days) and fire at once: re-arm in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Like an unref'd `setTimeout`, for any delay (module timeouts can be days long). */
export function longTimeout(callback: () => void, delayMs: number): { clear(): void } {
  let handle: NodeJS.Timeout;
  const arm = (remaining: number): void => {
    handle = setTimeout(
      () => (remaining > MAX_TIMER_MS ? arm(remaining - MAX_TIMER_MS) : callback()),
      Math.min(remaining, MAX_TIMER_MS),
    );
    handle.unref();
  };
  arm(delayMs);
  return { clear: () => clearTimeout(handle) };
}

function serialise(moduleName: string, value: unknown): string {
  try {
    return JSON.stringify(value === undefined ? null : value) ?? 'null';
  } catch (cause) {
    throw new WorkerError(
      'ResultNotSerializable',
      `Module '${moduleName}' returned a result that is not JSON-serialisable: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The module's logger: every message and field passes through the secret masker. */
function toModuleLogger(log: Logger, mask: SecretMasker): ModuleLogger {
  const write =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: Record<string, unknown>): void =>
      log[level](maskDeep(fields ?? {}, mask), mask(message));
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
