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
} from './http/security.js';
export type { DrainLimits, Refusal } from './http/security.js';
export { definedOnly, defineSettings, unknownOptionName } from './cli/define-settings.js';
export type {
  DefineSettingsOptions,
  OldNameGiven,
  RawSettings,
  SecretFlagGiven,
  SettingAlias,
  SettingRow,
  SettingRows,
  SettingsCheckContext,
  SettingsDefinition,
  SettingValues,
} from './cli/define-settings.js';
export {
  bodyLimitText,
  commaSeparatedText,
  hostText,
  integerText,
  LOG_LEVELS,
  logLevelText,
  parseSize,
  pathText,
  portText,
  sizeText,
  sizeTextOf,
  switchText,
  tokenText,
} from './cli/setting-schemas.js';
export type { CliRunOptions } from './cli/cli-run-options.js';
export { EXIT_INVALID_SETTING, exitInvalidSetting, exitWithSettingError } from './cli/exit-invalid-setting.js';
export { LOG_FORMATTERS, LOG_LINE_KEYS, logBase, logProcessWarnings } from './cli/log-format.js';
export { LOG_WRITTEN_TIMEOUT_MS, logWritten, writeAfterLog } from './cli/log-written.js';
export type { FlushableLog } from './cli/log-written.js';
export { makeDirectory } from './make-directory.js';
export type { WarningLogger } from './cli/log-format.js';
export { packageVersion } from './cli/package-version.js';
export { writeStateFile } from './cli/state-file.js';
export { isLoopbackHost, PLAIN_HTTP_WARNING, startupWarnings } from './cli/startup-warnings.js';
export { readTlsFiles, TLS_FILE_SETTINGS, TLS_SETTING_NEEDS, tlsFileSettings } from './cli/tls-files.js';
export type { ReadTlsFilesOptions, TlsFiles, TlsFileSetting } from './cli/tls-files.js';
export { CIRCULAR, createSecretMasker, maskDeep, MIN_SECRET_LENGTH, secretValues } from './secrets.js';
export type { SecretMasker } from './secrets.js';
export { backoffDelay } from './backoff.js';
