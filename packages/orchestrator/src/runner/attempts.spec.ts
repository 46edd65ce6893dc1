/**
 * How `runPipeline` handles its attempts when calls fail: re-sends, refusals and quarantine,
 * and the rule that a new attempt of a module starts only once no earlier one can still run.
 * Time is a {@link ManualClock}; workers are scripted clients answering each call as a test says.
 */
import { type WorkerClient, MpdClientError } from '@mpd/client';
import { errorResponse, type ExecuteModuleRequest } from '@mpd/contract';
import { defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import { ManualClock } from '@mpd/test-kit';
import { pino } from 'pino';
import { UnknownStatusError } from '@ts-rest/core';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { InMemoryNodeRegistry, type InMemoryNodeRegistryOptions } from '../registry/in-memory-node-registry.js';
import { COLLECT_WINDOW_MS } from './attempt-calls.js';
import { runPipeline } from './pipeline-runner.js';
import type { RunPipelineOptions } from './run-options.js';

type Answer = { status: number; body: unknown; headers?: Headers };
/** What a scripted worker does with a call: answer, or fail the way the client fails. */
type Script = (call: number) => Answer | Error | Promise<Answer | Error>;

const logger = pino({ level: 'silent' });

/** Each attempt of a module's result as `[workerId, outcome]`, in order: where it ran and how it ended. */
const attemptOutcomes = (module: { attempts: readonly { workerId: string; outcome: string }[] }): string[][] =>
  module.attempts.map((attempt) => [attempt.workerId, attempt.outcome]);
const refused = (): MpdClientError =>
  new MpdClientError('Unreachable', 'POST x: ECONNREFUSED', { errno: 'ECONNREFUSED' });
const reset = (): MpdClientError => new MpdClientError('ConnectionLost', 'POST x: ECONNRESET', { errno: 'ECONNRESET' });
const success = (body: ExecuteModuleRequest): Answer => ({
  status: 200,
  body: {
    executionId: body.executionId,
    success: true,
    serializedResult: JSON.stringify(body.executionId),
    duration: '00:00:01',
    startTime: '2025-09-30T10:00:00Z',
    endTime: '2025-09-30T10:00:01Z',
    workerId: 'w',
  },
});

/** A worker the run calls through a client whose every call is scripted. */
class ScriptedWorker {
  readonly executes: ExecuteModuleRequest[] = [];
  readonly cancels: string[] = [];
  constructor(
    readonly id: string,
    private readonly execute: (body: ExecuteModuleRequest, call: number) => Answer | Error | Promise<Answer | Error>,
    private readonly cancel: Script = () => ({ status: 200, body: { success: true } }),
  ) {}

  client(): WorkerClient {
    const settle = async (outcome: Answer | Error | Promise<Answer | Error>) => {
      const value = await outcome;
      if (value instanceof Error) throw value;
      return value;
    };
    return {
      execution: {
        execute: ({ body }: { body: ExecuteModuleRequest }) => {
          this.executes.push(body);
          return settle(this.execute(body, this.executes.length));
        },
        cancel: ({ body }: { body: { executionId: string } }) => {
          this.cancels.push(body.executionId);
          return settle(this.cancel(this.cancels.length));
        },
      },
      close: async () => undefined,
    } as unknown as WorkerClient;
  }
}

/** A worker as {@link setup} takes it: its id, and the client the run calls it through. */
interface WorkerScript {
  readonly id: string;
  client(): WorkerClient;
}

/** `registry`: the registry's timeout and bounds, on the run's clock. @default an hour's timeout, on the system clock */
function setup(
  pipeline: Pipeline,
  workers: WorkerScript[],
  registryOptions?: Omit<InMemoryNodeRegistryOptions, 'now'>,
  /** Ids of `workers` the test registers itself later (with `register`). */
  later: readonly string[] = [],
) {
  const clock = new ManualClock();
  const registry = new InMemoryNodeRegistry(
    registryOptions ? { ...registryOptions, now: () => clock.now() } : { heartbeatTimeoutMs: 3_600_000 },
  );
  const register = (worker: WorkerScript) =>
    registry.register({
      id: worker.id,
      endpoint: `http://${worker.id}:9000`,
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
    });
  for (const worker of workers) if (!later.includes(worker.id)) register(worker);
  const byEndpoint = new Map(workers.map((worker) => [`http://${worker.id}:9000`, worker.client()]));
  const run = (options: Partial<RunPipelineOptions> = {}) =>
    runPipeline({
      pipeline,
      registry,
      logger,
      clock,
      rescheduleIntervalMs: 1_000,
      createClient: ({ endpoint }) => byEndpoint.get(endpoint)!,
      ...options,
    });
  return { registry, clock, run, register };
}

const work = defineModule({ name: 'work', run: () => 'ran' });
const pipeline = definePipeline({ name: 'attempts', modules: [work] });

/** What {@link lostAttemptRun} sets up. */
interface LostAttemptOptions {
  /** w-lost's calls after its first two (a collect, or another module's). @default refused */
  laterCalls?: (body: ExecuteModuleRequest, call: number) => Answer | Error | Promise<Answer | Error>;
  /** w-lost's answer to each cancel call. @default 200 (stopping) */
  cancelAnswer?: Script;
  /** @default `pipeline` (one module, `work`) */
  of?: Pipeline;
  /** w-other registers only when the test calls `register(other)`. @default false */
  otherRegistersLater?: boolean;
}

/**
 * A run (started by `run`) on two 1-slot workers: `w-lost`, whose first execute call is cut (a
 * reset) and its re-send refused, so the attempt is lost though it may run there (the worker
 * is quarantined on probation), and `w-other`, which answers every call with a success.
 */
function lostAttemptRun({
  laterCalls = refused,
  cancelAnswer,
  of = pipeline,
  otherRegistersLater = false,
}: LostAttemptOptions = {}) {
  const lost = new ScriptedWorker(
    'w-lost',
    (body, call) => (call === 1 ? reset() : call === 2 ? refused() : laterCalls(body, call)),
    cancelAnswer,
  );
  const other = new ScriptedWorker('w-other', (body) => success(body));
  return { lost, other, ...setup(of, [lost, other], undefined, otherRegistersLater ? ['w-other'] : []) };
}

describe('runPipeline: re-sends', () => {
  it('sends an execute call cut on the way again, with the same executionId, to the same worker, after a backoff of at most 250 ms', async () => {
    const worker = new ScriptedWorker('w', (body, call) => (call === 1 ? reset() : success(body)));
    const { clock, run } = setup(pipeline, [worker]);
    const running = run();
    await clock.advance(0);
    expect(worker.executes).toHaveLength(1);
    await clock.advance(124); // the first re-send waits between 125 and 250 ms (jitter)
    expect(worker.executes).toHaveLength(1);
    await clock.advance(126);
    expect(worker.executes).toHaveLength(2);
    const result = await running;
    expect(result.status).toBe('Successful');
    expect(worker.executes[1]!.executionId).toBe(worker.executes[0]!.executionId);
    expect(result.modules[0]!.attempts.map((attempt) => attempt.outcome)).toEqual(['Succeeded']);
    expect(worker.cancels).toEqual([]);
  });
});

describe('runPipeline: workers removed from the registry', () => {
  // Issue 11: Offline workers are removed after the offline retention. Their attempts were lost
  // when they went Offline; the removal loses nothing more, and nothing that looks the id up breaks.
  it('an Offline worker removed after the retention: its attempt was lost at Offline, the module runs elsewhere, the run ends well', async () => {
    let answerB: (() => void) | undefined;
    const hung = new ScriptedWorker('a', () => new Promise<Answer>(() => undefined));
    const slow = new ScriptedWorker(
      'b',
      (body) => new Promise<Answer>((resolve) => (answerB = () => resolve(success(body)))),
    );
    const { clock, run, registry } = setup(pipeline, [hung, slow], {
      heartbeatTimeoutMs: 10_000,
      offlineRetentionMs: 5_000,
    });
    const events: string[] = [];
    registry.onChange((event) => event.type !== 'heartbeat' && events.push(`${event.type} ${event.workerId}`));
    const running = run();
    await clock.advance(0);
    expect(hung.executes).toHaveLength(1);
    await clock.advance(10_001);
    registry.heartbeat('b', 0);
    registry.sweep();
    await clock.advance(2_000); // past the backoff after a loss
    expect(slow.executes).toHaveLength(1);
    await clock.advance(3_000);
    registry.heartbeat('b', 1);
    registry.sweep();
    expect(events).toEqual(['offline a', 'removed a']);
    expect(registry.get('a')).toBeUndefined();
    await clock.advance(1_000);
    answerB!();
    const result = await running;
    expect(result.status).toBe('Successful');
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['a', 'Lost'],
      ['b', 'Succeeded'],
    ]);
    expect(hung.executes).toHaveLength(1);
  });
});

