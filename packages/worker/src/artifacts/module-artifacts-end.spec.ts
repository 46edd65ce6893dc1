/**
 * A download the module never awaited, ended with its module while `tar` loads (round I's review:
 * the end destroyed the download's source before anything listened to it, an uncaught 'error'
 * event that crashed the module host or the `--isolation none` worker, and the end never
 * resolved). `tar`'s first load in a process takes milliseconds from disk; here it is held until
 * the test lets it go (each test imports the code afresh, so `tar` loads again), which makes the
 * end land in that load every time: no race.
 */
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineModule } from '@mpd/pipeline';
import pino from 'pino';
import { afterAll, afterEach, beforeEach, expect, it, vi } from 'vitest';
import type { BlobFollower } from './blob-progress.js';

/** `tar`'s load, held: `requested` resolves when the code asks for it, `release` lets it load. */
const tarLoad = {
  requested: Promise.resolve(),
  asked: () => {},
  gate: Promise.resolve(),
  release: () => {},
  /** Holds the next load of `tar` (see beforeEach). */
  arm() {
    tarLoad.requested = new Promise<void>((resolve) => (tarLoad.asked = resolve));
    tarLoad.gate = new Promise<void>((resolve) => (tarLoad.release = resolve));
  },
};

/** `promise`, or a rejection naming `what` after `ms` (this file imports no helper that loads `tar`). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

let root: string;
let work: string;
/** A tar of one file, as the blob a follow answers (already downloaded, verified). */
let blob: { path: string; size: number; sha256: string };

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'mpd-artifacts-end-'));
  work = join(root, 'work');
  await mkdir(join(root, 'files'), { recursive: true });
  await mkdir(work);
  await writeFile(join(root, 'files/a.txt'), 'hello');
  const { create } = await vi.importActual<typeof import('tar')>('tar');
  const path = join(root, 'blob.tar');
  await create({ file: path, cwd: join(root, 'files'), portable: true }, ['a.txt']);
  blob = { path, size: (await stat(path)).size, sha256: 'a'.repeat(64) };
  // Fresh code (and a fresh `tar`, held) for each test.
  vi.resetModules();
  tarLoad.arm();
  vi.doMock('tar', async (importOriginal) => {
    tarLoad.asked();
    await tarLoad.gate;
    return await importOriginal();
  });
});
afterEach(async () => {
  tarLoad.release();
  await rm(root, { recursive: true, force: true });
});
// The fork outlives this file (isolate: false): `tar` is not left mocked for the files after it.
afterAll(() => {
  vi.doUnmock('tar');
});

/**
 * A transport whose follow answers the blob (a copy the caller removes) as downloaded and verified;
 * `answered` runs once its answer settled, before the caller hears it.
 */
function transport(answered?: () => void) {
  return {
    put: async () => {
      throw new Error('no upload here');
    },
    checkOut: async () => {
      throw new Error('no check-out here');
    },
    follow: (_sha256: string, follower: BlobFollower) => {
      const answer = (async () => {
        const copy = `${blob.path}.${Math.random().toString(36).slice(2)}`;
        await copyFile(blob.path, copy);
        follower.written(blob.size);
        follower.ended();
        return { path: copy, size: blob.size };
      })();
      // Registered before the caller's own handlers: runs first.
      if (answered) void answer.then(answered);
      return answer;
    },
  };
}

const ref = () => ({ name: 'a', sha256: blob.sha256, size: blob.size, files: 1, compression: 'none' as const });

/**
 * This test's `ctx.artifacts` (the code imported afresh) and a download of `ref` started on it,
 * never awaited: `settled` is its outcome, its error's message when it rejects.
 */
async function danglingDownload(answered?: () => void) {
  const { moduleArtifacts } = await import('./module-artifacts.js');
  const execution = moduleArtifacts({
    module: 'build',
    transport: transport(answered),
    workingDirectory: work,
    scratchDir: join(root, 'scratch'),
  });
  const settled = execution.api.download(ref(), 'out').then(
    () => 'resolved',
    (error: Error) => error.message,
  );
  return { execution, settled };
}

it('a download never awaited, its module ended while tar loads (right after the blob was answered): the download rejects with the end, the end resolves, nothing is left, nothing is thrown', async () => {
  const { execution, settled } = await danglingDownload();
  await within(tarLoad.requested, 5_000, 'tar was not asked for');
  // Before, the blob was answered and its source made by now: the end destroyed it unheard.
  const ended = execution.end();
  tarLoad.release();
  await within(ended, 5_000, 'the end did not resolve');
  expect(await settled).toContain('the module ended before this upload or download did');
  expect(await readdir(work)).toEqual([]); // no `out`, no `.out.mpd-*` staging directory
});

it.each(['as the blob is answered', 'a turn after the blob is answered'] as const)(
  'a download never awaited, its module ended %s (tar let load at once): the download rejects with the end, the end resolves, nothing is left, nothing is thrown',
  async (when) => {
    tarLoad.release();
    let ended: Promise<void> | undefined;
    const end = () => (ended = execution.end());
    const { execution, settled } = await danglingDownload(
      when === 'as the blob is answered' ? end : () => setImmediate(end),
    );
    expect(await within(settled, 5_000, 'the download did not settle')).toContain(
      'the module ended before this upload or download did',
    );
    await within(ended!, 5_000, 'the end did not resolve');
    expect(await readdir(work)).toEqual([]);
  },
);

it('isolation none: a module that returns with its download never awaited, while tar loads, is answered, and nothing is left in its directory', async () => {
  const { startExecution } = await import('../executor/execution.js');
  const module = defineModule({
    name: 'leaves-download',
    run: async (ctx) => {
      void ctx.artifacts.download(ref(), 'out');
      await tarLoad.requested;
      return 'returned';
    },
  });
  const execution = startExecution(
    module,
    {
      executionId: 'e1',
      moduleTypeName: 'leaves-download',
      params: undefined,
      dependencyResults: {},
      environmentVariables: {},
      fingerprint: 'f',
    },
    {
      workerId: 'w',
      defaultTimeoutMs: 20_000,
      workingDirectory: work,
      maxResultBytes: 1 << 20,
      logger: pino({ level: 'silent' }),
      artifacts: { transport: transport(), scratchDir: join(root, 'scratch') },
    },
  );
  await within(tarLoad.requested, 5_000, 'tar was not asked for');
  // The module returned a turn later, and its end (microtasks after it) came long before this.
  setTimeout(() => tarLoad.release(), 1_000);
  expect(await within(execution.outcome, 10_000, 'no answer')).toMatchObject({ status: 200 });
  expect(await readdir(work)).toEqual([]);
});
