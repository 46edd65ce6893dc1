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
  /** How many bytes came so far. */
  seen = 0;

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

/**
 * A blob's download stopped before all of its bytes came (the connection closed or failed
 * midway). The orchestrator's directory store cuts a download so when it finds its copy damaged
 * as it sends it (its log says so; it removes the copy and the producer's next run uploads it
 * again): undici's own message for that ("other side closed") named neither. `cause` is the
 * transfer's error.
 */
export class BlobDownloadCutError extends Error {
  override readonly name = 'BlobDownloadCutError';
}

/**
 * The error a download of `sha256` ends with when its transfer failed after `seen` of `size`
 * bytes: a `BlobDownloadCutError` saying so, unless it is already one of ours.
 */
export function downloadError(error: unknown, sha256: string, seen: number, size: number): unknown {
  if (error instanceof BlobDamagedError || error instanceof BlobDownloadCutError || seen >= size) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new BlobDownloadCutError(
    `the download of blob ${sha256} was cut after ${seen} of ${size} bytes (${reason}): a store that finds its copy damaged cuts the download so (the orchestrator's log says why, and the producer's next run uploads the blob again)`,
    { cause: error },
  );
}