describe('runPipeline: cancels the run did not ask for', () => {
  it('a Cancelled answer the run did not ask for (a worker that fenced itself, or shut down) loses the attempt, and the module runs again', async () => {
    const cancelled = (body: ExecuteModuleRequest): Answer => ({
      status: 500,
      body: {
        executionId: body.executionId,
        success: false,
        errorMessage: 'fenced: no heartbeat acknowledged for 5 s',
        exceptionType: 'ExecutionCancelledError',
        stackTrace: null,
        failureKind: 'Cancelled',
        duration: '00:00:01',
        startTime: '2025-09-30T10:00:00Z',
        endTime: '2025-09-30T10:00:01Z',
        workerId: 'a',
      },
    });
    const fenced = new ScriptedWorker('a', (body, call) => (call === 1 ? cancelled(body) : success(body)));
    const { clock, run } = setup(pipeline, [fenced]);
    const running = run();
    await clock.advance(60_000);
    const result = await running;
    expect(result.status).toBe('Successful');
    const [first, second] = result.modules[0]!.attempts;
    expect(first).toMatchObject({ outcome: 'Lost' });
    expect(first!.error).toContain('the worker cancelled it itself: fenced: no heartbeat acknowledged for 5 s');
    expect(second).toMatchObject({ outcome: 'Succeeded' });
  });
});

