import {
  type ExecuteModuleFailure,
  type executeModuleRequestSchema,
  type ExecuteModuleSuccess,
  type FailureKind,
  formatTimeSpan,
  isoTime,
} from '@mpd/contract';
import type { AnyModule, JsonValue, ModuleLogger } from '@mpd/pipeline';
import { longTimeout } from '@mpd/contract/timers';
import { createSecretMasker, type SecretMasker, secretValues } from '@mpd/server-kit';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { ExecutionCancelledError, ModuleTimeoutError } from '../errors.js';
import { type BlobTransport, type ExecutionArtifacts, moduleArtifacts } from '../artifacts/module-artifacts.js';
import { ConsoleCapture } from './console-capture.js';
import { ExecutionStop } from './execution-stop.js';
import { createModuleContext, ensureWorkingDirectory } from './module-context.js';
import { toModuleLogger } from './module-logger.js';
import { DISCARD_OUTPUT, type ModuleOutput, type OutputWriter, secretBytes, writeLineBytes } from './module-output.js';
import { checkedResult } from './result-limits.js';
import { describeThrown, serialise, type ThrownDescription } from './values-as-text.js';

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
  /**
   * What the request asks for, as a hash of its canonical form (`requestFingerprint`): a request
   * under a known `executionId` is joined only when its fingerprint is the same.
   */
  fingerprint: string;
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
  /** Where the module's output lines go, masked (the shipper to the orchestrator). @default nowhere */
  output?: ModuleOutput | undefined;
  /** The worker's artifact transport and where archives are packed; undefined without an orchestrator. */
  artifacts?: WorkerArtifacts | undefined;
}

/** What `ctx.artifacts` needs from the worker: its transport, and a scratch directory beside its cache. */
export interface WorkerArtifacts {
  transport: BlobTransport;
  /** Where archives are packed before upload (in the cache's directory, so the cache can link them). */
  scratchDir: string;
}

/** One running execution. */
export interface Execution {
  /**
   * Settles (never rejects) with the answer. In the worker's process: at the first of the module
   * returning or throwing, its timeout passing, a cancel. In a module host: once the module
   * ended that way and its processes are gone (those of a cancelled, timed-out or crashed
   * module stopped, SIGKILL after the kill grace), so that nothing a module started runs on
   * after its answer.
   */
  readonly outcome: Promise<ExecutionOutcome>;
  /**
   * Resolves once the module's code has really stopped (its slot is free then): in the worker's
   * process, a module that ignores its signal runs on after its outcome; in a module host, with
   * the outcome.
   */
  readonly stopped: Promise<void>;
  /**
   * Aborts the module's signal with an {@link ExecutionCancelledError} (the first call only); in a
   * module host, once the host says it stopped the module before its code returned or threw
   * (`ExecutionStop.askCancel`), or after its host did not end it within the kill grace of the
   * cancel (its outcome stands if it did, see `ExecutionStop.codeEnded` and
   * `ExecutionStop.heldCancelGraceMs`).
   */
  cancel(reason?: string): void;
}

/**
 * An {@link Execution} whose work is `run`: it gets the execution's stop (aborted by
 * {@link Execution.cancel} with an {@link ExecutionCancelledError}, or by its timeout) and the
 * function that settles its outcome, and resolves once the module has really stopped.
 */
export function createExecution(
  run: (stop: ExecutionStop, settle: (outcome: ExecutionOutcome) => void) => Promise<void>,
): Execution {
  const stop = new ExecutionStop();
  let settle!: (outcome: ExecutionOutcome) => void;
  const outcome = new Promise<ExecutionOutcome>((resolve) => (settle = resolve));
  return {
    outcome,
    stopped: run(stop, settle),
    cancel: (reason) => {
      if (stop.aborted) return;
      stop.cancel(new ExecutionCancelledError(`Execution cancelled${reason ? `: ${reason}` : ''}`));
    },
  };
}

