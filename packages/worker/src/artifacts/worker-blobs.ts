import { createHash, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type ArtifactClient, DEFAULT_ARTIFACT_IDLE_TIMEOUT_MS, digestFile } from '@mpd/client';
import type { Logger } from 'pino';

import { BlobCache, type BlobCacheOptions } from './blob-cache.js';
import { type BlobFollower, BlobProgress, readFollowed } from './blob-progress.js';
import { copyHostFile } from '../executor/scratch-file.js';
import { isOwnDigestOf, ownDigest } from './own-digest.js';
import type { BlobTransport, Digest, FollowedBlob, PackFollower, TransferSubject } from './module-artifacts.js';

/** Options of {@link WorkerBlobs} beyond its cache's. */
export interface WorkerBlobsOptions {
  /**
   * How long, in ms, a pack streamed into its upload ({@link WorkerBlobs.putPacking}) may go
   * without writing a byte before that upload is given up (the store keeps nothing of it) and the
   * archive is uploaded by hash once packed instead. A POST idle for as long as both sides' idle
   * timeouts (the orchestrator's `idleTimeoutMs`, the client's `idleTimeoutMs`: 60 s each by
   * default) fails; a pack pauses that long when its module host's event loop is blocked (a
   * module that starts an upload without awaiting it, then runs `execSync`) or its filesystem is
   * slow. Half the shorter of the two idle timeouts leaves the other half for the bytes in flight.
   * @default half of min(the client's `idleTimeoutMs`, the orchestrator's default 60_000): 30_000
   */
  packStallMs?: number;
}

/**
 * The worker's {@link BlobTransport}: uploads through the orchestrator's store (`ArtifactClient`)
 * and keeps what it uploads or downloads in its {@link BlobCache}, so a consumer on the same
 * worker reads the producer's archive without a download, and concurrent consumers of one blob
 * download it once. A download is streamed from the store to the consumers as it arrives and
 * written into the cache at the same time ({@link BlobCache.follow}); a blob larger than the
 * cache's bound (`--cache-size`) is streamed only and not kept (consumers asking before its bytes
 * begin to flow share that download; one asking later downloads it again).
 *
 * Each transfer that went well is one `debug` line of its `logger` (`--log-level debug`), so a
 * user can tell whether a consumer downloaded a blob or used the cache: `artifact uploaded`,
 * `artifact downloaded` (`source`: `store`, a download into the cache this consumer made or
 * waited for; `broadcast`, streamed to it over a local socket as the download arrived) and
 * `artifact read from the cache` (`source`: `cache`), each with `module` and `artifact` (or
 * `result`: the {@link TransferSubject}, when the caller named one), `sha256` (its first
 * {@link LOGGED_SHA256_CHARS} hex digits), `bytes` and `ms` (from the call to the last byte).
 */
export class WorkerBlobs implements BlobTransport {
  readonly cache: BlobCache;

  private readonly packStallMs: number;
  private readonly logger: Pick<Logger, 'debug'> | undefined;

  /**
   * @param client the orchestrator's store, with the worker's credential
   * @param cache where blobs are kept: `dir` and `maxBytes` (`--cache-dir`, `--cache-size`), and
   *   the `logger` told of a blob it could not keep ({@link BlobCacheOptions.logger}) and of each
   *   transfer (`debug`, see {@link WorkerBlobs})
   * @param options `packStallMs` ({@link WorkerBlobsOptions})
   */
  constructor(
    private readonly client: Pick<
      ArtifactClient,
      'putFile' | 'putStream' | 'getToFile' | 'get' | 'streamsRefused' | 'idleTimeoutMs'
    >,
    cache: Pick<BlobCacheOptions, 'dir' | 'maxBytes'> & { logger?: Pick<Logger, 'warn' | 'debug'> | undefined },
    options: WorkerBlobsOptions = {},
  ) {
    this.logger = cache.logger;
    this.packStallMs =
      options.packStallMs ?? Math.floor(Math.min(client.idleTimeoutMs, DEFAULT_ARTIFACT_IDLE_TIMEOUT_MS) / 2);
    this.cache = new BlobCache({
      ...cache,
      download: (sha256, path) => client.getToFile(sha256, path),
      open: (sha256) => client.get(sha256),
    });
  }

