/**
 * The worker's cache of artifact blobs by SHA-256: a directory of files named by their hash,
 * bounded in bytes, least recently used evicted first. A blob asked for while it is being
 * downloaded is downloaded once: every asker shares or waits for the same download
 * ({@link BlobCache.follow} streams it to its first consumers as it is written into the cache).
 *
 * Several processes may share one directory: each checks out and downloads into a directory of
 * its own under `.checkouts` ({@link ownDirName}), removes only that one and those of
 * processes on its host (same pid namespace and boot) that no longer run, and reads blobs through hard links of its own, so
 * another process evicting (unlinking) a blob never removes a file being read. Each process
 * bounds only the blobs it knows of: processes sharing a directory may together hold more than
 * one `maxBytes`.
 *
 * Blobs may hold secrets (a module's build output, a result): the cache keeps them as the store
 * does, readable by the worker's user only: blob files 0600 ({@link OWNER_FILE}), and the
 * directories it makes 0700 ({@link OWNER_DIR}; a `dir` that exists keeps its mode).
 */
import { randomBytes } from 'node:crypto';
import { constants, createWriteStream, readFileSync, readlinkSync } from 'node:fs';
import {
  chmod,
  copyFile,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  stat,
  unlink,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { digestFile } from '@mpd/client';
import { LIMITS } from '@mpd/contract';
import { makeDirectory } from '@mpd/server-kit';
import type { Logger } from 'pino';
import { BlobBroadcast, DownloadAbandonedError, type StreamedBlob } from './blob-broadcast.js';
import type { BlobFollower } from './blob-progress.js';
import { copyHostFile } from '../executor/scratch-file.js';
import type { Digest } from './module-artifacts.js';
import { isOwnDigestOf } from './own-digest.js';
import { ReportingFileWriter } from './reporting-file-writer.js';

export { DownloadAbandonedError } from './blob-broadcast.js';

/**
 * Downloads blob `sha256` to `path` (temp + rename: `path` is the whole verified blob or nothing)
 * and answers its size in bytes, as verified (the cache counts it without a stat of the file).
 */
export type BlobDownloader = (sha256: string, path: string) => Promise<{ size: number }>;

/**
 * Opens blob `sha256` as a stream (`ArtifactClient.get`): its size, and its bytes as they
 * arrive, erroring rather than ending when they do not hash to `sha256`.
 */
export type BlobOpener = (sha256: string) => Promise<{ size: number; body: Readable }>;

/** Bytes written to a followed download's file per write at most (and so between two {@link BlobFollower.written} calls). */
const FOLLOW_WRITE_BYTES = 1024 * 1024;

/** Options of {@link BlobCache}. */
export interface BlobCacheOptions {
  /** The cache's directory (made at first use). */
  dir: string;
  /** The most bytes of blobs kept; past it the least recently used are removed. */
  maxBytes: number;
  /** How a missing blob is fetched (`ArtifactClient.getToFile`). */
  download: BlobDownloader;
  /**
   * How a missing blob is fetched as a stream (`ArtifactClient.get`), for {@link BlobCache.follow};
   * without it, `follow` downloads with `download` and reports the blob once it is in.
   */
  open?: BlobOpener;
  /**
   * Where a blob the cache could not keep is told (`warn`, once per blob not kept: its file's
   * write or rename failed, e.g. `ENOSPC`), the download itself having gone well.
   * @default none: not logged
   */
  logger?: Pick<Logger, 'warn'> | undefined;
}

/**
 * A blob {@link BlobCache.follow} answers: a file of the caller's own (released when done), or a
 * socket its verified bytes come through once. (The worker passes either on to a module host as a
 * `FollowedBlob` of `module-artifacts.ts`, a file's `release` left behind.)
 */
export type FollowedCacheBlob = CheckedOutBlob | StreamedBlob;

/** A blob taken out of the cache for reading: a hard link of its own, so eviction cannot remove it meanwhile. */
export interface CheckedOutBlob {
  /** A file only this caller uses; it survives the blob's eviction. */
  path: string;
  size: number;
  /**
   * Where its bytes came from for this caller: `cache` the cache held it when asked (no
   * download); `store` downloaded from the store, by this caller or by another one it waited for.
   */
  source: 'cache' | 'store';
  /** Removes {@link CheckedOutBlob.path}. */
  release(): Promise<void>;
}

/** The mode of the cache's blob files and partial downloads: the worker's user only, as the store's blobs (`blob-store.ts`). */
export const OWNER_FILE = 0o600;
/** The mode of the directories the cache makes (its own, `.checkouts`, a process's there, `.scratch`). */
export const OWNER_DIR = 0o700;
/** Whether a file's mode lets others than its owner in (group or other bits). */
const sharedMode = (mode: number) => (mode & 0o077) !== 0;

/** Where checked-out links go, inside the cache's directory (same filesystem, so links work): one directory per process. */
const CHECKOUTS = '.checkouts';
/** An earlier version's name of a process's directory under {@link CHECKOUTS}: `<pid>.<random>.<hostname>`. */
const OWN_DIR = /^(\d+)\.[0-9a-f]{12}\.(.+)$/;
/** A process's directory under {@link CHECKOUTS} or {@link SCRATCH_DIR}: see {@link ownDirName}. */
const OWN_DIR_NAMESPACED = /^(\d+)\.[0-9a-f]{12}\.(\d+|none)\.([0-9a-f-]{36}|none)\.(.+)$/;

/**
 * Where a process runs, as far as its pids mean anything: its host's name, its pid namespace
 * (the inode of `/proc/self/ns/pid`) and its boot (`/proc/sys/kernel/random/boot_id`); `none`
 * where the system does not say (not Linux).
 */
export interface ProcessPlace {
  hostname: string;
  pidNamespace: string;
  bootId: string;
}

/** This process's {@link ProcessPlace}. */
export function processPlace(): ProcessPlace {
  let pidNamespace = 'none';
  let bootId = 'none';
  try {
    pidNamespace = /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? 'none';
  } catch {
    // not Linux, or no /proc
  }
  try {
    const read = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(read)) bootId = read;
  } catch {
    // not Linux, or no /proc
  }
  return { hostname: hostname(), pidNamespace, bootId };
}

