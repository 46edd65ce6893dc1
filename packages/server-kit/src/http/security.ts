/** Security pieces both servers share: bearer tokens, content types, rate-limit answers. */
import { hash, timingSafeEqual } from 'node:crypto';
import { errorResponse } from '@mpd/contract';
import type { Request, RequestHandler, Response } from 'express';
import { sendError } from './error-handling.js';

/** The bearer token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** The digests of the secrets `safeEqual` compares against (tokens, credentials): few, and hashed once. */
const expectedDigests = new Map<string, Buffer>();
const MAX_EXPECTED_DIGESTS = 256;

/** One-shot `crypto.hash` (Node 20.12+): a `Hash` object per call costs several times as much. */
function digest(secret: string): Buffer {
  return hash('sha256', secret, 'buffer');
}

/**
 * Compares two secrets in constant time (of their SHA-256 digests, so lengths leak nothing
 * either). `expected` is ours (a token, a credential): its digest is kept, so a call hashes
 * only what it was given.
 */
export function safeEqual(given: string, expected: string): boolean {
  let wanted = expectedDigests.get(expected);
  if (wanted === undefined) {
    if (expectedDigests.size >= MAX_EXPECTED_DIGESTS) expectedDigests.clear();
    wanted = digest(expected);
    expectedDigests.set(expected, wanted);
  }
  return timingSafeEqual(digest(given), wanted);
}

/** 401 `Unauthorized` with `WWW-Authenticate: Bearer`, as a route returns it; the message never repeats the token. */
export function unauthorized(res: Response, message: string): ReturnType<typeof errorResponse<'Unauthorized'>> {
  res.setHeader('WWW-Authenticate', 'Bearer realm="mpd"');
  return errorResponse('Unauthorized', message);
}

/** 403 `Forbidden`, as a route returns it: authenticated, but not allowed to do this. */
export function forbidden(message: string): ReturnType<typeof errorResponse<'Forbidden'>> {
  return errorResponse('Forbidden', message);
}

/** 415 for a request body that is not JSON (bodies of other types would silently be ignored). */
export const requireJsonBody: RequestHandler = (req, res, next) => {
  // What every client sends, checked without parsing; anything else goes through type-is.
  const type = req.headers['content-type'];
  if (type === 'application/json' || type === 'application/json; charset=utf-8') return next();
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody && !req.is('application/json')) {
    sendError(
      res,
      'UnsupportedMediaType',
      `Request bodies must be JSON (Content-Type: application/json), got ${JSON.stringify(req.headers['content-type'] ?? 'none')}`,
    );
    return;
  }
  next();
};

/** The answer of a rate limiter (`express-rate-limit`'s handler): 429 with the contract's error body. */
export function rateLimited(what: string): (req: Request, res: Response) => void {
  return (_req, res) => sendError(res, 'RateLimited', `Too many ${what}; retry after the time in Retry-After`);
}
