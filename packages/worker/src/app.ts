import { OPENAPI_PATH, workerContract, workerOpenApi } from '@mpd/contract';
import {
  apiSecurityHeaders,
  finalErrorHandler,
  handleRequestValidationError,
  openApiRoute,
  requireJsonBody,
  routeNotFound,
} from '@mpd/server-kit';
import { createExpressEndpoints } from '@ts-rest/express';
import express, { type Application } from 'express';
import type { Logger } from 'pino';
import type { ModuleExecutor } from './executor/module-executor.js';
import { createRoutes } from './http/routes.js';
import { DEFAULT_WORKER_OPTIONS } from './worker-options.js';

/** What {@link createApp} needs: the executor the routes answer from, and how requests are checked. */
export interface WorkerAppDeps {
  executor: ModuleExecutor;
  logger: Logger;
  /**
   * Largest accepted JSON body (the execute body carries dependency results).
   * @default '100mb'
   */
  bodyLimit?: string;
  /**
   * Validate every response against the contract before sending it (tests turn it on).
   * @default false
   */
  validateResponses?: boolean;
  /**
   * The bearer tokens execute and cancel calls must carry (the worker's credential, a configured
   * token). None: the calls are open (a worker that never registered, on a trusted network).
   * @default () => []
   */
  acceptedTokens?: () => readonly string[];
}

/** The worker's express app, with every route of `workerContract`. Does not listen. */
export function createApp(deps: WorkerAppDeps): Application {
  const { logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  // No ETag: answers are live state, never cached or revalidated, and hashing each body costs.
  app.set('etag', false);
  const bodyLimit = deps.bodyLimit ?? DEFAULT_WORKER_OPTIONS.bodyLimit;
  app.use(apiSecurityHeaders());
  app.use(requireJsonBody);
  app.use(express.json({ limit: bodyLimit }));
  app.get(OPENAPI_PATH, openApiRoute(workerOpenApi));
  createExpressEndpoints(workerContract, createRoutes(deps.executor, deps.acceptedTokens ?? (() => [])), app, {
    responseValidation: deps.validateResponses ?? DEFAULT_WORKER_OPTIONS.validateResponses,
    requestValidationErrorHandler: (error, _req, res) => handleRequestValidationError(error, res),
  });
  app.use(routeNotFound);
  app.use(finalErrorHandler({ logger, server: 'worker', bodyLimit }));
  return app;
}
