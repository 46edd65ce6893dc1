import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, open, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ArtifactClient } from '@mpd/client';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startBlobServer, within } from '../../test/hostile-blob-server.js';
import { startUploadStore, swapOverScratchUploads } from '../../test/upload-store.js';
import type { FollowedBlob } from './module-artifacts.js';
import { BlobProgress, readFollowed, readStreamed } from './blob-progress.js';
import { WorkerBlobs } from './worker-blobs.js';

const dirs: string[] = [];

/** A debug-level logger that keeps its lines (`msg` and fields), for the transfers' debug lines. */
function debugLog() {
  const lines: Array<{ msg: string; sha256?: string; bytes?: number; ms?: number; source?: string }> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * Reads a followed blob whichever way it came (a growing file or a socket), as a module host
 * does: `began` resolves once its first bytes were read, `sha256` with the hash of all of them.
 */
function reading(blob: FollowedBlob, progress: BlobProgress) {
  const chunks = 'socket' in blob ? readStreamed(blob, progress) : readFollowed(blob.path, progress);
  let began!: () => void;
  const first = new Promise<void>((resolve) => (began = resolve));
  const sha256 = (async () => {
    const hash = createHash('sha256');
    for await (const chunk of chunks) {
      hash.update(chunk as Buffer);
      began();
    }
    return hash.digest('hex');
  })();
  return { began: first, sha256 };
}

describe('WorkerBlobs', () => {
  it('keeps a downloaded blob within the cache bound: a second consumer asking after the first one’s bytes began to flow shares that download, and a later one reads it from the cache (one GET)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mpd-worker-blobs-'));
    dirs.push(root);
    let release!: () => void;
    const store = await startBlobServer(root, { held: new Promise<void>((resolve) => (release = resolve)) });
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      // The default bound's rule at a small scale: 10 MiB of cache, a blob of about 2 MiB.
      const { logger, lines } = debugLog();
      const blobs = new WorkerBlobs(client, { dir: join(root, 'cache'), maxBytes: 10 * 1024 * 1024, logger });
      const [first, second] = [new BlobProgress(), new BlobProgress()];
      const one = reading(await blobs.follow(store.sha256, first, new AbortController().signal), first);
      await within(one.began, 10_000, 'the first consumer read no bytes');
      // The first MiB has reached the first consumer; the rest is held back by the store. (The
      // second is answered once that download is in: `follow` then waits as `checkOut` does.)
      const asked = blobs.follow(store.sha256, second, new AbortController().signal);
      release();
      const two = reading(await within(asked, 10_000, 'the second consumer got no answer'), second);
      expect(await within(one.sha256, 10_000, 'the first consumer did not finish')).toBe(store.sha256);
      expect(await within(two.sha256, 10_000, 'the second consumer did not finish')).toBe(store.sha256);
      expect(store.gets()).toBe(1);
      expect(blobs.cache.has(store.sha256)).toBe(true);
      // Kept: a later consumer on this worker reads it without a download.
      const third = new BlobProgress();
      const three = reading(await blobs.follow(store.sha256, third, new AbortController().signal), third);
      expect(await within(three.sha256, 10_000, 'the third consumer did not finish')).toBe(store.sha256);
      expect(store.gets()).toBe(1);
      // One debug line per consumer, saying where its bytes came from (--log-level debug).
      const short = store.sha256.slice(0, 12);
      const transfers = lines.filter((line) => line.msg.startsWith('artifact '));
      expect(transfers.map(({ msg, sha256, bytes, source }) => ({ msg, sha256, bytes, source }))).toEqual([
        { msg: 'artifact downloaded', sha256: short, bytes: store.size, source: 'broadcast' },
        { msg: 'artifact downloaded', sha256: short, bytes: store.size, source: 'store' },
        { msg: 'artifact read from the cache', sha256: short, bytes: store.size, source: 'cache' },
      ]);
      for (const { ms } of transfers) expect(ms).toBeGreaterThanOrEqual(0);
      // checkOut (a result reference's blob) likewise.
      const checkedOut = await blobs.checkOut(store.sha256);
      await rm(checkedOut.path);
      expect(lines.at(-1)).toMatchObject({ msg: 'artifact read from the cache', sha256: short, source: 'cache' });
    } finally {
      await client.close();
      await store.close();
    }
  });
});

