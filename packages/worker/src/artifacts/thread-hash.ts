/**
 * SHA-256 of a stream of chunks, computed on a worker thread once the stream is large: packing
 * an artifact (`ctx.artifacts.upload`) otherwise runs `tar`, the hash and the archive's writes on
 * the module host's one thread (issue 13, benchmark 6: packing 1 GiB held one core for about a
 * second, SHA-256 about 0.6 s of it, while the machine's second core idled). Measured: the upload
 * of 1 GiB took 2.83 s instead of 3.30 s (medians of 8 runs each, alternating; README, "Artifact
 * throughput: round E, second half"). The first {@link DEFAULT_THREAD_FROM_BYTES} are only kept; a stream that ends before is
 * hashed on the spot (no thread is started for a small artifact); past it the thread starts and
 * gets every chunk, copied into batches of {@link BATCH_BYTES} whose memory is handed over (not
 * copied again). At most {@link IN_FLIGHT_BYTES} wait for the thread at once: a thread slower
 * than the writer holds the writer back instead of growing memory.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** From how many bytes a stream is hashed on a thread: 8 MiB (below, starting it costs more than it saves). */
export const DEFAULT_THREAD_FROM_BYTES = 8 * 1024 * 1024;

/** Bytes copied into one message to the thread: 1 MiB (about a thousand messages per GiB). */
const BATCH_BYTES = 1024 * 1024;

/** Bytes sent to the thread and not yet hashed past which {@link ThreadHash.update} waits: 8 MiB. */
const IN_FLIGHT_BYTES = 8 * 1024 * 1024;

/**
 * The thread: hashes each batch it gets (an ArrayBuffer) and answers with its length; `null`
 * ends the stream and is answered with the hex digest. A plain script (`eval`), so that it runs
 * the same from the TypeScript sources and from the built files.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha256');
parentPort.on('message', (batch) => {
  if (batch === null) {
    parentPort.postMessage(hash.digest('hex'));
    return;
  }
  hash.update(new Uint8Array(batch));
  parentPort.postMessage(batch.byteLength);
});
`;

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

export class ThreadHash {
  /** Started once {@link threadFromBytes} were given; never for a smaller stream. */
  private thread: Worker | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inFlight = 0;
  private failure: Error | undefined;
  /** Waiting for the thread to catch up (see {@link update}). */
  private caughtUp: Waiter<void> | undefined;
  /** Waiting for the digest. */
  private digested: Waiter<string> | undefined;

  /** @param threadFromBytes see {@link DEFAULT_THREAD_FROM_BYTES} (tests pass 0: a thread for every stream). */
  constructor(private readonly threadFromBytes = DEFAULT_THREAD_FROM_BYTES) {}

  /** Whether a thread hashes this stream (it was, or is, large). */
  get threaded(): boolean {
    return this.thread !== undefined;
  }

  /**
   * Adds `chunk` (kept until it is hashed or copied into a batch: the caller must not change
   * it). Returns a promise when the thread has more than {@link IN_FLIGHT_BYTES} still to hash:
   * the caller waits for it before the next chunk; otherwise undefined.
   * @throws the thread's error, once it failed
   */
  update(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (!this.thread) {
      if (this.pendingBytes < Math.max(this.threadFromBytes, BATCH_BYTES)) return undefined;
      this.thread = this.start();
    }
    if (this.pendingBytes >= BATCH_BYTES) this.flush(this.thread);
    if (this.inFlight <= IN_FLIGHT_BYTES) return undefined;
    return new Promise<void>((resolve, reject) => {
      this.caughtUp = { resolve, reject };
    });
  }

  /**
   * The SHA-256 of every chunk given, hex; call it once, after the last {@link update}. The
   * thread, if any, ends.
   * @throws the thread's error
   */
  async digest(): Promise<string> {
    if (this.failure) throw this.failure;
    const thread = this.thread;
    if (!thread) {
      const hash = createHash('sha256');
      for (const chunk of this.pending) hash.update(chunk);
      this.pending = [];
      return hash.digest('hex');
    }
    this.flush(thread);
    const digest = new Promise<string>((resolve, reject) => {
      this.digested = { resolve, reject };
    });
    thread.postMessage(null);
    try {
      return await digest;
    } finally {
      await this.close();
    }
  }

  /** Ends the thread, if any (after {@link digest}, or when the stream failed); idempotent. Later calls throw. */
  async close(): Promise<void> {
    this.failure ??= new Error('the hash was closed');
    const thread = this.thread;
    if (!thread) return;
    thread.removeAllListeners('exit');
    await thread.terminate();
  }

  private start(): Worker {
    const thread = new Worker(THREAD_SOURCE, { eval: true });
    // Never what keeps a module host's process alive.
    thread.unref();
    thread.on('message', (message: number | string) => {
      if (typeof message === 'string') return this.digested?.resolve(message);
      this.inFlight -= message;
      if (this.inFlight <= IN_FLIGHT_BYTES / 2) {
        const caughtUp = this.caughtUp;
        this.caughtUp = undefined;
        caughtUp?.resolve();
      }
    });
    thread.on('error', (error) => this.fail(error));
    thread.on('exit', (code) => this.fail(new Error(`the hashing thread exited (${code})`)));
    return thread;
  }

  private flush(thread: Worker): void {
    if (this.pendingBytes === 0) return;
    // A buffer of its own (never node's shared pool), so that its memory can be handed over.
    const batch = new Uint8Array(this.pendingBytes);
    let at = 0;
    for (const chunk of this.pending) {
      batch.set(chunk, at);
      at += chunk.length;
    }
    this.inFlight += batch.length;
    this.pending = [];
    this.pendingBytes = 0;
    thread.postMessage(batch.buffer, [batch.buffer]);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of [this.caughtUp, this.digested]) waiter?.reject(error);
    this.caughtUp = this.digested = undefined;
  }
}