/** What an execution keeps from its start to its answer, in-process or in a module host. */
export interface ExecutionFrame {
  /** A child of the worker's logger naming the module and the executionId (made at its first read). */
  readonly log: Logger;
  /** Masks the request's secret values (those of `secretEnvironmentVariables`). */
  mask: SecretMasker;
  /**
   * The secret values `mask` masks (none shorter than `MIN_SECRET_LENGTH`, longest first): a long line's pieces
   * are masked each alone, so no splitter of this execution's output cuts inside one of them.
   */
  secrets: readonly string[];
  /**
   * The module's output lines, shipped; ended with the execution. Writers mask a line first (with
   * `mask`, before it is split: a secret is never cut in two): the module's logger and a host's
   * lines are masked once for the worker's log and this output together.
   */
  output: OutputWriter;
  /**
   * Whether `output` was closed (see {@link ExecutionFrame.end}): a line the module's code writes
   * later is in no output (see `toModuleLogger`).
   */
  readonly outputClosed: boolean;
  /** The module's timeout (ms): the request's, else the module's, else the worker's default. */
  timeoutMs: number;
  /** Ends the execution: clears its timeout, makes the answer (timed from the start) and logs it. */
  /**
   * The execution's answer for `result`; closes its output at once, or once `outputRead` resolves
   * (a module host's pipes read to the module's end; at most 60 s later).
   */
  end(result: ModuleEnd, outputRead?: Promise<void>): ExecutionOutcome;
}

/** The secret values of an execution without any, shared. */
const NO_SECRETS: readonly string[] = Object.freeze([]);
/** The masker of an execution without secrets (masks nothing), shared. */
const NO_MASK = createSecretMasker([]);

/**
 * Starts the clock of one execution: arms its timeout (which stops `stop` with a
 * {@link ModuleTimeoutError}: `ExecutionStop.timeOut`, its module host deciding in a host) and
 * logs `module started`.
 */
export function beginExecution(
  module: AnyModule,
  request: ExecutionRequest,
  options: ExecutionOptions,
  stop: ExecutionStop,
): ExecutionFrame {
  const started = new Date();
  const timeoutMs = request.timeoutMs ?? module.timeoutMs ?? options.defaultTimeoutMs;
  // The child logger is made only when something logs through it (the module's logger, its
  // output at debug, a stop): a module that logs nothing has its one line written by the worker's
  // logger with the same two fields in front, the same line (a child per module cost 1.2 µs of
  // CPU more per module than that, warm; issue 14).
  const fields = { module: module.name, executionId: request.executionId };
  let child: Logger | undefined;
  const log = (): Logger => (child ??= options.logger.child(fields));
  // A loop, not a closure over `request`: the frame's getters and `end` share this function's
  // closure scope, so a closure here that named `request` would keep the whole request (its
  // input, up to the body limit, and every environment variable) as long as the frame lives, and
  // a module host keeps the frames' sinks of its last executions (found in review, round H).
  const secretTexts: string[] = [];
  for (const name of request.secretEnvironmentVariables ?? []) {
    const value = request.environmentVariables[name];
    if (value !== undefined) secretTexts.push(value);
  }
  // No secret variable (almost every module): the shared empty list and masker, not two Sets,
  // three arrays and a closure made for none (issue 14, round P).
  const secrets = secretTexts.length === 0 ? NO_SECRETS : secretValues(secretTexts);
  const mask = secretTexts.length === 0 ? NO_MASK : createSecretMasker(secrets);
  const timer = longTimeout(
    () => {
      // In a module host, put to the host, which decides as for a cancel (`ExecutionStop.timeOut`).
      const timedOut = `Module '${module.name}' timed out after ${formatTimeSpan(timeoutMs)}`;
      if (stop.timeOut(new ModuleTimeoutError(timedOut)) === 'cancel-decides')
        log().info(`${timedOut} while a cancel waits for its module host's verdict: the cancel decides`);
    },
    timeoutMs,
    { unref: true },
  );

  // At debug: one info line per module ('module succeeded', with its duration, or 'module
  // failed') is enough in the worker's log; a second one per start cost a log write per module on
  // the dispatch hot path (issue 14, `--cpu-prof` of the worker CLI).
  if (options.logger.isLevelEnabled('debug')) log().debug('module started');
  const times = { executionId: request.executionId, workerId: options.workerId, started };
  const output = options.output ? options.output.open(request.executionId) : DISCARD_OUTPUT;
  let outputClosed = false;
  return {
    get log() {
      return log();
    },
    mask,
    secrets,
    output,
    get outputClosed() {
      return outputClosed;
    },
    timeoutMs,
    end: (result, outputRead) => {
      timer.clear();
      // A module host's last lines on its stdout and stderr may be read after its answer on the
      // host channel (fd 3; three pipes, read as they come): its log is closed once both pipes were
      // read to the module's end (`outputRead`), or after OUTPUT_END_WAIT_MS if that never comes.
      if (outputRead === undefined) {
        outputClosed = true;
        output.end();
      } else {
        const close = (): void => {
          if (outputClosed) return;
          outputClosed = true;
          clearTimeout(fallback);
          output.end();
        };
        const fallback = setTimeout(close, OUTPUT_END_WAIT_MS);
        fallback.unref();
        void outputRead.then(close);
      }
      const outcome = toOutcome(result, times, mask);
      // The line's fields written out (the module and executionId first when no child logger
      // names them), not spread: see `toOutcome`.
      const { duration } = outcome.body;
      if (outcome.status === 200) {
        if (child === undefined)
          options.logger.info({ module: fields.module, executionId: fields.executionId, duration }, 'module succeeded');
        else child.info({ duration }, 'module succeeded');
      } else {
        const error = outcome.body.errorMessage;
        const failureKind = outcome.body.failureKind;
        if (child === undefined)
          options.logger.warn(
            { module: fields.module, executionId: fields.executionId, duration, error, failureKind },
            'module failed',
          );
        else child.warn({ duration, error, failureKind }, 'module failed');
      }
      return outcome;
    },
  };
}

