import type { WorkerClient } from '@mpd/client';
import { type AnyModule, defineModule, definePipeline } from '@mpd/pipeline';
import { instantWorkerClient } from '@mpd/test-kit';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { OrchestratorConfigError } from '../errors.js';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { runPipeline } from './pipeline-runner.js';

async function startOrder(
  modules: AnyModule[],
  slots: number,
  workers = 1,
  durationHints?: Record<string, number>,
): Promise<string[]> {
  const pipeline = definePipeline({ name: 'order', modules });
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
  for (let index = 0; index < workers; index++) {
    registry.register({
      id: `w${index}`,
      endpoint: `http://w${index}:9000`,
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: slots, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
    });
  }
  const started: string[] = [];
  // Answers every execute at once, recording the order modules started in.
  const client = instantWorkerClient({
    onExecute: (body) => started.push(body.moduleTypeName),
  }) as unknown as WorkerClient;
  const result = await runPipeline({
    pipeline,
    registry,
    logger: pino({ level: 'silent' }),
    createClient: () => client,
    ...(durationHints ? { durationHints } : {}),
  });
  expect(result.status).toBe('Successful');
  return started;
}

describe('runPipeline: the order ready modules start in', () => {
  const run = () => null;

  it('starts, among modules of the same priority, the one heading the longest chain first', async () => {
    const short = defineModule({ name: 'short', run });
    const long = defineModule({ name: 'long', run });
    const next = defineModule({ name: 'next', dependsOn: [long], run });
    const last = defineModule({ name: 'last', dependsOn: [next], run });
    // long heads 3 modules, short 1; then next heads 2; then last and short tie: pipeline order.
    expect(await startOrder([short, long, next, last], 1)).toEqual(['long', 'next', 'short', 'last']);
  });

  it('with duration hints, starts the most remaining work first, not the longest chain in modules', async () => {
    const short = defineModule({ name: 'short', run });
    const long = defineModule({ name: 'long', run });
    const next = defineModule({ name: 'next', dependsOn: [long], run });
    const slow = defineModule({ name: 'slow', run });
    const modules = [short, long, next, slow];
    // Without hints: long heads 2 modules, the others 1 (then pipeline order).
    expect(await startOrder(modules, 1)).toEqual(['long', 'short', 'next', 'slow']);
    // slow (5 s) outweighs long + next (1 s + 2 s = 3 s); short has no hint and weighs the
    // median, 2 s, as much as next: pipeline order between them.
    expect(await startOrder(modules, 1, 1, { long: 1_000, next: 2_000, slow: 5_000 })).toEqual([
      'slow',
      'long',
      'short',
      'next',
    ]);
  });

  it('puts priority before the chain rule, and pipeline order last', async () => {
    const low = defineModule({ name: 'low', priority: 'Low', run });
    const chain = defineModule({ name: 'chain', priority: 'Low', run });
    const after = defineModule({ name: 'after', priority: 'Low', dependsOn: [chain], run });
    const high = defineModule({ name: 'high', priority: 'High', run });
    const first = defineModule({ name: 'first', run });
    const second = defineModule({ name: 'second', run });
    expect(await startOrder([low, chain, after, high, first, second], 1)).toEqual([
      'high',
      'first',
      'second',
      'chain',
      'low',
      'after',
    ]);
  });

  it('runs a wide pipeline on many workers, each module once', async () => {
    const modules = Array.from({ length: 300 }, (_, index) => defineModule({ name: `m${index}`, run }));
    const started = await startOrder(modules, 2, 50);
    expect(started).toHaveLength(300);
    expect(new Set(started).size).toBe(300);
  });
});

