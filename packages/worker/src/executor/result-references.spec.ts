import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import {
  appendFile,
  copyFile,
  type FileHandle,
  link,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ArtifactClient, digestFile } from '@mpd/client';
import { defineModule, definePipeline, type JsonValue } from '@mpd/pipeline';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startUploadStore, swapOverScratchUploads } from '../../test/upload-store.js';
import { BlobCache } from '../artifacts/blob-cache.js';
import { WorkerBlobs } from '../artifacts/worker-blobs.js';
import type { Execution, ExecutionOutcome, ExecutionRequest, WorkerArtifacts } from './execution.js';
import { ModuleExecutor } from './module-executor.js';
import {
  hasReference,
  type ResultFile,
  storeHostResult,
  storeResult,
  withResultReferences,
} from './result-references.js';
import { copyHostFile, scratchRealPath } from './scratch-file.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** What modules of the test pipeline saw of their dependencies, by module. */
const seen = new Map<string, JsonValue>();
const big = 'x'.repeat(5_000);
const pipeline = definePipeline({
  name: 'refs',
  modules: [
    defineModule({ name: 'big', run: () => ({ big }) }),
    defineModule({ name: 'small', run: () => 'small' }),
    defineModule({ name: 'lookalike', run: () => ({ $mpdRef: { sha256: 'a'.repeat(64), size: 1 } }) }),
    defineModule({
      name: 'after',
      run: (ctx) => {
        seen.set('after', ctx.results as unknown as JsonValue);
        return 'done';
      },
    }),
  ],
});

/**
 * Two workers' executors over one store that is a directory (`store/<sha256>`), each with its
 * real cache, fed by copying from it: what one stores the other fetches, with no orchestrator.
 */
async function setUp(options: { maxResultBytes?: number; failPut?: boolean; fetchGate?: Promise<void> } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'mpd-result-refs-'));
  dirs.push(root);
  const store = join(root, 'store');
  await mkdir(store);
  const fetched: string[] = [];
  const transports: Record<string, WorkerArtifacts> = {};
  const worker = (name: string) => {
    const cache = new BlobCache({
      dir: join(root, name, 'cache'),
      maxBytes: 10 * 1024 * 1024,
      download: async (sha256, path) => {
        fetched.push(`${name}:${sha256}`);
        await options.fetchGate;
        await copyFile(join(store, sha256), path);
        return { size: (await stat(path)).size };
      },
    });
    transports[name] = {
      transport: {
        put: async (path) => {
          if (options.failPut) throw new Error('PUT blob: 413 ArtifactTooLarge');
          const digest = await digestFile(path);
          await copyFile(path, join(store, digest.sha256));
          await cache.add(digest, path);
          return digest;
        },
        putBytes: async (bytes) => {
          if (options.failPut) throw new Error('PUT blob: 413 ArtifactTooLarge');
          const digest = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength };
          await writeFile(join(store, digest.sha256), bytes);
          await cache.add(digest, join(store, digest.sha256));
          return digest;
        },
        checkOut: (sha256) => cache.checkOut(sha256),
        follow: (sha256, follower, signal) => cache.follow(sha256, follower, signal),
      },
      scratchDir: join(root, name, 'scratch'),
    };
    return new ModuleExecutor({
      workerId: name,
      pipeline,
      slots: 2,
      defaultTimeoutMs: 60_000,
      workingDirectory: root,
      completedRetentionMs: 60_000,
      maxResultBytes: options.maxResultBytes ?? 1024 * 1024,
      inlineResultBytes: 1024,
      isolation: 'none',
      killGraceMs: 0,
      moduleHeapLimitMb: undefined,
      logger: pino({ level: 'silent' }),
      artifacts: transports[name],
    });
  };
  return { root, store, fetched, transports, a: worker('w-a'), b: worker('w-b') };
}

