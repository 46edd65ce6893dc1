import { hash } from 'node:crypto';
import { bearerToken, rateLimited, type Refusal, refuseUnread } from '@mpd/server-kit';
import type { Request, RequestHandler, Response } from 'express';
import { type ClientRateLimitInfo, ipKeyGenerator, MemoryStore, type Options } from 'express-rate-limit';

const WINDOW_MS = 60_000;

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
 * the limiters that run on every request (heartbeats, failed requests): express-rate-limit's
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

/** What {@link FailureLimiter} takes: its two limits, and how to tell a valid token. */
export interface FailureLimiterOptions {
  /** Failed authentications (401, 403) per client address and presented token per minute. */
  authFailuresPerMinute: number;
  /** Failed requests (every 4xx but 429) per client address per minute. */
  failedRequestsPerMinute: number;
  /** Whether the request presents a credential or token the orchestrator accepts (for any route). */
  presentsValidToken: (req: Request) => boolean;
}

/**
 * The limits on failing callers, each a window of one minute, in memory:
 *
 * - **the failed-authentication lockout**, keyed by the client address *and* the token it
 *   presents (by its SHA-256; no token is a key of its own): past `authFailuresPerMinute` 401 and
 *   403 answers, requests from that address with that same token get 429 until the window ends.
 *   Keyed by the token as well, so that a wrong or stale token throttles only itself: a worker
 *   behind the same address (same host, NAT, a reverse proxy) keeps its own credential working
 *   (issue 11: 101 wrong tokens from the workers' address sent both workers Offline).
 * - **the failed-request budget**, keyed by the client address: every answer from 400 to 499 but
 *   429 counts (a body that does not validate, one too large, a wrong content type, an unknown
 *   route or worker, a taken id, a failed authentication — all work the server did for nothing,
 *   and what a flood of junk or of rotating guessed tokens produces); 429 does not, since it is
 *   this limiter's own answer and costs nothing, and counting it would keep a retrying client
 *   locked out for good; 5xx are the server's failures, not the caller's. Past
 *   `failedRequestsPerMinute`, requests from that address get 429 until the window ends.
 *
 * Neither ever refuses a request that presents a valid credential or token
 * (`presentsValidToken`): a worker's heartbeats, a registration with the join token, an admin's
 * call go through whatever others at the same address did. What is refused is what presents no
 * token, or one the orchestrator does not know.
 *
 * {@link FailureLimiter.counter} counts every answer (app-wide: unknown routes count too);
 * {@link FailureLimiter.guard} refuses, as route middleware, before the body is read. Health
 * checks (load balancers, probes) are never refused: their route has no guard. A 429 carries
 * `Retry-After` and the IETF draft-7 `RateLimit` and `RateLimit-Policy` headers.
 *
 * The windows live on express-rate-limit's `MemoryStore`, looked up directly rather than through
 * its middleware (a profile of the heartbeat benchmark put that middleware's per-request work
 * among the largest costs of a heartbeat).
 */
export class FailureLimiter {
  readonly #lockout: Window;
  readonly #budget: Window;
  readonly #presentsValidToken: (req: Request) => boolean;

  constructor(options: FailureLimiterOptions) {
    this.#lockout = new Window(options.authFailuresPerMinute);
    this.#budget = new Window(options.failedRequestsPerMinute);
    this.#presentsValidToken = options.presentsValidToken;
    const count = (res: Response): void => this.#count(res);
    this.#countIfFailed = function countIfFailed(this: Response) {
      count(this);
    };
  }

  /** App-wide middleware: counts the request once its answer is sent, if it failed. */
  readonly counter: RequestHandler = (_req, res, next) => {
    res.on('finish', this.#countIfFailed);
    next();
  };

  /**
   * The 'finish' listener of every answer (`this` is the answer; 'finish' comes once): one
   * function for all, not a closure and a `once` wrapper per request.
   */
  readonly #countIfFailed: (this: Response) => void;

  #count(res: Response): void {
    const status = res.statusCode;
    if (status < 400 || status > 499 || status === 429) return;
    const address = addressKey(res.req);
    void this.#budget.store.increment(address);
    if (status === 401 || status === 403) void this.#lockout.store.increment(lockoutKey(res.req, address));
  }

  /** Route middleware: 429 for a request without a valid token from a caller past a limit. */
  readonly guard: RequestHandler = (req, res, next) => {
    if (this.#presentsValidToken(req)) return next();
    const address = addressKey(req);
    Promise.all([this.#lockout.store.get(lockoutKey(req, address)), this.#budget.store.get(address)]).then(
      ([failedWithToken, failed]) => {
        const refusal =
          this.#refusal(
            res,
            this.#lockout,
            failedWithToken,
            'failed authentications with this token from this address',
          ) ?? this.#refusal(res, this.#budget, failed, 'failed requests from this address');
        if (refusal === undefined) return next();
        refuseUnread(req, res, refusal);
      },
      (error: unknown) => next(error),
    );
  };

  #refusal(res: Response, window: Window, hits: ClientRateLimitInfo | undefined, what: string): Refusal | undefined {
    if (hits === undefined || hits.totalHits < window.limit) return undefined;
    return {
      code: 'RateLimited',
      message: `Too many ${what}; retry after the time in Retry-After`,
      retryAfterSeconds: window.answerHeaders(res, hits),
    };
  }
}

/** The lockout's key: the client address and the presented token's SHA-256 (never the token itself). */
function lockoutKey(req: Request, address: string): string {
  const token = bearerToken(req);
  return token === undefined ? `${address} none` : `${address} ${hash('sha256', token, 'base64url')}`;
}
