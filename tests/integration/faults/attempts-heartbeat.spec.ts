/**
 * Heartbeats carry the executions a worker runs (`executions`), end to end: the worker sends
 * them, the orchestrator's registry keeps each worker's last list. The runner relies on it to
 * collect a finished outcome whose answer was lost (attempts-collect.spec.ts).
 */
import { runPipeline } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe('heartbeat executions', () => {
  it("a worker's heartbeats list the executions it runs, and stop listing one once it finished", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let executionId = '';
    const hold = defineModule({
      name: 'hold',
      run: async (ctx) => {
        executionId = ctx.executionId;
        await released;
        return 'done';
      },
    });
    const pipeline = definePipeline({ name: 'beats', modules: [hold] });
    cluster = new Cluster();
    const { registry } = await cluster.startOrchestrator({ heartbeatTimeoutMs: 5_000 });
    const worker = await cluster.startWorker({ id: 'w-beats', pipeline });
    await worker.link!.registered();
    await expect
      .poll(() => registry.executionsOf('w-beats'), { timeout: 5_000, interval: 20, message: 'a first heartbeat' })
      .toEqual([]);

    const running = runPipeline({ pipeline, registry, logger: silent });
    await expect.poll(() => executionId, { timeout: 5_000, interval: 20, message: 'the module to start' }).not.toBe('');
    await expect
      .poll(() => registry.executionsOf('w-beats'), { timeout: 5_000, interval: 20, message: 'the execution listed' })
      .toEqual([executionId]);
    expect(executionId).toMatch(/\.hold\.1$/);
    release();
    expect((await running).status).toBe('Successful');
    await expect
      .poll(() => registry.executionsOf('w-beats'), { timeout: 5_000, interval: 20, message: 'the execution gone' })
      .toEqual([]);
  });
});
