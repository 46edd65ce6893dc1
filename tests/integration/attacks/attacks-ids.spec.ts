/**
 * Issue 11, cases 4 and 6: ids that mean one thing, and a worker that fails closed. Each
 * reproduction of the issue against real servers on 127.0.0.1, asserting which worker a call hit
 * (none but the one it names) and which result a run accepted (never another module's).
 */
import { Writable } from 'node:stream';
import { createOrchestratorClient, createWorkerClient } from '@mpd/client';
import { LIMITS } from '@mpd/contract';
import { runPipeline } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { startWorker, WorkerConfigError } from '@mpd/worker';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent, JOIN_TOKEN as JOIN, ADMIN_TOKEN as ADMIN } from '../helpers/cluster.js';

const TOKEN = 'worker-token-0123456789abcdef';
const RULE = `must be ${LIMITS.workerId.alphabet}`;

let cluster: Cluster | undefined;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
  await cluster?.close();
  cluster = undefined;
});

const node = (id: string) => ({
  id,
  endpoint: 'http://127.0.0.1:9',
  capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
});

/** An orchestrator with both tokens, an admin client, and a raw registration (join token). */
async function orchestratorWithAdmin(options: Parameters<Cluster['startOrchestrator']>[0] = {}) {
  cluster = new Cluster();
  const orchestrator = await cluster.startOrchestrator({ joinToken: JOIN, adminToken: ADMIN, ...options });
  const admin = createOrchestratorClient({ baseUrl: orchestrator.url, token: ADMIN });
  closers.push(() => admin.close());
  const register = async (id: string) => {
    const response = await fetch(`${orchestrator.url}/api/workers/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${JOIN}` },
      body: JSON.stringify({ workerNode: node(id) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const ids = () => orchestrator.registry.snapshot().map((worker) => `${worker.id}:${worker.status}`);
  return { orchestrator, admin, register, ids };
}

describe('case 4: a worker id names one worker, wherever it is written', () => {
  it("an admin's unregister of w1?evil hits no worker (400 naming the rule); w1 stays registered", async () => {
    const { orchestrator, admin, register, ids } = await orchestratorWithAdmin();
    expect((await register('w1')).status).toBe(200);
    const response = await admin.workers.unregister({ params: { workerId: 'w1?evil' }, query: {} });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      code: 'ValidationFailed',
      issues: [{ field: 'params.workerId', message: RULE }],
    });
    // The same by hand, unencoded: the query is a query, the id is w1, and w1 is what the admin named.
    expect(ids()).toEqual(['w1:Available']);
    const raw = await fetch(`${orchestrator.url}/api/workers/w1%3Fevil`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(raw.status).toBe(400);
    expect(ids()).toEqual(['w1:Available']);
  });

  it('a drain of x/../../workers/w2 drains no worker (400): w2 stays Available', async () => {
    const { orchestrator, admin, register, ids } = await orchestratorWithAdmin();
    expect((await register('w2')).status).toBe(200);
    const response = await admin.workers.drain({ params: { workerId: 'x/../../workers/w2' }, query: {} });
    expect(response).toMatchObject({ status: 400, body: { issues: [{ field: 'params.workerId', message: RULE }] } });
    expect(ids()).toEqual(['w2:Available']);
    // What the unencoded path became before: the client refuses the dot-segments outright.
    await expect(admin.workers.drain({ params: { workerId: '..' }, query: {} })).rejects.toThrow(TypeError);
    expect(orchestrator.registry.get('w2')?.status).toBe('Available');
  });

  it('a worker runner#2 cannot start or register, and unregistering runner#2 leaves runner registered', async () => {
    const { admin, register, ids } = await orchestratorWithAdmin();
    expect((await register('runner')).status).toBe(200);
    const refused = await register('runner#2');
    expect(refused).toMatchObject({
      status: 400,
      body: { code: 'ValidationFailed', issues: [{ field: 'body.workerNode.id', message: RULE }] },
    });
    const error = await startWorker({ port: 0, host: '127.0.0.1', id: 'runner#2', logger: silent }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WorkerConfigError);
    expect(error).toMatchObject({ setting: 'id' });
    expect((await admin.workers.unregister({ params: { workerId: 'runner#2' }, query: {} })).status).toBe(400);
    expect(ids()).toEqual(['runner:Available']);
  });

  it('a heartbeat naming a/b is refused (400 naming the rule), as its registration is', async () => {
    const { orchestrator, register } = await orchestratorWithAdmin({ joinToken: undefined });
    expect((await register('a/b')).body).toMatchObject({ issues: [{ field: 'body.workerNode.id', message: RULE }] });
    const heartbeat = await fetch(`${orchestrator.url}/api/workers/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workerId: 'a/b', currentLoad: 0 }),
    });
    expect(heartbeat.status).toBe(400);
    expect(await heartbeat.json()).toMatchObject({ issues: [{ field: 'body.workerId', message: RULE }] });
  });

  // README Security, "Who can take a live worker's id": registration never does; an open
  // unregister does, so without tokens anyone takes a live id in two requests.
  it("without tokens, anyone takes a live worker's id in two requests (unregister, register); the worker stops as replaced", async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    const victim = await cluster.startWorker({ id: 'victim-3' });
    await victim.link!.registered();
    const anyone = (method: string, path: string, body?: unknown) =>
      fetch(`${orchestrator.url}${path}`, {
        method,
        ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
      });
    expect((await anyone('POST', '/api/workers/register', { workerNode: node('victim-3') })).status).toBe(409);
    expect((await anyone('DELETE', '/api/workers/victim-3')).status).toBe(200);
    const taken = await anyone('POST', '/api/workers/register', { workerNode: node('victim-3') });
    expect(taken.status).toBe(200);
    expect(((await taken.json()) as { credential?: string }).credential).toMatch(/^mpdw_/);
    expect(await victim.stopped).toMatchObject({ reason: 'replaced' });
  });

  it("with a join token, neither request works for anyone without the worker's credential", async () => {
    const { orchestrator, register } = await orchestratorWithAdmin({ adminToken: undefined });
    const victim = await cluster!.startWorker({ id: 'victim-3', joinToken: JOIN });
    await victim.link!.registered();
    const unregister = (token?: string) =>
      fetch(`${orchestrator.url}/api/workers/victim-3`, {
        method: 'DELETE',
        ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
      });
    expect((await unregister()).status).toBe(401);
    expect((await unregister(JOIN)).status).toBe(403);
    expect((await register('victim-3')).status).toBe(409);
    expect(orchestrator.registry.get('victim-3')?.status).not.toBe('Offline');
  });

  it('a stopping worker logs success only when the orchestrator says it unregistered it', async () => {
    // Heartbeats 30 s apart: the worker does not notice the admin's unregister before it stops.
    const { orchestrator, admin } = await orchestratorWithAdmin({ heartbeatIntervalSeconds: 30 });
    const lines: { msg: string; status?: number }[] = [];
    const sink = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(JSON.parse(chunk.toString()) as { msg: string; status?: number });
          done();
        },
      }),
    );
    const worker = await cluster!.startWorker({ id: 'w-gone', joinToken: JOIN, logger: sink });
    await worker.link!.registered();
    expect((await admin.workers.unregister({ params: { workerId: 'w-gone' }, query: {} })).status).toBe(200);
    expect(orchestrator.registry.get('w-gone')).toBeUndefined();
    await worker.close(0);
    const messages = lines.map((line) => line.msg);
    expect(messages).not.toContain('unregistered from the orchestrator');
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'the orchestrator refused to unregister this worker; it will expire it' }),
    );
  });
});

describe('case 6: a worker that fails closed; results that cannot be swapped', () => {
  const request = (executionId: string, moduleTypeName: string) => ({
    executionId,
    moduleTypeName,
    serializedModule: 'null',
    dependencyResults: {},
    environmentVariables: {},
  });

  it('a worker with a join token answers 503 WorkerNotReady until it registers, then 401 to all but its credential', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator({ joinToken: JOIN });
    const echo = defineModule({ name: 'echo', run: () => 'ran' });
    const pipeline = definePipeline({ name: 'closed', modules: [echo] });
    // Registration refused (another join token): it never completes, the worker stays closed.
    const waiting = await cluster.startWorker({ id: 'w-waiting', pipeline, joinToken: 'not-the-join-token-0000' });
    const early = await fetch(`${waiting.url}/api/execution/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request('early-1', 'echo')),
    });
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('1');
    expect(await early.json()).toMatchObject({ code: 'WorkerNotReady' });
    expect(waiting.load).toBe(0);

    const worker = await cluster.startWorker({ id: 'w-ready', pipeline, joinToken: JOIN });
    await worker.link!.registered();
    for (const token of [undefined, JOIN, 'mpdw_guessed-0123456789abcdef']) {
      const client = createWorkerClient({ baseUrl: worker.url, ...(token ? { token } : {}) });
      closers.push(() => client.close());
      expect((await client.execution.execute({ body: request('late-1', 'echo') })).status).toBe(401);
      expect((await client.execution.cancel({ body: { executionId: 'late-1' } })).status).toBe(401);
    }
    const own = createWorkerClient({ baseUrl: worker.url, token: worker.link!.credential! });
    closers.push(() => own.close());
    expect((await own.execution.execute({ body: request('late-1', 'echo') })).status).toBe(200);
  });

  it("a --token holder who pre-runs <runId>.c.1 as module a does not get a's result accepted as c's", async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    let seen!: (executionId: string) => void;
    const bRunning = new Promise<string>((resolve) => (seen = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const a = defineModule({ name: 'a', run: () => 'result of a' });
    const b = defineModule({
      name: 'b',
      run: async (ctx) => {
        seen(ctx.executionId);
        await released;
        return 'result of b';
      },
    });
    const c = defineModule({ name: 'c', dependsOn: [b], run: () => 'result of c' });
    const pipeline = definePipeline({ name: 'swap', modules: [a, b, c] });
    await cluster.startWorker({ id: 'w-victim', pipeline, token: TOKEN, slots: 3 });
    const run = runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
    // The attacker learns the run id (here from b's execution id) and runs c's first attempt as a.
    const runId = (await bRunning).replace(/\.b\.1$/, '');
    const attacker = createWorkerClient({ baseUrl: cluster.workers[0]!.url, token: TOKEN });
    closers.push(() => attacker.close());
    const preRun = await attacker.execution.execute({ body: request(`${runId}.c.1`, 'a') });
    expect(preRun).toMatchObject({ status: 200, body: { serializedResult: '"result of a"' } });
    release();
    const result = await run;
    const moduleC = result.modules.find((module) => module.name === 'c');
    expect(moduleC?.result).not.toBe('result of a');
    expect(moduleC).toMatchObject({
      status: 'Failed',
      error: { message: expect.stringMatching(/ExecutionIdConflict|409/) },
    });
    expect(result.success).toBe(false);
  });
});
