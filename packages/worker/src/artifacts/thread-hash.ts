/**
 * SHA-256 of a stream of chunks, computed on a worker thread once the stream is large: packing
 * an artifact (`ctx.artifacts.upload`) otherwise runs `tar`, the hash and the archive's writes on
 * the module host's one thread (issue 13, benchmark 6: packing 1 GiB held one core for about a
 * second, SHA-256 about 0.6 s of it, while the machine's second core idled). Measured: the upload
 * of 1 GiB took 2.83 s instead of 3.30 s (medians of 8 runs each, alternating; docs/performance.md,
 * "Artifact throughput: round E, second half"). The first {@link DEFAULT_THREAD_FROM_BYTES} are only kept; a stream that ends before is
 * hashed on the spot (no thread is started for a small artifact); past it the thread starts and
 * gets every chunk, copied into batches of {@link BATCH_BYTES} whose memory is handed over (not
 * copied again) and back. At most {@link IN_FLIGHT_BATCHES} wait for the thread at once: a thread
 * slower than the writer holds the writer back instead of growing memory.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** From how many bytes a stream is hashed on a thread: 8 MiB (below, starting it costs more than it saves). */
export const DEFAULT_THREAD_FROM_BYTES = 8 * 1024 * 1024;

/** Bytes copied into one message to the thread: 1 MiB (about a thousand messages per GiB). */
const BATCH_BYTES = 1024 * 1024;

/**
 * Batches sent to the thread and not yet handed back past which {@link ThreadHash.update} waits:
 * 8 (8 MiB). The batches' buffers go back and forth (at most this many plus one exist), so the
 * host's memory stays flat: a first version allocating a buffer per batch grew the module host's
 * RSS by 156 MB moving 1 GiB (the thread's collector freed the handed-over buffers late).
 */
const IN_FLIGHT_BATCHES = 8;

/**
 * The thread: hashes each batch it gets (`{ buffer, length }`: the first `length` bytes of a
 * {@link BATCH_BYTES} ArrayBuffer) and hands the buffer back; `null` ends the stream and is
 * answered with the hex digest. A plain script (`eval`), so that it runs
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
  hash.update(new Uint8Array(batch.buffer, 0, batch.length));
  // Handed back for the next batch: no new memory per batch on either side.
  parentPort.postMessage(batch.buffer, [batch.buffer]);
});
`;

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

export class ThreadHash {
  /** Started once {@link threadFromBytes} were given; never for a smaller stream. */
  private thread: Worker | undefined;
  /** The chunks kept before the thread starts. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The batch being filled, and how many of its bytes are. */
  private batch: Uint8Array<ArrayBuffer> | undefined;
  private filled = 0;
  /** Buffers the thread handed back, for the next batches. */
  private readonly spare: ArrayBuffer[] = [];
  private inFlight = 0;
  private failure: Error | undefined;
  /** Waiting for the thread to catch up (see {@link update}). */
  private caughtUp: Waiter<void> | undefined;
  /** Waiting for the digest. */
  private digested: Waiter<string> | undefined;

  /**
   * @param threadFromBytes see {@link DEFAULT_THREAD_FROM_BYTES} (tests pass 0: a thread for every
   *   stream of one batch, {@link BATCH_BYTES}, or more; a smaller one is never worth a thread)
   */
  constructor(private readonly threadFromBytes = DEFAULT_THREAD_FROM_BYTES) {}

  /** Whether a thread hashes this stream (it was, or is, large). */
  get threaded(): boolean {
    return this.thread !== undefined;
  }

  /**
   * Adds `chunk` (below the threshold kept until it is hashed or copied: the caller must not
   * change it). Returns a promise when the thread has more than {@link IN_FLIGHT_BATCHES} still to hash:
   * the caller waits for it before the next chunk; otherwise undefined.
   * @throws the thread's error, once it failed
   */
  update(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    if (!this.thread) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < Math.max(this.threadFromBytes, BATCH_BYTES)) return undefined;
      this.thread = this.start();
      for (const kept of this.pending) this.copy(kept);
      this.pending = [];
    } else {
      this.copy(chunk);
    }
    if (this.inFlight <= IN_FLIGHT_BATCHES) return undefined;
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
    this.send(thread);
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
    thread.on('message', (message: ArrayBuffer | string) => {
      if (typeof message === 'string') return this.digested?.resolve(message);
      this.inFlight--;
      this.spare.push(message);
      if (this.inFlight <= IN_FLIGHT_BATCHES / 2) {
        const caughtUp = this.caughtUp;
        this.caughtUp = undefined;
        caughtUp?.resolve();
      }
    });
    thread.on('error', (error) => this.fail(error));
    thread.on('exit', (code) => this.fail(new Error(`the hashing thread exited (${code})`)));
    return thread;
  }

  /** Copies `chunk` into batches, sending each one full. */
  private copy(chunk: Buffer): void {
    for (let at = 0; at < chunk.length;) {
      this.batch ??= new Uint8Array(this.spare.pop() ?? new ArrayBuffer(BATCH_BYTES));
      const length = Math.min(chunk.length - at, BATCH_BYTES - this.filled);
      this.batch.set(chunk.subarray(at, at + length), this.filled);
      this.filled += length;
      at += length;
      if (this.filled === BATCH_BYTES) this.send(this.thread!);
    }
  }

  /** Sends the batch being filled, if any, to the thread (its buffer handed over, not copied). */
  private send(thread: Worker): void {
    const batch = this.batch;
    if (!batch || this.filled === 0) return;
    thread.postMessage({ buffer: batch.buffer, length: this.filled }, [batch.buffer]);
    this.inFlight++;
    this.batch = undefined;
    this.filled = 0;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of [this.caughtUp, this.digested]) waiter?.reject(error);
    this.caughtUp = this.digested = undefined;
  }
}
