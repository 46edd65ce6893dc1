import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorkerClient, type WorkerClient } from '@mpd/client';
import { executeModuleFailureSchema, parseTimeSpan } from '@mpd/contract';
import { defineModule, definePipeline } from '@mpd/pipeline';
import {
  MALFORMED_CONTENT_LENGTH_ANSWER,
  malformedContentLength,
  rawHttpExchange,
  startFaultProxy,
} from '@mpd/test-kit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkerConfigError, WorkerError } from './errors.js';
import { startWorker, type RunningWorker } from './server.js';

let runs = 0;
const restore = defineModule({ name: 'restore', run: () => ({ packages: 3 }) });
const build = defineModule({
  name: 'build',
  dependsOn: [restore],
  params: { configuration: 'Debug' },
  run: (ctx) => ({
    packages: ctx.results.restore.packages,
    configuration: ctx.params.configuration,
    buildNumber: ctx.env.BUILD_NUMBER ?? null,
    workingDirectory: ctx.workingDirectory,
    workerId: ctx.workerId,
  }),
});
const counted = defineModule({
  name: 'counted',
  run: async (ctx) => {
    runs++;
    await sleep(300, undefined, { signal: ctx.signal });
    return runs;
  },
});
const wait = defineModule({
  name: 'wait',
  params: { ms: 10_000 },
  run: async (ctx) => {
    await sleep(ctx.params.ms, undefined, { signal: ctx.signal });
    return 'waited';
  },
});
let stubbornFinished = false;
const stubborn = defineModule({
  name: 'stubborn',
  run: async () => {
    await sleep(700); // ignores its signal
    stubbornFinished = true;
    return 'late';
  },
});
class ImageBuildError extends Error {
  override name = 'ImageBuildError';
}
const fails = defineModule({
  name: 'fails',
  run: () => {
    throw new ImageBuildError('docker build exited with code 1');
  },
});
const pipeline = definePipeline({ name: 'worker-spec', modules: [restore, build, counted, wait, stubborn, fails] });

let worker: RunningWorker;
let client: WorkerClient;

const request = (executionId: string, moduleTypeName: string, extra: Record<string, unknown> = {}) => ({
  executionId,
  moduleTypeName,
  serializedModule: '',
  dependencyResults: {},
  environmentVariables: {},
  ...extra,
});

