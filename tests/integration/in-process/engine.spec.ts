/**
 * The engine's module model, scheduled across real workers (HTTP servers on 127.0.0.1 in this
 * process, so modules can share counters with the test): skips, failures, retries, cleanup,
 * priorities, categories, cluster-wide concurrency limits, capability routing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createOrchestratorClient } from '@mpd/client';
import { defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import { formatSummary, type RunPipelineOptions, runPipeline, type RunResult } from '@mpd/orchestrator';
import type { WorkerOptions } from '@mpd/worker';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const byName = (result: RunResult) => Object.fromEntries(result.modules.map((module) => [module.name, module]));

/** Starts an orchestrator and workers that loaded `pipeline`, waits until they registered. */
async function clusterFor(pipeline: Pipeline, workers: WorkerOptions[] = [{}]): Promise<Cluster> {
  cluster = new Cluster();
  await cluster.startOrchestrator();
  for (const options of workers) await cluster.startWorker({ pipeline, ...options });
  await Promise.all(cluster.workers.map((worker) => worker.link!.registered()));
  return cluster;
}

async function run(pipeline: Pipeline, options: Partial<RunPipelineOptions> = {}): Promise<RunResult> {
  return runPipeline({ pipeline, registry: cluster!.orchestrator.registry, logger: silent, ...options });
}

/** A module that runs until it is cancelled (10 s at most). */
const runsUntilCancelled = (name: string) =>
  defineModule({
    name,
    run: async (ctx) => {
      await sleep(10_000, undefined, { signal: ctx.signal });
    },
  });

/** Runs `pipeline` on one worker and cancels the run once a module runs there: the run's result. */
async function cancelOnceRunning(pipeline: Pipeline): Promise<RunResult> {
  const { workers } = await clusterFor(pipeline);
  const controller = new AbortController();
  const running = run(pipeline, { signal: controller.signal });
  await expect.poll(() => workers[0]!.load, { timeout: 3_000, interval: 20, message: 'work to start' }).toBe(1);
  controller.abort();
  return running;
}

/** Counts how many modules hold a key at once, and the most that ever did. */
class Gauge {
  current = 0;
  max = 0;
  async hold(ms: number): Promise<void> {
    this.current++;
    this.max = Math.max(this.max, this.current);
    await sleep(ms);
    this.current--;
  }
}

describe('skip conditions', () => {
  it('skips with the reason, skips dependants, and lets optional dependants run', async () => {
    const docs = defineModule({
      name: 'docs',
      skipIf: (ctx) => (ctx.env.DOCS === 'off' ? 'docs are off' : undefined),
      run: () => 'built',
    });
    const publishDocs = defineModule({ name: 'publish-docs', dependsOn: [docs], run: () => 'published' });
    const report = defineModule({
      name: 'report',
      optionalDependsOn: [docs],
      run: (ctx) => ({ docs: ctx.optionalResult(docs) ?? 'none' }),
    });
    const pipeline = definePipeline({ name: 'skips', modules: [docs, publishDocs, report] });
    await clusterFor(pipeline);
    const result = await run(pipeline, { environmentVariables: { DOCS: 'off' } });
    const modules = byName(result);
    expect(modules.docs).toMatchObject({ status: 'Skipped', reason: 'docs are off', attempts: [] });
    expect(modules['publish-docs']).toMatchObject({ status: 'Skipped', reason: "dependency 'docs' was skipped" });
    expect(modules.report).toMatchObject({ status: 'Successful', result: { docs: 'none' } });
    expect(result.success).toBe(true);

    const again = await run(pipeline, { environmentVariables: { DOCS: 'on' } });
    expect(byName(again).report).toMatchObject({ status: 'Successful', result: { docs: 'built' } });
  });

  it('skips by category with runOnlyCategories and ignoreCategories', async () => {
    const unit = defineModule({ name: 'unit', category: 'test', run: () => 1 });
    const e2e = defineModule({ name: 'e2e', category: 'slow-test', run: () => 2 });
    const build = defineModule({ name: 'build', category: 'build', run: () => 3 });
    const pipeline = definePipeline({ name: 'categories', modules: [unit, e2e, build] });
    await clusterFor(pipeline);
    const only = byName(await run(pipeline, { runOnlyCategories: ['test', 'build'] }));
    expect([only.unit!.status, only.e2e!.status, only.build!.status]).toEqual(['Successful', 'Skipped', 'Successful']);
    expect(only.e2e!.reason).toBe("category 'slow-test' is not in runOnlyCategories");
    const ignored = byName(await run(pipeline, { ignoreCategories: ['slow-test'] }));
    expect([ignored.unit!.status, ignored.e2e!.status, ignored.build!.status]).toEqual([
      'Successful',
      'Skipped',
      'Successful',
    ]);
  });
});