/** The names of the files under `dir`, at any depth (directories not named). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => entry.name)
    .sort();
}

let ids = 0;
function run(
  on: ModuleExecutor,
  moduleTypeName: string,
  dependencyResults: Record<string, JsonValue> = {},
): Promise<ExecutionOutcome> & { executionId: string } {
  const request: ExecutionRequest = {
    executionId: `run-1.${moduleTypeName}.${++ids}`,
    moduleTypeName,
    params: undefined,
    dependencyResults,
    environmentVariables: {},
    fingerprint: String(ids),
  };
  const decision = on.execute(request);
  if (decision.kind !== 'started') throw new Error(decision.kind);
  return Object.assign(decision.outcome, { executionId: request.executionId });
}

const resultOf = (outcome: ExecutionOutcome): string => {
  if (outcome.status !== 200) throw new Error(outcome.body.errorMessage);
  return outcome.body.serializedResult;
};

describe('large results by reference (issue 13)', () => {
  it('answers a result over --inline-result-size as a reference to a blob holding its JSON text, a smaller one inline; a dependant on another worker gets the value', async () => {
    const { store, fetched, a, b } = await setUp();
    const text = resultOf(await run(a, 'big'));
    const ref = JSON.parse(text) as { $mpdRef: { sha256: string; size: number } };
    expect(ref).toEqual({ $mpdRef: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/), size: 5_010 } });
    expect(await readFile(join(store, ref.$mpdRef.sha256), 'utf8')).toBe(JSON.stringify({ big }));
    expect(resultOf(await run(a, 'small'))).toBe('"small"');

    expect(resultOf(await run(b, 'after', { big: ref, small: 'small' }))).toBe('"done"');
    expect(seen.get('after')).toEqual({ big: { big }, small: 'small' });
    expect(fetched).toEqual([`w-b:${ref.$mpdRef.sha256}`]);
    // On the producer's worker, from its cache: no download.
    await run(a, 'after', { big: ref });
    expect(seen.get('after')).toEqual({ big: { big } });
    expect(fetched).toHaveLength(1);
  });

  it('stores a result shaped like a reference, so its dependant gets exactly what the module returned', async () => {
    const { a, b } = await setUp();
    const ref = JSON.parse(resultOf(await run(a, 'lookalike'))) as JsonValue;
    expect(ref).not.toEqual({ $mpdRef: { sha256: 'a'.repeat(64), size: 1 } });
    await run(b, 'after', { lookalike: ref });
    expect(seen.get('after')).toEqual({ lookalike: { $mpdRef: { sha256: 'a'.repeat(64), size: 1 } } });
  });

  it("fails a dependant before it runs when its references together are over its worker's --max-result-size, naming them and the limit", async () => {
    const { a } = await setUp();
    const { b } = await setUp({ maxResultBytes: 8_000 });
    const ref = JSON.parse(resultOf(await run(a, 'big'))) as JsonValue;
    seen.delete('after');
    const outcome = await run(b, 'after', { one: ref, two: ref });
    expect(outcome.body).toMatchObject({
      success: false,
      exceptionType: 'ResultReferenceError',
      errorMessage:
        "The results of this module's dependencies passed by reference ('one' 4.9 KiB (5,010 bytes), 'two' 4.9 KiB (5,010 bytes)) are together 9.8 KiB (10,020 bytes), over the 7.8 KiB (8,000 bytes) this worker takes in (its --max-result-size, maxResultBytes); raise it on this worker, or return less",
    });
    expect(seen.has('after')).toBe(false);
  });

  it('fails a dependant whose reference names a blob the store does not have, naming the dependency; and a module whose large result cannot be stored', async () => {
    const { b } = await setUp();
    seen.delete('after');
    const missing = await run(b, 'after', { gone: { $mpdRef: { sha256: 'b'.repeat(64), size: 10 } } });
    expect(missing.body).toMatchObject({
      success: false,
      exceptionType: 'ResultReferenceError',
      errorMessage: expect.stringMatching(
        /^The result of dependency 'gone' \(stored by reference, blob b{64}\) could not be fetched: /,
      ),
    });
    expect(seen.has('after')).toBe(false);

    const { a } = await setUp({ failPut: true });
    expect((await run(a, 'big')).body).toMatchObject({
      success: false,
      exceptionType: 'ResultReferenceError',
      errorMessage:
        "Module 'big' returned a result of 4.9 KiB (5,010 bytes) as JSON, over the worker's --inline-result-size, and it could not be stored in the artifact store: PUT blob: 413 ArtifactTooLarge",
    });
  });

  it('answers a cancel while the references are fetched at once, Cancelled, and the module never runs', async () => {
    let open!: () => void;
    const { a, b, fetched } = await setUp({ fetchGate: new Promise<void>((resolve) => (open = resolve)) });
    const ref = JSON.parse(resultOf(await run(a, 'big'))) as JsonValue;
    seen.delete('after');
    const pending = run(b, 'after', { big: ref });
    await expect.poll(() => fetched.length).toBe(1);
    expect(b.cancel(pending.executionId, 'the run was cancelled')).toBe(true);
    expect((await pending).body).toMatchObject({
      success: false,
      failureKind: 'Cancelled',
      errorMessage: 'Execution cancelled: the run was cancelled',
    });
    open();
    await b.idle();
    expect(seen.has('after')).toBe(false);
  });

  it("for a module host, fetches each reference as a file and parses none: the host gets the references as they came and the files (the blobs' text), removed once the execution stopped, and none is left by a cancel while they are fetched", async () => {
    const { root, store, a, transports } = await setUp();
    const ref = JSON.parse(resultOf(await run(a, 'big'))) as { $mpdRef: { sha256: string; size: number } };
    const options = {
      workerId: 'w-b',
      defaultTimeoutMs: 60_000,
      workingDirectory: root,
      maxResultBytes: 1024 * 1024,
      inlineResultBytes: 1024,
      logger: pino({ level: 'silent' }),
      artifacts: transports['w-b'],
    };
    const module = pipeline.modules.get('after')!;
    const request: ExecutionRequest = {
      executionId: 'run-1.after.host',
      moduleTypeName: 'after',
      params: undefined,
      dependencyResults: { big: ref, small: 'small' },
      environmentVariables: {},
      fingerprint: 'host',
    };
    let given: { request: ExecutionRequest; files: Record<string, ResultFile> | undefined } | undefined;
    let answer!: (outcome: ExecutionOutcome) => void;
    const started = (sent: ExecutionRequest, files?: Record<string, ResultFile>): Execution => {
      given = { request: sent, files };
      const outcome = new Promise<ExecutionOutcome>((resolve) => (answer = resolve));
      return { outcome, stopped: outcome.then(() => undefined), cancel: () => undefined };
    };
    const execution = withResultReferences(module, request, options, started, true);
    await expect.poll(() => given).toBeDefined();
    // The worker's side holds no value: the references as they came, each a file the host reads.
    expect(given!.request.dependencyResults).toEqual({ big: ref, small: 'small' });
    expect(given!.files).toEqual({ big: { path: expect.any(String), sha256: ref.$mpdRef.sha256 } });
    const { path } = given!.files!.big!;
    expect(await readFile(path, 'utf8')).toBe(JSON.stringify({ big }));
    answer({
      status: 200,
      body: {
        executionId: request.executionId,
        success: true,
        serializedResult: '"done"',
        duration: '00:00:00',
        startTime: new Date().toISOString(),
        endTime: new Date().toISOString(),
        workerId: 'w-b',
      },
    } as ExecutionOutcome);
    expect(resultOf(await execution.outcome)).toBe('"done"');
    await execution.stopped;
    await expect(stat(path)).rejects.toThrow(/ENOENT/);

    // Cancelled while fetched (on a worker whose cache downloads it): no module, and no file left
    // once the download ended (the blob in its cache, no link of its own to it).
    let release!: () => void;
    const held = await setUp({ fetchGate: new Promise<void>((resolve) => (release = resolve)) });
    await copyFile(join(store, ref.$mpdRef.sha256), join(held.store, ref.$mpdRef.sha256));
    given = undefined;
    const cancelled = withResultReferences(
      module,
      { ...request, executionId: 'run-1.after.cancelled' },
      { ...options, artifacts: held.transports['w-b'] },
      started,
      true,
    );
    await expect.poll(() => held.fetched.length).toBe(1);
    cancelled.cancel('the run was cancelled');
    expect((await cancelled.outcome).body).toMatchObject({ success: false, failureKind: 'Cancelled' });
    release();
    await cancelled.stopped;
    const cache = join(held.root, 'w-b', 'cache');
    await expect.poll(() => existsSync(join(cache, ref.$mpdRef.sha256))).toBe(true);
    await expect.poll(() => filesUnder(cache)).toEqual([ref.$mpdRef.sha256]);
    expect(given).toBeUndefined();
  });
});

/**
 * A module host's result file (`storeHostResult`): a host's file, which its module's code may
 * change at any time. The worker opens it once and uploads what it checked through that handle;
 * the transport here reads by path, as the real one does, and `beforeRead` changes the host's
 * file just before, as a module could between a check by path and an open by path.
 */
