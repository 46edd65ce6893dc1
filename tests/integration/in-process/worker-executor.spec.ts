/**
 * The worker's module executor behind its HTTP API (a worker server on 127.0.0.1 in this
 * process): what the executor's unit tests (packages/worker/src/executor) show without HTTP,
 * checked once more end to end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';

/** The token the worker takes calls with (as the orchestrator would send it). */
const TOKEN = 'executor-token-0123456789abcdef';

/** Waits `params.ms` (the request's `serializedModule`), or until cancelled. */
const wait = defineModule({
  name: 'wait',
  params: { ms: 0 },
  run: async (ctx) => {
    await sleep(ctx.params.ms, undefined, { signal: ctx.signal });
    return ctx.params.ms;
  },
});
const pipeline = definePipeline({ name: 'executor', modules: [wait] });

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe('regressions of bugs the fuzzer found in the worker executor (fixed)', () => {
  // module-executor.ts handed the request's timeout to setTimeout as it was; Node fires a delay
  // above 2^31-1 ms (24.20:31:23.647) after 1 ms instead (TimeoutOverflowWarning), so such a
  // module failed at once with "timed out after 30.00:00:00". Fixed: the executor now re-arms
  // its timer in steps of at most 2^31-1 ms (server-kit's longTimeout; unit test: packages/server-kit/src/timers.spec.ts).
  it('a module whose timeout is longer than 24.8 days does not time out at once', async () => {
    cluster = new Cluster();
    const worker = await cluster.startWorker({ pipeline, token: TOKEN });
    const response = await fetch(`${worker.url}/api/execution/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        executionId: `overflow-${Date.now()}`,
        serializedModule: '{"ms":30}',
        moduleTypeName: 'wait',
        timeout: '30.00:00:00',
      }),
    });
    expect(await response.json()).toMatchObject({ success: true });
  });
});
