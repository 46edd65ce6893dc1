import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineModule } from '@mpd/pipeline';
import { createSecretMasker } from '@mpd/server-kit';
import { duplicateJsonKeys } from '@mpd/test-kit';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { moduleArtifacts } from '../artifacts/module-artifacts.js';
import { createModuleContext, ensureWorkingDirectory } from './module-context.js';
import { toModuleLogger } from './module-logger.js';

const restore = defineModule({ name: 'restore', run: () => ({ packages: 1 }) });
const build = defineModule({
  name: 'build',
  dependsOn: [restore],
  params: { configuration: 'Debug' },
  run: () => null,
});
const silent = toModuleLogger(pino({ level: 'silent' }), createSecretMasker([]));
const fields = (extra: Partial<Parameters<typeof createModuleContext>[0]> = {}) => ({
  module: build,
  params: undefined,
  results: {},
  env: {},
  workingDirectory: '/w',
  signal: new AbortController().signal,
  logger: silent,
  executionId: 'exec-1',
  workerId: 'worker-1',
  artifacts: moduleArtifacts({ module: 'build', transport: undefined, workingDirectory: '/w', scratchDir: '/w' }).api,
  ...extra,
});

describe('createModuleContext', () => {
  it("gives the sent params, or the module's own when none (or null) were sent", () => {
    expect(createModuleContext(fields({ params: { configuration: 'Release' } })).params).toEqual({
      configuration: 'Release',
    });
    expect(createModuleContext(fields()).params).toEqual({ configuration: 'Debug' });
    expect(createModuleContext(fields({ params: null })).params).toEqual({ configuration: 'Debug' });
    expect(createModuleContext(fields({ params: 0 })).params).toBe(0);
  });

  it('finds dependency results by module and by name; a missing optional one is undefined', () => {
    const ctx = createModuleContext(fields({ results: { restore: { packages: 7 } } }));
    expect(ctx.results).toEqual({ restore: { packages: 7 } });
    expect(ctx.result(restore)).toEqual({ packages: 7 });
    expect(ctx.optionalResult('restore')).toEqual({ packages: 7 });
    expect(ctx.optionalResult('lint')).toBeUndefined();
  });

  it('gives a frozen copy of the environment and passes the other fields through', () => {
    const env = { CI: 'true' };
    const signal = new AbortController().signal;
    const ctx = createModuleContext(fields({ env, signal }));
    env.CI = 'false';
    expect(ctx.env).toEqual({ CI: 'true' });
    expect(Object.isFrozen(ctx.env)).toBe(true);
    expect(ctx).toMatchObject({ name: 'build', workingDirectory: '/w', executionId: 'exec-1', workerId: 'worker-1' });
    expect(ctx.signal).toBe(signal);
    expect(ctx.logger).toBe(silent);
  });
});

describe('toModuleLogger', () => {
  it('masks secrets in every message and field, keys included, at each level', () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const logger = toModuleLogger(log, createSecretMasker(['hunter22']));
    logger.debug('debug hunter22');
    logger.info('info', { password: 'hunter22', nested: { list: ['x-hunter22-y'] } });
    logger.warn('warn', { hunter22: 1 });
    logger.error('error hunter22');
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.map((record) => [record.level, record.msg])).toEqual([
      [20, 'debug ***'],
      [30, 'info'],
      [40, 'warn'],
      [50, 'error ***'],
    ]);
    expect(records[1]).toMatchObject({ password: '***', nested: { list: ['x-***-y'] } });
    expect(records[2]).toMatchObject({ '***': 1 });
    expect(lines.join('')).not.toContain('hunter22');
  });

  it("writes fields named like the line's own keys (base, bindings, msg) under moduleFields, never twice", () => {
    const lines: string[] = [];
    const log = pino({ base: { service: 'mpd-worker', pid: 1 } }, { write: (line: string) => void lines.push(line) });
    const logger = toModuleLogger(
      log.child({ workerId: 'w1' }).child({ module: 'm' }),
      createSecretMasker(['hunter22']),
    );
    logger.info('started', { pid: 2, module: 'other', msg: 'hunter22', moduleFields: 3, kept: true });
    logger.info('plain', { kept: 1 });
    // The raw text: JSON.parse would keep the last of two equal keys.
    expect(lines[0]).toMatch(/^\{"level":30,"time":\d+,"service":"mpd-worker","pid":1,"workerId":"w1","module":"m",/);
    expect(lines.flatMap(duplicateJsonKeys)).toEqual([]);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      pid: 1,
      module: 'm',
      msg: 'started',
      kept: true,
      moduleFields: { pid: 2, module: 'other', msg: '***', moduleFields: 3 },
    });
    expect(JSON.parse(lines[1]!)).not.toHaveProperty('moduleFields');
    expect(JSON.parse(lines[1]!)).toMatchObject({ kept: 1, msg: 'plain' });
  });
});

describe('ensureWorkingDirectory', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mpd-module-context-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('creates a missing directory with its parents, and leaves an existing one', async () => {
    const nested = join(root, 'a', 'b');
    await ensureWorkingDirectory(nested);
    expect((await stat(nested)).isDirectory()).toBe(true);
    await writeFile(join(nested, 'kept'), 'x');
    await ensureWorkingDirectory(nested);
    expect((await stat(join(nested, 'kept'))).isFile()).toBe(true);
  });

  it('rejects when a file is in the way', async () => {
    const file = join(root, 'file');
    await writeFile(file, 'x');
    await expect(ensureWorkingDirectory(file)).rejects.toMatchObject({ code: 'EEXIST' });
  });
});
