/**
 * Modules in module hosts (`isolation: 'process'`) transferring artifacts over the host channel,
 * and a host that cannot load the worker's pipeline. Split from `hosted-execution.spec.ts` (see
 * there), with which it shares `test/module-hosts-spec.ts`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ArtifactClient } from '@mpd/client';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { resultOf } from '../../test/hosted-executors.js';
import { startBlobServer, startHostileBlobServer, within } from '../../test/hostile-blob-server.js';
import { moduleHostsSpec } from '../../test/module-hosts-spec.js';
import { startUploadStore } from '../../test/upload-store.js';
import { BlobCache } from '../artifacts/blob-cache.js';
import type { Digest, PackFollower } from '../artifacts/module-artifacts.js';
import { WorkerBlobs } from '../artifacts/worker-blobs.js';
import { MAX_PACKS_IN_FLIGHT } from './module-host.js';
import type { ModuleExecutor } from './module-executor.js';

const { dir, executor, request, start, run, pipeline, logLines } = moduleHostsSpec();

describe('modules in module hosts', () => {
  it('a module whose definition in the file changed since the worker loaded it: the host refuses it before it runs, naming why; another module still runs', async () => {
    const loaded = pipeline();
    const changed = {
      ...loaded,
      // The worker loaded another 'echo' (its digest, as the worker sends it with the module).
      moduleDigest: (name: string) =>
        name === 'echo' ? 'sha256:the-worker-loaded-another' : loaded.moduleDigest(name),
    };
    const on = executor({ pipeline: changed });
    const outcome = await run(on, 'echo');
    expect(outcome).toMatchObject({ status: 500, body: { failureKind: 'Error' } });
    expect(outcome.body).toHaveProperty(
      'errorMessage',
      expect.stringMatching(
        /^Module 'echo' could not run: Pipeline file .*host-faults\.pipeline\.ts changed since the worker loaded it \(the module's digest is sha256:[0-9a-f]{64}, the worker's sha256:the-worker-loaded-another\): restart the worker$/,
      ),
    );
    // A module the file did not change runs on such a worker: this one (a second worker, and its
    // host start, until round V).
    await on.idle();
    expect(await run(on, 'fake-mark')).toMatchObject({
      status: 200,
      body: { serializedResult: '"printed"' },
    });
  });

  it("ctx.artifacts.download in a host: an archive refused halfway abandons the worker's download over the host channel; nothing lands in the destination or the cache", async () => {
    const store = await startHostileBlobServer(dir);
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const transport = new WorkerBlobs(client, { dir: join(dir, 'cache'), maxBytes: 10 * 1024 * 1024 });
      const on = executor({ artifacts: { transport, scratchDir: join(dir, 'cache', '.scratch') } });
      const ref = { name: 'hostile', sha256: store.sha256, size: store.size, files: 3 };
      const answer = resultOf(
        await within(run(on, 'download', { params: { ref, dir: 'fetched/dest' } }), 15_000, 'no answer'),
      );
      expect(answer.refused).toMatch(/the archive is refused, nothing was extracted: "..\/evil.txt" has a .. segment/);
      await within(store.connectionClosed, 5_000, 'the worker did not abandon the GET');
      expect(readdirSync(join(dir, 'fetched'))).toEqual([]);
      expect(transport.cache.has(store.sha256)).toBe(false);
      expect(existsSync(join(dir, 'evil.txt'))).toBe(false);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it('ctx.artifacts.download in a host of a blob larger than the cache bound: the worker streams it to the host over a socket; the files land byte-identical and the cache keeps nothing', async () => {
    const store = await startBlobServer(dir);
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      // A 1 MiB bound under the blob's 2 MiB: the one case a download streams (within the bound it is kept).
      const transport = new WorkerBlobs(client, { dir: join(dir, 'cache-streamed'), maxBytes: 1024 * 1024 });
      const on = executor({ artifacts: { transport, scratchDir: join(dir, 'cache-streamed', '.scratch') } });
      const ref = { name: 'good', sha256: store.sha256, size: store.size, files: 2 };
      const answer = resultOf(
        await within(run(on, 'download', { params: { ref, dir: 'streamed/dest' } }), 15_000, 'no answer'),
      );
      expect(answer).toEqual({ files: 2 });
      for (const [path, bytes] of Object.entries(store.files))
        expect(readFileSync(join(dir, 'streamed/dest', path)).equals(bytes), path).toBe(true);
      expect(readdirSync(join(dir, 'streamed'))).toEqual(['dest']); // no staging directory left
      expect(transport.cache.has(store.sha256)).toBe(false);
      const kept = readdirSync(join(dir, 'cache-streamed'), { recursive: true, withFileTypes: true });
      expect(kept.filter((entry) => entry.isFile())).toEqual([]);
      expect(store.gets()).toBe(1);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it.each(['process', 'none'] as const)(
    "isolation %s: the worker's debug line of a module's artifact transfer names the module and the artifact",
    async (isolation) => {
      const store = await startBlobServer(join(dir, `named-store-${isolation}`));
      const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
      try {
        const lines: Array<Record<string, unknown>> = [];
        const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
        const cacheDir = join(dir, `cache-named-${isolation}`);
        const transport = new WorkerBlobs(client, { dir: cacheDir, maxBytes: 10 * 1024 * 1024, logger });
        const on = executor({ isolation, artifacts: { transport, scratchDir: join(cacheDir, '.scratch') } });
        const ref = { name: 'good', sha256: store.sha256, size: store.size, files: 2 };
        for (const into of ['first', 'second']) {
          await on.idle(); // one slot: the first's free
          const answer = resultOf(
            await within(
              run(on, 'download', { params: { ref, dir: `named-${isolation}/${into}` } }),
              15_000,
              'no answer',
            ),
          );
          expect(answer).toEqual({ files: 2 });
          // The cache keeps the blob once its file is written, which may come after the answer
          // on a loaded machine (the second download then went to the store).
          await expect.poll(() => transport.cache.has(store.sha256), { timeout: 10_000 }).toBe(true);
        }
        // A download, then the cache: each line says whose and which.
        const transfers = lines.filter((line) => String(line.msg).startsWith('artifact '));
        expect(transfers).toMatchObject([
          { msg: 'artifact downloaded', module: 'download', artifact: 'good', sha256: store.sha256.slice(0, 12) },
          { msg: 'artifact read from the cache', module: 'download', artifact: 'good', source: 'cache' },
        ]);
      } finally {
        await client.close();
        await store.close();
      }
    },
  );

  // Review of round L: the log line's module was what the host said it was.
  it("the worker's debug line of a host's artifact call names the module the execution runs, not the one the call's subject names", async () => {
    const store = await startBlobServer(join(dir, 'forged-store'));
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const lines: Array<Record<string, unknown>> = [];
      const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      const cacheDir = join(dir, 'cache-forged');
      const transport = new WorkerBlobs(client, { dir: cacheDir, maxBytes: 10 * 1024 * 1024, logger });
      const on = executor({ artifacts: { transport, scratchDir: join(cacheDir, '.scratch') } });
      const ref = { name: 'good', sha256: store.sha256, size: store.size, files: 2 };
      const answer = resultOf(
        await within(run(on, 'forged-subject', { params: { ref, dir: 'forged/dest' } }), 15_000, 'no answer'),
      );
      expect(answer).toEqual({ files: 2 });
      const transfers = () => lines.filter((line) => String(line.msg).startsWith('artifact '));
      await expect.poll(() => transfers().length, { timeout: 10_000 }).toBe(2);
      expect(transfers().map(({ module, artifact }) => ({ module, artifact }))).toEqual([
        { module: 'forged-subject', artifact: 'good' },
        { module: 'forged-subject', artifact: 'good' },
      ]);
    } finally {
      await client.close();
      await store.close();
    }
  });

  it('ctx.artifacts.download in a host ends with its attempt: cancelled while the store holds the bytes back, the answer comes at once, and nothing lands in the destination, even once they come', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const store = await startBlobServer(join(dir, 'held-store'), { held });
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const transport = new WorkerBlobs(client, { dir: join(dir, 'cache-held'), maxBytes: 10 * 1024 * 1024 });
      const on = executor({ artifacts: { transport, scratchDir: join(dir, 'cache-held', '.scratch') } });
      const ref = { name: 'good', sha256: store.sha256, size: store.size, files: 2 };
      const sent = request('download', { params: { ref, dir: 'held/dest' } });
      const outcome = start(on, sent);
      // The first MiB is being extracted into the staging directory beside `dest`.
      const staged = () =>
        existsSync(join(dir, 'held')) &&
        readdirSync(join(dir, 'held'), { recursive: true, withFileTypes: true }).some((entry) => entry.isFile());
      const deadline = Date.now() + 15_000;
      while (!staged() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(staged()).toBe(true);
      const cancelledAt = Date.now();
      on.cancel(sent.executionId, 'test');
      // Without the stop reaching the download, the host's module waits on it until its group is
      // killed, and the staging directory stays behind.
      expect(await within(outcome, 5_000, 'the cancelled attempt did not end')).toMatchObject({
        status: 500,
        body: { failureKind: 'Cancelled' },
      });
      expect(Date.now() - cancelledAt).toBeLessThan(5_000);
      expect(readdirSync(join(dir, 'held'))).toEqual([]); // neither `dest` nor its staging directory
      release();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(readdirSync(join(dir, 'held'))).toEqual([]);
    } finally {
      release();
      await client.close();
      await store.close();
    }
  }, 30_000);

  it.each([
    ['process', 'fails', false],
    ['none', 'fails', false],
    ['process', 'fails', true],
    ['none', 'fails', true],
    ['process', 'succeeds', true],
    ['none', 'succeeds', true],
  ] as const)(
    'isolation %s: a module that %s while its download is held back (never awaited: %s) ends the download with its attempt: its partial files are gone by the answer, nothing lands in the destination once the bytes come, and the ended download’s rejection is no crash (nor its stop taken for an unhandled one)',
    async (isolation, ending, dangling) => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const name = `${isolation}-${ending}-${dangling ? 'dangling' : 'awaited'}`;
      const store = await startBlobServer(join(dir, `ending-store-${name}`), { held });
      const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
      const cacheDir = join(dir, `cache-ending-${name}`);
      const parent = join(dir, `ending-${name}`);
      try {
        const transport = new WorkerBlobs(client, { dir: cacheDir, maxBytes: 10 * 1024 * 1024 });
        const on = executor({ isolation, artifacts: { transport, scratchDir: join(cacheDir, '.scratch') } });
        const ref = { name: 'good', sha256: store.sha256, size: store.size, files: 2 };
        const module = ending === 'fails' ? 'download-then-fail' : 'download-then-return';
        const outcome = await within(
          run(on, module, { params: { ref, dir: `ending-${name}/dest`, dangling } }),
          10_000,
          'no answer',
        );
        if (ending === 'fails')
          expect(outcome).toMatchObject({ status: 500, body: { failureKind: 'Error', errorMessage: 'failed midway' } });
        else expect(resultOf(outcome)).toBe('returned');
        // Before, a succeeding module's download went on: its staging directory was there at the
        // answer, and its files moved into `dest` once the bytes came (a failing one's only the former).
        expect(existsSync(parent) ? readdirSync(parent) : []).toEqual([]);
        release();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        expect(existsSync(parent) ? readdirSync(parent) : []).toEqual([]);
        // The host that ran it runs the next module: the ended download's rejection was not its crash.
        await on.idle();
        expect(await run(on, 'echo')).toMatchObject({ status: 200 });
      } finally {
        release();
        await client.close();
        await store.close();
      }
    },
    30_000,
  );

  it("a host's download ends with its attempt on the worker's side too: a follow the host neither read nor abandoned (its module ended first) does not hold the store's connection for the 30 s connect timeout", async () => {
    const held = new Promise<void>(() => undefined); // the store never sends the rest
    const store = await startBlobServer(join(dir, 'unread-store'), { held });
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    let closed: Promise<void> | undefined;
    try {
      const cacheDir = join(dir, 'cache-unread');
      const transport = new WorkerBlobs(client, { dir: cacheDir, maxBytes: 10 * 1024 * 1024 });
      const on = executor({ artifacts: { transport, scratchDir: join(cacheDir, '.scratch') } });
      const ref = { name: 'good', sha256: store.sha256, size: store.size, files: 2 };
      const outcome = await within(run(on, 'follow-then-fail', { params: { ref } }), 10_000, 'no answer');
      expect(outcome).toMatchObject({ status: 500, body: { errorMessage: 'failed after its follow' } });
      // The worker did start the download (so the close below proves it was ended, not never made).
      await expect.poll(() => store.gets(), { timeout: 10_000 }).toBe(1);
      // The client closes once no request is in flight: before, the download waited for its
      // consumer to connect for 30 s (the broadcast's connect timeout), holding the request open.
      closed = client.close();
      await within(closed, 10_000, "the client's close (the unread download ended with its attempt)");
    } finally {
      if (closed === undefined) await client.close();
      await store.close();
    }
  }, 30_000);

  it('a module that returns with its upload never awaited ends the upload with its attempt: the next module on its host runs to its end, not blamed for a crash', async () => {
    // A transport that takes its time: a module's upload never reaches it once the module ended.
    const transport = {
      put: async () => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return { sha256: 'a'.repeat(64), size: 1 };
      },
      checkOut: async () => {
        throw new Error('no check-out here');
      },
      follow: async () => {
        throw new Error('no download here');
      },
    };
    const scratchDir = join(dir, 'upload-scratch');
    const on = executor({ slots: 1, artifacts: { transport, scratchDir } });
    const host = resultOf(await run(on, 'upload-then-return')).pid;
    // Before, the upload went on, the worker refused its blob (its module no longer running), and
    // the rejection, unhandled, crashed the host while it ran this one ("Module 'sleeps' crashed
    // its module host: it left a promise rejection unhandled").
    // One slot (the same host runs it): free once the first module's code has stopped.
    const next = request('sleeps', { params: { ms: 1_500 } });
    let decision = on.execute(next);
    for (const deadline = Date.now() + 5_000; decision.kind === 'busy' && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      decision = on.execute(next);
    }
    if (decision.kind !== 'started') throw new Error(`not started: ${JSON.stringify(decision)}`);
    expect(resultOf(await decision.outcome)).toEqual({ pid: host });
    expect(existsSync(scratchDir) ? readdirSync(scratchDir) : []).toEqual([]); // no archive left
  }, 30_000);

  it('a module host that dies while it packs an archive the worker uploads as it grows (putPacking) fails that upload at its exit, rather than leaving it waiting for bytes that never come', async () => {
    /** How the worker's side heard the packing end: the digest, or the failure. */
    let heard: Promise<Digest | Error> | undefined;
    const transport = {
      put: async (): Promise<Digest> => {
        throw new Error('a transport with putPacking is not asked to put');
      },
      checkOut: async () => {
        throw new Error('no check-out here');
      },
      follow: async () => {
        throw new Error('no download here');
      },
      putPacking: () => {
        let tell!: (outcome: Digest | Error) => void;
        heard = new Promise((resolve) => (tell = resolve));
        let fail!: (error: Error) => void;
        const stored = new Promise<Digest>((_, reject) => (fail = reject));
        stored.catch(() => undefined);
        const follower: PackFollower = {
          written: () => undefined,
          ended: (outcome) => {
            tell('error' in outcome ? outcome.error : outcome.digest);
            if ('error' in outcome) fail(outcome.error);
          },
        };
        return { follower, stored };
      },
    };
    const scratchDir = join(dir, 'dying-scratch');
    const on = executor({ slots: 1, artifacts: { transport, scratchDir } });
    const outcome = await within(run(on, 'upload-then-die', { params: { scratchDir } }), 20_000, 'no answer');
    expect(outcome.status, JSON.stringify(outcome.body)).toBe(500);
    expect(
      heard,
      `the worker was never asked to upload as the archive grew: ${JSON.stringify(outcome.body)}`,
    ).toBeDefined();
    const ended = await within(heard!, 10_000, 'the packing never ended for the worker');
    expect(ended).toBeInstanceOf(Error);
    expect((ended as Error).message).toMatch(/the module host exited \(SIGKILL\) while it packed the archive/);
  }, 30_000);

  it("a dependency's result passed by reference reaches a module in a host whole, read and parsed by the host from the file the worker checked out (the worker's main thread never parses it); one whose blob is not JSON fails the module in the host, naming it; no checked-out file is left", async () => {
    const root = join(dir, 'result-files');
    const store = join(root, 'store');
    await mkdir(store, { recursive: true });
    const value = { big: 'x'.repeat(5_000), nested: [1, { two: 2 }] };
    const blobs = { good: JSON.stringify(value), bad: '{"big": not JSON' };
    const refs: Record<string, { $mpdRef: { sha256: string; size: number } }> = {};
    for (const [name, text] of Object.entries(blobs)) {
      const sha256 = createHash('sha256').update(text).digest('hex');
      await writeFile(join(store, sha256), text);
      refs[name] = { $mpdRef: { sha256, size: Buffer.byteLength(text) } };
    }
    const cache = new BlobCache({
      dir: join(root, 'cache'),
      maxBytes: 10 * 1024 * 1024,
      download: async (sha256, path) => {
        await copyFile(join(store, sha256), path);
        return { size: (await stat(path)).size };
      },
    });
    const on = executor({
      artifacts: {
        transport: {
          put: () => Promise.reject(new Error('this test stores nothing')),
          checkOut: (sha256) => cache.checkOut(sha256),
          follow: (sha256, follower, signal) => cache.follow(sha256, follower, signal),
        },
        scratchDir: join(root, 'scratch'),
      },
    });
    const answer = resultOf(await run(on, 'echo', { dependencyResults: { dep: refs.good!, small: 'small' } }));
    expect(answer.results).toEqual({ dep: value, small: 'small' });

    await on.idle();
    const failed = await run(on, 'echo', { dependencyResults: { dep: refs.bad! } });
    expect(failed.body).toMatchObject({
      success: false,
      exceptionType: 'ResultReferenceError',
      errorMessage: expect.stringMatching(
        new RegExp(`^The result of dependency 'dep' \\(blob ${refs.bad!.$mpdRef.sha256}\\) is not JSON: `),
      ),
    });
    await on.idle();
    // The cache keeps the two blobs; the links the hosts read are gone.
    const files = readdirSync(join(root, 'cache'), { recursive: true, withFileTypes: true }).filter((entry) =>
      entry.isFile(),
    );
    expect(files.map((entry) => entry.name).sort()).toEqual(
      [refs.good!.$mpdRef.sha256, refs.bad!.$mpdRef.sha256].sort(),
    );
  });
});

