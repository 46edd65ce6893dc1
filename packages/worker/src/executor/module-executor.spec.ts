import { tmpdir } from 'node:os';
import { createOrchestratorClient } from '@mpd/client';
import { DEFAULT_MAX_RESULT_BYTES } from '@mpd/contract';
import { defineModule, definePipeline } from '@mpd/pipeline';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { ExecutionRequest } from './execution.js';
import { ModuleExecutor } from './module-executor.js';
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

function executor(): ModuleExecutor {
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