describe('WorkerBlobs.putPacking: the archive uploaded as its module packs it (issue 13, round J)', () => {
  async function setUp(options: { hashRequired?: boolean; packStallMs?: number } = {}) {
    const root = await mkdtemp(join(tmpdir(), 'mpd-worker-packing-'));
    dirs.push(root);
    const store = await startUploadStore(options);
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    const { logger, lines } = debugLog();
    const blobs = new WorkerBlobs(
      client,
      { dir: join(root, 'cache'), maxBytes: 64 * 1024 * 1024, logger },
      options.packStallMs === undefined ? {} : { packStallMs: options.packStallMs },
    );
    await blobs.cache.open();
    const archive = join(root, 'cache', '.scratch-archive');
    await writeFile(archive, '');
    return {
      root,
      store,
      blobs,
      archive,
      lines,
      close: async () => {
        await client.close();
        await store.close();
      },
    };
  }
  const first = Buffer.alloc(3 * 1024 * 1024, 1);
  const rest = Buffer.alloc(2 * 1024 * 1024 + 7, 2);
  const whole = Buffer.concat([first, rest]);
  const digestOf = (bytes: Buffer) => ({
    sha256: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
  });
  /**
   * Starts the upload of `archive` as it is packed and writes `first` into it; resolves (with
   * the upload's follower and its `stored` promise) once the store received those bytes, while
   * the packer has not ended (fails the test after 10 s).
   */
  async function uploadingFirstBytes({ store, blobs, archive }: Awaited<ReturnType<typeof setUp>>) {
    const upload = blobs.putPacking(archive);
    await appendFile(archive, first);
    upload.follower.written(first.length);
    await expect.poll(() => store.requests[0]?.bytes ?? 0, { timeout: 10_000 }).toBe(first.length);
    return upload;
  }

  it('sends the bytes written so far before the packing ended (one POST, no hash needed), then keeps the archive in the cache under the digest the store answered', async () => {
    const setup = await setUp();
    const { store, blobs, archive, close } = setup;
    try {
      // The store has the first bytes while the packer has not ended: the pack overlaps the upload.
      const { follower, stored } = await uploadingFirstBytes(setup);
      await appendFile(archive, rest);
      follower.ended({ digest: digestOf(whole) });
      expect(await within(stored, 10_000, 'the upload did not end')).toEqual(digestOf(whole));
      expect(store.requests.map(({ method, path, sha256: hashed }) => [method, path, hashed])).toEqual([
        ['POST', '/api/artifacts/blobs', digestOf(whole).sha256],
      ]);
      // A consumer on this worker reads it from the cache, without a download.
      expect(blobs.cache.has(digestOf(whole).sha256)).toBe(true);
    } finally {
      await close();
    }
  });

  it('a packing that fails cuts the upload short (nothing for the store to keep) and the upload rejects with its error; an answer naming other bytes than packed fails the upload', async () => {
    const setup = await setUp();
    const { store, blobs, archive, close } = setup;
    try {
      const { follower, stored } = await uploadingFirstBytes(setup);
      const failure = new Error('tar: a file vanished while it was packed');
      follower.ended({ error: failure });
      await expect(within(stored, 10_000, 'the upload did not end')).rejects.toBe(failure);
      await expect.poll(() => store.requests[0]!.cut, { timeout: 10_000 }).toBe(true);
      expect(blobs.cache.bytes).toBe(0);

      // The packer's digest is not what the store received: refused, not kept.
      const other = blobs.putPacking(archive);
      other.follower.ended({ digest: digestOf(Buffer.from('other bytes')) });
      await expect(within(other.stored, 10_000, 'the upload did not end')).rejects.toThrow(/changed on their way/);
      expect(blobs.cache.bytes).toBe(0);
    } finally {
      await close();
    }
  });

  it('an orchestrator whose store needs the hash first (409 ArtifactHashRequired: a bucket) gets the archive by hash once packed, and is not asked again', async () => {
    const { store, blobs, archive, lines, close } = await setUp({ hashRequired: true });
    try {
      const { follower, stored } = blobs.putPacking(archive);
      await appendFile(archive, whole);
      follower.ended({ digest: digestOf(whole) });
      expect(await within(stored, 10_000, 'the upload did not end')).toEqual(digestOf(whole));
      const again = blobs.putPacking(archive);
      again.follower.ended({ digest: digestOf(whole) });
      expect(await within(again.stored, 10_000, 'the second upload did not end')).toEqual(digestOf(whole));
      const path = `/api/artifacts/blobs/${digestOf(whole).sha256}`;
      expect(store.requests.map(({ method, path: at }) => `${method} ${at}`)).toEqual([
        'POST /api/artifacts/blobs',
        `POST ${path}/transfers`,
        `HEAD ${path}`,
        `PUT ${path}`,
        // The second: by hash at once (the blob routes remembered; the store answers HEAD 404 here).
        `HEAD ${path}`,
        `PUT ${path}`,
      ]);
      expect(store.requests.find((request) => request.method === 'PUT')!.sha256).toBe(digestOf(whole).sha256);
      expect(blobs.cache.has(digestOf(whole).sha256)).toBe(true);
      // One debug line per upload, whichever way it went.
      expect(
        lines
          .filter((line) => line.msg.startsWith('artifact '))
          .map(({ msg, sha256, bytes }) => ({ msg, sha256, bytes })),
      ).toEqual([
        { msg: 'artifact uploaded', sha256: digestOf(whole).sha256.slice(0, 12), bytes: whole.length },
        { msg: 'artifact uploaded', sha256: digestOf(whole).sha256.slice(0, 12), bytes: whole.length },
      ]);
    } finally {
      await close();
    }
  });
  // Review of round L: the subject (from a module host's channel) was spread into the log line whole.
  it('names a transfer in its log line by the subject’s module and artifact only, whatever else the subject object carries', async () => {
    const { blobs, archive, lines, close } = await setUp({ hashRequired: true });
    try {
      await writeFile(archive, whole);
      const forged = { module: 'build', artifact: 'dist', level: 60, msg: 'forged', workerId: 'other', time: 1 };
      await blobs.put(archive, digestOf(whole), forged);
      const line: Record<string, unknown> = lines.find((entry) => entry.msg === 'artifact uploaded')!;
      expect(line).toBeDefined();
      expect(line.level).toBe(20);
      expect(line.module).toBe('build');
      expect(line.artifact).toBe('dist');
      expect(line).not.toHaveProperty('workerId');
      expect(lines.some((entry: Record<string, unknown>) => entry.msg === 'forged' || entry.time === 1)).toBe(false);
    } finally {
      await close();
    }
  });
  it('once the store is known to want uploads by hash, a pack that failed with its archive already removed fails its upload, and the worker does not crash on the archive it never opens', async () => {
    const { root, store, blobs, close } = await setUp({ hashRequired: true });
    const crashes: unknown[] = [];
    const crashed = (error: unknown) => crashes.push(error);
    process.on('uncaughtException', crashed);
    try {
      // The first upload learns the 409 (remembered by the client).
      const learnt = blobs.putPacking(join(root, 'cache', '.scratch-archive'));
      await appendFile(join(root, 'cache', '.scratch-archive'), whole);
      learnt.follower.ended({ digest: digestOf(whole) });
      await within(learnt.stored, 10_000, 'the first upload did not end');
      // A pack that failed at once, its archive removed before the worker could open it.
      const gone = join(root, 'cache', '.gone-archive');
      const { follower, stored } = blobs.putPacking(gone);
      const failure = new Error('tar: a file vanished');
      follower.ended({ error: failure });
      await expect(within(stored, 10_000, 'the upload did not end')).rejects.toBe(failure);
      // Where a reader of the missing file was made and dropped, its open failed just after
      // (ENOENT, with no listener: the worker died); a second is plenty for it on a loaded machine.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(crashes).toEqual([]);
      // Only the first upload's requests (409, then by hash): the failed pack sent nothing.
      expect(store.requests.map(({ method }) => method)).toEqual(['POST', 'POST', 'HEAD', 'PUT']);
    } finally {
      process.off('uncaughtException', crashed);
      await close();
    }
  });

  it('a pack that writes nothing for packStallMs has its streamed POST cut (nothing stored), and its archive is uploaded by hash once packed, before the idle timeouts could fail the upload', async () => {
    const { store, blobs, archive, close } = await setUp({ packStallMs: 1_000 });
    try {
      const { follower, stored } = blobs.putPacking(archive);
      await appendFile(archive, first);
      follower.written(first.length);
      // The packer pauses (its host's event loop blocked) until the worker gave the POST up.
      await expect.poll(() => store.requests[0]?.cut, { timeout: 10_000 }).toBe(true);
      await appendFile(archive, rest);
      follower.written(whole.length);
      follower.ended({ digest: digestOf(whole) });
      expect(await within(stored, 10_000, 'the upload did not end')).toEqual(digestOf(whole));
      const path = `/api/artifacts/blobs/${digestOf(whole).sha256}`;
      expect(store.requests.map(({ method, path: at }) => `${method} ${at}`)).toEqual([
        'POST /api/artifacts/blobs',
        `POST ${path}/transfers`,
        `HEAD ${path}`,
        `PUT ${path}`,
      ]);
      expect(store.requests[3]!.sha256).toBe(digestOf(whole).sha256);
      expect(blobs.cache.has(digestOf(whole).sha256)).toBe(true);
    } finally {
      await close();
    }
  });

  // Round T (T1): a module host's archive is opened once by the worker and read through that handle.
  it.each([false, true])(
    "given the archive's handle (a module host's, opened once), never opens its path: a symbolic link swapped in at the path after the open is not read, neither by the upload nor by the cache; an upload by hash checks the packer's digest on the handle's bytes (hash required: %s)",
    async (hashRequired) => {
      const { root, store, blobs, archive, close } = await setUp({ hashRequired });
      const opened = await open(archive, 'r+');
      try {
        const elsewhere = join(root, 'worker-key');
        await writeFile(elsewhere, 'a file of the worker, not the archive');
        const { follower, stored } = blobs.putPacking(archive, undefined, Promise.resolve(opened));
        await opened.write(whole, 0, whole.length, 0);
        // The host puts a link to another file where its archive was (the handle keeps the archive).
        await rename(archive, `${archive}.moved`);
        await symlink(elsewhere, archive);
        follower.written(whole.length);
        follower.ended({ digest: digestOf(whole) });
        expect(await within(stored, 10_000, 'the upload did not end')).toEqual(digestOf(whole));
        const sent = store.requests.filter((seen) => seen.sha256 !== undefined && seen.method !== 'HEAD');
        expect(sent.map((seen) => seen.sha256)).toEqual([digestOf(whole).sha256]);
        // The cache keeps the archive's bytes (copied from the handle: the path is another file now).
        const kept = await blobs.checkOut(digestOf(whole).sha256);
        expect((await readFile(kept.path)).equals(whole)).toBe(true);
        if (!hashRequired) return;
        // A packer's digest that is not the archive's bytes: refused, nothing sent by that hash.
        const other = digestOf(Buffer.from('a blob the store may have'));
        const forged = blobs.putPacking(archive, undefined, Promise.resolve(opened));
        forged.follower.ended({ digest: { ...other, size: whole.length } });
        await expect(within(forged.stored, 10_000, 'the upload did not end')).rejects.toThrow(
          `the archive's bytes hash to ${digestOf(whole).sha256}, not to ${other.sha256} as packed: not uploaded`,
        );
        expect(store.requests.some((seen) => seen.path.includes(other.sha256))).toBe(false);
        expect(blobs.cache.has(other.sha256)).toBe(false);
      } finally {
        await opened.close();
        await close();
      }
    },
  );
});

