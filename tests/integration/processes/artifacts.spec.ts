/**
 * Artifacts between machines (issue 13): a module on worker A uploads files, its dependant on
 * worker B downloads them, byte-identical, through the orchestrator's store (and a module on A
 * from A's cache, without a download); every process real,
 * each worker with a cache of its own; A runs modules in module hosts (the default for a pipeline
 * file), B in its own process (`--isolation none`), so both ways `ctx.artifacts` reaches the worker run;
 * once with the orchestrator's directory store, once with an S3-compatible bucket (s3rver as a process).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import {
  cliOf,
  killLeftovers,
  orchestratorArgs,
  S3_SERVER_CREDENTIALS,
  spawnProcess,
  startS3Server,
  workerArgs,
} from '@mpd/test-kit';
import { afterEach, describe, expect, it } from 'vitest';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

afterEach(killLeftovers);

async function start(pkg: 'orchestrator' | 'worker', args: string[], env: Record<string, string> = {}) {
  const proc = spawnProcess({ script: cliOf(pkg), args, env: { MPD_LOG_LEVEL: 'info', ...env } });
  return { ...proc, url: await proc.listeningUrl() };
}

interface Produced {
  dist: { sha256: string; files: number; size: number };
  hashes: Record<string, string>;
  workerId: string;
}

/**
 * Runs the fixture's `build` on worker A (module hosts) and `test` on worker B (`--isolation
 * none`), each worker with a cache of its own, the orchestrator given `storeArgs` and B
 * `consumerArgs` as well; answers the two modules' results.
 */
async function acrossWorkers(
  dir: string,
  storeArgs: string[],
  env: Record<string, string> = {},
  consumerArgs: string[] = [],
) {
  const report = join(dir, 'report.json');
  const pipeline = fixture('artifacts.pipeline.ts');
  const orchestrator = await start(
    'orchestrator',
    orchestratorArgs(
      0,
      ...storeArgs,
      ...['--env', `ARTIFACT_TEST_DIR=${dir}`],
      ...['--pipeline', pipeline, '--min-workers', '2', '--report', report],
    ),
    env,
  );
  const cacheOf = (id: string) => join(dir, `cache-${id}`);
  // The two workers start together (a process start is seconds on a loaded machine).
  const producer = start(
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
  const consumer = start(
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
      // A runs its modules in module hosts (ctx.artifacts over the host channel, fd 3), B in its own process.
      '--isolation',
      'none',
      ...consumerArgs,
    ),
  );
  await Promise.all([producer, consumer]);
  expect(await orchestrator.exited, orchestrator.output()).toBe(0);
  const result = JSON.parse(readFileSync(report, 'utf8')) as RunResult;
  const build = result.modules.find((module) => module.name === 'build')!.result as Produced;
  const test = result.modules.find((module) => module.name === 'test')!.result as Omit<Produced, 'dist'> & {
    files: number;
  };
  expect([build.workerId, test.workerId]).toEqual(['art-a', 'art-b']);
  expect(build.dist.files).toBe(3);
  expect(test.files).toBe(3);
  expect(test.hashes).toEqual(build.hashes);
  expect(Object.keys(test.hashes)).toHaveLength(3);
  const check = result.modules.find((module) => module.name === 'check')!.result as typeof test;
  expect(check.workerId).toBe('art-a');
  expect(check.hashes).toEqual(build.hashes);
  return { build, test, cacheOf, orchestratorOutput: orchestrator.output() };
}

describe('artifacts across workers', () => {
  it('an artifact produced on worker A is consumed on worker B byte-identical, B downloading it into its own cache; with --artifact-retention 0 the store is emptied when the run ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-artifacts-e2e-'));
    const store = join(dir, 'store');
    const { build, cacheOf, orchestratorOutput } = await acrossWorkers(
      dir,
      ['--artifacts-dir', store, '--artifact-retention', '0'],
      { MPD_LOG_LEVEL: 'debug' },
    );
    // A uploaded the archive as it packed it (round J): one POST without a hash, no PUT by hash;
    // the blob was read from the store once, by B: the consumer on A read A's cache.
    const requests = orchestratorOutput
      .split('\n')
      .filter((line) => line.includes('"msg":"request"') && line.includes('/api/artifacts/blobs'))
      .map((line) => {
        const { method, path, status } = JSON.parse(line) as { method: string; path: string; status: number };
        return `${method} ${path.replace(build.dist.sha256, '{sha256}')} ${status}`;
      });
    expect(requests.filter((request) => !request.startsWith('POST /api/artifacts/blobs/{sha256}/transfers'))).toEqual([
      'POST /api/artifacts/blobs 201',
      'GET /api/artifacts/blobs/{sha256} 200',
    ]);
    // The archive is in A's cache from its upload, in B's from its download (from the store).
    for (const where of [cacheOf('art-a'), cacheOf('art-b')]) {
      expect(existsSync(join(where, build.dist.sha256)), where).toBe(true);
    }
    // With --artifact-retention 0 the store removed the run's blobs when the run ended.
    expect(readdirSync(store)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('with the S3-compatible store, A uploads to the bucket and B downloads from it directly (presigned URLs, no mpd credential), byte-identical; B, its --cache-size under the blob, streams it and keeps nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpd-artifacts-s3-'));
    const s3 = await startS3Server({ dir, buckets: ['mpd-e2e'] });
    const store = join(dir, 'store');
    const { build, cacheOf } = await acrossWorkers(
      dir,
      [
        ...['--artifacts-dir', store],
        ...['--artifact-store', 's3://mpd-e2e/runs', '--artifact-store-endpoint', s3.url],
        '--artifact-store-path-style',
      ],
      {
        AWS_ACCESS_KEY_ID: S3_SERVER_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3_SERVER_CREDENTIALS.secretAccessKey,
      },
      // 1 MiB of cache on B, under the archive's 3 MiB: its download streams (the one case not kept).
      ['--cache-size', '1mb'],
    );
    expect(build.dist.size).toBeGreaterThan(1024 * 1024);
    const keptByB = readdirSync(cacheOf('art-b'), { recursive: true, withFileTypes: true }).filter((entry) =>
      entry.isFile(),
    );
    expect(keptByB).toEqual([]);
    const key = `/mpd-e2e/runs/${build.dist.sha256}`;
    const moved = s3
      .requests()
      .filter((request) => request.path === key && request.method !== 'HEAD')
      .map((request) => ({
        method: request.method,
        status: request.status,
        bytes: request.method === 'PUT' ? request.bodyBytes : undefined,
        presigned: 'X-Amz-Signature' in request.query,
        authorization: request.headers.authorization,
      }));
    // One upload by A, one download by B (A's consumer-free cache kept its own copy), both
    // straight to the bucket with presigned URLs and no Authorization header at all.
    expect(moved).toEqual([
      { method: 'PUT', status: 200, bytes: build.dist.size, presigned: true, authorization: undefined },
      { method: 'GET', status: 200, bytes: undefined, presigned: true, authorization: undefined },
    ]);
    // The orchestrator streamed nothing: its own directory store was never written.
    expect(existsSync(store)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });
});
