import { tmpdir } from 'node:os';
import { createOrchestratorClient } from '@mpd/client';
import { DEFAULT_MAX_RESULT_BYTES } from '@mpd/contract';
import { defineModule, definePipeline } from '@mpd/pipeline';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { ExecutionRequest } from './execution.js';
import { MAX_CANCEL_TOMBSTONES, ModuleExecutor } from './module-executor.js';
import { OutputShipper } from '../registration/output-shipper.js';

/** An in-process executor of `pipeline` with 2 slots and nothing else of its own. */
function executorOptions(pipeline: ConstructorParameters<typeof ModuleExecutor>[0]['pipeline']) {
  return {
    workerId: 'w1',
    pipeline,
    slots: 2,
    defaultTimeoutMs: 60_000,
    workingDirectory: tmpdir(),
    completedRetentionMs: 60_000,
    maxResultBytes: DEFAULT_MAX_RESULT_BYTES,
    isolation: 'none' as const,
    killGraceMs: 0,
    moduleHeapLimitMb: undefined,
    logger: pino({ level: 'silent' }),
  };
}

function executor(): ModuleExecutor & { release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const a = defineModule({ name: 'a', run: () => 'result of a' });
  const c = defineModule({
    name: 'c',
    run: async () => {
      await gate;
      return 'result of c';
    },
  });
  const created = new ModuleExecutor(executorOptions(definePipeline({ name: 'p', modules: [a, c] })));
  return Object.assign(created, { release });
}

const request = (moduleTypeName: string, fingerprint: string): ExecutionRequest => ({
  executionId: 'run-1.c.1',
  moduleTypeName,
  params: undefined,
  dependencyResults: {},
  environmentVariables: {},
  fingerprint,
});

describe('ModuleExecutor: one executionId names one request (issue 11, case 6)', () => {
  it("refuses a kept executionId with another module or inputs, never answering with the first one's outcome", async () => {
    const on = executor();
    const first = on.execute(request('a', 'fingerprint-of-a'));
    expect(first.kind).toBe('started');
    if (first.kind !== 'started') return;
    expect((await first.outcome).body).toMatchObject({ success: true, serializedResult: '"result of a"' });
    await on.idle();

    const swapped = on.execute(request('c', 'fingerprint-of-c'));
    expect(swapped).toEqual({
      kind: 'conflict',
      message: expect.stringMatching(/'run-1\.c\.1' is known on worker w1/),
    });
    // The same request again still gets its kept outcome (the orchestrator's re-sends).
    const again = on.execute(request('a', 'fingerprint-of-a'));
    expect(again.kind).toBe('joined');
    if (again.kind === 'joined')
      expect((await again.outcome).body).toMatchObject({ serializedResult: '"result of a"' });
  });

  it('refuses a running executionId with other inputs, and joins the same request', async () => {
    const on = executor() as ModuleExecutor & { release: () => void };
    const first = on.execute(request('c', 'fingerprint-1'));
    expect(first.kind).toBe('started');
    expect(on.execute(request('c', 'fingerprint-2'))).toMatchObject({
      kind: 'conflict',
      message: expect.stringMatching(/is running on worker w1 with another module or other inputs/),
    });
    const joined = on.execute(request('c', 'fingerprint-1'));
    expect(joined.kind).toBe('joined');
    on.release();
    if (first.kind === 'started' && joined.kind === 'joined') expect(await joined.outcome).toBe(await first.outcome);
  });
});