describe("the worker's own copy of a module host's archive (review U1 of round T)", () => {
  it.each([false, true])(
    "is made outside the host's scratch directory: a symbolic link a module swaps over a file there while the upload by hash runs is neither uploaded nor kept in the cache (the store has the blob already: %s)",
    async (storeHas) => {
      const sha256Of = (bytes: Buffer) => ({
        sha256: createHash('sha256').update(bytes).digest('hex'),
        size: bytes.length,
      });
      const root = await mkdtemp(join(tmpdir(), 'mpd-copy-swap-'));
      const store = await startUploadStore({ hashRequired: true });
      const real = new ArtifactClient({ baseUrl: store.url, token: 't' });
      try {
        const key = join(root, 'worker-key');
        const secret = Buffer.from('a private key of the worker machine\n');
        await writeFile(key, secret, { mode: 0o600 });
        const blobs = new WorkerBlobs(real, { dir: join(root, 'cache'), maxBytes: 1 << 26 });
        await blobs.cache.open();
        const scratch = blobs.cache.scratchDir;
        // The module's race, made deterministic: whatever file the worker uploads from the host's
        // scratch directory (the one directory a module is given) is replaced by a link to `key`.
        const uploadedFrom = swapOverScratchUploads(blobs, scratch, key);
        if (storeHas) {
          const client = (blobs as unknown as { client: ArtifactClient }).client;
          (client as unknown as { has: (sha256: string) => Promise<number> }).has = async () => secret.length;
        }
        await mkdir(scratch, { recursive: true, mode: 0o700 });
        const archive = join(scratch, 'archive.tar');
        const bytes = Buffer.alloc(secret.length, 7); // sized as the file the module wants
        await writeFile(archive, bytes, { mode: 0o600 });
        const opened = await open(archive, 'r');
        try {
          const { follower, stored } = blobs.putPacking(archive, undefined, Promise.resolve(opened));
          follower.written(bytes.length);
          follower.ended({ digest: sha256Of(bytes) });
          await within(stored, 10_000, 'the upload did not end').catch(() => undefined);
        } finally {
          await opened.close();
        }
        const sent = store.requests.filter((seen) => seen.method === 'PUT').map((seen) => seen.sha256);
        expect(sent).not.toContain(sha256Of(secret).sha256);
        if (blobs.cache.has(sha256Of(bytes).sha256)) {
          const kept = await blobs.checkOut(sha256Of(bytes).sha256);
          expect((await readFile(kept.path)).equals(bytes), 'the cache kept the swapped-in file').toBe(true);
        }
        expect(uploadedFrom.length).toBeGreaterThan(0);
        expect(uploadedFrom.filter((path) => dirname(path) === scratch)).toEqual([]);
      } finally {
        await real.close();
        await store.close();
        await rm(root, { recursive: true, force: true });
      }
    },
  );
});