/** This process's descriptors open on `path` (the worker's: the specs run it in process). */
function heldDescriptors(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed since listed
    }
  }).length;
}

/**
 * Runs `body` with a one-slot executor whose module hosts upload to a real HTTP store through a
 * `WorkerBlobs` cache (`cache-<name>` under the spec's dir), and a 100-byte archive `file` (0600)
 * in the hosts' scratch directory; `held()` counts this process's descriptors open on it. The
 * store and its client are closed after, also on failure.
 */
async function withArchiveInScratch(
  name: string,
  file: string,
  body: (run: { on: ModuleExecutor; path: string; held: () => number }) => Promise<void>,
): Promise<void> {
  const store = await startUploadStore();
  const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
  try {
    const transport = new WorkerBlobs(client, { dir: join(dir, `cache-${name}`), maxBytes: 10 * 1024 * 1024 });
    await transport.cache.open();
    const scratchDir = transport.cache.scratchDir;
    const on = executor({ slots: 1, artifacts: { transport, scratchDir } });
    await mkdir(scratchDir, { recursive: true, mode: 0o700 });
    const path = join(scratchDir, file);
    await writeFile(path, 'p'.repeat(100), { mode: 0o600 });
    await body({ on, path, held: () => heldDescriptors(path) });
  } finally {
    await client.close();
    await store.close();
  }
}

