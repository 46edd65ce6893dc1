import { availableParallelism } from 'node:os';
import type { ClientOptions } from '@mpd/client';
import { LIMITS } from '@mpd/contract';
import type { Pipeline } from '@mpd/pipeline';
import { LOG_FORMATTERS } from '@mpd/server-kit';
import pino, { type Logger } from 'pino';
import { defaultWorkerId, detectTools, osName } from './capabilities.js';
import { WorkerConfigError } from './errors.js';
import type { WorkerIsolation } from './executor/module-executor.js';
import {
  DEFAULT_CACHE_BYTES,
  DEFAULT_WORKER_OPTIONS,
  PACK_STALL_MAX_MS,
  PACK_STALL_MIN_MS,
} from './worker-defaults.js';

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  /**
   * The worker's id, unique in the cluster: 1 to 128 letters, digits and `. _ ~ -`, starting with
   * a letter or digit (the contract's `LIMITS.workerId`: it travels as a path parameter).
   * @default `worker-<hostname>-<random>`
   * @throws WorkerConfigError (setting `id`) from {@link startWorker} for an id outside that alphabet
   */
  id?: string;
  /**
   * Port to listen on; 0 picks a free one.
   * @default 9000
   */
  port?: number;
  /**
   * Address to listen on.
   * @default '0.0.0.0'
   */
  host?: string;
  /**
   * The URL the orchestrator calls this worker at.
   * @default `http://<host>:<port>` (`https://` with `tls`), with the machine's hostname when listening on all addresses
   */
  endpoint?: string;
  /**
   * Serve HTTPS with this certificate and key (PEM contents, not file paths). With `clientCa`
   * the worker requires mutual TLS: callers (the orchestrator) must present a certificate
   * signed by that CA, or the handshake fails.
   * @default plain HTTP
   */
  tls?: {
    /** The worker's certificate (chain), PEM. */
    cert: string | Buffer;
    /** The certificate's private key, PEM. */
    key: string | Buffer;
    /**
     * The CA(s) client certificates must be signed by: set it to require mutual TLS.
     * @default no client certificate asked for
     */
    clientCa?: string | Buffer;
  };
  /** The orchestrator's base URL; without it the worker serves its API but registers nowhere. */
  orchestratorUrl?: string;
  /**
   * TLS settings of the calls to an `https://` orchestrator (PEM contents): the CA its
   * certificate must chain to, and the client certificate for an orchestrator that requires
   * mutual TLS.
   * @default Node's default trusted roots, no client certificate
   */
  orchestratorTls?: ClientOptions['tls'];
  /** The cluster join token to register with (the orchestrator's `MPD_JOIN_TOKEN`). */
  joinToken?: string;
  /**
   * A file where the worker keeps the credential the orchestrator gave it, between runs:
   * written (mode 0600) after each registration, read at start and presented when registering.
   * Never written over another process's credential: only while it holds what this process read
   * or wrote there, or nothing (see `OrchestratorLink`).
   * A worker restarted after a crash then takes its place again at once; without it, its id
   * stays taken (409 `WorkerIdTaken`, retried) until the orchestrator counts the crashed run
   * `Offline`, after the heartbeat timeout. Keep it private, like the join token.
   * @default none: the credential lives in memory only
   */
  credentialFile?: string;
  /**
   * A token the orchestrator may call this worker with, besides the credential the worker gets
   * at registration. Execute and cancel calls without one of them get 401 (503 `WorkerNotReady`
   * while the worker awaits its first registration).
   */
  token?: string;
  /**
   * Open mode: execute and cancel are served without any token while the worker holds none (no
   * `token`; with `orchestratorUrl`, until its first registration gives it a credential). For a
   * worker on a trusted network that nothing else protects; the worker warns at start. Without
   * it a worker fails closed: it serves execute and cancel only with its credential or `token`,
   * and a worker with neither (no orchestrator, no token) refuses them (401).
   * @default false
   * @throws WorkerConfigError (setting `open`) from {@link startWorker} with `joinToken`, `token`
   *   or client certificates (`tls.clientCa`, `orchestratorTls.cert`): a secured worker is never open
   */
  open?: boolean;
  /** The pipeline whose modules this worker runs. */
  pipeline?: Pipeline;
  /**
   * Where modules run. `'process'`: in module hosts, child processes started with the worker
   * (one per slot, each loading the pipeline's `sourceFile` once, reused from module to module),
   * each in its own process group. A module that blocks its event loop, crashes, calls
   * `process.exit()` or exhausts its heap fails alone while the worker goes on serving and
   * heartbeating; a cancelled or timed-out module's processes (children, grandchildren) are
   * stopped with SIGTERM, then SIGKILL after `killGraceMs`, before its answer and before its
   * slot is free. `'none'`: in the worker's own process and event loop (what a pipeline defined
   * in code needs: closures cannot be sent to another process).
   * @default `'process'` when the pipeline was loaded from a file (`loadPipelineFile` sets its
   *   `sourceFile`), else `'none'`
   * @throws WorkerConfigError from {@link startWorker} for `'process'` with a pipeline defined in code
   */
  isolation?: WorkerIsolation;
  /**
   * With `isolation: 'process'`: how long a cancelled or timed-out module's processes get
   * between SIGTERM and SIGKILL, in ms (Buildkite's `cancel-grace-period`). On worker shutdown
   * they get it too; a module host whose worker died stops its group the same way. Never past
   * the end of the worker's heartbeat lease (SIGKILL then): the worker fences this long before
   * its lease ends, at most a quarter of the heartbeat timeout (see the README's fencing).
   * @default 10_000
   */
  killGraceMs?: number;
  /**
   * With `isolation: 'process'`: the V8 heap limit of each module host, in MiB (Node's
   * `--max-old-space-size`); a module that exhausts it fails alone ("ran out of memory").
   * @default Node's default (about a quarter of the machine's memory, at most 4 GiB)
   */
  moduleHeapLimitMb?: number;
  /**
   * How many modules may run at once on this worker (its slots; the CLI's `--slots`),
   * advertised to the orchestrator as `capabilities.maxParallelModules`. Not the orchestrator's
   * `maxParallelism`, which caps modules across the whole cluster.
   * @default the number of CPUs (`os.availableParallelism()`)
   */
  slots?: number;
  /** @default [] */
  tags?: string[];
  /**
   * Tools advertised to the orchestrator.
   * @default the known tools found on PATH
   */
  tools?: string[];
  /**
   * Operating system advertised to the orchestrator.
   * @default this machine's (`linux`, `windows`, `macos`)
   */
  os?: string;
  /**
   * Working directory of modules whose request names none.
   * @default process.cwd()
   */
  workingDirectory?: string;
  /**
   * Timeout of a module whose request and definition set none (ms).
   * @default 1_800_000 (30 minutes)
   */
  defaultTimeoutMs?: number;
  /**
   * How long to let running modules finish on shutdown before cancelling them (ms).
   * @default 30_000
   */
  shutdownGraceMs?: number;
  /**
   * Largest accepted request body (bytes-package syntax: `100mb`, 1024-based); execute requests
   * carry their dependencies' results. Advertised to the orchestrator
   * (`capabilities.bodyLimitBytes`), which sends no execute request larger than this.
   * @default '100mb'
   */
  bodyLimit?: string;
  /**
   * The largest result a module may return, as JSON text in UTF-8 bytes (the CLI's
   * `--max-result-size`). A module whose result is larger fails, with a message naming its size
   * and this limit, before anything is sent; so does one whose result nests deeper than the
   * contract's `LIMITS.json.maxDepth` (1,000). It also bounds what a dependant's worker takes
   * in: the results passed to one module by reference, together (a module whose references are
   * larger fails before it runs, naming them and this limit).
   * @default 134_217_728 (128 MiB, `DEFAULT_WORKER_MAX_RESULT_BYTES`: a result over
   *   `inlineResultBytes` is stored as a blob, so this bounds the worker's memory, not the answer)
   */
  maxResultBytes?: number;
  /**
   * Results whose JSON text is larger than this (UTF-8 bytes; the CLI's `--inline-result-size`)
   * are stored in the orchestrator's artifact store and passed by reference
   * (`{"$mpdRef":{"sha256":…,"size":…}}`): the orchestrator's report holds the reference, a
   * dependant's worker fetches the value before `run`. Without an `orchestratorUrl` (no store)
   * every result is inline.
   * @default 262_144 (256 KiB, `DEFAULT_INLINE_RESULT_BYTES`)
   */
  inlineResultBytes?: number;
  /** @default false */
  validateResponses?: boolean;
  /** First registration retry delay while the orchestrator is unreachable (ms). @default 500 */
  initialBackoffMs?: number;
  /**
   * Longest registration retry delay (ms); also the longest a registration refused 503
   * `TooManyWorkers`/`TooManyPipelines` waits of the answer's `Retry-After`. @default 30_000
   */
  maxBackoffMs?: number;
  /**
   * How long a finished execution's outcome is kept, so that a repeated executionId gets it
   * again instead of a second run (ms); also how long a cancel of an execution not (yet) here is
   * kept, so that its execute arriving later is answered as cancelled, not started.
   *
   * Coupled to the orchestrator's `COLLECT_WINDOW_MS` (9 minutes, `@mpd/orchestrator`'s
   * `runner/attempt-calls.ts`): the orchestrator asks for a finished execution's outcome (the same
   * request sent again) up to that long after the worker finished it, and cannot see this value.
   * Keep it longer than that window: a shorter one may have forgotten an outcome a collect asks
   * for, which then runs the module a second time here.
   * @default 600_000 (10 minutes)
   */
  completedRetentionMs?: number;
  /** @default a pino logger at `info` writing to stderr */
  logger?: Logger;
  // --- artifacts (issue 13, slice A) ---
  /**
   * Where the worker keeps artifact blobs it uploaded or downloaded, by SHA-256 (made at first
   * use; relative to the process's working directory). A blob larger than `cacheMaxBytes` is not
   * kept: its download streams into the module with no file here, and a consumer asking for it
   * after its bytes began to flow downloads it again (`WorkerBlobs`). Used only with an
   * `orchestratorUrl`.
   * @default '.mpd/artifact-cache'
   */
  cacheDir?: string;
  /**
   * The most bytes of blobs the cache keeps; past it the least recently used are removed (a
   * blob a module is extracting stays readable until it is done). A downloaded blob larger than
   * this is streamed into the module that asked for it, with no cache file, and not kept.
   * @default 5 GiB (`DEFAULT_CACHE_BYTES`)
   */
  cacheMaxBytes?: number;
  /**
   * How long an archive streamed into its upload while its module packs it may go without a
   * byte written before that upload is cut (the store keeps nothing of it) and the archive is
   * uploaded by hash once packed instead (ms; the CLI's `--pack-stall`): a POST idle for an idle
   * timeout along its way fails. The default is half the 60 s idle timeout of the worker's
   * artifact client and of the orchestrator (`startOrchestrator`'s `idleTimeoutMs`); set it below
   * half the shortest idle timeout between the worker and the orchestrator when that is shorter
   * (an orchestrator started with a shorter `idleTimeoutMs`; a reverse proxy: nginx's
   * `client_body_timeout` and HAProxy's `timeout client` time out an idle request body). See
   * `WorkerBlobs`' `packStallMs`. Used only with an `orchestratorUrl`.
   * @default 30_000
   * @throws WorkerConfigError (setting `packStallMs`) from {@link startWorker} outside
   *   {@link PACK_STALL_MIN_MS} to {@link PACK_STALL_MAX_MS} (the CLI's `--pack-stall` rule: 1 to
   *   3600 s), or not a number: a Node timer past 2^31 − 1 ms fires after 1 ms, cutting every
   *   streamed upload at once
   */
  packStallMs?: number;
  // --- module output (issue 13) ---
  /**
   * The module output one execution keeps in memory while it waits to be shipped to the
   * orchestrator, as written (a block of a command's lines counted as its bytes, a `ctx.logger`
   * line as its text, each and 50 bytes more; the CLI's `--output-buffer-size`). Past it, lines
   * go to the execution's spill file.
   * @default 1 MiB (`DEFAULT_OUTPUT_BUFFER_BYTES`)
   */
  outputBufferBytes?: number;
  /**
   * The module output one execution keeps in its spill file (under `workingDirectory`,
   * `.mpd/output-spill/<worker id>/`) once its memory is full (the CLI's `--output-spill-size`).
   * Past it, lines are dropped and counted, and one line saying how many takes their place once
   * there is room again.
   * @default 64 MiB (`DEFAULT_OUTPUT_SPILL_BYTES`)
   */
  outputSpillBytes?: number;
}

