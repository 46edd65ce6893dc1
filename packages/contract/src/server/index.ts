/**
 * `@mpd/contract/server`: what the orchestrator's and the worker's servers share: error
 * handling (both answer errors with the contract's error body in the same way), bearer tokens
 * and rate-limit answers, the TLS files and start-up warnings of both CLIs, and the schemas of
 * their common settings.
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
export { apiSecurityHeaders } from './security-headers.js';
export { bearerToken, forbidden, rateLimited, requireJsonBody, safeEqual, unauthorized } from './security.js';
export { bodyLimitText, commaSeparatedText, tokenText } from './settings.js';
export { writeStateFile } from './state-file.js';
export { isLoopbackHost, PLAIN_HTTP_WARNING, startupWarnings } from './startup-warnings.js';
export { readTlsFiles, TLS_FILE_SETTINGS, TLS_SETTING_NEEDS } from './tls-files.js';
export type { ReadTlsFilesOptions, TlsFiles, TlsFileSetting } from './tls-files.js';
