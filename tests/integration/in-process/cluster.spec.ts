/**
 * Orchestrator and workers together, as real HTTP servers on 127.0.0.1 in this process:
 * registration, heartbeats, and pipeline runs across two workers.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { runPipeline, type RunResult } from '@mpd/orchestrator';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

let cluster: Cluster;
afterEach(async () => {
  await cluster?.close();
});

const byName = (result: RunResult) => Object.fromEntries(result.modules.map((module) => [module.name, module]));

const a = defineModule({
  name: 'a',
  run: async () => {
    await sleep(50);
    return { value: 1 };
  },
});
const b = defineModule({
  name: 'b',
  dependsOn: [a],
  run: async (ctx) => {
    await sleep(50);
    return { value: ctx.results.a.value + 10, worker: ctx.workerId };
  },
});
const c = defineModule({
  name: 'c',
  dependsOn: [a],
  run: async (ctx) => {
    await sleep(50);
    return { value: ctx.results.a.value + 100, worker: ctx.workerId };
  },
});
const d = defineModule({
  name: 'd',
  dependsOn: [b, c],
  run: (ctx) => ({ sum: ctx.results.b.value + ctx.results.c.value }),
});
const diamond = definePipeline({ name: 'diamond', modules: [a, b, c, d] });

describe('a worker and the orchestrator', () => {
  it('registers, advertising its capabilities and pipeline, and sends heartbeats', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    const worker = await cluster.startWorker({
      id: 'w-caps',
      tags: ['gpu'],
      tools: ['docker', 'node'],
      pipeline: diamond,
    });
    await worker.link!.registered();
    const node = cluster.orchestrator.registry.get('w-caps')!;
    expect(node).toMatchObject({
      endpoint: worker.endpoint,
      status: 'Available',
      capabilities: { tags: ['gpu'], installedTools: ['docker', 'node'], maxParallelModules: 2 },
      pipeline: { name: 'diamond', fingerprint: diamond.fingerprint, modules: ['a', 'b', 'c', 'd'] },
    });
    const first = node.lastHeartbeat;
    await expect
      .poll(() => cluster.orchestrator.registry.get('w-caps')!.lastHeartbeat, {
        timeout: 3_000,
        interval: 20,
        message: 'a heartbeat',
      })
      .not.toBe(first);
  });

  it('keeps trying to register while the orchestrator is down, and registers once it is up', async () => {
    cluster = new Cluster();
    const probe = await cluster.startOrchestrator();
    const { port } = probe;
    await probe.close();
    const worker = await cluster.startWorker({ id: 'w-early', orchestratorUrl: `http://127.0.0.1:${port}` });
    const retrying = () => worker.link!.state.status === 'registering' && worker.link!.state.attempt >= 2;
    await expect.poll(retrying, { timeout: 3_000, interval: 20, message: 'retries' }).toBe(true);
    await cluster.startOrchestrator({ port });
    await worker.link!.registered();
    expect(cluster.orchestrator.registry.get('w-early')?.status).toBe('Available');
  });

  it('registers again when a restarted orchestrator answers its heartbeat with 404', async () => {
    cluster = new Cluster();
    const first = await cluster.startOrchestrator();
    await cluster.startWorker({ id: 'w-again' });
    await expect
      .poll(() => first.registry.get('w-again'), { timeout: 3_000, interval: 20, message: 'registration' })
      .toBeDefined();
    await first.close();
    const second = await cluster.startOrchestrator({ port: first.port });
    expect(second.registry.get('w-again')).toBeUndefined();
    await expect
      .poll(() => second.registry.get('w-again')?.status, { timeout: 5_000, interval: 20, message: 're-registration' })
      .toBe('Available');
  });

  it('unregisters when it stops, and a silent worker turns Offline', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    const worker = await cluster.startWorker({ id: 'w-bye' });
    await worker.link!.registered();
    await worker.close();
    expect(cluster.orchestrator.registry.get('w-bye')).toBeUndefined();

    // A worker that registered by hand and never sends a heartbeat.
    cluster.orchestrator.registry.register({
      id: 'w-silent',
      endpoint: 'http://127.0.0.1:9',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
    });
    expect(cluster.orchestrator.registry.get('w-silent')?.status).toBe('Available');
    cluster.expireAllBut();
    await expect
      .poll(() => cluster.orchestrator.registry.get('w-silent')?.status, {
        timeout: 3_000,
        interval: 20,
        message: 'Offline',
      })
      .toBe('Offline');
  });
});

describe('running a pipeline', () => {
  it('runs a diamond across two workers; results flow into dependants', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    await cluster.startWorker({ id: 'w1', pipeline: diamond });
    await cluster.startWorker({ id: 'w2', pipeline: diamond });
    await Promise.all(cluster.workers.map((worker) => worker.link!.registered()));

    const events: string[] = [];
    const result = await runPipeline({
      pipeline: diamond,
      registry: cluster.orchestrator.registry,
      logger: silent,
      onEvent: (event) => events.push(`${event.type}:${'module' in event ? event.module : ''}`),
    });
    expect(result.success).toBe(true);
    expect(result.status).toBe('Successful');
    const modules = byName(result);
    expect(Object.values(modules).map((module) => module.status)).toEqual([
      'Successful',
      'Successful',
      'Successful',
      'Successful',
    ]);
    expect(modules.d!.result).toEqual({ sum: 11 + 101 });
    // b and c ran at the same time, one on each worker.
    expect(new Set([modules.b!.workerId, modules.c!.workerId])).toEqual(new Set(['w1', 'w2']));
    expect((modules.b!.result as { worker: string }).worker).toBe(modules.b!.workerId);
    expect(modules.a!.attempts).toHaveLength(1);
    expect(modules.a!.durationMs).toBeGreaterThanOrEqual(40);
    expect(events.indexOf('module-finished:a')).toBeLessThan(events.indexOf('module-started:b'));
    expect(events.indexOf('module-started:d')).toBeGreaterThan(events.indexOf('module-finished:b'));
  });

  it('WaitForAll: a failed module fails its dependants (not run); independent modules still run', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    const boom = defineModule({
      name: 'boom',
      run: () => {
        throw new TypeError('cannot read config');
      },
    });
    const after = defineModule({ name: 'after-boom', dependsOn: [boom], run: () => 'never' });
    const later = defineModule({ name: 'later', dependsOn: [after], run: () => 'never' });
    const fine = defineModule({ name: 'fine', run: () => 'ok' });
    const pipeline = definePipeline({ name: 'failing', modules: [boom, after, later, fine] });
    await cluster.startWorker({ pipeline });
    await cluster.workers[0]!.link!.registered();

    const result = await runPipeline({
      pipeline,
      registry: cluster.orchestrator.registry,
      logger: silent,
      failureMode: 'WaitForAll',
    });
    const modules = byName(result);
    expect(result).toMatchObject({ success: false, status: 'Failed' });
    expect(modules.boom).toMatchObject({
      status: 'Failed',
      error: { message: 'cannot read config', type: 'TypeError' },
    });
    expect(modules.boom!.error!.stackTrace).toContain('TypeError: cannot read config');
    expect(modules['after-boom']).toMatchObject({ status: 'DependencyFailed', attempts: [] });
    expect(modules.later).toMatchObject({ status: 'DependencyFailed', attempts: [] });
    expect(modules.fine).toMatchObject({ status: 'Successful', result: 'ok' });
  });

  it('a module past its timeout is TimedOut', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    const slow = defineModule({
      name: 'slow',
      timeoutMs: 150,
      run: async (ctx) => {
        await sleep(5_000, undefined, { signal: ctx.signal });
      },
    });
    const pipeline = definePipeline({ name: 'slow', modules: [slow] });
    await cluster.startWorker({ pipeline });
    await cluster.workers[0]!.link!.registered();
    const result = await runPipeline({ pipeline, registry: cluster.orchestrator.registry, logger: silent });
    expect(byName(result).slow).toMatchObject({ status: 'TimedOut' });
    expect(byName(result).slow!.error!.message).toMatch(/timed out/);
  });

  it('cancelling the run cancels running modules on their workers', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    let observedAbort = false;
    const long = defineModule({
      name: 'long',
      run: async (ctx) => {
        try {
          await sleep(10_000, undefined, { signal: ctx.signal });
        } catch (error) {
          observedAbort = ctx.signal.aborted;
          throw error;
        }
      },
    });
    const next = defineModule({ name: 'next', dependsOn: [long], run: () => 1 });
    const pipeline = definePipeline({ name: 'cancel', modules: [long, next] });
    const worker = await cluster.startWorker({ pipeline });
    await worker.link!.registered();
    const controller = new AbortController();
    const running = runPipeline({
      pipeline,
      registry: cluster.orchestrator.registry,
      logger: silent,
      signal: controller.signal,
    });
    await expect.poll(() => worker.load, { timeout: 3_000, interval: 20, message: 'the module to start' }).toBe(1);
    controller.abort();
    const result = await running;
    expect(result).toMatchObject({ success: false, status: 'Cancelled' });
    expect(byName(result).long!.status).toBe('PipelineTerminated');
    expect(byName(result).next!.status).toBe('PipelineTerminated');
    expect(observedAbort).toBe(true);
    await expect.poll(() => worker.load, { timeout: 3_000, interval: 20, message: 'the worker to be idle' }).toBe(0);
  });

  it('never sends modules to a worker that loaded other pipeline code', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    const changed = definePipeline({
      name: 'diamond',
      modules: [a, b, c, defineModule({ name: 'd', dependsOn: [b, c], run: () => ({ sum: -1 }) })],
    });
    expect(changed.fingerprint).not.toBe(diamond.fingerprint);
    await cluster.startWorker({ id: 'w-other', pipeline: changed });
    await cluster.startWorker({ id: 'w-same', pipeline: diamond });
    await Promise.all(cluster.workers.map((worker) => worker.link!.registered()));
    const result = await runPipeline({ pipeline: diamond, registry: cluster.orchestrator.registry, logger: silent });
    expect(result.success).toBe(true);
    expect(new Set(result.modules.map((module) => module.workerId))).toEqual(new Set(['w-same']));
  });

  it('dispatches a lost attempt again on another worker and accepts one result', async () => {
    cluster = new Cluster();
    await cluster.startOrchestrator();
    let runs = 0;
    const once = defineModule({
      name: 'once',
      run: async (ctx) => {
        runs++;
        await sleep(ctx.workerId === 'w-doomed' ? 10_000 : 100, undefined, { signal: ctx.signal });
        return ctx.workerId;
      },
    });
    const pipeline = definePipeline({ name: 'lost', modules: [once] });
    const doomed = await cluster.startWorker({ id: 'w-doomed', pipeline });
    await doomed.link!.registered();
    const running = runPipeline({ pipeline, registry: cluster.orchestrator.registry, logger: silent });
    await expect.poll(() => doomed.load, { timeout: 3_000, interval: 20, message: 'dispatch to w-doomed' }).toBe(1);
    const survivor = await cluster.startWorker({ id: 'w-survivor', pipeline });
    await survivor.link!.registered();
    // w-doomed goes silent: its heartbeats stop (the process is frozen, not dead).
    cluster.workers.splice(cluster.workers.indexOf(doomed), 1);
    await (doomed.link as unknown as { stopController: AbortController }).stopController.abort();
    cluster.expireAllBut(survivor);
    const result = await running;
    expect(result.success).toBe(true);
    const module = byName(result).once!;
    expect(module).toMatchObject({ status: 'Successful', workerId: 'w-survivor', result: 'w-survivor' });
    expect(module.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
      ['w-doomed', 'Lost'],
      ['w-survivor', 'Succeeded'],
    ]);
    expect(runs).toBe(2);
    // The orchestrator also told w-doomed to stop the abandoned attempt.
    await expect
      .poll(() => doomed.load, { timeout: 3_000, interval: 20, message: 'the abandoned attempt to be cancelled' })
      .toBe(0);
    await doomed.close();
  });
});