const post = (path: string, body: string, contentType = 'application/json') =>
  fetch(`${worker.url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });

beforeAll(async () => {
  worker = await startWorker({
    port: 0,
    host: '127.0.0.1',
    id: 'worker-spec-1',
    pipeline,
    slots: 2,
    validateResponses: true,
    logger: pino({ level: 'silent' }),
    shutdownGraceMs: 100,
    // No orchestrator and no token: the tests call execute directly.
    open: true,
  });
  client = createWorkerClient({ baseUrl: worker.url, validateResponse: true });
});
afterAll(async () => {
  await client.close();
  await worker.close();
});

describe('worker API', () => {
  it('GET /api/health reports load and capacity', async () => {
    const response = await client.health.get();
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ status: 'healthy', currentLoad: 0, maxLoad: 2 });
  });

  it('executes a module with its dependency results, parameters and environment', async () => {
    const response = await client.execution.execute({
      body: request('exec-build-1', 'build', {
        serializedModule: JSON.stringify({ configuration: 'Release' }),
        dependencyResults: { restore: JSON.stringify({ packages: 7 }) },
        environmentVariables: { BUILD_NUMBER: '42' },
        workingDirectory: '/tmp/mpd-worker-spec',
        timeout: '00:01:00',
        timestamp: new Date().toISOString(),
      }),
    });
    expect(response.status).toBe(200);
    if (response.status !== 200) return;
    expect(response.body).toMatchObject({ executionId: 'exec-build-1', success: true, workerId: 'worker-spec-1' });
    expect(JSON.parse(response.body.serializedResult)).toEqual({
      packages: 7,
      configuration: 'Release',
      buildNumber: '42',
      workingDirectory: '/tmp/mpd-worker-spec',
      workerId: 'worker-spec-1',
    });
    expect(parseTimeSpan(response.body.duration)).toBeGreaterThanOrEqual(0);
    expect(Date.parse(response.body.endTime)).toBeGreaterThanOrEqual(Date.parse(response.body.startTime));
  });

  it('answers 500 with the failure: message, type, stack, times and worker', async () => {
    const response = await client.execution.execute({ body: request('exec-fails-1', 'fails') });
    expect(response.status).toBe(500);
    const body = executeModuleFailureSchema.parse(response.body);
    expect(body).toMatchObject({
      executionId: 'exec-fails-1',
      success: false,
      errorMessage: 'docker build exited with code 1',
      exceptionType: 'ImageBuildError',
      failureKind: 'Error',
      workerId: 'worker-spec-1',
    });
    expect(body.stackTrace).toContain('ImageBuildError: docker build exited with code 1');
    expect(parseTimeSpan(body.duration)).toBeGreaterThanOrEqual(0);
  });

  it("enforces the request's timeout through the module's signal", async () => {
    const started = Date.now();
    const response = await client.execution.execute({
      body: request('exec-timeout-1', 'wait', { timeout: '00:00:00.2' }),
    });
    expect(response.status).toBe(500);
    expect(response.body).toMatchObject({
      success: false,
      failureKind: 'TimedOut',
      exceptionType: 'ModuleTimeoutError',
    });
    expect((response.body as { errorMessage: string }).errorMessage).toMatch(/timed out after 00:00:00.2/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('answers at the timeout even when the module ignores its signal, keeping the slot until it stops', async () => {
    stubbornFinished = false;
    const response = await client.execution.execute({
      body: request('exec-stubborn-1', 'stubborn', { timeout: '00:00:00.1' }),
    });
    expect(response.body).toMatchObject({ success: false, failureKind: 'TimedOut' });
    expect(stubbornFinished).toBe(false);
    expect((await client.health.get()).body).toMatchObject({ currentLoad: 1 });
    await sleep(900);
    expect(stubbornFinished).toBe(true);
    expect((await client.health.get()).body).toMatchObject({ currentLoad: 0 });
  });

  it('cancel aborts the module; its execute call answers success: false', async () => {
    const execution = client.execution.execute({ body: request('exec-cancel-1', 'wait') });
    await sleep(100);
    const cancel = await client.execution.cancel({
      body: { executionId: 'exec-cancel-1', reason: 'Timeout exceeded' },
    });
    expect(cancel).toMatchObject({ status: 200, body: { success: true } });
    const response = await execution;
    expect(response.status).toBe(500);
    expect(response.body).toMatchObject({
      success: false,
      failureKind: 'Cancelled',
      errorMessage: 'Execution cancelled: Timeout exceeded',
    });
  });

  it('cancel of an unknown execution answers 404 as the spec shows', async () => {
    const response = await client.execution.cancel({ body: { executionId: 'exec-nope' } });
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ success: false, errorMessage: 'Execution not found' });
    expect(response.body).not.toHaveProperty('finished'); // never here: nothing to collect
  });

  // Round R (R1): the orchestrator took every cancel's 404 as "it runs nowhere" and ran the module
  // again elsewhere, while the success of an execution that had finished here stayed uncollected.
  it('cancel of an execution that finished here answers 404 with finished: true; its kept outcome is still the answer to the same request, never a second run', async () => {
    runs = 0;
    const first = await client.execution.execute({ body: request('exec-done-1', 'counted') });
    expect(first).toMatchObject({ status: 200, body: { success: true, serializedResult: '1' } });
    const cancel = await client.execution.cancel({ body: { executionId: 'exec-done-1', reason: 'attempt lost' } });
    expect(cancel.status).toBe(404);
    // The spec's 404 body, exactly (its errorMessage too), with `finished` added (review S, 2).
    expect(cancel.body).toMatchObject({
      success: false,
      code: 'ExecutionNotFound',
      errorMessage: 'Execution not found',
      finished: true,
    });
    // How much longer it is kept: counted from its finish, within the retention (review S, 3).
    const { keptForMs } = cancel.body as { keptForMs?: number };
    expect(keptForMs).toBeGreaterThan(0);
    expect(keptForMs).toBeLessThanOrEqual(600_000); // the default completedRetentionMs
    const again = await client.execution.execute({ body: request('exec-done-1', 'counted') });
    expect(again).toMatchObject({ status: 200, body: { success: true, serializedResult: '1' } });
    expect(runs).toBe(1);
  });

  // Round L (L3): the orchestrator takes a cancel's 404 as "it does not run there", and may start the
  // module elsewhere; an execute still on the way (held by a proxy or a slow network, or by the
  // worker's own hold while it registers again) must not start after that answer.
  it('an execute arriving after its cancel was answered 404 is not started: it answers Cancelled', async () => {
    const proxy = await startFaultProxy(); // no target yet: the execute waits in the proxy
    const late = createWorkerClient({ baseUrl: proxy.url, validateResponse: true });
    try {
      runs = 0;
      const execution = late.execution.execute({ body: request('exec-tomb-1', 'counted') });
      await expect.poll(() => proxy.stats.accepted).toBe(1);
      const cancel = await client.execution.cancel({
        body: { executionId: 'exec-tomb-1', reason: 'superseded by exec-tomb-2' },
      });
      expect(cancel).toMatchObject({ status: 404, body: { success: false, errorMessage: 'Execution not found' } });
      proxy.setTarget({ port: Number(new URL(worker.url).port) }); // now the execute arrives
      const response = await execution;
      expect(response.status).toBe(500);
      expect(response.body).toMatchObject({
        executionId: 'exec-tomb-1',
        success: false,
        failureKind: 'Cancelled',
        errorMessage: expect.stringContaining('superseded by exec-tomb-2'),
      });
      expect(runs).toBe(0);
      // Sent again, it gets the same answer: the module never starts under that executionId.
      const again = await client.execution.execute({ body: request('exec-tomb-1', 'counted') });
      expect(again).toMatchObject({ status: 500, body: { failureKind: 'Cancelled' } });
      expect(runs).toBe(0);
    } finally {
      await late.close();
      await proxy.close();
    }
  });

  it('runs at most its slots at once; beyond that 429 with Retry-After', async () => {
    // Both slots taken (seen from the health answer, not guessed from a sleep: 400 ms modules and
    // a 100 ms sleep let the third in beside another copy of the suite), for 3 s from then on.
    const first = client.execution.execute({
      body: request('exec-cap-1', 'wait', { serializedModule: '{"ms":3000}' }),
    });
    const second = client.execution.execute({
      body: request('exec-cap-2', 'wait', { serializedModule: '{"ms":3000}' }),
    });
    await expect
      .poll(async () => ((await client.health.get()).body as { currentLoad: number }).currentLoad, { interval: 20 })
      .toBe(2);
    const third = await post('/api/execution/execute', JSON.stringify(request('exec-cap-3', 'wait')));
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('1');
    expect(await third.json()).toMatchObject({ success: false, code: 'WorkerAtCapacity' });
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });

  it('runs a module once when the same executionId arrives twice', async () => {
    runs = 0;
    const [one, two] = await Promise.all([
      client.execution.execute({ body: request('exec-dup-1', 'counted') }),
      sleep(50).then(() => client.execution.execute({ body: request('exec-dup-1', 'counted') })),
    ]);
    const again = await client.execution.execute({ body: request('exec-dup-1', 'counted') });
    expect(runs).toBe(1);
    expect(one).toMatchObject({ status: 200, body: { serializedResult: '1' } });
    expect(two.body).toEqual(one.body);
    expect(again.body).toEqual(one.body);
  });

  // Issue 11, case 6: a token holder pre-ran `<runId>.c.1` as module `a`, and the run took a's result as c's.
  it('refuses (409 ExecutionIdConflict) a known executionId with another module or inputs; the same request joins', async () => {
    const first = request('exec-swap-1', 'restore', { timestamp: '2025-09-30T10:00:00Z', timeout: '00:10:00' });
    const ran = await client.execution.execute({ body: first });
    expect(ran).toMatchObject({ status: 200, body: { serializedResult: '{"packages":3}' } });
    for (const swapped of [
      request('exec-swap-1', 'build', { dependencyResults: { restore: '{"packages":1}' } }),
      { ...first, serializedModule: '{"configuration":"Release"}' },
      { ...first, environmentVariables: { BUILD_NUMBER: '43' } },
      { ...first, timeout: '00:00:01' },
    ]) {
      const response = await post('/api/execution/execute', JSON.stringify(swapped));
      expect(response.status).toBe(409);
      const body = (await response.json()) as { code: string; errorMessage: string };
      expect(body).toMatchObject({ success: false, code: 'ExecutionIdConflict' });
      expect(JSON.stringify(body)).not.toContain('packages');
    }
    // The orchestrator's re-send (same request, a later timestamp, the timeout spelt otherwise)
    // still gets the kept outcome.
    const resent = await client.execution.execute({
      body: { ...first, timestamp: '2025-09-30T10:01:00Z', timeout: '0:10:00' },
    });
    expect(resent.body).toEqual(ran.body);
  });

  it('answers 404 for a module the pipeline does not have', async () => {
    const response = await client.execution.execute({
      body: request('exec-unknown-1', 'MyApp.Modules.BuildModule, MyApp'),
    });
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ code: 'ModuleNotFound' });
    expect((response.body as { errorMessage: string }).errorMessage).toMatch(/not in pipeline 'worker-spec'/);
  });

  it.each([
    ['a missing executionId', { ...request('x', 'build'), executionId: undefined }, 'body.executionId'],
    ['a timeout that is not a TimeSpan', request('x', 'build', { timeout: '5 minutes' }), 'body.timeout'],
    [
      'a dependency result that is not JSON',
      request('x', 'build', { dependencyResults: { restore: '{...}' } }),
      'body.dependencyResults.restore',
    ],
    ['parameters that are not JSON', request('x', 'build', { serializedModule: '{...}' }), 'body.serializedModule'],
    [
      'an environment value that is not text (past the check for plain bodies, to zod)',
      { ...request('x', 'build'), environmentVariables: { CI: 1 } },
      'body.environmentVariables.CI',
    ],
  ])('answers 400 naming the field for %s', async (_case, body, field) => {
    const response = await post('/api/execution/execute', JSON.stringify(body));
    expect(response.status).toBe(400);
    const error = (await response.json()) as { errorMessage: string; issues: { field: string }[] };
    expect(error.issues[0]?.field).toBe(field);
    expect(error.errorMessage).toContain(field);
  });

  it('answers 400 for malformed JSON and 404 JSON for unknown routes', async () => {
    const malformed = await post('/api/execution/cancel', '{"executionId": ');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ success: false, code: 'MalformedJson' });
    const unknown = await fetch(`${worker.url}/api/nothing-here`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ success: false, code: 'RouteNotFound' });
  });

  it("answers a request node's parser refuses (Content-Length: abc) with the contract's JSON error naming the header", async () => {
    const answer = await rawHttpExchange(Number(new URL(worker.url).port), malformedContentLength('/api/execute'));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual(MALFORMED_CONTENT_LENGTH_ANSWER);
  });

  it('answers a body over the configured limit with 413 PayloadTooLarge', async () => {
    const small = await startWorker({
      port: 0,
      host: '127.0.0.1',
      pipeline,
      bodyLimit: '10kb',
      logger: pino({ level: 'silent' }),
      open: true,
    });
    try {
      const body = JSON.stringify(
        request('exec-big-1', 'restore', { dependencyResults: { restore: JSON.stringify('x'.repeat(20_000)) } }),
      );
      const response = await fetch(`${small.url}/api/execution/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(response.status).toBe(413);
      expect(await response.json()).toMatchObject({
        success: false,
        code: 'PayloadTooLarge',
        errorMessage: expect.stringContaining('10kb'),
      });
    } finally {
      await small.close();
    }
  });

  it('serves its OpenAPI document and sends no X-Powered-By', async () => {
    const response = await fetch(`${worker.url}/api/openapi.json`);
    expect(response.headers.get('x-powered-by')).toBeNull();
    const document = (await response.json()) as { paths: Record<string, unknown>; servers: unknown };
    expect(Object.keys(document.paths)).toContain('/api/execution/execute');
    expect(document.servers).toEqual([{ url: worker.url }]);
  });
});

