/**
 * `ctx.artifacts`: files packed as a tar (the `tar` package; gzipped on request), hashed as it is
 * written, moved through a {@link BlobTransport} (the worker's cache and the orchestrator's
 * store), and extracted so that nothing lands outside the destination: as the blob downloads
 * (streamed from the worker's download over a local socket, or read from the cache's file), into
 * a staging directory moved into place once the blob is verified and every entry was checked.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, lstat, mkdir, mkdtemp, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LIMITS } from '@mpd/contract/limits';
import {
  artifactCompressionProblem,
  type ArtifactCompression,
  type ArtifactRef,
  type ArtifactUploadOptions,
  type ModuleArtifacts,
} from '@mpd/pipeline';
// `tar` and `tinyglobby` are loaded at a module's first artifact call, not with every module host.
import type { ReadEntry } from 'tar';
import type { StreamedBlob } from './blob-broadcast.js';
import { type BlobFollower, BlobProgress, readFollowed, readStreamed } from './blob-progress.js';
import { DigestingStream } from './digesting-stream.js';
import { ownDigest } from './own-digest.js';
import { ReportingFileWriter } from './reporting-file-writer.js';

/** A blob's SHA-256 (64 lowercase hex digits) and size in bytes. */
export interface Digest {
  sha256: string;
  size: number;
}

/**
 * A blob being downloaded for a consumer (`BlobTransport.follow`): a file of its own that grows as
 * the download writes it (the caller removes it when done), or a local socket that passes the
 * bytes on as they arrive, once (its connection presents the token first).
 */
export type FollowedBlob = { path: string; size: number } | StreamedBlob;

/**
 * An archive being packed, as its uploader hears of it ({@link BlobTransport.putPacking}): how
 * many bytes are in its file so far (called as they grow; each count may be read from the file),
 * then its end: its digest (computed as it was packed) once every byte is in, or the packing's
 * failure (the upload is then abandoned: nothing is stored).
 */
export interface PackFollower {
  written(bytes: number): void;
  ended(outcome: { digest: Digest } | { error: Error }): void;
}

/**
 * What a transfer moves, for its log line (`--log-level debug`: `artifact uploaded`, …): the
 * module that moved it, and the artifact's name (`ctx.artifacts.upload(name, …)`, a download's
 * `ref.name`) or the module whose result it is (a result passed by reference: the module's own,
 * uploaded; a dependency's, read).
 */
export type TransferSubject = { module: string } & ({ artifact: string } | { result: string });

