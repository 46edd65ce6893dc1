/**
 * Property-based fuzzing (fast-check) of every route of both servers, started in-process on
 * 127.0.0.1 with tokens configured. Thousands of requests: the contract's example bodies,
 * mutated (fields dropped, types changed, huge strings, deep nesting, unicode and control
 * characters, odd numbers, extra and prototype-pollution keys); arbitrary JSON; bytes that are
 * not JSON; wrong or missing content types and encodings; random methods and URL-encoded junk
 * in paths; missing, garbage and real bearer tokens. Every answer must be
 *
 * - below 500, except execute's module-failure body (a module that timed out or was cancelled:
 *   the pipeline's modules never throw, so a failure of kind `Error` is a bug too);
 * - JSON that parses with the contract's schema for its route and status (or the error body);
 * - 401 with `WWW-Authenticate`, 429 with `Retry-After`;
 *
 * and both servers must still answer `GET /api/health` at the end.
 *
 * Reproduce a failure with the seed fast-check prints: `FUZZ_SEED=<seed> pnpm --filter @mpd/integration-tests exec vitest run fuzz/http-fuzz.spec.ts`.
 * `FUZZ_RUNS=<factor>` scales the number of runs (default 1: about 3,000 requests);
 * `FUZZ_STATS=1` prints how many answers each route gave with each status.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  errorBodySchema,
  executeModuleFailureSchema,
  orchestratorContract,
  parseTimeSpan,
  workerContract,
} from '@mpd/contract';
import { type RunningOrchestrator, startOrchestrator } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { SPEC_EXAMPLES } from '@mpd/test-kit';
import { type RunningWorker, startWorker } from '@mpd/worker';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, silent } from '../helpers/cluster.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const FACTOR = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : 1;
if (SEED !== undefined && !Number.isInteger(SEED)) throw new Error(`FUZZ_SEED must be an integer, got ${SEED}`);
if (!(FACTOR > 0)) throw new Error(`FUZZ_RUNS must be a number above 0, got ${FACTOR}`);
const runs = (n: number) => ({
  numRuns: Math.max(1, Math.round(n * FACTOR)),
  ...(SEED !== undefined ? { seed: SEED } : {}),
});

const JOIN_TOKEN = 'fuzz-join-token-0123456789abcdef';
const ADMIN_TOKEN = 'fuzz-admin-token-0123456789abcdef';
const WORKER_TOKEN = 'fuzz-worker-token-0123456789abcdef';

// ---------------------------------------------------------------------------------------------
// Servers

/** Trivial modules that never throw: a 500 of kind `Error` from execute is a bug. */
const pipeline = definePipeline({
  name: 'fuzz',
  modules: [
    defineModule({ name: 'echo', run: (ctx) => ctx.params ?? null }),
    defineModule({ name: 'noop', run: () => undefined }),
    defineModule({ name: 'env', run: (ctx) => ({ env: Object.keys(ctx.env).length, deps: Object.keys(ctx.results) }) }),
    /** Waits `params.ms` (at most 50) or until cancelled: something for cancel to hit. */
    defineModule({
      name: 'wait',
      run: async (ctx) => {
        const { ms } = (ctx.params ?? {}) as { ms?: unknown };
        await sleep(typeof ms === 'number' ? Math.min(50, Math.max(0, ms)) : 0, undefined, { signal: ctx.signal });
        return ms ?? null;
      },
    }),
  ],
});
const MODULES = [...pipeline.modules.keys()];

let orchestrator: RunningOrchestrator;
let worker: RunningWorker;
let workDir: string;

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'mpd-fuzz-'));
  orchestrator = await startOrchestrator({
    port: 0,
    host: '127.0.0.1',
    joinToken: JOIN_TOKEN,
    adminToken: ADMIN_TOKEN,
    logger: silent,
    rateLimits: { authFailuresPerMinute: 1_000_000, registerPerMinute: 1_000_000, heartbeatPerMinute: 1_000_000 },
  });
  worker = await startWorker({
    port: 0,
    host: '127.0.0.1',
    pipeline,
    token: WORKER_TOKEN,
    logger: silent,
    maxParallelModules: 2,
    workingDirectory: workDir,
    shutdownGraceMs: 200,
    tools: ['node'],
  });
});

