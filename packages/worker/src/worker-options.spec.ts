import { availableParallelism } from 'node:os';
import { DEFAULT_MODULE_TIMEOUT_MS } from '@mpd/contract';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import { WorkerConfigError } from './errors.js';
import { resolveWorkerOptions } from './worker-options.js';

const inCode = definePipeline({ name: 'in-code', modules: [defineModule({ name: 'only', run: () => 1 })] });
/** What `loadPipelineFile` gives: the same pipeline, with the file it came from. */
const fromFile: Pipeline = { ...inCode, sourceFile: '/srv/ci.pipeline.ts' };

describe('resolveWorkerOptions', () => {
  it('fills in every documented default', () => {
    const resolved = resolveWorkerOptions({ tools: ['git'] });
    expect(resolved).toMatchObject({
      port: 9000,
      host: '0.0.0.0',
      slots: availableParallelism(),
      tags: [],
      workingDirectory: process.cwd(),
      defaultTimeoutMs: DEFAULT_MODULE_TIMEOUT_MS,
      shutdownGraceMs: 30_000,
      bodyLimit: '100mb',
      maxResultBytes: 128 * 1024 * 1024,
      inlineResultBytes: 256 * 1024,
      validateResponses: false,
      initialBackoffMs: 500,
      maxBackoffMs: 30_000,
      completedRetentionMs: 600_000,
      cacheDir: '.mpd/artifact-cache',
      cacheMaxBytes: 5 * 1024 ** 3,
      packStallMs: 30_000,
      isolation: 'none',
      killGraceMs: 10_000,
    });
    expect(resolved.moduleHeapLimitMb).toBeUndefined();
    expect(resolved.id).toMatch(/^worker-/);
    expect(['linux', 'windows', 'macos', process.platform]).toContain(resolved.os);
    expect(resolved.logger.level).toBe('info');
    expect(resolved.endpoint).toBeUndefined();
  });

  it('keeps what is given, zeros included', () => {
    const logger = pino({ level: 'silent' });
    const given = {
      id: 'w1',
      port: 0,
      host: '127.0.0.1',
      slots: 3,
      tags: ['gpu'],
      tools: [],
      os: 'windows',
      workingDirectory: '/work',
      defaultTimeoutMs: 1_000,
      shutdownGraceMs: 0,
      bodyLimit: '1kb',
      maxResultBytes: 1,
      inlineResultBytes: 1,
      validateResponses: true,
      initialBackoffMs: 10,
      maxBackoffMs: 20,
      completedRetentionMs: 0,
      cacheDir: '.mpd/artifact-cache',
      cacheMaxBytes: 5 * 1024 ** 3,
      packStallMs: 5_000,
      outputBufferBytes: 4_096,
      outputSpillBytes: 8_192,
      isolation: 'none' as const,
      killGraceMs: 0,
      moduleHeapLimitMb: 64,
      logger,
      token: 'a-token-of-sixteen-chars',
      open: false,
    };
    expect(resolveWorkerOptions(given)).toEqual(given);
  });

  it("runs modules in module hosts by default only for a pipeline loaded from a file, and refuses 'process' for one defined in code", () => {
    expect(resolveWorkerOptions({ pipeline: fromFile, tools: [] }).isolation).toBe('process');
    expect(resolveWorkerOptions({ pipeline: fromFile, tools: [], isolation: 'none' }).isolation).toBe('none');
    expect(resolveWorkerOptions({ pipeline: inCode, tools: [] }).isolation).toBe('none');
    expect(() => resolveWorkerOptions({ pipeline: inCode, tools: [], isolation: 'process' })).toThrow(
      expect.objectContaining({
        constructor: WorkerConfigError,
        setting: 'isolation',
        message: expect.stringContaining("pipeline 'in-code' was defined in code"),
      }),
    );
  });

  it("refuses a packStallMs outside 1 000 to 3 600 000 ms (the CLI's --pack-stall rule), naming it", () => {
    // 3e9 is past the longest Node timer: it would fire after 1 ms and cut every streamed upload.
    for (const packStallMs of [-1, 0, 999, Number.NaN, 3e9, 3_600_001, Number.POSITIVE_INFINITY]) {
      expect(() => resolveWorkerOptions({ tools: [], packStallMs }), String(packStallMs)).toThrow(
        expect.objectContaining({
          constructor: WorkerConfigError,
          setting: 'packStallMs',
          message: expect.stringContaining('Invalid setting packStallMs: must be 1000 to 3600000 ms'),
        }),
      );
    }
    for (const packStallMs of [1_000, 12_500.5, 3_600_000])
      expect(resolveWorkerOptions({ tools: [], packStallMs }).packStallMs).toBe(packStallMs);
  });
});
