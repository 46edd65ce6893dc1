/**
 * The requests the fuzzer sends: a method, a path (with junk in its parameters), headers
 * (content type, encoding, a token of some kind) and a body, aimed at a route or not.
 */
import fc from 'fast-check';
import { bodyFor, defined, identifier, optional } from './bodies.js';
import { type Route, routeNamed } from './routes.js';
import { ADMIN_TOKEN, JOIN_TOKEN, type Server, WORKER_IDS } from './servers.js';
import { toJson, weirdString } from './values.js';

export type Auth =
  | { kind: 'none' }
  | { kind: 'header'; value: string }
  | { kind: 'token'; token: 'join' | 'admin' | 'worker' | 'own' | 'issued'; index: number; scheme: string }
  /** The token the route takes (the join token to register, the worker's own credential for its heartbeat...). */
  | { kind: 'right' };

export type Body = { kind: 'json'; value: unknown } | { kind: 'bytes'; bytes: Uint8Array };

export interface RequestSpec {
  server: Server;
  method: string;
  path: string;
  /** `null`: no Content-Type header. */
  contentType: string | null;
  contentEncoding: string | undefined;
  auth: Auth;
  body: Body | undefined;
  /** Wait this long before sending (for a cancel to find its execution running). */
  delayMs?: number;
}

export const METHODS = [
  'GET',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'HEAD',
  'OPTIONS',
  'PROPFIND',
  'SEARCH',
  'PURGE',
  'MKCOL',
  'LOCK',
  'REPORT',
];

/** Header values fetch can send: latin-1 without control characters. */
const headerText = (maxLength: number) =>
  fc.string({
    unit: fc
      .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }))
      .map((code) => String.fromCharCode(code)),
    maxLength,
  });

export const auth: fc.Arbitrary<Auth> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Auth>({ kind: 'right' }) },
  { weight: 1, arbitrary: fc.constant<Auth>({ kind: 'none' }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('token' as const),
      token: fc.constantFrom('join' as const, 'admin' as const, 'worker' as const, 'own' as const, 'issued' as const),
      index: fc.nat(),
      scheme: fc.oneof(
        { weight: 8, arbitrary: fc.constant('Bearer ') },
        fc.constantFrom('bearer ', 'BEARER\t', 'Bearer   ', 'Basic ', 'Token ', ''),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        headerText(64).map((text) => `Bearer ${text}`),
        headerText(64),
        fc.constantFrom(
          'Bearer',
          'Bearer ',
          'Bearer a b',
          `Bearer ${JOIN_TOKEN}x`,
          `Bearer ${ADMIN_TOKEN.slice(0, -1)}`,
          `Bearer ${'x'.repeat(4000)}`,
        ),
      )
      .map((value): Auth => ({ kind: 'header', value })),
  },
);

const CONTENT_TYPES = [
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/json; foo=bar',
  'APPLICATION/JSON',
  'text/plain',
  'text/html; charset=utf-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/vnd.api+json',
  'application/octet-stream',
  'application/xml',
  'a/b/c;;;',
  '*/*',
  'application/',
];
export const contentType: fc.Arbitrary<string | null> = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8') },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: headerText(40) },
);
export const contentEncoding: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 40, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-garbage', 'gzip, gzip') },
);

/**
 * Path parameters: pool ids, junk (URL-encoded or raw). At most 1,000 characters before
 * encoding (9 KB after): Node answers a request line and headers over 16 KB with a bare 431
 * before express sees it.
 */
export const pathParam: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...WORKER_IDS) },
  { weight: 2, arbitrary: identifier },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        weirdString.filter((s) => s.length <= 1_000),
        fc.string({ unit: 'binary', maxLength: 300 }),
      )
      .map(encodePathPart),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '%',
      '%zz',
      '%E0%A4%A',
      '%00',
      '%2F',
      'a%2Fb',
      '%2e%2e',
      '..',
      '.',
      '%C0%AE',
      '%FF',
      'a'.repeat(257),
      '%25',
      '%u0041',
      '%%%',
    ),
  },
);

