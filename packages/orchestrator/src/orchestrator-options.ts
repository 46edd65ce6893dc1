import { redactUrl } from '@mpd/contract/redact-url';
import { pino, type Logger } from 'pino';
import { parseS3Url } from './artifacts/s3-url.js';
import { OrchestratorConfigError } from './errors.js';
import type { HostResolver } from './http/endpoint-policy.js';
import {
  DEFAULT_ARTIFACT_RETENTION_MS,
  DEFAULT_ARTIFACT_URL_EXPIRY_MS,
  DEFAULT_ORCHESTRATOR_OPTIONS,
  DEFAULT_START_OPTIONS,
} from './orchestrator-defaults.js';
import type { StartOrchestratorOptions } from './server.js';

/**
 * The options of an orchestrator (the app, the registry and the server), every default filled
 * in by {@link resolveOrchestratorOptions}; callers give {@link OrchestratorOptions}.
 */
export interface ResolvedOrchestratorOptions {
  /**
   * How often workers should send a heartbeat, in seconds; sent to each worker in its
   * registration response.
   * @default 30
   */
  heartbeatIntervalSeconds: number;
  /**
   * How long after its last heartbeat a worker counts as `Offline`, in milliseconds.
   * Keep it a few heartbeat intervals long so one lost heartbeat does not drop a worker.
   * @default 120_000
   */
  heartbeatTimeoutMs: number;
  /**
   * Validate every response body against the contract before sending it (a body that
   * does not match answers 500 instead). Costs a little time per request; tests turn it on.
   * @default false
   */
  validateResponses: boolean;
  /**
   * Where the orchestrator logs (requests at `debug`, failures at `error`).
   * @default a silent pino logger
   */
  logger: Logger;
  /**
   * The cluster join token workers register with (bearer token). When set, registration needs
   * it, and each worker gets a credential it must use for its own heartbeats, unregister and
   * drain: only the worker itself (or an admin, with `adminToken`) can free a live worker's id.
   * Unset: workers register and heartbeat without a token (anyone can keep any worker looking
   * alive), and without `adminToken` too, drain and unregister are open: anyone who reaches the
   * orchestrator can unregister a live worker and register its id (README, Security, "Who can
   * take a live worker's id").
   */
  joinToken?: string | undefined;
  /**
   * The admin token for listing workers and draining or unregistering any worker (bearer token).
   * Unset: listing is open, and so are drain and unregister unless `joinToken` is set (then they
   * take the worker's own credential).
   */
  adminToken?: string | undefined;
  /** Rate limits; see {@link RateLimitOptions}. */
  rateLimits: RateLimitOptions;
  /**
   * Hosts a worker's `endpoint` may be at: names (`worker1`), `*.suffix` patterns
   * (`*.ci.internal`), addresses (`10.0.0.7`) and address ranges (`10.0.0.0/8`). A name is
   * allowed when it matches a name or pattern, or when every address it resolves to is listed.
   * The orchestrator calls registered endpoints, so a list keeps it from being pointed elsewhere.
   * With or without a list, link-local and metadata addresses, multicast, unspecified and
   * broadcast addresses and the orchestrator's own address and port are refused (see
   * `WorkerEndpointPolicy`).
   * @default undefined: any host but those
   */
  allowedWorkerHosts?: readonly string[] | undefined;
  /**
   * How worker endpoints' host names are resolved, to check every address at registration (the
   * runner checks them again at each connection, with its own `endpointPolicy`). Inject one in
   * tests, or to use a resolver other than the system's.
   * @default the system's (`getaddrinfo`, as Node's `net.connect` resolves)
   */
  resolveHost?: HostResolver | undefined;
  /**
   * The largest JSON body accepted (bytes-package syntax: `1mb`, `512kb`); larger ones get 413.
   * @default '1mb'
   */
  bodyLimit: string;
  /** Origins allowed to call the API from a browser (CORS). Unset: no CORS headers. */
  corsOrigins?: readonly string[] | undefined;
  /**
   * How long an `Offline` worker stays listed, in ms, counted from when it went Offline (its
   * last heartbeat plus `heartbeatTimeoutMs`); then the sweep removes it (event `removed`). Its
   * attempts were lost when it went Offline, and its heartbeat lease ended then: a worker that
   * comes back later is told to register again (404). A worker that unregisters goes at once.
   * Used by the registry {@link startOrchestrator} makes (a registry you pass has its own).
   * @default 600_000 (10 minutes)
   */
  offlineRetentionMs: number;
  /**
   * The most workers the registry holds, `Offline` ones included (until removed): a
   * registration of a new id past it is refused (503 `TooManyWorkers` with `Retry-After`); a
   * known id registering again always passes. The fault suite registers 1,000 workers.
   * Used by the registry {@link startOrchestrator} makes.
   * @default 10_000
   */
  maxWorkers: number;
  /**
   * The most distinct pipelines the registry holds (workers advertising the same pipeline share
   * one copy, released with its last worker): a registration advertising a new one past it is
   * refused (503 `TooManyPipelines` with `Retry-After`). Each is bounded by `LIMITS.pipeline`
   * (about 0.7 MB at most). Used by the registry {@link startOrchestrator} makes.
   * @default 64
   */
  maxPipelines: number;
  // --- artifacts (issue 13, slice A) ---
  /**
   * The directory of the artifact store: one file per blob, named by its SHA-256 (made on the
   * first upload; relative paths from the process's working directory). Not `.mpd/artifacts`,
   * which the demo's own modules write to.
   * @default '.mpd/artifact-store'
   */
  artifactsDir: string;
  /**
   * The largest blob the store takes, in bytes: a `PUT` whose `Content-Length` is larger gets
   * 413 before its body is read.
   * @default 2 GiB (`DEFAULT_MAX_ARTIFACT_BYTES`)
   */
  maxArtifactBytes: number;
  // --- S3-compatible store and retention (issue 13, slice S) ---
  /**
   * An S3-compatible bucket as the artifact store, `s3://bucket` or `s3://bucket/prefix` (blob
   * `sha256` is the object `<prefix>/<sha256>`): workers move bytes to and from it directly with
   * presigned URLs. Credentials come from the AWS SDK's default chain (`AWS_ACCESS_KEY_ID` and
   * `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, instance roles), or `artifactStoreCredentials`.
   * @default absent: the directory store under `artifactsDir`
   */
  artifactStore?: string;
  /**
   * The URL of an S3-compatible server (MinIO, Ceph, R2, …), with `artifactStore`.
   * @default absent: AWS S3 of `artifactStoreRegion`
   */
  artifactStoreEndpoint?: string;
  /**
   * The bucket's region, with `artifactStore`.
   * @default `AWS_REGION` from the environment, else `us-east-1`
   */
  artifactStoreRegion?: string;
  /**
   * Path-style bucket URLs (`http://host/bucket/key`) instead of virtual-hosted ones
   * (`http://bucket.host/key`), as MinIO-style servers want, with `artifactStore`.
   * @default false
   */
  artifactStorePathStyle: boolean;
  /** Credentials for the bucket, for embedding and tests (the CLI has no flag: the SDK's default chain). */
  artifactStoreCredentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * How long a presigned URL of the bucket is accepted, in ms: the bucket checks it when a
   * request starts, so a transfer begun in time runs to its end however long it takes.
   * @default 15 minutes (`DEFAULT_ARTIFACT_URL_EXPIRY_MS`)
   */
  artifactUrlExpiryMs: number;
  /**
   * How long a blob of the directory store stays after the last run that wrote or read it
   * ended, in ms; `0`: a run's blobs are removed when it ends. The store is swept when the
   * orchestrator starts and when a run ends. With `artifactStore`, the bucket's lifecycle rule
   * is the retention (mpd never lists or deletes in the bucket).
   * @default 7 days (`DEFAULT_ARTIFACT_RETENTION_MS`)
   */
  artifactRetentionMs: number;
}

