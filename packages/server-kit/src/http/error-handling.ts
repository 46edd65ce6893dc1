/**
 * Express error handling shared by the orchestrator and the worker: every error answers
 * the contract's error body, never an HTML page.
 */
import { STATUS_CODES } from 'node:http';
import type { RequestValidationError } from '@ts-rest/express';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import {
  capFieldIssues,
  describeFieldIssues,
  ERROR_STATUS,
  type ErrorCode,
  errorResponse,
  type FieldIssue,
  LIMITS,
  toFieldIssues,
} from '@mpd/contract';

/** The part of a logger (pino's, for one) the handlers use. */
export interface ErrorLogger {
  error(fields: object, message: string): void;
}

/**
 * Sends the contract's error answer for `code` from plain express middleware (routes return
 * `errorResponse` instead): the status of the contract's `ERROR_STATUS` table, and the body
 * `{ success: false, errorMessage, code, issues?, omittedIssues? }`, of bounded size (`errorBody`).
 */
export function sendError(
  res: Response,
  code: ErrorCode,
  errorMessage: string,
  issues?: readonly FieldIssue[],
  omitted?: number,
): void {
  const { status, body } = errorResponse(code, errorMessage, issues, omitted);
  res.status(status).json(body);
}

/**
 * Field issues of a ts-rest request validation failure, each named `params.x`, `query.x` or
 * `body.x`: the first `max` of them, and how many more there were (`omitted`).
 */
export function requestValidationIssues(
  error: RequestValidationError,
  max = LIMITS.errorAnswer.maxIssues,
): { issues: FieldIssue[]; omitted: number } {
  const issues: FieldIssue[] = [];
  let total = 0;
  for (const [zodError, prefix] of [
    [error.pathParams, 'params'],
    [error.headers, 'headers'],
    [error.query, 'query'],
    [error.body, 'body'],
  ] as const) {
    if (!zodError) continue;
    total += zodError.issues.length;
    issues.push(...toFieldIssues(zodError, prefix, max - issues.length));
  }
  return { issues, omitted: total - issues.length };
}

/**
 * 400 `ValidationFailed` naming the fields at fault (for ts-rest's `requestValidationErrorHandler`):
 * the first {@link LIMITS}`.errorAnswer.maxIssues`, and how many more in `omittedIssues`, so the
 * answer stays small however many entries of a body are wrong.
 */
export function handleRequestValidationError(error: RequestValidationError, res: Response): void {
  const found = requestValidationIssues(error);
  const { issues, omitted } = capFieldIssues(found.issues, found.omitted);
  sendError(res, 'ValidationFailed', describeFieldIssues(issues, omitted) || 'Invalid request', issues, omitted);
}

/** 404 `RouteNotFound` for any request no route answered. */
export const routeNotFound: RequestHandler = (req, res) => {
  sendError(res, 'RouteNotFound', `No route for ${req.method} ${req.path}`);
};

/**
 * What body-parser and express attach to the client errors they raise (`http-errors`): a 4xx
 * `status`, `expose` when the message is meant for the client, and (body-parser) a `type`.
 * Some have no `type`: a body whose Content-Encoding does not inflate (zlib's error), a path
 * whose percent-encoding does not decode (express's `URIError`, without `expose`).
 */
interface ClientError {
  type?: unknown;
  status: number;
  expose?: unknown;
  message: string;
}

function asClientError(error: unknown): ClientError | undefined {
  if (!(error instanceof Error)) return undefined;
  const candidate = error as Error & { type?: unknown; status?: unknown; statusCode?: unknown; expose?: unknown };
  const status = Number(candidate.status ?? candidate.statusCode);
  if (!Number.isInteger(status) || status < 400 || status > 499) return undefined;
  return { type: candidate.type, status, expose: candidate.expose, message: candidate.message };
}

/** Options of {@link finalErrorHandler}. */
export interface FinalErrorHandlerOptions {
  logger: ErrorLogger;
  /** Named in the 500 message: `orchestrator` or `worker`. */
  server: string;
  /** The JSON body limit, named in the 413 message (e.g. `1mb`). */
  bodyLimit: string;
}

/**
 * The last error handler: malformed JSON answers 400 `MalformedJson`, a body over the
 * limit 413 `PayloadTooLarge`, other client errors (a body that does not inflate, an
 * unsupported charset, a path that does not percent-decode) their 4xx status, and anything
 * else 500 `InternalError` (logged) — never an HTML page.
 */
export function finalErrorHandler({ logger, server, bodyLimit }: FinalErrorHandlerOptions): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) {
      logger.error({ err: error, method: req.method, path: req.path }, 'request failed after the response started');
      next(error);
      return;
    }
    const clientError = asClientError(error);
    if (clientError?.type === 'entity.parse.failed') {
      sendError(res, 'MalformedJson', `Malformed JSON in the request body: ${clientError.message}`);
      return;
    }
    if (clientError?.type === 'entity.too.large') {
      sendError(res, 'PayloadTooLarge', `The request body is larger than the limit of ${bodyLimit}`);
      return;
    }
    if (clientError && error instanceof URIError) {
      sendError(res, 'ValidationFailed', `Malformed percent-encoding in the request path: ${clientError.message}`);
      return;
    }
    if (clientError) {
      const { status } = clientError;
      let message = clientError.expose === true ? clientError.message : (STATUS_CODES[status] ?? 'Bad request');
      if (/^Z_/.test(String((error as { code?: unknown }).code))) {
        message = `The request body does not decode with its Content-Encoding: ${message}`;
      }
      // body-parser's own status (400, 415 for a charset or encoding it does not support, 403
      // for a failed verify): kept, with the code that fits it.
      const code = status === ERROR_STATUS.UnsupportedMediaType ? 'UnsupportedMediaType' : 'ValidationFailed';
      res.status(status).json(errorResponse(code, message).body);
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    sendError(res, 'InternalError', `Internal error in the ${server}; see its log for details`);
  };
}