/**
 * A process's own directory's name under `.checkouts` and `.scratch`:
 * `<pid>.<random>.<pid namespace>.<boot id>.<hostname>` (`random`: 12 hex digits). Round U (U1):
 * with `<pid>.<random>.<hostname>` only, containers sharing a cache volume and a hostname but
 * not a pid namespace swept each other's live directories (the other's pid runs nowhere here).
 */
export function ownDirName(place: ProcessPlace, pid: number, random: string): string {
  return `${pid}.${random}.${place.pidNamespace}.${place.bootId}.${place.hostname}`;
}

/**
 * Whether the process directory `name` (under `.checkouts` or `.scratch`) is stale, seen from
 * `here`: of this host, and of an earlier boot (no process of it runs), or of this boot and pid
 * namespace with a pid that no longer runs (`isRunning`). Another host's or another pid
 * namespace's is never (its pids are not ours to test). An earlier version's name
 * (`<pid>.<random>.<hostname>`): of this host with a pid that no longer runs, as before.
 * @returns undefined when `name` is no process directory's
 */
export function staleOwnDir(
  name: string,
  here: ProcessPlace,
  isRunning: (pid: number) => boolean,
): boolean | undefined {
  const namespaced = OWN_DIR_NAMESPACED.exec(name);
  if (namespaced) {
    const [, pid, pidNamespace, bootId, host] = namespaced;
    if (host !== here.hostname) return false;
    if (bootId !== here.bootId) return true;
    return pidNamespace === here.pidNamespace && !isRunning(Number(pid));
  }
  const match = OWN_DIR.exec(name);
  if (!match) return undefined;
  return match[2] === here.hostname && !isRunning(Number(match[1]));
}

/** Whether process `pid` (on this host) runs: signal 0 tests without sending; EPERM means it runs as another user. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
/**
 * Where modules pack archives before upload and module hosts write results that go by reference,
 * inside the cache's directory (so the cache can link them): one directory per process, as
 * {@link CHECKOUTS} ({@link BlobCache.scratchDir}).
 */
