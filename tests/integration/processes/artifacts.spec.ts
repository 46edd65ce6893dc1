/**
 * Artifacts between machines (issue 13): a module on worker A uploads files, its dependant on
 * worker B downloads them, byte-identical, through the orchestrator's store; every process real,
 * each worker with a cache of its own; A runs modules in module hosts (the default for a pipeline
 * file), B in its own process (`--isolation none`), so both ways `ctx.artifacts` reaches the worker run.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { cliOf, killLeftovers, orchestratorArgs, spawnProcess, workerArgs } from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

afterEach(killLeftovers);

async function start(pkg: 'orchestrator' | 'worker', args: string[]) {
  const proc = spawnProcess({ script: cliOf(pkg), args, env: { MPD_LOG_LEVEL: 'info' } });
  return { ...proc, url: await proc.listeningUrl() };
}

describe('artifacts across workers', () => {
  it('an artifact produced on worker A is consumed on worker B byte-identical, B downloading it into its own cache', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-artifacts-e2e-'));
    const report = join(dir, 'report.json');
    const pipeline = fixture('artifacts.pipeline.ts');
    const store = join(dir, 'store');
    const orchestrator = await start(
      'orchestrator',
      orchestratorArgs(
        0,
        ...['--artifacts-dir', store, '--env', `ARTIFACT_TEST_DIR=${dir}`],
        ...['--pipeline', pipeline, '--min-workers', '2', '--report', report],
      ),
    );
    const cacheOf = (id: string) => join(dir, `cache-${id}`);
    await start(
      'worker',
      workerArgs(
        orchestrator.url,
        'art-a',
        '--pipeline',
        pipeline,
        '--tags',
        'producer',
        '--cache-dir',
        cacheOf('art-a'),
      ),
    );
    await start(
      'worker',
      workerArgs(
        orchestrator.url,
        'art-b',
        '--pipeline',
        pipeline,
        '--tags',
        'consumer',
        '--cache-dir',
        cacheOf('art-b'),
        // A runs its modules in module hosts (ctx.artifacts over IPC), B in its own process.
        '--isolation',
        'none',
      ),
    );
    expect(await orchestrator.exited).toBe(0);

    const result = JSON.parse(readFileSync(report, 'utf8')) as RunResult;
    const build = result.modules.find((module) => module.name === 'build')!.result as {
      dist: { sha256: string; files: number };
      hashes: Record<string, string>;
      workerId: string;
    };
    const test = result.modules.find((module) => module.name === 'test')!.result as {
      files: number;
      hashes: Record<string, string>;
      workerId: string;
    };
    expect([build.workerId, test.workerId]).toEqual(['art-a', 'art-b']);
    expect(build.dist.files).toBe(3);
    expect(test.files).toBe(3);
    expect(test.hashes).toEqual(build.hashes);
    expect(Object.keys(test.hashes)).toHaveLength(3);
    // The archive is in the store under its hash, in A's cache from its upload, in B's from its download.
    for (const where of [store, cacheOf('art-a'), cacheOf('art-b')]) {
      expect(existsSync(join(where, build.dist.sha256)), where).toBe(true);
    }
    rmSync(dir, { recursive: true, force: true });
  });
});
