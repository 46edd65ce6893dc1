import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Passes bytes on while hashing them, holding the latest chunk back until the next arrives, and
 * the last one until the whole is checked: on a mismatch it errors instead of sending it, so a
 * damaged blob never reaches its reader whole.
 */
export class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  private held: Buffer | undefined;
  private seen = 0;

  constructor(
    private readonly sha256: string,
    private readonly size: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hash.digest('hex');
    if (this.seen !== this.size || actual !== this.sha256) {
      callback(
        new BlobDamagedError(
          `blob ${this.sha256} is damaged: its ${this.seen} bytes hash to ${actual} (expected ${this.size} bytes hashing to its name)`,
        ),
      );
      return;
    }
    callback(null, this.held);
  }
}

/** A blob whose bytes do not hash to its name, or are not as many as its size says. */
export class BlobDamagedError extends Error {
  override readonly name = 'BlobDamagedError';
}
