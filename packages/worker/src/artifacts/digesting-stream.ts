import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Digest } from './module-artifacts.js';

/**
 * Passes bytes on unchanged while hashing and counting them: put it between whatever writes a
 * blob and its file, and the blob's {@link Digest} is known once the file is written, with
 * no second read to hash it (`ctx.artifacts.upload` packs its archive through one). Module hosts
 * load this file, so it is here rather than in `@mpd/client`, whose entry loads undici and the
 * contract (0.7-1 s in a host).
 */
export class DigestingStream extends Transform {
  private readonly hash = createHash('sha256');
  private size = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }

  /**
   * The SHA-256 and size of every byte that went through; call it once, after the stream ended.
   * @throws Error (node's `ERR_CRYPTO_HASH_FINALIZED`) when called twice
   */
  digest(): Digest {
    return { sha256: this.hash.digest('hex'), size: this.size };
  }
}