afterAll(async () => {
  if (process.env.FUZZ_STATS) {
    const sorted = [...answers].sort(([a], [b]) => a.localeCompare(b));
    console.log(`${requestsSent} requests; answers:\n${sorted.map(([key, count]) => `  ${key}: ${count}`).join('\n')}`);
    console.log(
      `module failures: ${JSON.stringify(Object.fromEntries(moduleFailures))}; credentials issued: ${credentials.size}`,
    );
  }
  await worker?.close(200);
  await orchestrator?.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

type Server = 'orchestrator' | 'worker';
const baseUrl = (server: Server) => (server === 'orchestrator' ? orchestrator.url : worker.url);

// ---------------------------------------------------------------------------------------------
// Routes of the contracts, matched the way express matches them

interface Schema {
  safeParse(value: unknown): { success: boolean; error?: { issues: unknown[] } };
}
interface Route {
  server: Server;
  name: string;
  method: string;
  path: string;
  pattern: RegExp;
  responses: Record<number, Schema>;
}

interface ContractRoute {
  method: string;
  path: string;
  responses: Record<number, unknown>;
}

function routeOf(server: Server, name: string, route: ContractRoute): Route {
  const source = route.path.replace(/\./g, '\\.').replace(/:[A-Za-z]+/g, '([^/]+?)');
  return {
    server,
    name,
    method: route.method,
    path: route.path,
    pattern: new RegExp(`^${source}/?$`, 'i'),
    responses: route.responses as Record<number, Schema>,
  };
}

const openApi = (server: Server): Route => ({
  server,
  name: 'openapi',
  method: 'GET',
  path: '/api/openapi.json',
  pattern: /^\/api\/openapi\.json\/?$/i,
  responses: {},
});

const ROUTES: Route[] = [
  routeOf('orchestrator', 'register', orchestratorContract.workers.register),
  routeOf('orchestrator', 'heartbeat', orchestratorContract.workers.heartbeat),
  routeOf('orchestrator', 'list', orchestratorContract.workers.list),
  routeOf('orchestrator', 'drain', orchestratorContract.workers.drain),
  routeOf('orchestrator', 'unregister', orchestratorContract.workers.unregister),
  routeOf('orchestrator', 'health', orchestratorContract.health.get),
  openApi('orchestrator'),
  routeOf('worker', 'execute', workerContract.execution.execute),
  routeOf('worker', 'cancel', workerContract.execution.cancel),
  routeOf('worker', 'health', workerContract.health.get),
  openApi('worker'),
];

function matchRoute(server: Server, method: string, pathname: string): Route | undefined {
  const wanted = method === 'HEAD' ? 'GET' : method;
  return ROUTES.find((route) => route.server === server && route.method === wanted && route.pattern.test(pathname));
}

// ---------------------------------------------------------------------------------------------
// What the servers hand out while fuzzing (worker credentials), used as tokens later

/** Worker id → the credential the orchestrator issued for it. */
const credentials = new Map<string, string>();
const WORKER_IDS = ['fuzz-w0', 'fuzz-w1', 'fuzz-w2', 'fuzz-w3', 'fuzz-w4'];
const EXECUTION_IDS = ['fuzz-e0', 'fuzz-e1', 'fuzz-e2', 'fuzz-e3', 'fuzz-e4', 'fuzz-e5'];

// ---------------------------------------------------------------------------------------------
// Values

/** JSON text spliced into the body verbatim (numbers JSON.stringify cannot write, deep nesting). */
class Raw {
  constructor(readonly text: string) {}
}
/** Resolved when the request is sent: the credential of the worker the request names. */
class OwnCredential {}
const OWN_CREDENTIAL = new OwnCredential();

/** An object with these own keys (`__proto__` included: it must become a key, not the prototype). */
function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return object;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  !(value instanceof Raw) &&
  !(value instanceof OwnCredential);

/**
 * A deep copy to mutate: generated values can share objects (constants, values fast-check
 * replays while shrinking), and a mutation must change neither them nor itself into a cycle.
 */
function clone(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clone);
  if (isPlainObject(value)) return objectOf(Object.keys(value).map((key) => [key, clone(value[key])]));
  return value;
}

/** JSON text of a generated value (Raw spliced in, `__proto__` kept as a key). */
function toJson(value: unknown, context: RequestContext): string {
  if (value instanceof Raw) return value.text;
  if (value instanceof OwnCredential) return JSON.stringify(context.ownCredential ?? 'mpdw_not-a-credential-0000');
  if (Array.isArray(value)) return `[${value.map((item) => toJson(item, context)).join(',')}]`;
  if (isPlainObject(value)) {
    const parts = Object.keys(value).map((key) => `${JSON.stringify(key)}:${toJson(value[key], context)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A long string made of a short one, cheap to generate and to shrink. */
const hugeString = fc
  .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }), fc.integer({ min: 300, max: 200_000 }))
  .map(([unit, length]) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length));

const TRICKY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\r\n',
  '\t',
  '\u001b[31m',
  '\u202e',
  '\ufeff',
  '\ud800',
  '\udfff',
  '💥',
  'ñ',
  'İ',
  '../../../../etc/passwd',
  '%',
  '%00',
  '%zz',
  '${jndi:ldap://x}',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  'null',
  'undefined',
  'NaN',
  'Infinity',
  '-1',
  '1e309',
  '0x10',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'a'.repeat(256),
  'a'.repeat(257),
  '!',
  '~',
  'a b',
  '\u007f',
];
/** Values the fields mean something to: TimeSpans, timestamps, URLs. */
const FIELD_STRINGS = [
  '00:00:00',
  '00:00:00.0000001',
  '-00:00:01',
  '23:59:59.9999999',
  '24:00:00',
  '99:99:99',
  '24.20:31:23.647',
  '24.20:31:23.648',
  '10675199.02:48:05.4775807',
  '10675200.00:00:00',
  `${'9'.repeat(400)}.00:00:00`,
  '1:2:3',
  '2025-09-30T10:00:00Z',
  '2025-09-30T10:00:00.123456789+14:00',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59Z',
  '2025-02-30T25:61:61Z',
  '+275760-09-13T00:00:00Z',
  'http://127.0.0.1:9',
  'https://[::1]:0/',
  'http://user:pass@host',
  'http://x%00y',
  'HTTP://EXAMPLE.COM',
  'http://127.0.0.1:99999',
  'javascript:alert(1)',
  'file:///etc/passwd',
  `http://${'a'.repeat(2100)}`,
];
const weirdString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY_STRINGS) },
  { weight: 3, arbitrary: fc.constantFrom(...FIELD_STRINGS) },
  { weight: 1, arbitrary: hugeString },
);
const weirdNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    0,
    -1,
    1,
    0.5,
    -0.5,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 53),
    1e308,
    -1e308,
    5e-324,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc
    .constantFrom('1e400', '-1e400', '-0', '1E-400', '123456789012345678901234567890', '1.0', '0.0000001')
    .map((text) => new Raw(text)),
);
const weirdKey: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'then', ''),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
/** Arrays or objects nested up to 20,000 deep. */
const deepNesting = fc
  .tuple(fc.integer({ min: 50, max: 20_000 }), fc.boolean())
  .map(
    ([depth, arrays]) =>
      new Raw(arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
  );

const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: weirdString },
  { weight: 3, arbitrary: weirdNumber },
  { weight: 2, arbitrary: fc.constantFrom(null, true, false, {}, []) },
  { weight: 1, arbitrary: deepNesting },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(weirdString, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.array(fc.tuple(weirdKey, weirdString), { maxLength: 4 }).map(objectOf) },
);

