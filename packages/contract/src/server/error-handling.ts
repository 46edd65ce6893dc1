/**
 * Express error handling shared by the orchestrator and the worker: every error answers
 * the contract's error body, never an HTML page.
 */
import { STATUS_CODES } from 'node:http';
import type { RequestValidationError } from '@ts-rest/express';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { ErrorBody, ErrorCode, FieldIssue } from '../common.schema.js';
import { describeFieldIssues, toFieldIssues } from '../validation.js';

/** The part of a logger (pino's, for one) the handlers use. */
export interface ErrorLogger {
  error(fields: object, message: string): void;
}

/** The contract's error body (`{ success: false, errorMessage, code, issues? }`). */
export function errorBody(code: ErrorCode, errorMessage: string, issues?: FieldIssue[]): ErrorBody {
  return issues ? { success: false, errorMessage, code, issues } : { success: false, errorMessage, code };
}

/** Sends the contract's error body (`{ success: false, errorMessage, code, issues? }`). */
export function sendError(
  res: Response,
  status: number,
  code: ErrorCode,
  errorMessage: string,
  issues?: FieldIssue[],
): void {
  res.status(status).json(errorBody(code, errorMessage, issues));
}

/** Field issues of a ts-rest request validation failure, each named `params.x`, `query.x` or `body.x`. */
export function requestValidationIssues(error: RequestValidationError): FieldIssue[] {
  return [
    ...(error.pathParams ? toFieldIssues(error.pathParams, 'params') : []),
    ...(error.headers ? toFieldIssues(error.headers, 'headers') : []),
    ...(error.query ? toFieldIssues(error.query, 'query') : []),
    ...(error.body ? toFieldIssues(error.body, 'body') : []),
  ];
}

/** 400 `ValidationFailed` naming every field at fault (for ts-rest's `requestValidationErrorHandler`). */
export function handleRequestValidationError(error: RequestValidationError, res: Response): void {
  const issues = requestValidationIssues(error);
  sendError(res, 400, 'ValidationFailed', describeFieldIssues(issues) || 'Invalid request', issues);
}

/** 404 `RouteNotFound` for any request no route answered. */
export const routeNotFound: RequestHandler = (req, res) => {
  sendError(res, 404, 'RouteNotFound', `No route for ${req.method} ${req.path}`);
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
      sendError(res, 400, 'MalformedJson', `Malformed JSON in the request body: ${clientError.message}`);
      return;
    }
    if (clientError?.type === 'entity.too.large') {
      sendError(res, 413, 'PayloadTooLarge', `The request body is larger than the limit of ${bodyLimit}`);
      return;
    }
    if (clientError && error instanceof URIError) {
      sendError(res, 400, 'ValidationFailed', `Malformed percent-encoding in the request path: ${clientError.message}`);
      return;
    }
    if (clientError) {
      const { status } = clientError;
      let message = clientError.expose === true ? clientError.message : (STATUS_CODES[status] ?? 'Bad request');
      if (/^Z_/.test(String((error as { code?: unknown }).code))) {
        message = `The request body does not decode with its Content-Encoding: ${message}`;
      }
      sendError(res, status, status === 415 ? 'UnsupportedMediaType' : 'ValidationFailed', message);
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    sendError(res, 500, 'InternalError', `Internal error in the ${server}; see its log for details`);
  };
}
