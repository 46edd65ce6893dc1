import { rateLimited } from '@mpd/contract/server';
import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';

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

/** Heartbeats per worker id and minute (a worker that floods the orchestrator only slows itself). */
export function heartbeatLimiter(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: WINDOW_MS,
    limit: perMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req) => `worker:${heartbeatWorkerId(req.body)}`,
    handler: rateLimited('heartbeats from this worker'),
  });
}

/**
 * The `workerId` of a heartbeat body, or '' when it is not a string: the limiter runs before
 * validation, and `String()` of a JSON object such as `{"toString": 1}` throws.
 */
export function heartbeatWorkerId(body: unknown): string {
  const workerId = (body as { workerId?: unknown } | null | undefined)?.workerId;
  return typeof workerId === 'string' ? workerId : '';
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