// ---------------------------------------------------------------------------------------------
// Mutations of a valid body

type Mutation =
  | { op: 'delete' | 'wrap' | 'flip'; at: number }
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'add'; at: number; key: string; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constantFrom('delete' as const, 'wrap' as const, 'flip' as const), at: fc.nat() }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: weirdValue }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('add' as const), at: fc.nat(), key: weirdKey, value: weirdValue }),
  },
);

type Path = (string | number)[];

function pathsOf(value: unknown, path: Path = [], out: Path[] = []): Path[] {
  out.push(path);
  if (Array.isArray(value)) value.forEach((item, index) => pathsOf(item, [...path, index], out));
  else if (isPlainObject(value)) for (const key of Object.keys(value)) pathsOf(value[key], [...path, key], out);
  return out;
}

function getAt(root: unknown, path: Path): unknown {
  return path.reduce<unknown>((value, key) => (value as Record<string | number, unknown>)[key], root);
}

/** Returns the new root (a mutation at the root replaces it; `undefined`: no body at all). */
function setAt(root: unknown, path: Path, value: unknown, remove = false): unknown {
  if (path.length === 0) return remove ? undefined : value;
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown> | unknown[];
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    if (remove) parent.splice(key as number, 1);
    else parent[key as number] = value;
  } else if (remove) delete parent[key];
  else Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
  return root;
}

function flip(value: unknown): unknown {
  if (typeof value === 'string') return value === '' ? 0 : Number.isNaN(Number(value)) ? [value] : Number(value);
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 0;
  if (value === null) return 'null';
  if (Array.isArray(value)) return objectOf(value.map((item, index) => [String(index), item]));
  if (isPlainObject(value)) return Object.values(value);
  return null;
}

