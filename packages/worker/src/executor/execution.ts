import {
  type ExecuteModuleFailure,
  type executeModuleRequestSchema,
  type ExecuteModuleSuccess,
  type FailureKind,
  formatTimeSpan,
} from '@mpd/contract';
import type { AnyModule, JsonValue } from '@mpd/pipeline';
import { longTimeout } from '@mpd/contract/timers';
import { createSecretMasker, type SecretMasker } from '@mpd/server-kit';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { ExecutionCancelledError, ModuleTimeoutError, WorkerError } from '../errors.js';
import { createModuleContext, ensureWorkingDirectory, toModuleLogger } from './module-context.js';
import { checkedResult } from './result-limits.js';

/** The execute body as the contract validated it (`z.output` of `executeModuleRequestSchema`). */
export type ExecuteModuleBody = z.output<typeof executeModuleRequestSchema>;

/**
 * A module execution request: the contract's execute body with its texts parsed, once, by the
 * route: `serializedModule` into `params`, each dependency result into its value, and the
 * TimeSpan `timeout` into `timeoutMs`.
 */
export type ExecutionRequest = Omit<ExecuteModuleBody, 'serializedModule' | 'dependencyResults' | 'timeout'> & {
  /** The module's parameters (parsed from `serializedModule`); the module's own when undefined. */
  params: JsonValue | undefined;
  /** The results of the module's dependencies by module name (each parsed from its JSON text). */
  dependencyResults: Record<string, JsonValue>;
  /** The request's timeout in ms; the module's own timeout (or the worker default) applies when absent. */
  timeoutMs?: number | undefined;
};

/** The execute call's answer: the module's result (200) or its failure (500). */
export type ExecutionOutcome =
  { status: 200; body: ExecuteModuleSuccess } | { status: 500; body: ExecuteModuleFailure };

/** What one execution takes from its worker. */
export interface ExecutionOptions {
  workerId: string;
  /** Timeout when neither the request nor the module sets one (ms). */
  defaultTimeoutMs: number;
  /** Where the module runs when the request names no working directory. */
  workingDirectory: string;
  /** The largest result the module may return, as JSON text in UTF-8 bytes (`WorkerOptions.maxResultBytes`). */
  maxResultBytes: number;
  /** The worker's logger; the execution logs through a child naming the module and the executionId. */
  logger: Logger;
}

/** One running execution. */
export interface Execution {
  /** Settles (never rejects) at the first of: the module returns or throws, its timeout passes, a cancel. */
  readonly outcome: Promise<ExecutionOutcome>;
  /** Resolves once the module's code has really stopped: a module that ignores its signal runs on after its outcome. */
  readonly stopped: Promise<void>;
  /** Aborts the module's signal with an {@link ExecutionCancelledError} (the first call only). */
  cancel(reason?: string): void;
}

/**
 * Starts one execution of `module` (Temporal's `Activity`, to the `ModuleExecutor`'s `Worker`):
 * arms its timeout, runs the module with its context, and answers at the first of the module
 * settling or its signal aborting.
 */
export function startExecution(module: AnyModule, request: ExecutionRequest, options: ExecutionOptions): Execution {
  const controller = new AbortController();
  let settle!: (outcome: ExecutionOutcome) => void;
  const outcome = new Promise<ExecutionOutcome>((resolve) => (settle = resolve));
  return {
    outcome,
    stopped: run(module, request, options, controller, settle),
    cancel: (reason) => {
      if (controller.signal.aborted) return;
      controller.abort(new ExecutionCancelledError(`Execution cancelled${reason ? `: ${reason}` : ''}`));
    },
  };
}

async function run(
  module: AnyModule,
  request: ExecutionRequest,
  options: ExecutionOptions,
  controller: AbortController,
  settle: (outcome: ExecutionOutcome) => void,
): Promise<void> {
  const started = new Date();
  const timeoutMs = request.timeoutMs ?? module.timeoutMs ?? options.defaultTimeoutMs;
  const log = options.logger.child({ module: module.name, executionId: request.executionId });
  const mask = createSecretMasker(
    (request.secretEnvironmentVariables ?? []).flatMap((name) => {
      const value = request.environmentVariables[name];
      return value === undefined ? [] : [value];
    }),
  );
  const timer = longTimeout(
    () => {
      controller.abort(new ModuleTimeoutError(`Module '${module.name}' timed out after ${formatTimeSpan(timeoutMs)}`));
    },
    timeoutMs,
    { unref: true },
  );

  log.info('module started');
  // The outcome is given at the first of: the module settles, or its signal aborts.
  const aborted = new Promise<never>((_, reject) => {
    if (controller.signal.aborted) reject(controller.signal.reason);
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  aborted.catch(() => undefined);
  const work = (async () => {
    const workingDirectory = request.workingDirectory ?? options.workingDirectory;
    await ensureWorkingDirectory(workingDirectory);
    const ctx = createModuleContext({
      module,
      params: request.params,
      results: request.dependencyResults,
      env: request.environmentVariables,
      workingDirectory,
      signal: controller.signal,
      logger: toModuleLogger(log, mask),
      executionId: request.executionId,
      workerId: options.workerId,
    });
    return module.run(ctx);
  })();
  const times = { executionId: request.executionId, workerId: options.workerId, started };
  let outcome: ExecutionOutcome;
  try {
    const value = await Promise.race([work, aborted]);
    const serialized = checkedResult(module.name, serialise(module.name, value), options.maxResultBytes);
    outcome = toOutcome({ ok: true, value: serialized }, times, mask);
  } catch (error) {
    outcome = toOutcome(
      { ok: false, error: controller.signal.aborted ? controller.signal.reason : error },
      times,
      mask,
    );
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
}

/**
 * The answer for how a module ended, timed from `started` to now; failure messages and stacks
 * pass through `mask`. A timeout or a cancel is told apart by the signal's reason.
 */
export function toOutcome(
  result: { ok: true; value: string } | { ok: false; error: unknown },
  { executionId, workerId, started }: { executionId: string; workerId: string; started: Date },
  mask: SecretMasker,
): ExecutionOutcome {
  const ended = new Date();
  const times = {
    executionId,
    duration: formatTimeSpan(ended.getTime() - started.getTime()),
    startTime: started.toISOString(),
    endTime: ended.toISOString(),
    workerId,
  };
  if (result.ok) return { status: 200, body: { ...times, success: true, serializedResult: result.value } };
  const error = result.error;
  const failureKind: FailureKind =
    error instanceof ModuleTimeoutError ? 'TimedOut' : error instanceof ExecutionCancelledError ? 'Cancelled' : 'Error';
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
}

/**
 * A module's result as JSON text (`"null"` for `undefined`).
 * @throws WorkerError (code `ResultNotSerializable`) naming the module.
 */
export function serialise(moduleName: string, value: unknown): string {
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

/** A thrown value that is not an Error, as text (its JSON when it has one). */
export function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