export const SCRATCH_DIR = '.scratch';

export class BlobCache {
  /** Blobs held, by hash: size in bytes; a Map keeps insertion order, so re-inserting marks as most recent. */
  private readonly entries = new Map<string, number>();
  private readonly downloads = new Map<string, Promise<void>>();
  /** Downloads being streamed (or about to be, once their size is known), by hash: followers may join them until their bytes flow. */
  private readonly streams = new Map<string, Promise<BlobBroadcast | undefined>>();
  private totalBytes = 0;
  private ready: Promise<void> | undefined;
  /**
   * This cache's own directory under {@link CHECKOUTS} (0700, made by {@link BlobCache.open}): its
   * checkouts and partial downloads, and the worker's own copies of a module host's files
   * (`WorkerBlobs.putOpened`, the upload by hash of a host's archive): a directory no host is
   * given, so that a copy the worker checked is not where a module swaps files (round T, review U1).
   */
  readonly ownDir: string;
  /** Where this process runs (its directories' names: {@link ownDirName}). */
  private readonly place: ProcessPlace;
  /**
   * This process's scratch directory, `<dir>/.scratch/<own>` ({@link ownDirName}; made 0700 by
   * its first user: a module's packer, a host's result file): the worker's modules pack their archives there and its module hosts write
   * their results that go by reference there (`WorkerArtifacts.scratchDir`). Of its own, so that
   * what a worker killed mid-upload left there (archives, `result-host.*`, `result.*`, copies) is
   * removed when a worker next opens the cache, as its checkouts are, without touching the files
   * of another worker sharing the directory.
   */
  readonly scratchDir: string;

  constructor(private readonly options: BlobCacheOptions) {
    this.place = processPlace();
    const own = ownDirName(this.place, process.pid, randomBytes(6).toString('hex'));
    this.ownDir = join(options.dir, CHECKOUTS, own);
    this.scratchDir = join(options.dir, SCRATCH_DIR, own);
  }

  /** Bytes of blobs held now. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Whether the cache holds blob `sha256`. */
  has(sha256: string): boolean {
    return this.entries.has(sha256);
  }

  /**
   * Makes the cache's directory and reads what is in it, as the first use would: the worker
   * calls it when it starts, so a `--cache-dir` it cannot use (a file in its place, no
   * permission) stops it there rather than failing every module that moves an artifact.
   * @throws the file system's error (`ENOTDIR`, `EACCES`, …)
   */
  async open(): Promise<void> {
    await this.init();
  }

