import { availableParallelism } from 'node:os';
import { DEFAULT_MODULE_TIMEOUT_MS } from '@mpd/contract';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { resolveWorkerOptions } from './worker-options.js';

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
      maxResultBytes: 16 * 1024 * 1024,
      validateResponses: false,
      initialBackoffMs: 500,
      maxBackoffMs: 30_000,
      completedRetentionMs: 600_000,
    });
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
      validateResponses: true,
      initialBackoffMs: 10,
      maxBackoffMs: 20,
      completedRetentionMs: 0,
      logger,
      token: 'a-token-of-sixteen-chars',
    };
    expect(resolveWorkerOptions(given)).toEqual(given);
  });
});
