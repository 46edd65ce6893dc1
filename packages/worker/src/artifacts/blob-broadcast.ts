/**
 * A blob's download passed on to its consumers over a local socket as it arrives (issue 13, round
 * G), and, when the blob is to be kept, into the cache's file at the same time (round H: one read
 * of the network, every consumer's socket and the file its destinations, {@link BlobBroadcastOptions.copyTo}): the consumer extracts the bytes as they arrive into a staging directory
 * and moves it into place only once the download ended verified (`BlobFollower.ended`), so a
 * damaged blob (its last chunk held back by `ArtifactClient.get`'s check) leaves nothing.
 *
 * Consumers of one blob that ask before its bytes begin to flow share the one download: the
 * bytes flow once every one of them has connected, each socket getting every chunk (the slowest
 * holds the download back, so no memory grows). One that asks later gets a download of its own.
 *
 * Each consumer that joins gets a token of its own ({@link StreamedBlob.token}), which its
 * connection writes first ({@link TOKEN_LENGTH} characters): the broadcast knows which consumer
 * each socket is, so a consumer giving up (before or after connecting) takes away its own place
 * only, and a connection that presents no joined consumer's token gets nothing. (Before, a count
 * of consumers not yet connected stood for them: one that connected and then gave up lowered it
 * a second time, the bytes flowed to its socket alone and the others were turned away.)
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { BlobFollower } from './blob-progress.js';

/** A consumer's way in: the socket to connect to, the blob's size in bytes, and the token its connection writes first. */
export interface StreamedBlob {
  socket: string;
  size: number;
  token: string;
}

/** How many characters a consumer's token has (16 random bytes in hex); its connection writes them before anything else. */
export const TOKEN_LENGTH = 32;

/**
 * A download given up by those who followed it (every consumer abandoned it, went away or never
 * connected) rather than failed: whoever waits for the same blob downloads it again.
 */
export class DownloadAbandonedError extends Error {
  override readonly name = 'DownloadAbandonedError';
}

/**
 * How long a streamed blob waits for each consumer to connect after that consumer joined, ms (a
 * clock of its own: one joining later gets the whole time too): a host connects within
 * milliseconds of its answer, so one that has not after this long died or hung.
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

/** Options of {@link BlobBroadcast.open}. */
export interface BlobBroadcastOptions {
  /**
   * Made once the broadcast listens: a file (the cache's) that gets every chunk the consumers get,
   * in order, and is ended after the last one (the last is passed on only once the download is
   * verified). A full file holds the download back as a full socket does. Its failure (a full
   * disk) leaves the consumers theirs: it gets no more bytes, and its own error tells its maker.
   * The broadcast destroys it when the download fails. Undefined: nothing but the consumers.
   */
  copyTo?: () => Writable;
  /** @default {@link DEFAULT_CONNECT_TIMEOUT_MS} */
  connectTimeoutMs?: number;
}

/**
 * One joined consumer: how it hears the end, its socket once it connected and presented its
 * token, and until then the timer that gives it up ({@link DEFAULT_CONNECT_TIMEOUT_MS}).
 */
interface Consumer {
  follower: BlobFollower;
  socket?: Socket;
  connectTimer?: NodeJS.Timeout;
}

/** The consumers' side of one streamed download. */
export class BlobBroadcast {
  /** Where consumers connect (`net.connect(path)`). */
  readonly path: string;
  /** Settles when the download ended for every consumer: verified and passed on, or failed. */
  readonly done: Promise<void>;
  /** Joined consumers by token, until they leave or the download ends. */
  private readonly consumers = new Map<string, Consumer>();
  /** Connections that have not presented a token yet: never given a byte, destroyed once the bytes flow. */
  private readonly strangers = new Set<Socket>();
  private flowing = false;
  private finished = false;
  private settle!: (error?: Error) => void;
  /** {@link BlobBroadcastOptions.copyTo}'s file, until it ends or fails. */
  private copy: Writable | undefined;

