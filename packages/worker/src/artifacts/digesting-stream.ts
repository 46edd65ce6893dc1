import { Transform, type TransformCallback } from 'node:stream';
import { ThreadHash } from './thread-hash.js';
import type { Digest } from './module-artifacts.js';

/**
 * Passes bytes on unchanged while hashing and counting them: put it between whatever writes a
 * blob and its file, and the blob's {@link Digest} is known once the file is written, with
 * no second read to hash it (`ctx.artifacts.upload` packs its archive through one). A large
 * blob is hashed on a worker thread ({@link ThreadHash}), beside the writing. Module hosts
 * load this file, so it is here rather than in `@mpd/client`, whose entry loads undici and the
 * contract (0.7-1 s in a host).
 */
export class DigestingStream extends Transform {
  private readonly hash: ThreadHash;
  private size = 0;

  /** @param threadFromBytes see {@link ThreadHash} (tests pass 0). */
  constructor(threadFromBytes?: number) {
    super();
    this.hash = new ThreadHash(threadFromBytes);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length;
    let caughtUp: Promise<void> | undefined;
    try {
      caughtUp = this.hash.update(chunk);
    } catch (error) {
      return callback(error as Error);
    }
    if (caughtUp) caughtUp.then(() => callback(null, chunk), callback);
    else callback(null, chunk);
  }

  /**
   * A pipeline that failed destroys the stream: its thread, if any, ends too. A stream that ended
   * (destroyed by itself then) keeps it until {@link digest}.
   */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!error && this.readableEnded) return callback(null);
    this.hash.close().then(
      () => callback(error),
      () => callback(error),
    );
  }

  /** The SHA-256 and size of every byte that went through; call it once, after the stream ended. */
  async digest(): Promise<Digest> {
    return { sha256: await this.hash.digest(), size: this.size };
  }
}