/** How long after its answer a hosted execution's output is closed at the latest (ms), when its host's end marks never come. */
const OUTPUT_END_WAIT_MS = 60_000;

/**
 * Starts one execution of `module` in the worker's own process (`isolation: 'none'`; Temporal's
 * `Activity`, to the `ModuleExecutor`'s `Worker`): arms its timeout, runs the module with its
 * context, and answers at the first of the module settling or its signal aborting.
 */
export function startExecution(module: AnyModule, request: ExecutionRequest, options: ExecutionOptions): Execution {
  return createExecution((stop, settle) => run(module, request, options, stop, settle));
}

async function run(
  module: AnyModule,
  request: ExecutionRequest,
  options: ExecutionOptions,
  stop: ExecutionStop,
  settle: (outcome: ExecutionOutcome) => void,
): Promise<void> {
  const frame = beginExecution(module, request, options, stop);
  // The outcome is given at the first of: the module settles, or it is stopped.
  const aborted = new Promise<never>((_, reject) => stop.onAbort(() => reject(stop.reason)));
  aborted.catch(() => undefined);
  // The module's console.* is its output too (several modules share this process's console).
  const capture = new ConsoleCapture((stream, lines) => frame.output.write(stream, frame.mask(lines)), frame.secrets);
  // The listeners the module put on its signal run in its context, whoever aborts it (its timeout
  // armed by the worker, the cancel route): there `console.*` is its output too.
  stop.signalAbortsWithin = (abort) => capture.run(abort);
  let artifacts: ExecutionArtifacts | undefined; // made at the module's first use of ctx.artifacts
  // A cancelled or timed-out module is answered at once; its code may run on, ignoring its signal,
  // until it returns: its late lines say which (not "after its module ended" while it still runs).
  let codeEnded = false;
  const stillRunning = (): 'cancelled' | 'timed-out' | undefined =>
    codeEnded || !stop.aborted ? undefined : stop.reason instanceof ModuleTimeoutError ? 'timed-out' : 'cancelled';
  const work = capture.run(async () => {
    const workingDirectory = request.workingDirectory ?? options.workingDirectory;
    await ensureWorkingDirectory(workingDirectory);
    let moduleLogger: ModuleLogger | undefined;
    const ctx = createModuleContext({
      module,
      params: request.params,
      results: request.dependencyResults,
      env: request.environmentVariables,
      workingDirectory,
      get signal() {
        return stop.signal;
      },
      get logger() {
        return (moduleLogger ??= toModuleLogger(
          frame.log,
          frame.mask,
          frame.output,
          () => frame.outputClosed,
          stillRunning,
        ));
      },
      // The whole lines of a read of the pipe, each ending with its \n: kept as bytes, masked when shipped.
      onOutput: (stream, lines) => writeLineBytes(frame.output, stream, lines, frame.mask),
      secrets: secretBytes(frame.secrets),
      executionId: request.executionId,
      workerId: options.workerId,
      get artifacts() {
        return (artifacts ??= moduleArtifacts({
          transport: options.artifacts?.transport,
          module: module.name,
          scratchDir: options.artifacts?.scratchDir ?? workingDirectory,
          workingDirectory,
          // Read only when a download starts: most executions never make their signal.
          moduleSignal: () => stop.signal,
        })).api;
      },
    });
    try {
      return await module.run(ctx);
    } finally {
      codeEnded = true;
    }
  });
  let result: ModuleEnd;
  try {
    const value = await Promise.race([work, aborted]);
    result = { ok: true, value: checkedResult(module.name, serialise(module.name, value), options.maxResultBytes) };
  } catch (error) {
    result = { ok: false, error: stop.aborted ? stop.reason : error };
  }
  capture.end();
  // The module's end, whichever (success too), ends its attempt: an upload or a download it left
  // running stops and removes its archive or staging directory before the answer, so nothing more
  // lands in its directory afterwards. Only for a module that used ctx.artifacts (no await for the others).
  if (artifacts) await artifacts.end(result.ok ? undefined : result.error);
  settle(frame.end(result));

  // The slot stays taken until the module's code has really stopped.
  await work.catch(() => undefined);
}

