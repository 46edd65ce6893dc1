import { tmpdir } from 'node:os';
import { DEFAULT_MAX_RESULT_BYTES } from '@mpd/contract';
import { defineModule, definePipeline } from '@mpd/pipeline';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ModuleExecutor } from './executor/module-executor.js';
import { WorkerLifecycle } from './worker-lifecycle.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('WorkerLifecycle.shutDown', () => {
  it('lets running modules finish through a grace period longer than a Node timer holds (2^31 - 1 ms)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let finish!: () => void;
    let cancelled = false;
    const slow = defineModule({
      name: 'slow',
      run: (ctx) =>
        new Promise<string>((resolve) => {
          finish = () => resolve('done');
          ctx.signal.addEventListener('abort', () => (cancelled = true));
        }),
    });
    const logger = pino({ level: 'silent' });
    const executor = new ModuleExecutor({
      workerId: 'w1',
      pipeline: definePipeline({ name: 'p', modules: [slow] }),
      slots: 1,
      defaultTimeoutMs: 60 * 24 * 3_600_000,
      workingDirectory: tmpdir(),
      completedRetentionMs: 60_000,
      maxResultBytes: DEFAULT_MAX_RESULT_BYTES,
      isolation: 'none',
      killGraceMs: 10_000,
      moduleHeapLimitMb: undefined,
      logger,
    });
    const decision = executor.execute({
      executionId: 'e1',
      moduleTypeName: 'slow',
      params: undefined,
      dependencyResults: {},
      environmentVariables: {},
      fingerprint: 'f',
    });
    expect(decision.kind).toBe('started');
    await vi.waitFor(() => expect(finish).toBeTypeOf('function'));
    let closed = false;
    const lifecycle = new WorkerLifecycle({
      executor,
      link: undefined,
      logger,
      close: async () => void (closed = true),
    });
    const stopping = lifecycle.shutDown(40 * 24 * 3_600_000); // 40 days
    await vi.advanceTimersByTimeAsync(60_000);
    expect(cancelled).toBe(false);
    expect(lifecycle.state).toBe('stopping');
    finish();
    await stopping;
    expect(closed).toBe(true);
    expect(lifecycle.state).toBe('stopped');
    expect(cancelled).toBe(false);
  });
});