describe('runPipeline: its log', () => {
  const run = () => null;
  const LEVELS: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'warn' };

  it("logs a module that succeeded at debug ('module finished'), and one that failed at info", async () => {
    const ok = defineModule({ name: 'ok', run });
    const bad = defineModule({ name: 'bad', dependsOn: [ok], run });
    const pipeline = definePipeline({ name: 'logged', modules: [ok, bad] });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    registry.register({
      id: 'w0',
      endpoint: 'http://w0:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
    });
    const instant = instantWorkerClient({ workerId: 'w0' });
    // `bad` fails as a worker answers a module that threw.
    const client = {
      ...instant,
      execution: {
        ...instant.execution,
        execute: async (request: Parameters<typeof instant.execution.execute>[0]) => {
          const answer = await instant.execution.execute(request);
          if (request.body.moduleTypeName !== 'bad') return answer;
          const { serializedResult: _, ...times } = answer.body;
          return {
            status: 500,
            body: { ...times, success: false, errorMessage: 'boom', exceptionType: 'Error', failureKind: 'Error' },
          };
        },
      },
    } as unknown as WorkerClient;
    const finished = async (level: 'info' | 'debug') => {
      const lines: { level: number; msg: string; module?: string }[] = [];
      const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      const result = await runPipeline({ pipeline, registry, logger, createClient: () => client });
      expect(result.status).toBe('Failed');
      return lines
        .filter((line) => line.msg === 'module finished')
        .map((line) => `${LEVELS[line.level]} ${line.module}`);
    };
    // Issue 14: the progress output prints each module's end; a log write per success sat on the hot path.
    expect(await finished('info')).toEqual(['info bad']);
    expect(await finished('debug')).toEqual(['debug ok', 'info bad']);
  });
});