describe('ModuleExecutor: output complete and empty, said in the answer (issue 14)', () => {
  it('is true for a module that wrote nothing, again for a re-sent request once it was, and false for one that wrote', async () => {
    const quiet = defineModule({ name: 'quiet', run: () => null });
    const loud = defineModule({
      name: 'loud',
      run: (ctx) => {
        ctx.logger.info('a line');
        return null;
      },
    });
    const shipper = new OutputShipper({
      // Never called here: neither execution reaches a batch before the test ends.
      client: createOrchestratorClient({ baseUrl: 'http://127.0.0.1:1' }),
      workerId: 'w1',
      credential: () => undefined,
      logger: pino({ level: 'silent' }),
      spillDir: tmpdir(),
      initialBackoffMs: 60_000,
      maxBackoffMs: 60_000,
    });
    const on = new ModuleExecutor({
      ...executorOptions(definePipeline({ name: 'p', modules: [quiet, loud] })),
      output: shipper,
    });
    try {
      const answered = async (moduleTypeName: string): Promise<boolean> => {
        const decision = on.execute({
          ...request(moduleTypeName, moduleTypeName),
          executionId: `run-1.${moduleTypeName}.1`,
        });
        if (decision.kind !== 'started' && decision.kind !== 'joined') throw new Error(decision.kind);
        await decision.outcome;
        return on.outputEndedEmpty(`run-1.${moduleTypeName}.1`);
      };
      expect(await answered('quiet')).toBe(true);
      await on.idle();
      // A re-sent request joins the kept outcome: its answer says so again (no final batch was sent).
      expect(await answered('quiet')).toBe(true);
      expect(await answered('loud')).toBe(false);
      expect(on.outputEndedEmpty('run-1.unknown.1')).toBe(false);
    } finally {
      await on.close('test over');
      await shipper.close();
    }
  });
});

describe('ModuleExecutor: a cancel that arrives before its execution (round L, L3)', () => {
  const requestOf = (executionId: string): ExecutionRequest => ({ ...request('a', 'fingerprint-of-a'), executionId });

  it('answers the execute as cancelled, not started, also when draining or fenced; the run count stays 0', async () => {
    const on = executor();
    expect(on.cancel('run-1.a.1', 'superseded')).toBe(false); // the cancel call's 404
    on.fence('heartbeats unacknowledged'); // a cancelled answer, not a refusal the run re-queues
    const decision = on.execute(requestOf('run-1.a.1'));
    expect(decision.kind).toBe('cancelled');
    if (decision.kind !== 'cancelled') return;
    expect(await decision.outcome).toMatchObject({
      status: 500,
      body: {
        executionId: 'run-1.a.1',
        workerId: 'w1',
        success: false,
        failureKind: 'Cancelled',
        errorMessage: 'Execution cancelled before it started: superseded',
      },
    });
    expect(on.load).toBe(0);
  });

  it('keeps a tombstone completedRetentionMs (60 s here), then forgets it', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const on = executor();
      on.cancel('run-1.a.1');
      vi.advanceTimersByTime(59_999);
      expect(on.execute(requestOf('run-1.a.1')).kind).toBe('cancelled');
      vi.advanceTimersByTime(1);
      const late = on.execute(requestOf('run-1.a.1'));
      expect(late.kind).toBe('started');
      if (late.kind === 'started') await late.outcome;
      await on.idle();
    } finally {
      vi.useRealTimers();
    }
  });

  it(`keeps at most ${MAX_CANCEL_TOMBSTONES} tombstones, forgetting the oldest first`, async () => {
    const on = executor();
    for (let i = 0; i <= MAX_CANCEL_TOMBSTONES; i++) on.cancel(`run-1.a.${i}`);
    expect(on.execute(requestOf(`run-1.a.1`)).kind).toBe('cancelled');
    expect(on.execute(requestOf(`run-1.a.${MAX_CANCEL_TOMBSTONES}`)).kind).toBe('cancelled');
    const oldest = on.execute(requestOf('run-1.a.0'));
    expect(oldest.kind).toBe('started');
    if (oldest.kind === 'started') await oldest.outcome;
    await on.idle();
  });

  it('a finished execution keeps its own outcome after a cancel; a running one is cancelled as before', async () => {
    const on = executor();
    const first = on.execute(requestOf('run-1.a.1'));
    if (first.kind !== 'started') throw new Error(first.kind);
    await first.outcome;
    await on.idle();
    expect(on.cancel('run-1.a.1')).toBe(false);
    const again = on.execute(requestOf('run-1.a.1'));
    expect(again.kind).toBe('joined');
    if (again.kind === 'joined') expect((await again.outcome).status).toBe(200);
    const running = on.execute({ ...request('c', 'fingerprint-of-c'), executionId: 'run-1.c.9' });
    expect(on.cancel('run-1.c.9', 'stop')).toBe(true);
    if (running.kind === 'started') expect((await running.outcome).body).toMatchObject({ failureKind: 'Cancelled' });
    on.release();
    await on.idle();
  });
});
