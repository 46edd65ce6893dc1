/**
 * An execute call that reaches its worker only after the run abandoned its attempt and the
 * worker acknowledged the attempt's cancel with 404 (it ran nothing then) (round N, N3): the
 * worker keeps the cancel as a tombstone and answers the late execute Cancelled without running
 * it, so the module runs once, on the worker it went to next. Real orchestrator and workers on
 * 127.0.0.1; test-kit's FaultProxy holds the execute call on its way.
 */
import { runPipeline, type RunEvent } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { startFaultProxy } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { gate } from '../helpers/module-gate.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('an abandoned attempt whose execute call arrives after its cancel was answered 404 (N3, 6)', () => {
  it('the worker answers it Cancelled without running it (its tombstone); the module runs once, elsewhere', async () => {
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    const starts: string[] = [];
    const release = gate();
    const work = defineModule({
      name: 'work',
      run: async (ctx) => {
        starts.push(ctx.workerId);
        await release.wait;
        return { workerId: ctx.workerId };
      },
    });
    const pipeline = definePipeline({ name: 'held-execute', modules: [work] });
    const orchestrator = await cluster.startOrchestrator();
    const proxy = await startFaultProxy();
    cleanups.push(() => proxy.close());
    // w-one's heartbeats go through a proxy of their own, which the test stops when it makes w-one Offline.
    const beats = await startFaultProxy({ port: Number(new URL(orchestrator.url).port) });
    cleanups.push(() => beats.close());
    const one = await cluster.startWorker({
      id: 'w-one',
      pipeline,
      endpoint: proxy.url,
      orchestratorUrl: beats.url,
    });
    proxy.setTarget({ port: Number(new URL(one.url).port) });
    await one.link!.registered();
    // The first execute call to w-one is held on its way, until the proxy is healed.
    proxy.faultNext({ kind: 'hold-requests' }, /^POST \/api\/execution\/execute/);

    const events: RunEvent[] = [];
    const { logger, lines } = capturingLogger();
    const running = runPipeline({
      pipeline,
      registry: orchestrator.registry,
      logger,
      onEvent: (event) => events.push(event),
    });
    await expect.poll(() => events.some((event) => event.type === 'module-started'), { timeout: 20_000 }).toBe(true);
    const executionId = events.find((event) => event.type === 'module-started')!.executionId;
    const two = await cluster.startWorker({ id: 'w-two', pipeline });
    await two.link!.registered();
    // w-one goes Offline: its attempt is lost and cancelled; w-one runs nothing, so it answers 404.
    beats.fault({ kind: 'hold-requests' });
    // Again until it holds: a heartbeat already past the proxy may land after the clock moved.
    await expect
      .poll(
        () => {
          cluster.expireAllBut(two);
          return orchestrator.registry.get('w-one')?.status;
        },
        { timeout: 20_000 },
      )
      .toBe('Offline');
    const acknowledged = (): boolean =>
      lines.some(
        (line) => line.msg === 'cancel acknowledged' && line.executionId === executionId && line.status === 404,
      );
    await expect.poll(acknowledged, { timeout: 20_000 }).toBe(true);
    await expect.poll(() => starts, { timeout: 20_000 }).toEqual(['w-two']);
    // The held execute arrives now.
    proxy.heal();
    await expect
      .poll(() => lines.some((line) => line.msg === 'late answer of an abandoned attempt ignored'), {
        timeout: 20_000,
      })
      .toBe(true);
    release.open();
    const result = await running;

    expect(starts).toEqual(['w-two']);
    expect(result.status).toBe('Successful');
    const [first, second] = result.modules[0]!.attempts;
    expect(first).toMatchObject({
      executionId,
      workerId: 'w-one',
      outcome: 'Lost',
      lateAnswer: { outcome: 'Cancelled' },
    });
    expect(second).toMatchObject({ workerId: 'w-two', outcome: 'Succeeded' });
  });
});