/**
 * How a module ended, for {@link toOutcome}: its result as JSON text, what it threw (a timeout or
 * a cancel is told apart by the signal's reason, an {@link ModuleTimeoutError} or
 * {@link ExecutionCancelledError}), or a thrown value already described (by a module host,
 * where the value itself stays): failure kind `Error`.
 */
export type ModuleEnd =
  { ok: true; value: string } | { ok: false; error: unknown } | { ok: false; thrown: ThrownDescription };

/**
 * The answer for how a module ended, timed from `started` to now; failure messages and stacks
 * pass through `mask`. Both ways of running a module end here, on the worker: `value` is the
 * serialised result (made by `serialise`, in the worker or in the module host).
 */
export function toOutcome(
  result: ModuleEnd,
  { executionId, workerId, started }: { executionId: string; workerId: string; started: Date },
  mask: SecretMasker,
): ExecutionOutcome {
  const ended = new Date();
  // Each answer's fields written out, not spread from `times`: on Node 20 (V8 11.3) an object
  // spread followed by more fields gets a new hidden class at every call, which left the sites
  // that read these answers megamorphic and missing V8's caches once per module (issue 14, round L).
  const duration = formatTimeSpan(ended.getTime() - started.getTime());
  const startTime = isoTime(started.getTime());
  const endTime = isoTime(ended.getTime());
  if (result.ok) {
    return {
      status: 200,
      body: { executionId, duration, startTime, endTime, workerId, success: true, serializedResult: result.value },
    };
  }
  let failureKind: FailureKind = 'Error';
  let thrown: ThrownDescription;
  if ('thrown' in result) {
    thrown = result.thrown;
  } else {
    const error = result.error;
    if (error instanceof ModuleTimeoutError) failureKind = 'TimedOut';
    else if (error instanceof ExecutionCancelledError) failureKind = 'Cancelled';
    thrown = describeThrown(error);
  }
  return {
    status: 500,
    body: {
      executionId,
      duration,
      startTime,
      endTime,
      workerId,
      success: false,
      errorMessage: mask(thrown.message),
      exceptionType: thrown.type,
      stackTrace: thrown.stack === null ? null : mask(thrown.stack),
      failureKind,
    },
  };
}