describe("the worker's own copy of a module host's file to put (review U1 of round T; its swap test, round V)", () => {
  it("is made outside the host's scratch directory: a symbolic link a module swaps over a file there while the copy is uploaded is neither uploaded nor kept in the cache", async () => {
    const root = await mkdtemp(join(tmpdir(), 'mpd-put-copy-swap-'));
    dirs.push(root);
    const store = await startUploadStore();
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const key = join(root, 'worker-key');
      const secret = Buffer.from('a private key of the worker machine\n');
      await writeFile(key, secret, { mode: 0o600 });
      const blobs = new WorkerBlobs(client, { dir: join(root, 'cache'), maxBytes: 1 << 24 });
      await blobs.cache.open();
      const scratch = blobs.cache.scratchDir;
      const uploadedFrom = swapOverScratchUploads(blobs, scratch, key);
      // The host's file, opened once by the worker (module-host.ts openHostUpload).
      await mkdir(scratch, { recursive: true, mode: 0o700 });
      const file = join(scratch, 'forged-put.tar');
      const bytes = Buffer.alloc(secret.length, 7);
      await writeFile(file, bytes, { mode: 0o600 });
      const digest = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
      const opened = await open(file, 'r');
      try {
        expect(await blobs.putOpened(opened, bytes.length, digest)).toEqual(digest);
      } finally {
        await opened.close();
      }
      expect(store.requests.filter((seen) => seen.method === 'PUT').map((seen) => seen.sha256)).toEqual([
        digest.sha256,
      ]);
      expect((await readFile((await blobs.checkOut(digest.sha256)).path)).equals(bytes)).toBe(true);
      expect(uploadedFrom.length).toBeGreaterThan(0);
      expect(uploadedFrom.filter((path) => dirname(path) === scratch)).toEqual([]);
    } finally {
      await client.close();
      await store.close();
    }
  });
});

