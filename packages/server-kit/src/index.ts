/**
 * `@mpd/server-kit`: what the orchestrator's and the worker's server processes share that does
 * not travel on the wire (that is `@mpd/contract`'s): express error handling that answers the
 * contract's error body, bearer tokens and constant-time comparison, refusals answered before
 * the body is read, the JSON-only body check, API security headers, the OpenAPI route,
 * listening and closing over HTTP or HTTPS (and the listening line's text), the CLIs' settings
 * engine (`defineSettings`: one table of flags, variables, defaults, help and schemas) and
 * setting schemas, `--version`'s package version, the JSON logs' level names, TLS files and
 * start-up warnings, state files, secret masking, and one backoff. (Timers safe at any
 * duration are `@mpd/contract/timers`: the client needs them too.)
 *
 * ```ts
 * import { closeGracefully, createApiApp, createHttpOrHttpsServer, listen } from '@mpd/server-kit';
 *
 * const app = createApiApp({ contract: workerContract, routes, openApi: workerOpenApi, server: 'worker',
 *   logger, bodyLimit: '100mb', validateResponses: false });
 * const server = createHttpOrHttpsServer(app, tls);
 * const port = await listen(server, 0, '127.0.0.1');
 * // ...
 * await closeGracefully(server, 5_000);
 * ```
 */
export { createApiApp } from './http/api-app.js';
export type { ApiAppOptions } from './http/api-app.js';
export {
  finalErrorHandler,
  handleRequestValidationError,
  requestValidationIssues,
  routeNotFound,
  sendError,
} from './http/error-handling.js';
export type { ErrorLogger, FinalErrorHandlerOptions } from './http/error-handling.js';
export { closeGracefully, createHttpOrHttpsServer, listen, listeningText, reachableHost } from './http/listen.js';
export type { ServerTls } from './http/listen.js';
export { openApiRoute } from './http/openapi-route.js';
export { apiSecurityHeaders } from './http/security-headers.js';
export {
  bearerToken,
  closeWhenDrained,
  forbidden,
  rateLimited,
  refuseUnread,
  requireJsonBody,
  safeEqual,
  unauthorized,
  wellFormed,
} from './http/security.js';
export type { DrainLimits, Refusal } from './http/security.js';
// The part a CLI loads before its settings are valid (also `@mpd/server-kit/cli`): settings,
// setting schemas, exits, log format, package version, TLS files, directories.
export * from './cli/index.js';
export { writeStateFile } from './cli/state-file.js';
export { isLoopbackHost, PLAIN_HTTP_WARNING, startupWarnings } from './cli/startup-warnings.js';
export { CIRCULAR, createSecretMasker, maskDeep, MIN_SECRET_LENGTH, secretValues } from './secrets.js';
export type { SecretMasker } from './secrets.js';
export { backoffDelay } from './backoff.js';
