/**
 * Requests that miss: bodies that have nothing to do with the route (arbitrary JSON, or bytes
 * that are not JSON), and paths no route has.
 */
import fc from 'fast-check';
import { cancelBody, executeBody, heartbeatBody, identifier, optional, registerBody } from './bodies.js';
import {
  auth,
  type Body,
  contentEncoding,
  contentType,
  encodePathPart,
  METHODS,
  pathOf,
  pathParam,
  type RequestSpec,
  spec,
} from './requests.js';
import { ROUTES } from './routes.js';
import type { Server } from './servers.js';
import { weirdValue } from './values.js';

/** Bytes that are not (quite) JSON. */
const notJson: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 512 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }).map((text) => Buffer.from(text)),
  fc
    .constantFrom(
      '{',
      '}',
      '{"a":1,}',
      "{'a':1}",
      '\ufeff{}',
      '{"a":1}{"b":2}',
      '{"a":1} trailing',
      'NaN',
      '{"a":NaN}',
      '{"a":undefined}',
      '{"a":Infinity}',
      '{"workerId":"fuzz-w0","workerId":{"toString":1},"currentLoad":1}',
      '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}',
      'null',
      'true',
      '42',
      '"string"',
      '[]',
      ' ',
      '\u0000',
      '{"a":"\\ud800"}',
      '{"a":"\\u00"}',
      '{"a":01}',
      '{"a":.5}',
      '{"a":+1}',
      '{"a":0x10}',
      '{"a":1e99999}',
      '[1,2',
      `${'['.repeat(100_000)}`,
      `{"a":"${'x'.repeat(150_000)}"`,
    )
    .map((text) => Buffer.from(text)),
  // A valid body cut short.
  fc.tuple(fc.oneof(registerBody, heartbeatBody, executeBody, cancelBody), fc.nat()).map(([body, cut]) => {
    const text = JSON.stringify(body);
    return Buffer.from(text.slice(0, cut % text.length));
  }),
  // Valid JSON around bytes that are not UTF-8.
  fc
    .uint8Array({ minLength: 1, maxLength: 16 })
    .map((bytes) => Buffer.concat([Buffer.from('{"workerId":"'), bytes, Buffer.from('","currentLoad":1}')])),
);

const anyRoute = fc.constantFrom(...ROUTES);

/** A request with a body that has nothing to do with the route: arbitrary JSON, or bytes that are not JSON. */
export const strayRequest: fc.Arbitrary<RequestSpec> = fc
  .record({
    route: anyRoute,
    method: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, fc.constantFrom(...METHODS)),
    param: pathParam,
    contentType,
    contentEncoding,
    auth,
    body: fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((value): Body => ({ kind: 'json', value })),
      notJson.map((bytes): Body => ({ kind: 'bytes', bytes })),
    ),
  })
  .map(({ route, method, param, ...rest }) =>
    spec({ server: route.server, method: method ?? route.method, path: pathOf(route, param), ...rest }),
  );

/** Paths no route has (or almost has), with any method. */
export const strayPath: fc.Arbitrary<RequestSpec> = fc
  .record({
    server: fc.constantFrom<Server>('orchestrator', 'worker'),
    method: fc.constantFrom(...METHODS),
    path: fc.oneof(
      fc.constantFrom(
        '/',
        '/api',
        '/api/',
        '/api/workers/',
        '/api/workers/register/drain',
        '/api/execution',
        '/api/execution/execute/x',
        '//api//health',
        '/api/../api/health',
        '/api/%2e%2e/api/health',
        '/api/health%00',
        '/api/openapi.json.bak',
        '/API/OPENAPI.JSON',
        '/%',
        '/%%',
        '/..%2F..%2Fetc%2Fpasswd',
        '/api/workers/%ZZ/drain',
        '/api/workers/fuzz-w0/drain/extra',
        '/favicon.ico',
        '/index.html',
        '/.env',
        '/api/workers/__proto__',
        '/api/workers/constructor/drain',
      ),
      fc
        .array(fc.oneof(identifier, fc.string({ unit: 'binary', maxLength: 20 }).map(encodePathPart)), { maxLength: 6 })
        .map((parts) => `/${parts.join('/')}`),
      fc
        .tuple(
          fc.constantFrom('/api/', '/api/workers/', '/api/execution/'),
          fc.string({ unit: 'binary', maxLength: 60 }),
        )
        .map(([prefix, junk]) => `${prefix}${encodePathPart(junk)}`),
    ),
    contentType,
    contentEncoding,
    auth,
    body: optional(weirdValue.map((value): Body => ({ kind: 'json', value }))),
  })
  .map((request) => spec(request));
