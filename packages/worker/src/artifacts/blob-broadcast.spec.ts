import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { BlobBroadcast, DownloadAbandonedError } from './blob-broadcast.js';
import { BlobProgress, readStreamed } from './blob-progress.js';

/**
 * A refused `listen` (EMFILE: out of file descriptors, which no test can make in its own process
 * without breaking the test runner's): `net.createServer` as it is, but a server made while
 * `refuseListen.with` is set emits that error at `listen`.
 */
const refuseListen = vi.hoisted(() => ({ with: undefined as Error | undefined }));
vi.mock('node:net', async (importOriginal) => {
  const net = await importOriginal<typeof import('node:net')>();
  const createServer = (...args: Parameters<typeof net.createServer>) => {
    const server = net.createServer(...args);
    const error = refuseListen.with;
    if (error) {
      server.listen = (() => {
        process.nextTick(() => server.emit('error', error));
        return server;
      }) as typeof server.listen;
    }
    return server;
  };
  return { ...net, createServer, default: { ...net, createServer } };
});

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

  it('gives each consumer its own connect timeout from its own join: one joining after the first is not given up with it, and gets every byte once it connects', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const bytes = Buffer.alloc(200_000, 0x62);
      const body = new PassThrough();
      body.end(bytes);
      const broadcast = (await BlobBroadcast.open(body, bytes.length, { connectTimeoutMs: 30_000 }))!;
      const [gone, later] = [new BlobProgress(), new BlobProgress()];
      broadcast.join(gone); // its host died before connecting
      vi.advanceTimersByTime(20_000);
      const blob = broadcast.join(later)!;
      // The first one's 30 s are up, the later one's 10 s: only the first is given up.
      vi.advanceTimersByTime(10_000);
      await expect(gone.done).rejects.toBeInstanceOf(DownloadAbandonedError);
      const chunks: Buffer[] = [];
      for await (const chunk of readStreamed(blob, later)) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
      await expect(later.done).resolves.toBeUndefined();
      await expect(broadcast.done).resolves.toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a listen refused (EMFILE) removes the directory made for its socket and rejects with the error', async () => {
    const temporary = mkdtempSync(join(tmpdir(), 'mpd-broadcast-tmp-'));
    const before = process.env.TMPDIR;
    process.env.TMPDIR = temporary;
    refuseListen.with = Object.assign(new Error('listen EMFILE: too many open files'), { code: 'EMFILE' });
    try {
      await expect(BlobBroadcast.open(new PassThrough(), 10)).rejects.toThrow('EMFILE');
      expect(readdirSync(temporary)).toEqual([]);
    } finally {
      refuseListen.with = undefined;
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
      rmSync(temporary, { recursive: true, force: true });
    }
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
