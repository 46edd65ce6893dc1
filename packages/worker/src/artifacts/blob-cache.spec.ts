import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createConnection } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobDamagedError, VerifyingStream } from '@mpd/client';
import type { StreamedBlob } from './blob-broadcast.js';
import { BlobCache, type BlobCacheOptions, type FollowedCacheBlob, ownDirName, staleOwnDir } from './blob-cache.js';
import { BlobProgress, readStreamed } from './blob-progress.js';

const blob = (text: string) => {
  const bytes = Buffer.from(text);
  const sha256 = createHash('sha256').update(text).digest('hex');
  /** As a caller other than the worker's own hashing gives it (`BlobCache.add` checks it). */
  const digest = { sha256, size: bytes.length };
  return { bytes, sha256, digest };
};

/** A followed blob's file (the test fails if it came as a socket). */
function pathOf(blob: FollowedCacheBlob): string {
  if (!('path' in blob)) throw new Error(`a socket (${blob.socket}), not a file`);
  return blob.path;
}

/** A followed blob's socket and token (the test fails if it came as a file). */
function streamOf(blob: FollowedCacheBlob): StreamedBlob {
  if (!('socket' in blob)) throw new Error(`a file (${blob.path}), not a socket`);
  return blob;
}

/** Every byte `readStreamed` gives. */
async function readAll(blob: FollowedCacheBlob, progress: BlobProgress): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readStreamed(streamOf(blob), progress)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every file under `dir`, recursively, by relative path. */
async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1));
}

/** `bytes` in two parts, the second held back until `release()` is called (once: later reads pass at once). */
function heldBack(bytes: Buffer, firstBytes: number) {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  async function* parts() {
    yield bytes.subarray(0, firstBytes);
    await held;
    yield bytes.subarray(firstBytes);
  }
  return { parts, release: () => release() };
}

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A cache over a store of `blobs` (a downloader that writes them after `delayMs`), counting downloads. */
async function cacheOf(blobs: Array<ReturnType<typeof blob>>, maxBytes: number, delayMs = 0, shared?: string) {
  const dir = shared ?? (await mkdtemp(join(tmpdir(), 'mpd-cache-')));
  if (!shared) dirs.push(dir);
  const downloads: string[] = [];
  const cache = new BlobCache({
    dir,
    maxBytes,
    download: async (sha256, path) => {
      downloads.push(sha256);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      const found = blobs.find((candidate) => candidate.sha256 === sha256);
      if (!found) throw new Error(`no blob ${sha256}`);
      await writeFile(path, found.bytes);
      return { size: found.bytes.length };
    },
  });
  return { cache, downloads, dir };
}

/**
 * A cache in a directory of its own, bounded at `maxBytes` (a larger blob streams), whose `open` serves the bytes `parts()` gives as blob `size`
 * bytes long, verified as `ArtifactClient.get` verifies (the last chunk held back until the whole
 * hashes to the name asked for); `opened` lists the blobs it opened. Its whole-file download
 * writes `more.whole` (listed in `downloads`), or fails when there is none; `more.logger` is the cache's.
 */
async function streamingCache(
  size: number,
  parts: () => AsyncIterable<Buffer> | Iterable<Buffer>,
  maxBytes: number,
  more: { whole?: Buffer; logger?: BlobCacheOptions['logger'] } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'mpd-cache-'));
  dirs.push(dir);
  const [opened, downloads] = [[] as string[], [] as string[]];
  const cache = new BlobCache({
    dir,
    maxBytes,
    download: async (sha256, path) => {
      if (more.whole === undefined) throw new Error('no whole-file download expected');
      downloads.push(sha256);
      await writeFile(path, more.whole);
      return { size: more.whole.length };
    },
    open: async (sha256) => {
      opened.push(sha256);
      const body = new VerifyingStream(sha256, size);
      pipeline(Readable.from(parts()), body).catch(() => undefined);
      return { size, body };
    },
    logger: more.logger,
  });
  return { cache, dir, opened, downloads };
}