export { DEFAULT_ARTIFACT_RETENTION_MS, DEFAULT_ARTIFACT_URL_EXPIRY_MS };

/**
 * The options callers give (`createApp`, `startOrchestrator`): any of
 * {@link ResolvedOrchestratorOptions}, each rate limit on its own; the rest take their defaults.
 */
export type OrchestratorOptions = Omit<Partial<ResolvedOrchestratorOptions>, 'rateLimits'> & {
  rateLimits?: Partial<RateLimitOptions>;
};

/** Requests allowed per minute; excess gets 429 with `Retry-After`. Generous defaults: a 1,000-worker cluster is not throttled. */
export interface RateLimitOptions {
  /**
   * Registrations per token holder: all holders of the join token together (wherever they call
   * from: more addresses add nothing), the admin; registrations without a valid token (no join
   * token configured) per client address. @default 10_000
   */
  registerPerMinute: number;
  /**
   * Heartbeats per worker, counted by the credential they carry (not by the `workerId` in the
   * body); heartbeats with the join or admin token per token, those without a valid token per
   * client address. @default 600
   */
  heartbeatPerMinute: number;
  /**
   * Failed authentications (401/403) per client address and presented token (by its hash):
   * past it, requests from that address with that token (or, counted apart, with none) get 429;
   * a valid credential or token never does. @default 100
   */
  authFailuresPerMinute: number;
  /**
   * Failed requests (every 4xx but 429) per client address: past it, requests from that address
   * without a valid credential or token get 429. @default 1_000
   */
  failedRequestsPerMinute: number;
}

export { DEFAULT_ORCHESTRATOR_OPTIONS, DEFAULT_START_OPTIONS };

/**
 * Fills in defaults and checks the numbers.
 * @throws OrchestratorConfigError (code `InvalidSetting`) naming the option at fault.
 */
