/**
 * A blob's download passed on to its consumers over a local socket, with no file written on the
 * way (issue 13, round G): the consumer extracts the bytes as they arrive into a staging directory
 * and moves it into place only once the download ended verified (`BlobFollower.ended`), so a
 * damaged blob (its last chunk held back by `ArtifactClient.get`'s check) leaves nothing.
 *
 * Consumers of one blob that ask before its bytes begin to flow share the one download: the
 * bytes flow once every one of them has connected, each socket getting every chunk (the slowest
 * holds the download back, so no memory grows). One that asks later gets a download of its own.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobFollower } from './blob-progress.js';

/**
 * How long a streamed blob waits for its consumers to connect after the first answer, ms: a host
 * connects within milliseconds of its answer, so one that has not after this long died or hung.
 * @default 30,000
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

/**
 * The longest Unix socket path the platforms take (`sun_path`: 108 bytes on Linux, 104 on macOS,
 * with its terminating NUL): a longer `TMPDIR` makes {@link BlobBroadcast.open} answer undefined.
 */
const MAX_SOCKET_PATH = 103;

/** Where a broadcast listens: a named pipe on Windows; else a socket in a directory of its own (mode 0700: only this user connects). */
async function socketPlace(): Promise<{ path: string; dir?: string } | undefined> {
  if (process.platform === 'win32') return { path: `\\\\.\\pipe\\mpd-blob-${randomBytes(8).toString('hex')}` };
  const dir = await mkdtemp(join(tmpdir(), 'mpd-blob-'));
  const path = join(dir, 's');
  if (Buffer.byteLength(path) <= MAX_SOCKET_PATH) return { path, dir };
  await rm(dir, { recursive: true, force: true });
  return undefined;
}

/** The consumers' side of one streamed download. */
export class BlobBroadcast {
  /** Where consumers connect (`net.connect(path)`). */
  readonly path: string;
  /** Settles when the download ended for every consumer: verified and passed on, or failed. */
  readonly done: Promise<void>;
  private readonly followers = new Set<BlobFollower>();
  private readonly sockets = new Set<Socket>();
  /** Consumers joined and not yet connected (or given up before connecting). */
  private waiting = 0;
  private flowing = false;
  private finished = false;
  private settle!: (error?: Error) => void;
  private connectTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly body: Readable,
    readonly size: number,
    place: { path: string; dir?: string },
    private readonly server: Server,
    private readonly connectTimeoutMs: number,
  ) {
    this.path = place.path;
    this.done = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error ? reject(error) : resolve());
    });
    this.done.catch(() => undefined); // heard through the followers; never unhandled
    const closeServer = () => {
      server.close();
      if (place.dir) void rm(place.dir, { recursive: true, force: true });
    };
    this.done.then(closeServer, closeServer);
    server.on('connection', (socket) => this.connected(socket));
    body.on('error', (error) => this.finish(error));
    // Destroyed without an error (by whoever opened it): ended all the same, not left hanging.
    body.on('close', () => this.finish(new Error('the download stopped before its end')));
    body.on('end', () => {
      for (const socket of this.sockets) socket.end();
      this.finish();
    });
  }

  /**
   * Listens for the consumers of `body` (a verifying download: it errors rather than ends when its
   * bytes do not hash to the blob's name), which flows once every joined consumer has connected.
   * @returns undefined where no socket can be made here (a `TMPDIR` too long for a socket path):
   *   the caller downloads into a file instead
   */
  static async open(
    body: Readable,
    size: number,
    connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
  ): Promise<BlobBroadcast | undefined> {
    const place = await socketPlace();
    if (place === undefined) return undefined;
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(place.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new BlobBroadcast(body, size, place, server, connectTimeoutMs);
  }

  /**
   * Adds a consumer, unless the bytes already began to flow (then it needs a download of its own).
   * `follower` hears the end: `ended()` once every byte was passed on verified, `ended(error)` if not.
   * @param signal aborting it gives this consumer up; the download stops when none is left
   * @returns whether it joined
   */
  join(follower: BlobFollower, signal?: AbortSignal): boolean {
    if (this.flowing || this.finished) return false;
    this.followers.add(follower);
    this.waiting++;
    this.connectTimer ??= setTimeout(
      () => this.finish(new Error(`no module host read the streamed blob within ${this.connectTimeoutMs} ms`)),
      this.connectTimeoutMs,
    ).unref();
    const abandon = () => {
      if (!this.followers.delete(follower)) return;
      follower.ended(new Error('the download was abandoned'));
      if (!this.flowing) {
        this.waiting--;
        this.startIfAllConnected();
      }
      if (this.followers.size === 0) this.finish(new Error('the download was abandoned'));
    };
    if (signal?.aborted) abandon();
    else signal?.addEventListener('abort', abandon, { once: true });
    return true;
  }

  private connected(socket: Socket): void {
    if (this.flowing || this.finished || this.waiting === 0) {
      socket.destroy();
      return;
    }
    this.waiting--;
    this.sockets.add(socket);
    // A consumer gone before the end (its host died, its archive refused): the others go on; the
    // download stops when none is left.
    socket.on('error', () => undefined);
    socket.resume(); // nothing comes from a consumer but its end, which must be seen
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (this.flowing && this.sockets.size === 0)
        this.finish(new Error('every consumer of the streamed blob went away before its end'));
      // The download may have waited for this socket to drain: the others go on.
      else if (this.flowing) this.resumeIfDrained();
    });
    socket.on('drain', () => this.resumeIfDrained());
    this.startIfAllConnected();
  }

  private startIfAllConnected(): void {
    if (this.flowing || this.finished || this.waiting > 0 || this.sockets.size === 0) return;
    this.flowing = true;
    clearTimeout(this.connectTimer);
    this.server.close();
    this.body.on('data', (chunk: Buffer) => {
      let full = false;
      for (const socket of this.sockets) if (!socket.write(chunk)) full = true;
      if (full) this.body.pause();
    });
  }

  private resumeIfDrained(): void {
    for (const socket of this.sockets) if (socket.writableNeedDrain) return;
    this.body.resume();
  }

  private finish(error?: Error): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.connectTimer);
    if (error) {
      this.body.destroy();
      for (const socket of this.sockets) socket.destroy();
    }
    for (const follower of this.followers) follower.ended(error);
    this.followers.clear();
    this.settle(error);
  }
}