describe('runPipeline: refusals and quarantine', () => {
  it('a worker whose endpoint refuses is quarantined: no module goes back to it, and after workerWaitMs the module fails naming why', async () => {
    const worker = new ScriptedWorker('w', () => refused());
    const { clock, run } = setup(pipeline, [worker]);
    const running = run({ workerWaitMs: 10_000 });
    await clock.advance(9_000);
    expect(worker.executes).toHaveLength(1);
    await clock.advance(10_000);
    const result = await running;
    const module = result.modules[0]!;
    expect(module).toMatchObject({ status: 'Failed', error: { type: 'NoCapableWorker' } });
    expect(module.error!.message).toMatch(/w is quarantined for this run \(Unreachable: POST x: ECONNREFUSED\)/);
    expect(module.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost']);
    // The request never reached a worker: nothing to cancel.
    expect(worker.cancels).toEqual([]);
  });

  it('a refused worker that keeps heartbeating is tried again after its probation; all refusals of one start count as one loss', async () => {
    const worker = new ScriptedWorker('w', () => refused());
    const { clock, run, registry } = setup(pipeline, [worker]);
    const running = run({ workerWaitMs: 120_000, maxLostAttempts: 1 });
    // 70 s: past it, the fifth probation (the longest, up to 60 s) could end, and a refusal after
    // the longest probation counts as a loss of its own (review N3, 1).
    for (let beat = 0; beat < 7; beat++) {
      await clock.advance(10_000);
      registry.heartbeat('w', 0);
    }
    // Probations of 5 s, then 10 s, 20 s, 40 s (at most, with jitter): several more tries, all of the same start.
    expect(worker.executes.length).toBeGreaterThanOrEqual(4);
    await clock.advance(200_000);
    const module = (await running).modules[0]!;
    expect(module.attempts.every((attempt) => attempt.outcome === 'Lost')).toBe(true);
    // Counted once, the module never exceeded maxLostAttempts (1): it ends waiting for a worker, not WorkerLost.
    expect(module.error?.type).toBe('NoCapableWorker');
  });

  // Round P review (R1): no runner test held `newStart` (the quarantine's `registered` kept every spec green).
  it.each([
    ['replaced while it is registered (another incarnation under its id)', false],
    ['registered again after it unregistered, as another incarnation', true],
  ])(
    'a new start of a refused worker, %s, begins its refusals afresh: after refusals up to the longest probation its first probation is 5 s again, and its next refusal is not counted as past the longest',
    async (_name, unregisters) => {
      let up = false;
      const worker = new ScriptedWorker('w', (body) => (up ? success(body) : refused()));
      const { clock, run, registry } = setup(pipeline, [worker]);
      registry.unregister('w');
      const registration = {
        id: 'w',
        endpoint: 'http://w:9000',
        capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
        pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
      };
      registry.register(registration, { incarnation: 'a' });
      // Start a's refusals: probations of 5, 10, 20, 40 s, then the longest (60 s) after the fifth.
      const running = run({ workerWaitMs: 3_600_000, maxLostAttempts: 2 });
      for (let second = 0; second < 300 && worker.executes.length < 5; second++) {
        await clock.advance(1_000);
        registry.heartbeat('w', 0, { incarnation: 'a' });
      }
      expect(worker.executes).toHaveLength(5);
      if (unregisters) registry.unregister('w', { incarnation: 'a' });
      registry.register(registration, { incarnation: 'b' });
      await clock.advance(1_000);
      expect(worker.executes).toHaveLength(6); // start b's first call, refused
      // Its probation is the first one again (at most 5 s), not the longest (60 s).
      for (let second = 0; second < 7; second++) {
        await clock.advance(1_000);
        registry.heartbeat('w', 0, { incarnation: 'b' });
      }
      expect(worker.executes).toHaveLength(7);
      up = true;
      for (let second = 0; second < 12 && worker.executes.length < 8; second++) {
        await clock.advance(1_000);
        registry.heartbeat('w', 0, { incarnation: 'b' });
      }
      const result = await running;
      // Start a's refusals counted once, start b's once: within maxLostAttempts (2); a refusal
      // counted as past the longest would have been the third loss.
      expect(result.status).toBe('Successful');
      const attempts = result.modules[0]!.attempts;
      expect(attempts.map((attempt) => attempt.outcome)).toEqual([...Array(7).fill('Lost'), 'Succeeded']);
      expect(attempts.some((attempt) => /longest probation/.test(attempt.error ?? ''))).toBe(false);
    },
  );

  it("a gateway's bare 503 with a Retry-After keeps the worker on probation that long (at most the longest, 60 s), not the first probation's 5 s", async () => {
    const worker = new ScriptedWorker(
      'w',
      (body, call) =>
        call === 1
          ? { status: 503, body: 'no healthy upstream', headers: new Headers({ 'retry-after': '30' }) }
          : success(body),
      () => errorResponse('ExecutionNotFound', 'Execution not found'),
    );
    const { clock, run, registry } = setup(pipeline, [worker]);
    const running = run({ workerWaitMs: 120_000 });
    await clock.advance(0);
    expect(worker.executes).toHaveLength(1);
    for (let second = 0; second < 28; second++) {
      await clock.advance(1_000);
      registry.heartbeat('w', 0);
    }
    expect(worker.executes).toHaveLength(1); // 28 s: still on probation
    for (let second = 0; second < 5; second++) {
      await clock.advance(1_000);
      registry.heartbeat('w', 0);
    }
    await clock.advance(2_000);
    expect(worker.executes).toHaveLength(2);
    expect((await running).status).toBe('Successful');
  });

  it('a worker registering again (a new start) leaves quarantine at once and gets the module', async () => {
    let up = false;
    const worker = new ScriptedWorker('w', (body) => (up ? success(body) : refused()));
    const { clock, run, register } = setup(pipeline, [worker]);
    const running = run({ workerWaitMs: 60_000 });
    await clock.advance(3_000);
    expect(worker.executes).toHaveLength(1);
    up = true;
    register(worker);
    await clock.advance(6_000);
    const result = await running;
    expect(result.status).toBe('Successful');
    expect(result.modules[0]!.attempts.map((attempt) => attempt.outcome)).toEqual(['Lost', 'Succeeded']);
  });
});

describe('runPipeline: broken endpoints', () => {
  it('an endpoint that closes every connection without a word is broken after 3 tries; the module runs elsewhere once heartbeats show it runs nowhere', async () => {
    const closed = (): MpdClientError =>
      new MpdClientError('ConnectionLost', 'POST x: UND_ERR_SOCKET', { errno: 'UND_ERR_SOCKET' });
    const mute = new ScriptedWorker(
      'w-mute',
      () => closed(),
      () => closed(),
    );
    const other = new ScriptedWorker('w-other', (body) => success(body));
    const { clock, run, registry } = setup(pipeline, [mute, other]);
    const running = run();
    await clock.advance(5_000);
    expect(mute.executes).toHaveLength(3);
    // The first call may have reached it: no new attempt until it is known to run nowhere.
    expect(other.executes).toEqual([]);
    registry.heartbeat('w-mute', 0, { executions: [] });
    registry.heartbeat('w-mute', 0, { executions: [] });
    await clock.advance(6_000);
    const result = await running;
    expect(result.status).toBe('Successful');
    const [first, second] = result.modules[0]!.attempts;
    expect(first).toMatchObject({ workerId: 'w-mute', outcome: 'Lost' });
    expect(first!.error).toMatch(/closed the connection 3 times in a row without an answer/);
    expect(second).toMatchObject({ workerId: 'w-other', outcome: 'Succeeded' });
  });
});

describe('runPipeline: at most one live attempt per module', () => {
  it('no new attempt while a lost one may still run (its call reached the worker; its cancel is not acknowledged)', async () => {
    let cancelsGetThrough = false;
    const { lost, other, clock, run } = lostAttemptRun({
      cancelAnswer: () => (cancelsGetThrough ? errorResponse('ExecutionNotFound', 'Execution not found') : refused()),
    });
    const running = run();
    await clock.advance(30_000);
    // Reset, re-sent, refused: lost, but the first call may have started it there.
    expect(lost.executes).toHaveLength(2);
    expect(lost.cancels.length).toBeGreaterThan(3); // retried with backoff
    expect(other.executes).toEqual([]);
    cancelsGetThrough = true;
    await clock.advance(6_000);
    const result = await running;
    expect(result.status).toBe('Successful');
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it("an abandoned attempt ends once two of its worker's heartbeats in a row leave it out of `executions` and `finished`: one is not enough, and a listing starts the count again", async () => {
    const { lost, other, clock, run, registry } = lostAttemptRun({
      cancelAnswer: refused, // its cancels never get through
    });
    const running = run();
    await clock.advance(1_000);
    expect(lost.executes).toHaveLength(2); // reset, re-sent, refused: lost
    const executionId = lost.executes[0]!.executionId;
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    expect(other.executes).toEqual([]); // one heartbeat without it
    registry.heartbeat('w-lost', 1, { executions: [executionId] }); // still runs there: the count starts again
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(6_000);
    expect(other.executes).toEqual([]);
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(6_000);
    const result = await running;
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it('an abandoned attempt its worker names `finished` (heartbeats then leave it out: the worker reported it once) has its kept outcome collected, the same executionId sent again, before the module may run elsewhere; a success is accepted', async () => {
    const { lost, other, clock, run, registry } = lostAttemptRun({
      laterCalls: (body) => success(body),
      cancelAnswer: refused, // its cancels never get through
    });
    const running = run();
    await clock.advance(1_000);
    expect(lost.executes).toHaveLength(2); // reset, re-sent, refused: lost, and it may run there
    const executionId = lost.executes[0]!.executionId;
    registry.heartbeat('w-lost', 1, { executions: [executionId] });
    await clock.advance(1_000);
    // It finished there: named once in `finished`, then in neither list (the worker dropped it once acknowledged).
    registry.heartbeat('w-lost', 0, { executions: [], finished: [executionId] });
    await clock.advance(1_000);
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(6_000);
    const result = await running;
    expect(lost.executes.map((body) => body.executionId)).toEqual([executionId, executionId, executionId]);
    expect(other.executes).toEqual([]);
    expect(result.status).toBe('Successful');
    const [only, ...more] = result.modules[0]!.attempts;
    expect(more).toEqual([]);
    expect(only).toMatchObject({ workerId: 'w-lost', outcome: 'Succeeded', acceptedLate: { after: 'Lost' } });
  });

  // Round P review (R1): the collect was sent once, and a "ran nothing" answer to it (or a failure
  // on the way) ended the attempt: the module ran again elsewhere and the kept success was lost.
  it.each<[string, () => Answer | Error]>([
    [
      '503 WorkerNotReady (re-registering under the same incarnation)',
      () => errorResponse('WorkerNotReady', 'no credential yet'),
    ],
    ['429 WorkerAtCapacity', () => errorResponse('WorkerAtCapacity', 'at capacity')],
    ['401 Unauthorized', () => errorResponse('Unauthorized', 'unknown token')],
    ['a connection reset', reset],
  ])(
    'the collect of a kept outcome answered %s ran nothing: the attempt is not ended, its outcome is collected again at the next heartbeat, and the module never runs elsewhere',
    async (_name, ranNothing) => {
      const { lost, other, clock, run, registry } = lostAttemptRun({
        laterCalls: (body, call) => (call === 3 ? ranNothing() : success(body)),
        cancelAnswer: refused, // its cancels never get through
      });
      const running = run();
      await clock.advance(1_000);
      expect(lost.executes).toHaveLength(2); // reset, re-sent, refused: lost, and it may run there
      const executionId = lost.executes[0]!.executionId;
      registry.heartbeat('w-lost', 0, { executions: [], finished: [executionId] });
      await clock.advance(1_000);
      expect(lost.executes).toHaveLength(3); // the collect, which ran nothing
      // The worker names it `finished` no more (that heartbeat was acknowledged).
      registry.heartbeat('w-lost', 0, { executions: [] });
      await clock.advance(1_000);
      registry.heartbeat('w-lost', 0, { executions: [] });
      await clock.advance(6_000);
      const result = await running;
      expect(other.executes).toEqual([]);
      expect(lost.executes.map((body) => body.executionId)).toEqual([
        executionId,
        executionId,
        executionId,
        executionId,
      ]);
      expect(result.status).toBe('Successful');
      expect(attemptOutcomes(result.modules[0]!)).toEqual([['w-lost', 'Succeeded']]);
    },
  );

  it("a worker replaced under its id: its attempt is lost at once, but runs again only once the old process's heartbeat lease has ended", async () => {
    const clock = new ManualClock();
    const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 10_000, now: () => clock.now() });
    let endFirstCall: (outcome: Error) => void = () => undefined;
    const worker = new ScriptedWorker(
      'w',
      (body, call) => (call === 1 ? new Promise<Error>((resolve) => (endFirstCall = resolve)) : success(body)),
      // The new process does not run the old one's execution: not proof that it ended.
      () => errorResponse('ExecutionNotFound', 'Execution not found'),
    );
    const registration = {
      id: 'w',
      endpoint: 'http://w:9000',
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
    };
    registry.register(registration, { incarnation: 'old' });
    const running = runPipeline({
      pipeline,
      registry,
      logger,
      clock,
      rescheduleIntervalMs: 1_000,
      createClient: () => worker.client(),
    });
    await clock.advance(2_000);
    expect(worker.executes).toHaveLength(1);
    // The old process is frozen 2 s after its last heartbeat; a new one registers under its id.
    registry.register(registration, { incarnation: 'new' });
    for (let beat = 0; beat < 7; beat++) {
      await clock.advance(1_000);
      registry.heartbeat('w', 0, { incarnation: 'new', executions: [] });
    }
    // 9 s after the old heartbeat: its lease (10 s) may still hold, its module hosts may still run it.
    expect(worker.executes).toHaveLength(1);
    expect(worker.cancels.length).toBeGreaterThan(0);
    await clock.advance(3_000);
    expect(worker.executes).toHaveLength(2);
    endFirstCall(reset());
    const result = await running;
    expect(result.status).toBe('Successful');
    const [first, second] = result.modules[0]!.attempts;
    expect(first).toMatchObject({ outcome: 'Lost', error: 'worker w was replaced by a new process under its id' });
    expect(second).toMatchObject({ outcome: 'Succeeded', executionId: worker.executes[1]!.executionId });
    expect(Date.parse(second!.startTime)).toBeGreaterThanOrEqual(Date.parse(first!.startTime) + 10_000);
  });

  it("a lost attempt's success that arrives before the module ended is accepted, once, and the attempt running in its place is cancelled", async () => {
    let answerLost!: (answer: Answer) => void;
    const late = new Promise<Answer>((resolve) => (answerLost = resolve));
    const frozen = new ScriptedWorker('w-frozen', () => late);
    const second = new ScriptedWorker('w-second', () => new Promise<Answer>(() => undefined));
    const { clock, run, registry } = setup(pipeline, [frozen, second], { heartbeatTimeoutMs: 10_000 });
    const running = run();
    await clock.advance(0);
    expect(frozen.executes).toHaveLength(1);
    // Unregistered (an admin's DELETE) while it runs the module: lost at once, but the module runs
    // again only once the worker's heartbeat lease has ended (it may run it until then).
    registry.unregister('w-frozen');
    await clock.advance(9_000);
    expect(second.executes).toHaveLength(0);
    await clock.advance(2_000);
    expect(second.executes).toHaveLength(1);
    answerLost(success(frozen.executes[0]!));
    await clock.advance(1_000);
    const result = await running;
    const module = result.modules[0]!;
    expect(module).toMatchObject({
      status: 'Successful',
      workerId: 'w-frozen',
      result: frozen.executes[0]!.executionId,
    });
    expect(attemptOutcomes(module)).toEqual([
      ['w-frozen', 'Succeeded'],
      ['w-second', 'Cancelled'],
    ]);
    expect(module.attempts[0]!.acceptedLate).toMatchObject({
      after: 'Lost',
      reason: 'worker w-frozen was unregistered while it ran modules',
    });
    expect(second.cancels).toEqual([second.executes[0]!.executionId]);
  });
});

/** The cancel's 404 of a worker whose execution finished there, its outcome kept (round R, R1). */
const finishedHere = (): Answer => {
  const notFound = errorResponse('ExecutionNotFound', 'Execution not found');
  return { status: notFound.status, body: { ...notFound.body, finished: true } };
};

/**
 * `w-lost`, through a client that records the executionId of each execute call, never its
 * request (it may be garbage-collected). `cancel`: its answer to each cancel call. @default refused
 */
function idsOnlyClient(
  answer: (call: number) => Answer | Error,
  onBody: (body: ExecuteModuleRequest) => void,
  cancel: () => Promise<Answer> = async () => {
    throw refused(); // its cancels never get through
  },
): WorkerScript & { executionIds: string[] } {
  const executionIds: string[] = [];
  const client = {
    execution: {
      execute: async ({ body }: { body: ExecuteModuleRequest }) => {
        executionIds.push(body.executionId);
        onBody(body);
        const value = answer(executionIds.length);
        if (value instanceof Error) throw value;
        return value;
      },
      cancel,
    },
    close: async () => undefined,
  } as unknown as WorkerClient;
  return { id: 'w-lost', client: () => client, executionIds };
}

describe('runPipeline: a cancel answered 404 `finished` (round R, R1)', () => {
  // The old code took every cancel's 404 as "it runs nowhere": the attempt ended, the module ran
  // again on w-other, and the success kept on w-lost was never asked for.
  it('an abandoned attempt whose cancel says it finished there has its kept outcome collected (same executionId) before the module may run elsewhere; a success is accepted, once', async () => {
    const { lost, other, clock, run } = lostAttemptRun({
      laterCalls: (body) => success(body),
      cancelAnswer: finishedHere,
    });
    const running = run();
    await clock.advance(10_000);
    const result = await running;
    const executionId = lost.executes[0]!.executionId;
    expect(lost.executes.map((body) => body.executionId)).toEqual([executionId, executionId, executionId]);
    expect(lost.cancels).toEqual([executionId]); // no cancel call after it said it finished
    expect(other.executes).toEqual([]);
    expect(result.status).toBe('Successful');
    const [only, ...more] = result.modules[0]!.attempts;
    expect(more).toEqual([]);
    expect(only).toMatchObject({ workerId: 'w-lost', outcome: 'Succeeded', acceptedLate: { after: 'Lost' } });
    expect(result.modules[0]!.result).toBe(executionId);
  });

  it('a collect after such a cancel that runs nothing (503 WorkerNotReady) ends nothing: the next heartbeat collects it; the module never runs elsewhere', async () => {
    const { lost, other, clock, run, registry } = lostAttemptRun({
      laterCalls: (body, call) => (call === 3 ? errorResponse('WorkerNotReady', 'no credential yet') : success(body)),
      cancelAnswer: finishedHere,
    });
    const running = run();
    await clock.advance(10_000);
    expect(lost.executes).toHaveLength(3); // the collect, which ran nothing
    expect(other.executes).toEqual([]);
    // The worker names it `finished` no more (a heartbeat carrying it was acknowledged long ago).
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    const result = await running;
    expect(lost.executes).toHaveLength(4);
    expect(other.executes).toEqual([]);
    expect(attemptOutcomes(result.modules[0]!)).toEqual([['w-lost', 'Succeeded']]);
  });

  it('the `keptForMs` of such a 404 bounds its collects: none is sent once the worker no longer keeps the outcome, and the attempt then ends on the two heartbeats that leave it out (review S, 3)', async () => {
    const { lost, other, clock, run, registry } = lostAttemptRun({
      laterCalls: () => errorResponse('WorkerNotReady', 'no credential yet'),
      cancelAnswer: () => {
        const answer = finishedHere();
        return { ...answer, body: { ...(answer.body as object), keptForMs: 30_000 } };
      },
    });
    const running = run();
    await clock.advance(10_000);
    expect(lost.executes).toHaveLength(3); // the collect after the cancel's 404, which ran nothing
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    expect(lost.executes).toHaveLength(4); // within keptForMs: asked again
    await clock.advance(30_000);
    // Past keptForMs (though well within COLLECT_WINDOW_MS): the request would run the module
    // again there. The old code sent it (a fifth execute).
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    expect(lost.executes).toHaveLength(4);
    expect(other.executes).toEqual([]);
    registry.heartbeat('w-lost', 0, { executions: [] });
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(6_000);
    const result = await running;
    expect(lost.executes).toHaveLength(4);
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it("an older worker's plain 404 (no `finished`) is taken as before: the attempt runs nowhere, the module runs elsewhere at once, nothing is collected", async () => {
    const { lost, other, clock, run } = lostAttemptRun({
      cancelAnswer: () => errorResponse('ExecutionNotFound', 'Execution not found'),
    });
    const running = run();
    await clock.advance(10_000);
    const result = await running;
    expect(lost.executes).toHaveLength(2);
    expect(lost.cancels).toHaveLength(1);
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it('collects that keep getting nothing stop when the collect window ends: its request is released, and the attempt ends on the two heartbeats that leave it out after that', async () => {
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    let sent: WeakRef<ExecuteModuleRequest> | undefined;
    // Reset, re-send refused: lost (it may run there). Every collect after: 503, ran nothing.
    const lost = idsOnlyClient(
      (call) => (call === 1 ? reset() : call === 2 ? refused() : errorResponse('WorkerNotReady', 'no credential yet')),
      (body) => (sent ??= new WeakRef(body)),
    );
    const other = new ScriptedWorker('w-other', (body) => success(body));
    // On the run's clock (its collect window is a clock's), as every registry here.
    const { clock, registry, run } = setup(pipeline, [lost, other], { heartbeatTimeoutMs: 3_600_000 });
    const running = run();
    await clock.advance(1_000);
    expect(lost.executionIds).toHaveLength(2);
    const executionId = lost.executionIds[0]!;
    registry.heartbeat('w-lost', 0, { executions: [], finished: [executionId] });
    await clock.advance(1_000);
    expect(lost.executionIds).toHaveLength(3); // collected, nothing: asked again at each heartbeat
    for (let beat = 0; beat < 3; beat++) {
      registry.heartbeat('w-lost', 0, { executions: [] });
      await clock.advance(60_000);
    }
    expect(lost.executionIds).toHaveLength(6);
    await clock.advance(COLLECT_WINDOW_MS - 3 * 60_000);
    // Past the window: this heartbeat asks no more (the outcome may be gone: the request would
    // run the module again there), and does not count as one that leaves it out.
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    expect(lost.executionIds).toHaveLength(6);
    expect(other.executes).toEqual([]);
    // Its request is no longer kept: nothing holds it (it was, by the attempt, until the run ended).
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(sent!.deref()).toBeUndefined();
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    expect(other.executes).toEqual([]); // one heartbeat is not enough
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(6_000);
    const result = await running;
    expect(lost.executionIds).toEqual(Array(6).fill(executionId));
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it('named `finished` while its attempt still ran, then lost (a bare 503), its cancels never answered: the heartbeats that leave it out end nothing; its kept outcome is collected, and the module never runs elsewhere (review S, 1)', async () => {
    // The first execute is held (a gateway passed it on); the worker ran and finished it.
    let answerFirst: (answer: Answer) => void = () => undefined;
    const lost = new ScriptedWorker(
      'w-lost',
      (body, call) => (call === 1 ? new Promise<Answer>((resolve) => (answerFirst = resolve)) : success(body)),
      neverAnswered,
    );
    const other = new ScriptedWorker('w-other', (body) => success(body));
    const { clock, run, registry } = setup(pipeline, [lost, other]);
    const running = run();
    await clock.advance(1_000);
    expect(lost.executes).toHaveLength(1);
    const executionId = lost.executes[0]!.executionId;
    // Named `finished` once, while the attempt still runs (its call is out); then never again.
    registry.heartbeat('w-lost', 0, { executions: [], finished: [executionId] });
    await clock.advance(1_000);
    // The gateway answers the held call a bare 503: the attempt is lost (it may run there).
    answerFirst({ status: 503, body: 'no healthy upstream' });
    await clock.advance(1_000);
    // Its cancels are never answered (a cut port): only heartbeats, none naming it, come.
    for (let beat = 0; beat < 3; beat++) {
      registry.heartbeat('w-lost', 0, { executions: [] });
      await clock.advance(1_000);
    }
    // The old code ended it `not-listed` at the second and ran the module on w-other.
    expect(other.executes).toEqual([]);
    await clock.advance(10_000);
    const result = await running;
    expect(lost.executes.map((body) => body.executionId)).toEqual([executionId, executionId]);
    expect(other.executes).toEqual([]);
    expect(result.status).toBe('Successful');
    expect(attemptOutcomes(result.modules[0]!)).toEqual([['w-lost', 'Succeeded']]);
  });
});

describe('runPipeline: a late cancel 404 `finished` for an outcome the heartbeat path collects (round R, R1)', () => {
  const first = defineModule({ name: 'work', run: () => 'ran' });
  const nextOne = defineModule({ name: 'next-1', dependsOn: [first], run: () => 'next' });
  const nextTwo = defineModule({ name: 'next-2', dependsOn: [first], run: () => 'next' });
  const chained = definePipeline({ name: 'late-404', modules: [first, nextOne, nextTwo] });

  // r1.md reasoned these safe without a test: the cancel's 404 `finished` comes once the
  // heartbeat that named the execution `finished` has had its collect sent, or answered.
  it.each([
    ['while that collect is out', false],
    ['after that collect answered the success', true],
  ])(
    'arriving %s: the success is accepted once, no second collect is sent, and the attempt is not ended twice (its 1-slot worker runs one module at a time after it)',
    async (_when, collectFirst) => {
      let answerCollect: (answer: Answer) => void = () => undefined;
      let answerCancel: () => void = () => undefined;
      const heldNext: Array<() => void> = [];
      // Cut, re-send refused: lost (it may run there). The third call is the collect; later ones
      // are the dependants', held until the test answers them.
      const lost = new ScriptedWorker(
        'w-lost',
        (body, call) =>
          call === 1
            ? reset()
            : call === 2
              ? refused()
              : call === 3
                ? new Promise<Answer>((resolve) => (answerCollect = resolve))
                : new Promise<Answer>((resolve) => heldNext.push(() => resolve(success(body)))),
        // The cancel call is out until the test answers it 404 `finished`.
        () => new Promise<Answer>((resolve) => (answerCancel = () => resolve(finishedHere()))),
      );
      const { registry, clock, run } = setup(chained, [lost]);
      const finishedModules: string[] = [];
      const running = run({
        onEvent: (event) => event.type === 'module-finished' && finishedModules.push(event.module),
      });
      await clock.advance(10_000);
      expect(lost.executes).toHaveLength(2);
      expect(lost.cancels).toHaveLength(1);
      const executionId = lost.executes[0]!.executionId;
      // Past its probation, w-lost's heartbeat names it `finished`: its kept outcome is collected.
      registry.heartbeat('w-lost', 0, { executions: [], finished: [executionId] });
      await clock.advance(1_000);
      expect(lost.executes.map((body) => body.executionId)).toEqual([executionId, executionId, executionId]);
      const success3 = success(lost.executes[2]!);
      if (collectFirst) {
        answerCollect(success3);
        await clock.advance(1_000);
        expect(lost.executes).toHaveLength(4); // work succeeded: one dependant on the one slot
      }
      answerCancel();
      await clock.advance(1_000);
      if (!collectFirst) {
        expect(lost.executes).toHaveLength(3); // no second collect beside the one out
        answerCollect(success3);
        await clock.advance(1_000);
      }
      // One dependant at a time on the 1-slot worker: the attempt's slot was freed once.
      expect(lost.executes).toHaveLength(4);
      expect(lost.executes.filter((body) => body.executionId === executionId)).toHaveLength(3);
      heldNext.shift()!();
      await clock.advance(1_000);
      expect(lost.executes).toHaveLength(5);
      heldNext.shift()!();
      await clock.advance(1_000);
      const result = await running;
      expect(result.status).toBe('Successful');
      expect(lost.executes.filter((body) => body.executionId === executionId)).toHaveLength(3);
      expect(finishedModules.filter((name) => name === 'work')).toEqual(['work']);
      const work = result.modules.find((module) => module.name === 'work')!;
      expect(work.result).toBe(executionId);
      expect(attemptOutcomes(work)).toEqual([['w-lost', 'Succeeded']]);
      expect(work.attempts[0]!.acceptedLate).toMatchObject({ after: 'Lost' });
    },
  );
});

describe('runPipeline: a retired attempt keeps no request (round R, R1; review S, 4)', () => {
  it('an attempt that ended (lost, then left out by two heartbeats) releases its request while the run goes on, though a cancel call of it is still out', async () => {
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    let sent: WeakRef<ExecuteModuleRequest> | undefined;
    // Reset, re-send refused: lost. Its request is never kept by this client. Its cancel call is
    // out, unanswered (a slow network): what waits on it still holds the attempt.
    const heldCancels: Array<(answer: Answer) => void> = [];
    const lost = idsOnlyClient(
      (call) => (call === 1 ? reset() : refused()),
      (body) => (sent ??= new WeakRef(body)),
      () => new Promise<Answer>((resolve) => heldCancels.push(resolve)),
    );
    // The module's next attempt is held: the run goes on after the first attempt is retired.
    let answerOther: (answer: Answer) => void = () => undefined;
    const other = new ScriptedWorker('w-other', () => new Promise<Answer>((resolve) => (answerOther = resolve)));
    const { clock, registry, run } = setup(pipeline, [lost, other], { heartbeatTimeoutMs: 3_600_000 });
    const running = run();
    await clock.advance(1_000);
    expect(lost.executionIds).toHaveLength(2);
    expect(heldCancels).toHaveLength(1);
    expect(other.executes).toEqual([]);
    registry.heartbeat('w-lost', 0, { executions: [] });
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    expect(other.executes).toHaveLength(1); // the first attempt ended (retired): the module runs on w-other
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(sent!.deref()).toBeUndefined();
    answerOther(success(other.executes[0]!));
    await clock.advance(1_000);
    const result = await running;
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });
});

describe('runPipeline: a cancel answered 200 (round R, R6)', () => {
  // The old code took the 200 as "it runs nowhere": the attempt ended and the module ran on
  // w-other at once, while w-lost was still stopping it (a module host's group runs on for the
  // kill grace).
  it('the worker is stopping it: the attempt ends only once the worker shows it stopped (two heartbeats that leave it out), not at the 200; then the module runs elsewhere', async () => {
    const { lost, other, registry, clock, run } = lostAttemptRun();
    registry.heartbeat('w-lost', 0, { executions: [] }); // a worker that lists what it runs
    const running = run();
    await clock.advance(10_000);
    const executionId = lost.executes[0]!.executionId;
    expect(lost.cancels).toEqual([executionId]); // answered 200: no more cancel calls
    expect(other.executes).toEqual([]);
    // Still listed (its group in its kill grace): still running there.
    registry.heartbeat('w-lost', 1, { executions: [executionId] });
    await clock.advance(30_000);
    expect(other.executes).toEqual([]);
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(1_000);
    expect(other.executes).toEqual([]); // one heartbeat is not enough
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(10_000);
    const result = await running;
    expect(other.executes).toHaveLength(1);
    expect(lost.cancels).toEqual([executionId]);
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it("a 200 before the worker's first heartbeat since it registered (its executions not known yet): the attempt does not end at the 200; the next heartbeat decides (it lists it: it runs on there)", async () => {
    // The registry forgets `executions` at every registration, and a worker's first heartbeat
    // comes an interval later (30 s by default): the old code took "not known yet" for an
    // older worker and ended the attempt at the 200, running the module on w-other at once.
    const { lost, other, registry, clock, run } = lostAttemptRun();
    const running = run();
    await clock.advance(10_000);
    const executionId = lost.executes[0]!.executionId;
    expect(lost.cancels).toEqual([executionId]);
    expect(other.executes).toEqual([]); // not ended at the 200
    registry.heartbeat('w-lost', 1, { executions: [executionId] }); // it still runs it
    await clock.advance(30_000);
    expect(other.executes).toEqual([]);
    registry.heartbeat('w-lost', 0, { executions: [] });
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(10_000);
    const result = await running;
    expect(other.executes).toHaveLength(1);
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it("a 200 before the worker's first heartbeat, and that heartbeat lists no executions (an older worker): the attempt ends at that heartbeat", async () => {
    const { lost, other, registry, clock, run } = lostAttemptRun();
    const running = run();
    await clock.advance(10_000);
    expect(lost.cancels).toHaveLength(1);
    expect(other.executes).toEqual([]);
    registry.heartbeat('w-lost', 1);
    await clock.advance(10_000);
    const result = await running;
    expect(other.executes).toHaveLength(1);
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });

  it('an older worker whose heartbeats list no executions: its 200 ends the attempt as before (nothing else would show it stopped)', async () => {
    const { lost, other, registry, clock, run } = lostAttemptRun();
    const running = run();
    await clock.advance(0);
    registry.heartbeat('w-lost', 1);
    await clock.advance(10_000);
    const result = await running;
    expect(lost.cancels).toHaveLength(1);
    expect(other.executes).toHaveLength(1);
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-lost', 'Lost'],
      ['w-other', 'Succeeded'],
    ]);
  });
});

describe('runPipeline: an abandoned attempt still stopping holds its notInParallel keys (round R, mend s5)', () => {
  const first = defineModule({ name: 'a', run: () => 'a', notInParallel: ['k'] });
  const second = defineModule({ name: 'b', run: () => 'b', notInParallel: ['k'] });
  const keyed = definePipeline({ name: 'keyed', modules: [first, second] });

  // The old code freed the keys (and the worker's slot) when the attempt was lost: its partner
  // started on w-other while w-lost still ran (stopped) it.
  it('a module lost on w-lost, its cancel answered 200 and still listed there: its partner does not start until it ended', async () => {
    const { lost, other, registry, clock, run, register } = lostAttemptRun({ of: keyed, otherRegistersLater: true });
    registry.heartbeat('w-lost', 0, { executions: [] });
    const running = run();
    await clock.advance(0);
    expect(lost.executes).toHaveLength(1);
    const executionId = lost.executes[0]!.executionId;
    const lostModule = lost.executes[0]!.moduleTypeName;
    register(other);
    await clock.advance(10_000);
    expect(lost.cancels).toEqual([executionId]); // 200: stopping
    registry.heartbeat('w-lost', 1, { executions: [executionId] });
    await clock.advance(30_000);
    expect(other.executes).toEqual([]); // neither it nor its partner beside it
    registry.heartbeat('w-lost', 0, { executions: [] });
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(10_000);
    const result = await running;
    expect(result.status).toBe('Successful');
    expect(other.executes).toHaveLength(2);
    expect(result.modules.find((module) => module.name === lostModule)!.attempts.map((a) => a.outcome)).toEqual([
      'Lost',
      'Succeeded',
    ]);
  });
});

describe('runPipeline: an abandoned attempt still stopping holds its worker slot (round R, mend s5)', () => {
  const first = defineModule({ name: 'a', run: () => 'a' });
  const second = defineModule({ name: 'b', run: () => 'b' });
  const pair = definePipeline({ name: 'pair', modules: [first, second] });

  // The old code freed the slot when the attempt was lost: the other module went to w-lost's one
  // slot while w-lost was still stopping the lost one (two modules at once on a 1-slot worker).
  it('a 1-slot worker whose abandoned attempt is still stopping (its cancel answered 200, still listed) gets no new module, though out of quarantine, until that attempt ended', async () => {
    // Cut, re-send refused: lost (the worker quarantined on probation); later calls succeed.
    const lost = new ScriptedWorker('w-lost', (body, call) =>
      call === 1 ? reset() : call === 2 ? refused() : success(body),
    );
    const { registry, clock, run } = setup(pair, [lost]);
    // The run's log, to see the quarantine end (the premise: without it, the quarantine alone
    // would keep the other module off w-lost).
    const logs: { msg: string; workerId?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const outOfQuarantine = (): boolean =>
      logs.some(
        (line) =>
          line.workerId === 'w-lost' &&
          line.msg === 'worker heartbeats past its probation: its quarantine for this run is over',
      );
    registry.heartbeat('w-lost', 0, { executions: [] });
    const running = run({ logger });
    await clock.advance(10_000);
    expect(lost.executes).toHaveLength(2); // one module, cut then refused; the other waits for the slot
    const executionId = lost.executes[0]!.executionId;
    expect(lost.cancels).toEqual([executionId]); // 200: stopping
    expect(outOfQuarantine()).toBe(false);
    // Listed for 30 s: heartbeats past its probation lift the quarantine, but its one slot is
    // still taken by the attempt being stopped.
    for (let beat = 0; beat < 6; beat++) {
      registry.heartbeat('w-lost', 1, { executions: [executionId] });
      await clock.advance(5_000);
    }
    expect(outOfQuarantine()).toBe(true);
    expect(lost.executes).toHaveLength(2);
    registry.heartbeat('w-lost', 0, { executions: [] });
    registry.heartbeat('w-lost', 0, { executions: [] });
    await clock.advance(10_000);
    const result = await running;
    expect(result.status).toBe('Successful');
    // Then both modules ran there, one at a time.
    expect(
      lost.executes
        .slice(2)
        .map((body) => body.moduleTypeName)
        .sort(),
    ).toEqual(['a', 'b']);
    const lostModule = lost.executes[0]!.moduleTypeName;
    expect(result.modules.find((module) => module.name === lostModule)!.attempts.map((a) => a.outcome)).toEqual([
      'Lost',
      'Succeeded',
    ]);
  });
});

describe('runPipeline: an abandoned attempt its worker never stops (round R, mend s5)', () => {
  const stuck = defineModule({ name: 'stuck', run: () => 'stuck', timeoutMs: 60_000 });
  const stuckPipeline = definePipeline({ name: 'stuck', modules: [stuck] });

  // Under `--isolation none` a module that ignores its signal and never returns stays listed for
  // good: the old code held its module back for ever (the run hung).
  it('still listed past its deadline plus the stop allowance: the module ends TimedOut, naming the worker, and runs nowhere else', async () => {
    const { lost, other, registry, clock, run } = lostAttemptRun({ of: stuckPipeline });
    registry.heartbeat('w-lost', 0, { executions: [] });
    const running = run({ timeoutMarginMs: 5_000 });
    let done = false;
    void running.then(() => (done = true));
    await clock.advance(0);
    const executionId = lost.executes[0]!.executionId;
    await clock.advance(10_000);
    expect(lost.cancels).toEqual([executionId]); // 200: stopping
    // Listed at every heartbeat: it never stops.
    for (let beat = 0; beat < 6; beat++) {
      registry.heartbeat('w-lost', 1, { executions: [executionId] });
      await clock.advance(10_000);
    }
    expect(done).toBe(false); // 70 s: before its deadline (60 s + 5 s after its dispatch) plus the allowance
    for (let beat = 0; beat < 12; beat++) {
      registry.heartbeat('w-lost', 1, { executions: [executionId] });
      await clock.advance(10_000);
    }
    expect(done).toBe(true);
    const result = await running;
    expect(other.executes).toEqual([]); // at most once: never run beside it
    const module = result.modules[0]!;
    expect(module.status).toBe('TimedOut');
    expect(module.error?.message).toContain('w-lost');
    expect(attemptOutcomes(module)).toEqual([['w-lost', 'Lost']]);
  });
});

/** A cancel (or call) its worker never answers. */
const neverAnswered = (): Promise<Answer> => new Promise<Answer>(() => undefined);

describe("runPipeline: answers that are not the worker's own (review R1, H1)", () => {
  it.each([
    ["a gateway's 500 html page", (): Answer | Error => ({ status: 500, body: '<html><body>500</body></html>' })],
    [
      "a gateway's 503 without the worker's error body",
      (): Answer | Error => ({ status: 503, body: 'no healthy upstream' }),
    ],
    ["a gateway's 429 without the worker's error body", (): Answer | Error => ({ status: 429, body: '' })],
    ['a 200 without serializedResult', (): Answer | Error => ({ status: 200, body: { ok: true } })],
    ['a body that is not JSON though labelled so', (): Answer | Error => new SyntaxError('Unexpected token <')],
  ])(
    '%s to a FIRST call: the attempt is lost but not ended; no new attempt until two heartbeats show it runs nowhere',
    async (_name, answer) => {
      // Cancels never answered: only the worker's own heartbeats can end the attempt.
      const gateway = new ScriptedWorker('w-gw', () => answer(), neverAnswered);
      const other = new ScriptedWorker('w-other', (body) => success(body));
      const { clock, run, registry } = setup(pipeline, [gateway, other]);
      const running = run();
      await clock.advance(30_000);
      expect(gateway.executes).toHaveLength(1);
      // The gateway may have passed the call on: the module may run on w-gw.
      expect(other.executes).toEqual([]);
      registry.heartbeat('w-gw', 0, { executions: [] });
      registry.heartbeat('w-gw', 0, { executions: [] });
      await clock.advance(6_000);
      const result = await running;
      expect(result.status).toBe('Successful');
      expect(attemptOutcomes(result.modules[0]!)).toEqual([
        ['w-gw', 'Lost'],
        ['w-other', 'Succeeded'],
      ]);
    },
  );

  it("a real worker's own 503 error body to a first call is still a refusal: the module goes elsewhere at once", async () => {
    const draining = new ScriptedWorker('w-draining', () => errorResponse('WorkerDraining', 'draining'));
    const other = new ScriptedWorker('w-other', (body) => success(body));
    const { clock, run } = setup(pipeline, [draining, other]);
    const running = run();
    await clock.advance(2_000);
    const result = await running;
    expect(attemptOutcomes(result.modules[0]!)).toEqual([
      ['w-draining', 'Rejected'],
      ['w-other', 'Succeeded'],
    ]);
  });
});

describe('runPipeline: a re-send refused 429/503 again and again (review R1, M1, L1, L2)', () => {
  const noUpstream = (): Answer => ({ status: 503, body: 'no healthy upstream' });

  it('stops re-sending once its worker has not listed it for NEVER_LISTED_GRACE_MS, and hands it to the lost path', async () => {
    const gateway = new ScriptedWorker('w-gw', (_body, call) => (call === 1 ? reset() : noUpstream()), neverAnswered);
    const other = new ScriptedWorker('w-other', (body) => success(body));
    const { clock, run, registry } = setup(pipeline, [gateway, other]);
    const running = run();
    for (let second = 0; second < 9; second++) {
      registry.heartbeat('w-gw', 0, { executions: [] });
      await clock.advance(1_000);
    }
    // 9 s: still re-sent (the worker may not have heard of it yet), and no second attempt.
    const sentBy9s = gateway.executes.length;
    expect(sentBy9s).toBeGreaterThan(2);
    expect(other.executes).toEqual([]);
    for (let second = 0; second < 10; second++) {
      registry.heartbeat('w-gw', 0, { executions: [] });
      await clock.advance(1_000);
    }
    const result = await running;
    expect(gateway.executes.length).toBeLessThanOrEqual(sentBy9s + 2);
    const [first, second] = result.modules[0]!.attempts;
    expect(first).toMatchObject({ workerId: 'w-gw', outcome: 'Lost' });
    expect(first!.error).toMatch(/have not listed it for \d+ ms \(never listed\)/);
    expect(second).toMatchObject({ workerId: 'w-other', outcome: 'Succeeded' });
  });

  it('stops re-sending once its worker last listed it more than COLLECT_WINDOW_MS ago, not before', async () => {
    const gateway = new ScriptedWorker('w-gw', (_body, call) => (call === 1 ? reset() : noUpstream()), neverAnswered);
    const other = new ScriptedWorker('w-other', (body) => success(body));
    const { clock, run, registry } = setup(pipeline, [gateway, other]);
    const running = run();
    await clock.advance(0);
    const executionId = gateway.executes[0]!.executionId;
    // It runs there for 2 minutes (listed), then the worker no longer lists it.
    for (let second = 0; second < 120; second += 5) {
      registry.heartbeat('w-gw', 1, { executions: [executionId] });
      await clock.advance(5_000);
    }
    for (let second = 0; second < 8 * 60 + 50; second += 5) {
      registry.heartbeat('w-gw', 0, { executions: [] });
      await clock.advance(5_000);
    }
    // 8 min 50 s unlisted: its outcome is still kept there, so re-sends go on; no second attempt.
    const sent = gateway.executes.length;
    expect(other.executes).toEqual([]);
    await clock.advance(5_000);
    expect(gateway.executes.length).toBeGreaterThan(sent);
    for (let second = 0; second < 30; second += 5) {
      registry.heartbeat('w-gw', 0, { executions: [] });
      await clock.advance(5_000);
    }
    const result = await running;
    const [first, second] = result.modules[0]!.attempts;
    expect(first).toMatchObject({ workerId: 'w-gw', outcome: 'Lost' });
    expect(first!.error).toMatch(/have not listed it for \d+ ms since it was last listed/);
    expect(second).toMatchObject({ workerId: 'w-other', outcome: 'Succeeded' });
  });

  it("never sleeps or sends past the call's deadline: ends no-answer at it", async () => {
    const quick = defineModule({ name: 'work', timeoutMs: 4_000, run: () => 'ran' });
    const sentAt: number[] = [];
    let clockNow = (): number => 0;
    const gateway = new ScriptedWorker(
      'w-gw',
      (_body, call) => {
        sentAt.push(clockNow());
        return call === 1 ? reset() : noUpstream();
      },
      neverAnswered,
    );
    const { clock, run } = setup(definePipeline({ name: 'attempts', modules: [quick] }), [gateway]);
    clockNow = () => clock.now();
    const started = clock.now();
    let done = false;
    const running = run({ timeoutMarginMs: 1_000 }).finally(() => (done = true));
    await clock.advance(5_000);
    await clock.advance(0);
    expect(done).toBe(true);
    const result = await running;
    expect(result.modules[0]!.status).toBe('TimedOut');
    expect(result.modules[0]!.attempts[0]!.error).toMatch(/deadline/);
    expect(Math.max(...sentAt)).toBeLessThan(started + 5_000);
  });

  // Not "in a row" when refusals (N3, 4) or a gateway's 502/504 (round P) came between the closes.
  it.each<[string, () => Answer | Error, RegExp]>([
    [
      'refusals: the closes still count in a row, and the endpoint is broken at the third',
      noUpstream,
      /closed the connection 3 times without an answer, with 2 re-sends refused 429\/503 between them/,
    ],
    [
      "a gateway's 502/504: the 502/504 neither counts as a close nor ends the run of closes, the endpoint is broken at the third close, and the reason names them",
      () => new UnknownStatusError({ status: 502, body: 'bad gateway' }, ['200', '500']),
      /closed the connection 3 times without an answer, with 2 calls answered 502\/504 by a gateway between them/,
    ],
  ])('closes and %s', async (_case, between, reason) => {
    const closed = (): MpdClientError =>
      new MpdClientError('ConnectionLost', 'POST x: UND_ERR_SOCKET', { errno: 'UND_ERR_SOCKET' });
    const gateway = new ScriptedWorker('w-gw', (_body, call) => (call % 2 === 1 ? closed() : between()), neverAnswered);
    const other = new ScriptedWorker('w-other', (body) => success(body));
    const { clock, run, registry } = setup(pipeline, [gateway, other]);
    const running = run();
    await clock.advance(8_000);
    expect(gateway.executes).toHaveLength(5);
    registry.heartbeat('w-gw', 0, { executions: [] });
    registry.heartbeat('w-gw', 0, { executions: [] });
    await clock.advance(6_000);
    const result = await running;
    const [first, second] = result.modules[0]!.attempts;
    expect(first).toMatchObject({ workerId: 'w-gw', outcome: 'Lost' });
    expect(first!.error).toMatch(reason);
    expect(second).toMatchObject({ workerId: 'w-other', outcome: 'Succeeded' });
  });
});

describe('runPipeline: a gateway refusing first calls with a bare 429/503 (N3, 5)', () => {
  it.each([503, 429])(
    '%s: the worker is quarantined on probation and its refusals count as one loss: the module outlives maxLostAttempts and runs once a worker takes it',
    async (status) => {
      const gateway = new ScriptedWorker('w-gw', () => ({ status, body: 'no healthy upstream' }), neverAnswered);
      const other = new ScriptedWorker('w-other', (body) => success(body));
      const { clock, run, registry, register } = setup(pipeline, [gateway, other]);
      registry.unregister('w-other'); // registers later
      let done = false;
      const running = run({ maxLostAttempts: 1 }).finally(() => (done = true));
      // 30 s of w-gw's heartbeats, listing nothing: each lost attempt ends at the second.
      for (let second = 0; second < 30; second++) {
        registry.heartbeat('w-gw', 0, { executions: [] });
        await clock.advance(1_000);
      }
      // The old code counted every refusal as a loss (the module failed WorkerLost at the
      // second, 2 s in) and called the gateway again each time after 250 ms to 5 s.
      expect(done).toBe(false);
      // Probation 2.5-5 s, then 5-10 s, then 10-20 s: at most 4 calls in 30 s.
      expect(gateway.executes.length).toBeGreaterThanOrEqual(2);
      expect(gateway.executes.length).toBeLessThanOrEqual(4);
      register(other);
      // w-gw goes on heartbeating: its last lost attempt ends only at the second heartbeat that
      // does not list it (its cancel is never answered), and only then may the module run on
      // w-other (without them the run waited for ever, about one time in two).
      for (let second = 0; second < 30 && !done; second++) {
        registry.heartbeat('w-gw', 0, { executions: [] });
        await clock.advance(1_000);
      }
      const result = await running;
      expect(result.status).toBe('Successful');
      const attempts = result.modules[0]!.attempts;
      expect(attempts.at(-1)).toMatchObject({ workerId: 'w-other', outcome: 'Succeeded' });
      expect(attempts.slice(0, -1).every((attempt) => attempt.workerId === 'w-gw' && attempt.outcome === 'Lost')).toBe(
        true,
      );
    },
  );
});

describe('runPipeline: a gateway refusing every call with a bare 429/503 (review N3, 1)', () => {
  it('once its probation has reached its longest, a further refusal counts as a loss: maxLostAttempts ends the run with a failure naming the refusals', async () => {
    const gateway = new ScriptedWorker('w-gw', () => ({ status: 503, body: 'no healthy upstream' }), neverAnswered);
    const { clock, run, registry } = setup(pipeline, [gateway]);
    let done = false;
    const running = run({ maxLostAttempts: 1 }).finally(() => (done = true));
    // 30 minutes of w-gw's heartbeats, listing nothing. The old code counted every refusal of
    // one start as one loss, and a heartbeat lifted each probation: 44 calls, the run never ended.
    for (let second = 0; second < 1_800 && !done; second++) {
      registry.heartbeat('w-gw', 0, { executions: [] });
      await clock.advance(1_000);
    }
    expect(done).toBe(true);
    const result = await running;
    expect(result.status).toBe('Failed');
    const module = result.modules[0]!;
    expect(module.status).toBe('Failed');
    expect(module.error).toMatchObject({ type: 'WorkerLost' });
    expect(module.error?.message).toMatch(/answered 503 without the worker's error body/);
    expect(module.error?.message).toMatch(/refused again after its longest probation/);
    // Probations of 5, 10, 20, 40 and 60 s (at most), then the refusal that counts.
    expect(gateway.executes.length).toBeLessThanOrEqual(8);
  });
});
