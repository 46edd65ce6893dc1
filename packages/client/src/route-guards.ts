import { orchestratorContract } from '@mpd/contract';
import { type AppRoute, type AppRouter, isAppRoute } from '@ts-rest/core';
import { MpdClientError } from './errors.js';

/** What a route call takes, as far as the guards look at it. */
interface CallInput {
  params?: Record<string, unknown>;
  body?: unknown;
  [other: string]: unknown;
}

/** What a route call resolves to. */
interface CallResult {
  status: number;
  body: unknown;
}

type RouteCall = (input?: CallInput) => Promise<CallResult>;

/**
 * The id a success answer of a state-changing route must name, by route: the one the call named.
 * A register answer names the registered worker, a drain answer the drained one: an answer naming
 * another worker means the call acted on another (or reached something that is not the server
 * meant), so it is not taken. Unregister and cancel answers name nothing (`{ success: true }`).
 */
const ANSWER_IDS = new Map<AppRoute, { asked: (input: CallInput) => unknown; answered: (body: unknown) => unknown }>([
  [
    orchestratorContract.workers.register,
    {
      asked: (input) => (input.body as { workerNode?: { id?: unknown } } | undefined)?.workerNode?.id,
      answered: (body) => (body as { workerId?: unknown } | null | undefined)?.workerId,
    },
  ],
  [
    orchestratorContract.workers.drain,
    {
      asked: (input) => input.params?.workerId,
      answered: (body) => (body as { workerId?: unknown } | null | undefined)?.workerId,
    },
  ],
]);

/**
 * Wraps every route call of `client` (built by ts-rest's `initClient` from `contract`) so that:
 * - each path parameter is percent-encoded (`encodeURIComponent`), as ts-rest inserts them as
 *   given: a worker id `w1?evil` would otherwise name `/api/workers/w1` with a query, and
 *   `x/../../workers/w2` another worker's path. An empty parameter (ts-rest drops its segment),
 *   `.` or `..` (a dot-segment every URL parser resolves, encoded or not) is refused with a
 *   `TypeError` before anything is sent.
 * - a state-changing call's success answer names what the call named (see `ANSWER_IDS`); one that
 *   names something else rejects with `MpdClientError` `UnexpectedAnswer`.
 * Changes `client` in place (its route functions) and returns it.
 */
export function guardRoutes<T extends object>(contract: AppRouter, client: T): T {
  const calls = client as unknown as Record<string, unknown>;
  for (const [key, route] of Object.entries(contract)) {
    if (!isAppRoute(route)) {
      guardRoutes(route, calls[key] as object);
      continue;
    }
    const call = calls[key] as RouteCall;
    const hasParams = route.path.includes(':');
    const answerIds = ANSWER_IDS.get(route);
    if (!hasParams && !answerIds) continue;
    calls[key] = async (input: CallInput = {}) => {
      const sent = hasParams ? { ...input, params: encodedParams(route, input.params ?? {}) } : input;
      const result = await call(sent);
      if (answerIds && result.status === 200) {
        const asked = answerIds.asked(input);
        const answered = answerIds.answered(result.body);
        if (answered !== asked) {
          throw new MpdClientError(
            'UnexpectedAnswer',
            `${route.method} ${route.path}: the answer names ${JSON.stringify(answered)}, not ${JSON.stringify(asked)} as the call did; not taken`,
          );
        }
      }
      return result;
    };
  }
  return client;
}

/** `params` with each value percent-encoded for a path segment. @throws TypeError for a value that cannot be one. */
function encodedParams(route: AppRoute, params: Record<string, unknown>): Record<string, string> {
  const encoded: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    const text = String(value ?? '');
    if (text === '' || text === '.' || text === '..') {
      throw new TypeError(
        `${route.method} ${route.path}: path parameter ${name} must not be empty, '.' or '..', got ${JSON.stringify(text)}`,
      );
    }
    encoded[name] = encodeURIComponent(text);
  }
  return encoded;
}