  /**
   * Uploads the archive being packed at `path` as it grows (`POST /api/artifacts/blobs`, no hash
   * needed before the bytes: the store names the blob by what it received), reading the file up
   * to the length `follower` last heard, from the page cache; then keeps it in the cache (a link,
   * as {@link put}), so a consumer on this worker does not download it. The store's digest must
   * be the packer's (else the upload fails: the bytes changed on their way). An orchestrator that
   * does not take such uploads (its store is a bucket, or it predates the route) gets the archive
   * by hash once it is packed, as {@link put} sends it; so does a pack that writes nothing for
   * `packStallMs` ({@link WorkerBlobsOptions.packStallMs}): its POST is cut (the store keeps
   * nothing) before it idles past the timeouts. The archive's file is not opened at all when the
   * client already knows the orchestrator refuses such uploads.
   *
   * With `opened` (a module host's archive, opened once by the worker and checked: see
   * {@link BlobTransport.putPacking}), `path` is never opened: the upload reads through that
   * handle, an upload by hash goes from a copy of the worker's own made from it (its bytes hashed
   * and checked against the packer's digest, as the store would not check them when it has that
   * blob already), and the cache keeps the archive by a link only when the link is that handle's
   * file ({@link BlobCache.addOpened}).
   */
  putPacking(
    path: string,
    subject?: TransferSubject,
    opened?: Promise<FileHandle>,
  ): { follower: PackFollower; stored: Promise<Digest> } {
    const startedAt = performance.now();
    const progress = new BlobProgress();
    let packed!: (digest: Digest) => void;
    let failed!: (error: Error) => void;
    const digest = new Promise<Digest>((resolve, reject) => {
      packed = resolve;
      failed = reject;
    });
    digest.catch(() => undefined); // heard below, or by the upload's failure
    // The streamed POST, cut when the pack writes nothing for `packStallMs`.
    let streaming: Readable | undefined;
    let stalled = false;
    let stallTimer: NodeJS.Timeout | undefined;
    let heard = 0;
    let settled = false;
    const watch = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        stalled = true;
        streaming?.destroy(
          new Error(`the pack wrote nothing for ${this.packStallMs} ms: its streamed upload is given up`),
        );
      }, this.packStallMs);
      stallTimer.unref();
    };
    const follower: PackFollower = {
      written: (bytes) => {
        if (bytes > heard) {
          heard = bytes;
          if (streaming && !settled) watch();
        }
        progress.written(bytes);
      },
      ended: (outcome) => {
        settled = true;
        clearTimeout(stallTimer);
        if ('error' in outcome) {
          progress.ended(outcome.error);
          failed(outcome.error);
          return;
        }
        progress.written(outcome.digest.size);
        progress.ended();
        packed(outcome.digest);
      },
    };
    const stored = (async (): Promise<Digest> => {
      // Refused already (a bucket): no reader of the archive at all (one made and destroyed while
      // its open was pending errored with no listener when the open failed, and killed the worker).
      if (this.client.streamsRefused) return await this.uploadPacked(path, digest, opened);
      const body = readFollowed(path, progress, opened);
      // Its error is heard through `putStream`'s rejection; one after that (an open failing once
      // the body was destroyed) must not reach node as an unhandled 'error'.
      body.on('error', () => undefined);
      let answer;
      try {
        streaming = body;
        if (!settled) watch();
        answer = await this.client.putStream(body);
      } catch (error) {
        // A pack that paused too long: the upload by hash below, once it is packed.
        if (!stalled) throw error;
        answer = undefined;
      } finally {
        streaming = undefined;
        clearTimeout(stallTimer);
        // Read to its end, or given up (a failed packing is the error `putStream` throws).
        body.destroy();
      }
      if (answer === undefined) return await this.uploadPacked(path, digest, opened);
      const known = await digest;
      if (answer.sha256 !== known.sha256 || answer.size !== known.size) {
        throw new Error(
          `the store received the archive as blob ${answer.sha256} (${answer.size} bytes), not as packed (${known.sha256}, ${known.size} bytes): its bytes changed on their way`,
        );
      }
      if (opened === undefined) await this.cache.add(known, path);
      else await this.cache.addOpened(known.sha256, path, await opened, known.size);
      return known;
    })().then((known) => {
      this.logUpload(known, startedAt, subject);
      return known;
    });
    return { follower, stored };
  }

  async put(path: string, digest?: Digest, subject?: TransferSubject): Promise<Digest> {
    const startedAt = performance.now();
    const stored = await this.upload(path, digest);
    this.logUpload(stored, startedAt, subject);
    return stored;
  }

  /**
   * `putPacking`'s upload by hash, once packed: of `path`; or, given `opened` (a host's archive),
   * of a copy of the worker's own made from that handle beside `path`, its bytes checked against
   * the packer's `digest` (a host naming a digest of a blob the store has already, over other
   * bytes, would otherwise get those bytes kept in the cache under that blob's name), the copy
   * removed once uploaded and kept in the cache.
   */
  private async uploadPacked(path: string, digest: Promise<Digest>, opened?: Promise<FileHandle>): Promise<Digest> {
    if (opened === undefined) return await this.upload(path, await digest);
    const handle = await opened;
    const known = await digest;
    // In the cache's own directory, not the host's scratch directory (`dirname(path)`), where a
    // module could swap a link over the copy before `putFile` and `cache.add` open it by path.
    await this.cache.open();
    const copy = await copyHostFile(handle, known.size, this.cache.ownDir, 'upload', 'tar');
    try {
      if (copy.digest.sha256 !== known.sha256)
        throw new Error(
          `the archive's bytes hash to ${copy.digest.sha256}, not to ${known.sha256} as packed: not uploaded`,
        );
      return await this.upload(copy.path, copy.digest);
    } finally {
      await rm(copy.path, { force: true });
    }
  }

  /**
   * A module host's file, open as `handle` and checked by the caller, uploaded from a copy of
   * exactly `size` bytes made in the cache's own directory (`BlobCache.ownDir`, which no host is
   * given: round T, review U1), checked against the host's `digest` when given, kept in the cache by a
   * link of that copy, and removed.
   * @throws (rejects) when the copy's bytes are not `digest`'s, the file changed in size since
   *   its check, or the upload's error
   */
  async putOpened(handle: FileHandle, size: number, digest?: Digest, subject?: TransferSubject): Promise<Digest> {
    const startedAt = performance.now();
    await this.cache.open();
    const copy = await copyHostFile(handle, size, this.cache.ownDir, 'upload', 'tar');
    try {
      if (digest !== undefined && (digest.sha256 !== copy.digest.sha256 || digest.size !== copy.digest.size))
        throw new Error(
          `the file holds ${copy.digest.size} bytes hashing to ${copy.digest.sha256}, not the digest the module host gave (${digest.sha256}, ${digest.size} bytes): not uploaded`,
        );
      const stored = await this.upload(copy.path, copy.digest);
      this.logUpload(stored, startedAt, subject);
      return stored;
    } finally {
      await rm(copy.path, { force: true });
    }
  }

  /**
   * `bytes` (a result's JSON text, held by the worker) uploaded from a file written in the
   * cache's own directory (`BlobCache.ownDir`, which no host is given; `wx`, 0600), their digest
   * hashed from memory, not read back; kept in the cache by a link of that file, then removed.
   * Before round V (V2) a result was written to the hosts' scratch directory and uploaded by its
   * path: a module swapping a link there got another file stored as the result.
   * @throws (rejects) the write's or the upload's error (the file removed)
   */
  async putBytes(bytes: Uint8Array, subject?: TransferSubject): Promise<Digest> {
    const startedAt = performance.now();
    await this.cache.open();
    const path = join(this.cache.ownDir, `result.${randomBytes(6).toString('hex')}.json`);
    const digest = ownDigest(path, {
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.byteLength,
    });
    try {
      await writeFile(path, bytes, { mode: 0o600, flag: 'wx' });
      const stored = await this.upload(path, digest);
      this.logUpload(stored, startedAt, subject);
      return stored;
    } finally {
      await rm(path, { force: true });
    }
  }

  /**
   * {@link put} without its log line (also `putPacking`'s upload by hash). A `digest` the
   * worker's own hashing made of this very file (own-digest.ts: the packer's, a copy's, a
   * result's) is taken as it is: the file is read once, to send it, and not at all when the store
   * has that blob. Any other digest, or none, is checked first: the file hashed here, and a
   * `digest` that is not its bytes' refused before anything is sent (round V, V2: an upload by
   * hash of a blob the store has sends no bytes, and the cache then kept the file under the
   * named blob's hash; safe only while every caller computed its own digest).
   * @throws (rejects) a `digest` that is not the file's, naming both; the upload's error
   */
  private async upload(path: string, digest?: Digest): Promise<Digest> {
    let known = digest;
    if (known === undefined || !isOwnDigestOf(known, path)) {
      const found = await digestFile(path);
      if (known !== undefined && (known.sha256 !== found.sha256 || known.size !== found.size))
        throw new Error(
          `${path} holds ${found.size} bytes hashing to ${found.sha256}, not the digest given (${known.sha256}, ${known.size} bytes): not uploaded`,
        );
      known = found;
    }
    const stored = await this.client.putFile(path, known);
    // `stored` is `known` (the same object): the cache trusts it as the upload did, or checks it.
    await this.cache.add(stored, path);
    return stored;
  }

  async checkOut(sha256: string, subject?: TransferSubject): Promise<{ path: string }> {
    const startedAt = performance.now();
    const { path, size, source } = await this.cache.checkOut(sha256);
    this.logDownload(sha256, size, source, subject, startedAt);
    return { path };
  }

  async follow(
    sha256: string,
    follower: BlobFollower,
    signal: AbortSignal,
    subject?: TransferSubject,
  ): Promise<FollowedBlob> {
    const startedAt = performance.now();
    // Logged once both are known: where it came from (the answer) and that it ended well (the
    // follower's end, which comes before the answer for a blob the cache holds).
    let source: TransferSource | undefined;
    let size = 0;
    let endedAt: number | undefined;
    const logged: BlobFollower = {
      written: (bytes) => follower.written(bytes),
      ended: (error) => {
        follower.ended(error);
        if (error !== undefined) return;
        endedAt = performance.now();
        if (source !== undefined) this.logDownload(sha256, size, source, subject, startedAt, endedAt);
      },
    };
    const blob = await this.cache.follow(sha256, logged, signal);
    size = blob.size;
    source = 'socket' in blob ? 'broadcast' : blob.source;
    if (endedAt !== undefined) this.logDownload(sha256, size, source, subject, startedAt, endedAt);
    return 'socket' in blob
      ? { socket: blob.socket, size: blob.size, token: blob.token }
      : { path: blob.path, size: blob.size };
  }

  private logUpload({ sha256, size }: Digest, startedAt: number, subject: TransferSubject | undefined): void {
    this.logger?.debug(
      {
        ...subjectFields(subject),
        sha256: sha256.slice(0, LOGGED_SHA256_CHARS),
        bytes: size,
        ms: elapsedMs(startedAt),
      },
      'artifact uploaded',
    );
  }

  private logDownload(
    sha256: string,
    bytes: number,
    source: TransferSource,
    subject: TransferSubject | undefined,
    startedAt: number,
    endedAt = performance.now(),
  ): void {
    this.logger?.debug(
      {
        ...subjectFields(subject),
        sha256: sha256.slice(0, LOGGED_SHA256_CHARS),
        bytes,
        ms: elapsedMs(startedAt, endedAt),
        source,
      },
      source === 'cache' ? 'artifact read from the cache' : 'artifact downloaded',
    );
  }
}

/**
 * Where a consumer's blob came from (the `source` of its log line): the cache (no download), the
 * store (a download into the cache, this consumer's or one it waited for), or a download streamed
 * to it over a local socket as it arrived.
 */
type TransferSource = 'cache' | 'store' | 'broadcast';

/** How many hex digits of a blob's SHA-256 its log lines give (as git's short hashes, enough to tell blobs apart). */
export const LOGGED_SHA256_CHARS = 12;

/**
 * A transfer's subject as its log line's fields, named one by one: `module` and `artifact` or
 * `result`, nothing else a caller's object carries (a module host's subject came over its
 * channel: spread whole, it could set the line's `level`, `workerId` or `msg`; review of round L).
 */
function subjectFields(subject: TransferSubject | undefined): Record<string, string> {
  if (subject === undefined) return {};
  return 'artifact' in subject
    ? { module: subject.module, artifact: subject.artifact }
    : { module: subject.module, result: subject.result };
}

/** Milliseconds from `startedAt` to `endedAt` (`performance.now()` times), to 0.1 ms. */
function elapsedMs(startedAt: number, endedAt = performance.now()): number {
  return Math.round((endedAt - startedAt) * 10) / 10;
}
