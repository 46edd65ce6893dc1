/**
 * Declarative artifacts (issue 13): `produces` on a module, `consumes` on its dependant, across
 * two workers in this process (each with its own working directory and cache) and the
 * orchestrator's real store. Modules run in the workers' processes (`isolation: 'none'`): the
 * declared artifacts go through `ctx.artifacts`, which module hosts reach over the host channel (fd 3) the same way.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPipeline } from '@mpd/orchestrator';
import { type ArtifactRef, defineModule, definePipeline, type Pipeline } from '@mpd/pipeline';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, silent } from '../helpers/cluster.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
/** Bytes no text encoding keeps as they are. */
const BINARY = Buffer.from([0, 1, 2, 127, 128, 254, 255, 13, 10]);

const build = defineModule({
  name: 'build',
  requires: { tags: ['producer'] },
  produces: { dist: ['dist/**', '!**/*.map'], docs: { globs: '*.md', baseDir: 'docs', compression: 'gzip' } },
  run: async (ctx) => {
    await mkdir(join(ctx.workingDirectory, 'dist/nested'), { recursive: true });
    await mkdir(join(ctx.workingDirectory, 'docs'), { recursive: true });
    await writeFile(join(ctx.workingDirectory, 'dist/app.js'), 'export const answer = 42;\n');
    await writeFile(join(ctx.workingDirectory, 'dist/nested/blob.bin'), BINARY);
    await writeFile(join(ctx.workingDirectory, 'dist/app.js.map'), '{}');
    await writeFile(join(ctx.workingDirectory, 'docs/README.md'), '# docs\n');
    return { version: '1.2.3' };
  },
});

