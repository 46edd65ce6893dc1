import { rateLimited } from '@mpd/contract/server';
import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';

const WINDOW_MS = 60_000;

/** Registrations per client address and minute. */
export function registerLimiter(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: WINDOW_MS,
    limit: perMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    handler: rateLimited('registrations from this address'),
  });
}

/**
 * Heartbeats per minute, counted per authenticated worker: a heartbeat that carries a worker's
 * credential counts for that worker (whatever `workerId` its body names), any other one for its
 * client address. The body is not trusted: heartbeats forged for a worker's id count against the
 * forger's address (or its own credential), never against that worker, so they cannot push it
 * past its limit and Offline. A worker that floods the orchestrator only slows itself.
 *
 * @param authenticatedWorker the id of the worker whose credential the request carries, if any.
 */
export function heartbeatLimiter(
  perMinute: number,
  authenticatedWorker: (req: Request) => string | undefined,
): RequestHandler {
  const perWorker = rateLimited('heartbeats from this worker');
  const perAddress = rateLimited('heartbeats without a worker credential from this address');
  return rateLimit({
    windowMs: WINDOW_MS,
    limit: perMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req) => heartbeatKey(req, authenticatedWorker(req)),
    handler: (req, res) => (authenticatedWorker(req) === undefined ? perAddress : perWorker)(req, res),
  });
}

/** The heartbeat limiter's key: the authenticated worker, else the client address (IPv6 by /56). */
function heartbeatKey(req: Request, workerId: string | undefined): string {
  return workerId !== undefined ? `worker:${workerId}` : `address:${ipKeyGenerator(req.ip ?? '')}`;
}

/**
 * Failed authentications (401/403) per client address and minute; past the limit every request
 * from that address gets 429 until the window ends, so tokens cannot be guessed at speed.
 */
export function authFailureLimiter(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: WINDOW_MS,
    limit: perMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    skipSuccessfulRequests: true,
    requestWasSuccessful: (_req, res) => res.statusCode !== 401 && res.statusCode !== 403,
    skip: (req) => req.path === '/api/health',
    handler: rateLimited('failed authentications from this address'),
  });
}