describe("a module host's result file (storeHostResult)", () => {
  async function hostFile(beforeRead?: (file: string, secret: string) => Promise<void>) {
    const root = await mkdtemp(join(tmpdir(), 'mpd-host-result-'));
    dirs.push(root);
    const scratchDir = join(root, '.scratch');
    await mkdir(scratchDir);
    const secret = join(root, 'worker.key');
    await writeFile(secret, '"the worker\'s key"');
    const file = join(scratchDir, 'result-host.x.json');
    const uploaded: string[] = [];
    const copies = join(root, 'copies');
    await mkdir(copies);
    const artifacts = {
      transport: {
        // As WorkerBlobs: a copy of exactly the bytes checked, from the handle, where no host is given a directory.
        putOpened: async (handle: FileHandle, size: number) => {
          await beforeRead?.(file, secret);
          const copy = await copyHostFile(handle, size, copies, 'result');
          uploaded.push(await readFile(copy.path, 'utf8'));
          await rm(copy.path);
          return copy.digest;
        },
      },
      scratchDir,
    } as unknown as WorkerArtifacts;
    return { artifacts, file, secret, uploaded, scratchDir };
  }

  it('uploads the file it checked, not what its path names by the time it is read (a symbolic link to a file of the worker swapped in), and removes it', async () => {
    const { artifacts, file, uploaded, scratchDir } = await hostFile(async (file, secret) => {
      await rm(file);
      await symlink(secret, file);
    });
    await writeFile(file, '"ok"');
    const end = await storeHostResult('m', { file }, artifacts, 1024);
    expect(end).toMatchObject({ ok: true });
    expect(uploaded).toEqual(['"ok"']);
    expect(readdirSync(scratchDir)).toEqual([]);
  });

  it('uploads exactly the bytes it checked against --max-result-size: a file grown after the check gets nothing over the limit uploaded (the copy refuses it)', async () => {
    const { artifacts, file, uploaded } = await hostFile(async (file) => {
      await appendFile(file, 'x'.repeat(4096));
    });
    await writeFile(file, '"ok"');
    const end = await storeHostResult('m', { file }, artifacts, 1024);
    for (const text of uploaded) expect(text.length).toBeLessThanOrEqual(1024);
    expect(end).toMatchObject({
      ok: false,
      thrown: { type: 'ResultReferenceError', message: expect.stringContaining('the file grew after it was checked') },
    });
    expect(uploaded).toEqual([]);
  });

  it("refuses a file of its name after the module replaced the scratch directory by a symbolic link to a directory of the worker's (the handle's real path is checked): nothing uploaded", async () => {
    const { artifacts, file, uploaded, scratchDir } = await hostFile();
    scratchRealPath(scratchDir); // resolved when the worker gives its first host the directory
    // A directory of the worker's (as ~/.ssh) holding a regular 0600 file of one link by that name.
    const workerDir = join(dirname(scratchDir), 'worker-ssh');
    await mkdir(workerDir, { mode: 0o700 });
    await writeFile(join(workerDir, basename(file)), '"the worker\'s private key"', { mode: 0o600 });
    await rename(scratchDir, `${scratchDir}.moved`);
    await symlink(workerDir, scratchDir);
    const end = await storeHostResult('m', { file }, artifacts, 1024);
    expect(end).toMatchObject({ ok: false, thrown: { type: 'ResultReferenceError' } });
    expect(uploaded).toEqual([]);
  });

  it('refuses a FIFO (without waiting for a writer), a symbolic link, a hard link and a directory: nothing uploaded', async () => {
    for (const make of ['fifo', 'symlink', 'hard link', 'directory'] as const) {
      const { artifacts, file, secret, uploaded } = await hostFile();
      if (make === 'fifo') execFileSync('mkfifo', [file]);
      if (make === 'symlink') await symlink(secret, file);
      if (make === 'hard link') {
        await writeFile(file, '"ok"');
        await link(file, `${file}.also`);
      }
      if (make === 'directory') await mkdir(file);
      const end = await storeHostResult('m', { file }, artifacts, 1024);
      expect(end, make).toMatchObject({
        ok: false,
        thrown: {
          type: 'ResultReferenceError',
          message:
            "Module 'm' ended with a result file that is not a regular file of its own (a link, or another file linked in its place): not uploaded",
        },
      });
      expect(uploaded, make).toEqual([]);
      expect(existsSync(file), make).toBe(false);
    }
  });
});

