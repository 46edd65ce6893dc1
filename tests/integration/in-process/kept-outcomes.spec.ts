/**
 * Outcomes a worker kept for an attempt whose answer never came back (round N, N3): the run
 * collects them with a re-send of the same executionId instead of running the module again.
 * Real orchestrator and workers on 127.0.0.1; a plain HTTP front in front of a worker plays the
 * gateway (a load balancer, an ingress) that drops or refuses calls; the run's clock is the
 * system's, moved on by the test where a grace period of the run's must pass.
 */
import { type RunClock, runPipeline } from '@mpd/orchestrator';
import { afterEach, describe, expect, it } from 'vitest';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { Cluster, silent } from '../helpers/cluster.js';
import { bare503AfterFirst, recordingPipeline, startWorkerBehindFront } from '../helpers/kept-outcome-run.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The system's clock, `skip`ped ahead by the test (its timers are the system's). */
function skippingClock(): RunClock & { skip: (ms: number) => void } {
  let offsetMs = 0;
  return {
    now: () => Date.now() + offsetMs,
    after(ms, callback) {
      const timer = setTimeout(callback, Math.max(0, ms));
      return () => clearTimeout(timer);
    },
    skip: (ms) => (offsetMs += ms),
  };
}

/**
 * One module `work`, run on `w-one` behind a front that passes its first execute to the worker
 * (which runs the module in a moment, between two heartbeats) and drops its caller's connection
 * at once; re-sends are refused 503 without the worker's body (no healthy upstream) until
 * `letThrough()`. The run is started on a {@link skippingClock} and has started the module when
 * this returns. `orchestratorOptions`: the orchestrator's options.
 */
async function keptOutcomeRun(orchestratorOptions: Parameters<Cluster['startOrchestrator']>[0] = {}) {
  const cluster = new Cluster();
  cleanups.push(() => cluster.close());
  const { pipeline, starts } = recordingPipeline('kept-outcome');
  const orchestrator = await cluster.startOrchestrator(orchestratorOptions);
  let refusals = 0;
  let letThrough = false;
  await startWorkerBehindFront(
    cluster,
    cleanups,
    (call, req, res, forward) => {
      if (call === 1) {
        forward();
        req.socket.destroy();
      } else if (!letThrough) {
        refusals++;
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('no healthy upstream');
      } else forward();
    },
    { pipeline },
  );

  const clock = skippingClock();
  const running = runPipeline({ pipeline, registry: orchestrator.registry, clock, logger: silent });
  await expect.poll(() => starts.length, { timeout: 20_000 }).toBe(1);
  return {
    clock,
    /** Starts w-two: a worker with room, where a module handed over as lost would run again. */
    async startSecondWorker(): Promise<void> {
      const two = await cluster.startWorker({ id: 'w-two', pipeline });
      await two.link!.registered();
    },
    /** Waits for two heartbeats of w-one after the module finished there: the first carries it as finished. */
    async twoHeartbeats(timeoutMs: number): Promise<void> {
      let beats = 0;
      const unsubscribe = orchestrator.registry.onChange((event) => {
        if (event.type === 'heartbeat' && event.workerId === 'w-one') beats++;
      });
      await expect.poll(() => beats, { timeout: timeoutMs }).toBeGreaterThanOrEqual(2);
      unsubscribe();
    },
    /**
     * Waits for two more refused re-sends (or a second run), lets re-sends through, and checks
     * that the kept outcome was collected: the module ran once, on w-one, one attempt.
     */
    async expectCollected(): Promise<void> {
      const refusedBefore = refusals;
      await expect.poll(() => refusals - refusedBefore >= 2 || starts.length > 1, { timeout: 30_000 }).toBe(true);
      letThrough = true;
      const result = await running;

      expect(starts).toEqual(['w-one']);
      expect(result.status).toBe('Successful');
      expect(result.modules[0]!.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
        ['w-one', 'Succeeded'],
      ]);
    },
  };
}

