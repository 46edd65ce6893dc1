/**
 * An execute call that reaches its worker's id only after the run abandoned its attempt, the
 * worker acknowledged the attempt's cancel with 404, and the worker restarted (round N, N3, 3):
 * the cancel's tombstone was in the old process's memory only, so the new process must refuse
 * the call (401: it carries the old process's credential), never run it. With a credential file
 * the new process presents the old credential; it gets a new one all the same. Real
 * orchestrator and workers on 127.0.0.1; test-kit's FaultProxy holds the execute call on its way.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

describe('a held execute call that arrives after its cancel was answered 404 and the worker restarted (N3, 3)', () => {
  it.each([
    ['without a credential file', false],
    ['with a credential file (the new process presents the old credential)', true],
  ])(
    '%s: the new process refuses it 401 and runs nothing; the module runs once, elsewhere',
    async (_name, withFile) => {
      const cluster = new Cluster();
      cleanups.push(() => cluster.close());
      const dir = mkdtempSync(join(tmpdir(), 'mpd-n3-restart-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const credentialFile = withFile ? join(dir, 'credential') : undefined;
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
      const pipeline = definePipeline({ name: 'held-restart', modules: [work] });
      const orchestrator = await cluster.startOrchestrator();
      const proxy = await startFaultProxy();
      cleanups.push(() => proxy.close());
      // The first w-one's calls to the orchestrator go through a proxy of their own, which the
      // test holds: it goes Offline without a race, and its unregister never arrives (a crash).
      const beats = await startFaultProxy({ port: Number(new URL(orchestrator.url).port) });
      cleanups.push(() => beats.close());
      const one = await cluster.startWorker({
        id: 'w-one',
        pipeline,
        endpoint: proxy.url,
        orchestratorUrl: beats.url,
        credentialFile,
      });
      proxy.setTarget({ port: Number(new URL(one.url).port) });
      await one.link!.registered();
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
      beats.fault({ kind: 'hold-requests' });
      await expect
        .poll(
          () => {
            cluster.expireAllBut(two);
            return orchestrator.registry.get('w-one')?.status;
          },
          { timeout: 20_000 },
        )
        .toBe('Offline');
      // The first w-one runs nothing: it answers the cancel 404 and keeps a tombstone, in memory.
      await expect
        .poll(
          () =>
            lines.some(
              (line) => line.msg === 'cancel acknowledged' && line.executionId === executionId && line.status === 404,
            ),
          { timeout: 20_000 },
        )
        .toBe(true);
      await expect.poll(() => starts, { timeout: 20_000 }).toEqual(['w-two']);
      // It stops (its unregister held, given up after 5 s) and a new process takes the id.
      await one.close();
      const restarted = await cluster.startWorker({ id: 'w-one', pipeline, endpoint: proxy.url, credentialFile });
      proxy.setTarget({ port: Number(new URL(restarted.url).port) });
      await restarted.link!.registered();
      // The held execute arrives, at the new process.
      proxy.heal();
      await expect
        .poll(
          () => starts.length > 1 || lines.some((line) => line.msg === 'late answer of an abandoned attempt ignored'),
          { timeout: 20_000 },
        )
        .toBe(true);
      release.open();
      const result = await running;

      // The old code kept the credential for the new process, which took the call and ran the module beside w-two.
      expect(starts).toEqual(['w-two']);
      expect(result.status).toBe('Successful');
      const [first, second] = result.modules[0]!.attempts;
      expect(first).toMatchObject({ executionId, workerId: 'w-one', outcome: 'Lost' });
      expect(second).toMatchObject({ workerId: 'w-two', outcome: 'Succeeded' });
    },
  );
});
