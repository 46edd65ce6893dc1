import { type ClientOptions, createWorkerClient, type WorkerClient } from '@mpd/client';
import type { FailureMode, Pipeline } from '@mpd/pipeline';
import type { Logger } from 'pino';
import { OrchestratorConfigError } from '../errors.js';
import { WorkerEndpointPolicy } from '../http/endpoint-policy.js';
import { requirePositive } from '../orchestrator-options.js';
import type { NodeRegistry } from '../registry/node-registry.js';
import { DEFAULT_RUN_OPTIONS } from './run-defaults.js';
import type { ExecutionLogs } from './execution-logs.js';
import { type RunClock, systemClock } from './run-clock.js';
import type { RunEvent } from './run-result.js';

/** What {@link RunPipelineOptions.createClient} makes a client for: a worker, and the credential to call it with. */
export interface WorkerClientTarget {
  /** The worker's base URL, as it registered it. */
  endpoint: string;
  /** The worker's credential, issued by the registry at registration: the worker only accepts calls bearing it. */
  token: string | undefined;
}

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
   * module's requirements) before it fails, naming what is missing (ms); 0: it fails at once,
   * naming what it asks for (`NoCapableWorker`).
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
   * The largest module result the orchestrator accepts, as JSON text in UTF-8 bytes (the CLI's
   * `--max-result-size`; workers have their own, the same by default). A larger result, or an
   * answer larger than such a result can make (`executeAnswerLimit`: never read past that),
   * fails its module with a message naming the size and the limit; so does a result nested
   * deeper than the contract's `LIMITS.json.maxDepth`. Keeps the orchestrator's memory bounded:
   * it holds every result for the whole run.
   * @default 16_777_216 (16 MiB, the contract's `DEFAULT_MAX_RESULT_BYTES`)
   */
  maxResultBytes?: number;
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
   * Which worker addresses the run connects to: each new connection to a worker resolves its
   * host and checks every address by this policy first, and connects to those addresses only (no
   * resolving again in between). A refused one fails its attempt as a broken endpoint (the worker
   * is quarantined for the run) before anything is sent. Give the orchestrator's
   * (`RunningOrchestrator.endpointPolicy`): it knows the allow-list and the orchestrator's own
   * listening address.
   * @default a policy of its own: the addresses refused with or without an allow-list (link-local and metadata, multicast, unspecified, broadcast)
   */
  endpointPolicy?: WorkerEndpointPolicy;
  /**
   * Makes the client of a worker, given its endpoint and its credential (`token`, to be sent
   * as the bearer token of every call, as `ClientOptions.token` does). Called once per endpoint
   * and credential; the run closes the clients when it ends. The runner passes each execute
   * call its deadline (`deadlineMs`: the module's timeout plus `timeoutMarginMs`).
   * @default ({ endpoint, token }) => createWorkerClient({ baseUrl: endpoint, token, tls: workerTls, resolveHost: endpointPolicy's check })
   */
  createClient?: (target: WorkerClientTarget) => WorkerClient;
  /**
   * The time the run reads and the timers it sets (the periodic look at the registry, retry and
   * re-dispatch backoff, re-sends, cancel retries, the worker wait): inject a manual clock in
   * tests about time. Records and reports carry its time too.
   * @default the system's (`Date.now`, `setTimeout`)
   */
  clock?: RunClock;
  /**
   * Where the run takes its modules' output from: give the orchestrator's
   * (`RunningOrchestrator.executionLogs`), whose route the workers send it to. The run opens the
   * log of each attempt it dispatches, reports its lines as `output` events and references its
   * file from the attempt's record (`log`).
   * @default none: the modules' output is not taken (the workers' batches answer 404)
   */
  executionLogs?: ExecutionLogs;
  /**
   * The directory each attempt's log is written under, as `<logsDir>/<module>/<attempt>.log`
   * (with `executionLogs`).
   * @default none: the lines are only reported as events
   */
  logsDir?: string;
  /**
   * How long the run waits, once its last module ended, for the last output of its attempts
   * (their `final` batches: a worker answers an execute call without waiting for its output to
   * be shipped), in ms: given up once their worker sent nothing for this long. The wait starts
   * again with each line that comes (a worker ships what a fast module left after its answer),
   * up to `maxOutputWaitMs`.
   * @default 2_000
   */
  outputGraceMs?: number;
  /**
   * The longest the run waits at its end for its attempts' last output while their workers
   * still send it (see `outputGraceMs`), in ms; what is not in by then is dropped and reported
   * (`output-incomplete` events). 5 minutes: far more than shipping a full
   * `--output-spill-size` (64 MiB) takes (19 MiB reached the orchestrator within about 0.4 s of
   * the module's end on the benchmark's 2-core VM), yet a bound on a worker trickling lines.
   * @default 300_000
   */
  maxOutputWaitMs?: number;
}

/** {@link RunPipelineOptions} with every default filled in (by {@link resolveRunOptions}). */
export interface ResolvedRunOptions {
  readonly pipeline: Pipeline;
  readonly registry: NodeRegistry;
  readonly logger: Logger;
  readonly environmentVariables: Readonly<Record<string, string>>;
  readonly secretEnvironmentVariables: Readonly<Record<string, string>>;
  readonly workingDirectory: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly onEvent: ((event: RunEvent) => void) | undefined;
  /** Empty: every category runs. */
  readonly runOnlyCategories: readonly string[];
  readonly ignoreCategories: readonly string[];
  readonly failureMode: FailureMode;
  /** `undefined`: no limit but the workers' slots. */
  readonly maxParallelism: number | undefined;
  readonly maxLostAttempts: number;
  readonly workerWaitMs: number;
  readonly rescheduleIntervalMs: number;
  readonly timeoutMarginMs: number;
  readonly maxResultBytes: number;
  readonly durationHints: Readonly<Record<string, number>>;
  readonly createClient: (target: WorkerClientTarget) => WorkerClient;
  readonly clock: RunClock;
  readonly executionLogs: ExecutionLogs | undefined;
  readonly logsDir: string | undefined;
  readonly outputGraceMs: number;
  readonly maxOutputWaitMs: number;
}

