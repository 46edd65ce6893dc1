import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createOrchestratorClient, type OrchestratorClient } from '@mpd/client';
import { errorBodySchema, LIMITS, type RegisterWorkerRequest } from '@mpd/contract';
import { orchestratorOpenApi } from '@mpd/contract/openapi';
import { TestClock } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from './app.js';
import type { RegistryBound } from './orchestrator-options.js';
import { InMemoryNodeRegistry, type InMemoryNodeRegistryOptions } from './registry/in-memory-node-registry.js';
import type { NodeRegistry } from './registry/node-registry.js';

/** The register body of the spec (shared/spec/http-api.md), verbatim. */
const SPEC_REGISTER_BODY = `{
  "workerNode": {
    "id": "worker-machine1-abc123",
    "endpoint": "http://worker1:9000",
    "capabilities": {
      "os": "linux",
      "installedTools": ["docker", "dotnet", "node"],
      "maxParallelModules": 4,
      "tags": ["gpu-enabled", "high-memory"]
    },
    "lastHeartbeat": "2025-09-30T10:00:00Z",
    "currentLoad": 0,
    "status": "Available"
  },
  "timestamp": "2025-09-30T10:00:00Z"
}`;

const registration = (id: string, maxParallelModules = 2): RegisterWorkerRequest => ({
  workerNode: {
    id,
    endpoint: `http://${id}:9000`,
    capabilities: { os: 'linux', installedTools: ['node'], maxParallelModules, tags: [] },
  },
});

/** The harness's heartbeat timeout: long, so that only {@link Harness.clock} expires workers. */
const TIMEOUT_MS = 120_000;

interface Harness {
  url: string;
  client: OrchestratorClient;
  registry: NodeRegistry;
  /** The registry's clock: move it past the heartbeat timeout instead of sleeping. */
  clock: TestClock;
  /** POST/GET with raw fetch, for input the typed client cannot send. */
  raw(
    method: string,
    path: string,
    body?: string,
    contentType?: string,
  ): Promise<{ status: number; json: unknown; type: string }>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

/** Serves `app` on 127.0.0.1, port 0, until the test ends (closed by {@link cleanups}); resolves with its base URL. */
async function serve(app: ReturnType<typeof createApp>): Promise<string> {
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function start(bounds: Pick<InMemoryNodeRegistryOptions, RegistryBound> = {}): Promise<Harness> {
  const clock = new TestClock();
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: TIMEOUT_MS, now: clock.now, ...bounds });
  const app = createApp({ registry, options: { validateResponses: true, heartbeatIntervalSeconds: 15 } });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = createOrchestratorClient({ baseUrl: url, validateResponse: true, timeoutMs: 2_000 });
  cleanups.push(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const raw: Harness['raw'] = async (method, path, body, contentType = 'application/json') => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': contentType },
      body,
    });
    const type = response.headers.get('content-type') ?? '';
    const text = await response.text();
    return { status: response.status, type, json: type.includes('json') ? JSON.parse(text) : text };
  };
  return { url, client, registry, clock, raw };
}