  /**
   * Reads what a previous run left (blobs by name), and removes the checkouts, partial downloads and scratch files of processes on this host that no
   * longer run (another host's, in a directory shared
   * between machines or containers, are left: its pids are not ours to test).
   */
  private init(): Promise<void> {
    return (this.ready ??= (async () => {
      const checkouts = join(this.options.dir, CHECKOUTS);
      await makeDirectory(this.options.dir, OWNER_DIR);
      for (const made of [checkouts, this.ownDir])
        await mkdir(made, { mode: OWNER_DIR }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
      // The scratch directory is made by its first user (0700, with its parent), not here.
      const scratch = join(this.options.dir, SCRATCH_DIR);
      // Checkouts and scratch directories of processes on this host that no longer run. A name of
      // no process's directory under `.checkouts` is a previous version's; in `.scratch` it is
      // left: a caller may have chosen `.scratch` itself as its scratch directory, its files in use.
      for (const [parent, own] of [
        [checkouts, this.ownDir],
        [scratch, this.scratchDir],
      ] as const)
        for (const name of await readdir(parent).catch(() => [] as string[])) {
          const stale = staleOwnDir(name, this.place, isRunning) ?? parent === checkouts;
          if (stale && join(parent, name) !== own) await rm(join(parent, name), { recursive: true, force: true });
        }
      for (const name of await readdir(this.options.dir)) {
        const path = join(this.options.dir, name);
        if (LIMITS.artifact.sha256.pattern.test(name)) {
          const found = await stat(path);
          if (!found.isFile()) continue;
          // A blob an earlier version kept readable by others (0644): made the worker's user's only.
          if (sharedMode(found.mode)) await chmod(path, OWNER_FILE);
          this.remember(name, found.size);
        } else if (name !== CHECKOUTS && name !== SCRATCH_DIR) {
          await rm(path, { force: true, recursive: true });
        }
      }
      await this.evict();
    })());
  }

  private remember(sha256: string, size: number): void {
    const previous = this.entries.get(sha256);
    if (previous !== undefined) {
      this.entries.delete(sha256);
      this.totalBytes -= previous;
    }
    this.entries.set(sha256, size);
    this.totalBytes += size;
  }

  /** Removes least recently used blobs until the total is within `maxBytes` (`keep` stays whatever its size). */
  private async evict(keep?: string): Promise<void> {
    for (const [sha256, size] of this.entries) {
      if (this.totalBytes <= this.options.maxBytes) return;
      if (sha256 === keep) continue;
      this.entries.delete(sha256);
      this.totalBytes -= size;
      await unlink(join(this.options.dir, sha256)).catch(() => undefined);
    }
  }

  /**
   * Blob `sha256`, downloaded unless the cache has it (once, however many ask at the same
   * time), checked out as a link of the caller's own. Release it when done.
   * @throws what the download throws (the blob missing from the store, damaged, a lost connection)
   */
  async checkOut(sha256: string): Promise<CheckedOutBlob> {
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    await this.init();
    let source: CheckedOutBlob['source'] = 'cache';
    for (;;) {
      const size = this.entries.get(sha256);
      if (size !== undefined) {
        this.remember(sha256, size);
        const path = join(this.ownDir, `${sha256}.${randomBytes(6).toString('hex')}`);
        try {
          await link(join(this.options.dir, sha256), path);
        } catch (error) {
          // Evicted between the two lines by another caller: fetch it again.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
            this.forget(sha256);
            continue;
          }
          throw error;
        }
        return { path, size, source, release: () => unlink(path).catch(() => undefined) };
      }
      source = 'store';
      let download = this.downloads.get(sha256);
      if (download === undefined) {
        download = this.fetch(sha256).finally(() => this.downloads.delete(sha256));
        this.downloads.set(sha256, download);
      }
      try {
        await download;
      } catch (error) {
        // Given up by the one following it (its archive refused), or streamed to its consumers but
        // not kept (the cache's file failed): fetched again for this caller.
        if (!(error instanceof DownloadAbandonedError)) throw error;
      }
    }
  }

