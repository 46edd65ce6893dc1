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

  it('fails a module whose result is over maxResultBytes (from a worker that did not check), and its dependant is DependencyFailed', async () => {
    const big = defineModule({ name: 'big', run });
    const after = defineModule({ name: 'after', dependsOn: [big], run });
    const sent: string[] = [];
    const result = await runOn(
      definePipeline({ name: 'sizes', modules: [big, after] }),
      { serializedResult: JSON.stringify('x'.repeat(4_096)), onExecute: (body) => sent.push(body.moduleTypeName) },
      { maxResultBytes: 4_096 },
    );
    expect(sent).toEqual(['big']);
    expect(result.modules[0]).toMatchObject({
      status: 'Failed',
      error: {
        type: 'ResultLimitError',
        message:
          "The worker sent a result of 4 KiB (4,098 bytes) as JSON, over the limit of 4 KiB (4,096 bytes); the orchestrator's --max-result-size (maxResultBytes) sets the limit",
      },
    });
    expect(result.modules[0]!.result).toBeUndefined();
    expect(result.modules[1]).toMatchObject({ status: 'DependencyFailed', reason: "dependency 'big' ended Failed" });
  });

  it('with secrets: ends the run for a result 3,500 levels deep (refused), and masks one at the depth limit', async () => {
    const secretEnvironmentVariables = { TOKEN: 'hunter2-secret' };
    const deep = defineModule({ name: 'deep', run });
    const after = defineModule({ name: 'after', dependsOn: [deep], run });
    const pipeline = definePipeline({ name: 'depth', modules: [deep, after] });
    const nested = (depth: number) => '['.repeat(depth) + '"hunter2-secret"' + ']'.repeat(depth);
    const events: unknown[] = [];

    const refused = await runOn(pipeline, { serializedResult: nested(3_500) }, { secretEnvironmentVariables });
    expect(refused.status).toBe('Failed');
    expect(refused.modules[0]).toMatchObject({
      status: 'Failed',
      error: {
        type: 'ResultLimitError',
        message: 'The worker sent a result nested 3,500 levels deep, over the limit of 1,000 levels',
      },
    });
    expect(refused.modules[1]!.status).toBe('DependencyFailed');

    const accepted = await runOn(
      pipeline,
      { serializedResult: nested(LIMITS.json.maxDepth) },
      {
        secretEnvironmentVariables,
        onEvent: (event) => events.push(event),
      },
    );
    expect(accepted.status).toBe('Successful');
    const text = JSON.stringify(accepted);
    expect(text).not.toContain('hunter2-secret');
    expect(text).toContain(nested(LIMITS.json.maxDepth).replace('hunter2-secret', '***'));
    expect(JSON.stringify(events)).not.toContain('hunter2-secret');
  });

  it("fails, without sending it, a module whose execute request would be over the worker's body limit, naming the sizes", async () => {
    const big = defineModule({ name: 'big', run });
    const after = defineModule({ name: 'after', dependsOn: [big], run });
    const sent: string[] = [];
    // 200,000 quotes: 400,002 bytes of JSON text, about 800 KB once escaped in the request.
    const serializedResult = JSON.stringify('"'.repeat(200_000));
    const result = await runOn(
      definePipeline({ name: 'request', modules: [big, after] }),
      { serializedResult, onExecute: (body) => sent.push(body.moduleTypeName) },
      { bodyLimitBytes: 512 * 1024 },
    );
    expect(sent).toEqual(['big']);
    expect(result.modules[0]!.status).toBe('Successful');
    expect(result.modules[1]).toMatchObject({
      status: 'Failed',
      attempts: [],
      error: {
        type: 'RequestTooLarge',
        message: expect.stringMatching(
          /^Module 'after' was not sent to worker w1: its execute request would be 781\.\d KiB \(8\d\d,\d{3} bytes\), over the body limit of 512 KiB \(524,288 bytes\) that worker w1 takes \(its --body-limit\); its largest dependency results: 'big' 390\.6 KiB \(400,002 bytes\)$/,
        ),
      },
    });
  });
});