function mutate(body: unknown, mutations: readonly Mutation[]): unknown {
  let root = clone(body);
  for (const change of mutations) {
    const paths = pathsOf(root);
    const path = paths[change.at % paths.length]!;
    const target = getAt(root, path);
    switch (change.op) {
      case 'delete':
        root = setAt(root, path, undefined, true);
        break;
      case 'replace':
        root = setAt(root, path, clone(change.value));
        break;
      case 'wrap':
        root = setAt(root, path, change.at % 2 === 0 ? [target] : objectOf([['value', target]]));
        break;
      case 'flip':
        root = setAt(root, path, flip(target));
        break;
      case 'add':
        if (isPlainObject(target)) setAt(root, [...path, change.key], clone(change.value));
        else if (Array.isArray(target)) target.push(clone(change.value));
        else root = setAt(root, path, objectOf([[change.key, clone(change.value)]]));
        break;
    }
    if (root === undefined) break;
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// Valid bodies (shaped like the spec's examples; see packages/contract/src/spec-examples.spec.ts)

const identifier = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/);
/** Any valid identifier: printable ASCII without spaces, 1 to 256 characters (`/`, `%`, `?` too). */
const anyIdentifier = fc.oneof(
  fc.string({
    unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)),
    minLength: 1,
    maxLength: 40,
  }),
  fc.integer({ min: 200, max: 256 }).map((length) => 'w'.repeat(length)),
);
const workerId = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...WORKER_IDS) }, identifier, anyIdentifier);
const executionId = fc.oneof(
  fc.constantFrom(...EXECUTION_IDS),
  { weight: 3, arbitrary: fc.uuid() },
  identifier.map((id) => `exec-${id}`),
  anyIdentifier,
);
const timestamp = fc.constantFrom(
  '2025-09-30T10:00:00Z',
  '2025-09-30T10:00:30.5+02:00',
  '1970-01-01T00:00:00.000000001-12:00',
);
/** Names (1-128 characters): short, unicode, the longest. */
const name = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('linux', 'windows', 'macos', 'docker', 'node', 'gpu-enabled') },
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 16 }),
  fc.constant('n'.repeat(128)),
);
/** Valid counts, the largest included: the registry must take them as they are. */
const load = fc.oneof(
  { weight: 4, arbitrary: fc.nat(8) },
  fc.constantFrom(1024, 2 ** 31, Number.MAX_SAFE_INTEGER, 1e300),
);
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
/** Drops the keys whose value is undefined (an absent optional field). */
const defined = (object: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));

const registerBody = fc
  .record({
    id: workerId,
    endpoint: fc.constantFrom(
      'http://127.0.0.1:9',
      'http://worker1:9000',
      'https://w.example.com',
      'http://[::1]:9000/',
      'HTTPS://W.EXAMPLE.COM:443/path?q=1',
      `http://${'a'.repeat(60)}.example.com/${'p'.repeat(1900)}`,
    ),
    os: name,
    installedTools: fc.oneof(
      fc.array(name, { maxLength: 4 }),
      fc.constant(Array.from({ length: 256 }, (_, i) => `tool${i}`)),
    ),
    maxParallelModules: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(1024)),
    tags: fc.array(name, { maxLength: 3 }),
    currentLoad: optional(load),
    status: optional(fc.constantFrom('Available', 'Busy', 'Draining', 'Offline')),
    lastHeartbeat: optional(timestamp),
    pipeline: optional(
      fc.oneof(
        fc.constant(null),
        fc.record({
          name,
          fingerprint: fc.constantFrom('f00d', 'f'.repeat(128)),
          modules: fc.array(name, { maxLength: 3 }),
        }),
      ),
    ),
    timestamp: optional(timestamp),
    credential: optional(fc.constantFrom<unknown>(OWN_CREDENTIAL, 'mpdw_0123456789abcdef-not-issued')),
  })
  .map((r) =>
    defined({
      workerNode: defined({
        id: r.id,
        endpoint: r.endpoint,
        capabilities: {
          os: r.os,
          installedTools: r.installedTools,
          maxParallelModules: r.maxParallelModules,
          tags: r.tags,
        },
        lastHeartbeat: r.lastHeartbeat,
        currentLoad: r.currentLoad,
        status: r.status,
        pipeline: r.pipeline,
      }),
      timestamp: r.timestamp,
      credential: r.credential,
    }),
  );

const heartbeatBody = fc.record({ workerId, currentLoad: load, timestamp: optional(timestamp) }).map((r) => defined(r));

/** JSON text of any value, `__proto__` keys included. */
const jsonText = fc.oneof(
  fc.constantFrom('', '{}', 'null', '{"x":1}', ' 1 ', '"\\u0000"', '{"__proto__":{"polluted":true}}'),
  fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)),
);
/**
 * Timeouts: ones a module that returns at once must not reach, ones it must (zero), and ones
 * past what setTimeout keeps (see the regression test at the end of this file) or past
 * TimeSpan.MaxValue (a 400-digit day count once parsed as Infinity and crashed the worker).
 */
const timeout = fc.constantFrom(
  '00:00:10',
  '01:00:00',
  '00:00:05.5',
  '23:59:59.9999999',
  '24.20:31:23.647',
  '00:00:00',
  '00:00:00.0000001',
  '24.20:31:23.648',
  '10675199.02:48:05.4775807',
  '10675199.02:48:06',
  `${'9'.repeat(400)}.00:00:00`,
);

