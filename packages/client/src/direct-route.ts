import { type AppRoute, UnknownStatusError } from '@ts-rest/core';
import type { CallOptions, Fetcher } from './fetcher.js';

/** What the client passes every call: the resolved `initClient` arguments the direct call uses. */
export interface DirectRouteArgs {
  /** The base URL without a trailing slash. */
  baseUrl: string;
  /** Headers sent with every call (the client's `headers` and bearer token). */
  baseHeaders: Record<string, string>;
  api: Fetcher;
  validateResponse: boolean;
}

/** A route call: ts-rest's client input in, `{ status, body, headers }` out. */
export type RouteCall = (
  input?: Record<string, unknown>,
) => Promise<{ status: number; body: unknown; headers: Headers }>;

/**
 * A call of a JSON route without path parameters that does what ts-rest's client does for it
 * (`initClient`'s `getRouteQuery` and `fetchApi`, @ts-rest/core 3.52, with
 * `throwOnUnknownStatus`), in fewer steps: the URL made once; the headers the client's, then the
 * call's `extraHeaders`, then its `headers`, names lower-cased, undefined values dropped,
 * `content-type: application/json` unless one is given, the body as `JSON.stringify`; the call's
 * other inputs (`deadlineMs`, `maxResponseBytes`) passed to the fetcher; a status the route does
 * not list rejects with ts-rest's `UnknownStatusError`, whose message names the listed ones. An
 * input with `params`, `query`, `overrideClientOptions`, `cache` or `next` goes to `fallback`,
 * ts-rest's own call.
 *
 * Why: the orchestrator makes one `execute` call per module. Measured with `bench/execute-call.ts`
 * (issue 14, round G), ts-rest's client cost about 5 µs of the caller's CPU per call (its
 * argument objects spread several times, headers normalised through `Object.fromEntries`, the
 * URL rebuilt, the status looked up as a string in an array), of about 49 µs for the whole call.
 */
export function directRoute(route: AppRoute, args: DirectRouteArgs, fallback: RouteCall): RouteCall {
  if (route.path.includes(':') || ('contentType' in route && route.contentType !== 'application/json')) {
    throw new TypeError(`${route.method} ${route.path}: a direct call takes a JSON route without path parameters`);
  }
  const path = `${args.baseUrl}${route.path}`;
  const baseHeaders = lowerCased(args.baseHeaders, {});
  const listed = Object.keys(route.responses);
  const known = new Set(listed.map(Number));
  const sendsBody = route.method !== 'GET';
  // The headers of the last call whose `extraHeaders` was a frozen object and that gave no
  // `headers` (the orchestrator's execute calls: the same frozen object every time): merged once.
  let lastExtra: Readonly<Record<string, string | undefined>> | undefined;
  let lastSent: Record<string, string> | undefined;

  return async (input = {}) => {
    // Read field by field, not by a rest destructuring (`{ body, …, ...extra }`): that is a call
    // into V8's runtime and an object per call, and the call's arguments were then built with two
    // spreads (issue 14, round N). The call's other inputs still all reach the fetcher.
    const call = input as DirectInput;
    const { body, headers, extraHeaders, fetchOptions } = call;
    // The path and query building, and the client options' overrides, are left to ts-rest.
    if (call.params !== undefined || call.query !== undefined || call.overrideClientOptions !== undefined)
      return fallback(input);
    if (call.cache !== undefined || call.next !== undefined) return fallback(input);
    const json = sendsBody && body !== null && body !== undefined;
    let sent: Record<string, string>;
    if (json && headers === undefined && extraHeaders !== undefined && extraHeaders === lastExtra) sent = lastSent!;
    else {
      sent = { ...baseHeaders };
      if (extraHeaders) sent = lowerCased(extraHeaders, sent);
      if (headers) sent = lowerCased(headers, sent);
      if (json && !('content-type' in sent)) sent = { 'content-type': 'application/json', ...sent };
      // A frozen object cannot change: the next call with it sends the same headers (undici
      // reads them, never changes them). Merging them cost three objects per call.
      if (json && headers === undefined && extraHeaders !== undefined && Object.isFrozen(extraHeaders)) {
        lastExtra = extraHeaders;
        lastSent = Object.freeze(sent);
      }
    }
    const fetcherArgs = {
      route,
      path,
      method: route.method,
      headers: sent,
      body: json ? JSON.stringify(body) : undefined,
      rawBody: body,
      rawQuery: undefined,
      contentType: json ? 'application/json' : undefined,
      validateResponse: args.validateResponse,
      fetchOptions: fetchOptions === undefined ? NO_FETCH_OPTIONS : { ...fetchOptions },
      deadlineMs: call.deadlineMs,
      maxResponseBytes: call.maxResponseBytes,
      aborter: call.aborter,
    } as Parameters<Fetcher>[0] & Record<string, unknown>;
    if (fetchOptions?.signal) fetcherArgs.signal = fetchOptions.signal;
    // Any other input (not ts-rest's, not a `CallOptions`) goes to the fetcher as ts-rest passes
    // it: the input's own enumerable string keys (not what its prototype lists, as `for…in`
    // would). Symbol keys are left out: ts-rest's client and our fetcher read none.
    const names = Object.keys(call);
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      if (!DIRECT_INPUTS.has(name)) fetcherArgs[name] = call[name];
    }
    const response = await args.api(fetcherArgs);
    if (!known.has(response.status)) throw new UnknownStatusError(response, listed);
    return response as { status: number; body: unknown; headers: Headers };
  };
}

/** A direct call's input: ts-rest's client input and the fetcher's {@link CallOptions}. */
type DirectInput = {
  body?: unknown;
  headers?: Record<string, string | undefined>;
  extraHeaders?: Record<string, string | undefined>;
  fetchOptions?: RequestInit;
} & CallOptions &
  Record<string, unknown>;

/**
 * The inputs a direct call reads itself (ts-rest's, and the fetcher's {@link CallOptions} it
 * passes by name); any other reaches the fetcher as it is.
 */
const DIRECT_INPUTS: ReadonlySet<string> = new Set([
  'body',
  'headers',
  'extraHeaders',
  'fetchOptions',
  'params',
  'query',
  'overrideClientOptions',
  'cache',
  'next',
  'deadlineMs',
  'maxResponseBytes',
  'aborter',
]);

/** The fetch options of a call that gives none (the fetcher only reads them). */
const NO_FETCH_OPTIONS: RequestInit = Object.freeze({});

/**
 * `headers` with lower-cased names added to `into` (a later value wins, an undefined one removes
 * the name), as ts-rest's `normalizeHeaders` and its removal of undefined headers. Changes `into`.
 */
function lowerCased(headers: Record<string, string | undefined>, into: Record<string, string>): Record<string, string> {
  for (const name in headers) {
    const value = headers[name];
    const lower = name.toLowerCase();
    if (value === undefined) delete into[lower];
    else into[lower] = value;
  }
  return into;
}
