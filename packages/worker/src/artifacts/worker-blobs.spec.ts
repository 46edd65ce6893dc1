import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArtifactClient } from '@mpd/client';
import { afterEach, describe, expect, it } from 'vitest';
import { startBlobServer, within } from '../../test/hostile-blob-server.js';
import type { FollowedBlob } from './module-artifacts.js';
import { BlobProgress, readFollowed, readStreamed } from './blob-progress.js';
import { WorkerBlobs } from './worker-blobs.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * Reads a followed blob whichever way it came (a growing file or a socket), as a module host
 * does: `began` resolves once its first bytes were read, `sha256` with the hash of all of them.
 */
function reading(blob: FollowedBlob, progress: BlobProgress) {
  const chunks = 'socket' in blob ? readStreamed(blob, progress) : readFollowed(blob.path, progress);
  let began!: () => void;
  const first = new Promise<void>((resolve) => (began = resolve));
  const sha256 = (async () => {
    const hash = createHash('sha256');
    for await (const chunk of chunks) {
      hash.update(chunk as Buffer);
      began();
    }
    return hash.digest('hex');
  })();
  return { began: first, sha256 };
}

describe('WorkerBlobs', () => {
  it('keeps a downloaded blob within the cache bound: a second consumer asking after the first one’s bytes began to flow shares that download, and a later one reads it from the cache (one GET)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mpd-worker-blobs-'));
    dirs.push(root);
    let release!: () => void;
    const store = await startBlobServer(root, { held: new Promise<void>((resolve) => (release = resolve)) });
    const client = new ArtifactClient({ baseUrl: store.url, token: 'worker-credential' });
    try {
      // The default bound's rule at a small scale: 10 MiB of cache, a blob of about 2 MiB.
      const blobs = new WorkerBlobs(client, { dir: join(root, 'cache'), maxBytes: 10 * 1024 * 1024 });
      const [first, second] = [new BlobProgress(), new BlobProgress()];
      const one = reading(await blobs.follow(store.sha256, first, new AbortController().signal), first);
      await within(one.began, 10_000, 'the first consumer read no bytes');
      // The first MiB has reached the first consumer; the rest is held back by the store. (The
      // second is answered once that download is in: `follow` then waits as `checkOut` does.)
      const asked = blobs.follow(store.sha256, second, new AbortController().signal);
      release();
      const two = reading(await within(asked, 10_000, 'the second consumer got no answer'), second);
      expect(await within(one.sha256, 10_000, 'the first consumer did not finish')).toBe(store.sha256);
      expect(await within(two.sha256, 10_000, 'the second consumer did not finish')).toBe(store.sha256);
      expect(store.gets()).toBe(1);
      expect(blobs.cache.has(store.sha256)).toBe(true);
      // Kept: a later consumer on this worker reads it without a download.
      const third = new BlobProgress();
      const three = reading(await blobs.follow(store.sha256, third, new AbortController().signal), third);
      expect(await within(three.sha256, 10_000, 'the third consumer did not finish')).toBe(store.sha256);
      expect(store.gets()).toBe(1);
    } finally {
      await client.close();
      await store.close();
    }
  });
});