describe('fail closed (issue 11, case 6)', () => {
  const started: RunningWorker[] = [];
  afterAll(async () => {
    await Promise.all(started.map((one) => one.close(0)));
  });
  const start = async (options: Parameters<typeof startWorker>[0]) => {
    const one = await startWorker({
      port: 0,
      host: '127.0.0.1',
      pipeline,
      logger: pino({ level: 'silent' }),
      ...options,
    });
    started.push(one);
    return one;
  };
  const call = (url: string, path: string, body: unknown, token?: string) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });

  it('a worker with a join token answers 503 WorkerNotReady with Retry-After until its first registration completes', async () => {
    // Nothing listens on port 9 of loopback: the worker keeps retrying its registration.
    const secured = await start({ joinToken: 'join-token-0123456789', orchestratorUrl: 'http://127.0.0.1:9' });
    expect(secured.link?.state.status).toBe('registering');
    // Each call is held for up to a second (the registration's answer may be on its way): all at once.
    const calls = [undefined, 'join-token-0123456789', 'mpdw_guessed-credential-0123'].flatMap((token) =>
      (
        [
          ['/api/execution/execute', request('exec-early-1', 'restore')],
          ['/api/execution/cancel', { executionId: 'exec-early-1' }],
        ] as const
      ).map(([path, body]) => call(secured.url, path, body, token)),
    );
    for (const response of await Promise.all(calls)) {
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(await response.json()).toMatchObject({ success: false, code: 'WorkerNotReady' });
    }
    expect(secured.load).toBe(0);
  });

  it('a worker with a token (no orchestrator) serves only calls that carry it (401 otherwise)', async () => {
    const secured = await start({ token: 'worker-token-0123456789' });
    expect((await call(secured.url, '/api/execution/execute', request('exec-tok-1', 'restore'))).status).toBe(401);
    const wrong = await call(secured.url, '/api/execution/execute', request('exec-tok-1', 'restore'), 'x'.repeat(20));
    expect(wrong.status).toBe(401);
    const right = await call(
      secured.url,
      '/api/execution/execute',
      request('exec-tok-1', 'restore'),
      'worker-token-0123456789',
    );
    expect(right.status).toBe(200);
  });

  it('a worker with no token and no orchestrator refuses execute and cancel (401) unless started with open: true', async () => {
    const closed = await start({});
    const refused = await call(closed.url, '/api/execution/execute', request('exec-closed-1', 'restore'));
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { errorMessage: string }).errorMessage).toMatch(/--open/);
    expect((await call(closed.url, '/api/execution/cancel', { executionId: 'exec-closed-1' })).status).toBe(401);
    const open = await start({ open: true });
    expect((await call(open.url, '/api/execution/execute', request('exec-open-1', 'restore'))).status).toBe(200);
  });

  it('refuses open mode beside a join token, a token or client certificates, naming open', async () => {
    for (const secured of [
      { joinToken: 'join-token-0123456789' },
      { token: 'worker-token-0123456789' },
      { orchestratorTls: { cert: 'pem', key: 'pem' } },
    ]) {
      const error = await startWorker({ port: 0, open: true, ...secured }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerConfigError);
      expect(error).toMatchObject({ code: 'InvalidSetting', setting: 'open' });
    }
  });
});