describe('runPipeline: modules no worker can take', () => {
  const run = () => null;
  const logger = pino({ level: 'silent' });

  it('fails them after workerWaitMs, naming what is missing, and their dependants with them', async () => {
    const build = defineModule({ name: 'build', run });
    const train = defineModule({ name: 'train', requires: { tags: ['gpu'] }, run });
    const report = defineModule({ name: 'report', dependsOn: [build], run });
    const pipeline = definePipeline({ name: 'nobody', modules: [build, train, report] });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    // A worker of another pipeline is no worker for this one.
    registry.register({
      id: 'w-other',
      endpoint: 'http://w-other:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 2, tags: [] },
      pipeline: { name: 'other', fingerprint: 'sha256:other', modules: ['build'] },
    });
    const started = Date.now();
    const result = await runPipeline({
      pipeline,
      registry,
      logger,
      failureMode: 'WaitForAll',
      workerWaitMs: 200,
      rescheduleIntervalMs: 20,
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    const byName = Object.fromEntries(result.modules.map((module) => [module.name, module]));
    expect(result.status).toBe('Failed');
    expect(byName.build).toMatchObject({ status: 'Failed', error: { type: 'NoCapableWorker' }, attempts: [] });
    expect(byName.build!.error!.message).toBe(
      `Module 'build' could not be dispatched after waiting 00:00:00.2000000: no live worker with pipeline 'nobody' (fingerprint ${pipeline.fingerprint}) was registered: w-other loaded pipeline 'other', not 'nobody'`,
    );
    expect(byName.train).toMatchObject({ status: 'Failed', error: { type: 'NoCapableWorker' } });
    expect(byName.report).toMatchObject({ status: 'DependencyFailed', reason: "dependency 'build' ended Failed" });
  });

  it('with workerWaitMs 0, fails them at once saying what they ask for, not "after waiting 00:00:00"', async () => {
    const build = defineModule({ name: 'build', run });
    const train = defineModule({ name: 'train', requires: { os: ['linux'], tags: ['gpu'] }, run });
    const pipeline = definePipeline({ name: 'nowait', modules: [build, train] });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    registry.register({
      id: 'w-other',
      endpoint: 'http://w-other:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 2, tags: [] },
      pipeline: { name: 'other', fingerprint: 'sha256:other', modules: ['build'] },
    });
    const result = await runPipeline({
      pipeline,
      registry,
      logger,
      failureMode: 'WaitForAll',
      workerWaitMs: 0,
      rescheduleIntervalMs: 20,
    });
    const byName = Object.fromEntries(result.modules.map((module) => [module.name, module]));
    expect(byName.build).toMatchObject({ status: 'Failed', error: { type: 'NoCapableWorker' }, attempts: [] });
    expect(byName.build!.error!.message).toBe(
      `Module 'build' could not be dispatched: no live worker can run it (it asks for pipeline 'nowait' (fingerprint ${pipeline.fingerprint})): w-other loaded pipeline 'other', not 'nowait'`,
    );
    expect(byName.train!.error!.message).toBe(
      `Module 'train' could not be dispatched: no live worker can run it (it asks for pipeline 'nowait' (fingerprint ${pipeline.fingerprint}), os one of [linux], tag 'gpu'): w-other loaded pipeline 'other', not 'nowait'`,
    );
  });

  it('names what the live workers lack', async () => {
    const train = defineModule({ name: 'train', requires: { tags: ['gpu'] }, run });
    const pipeline = definePipeline({ name: 'gpu', modules: [train] });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    registry.register({
      id: 'w-cpu',
      endpoint: 'http://w-cpu:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 2, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: ['train'] },
    });
    const result = await runPipeline({ pipeline, registry, logger, workerWaitMs: 100, rescheduleIntervalMs: 20 });
    expect(result.modules[0]!.error!.message).toMatch(
      /could not be dispatched after waiting .*: it needs tag 'gpu', and no live worker has it: w-cpu lacks tag 'gpu'$/,
    );
  });

  // Issue 11: every registry event made the run read the whole registry again: quadratic
  // under a flood of registrations while a module waits for a worker that can run it.
  it('does not read the whole registry per registration while a module waits for a capable worker', async () => {
    const train = defineModule({ name: 'train', requires: { tags: ['gpu'] }, run });
    const pipeline = definePipeline({ name: 'gpu', modules: [train] });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    let reads = 0;
    const snapshot = registry.snapshot.bind(registry);
    registry.snapshot = () => {
      reads++;
      return snapshot();
    };
    const register = (id: string, tags: string[]) =>
      registry.register({
        id,
        endpoint: `http://${id}:9000`,
        capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags },
        pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: ['train'] },
      });
    const running = runPipeline({
      pipeline,
      registry,
      logger,
      workerWaitMs: 600_000,
      rescheduleIntervalMs: 600_000,
      createClient: () => instantWorkerClient() as unknown as WorkerClient,
    });
    // One registration per turn of the event loop, as HTTP registrations come.
    for (let index = 0; index < 1_000; index++) {
      register(`cpu-${index}`, []);
      await new Promise((resolve) => setImmediate(resolve));
    }
    register('gpu', ['gpu']);
    const result = await running;
    expect(result.status).toBe('Successful');
    expect(result.modules[0]!.attempts.map((attempt) => attempt.workerId)).toEqual(['gpu']);
    expect(reads).toBeLessThanOrEqual(2);
  });

  it('rejects options that cannot work, before anything runs', async () => {
    const pipeline = definePipeline({ name: 'bad', modules: [defineModule({ name: 'a', run })] });
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
    const running = runPipeline({ pipeline, registry, logger, rescheduleIntervalMs: 0 });
    await expect(running).rejects.toThrow(OrchestratorConfigError);
    await expect(running).rejects.toMatchObject({ setting: 'rescheduleIntervalMs' });
  });
});

/**
 * Pipeline `name` of one module `a`, and worker `w0` registered with a retry key (sequence 1:
 * its credential `unread`, which the worker never read). The client answers an execute that
 * bears `unread` with 401 `Unauthorized` after calling `onUnread(registerAgain)` (`registerAgain`:
 * the worker's registration retry, sequence 2, which revokes `unread`), one that bears the
 * credential held now at once (as `instantWorkerClient`), and throws on any other (a revoked
 * one). `sentWith`: the credential of each execute, in order.
 */
