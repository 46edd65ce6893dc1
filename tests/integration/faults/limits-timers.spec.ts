/**
 * Issue 10, case 12 (first half): durations over 2^31 − 1 ms (about 24.8 days) fired after 1 ms
 * everywhere but the worker's module timer (Node keeps a timer's delay in 32 bits and only warns,
 * `TimeoutOverflowWarning`). An orchestrator and a worker, in this process, with every duration
 * a user or the wire gives set past it: the module timeout (the worker's timer and the
 * orchestrator's deadline for the answer), the margin, the retry backoff, the scheduler's
 * interval, the heartbeat interval the orchestrator sends, the sweep interval, the shutdown and
 * close grace periods, the registration backoff. Node's own warning is the oracle: no timer
 * overflows, and nothing fires early. (Each timer is also unit-tested with fake timers:
 * server-kit's timers.spec.ts, listen.spec.ts, the client's clients.spec.ts.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { runPipeline, startOrchestrator, type RunEvent } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { startWorker } from '@mpd/worker';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const DAY_MS = 24 * 60 * 60 * 1000;
/** 40 days: past the 24.8 days a Node timer holds. */
const LONG_MS = 40 * DAY_MS;
const silent = pino({ level: 'silent' });

let overflows: Error[] = [];
const onWarning = (warning: Error): void => {
  if (warning.name === 'TimeoutOverflowWarning') overflows.push(warning);
};
beforeEach(() => {
  overflows = [];
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
});

describe('limits: timers past 2^31 - 1 ms', () => {
  it('every duration set to 40 days: no timer overflows, the module is not timed out at once, its retry waits, no heartbeat storm', async () => {
    let attempts = 0;
    const slow = defineModule({
      name: 'slow',
      timeoutMs: LONG_MS,
      run: async (ctx) => {
        await sleep(1_500, undefined, { signal: ctx.signal });
        return 'done';
      },
    });
    const flaky = defineModule({
      name: 'flaky',
      dependsOn: [slow],
      timeoutMs: LONG_MS,
      // Jitter takes it down to half of this at most: still past 24.8 days.
      retry: { attempts: 1, backoffMs: 2 * LONG_MS, maxBackoffMs: 2 * LONG_MS },
      run: () => {
        attempts++;
        throw new Error('fails the first time');
      },
    });
    const pipeline = definePipeline({ name: 'long-timers', modules: [slow, flaky] });

    const orchestrator = await startOrchestrator({
      port: 0,
      host: '127.0.0.1',
      heartbeatIntervalSeconds: LONG_MS / 1000,
      heartbeatTimeoutMs: 2 * LONG_MS,
      sweepIntervalMs: LONG_MS,
      closeGraceMs: LONG_MS,
      logger: silent,
    });
    const worker = await startWorker({
      port: 0,
      host: '127.0.0.1',
      orchestratorUrl: orchestrator.url,
      pipeline,
      slots: 2,
      tools: [],
      shutdownGraceMs: LONG_MS,
      defaultTimeoutMs: LONG_MS,
      maxBackoffMs: LONG_MS,
      logger: silent,
    });
    await worker.link!.registered();
    let heartbeats = 0;
    orchestrator.registry.onChange((event) => {
      if (event.type === 'heartbeat') heartbeats++;
    });

    const controller = new AbortController();
    const events: RunEvent[] = [];
    const result = await runPipeline({
      pipeline,
      registry: orchestrator.registry,
      logger: silent,
      signal: controller.signal,
      rescheduleIntervalMs: LONG_MS,
      timeoutMarginMs: LONG_MS,
      onEvent: (event) => {
        events.push(event);
        // The retry is due in 40 days: end the run once it is scheduled.
        if (event.type === 'module-retrying') setTimeout(() => controller.abort(), 500);
      },
    });

    expect(result.status).toBe('Cancelled');
    expect(result.modules[0]).toMatchObject({ name: 'slow', status: 'Successful', result: 'done' });
    expect(result.modules[1]).toMatchObject({ name: 'flaky', status: 'PipelineTerminated' });
    expect(events.find((event) => event.type === 'module-retrying')).toMatchObject({ delayMs: expect.any(Number) });
    // The retry did not run after 1 ms: the module ran once in the 500 ms before the run ended.
    expect(attempts).toBe(1);
    expect(heartbeats).toBe(0);

    await worker.close();
    await orchestrator.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect(overflows.map((warning) => warning.message)).toEqual([]);
  }, 30_000);
});
