/**
 * The cancel of an abandoned attempt is retried until its worker acknowledges it (the kind of
 * issue 10's case 3, where one cancel call was sent, timed out, and the old attempt ran on
 * beside the new one after the network healed). Real servers in this process: a worker behind
 * a TCP fault proxy goes silent (its heartbeats stop) and its API port is black-holed; its
 * attempt is lost and the module runs on another worker; the first cancel call is swallowed.
 * The abandoned run stops when the cut-off worker fences itself (issue 10's lease rule), and the
 * cancel goes on being retried: after the heal a call gets through, while the run still goes on.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorkerClient } from '@mpd/client';
import { runPipeline } from '@mpd/orchestrator';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { type FaultProxy, startFaultProxy } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

let cluster: Cluster | undefined;
let proxy: FaultProxy | undefined;
afterEach(async () => {
  await cluster?.close();
  await proxy?.close();
  cluster = undefined;
  proxy = undefined;
});

describe('cancels of abandoned attempts', () => {
  it('a cancel swallowed by a black-holed port is sent again after the heal; the abandoned run stops (its worker fences itself) while the module runs elsewhere', async () => {
    const runs: { workerId: string; started: number; ended?: number; how?: string }[] = [];
    const work = defineModule({
      name: 'work',
      run: async (ctx) => {
        const run: (typeof runs)[number] = { workerId: ctx.workerId, started: Date.now() };
        runs.push(run);
        try {
          await sleep(ctx.workerId === 'w-cut' ? 60_000 : 20_000, undefined, { signal: ctx.signal });
          run.how = 'finished';
        } catch (error) {
          run.how = 'stopped';
          throw error;
        } finally {
          run.ended = Date.now();
        }
        return ctx.workerId;
      },
    });
    const pipeline = definePipeline({ name: 'cancel-retry', modules: [work] });
    cluster = new Cluster();
    // T = 6 s, the workers' too (they take it from the registration answer): w-cut fences 4.5 s
    // after its last acknowledged heartbeat (T less the fence lead, T/4) and is `Offline` at 6 s,
    // well within the polls below (15 s, 20 s); the healthy w-other, served by this same loaded
    // process, fences only if that process stalls 4.5 s (at T = 2 s a 1.5 s stall did it).
    await cluster.startOrchestrator({ heartbeatTimeoutMs: 6_000 });
    proxy = await startFaultProxy();
    const cut = await cluster.startWorker({ id: 'w-cut', pipeline, slots: 1, endpoint: proxy.url });
    proxy.setTarget({ port: Number(new URL(cut.url).port) });
    await cut.link!.registered();

    const running = runPipeline({ pipeline, registry: cluster.orchestrator.registry, logger: silent });
    await expect.poll(() => cut.load, { timeout: 10_000, interval: 20, message: 'dispatch to w-cut' }).toBe(1);
    const other = await cluster.startWorker({ id: 'w-other', pipeline, slots: 1 });
    await other.link!.registered();

    // w-cut goes silent and its port swallows everything: its attempt is lost, its cancel call lost too.
    proxy.fault({ kind: 'black-hole' });
    (cut.link as unknown as { stopController: AbortController }).stopController.abort();
    await expect
      .poll(() => runs.filter((run) => run.workerId === 'w-other').length, {
        timeout: 15_000,
        interval: 50,
        message: 'the module to run on w-other',
      })
      .toBe(1);
    // Only calls from the orchestrator cross the proxy: what it dropped is the cancel call.
    await expect
      .poll(() => proxy!.stats.droppedBytes, { timeout: 5_000, interval: 50, message: 'the first cancel call' })
      .toBeGreaterThan(0);
    // No cancel got through; the abandoned run stops all the same once w-cut fences itself (its
    // heartbeats have gone unacknowledged for the heartbeat timeout), and never runs to its end.
    await expect.poll(() => cut.load, { timeout: 20_000, interval: 50, message: 'w-cut to stop its run' }).toBe(0);
    const abandoned = runs.find((run) => run.workerId === 'w-cut')!;
    expect(abandoned.how).toBe('stopped');
    // The cancel is still being retried: after the heal a cancel call reaches w-cut.
    const acceptedBeforeHeal = proxy.stats.accepted;
    proxy.heal();
    await expect
      .poll(() => proxy!.stats.accepted, { timeout: 20_000, interval: 50, message: 'a cancel call after the heal' })
      .toBeGreaterThan(acceptedBeforeHeal);
    expect(runs.find((run) => run.workerId === 'w-other')!.ended).toBeUndefined();

    const result = await running;
    expect(result.status).toBe('Successful');
    // Lost on w-cut, then Succeeded on w-other. Between them, only w-other's fenced refusals,
    // which run nothing and end before the success starts: should this process stall 4.5 s,
    // w-other's heartbeats go unacknowledged past its renew deadline; fenced, it answers the
    // dispatch 503 (module-executor.ts 'fenced'), an attempt `Rejected`, and the module is sent
    // again. Any other refusal is a failure. The attempts are printed in full on a failure.
    const attempts = result.modules[0]!.attempts;
    const outcomes = attempts.map((attempt) => [attempt.workerId, attempt.outcome]);
    expect(outcomes[0], JSON.stringify(attempts)).toEqual(['w-cut', 'Lost']);
    expect(outcomes.at(-1), JSON.stringify(attempts)).toEqual(['w-other', 'Succeeded']);
    const last = attempts.at(-1)!;
    expect(
      attempts
        .slice(1, -1)
        .filter(
          (attempt) =>
            attempt.workerId !== 'w-other' ||
            attempt.outcome !== 'Rejected' ||
            !/takes no new modules until a heartbeat is acknowledged/.test(attempt.error ?? '') ||
            attempt.endTime === undefined ||
            Date.parse(attempt.endTime) > Date.parse(last.startTime),
        ),
      JSON.stringify(attempts),
    ).toEqual([]);
    expect(runs.filter((run) => run.workerId === 'w-other')).toHaveLength(1); // the refusals ran nothing
    expect(result.modules[0]!.result).toBe('w-other');
  }, 60_000);

  // Round L (L3): a cancel the worker answers "not found" counts as acknowledged, so the run may
  // start the module elsewhere; the execute still on its way must not start after it. Through a
  // heartbeat answer's `cancel` list as through the cancel call (that one: worker app.spec.ts).
  it('a cancel a heartbeat answer carries for an execution the worker does not know keeps its execute, arriving later, from starting', async () => {
    let runs = 0;
    const work = defineModule({ name: 'work', run: () => ++runs });
    const pipeline = definePipeline({ name: 'cancel-tombstone', modules: [work] });
    cluster = new Cluster();
    const { registry } = await cluster.startOrchestrator();
    // Counts the heartbeat answers that carry the cancel (the registry answers, unchanged).
    let carried = 0;
    const cancelsFor = registry.cancelsFor.bind(registry);
    registry.cancelsFor = (workerId) => {
      const cancels = cancelsFor(workerId);
      if (cancels.some(({ executionId }) => executionId === 'exec-hb-1')) carried++;
      return cancels;
    };
    const worker = await cluster.startWorker({ id: 'w-hb', pipeline, slots: 1 });
    await worker.link!.registered();

    expect(registry.requestCancel('w-hb', 'exec-hb-1', 'attempt declared lost')).toBe(true);
    // Heartbeats are sent one after another: once a second answer carries it, the first was read.
    await expect.poll(() => carried, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(2);

    const client = createWorkerClient({ baseUrl: worker.url, token: registry.credentialOf('w-hb')! });
    try {
      const body = {
        executionId: 'exec-hb-1',
        moduleTypeName: 'work',
        serializedModule: '',
        dependencyResults: {},
        environmentVariables: {},
      };
      const answer = await client.execution.execute({ body });
      expect(answer.status).toBe(500);
      expect(answer.body).toMatchObject({
        success: false,
        failureKind: 'Cancelled',
        errorMessage: expect.stringContaining('attempt declared lost'),
      });
      expect(runs).toBe(0);
    } finally {
      await client.close();
    }
  });
});