const executeBody = fc
  .record({
    executionId,
    serializedModule: jsonText,
    moduleTypeName: fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom(...MODULES) },
      fc.constantFrom('missing', 'MyApp.Modules.BuildModule, MyApp'),
    ),
    dependencyResults: optional(
      fc
        .array(fc.tuple(fc.oneof(fc.constantFrom(...MODULES), name, fc.constant('__proto__')), jsonText), {
          maxLength: 3,
        })
        .map(objectOf),
    ),
    environmentVariables: optional(
      fc
        .array(
          fc.tuple(
            fc.oneof(fc.constantFrom('CI', 'PATH', 'NODE_OPTIONS', '__proto__', 'constructor'), name),
            fc.string({ unit: 'binary', maxLength: 20 }),
          ),
          { maxLength: 4 },
        )
        .map(objectOf),
    ),
    secretEnvironmentVariables: optional(fc.constantFrom([], ['CI'], ['NODE_OPTIONS', 'missing'])),
    workingDirectory: optional(fc.constantFrom('fuzz', '/app/workspace', '../../..', '')),
    timeout: optional(timeout),
    timestamp: optional(timestamp),
  })
  .map((r) => defined(r));

const cancelBody = fc
  .record({
    executionId,
    reason: optional(fc.oneof(fc.constantFrom('Timeout exceeded', ''), fc.string({ unit: 'binary', maxLength: 64 }))),
    timestamp: optional(timestamp),
  })
  .map((r) => defined(r));

/** Valid bodies of each route with a body: the spec's example, or generated ones. */
const VALID_BODIES: Record<string, fc.Arbitrary<unknown>> = {
  register: fc.oneof(
    { weight: 1, arbitrary: fc.constant(SPEC_EXAMPLES.register) },
    { weight: 9, arbitrary: registerBody },
  ),
  heartbeat: fc.oneof(
    { weight: 1, arbitrary: fc.constant(SPEC_EXAMPLES.heartbeat) },
    { weight: 9, arbitrary: heartbeatBody },
  ),
  execute: fc.oneof(
    { weight: 1, arbitrary: fc.constant(SPEC_EXAMPLES.execute) },
    { weight: 9, arbitrary: executeBody },
  ),
  cancel: fc.oneof({ weight: 1, arbitrary: fc.constant(SPEC_EXAMPLES.cancel) }, { weight: 9, arbitrary: cancelBody }),
};

/** A body for a route: none, valid, or valid then mutated a few times. */
function bodyFor(route: Route): fc.Arbitrary<unknown> {
  const valid = VALID_BODIES[route.name];
  if (!valid) return fc.oneof(fc.constant(undefined), fc.constantFrom<unknown>({}, []), weirdValue);
  return fc.oneof(
    { weight: 2, arbitrary: valid },
    {
      weight: 3,
      arbitrary: fc
        .tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }))
        .map(([body, changes]) => mutate(body, changes)),
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Requests

type Auth =
  | { kind: 'none' }
  | { kind: 'header'; value: string }
  | { kind: 'token'; token: 'join' | 'admin' | 'worker' | 'own' | 'issued'; index: number; scheme: string }
  /** The token the route takes (the join token to register, the worker's own credential for its heartbeat...). */
  | { kind: 'right' };

type Body = { kind: 'json'; value: unknown } | { kind: 'bytes'; bytes: Uint8Array };

