import type { ArtifactClient } from '@mpd/client';

import { BlobCache } from './blob-cache.js';
import type { BlobFollower } from './blob-progress.js';
import type { BlobTransport, Digest, FollowedBlob } from './module-artifacts.js';

/**
 * The worker's {@link BlobTransport}: uploads through the orchestrator's store (`ArtifactClient`)
 * and keeps what it uploads in its {@link BlobCache}, so a consumer on the same worker reads the
 * producer's archive without a download; a consumer elsewhere gets the blob streamed from the
 * store as it arrives, not kept (consumers of one blob asking together share one download).
 */
export class WorkerBlobs implements BlobTransport {
  readonly cache: BlobCache;

  /**
   * @param client the orchestrator's store, with the worker's credential
   * @param cache where blobs are kept: `dir` and `maxBytes` (`--cache-dir`, `--cache-size`)
   */
  constructor(
    private readonly client: Pick<ArtifactClient, 'putFile' | 'getToFile' | 'get'>,
    cache: { dir: string; maxBytes: number },
  ) {
    this.cache = new BlobCache({
      ...cache,
      download: (sha256, path) => client.getToFile(sha256, path),
      open: (sha256) => client.get(sha256),
      // Every `ctx.artifacts.download` streams (no cache file, nothing kept): writing each GiB
      // into the cache as well as extracting it cost the consumer's worker about half its CPU and
      // its transfer about 15 % (benchmark 6, README "Artifact throughput: round G"). The cache
      // keeps what the worker's modules upload (a consumer there downloads nothing) and results
      // passed by reference (`checkOut`).
      streamOverBytes: 0,
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
    return 'socket' in blob ? { socket: blob.socket, size: blob.size } : { path: blob.path, size: blob.size };
  }
}