export function resolveOrchestratorOptions(options: OrchestratorOptions = {}): ResolvedOrchestratorOptions {
  const resolved: ResolvedOrchestratorOptions = {
    ...options,
    rateLimits: { ...DEFAULT_ORCHESTRATOR_OPTIONS.rateLimits, ...options.rateLimits },
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatIntervalSeconds,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? DEFAULT_ORCHESTRATOR_OPTIONS.heartbeatTimeoutMs,
    validateResponses: options.validateResponses ?? DEFAULT_ORCHESTRATOR_OPTIONS.validateResponses,
    bodyLimit: options.bodyLimit ?? DEFAULT_ORCHESTRATOR_OPTIONS.bodyLimit,
    offlineRetentionMs: options.offlineRetentionMs ?? DEFAULT_ORCHESTRATOR_OPTIONS.offlineRetentionMs,
    maxWorkers: options.maxWorkers ?? DEFAULT_ORCHESTRATOR_OPTIONS.maxWorkers,
    maxPipelines: options.maxPipelines ?? DEFAULT_ORCHESTRATOR_OPTIONS.maxPipelines,
    artifactsDir: options.artifactsDir ?? DEFAULT_ORCHESTRATOR_OPTIONS.artifactsDir,
    maxArtifactBytes: options.maxArtifactBytes ?? DEFAULT_ORCHESTRATOR_OPTIONS.maxArtifactBytes,
    artifactStorePathStyle: options.artifactStorePathStyle ?? DEFAULT_ORCHESTRATOR_OPTIONS.artifactStorePathStyle,
    artifactUrlExpiryMs: options.artifactUrlExpiryMs ?? DEFAULT_ORCHESTRATOR_OPTIONS.artifactUrlExpiryMs,
    artifactRetentionMs: options.artifactRetentionMs ?? DEFAULT_ORCHESTRATOR_OPTIONS.artifactRetentionMs,
    logger: options.logger ?? pino({ level: 'silent' }),
  };
  requirePositive('maxArtifactBytes', resolved.maxArtifactBytes);
  requirePositive('artifactUrlExpiryMs', resolved.artifactUrlExpiryMs);
  checkArtifactStore(resolved);
  requirePositive('heartbeatIntervalSeconds', resolved.heartbeatIntervalSeconds);
  requirePositive('heartbeatTimeoutMs', resolved.heartbeatTimeoutMs);
  checkRegistryBounds(resolved);
  for (const [name, value] of Object.entries(resolved.rateLimits)) requirePositive(`rateLimits.${name}`, value);
  for (const name of ['joinToken', 'adminToken'] as const) {
    const token = resolved[name];
    if (token !== undefined && token.length < 16) {
      throw new OrchestratorConfigError(
        'InvalidSetting',
        name,
        `Invalid setting ${name}: must be at least 16 characters`,
      );
    }
  }
  return resolved;
}

/**
 * Checks the registry's bounds: a retention of 0 or more ms (0 removes an Offline worker at the
 * next sweep), whole numbers of workers and pipelines above 0.
 * @throws OrchestratorConfigError naming the option at fault.
 */
export function checkRegistryBounds(bounds: Partial<Pick<ResolvedOrchestratorOptions, RegistryBound>>): void {
  const { offlineRetentionMs, maxWorkers, maxPipelines } = bounds;
  if (offlineRetentionMs !== undefined && !(Number.isFinite(offlineRetentionMs) && offlineRetentionMs >= 0)) {
    throw new OrchestratorConfigError(
      'InvalidSetting',
      'offlineRetentionMs',
      `Invalid setting offlineRetentionMs: must be a finite number of 0 or more, got ${String(offlineRetentionMs)}`,
    );
  }
  for (const [name, value] of Object.entries({ maxWorkers, maxPipelines })) {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw new OrchestratorConfigError(
        'InvalidSetting',
        name,
        `Invalid setting ${name}: must be a whole number above 0, got ${String(value)}`,
      );
    }
  }
}

/** The options that bound the registry (see {@link ResolvedOrchestratorOptions}). */
export type RegistryBound = 'offlineRetentionMs' | 'maxWorkers' | 'maxPipelines';

/** @throws OrchestratorConfigError unless `value` is a finite number above zero. */
export function requirePositive(setting: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new OrchestratorConfigError(
      'InvalidSetting',
      setting,
      `Invalid setting ${setting}: must be a finite number above 0, got ${String(value)}`,
    );
  }
}

/**
 * Checks the artifact store's options: an `s3://` URL of a valid bucket, an http(s) endpoint, a
 * retention of 0 or more ms.
 * @throws OrchestratorConfigError naming the option at fault.
 */
function checkArtifactStore(options: ResolvedOrchestratorOptions): void {
  const refuse = (setting: string, message: string): never => {
    throw new OrchestratorConfigError('InvalidSetting', setting, `Invalid setting ${setting}: ${message}`);
  };
  const { artifactRetentionMs: retention, artifactStore, artifactStoreEndpoint: endpoint } = options;
  if (!(Number.isFinite(retention) && retention >= 0)) {
    refuse('artifactRetentionMs', `must be a finite number of 0 or more, got ${String(retention)}`);
  }
  if (artifactStore !== undefined) {
    try {
      parseS3Url(artifactStore);
    } catch (error) {
      refuse('artifactStore', (error as Error).message);
    }
  }
  if (endpoint !== undefined && !/^https?:\/\/[^/]/i.test(endpoint)) {
    refuse('artifactStoreEndpoint', `must be an http:// or https:// URL, got ${JSON.stringify(redactUrl(endpoint))}`);
  }
}