/**
 * A result the worker holds as text (`isolation: 'none'`'s, a host's inline `resultText` over
 * the size): round T's closing note, T1/u1 leftovers. The worker wrote the text into the scratch
 * directory its module hosts are given and uploaded it by that path; a module racing it (here
 * made deterministic: the store's client swaps a link to a file of the worker's over any file of
 * the scratch directory it is asked to upload) got another file stored as the module's result.
 */
describe('a result stored from its text (storeResult)', () => {
  it("is uploaded from a file of the worker's own, outside the scratch directory: a link swapped over a file there changes nothing stored, and the reference names the module's text", async () => {
    const root = await mkdtemp(join(tmpdir(), 'mpd-store-result-'));
    dirs.push(root);
    const store = await startUploadStore();
    const real = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const key = join(root, 'worker-key');
      await writeFile(key, '"a private key of the worker machine"', { mode: 0o600 });
      const blobs = new WorkerBlobs(real, { dir: join(root, 'cache'), maxBytes: 1 << 24 });
      await blobs.cache.open(); // as the worker does at its start
      const scratch = blobs.cache.scratchDir;
      const uploadedFrom = swapOverScratchUploads(blobs, scratch, key);
      const text = JSON.stringify({ answer: 'x'.repeat(2_000) });
      const sha256 = createHash('sha256').update(text).digest('hex');
      const ref = JSON.parse(await storeResult(text, { transport: blobs, scratchDir: scratch }, 'm')) as JsonValue;
      expect(ref).toEqual({ $mpdRef: { sha256, size: Buffer.byteLength(text) } });
      expect(store.requests.filter((seen) => seen.method === 'PUT').map((seen) => seen.sha256)).toEqual([sha256]);
      expect(await readFile((await blobs.checkOut(sha256)).path, 'utf8')).toBe(text);
      expect(uploadedFrom.length).toBeGreaterThan(0);
      expect(uploadedFrom.filter((path) => dirname(path) === scratch)).toEqual([]);
      expect(existsSync(scratch) ? readdirSync(scratch) : []).toEqual([]);
    } finally {
      await real.close();
      await store.close();
    }
  });
});

describe('hasReference', () => {
  const ref = { $mpdRef: { sha256: 'a'.repeat(64), size: 1 } };
  it('tells whether a dependency result is a reference, as the values checked one by one would', () => {
    expect(hasReference({})).toBe(false);
    expect(hasReference({ a: 1, b: 'x', c: null, d: [ref], e: { inner: ref } })).toBe(false);
    expect(hasReference({ a: { $mpdRef: { sha256: 'nope', size: 1 } } })).toBe(false);
    expect(hasReference({ a: 1, b: ref })).toBe(true);
    expect(hasReference({ b: ref, a: 1 })).toBe(true);
    expect(hasReference(JSON.parse(`{"__proto__": ${JSON.stringify(ref)}}`) as Record<string, JsonValue>)).toBe(true);
  });
});
