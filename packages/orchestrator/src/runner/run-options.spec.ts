import { createWorkerClient } from '@mpd/client';
import { defineModule, definePipeline } from '@mpd/pipeline';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { OrchestratorConfigError } from '../errors.js';
import { InMemoryNodeRegistry } from '../registry/in-memory-node-registry.js';
import { DEFAULT_RUN_OPTIONS } from './run-defaults.js';
import { resolveRunOptions, type RunPipelineOptions } from './run-options.js';

const run = () => null;
const plain = definePipeline({ name: 'plain', modules: [defineModule({ name: 'a', run })] });
const tuned = definePipeline({
  name: 'tuned',
  modules: [defineModule({ name: 'a', run })],
  failureMode: 'WaitForAll',
  maxParallelism: 3,
});
const registry = new InMemoryNodeRegistry({ heartbeatTimeoutMs: 60_000 });
const logger = pino({ level: 'silent' });

describe('resolveRunOptions', () => {
  it('fills in the defaults', () => {
    const resolved = resolveRunOptions({ pipeline: plain, registry, logger });
    expect(resolved).toMatchObject({
      pipeline: plain,
      registry,
      logger,
      environmentVariables: {},
      secretEnvironmentVariables: {},
      workingDirectory: undefined,
      signal: undefined,
      onEvent: undefined,
      runOnlyCategories: [],
      ignoreCategories: [],
      failureMode: 'StopOnFirstFailure',
      maxParallelism: undefined,
      maxLostAttempts: 3,
      workerWaitMs: 300_000,
      rescheduleIntervalMs: 1_000,
      timeoutMarginMs: 60_000,
      maxResultBytes: 16 * 1024 * 1024,
      durationHints: {},
      outputGraceMs: 2_000,
      maxOutputWaitMs: 300_000,
    });
    expect(resolved).toMatchObject(DEFAULT_RUN_OPTIONS);
    expect(resolved.createClient).toBeTypeOf('function');
  });

  it("takes the pipeline's failure mode and maximum parallelism", () => {
    expect(resolveRunOptions({ pipeline: tuned, registry, logger })).toMatchObject({
      failureMode: 'WaitForAll',
      maxParallelism: 3,
    });
  });

  it("takes the caller's values over the pipeline's and the defaults, zeros included", () => {
    const createClient = ({ endpoint }: { endpoint: string }) => createWorkerClient({ baseUrl: endpoint });
    const overrides = {
      signal: new AbortController().signal,
      environmentVariables: { CI: 'true' },
      runOnlyCategories: ['build'],
      failureMode: 'StopOnFirstFailure',
      maxParallelism: 8,
      maxLostAttempts: 0,
      workerWaitMs: 0,
      rescheduleIntervalMs: 50,
      timeoutMarginMs: 0,
      maxResultBytes: 1,
      durationHints: { a: 1_000 },
      outputGraceMs: 0,
      maxOutputWaitMs: 0,
    } satisfies Partial<RunPipelineOptions>;
    const resolved = resolveRunOptions({ pipeline: tuned, registry, logger, ...overrides, createClient });
    expect(resolved).toMatchObject(overrides);
    expect(resolved.failureMode).toBe('StopOnFirstFailure');
    expect(resolved.maxParallelism).toBe(8);
    expect(resolved.createClient).toBe(createClient);
  });

  it('refuses a value the run would misbehave with, naming the option', () => {
    const bad: [string, Partial<RunPipelineOptions>][] = [
      ['failureMode', { failureMode: 'StopOnFailure' as never }],
      ['maxParallelism', { maxParallelism: 0 }],
      ['maxParallelism', { maxParallelism: 2.5 }],
      ['maxLostAttempts', { maxLostAttempts: -1 }],
      ['maxLostAttempts', { maxLostAttempts: Number.NaN }],
      ['workerWaitMs', { workerWaitMs: -1 }],
      ['workerWaitMs', { workerWaitMs: Number.NaN }],
      ['rescheduleIntervalMs', { rescheduleIntervalMs: 0 }],
      ['timeoutMarginMs', { timeoutMarginMs: Number.POSITIVE_INFINITY }],
      ['timeoutMarginMs', { timeoutMarginMs: -5 }],
      ['maxResultBytes', { maxResultBytes: 0 }],
      ['maxResultBytes', { maxResultBytes: 1.5 }],
      ['maxResultBytes', { maxResultBytes: Number.POSITIVE_INFINITY }],
      ['outputGraceMs', { outputGraceMs: Number.NaN }],
      ['outputGraceMs', { outputGraceMs: -1 }],
      ['maxOutputWaitMs', { maxOutputWaitMs: Number.NaN }],
    ];
    for (const [setting, options] of bad) {
      let thrown: unknown;
      try {
        resolveRunOptions({ pipeline: plain, registry, logger, ...options });
      } catch (error) {
        thrown = error;
      }
      expect(thrown, setting).toBeInstanceOf(OrchestratorConfigError);
      expect(thrown).toMatchObject({ code: 'InvalidSetting', setting });
      expect((thrown as Error).message).toMatch(new RegExp(`^Invalid setting ${setting}: must be`));
    }
  });
});
