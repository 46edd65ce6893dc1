/**
 * Attacks on the secured cluster (join token, admin token, per-worker credentials): each one
 * must be refused. Real orchestrator and worker servers on 127.0.0.1.
 */
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createOrchestratorClient, createWorkerClient } from '@mpd/client';
import { errorBodySchema } from '@mpd/contract';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { runPipeline, startOrchestrator } from '@mpd/orchestrator';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, HEARTBEAT_TIMEOUT_MS, silent, JOIN_TOKEN as JOIN, ADMIN_TOKEN as ADMIN } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const node = (id: string, endpoint = `http://127.0.0.1:9`) => ({
  id,
  endpoint,
  capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
});

async function secured(options: Parameters<Cluster['startOrchestrator']>[0] = {}) {
  cluster = new Cluster();
  const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, adminToken: ADMIN, ...options });
  /** A raw HTTP call: method, path, body, bearer token. */
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    token?: string,
    contentType = 'application/json',
  ) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = contentType;
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${orchestrator.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined,
    };
  };
  const register = async (id: string, token = JOIN, credential?: string) =>
    call('POST', '/api/workers/register', { workerNode: node(id), ...(credential ? { credential } : {}) }, token);
  return { orchestrator, call, register };
}

describe('orchestrator authentication', () => {
  it('registration needs the join token: missing or wrong → 401 with WWW-Authenticate; join token → a credential', async () => {
    const { register, call } = await secured();
    const missing = await call('POST', '/api/workers/register', { workerNode: node('w1') });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(missing.json).toMatchObject({ success: false, code: 'Unauthorized' });
    expect((await register('w1', 'wrong-token-0123456789')).status).toBe(401);
    const admitted = await register('w1');
    expect(admitted.status).toBe(200);
    expect(admitted.json!.credential).toMatch(/^mpdw_/);
    // A worker credential is not a join token.
    expect((await register('w2', String(admitted.json!.credential))).status).toBe(403);
  });

  it('a worker may heartbeat only as itself: impersonating another worker gets 403', async () => {
    const { register, call } = await secured();
    const one = String((await register('w1')).json!.credential);
    const two = String((await register('w2')).json!.credential);
    expect((await call('POST', '/api/workers/heartbeat', { workerId: 'w1', currentLoad: 0 }, one)).status).toBe(200);
    const impersonation = await call('POST', '/api/workers/heartbeat', { workerId: 'w1', currentLoad: 0 }, two);
    expect(impersonation.status).toBe(403);
    expect(impersonation.json).toMatchObject({ code: 'Forbidden' });
    expect((await call('POST', '/api/workers/heartbeat', { workerId: 'w1', currentLoad: 0 })).status).toBe(401);
    expect((await call('POST', '/api/workers/heartbeat', { workerId: 'w1', currentLoad: 0 }, JOIN)).status).toBe(403);
    expect(
      (await call('POST', '/api/workers/heartbeat', { workerId: 'w1', currentLoad: 0 }, 'x'.repeat(40))).status,
    ).toBe(401);
  });

  it('admin operations need the admin token; a worker can unregister and drain only itself', async () => {
    const { register, call } = await secured();
    const one = String((await register('w1')).json!.credential);
    await register('w2');
    expect((await call('GET', '/api/workers')).status).toBe(401);
    expect((await call('GET', '/api/workers', undefined, JOIN)).status).toBe(403);
    expect((await call('GET', '/api/workers', undefined, one)).status).toBe(403);
    const listed = await call('GET', '/api/workers', undefined, ADMIN);
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.json)).not.toContain('mpdw_'); // credentials never leave in GET responses

    expect((await call('DELETE', '/api/workers/w2', undefined, one)).status).toBe(403);
    expect((await call('POST', '/api/workers/w2/drain', undefined, one)).status).toBe(403);
    expect((await call('POST', '/api/workers/w2/drain')).status).toBe(401);
    expect((await call('POST', '/api/workers/w2/drain', undefined, ADMIN)).status).toBe(200);
    expect((await call('POST', '/api/workers/w1/drain', undefined, one)).status).toBe(200);
    expect((await call('DELETE', '/api/workers/w1', undefined, one)).status).toBe(200);
    expect((await call('DELETE', '/api/workers/w2', undefined, ADMIN)).status).toBe(200);
    // GET /api/health stays open and shows no secrets.
    const health = await call('GET', '/api/health');
    expect(health.status).toBe(200);
    expect(Object.keys(health.json!).sort()).toEqual(['availableWorkers', 'status', 'timestamp']);
  });

  it('refuses to hand a live worker id to someone else (409); the holder, or anyone once it is Offline, may register it', async () => {
    const { register } = await secured();
    const first = await register('w1');
    const credential = String(first.json!.credential);
    const takeover = await register('w1');
    expect(takeover.status).toBe(409);
    expect(takeover.json).toMatchObject({ code: 'WorkerIdTaken' });
    const again = await register('w1', JOIN, credential);
    expect(again).toMatchObject({ status: 200, json: { credential } });
    cluster!.expireAllBut(); // no heartbeats: Offline
    const replaced = await register('w1');
    expect(replaced.status).toBe(200);
    expect(replaced.json!.credential).not.toBe(credential);
  });

  it('refuses endpoints that are not http(s) URLs or not on the allow-list', async () => {
    const { call } = await secured({ allowedWorkerHosts: ['*.ci.internal', '127.0.0.1'] });
    for (const endpoint of ['file:///etc/passwd', 'gopher://worker:70', 'javascript:alert(1)', 'http//missing-colon']) {
      const answer = await call('POST', '/api/workers/register', { workerNode: node('w1', endpoint) }, JOIN);
      expect(answer.status, endpoint).toBe(400);
      expect((answer.json!.issues as { field: string }[])[0]!.field).toBe('body.workerNode.endpoint');
    }
    const elsewhere = await call(
      'POST',
      '/api/workers/register',
      { workerNode: node('w1', 'http://169.254.169.254/') },
      JOIN,
    );
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.json).toMatchObject({ code: 'EndpointNotAllowed' });
    const allowed = await call(
      'POST',
      '/api/workers/register',
      { workerNode: node('w1', 'https://b7.ci.internal:9000') },
      JOIN,
    );
    expect(allowed.status).toBe(200);
    const bareSuffix = await call(
      'POST',
      '/api/workers/register',
      { workerNode: node('w2', 'http://ci.internal:9000') },
      JOIN,
    );
    expect(bareSuffix.status).toBe(400);
  });

  it('answers a non-JSON body with 415 and an oversized one with 413', async () => {
    const { call, register } = await secured();
    const xml = await call('POST', '/api/workers/register', '<workerNode/>', JOIN, 'application/xml');
    expect(xml).toMatchObject({ status: 415, json: { code: 'UnsupportedMediaType' } });
    // Authentication comes first: a heartbeat's body is looked at only with a worker's credential.
    const credential = String((await register('w0')).json!.credential);
    const form = await call('POST', '/api/workers/heartbeat', 'workerId=w1', JOIN, 'application/x-www-form-urlencoded');
    expect(form.status).toBe(403);
    const asWorker = await call(
      'POST',
      '/api/workers/heartbeat',
      'workerId=w1',
      credential,
      'application/x-www-form-urlencoded',
    );
    expect(asWorker.status).toBe(415);
    const huge = await call(
      'POST',
      '/api/workers/register',
      { workerNode: node('w1'), padding: 'x'.repeat(1_200_000) },
      JOIN,
    );
    expect(huge).toMatchObject({ status: 413, json: { code: 'PayloadTooLarge' } });
  });

  it('rate-limits registration per join token and heartbeats per worker: 429 with Retry-After', async () => {
    const { register, call } = await secured({ rateLimits: { registerPerMinute: 3, heartbeatPerMinute: 2 } });
    const credential = String((await register('r1')).json!.credential);
    await register('r2');
    await register('r3');
    const limited = await register('r4');
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.json).toMatchObject({ success: false, code: 'RateLimited' });
    const beat = () => call('POST', '/api/workers/heartbeat', { workerId: 'r1', currentLoad: 0 }, credential);
    expect((await beat()).status).toBe(200);
    expect((await beat()).status).toBe(200);
    const flooded = await beat();
    expect(flooded.status).toBe(429);
    expect(flooded.headers.get('retry-after')).not.toBeNull();
  });

  it('sends security headers, no X-Powered-By, and CORS only for configured origins', async () => {
    const { call, orchestrator } = await secured();
    const plain = await call('GET', '/api/health');
    expect(plain.headers.get('x-powered-by')).toBeNull();
    expect(plain.headers.get('x-content-type-options')).toBe('nosniff');
    const cross = await fetch(`${orchestrator.url}/api/health`, { headers: { origin: 'https://evil.example' } });
    expect(cross.headers.get('access-control-allow-origin')).toBeNull();
    await cluster!.close();
    const { orchestrator: withCors } = await secured({ corsOrigins: ['https://dashboard.example'] });
    const allowed = await fetch(`${withCors.url}/api/health`, { headers: { origin: 'https://dashboard.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://dashboard.example');
    const other = await fetch(`${withCors.url}/api/health`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('an open cluster (no join token)', () => {
  const echo = defineModule({ name: 'echo', run: (ctx) => ({ worker: ctx.workerId }) });
  const pipeline = definePipeline({ name: 'open', modules: [echo] });
  const request = {
    executionId: 'open-attack-1',
    moduleTypeName: 'echo',
    serializedModule: 'null',
    dependencyResults: {},
    environmentVariables: {},
  };
  const registerRaw = async (url: string, body: unknown) => {
    const response = await fetch(`${url}/api/workers/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, text: await response.text() };
  };

  // The orchestrator used to answer a registration under a live worker's id with that worker's
  // credential, which then opened the worker's execute endpoint to anyone.
  it("registering under a live worker's id gets 409, never its credential; the worker still refuses execute without it", async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    const worker = await cluster.startWorker({ id: 'w-open', pipeline });
    await worker.link!.registered();
    const credential = worker.link!.credential!;
    for (const body of [
      { workerNode: node('w-open') },
      { workerNode: node('w-open', worker.url) },
      { workerNode: node('w-open'), credential: 'mpdw_guessed-0123456789abcdef' },
    ]) {
      const takeover = await registerRaw(orchestrator.url, body);
      expect(takeover.status).toBe(409);
      expect(JSON.parse(takeover.text)).toMatchObject({ code: 'WorkerIdTaken' });
      expect(takeover.text).not.toContain(credential);
      expect(takeover.text).not.toContain('mpdw_');
    }
    expect(orchestrator.registry.credentialOf('w-open')).toBe(credential);
    expect(orchestrator.registry.get('w-open')?.endpoint).toBe(worker.url);
    const anonymous = createWorkerClient({ baseUrl: worker.url });
    try {
      expect((await anonymous.execution.execute({ body: request })).status).toBe(401);
    } finally {
      await anonymous.close();
    }
    // The orchestrator still runs modules there, with the credential only it and the worker know.
    const result = await runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
    expect(result.success).toBe(true);
    expect(result.modules[0]).toMatchObject({ workerId: 'w-open', result: { worker: 'w-open' } });
  });

  it('two workers started with the same id do not fight: the second waits (409) while the first is live, each retry after the Retry-After the 409 gave', async () => {
    cluster = new Cluster();
    // A short timeout: the second retries after the first's lease can end (Retry-After), real seconds.
    const timeoutMs = 8_000;
    const orchestrator = await cluster.startOrchestrator({ heartbeatTimeoutMs: timeoutMs });
    const first = await cluster.startWorker({ id: 'w-twin', pipeline });
    await first.link!.registered();
    const credential = first.link!.credential;
    const retries: { retryInMs: number; error: string }[] = [];
    const second = await cluster.startWorker({
      id: 'w-twin',
      pipeline,
      logger: pino(
        { level: 'warn' },
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            const line = JSON.parse(chunk.toString()) as { msg: string; retryInMs: number; error: string };
            if (line.msg === 'registration failed; retrying') retries.push(line);
            done();
          },
        }),
      ),
    });
    // Past the heartbeat timeout, in two halves, each followed by a heartbeat of the first.
    for (const half of [1, 2]) {
      const last = orchestrator.registry.get('w-twin')?.lastHeartbeat;
      cluster.clock.advance(timeoutMs / 2 + 1);
      await expect
        .poll(() => orchestrator.registry.get('w-twin')?.lastHeartbeat, {
          timeout: 5_000,
          message: `heartbeat ${half}`,
        })
        .not.toBe(last);
    }
    await expect
      .poll(() => second.link!.state.status === 'registering' && second.link!.state.lastError, { timeout: 5_000 })
      .toContain('409');
    expect(second.link!.state).toMatchObject({ status: 'registering', lastError: expect.stringContaining('409') });
    // Not the backoff (200 ms at most here): the seconds until the first's lease can end.
    expect(retries[0]).toMatchObject({ error: expect.stringContaining('WorkerIdTaken') });
    expect(retries[0]!.retryInMs).toBeGreaterThanOrEqual(1_000);
    expect(retries[0]!.retryInMs).toBeLessThanOrEqual(timeoutMs + 1_000);
    expect(first.link!.state).toMatchObject({ status: 'registered', consecutiveFailures: 0 });
    expect(orchestrator.registry.credentialOf('w-twin')).toBe(credential);
    expect(orchestrator.registry.get('w-twin')).toMatchObject({ endpoint: first.url, status: 'Available' });
    // Once the first is gone, the second takes the id (at its next attempt), with a credential of its own.
    await first.close();
    await expect.poll(() => second.link!.state.status, { timeout: timeoutMs + 10_000 }).toBe('registered');
    expect(orchestrator.registry.get('w-twin')?.endpoint).toBe(second.url);
    expect(second.link!.credential).toBe(orchestrator.registry.credentialOf('w-twin'));
    expect(second.link!.credential).not.toBe(credential);
  }, 40_000);

  it('a worker restarted under its id while its earlier registration is live registers once that one is Offline', async () => {
    cluster = new Cluster();
    // Short: the restarted worker waits the 409's Retry-After (the earlier registration's lease), real seconds.
    const orchestrator = await cluster.startOrchestrator({ heartbeatTimeoutMs: 5_000 });
    // What a crashed worker leaves behind: a registration that no longer sends heartbeats.
    const crashed = await registerRaw(orchestrator.url, { workerNode: node('w-crash') });
    const old = (JSON.parse(crashed.text) as { credential: string }).credential;
    const restarted = await cluster.startWorker({ id: 'w-crash', pipeline });
    await expect
      .poll(
        () =>
          restarted.link!.state.status === 'registering' && restarted.link!.state.lastError?.includes('409') === true,
        { timeout: 3_000, interval: 20, message: 'a 409 while the earlier registration is live' },
      )
      .toBe(true);
    cluster.expireAllBut(); // the crashed registration's heartbeats stopped: Offline
    await expect.poll(() => restarted.link!.state.status, { timeout: 15_000 }).toBe('registered');
    expect(orchestrator.registry.get('w-crash')).toMatchObject({ endpoint: restarted.url, status: 'Available' });
    expect(restarted.link!.credential).toBe(orchestrator.registry.credentialOf('w-crash'));
    expect(restarted.link!.credential).not.toBe(old);
    const result = await runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
    expect(result.modules[0]).toMatchObject({ status: 'Successful', workerId: 'w-crash' });
  });

  it('with a credential file, a worker restarted after a crash takes its place again at once, with its credential', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ heartbeatTimeoutMs: 60_000 });
    const directory = mkdtempSync(join(tmpdir(), 'mpd-credential-'));
    // The worker keeps its credential in the file, readable by its owner only.
    const file = join(directory, 'state', 'credential');
    const fresh = await cluster.startWorker({ id: 'w-fresh', pipeline, credentialFile: file });
    await fresh.link!.registered();
    // Written in the background, after the registration (milliseconds).
    await expect
      .poll(() => existsSync(file) && readFileSync(file, 'utf8').trim(), { timeout: 5_000 })
      .toBe(fresh.link!.credential);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    // What a crashed run leaves behind: a registration live for 60 s more, and its credential file.
    const crashed = await registerRaw(orchestrator.url, { workerNode: node('w-kept') });
    const kept = (JSON.parse(crashed.text) as { credential: string }).credential;
    const keptFile = join(directory, 'kept-credential');
    writeFileSync(keptFile, `${kept}\n`, { mode: 0o600 });
    const restarted = await cluster.startWorker({ id: 'w-kept', pipeline, credentialFile: keptFile });
    await restarted.link!.registered();
    // A new process gets a new credential (calls meant for the old one are refused 401, N3, 3).
    expect(restarted.link!.credential).toEqual(expect.any(String));
    expect(restarted.link!.credential).not.toBe(kept);
    expect(orchestrator.registry.get('w-kept')?.endpoint).toBe(restarted.url);
    const result = await runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
    expect(result.modules[0]).toMatchObject({ status: 'Successful' });

    // Without the file, the same restart waits: 409 until the old registration is Offline.
    const stranger = await cluster.startWorker({ id: 'w-kept', pipeline });
    await expect
      .poll(
        () => stranger.link!.state.status === 'registering' && stranger.link!.state.lastError?.includes('409') === true,
        { timeout: 3_000, interval: 20, message: 'a 409 without the credential' },
      )
      .toBe(true);
  });
});

describe('a secured cluster', () => {
  const echo = defineModule({ name: 'echo', run: (ctx) => ({ worker: ctx.workerId }) });
  const pipeline = definePipeline({ name: 'secured', modules: [echo] });

  it('runs a pipeline with credentials; execute and cancel without the orchestrator credential get 401', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, adminToken: ADMIN });
    const worker = await cluster.startWorker({ id: 'w-sec', pipeline, joinToken: JOIN });
    await worker.link!.registered();
    const result = await runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
    expect(result.success).toBe(true);

    const request = {
      executionId: 'attack-1',
      moduleTypeName: 'echo',
      serializedModule: 'null',
      dependencyResults: {},
      environmentVariables: {},
    };
    const anonymous = createWorkerClient({ baseUrl: worker.url });
    const forged = createWorkerClient({ baseUrl: worker.url, headers: { authorization: `Bearer ${JOIN}` } });
    try {
      expect((await anonymous.execution.execute({ body: request })).status).toBe(401);
      expect((await forged.execution.execute({ body: request })).status).toBe(401);
      expect((await anonymous.execution.cancel({ body: { executionId: 'attack-1' } })).status).toBe(401);
      expect((await anonymous.health.get()).status).toBe(200);
    } finally {
      await anonymous.close();
      await forged.close();
    }
  });

  it('a worker without the join token cannot register', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN });
    const worker = await cluster.startWorker({ id: 'w-intruder', pipeline, joinToken: 'not-the-join-token-000' });
    const retrying = () => worker.link!.state.status === 'registering' && worker.link!.state.attempt >= 1;
    await expect.poll(retrying, { timeout: 3_000, interval: 20, message: 'retries' }).toBe(true);
    expect(orchestrator.registry.get('w-intruder')).toBeUndefined();
    expect(worker.link!.state).toMatchObject({ status: 'registering', lastError: expect.stringContaining('401') });
  });

  it('registers again with a new credential after the orchestrator restarts', async () => {
    cluster = new Cluster();
    const first = await cluster.startOrchestrator({ joinToken: JOIN });
    const worker = await cluster.startWorker({ id: 'w-restart', pipeline, joinToken: JOIN });
    await worker.link!.registered();
    const before = worker.link!.credential;
    await first.close();
    const second = await cluster.startOrchestrator({ joinToken: JOIN, port: first.port });
    await expect
      .poll(() => second.registry.get('w-restart')?.status, {
        timeout: 5_000,
        interval: 20,
        message: 're-registration',
      })
      .toBe('Available');
    // The worker stores its new credential when the register answer arrives, just after the orchestrator lists it.
    await expect
      .poll(() => worker.link!.credential === second.registry.credentialOf('w-restart'), {
        timeout: 5_000,
        interval: 20,
        message: 'the new credential',
      })
      .toBe(true);
    expect(worker.link!.credential).not.toBe(before);
  });

  it('masks secret environment variables in module logs, errors, progress and the run result; tokens never reach the logs', async () => {
    const SECRET = 'sup3r-s3cret-value';
    let logs = '';
    const sink = pino(
      { level: 'debug' },
      new Writable({
        write(chunk, _encoding, done) {
          logs += String(chunk);
          done();
        },
      }),
    );
    const leaky = defineModule({
      name: 'leaky',
      run: (ctx) => {
        ctx.logger.info(`deploying with ${ctx.env.DEPLOY_KEY}`, { key: ctx.env.DEPLOY_KEY });
        throw new Error(`auth failed for key ${ctx.env.DEPLOY_KEY}`);
      },
    });
    const leakyPipeline = definePipeline({ name: 'leaky', modules: [leaky] });
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, adminToken: ADMIN, logger: sink });
    const worker = await cluster.startWorker({ id: 'w-leaky', pipeline: leakyPipeline, joinToken: JOIN, logger: sink });
    await worker.link!.registered();
    const events: string[] = [];
    const result = await runPipeline({
      pipeline: leakyPipeline,
      registry: orchestrator.registry,
      logger: sink,
      secretEnvironmentVariables: { DEPLOY_KEY: SECRET },
      onEvent: (event) => events.push(JSON.stringify(event)),
    });
    expect(result.modules[0]).toMatchObject({ status: 'Failed', error: { message: 'auth failed for key ***' } });
    expect(result.modules[0]!.error!.stackTrace).toContain('auth failed for key ***');
    expect(logs).toContain('deploying with ***');
    expect(JSON.stringify(result)).not.toContain(SECRET);
    expect(events.join('\n')).not.toContain(SECRET);
    expect(logs).not.toContain(SECRET);

    // Failed authentications are logged without the tokens that were tried.
    const client = createOrchestratorClient({
      baseUrl: orchestrator.url,
      headers: { authorization: 'Bearer guess-0123456789-abcdef' },
    });
    try {
      expect((await client.workers.list()).status).toBe(401);
    } finally {
      await client.close();
    }
    for (const token of [JOIN, ADMIN, 'guess-0123456789-abcdef', worker.link!.credential!])
      expect(logs).not.toContain(token);
  });
});

describe('rate limit of failed authentications (defaults)', () => {
  it('answers 429 with Retry-After once one bad token fails 100 times a minute from an address; never 5xx; valid tokens still pass', async () => {
    const limited = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      joinToken: JOIN,
      adminToken: ADMIN,
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
          headers: { authorization: 'Bearer wrong-token-0123456789', 'content-type': 'application/json' },
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
      // The lockout holds that token only: the right token still passes from the same address
      // (issue 11: it used to wait too, and workers behind that address went Offline); health
      // is never limited.
      const admin = await fetch(`${limited.url}/api/workers`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(admin.status).toBe(200);
      expect((await fetch(`${limited.url}/api/health`)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
