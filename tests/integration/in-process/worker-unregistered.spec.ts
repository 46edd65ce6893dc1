/**
 * A live worker unregistered while it runs a module: an admin's `DELETE /api/workers/{id}`, or
 * anyone's in a cluster without tokens. The orchestrator used to take the unregistration as the
 * worker gone and dispatch the module again at once, while the worker, answered 404 at its next
 * heartbeat, registered again and ran on: two runs of one module at once. Now the attempt is lost
 * at once but its module runs again only once the worker's heartbeat lease has ended, and the
 * worker, answered 404 (or 401), fences itself: it cancels what it runs and registers again.
 * Real servers on 127.0.0.1, a module that runs until the test releases it (or is cancelled);
 * the heartbeat timeout is a few seconds, and the order is never a race shorter than that.
 */
import { createOrchestratorClient } from '@mpd/client';
import { runPipeline, type RunResult } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { type FaultProxy, startFaultProxy } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

/** The heartbeat timeout (ms): the unregistered worker's lease ends at most this long after the unregister. */
const TIMEOUT_MS = 8_000;

let cluster: Cluster | undefined;
let proxy: FaultProxy | undefined;
afterEach(async () => {
  release?.();
  proxy?.heal();
  await cluster?.close();
  await proxy?.close();
  cluster = proxy = undefined;
});

/** Each run of the module: where, when it started and (once it did) ended, on the test's clock. */
interface Run {
  workerId: string;
  startedAt: number;
  endedAt?: number;
  /** How it ended: released by the test, or cancelled (its worker fenced). */
  how?: 'released' | 'cancelled';
}
let runs: Run[] = [];
let release: (() => void) | undefined;

/** Runs until the test releases it, or until it is cancelled; records each run. */
const work = defineModule({
  name: 'work',
  run: async (ctx) => {
    const run: Run = { workerId: ctx.workerId, startedAt: Date.now() };
    runs.push(run);
    try {
      await new Promise<void>((resolve, reject) => {
        const released = release;
        release = () => {
          released?.();
          run.how ??= 'released';
          resolve();
        };
        ctx.signal.addEventListener(
          'abort',
          () => {
            run.how ??= 'cancelled';
            reject(ctx.signal.reason);
          },
          { once: true },
        );
      });
      return ctx.workerId;
    } finally {
      run.endedAt = Date.now();
    }
  },
});
const pipeline = definePipeline({ name: 'unregistered', modules: [work] });

/**
 * An orchestrator without tokens and worker `w-live` running `work` (its heartbeats through
 * `heartbeatsVia` when given), then worker `w-other`, idle: the run's result, still under way.
 */
async function runningOnLiveWorker(heartbeatsVia?: 'proxy'): Promise<{ c: Cluster; running: Promise<RunResult> }> {
  runs = [];
  release = undefined;
  const c = (cluster = new Cluster());
  const orchestrator = await c.startOrchestrator({ heartbeatTimeoutMs: TIMEOUT_MS });
  if (heartbeatsVia === 'proxy') proxy = await startFaultProxy({ port: Number(new URL(orchestrator.url).port) });
  const live = await c.startWorker({
    id: 'w-live',
    pipeline,
    slots: 1,
    orchestratorUrl: proxy?.url ?? orchestrator.url,
  });
  await live.link!.registered();
  const running = runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
  await expect.poll(() => runs.length, { timeout: 5_000, interval: 20, message: 'work to start on w-live' }).toBe(1);
  const other = await c.startWorker({ id: 'w-other', pipeline, slots: 1 });
  await other.link!.registered();
  return { c, running };
}

async function unregister(c: Cluster, workerId: string): Promise<void> {
  const client = createOrchestratorClient({ baseUrl: c.orchestrator.url });
  try {
    const answer = await client.workers.unregister({ params: { workerId } });
    expect(answer.status).toBe(200);
  } finally {
    await client.close();
  }
}

/**
 * The run's result and its one module, once `work` ran a second time and was released there,
 * with its two runs: checked never to have run at once (the first cancelled, its worker fenced,
 * before the second started) and the run to have succeeded, its attempts `Lost` then `Succeeded`.
 */
async function ranAgainNeverBeside(running: Promise<RunResult>) {
  await expect
    .poll(() => runs.length, { timeout: TIMEOUT_MS + 10_000, interval: 50, message: 'work to run again' })
    .toBe(2);
  release!();
  const result = await running;
  const module = result.modules.find((module) => module.name === 'work')!;
  const [first, second] = runs as [Run, Run];
  expect(first.how, 'how the first run ended').toBe('cancelled');
  expect(first.endedAt!).toBeLessThan(second.startedAt);
  expect(result.success).toBe(true);
  expect(module.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost', 'Succeeded']);
  return { module, first, second };
}

describe('a live worker unregistered while it runs a module', () => {
  it('is fenced by its heartbeat’s 404: the module runs again only once the first run stopped, never beside it', async () => {
    const { c, running } = await runningOnLiveWorker();
    const unregisteredAt = Date.now();
    await unregister(c, 'w-live');

    // The first run was cancelled (the worker fenced at its heartbeat's 404, within a heartbeat
    // interval) before the second started: never two at once. It used to run on. Run again once
    // the worker had certainly stopped it: its execute call answered (cancelled) or, failing
    // that, its lease ended.
    const { module, first } = await ranAgainNeverBeside(running);
    expect(first.endedAt! - unregisteredAt).toBeLessThan(TIMEOUT_MS / 2);
    expect(module.attempts[0]!.error).toMatch(/w-live was unregistered while it ran modules/);
    // The unregistered worker registered again and takes modules again.
    const live = c.workers[0]!;
    await expect.poll(() => c.orchestrator.registry.get('w-live') !== undefined, { timeout: 5_000 }).toBe(true);
    await expect.poll(() => live.link!.fenced, { timeout: 5_000 }).toBe(false);
  }, 30_000);

  it('that does not hear it: the module runs again only once its heartbeat lease has ended, and it fenced by then', async () => {
    const { c, running } = await runningOnLiveWorker('proxy');
    // Its heartbeats reach the orchestrator, but their answers (the 404s) are held from now on.
    proxy!.fault({ kind: 'hold-answers' });
    const unregisteredAt = Date.now();
    await unregister(c, 'w-live');

    // Fenced by its lease's renew deadline (the fence lead, 2 s, before the lease's end), before
    // the orchestrator gave the module to another run: never two at once. It used to run at once.
    const { second } = await ranAgainNeverBeside(running);
    expect(second.startedAt - unregisteredAt).toBeGreaterThanOrEqual(TIMEOUT_MS / 2);
    expect(second.workerId).toBe('w-other');
  }, 40_000);
});
