/**
 * The orchestrator's constant defaults, in a file that imports nothing but the contract's
 * limits: the orchestrator's CLI shows them in `--help` before it loads any server code (round
 * R). `orchestrator-options.ts` (and the package's index) export them as before.
 */
import { DEFAULT_MAX_ARTIFACT_BYTES, DEFAULT_ORCHESTRATOR_BODY_LIMIT } from '@mpd/contract/limits';
import type { ResolvedOrchestratorOptions } from './orchestrator-options.js';
import type { StartOrchestratorOptions } from './server.js';

/** Blobs stay 7 days after their last use by default: GitHub Actions' artifacts stay 90 days, Buildkite's 6 months; a store on the orchestrator's disk is for passing files within and between nearby runs. */
export const DEFAULT_ARTIFACT_RETENTION_MS = 7 * 24 * 3_600_000;

/** Presigned URLs are accepted 15 minutes: long enough for a worker to start a transfer after asking, short enough that a leaked URL soon stops working. */
export const DEFAULT_ARTIFACT_URL_EXPIRY_MS = 15 * 60_000;

/** The defaults of {@link ResolvedOrchestratorOptions} (the logger is made on demand). */
export const DEFAULT_ORCHESTRATOR_OPTIONS = {
  heartbeatIntervalSeconds: 30,
  heartbeatTimeoutMs: 120_000,
  validateResponses: false,
  bodyLimit: DEFAULT_ORCHESTRATOR_BODY_LIMIT,
  offlineRetentionMs: 600_000,
  maxWorkers: 10_000,
  maxPipelines: 64,
  artifactsDir: '.mpd/artifact-store',
  maxArtifactBytes: DEFAULT_MAX_ARTIFACT_BYTES,
  artifactStorePathStyle: false,
  artifactUrlExpiryMs: DEFAULT_ARTIFACT_URL_EXPIRY_MS,
  artifactRetentionMs: DEFAULT_ARTIFACT_RETENTION_MS,
  rateLimits: {
    registerPerMinute: 10_000,
    heartbeatPerMinute: 600,
    authFailuresPerMinute: 100,
    failedRequestsPerMinute: 1_000,
  },
} as const satisfies Omit<ResolvedOrchestratorOptions, 'logger'>;

/**
 * The defaults of what {@link startOrchestrator} takes besides the orchestrator's options (here,
 * not in server.ts nor orchestrator-options.ts, so that the CLI reads them without loading the
 * server or pino).
 */
export const DEFAULT_START_OPTIONS = {
  port: 8080,
  host: '0.0.0.0',
  closeGraceMs: 5_000,
  idleTimeoutMs: 60_000,
} as const satisfies StartOrchestratorOptions;
