import { LIMITS } from '@mpd/contract';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultWorkerId, detectTools, osName } from './capabilities.js';

describe('worker capabilities', () => {
  it('names the operating system as workers advertise it', () => {
    expect(osName('linux')).toBe('linux');
    expect(osName('win32')).toBe('windows');
    expect(osName('darwin')).toBe('macos');
    expect(osName('freebsd')).toBe('freebsd');
  });

  it('detects tools that are executables on PATH, and only those', () => {
    const one = mkdtempSync(join(tmpdir(), 'mpd-path-'));
    const two = mkdtempSync(join(tmpdir(), 'mpd-path-'));
    writeFileSync(join(one, 'docker'), '#!/bin/sh\n');
    chmodSync(join(one, 'docker'), 0o755);
    writeFileSync(join(two, 'node'), '#!/bin/sh\n');
    chmodSync(join(two, 'node'), 0o755);
    writeFileSync(join(two, 'git'), 'not executable');
    chmodSync(join(two, 'git'), 0o644);
    try {
      expect(detectTools([one, two].join(delimiter), ['docker', 'git', 'node', 'kubectl'])).toEqual(['docker', 'node']);
      expect(detectTools('', ['docker'])).toEqual([]);
    } finally {
      for (const dir of [one, two]) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes ids like worker-<hostname>-<random>, unique per start', () => {
    const id = defaultWorkerId();
    const host = hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .slice(0, 48);
    expect(id).toMatch(new RegExp(`^worker-${host}-[0-9a-f]{6}$`));
    expect(defaultWorkerId()).not.toBe(id);
    // A worker id travels in URL paths: the default is one the contract takes.
    expect(LIMITS.workerId.pattern.test(id)).toBe(true);
    expect(id.length).toBeLessThanOrEqual(LIMITS.workerId.maxLength);
  });
});