describe('BlobCache', () => {
  it('downloads a blob asked for by several callers at once only once, and not again once held', async () => {
    const a = blob('a'.repeat(100));
    const { cache, downloads } = await cacheOf([a], 1_000, 50);
    const outs = await Promise.all(Array.from({ length: 5 }, () => cache.checkOut(a.sha256)));
    expect(downloads).toEqual([a.sha256]);
    for (const out of outs) expect(await readFile(out.path, 'utf8')).toBe('a'.repeat(100));
    expect(new Set(outs.map((out) => out.path)).size).toBe(5);
    await Promise.all(outs.map((out) => out.release()));
    await (await cache.checkOut(a.sha256)).release();
    expect(downloads).toHaveLength(1);
  });

  it('keeps at most maxBytes, evicting the least recently used; a checked-out blob stays readable after eviction', async () => {
    const [a, b, c] = [blob('a'.repeat(100)), blob('b'.repeat(100)), blob('c'.repeat(100))];
    const { cache, downloads } = await cacheOf([a, b, c], 250);
    const outA = await cache.checkOut(a.sha256);
    await (await cache.checkOut(b.sha256)).release();
    await (await cache.checkOut(a.sha256)).release(); // a is now the most recent
    await (await cache.checkOut(c.sha256)).release(); // evicts b
    expect([cache.has(a.sha256), cache.has(b.sha256), cache.has(c.sha256)]).toEqual([true, false, true]);
    expect(cache.bytes).toBe(200);
    await (await cache.checkOut(b.sha256)).release(); // evicts a, b downloaded again
    expect(cache.has(a.sha256)).toBe(false);
    expect(await readFile(outA.path, 'utf8')).toBe('a'.repeat(100));
    await outA.release();
    expect(downloads).toEqual([a.sha256, b.sha256, c.sha256, b.sha256]);
  });

  it('holds an added file (a module’s own upload) without downloading it, and finds it again after a restart', async () => {
    const a = blob('made here');
    const { cache, downloads, dir } = await cacheOf([], 1_000);
    const source = join(dir, '..', `upload-${Date.now()}`);
    await writeFile(source, a.bytes);
    await cache.add(a.digest, source);
    await rm(source);
    await (await cache.checkOut(a.sha256)).release();
    const again = new BlobCache({
      dir,
      maxBytes: 1_000,
      download: () => Promise.reject(new Error('no download expected')),
    });
    const out = await again.checkOut(a.sha256);
    expect(await readFile(out.path, 'utf8')).toBe('made here');
    expect(downloads).toEqual([]);
  });

  it('add checks a hash it did not compute itself: a file added under a SHA-256 that is not its bytes’ (another blob’s name) is refused and nothing is kept under that name; under its own it is kept', async () => {
    const theirs = blob('another module’s artifact, which a consumer expects');
    const mine = blob('x'.repeat(theirs.bytes.length)); // other bytes, the same size
    const { cache, dir } = await cacheOf([], 1_000);
    const source = join(dir, '..', `forged-${Date.now()}`);
    await writeFile(source, mine.bytes, { mode: 0o600 });
    await expect(cache.add(theirs.digest, source)).rejects.toThrow(`hash to ${mine.sha256}`);
    expect(cache.has(theirs.sha256)).toBe(false);
    expect((await readdir(dir)).filter((name) => name === theirs.sha256)).toEqual([]);
    await cache.add(mine.digest, source);
    expect(await readFile((await cache.checkOut(mine.sha256)).path, 'utf8')).toBe(mine.bytes.toString());
    await rm(source);
  });

  it('addOpened keeps the file the worker opened, not another regular 0600 file of the same size renamed over its path since: the swapped-in bytes are never kept under the blob’s name', async () => {
    const archive = blob('the archive the worker opened and uploaded');
    const other = blob('x'.repeat(archive.bytes.length)); // another file a module renamed over it
    const { cache, downloads, dir } = await cacheOf([], 1_000);
    await cache.open();
    await mkdir(cache.scratchDir, { recursive: true, mode: 0o700 });
    const path = join(cache.scratchDir, 'archive.tar');
    await writeFile(path, archive.bytes, { mode: 0o600 });
    const handle = await open(path, 'r');
    try {
      await writeFile(`${path}.other`, other.bytes, { mode: 0o600 });
      await rename(`${path}.other`, path);
      await cache.addOpened(archive.sha256, path, handle, archive.bytes.length);
    } finally {
      await handle.close();
    }
    const out = await cache.checkOut(archive.sha256);
    expect(await readFile(out.path, 'utf8')).toBe(archive.bytes.toString());
    await out.release();
    expect(await readFile(join(dir, archive.sha256), 'utf8')).toBe(archive.bytes.toString());
    expect(downloads).toEqual([]);
  });

  it('keeps its blobs the worker user’s only (0600) and the directories it makes 0700: downloaded, streamed and kept, added, and left by an earlier version at 0644; an added file readable by others is copied, its own mode left as it was', async () => {
    const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
    const [a, b, c, d] = [blob('downloaded'), blob('s'.repeat(1_000)), blob('added 0644'), blob('added 0600')];
    const base = await mkdtemp(join(tmpdir(), 'mpd-cache-modes-'));
    dirs.push(base);
    const dir = join(base, 'made', 'here');
    const downloaded: string[] = [];
    const cache = new BlobCache({
      dir,
      maxBytes: 10_000,
      download: async (sha256, path) => {
        downloaded.push(sha256);
        await writeFile(path, a.bytes); // the umask's mode, as the client's download writes it
        return { size: a.bytes.length };
      },
      open: async (sha256) => {
        const body = new VerifyingStream(sha256, b.bytes.length);
        pipeline(Readable.from([b.bytes]), body).catch(() => undefined);
        return { size: b.bytes.length, body };
      },
    });
    await (await cache.checkOut(a.sha256)).release();
    const progress = new BlobProgress();
    expect((await readAll(await cache.follow(b.sha256, progress), progress)).equals(b.bytes)).toBe(true);
    await progress.done;
    // A check-out waits for the streamed blob's own write into the cache (its download), however
    // long that takes, and downloads nothing more.
    await (await cache.checkOut(b.sha256)).release();
    expect(downloaded).toEqual([a.sha256]);
    const shared = join(base, 'upload-0644');
    await writeFile(shared, c.bytes, { mode: 0o644 });
    await chmod(shared, 0o644); // whatever the umask
    await cache.add(c.digest, shared);
    const own = join(base, 'upload-0600');
    await writeFile(own, d.bytes, { mode: 0o600 });
    await cache.add(d.digest, own);
    for (const { sha256 } of [a, b, c, d]) expect([sha256, await modeOf(join(dir, sha256))]).toEqual([sha256, 0o600]);
    // The module's file readable by others was copied, not linked and not changed; one already 0600 is linked.
    expect(await modeOf(shared)).toBe(0o644);
    expect((await stat(join(dir, c.sha256))).ino).not.toBe((await stat(shared)).ino);
    expect((await stat(join(dir, d.sha256))).ino).toBe((await stat(own)).ino);
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(join(dir, '.checkouts'))).toBe(0o700);
    const [ownDir] = await readdir(join(dir, '.checkouts'));
    expect(await modeOf(join(dir, '.checkouts', ownDir!))).toBe(0o700);
    // A blob an earlier version kept at 0644 is made 0600 when a cache opens the directory.
    await chmod(join(dir, a.sha256), 0o644);
    await new BlobCache({ dir, maxBytes: 10_000, download: () => Promise.reject(new Error('none')) }).open();
    expect(await modeOf(join(dir, a.sha256))).toBe(0o600);
  });

  it('shares a directory between two caches (two workers): neither removes the other’s checkouts, and an eviction by one spares what the other reads', async () => {
    const [a, b] = [blob('a'.repeat(100)), blob('b'.repeat(100))];
    const first = await cacheOf([a, b], 150);
    const outA = await first.cache.checkOut(a.sha256);
    // A process that no longer runs left its directory; one of another host is not ours to judge.
    const checkouts = join(first.dir, '.checkouts');
    const dead = `4194305.${'0'.repeat(12)}.${hostname()}`;
    const elsewhere = `4194305.${'1'.repeat(12)}.not-${hostname()}`;
    for (const name of [dead, elsewhere]) {
      await mkdir(join(checkouts, name));
      await writeFile(join(checkouts, name, 'left'), 'x');
    }
    const second = await cacheOf([a, b], 150, 0, first.dir);
    const outB = await second.cache.checkOut(a.sha256); // the second's first use
    expect(second.downloads).toEqual([]);
    expect(await readFile(outA.path, 'utf8')).toBe('a'.repeat(100));
    expect(await readdir(checkouts)).not.toContain(dead);
    expect(await readdir(checkouts)).toContain(elsewhere);
    await (await second.cache.checkOut(b.sha256)).release(); // evicts a from the directory
    expect(await readFile(outA.path, 'utf8')).toBe('a'.repeat(100));
    expect(await readFile(outB.path, 'utf8')).toBe('a'.repeat(100));
    await (await first.cache.checkOut(a.sha256)).release(); // gone from the directory: downloaded again
    expect(first.downloads).toEqual([a.sha256, a.sha256]);
    await outA.release();
    await second.cache.close();
    expect((await readdir(checkouts)).length).toBe(2); // the first's own and the other host's
    await first.cache.close();
    expect(await readdir(checkouts)).toEqual([elsewhere]);
  });

  // Round T (T1): a worker killed mid-upload left its results and archives in `.scratch` for good.
  it('names a process’s own directory by its pid, pid namespace, boot and host, and sweeps only those of this host whose namespace and boot match and whose pid no longer runs, or of an earlier boot; another pid namespace’s (a container sharing the volume and the hostname) is left', () => {
    const here = { hostname: 'box', pidNamespace: '4026531836', bootId: '0f0e0d0c-0b0a-4908-8706-050403020100' };
    const name = ownDirName(here, 42, 'ab'.repeat(6));
    expect(name).toBe(`42.${'ab'.repeat(6)}.4026531836.0f0e0d0c-0b0a-4908-8706-050403020100.box`);
    const runs = (pid: number) => pid === 42;
    const dead = ownDirName(here, 7, 'cd'.repeat(6));
    expect(staleOwnDir(name, here, runs)).toBe(false);
    expect(staleOwnDir(dead, here, runs)).toBe(true);
    // Another container's: same hostname, another pid namespace (its pid 7 is not ours to test).
    expect(staleOwnDir(ownDirName({ ...here, pidNamespace: '4026532999' }, 7, 'cd'.repeat(6)), here, runs)).toBe(false);
    expect(
      staleOwnDir(ownDirName({ ...here, pidNamespace: '4026532999' }, 42, 'cd'.repeat(6)), here, () => false),
    ).toBe(false);
    // An earlier boot of this host: stale whatever runs under that pid now.
    const before = ownDirName({ ...here, bootId: '11111111-2222-4333-8444-555555555555' }, 42, 'ef'.repeat(6));
    expect(staleOwnDir(before, here, runs)).toBe(true);
    // Another host's: never.
    expect(staleOwnDir(ownDirName({ ...here, hostname: 'other' }, 7, 'cd'.repeat(6)), here, runs)).toBe(false);
    // An earlier version's name (`<pid>.<random>.<hostname>`): its pid tested on this host, as before.
    expect(staleOwnDir(`7.${'cd'.repeat(6)}.box`, here, runs)).toBe(true);
    expect(staleOwnDir(`42.${'cd'.repeat(6)}.box`, here, runs)).toBe(false);
    expect(staleOwnDir(`7.${'cd'.repeat(6)}.other`, here, runs)).toBe(false);
    expect(staleOwnDir('not-a-process-dir', here, runs)).toBe(undefined);
  });

  it('gives each process a scratch directory of its own and, when opened, removes those of processes on this host that no longer run; a running process’s, another host’s, and files in .scratch itself (an earlier version’s, or a caller’s own scratch directory) are left', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mpd-cache-scratch-'));
    dirs.push(dir);
    const scratch = join(dir, '.scratch');
    const dead = `4194305.${'0'.repeat(12)}.${hostname()}`; // past Linux's largest pid: runs nowhere
    const elsewhere = `4194305.${'1'.repeat(12)}.not-${hostname()}`;
    const running = `${process.pid}.${'2'.repeat(12)}.${hostname()}`;
    for (const name of [dead, elsewhere, running]) {
      await mkdir(join(scratch, name), { recursive: true });
      await writeFile(join(scratch, name, `result-host.${'3'.repeat(64)}.json`), '"left"');
    }
    await writeFile(join(scratch, 'result.0123456789ab.json'), '"left by an earlier version"');
    await writeFile(join(scratch, 'dist.0123456789ab.tar'), 'an archive an earlier version left');
    const cache = new BlobCache({ dir, maxBytes: 1_000, download: () => Promise.reject(new Error('none')) });
    expect(cache.scratchDir.startsWith(`${scratch}/${process.pid}.`)).toBe(true);
    await cache.open();
    expect((await readdir(scratch)).sort()).toEqual(
      [elsewhere, running, 'result.0123456789ab.json', 'dist.0123456789ab.tar'].sort(),
    );
    expect(await readdir(join(scratch, running))).toHaveLength(1);
    // Closed, it removes its own scratch directory (what a module left there) as its checkouts.
    await mkdir(cache.scratchDir, { mode: 0o700 });
    await writeFile(join(cache.scratchDir, 'left-by-a-module.tar'), 'x');
    await cache.close();
    expect((await readdir(scratch)).filter((name) => join(scratch, name) === cache.scratchDir)).toEqual([]);
  });

  it('follow where no socket can be made (a TMPDIR too long for one): answers a growing file while the blob is downloading, reports its bytes, and a second asker waits for that one download; an abandoned download is fetched again for whoever waits', async () => {
    const tmp = process.env.TMPDIR;
    const long = await mkdtemp(join(tmpdir(), `mpd-long-${'x'.repeat(100)}-`));
    dirs.push(long);
    process.env.TMPDIR = long;
    try {
      await followIntoGrowingFiles();
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
  });

  /** The body of the test above, run with `TMPDIR` too long for a socket. */
  async function followIntoGrowingFiles(): Promise<void> {
    const a = blob('a'.repeat(3000));
    const dir = await mkdtemp(join(tmpdir(), 'mpd-cache-'));
    dirs.push(dir);
    const opened: string[] = [];
    /** The blob's bytes in two parts: the second once `release` is called. */
    let release!: () => void;
    const cache = new BlobCache({
      dir,
      maxBytes: 10_000,
      download: () => Promise.reject(new Error('follow opens a stream')),
      open: async (sha256) => {
        opened.push(sha256);
        const held = new Promise<void>((resolve) => (release = resolve));
        async function* parts() {
          yield a.bytes.subarray(0, 1000);
          await held;
          yield a.bytes.subarray(1000);
        }
        return { size: a.bytes.length, body: Readable.from(parts()) };
      },
    });
    const progress = new BlobProgress();
    const followed = await cache.follow(a.sha256, progress, new AbortController().signal);
    expect(followed.size).toBe(3000);
    expect(await progress.available(0)).toBe(1000); // readable before the download ended
    expect(await readFile(pathOf(followed), 'utf8')).toBe('a'.repeat(1000));
    const second = cache.checkOut(a.sha256);
    release();
    await progress.done;
    expect(await readFile(pathOf(followed), 'utf8')).toBe('a'.repeat(3000));
    expect(await readFile((await second).path, 'utf8')).toBe('a'.repeat(3000));
    expect(opened).toEqual([a.sha256]);

    const b = blob('b'.repeat(3000));
    const otherDir = await mkdtemp(join(tmpdir(), 'mpd-cache-'));
    dirs.push(otherDir);
    const other = new BlobCache({
      dir: otherDir,
      maxBytes: 10_000,
      download: async (_sha256, path) => {
        await writeFile(path, b.bytes);
        return { size: b.bytes.length };
      },
      // Ten bytes, then nothing until it is abandoned.
      open: async () => ({
        size: b.bytes.length,
        body: Readable.from(
          (async function* () {
            yield b.bytes.subarray(0, 10);
            await new Promise(() => undefined);
          })(),
        ),
      }),
    });
    const abandon = new AbortController();
    const refused = new BlobProgress();
    await other.follow(b.sha256, refused, abandon.signal);
    const waiting = other.checkOut(b.sha256);
    abandon.abort();
    await expect(refused.done).rejects.toThrow(/abandoned/);
    expect(await readFile((await waiting).path, 'utf8')).toBe('b'.repeat(3000));
  }

  it('follow: a small blob refused by its hash check before the broadcast listened fails its follower and a checkOut with that error, keeps nothing, and leaves no download waiting', async () => {
    const a = blob('small');
    // The same size, other bytes: the whole answer is read and refused at once (during open's awaits).
    const { cache, dir } = await streamingCache(a.bytes.length, () => [Buffer.from('SMALL')], 1_000_000);
    const follower = new BlobProgress();
    await expect(cache.follow(a.sha256, follower)).rejects.toBeInstanceOf(Error);
    await expect(follower.done).rejects.toBeInstanceOf(Error);
    await expect(within(cache.checkOut(a.sha256), 10_000)).rejects.toBeInstanceOf(Error);
    expect(cache.has(a.sha256)).toBe(false);
    expect((await filesUnder(dir)).filter((name) => !name.startsWith('.checkouts/') || name.includes('get-'))).toEqual(
      [],
    );
  });

  it('follow: a blob within the cache bound comes through a socket and is written into the cache as it flows (one GET); a follower asking after the bytes began, and a checkOut, wait for that download and read the cache file; kept once verified', async () => {
    const a = blob('e'.repeat(300_000));
    const { parts, release } = heldBack(a.bytes, 100_000);
    const { cache, dir, opened } = await streamingCache(a.bytes.length, parts, 1_000_000);
    const first = new BlobProgress();
    const one = streamOf(await cache.follow(a.sha256, first));
    const reading = readAll(one, first);
    // The first part has flowed to the consumer and into the cache's partial file.
    const partial = async () =>
      (await filesUnder(dir)).filter((name) => name.startsWith('.checkouts/') && name.includes('get-'));
    for (let tries = 0; (await partial()).length === 0 && tries < 100; tries++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await partial()).toHaveLength(1);
    // Asked after the bytes began: no share of the stream, a wait for the cache's file.
    const late = new BlobProgress();
    const asked = cache.follow(a.sha256, late);
    const checkedOut = cache.checkOut(a.sha256);
    release();
    expect((await reading).equals(a.bytes)).toBe(true);
    await first.done;
    const second = await asked;
    expect((await readFile(pathOf(second))).equals(a.bytes)).toBe(true);
    await late.done;
    expect((await readFile((await checkedOut).path)).equals(a.bytes)).toBe(true);
    expect(opened).toEqual([a.sha256]);
    expect(cache.has(a.sha256)).toBe(true);
    expect((await readFile(join(dir, a.sha256))).equals(a.bytes)).toBe(true);
    // Kept: a later follower reads the cache's file, with no download.
    const third = new BlobProgress();
    expect((await readFile(pathOf(await cache.follow(a.sha256, third)))).equals(a.bytes)).toBe(true);
    expect(opened).toHaveLength(1);
  });

  it('follow: a blob larger than the cache bound comes through a socket, verified, with no file written and nothing kept; followers asking before it flows share the one download', async () => {
    const a = blob('a'.repeat(300_000));
    /** Files under the cache's directory while the bytes flowed (the first part read, the second held back). */
    let duringDownload: string[] | undefined;
    /** The bytes past the first part: held back until released (once: later downloads pass at once). */
    const { parts, release } = heldBack(a.bytes, 100_000);
    const { cache, dir, opened } = await streamingCache(a.bytes.length, parts, 100_000);
    const [first, second] = [new BlobProgress(), new BlobProgress()];
    const [one, two] = await Promise.all([cache.follow(a.sha256, first), cache.follow(a.sha256, second)]);
    expect(one.size).toBe(300_000);
    const reads = [readAll(one, first), readAll(two, second)];
    await new Promise((resolve) => setTimeout(resolve, 100));
    duringDownload = await filesUnder(dir);
    release();
    for (const read of reads) expect((await read).equals(a.bytes)).toBe(true);
    await Promise.all([first.done, second.done]);
    expect(opened).toEqual([a.sha256]);
    expect(duringDownload).toEqual([]);
    expect(await filesUnder(dir)).toEqual([]);
    expect(cache.has(a.sha256)).toBe(false);
    // Not kept: the next follower downloads it again; a blob within the bound is kept as before.
    const again = new BlobProgress();
    const third = await cache.follow(a.sha256, again);
    expect((await readAll(third, again)).equals(a.bytes)).toBe(true);
    expect(opened).toHaveLength(2);
  });

  it('follow: a consumer of a streamed blob going away while its socket is full does not stall the others', async () => {
    const a = blob('b'.repeat(8 * 1024 * 1024));
    const { cache } = await streamingCache(
      a.bytes.length,
      function* () {
        for (let at = 0; at < a.bytes.length; at += 65_536) yield a.bytes.subarray(at, at + 65_536);
      },
      100_000,
    );
    const [first, second] = [new BlobProgress(), new BlobProgress()];
    const [one, two] = await Promise.all([cache.follow(a.sha256, first), cache.follow(a.sha256, second)]);
    // The first consumer connects and reads nothing: its socket fills and the download waits for it.
    const stuck = createConnection(streamOf(one).socket);
    stuck.write(streamOf(one).token);
    stuck.pause();
    const read = readAll(two, second);
    await new Promise((resolve) => setTimeout(resolve, 500));
    stuck.destroy();
    const whole = await Promise.race([
      read,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the other consumer stalled after the full one went away')), 10_000),
      ),
    ]);
    expect(whole.equals(a.bytes)).toBe(true);
  });

  it('follow: a consumer of a streamed blob that gives up after connecting leaves the others theirs: the bytes flow once every other consumer connected, to each of them whole', async () => {
    const a = blob('c'.repeat(300_000));
    const { cache, opened } = await streamingCache(
      a.bytes.length,
      () => [a.bytes.subarray(0, 100_000), a.bytes.subarray(100_000)],
      100_000,
    );
    const [first, second] = [new BlobProgress(), new BlobProgress()];
    const [leaving, staying] = [new AbortController(), new AbortController()];
    const [one, two] = await Promise.all([
      cache.follow(a.sha256, first, leaving.signal),
      cache.follow(a.sha256, second, staying.signal),
    ]);
    // The first connects (and is heard), then gives up before the second connected.
    const gone = readAll(one, first);
    gone.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    leaving.abort();
    await expect(gone).rejects.toThrow(/abandoned|ECONNRESET|EPIPE|ended after/);
    const whole = await Promise.race([
      readAll(two, second),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the second consumer got nothing')), 10_000)),
    ]);
    expect(whole.equals(a.bytes)).toBe(true);
    await expect(second.done).resolves.toBeUndefined();
    expect(opened).toEqual([a.sha256]);
  });

  it('checkOut of a blob being streamed (not kept) downloads it at once rather than after the stream ends', async () => {
    const a = blob('d'.repeat(300_000));
    // The rest only once the checkOut is answered.
    const { parts, release } = heldBack(a.bytes, 1000);
    const { cache, downloads } = await streamingCache(a.bytes.length, parts, 100_000, { whole: a.bytes });
    const progress = new BlobProgress();
    const streamed = streamOf(await cache.follow(a.sha256, progress));
    const reading = readAll(streamed, progress);
    const out = await Promise.race([
      cache.checkOut(a.sha256),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the checkOut waited for the stream')), 5_000),
      ),
    ]);
    expect((await readFile(out.path)).equals(a.bytes)).toBe(true);
    expect(downloads).toEqual([a.sha256]);
    release();
    expect((await reading).equals(a.bytes)).toBe(true);
  });

  it.each([
    ['cannot be written (ENOTDIR: a file where its directory was)', 'write'],
    ['cannot be renamed into place (EISDIR: a directory where the blob goes)', 'rename'],
  ] as const)(
    'follow: a blob streamed verified whose cache file %s is not kept: its consumer has it whole, a checkOut and a late follower waiting for that download download it again rather than hear the write’s error, and the cache warns once',
    async (_kind, failing) => {
      const a = blob('f'.repeat(300_000));
      // Two parts first (the verifying stream holds its last chunk back until the next comes), then the rest.
      const { parts: rest, release } = heldBack(a.bytes.subarray(100_000), 100_000);
      async function* parts() {
        yield a.bytes.subarray(0, 100_000);
        yield* rest();
      }
      const warnings: Array<Record<string, unknown>> = [];
      // The file system's failure, made for real (the tests may run as root: no read-only
      // directory) and undone when the cache warns, so the download again succeeds.
      let undo = () => {};
      const { cache, dir, opened, downloads } = await streamingCache(a.bytes.length, parts, 1_000_000, {
        whole: a.bytes,
        logger: {
          warn: (fields: Record<string, unknown>) => {
            warnings.push(fields);
            undo();
          },
        } as BlobCacheOptions['logger'],
      });
      await cache.open();
      if (failing === 'write') {
        const own = join(dir, '.checkouts', (await readdir(join(dir, '.checkouts')))[0]!);
        await rm(own, { recursive: true });
        await writeFile(own, '');
        undo = () => {
          rmSync(own);
          mkdirSync(own);
        };
      } else {
        await mkdir(join(dir, a.sha256));
        undo = () => rmSync(join(dir, a.sha256), { recursive: true });
      }
      const first = new BlobProgress();
      const one = streamOf(await cache.follow(a.sha256, first));
      let began!: () => void;
      const flowing = new Promise<void>((resolve) => (began = resolve));
      const reading = (async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of readStreamed(one, first)) {
          chunks.push(chunk as Buffer);
          began();
        }
        return Buffer.concat(chunks);
      })();
      await within(flowing, 10_000);
      // Both wait for the download into the cache (the follower asked after the bytes began).
      const checkedOut = cache.checkOut(a.sha256);
      const late = new BlobProgress();
      const asked = cache.follow(a.sha256, late);
      release();
      expect((await reading).equals(a.bytes)).toBe(true);
      await expect(first.done).resolves.toBeUndefined();
      const out = await within(checkedOut, 10_000);
      expect((await readFile(out.path)).equals(a.bytes)).toBe(true);
      expect((await readFile(pathOf(await within(asked, 10_000)))).equals(a.bytes)).toBe(true);
      await expect(late.done).resolves.toBeUndefined();
      expect(opened).toEqual([a.sha256]);
      expect(downloads).toEqual([a.sha256]); // once again, for both
      expect(warnings).toEqual([
        expect.objectContaining({ sha256: a.sha256, err: expect.objectContaining({ code: expect.any(String) }) }),
      ]);
      expect(cache.has(a.sha256)).toBe(true);
      await out.release();
      expect((await filesUnder(dir)).filter((name) => name.includes('get-'))).toEqual([]);
    },
  );

  it.each([
    ['larger than the cache bound (streamed only)', 0],
    ['within the cache bound (streamed and written into the cache)', 1_000_000],
  ])(
    'follow: a streamed blob %s that does not hash to its name ends its reader with the error before the reader has it whole, fails whoever waits for that download, and leaves nothing',
    async (_kind, maxBytes) => {
      const a = blob('a'.repeat(300_000));
      const tampered = Buffer.from(a.bytes);
      tampered[tampered.length - 1] = 0x62;
      const { cache, dir } = await streamingCache(
        tampered.length,
        () => [tampered.subarray(0, 100_000), tampered.subarray(100_000)],
        maxBytes,
      );
      const progress = new BlobProgress();
      const followed = await cache.follow(a.sha256, progress);
      // One waiting for the download into the cache hears its error (a streamed-only one is not waited for).
      const waiting = maxBytes > 0 ? cache.checkOut(a.sha256) : undefined;
      const received: Buffer[] = [];
      const reading = (async () => {
        for await (const chunk of readStreamed(streamOf(followed), progress)) received.push(chunk as Buffer);
      })();
      await expect(reading).rejects.toBeInstanceOf(BlobDamagedError);
      await expect(progress.done).rejects.toBeInstanceOf(BlobDamagedError);
      if (waiting) await expect(waiting).rejects.toBeInstanceOf(BlobDamagedError);
      expect(Buffer.concat(received).length).toBeLessThan(tampered.length);
      expect(await filesUnder(dir)).toEqual([]);
      expect(cache.has(a.sha256)).toBe(false);
    },
  );

  it('follow: a connection that presents no joined consumer’s token gets nothing and takes no consumer’s place; one asking after the bytes flow gets its own download', async () => {
    const a = blob('a'.repeat(300_000));
    const { cache, opened } = await streamingCache(
      a.bytes.length,
      () => [a.bytes.subarray(0, 1000), a.bytes.subarray(1000)],
      0,
    );
    const progress = new BlobProgress();
    const followed = streamOf(await cache.follow(a.sha256, progress));
    // Strangers connect first: one says nothing, one presents a token no consumer was given.
    const strangers = ['', 'f'.repeat(followed.token.length)].map(async (token) => {
      const stray = createConnection(followed.socket);
      await new Promise((resolve) => stray.once('connect', resolve));
      stray.write(token);
      let bytes = 0;
      stray.on('data', (chunk: Buffer) => (bytes += chunk.length));
      await new Promise((resolve) => stray.on('close', resolve).on('error', () => undefined));
      return bytes;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await readAll(followed, progress)).equals(a.bytes)).toBe(true);
    expect(await Promise.all(strangers)).toEqual([0, 0]);
    const late = new BlobProgress();
    expect((await readAll(await cache.follow(a.sha256, late), late)).equals(a.bytes)).toBe(true);
    expect(opened).toHaveLength(2);
  });
});

/** `promise`, or a rejection naming the wait after `ms` (so a hang fails the test instead of timing it out). */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms).unref()),
  ]);
}
