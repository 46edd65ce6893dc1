import { describeFieldIssues, type ErrorBody, type ErrorCode, type FieldIssue, toFieldIssues } from '@mpd/contract';
import type { RequestValidationError } from '@ts-rest/express';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';

export function errorBody(code: ErrorCode, errorMessage: string, issues?: FieldIssue[]): ErrorBody {
  return issues ? { success: false, errorMessage, code, issues } : { success: false, errorMessage, code };
}

/** ts-rest's request validation failures as 400s whose message names every field at fault. */
export function validationErrorHandler(error: RequestValidationError, _req: unknown, res: Response): void {
  const issues = [
    ...(error.pathParams ? toFieldIssues(error.pathParams, 'params') : []),
    ...(error.headers ? toFieldIssues(error.headers, 'headers') : []),
    ...(error.query ? toFieldIssues(error.query, 'query') : []),
    ...(error.body ? toFieldIssues(error.body, 'body') : []),
  ];
  res.status(400).json(errorBody('ValidationFailed', describeFieldIssues(issues), issues));
}

export const routeNotFound: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('RouteNotFound', `No route ${req.method} ${req.path}`));
};

/** Malformed JSON → 400; anything unexpected → a logged 500 with the contract's error body. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const status = (error as { status?: number; statusCode?: number }).status ?? (error as { statusCode?: number }).statusCode;
    const type = (error as { type?: string }).type;
    if (type === 'entity.parse.failed') {
      res.status(400).json(errorBody('MalformedJson', `Request body is not valid JSON: ${(error as Error).message}`));
      return;
    }
    if (status !== undefined && status >= 400 && status < 500) {
      res.status(status).json(errorBody('ValidationFailed', (error as Error).message));
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    res.status(500).json(errorBody('InternalError', 'Internal error; see the server log'));
  };
}
