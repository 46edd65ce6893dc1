/**
 * `@mpd/contract/server`: what the orchestrator's and the worker's express apps share, so
 * both answer errors with the contract's error body in the same way.
 *
 * ```ts
 * import { finalErrorHandler, handleRequestValidationError, routeNotFound } from '@mpd/contract/server';
 *
 * createExpressEndpoints(contract, router, app, {
 *   requestValidationErrorHandler: (error, _req, res) => handleRequestValidationError(error, res),
 * });
 * app.use(routeNotFound);
 * app.use(finalErrorHandler({ logger, server: 'worker', bodyLimit: '100mb' }));
 * ```
 */
export {
  errorBody,
  finalErrorHandler,
  handleRequestValidationError,
  requestValidationIssues,
  routeNotFound,
  sendError,
} from './error-handling.js';
export type { ErrorLogger, FinalErrorHandlerOptions } from './error-handling.js';
export { openApiRoute } from './openapi-route.js';
export { bearerToken, forbidden, rateLimited, requireJsonBody, safeEqual, unauthorized } from './security.js';