function workerRegisteringAgain(name: string, onUnread: (registerAgain: () => void) => void) {
  const module = defineModule({ name: 'a', run: () => null });
  const pipeline = definePipeline({ name, modules: [module] });
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
  const node = {
    id: 'w0',
    endpoint: 'http://w0:9000',
    capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: ['a'] },
  };
  const key = 'k'.repeat(43);
  const register = (sequence: number) =>
    registry.register(node, { exclusive: true, incarnation: 'i-1', retryKey: key, sequence });
  register(1);
  const unread = registry.credentialOf('w0')!;
  const instant = instantWorkerClient({ workerId: 'w0' });
  const sentWith: string[] = [];
  const createClient = ({ token }: { token?: string }) =>
    ({
      execution: {
        execute: async (request: Parameters<typeof instant.execution.execute>[0]) => {
          sentWith.push(token!);
          if (token !== registry.credentialOf('w0')) throw new Error('a call with a revoked credential');
          if (token !== unread) return instant.execution.execute(request);
          onUnread(() => register(2));
          return {
            status: 401,
            body: { success: false, code: 'Unauthorized', errorMessage: 'the bearer token is not valid' },
          };
        },
        cancel: instant.execution.cancel,
      },
      close: async () => undefined,
    }) as unknown as WorkerClient;
  return { pipeline, registry, unread, sentWith, createClient };
}

describe('runPipeline: an execute refused for a credential the worker registered again without', () => {
  it('is sent again with the credential the worker holds now, not judged broken (a registration retry after a lost answer revoked the one it was sent with)', async () => {
    // The worker held the call bearing `unread` until its registration completed: by its
    // retry, which revoked the credential the call bears (the worker never read it).
    const { pipeline, registry, unread, sentWith, createClient } = workerRegisteringAgain('retry', (registerAgain) =>
      registerAgain(),
    );
    const result = await runPipeline({
      pipeline,
      registry,
      logger: pino({ level: 'silent' }),
      workerWaitMs: 2_000,
      createClient,
    });
    expect(result.status).toBe('Successful');
    const [attempt, ...others] = result.modules[0]!.attempts;
    expect(others).toEqual([]);
    expect(attempt).toMatchObject({ workerId: 'w0', outcome: 'Succeeded' });
    expect(sentWith).toEqual([unread, registry.credentialOf('w0')]);
  });
});

describe('runPipeline: an execute refused for the credential the worker is to hold, which it has not read yet', () => {
  it('is a refusal of a worker still registering (requeued, no lost attempt, no quarantine), not a broken worker: the module runs once the worker read its credential, even with maxLostAttempts 0', async () => {
    // A worker that had registered before registers again (an orchestrator restarted): served,
    // its answer lost. It holds only its earlier credential, and refuses the new one at once.
    // Its retry reaches the orchestrator after this refusal was judged (a macrotask later: the
    // answer is judged in the microtasks that follow it).
    const { pipeline, registry, unread, sentWith, createClient } = workerRegisteringAgain('unread', (registerAgain) =>
      setTimeout(registerAgain, 0),
    );
    const lost: string[] = [];
    const result = await runPipeline({
      pipeline,
      registry,
      logger: pino({ level: 'silent' }),
      workerWaitMs: 10_000,
      maxLostAttempts: 0,
      onEvent: (event) => {
        if (event.type === 'attempt-lost') lost.push(JSON.stringify(event));
      },
      createClient,
    });
    expect(lost).toEqual([]);
    expect(result.status).toBe('Successful');
    expect(result.modules[0]!.attempts).toMatchObject([
      { workerId: 'w0', outcome: 'Rejected' },
      { workerId: 'w0', outcome: 'Succeeded' },
    ]);
    expect(sentWith).toEqual([unread, registry.credentialOf('w0')]);
  });
});
