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
 * and both servers must still answer `GET /api/health` at the end. Oversized bodies without a
 * valid token (`oversized.ts`) must get a small 401 at once, their bodies never parsed.
 *
 * This file holds the properties; beside it: the servers and the {@link FuzzTarget}
 * (`servers.ts`), the routes read from the contracts (`routes.ts`), the generators (`values.ts`,
 * `mutations.ts`, `bodies.ts`, `requests.ts`, `stray-requests.ts`) and what every answer must be
 * (`oracle.ts`).
 *
 * Reproduce a failure with the seed fast-check prints: `FUZZ_SEED=<seed> pnpm --filter @mpd/integration-tests exec vitest run fuzz/http-fuzz.spec.ts`.
 * `FUZZ_RUNS=<factor>` scales the number of runs (default 1: about 3,000 requests);
 * `FUZZ_STATS=1` prints how many answers each route gave with each status.
 */
import { errorBodySchema } from '@mpd/contract';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FuzzStats, newStats, sendAll } from './oracle.js';
import { type OversizedRequest, oversizedUnauthenticated } from './oversized.js';
import { batch, executeThenCancel, type RequestSpec, requestsTo } from './requests.js';
import { type FuzzServers, type FuzzTarget, type Server, startFuzzServers } from './servers.js';
import { strayPath, strayRequest } from './stray-requests.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const FACTOR = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : 1;
if (SEED !== undefined && !Number.isInteger(SEED)) throw new Error(`FUZZ_SEED must be an integer, got ${SEED}`);
if (!(FACTOR > 0)) throw new Error(`FUZZ_RUNS must be a number above 0, got ${FACTOR}`);
const runs = (n: number) => ({
  numRuns: Math.max(1, Math.round(n * FACTOR)),
  ...(SEED !== undefined ? { seed: SEED } : {}),
});

let servers: FuzzServers;
let target: FuzzTarget;
const stats: FuzzStats = newStats();
const send = (requests: readonly RequestSpec[]) => sendAll(target, stats, requests);

beforeAll(async () => {
  servers = await startFuzzServers();
  target = servers.target;
});

afterAll(async () => {
  if (process.env.FUZZ_STATS) {
    const sorted = [...stats.answers].sort(([a], [b]) => a.localeCompare(b));
    console.log(
      `${stats.requestsSent} requests; answers:\n${sorted.map(([key, count]) => `  ${key}: ${count}`).join('\n')}`,
    );
    console.log(
      `module failures: ${JSON.stringify(Object.fromEntries(stats.moduleFailures))}; credentials issued: ${target?.credentials.size}`,
    );
  }
  await servers?.close();
});

/** Sends an {@link OversizedRequest}: it must get a 401 with `WWW-Authenticate`, under 1 KB, within 2 s. */
async function sendOversized(request: OversizedRequest): Promise<void> {
  stats.requestsSent++;
  const response = await fetch(`${target.urls[request.server]}${request.path}`, {
    method: request.method,
    headers: {
      'content-type': request.contentType,
      ...(request.authorization !== undefined ? { authorization: request.authorization } : {}),
    },
    body: request.body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  const what = `${request.method} ${request.path} (${request.body.length} bytes, ${request.authorization ?? 'no token'})`;
  expect(response.status, what).toBe(401);
  expect(response.headers.get('www-authenticate'), what).toBe('Bearer realm="mpd"');
  expect(errorBodySchema.safeParse(JSON.parse(text)).success, what).toBe(true);
  expect(Buffer.byteLength(text), what).toBeLessThan(1_024);
  // No wall-clock bound: one of 2 s failed at load 30 (2.27 s for a 10 MB body sent over
  // loopback). That the body is never read or parsed is shown by bytes on the wire in
  // attacks/attacks-auth.spec.ts (the 401 arrives before the body is sent); here, every route
  // answers the small 401 and the servers stay healthy after (the next test).
}

async function healthy(server: Server): Promise<void> {
  const response = await fetch(`${target.urls[server]}/api/health`);
  expect(response.status).toBe(200);
  const body = (await response.json()) as { status: string };
  expect(body.status).toBe('healthy');
}

describe('fuzzing every route', () => {
  it(
    'orchestrator: valid and mutated bodies on every route, with every kind of token',
    { timeout: 120_000 },
    async () => {
      const requests = requestsTo('orchestrator', {
        'workers.register': 3,
        'workers.heartbeat': 3,
        'workers.drain': 2,
        'workers.unregister': 1,
        'workers.list': 1,
        'health.get': 1,
        openapi: 1,
      });
      await fc.assert(fc.asyncProperty(batch(requests), send), runs(500));
    },
  );

  it('worker: valid and mutated bodies on every route, with every kind of token', { timeout: 120_000 }, async () => {
    const requests = requestsTo('worker', {
      'execution.execute': 4,
      'execution.cancel': 2,
      'health.get': 1,
      openapi: 1,
    });
    const batches = fc.oneof({ weight: 6, arbitrary: batch(requests) }, executeThenCancel);
    await fc.assert(fc.asyncProperty(batches, send), runs(500));
  });

  it(
    'both: arbitrary JSON and bytes that are not JSON, any content type, on every route',
    { timeout: 120_000 },
    async () => {
      await fc.assert(fc.asyncProperty(batch(strayRequest), send), runs(300));
    },
  );

  it('both: random methods on paths no route has', { timeout: 120_000 }, async () => {
    await fc.assert(fc.asyncProperty(batch(strayPath), send), runs(200));
  });

  // Issue 11, case 1: bodies were parsed and validated before the token was checked (a 12 MB
  // execute without a token: 15.8 s and a 154 MB answer).
  it(
    'both: oversized bodies without a valid token, on every route that takes one: a small 401 at once',
    { timeout: 120_000 },
    async () => {
      await fc.assert(fc.asyncProperty(oversizedUnauthenticated, sendOversized), runs(40));
    },
  );

  it('both servers still answer GET /api/health, and the worker freed every slot', async () => {
    await healthy('orchestrator');
    await healthy('worker');
    await expect
      .poll(() => servers.worker.load, { timeout: 5_000, interval: 20, message: 'the worker to be idle' })
      .toBe(0);
    // The fuzzer did reach past validation: workers registered, modules ran.
    expect(target.credentials.size).toBeGreaterThan(0);
    expect(stats.requestsSent).toBeGreaterThan(1_000 * Math.min(1, FACTOR));
  });
});
