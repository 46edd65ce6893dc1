/**
 * The worker's side of liveness, in-process (real orchestrator and worker servers on 127.0.0.1):
 * self-fencing when heartbeats go unacknowledged for the heartbeat timeout (less the fence lead), taking work again
 * after the next acknowledgement, and cancels carried by heartbeat answers. The partition with
 * real processes is liveness-partition.spec.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorkerClient } from '@mpd/client';
import { defineModule, definePipeline } from '@mpd/pipeline';
import type { RunningWorker } from '@mpd/worker';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';

/** Runs until cancelled (60 s at most). */
const hold = defineModule({
  name: 'hold',
  run: async (ctx) => {
    await sleep(60_000, undefined, { signal: ctx.signal });
    return 'held';
  },
});
const pipeline = definePipeline({ name: 'lease', modules: [hold] });

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** Sends `hold` to the worker as the orchestrator would (with the worker's credential); resolves to the answer. */
function execute(worker: RunningWorker, executionId: string) {
  const client = createWorkerClient({ baseUrl: worker.url, token: worker.link!.credential! });
  const body = {
    executionId,
    moduleTypeName: 'hold',
    serializedModule: '',
    dependencyResults: {},
    environmentVariables: {},
  };
  return client.execution.execute({ body }).finally(() => void client.close());
}

describe('the heartbeat lease', () => {
  it('fences a worker whose heartbeats go unacknowledged for the timeout, and unfences it at the next acknowledgement', async () => {
    cluster = new Cluster();
    const TIMEOUT_MS = 3_000;
    const first = await cluster.startOrchestrator({ heartbeatTimeoutMs: TIMEOUT_MS });
    const worker = await cluster.startWorker({ id: 'w-lease', pipeline });
    await worker.link!.registered();
    expect(worker.link!.state).toMatchObject({ status: 'registered', heartbeatTimeoutMs: TIMEOUT_MS });
    const running = execute(worker, 'lease-1');
    await expect.poll(() => worker.load, { timeout: 3_000, message: 'the module to start' }).toBe(1);

    // The orchestrator goes away: nothing acknowledges the heartbeats any more.
    await first.close();
    const answer = await running;
    expect(answer).toMatchObject({
      status: 500,
      body: {
        failureKind: 'Cancelled',
        // Its fence lead: a quarter of the timeout (less than its kill grace, 10 s by default).
        errorMessage: expect.stringContaining(
          'fenced: no heartbeat acknowledged for 2.25 s; the lease ends 0.75 s later',
        ),
      },
    });
    // Not before its lease ran out less the fence lead: the message above gives the silence on the
    // worker's own clock (2.25 s since its last acknowledged heartbeat was SENT). Measured from the
    // close, it is that less the age of that heartbeat at the close: one interval (0.2 s) when
    // nothing stalls, more on a loaded machine (1.15 s seen at load 30), so no bound is put on it.
    expect(worker.state).toBe('fenced');
    expect(worker.link!.fenced).toBe(true);
    const refused = await execute(worker, 'lease-2');
    expect(refused).toMatchObject({
      status: 503,
      body: { code: 'WorkerDraining', errorMessage: expect.stringContaining('until a heartbeat is acknowledged') },
    });

    // An orchestrator answers again on the same address: the worker registers, and takes work again.
    await cluster.startOrchestrator({ heartbeatTimeoutMs: TIMEOUT_MS, port: first.port });
    await expect.poll(() => worker.state, { timeout: 10_000, message: 'unfenced' }).toBe('running');
    expect(worker.link!.fenced).toBe(false);
    const again = execute(worker, 'lease-3');
    await expect.poll(() => worker.load, { timeout: 3_000, message: 'the module to start again' }).toBe(1);
    await worker.close(0);
    expect((await again).status).toBe(500); // cancelled by the close
  });

  it('cancels what a heartbeat answer lists, as a cancel call would', async () => {
    cluster = new Cluster();
    const orchestrator = await cluster.startOrchestrator();
    const worker = await cluster.startWorker({ id: 'w-cancels', pipeline });
    await worker.link!.registered();
    const running = execute(worker, 'listed-1');
    await expect.poll(() => worker.load, { timeout: 3_000, message: 'the module to start' }).toBe(1);
    orchestrator.registry.requestCancel('w-cancels', 'unknown-execution', 'nothing to cancel here');
    orchestrator.registry.requestCancel('w-cancels', 'listed-1', 'attempt declared lost');
    expect(await running).toMatchObject({
      status: 500,
      body: { failureKind: 'Cancelled', errorMessage: 'Execution cancelled: attempt declared lost' },
    });
    expect(worker.state).toBe('running');
  });
});