  private constructor(
    private readonly body: Readable,
    readonly size: number,
    place: { path: string; dir?: string },
    private readonly server: Server,
    private readonly connectTimeoutMs: number,
    copy: Writable | undefined,
  ) {
    if (copy) {
      this.copy = copy;
      copy.on('drain', () => this.resumeIfDrained());
      copy.on('error', () => {
        // Heard by its maker (`finished(copy)`): the consumers go on without it.
        if (this.copy !== copy) return;
        this.copy = undefined;
        if (this.flowing) this.resumeIfDrained();
      });
    }
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
      for (const { socket } of this.consumers.values()) socket?.end();
      this.copy?.end();
      this.finish();
    });
    // Failed already, during `open`'s awaits (a small blob's whole answer read and refused by its
    // hash check, or a connection cut, before this listened): its events came before these
    // listeners, and the download would wait for them for good (found in review, round H).
    if (body.destroyed) this.finish(body.errored ?? new Error('the download stopped before its end'));
  }

  /**
   * Listens for the consumers of `body` (a verifying download: it errors rather than ends when its
   * bytes do not hash to the blob's name), which flows once every joined consumer has connected.
   * @returns undefined where no socket can be made here (a `TMPDIR` too long for a socket path):
   *   the caller downloads into a file instead (`copyTo` is then not called)
   */
  static async open(
    body: Readable,
    size: number,
    options: BlobBroadcastOptions = {},
  ): Promise<BlobBroadcast | undefined> {
    const place = await socketPlace();
    if (place === undefined) return undefined;
    const server = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(place.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      // Refused (out of file descriptors, a policy on the temporary directory): the directory
      // made for its socket goes with it; the caller hears the error.
      if (place.dir) await rm(place.dir, { recursive: true, force: true });
      throw error;
    }
    const { copyTo, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS } = options;
    return new BlobBroadcast(body, size, place, server, connectTimeoutMs, copyTo?.());
  }

  /**
   * Adds a consumer, unless the bytes already began to flow (then it needs a download of its own).
   * `follower` hears the end: `ended()` once every byte was passed on verified, `ended(error)` if not.
   * @param signal aborting it gives this consumer up (its socket, if connected, is closed); the
   *   download stops when none is left
   * @returns where and how it connects (the token its connection writes first), or undefined when
   *   it did not join
   */
  join(follower: BlobFollower, signal?: AbortSignal): StreamedBlob | undefined {
    if (this.flowing || this.finished) return undefined;
    const token = randomBytes(TOKEN_LENGTH / 2).toString('hex');
    // Its own connect timeout, from its own join: a timer shared from the first join gave a
    // consumer joining later less (found in review, round H). Given up then, not yet connected
    // (its host died or hung), it leaves; the bytes flow to those that did connect (earlier, the
    // whole download failed for all).
    const connectTimer = setTimeout(
      () =>
        this.leave(
          token,
          new DownloadAbandonedError(`no module host read the streamed blob within ${this.connectTimeoutMs} ms`),
        ),
      this.connectTimeoutMs,
    ).unref();
    this.consumers.set(token, { follower, connectTimer });
    const abandon = () => this.leave(token, new DownloadAbandonedError('the download was abandoned'));
    if (signal?.aborted) abandon();
    else signal?.addEventListener('abort', abandon, { once: true });
    return { socket: this.path, size: this.size, token };
  }

  /**
   * Consumer `token` is gone (gave up, its socket closed before the end, or it never connected):
   * it hears `error`, its socket is closed, and the others go on: the bytes flow once the rest
   * have connected (or, when they already flow, resume if they waited for its socket to drain).
   * The download stops when no consumer is left, with `error` (a {@link DownloadAbandonedError}:
   * whoever waits for the blob downloads it again).
   */
  private leave(token: string, error: DownloadAbandonedError): void {
    const consumer = this.consumers.get(token);
    if (consumer === undefined || this.finished) return;
    this.consumers.delete(token);
    clearTimeout(consumer.connectTimer);
    consumer.socket?.destroy();
    consumer.follower.ended(error);
    if (this.consumers.size === 0) this.finish(error);
    else if (this.flowing) this.resumeIfDrained();
    else this.startIfAllConnected();
  }

  /** A connection: a stranger until it writes a joined consumer's token. */
  private connected(socket: Socket): void {
    if (this.flowing || this.finished) {
      socket.destroy();
      return;
    }
    this.strangers.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.strangers.delete(socket));
    let heard = '';
    const listen = (chunk: Buffer) => {
      heard += chunk.toString('latin1');
      if (heard.length < TOKEN_LENGTH) return;
      socket.off('data', listen);
      this.strangers.delete(socket);
      this.identified(socket, heard.slice(0, TOKEN_LENGTH));
    };
    socket.on('data', listen);
  }

  /** `socket` presented `token`: it becomes that consumer's, unless no consumer waits under that token. */
  private identified(socket: Socket, token: string): void {
    const consumer = this.consumers.get(token);
    if (consumer === undefined || consumer.socket !== undefined || this.flowing || this.finished) {
      socket.destroy();
      return;
    }
    consumer.socket = socket;
    clearTimeout(consumer.connectTimer);
    // Nothing more comes from a consumer but its end, which must be seen (the socket keeps flowing).
    // A consumer gone before the end (its host died, its archive refused): the others go on; the
    // download stops when none is left.
    socket.on('close', () => {
      if (consumer.socket === socket)
        this.leave(token, new DownloadAbandonedError('the consumer of the streamed blob went away before its end'));
    });
    socket.on('drain', () => this.resumeIfDrained());
    this.startIfAllConnected();
  }

  private startIfAllConnected(): void {
    if (this.flowing || this.finished || this.consumers.size === 0) return;
    for (const { socket } of this.consumers.values()) if (socket === undefined) return;
    this.flowing = true;
    this.server.close();
    for (const stranger of this.strangers) stranger.destroy();
    this.body.on('data', (chunk: Buffer) => {
      let full = false;
      for (const { socket } of this.consumers.values()) if (!socket!.write(chunk)) full = true;
      if (this.copy && !this.copy.write(chunk)) full = true;
      if (full) this.body.pause();
    });
  }

  private resumeIfDrained(): void {
    for (const { socket } of this.consumers.values()) if (socket?.writableNeedDrain) return;
    if (this.copy?.writableNeedDrain) return;
    this.body.resume();
  }

  private finish(error?: Error): void {
    if (this.finished) return;
    this.finished = true;
    for (const { connectTimer } of this.consumers.values()) clearTimeout(connectTimer);
    for (const stranger of this.strangers) stranger.destroy();
    if (error) {
      this.body.destroy();
      for (const { socket } of this.consumers.values()) socket?.destroy();
      this.copy?.destroy(error);
    }
    for (const { follower } of this.consumers.values()) follower.ended(error);
    this.consumers.clear();
    this.settle(error);
  }
}