describe('an attempt that ran and finished between two heartbeats, its answer lost (N3, 1)', () => {
  it('re-sends refused by a gateway past the never-listed grace: its kept outcome is collected, never run again elsewhere', async () => {
    const run = await keptOutcomeRun();
    await run.startSecondWorker();
    await run.twoHeartbeats(20_000);
    // Past the never-listed grace (10 s) for the run: the old code handed the attempt over as
    // lost at the next refused re-send, its cancel answered 404 (nothing runs), and ran the
    // module again on w-two.
    run.clock.skip(11_000);
    await run.expectCollected();
  });

  it('the never-listed grace over before any heartbeat came (5 s heartbeats): no hand-over without a heartbeat that lists it nowhere; its kept outcome is collected (review N3, 2)', async () => {
    // Heartbeats every 5 s (the default is 30 s): the never-listed grace (10 s) can be over before
    // the worker's first heartbeat after the call.
    const run = await keptOutcomeRun({ heartbeatIntervalSeconds: 5 });
    // Past the never-listed grace (10 s) for the run at once, before w-one's next heartbeat: the
    // old code judged it by time alone and handed the attempt over as lost at the next refused
    // re-send, then counted w-one's heartbeats naming it `finished` as not listing the abandoned
    // attempt, and ran the module again on w-two.
    run.clock.skip(11_000);
    await run.startSecondWorker();
    await run.twoHeartbeats(30_000);
    await run.expectCollected();
  });
});

describe('an abandoned attempt that finished on its worker, its cancel answered 404 (round R, R1)', () => {
  it("a gateway's bare 503 after it passed the execute on: the worker says the execution finished there (a heartbeat, or the cancel's 404, whichever comes first), and its kept success is collected before the module may run again; it ran once", async () => {
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    const { pipeline, starts } = recordingPipeline('cancel-finished');
    const { registry } = await cluster.startOrchestrator();
    // Resolved at the first heartbeat of w-one that names an execution `finished`.
    let namedFinished!: () => void;
    const finishedNamed = new Promise<void>((resolve) => (namedFinished = resolve));
    registry.onChange((event) => {
      if (event.type === 'heartbeat' && event.workerId === 'w-one' && (registry.finishedOf('w-one')?.length ?? 0) > 0)
        namedFinished();
    });
    await startWorkerBehindFront(
      cluster,
      cleanups,
      // The first execute reaches w-one, which runs the module and answers its success (kept
      // there); the gateway answers its caller a bare 503 instead (its upstream timeout ran out,
      // say), once w-one's heartbeat named the execution `finished` while its attempt still ran
      // (so that no heartbeat names it again after the attempt is abandoned).
      bare503AfterFirst((answerEnded) => answerEnded.then(() => finishedNamed)),
      { pipeline },
      // The cancel's answer comes after a second: w-one's heartbeats (every 0.2 s), which leave
      // the execution out once it was named `finished`, come first (review S, 1), or, on a
      // loaded machine, after it: either order must keep the success.
      { cancelDelayMs: 1_000 },
    );
    // A worker with room, where the module would run again if the attempt ended uncollected.
    const two = await cluster.startWorker({ id: 'w-two', pipeline });
    await two.link!.registered();

    const { logger, lines } = capturingLogger();
    const result = await runPipeline({ pipeline, registry, logger });

    // The old code took the cancel's 404 as "it runs nowhere", ended the attempt and ran the
    // module again on w-two: its success kept on w-one was never asked for. So did it for two
    // heartbeats leaving the execution out before the cancel's answer (review S, 1).
    expect(starts).toEqual(['w-one']);
    expect(result.status).toBe('Successful');
    const attempts = result.modules[0]!.attempts;
    expect(attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([['w-one', 'Succeeded']]);
    expect(attempts[0]!.acceptedLate).toMatchObject({ after: 'Lost' });
    expect(result.modules[0]!.result).toEqual({ workerId: 'w-one' });
    // Its kept outcome was collected: after the cancel's 404 `finished`, or after the heartbeat
    // that named it `finished`, whichever the run heard first.
    expect(
      lines.some((line) => line.msg === 'its worker finished an abandoned attempt: asking for the outcome it kept'),
    ).toBe(true);
  });
});