describe('orchestrator HTTP API', () => {
  it('registers a worker and lists it as Available', async () => {
    const { client } = await start();
    const registered = await client.workers.register({ body: registration('w1', 4) });
    expect(registered).toMatchObject({
      status: 200,
      body: { success: true, workerId: 'w1', heartbeatIntervalSeconds: 15 },
    });
    const list = await client.workers.list();
    expect(list.status).toBe(200);
    expect(list.body).toEqual([
      {
        id: 'w1',
        endpoint: 'http://w1:9000',
        capabilities: { os: 'linux', installedTools: ['node'], maxParallelModules: 4, tags: [] },
        lastHeartbeat: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        currentLoad: 0,
        status: 'Available',
      },
    ]);
  });

  it('acknowledges heartbeats, updating the load and the status', async () => {
    const { client } = await start();
    await client.workers.register({ body: registration('w1', 2) });
    const beat = await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 2 } });
    expect(beat).toMatchObject({ status: 200, body: { acknowledged: true, shouldDrain: false } });
    const list = await client.workers.list();
    expect(list.status === 200 && list.body.map((node) => [node.currentLoad, node.status])).toEqual([[2, 'Busy']]);
  });

  it('tells a draining worker to drain in the heartbeat response', async () => {
    const { client, registry } = await start();
    await client.workers.register({ body: registration('w1') });
    registry.drain('w1');
    const beat = await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 0 } });
    expect(beat).toMatchObject({ status: 200, body: { acknowledged: true, shouldDrain: true } });
  });

  it('drains a worker through POST /api/workers/{id}/drain; 404 for an unknown one', async () => {
    const { client } = await start();
    await client.workers.register({ body: registration('w1') });
    const drained = await client.workers.drain({ params: { workerId: 'w1' } });
    expect(drained).toMatchObject({ status: 200, body: { success: true, workerId: 'w1', status: 'Draining' } });
    const beat = await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 1 } });
    expect(beat).toMatchObject({ status: 200, body: { shouldDrain: true } });
    const listed = await client.workers.list();
    expect(listed.status === 200 && listed.body[0]?.status).toBe('Draining');
    const unknown = await client.workers.drain({ params: { workerId: 'nobody' } });
    expect(unknown).toMatchObject({ status: 404, body: { success: false, code: 'WorkerNotFound' } });
  });

  it('answers 404 WorkerNotFound to a heartbeat from an unknown worker, asking it to register', async () => {
    const { client } = await start();
    const beat = await client.workers.heartbeat({ body: { workerId: 'ghost', currentLoad: 0 } });
    expect(beat.status).toBe(404);
    expect(beat.body).toMatchObject({ success: false, code: 'WorkerNotFound' });
    expect(beat.status === 404 && beat.body.errorMessage).toMatch(/ghost.*register/);
  });

  it('unregisters a worker, and answers 404 for an unknown one', async () => {
    const { client } = await start();
    await client.workers.register({ body: registration('w1') });
    const removed = await client.workers.unregister({ params: { workerId: 'w1' } });
    expect(removed).toMatchObject({ status: 200, body: { success: true } });
    expect((await client.workers.list()).body).toEqual([]);
    const again = await client.workers.unregister({ params: { workerId: 'w1' } });
    expect(again.status).toBe(404);
    expect(again.body).toMatchObject({
      success: false,
      code: 'WorkerNotFound',
      errorMessage: expect.stringContaining("'w1'"),
    });
  });

  it('is idempotent for the same id with its credential: registering twice gives one worker with the new details', async () => {
    const { client } = await start();
    const first = await client.workers.register({ body: registration('w1', 2) });
    const credential = first.status === 200 ? first.body.credential : undefined;
    const second = { ...registration('w1', 6), credential };
    second.workerNode.endpoint = 'http://w1:9100';
    expect(await client.workers.register({ body: second })).toMatchObject({ status: 200, body: { credential } });
    const list = await client.workers.list();
    expect(
      list.status === 200 && list.body.map((node) => [node.id, node.endpoint, node.capabilities.maxParallelModules]),
    ).toEqual([['w1', 'http://w1:9100', 6]]);
  });

  // Without a join token the orchestrator used to answer a registration under a live worker's id
  // with that worker's credential: anyone could learn it and call the worker's execute endpoint.
  it("without a join token, never hands out a live worker's credential: 409 WorkerIdTaken without it", async () => {
    const { client, raw, registry, clock } = await start();
    const first = await client.workers.register({ body: registration('w1') });
    const credential = (first.status === 200 && first.body.credential) || '';
    expect(credential).toMatch(/^mpdw_/);
    for (const body of [
      registration('w1'),
      { ...registration('w1'), credential: 'mpdw_not-the-credential-0123456789' },
      {
        ...registration('w2'),
        workerNode: { ...registration('w2').workerNode, id: 'w1', endpoint: 'http://evil:9000' },
      },
    ]) {
      const takeover = await raw('POST', '/api/workers/register', JSON.stringify(body));
      expect(takeover.status).toBe(409);
      expect(errorBodySchema.parse(takeover.json)).toMatchObject({ code: 'WorkerIdTaken' });
      expect(JSON.stringify(takeover.json)).not.toContain(credential);
    }
    const list = await client.workers.list();
    expect(list.status === 200 && list.body.map((node) => node.endpoint)).toEqual(['http://w1:9000']);
    // Its holder registers again with it and keeps it.
    const again = await client.workers.register({ body: { ...registration('w1'), credential } });
    expect(again).toMatchObject({ status: 200, body: { credential } });
    // Once it is Offline, anyone may take the id, with a new credential; the old one stops working.
    clock.advance(TIMEOUT_MS + 1);
    const replaced = await client.workers.register({ body: registration('w1') });
    expect(replaced.status).toBe(200);
    expect(replaced.status === 200 && replaced.body.credential).not.toBe(credential);
    expect(registry.workerWithCredential(credential)).toBeUndefined();
  });

  it('tells a worker the heartbeat timeout it fences by', async () => {
    const { client } = await start();
    const registered = await client.workers.register({ body: registration('w1') });
    expect(registered).toMatchObject({ status: 200, body: { heartbeatTimeoutSeconds: TIMEOUT_MS / 1000 } });
  });

  // A frozen worker's replacement used to leave the old process's id live: its module hung until
  // timeout + margin, and the old process, once thawed, went on as if nothing had happened.
  it('a registration with a new incarnation replaces the worker; the old one gets 409 WorkerReplaced', async () => {
    const { client, registry } = await start();
    const events: string[] = [];
    registry.onChange((event) => events.push(event.type));
    const first = await client.workers.register({ body: { ...registration('w1'), incarnation: 'old' } });
    const credential = first.status === 200 ? first.body.credential : undefined;
    const second = { ...registration('w1'), credential, incarnation: 'new' };
    second.workerNode.endpoint = 'http://w1:9100';
    const replaced = await client.workers.register({ body: second });
    expect(replaced.status).toBe(200);
    // A new process presenting the old credential (a credential file) gets a new one: calls on
    // their way to the old process are refused by the new one (N3, 3).
    expect(replaced.status === 200 && replaced.body.credential).toEqual(expect.any(String));
    expect(replaced.status === 200 && replaced.body.credential).not.toBe(credential);
    expect(events).toEqual(['registered', 'replaced', 'registered']);

    const stale = await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 1, incarnation: 'old' } });
    expect(stale.status).toBe(409);
    expect(errorBodySchema.parse(stale.body)).toMatchObject({
      code: 'WorkerReplaced',
      errorMessage: expect.stringContaining('another process'),
    });
    // Nor may the old process drain or unregister its successor on its way out.
    const params = { workerId: 'w1' };
    expect((await client.workers.drain({ params, query: { incarnation: 'old' } })).status).toBe(409);
    expect((await client.workers.unregister({ params, query: { incarnation: 'old' } })).status).toBe(409);
    expect(registry.get('w1')).toMatchObject({ endpoint: 'http://w1:9100', status: 'Available', currentLoad: 0 });
    const current = await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 1, incarnation: 'new' } });
    expect(current).toMatchObject({ status: 200, body: { acknowledged: true } });
    // Older workers send no incarnation: taken as before.
    expect((await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 0 } })).status).toBe(200);
    expect((await client.workers.unregister({ params, query: { incarnation: 'new' } })).status).toBe(200);
  });

  it('carries pending cancels on every heartbeat answer until they are settled', async () => {
    const { client, registry } = await start();
    await client.workers.register({ body: registration('w1') });
    const beat = () => client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 1 } });
    expect((await beat()).body).toEqual({ acknowledged: true, shouldDrain: false });
    registry.requestCancel('w1', 'exec-1', 'attempt declared lost');
    const expected = { status: 200, body: { cancel: [{ executionId: 'exec-1', reason: 'attempt declared lost' }] } };
    expect(await beat()).toMatchObject(expected);
    expect(await beat()).toMatchObject(expected);
    registry.cancelSettled('w1', 'exec-1');
    expect((await beat()).body).toEqual({ acknowledged: true, shouldDrain: false });
  });

  it("an anonymous heartbeat (no join token) neither removes a worker's pending cancels nor says what it runs: only the worker's own credential does", async () => {
    const { client, registry } = await start();
    const registered = await client.workers.register({ body: registration('w1') });
    const credential = registered.status === 200 ? registered.body.credential : undefined;
    expect(credential).toEqual(expect.any(String));
    const own = (executions: string[]) =>
      client.workers.heartbeat({
        body: { workerId: 'w1', currentLoad: 1, executions },
        extraHeaders: { authorization: `Bearer ${credential}` },
      });
    const anonymous = (executions: string[]) =>
      client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 1, executions } });
    await own(['run-1.a.1']);
    expect(registry.executionsOf('w1')).toEqual(['run-1.a.1']);
    registry.requestCancel('w1', 'run-1.a.1', 'attempt declared lost');
    const cancel = [{ executionId: 'run-1.a.1', reason: 'attempt declared lost' }];
    // Open: the anonymous heartbeat is taken (and reads the cancels), twice, claiming nothing runs.
    expect(await anonymous([])).toMatchObject({ status: 200, body: { cancel } });
    expect(await anonymous([])).toMatchObject({ status: 200, body: { cancel } });
    // A run would end an abandoned attempt its worker's heartbeats no longer list (two in a
    // row), and settle its cancel: anonymous heartbeats must not tell it that.
    expect(registry.executionsOf('w1')).not.toEqual([]);
    expect(registry.cancelsFor('w1')).toEqual(cancel);
    expect(await own(['run-1.a.1'])).toMatchObject({ status: 200, body: { cancel } });
    expect(registry.executionsOf('w1')).toEqual(['run-1.a.1']);
  });

  it('counts only Available workers in the health check', async () => {
    const { client, registry } = await start();
    const empty = await client.health.get();
    expect(empty.status === 200 && empty.body.availableWorkers).toBe(0);
    await client.workers.register({ body: registration('free-1', 2) });
    await client.workers.register({ body: registration('free-2', 2) });
    await client.workers.register({ body: registration('busy', 1) });
    await client.workers.heartbeat({ body: { workerId: 'busy', currentLoad: 1 } });
    await client.workers.register({ body: registration('draining', 2) });
    registry.drain('draining');
    const health = await client.health.get();
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'healthy', availableWorkers: 2, timestamp: expect.any(String) });
    expect(health.status === 200 && Math.abs(Date.parse(health.body.timestamp) - Date.now())).toBeLessThan(5_000);
  });

  it('marks a worker Offline after the heartbeat timeout, and live again after a heartbeat', async () => {
    const { client, clock } = await start();
    await client.workers.register({ body: registration('w1') });
    expect((await client.health.get()).body).toMatchObject({ availableWorkers: 1 });
    clock.advance(TIMEOUT_MS + 1);
    const list = await client.workers.list();
    expect(list.status === 200 && list.body[0]?.status).toBe('Offline');
    expect((await client.health.get()).body).toMatchObject({ availableWorkers: 0 });
    expect((await client.workers.heartbeat({ body: { workerId: 'w1', currentLoad: 0 } })).status).toBe(200);
    const back = await client.workers.list();
    expect(back.status === 200 && back.body[0]?.status).toBe('Available');
  });

  it('rejects an invalid registration with 400 naming the field', async () => {
    const { raw } = await start();
    const body = registration('w1') as { workerNode: { capabilities: Record<string, unknown> } };
    body.workerNode.capabilities.maxParallelModules = 'four';
    const response = await raw('POST', '/api/workers/register', JSON.stringify(body));
    expect(response.status).toBe(400);
    const error = errorBodySchema.parse(response.json);
    expect(error.code).toBe('ValidationFailed');
    expect(error.issues?.[0]?.field).toBe('body.workerNode.capabilities.maxParallelModules');
    expect(error.errorMessage).toContain('body.workerNode.capabilities.maxParallelModules');
    expect(error.errorMessage).toBe(
      'body.workerNode.capabilities.maxParallelModules: Expected number, received string',
    );
  });

  it('rejects a missing body and a bad path parameter with 400 naming the field', async () => {
    const { raw } = await start();
    const noBody = await raw('POST', '/api/workers/heartbeat');
    expect(noBody.status).toBe(400);
    expect(errorBodySchema.parse(noBody.json).issues?.map((issue) => issue.field)).toEqual([
      'body.workerId',
      'body.currentLoad',
    ]);
    const badId = await raw('DELETE', '/api/workers/has%20space');
    expect(badId.status).toBe(400);
    expect(errorBodySchema.parse(badId.json).issues?.[0]?.field).toBe('params.workerId');
  });

  it("takes a worker's heartbeat with every field it sends, and names the field at fault in a 400 (the body's check by hand)", async () => {
    const { client, raw } = await start();
    await client.workers.register({ body: { ...registration('w1'), incarnation: 'process-1' } });
    const heartbeat = {
      workerId: 'w1',
      currentLoad: 1,
      timestamp: '2026-12-01T03:00:00.123Z',
      executions: ['run-1.build.1'],
      incarnation: 'process-1',
    };
    const taken = await raw('POST', '/api/workers/heartbeat', JSON.stringify(heartbeat));
    expect(taken).toMatchObject({ status: 200, json: { acknowledged: true, shouldDrain: false } });
    // A key the schema strips: taken, as before (the schema decides what the check does not take).
    const extra = await raw('POST', '/api/workers/heartbeat', JSON.stringify({ ...heartbeat, note: 'x' }));
    expect(extra.status).toBe(200);
    for (const [body, field] of [
      [{ ...heartbeat, executions: ['run-1.build.1', 'run 1'] }, 'body.executions.1'],
      [{ ...heartbeat, timestamp: '2026-12-01 03:00:00' }, 'body.timestamp'],
      [{ ...heartbeat, incarnation: '' }, 'body.incarnation'],
      [{ ...heartbeat, currentLoad: 1.5 }, 'body.currentLoad'],
    ] as const) {
      const refused = await raw('POST', '/api/workers/heartbeat', JSON.stringify(body));
      expect(refused.status, field).toBe(400);
      expect(new Set(errorBodySchema.parse(refused.json).issues?.map((issue) => issue.field))).toEqual(
        new Set([field]),
      );
    }
  });

  it('answers malformed JSON with 400 MalformedJson', async () => {
    const { raw } = await start();
    const response = await raw('POST', '/api/workers/register', '{"workerNode": {');
    expect(response.status).toBe(400);
    expect(response.type).toContain('application/json');
    expect(errorBodySchema.parse(response.json)).toMatchObject({ success: false, code: 'MalformedJson' });
  });

  it('answers a body over 1 MiB with 413 PayloadTooLarge', async () => {
    const { raw } = await start();
    const huge = JSON.stringify({ workerId: 'w', currentLoad: 0, padding: 'x'.repeat(1_100_000) });
    const response = await raw('POST', '/api/workers/heartbeat', huge);
    expect(response.status).toBe(413);
    expect(errorBodySchema.parse(response.json)).toMatchObject({ success: false, code: 'PayloadTooLarge' });
    expect((response.json as { errorMessage: string }).errorMessage).toContain('1mb');
  });

  it('takes a configured body limit', async () => {
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    const server = createApp({ registry, options: { bodyLimit: '2kb' } }).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const body = JSON.stringify({ workerId: 'w', currentLoad: 0, padding: 'x'.repeat(3_000) });
      const response = await fetch(`${url}/api/workers/heartbeat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(response.status).toBe(413);
      expect(((await response.json()) as { errorMessage: string }).errorMessage).toContain('2kb');
    } finally {
      server.close();
    }
  });

  it('answers an unknown route with 404 RouteNotFound as JSON', async () => {
    const { raw } = await start();
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/api/workers/register'],
      ['PUT', '/api/workers'],
    ] as const) {
      const response = await raw(method, path);
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(errorBodySchema.parse(response.json)).toMatchObject({
        code: 'RouteNotFound',
        errorMessage: `No route for ${method} ${path}`,
      });
    }
  });

  it('answers an internal failure with 500 InternalError as JSON', async () => {
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 1_000 });
    registry.list = registry.snapshot = () => {
      throw new Error('disk on fire');
    };
    const app = createApp({ registry });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/workers`);
    expect(response.status).toBe(500);
    const body = errorBodySchema.parse(await response.json());
    expect(body.code).toBe('InternalError');
    expect(body.errorMessage).not.toContain('disk on fire');
  });

  it('validates responses when validateResponses is on: a body off the contract answers 500', async () => {
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 1_000 });
    const node = registry.register(registration('w1').workerNode);
    registry.list = registry.snapshot = () => [{ ...node, status: 'Sleeping' as 'Available' }];
    const serve = async (validateResponses: boolean): Promise<number> => {
      const server = createApp({ registry, options: { validateResponses } }).listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      try {
        return (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/workers`)).status;
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    };
    expect(await serve(true)).toBe(500);
    expect(await serve(false)).toBe(200);
  });

  it('does not announce express', async () => {
    const { url } = await start();
    const response = await fetch(`${url}/api/health`);
    expect(response.headers.get('x-powered-by')).toBeNull();
  });

  it('serves the OpenAPI document', async () => {
    const { raw, url } = await start();
    const response = await raw('GET', '/api/openapi.json');
    expect(response.status).toBe(200);
    expect(response.type).toContain('application/json');
    expect(response.json).toEqual({ ...JSON.parse(JSON.stringify(orchestratorOpenApi())), servers: [{ url }] });
  });

  describe("the spec's curl examples", () => {
    it('registers with the spec body verbatim, taking the load but owning status and time', async () => {
      const { raw, client } = await start();
      const response = await raw('POST', '/api/workers/register', SPEC_REGISTER_BODY);
      expect(response).toMatchObject({
        status: 200,
        json: { success: true, workerId: 'worker-machine1-abc123', heartbeatIntervalSeconds: 15 },
      });
      const list = await client.workers.list();
      expect(list.status).toBe(200);
      const [node] = list.status === 200 ? list.body : [];
      expect(node).toMatchObject({
        id: 'worker-machine1-abc123',
        capabilities: { maxParallelModules: 4, tags: ['gpu-enabled', 'high-memory'] },
        currentLoad: 0,
        status: 'Available',
      });
      expect(node?.lastHeartbeat).not.toBe('2025-09-30T10:00:00Z');
    });

    it('answers the heartbeat example 404 until worker-123 registers, then 200', async () => {
      const { raw } = await start();
      const heartbeat = '{"workerId":"worker-123","currentLoad":2}';
      const before = await raw('POST', '/api/workers/heartbeat', heartbeat);
      expect(before.status).toBe(404);
      expect(before.json).toMatchObject({ success: false, code: 'WorkerNotFound' });
      const body = JSON.parse(SPEC_REGISTER_BODY) as RegisterWorkerRequest;
      body.workerNode.id = 'worker-123';
      expect((await raw('POST', '/api/workers/register', JSON.stringify(body))).status).toBe(200);
      const after = await raw('POST', '/api/workers/heartbeat', heartbeat);
      expect(after).toMatchObject({ status: 200, json: { acknowledged: true, shouldDrain: false } });
    });
  });

  describe('registry bounds (issue 11)', () => {
    const RETENTION_MS = 60_000;
    const withPipeline = (id: string, name: string, modules = ['build']): RegisterWorkerRequest => ({
      workerNode: { ...registration(id).workerNode, pipeline: { name, fingerprint: `sha256:${name}`, modules } },
    });

    it('answers a new id past --max-workers 503 TooManyWorkers with Retry-After; a known id registers again; room after the retention', async () => {
      const { client, registry, clock } = await start({ maxWorkers: 2, offlineRetentionMs: RETENTION_MS });
      const w1 = await client.workers.register({ body: registration('w1') });
      await client.workers.register({ body: registration('w2') });
      const refused = await client.workers.register({ body: registration('w3') });
      expect(refused).toMatchObject({ status: 503, body: { success: false, code: 'TooManyWorkers' } });
      // w1 goes at the earliest the timeout plus the retention after its registration.
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual((TIMEOUT_MS + RETENTION_MS) / 1_000 - 5);
      expect(retryAfter).toBeLessThanOrEqual((TIMEOUT_MS + RETENTION_MS) / 1_000);
      // A known id, with its credential: 200 however full the registry is.
      const credential = w1.status === 200 ? w1.body.credential : '';
      expect((await client.workers.register({ body: { ...registration('w1'), credential } })).status).toBe(200);
      clock.advance(TIMEOUT_MS + RETENTION_MS + 1_000);
      registry.sweep();
      expect((await client.workers.heartbeat({ body: { workerId: 'w2', currentLoad: 0 } })).status).toBe(404);
      expect((await client.workers.register({ body: registration('w3') })).status).toBe(200);
      const list = await client.workers.list();
      expect(list.status === 200 && list.body.map((node) => node.id)).toEqual(['w3']);
    });

    it('answers a new distinct pipeline past --max-pipelines 503 TooManyPipelines with Retry-After; a known one passes', async () => {
      const { client } = await start({ maxPipelines: 1 });
      expect((await client.workers.register({ body: withPipeline('a1', 'a') })).status).toBe(200);
      expect((await client.workers.register({ body: withPipeline('a2', 'a') })).status).toBe(200);
      const refused = await client.workers.register({ body: withPipeline('b1', 'b') });
      expect(refused).toMatchObject({ status: 503, body: { code: 'TooManyPipelines' } });
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await client.workers.unregister({ params: { workerId: 'a1' } })).status).toBe(200);
      expect((await client.workers.unregister({ params: { workerId: 'a2' } })).status).toBe(200);
      expect((await client.workers.register({ body: withPipeline('b1', 'b') })).status).toBe(200);
    });

    it('answers an advertised pipeline larger than LIMITS.pipeline 400 naming the field', async () => {
      const { raw } = await start();
      // 4,000 names of 100 characters: within the module count and the body limit, over the characters.
      const modules = Array.from({ length: 4_000 }, (_, index) => `m${String(index).padStart(99, '0')}`);
      expect(modules.join('').length).toBeGreaterThan(LIMITS.pipeline.maxNameCharacters);
      const response = await raw('POST', '/api/workers/register', JSON.stringify(withPipeline('w1', 'p', modules)));
      expect(response.status).toBe(400);
      expect(errorBodySchema.parse(response.json)).toMatchObject({
        code: 'ValidationFailed',
        issues: [
          {
            field: 'body.workerNode.pipeline.modules',
            message: `the module names must take at most ${LIMITS.pipeline.maxNameCharacters} characters together`,
          },
        ],
      });
    });
  });
});

describe("a registration again by the holder's incarnation (409 WorkerIdTaken with Retry-After)", () => {
  const JOIN_TOKEN = 'join-token-0123456789abcdef';

  async function startWithJoinToken() {
    const clock = new TestClock();
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: TIMEOUT_MS, now: clock.now });
    const app = createApp({ registry, options: { joinToken: JOIN_TOKEN, validateResponses: true } });
    const url = await serve(app);
    const post = async (path: string, token: string | undefined, body: unknown) => {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
      return {
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
        json: (await response.json()) as Record<string, unknown>,
      };
    };
    return { registry, clock, post };
  }

  const INCARNATION = 'incarnation-1';
  const register = (incarnation = INCARNATION, credential?: string) => ({
    ...registration('w1'),
    incarnation,
    ...(credential ? { credential } : {}),
  });
  const heartbeat = { workerId: 'w1', currentLoad: 0, incarnation: INCARNATION };

  it("the holder's own incarnation, its credential never used, without the credential: 409 WorkerIdTaken with Retry-After, the holder's credential kept (the incarnation is no secret)", async () => {
    const { registry, post } = await startWithJoinToken();
    const first = await post('/api/workers/register', JOIN_TOKEN, register());
    expect(first.status).toBe(200);
    const credential = first.json.credential as string;
    expect((await post('/api/workers/register', undefined, register())).status).toBe(401);
    // No request used the credential yet; the same incarnation registers again without it.
    const again = await post('/api/workers/register', JOIN_TOKEN, register());
    expect(again).toMatchObject({ status: 409, json: { code: 'WorkerIdTaken' } });
    expect(Number(again.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(again.retryAfter)).toBeLessThanOrEqual(TIMEOUT_MS / 1000 + 1);
    expect(JSON.stringify(again.json)).not.toContain(credential);
    expect(registry.credentialOf('w1')).toBe(credential);
    expect((await post('/api/workers/heartbeat', credential, heartbeat)).status).toBe(200);
  });

  it("from another incarnation, or its own after a heartbeat, 409 WorkerIdTaken with Retry-After: the seconds until the holder's lease ends", async () => {
    const { registry, clock, post } = await startWithJoinToken();
    const credential = (await post('/api/workers/register', JOIN_TOKEN, register())).json.credential as string;
    // Another process under the id.
    const other = await post('/api/workers/register', JOIN_TOKEN, register('incarnation-2'));
    expect(other).toMatchObject({ status: 409, json: { code: 'WorkerIdTaken' } });
    // The harness's clock runs (Date.now() plus what advance() adds): the test's own time is allowed for.
    expect(Number(other.retryAfter)).toBeGreaterThanOrEqual(TIMEOUT_MS / 1000 - 10);
    expect(Number(other.retryAfter)).toBeLessThanOrEqual(TIMEOUT_MS / 1000 + 1);
    expect((await post('/api/workers/heartbeat', credential, heartbeat)).status).toBe(200);
    clock.advance(30_000);
    const again = await post('/api/workers/register', JOIN_TOKEN, register());
    expect(again).toMatchObject({ status: 409, json: { code: 'WorkerIdTaken' } });
    expect(Number(again.retryAfter)).toBeGreaterThanOrEqual((TIMEOUT_MS - 30_000) / 1000 - 10);
    expect(Number(again.retryAfter)).toBeLessThanOrEqual((TIMEOUT_MS - 30_000) / 1000 + 1);
    expect(JSON.stringify(again.json)).not.toContain(credential);
    expect(registry.credentialOf('w1')).toBe(credential);
    // Presenting the credential, it registers again and keeps it.
    expect(await post('/api/workers/register', JOIN_TOKEN, register(INCARNATION, credential))).toMatchObject({
      status: 200,
      json: { credential },
    });
  });
});

describe("a registration whose answer was lost: the process's retry by its registration key (Idempotency-Key and sequence)", () => {
  const JOIN_TOKEN = 'join-token-0123456789abcdef';
  const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
  /** The worker process's registration key, as a worker sends it (a Structured Field string). */
  const KEY = 'k'.repeat(11) + 'Q2hvb3NlIGEgcmFuZG9tIGtleSBwbGVhc2U'; // 46 characters
  const OTHER_KEY = 'x'.repeat(43);
  const INCARNATION = 'incarnation-1';

  async function startCluster(tokens: { joinToken?: string; adminToken?: string } = { joinToken: JOIN_TOKEN }) {
    const clock = new TestClock();
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: TIMEOUT_MS, now: clock.now });
    const events: string[] = [];
    registry.onChange((event) => events.push(event.type));
    const app = createApp({ registry, options: { ...tokens, validateResponses: true } });
    const url = await serve(app);
    /** Every answer's text, to check none names the incarnation or the key. */
    const answers: string[] = [];
    const call = async (
      method: string,
      path: string,
      token: string | undefined,
      body?: unknown,
      headers: Record<string, string> = {},
    ) => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      answers.push(`${response.status} ${[...response.headers].join(' ')} ${text}`);
      return {
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
        json: JSON.parse(text) as Record<string, unknown>,
      };
    };
    /** A registration attempt of the process: its key (quoted, as sent) and `sequence`. */
    const register = (
      sequence: number | undefined,
      {
        /** `null`: no `Idempotency-Key` header. */
        key = KEY as string | null,
        incarnation = INCARNATION,
        endpoint = 'http://w1:9000',
        tools = ['node'],
        credential = undefined as string | undefined,
        token = tokens.joinToken,
        /** false: the key bare (Stripe's form) rather than a Structured Field string (the draft's). */
        quoted = true,
      } = {},
    ) =>
      call(
        'POST',
        '/api/workers/register',
        token,
        {
          workerNode: {
            id: 'w1',
            endpoint,
            capabilities: { os: 'linux', installedTools: tools, maxParallelModules: 2, tags: [] },
          },
          timestamp: new Date().toISOString(),
          incarnation,
          ...(sequence === undefined ? {} : { sequence }),
          ...(credential ? { credential } : {}),
        },
        key === null ? {} : { 'idempotency-key': quoted ? `"${key}"` : key },
      );
    const heartbeat = (credential: string | undefined, incarnation = INCARNATION) =>
      call('POST', '/api/workers/heartbeat', credential, { workerId: 'w1', currentLoad: 0, incarnation });
    return { registry, clock, events, answers, call, register, heartbeat };
  }

  /** The 409 every refused retry gets: `WorkerIdTaken` with `Retry-After`, as any registration of a live id. */
  const REFUSED = { status: 409, json: { code: 'WorkerIdTaken' } };
  const expectRefused = (answer: { status: number; retryAfter: string | null; json: unknown }): void => {
    expect(answer).toMatchObject(REFUSED);
    expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(answer.retryAfter)).toBeLessThanOrEqual(TIMEOUT_MS / 1000 + 1);
  };

  it('the same key, incarnation and registration with a greater sequence, before any request used the credential: 200, a new credential, the unread one revoked (401)', async () => {
    const { registry, events, register, heartbeat } = await startCluster();
    const first = await register(1);
    expect(first.status).toBe(200);
    const lost = first.json.credential as string;
    registry.requestCancel('w1', 'exec-1', 'cancelled');
    // The answer never reached the process; it tries again with the next sequence number.
    const retried = await register(2);
    expect(retried).toMatchObject({
      status: 200,
      json: { success: true, workerId: 'w1', heartbeatIntervalSeconds: 30 },
    });
    const credential = retried.json.credential as string;
    expect(credential).toMatch(/^mpdw_/);
    expect(credential).not.toBe(lost);
    expect(registry.workerWithCredential(lost)).toBeUndefined();
    expect((await heartbeat(lost)).status).toBe(401);
    expect(await heartbeat(credential)).toMatchObject({ status: 200, json: { cancel: [{ executionId: 'exec-1' }] } });
    // The same process: no replacement, its cancels kept.
    expect(events).toEqual(['registered', 'registered', 'heartbeat']);
  });

  it('the key bare or quoted is one key', async () => {
    const { registry, register } = await startCluster();
    const lost = (await register(1)).json.credential as string;
    expect((await register(2, { quoted: false })).status).toBe(200);
    expect(registry.workerWithCredential(lost)).toBeUndefined();
  });

  it('a retry also counts without a join token (the key, not a token, proves the process)', async () => {
    const { registry, register, heartbeat } = await startCluster({});
    const lost = (await register(1)).json.credential as string;
    const retried = await register(5);
    expect(retried.status).toBe(200);
    expect(registry.workerWithCredential(lost)).toBeUndefined();
    expect((await heartbeat(retried.json.credential as string)).status).toBe(200);
  });

  it("another key (an attacker who read the id, the incarnation and the registration), or none: 409 WorkerIdTaken with Retry-After, the holder's credential kept", async () => {
    for (const tokens of [{ joinToken: JOIN_TOKEN }, {}]) {
      const { registry, register, heartbeat } = await startCluster(tokens);
      const credential = (await register(1)).json.credential as string;
      for (const key of [OTHER_KEY, null]) {
        for (const sequence of [2, 1_000_000, Number.MAX_SAFE_INTEGER, undefined]) {
          const refused = await register(sequence, { key });
          expect(refused).toMatchObject(REFUSED);
          expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
          expect(Number(refused.retryAfter)).toBeLessThanOrEqual(TIMEOUT_MS / 1000 + 1);
        }
      }
      expect(registry.credentialOf('w1')).toBe(credential);
      expect((await heartbeat(credential)).status).toBe(200);
    }
  });

  it('the key with another registration (endpoint, capabilities) or another incarnation: 409, nothing changed', async () => {
    const { registry, register, heartbeat } = await startCluster();
    const credential = (await register(1)).json.credential as string;
    expectRefused(await register(2, { endpoint: 'http://attacker:9000' }));
    expectRefused(await register(3, { tools: ['node', 'docker'] }));
    expectRefused(await register(4, { incarnation: 'incarnation-2' }));
    expect(registry.credentialOf('w1')).toBe(credential);
    expect(registry.get('w1')).toMatchObject({
      endpoint: 'http://w1:9000',
      capabilities: { installedTools: ['node'] },
    });
    expect((await heartbeat(credential)).status).toBe(200);
  });

  it('a stale duplicate (the same or a smaller sequence than one served) never revokes anything: 409, the live credential kept', async () => {
    const { registry, register, heartbeat } = await startCluster();
    // The same attempt twice (a gateway's retry of a served request): the second is stale.
    const served = (await register(1)).json.credential as string;
    expectRefused(await register(1));
    expect(registry.credentialOf('w1')).toBe(served);
    // The process's retry is served and read; then duplicates of both attempts arrive.
    const live = (await register(2)).json.credential as string;
    expectRefused(await register(2));
    expectRefused(await register(1));
    expect(registry.credentialOf('w1')).toBe(live);
    expect((await heartbeat(live)).status).toBe(200);
  });

  it('once a request used the credential (a heartbeat, even refused; a registration presenting it), no retry revokes it: 409', async () => {
    const { registry, register, heartbeat, call } = await startCluster({
      joinToken: JOIN_TOKEN,
      adminToken: ADMIN_TOKEN,
    });
    const credential = (await register(1)).json.credential as string;
    expect((await heartbeat(credential)).status).toBe(200);
    expectRefused(await register(2));
    expect(registry.credentialOf('w1')).toBe(credential);

    // A request the orchestrator refuses still proves the caller holds the credential.
    const { registry: registry2, register: register2, call: call2 } = await startCluster({ joinToken: JOIN_TOKEN });
    const used = (await register2(1)).json.credential as string;
    expect((await call2('POST', '/api/workers/register', used, {})).status).toBe(403);
    expectRefused(await register2(2));
    expect(registry2.credentialOf('w1')).toBe(used);

    // A registration that presented the credential: kept, and no retry after it revokes it.
    const again = await register(3, { credential });
    expect(again).toMatchObject({ status: 200, json: { credential } });
    expectRefused(await register(4));
    expect(registry.credentialOf('w1')).toBe(credential);
    expect((await call('GET', '/api/workers', ADMIN_TOKEN)).status).toBe(200);
  });

  it('past the holder going Offline, any registration takes the id as before', async () => {
    const { registry, clock, register } = await startCluster();
    const credential = (await register(1)).json.credential as string;
    clock.advance(TIMEOUT_MS + 1);
    const taken = await register(undefined, { key: OTHER_KEY, incarnation: 'incarnation-2' });
    expect(taken.status).toBe(200);
    expect(registry.workerWithCredential(credential)).toBeUndefined();
  });

  it("no answer anyone but the worker gets names its incarnation or its key: every 409 (WorkerIdTaken, WorkerReplaced to an anonymous heartbeat or an admin's drain)", async () => {
    for (const tokens of [{}, { joinToken: JOIN_TOKEN, adminToken: ADMIN_TOKEN }]) {
      const { register, heartbeat, call, answers } = await startCluster(tokens);
      await register(1);
      const conflicts = [
        await register(2, { key: OTHER_KEY }),
        await register(1),
        await register(2, { incarnation: 'incarnation-2' }),
        await call('POST', '/api/workers/w1/drain?incarnation=guess', tokens.adminToken),
        await call('DELETE', '/api/workers/w1?incarnation=guess', tokens.adminToken),
      ];
      if (tokens.joinToken === undefined) conflicts.push(await heartbeat(undefined, 'guess'));
      for (const conflict of conflicts) expect(conflict.status).toBe(409);
      expect(conflicts.map((conflict) => conflict.json.code)).toEqual(
        expect.arrayContaining(['WorkerIdTaken', 'WorkerReplaced']),
      );
      for (const answer of answers) {
        expect(answer).not.toContain(INCARNATION);
        expect(answer).not.toContain('guess');
        expect(answer).not.toContain(KEY);
      }
    }
  });

  it('a malformed Idempotency-Key or sequence: 400 naming the field, never echoing the key', async () => {
    const { register, answers } = await startCluster();
    for (const key of ['short', 'x'.repeat(256), `${'x'.repeat(40)} y`, `${'x'.repeat(40)}"`, `${'é'.repeat(40)}`]) {
      const refused = await register(1, { key });
      expect(refused).toMatchObject({ status: 400, json: { code: 'ValidationFailed' } });
      expect(refused.json.errorMessage).toContain('headers.idempotency-key');
      expect(answers.at(-1)).not.toContain(key.slice(0, 32));
    }
    for (const sequence of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 2]) {
      const refused = await register(sequence);
      expect(refused).toMatchObject({ status: 400, json: { code: 'ValidationFailed' } });
      expect(refused.json.errorMessage).toContain('body.sequence');
    }
    expect((await register(1)).status).toBe(200);
  });
});
