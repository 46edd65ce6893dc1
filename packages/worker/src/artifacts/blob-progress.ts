import { type FileHandle, open } from 'node:fs/promises';
import { connect } from 'node:net';
import { Readable, Transform } from 'node:stream';
import type { StreamedBlob } from './blob-broadcast.js';

/** Told how a followed download goes (`BlobTransport.follow`, `BlobCache.follow`). */
export interface BlobFollower {
  /** Bytes written to the blob's file so far (called as they grow; the blob's size last, before {@link BlobFollower.ended}). */
  written(bytes: number): void;
  /** The download is over: verified and in the cache (`error` undefined), or failed (its file is then no blob). */
  ended(error?: Error): void;
}

/**
 * A {@link BlobFollower} that a reader waits on: how many bytes of the blob's file may be read
 * now, and whether the download ended well. Module hosts load this file (no dependency).
 */
export class BlobProgress implements BlobFollower {
  private bytes = 0;
  private outcome: { error?: Error } | undefined;
  private wake: (() => void) | undefined;
  /** Settles when the download ended: resolved once the blob is verified, rejected with its error. */
  readonly done: Promise<void>;
  private settle!: (error?: Error) => void;

  constructor() {
    this.done = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error ? reject(error) : resolve());
    });
    this.done.catch(() => undefined); // read through `available`/`done` by the reader; never unhandled
  }

  written(bytes: number): void {
    if (bytes <= this.bytes) return;
    this.bytes = bytes;
    this.wakeUp();
  }

  ended(error?: Error): void {
    if (this.outcome) return;
    this.outcome = error ? { error } : {};
    this.settle(error);
    this.wakeUp();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * Bytes readable beyond `offset`: waits until there are some or the download ended.
   * @returns 0 when the download ended (well) with nothing beyond `offset`
   * @throws the download's error when it failed
   */
  async available(offset: number): Promise<number> {
    for (;;) {
      if (this.outcome?.error) throw this.outcome.error;
      if (this.bytes > offset) return this.bytes - offset;
      if (this.outcome) return 0;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/** How many bytes of a followed blob's file are read at a time. */
const READ_BYTES = 1024 * 1024;

/**
 * The bytes of the file at `path` as a download writes it (reported through `progress`): read
 * up to what was written, waiting for more, until the download ended; ends only once the blob
 * is verified (errors with the download's error otherwise). A stream rather than a generator, as
 * {@link readStreamed}: destroying it (an archive refused halfway) ends it at once, where a
 * generator's `return` waited for the download's next bytes, which a download holding its last
 * chunk back until verified may not write for a long time (a test timed out at 20 s under load).
 * @param opened the file already opened by the caller (a module host's archive, opened once and
 *   checked: `openHostFile`): read through that handle, `path` never opened, and the handle left
 *   open (the caller closes it); a rejection errors the stream. @default `path` opened here
 *   (read-only), closed when the stream ends
 */
export function readFollowed(path: string, progress: BlobProgress, opened?: Promise<FileHandle>): Readable {
  let handle: FileHandle | undefined;
  let offset = 0;
  return new Readable({
    construct(callback) {
      (opened ?? open(path, 'r')).then((found) => {
        // Destroyed while the open was pending (an archive refused at once): node delays
        // `destroy` below until this callback, so `handle` set here is closed there; said here
        // too, so that no file opened after a destroy stays open whatever node's order (round T
        // closing note, blob-progress.ts:87; pinned by worker-blobs.spec "readFollowed").
        if (this.destroyed && opened === undefined) {
          found.close().then(() => callback(), callback);
          return;
        }
        handle = found;
        callback();
      }, callback);
    },
    read() {
      const next = async (): Promise<void> => {
        const available = await progress.available(offset);
        if (this.destroyed) return;
        if (available === 0) {
          await progress.done;
          if (!this.destroyed) this.push(null);
          return;
        }
        const buffer = Buffer.allocUnsafe(Math.min(available, READ_BYTES));
        const { bytesRead } = await handle!.read(buffer, 0, buffer.length, offset);
        if (this.destroyed) return;
        if (bytesRead === 0) throw new Error(`${path} is shorter than its download reported (${offset} bytes)`);
        offset += bytesRead;
        this.push(buffer.subarray(0, bytesRead));
      };
      next().catch((error: Error) => this.destroy(error));
    },
    destroy(error, callback) {
      // Closed once a read in progress on it is over (FileHandle.close waits for it), before the
      // stream's 'close' (which then means the descriptor is closed); a caller's handle is the
      // caller's to close.
      const own = opened === undefined ? handle : undefined;
      handle = undefined;
      if (own === undefined) callback(error);
      else
        own.close().then(
          () => callback(error),
          () => callback(error),
        );
    },
  });
}

/**
 * The `size` bytes of a blob streamed through the local socket `socket` (`BlobBroadcast`), as
 * they arrive (the connection presents the consumer's `token` first); ends only once the download ended verified (`progress`, told by the worker) and
 * all `size` bytes came, errors otherwise (a damaged blob's socket closes early: the download's
 * error is the one given). A stream rather than a generator: destroying it (an archive refused
 * halfway) closes the socket and errors at once, where a generator's `return` would wait for the
 * socket's next bytes, which a download holding its last chunk back may never send.
 */
export function readStreamed({ socket: path, size, token }: StreamedBlob, progress: BlobProgress): Readable {
  const socket = connect(path);
  socket.write(token);
  let received = 0;
  const bytes = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      progress.done.then(
        () =>
          callback(
            received === size ? null : new Error(`the streamed blob ended after ${received} of its ${size} bytes`),
          ),
        callback,
      );
    },
  });
  socket.on('error', (error) => {
    progress.done.then(
      () => bytes.destroy(error),
      (failed: Error) => bytes.destroy(failed),
    );
  });
  bytes.on('close', () => socket.destroy());
  socket.pipe(bytes);
  return bytes;
}