/** How a module's artifacts reach the store and come back: the worker's side, in its process or over a host's channel (fd 3). */
export interface BlobTransport {
  /**
   * Uploads the archive being packed at `path` (the file exists, empty or not: the packer made it)
   * as it is written, and keeps it in the worker's cache once packed and stored (issue 13, round
   * J: the pack overlaps the upload). The packer reports to `follower`; `stored` settles with the
   * digest once the store holds the blob (checked against the packer's), or rejects (the packing
   * failed, or the upload did: the packer then stops). Where the store must know a blob's hash
   * before its bytes (an S3-compatible bucket), the upload waits for the end and goes as
   * {@link BlobTransport.put}. Absent: the packer packs whole, then calls `put`.
   * @param opened the archive opened once by the caller and checked (the worker, for a module
   *   host's call: `openHostFile`): its bytes are read through that handle only, never by `path`
   *   again, and the caller closes it once `stored` settled; a rejection (the file refused) fails
   *   `stored` with it. @default `path` opened by the transport
   */
  putPacking?(
    path: string,
    subject?: TransferSubject,
    opened?: Promise<FileHandle>,
  ): { follower: PackFollower; stored: Promise<Digest> };
  /**
   * Uploads the file at `path` (unless the store has it) and keeps it in the worker's cache;
   * answers its digest. `digest`: the file's, computed as it was written, so it is not read a
   * second time to hash it (the store checks the hash of what it receives all the same).
   * `subject` (of every method): what is moved, named in the transfer's log line.
   */
  put(path: string, digest?: Digest, subject?: TransferSubject): Promise<Digest>;
  /**
   * Uploads exactly `size` bytes of the file open as `handle` (a module host's, checked by the
   * caller: `openHostFile`) from a copy of the transport's own, made where no host is given a
   * directory, and keeps it in the cache; answers its digest. Never opens the host's path.
   * @param digest the host's: the copy's bytes must hash to it. @default not checked
   * @throws (rejects) a copy of other bytes than `digest`, a file changed in size since its
   *   check, or the upload's error
   * @default absent: the caller copies into its scratch directory and calls {@link BlobTransport.put}
   */
  putOpened?(handle: FileHandle, size: number, digest?: Digest, subject?: TransferSubject): Promise<Digest>;
  /**
   * Uploads `bytes` (held by the caller: a result's JSON text), hashed from that memory, from a
   * file of the transport's own made where no module host is given a directory, and keeps it in
   * the cache; answers its digest. Nothing is written where a module could swap it before it is
   * read (round V, V2: a result written to the hosts' scratch directory and uploaded by path could
   * be another file by then).
   * @throws (rejects) the write's or the upload's error
   * @default absent: the worker stores no result by reference through this transport
   */
  putBytes?(bytes: Uint8Array, subject?: TransferSubject): Promise<Digest>;
  /** Blob `sha256` as a file of the caller's own (a link into the cache); the caller removes it when done. */
  checkOut(sha256: string, subject?: TransferSubject): Promise<{ path: string }>;
  /**
   * Blob `sha256` as it downloads (`BlobCache.follow`): a file of the caller's own, answered as soon
   * as it exists, `follower` hearing how many bytes are in; or a socket its bytes come through.
   * Either way `follower` hears when the blob is verified (or the download failed). The caller
   * removes a file when done.
   * @param signal aborting it abandons the download (an archive refused halfway)
   */
  follow(sha256: string, follower: BlobFollower, signal: AbortSignal, subject?: TransferSubject): Promise<FollowedBlob>;
}

/** Entry types an artifact may hold: files, directories, links (checked to stay inside). */
const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

/** Whether `target` is `root` or inside it. */
function isInside(root: string, target: string): boolean {
  const path = relative(root, target);
  return path === '' || (!path.startsWith(`..${sep}`) && path !== '..' && !isAbsolute(path));
}

/**
 * Why an archive entry may not be extracted into `dest` (an absolute directory), or undefined:
 * an absolute path or a `..` segment, a type other than file, directory or link, a symbolic link
 * that points outside `dest` (from where it lies), a hard link to a path outside it.
 */
export function entryProblem(entry: Pick<ReadEntry, 'path' | 'type' | 'linkpath'>, dest: string): string | undefined {
  const path = entry.path;
  const segments = path.split(/[\\/]+/);
  if (isAbsolute(path) || /^[A-Za-z]:/.test(path) || path.startsWith('\\'))
    return `${JSON.stringify(path)} is an absolute path`;
  if (segments.includes('..')) return `${JSON.stringify(path)} has a .. segment`;
  if (!ALLOWED_TYPES.has(entry.type))
    return `${JSON.stringify(path)} is a ${entry.type}, not a file, directory or link`;
  const target = resolve(dest, path);
  if (!isInside(dest, target)) return `${JSON.stringify(path)} lands outside the destination`;
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    const link = entry.linkpath ?? '';
    if (isAbsolute(link) || /^[A-Za-z]:/.test(link))
      return `${JSON.stringify(path)} links to the absolute path ${JSON.stringify(link)}`;
    const pointsAt = entry.type === 'SymbolicLink' ? resolve(dirname(target), link) : resolve(dest, link);
    if (!isInside(dest, pointsAt))
      return `${JSON.stringify(path)} links to ${JSON.stringify(link)}, outside the destination`;
  }
  return undefined;
}

/** An artifact that cannot be extracted safely, or a call that is not valid. */
export class ArtifactError extends Error {
  override readonly name = 'ArtifactError';
}

