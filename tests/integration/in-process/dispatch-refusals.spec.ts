/**
 * Refusals of execute calls and what the run does with them (round L, L3): a re-send refused
 * after an earlier call of the same attempt failed on the way (that call may run the module), and
 * refusals that end an attempt's output log. Real orchestrator and workers on 127.0.0.1; a plain
 * HTTP front in front of a worker plays the gateway (a load balancer, an ingress) that answers
 * for it.
 */
import type { IncomingMessage } from 'node:http';
import { runPipeline, type RunEvent, type RunResult } from '@mpd/orchestrator';
import { defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';
import { startGatewayFront } from '../helpers/gateway-front.js';
import { gate } from '../helpers/module-gate.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A run of `pipeline` on `orchestrator`'s workers, its modules' output written to the
 * orchestrator's execution logs; `events`: every event of the run so far.
 */
function startRun(
  orchestrator: Pick<Awaited<ReturnType<Cluster['startOrchestrator']>>, 'registry' | 'executionLogs'>,
  pipeline: Pipeline,
): { events: RunEvent[]; running: Promise<RunResult> } {
  const events: RunEvent[] = [];
  const running = runPipeline({
    pipeline,
    registry: orchestrator.registry,
    executionLogs: orchestrator.executionLogs,
    logger: silent,
    onEvent: (event) => events.push(event),
  });
  return { events, running };
}

/**
 * A module `work` that waits at the gate `release` until the test opens it and returns its
 * worker's id: it records the worker of each run in `starts` and the most runs at once
 * (`mostAtOnce()`), prints the line `before` names, opens `started`, and once released prints
 * `after` (when given).
 */
function gatedWork(lines: { before: (workerId: string) => string; after?: string }) {
  let active = 0;
  let mostAtOnce = 0;
  const starts: string[] = [];
  const release = gate();
  const started = gate();
  const work = defineModule({
    name: 'work',
    run: async (ctx) => {
      starts.push(ctx.workerId);
      mostAtOnce = Math.max(mostAtOnce, ++active);
      console.log(lines.before(ctx.workerId));
      started.open();
      await release.wait;
      if (lines.after !== undefined) console.log(lines.after);
      active--;
      return { workerId: ctx.workerId };
    },
  });
  return { work, starts, release, started, mostAtOnce: () => mostAtOnce };
}

describe('a re-send refused after an earlier call of the same attempt failed on the way', () => {
  it.each([
    ['503 from a gateway with no healthy upstream', 503, 'text/plain', 'no healthy upstream'],
    [
      '429 from a gateway rate limit',
      429,
      'application/json',
      JSON.stringify({ success: false, errorMessage: 'rate limited' }),
    ],
  ] as const)(
    '%s: the attempt is sent again to the same worker, never re-queued beside the run that started; one run, its output whole',
    async (_, status, contentType, text) => {
      const cluster = new Cluster();
      cleanups.push(() => cluster.close());
      const { work, starts, release, started, mostAtOnce } = gatedWork({
        before: () => 'before the gate',
        after: 'after the gate',
      });
      const pipeline = definePipeline({ name: 'refused-resend', modules: [work] });
      const orchestrator = await cluster.startOrchestrator();

      // The gateway in front of worker 1: the first execute reaches the worker, and its client
      // connection is dropped once the module runs (a reset on the way back); the next one (the
      // re-send) it refuses itself; later ones it forwards.
      let workerUrl = '';
      let firstCall: IncomingMessage | undefined;
      let forwardedAfterRefusal = 0;
      const gatewayUrl = await startGatewayFront(
        cleanups,
        () => workerUrl,
        (call, req, res, forward) => {
          if (call === 1) {
            firstCall = req;
            forward((answer) => answer.resume());
          } else if (call === 2) {
            res.writeHead(status, { 'content-type': contentType, 'retry-after': '1' });
            res.end(text);
          } else {
            forwardedAfterRefusal++;
            forward((answer) => {
              res.writeHead(answer.statusCode!, answer.headers);
              answer.pipe(res);
            });
          }
        },
      );
      const one = await cluster.startWorker({ id: 'w-one', pipeline, endpoint: gatewayUrl });
      workerUrl = one.url;
      await one.link!.registered();

      const { events, running } = startRun(orchestrator, pipeline);
      await started.wait;
      // A second worker with room, where a re-queued module would go at once.
      const two = await cluster.startWorker({ id: 'w-two', pipeline });
      await two.link!.registered();
      firstCall!.socket.destroy();

      // The old code took the refusal for "not run" and started the module on w-two.
      await expect.poll(() => forwardedAfterRefusal > 0 || starts.length > 1, { timeout: 20_000 }).toBe(true);
      release.open();
      const result = await running;

      expect(starts).toEqual(['w-one']);
      expect(mostAtOnce()).toBe(1);
      expect(result.status).toBe('Successful');
      expect(result.modules[0]!.attempts.map((attempt) => [attempt.workerId, attempt.outcome])).toEqual([
        ['w-one', 'Succeeded'],
      ]);
      // Its log was kept (not dropped as a refused attempt's): the lines after the refusal came.
      const lines = events.flatMap((event) => (event.type === 'output' ? event.lines.map((line) => line.text) : []));
      expect(lines).toEqual(expect.arrayContaining(['before the gate', 'after the gate']));
      expect(events.filter((event) => event.type === 'output-incomplete')).toEqual([]);
    },
  );
});

describe('an attempt its worker refuses with an error status (DispatchRejected)', () => {
  it('404 ModuleNotFound from a real worker: the run ends without waiting for output that never comes, and reports none incomplete', async () => {
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    const wanted = defineModule({ name: 'wanted', run: () => 'ran' });
    const other = defineModule({ name: 'other', run: () => 'other' });
    const pipeline = definePipeline({ name: 'refused', modules: [wanted] });
    // A worker that advertises the run's pipeline but has another module set: it answers 404
    // ModuleNotFound, having run nothing.
    const elsewhere = { ...definePipeline({ name: 'refused', modules: [other] }), fingerprint: pipeline.fingerprint };
    const orchestrator = await cluster.startOrchestrator();
    const worker = await cluster.startWorker({ id: 'w-other', pipeline: elsewhere });
    await worker.link!.registered();
    const events: RunEvent[] = [];
    const result = await runPipeline({
      pipeline,
      registry: orchestrator.registry,
      executionLogs: orchestrator.executionLogs,
      // The old code waited this long at the run's end for the refused attempt's output.
      outputGraceMs: 2_000,
      logger: silent,
      onEvent: (event) => events.push(event),
    });
    expect(result.modules[0]).toMatchObject({ status: 'Failed', error: { type: 'DispatchRejected' } });
    expect(result.modules[0]!.error!.message).toMatch(/\(404\).*not in pipeline/);
    expect(events.filter((event) => event.type === 'output-incomplete')).toEqual([]);
  });
});

describe("the worker's own refusals carry no Mpd-Output: none", () => {
  it('an attempt a real worker refused 429 WorkerAtCapacity (its one slot taken by another run) has no output to wait for: none reported incomplete', async () => {
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    const release = gate();
    const started = gate();
    // Each run runs only the module its ONLY variable names.
    const only = (ctx: { name: string; env: Record<string, string | undefined> }) =>
      ctx.env.ONLY === ctx.name ? undefined : 'not this run';
    const hold = defineModule({
      name: 'hold',
      skipIf: only,
      run: async () => {
        started.open();
        await release.wait;
        return 'held';
      },
    });
    const quick = defineModule({ name: 'quick', skipIf: only, run: () => 'quick' });
    const pipeline = definePipeline({ name: 'full', modules: [hold, quick] });
    // No heartbeat during the test: the registry keeps the load the worker registered with (0),
    // so the second run dispatches to it while its slot is taken.
    const orchestrator = await cluster.startOrchestrator({ heartbeatIntervalSeconds: 30 });
    const worker = await cluster.startWorker({ id: 'w-full', pipeline, slots: 1 });
    await worker.link!.registered();
    const { registry, executionLogs } = orchestrator;
    const first = runPipeline({ pipeline, registry, environmentVariables: { ONLY: 'hold' }, logger: silent });
    await started.wait;
    const events: RunEvent[] = [];
    const second = runPipeline({
      pipeline,
      registry,
      environmentVariables: { ONLY: 'quick' },
      executionLogs,
      // A refused attempt's log left open would be given up (and reported) after this.
      outputGraceMs: 2_000,
      logger: silent,
      onEvent: (event) => events.push(event),
    });
    // A second start of `quick`: its first attempt was refused.
    await expect
      .poll(() => events.filter((event) => event.type === 'module-started').length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);
    release.open();
    const [held, result] = await Promise.all([first, second]);
    expect(held.status).toBe('Successful');
    expect(result.status).toBe('Successful');
    const attempts = result.modules.find((module) => module.name === 'quick')!.attempts;
    expect(attempts.at(-1)!.outcome).toBe('Succeeded');
    expect(attempts.slice(0, -1).map((attempt) => attempt.outcome)).toEqual(
      attempts.slice(0, -1).map(() => 'Rejected'),
    );
    expect(attempts[0]!.error).toMatch(/running 1 of 1 modules/);
    expect(events.filter((event) => event.type === 'output-incomplete')).toEqual([]);
  });
});

describe("a gateway's page to a FIRST call it passed on to the worker (review R1, H1)", () => {
  it('a 500 html page, cancels unanswered: the attempt is lost but not ended, no second run while the first runs, its output kept', async () => {
    const cluster = new Cluster();
    cleanups.push(() => cluster.close());
    const { work, starts, release, started, mostAtOnce } = gatedWork({
      before: (workerId) => `line from ${workerId}`,
    });
    const pipeline = definePipeline({ name: 'gateway-500', modules: [work] });
    const orchestrator = await cluster.startOrchestrator();
    let workerUrl = '';
    // The first execute reaches the worker; once the module runs, the gateway answers 500 html.
    const gatewayUrl = await startGatewayFront(
      cleanups,
      () => workerUrl,
      (call, _req, res, forward) => {
        if (call === 1) {
          forward((answer) => answer.resume());
          void started.wait.then(() => {
            res.writeHead(500, { 'content-type': 'text/html' });
            res.end('<html><body>500 Internal Server Error</body></html>');
          });
        } else {
          forward((answer) => {
            res.writeHead(answer.statusCode!, answer.headers);
            answer.pipe(res);
          });
        }
      },
      { hangCancels: true },
    );
    const one = await cluster.startWorker({ id: 'w-one', pipeline, endpoint: gatewayUrl });
    workerUrl = one.url;
    await one.link!.registered();
    const two = await cluster.startWorker({ id: 'w-two', pipeline });
    await two.link!.registered();
    const { events, running } = startRun(orchestrator, pipeline);
    await expect.poll(() => events.some((event) => event.type === 'attempt-lost'), { timeout: 20_000 }).toBe(true);
    // Five heartbeats of w-one after the loss (each lists the execution it still runs): the old
    // code had started the module on w-two at once, the answer taken for "ran nothing".
    let beats = 0;
    const unsubscribe = orchestrator.registry.onChange((event) => {
      if (event.type === 'heartbeat' && event.workerId === 'w-one') beats++;
    });
    await expect.poll(() => beats >= 5, { timeout: 20_000 }).toBe(true);
    unsubscribe();
    expect(starts).toEqual(['w-one']);
    release.open();
    const result = await running;

    expect(mostAtOnce()).toBe(1);
    expect(result.status).toBe('Successful');
    const [first] = result.modules[0]!.attempts;
    expect(first).toMatchObject({ workerId: 'w-one', outcome: 'Lost' });
    expect(first!.error).toMatch(/answered 500 with a body that is not the contract's/);
    // Its log was kept (not dropped as a refused attempt's).
    const lines = events.flatMap((event) =>
      event.type === 'output' && event.workerId === 'w-one' ? event.lines.map((line) => line.text) : [],
    );
    expect(lines).toContain('line from w-one');
  });
});
