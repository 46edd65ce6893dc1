import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BlobBroadcast, DownloadAbandonedError } from './blob-broadcast.js';
import { BlobProgress, readStreamed } from './blob-progress.js';

describe('BlobBroadcast', () => {
  it('gives up, at its connect timeout, only the consumers that never connected: the bytes flow to those that did', async () => {
    const bytes = Buffer.alloc(200_000, 0x61);
    const body = new PassThrough();
    body.end(bytes);
    // Seconds: the connected consumer connects at once, well within it even on a loaded machine.
    const broadcast = (await BlobBroadcast.open(body, bytes.length, { connectTimeoutMs: 2_000 }))!;
    const [connected, gone] = [new BlobProgress(), new BlobProgress()];
    const blob = broadcast.join(connected)!;
    broadcast.join(gone); // its host died before connecting
    const chunks: Buffer[] = [];
    for await (const chunk of readStreamed(blob, connected)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    await expect(connected.done).resolves.toBeUndefined();
    await expect(gone.done).rejects.toBeInstanceOf(DownloadAbandonedError);
    await expect(broadcast.done).resolves.toBeUndefined();
  });

  it('a download that failed while the broadcast was being opened ends it with that error (a small tampered blob refused before it listened): no consumer waits for it', async () => {
    const body = new PassThrough();
    body.on('error', () => undefined); // as ArtifactClient.get's pipeline listens
    const opening = BlobBroadcast.open(body, 10, { connectTimeoutMs: 60_000 });
    body.destroy(new Error('does not hash to its name')); // before open's mkdtemp and listen are done
    const broadcast = (await opening)!;
    await expect(broadcast.done).rejects.toThrow('does not hash to its name');
    expect(broadcast.join(new BlobProgress())).toBeUndefined();
  });
});