function checkRef(ref: ArtifactRef): void {
  const valid =
    typeof ref === 'object' &&
    ref !== null &&
    typeof ref.sha256 === 'string' &&
    LIMITS.artifact.sha256.pattern.test(ref.sha256) &&
    typeof ref.name === 'string';
  if (!valid) {
    throw new ArtifactError(
      `ctx.artifacts.download: not an artifact reference (${JSON.stringify(ref)?.slice(0, 200)}): pass what ctx.artifacts.upload returned`,
    );
  }
}

/**
 * How many bytes `tar` reads from a file at a time, packing and extracting: 1 MiB rather than
 * its 16 MiB, which it allocates afresh for every read (a module host's RSS grew by 116-150 MB
 * moving 1 GiB, issue 13); 1 MiB reads cost no throughput measurably (page-cache reads of
 * 1 GiB: 0.15 s in 1 MiB reads).
 */
const TAR_READ_BYTES = 1024 * 1024;

/**
 * `tar`, loaded once per process at its first artifact call. A download loads it before its
 * source stream exists: an `await` between making the source and listening to it let the
 * module's end destroy the source with nobody listening (an uncaught 'error' event, found in
 * review, round I).
 */
let tarLoaded: Promise<typeof import('tar')> | undefined;
const loadTar = () => (tarLoaded ??= import('tar'));

/** What `tar` writes to the archive is hashed and counted on its way to the file; `stop` aborts the packing. */
async function packHashed(pack: NodeJS.ReadableStream, archive: string, stop: AbortSignal): Promise<Digest> {
  const digesting = new DigestingStream();
  const file = createWriteStream(archive, { flags: 'wx', mode: 0o600, highWaterMark: TAR_READ_BYTES });
  try {
    await pipeline(pack, digesting, file, { signal: stop });
  } catch (error) {
    // A packing stopped at once can leave the file's open under way: the caller's removal of the
    // archive waits for it, or the open would make the file after it (round AD, the
    // orchestrator's store).
    if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
    throw error;
  }
  // The worker's own hash of the archive it wrote (own-digest.ts): its upload trusts it.
  return ownDigest(archive, await digesting.digest());
}

/**
 * {@link packHashed} into the file already open as `handle` (the uploader reads it as it grows),
 * `written` hearing the file's length after each write; the caller closes `handle`.
 */
async function packHashedInto(
  pack: NodeJS.ReadableStream,
  handle: FileHandle,
  written: (bytes: number) => void,
  stop: AbortSignal,
): Promise<Digest> {
  const digesting = new DigestingStream();
  await pipeline(pack, digesting, new ReportingFileWriter(handle, written), { signal: stop });
  return await digesting.digest();
}

/**
 * `work`, or `stop`'s reason as soon as it aborts (`work` goes on, its failure then unobserved
 * and handled): a step of a call that cannot itself be stopped (a glob, a transport's upload).
 */
function untilStopped<T>(work: Promise<T>, stop: AbortSignal): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    const onStop = () => reject(stop.reason);
    if (stop.aborted) {
      work.catch(() => undefined);
      onStop();
      return;
    }
    stop.addEventListener('abort', onStop, { once: true });
    work.then(
      (value) => {
        stop.removeEventListener('abort', onStop);
        resolvePromise(value);
      },
      (error: unknown) => {
        stop.removeEventListener('abort', onStop);
        reject(error);
      },
    );
  });
}

/** Options of {@link moduleArtifacts}. */
export interface ModuleArtifactsOptions {
  /** The transport; undefined for a worker without an orchestrator (every call throws, saying so). */
  transport: BlobTransport | undefined;
  /** The module's name, given to the transport with each artifact's ({@link TransferSubject}). */
  module: string;
  /** The module's working directory: relative `baseDir` and `dir` are taken from it. */
  workingDirectory: string;
  /** Where archives are packed before upload (made if missing). */
  scratchDir: string;
  /**
   * The module's `ctx.signal` (its cancel or timeout): its abort ends the uploads and downloads
   * as {@link ExecutionArtifacts.end} does, with its reason. Asked for only when an upload or a
   * download starts: an `ExecutionStop` makes its signal at the first read, which a module that
   * never moves an artifact does not pay for.
   * @default none: the uploads and downloads end only with {@link ExecutionArtifacts.end}
   */
  moduleSignal?: (() => AbortSignal) | undefined;
}

