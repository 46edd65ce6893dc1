/** The express app both servers build around their contract: the same plumbing, in the same order. */
import { OPENAPI_PATH } from '@mpd/contract';
import type { AppRouter } from '@ts-rest/core';
import { createExpressEndpoints } from '@ts-rest/express';
import express, { type RequestHandler } from 'express';
import { type ErrorLogger, finalErrorHandler, handleRequestValidationError, routeNotFound } from './error-handling.js';
import { openApiRoute } from './openapi-route.js';
import { apiSecurityHeaders } from './security-headers.js';
import { requireJsonBody } from './security.js';

/** Options of {@link createApiApp}. */
export interface ApiAppOptions<T extends AppRouter> {
  /** The contract the app serves (`orchestratorContract`, `workerContract`). */
  contract: T;
  /** Its routes (ts-rest's implementation of `contract`, with per-route middleware where needed). */
  routes: Parameters<typeof createExpressEndpoints<T>>[1];
  /** Builds the OpenAPI document served at `GET /api/openapi.json` (once, on the first request). */
  openApi: () => object;
  /** Named in the 500 message: `orchestrator` or `worker`. */
  server: string;
  /** Where unexpected failures are logged. */
  logger: ErrorLogger;
  /** The largest JSON body accepted (bytes-package syntax: `1mb`, `100mb`); larger ones get 413. */
  bodyLimit: string;
  /** Validate every answer against the contract before sending it (a mismatch answers 500). */
  validateResponses: boolean;
  /**
   * Middleware for every request, run after the security headers and before the body is read
   * (CORS, a limiter that refuses before any parsing).
   * @default none
   */
  middleware?: readonly RequestHandler[];
}

/**
 * An express app serving `contract`, not listening: no `X-Powered-By` and no ETag, the API
 * security headers, `middleware`, JSON bodies only (415 otherwise) up to `bodyLimit`, the
 * OpenAPI document, the routes with the contract's 400 for a request that does not validate,
 * 404 `RouteNotFound`, and the contract's error body for every other failure — never an HTML
 * page.
 */
export function createApiApp<T extends AppRouter>(options: ApiAppOptions<T>): express.Express {
  const { bodyLimit, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  // No ETag: answers are live state, never cached or revalidated, and hashing each body costs.
  app.set('etag', false);
  app.use(apiSecurityHeaders());
  for (const middleware of options.middleware ?? []) app.use(middleware);
  app.use(requireJsonBody);
  app.use(express.json({ limit: bodyLimit }));
  app.get(OPENAPI_PATH, openApiRoute(options.openApi));
  createExpressEndpoints(options.contract, options.routes, app, {
    logInitialization: false,
    responseValidation: options.validateResponses,
    requestValidationErrorHandler: (error, _req, res) => handleRequestValidationError(error, res),
  });
  app.use(routeNotFound);
  app.use(finalErrorHandler({ logger, server: options.server, bodyLimit }));
  return app;
}
