import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModuleRunResult, RunResult } from '../runner/index.js';
import { readTimingsFile, updatedTimings, writeTimingsFile } from './timings-file.js';

function result(modules: Partial<ModuleRunResult>[]): RunResult {
  return {
    runId: 'r',
    pipeline: 'ci',
    success: true,
    status: 'Successful',
    startTime: '2026-11-27T00:00:00.000Z',
    endTime: '2026-11-27T00:01:00.000Z',
    durationMs: 60_000,
    modules: modules.map((module) => ({ name: 'x', status: 'Successful', attempts: [], ...module })),
  };
}

describe('timings file', () => {
  const dir = () => mkdtempSync(join(tmpdir(), 'mpd-timings-'));

  it('is missing at first, then holds the durations of the modules that succeeded', async () => {
    const file = join(dir(), 'nested', 'timings.json');
    expect(await readTimingsFile(file, 'ci')).toEqual({ kind: 'missing' });
    const timings = updatedTimings(
      undefined,
      result([
        { name: 'build', durationMs: 1_000 },
        { name: 'test', status: 'Failed', durationMs: 5 },
        { name: 'lint', status: 'Skipped' },
      ]),
    );
    await writeTimingsFile(file, timings);
    expect(await readTimingsFile(file, 'ci')).toEqual({
      kind: 'read',
      timings: { version: 1, pipeline: 'ci', updatedAt: '2026-11-27T00:01:00.000Z', modules: { build: 1_000 } },
    });
  });

  it('moves halfway towards each new duration and keeps modules that did not run', () => {
    const previous = updatedTimings(
      undefined,
      result([
        { name: 'build', durationMs: 1_000 },
        { name: 'docs', durationMs: 7 },
      ]),
    );
    const next = updatedTimings(
      previous,
      result([
        { name: 'build', durationMs: 3_000 },
        { name: 'test', durationMs: 10 },
      ]),
    );
    expect(next.modules).toEqual({ build: 2_000, docs: 7, test: 10 });
  });

  it('is not used when broken or another pipeline’s, saying why', async () => {
    const file = join(dir(), 'timings.json');
    writeFileSync(file, '{ nope');
    expect(await readTimingsFile(file, 'ci')).toMatchObject({
      kind: 'invalid',
      reason: expect.stringMatching(/^not JSON/),
    });
    writeFileSync(file, JSON.stringify({ version: 1, pipeline: 'ci', updatedAt: 'x', modules: { build: -1 } }));
    expect(await readTimingsFile(file, 'ci')).toMatchObject({
      kind: 'invalid',
      reason: expect.stringMatching(/^modules\.build:/),
    });
    writeFileSync(file, JSON.stringify({ version: 1, pipeline: 'other', updatedAt: 'x', modules: {} }));
    expect(await readTimingsFile(file, 'ci')).toEqual({ kind: 'other-pipeline', pipeline: 'other' });
    expect(await readTimingsFile(dir(), 'ci')).toMatchObject({ kind: 'invalid' }); // a directory
  });

  it('is replaced whole: no temporary file is left behind', async () => {
    const directory = dir();
    const file = join(directory, 'timings.json');
    await writeTimingsFile(file, updatedTimings(undefined, result([{ name: 'a', durationMs: 1 }])));
    await writeTimingsFile(file, updatedTimings(undefined, result([{ name: 'b', durationMs: 2 }])));
    expect(JSON.parse(readFileSync(file, 'utf8')).modules).toEqual({ b: 2 });
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(directory)).toEqual(['timings.json']);
  });
});