/** Every failure mode (a record, so that a new mode cannot be left out). */
const FAILURE_MODES: Record<FailureMode, true> = { StopOnFirstFailure: true, WaitForAll: true };

/**
 * Fills in the defaults of a run's options (the pipeline's, then {@link DEFAULT_RUN_OPTIONS})
 * and checks the values that would make the run misbehave.
 * @throws OrchestratorConfigError (code `InvalidSetting`) naming the option at fault.
 */
export function resolveRunOptions(options: RunPipelineOptions): ResolvedRunOptions {
  const { pipeline, workerTls } = options;
  const endpointPolicy = options.endpointPolicy ?? new WorkerEndpointPolicy();
  const resolveHost = (hostname: string, port: number) => endpointPolicy.addressesFor(hostname, port);
  const resolved: ResolvedRunOptions = {
    pipeline,
    registry: options.registry,
    logger: options.logger,
    environmentVariables: options.environmentVariables ?? {},
    secretEnvironmentVariables: options.secretEnvironmentVariables ?? {},
    workingDirectory: options.workingDirectory,
    signal: options.signal,
    onEvent: options.onEvent,
    runOnlyCategories: options.runOnlyCategories ?? [],
    ignoreCategories: options.ignoreCategories ?? [],
    failureMode: options.failureMode ?? pipeline.failureMode,
    maxParallelism: options.maxParallelism ?? pipeline.maxParallelism,
    maxLostAttempts: options.maxLostAttempts ?? DEFAULT_RUN_OPTIONS.maxLostAttempts,
    workerWaitMs: options.workerWaitMs ?? DEFAULT_RUN_OPTIONS.workerWaitMs,
    rescheduleIntervalMs: options.rescheduleIntervalMs ?? DEFAULT_RUN_OPTIONS.rescheduleIntervalMs,
    timeoutMarginMs: options.timeoutMarginMs ?? DEFAULT_RUN_OPTIONS.timeoutMarginMs,
    maxResultBytes: options.maxResultBytes ?? DEFAULT_RUN_OPTIONS.maxResultBytes,
    durationHints: options.durationHints ?? {},
    createClient:
      options.createClient ??
      (({ endpoint, token }) => createWorkerClient({ baseUrl: endpoint, token, tls: workerTls, resolveHost })),
    clock: options.clock ?? systemClock,
    executionLogs: options.executionLogs,
    logsDir: options.logsDir,
    outputGraceMs: options.outputGraceMs ?? DEFAULT_RUN_OPTIONS.outputGraceMs,
    maxOutputWaitMs: options.maxOutputWaitMs ?? DEFAULT_RUN_OPTIONS.maxOutputWaitMs,
  };
  if (!Object.hasOwn(FAILURE_MODES, resolved.failureMode)) {
    invalid('failureMode', `must be one of ${Object.keys(FAILURE_MODES).join(', ')}`, resolved.failureMode);
  }
  const { maxParallelism, maxLostAttempts, workerWaitMs, timeoutMarginMs, maxResultBytes } = resolved;
  if (maxParallelism !== undefined && !(Number.isInteger(maxParallelism) && maxParallelism >= 1)) {
    invalid('maxParallelism', 'must be an integer of at least 1', maxParallelism);
  }
  // NaN would never be exceeded: a module lost again and again would be dispatched forever.
  if (!(Number.isInteger(maxLostAttempts) && maxLostAttempts >= 0)) {
    invalid('maxLostAttempts', 'must be an integer of at least 0', maxLostAttempts);
  }
  // Infinity waits for ever; NaN or a negative wait would fail every module at once.
  if (!(workerWaitMs >= 0)) invalid('workerWaitMs', 'must be a number of at least 0', workerWaitMs);
  // 0 or less would make the periodic look a busy loop.
  requirePositive('rescheduleIntervalMs', resolved.rescheduleIntervalMs);
  // Part of every execute call's deadline, which must be a finite number of ms.
  if (!(Number.isFinite(timeoutMarginMs) && timeoutMarginMs >= 0)) {
    invalid('timeoutMarginMs', 'must be a finite number of at least 0', timeoutMarginMs);
  }
  if (!(Number.isSafeInteger(maxResultBytes) && maxResultBytes > 0)) {
    invalid('maxResultBytes', 'must be a whole number of bytes above 0', maxResultBytes);
  }
  // Infinity waits for ever; NaN would never be reached: the wait at the run's end would poll for ever.
  for (const setting of ['outputGraceMs', 'maxOutputWaitMs'] as const) {
    if (!(resolved[setting] >= 0)) invalid(setting, 'must be a number of at least 0', resolved[setting]);
  }
  return resolved;
}

function invalid(setting: string, must: string, value: unknown): never {
  throw new OrchestratorConfigError(
    'InvalidSetting',
    setting,
    `Invalid setting ${setting}: ${must}, got ${String(value)}`,
  );
}