describe("a module host's upload of a file of its scratch directory (review s2 of round R)", () => {
  it("is read through the one handle the worker opened and checked: a symbolic link to a file of the worker's, a second hard link of one, a FIFO or a directory named by a forged put or putPacking is refused, nothing of the file reaches the store, no hang; a module's own archive still uploads", async () => {
    const store = await startUploadStore();
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const cacheDir = join(dir, 'cache-forged-uploads');
      const transport = new WorkerBlobs(client, { dir: cacheDir, maxBytes: 10 * 1024 * 1024 });
      await transport.cache.open(); // as the worker does at its start
      const scratchDir = transport.cache.scratchDir;
      const on = executor({ slots: 1, artifacts: { transport, scratchDir } });
      // A file of the worker's per case (its own bytes: an upload is told to its case even when late).
      const secretOf = async (n: number) => {
        const path = join(dir, `worker-token-${n}`);
        const bytes = Buffer.from(`the worker's credential ${n}, readable by its user`);
        await writeFile(path, bytes, { mode: 0o600 });
        return {
          path,
          bytes,
          digest: { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length },
        };
      };
      const leaked = (sha256: string) => store.requests.filter((seen) => seen.sha256 === sha256);
      const kinds: Array<(secret: string) => Record<string, boolean | string>> = [
        (secret) => ({ linkTo: secret }),
        (secret) => ({ hardLinkTo: secret }),
        () => ({ fifo: true }),
        () => ({ directory: true }),
      ];
      // Each kind's outcome, asserted once all ran (a failure shows every kind's at once).
      const seen: Record<string, { targetUploaded: boolean; refused: boolean }> = {};
      const secrets: Array<{ what: string; path: string; bytes: Buffer; sha256: string }> = [];
      let n = 0;
      for (const op of ['putPacking', 'put'] as const)
        for (const kindOf of kinds) {
          const secret = await secretOf(n);
          const kind = kindOf(secret.path);
          const what = JSON.stringify({ op, ...kind }).replaceAll(dir, '');
          secrets.push({ what, path: secret.path, bytes: secret.bytes, sha256: secret.digest.sha256 });
          const path = join(scratchDir, `forged-${n++}.tar`);
          const sent = request('forged-upload', { params: { op, path, digest: secret.digest, ...kind } });
          const outcome = start(on, sent);
          const refused = () =>
            logLines.filter((line) => line.includes(sent.executionId) && line.includes('not a regular file of its own'))
              .length;
          // The worker's refusal, or (before) the target's upload: whichever comes first (10 s at
          // most: before, a FIFO's open waited for a writer for good, and neither came).
          for (
            const deadline = Date.now() + 10_000;
            refused() + leaked(secret.digest.sha256).length === 0 && Date.now() < deadline;
          )
            await new Promise((resolve) => setTimeout(resolve, 20));
          seen[what] = { targetUploaded: false, refused: refused() === 1 };
          on.cancel(sent.executionId, 'test over');
          expect((await within(outcome, 10_000, `${what}: no answer`)).body, what).toMatchObject({
            failureKind: 'Cancelled',
          });
          await on.idle();
        }
      for (const { what, sha256 } of secrets) seen[what]!.targetUploaded = leaked(sha256).length > 0;
      expect(seen).toEqual(
        Object.fromEntries(Object.keys(seen).map((what) => [what, { targetUploaded: false, refused: true }])),
      );
      expect(Object.keys(seen)).toHaveLength(2 * kinds.length);
      expect(store.requests).toEqual([]);
      for (const { path, bytes } of secrets) expect(readFileSync(path)).toEqual(bytes);
      // A module's own archive, packed as the worker uploads it, still goes: read through its handle.
      const good = resultOf(await within(run(on, 'uploads'), 15_000, 'no answer')) as { sha256: string };
      expect(good).toMatchObject({ name: 'good', sha256: store.requests.at(-1)!.sha256 });
      expect(transport.cache.has(good.sha256)).toBe(true);
    } finally {
      await client.close();
      await store.close();
    }
  }, 120_000);

  it.each(['put', 'putPacking'] as const)(
    "a forged %s of a file in the scratch directory after the module replaced that directory by a symbolic link to a directory of the worker's: refused (the handle's real path is checked), the file not uploaded",
    async (op) => {
      const store = await startUploadStore();
      const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
      try {
        const transport = new WorkerBlobs(client, { dir: join(dir, `cache-swapped-dir-${op}`), maxBytes: 1 << 24 });
        await transport.cache.open();
        const scratchDir = transport.cache.scratchDir;
        const on = executor({ slots: 1, artifacts: { transport, scratchDir } });
        // A directory of the worker's (as ~/.ssh) holding a regular 0600 file of one link.
        const secretDir = join(dir, `worker-ssh-${op}`);
        await mkdir(secretDir, { mode: 0o700 });
        const bytes = Buffer.from(`the worker's private key (${op})`);
        await writeFile(join(secretDir, 'id_ed25519'), bytes, { mode: 0o600 });
        const digest = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
        const sent = request('forged-upload', {
          params: { op, path: join(scratchDir, 'id_ed25519'), digest, swapDirTo: secretDir },
        });
        const outcome = start(on, sent);
        const refused = () =>
          logLines.filter((line) => line.includes(sent.executionId) && line.includes('not a regular file of its own'))
            .length;
        const leaked = () => store.requests.filter((seen) => seen.sha256 === digest.sha256).length;
        for (const deadline = Date.now() + 10_000; refused() + leaked() === 0 && Date.now() < deadline;)
          await new Promise((resolve) => setTimeout(resolve, 20));
        on.cancel(sent.executionId, 'test over');
        await within(outcome, 10_000, 'no answer');
        expect({ refused: refused(), leaked: leaked(), cached: transport.cache.has(digest.sha256) }).toEqual({
          refused: 1,
          leaked: 0,
          cached: false,
        });
      } finally {
        await client.close();
        await store.close();
      }
    },
    60_000,
  );

  it(`a module forging more than ${MAX_PACKS_IN_FLIGHT} putPacking calls never ended in one execution: the one past the cap is refused, the worker holding at most ${MAX_PACKS_IN_FLIGHT} descriptors of the archive, and none once the execution ended`, async () => {
    await withArchiveInScratch('packs-cap', 'many.tar', async ({ on, path, held }) => {
      const sent = request('forged-upload', {
        params: {
          op: 'putPacking',
          path,
          digest: { sha256: 'a'.repeat(64), size: 100 },
          noEnd: true,
          times: MAX_PACKS_IN_FLIGHT + 1,
        },
      });
      const outcome = start(on, sent);
      const refused = () =>
        logLines.filter((line) => line.includes(sent.executionId) && line.includes('archives being packed at once'))
          .length;
      for (const deadline = Date.now() + 15_000; refused() === 0 && Date.now() < deadline;)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(refused()).toBe(1);
      expect(held()).toBeLessThanOrEqual(MAX_PACKS_IN_FLIGHT);
      on.cancel(sent.executionId, 'test over');
      await within(outcome, 10_000, 'no answer');
      for (const deadline = Date.now() + 10_000; held() > 0 && Date.now() < deadline;)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(held()).toBe(0);
    });
  }, 60_000);

  it("a forged putPacking whose archive the host never ends: the worker's upload of it fails once the execution ended, and the archive's descriptor the worker opened is closed (not held until the host exits)", async () => {
    await withArchiveInScratch('never-ended', 'never-ended.tar', async ({ on, path, held }) => {
      expect(held()).toBe(0);
      const sent = request('forged-upload', {
        params: { op: 'putPacking', path, digest: { sha256: 'a'.repeat(64), size: 100 }, noEnd: true, returns: true },
      });
      expect(resultOf(await within(start(on, sent), 15_000, 'no answer'))).toBe('sent');
      // Settles at the execution's end; before, it was held until the host exited (never, here:
      // the host is idle in the pool, reused by the next module).
      for (const deadline = Date.now() + 10_000; held() > 0 && Date.now() < deadline;)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(held()).toBe(0);
    });
  }, 60_000);
});
