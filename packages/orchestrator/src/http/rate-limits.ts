import { orchestratorContract } from '@mpd/contract';
import { rateLimited } from '@mpd/server-kit';
import type { Request, RequestHandler, Response } from 'express';
import { type ClientRateLimitInfo, ipKeyGenerator, MemoryStore, type Options } from 'express-rate-limit';

const WINDOW_MS = 60_000;
const HEALTH_PATH = orchestratorContract.health.get.path;

/**
 * Whom the registration and heartbeat limits count a request against: the holder of the token it
 * presents, wherever it calls from, else its client address. A worker's credential counts for
 * that worker (whatever `workerId` its body names), the join token for every holder of the join
 * token together, the admin token likewise; a request without a valid token (anonymous, or a
 * token that is none of ours) for its client address (IPv6 by /56). So more addresses (127.0.0.2,
 * 127.0.0.3, a second machine) never add to a token holder's budget, and a token guessed at random
 * buys no budget of its own (issue 11).
 */
export type LimitedCaller =
  { kind: 'worker'; workerId: string } | { kind: 'join' } | { kind: 'admin' } | { kind: 'address' };

/** The key a {@link LimitedCaller}'s requests are counted under. */
function limitKey(req: Request, caller: LimitedCaller): string {
  switch (caller.kind) {
    case 'worker':
      return `worker:${caller.workerId}`;
    case 'join':
      return 'token:join';
    case 'admin':
      return 'token:admin';
    case 'address':
      return `address:${addressKey(req)}`;
  }
}

/**
 * Requests per minute counted by caller (see {@link LimitedCaller}); past the limit a request
 * gets 429 `RateLimited` with `Retry-After` (the seconds until the caller's window resets) and
 * the IETF draft-7 `RateLimit` headers, its message saying whose `what` were too many.
 */
function callerLimiter(
  perMinute: number,
  callerOf: (req: Request) => LimitedCaller,
  what: 'registrations' | 'heartbeats',
): RequestHandler {
  const refusals: Record<LimitedCaller['kind'], ReturnType<typeof rateLimited>> = {
    worker: rateLimited(`${what} from this worker`),
    join: rateLimited(`${what} with the join token`),
    admin: rateLimited(`${what} with the admin token`),
    address: rateLimited(`${what} without a valid token from this address`),
  };
  const window = new Window(perMinute);
  return (req, res, next) => {
    const caller = callerOf(req);
    window.store.increment(limitKey(req, caller)).then(
      (hits) => {
        const seconds = window.answerHeaders(res, hits);
        if (hits.totalHits <= window.limit) return next();
        res.setHeader('Retry-After', String(seconds));
        refusals[caller.kind](req, res);
      },
      (error: unknown) => next(error),
    );
  };
}

/**
 * Registrations per minute, counted per token holder (the join token's holders together, the
 * admin) or, without a valid token (no join token configured), per client address: see
 * {@link LimitedCaller}.
 */
export function registerLimiter(perMinute: number, callerOf: (req: Request) => LimitedCaller): RequestHandler {
  return callerLimiter(perMinute, callerOf, 'registrations');
}

/**
 * Heartbeats per minute, counted per authenticated worker: a heartbeat that carries a worker's
 * credential counts for that worker (whatever `workerId` its body names), one with another of
 * our tokens for that token's holders, any other one for its client address. The body is not
 * trusted: heartbeats forged for a worker's id count against the forger's address (or its own
 * credential), never against that worker, so they cannot push it past its limit and Offline. A
 * worker that floods the orchestrator only slows itself.
 */
export function heartbeatLimiter(perMinute: number, callerOf: (req: Request) => LimitedCaller): RequestHandler {
  return callerLimiter(perMinute, callerOf, 'heartbeats');
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
