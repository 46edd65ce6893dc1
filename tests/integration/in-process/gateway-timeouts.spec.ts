/**
 * A gateway in front of a worker that gives up on a long module's execute call (its idle
 * timeout: 504, or 502) while the worker runs it (round N, N3): the run keeps the attempt and
 * sends the same executionId again, the worker joins the execution, and the module runs once.
 * Real orchestrator and worker on 127.0.0.1, test-kit's FaultProxy as the gateway.
 */
import { startFaultProxy } from '@mpd/test-kit';
import { runPipeline } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';
import { gate } from '../helpers/module-gate.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("a gateway's 502/504 to a long module's execute call (N3, 2)", () => {
  it.each([504, 502] as const)(
    '%s twice while the module runs: the same attempt is sent again and joins it, no cancel, the module runs once',
    async (status) => {
      const cluster = new Cluster();
      cleanups.push(() => cluster.close());
      const starts: string[] = [];
      let active = 0;
      let mostAtOnce = 0;
      const release = gate();
      const work = defineModule({
        name: 'work',
        run: async (ctx) => {
          starts.push(ctx.workerId);
          mostAtOnce = Math.max(mostAtOnce, ++active);
          await release.wait;
          active--;
          return { workerId: ctx.workerId };
        },
      });
      const pipeline = definePipeline({ name: 'gateway-timeout', modules: [work] });
      const orchestrator = await cluster.startOrchestrator();
      const proxy = await startFaultProxy();
      cleanups.push(() => proxy.close());
      const one = await cluster.startWorker({ id: 'w-one', pipeline, endpoint: proxy.url });
      proxy.setTarget({ port: Number(new URL(one.url).port) });
      await one.link!.registered();
      // Calls the worker answers at once (a cancel) pass; one it works on for 2 s gets the gateway's page.
      proxy.fault({ kind: 'gateway-timeout', afterMs: 2_000, status });

      const running = runPipeline({ pipeline, registry: orchestrator.registry, logger: silent });
      // The old code took the page for a lost attempt: cancelled, and the module started again.
      await expect.poll(() => proxy.stats.gatewayTimeouts >= 2 || starts.length > 1, { timeout: 30_000 }).toBe(true);
      release.open();
      const result = await running;

      expect(starts).toEqual(['w-one']);
      expect(mostAtOnce).toBe(1);
      expect(result.status).toBe('Successful');
      expect(result.modules[0]!.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
        ['w-one', 'Succeeded'],
      ]);
    },
  );
});
