/**
 * Security pieces both servers share: bearer tokens, refusals before the body is read, content
 * types, rate-limit answers.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import { type ErrorCode, errorResponse, type FieldIssue } from '@mpd/contract';
import type { Request, RequestHandler, Response } from 'express';
import { sendError } from './error-handling.js';

/** The bearer token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * The digests of the secrets `safeEqual` compares against (tokens, credentials): few, and hashed
 * once; null for one that is not well-formed (see {@link wellFormed}), which nothing matches.
 */
const expectedDigests = new Map<string, Buffer | null>();
const MAX_EXPECTED_DIGESTS = 256;

/**
 * One-shot `crypto.hash` (Node 20.12+): a `Hash` object per call costs several times as much. As
 * hex, then its bytes: on Node 20 `hash`'s `'buffer'` output cost 1.0–1.1 µs a call against
 * 0.6–0.7 µs for this (the largest self time of mpd's own code under the worker's execute route
 * in a CPU profile, issue 14, round V). The same 32 bytes.
 */
function digest(secret: string): Buffer {
  return Buffer.from(hash('sha256', secret, 'hex'), 'hex');
}

/**
 * Whether `text` is well-formed UTF-16: no unpaired surrogate (`String.prototype.isWellFormed`,
 * ES2024, in Node since 20.0; typed here, the packages' `lib` is ES2023). Such a string has no
 * UTF-8 form: encoding it (a hash, a `Buffer`) writes U+FFFD for each unpaired surrogate, so
 * `'a\uD800'` and `'a\uDBFF'` encode alike.
 */
export function wellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Compares two secrets in constant time (of their SHA-256 digests, so lengths leak nothing
 * either). `expected` is ours (a token, a credential): its digest is kept, so a call hashes
 * only what it was given. A secret that is not well-formed ({@link wellFormed}), given or
 * expected, equals nothing, itself included (false: the caller's wrong credential, 401): hashed
 * as UTF-8, strings differing only in unpaired surrogates had one digest (round X, X5). Throws
 * nothing.
 */
export function safeEqual(given: string, expected: string): boolean {
  let wanted = expectedDigests.get(expected);
  if (wanted === undefined) {
    if (expectedDigests.size >= MAX_EXPECTED_DIGESTS) expectedDigests.clear();
    wanted = wellFormed(expected) ? digest(expected) : null;
    expectedDigests.set(expected, wanted);
  }
  // Refused before it is hashed: how long that takes tells the caller only what it sent.
  if (wanted === null || !wellFormed(given)) return false;
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

/** A refusal a route's middleware answers before the request body is read (see {@link refuseUnread}). */
export interface Refusal {
  /** The contract's code; its status is `ERROR_STATUS[code]` (`Unauthorized`: 401, `RateLimited`: 429, …). */
  code: ErrorCode;
  /** The answer's `errorMessage`: never a token. */
  message: string;
  /** Sent as `Retry-After` (whole seconds, at least 1) when given. */
  retryAfterSeconds?: number | undefined;
  /** The fields at fault, for a `ValidationFailed` refusal. */
  issues?: readonly FieldIssue[] | undefined;
}

/** Where {@link createApiApp} keeps the body limit in bytes, for {@link refuseUnread} (`app.locals`). */
export const BODY_LIMIT_BYTES = 'mpdBodyLimitBytes';

/**
 * Answers `refusal` at once, without reading the request body: the contract's error body, with
 * `WWW-Authenticate: Bearer realm="mpd"` on a 401 and `Retry-After` when the refusal gives one.
 * Route middleware that refuses before the JSON parser calls this, so an unauthenticated or
 * throttled request costs the same whatever its body holds (issue 11: a 12 MB execute without a
 * token took 15.8 s of the worker's time and a 154 MB answer before its 401).
 *
 * The body is discarded as it arrives (never buffered or parsed), so a client that sent it still
 * reads the answer and keeps its connection; past the server's body limit (what `createApiApp`
 * was given; 1 MiB when the app has none) the connection is closed once the answer is out, as
 * there is no reason to take in more than a body the server would accept.
 */
export function refuseUnread(req: Request, res: Response, refusal: Refusal): void {
  if (refusal.code === 'Unauthorized') res.setHeader('WWW-Authenticate', 'Bearer realm="mpd"');
  if (refusal.retryAfterSeconds !== undefined) {
    res.setHeader('Retry-After', String(Math.max(1, Math.ceil(refusal.retryAfterSeconds))));
  }
  discardBody(req, res, Number(req.app?.locals[BODY_LIMIT_BYTES] ?? DEFAULT_DISCARD_BYTES));
  sendError(res, refusal.code, refusal.message, refusal.issues);
}

const DEFAULT_DISCARD_BYTES = 1024 * 1024;

/** Reads the rest of `req` into nothing; past `maxBytes`, closes the connection once `res` is sent. */
function discardBody(req: Request, res: Response, maxBytes: number): void {
  if (req.complete) return;
  const declared = Number(req.headers['content-length']);
  if (declared > maxBytes) {
    closeWhenDrained(req, res, { maxBytes });
    return;
  }
  let seen = 0;
  const onData = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen <= maxBytes) return;
    req.off('data', onData);
    req.pause();
    const close = () => req.socket.destroy();
    if (res.writableFinished) close();
    else res.once('finish', close);
  };
  req.on('data', onData);
}