const test = defineModule({
  name: 'test',
  dependsOn: [build],
  requires: { tags: ['consumer'] },
  consumes: [build.artifacts.dist, { artifact: build.artifacts.docs, dir: 'manual' }],
  run: async (ctx) => {
    // Typed: the producer's own result and its references.
    const { version, artifacts } = ctx.result(build);
    const dist: ArtifactRef = artifacts.dist;
    return {
      version,
      dist,
      app: await readFile(join(ctx.workingDirectory, 'dist/app.js'), 'utf8'),
      blob: sha256(await readFile(join(ctx.workingDirectory, 'dist/nested/blob.bin'))),
      map: existsSync(join(ctx.workingDirectory, 'dist/app.js.map')),
      readme: await readFile(join(ctx.workingDirectory, 'manual/README.md'), 'utf8'),
    };
  },
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mpd-declared-artifacts-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * An orchestrator with its store, and one worker per tag, each with a directory and cache of its
 * own; `logs`: the workers' log lines (`debug` and up), each with the worker's id.
 */
async function cluster(pipeline: Pipeline, tags: string[]) {
  const dir = await tempDir();
  const logs: Array<Record<string, unknown>> = [];
  const cluster = new Cluster();
  cleanups.push(() => cluster.close());
  const orchestrator = await cluster.startOrchestrator({ artifactsDir: join(dir, 'store') });
  for (const tag of tags) {
    const worker = await cluster.startWorker({
      id: `w-${tag}`,
      pipeline,
      isolation: 'none',
      tags: [tag],
      workingDirectory: join(dir, tag),
      cacheDir: join(dir, `${tag}-cache`),
      logger: pino(
        { level: 'debug', base: { worker: `w-${tag}` } },
        { write: (line: string) => void logs.push(JSON.parse(line)) },
      ),
    });
    await worker.link!.registered();
  }
  const run = () =>
    runPipeline({
      pipeline,
      registry: orchestrator.registry,
      endpointPolicy: orchestrator.endpointPolicy,
      logger: silent,
    });
  return { dir, run, logs };
}

describe('produces and consumes', () => {
  it("a producer's declared files reach a consumer on another worker byte-identical, the references in the producer's result", async () => {
    const pipeline = definePipeline({ name: 'declared', modules: [build, test] });
    const { dir, run, logs } = await cluster(pipeline, ['producer', 'consumer']);
    const result = await run();
    expect(result.modules.map((module) => module.error?.message ?? module.status)).toEqual([
      'Successful',
      'Successful',
    ]);
    const [built, tested] = result.modules;
    expect(built!.workerId).toBe('w-producer');
    expect(tested!.workerId).toBe('w-consumer');
    const refs = (built!.result as { artifacts: Record<string, ArtifactRef> }).artifacts;
    expect(built!.result).toEqual({ version: '1.2.3', artifacts: refs });
    expect(refs.dist).toMatchObject({ name: 'dist', files: 2, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(refs.docs).toMatchObject({ name: 'docs', files: 1 });
    // A plain tar unless the declaration asks for gzip.
    expect([refs.dist!.compression, refs.docs!.compression]).toEqual(['none', 'gzip']);
    // The blobs are in the store under their hashes, and the consumer got the same files.
    expect(existsSync(join(dir, 'store', refs.dist!.sha256))).toBe(true);
    expect([...(await readFile(join(dir, 'store', refs.docs!.sha256))).subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    expect(tested!.result).toEqual({
      version: '1.2.3',
      dist: refs.dist,
      app: 'export const answer = 42;\n',
      blob: sha256(BINARY),
      map: false,
      readme: '# docs\n',
    });
    // Each transfer's debug line says which module moved which artifact (--log-level debug).
    const transfers = logs
      .filter((line) => String(line.msg).startsWith('artifact '))
      .map(({ worker, msg, module, artifact }) => ({ worker, msg, module, artifact }));
    expect(transfers).toEqual(
      expect.arrayContaining([
        { worker: 'w-producer', msg: 'artifact uploaded', module: 'build', artifact: 'dist' },
        { worker: 'w-producer', msg: 'artifact uploaded', module: 'build', artifact: 'docs' },
        { worker: 'w-consumer', msg: 'artifact downloaded', module: 'test', artifact: 'dist' },
        { worker: 'w-consumer', msg: 'artifact downloaded', module: 'test', artifact: 'docs' },
      ]),
    );
  });

  // Round L's new user: a worker started with `--cache-dir ./cache` ended with an empty cache. It
  // had run only modules that moved no artifact: a worker's cache keeps the blobs its own modules
  // uploaded or downloaded (README, Artifacts), nothing else; the other worker's held the blob.
  it("each worker's cache keeps the blobs its own modules uploaded or downloaded; one whose modules moved none keeps none", async () => {
    const stamp = defineModule({ name: 'stamp', requires: { tags: ['bystander'] }, run: () => 'stamped' });
    const pipeline = definePipeline({ name: 'declared-caches', modules: [build, test, stamp] });
    const { dir, run } = await cluster(pipeline, ['producer', 'consumer', 'bystander']);
    const result = await run();
    expect(result.modules.map((module) => [module.name, module.workerId, module.status])).toEqual([
      ['build', 'w-producer', 'Successful'],
      ['test', 'w-consumer', 'Successful'],
      ['stamp', 'w-bystander', 'Successful'],
    ]);
    const refs = (result.modules[0]!.result as { artifacts: Record<string, ArtifactRef> }).artifacts;
    const blobs = [refs.dist!.sha256, refs.docs!.sha256].sort();
    const cached = async (tag: string) =>
      (await readdir(join(dir, `${tag}-cache`))).filter((name) => /^[0-9a-f]{64}$/.test(name)).sort();
    expect(await cached('producer')).toEqual(blobs);
    expect(await cached('consumer')).toEqual(blobs);
    expect(await cached('bystander')).toEqual([]);
  });

  it('a glob that matches nothing fails the producer, naming the artifact; its consumer does not run', async () => {
    const empty = defineModule({
      name: 'empty',
      requires: { tags: ['producer'] },
      produces: { out: 'out/**' },
      run: () => ({ ok: true }),
    });
    const user = defineModule({
      name: 'user',
      dependsOn: [empty],
      consumes: [empty.artifacts.out],
      run: () => 'never',
    });
    const { run } = await cluster(definePipeline({ name: 'declared-empty', modules: [empty, user] }), ['producer']);
    const result = await run();
    expect(result.modules.map((module) => module.status)).toEqual(['Failed', 'DependencyFailed']);
    expect(result.modules[0]!.error?.message).toMatch(/upload\('out'\): no file under .* matches \["out\/\*\*"\]/);
  });

  it('a producer that returns something other than an object fails, saying why', async () => {
    const text = defineModule({
      name: 'text',
      requires: { tags: ['producer'] },
      produces: { out: 'out/**' },
      run: () => 'just text' as unknown as { ok: boolean },
    });
    const { run } = await cluster(definePipeline({ name: 'declared-text', modules: [text] }), ['producer']);
    const result = await run();
    expect(result.modules[0]!.error?.message).toMatch(
      /produces artifacts, so its run must return an object or nothing .* it returned string/,
    );
  });
});
