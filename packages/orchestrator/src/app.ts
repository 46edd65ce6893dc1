import { OPENAPI_PATH, orchestratorContract, orchestratorOpenApi } from '@mpd/contract';
import {
  apiSecurityHeaders,
  finalErrorHandler,
  handleRequestValidationError,
  openApiRoute,
  requireJsonBody,
  routeNotFound,
} from '@mpd/server-kit';
import cors from 'cors';
import { createExpressEndpoints } from '@ts-rest/express';
import express from 'express';
import type { Logger } from 'pino';
import { authFailureLimiter } from './http/rate-limits.js';
import { createRoutes } from './http/routes.js';
import { type OrchestratorOptions, resolveOrchestratorOptions } from './orchestrator-options.js';
import type { NodeRegistry } from './registry/node-registry.js';

/** The largest JSON body the orchestrator accepts by default (registrations and heartbeats are small). */
const DEFAULT_BODY_LIMIT = '1mb';

/** What {@link createApp} needs. */
export interface AppDependencies {
  /** The workers the API registers, lists and removes. */
  registry: NodeRegistry;
  /** Options; see {@link ResolvedOrchestratorOptions} for each one's default. */
  options?: OrchestratorOptions;
  /** Overrides `options.logger`. */
  logger?: Logger;
}

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
  const app = express();
  app.disable('x-powered-by');
  // No ETag: answers are live state, never cached or revalidated, and hashing each body costs.
  app.set('etag', false);
  app.use((req, res, next) => {
    // A listener per request costs even when nothing is logged: only at debug level.
    if (!logger.isLevelEnabled('debug')) return next();
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.debug({ method: req.method, path: req.path, status: res.statusCode, ms }, 'request');
    });
    next();
  });
  app.use(apiSecurityHeaders());
  if (options.corsOrigins && options.corsOrigins.length > 0) app.use(cors({ origin: [...options.corsOrigins] }));
  app.use(authFailureLimiter(options.rateLimits.authFailuresPerMinute));
  app.use(requireJsonBody);
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  app.use(express.json({ limit: bodyLimit }));

  app.get(OPENAPI_PATH, openApiRoute(orchestratorOpenApi));

  createExpressEndpoints(orchestratorContract, createRoutes(deps.registry, options), app, {
    logInitialization: false,
    responseValidation: options.validateResponses,
    requestValidationErrorHandler: (error, _req, res) => handleRequestValidationError(error, res),
  });

  app.use(routeNotFound);
  app.use(finalErrorHandler({ logger, server: 'orchestrator', bodyLimit }));
  return app;
}