interface RequestSpec {
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

interface RequestContext {
  ownCredential: string | undefined;
}

const METHODS = [
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

const auth: fc.Arbitrary<Auth> = fc.oneof(
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
const contentType: fc.Arbitrary<string | null> = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8') },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: headerText(40) },
);
const contentEncoding: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 40, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-garbage', 'gzip, gzip') },
);

/**
 * Path parameters: pool ids, junk (URL-encoded or raw). At most 1,000 characters before
 * encoding (9 KB after): Node answers a request line and headers over 16 KB with a bare 431
 * before express sees it.
 */
const pathParam: fc.Arbitrary<string> = fc.oneof(
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
function encodePathPart(text: string): string {
  return encodeURIComponent(Buffer.from(text).toString());
}

function pathOf(route: Route, param: string): string {
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
const strayRequest: fc.Arbitrary<RequestSpec> = fc
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
const strayPath: fc.Arbitrary<RequestSpec> = fc
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

/** Gives a request a short description for fast-check's counterexample report (bodies can be 200 KB). */
function spec(request: RequestSpec): RequestSpec {
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

const truncate = (text: string, max = 300) =>
  text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;

/** The credential of the worker a request names (body `workerId`, `workerNode.id`, or the path). */
function ownCredentialOf(request: RequestSpec): string | undefined {
  const body = request.body?.kind === 'json' && isPlainObject(request.body.value) ? request.body.value : undefined;
  const named =
    (typeof body?.workerId === 'string' && body.workerId) ||
    (isPlainObject(body?.workerNode) && typeof body.workerNode.id === 'string' && body.workerNode.id) ||
    /^\/api\/workers\/([^/?]+)/.exec(request.path)?.[1];
  return named ? credentials.get(named) : undefined;
}

function authorization(request: RequestSpec, own: string | undefined): string | undefined {
  const { auth: choice } = request;
  if (choice.kind === 'none') return undefined;
  if (choice.kind === 'header') return choice.value;
  if (choice.kind === 'right') {
    const route = routeHit(request)?.name;
    if (request.server === 'worker') return `Bearer ${WORKER_TOKEN}`;
    if (route === 'register') return `Bearer ${JOIN_TOKEN}`;
    if ((route === 'heartbeat' || route === 'drain' || route === 'unregister') && own) return `Bearer ${own}`;
    return `Bearer ${ADMIN_TOKEN}`;
  }
  const issued = [...credentials.values()];
  const token = {
    join: JOIN_TOKEN,
    admin: ADMIN_TOKEN,
    worker: WORKER_TOKEN,
    own: own ?? issued[choice.index % Math.max(1, issued.length)] ?? 'mpdw_none-issued-yet',
    issued: issued[choice.index % Math.max(1, issued.length)] ?? 'mpdw_none-issued-yet',
  }[choice.token];
  return `${choice.scheme}${token}`;
}

/** The body to send, its working directory moved into the test's temporary directory (whatever the fuzzer put there). */
function confined(request: RequestSpec): unknown {
  if (request.body?.kind !== 'json') return undefined;
  const body = request.body.value;
  if (request.server !== 'worker' || !isPlainObject(body)) return body;
  const dir = body.workingDirectory;
  if (typeof dir !== 'string' || dir.length > 4096) return body;
  const safe = join(workDir, createHash('sha256').update(dir).digest('hex').slice(0, 8));
  return objectOf(Object.keys(body).map((key) => [key, key === 'workingDirectory' ? safe : body[key]]));
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function send(request: RequestSpec): Promise<Answer> {
  if (request.delayMs) await sleep(request.delayMs);
  const own = ownCredentialOf(request);
  const headers: Record<string, string> = {};
  const token = authorization(request, own);
  if (token !== undefined) headers.authorization = token;
  if (request.contentType !== null) headers['content-type'] = request.contentType;
  if (request.contentEncoding !== undefined) headers['content-encoding'] = request.contentEncoding;
  const bodyless = request.method === 'GET' || request.method === 'HEAD';
  let body: Uint8Array | undefined;
  if (!bodyless && request.body) {
    body =
      request.body.kind === 'bytes'
        ? request.body.bytes
        : Buffer.from(toJson(confined(request), { ownCredential: own }));
  }
  const response = await fetch(`${baseUrl(request.server)}${request.path}`, {
    method: request.method,
    headers,
    ...(body ? { body } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

// ---------------------------------------------------------------------------------------------
// What every answer must be

/** Execute answers that were module failures (kind → count), for the report. */
const moduleFailures = new Map<string, number>();
/** `server route status` → count, for the report (`FUZZ_STATS=1`). */
const answers = new Map<string, number>();
let requestsSent = 0;
/** Execution ids sent so far: a repeated one joins the earlier execution. */
const executionIdsSent = new Set<string>();
/** The longest delay setTimeout keeps (longer ones fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The worker's default timeout for a module whose request sets none (30 minutes). */
const DEFAULT_TIMEOUT_MS = 30 * 60_000;

/** The route express runs for a request, if any. */
function routeHit(request: RequestSpec): Route | undefined {
  return matchRoute(request.server, request.method, new URL(`http://x${request.path}`).pathname);
}

function executionIdOf(request: RequestSpec): string | undefined {
  const body = request.body?.kind === 'json' ? request.body.value : undefined;
  return isPlainObject(body) && typeof body.executionId === 'string' ? body.executionId : undefined;
}

/** The timeout an execute request asks for (the default when it names none), in ms. */
function requestedTimeoutMs(request: RequestSpec): number | undefined {
  const body = request.body?.kind === 'json' ? request.body.value : undefined;
  if (!isPlainObject(body)) return undefined;
  return typeof body.timeout === 'string' ? parseTimeSpan(body.timeout) : DEFAULT_TIMEOUT_MS;
}

/** The problem with an answer, or undefined when it keeps the contract. */
function problemWith(request: RequestSpec, answer: Answer, firstRun: boolean): string | undefined {
  const route = routeHit(request);
  const { status, headers, text } = answer;
  const key = `${request.server} ${route?.name ?? '(none)'} ${status}`;
  answers.set(key, (answers.get(key) ?? 0) + 1);
  if (status === 401 && !headers.get('www-authenticate')) return '401 without WWW-Authenticate';
  if (status === 429 && !headers.get('retry-after')) return '429 without Retry-After';
  if (request.method === 'HEAD' || status === 204 || status === 304) return undefined;
  const type = headers.get('content-type') ?? '';
  if (!/^application\/json\b/i.test(type))
    return `${status} answered ${JSON.stringify(type)}, not JSON: ${truncate(text)}`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `${status} answered text that is not JSON: ${truncate(text)}`;
  }
  if (status >= 500) {
    if (route?.name !== 'execute' || status !== 500)
      return `${status} from ${route?.name ?? 'no route'}: ${truncate(text)}`;
    const failure = executeModuleFailureSchema.safeParse(body);
    if (!failure.success) return `execute 500 that is not a module failure: ${truncate(text)}`;
    const kind = failure.data.failureKind ?? 'Error';
    moduleFailures.set(kind, (moduleFailures.get(kind) ?? 0) + 1);
    // The modules never throw: only a timeout (the request's own) or a cancellation may fail them.
    if (kind === 'Error') return `execute failed a module that cannot throw: ${truncate(text)}`;
    // A module that returns at once cannot reach a timeout of a minute or more (an execution
    // id sent before may join an earlier execution that had a shorter one).
    if (kind === 'TimedOut' && firstRun) {
      const timeoutMs = requestedTimeoutMs(request);
      if (timeoutMs !== undefined && timeoutMs >= 60_000 && timeoutMs <= MAX_TIMER_MS) {
        return `execute timed out a module that returns at once, with a timeout of ${timeoutMs} ms: ${truncate(text)}`;
      }
    }
    return undefined;
  }
  if (route?.name === 'openapi' && status === 200) {
    const document = body as { openapi?: unknown; paths?: unknown };
    return typeof document.openapi === 'string' && isPlainObject(document.paths)
      ? undefined
      : 'openapi.json is not an OpenAPI document';
  }
  const schema = route?.responses[status];
  if (schema?.safeParse(body).success) return undefined;
  if (status >= 400 && errorBodySchema.safeParse(body).success) return undefined;
  return `${status} from ${route?.name ?? 'no route'} does not parse with the contract's schema for it: ${truncate(text)}`;
}

/** Sends the requests at once; fails on an answer that breaks the contract (or no answer). */
async function sendAll(requests: readonly RequestSpec[]): Promise<void> {
  const problems = await Promise.all(
    requests.map(async (request) => {
      requestsSent++;
      const executionId = routeHit(request)?.name === 'execute' ? executionIdOf(request) : undefined;
      const firstRun = executionId !== undefined && !executionIdsSent.has(executionId);
      if (executionId !== undefined) executionIdsSent.add(executionId);
      let answer: Answer;
      try {
        answer = await send(request);
      } catch (error) {
        return `no answer (${String((error as Error).cause ?? error)})`;
      }
      if (request.server === 'orchestrator' && answer.status === 200 && routeHit(request)?.name === 'register') {
        const registered = JSON.parse(answer.text) as { workerId: string; credential?: string };
        if (registered.credential) credentials.set(registered.workerId, registered.credential);
      }
      return problemWith(request, answer, firstRun);
    }),
  );
  problems.forEach((problem, index) => {
    if (problem) throw new Error(`${fc.stringify(requests[index])}\n→ ${problem}`);
  });
}

const batch = (request: fc.Arbitrary<RequestSpec>) => fc.array(request, { minLength: 1, maxLength: 3 });
const routeNamed = (server: Server, name: string) =>
  ROUTES.find((route) => route.server === server && route.name === name)!;
/** Requests to a server's routes, the ones with bodies weighted up. */
const requestsTo = (server: Server, weights: Record<string, number>) =>
  fc.oneof(
    ...Object.entries(weights).map(([name, weight]) => ({ weight, arbitrary: routeRequest(routeNamed(server, name)) })),
  );

/**
 * Modules that wait, and a cancel of the first a little later (all valid, with the right
 * tokens): the cancel finds it running, and a third one finds both slots taken (429).
 */
const executeThenCancel: fc.Arbitrary<RequestSpec[]> = fc
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
        request('/api/execution/execute', {
          executionId: id,
          serializedModule: JSON.stringify({ ms }),
          moduleTypeName: 'wait',
        }),
      ),
      request('/api/execution/cancel', defined({ executionId: ids[0], reason }), delayMs),
    ];
  });

async function healthy(server: Server): Promise<void> {
  const response = await fetch(`${baseUrl(server)}/api/health`);
  expect(response.status).toBe(200);
  const body = (await response.json()) as { status: string };
  expect(body.status).toBe('healthy');
}

// ---------------------------------------------------------------------------------------------

describe('fuzzing every route', () => {
  it(
    'orchestrator: valid and mutated bodies on every route, with every kind of token',
    { timeout: 120_000 },
    async () => {
      const requests = requestsTo('orchestrator', {
        register: 3,
        heartbeat: 3,
        drain: 2,
        unregister: 1,
        list: 1,
        health: 1,
        openapi: 1,
      });
      await fc.assert(fc.asyncProperty(batch(requests), sendAll), runs(500));
    },
  );

  it('worker: valid and mutated bodies on every route, with every kind of token', { timeout: 120_000 }, async () => {
    const requests = requestsTo('worker', { execute: 4, cancel: 2, health: 1, openapi: 1 });
    const batches = fc.oneof({ weight: 6, arbitrary: batch(requests) }, executeThenCancel);
    await fc.assert(fc.asyncProperty(batches, sendAll), runs(500));
  });

  it(
    'both: arbitrary JSON and bytes that are not JSON, any content type, on every route',
    { timeout: 120_000 },
    async () => {
      await fc.assert(fc.asyncProperty(batch(strayRequest), sendAll), runs(300));
    },
  );

  it('both: random methods on paths no route has', { timeout: 120_000 }, async () => {
    await fc.assert(fc.asyncProperty(batch(strayPath), sendAll), runs(200));
  });

  it('both servers still answer GET /api/health, and the worker freed every slot', async () => {
    await healthy('orchestrator');
    await healthy('worker');
    await eventually(() => worker.load === 0, 5_000, 'the worker to be idle');
    // The fuzzer did reach past validation: workers registered, modules ran.
    expect(credentials.size).toBeGreaterThan(0);
    expect(requestsSent).toBeGreaterThan(1_000 * Math.min(1, FACTOR));
  });
});

describe('regressions of bugs the fuzzer found in the worker executor (fixed)', () => {
  // module-executor.ts handed the request's timeout to setTimeout as it was; Node fires a delay
  // above 2^31-1 ms (24.20:31:23.647) after 1 ms instead (TimeoutOverflowWarning), so such a
  // module failed at once with "timed out after 30.00:00:00". Fixed: the executor now re-arms
  // its timer in steps of at most 2^31-1 ms (unit test: packages/worker/src/executor/long-timeout.spec.ts).
  it('a module whose timeout is longer than 24.8 days does not time out at once', async () => {
    const response = await fetch(`${worker.url}/api/execution/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        executionId: `overflow-${Date.now()}`,
        serializedModule: '{"ms":30}',
        moduleTypeName: 'wait',
        timeout: '30.00:00:00',
      }),
    });
    expect(await response.json()).toMatchObject({ success: true });
  });
});

describe('rate limit of failed authentications (defaults)', () => {
  it('answers 429 with Retry-After once a flood of bad tokens passes 100 a minute; never 5xx', async () => {
    const limited = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      joinToken: JOIN_TOKEN,
      adminToken: ADMIN_TOKEN,
      logger: silent,
    });
    try {
      const statuses: number[] = [];
      const register = {
        workerNode: {
          id: 'fuzz-w0',
          endpoint: 'http://127.0.0.1:9',
          capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
        },
      };
      const calls: [string, string, unknown][] = [
        ['GET', '/api/workers', undefined],
        ['DELETE', '/api/workers/fuzz-w0', undefined],
        ['POST', '/api/workers/fuzz-w0/drain', undefined],
        ['POST', '/api/workers/heartbeat', { workerId: 'fuzz-w0', currentLoad: 0 }],
        ['POST', '/api/workers/register', register],
      ];
      for (let i = 0; i < 130; i++) {
        const [method, path, body] = calls[i % calls.length]!;
        const response = await fetch(`${limited.url}${path}`, {
          method,
          headers: { authorization: `Bearer wrong-token-${i}`, 'content-type': 'application/json' },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        statuses.push(response.status);
        const answer = (await response.json()) as unknown;
        expect(errorBodySchema.safeParse(answer).success).toBe(true);
        if (response.status === 429) {
          expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
          expect(answer).toMatchObject({ code: 'RateLimited' });
        }
      }
      expect(statuses.every((status) => status < 500)).toBe(true);
      expect(statuses.slice(0, 100).every((status) => status === 401)).toBe(true);
      expect(statuses.slice(100).every((status) => status === 429)).toBe(true);
      // Once limited, even the right token waits; health is never limited.
      const admin = await fetch(`${limited.url}/api/workers`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      expect(admin.status).toBe(429);
      expect(admin.headers.get('retry-after')).toMatch(/^\d+$/);
      expect((await fetch(`${limited.url}/api/health`)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
