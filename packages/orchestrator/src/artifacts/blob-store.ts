/**
 * The orchestrator's content-addressed blob store: one file per blob, named by its SHA-256, in
 * one directory. A blob is written to a temporary file in that directory while it is hashed,
 * and renamed to its name only when the hash matches (a rename within one directory is atomic:
 * a reader sees the whole blob or none). A read sends the file without hashing it again when it is
 * the file this process verified and has not changed since (see {@link VerifiedFile}); any other
 * file is hashed as it is read, and removed when it does not hash to its name.
 *
 * Retention (`--artifact-retention`): a blob's mtime is the last time a run wrote, `HEAD`ed or
 * read it; {@link BlobStore.sweep} removes blobs whose mtime is at least the retention ago, and
 * {@link BlobStore.endRun} first sets the mtime of every blob used since the last run ended to
 * now, so what a run used stays at least the retention after its end.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type BigIntStats, constants, createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { access, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { finished, type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobDamagedError, VerifyingStream } from '@mpd/client';
import { makeDirectory } from '@mpd/server-kit';
import { type BlobTransfer, LIMITS } from '@mpd/contract';
import { DEFAULT_ARTIFACT_RETENTION_MS } from '../orchestrator-options.js';
import type { ArtifactStore, TransferDirection } from './artifact-store.js';

/** Why a blob was not stored (see {@link BlobStore.put}, {@link BlobStore.putUnnamed}). */
export class BlobWriteError extends Error {
  override readonly name = 'BlobWriteError';
  constructor(
    /**
     * `HashMismatch`: the bytes hash to another SHA-256; `SizeMismatch`: not as many bytes as
     * declared; `TooLarge`: an upload without a declared size passed the store's limit.
     */
    readonly code: 'HashMismatch' | 'SizeMismatch' | 'TooLarge',
    message: string,
  ) {
    super(message);
  }
}

/**
 * A blob being read (see {@link BlobStore.open}): a stream ({@link BlobStreamReader}: a bucket's
 * object, or a file hashed as it is read), or a file this process verified and that is unchanged
 * since, which sends itself ({@link BlobFileReader}).
 */
export type BlobReader = BlobStreamReader | BlobFileReader;

/** A blob read as a stream (see {@link BlobReader}). */
export interface BlobStreamReader {
  /** Its size in bytes, from the file. */
  size: number;
  /**
   * Its bytes. The stream fails (errors, after the last good chunk it held back) when the
   * file's bytes do not hash to the blob's name, or when the file is not `size` bytes long:
   * the last chunk is held back until the hash is checked, so a reader of a damaged file
   * never gets all of it.
   */
  stream: Readable;
}

/** A verified blob's file, sent as it is (see {@link BlobReader}). */
export interface BlobFileReader {
  /** Its size in bytes, from the file. */
  size: number;
  /**
   * Writes its `size` bytes to `destination` (not ended: the caller ends it), reading the file
   * into two buffers of {@link SEND_READ_BYTES} that it reuses: a buffer is read into again only
   * once `destination` took its previous bytes (the write's callback), so what is in flight is
   * at most one buffer while the next is read. A stream of the file would allocate a new buffer
   * per read: 1 GiB of short-lived buffers, whose external memory made the orchestrator run
   * 32-63 full garbage collections per GiB sent (0.55-0.70 s of CPU; 0.02-0.04 s with the two
   * buffers, docs/performance.md "Artifact throughput: where the rest of the time goes").
   * @throws when `destination` fails or closes before it took every byte, or the file holds
   *   fewer than `size` bytes (changed since it was opened); the caller destroys `destination`
   */
  send(destination: Writable): Promise<void>;
}