/** One execution's `ctx.artifacts` and the end of its uploads and downloads ({@link moduleArtifacts}). */
export interface ExecutionArtifacts {
  /** What the module gets as `ctx.artifacts`. */
  readonly api: ModuleArtifacts;
  /**
   * The module ended, however it ended (succeeded too: as a Temporal activity's work ends with
   * it), and so do its uploads and downloads still running (a module that never awaited one):
   * - a download stops reading (the shared download goes on for other consumers), its staging
   *   directory is removed and nothing more is moved into `dest` (files it had moved there
   *   already stay);
   * - an upload stops packing (its archive is removed) and is no longer awaited: the blob it was
   *   sending may still reach the store and the worker's cache, unreferenced (a module host's
   *   worker refuses a call of a module no longer running anyway);
   * - each rejects with `reason`, marked handled (a module that never awaited it did not fail of
   *   it: not a crash of its module host blamed on the next module, round I's review); a call
   *   started later rejects at once.
   * The first end holds; later calls change nothing. Its own signal, not the module's
   * `ctx.signal`: ending the calls of a module that failed must not run the handlers the module
   * put there (found in review, round H: with `--isolation none` an unhandled `AbortError` of a
   * sleep it had not awaited ended the worker).
   * @param reason @default an {@link ArtifactError} saying the module ended before the call did
   * @returns resolves once every call that was running has stopped and removed its files (never
   *   rejects): the caller answers after it, so nothing is written into the working directory
   *   after the answer
   */
  end(reason?: unknown): Promise<void>;
}