describe('startWorker', () => {
  it.each(['a/b', 'w1?evil', 'runner#2', '..', ''])(
    'refuses the worker id %j at start, naming the rule',
    async (id) => {
      const error = await startWorker({ port: 0, id, logger: pino({ level: 'silent' }) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerConfigError);
      expect(error).toMatchObject({ code: 'InvalidSetting', setting: 'id' });
      expect((error as Error).message).toContain('letters, digits and . _ ~ -, starting with a letter or digit');
    },
  );

  it('refuses TLS it cannot use as an invalid setting naming tls, as the orchestrator does', async () => {
    const error = await startWorker({
      port: 0,
      host: '127.0.0.1',
      tls: { cert: 'not a certificate', key: 'not a key' },
      logger: pino({ level: 'silent' }),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerConfigError);
    expect(error).toBeInstanceOf(WorkerError);
    expect(error).toMatchObject({ code: 'InvalidSetting', setting: 'tls' });
    expect((error as Error).message).toMatch(/^Invalid setting tls: cannot use the certificate, key or client CA: /);
  });

  it('refuses a --cache-dir it cannot use (a file in its place, a path under /proc) at start, naming it', async () => {
    const holder = mkdtempSync(join(tmpdir(), 'mpd-cache-file-'));
    try {
      const file = join(holder, 'not-a-directory');
      writeFileSync(file, 'x');
      const error = await startWorker({
        port: 0,
        host: '127.0.0.1',
        // Never called: the cache is checked before anything connects.
        orchestratorUrl: 'http://127.0.0.1:9',
        cacheDir: file,
        logger: pino({ level: 'silent' }),
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerConfigError);
      expect(error).toMatchObject({ code: 'InvalidSetting', setting: 'cacheDir' });
      expect((error as Error).message).toContain(`cannot use the cache directory ${file}: ENOTDIR`);
      // Under /proc Node's recursive mkdir never settled: the start hung instead of refusing.
      const proc = await startWorker({
        port: 0,
        host: '127.0.0.1',
        orchestratorUrl: 'http://127.0.0.1:9',
        cacheDir: '/proc/mpd-no-such-cache',
        logger: pino({ level: 'silent' }),
      }).catch((e: unknown) => e);
      expect(proc).toMatchObject({ code: 'InvalidSetting', setting: 'cacheDir' });
    } finally {
      rmSync(holder, { recursive: true, force: true });
    }
  });
});