export { DEFAULT_CACHE_BYTES, DEFAULT_WORKER_OPTIONS, PACK_STALL_MAX_MS, PACK_STALL_MIN_MS };

/** The options {@link resolveWorkerOptions} gives a default. */
type DefaultedOption =
  | keyof typeof DEFAULT_WORKER_OPTIONS
  | 'id'
  | 'slots'
  | 'tags'
  | 'tools'
  | 'os'
  | 'workingDirectory'
  | 'logger'
  | 'isolation'
  | 'open';

/**
 * {@link WorkerOptions} with every default filled in (Temporal's `CompiledWorkerOptions`).
 * `endpoint` stays optional: its default names the port the server gets.
 */
export type ResolvedWorkerOptions = Omit<WorkerOptions, DefaultedOption> &
  Required<Pick<WorkerOptions, DefaultedOption>>;

/**
 * Fills in every default of {@link WorkerOptions}, once (Temporal's `addDefaultWorkerOptions`):
 * the documented `@default` of each option, read from the machine where it says so.
 * @throws WorkerConfigError (setting `isolation`) for `isolation: 'process'` with a pipeline
 *   defined in code (no `sourceFile` for its module hosts to load)
 */
export function resolveWorkerOptions(options: WorkerOptions = {}): ResolvedWorkerOptions {
  const defaults = DEFAULT_WORKER_OPTIONS;
  const fromFile = options.pipeline?.sourceFile !== undefined;
  if (options.isolation === 'process' && options.pipeline && !fromFile) {
    throw new WorkerConfigError(
      'InvalidSetting',
      'isolation',
      `Invalid setting isolation: 'process' needs a pipeline loaded from its file (loadPipelineFile), so that module hosts can load it; pipeline '${options.pipeline.name}' was defined in code (use isolation 'none')`,
    );
  }
  if (options.id !== undefined) checkWorkerId(options.id);
  if (options.packStallMs !== undefined) checkPackStall(options.packStallMs);
  const open = options.open ?? defaults.open;
  if (open && isSecured(options)) {
    throw new WorkerConfigError(
      'InvalidSetting',
      'open',
      'Invalid setting open: a worker with a join token, a token or client certificates serves execute and cancel only with a credential; open mode is for a worker with none of them',
    );
  }
  return {
    ...options,
    id: options.id ?? defaultWorkerId(),
    open,
    port: options.port ?? defaults.port,
    host: options.host ?? defaults.host,
    slots: options.slots ?? availableParallelism(),
    tags: options.tags ?? [],
    tools: options.tools ?? detectTools(),
    os: options.os ?? osName(),
    workingDirectory: options.workingDirectory ?? process.cwd(),
    defaultTimeoutMs: options.defaultTimeoutMs ?? defaults.defaultTimeoutMs,
    shutdownGraceMs: options.shutdownGraceMs ?? defaults.shutdownGraceMs,
    // `||`: an empty string counts as not given.
    bodyLimit: options.bodyLimit || defaults.bodyLimit,
    maxResultBytes: options.maxResultBytes ?? defaults.maxResultBytes,
    inlineResultBytes: options.inlineResultBytes ?? defaults.inlineResultBytes,
    validateResponses: options.validateResponses ?? defaults.validateResponses,
    initialBackoffMs: options.initialBackoffMs ?? defaults.initialBackoffMs,
    maxBackoffMs: options.maxBackoffMs ?? defaults.maxBackoffMs,
    completedRetentionMs: options.completedRetentionMs ?? defaults.completedRetentionMs,
    isolation: options.isolation ?? (fromFile ? 'process' : 'none'),
    killGraceMs: options.killGraceMs ?? defaults.killGraceMs,
    cacheDir: options.cacheDir ?? defaults.cacheDir,
    cacheMaxBytes: options.cacheMaxBytes ?? defaults.cacheMaxBytes,
    packStallMs: options.packStallMs ?? defaults.packStallMs,
    outputBufferBytes: options.outputBufferBytes ?? defaults.outputBufferBytes,
    outputSpillBytes: options.outputSpillBytes ?? defaults.outputSpillBytes,
    logger: options.logger ?? pino({ level: 'info', formatters: LOG_FORMATTERS }, pino.destination(2)),
  };
}