  /**
   * Blob `sha256` for a consumer that reads it as it downloads. When the cache lacks it and no one
   * is downloading it, the download starts and the answer comes as soon as its size is known: a
   * socket (`{ socket, size, token }`, {@link BlobBroadcast}) that passes on the bytes as they
   * arrive. Another follower asking before the bytes begin to flow shares it. A blob within
   * `maxBytes` is written into the cache's file at the same time (a tee: one read of the network)
   * and kept once verified, so a follower asking after the bytes began waits for that download and
   * reads the cache's file (a {@link BlobCache.checkOut} reported whole at once), as does one asking
   * when the cache holds the blob; when that file fails (a full disk) while the stream went well,
   * the blob is not kept and those waiting download it again (`logger` hears it). A larger blob is not kept: no file is written, one asking later
   * gets a download of its own. Where no socket can be made here, the answer is a file of the
   * caller's own that is still growing (a hard link to the partial download, which becomes the
   * cached blob's link once verified; `follower` hears of each write; reading the file up to the
   * reported bytes reads what the download wrote, from the page cache). Either way `follower`
   * hears of the end. A blob's last chunk is passed on (and written) only once all its bytes hash
   * to `sha256`, so a damaged blob never reaches its full size, and `ended(error)` says so.
   * Release a file when done.
   * @param signal aborting it gives this follower up; a download no follower is left for is
   *   abandoned (its partial file removed; others waiting for the same blob download it again)
   * @throws what opening the download throws (the blob missing from the store, refused)
   */
  async follow(sha256: string, follower: BlobFollower, signal?: AbortSignal): Promise<FollowedCacheBlob> {
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    await this.init();
    // A streamed download of it whose bytes have not begun to flow: joined, so downloaded once.
    // (Awaited only when there is one: from here to the new download's entries nothing may wait,
    // or two callers would both start one.)
    const pending = this.streams.get(sha256);
    const streaming = pending && (await pending);
    const joined = streaming?.join(follower, signal);
    if (joined) return joined;
    const openBlob = this.options.open;
    // One into the cache's file (a streamed one too late to join is no longer there: this caller gets its own).
    if (openBlob === undefined || this.entries.has(sha256) || this.downloads.has(sha256)) {
      const blob = await this.checkOut(sha256);
      follower.written(blob.size);
      follower.ended();
      return blob;
    }
    const random = randomBytes(6).toString('hex');
    const staged = join(this.ownDir, `get-${sha256}.${random}`);
    const path = join(this.ownDir, `${sha256}.${random}`);
    let answer!: (blob: FollowedCacheBlob) => void;
    const answered = new Promise<FollowedCacheBlob>((resolve) => (answer = resolve));
    let decided!: (broadcast: BlobBroadcast | undefined) => void;
    const streamed = new Promise<BlobBroadcast | undefined>((resolve) => (decided = resolve));
    let notKept!: () => void;
    const streamedOnly = new Promise<void>((resolve) => (notKept = resolve));
    /** What a `checkOut` waits for: the blob in the cache (or the download failed), or the download streamed only. */
    let cached: Promise<void> | undefined;
    const download = (async () => {
      let opened: { size: number; body: Readable };
      try {
        opened = await openBlob(sha256);
      } catch (error) {
        follower.ended(error as Error);
        throw error;
      }
      const { size, body } = opened;
      // Streamed to its consumers as it arrives (a socket each: no file for the host to read
      // behind the download, no progress messages) and, unless it is larger than the cache's
      // bound, written into the cache's file at the same time: issue 13 asks that a worker keep
      // a bounded cache of blobs by hash, so later consumers there do not download again and
      // concurrent downloads of one blob are made once. (Round G streamed only, with no cache
      // file: benchmark 6's paired median 0.73 against 0.56, docs/performance.md "Artifact
      // throughput: round G", but a consumer asking after the bytes began to flow, or later, downloaded the blob
      // again. A blob over the bound, which the cache could not keep anyway, still goes that way.
      // The tee measured 0.59 against the growing cache file's 0.55, docs/performance.md "Artifact
      // throughput: stream and keep": the cache file's write is what it costs.)
      const keep = size <= this.options.maxBytes;
      let copy: Writable | undefined;
      const broadcast = await BlobBroadcast.open(body, size, {
        ...(keep && {
          copyTo: () =>
            (copy = createWriteStream(staged, { flags: 'wx', mode: OWNER_FILE, highWaterMark: FOLLOW_WRITE_BYTES })),
        }),
      }).catch((error: Error) => {
        body.destroy();
        follower.ended(error);
        throw error;
      });
      if (broadcast !== undefined) {
        decided(broadcast);
        const joined = broadcast.join(follower, signal);
        if (joined === undefined) {
          // It failed while it was being opened (a small blob's answer read and refused by its
          // hash check before the broadcast listened; found in review, round H): heard here.
          const error = await broadcast.done.then(
            () => new Error(`the download of blob ${sha256} ended before it was joined`),
            (reason: Error) => reason,
          );
          if (copy !== undefined) await finished(copy).catch(() => undefined);
          await unlink(staged).catch(() => undefined);
          follower.ended(error);
          throw error;
        }
        answer(joined);
        if (copy === undefined) {
          // Nothing of it will be kept: whoever waits to check the blob out downloads it now, not
          // once the stream ended (it is no longer the blob's download into the cache).
          if (this.downloads.get(sha256) === cached) this.downloads.delete(sha256);
          notKept();
          // Its followers hear how it ended.
          await broadcast.done.catch(() => undefined);
          return;
        }
        // Renamed into the cache only once the download ended verified (its last chunk is passed
        // on only then) and every byte is in the file. Abandoned by every consumer, or failed:
        // the file is removed (those waiting to check it out download it again, or hear why).
        const file = copy;
        const removeCopy = async () => {
          file.destroy();
          await finished(file).catch(() => undefined);
          await unlink(staged).catch(() => undefined);
        };
        try {
          await broadcast.done;
        } catch (error) {
          await removeCopy();
          throw error;
        }
        try {
          await finished(copy);
          await this.install(sha256, staged, size);
        } catch (error) {
          // The blob was good and its consumers have it; only the cache's file of it failed (a
          // full disk, a write or rename refused). Not the download's failure: those waiting to
          // check it out download it again (or stream it) rather than hear the write's error.
          await removeCopy();
          this.options.logger?.warn(
            { err: error, sha256 },
            'could not keep a downloaded artifact blob in the cache; whoever waits for it downloads it again',
          );
          throw new DownloadAbandonedError(`blob ${sha256} was streamed but not kept: ${(error as Error).message}`);
        }
        return;
      }
      // No socket here (a `TMPDIR` too long for one): a file the caller reads as it grows.
      decided(undefined);
      const abandon = () => body.destroy(new DownloadAbandonedError(`the download of blob ${sha256} was abandoned`));
      if (signal?.aborted) abandon();
      signal?.addEventListener('abort', abandon, { once: true });
      let handle: FileHandle | undefined;
      try {
        handle = await open(staged, 'wx', OWNER_FILE);
        await link(staged, path);
        answer({ path, size, source: 'store', release: () => unlink(path).catch(() => undefined) });
        await pipeline(body, new ReportingFileWriter(handle, (bytes) => follower.written(bytes)));
        await handle.close();
        handle = undefined;
        await this.install(sha256, staged, size);
        follower.ended();
      } catch (error) {
        body.destroy();
        await handle?.close().catch(() => undefined);
        await unlink(staged).catch(() => undefined);
        follower.ended(error as Error);
        throw error;
      } finally {
        signal?.removeEventListener('abort', abandon);
      }
    })().finally(() => {
      decided(undefined);
      if (this.downloads.get(sha256) === cached) this.downloads.delete(sha256);
      if (this.streams.get(sha256) === streamed) this.streams.delete(sha256);
    });
    cached = Promise.race([download, streamedOnly]);
    cached.catch(() => undefined); // heard by whoever waits for it (this caller hears `download`)
    this.downloads.set(sha256, cached);
    this.streams.set(sha256, streamed);
    // Failing before it is answered (the blob missing from the store, refused): the caller hears it here.
    return await Promise.race([answered, download.then(() => answered)]);
  }