describe('an upload by a digest the worker did not compute of that file (round V, V2)', () => {
  it("a forged digest naming a blob the store has (other bytes, the same size): refused before anything is sent or kept, so the cache never holds the file under that blob's name; the file's own digest uploads", async () => {
    const root = await mkdtemp(join(tmpdir(), 'mpd-forged-digest-'));
    dirs.push(root);
    const store = await startUploadStore({ keepsBlobs: true });
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      const digestOf = (bytes: Buffer) => ({
        sha256: createHash('sha256').update(bytes).digest('hex'),
        size: bytes.length,
      });
      // Another module's artifact, in the store (not in this worker's cache).
      const theirs = Buffer.from("another module's artifact, which its consumers expect");
      await writeFile(join(root, 'theirs'), theirs);
      await client.putFile(join(root, 'theirs'));
      const blobs = new WorkerBlobs(client, { dir: join(root, 'cache'), maxBytes: 1 << 24 });
      await blobs.cache.open();
      const file = join(root, 'mine.tar');
      const mine = Buffer.alloc(theirs.length, 7);
      await writeFile(file, mine, { mode: 0o600 });
      const sentBefore = store.requests.length;
      await expect(blobs.put(file, digestOf(theirs))).rejects.toThrow(
        `hashing to ${digestOf(mine).sha256}, not the digest given (${digestOf(theirs).sha256}`,
      );
      expect(store.requests.slice(sentBefore)).toEqual([]);
      expect(blobs.cache.has(digestOf(theirs).sha256)).toBe(false);
      // A digest that is the file's (a caller's object, not the worker's hashing): checked, uploaded.
      expect(await blobs.put(file, digestOf(mine))).toEqual(digestOf(mine));
      expect(store.requests.filter((seen) => seen.method === 'PUT').map((seen) => seen.sha256)).toEqual([
        digestOf(theirs).sha256,
        digestOf(mine).sha256,
      ]);
      expect((await readFile((await blobs.checkOut(digestOf(mine).sha256)).path)).equals(mine)).toBe(true);
    } finally {
      await client.close();
      await store.close();
    }
  });
});

describe('readFollowed (round T closing note: blob-progress.ts:87)', () => {
  it('a stream destroyed while its open is pending closes the file opened after, by the time it emits close: no descriptor left open, however many', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mpd-followed-open-'));
    dirs.push(root);
    const path = join(root, 'archive.tar');
    await writeFile(path, 'an archive being packed');
    const held = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === path;
        } catch {
          return false; // closed since listed
        }
      }).length;
    const streams = Array.from({ length: 50 }, () => readFollowed(path, new BlobProgress()));
    // Destroyed at once: each open is still pending (it settles on a later turn).
    for (const stream of streams) stream.destroy();
    await Promise.all(streams.map((stream) => new Promise((resolve) => stream.once('close', resolve))));
    expect(held()).toBe(0);
  });
});
