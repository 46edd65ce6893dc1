/**
 * An execute call that reaches its worker only after the run abandoned its attempt and the
 * worker acknowledged the attempt's cancel with 404 (it ran nothing then) (round N, N3): the
 * worker keeps the cancel as a tombstone and answers the late execute Cancelled without running
 * it, so the module runs once, on the worker it went to next. Real orchestrator and workers on
 * 127.0.0.1; test-kit's FaultProxy holds the execute call on its way.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';
import { abandonWithHeldExecute } from '../helpers/held-execute.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('an abandoned attempt whose execute call arrives after its cancel was answered 404 (N3, 6)', () => {
  it('the worker answers it Cancelled without running it (its tombstone); the module runs once, elsewhere', async () => {
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    const { proxy, starts, release, running, lines, executionId } = await abandonWithHeldExecute(cluster, cleanups, {
      name: 'held-execute',
    });
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