/**
 * A blob's file as this process last left it after verifying it (hashed it as it wrote it, or as
 * it sent it whole): device and inode, size, and modification and status-change times in ns. The
 * status-change time (ctime) moves on every write, rename, truncation or `utimes` and cannot be
 * set back by anyone, so a file whose five values are unchanged holds the bytes that were hashed:
 * its read need not hash them again (issue 13: the store's second SHA-256 pass cost the
 * orchestrator about 0.5 s of CPU per GiB sent). The store's own `utimes` (retention) records
 * the file again; any other change makes the next read hash it (and remove it on a mismatch).
 * The client hashes every download all the same (`ArtifactClient`), so a file changed within the
 * few microseconds between the store's `stat` and its `utimes` is still never accepted.
 */
interface VerifiedFile {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

function sameFile(a: VerifiedFile, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * How many bytes a verified blob is read in at a time as it is sent: 1 MiB (a sixteenth of the
 * reads of the 64 KiB default; the bare server of benchmark 6 used 0.9-1.0 s of CPU per GiB sent
 * in 1 MiB reads against 1.3-1.4 s in 64 KiB ones).
 */
const SEND_READ_BYTES = 1024 * 1024;

/** Prefix of temporary files; blobs are 64 hex digits, so the two never meet. */
const TEMPORARY_PREFIX = '.incoming-';

/** Options of {@link BlobStore}. */
export interface BlobStoreOptions {
  /**
   * How long a blob stays after its last use, in ms (`--artifact-retention`); `0`: what a run
   * used is removed when it ends.
   * @default 7 days (`DEFAULT_ARTIFACT_RETENTION_MS`)
   */
  retentionMs?: number;
  /** The clock of retention, in ms since the epoch (tests inject one). @default Date.now */
  now?: () => number;
}

export class BlobStore implements ArtifactStore {
  readonly kind = 'local';
  private ready: Promise<void> | undefined;
  private readonly retentionMs: number;
  private readonly now: () => number;
  /** The blobs used (written, `HEAD`ed, read) since the last run ended. */
  private readonly used = new Set<string>();
  /** The blob files this process verified, as it last left them (see {@link VerifiedFile}). */
  private readonly verified = new Map<string, VerifiedFile>();

  /** @param dir the store's directory, made on the first write. */
  constructor(
    readonly dir: string,
    options: BlobStoreOptions = {},
  ) {
    this.retentionMs = options.retentionMs ?? DEFAULT_ARTIFACT_RETENTION_MS;
    this.now = options.now ?? Date.now;
  }

  /** The file of blob `sha256`; the name is checked (64 lowercase hex) so it never leaves `dir`. */
  pathOf(sha256: string): string {
    if (!LIMITS.artifact.sha256.pattern.test(sha256)) throw new TypeError(`not a SHA-256: ${JSON.stringify(sha256)}`);
    return join(this.dir, sha256);
  }

  /**
   * The size in bytes of blob `sha256`, or undefined when the store does not have it; a blob
   * found counts as used (its mtime set to now, see {@link sweep}).
   */
  async sizeOf(sha256: string): Promise<number | undefined> {
    const found = await stat(this.pathOf(sha256)).catch(ignoreMissing);
    if (!found?.isFile()) return undefined;
    await this.touch(sha256);
    return found.size;
  }

  /**
   * Blob `sha256` was used: its mtime is now (it may have been removed since: no matter). A file
   * verified and unchanged until now stays verified (recorded again after the `utimes`); any
   * other is not.
   */
  private async touch(sha256: string): Promise<void> {
    const known = this.verified.get(sha256);
    const before = known ? await stat(this.pathOf(sha256), { bigint: true }).catch(ignoreMissing) : undefined;
    const stillVerified = known !== undefined && before !== undefined && sameFile(known, before);
    await this.markUsed(sha256);
    if (stillVerified) await this.recordVerified(sha256);
    else this.verified.delete(sha256);
  }

  /** Blob `sha256` was used: counted as used since the last run ended, its mtime now (see {@link sweep}). */
  private async markUsed(sha256: string): Promise<void> {
    this.used.add(sha256);
    const now = this.now() / 1000;
    await utimes(this.pathOf(sha256), now, now).catch(ignoreMissing);
  }

  /** Records blob `sha256`'s file as it is now as verified (see {@link VerifiedFile}); a file gone is forgotten. */
  private async recordVerified(sha256: string, expected?: BigIntStats): Promise<void> {
    const now = await stat(this.pathOf(sha256), { bigint: true }).catch(ignoreMissing);
    // A file changed since `expected` (the state it was read in) was not the one verified.
    if (now === undefined || (expected !== undefined && !sameFile(expected, now))) {
      this.verified.delete(sha256);
      return;
    }
    const { dev, ino, size, mtimeNs, ctimeNs } = now;
    this.verified.set(sha256, { dev, ino, size, mtimeNs, ctimeNs });
  }

  /**
   * Makes the directory (and removes temporary files an earlier process left) and checks that
   * this process may write there: a path that is a file, or a directory it cannot make or write,
   * fails the orchestrator's start rather than every upload of the run.
   * @throws the file system's error (`ENOTDIR`, `EACCES`, …)
   */
  async check(): Promise<void> {
    await this.prepared();
    await access(this.dir, constants.W_OK);
  }

  /**
   * Removes every blob whose mtime is at least the retention ago (`0`: every blob). Temporary
   * files of uploads in progress are not blobs and are never removed here; a blob removed while
   * a reader has it open is still read to its end (the file lives until it is closed).
   */
  async sweep(): Promise<number> {
    const names = await readdir(this.dir).catch(ignoreMissing);
    if (names === undefined) return 0;
    const cutoff = this.now() - this.retentionMs;
    let removed = 0;
    for (const name of names) {
      if (!LIMITS.artifact.sha256.pattern.test(name)) continue;
      const found = await stat(join(this.dir, name)).catch(ignoreMissing);
      if (found === undefined || !found.isFile() || found.mtimeMs > cutoff) continue;
      // Used since the last run ended (by a run still going): kept, whatever its mtime said.
      if (this.used.has(name)) continue;
      this.verified.delete(name);
      await unlink(join(this.dir, name)).then(() => removed++, ignoreMissing);
    }
    return removed;
  }

  async endRun(): Promise<number> {
    const used = [...this.used];
    for (const sha256 of used) await this.touch(sha256);
    for (const sha256 of used) this.used.delete(sha256);
    return this.sweep();
  }

  /** No URLs here: clients use the blob routes (a download of a blob the store lacks: undefined, the route's 404). */
  async transfer(sha256: string, direction: TransferDirection): Promise<BlobTransfer | undefined> {
    if (direction === 'download' && (await this.sizeOf(sha256)) === undefined) return undefined;
    return { store: 'orchestrator' };
  }

  /**
   * Stores `body` as blob `sha256`: written to a temporary file in the store's directory while
   * hashed, renamed to its name once all `size` bytes arrived and hash to `sha256`; otherwise
   * the temporary file is removed. A concurrent write of the same blob is harmless (the last
   * rename replaces identical bytes).
   * @throws BlobWriteError `HashMismatch` or `SizeMismatch`; the body's own error when it fails
   *   (a client that went away): nothing is kept either way.
   */
  async put(sha256: string, size: number, body: Readable): Promise<void> {
    const target = this.pathOf(sha256);
    await this.prepared();
    const temporary = join(this.dir, `${TEMPORARY_PREFIX}${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let received = 0;
    const file = createWriteStream(temporary, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(
        body,
        new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            received += chunk.length;
            hash.update(chunk);
            callback(null, chunk);
          },
        }),
        file,
      );
      if (received !== size) {
        throw new BlobWriteError('SizeMismatch', `received ${received} bytes of the ${size} declared`);
      }
      const actual = hash.digest('hex');
      if (actual !== sha256) {
        throw new BlobWriteError('HashMismatch', `the body's SHA-256 is ${actual}, not ${sha256}: not stored`);
      }
      await rename(temporary, target);
      // Used now, and hashed as written: verified as the file is once its mtime is set (a
      // concurrent write of the same blob renamed identical bytes). One utimes and one stat,
      // where recording it and then touching it (which checks it is unchanged) took three stats.
      await this.markUsed(sha256);
      await this.recordVerified(sha256);
    } catch (error) {
      await fileClosed(file);
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Stores `body`, whose SHA-256 the caller does not know yet (`POST /api/artifacts/blobs`: a
   * producer streaming its archive as it packs it): written to a temporary file in the store's
   * directory while hashed, as {@link put} does, and renamed to its hash once the body ended. A
   * blob the store holds already, as a file it verified and that is unchanged since, is kept and
   * the temporary file removed (`stored: false`); any other file of that name is replaced by the
   * new, verified bytes. Past `maxBytes` the write stops and the temporary file is removed.
   * @param maxBytes the most bytes kept (`--max-artifact-size`)
   * @returns the blob's SHA-256 and size in bytes, and whether this call stored it
   * @throws BlobWriteError `TooLarge` past `maxBytes`; the body's own error when it fails (a client
   *   that went away): nothing is kept either way.
   */
  async putUnnamed(body: Readable, maxBytes: number): Promise<{ sha256: string; size: number; stored: boolean }> {
    await this.prepared();
    const temporary = join(this.dir, `${TEMPORARY_PREFIX}${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let received = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        if (received > maxBytes) {
          callback(new BlobWriteError('TooLarge', `the body passed the store's limit of ${maxBytes} bytes`));
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    // Piped, not in the pipeline: a body past the limit is left unread, not destroyed (a request
    // destroyed takes its socket with it, and the 413 could not be sent). Its failure or an end
    // short of its end (a client that went away) fails the write all the same; `finished` hears
    // that of a body that failed or closed before this call too (once-listeners never fired for
    // one, and the write waited for ever with its temporary file left).
    const stopWatching = finished(body, { writable: false }, (error) => {
      if (error) counted.destroy(error);
    });
    body.pipe(counted);
    const file = createWriteStream(temporary, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(counted, file);
      const sha256 = hash.digest('hex');
      const target = this.pathOf(sha256);
      const known = this.verified.get(sha256);
      const present = known ? await stat(target, { bigint: true }).catch(ignoreMissing) : undefined;
      if (known !== undefined && present !== undefined && sameFile(known, present)) {
        // The very bytes, verified: the file stays as it is (its readers' state with it).
        await unlink(temporary);
        await this.touch(sha256);
        return { sha256, size: received, stored: false };
      }
      await rename(temporary, target);
      await this.markUsed(sha256);
      await this.recordVerified(sha256);
      return { sha256, size: received, stored: true };
    } catch (error) {
      await fileClosed(file);
      await unlink(temporary).catch(() => undefined);
      throw error;
    } finally {
      stopWatching();
    }
  }

  /** {@link prepare}, once; a failure is not kept (the next call tries again). */
  private prepared(): Promise<void> {
    this.ready ??= this.prepare().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  /**
   * Makes the directory, and removes the temporary files of uploads an earlier process did not
   * finish (it ended mid-upload): this process's first write runs it, before any upload of its own.
   */
  private async prepare(): Promise<void> {
    await makeDirectory(this.dir);
    const leftovers = (await readdir(this.dir)).filter((name) => name.startsWith(TEMPORARY_PREFIX));
    await Promise.all(leftovers.map((name) => unlink(join(this.dir, name)).catch(() => undefined)));
  }

  /**
   * Blob `sha256` for reading; undefined when the store does not have it. The file this process
   * verified, unchanged since, is sent as it is (see {@link VerifiedFile}); any other is verified
   * as it is read. A file that turns out not to be the blob (damaged, or changed by someone) is
   * removed once its check fails, unless it was replaced meanwhile: else every later `HEAD` would
   * say the store has it, its producer would never upload it again, and every run would fail on
   * it. One that passes its check whole, unchanged meanwhile, counts as verified from then on.
   */
  async open(sha256: string): Promise<BlobReader | undefined> {
    const path = this.pathOf(sha256);
    const found = await stat(path).catch(ignoreMissing);
    if (!found?.isFile()) return undefined;
    await this.touch(sha256);
    if (this.verified.has(sha256)) {
      const handle = await open(path, 'r');
      return { size: found.size, send: (destination) => sendFile(handle, found.size, destination) };
    }
    // The state it is read in (after the touch): recorded as verified only if still so once it passed.
    const reading = await stat(path, { bigint: true }).catch(ignoreMissing);
    const file = createReadStream(path, { highWaterMark: SEND_READ_BYTES });
    const stream = file.pipe(new VerifyingStream(sha256, found.size));
    // `pipe` passes neither way: the file's error (gone or a directory by its open, EIO) fails
    // the stream, which else waited for good with the download (and the error, unheard, ended the
    // process); the stream destroyed (a client gone) closes the file, which else stayed open.
    file.once('error', (error) => stream.destroy(error));
    stream.once('close', () => file.destroy());
    stream.once('end', () => {
      if (reading !== undefined) void this.recordVerified(sha256, reading).catch(() => undefined);
    });
    stream.once('error', (error) => {
      if (!(error instanceof BlobDamagedError)) return;
      void (async () => {
        const now = await stat(path).catch(ignoreMissing);
        if (now?.ino === found.ino && now.dev === found.dev) {
          this.verified.delete(sha256);
          await unlink(path).catch(() => undefined);
        }
      })();
    });
    return { size: found.size, stream };
  }
}

/** {@link BlobFileReader.send}: the file behind `handle` (closed at the end, whatever happens) to `destination`. */
async function sendFile(handle: FileHandle, size: number, destination: Writable): Promise<void> {
  try {
    const buffers = [Buffer.allocUnsafeSlow(SEND_READ_BYTES), Buffer.allocUnsafeSlow(SEND_READ_BYTES)];
    let sent = 0;
    let writing: Promise<void> | undefined;
    for (let next = 0; sent < size; next ^= 1) {
      // The buffer's last write was awaited before the write that followed it began.
      const buffer = buffers[next]!;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - sent), sent);
      if (bytesRead === 0) throw new Error(`the blob's file ended after ${sent} of its ${size} bytes`);
      sent += bytesRead;
      await writing;
      writing = written(destination, buffer.subarray(0, bytesRead));
      // Awaited only after the next read: a destination that closes or fails meanwhile must not
      // leave this rejection unhandled for those turns (node would end the process: a client
      // that hung up mid-download stopped the orchestrator; found by the new user of round I).
      writing.catch(() => undefined);
    }
    await writing;
  } finally {
    await handle.close();
  }
}

/** Writes `chunk` to `destination`; settles once it took it (the write's callback), or rejects when it closes first. */
function written(destination: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const closed = () => reject(new Error('the destination closed before it took every byte'));
    if (destination.destroyed) return closed();
    destination.once('close', closed);
    destination.write(chunk, (error) => {
      destination.off('close', closed);
      if (error) reject(error);
      else resolve();
    });
  });
}

/** `undefined` for a file that is not there; any other error is thrown on. */
function ignoreMissing(error: NodeJS.ErrnoException): undefined {
  if (error.code === 'ENOENT') return undefined;
  throw error;
}

/**
 * Resolves once `file`'s descriptor is closed (at once when it is). A pipeline that failed early
 * (a body that failed before the call) can leave the file's `open` under way in the thread pool:
 * an `unlink` that ran first found nothing, and the `open` made the file after it, left for good
 * (round AD: seen in CI, and in about two of three runs of 300 such writes).
 */
function fileClosed(file: WriteStream): Promise<void> {
  return file.closed ? Promise.resolve() : new Promise((resolve) => file.once('close', () => resolve()));
}