/**
 * Whether the worker is configured to take calls only with a credential: it has a join token, a
 * token, or client certificates (it requires them from its callers, or presents one to the
 * orchestrator). Such a worker is never open (see {@link WorkerOptions.open}).
 */
export function isSecured(options: WorkerOptions): boolean {
  return (
    options.joinToken !== undefined ||
    options.token !== undefined ||
    options.tls?.clientCa !== undefined ||
    options.orchestratorTls?.cert !== undefined
  );
}

/**
 * Checks {@link WorkerOptions.packStallMs}: {@link PACK_STALL_MIN_MS} to {@link PACK_STALL_MAX_MS}.
 * @throws WorkerConfigError (setting `packStallMs`)
 */
function checkPackStall(packStallMs: number): void {
  if (packStallMs >= PACK_STALL_MIN_MS && packStallMs <= PACK_STALL_MAX_MS) return;
  throw new WorkerConfigError(
    'InvalidSetting',
    'packStallMs',
    `Invalid setting packStallMs: must be ${PACK_STALL_MIN_MS} to ${PACK_STALL_MAX_MS} ms (the CLI's --pack-stall: 1 to 3600 s), got ${String(packStallMs)}`,
  );
}

/**
 * Checks a worker id against the contract's `LIMITS.workerId`, as the orchestrator would (400
 * naming `body.workerNode.id`): refused here, at start, with the rule.
 * @throws WorkerConfigError (setting `id`)
 */
function checkWorkerId(id: string): void {
  const { maxLength, pattern, alphabet } = LIMITS.workerId;
  if (id.length >= 1 && id.length <= maxLength && pattern.test(id)) return;
  throw new WorkerConfigError(
    'InvalidSetting',
    'id',
    `Invalid setting id: must be 1 to ${maxLength} ${alphabet} (a worker id travels in URL paths), got ${JSON.stringify(id)}`,
  );
}
