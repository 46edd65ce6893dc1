import type { ArtifactClient } from '@mpd/client';

import { BlobCache, type BlobCacheOptions } from './blob-cache.js';
import type { BlobFollower } from './blob-progress.js';
import type { BlobTransport, Digest, FollowedBlob } from './module-artifacts.js';

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
    private readonly client: Pick<ArtifactClient, 'putFile' | 'getToFile' | 'get'>,
    cache: Pick<BlobCacheOptions, 'dir' | 'maxBytes' | 'logger'>,
  ) {
    this.cache = new BlobCache({
      ...cache,
      download: (sha256, path) => client.getToFile(sha256, path),
      open: (sha256) => client.get(sha256),
    });
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
