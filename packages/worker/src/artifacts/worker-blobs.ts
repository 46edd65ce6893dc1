import type { ArtifactClient } from '@mpd/client';

import { BlobCache, type BlobCacheOptions } from './blob-cache.js';
import { type BlobFollower, BlobProgress, readFollowed } from './blob-progress.js';
import type { BlobTransport, Digest, FollowedBlob, PackFollower } from './module-artifacts.js';

/**
 * The worker's {@link BlobTransport}: uploads through the orchestrator's store (`ArtifactClient`)
 * and keeps what it uploads or downloads in its {@link BlobCache}, so a consumer on the same
 * worker reads the producer's archive without a download, and concurrent consumers of one blob
 * download it once. A download is streamed from the store to the consumers as it arrives and
 * written into the cache at the same time ({@link BlobCache.follow}); a blob larger than the
 * cache's bound (`--cache-size`) is streamed only and not kept (consumers asking before its bytes
 * begin to flow share that download; one asking later downloads it again).
 */
export class WorkerBlobs implements BlobTransport {
  readonly cache: BlobCache;

  /**
   * @param client the orchestrator's store, with the worker's credential
   * @param cache where blobs are kept: `dir` and `maxBytes` (`--cache-dir`, `--cache-size`), and
   *   the `logger` told of a blob it could not keep ({@link BlobCacheOptions.logger})
   */
  constructor(
    private readonly client: Pick<ArtifactClient, 'putFile' | 'putStream' | 'getToFile' | 'get'>,
    cache: Pick<BlobCacheOptions, 'dir' | 'maxBytes' | 'logger'>,
  ) {
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
   * by hash once it is packed, as {@link put} sends it.
   */
  putPacking(path: string): { follower: PackFollower; stored: Promise<Digest> } {
    const progress = new BlobProgress();
    let packed!: (digest: Digest) => void;
    let failed!: (error: Error) => void;
    const digest = new Promise<Digest>((resolve, reject) => {
      packed = resolve;
      failed = reject;
    });
    digest.catch(() => undefined); // heard below, or by the upload's failure
    const follower: PackFollower = {
      written: (bytes) => progress.written(bytes),
      ended: (outcome) => {
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
      const body = readFollowed(path, progress);
      let answer;
      try {
        answer = await this.client.putStream(body);
      } finally {
        // Read to its end, or given up (a failed packing is the error `putStream` throws).
        body.destroy();
      }
      const known = await digest;
      if (answer === undefined) return await this.put(path, known);
      if (answer.sha256 !== known.sha256 || answer.size !== known.size) {
        throw new Error(
          `the store received the archive as blob ${answer.sha256} (${answer.size} bytes), not as packed (${known.sha256}, ${known.size} bytes): its bytes changed on their way`,
        );
      }
      await this.cache.add(known.sha256, path);
      return known;
    })();
    return { follower, stored };
  }

  async put(path: string, digest?: Digest): Promise<Digest> {
    const stored = await this.client.putFile(path, digest);
    await this.cache.add(stored.sha256, path);
    return stored;
  }

  async checkOut(sha256: string): Promise<{ path: string }> {
    const { path } = await this.cache.checkOut(sha256);
    return { path };
  }

  async follow(sha256: string, follower: BlobFollower, signal: AbortSignal): Promise<FollowedBlob> {
    const blob = await this.cache.follow(sha256, follower, signal);
    return 'socket' in blob
      ? { socket: blob.socket, size: blob.size, token: blob.token }
      : { path: blob.path, size: blob.size };
  }
}
