/** The express app both servers build around their contract: the same plumbing, in the same order. */
import { OPENAPI_PATH } from '@mpd/contract';
import { type AppRoute, type AppRouter, isAppRoute } from '@ts-rest/core';
import { createExpressEndpoints } from '@ts-rest/express';
import express, { type RequestHandler } from 'express';
import { parseSize } from '../cli/setting-schemas.js';
import { type ErrorLogger, finalErrorHandler, handleRequestValidationError, routeNotFound } from './error-handling.js';
import { openApiRoute } from './openapi-route.js';
import { apiSecurityHeaders } from './security-headers.js';
import { BODY_LIMIT_BYTES, requireJsonBody } from './security.js';

/** Options of {@link createApiApp}. */
export interface ApiAppOptions<T extends AppRouter> {
  /** The contract the app serves (`orchestratorContract`, `workerContract`). */
  contract: T;
  /**
   * Its routes (ts-rest's implementation of `contract`). A route's `middleware` runs before its
   * body is read: authentication and per-caller limits go there, and refuse with
   * `refuseUnread`, so that a request refused costs nothing whatever its body holds.
   */
  routes: Parameters<typeof createExpressEndpoints<T>>[1];
  /**
   * Builds the OpenAPI document served at `GET /api/openapi.json` (once, on the first request);
   * may be async, to load its generator only then (see `openApiRoute`).
   */
  openApi: () => object | Promise<object>;
  /** Named in the 500 message: `orchestrator` or `worker`. */
  server: string;
  /** Where unexpected failures are logged. */
  logger: ErrorLogger;
  /** The largest JSON body accepted (bytes-package syntax: `1mb`, `100mb`); larger ones get 413. */
  bodyLimit: string;
  /** Validate every answer against the contract before sending it (a mismatch answers 500). */
  validateResponses: boolean;
  /**
   * Middleware for every request, run after the security headers and before any route (CORS,
   * request logging, counting failed requests); no body has been read yet.
   * @default none
   */
  middleware?: readonly RequestHandler[];
}

/**
 * An express app serving `contract`, not listening: no `X-Powered-By` and no ETag, the API
 * security headers, `middleware`, the OpenAPI document, the routes with the contract's 400 for a
 * request that does not validate, 404 `RouteNotFound`, and the contract's error body for every
 * other failure — never an HTML page.
 *
 * No body is read before a route's own middleware has run (authentication first, issue 11):
 * each route's chain is its `middleware`, then JSON bodies only (415 otherwise) up to
 * `bodyLimit` (413), then ts-rest's validation and the handler. A request no route matches is
 * answered 404 without its body being read.
 */
export function createApiApp<T extends AppRouter>(options: ApiAppOptions<T>): express.Express {
  const { bodyLimit, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  // No ETag: answers are live state, never cached or revalidated, and hashing each body costs.
  app.set('etag', false);
  app.locals[BODY_LIMIT_BYTES] = parseSize(bodyLimit);
  app.use(apiSecurityHeaders());
  for (const middleware of options.middleware ?? []) app.use(middleware);
  app.get(OPENAPI_PATH, openApiRoute(options.openApi));
  // requireJsonBody has checked the type: body-parser's own type-is check of every request is
  // skipped (issue 14's profiles; it still checks the charset).
  const readJson = [requireJsonBody, express.json({ limit: bodyLimit, type: () => true })];
  createExpressEndpoints(options.contract, withBodyReading(options.contract, options.routes, readJson), app, {
    logInitialization: false,
    responseValidation: options.validateResponses,
    requestValidationErrorHandler: (error, _req, res) => handleRequestValidationError(error, res),
  });
  app.use(routeNotFound);
  app.use(finalErrorHandler({ logger, server: options.server, bodyLimit }));
  return app;
}

/** A route as ts-rest's express adapter takes it: a handler, or a handler with its middleware. */
type RouteImplementation = ((...args: never[]) => unknown) | { handler: unknown; middleware?: RequestHandler[] };

/**
 * `routes` with `readBody` appended to every route's middleware (after the route's own), found
 * by walking `contract`, so no path is written twice.
 */
function withBodyReading<R>(contract: AppRouter | AppRoute, routes: R, readBody: readonly RequestHandler[]): R {
  if (isAppRoute(contract)) {
    const route = routes as RouteImplementation;
    if (typeof route === 'function') return { handler: route, middleware: [...readBody] } as R;
    return { ...route, middleware: [...(route.middleware ?? []), ...readBody] } as R;
  }
  const wrapped: Record<string, unknown> = {};
  for (const [key, implementation] of Object.entries(routes as Record<string, unknown>)) {
    wrapped[key] = withBodyReading(contract[key] as AppRouter | AppRoute, implementation, readBody);
  }
  return wrapped as R;
}