  private forget(sha256: string): void {
    const size = this.entries.get(sha256);
    if (size === undefined) return;
    this.entries.delete(sha256);
    this.totalBytes -= size;
  }

  /** Downloads into this cache's own directory (so no other process's start removes the partial file), then renames into place. */
  private async fetch(sha256: string): Promise<void> {
    const staged = join(this.ownDir, `get-${sha256}.${randomBytes(6).toString('hex')}`);
    const { size } = await this.options.download(sha256, staged);
    // The downloader's file is made with the umask's mode (0644); only ever seen in this cache's own 0700 directory.
    await chmod(staged, OWNER_FILE);
    await this.install(sha256, staged, size);
  }

  /** Renames the complete file `from` (of `size` bytes) into place as blob `sha256`, counts it, and evicts past the cache's bound. */
  private async install(sha256: string, from: string, size: number): Promise<void> {
    await rename(from, join(this.options.dir, sha256));
    this.remember(sha256, size);
    await this.evict(sha256);
  }

  /**
   * Adds the file at `path` as the blob `digest` names: linked when it is on the cache's
   * filesystem, copied otherwise. A module that uploads an artifact leaves it here, so a consumer
   * on the same worker does not download it. A file readable by others than its owner is copied
   * (the copy made 0600) rather than linked: a link is the same inode, and a chmod of it would
   * change the caller's own file. (The worker's archives and results are made 0600, so theirs are
   * linked.) A `digest` the worker's own hashing made of this very file (own-digest.ts) is taken
   * as it is; any other is checked on the file kept (the link or copy in the cache's own
   * directory): hashed, and refused when it is not the digest's bytes (round V, V2: the caller's
   * hash was trusted, so a digest naming another blob put these bytes under that blob's name).
   * @throws an Error naming both hashes when the file is not `digest`'s bytes (nothing kept); a
   *   `sha256` that is not one: TypeError
   */
  async add(digest: Digest, path: string): Promise<void> {
    const { sha256 } = digest;
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    await this.init();
    if (this.entries.has(sha256)) return;
    const own = isOwnDigestOf(digest, path);
    const temporary = join(this.ownDir, `add-${randomBytes(6).toString('hex')}`);
    const linked = await link(path, temporary).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EXDEV') throw error;
        return false;
      },
    );
    if (!linked || sharedMode((await stat(temporary)).mode)) {
      if (linked) await unlink(temporary);
      await copyFile(path, temporary, constants.COPYFILE_EXCL);
      await chmod(temporary, OWNER_FILE);
    }
    if (!own) {
      const found = await digestFile(temporary);
      if (found.sha256 !== sha256 || found.size !== digest.size) {
        await unlink(temporary).catch(() => undefined);
        throw new Error(
          `${path}: the file's bytes hash to ${found.sha256} (${found.size} bytes), not to blob ${sha256} (${digest.size} bytes): not kept in the cache`,
        );
      }
    }
    await this.install(sha256, temporary, (await stat(temporary)).size);
  }

  /**
   * Adds blob `sha256` of `size` bytes from a file a module host wrote (its archive at `path`,
   * which the worker opened once as `handle` and checked, then uploaded through that handle), so
   * that nothing is taken by the host's path but the very file the worker read: `path` is linked
   * (a link does not follow a symbolic link) and kept only when the link is `handle`'s own file
   * (same device and inode), a regular file of `size` bytes readable by its owner only. Else (the
   * host swapped another file, a link or a FIFO in at `path` since, or the file is on another
   * filesystem, or readable by others) the blob is copied from `handle` and kept only when the
   * copy's bytes hash to `sha256`.
   * @throws an Error when the handle's bytes no longer hash to `sha256` (the file changed after
   *   its upload): nothing is kept; a `sha256` that is not one: TypeError
   */
  async addOpened(sha256: string, path: string, handle: FileHandle, size: number): Promise<void> {
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    await this.init();
    if (this.entries.has(sha256)) return;
    const temporary = join(this.ownDir, `add-${randomBytes(6).toString('hex')}`);
    const own = await handle.stat();
    const linked = await link(path, temporary).then(
      () => true,
      () => false, // gone, another filesystem, refused: copied from the handle below
    );
    if (linked) {
      const found = await lstat(temporary);
      if (
        found.isFile() &&
        found.ino === own.ino &&
        found.dev === own.dev &&
        found.size === size &&
        !sharedMode(found.mode)
      ) {
        await this.install(sha256, temporary, size);
        return;
      }
      await unlink(temporary);
    }
    const copied = await copyHostFile(handle, size, this.ownDir, 'add', 'blob');
    if (copied.digest.sha256 !== sha256) {
      await unlink(copied.path).catch(() => undefined);
      throw new Error(
        `the archive changed after its upload (its bytes hash to ${copied.digest.sha256}, not ${sha256}): not kept in the cache`,
      );
    }
    await this.install(sha256, copied.path, size);
  }

  /**
   * Removes this cache's own checkouts directory and its scratch directory (blobs stay); a
   * checkout not yet released, and what a module left in the scratch directory, are gone with them.
   */
  async close(): Promise<void> {
    if (this.ready === undefined) return;
    await this.ready.catch(() => undefined);
    await rm(this.ownDir, { recursive: true, force: true });
    await rm(this.scratchDir, { recursive: true, force: true });
  }
}
