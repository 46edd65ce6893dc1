import { heartbeatRequestCheck, orchestratorContract, outputBatchCheck } from '@mpd/contract';
import { createApiApp } from '@mpd/server-kit';
import cors from 'cors';
import type express from 'express';
import type { Logger } from 'pino';
import { type ArtifactStore, artifactStoreOf } from './artifacts/artifact-store.js';
import { callerOf, isAuthenticated } from './http/auth.js';
import { WorkerEndpointPolicy } from './http/endpoint-policy.js';
import { FailureLimiter } from './http/rate-limits.js';
import { createRoutes } from './http/routes.js';
import { type OrchestratorOptions, resolveOrchestratorOptions } from './orchestrator-options.js';
import type { NodeRegistry } from './registry/node-registry.js';
import { ExecutionLogs } from './runner/execution-logs.js';

/** What {@link createApp} needs. */
export interface AppDependencies {
  /** The workers the API registers, lists and removes. */
  registry: NodeRegistry;
  /** Options; see {@link ResolvedOrchestratorOptions} for each one's default. */
  options?: OrchestratorOptions;
  /** Overrides `options.logger`. */
  logger?: Logger;
  /**
   * Which worker endpoints registrations may give: share it with the runner (`runPipeline`'s
   * `endpointPolicy`), which checks each connection to a worker by it.
   * @default one of `options.allowedWorkerHosts` and `options.resolveHost`
   */
  endpointPolicy?: WorkerEndpointPolicy;
  /**
   * The executions whose output the API takes (`POST /api/executions/{executionId}/output`):
   * share it with the runner (`runPipeline`'s `executionLogs`), which opens each attempt's log.
   * @default a new, empty one (every output batch answers 404 `ExecutionNotFound`)
   */
  executionLogs?: ExecutionLogs;
  /**
   * Where the artifact routes keep blobs: share it with whoever ends runs (`endRun`, for the
   * directory store's retention), as {@link startOrchestrator} does.
   * @default the one `options` name (`artifactStoreOf`)
   */
  artifactStore?: ArtifactStore;
}

/**
 * The contract as the app checks requests against it: the output route's body with
 * `outputBatchCheck` (the schema's rules without its copy of every line: a batch of 1,000 lines
 * is taken as it came), the heartbeat's with `heartbeatRequestCheck` (the same for the most
 * frequent request of all), everything else as the contract says. The OpenAPI document and the
 * clients keep the schemas.
 */
const SERVED_CONTRACT = {
  ...orchestratorContract,
  workers: {
    ...orchestratorContract.workers,
    heartbeat: { ...orchestratorContract.workers.heartbeat, body: heartbeatRequestCheck },
  },
  executions: {
    ...orchestratorContract.executions,
    output: { ...orchestratorContract.executions.output, body: outputBatchCheck },
  },
} as unknown as typeof orchestratorContract;

/**
 * The orchestrator's HTTP API (see `@mpd/contract`'s `orchestratorContract`) as an
 * express app, plus `GET /api/openapi.json`. It does not listen: pass it to
 * `http.createServer` or call `app.listen`, or use {@link startOrchestrator}.
 *
 * Every error answers JSON `{ success: false, errorMessage, code, issues? }`.
 *
 * @throws OrchestratorConfigError when an option is invalid.
 */
export function createApp(deps: AppDependencies): express.Express {
  const options = resolveOrchestratorOptions({ ...deps.options, ...(deps.logger ? { logger: deps.logger } : {}) });
  const { logger } = options;
  const tokens = { joinToken: options.joinToken, adminToken: options.adminToken };
  const failures = new FailureLimiter({
    ...options.rateLimits,
    presentsValidToken: (req) => isAuthenticated(callerOf(req, tokens, deps.registry)),
  });
  return createApiApp({
    contract: SERVED_CONTRACT,
    routes: createRoutes(
      deps.registry,
      options,
      deps.endpointPolicy ?? endpointPolicyOf(options),
      failures,
      deps.executionLogs ?? new ExecutionLogs(),
      deps.artifactStore ?? artifactStoreOf(options),
    ),
    // The generator is loaded on the first request for the document, not at the start (round Z, Z3).
    openApi: async () => (await import('@mpd/contract/openapi')).orchestratorOpenApi(),
    server: 'orchestrator',
    logger,
    bodyLimit: options.bodyLimit,
    validateResponses: options.validateResponses,
    middleware: [
      (req, res, next) => {
        // A listener per request costs even when nothing is logged: only at debug level.
        if (!logger.isLevelEnabled('debug')) return next();
        const started = process.hrtime.bigint();
        res.on('finish', () => {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          logger.debug({ method: req.method, path: req.path, status: res.statusCode, ms }, 'request');
        });
        next();
      },
      ...(options.corsOrigins && options.corsOrigins.length > 0 ? [cors({ origin: [...options.corsOrigins] })] : []),
      failures.counter,
    ],
  });
}

/**
 * The worker endpoint policy of `options` (their `allowedWorkerHosts` and `resolveHost`).
 * @throws OrchestratorConfigError for an `allowedWorkerHosts` entry that is no name, address or range
 */
export function endpointPolicyOf(options: OrchestratorOptions): WorkerEndpointPolicy {
  return new WorkerEndpointPolicy({ allowedWorkerHosts: options.allowedWorkerHosts, resolveHost: options.resolveHost });
}
