import type { WorkerClient } from '@mpd/client';
import { type AnyModule, defineModule, definePipeline } from '@mpd/pipeline';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { runPipeline } from './pipeline-runner.js';

/** A worker client that answers every execute at once, recording the order modules started in. */
function instantClient(started: string[]): WorkerClient {
  const execute = async ({ body }: { body: { executionId: string; moduleTypeName: string } }) => {
    started.push(body.moduleTypeName);
    await new Promise((resolve) => setImmediate(resolve));
    const now = new Date().toISOString();
    return {
      status: 200,
      body: {
        executionId: body.executionId,
        success: true,
        serializedResult: 'null',
        duration: '00:00:00',
        startTime: now,
        endTime: now,
        workerId: 'w',
      },
    };
  };
  return {
    execution: { execute, cancel: async () => ({ status: 200, body: { success: true } }) },
    close: async () => undefined,
  } as unknown as WorkerClient;
}

async function startOrder(
  modules: AnyModule[],
  slots: number,
  workers = 1,
  durationHints?: Record<string, number>,
): Promise<string[]> {
  const pipeline = definePipeline({ name: 'order', modules });
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
  for (let index = 0; index < workers; index++) {
    registry.register({
      id: `w${index}`,
      endpoint: `http://w${index}:9000`,
      capabilities: { os: 'linux', installedTools: [], maxParallelModules: slots, tags: [] },
      pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
    });
  }
  const started: string[] = [];
  const client = instantClient(started);
  const result = await runPipeline({
    pipeline,
    registry,
    logger: pino({ level: 'silent' }),
    createClient: () => client,
    ...(durationHints ? { durationHints } : {}),
  });
  expect(result.status).toBe('Successful');
  return started;
}

describe('runPipeline: the order ready modules start in', () => {
  const run = () => null;

  it('starts, among modules of the same priority, the one heading the longest chain first', async () => {
    const short = defineModule({ name: 'short', run });
    const long = defineModule({ name: 'long', run });
    const next = defineModule({ name: 'next', dependsOn: [long], run });
    const last = defineModule({ name: 'last', dependsOn: [next], run });
    // long heads 3 modules, short 1; then next heads 2; then last and short tie: pipeline order.
    expect(await startOrder([short, long, next, last], 1)).toEqual(['long', 'next', 'short', 'last']);
  });

  it('with duration hints, starts the most remaining work first, not the longest chain in modules', async () => {
    const short = defineModule({ name: 'short', run });
    const long = defineModule({ name: 'long', run });
    const next = defineModule({ name: 'next', dependsOn: [long], run });
    const slow = defineModule({ name: 'slow', run });
    const modules = [short, long, next, slow];
    // Without hints: long heads 2 modules, the others 1 (then pipeline order).
    expect(await startOrder(modules, 1)).toEqual(['long', 'short', 'next', 'slow']);
    // slow (5 s) outweighs long + next (1 s + 2 s = 3 s); short has no hint and weighs the
    // median, 2 s, as much as next: pipeline order between them.
    expect(await startOrder(modules, 1, 1, { long: 1_000, next: 2_000, slow: 5_000 })).toEqual([
      'slow',
      'long',
      'short',
      'next',
    ]);
  });

  it('puts priority before the chain rule, and pipeline order last', async () => {
    const low = defineModule({ name: 'low', priority: 'Low', run });
    const chain = defineModule({ name: 'chain', priority: 'Low', run });
    const after = defineModule({ name: 'after', priority: 'Low', dependsOn: [chain], run });
    const high = defineModule({ name: 'high', priority: 'High', run });
    const first = defineModule({ name: 'first', run });
    const second = defineModule({ name: 'second', run });
    expect(await startOrder([low, chain, after, high, first, second], 1)).toEqual([
      'high',
      'first',
      'second',
      'chain',
      'low',
      'after',
    ]);
  });

  it('runs a wide pipeline on many workers, each module once', async () => {
    const modules = Array.from({ length: 300 }, (_, index) => defineModule({ name: `m${index}`, run }));
    const started = await startOrder(modules, 2, 50);
    expect(started).toHaveLength(300);
    expect(new Set(started).size).toBe(300);
  });
});