/** Bounds of {@link closeWhenDrained}: how much of the rest of a refused body is read into nothing. */
export interface DrainLimits {
  /**
   * The most bytes of the body read (and discarded) before the connection is closed anyway.
   * @default 16 MiB
   */
  maxBytes?: number;
  /**
   * The longest time in ms the connection stays open, reading the body, once the answer is out.
   * @default 5_000
   */
  maxMs?: number;
}

/**
 * Answers on `res` with `Connection: close` and closes the connection only once the rest of
 * `req`'s body was read into nothing (its end, `maxBytes` of it, `maxMs` after the answer went,
 * or the client closing first), for a refusal answered before the body was read whole (413 past
 * `--max-artifact-size` on a chunked upload). Node closes a `Connection: close` socket as soon as
 * the answer is out; body bytes still unread then make that close a TCP reset, which can reach
 * the client before it read the answer (it then saw ECONNRESET, not the 413: 2 uploads in 60 of
 * 4× a 4 MiB limit, round J's review). Here the answer goes, then the write side is ended (the
 * client reads the answer and its end), and the socket is destroyed only when the body is
 * drained or a bound is reached: RFC 9112 §9.6's lingering close. Call before the answer is sent.
 */
export function closeWhenDrained(req: Request, res: Response, limits: DrainLimits = {}): void {
  const maxBytes = limits.maxBytes ?? DEFAULT_DRAIN_BYTES;
  const maxMs = limits.maxMs ?? DEFAULT_DRAIN_MS;
  res.setHeader('Connection', 'close');
  const socket = req.socket;
  let timer: NodeJS.Timeout | undefined;
  let closing = false;
  // Never before the answer is out: destroying the socket would drop it.
  const close = () => {
    if (closing) return;
    closing = true;
    clearTimeout(timer);
    req.off('data', onData);
    if (res.writableFinished) socket.destroy();
    else {
      req.pause();
      res.once('finish', () => socket.destroy());
    }
  };
  let seen = 0;
  const onData = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen > maxBytes) close();
  };
  // What node calls once a `Connection: close` answer is out (else `end` then `destroy` at once):
  // the end only, so the body's bytes still coming are read rather than reset.
  socket.destroySoon = function lingeringClose(this: typeof socket) {
    if (this.writable) this.end();
    timer = setTimeout(close, maxMs);
    timer.unref();
  };
  socket.once('close', () => clearTimeout(timer));
  if (req.complete) return;
  req.on('data', onData);
  // Read whole: closed once the answer is out (nothing unread, so no reset).
  req.once('end', close);
  req.resume();
}

const DEFAULT_DRAIN_BYTES = 16 * 1024 * 1024;
const DEFAULT_DRAIN_MS = 5_000;

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
