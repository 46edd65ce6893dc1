/**
 * Valid bodies of the routes that take one (shaped like the spec's examples; see
 * packages/contract/src/spec-examples.spec.ts), and the body the fuzzer sends to a route:
 * none, valid, or valid then mutated.
 */
import { SPEC_EXAMPLES } from '@mpd/test-kit';
import fc from 'fast-check';
import { mutate, mutation } from './mutations.js';
import type { Route } from './routes.js';
import { EXECUTION_IDS, MODULES, WORKER_IDS } from './servers.js';
import { objectOf, OWN_CREDENTIAL, weirdValue } from './values.js';

export const identifier = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/);
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
export const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
/** Drops the keys whose value is undefined (an absent optional field). */
export const defined = (object: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));

export const registerBody = fc
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

export const heartbeatBody = fc
  .record({ workerId, currentLoad: load, timestamp: optional(timestamp) })
  .map((r) => defined(r));

/** JSON text of any value, `__proto__` keys included. */
const jsonText = fc.oneof(
  fc.constantFrom('', '{}', 'null', '{"x":1}', ' 1 ', '"\\u0000"', '{"__proto__":{"polluted":true}}'),
  fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)),
);
/**
 * Timeouts: ones a module that returns at once must not reach, ones it must (zero), and ones
 * past what setTimeout keeps (see the regression test in in-process/worker-executor.spec.ts) or past
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

export const executeBody = fc
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

export const cancelBody = fc
  .record({
    executionId,
    reason: optional(fc.oneof(fc.constantFrom('Timeout exceeded', ''), fc.string({ unit: 'binary', maxLength: 64 }))),
    timestamp: optional(timestamp),
  })
  .map((r) => defined(r));

/** The spec's example one time in ten, else a generated body. */
const exampleOr = (example: unknown, generated: fc.Arbitrary<unknown>) =>
  fc.oneof({ weight: 1, arbitrary: fc.constant(example) }, { weight: 9, arbitrary: generated });

/** Valid bodies of each route with a body: the spec's example, or generated ones. */
const VALID_BODIES: Record<string, fc.Arbitrary<unknown>> = {
  'workers.register': exampleOr(SPEC_EXAMPLES.register, registerBody),
  'workers.heartbeat': exampleOr(SPEC_EXAMPLES.heartbeat, heartbeatBody),
  'execution.execute': exampleOr(SPEC_EXAMPLES.execute, executeBody),
  'execution.cancel': exampleOr(SPEC_EXAMPLES.cancel, cancelBody),
};

/** A body for a route: none, valid, or valid then mutated a few times. */
export function bodyFor(route: Route): fc.Arbitrary<unknown> {
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