/** The `ctx.artifacts` of one execution, and the end of its uploads and downloads. */
export function moduleArtifacts(options: ModuleArtifactsOptions): ExecutionArtifacts {
  /** The calls' own signal: made at the first upload or download (or at their end), aborted by {@link end}. */
  let calls: AbortController | undefined;
  /** The module's `ctx.signal`, once a call asked for it: its abort ends the calls. */
  let moduleSignal: AbortSignal | undefined;
  const onModuleAbort = () => void end(moduleSignal!.reason);
  /** Calls not settled yet, each removed by itself as it settles (unobserved: a failure nobody awaits stays unhandled until the end). */
  const running = new Set<Promise<unknown>>();
  /** Settles once the calls that ran at their end have stopped (see {@link ExecutionArtifacts.end}). */
  let ended: Promise<void> | undefined;

  function callsSignal(): AbortSignal {
    if (calls === undefined) {
      calls = new AbortController();
      moduleSignal = options.moduleSignal?.();
      if (moduleSignal?.aborted) void end(moduleSignal.reason);
      else moduleSignal?.addEventListener('abort', onModuleAbort, { once: true });
    }
    return calls.signal;
  }

  function end(
    reason: unknown = new ArtifactError(
      'ctx.artifacts: the module ended before this upload or download did: it was stopped, and nothing more is written into its directory',
    ),
  ): Promise<void> {
    if (ended) return ended; // by the module's signal (its cancel, its timeout), or a call before
    calls ??= new AbortController(); // none started: one started later rejects at once
    moduleSignal?.removeEventListener('abort', onModuleAbort);
    calls.abort(reason);
    // Waiting for them marks their rejections handled: the one place that does, once they ended.
    return (ended = Promise.allSettled(running).then(() => undefined));
  }

  /**
   * Runs one call of the module, ended with it ({@link end}); removed from `running` by itself (a
   * handler on it would mark its rejection handled).
   */
  function tracked<T>(call: (stop: AbortSignal) => Promise<T>): Promise<T> {
    const stop = callsSignal();
    let result!: Promise<T>;
    result = (async () => {
      try {
        return await call(stop);
      } finally {
        running.delete(result);
      }
    })();
    // Ended with its module, a call rejects with the end's reason; a module that never awaited
    // it (it failed, or ended, meanwhile) must not have that rejection taken for its own
    // unhandled one: a crash of its module host (blamed on the next module it runs), or of the
    // worker with `--isolation none`. Marked handled only once the end came (`end` waits for
    // those running): any other failure of a call nobody awaits stays the module's unhandled
    // rejection, as before.
    if (stop.aborted) result.catch(() => undefined);
    else running.add(result);
    return result;
  }

  const transportOf = (what: string): BlobTransport => {
    if (options.transport) return options.transport;
    throw new ArtifactError(
      `ctx.artifacts.${what}: this worker has no orchestrator (--orchestrator), so no artifact store`,
    );
  };
  const api: ModuleArtifacts = {
    upload(name: string, globs: string | readonly string[], uploadOptions: ArtifactUploadOptions = {}) {
      return tracked((stop) => uploadFrom(name, globs, uploadOptions, stop));
    },

    download(ref: ArtifactRef, dir: string) {
      return tracked((stop) => downloadInto(ref, dir, stop));
    },
  };
  return { api, end };

  async function uploadFrom(
    name: string,
    globs: string | readonly string[],
    uploadOptions: ArtifactUploadOptions,
    stop: AbortSignal,
  ): Promise<ArtifactRef> {
    const transport = transportOf('upload');
    const rule = LIMITS.artifact.name;
    if (typeof name !== 'string' || name.length > rule.maxLength || !rule.pattern.test(name)) {
      throw new ArtifactError(
        `ctx.artifacts.upload: name ${JSON.stringify(name)} must be 1-${rule.maxLength} characters of ${rule.alphabet}`,
      );
    }
    const compression: ArtifactCompression = uploadOptions.compression ?? 'none';
    const problem = artifactCompressionProblem(compression);
    if (problem !== undefined) throw new ArtifactError(`ctx.artifacts.upload('${name}'): ${problem}`);
    stop.throwIfAborted();
    const baseDir = resolve(options.workingDirectory, uploadOptions.baseDir ?? '.');
    const patterns = typeof globs === 'string' ? [globs] : [...globs];
    const { glob } = await untilStopped(import('tinyglobby'), stop);
    const files = (
      await untilStopped(
        glob(patterns, {
          cwd: baseDir,
          dot: true,
          onlyFiles: true,
          followSymbolicLinks: false,
          expandDirectories: false,
        }),
        stop,
      )
    ).sort();
    if (files.length === 0) {
      throw new ArtifactError(
        `ctx.artifacts.upload('${name}'): no file under ${baseDir} matches ${JSON.stringify(patterns)}`,
      );
    }
    // The archive may hold secrets and becomes the cache's blob by a link: the worker's user's only
    // (0700 directory, 0600 file; blob-cache.ts OWNER_DIR, OWNER_FILE).
    await mkdir(options.scratchDir, { recursive: true, mode: 0o700 });
    stop.throwIfAborted();
    const extension = compression === 'gzip' ? 'tgz' : 'tar';
    const archive = join(options.scratchDir, `${name}.${randomBytes(6).toString('hex')}.${extension}`);
    try {
      const { create } = await untilStopped(loadTar(), stop);
      // portable: no owner, group or modes beyond the file's own, so the same files make the same bytes anywhere.
      const pack = create(
        {
          gzip: compression === 'gzip',
          cwd: baseDir,
          portable: true,
          noDirRecurse: true,
          maxReadSize: TAR_READ_BYTES,
        },
        files,
      );
      const subject = { module: options.module, artifact: name };
      if (transport.putPacking) {
        const { sha256, size } = await packWhileUploading(
          (path) => transport.putPacking!(path, subject),
          pack as unknown as NodeJS.ReadableStream,
          archive,
          stop,
        );
        return { name, sha256, size, files: files.length, compression };
      }
      // Hashed as it is written: the transport uploads it without reading it to hash first.
      const digest = await packHashed(pack as unknown as NodeJS.ReadableStream, archive, stop);
      // Not awaited past the module's end: its worker refuses the call of a module no longer running.
      const { sha256, size } = await untilStopped(transport.put(archive, digest, subject), stop);
      return { name, sha256, size, files: files.length, compression };
    } catch (error) {
      throw stop.aborted ? stop.reason : error; // the pipeline's AbortError carries the end's reason
    } finally {
      await rm(archive, { force: true });
    }
  }

  /**
   * Packs into `archive` (made here) while the transport uploads it as it grows (issue 13, round
   * J): the packing stops when the module ends (`stop`) or the upload fails, and the upload is
   * abandoned when the packing fails (the transport hears the failure: nothing is stored).
   * @returns the digest the store holds the archive under, once it does
   */
  async function packWhileUploading(
    putPacking: (path: string) => ReturnType<NonNullable<BlobTransport['putPacking']>>,
    pack: NodeJS.ReadableStream,
    archive: string,
    stop: AbortSignal,
  ): Promise<Digest> {
    // Made before the transport is told of it, so that its reader finds it.
    const handle = await open(archive, 'wx', 0o600);
    try {
      const { follower, stored } = putPacking(archive);
      const packing = new AbortController();
      const onStop = () => packing.abort(stop.reason);
      stop.addEventListener('abort', onStop, { once: true });
      if (stop.aborted) onStop();
      // An upload that failed first (the store refused it, the connection was lost) stops the packing.
      stored.catch((error: unknown) => packing.abort(error));
      let digest: Digest;
      try {
        digest = ownDigest(
          archive,
          await packHashedInto(pack, handle, (bytes) => follower.written(bytes), packing.signal),
        );
      } catch (error) {
        const reason = packing.signal.aborted ? packing.signal.reason : error;
        follower.ended({ error: reason instanceof Error ? reason : new Error(String(reason)) });
        throw reason;
      } finally {
        stop.removeEventListener('abort', onStop);
      }
      follower.ended({ digest });
      // Not awaited past the module's end: its worker refuses the call of a module no longer running.
      return await untilStopped(stored, stop);
    } finally {
      await handle.close();
    }
  }

  async function downloadInto(ref: ArtifactRef, dir: string, stop: AbortSignal | undefined) {
    const transport = transportOf('download');
    checkRef(ref);
    stop?.throwIfAborted();
    // Before any source exists (see loadTar); an end meanwhile rejects before anything is made.
    const { Unpack } = await loadTar();
    stop?.throwIfAborted();
    const dest = resolve(options.workingDirectory, dir);
    // Extracted as it arrives into a directory beside `dest` (same filesystem: moved by renames),
    // moved into `dest` only once the blob is verified; removed whatever happens.
    await mkdir(dirname(dest), { recursive: true });
    const staging = await mkdtemp(join(dirname(dest), `.${basename(dest) || 'root'}.mpd-`));
    // Gives this consumer up (the shared download goes on for the others): an archive refused
    // halfway, a failed read, or the execution stopped.
    const abandon = new AbortController();
    let source: Readable | undefined;
    const stopped = new Promise<never>((_, reject) => {
      abandon.signal.addEventListener('abort', () => reject(abandon.signal.reason), { once: true });
    });
    stopped.catch(() => undefined);
    const onStop = () => {
      abandon.abort(stop!.reason);
      // With an error: destroyed without one, the source would leave the extraction waiting.
      source?.destroy(stop!.reason instanceof Error ? stop!.reason : new Error('the execution stopped'));
    };
    stop?.addEventListener('abort', onStop, { once: true });
    if (stop?.aborted) onStop(); // during the mkdir and mkdtemp above
    let blobPath: string | undefined;
    let extraction: Promise<number> | undefined;
    try {
      // Ended during the mkdir and mkdtemp above: no download is asked for (a host's transport
      // would ask the worker for one that nobody reads; round P).
      abandon.signal.throwIfAborted();
      const progress = new BlobProgress();
      const following = transport.follow(ref.sha256, progress, abandon.signal, {
        module: options.module,
        artifact: ref.name,
      });
      // A file answered after the stop is this caller's all the same: removed.
      following.then(
        (blob) => {
          if (abandon.signal.aborted && 'path' in blob) void rm(blob.path, { force: true });
        },
        () => undefined,
      );
      const blob = await Promise.race([following, stopped]);
      if ('path' in blob) blobPath = blob.path;
      // Ended as the answer came (the race settled on it first): no source is made.
      abandon.signal.throwIfAborted();
      source = 'socket' in blob ? readStreamed(blob, progress) : readFollowed(blob.path, progress);
      // Listened to at once, no `await` before the extraction's own listeners: destroyed by the
      // end with nobody listening, it would throw its error as an uncaught exception.
      source.on('error', () => undefined); // the extraction's listener reports it
      extraction = extractChecked(Unpack, source, staging, dest, ref.name);
      const files = await Promise.race([extraction, stopped]);
      await Promise.race([progress.done, stopped]);
      await moveInto(staging, dest, abandon.signal);
      return { files };
    } catch (error) {
      abandon.abort(error);
      source?.destroy(error instanceof Error ? error : new Error(String(error)));
      throw abandon.signal.reason;
    } finally {
      stop?.removeEventListener('abort', onStop);
      // The extraction stopped writing into the staging directory (its source is destroyed) before it goes.
      await extraction?.catch(() => undefined);
      await rm(staging, { recursive: true, force: true, maxRetries: 3 });
      if (blobPath) await rm(blobPath, { force: true });
    }
  }
}