/** Percent-encodes any string (lone surrogates too, as U+FFFD). */
export function encodePathPart(text: string): string {
  return encodeURIComponent(Buffer.from(text).toString());
}

export function pathOf(route: Route, param: string): string {
  return route.path.replace(/:[A-Za-z]+/, param);
}

/** A request aimed at one route (mostly with its method), with a body for it. */
function routeRequest(route: Route): fc.Arbitrary<RequestSpec> {
  return fc
    .record({
      method: fc.oneof({ weight: 9, arbitrary: fc.constant(route.method) }, fc.constantFrom(...METHODS)),
      param: pathParam,
      decoration: fc.oneof(
        { weight: 12, arbitrary: fc.constant((path: string) => path) },
        fc.constantFrom(
          (path: string) => `${path}/`,
          (path: string) => path.toUpperCase(),
          (path: string) => `${path}?x=%zz&__proto__[a]=1&workerId=${'q'.repeat(300)}`,
          (path: string) => `${path}?${'a=1&'.repeat(200)}`,
          (path: string) => `${path}#frag`,
        ),
      ),
      contentType,
      contentEncoding,
      auth,
      body: bodyFor(route),
    })
    .map(({ method, param, decoration, body, ...rest }) =>
      spec({
        server: route.server,
        method,
        path: decoration(pathOf(route, param)),
        body: body === undefined ? undefined : { kind: 'json', value: body },
        ...rest,
      }),
    );
}

/** Gives a request a short description for fast-check's counterexample report (bodies can be 200 KB). */
export function spec(request: RequestSpec): RequestSpec {
  return Object.defineProperty(request, fc.toStringMethod, {
    value: () => {
      const body =
        request.body === undefined
          ? ''
          : ` body=${truncate(request.body.kind === 'json' ? toJson(request.body.value, { ownCredential: undefined }) : Buffer.from(request.body.bytes).toString('latin1'))}`;
      return `${request.method} ${request.server}${truncate(request.path)} type=${request.contentType} encoding=${request.contentEncoding} auth=${JSON.stringify(request.auth).slice(0, 120)}${body}`;
    },
  });
}

export const truncate = (text: string, max = 300) =>
  text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;

export const batch = (request: fc.Arbitrary<RequestSpec>) => fc.array(request, { minLength: 1, maxLength: 3 });
/** Requests to a server's routes, the ones with bodies weighted up. */
export const requestsTo = (server: Server, weights: Record<string, number>) =>
  fc.oneof(
    ...Object.entries(weights).map(([name, weight]) => ({ weight, arbitrary: routeRequest(routeNamed(server, name)) })),
  );

/**
 * Modules that wait, and a cancel of the first a little later (all valid, with the right
 * tokens): the cancel finds it running, and a third one finds both slots taken (429).
 */
const EXECUTE_PATH = routeNamed('worker', 'execution.execute').path;
const CANCEL_PATH = routeNamed('worker', 'execution.cancel').path;
export const executeThenCancel: fc.Arbitrary<RequestSpec[]> = fc
  .record({
    ids: fc.uniqueArray(fc.uuid(), { minLength: 1, maxLength: 3 }),
    ms: fc.integer({ min: 0, max: 50 }),
    delayMs: fc.integer({ min: 0, max: 20 }),
    reason: optional(weirdString),
  })
  .map(({ ids, ms, delayMs, reason }) => {
    const request = (path: string, value: unknown, delay?: number): RequestSpec =>
      spec({
        server: 'worker',
        method: 'POST',
        path,
        contentType: 'application/json',
        contentEncoding: undefined,
        auth: { kind: 'right' },
        body: { kind: 'json', value },
        ...(delay ? { delayMs: delay } : {}),
      });
    return [
      ...ids.map((id) =>
        request(EXECUTE_PATH, {
          executionId: id,
          serializedModule: JSON.stringify({ ms }),
          moduleTypeName: 'wait',
        }),
      ),
      request(CANCEL_PATH, defined({ executionId: ids[0], reason }), delayMs),
    ];
  });
