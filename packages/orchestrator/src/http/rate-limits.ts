import { orchestratorContract } from '@mpd/contract';
import { rateLimited } from '@mpd/server-kit';
import type { Request, RequestHandler, Response } from 'express';
import { type ClientRateLimitInfo, ipKeyGenerator, MemoryStore, type Options, rateLimit } from 'express-rate-limit';

const WINDOW_MS = 60_000;
const HEALTH_PATH = orchestratorContract.health.get.path;

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
  const window = new Window(perMinute);
  return (req, res, next) => {
    const workerId = authenticatedWorker(req);
    window.store.increment(heartbeatKey(req, workerId)).then(
      (hits) => {
        const seconds = window.answerHeaders(res, hits);
        if (hits.totalHits <= window.limit) return next();
        res.setHeader('Retry-After', String(seconds));
        (workerId === undefined ? perAddress : perWorker)(req, res);
      },
      (error: unknown) => next(error),
    );
  };
}

/**
 * A limit per minute on express-rate-limit's `MemoryStore`, with its IETF draft-7 headers, for
 * the limiters that run on every request (heartbeats, failed authentications): express-rate-limit's
 * own middleware does the same with several awaits and checks per request, which made up most of
 * what a heartbeat cost beyond express itself.
 */
class Window {
  readonly store = new MemoryStore();
  readonly #policy: string;

  constructor(readonly limit: number) {
    this.store.init({ windowMs: WINDOW_MS } as Options);
    this.#policy = `${limit};w=${WINDOW_MS / 1_000}`;
  }

  /** Sets `RateLimit-Policy` and `RateLimit`; returns the seconds until the window resets. */
  answerHeaders(res: Response, hits: ClientRateLimitInfo): number {
    const resetAt = hits.resetTime?.getTime() ?? Date.now() + WINDOW_MS;
    const seconds = Math.max(1, Math.ceil((resetAt - Date.now()) / 1_000));
    res.setHeader('RateLimit-Policy', this.#policy);
    res.setHeader(
      'RateLimit',
      `limit=${this.limit}, remaining=${Math.max(0, this.limit - hits.totalHits)}, reset=${seconds}`,
    );
    return seconds;
  }
}

/** The heartbeat limiter's key: the authenticated worker, else the client address (IPv6 by /56). */
function heartbeatKey(req: Request, workerId: string | undefined): string {
  return workerId !== undefined ? `worker:${workerId}` : `address:${addressKey(req)}`;
}

/** The client address as the limiters count it (IPv6 by /56, as express-rate-limit does). */
function addressKey(req: Request): string {
  return ipKeyGenerator(req.ip ?? '');
}

/**
 * Failed authentications (401/403) per client address and minute; past the limit every request
 * from that address gets 429 until the window ends, so tokens cannot be guessed at speed.
 *
 * It runs before every request, so it only looks the address up (express-rate-limit's
 * `MemoryStore`) and counts the request once its answer turns out to be a 401 or 403, rather
 * than counting every request and taking successful ones back as `skipSuccessfulRequests`
 * does (a profile of the heartbeat benchmark put that among the largest costs of a heartbeat).
 * A 429 carries `Retry-After` and the IETF draft-7 `RateLimit` and `RateLimit-Policy` headers.
 */
export function authFailureLimiter(perMinute: number): RequestHandler {
  // Health checks (load balancers, probes) take no token and are never refused.
  const window = new Window(perMinute);
  const refuse = rateLimited('failed authentications from this address');
  const countIfRefused = (res: Response, key: string): void => {
    if (res.statusCode === 401 || res.statusCode === 403) void window.store.increment(key);
  };
  return (req, res, next) => {
    if (req.path === HEALTH_PATH) return next();
    const key = addressKey(req);
    window.store.get(key).then(
      (hits) => {
        if (hits !== undefined && hits.totalHits >= window.limit) {
          res.setHeader('Retry-After', String(window.answerHeaders(res, hits)));
          refuse(req, res);
          return;
        }
        res.once('finish', () => countIfRefused(res, key));
        next();
      },
      (error: unknown) => next(error),
    );
  };
}