/**
 * Extracts the tar (gzipped or not: `tar` reads the magic bytes) arriving on `source` into
 * `staging`, checking every entry as it arrives ({@link entryProblem}, against `dest`, where it
 * will be moved): the first offending entry stops it all, and the caller removes `staging`.
 * `tar`'s own guards hold as well (it strips `..` and absolute paths and never writes through a
 * link). Answers the number of entries other than directories.
 * Listens to `source` before it returns (no `await` before: see {@link loadTar}); a source already
 * destroyed rejects at once (it would never end the extraction).
 * @throws ArtifactError naming the offending entry; `tar`'s error for a damaged archive; the source's
 */
function extractChecked(
  Unpack: typeof import('tar').Unpack,
  source: Readable,
  staging: string,
  dest: string,
  name: string,
): Promise<number> {
  if (source.destroyed || source.errored) {
    return Promise.reject(
      source.errored ?? new ArtifactError(`ctx.artifacts.download('${name}'): its source was closed`),
    );
  }
  let files = 0;
  let refusal: ArtifactError | undefined;
  const unpack = new Unpack({
    cwd: staging,
    strict: true,
    preservePaths: false,
    maxReadSize: TAR_READ_BYTES,
    filter: (_path, entry) => {
      if (refusal) return false;
      const problem = entryProblem(entry as ReadEntry, dest);
      if (problem) {
        refusal = new ArtifactError(
          `ctx.artifacts.download('${name}'): the archive is refused, nothing was extracted: ${problem}`,
        );
        source.destroy(refusal);
        return false;
      }
      if ((entry as ReadEntry).type !== 'Directory') files++;
      return true;
    },
  });
  return new Promise<number>((resolvePromise, reject) => {
    const fail = (error: Error) => {
      source.unpipe(unpack);
      source.destroy();
      if (!refusal) unpack.abort(error);
      reject(refusal ?? error);
    };
    source.on('error', fail);
    unpack.on('error', fail);
    unpack.on('close', () => resolvePromise(files));
    source.pipe(unpack as unknown as NodeJS.WritableStream);
  });
}

/**
 * Moves what `from` holds into `to` by renames (one filesystem): a directory into an existing
 * directory entry by entry, anything else replacing what is there (a file or a link, not followed:
 * `rename` replaces the link itself); a file where a directory is refuses.
 * @throws ArtifactError when a file would replace a directory
 */
async function moveInto(from: string, to: string, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  await mkdir(to, { recursive: true });
  for (const name of await readdir(from)) {
    const source = join(from, name);
    const target = join(to, name);
    const [incoming, present] = await Promise.all([lstat(source), lstat(target).catch(() => undefined)]);
    if (present?.isDirectory() && incoming.isDirectory()) {
      await moveInto(source, target, signal);
    } else if (present?.isDirectory()) {
      throw new ArtifactError(`ctx.artifacts.download: ${target} is a directory; the archive has a file there`);
    } else {
      // Not after the execution stopped: what its attempt moved so far stays, nothing more lands.
      signal.throwIfAborted();
      if (present && incoming.isDirectory()) await unlink(target);
      await rename(source, target);
    }
  }
}
