import type { WorkerClient } from '@mpd/client';
import { LIMITS } from '@mpd/contract';
import { type AnyModule, defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import { instantWorkerClient, type InstantExecuteBody } from '@mpd/test-kit';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { runPipeline } from './pipeline-runner.js';
import type { RunPipelineOptions } from './run-options.js';

const run = (): number => 1;

/** Runs `pipeline` on one registered worker answered by an instant client (each execute at once). */
async function runOn(
  pipeline: Pipeline,
  client: { serializedResult?: string; onExecute?: (body: InstantExecuteBody) => void },
  options: Partial<RunPipelineOptions> & { bodyLimitBytes?: number } = {},
) {
  const { bodyLimitBytes, ...runOptions } = options;
  const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
  registry.register({
    id: 'w1',
    endpoint: 'http://w1:9000',
    capabilities: {
      os: 'linux',
      installedTools: [],
      maxParallelModules: 4,
      tags: [],
      ...(bodyLimitBytes !== undefined ? { bodyLimitBytes } : {}),
    },
    pipeline: { name: pipeline.name, fingerprint: pipeline.fingerprint, modules: [...pipeline.modules.keys()] },
  });
  const worker = instantWorkerClient(client) as unknown as WorkerClient;
  return runPipeline({
    pipeline,
    registry,
    logger: pino({ level: 'silent' }),
    createClient: () => worker,
    ...runOptions,
  });
}

describe('runPipeline within the limits', () => {
  it('ends a run whose failure at the head of a chain as long as the largest pipeline fails every module after it (no recursion)', async () => {
    const modules: AnyModule[] = [
      defineModule({
        name: 'm0',
        run,
        skipIf: () => {
          throw new Error('the head fails');
        },
      }),
    ];
    for (let index = 1; index < LIMITS.pipeline.maxModules; index++) {
      modules.push(defineModule({ name: `m${index}`, dependsOn: [modules[index - 1]!], run }));
    }
    const result = await runOn(definePipeline({ name: 'chain', modules }), {});
    expect(result.status).toBe('Failed');
    expect(result.modules[0]).toMatchObject({ name: 'm0', status: 'Failed' });
    const last = result.modules.at(-1)!;
    expect(last).toMatchObject({
      status: 'DependencyFailed',
      reason: `dependency 'm${LIMITS.pipeline.maxModules - 2}' ended DependencyFailed`,
    });
    expect(result.modules.filter((module) => module.status === 'DependencyFailed')).toHaveLength(
      LIMITS.pipeline.maxModules - 1,
    );
  }, 60_000);
});