describe('failures', () => {
  it('ignoreFailures: IgnoredFailure, dependants still run without its result, the run succeeds', async () => {
    const flaky = defineModule({
      name: 'lint',
      ignoreFailures: true,
      run: () => {
        throw new Error('3 warnings');
      },
    });
    const after = defineModule({
      name: 'package',
      dependsOn: [flaky],
      run: (ctx) => ({ lint: ctx.results.lint ?? null }),
    });
    const pipeline = definePipeline({ name: 'ignore', modules: [flaky, after] });
    await clusterFor(pipeline);
    const result = await run(pipeline);
    expect(byName(result).lint).toMatchObject({ status: 'IgnoredFailure', error: { message: '3 warnings' } });
    expect(byName(result).package).toMatchObject({ status: 'Successful', result: { lint: null } });
    expect(result).toMatchObject({ success: true, status: 'Successful' });
  });

  it('StopOnFirstFailure: cancels running modules on every worker, runs nothing new but always-run cleanup', async () => {
    let longAborted = false;
    const fails = defineModule({
      name: 'fails',
      run: async () => {
        await sleep(100);
        throw new Error('boom');
      },
    });
    const long = defineModule({
      name: 'long',
      run: async (ctx) => {
        try {
          await sleep(10_000, undefined, { signal: ctx.signal });
        } catch (error) {
          longAborted = ctx.signal.aborted;
          throw error;
        }
      },
    });
    const later = defineModule({ name: 'later', dependsOn: [long], run: () => 'never' });
    const cleanup = defineModule({ name: 'cleanup', dependsOn: [long, fails], alwaysRun: true, run: () => 'cleaned' });
    const pipeline = definePipeline({ name: 'stop', modules: [fails, long, later, cleanup] });
    await clusterFor(pipeline, [{ id: 'w1' }, { id: 'w2' }]);
    const started = Date.now();
    const result = await run(pipeline);
    const modules = byName(result);
    expect(result).toMatchObject({ success: false, status: 'Failed' });
    expect(modules.fails!.status).toBe('Failed');
    expect(modules.long!.status).toBe('PipelineTerminated');
    expect(longAborted).toBe(true);
    expect(modules.later).toMatchObject({ status: 'PipelineTerminated' });
    expect(modules.later!.reason).toMatch(/stopped because module 'fails' failed/);
    expect(modules.cleanup).toMatchObject({ status: 'Successful', result: 'cleaned' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('always-run cleanup runs after the run is cancelled', async () => {
    const work = runsUntilCancelled('work');
    const cleanup = defineModule({ name: 'cleanup', dependsOn: [work], alwaysRun: true, run: () => 'cleaned' });
    const pipeline = definePipeline({ name: 'cancel-cleanup', modules: [work, cleanup] });
    const result = await cancelOnceRunning(pipeline);
    expect(result.status).toBe('Cancelled');
    expect(byName(result).work!.status).toBe('PipelineTerminated');
    expect(byName(result).cleanup).toMatchObject({ status: 'Successful', result: 'cleaned' });
  });

  it('a module the run cancelled while it ran reads as cancelled while running, apart from those not run', async () => {
    const work = runsUntilCancelled('work');
    const next = defineModule({ name: 'next', dependsOn: [work], run: () => 1 });
    const pipeline = definePipeline({ name: 'cancel-reasons', modules: [work, next] });
    const result = await cancelOnceRunning(pipeline);
    const modules = byName(result);
    expect(modules.work).toMatchObject({
      status: 'PipelineTerminated',
      reason: 'cancelled while running: the run was cancelled',
      attempts: [{ outcome: 'Cancelled' }],
    });
    expect(modules.next).toMatchObject({
      status: 'PipelineTerminated',
      reason: 'not run: the run was cancelled',
      attempts: [],
    });
    const summary = formatSummary(result);
    expect(summary).toContain(
      'Stopped after starting:\n  work (PipelineTerminated): cancelled while running: the run was cancelled\n',
    );
    expect(summary).toMatch(/Not run:\n {2}next \(PipelineTerminated\): not run: the run was cancelled$/);
  });

  it('StopOnFirstFailure: a module cancelled while it ran names the failure that stopped the run', async () => {
    let longStarted!: () => void;
    const started = new Promise<void>((resolve) => (longStarted = resolve));
    // Fails once long runs, so that the run stops while it does.
    const fails = defineModule({
      name: 'fails',
      run: async () => {
        await started;
        throw new Error('boom');
      },
    });
    const long = defineModule({
      name: 'long',
      run: async (ctx) => {
        longStarted();
        await sleep(10_000, undefined, { signal: ctx.signal });
      },
    });
    const pipeline = definePipeline({ name: 'stop-reasons', modules: [fails, long] });
    await clusterFor(pipeline, [{ id: 'w1' }, { id: 'w2' }]);
    const modules = byName(await run(pipeline));
    expect(modules.long).toMatchObject({
      status: 'PipelineTerminated',
      reason: "cancelled while running: the run stopped because module 'fails' failed",
    });
  });

  it('a module waiting to retry when the run stops reads as not run again, among the modules that started', async () => {
    let flakyRetrying!: () => void;
    const retrying = new Promise<void>((resolve) => (flakyRetrying = resolve));
    const flaky = defineModule({
      name: 'flaky',
      retry: { attempts: 1, backoffMs: 30_000 },
      run: () => {
        throw new Error('flaky');
      },
    });
    // Fails once the run put flaky's retry off, so that the run stops while flaky waits for it.
    const fails = defineModule({
      name: 'fails',
      run: async () => {
        await retrying;
        throw new Error('boom');
      },
    });
    const pipeline = definePipeline({ name: 'stop-retry', modules: [flaky, fails] });
    await clusterFor(pipeline, [{ id: 'w1' }, { id: 'w2' }]);
    const result = await run(pipeline, {
      onEvent: (event) => {
        if (event.type === 'module-retrying' && event.module === 'flaky') flakyRetrying();
      },
    });
    expect(byName(result).flaky).toMatchObject({
      status: 'PipelineTerminated',
      reason: "not run again: the run stopped because module 'fails' failed",
      attempts: [{ outcome: 'Failed' }],
    });
    expect(formatSummary(result)).toContain(
      "Stopped after starting:\n  flaky (PipelineTerminated): not run again: the run stopped because module 'fails' failed",
    );
  });

  it('retries a failing module with backoff, and fails it once the retries are spent', async () => {
    let calls = 0;
    const flaky = defineModule({
      name: 'flaky',
      retry: { attempts: 2, backoffMs: 20 },
      run: () => {
        calls++;
        if (calls < 3) throw new Error(`flake ${calls}`);
        return calls;
      },
    });
    const hopeless = defineModule({
      name: 'hopeless',
      retry: { attempts: 1, backoffMs: 10 },
      run: () => {
        throw new Error('always');
      },
    });
    const pipeline = definePipeline({ name: 'retry', modules: [flaky, hopeless], failureMode: 'WaitForAll' });
    await clusterFor(pipeline);
    const events: string[] = [];
    const result = await run(pipeline, {
      onEvent: (event) => event.type === 'module-retrying' && events.push(`${event.module}:${event.failures}`),
    });
    expect(byName(result).flaky).toMatchObject({ status: 'Successful', result: 3 });
    expect(byName(result).flaky!.attempts.map((attempt) => attempt.outcome)).toEqual(['Failed', 'Failed', 'Succeeded']);
    expect(byName(result).hopeless).toMatchObject({ status: 'Failed', error: { message: 'always' } });
    expect(byName(result).hopeless!.attempts).toHaveLength(2);
    expect(events.sort()).toEqual(['flaky:1', 'flaky:2', 'hopeless:1']);
  });

  it("uses the pipeline's default timeout", async () => {
    const slow = defineModule({
      name: 'slow',
      run: async (ctx) => {
        await sleep(5_000, undefined, { signal: ctx.signal });
      },
    });
    const pipeline = definePipeline({ name: 'default-timeout', modules: [slow], defaults: { timeoutMs: 150 } });
    await clusterFor(pipeline);
    expect(byName(await run(pipeline)).slow!.status).toBe('TimedOut');
  });
});

describe('ordering and concurrency', () => {
  it('starts ready modules in priority order', async () => {
    const order: string[] = [];
    const gate = defineModule({ name: 'gate', run: () => sleep(50) });
    const make = (name: string, priority: 'Low' | 'Normal' | 'High' | 'Critical') =>
      defineModule({
        name,
        priority,
        dependsOn: [gate],
        run: async () => {
          order.push(name);
          await sleep(10);
        },
      });
    const pipeline = definePipeline({
      name: 'priority',
      modules: [gate, make('low', 'Low'), make('normal', 'Normal'), make('critical', 'Critical'), make('high', 'High')],
    });
    await clusterFor(pipeline, [{ slots: 1 }]);
    expect((await run(pipeline)).success).toBe(true);
    expect(order).toEqual(['critical', 'high', 'normal', 'low']);
  });

  it('has no stage barrier: a chain goes on while an independent long module runs', async () => {
    const times: Record<string, [number, number]> = {};
    const timed = (name: string, ms: number, dependsOn: string[] = []) =>
      defineModule({
        name,
        dependsOn,
        run: async () => {
          const start = Date.now();
          await sleep(ms);
          times[name] = [start, Date.now()];
        },
      });
    const pipeline = definePipeline({
      name: 'no-barrier',
      modules: [timed('long', 800), timed('a', 50), timed('b', 50, ['a']), timed('c', 50, ['b'])],
    });
    await clusterFor(pipeline, [{ id: 'w1' }, { id: 'w2' }]);
    expect((await run(pipeline)).success).toBe(true);
    expect(times.c![0]).toBeLessThan(times.long![1]);
    expect(times.c![1]).toBeLessThan(times.long![1]);
  });

  it.each([
    ['notInParallel keys', { notInParallel: ['db'] }, 1],
    ['parallelLimit', { parallelLimit: { key: 'api', limit: 2 } }, 2],
  ])('enforces %s across the whole cluster', async (_name, option, expected) => {
    const gauge = new Gauge();
    const modules = [1, 2, 3, 4, 5].map((n) => defineModule({ name: `m${n}`, ...option, run: () => gauge.hold(80) }));
    const free = defineModule({ name: 'free', run: () => sleep(50) });
    const pipeline = definePipeline({ name: 'limits', modules: [...modules, free] });
    await clusterFor(pipeline, [{ slots: 4 }, { slots: 4 }]);
    const result = await run(pipeline);
    expect(result.success).toBe(true);
    expect(gauge.max).toBe(expected);
    expect(new Set(result.modules.map((module) => module.workerId)).size).toBe(2);
  });

  it('runs a notInParallel: true module alone, and honours maxParallelism', async () => {
    const all = new Gauge();
    let aloneSaw = -1;
    const others = [1, 2, 3, 4].map((n) => defineModule({ name: `o${n}`, run: () => all.hold(60) }));
    const alone = defineModule({
      name: 'alone',
      notInParallel: true,
      run: async () => {
        aloneSaw = all.current;
        await all.hold(60);
      },
    });
    const pipeline = definePipeline({ name: 'alone', modules: [...others, alone], maxParallelism: 2 });
    await clusterFor(pipeline, [{ slots: 4 }, { slots: 4 }]);
    expect((await run(pipeline)).success).toBe(true);
    expect(aloneSaw).toBe(0);
    expect(all.max).toBe(2);
  });
});

describe('capability routing', () => {
  const pipelineOf = () =>
    definePipeline({
      name: 'routing',
      modules: [
        defineModule({ name: 'gpu', requires: { tags: ['gpu'] }, run: (ctx) => ctx.workerId }),
        defineModule({ name: 'docker-node', requires: { tools: ['docker', 'node'] }, run: (ctx) => ctx.workerId }),
        defineModule({ name: 'mac-or-linux', requires: { os: ['macos', 'linux'] }, run: (ctx) => ctx.workerId }),
        defineModule({ name: 'windows', requires: { os: ['windows'] }, run: (ctx) => ctx.workerId }),
      ],
      failureMode: 'WaitForAll',
    });

  it('sends each module to a worker that has what it requires (os any of, tools and tags all of)', async () => {
    const pipeline = pipelineOf();
    await clusterFor(pipeline, [
      { id: 'plain', os: 'linux', tools: ['node'], tags: [] },
      { id: 'builder', os: 'linux', tools: ['docker', 'node'], tags: ['gpu'] },
      { id: 'win', os: 'windows', tools: ['node'], tags: ['gpu'] },
    ]);
    const result = byName(await run(pipeline));
    expect(result.gpu!.result).toMatch(/^(builder|win)$/);
    expect(result['docker-node']!.result).toBe('builder');
    expect(result['mac-or-linux']!.result).toMatch(/^(plain|builder)$/);
    expect(result.windows!.result).toBe('win');
  });

  it('fails a module no worker can run after the configured wait, naming what is missing, instead of hanging', async () => {
    const pipeline = pipelineOf();
    const c = await clusterFor(pipeline, [{ id: 'plain', os: 'linux', tools: ['node'], tags: [] }]);
    const result = byName(await run(pipeline, { workerWaitMs: 200, rescheduleIntervalMs: 50 }));
    expect(result['mac-or-linux']!.status).toBe('Successful');
    expect(result.gpu).toMatchObject({ status: 'Failed', error: { type: 'NoCapableWorker' } });
    expect(result.gpu!.error!.message).toContain("plain lacks tag 'gpu'");
    expect(result['docker-node']!.error!.message).toContain("plain lacks tool 'docker'");
    expect(result.windows!.error!.message).toContain("plain lacks os 'windows' (has 'linux')");

    // With no worker at all (the last one stopped and unregistered), a module fails the same
    // way, and the modules that depend on it, directly or not, never run.
    await c.workers[0]!.close();
    const first = defineModule({ name: 'first', run: () => 1 });
    const second = defineModule({ name: 'second', dependsOn: [first], run: () => 2 });
    const third = defineModule({ name: 'third', dependsOn: [second], run: () => 3 });
    const chain = definePipeline({ name: 'no-worker', modules: [first, second, third] });
    const alone = byName(await run(chain, { workerWaitMs: 300, rescheduleIntervalMs: 50 }));
    expect(alone.first).toMatchObject({ status: 'Failed', error: { type: 'NoCapableWorker' } });
    expect(alone.first!.error!.message).toContain("no live worker with pipeline 'no-worker'");
    expect(alone.third!.status).toBe('DependencyFailed');
  });
});

describe('lost attempts', () => {
  it('records a late answer from a lost attempt but accepts only the first result', async () => {
    let runs = 0;
    const once = defineModule({
      name: 'once',
      run: async (ctx) => {
        runs++;
        await sleep(ctx.workerId === 'w-frozen' ? 1_500 : 100); // ignores its signal
        return ctx.workerId;
      },
    });
    const pipeline = definePipeline({ name: 'late', modules: [once] });
    const c = await clusterFor(pipeline, [{ id: 'w-frozen' }]);
    const frozen = c.workers[0]!;
    const running = run(pipeline);
    await expect.poll(() => frozen.load, { timeout: 3_000, interval: 20, message: 'dispatch to w-frozen' }).toBe(1);
    await c.startWorker({ id: 'w-ok', pipeline });
    await c.workers[1]!.link!.registered();
    // w-frozen stops sending heartbeats, as a frozen process would.
    (frozen.link as unknown as { stopController: AbortController }).stopController.abort();
    c.expireAllBut(c.workers[1]!);
    const result = await running;
    const module = byName(result).once!;
    expect(module).toMatchObject({ status: 'Successful', workerId: 'w-ok', result: 'w-ok' });
    expect(module.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
      ['w-frozen', 'Lost'],
      ['w-ok', 'Succeeded'],
    ]);
    expect(module.attempts[0]!.lateAnswer).toMatchObject({ outcome: 'Cancelled' }); // cancelled on the frozen worker (N3, 4)
    expect(runs).toBe(2);
  });
});

describe('draining', () => {
  it('an operator drains a worker through the API: it finishes its module, gets no new ones, unregisters and stops', async () => {
    let drainedWorkerFinished = false;
    const first = defineModule({
      name: 'first',
      run: async (ctx) => {
        await sleep(600);
        if (ctx.workerId === 'w-drained') drainedWorkerFinished = true;
        return ctx.workerId;
      },
    });
    const rest = [1, 2, 3].map((n) =>
      defineModule({ name: `after-${n}`, dependsOn: [first], run: (ctx) => ctx.workerId }),
    );
    const pipeline = definePipeline({ name: 'drain', modules: [first, ...rest] });
    const c = await clusterFor(pipeline, [{ id: 'w-drained' }]);
    const drained = c.workers[0]!;
    const running = run(pipeline);
    await expect
      .poll(() => drained.load, { timeout: 3_000, interval: 20, message: 'first to start on w-drained' })
      .toBe(1);
    await c.startWorker({ id: 'w-other', pipeline });
    await c.workers[1]!.link!.registered();

    const client = createOrchestratorClient({ baseUrl: c.orchestrator.url });
    try {
      const answer = await client.workers.drain({ params: { workerId: 'w-drained' } });
      expect(answer).toMatchObject({ status: 200, body: { success: true, status: 'Draining' } });
    } finally {
      await client.close();
    }
    const result = await running;
    expect(result.success).toBe(true);
    expect(byName(result).first).toMatchObject({
      status: 'Successful',
      workerId: 'w-drained',
      attempts: [{ outcome: 'Succeeded' }],
    });
    expect(drainedWorkerFinished).toBe(true);
    for (const n of [1, 2, 3]) expect(byName(result)[`after-${n}`]!.workerId).toBe('w-other');
    await drained.stopped;
    expect(drained.state).toBe('stopped');
    expect(c.orchestrator.registry.get('w-drained')).toBeUndefined();
  });
});
